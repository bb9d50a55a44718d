//! The workspace's dependency rules, enforced rather than remembered.
//!
//! The rules live in `tests/dependency_rules.rs`, which reads the real
//! dependency graph (`cargo metadata` for the workspace's direct edges,
//! `cargo tree -p <crate>` for what a crate links when built on its own,
//! with only its own features) and fails naming the arrow that breaks a rule.
//! `docs/architecture/ownership.md` lists the rules for people.
