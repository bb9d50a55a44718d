//! Fails when an arrow of the dependency graph breaks a rule of the
//! architecture. Each failure names the crate, the dependency and the rule.
#![allow(missing_docs)]
#![expect(
    clippy::expect_used,
    reason = "the helpers outside #[test] fns panic when cargo itself fails, which fails the test"
)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use cargo_metadata::{DependencyKind, MetadataCommand, Package};

/// The database stack, which `rootcause-diagnosis` links only behind its
/// `store` feature.
const DATABASE_CRATES: &[&str] = &[
    "tokio",
    "diesel",
    "diesel-async",
    "diesel_migrations",
    "tokio-postgres",
    "deadpool",
];

/// Crates that do I/O besides the database: a pure crate must not link any.
const IO_CRATES: &[&str] = &[
    "deadpool-redis",
    "redis",
    "lapin",
    "reqwest",
    "hyper",
    "actix-web",
    "actix-ws",
    "git2",
];

/// Pure crates: values in, values out (STYLE.md, ARCHITECTURE.md).
const PURE: &[&str] = &["rootcause-analysis", "rootcause-workflow"];

/// Crates that hold agent code: the LLM layer is below them.
const AGENT_CODE: &[&str] = &["rootcause-agents", "rootcause-workflow", "rootcause-tools"];

fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn members() -> Vec<Package> {
    let metadata = MetadataCommand::new()
        .manifest_path(workspace_root().join("Cargo.toml"))
        .no_deps()
        .exec()
        .expect("cargo metadata");
    metadata.workspace_packages().into_iter().cloned().collect()
}

fn is_service(p: &Package) -> bool {
    p.manifest_path.as_str().contains("/services/")
}

/// Every package `krate` links when built alone (normal and build edges,
/// its default features only): `cargo tree -p krate -e normal,build`.
fn linked(krate: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "tree",
            "-p",
            krate,
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {krate} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn pure_crates_link_no_io_crate() {
    let names: BTreeSet<String> = members().into_iter().map(|p| p.name.to_string()).collect();
    // The database rule holds from the moment the model gates its store
    // behind a feature (before that, every crate using the model links it).
    let gated = members()
        .iter()
        .any(|p| p.name.as_str() == "rootcause-diagnosis" && p.features.contains_key("store"));
    let mut forbidden: Vec<&str> = IO_CRATES.to_vec();
    if gated {
        forbidden.extend_from_slice(DATABASE_CRATES);
    }
    let mut broken = Vec::new();
    for krate in PURE.iter().filter(|k| names.contains(**k)) {
        let linked = linked(krate);
        for io in &forbidden {
            if linked.contains(*io) {
                broken.push(format!("{krate} links {io} (pure crates do no I/O)"));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn no_service_depends_on_another_and_no_library_on_a_service() {
    let packages = members();
    let services: BTreeSet<String> = packages
        .iter()
        .filter(|p| is_service(p))
        .map(|p| p.name.to_string())
        .collect();
    assert!(services.len() >= 4, "services found: {services:?}");
    let mut broken = Vec::new();
    for p in &packages {
        for dep in &p.dependencies {
            if services.contains(dep.name.as_str()) && dep.kind != DependencyKind::Development {
                broken.push(format!("{} -> {}", p.name, dep.name));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "a service is a composition root; share code through a crate: {broken:?}"
    );
}

#[test]
fn nothing_depends_on_the_cli() {
    let broken: Vec<String> = members()
        .iter()
        .filter(|p| p.dependencies.iter().any(|d| d.name == "rootcause-cli"))
        .map(|p| p.name.to_string())
        .collect();
    assert!(
        broken.is_empty(),
        "the CLI is a binary; move shared code to a crate: {broken:?}"
    );
}

#[test]
fn the_model_links_no_web_or_broker_crate() {
    let linked = linked("rootcause-diagnosis");
    let forbidden = [
        "actix-web",
        "actix-ws",
        "lapin",
        "reqwest",
        "redis",
        "deadpool-redis",
    ];
    let found: Vec<&str> = forbidden
        .into_iter()
        .filter(|c| linked.contains(*c))
        .collect();
    assert!(found.is_empty(), "rootcause-diagnosis links {found:?}");
}

#[test]
fn llm_depends_on_no_agent_code() {
    let linked = linked("rootcause-llm");
    let found: Vec<&str> = AGENT_CODE
        .iter()
        .copied()
        .filter(|c| linked.contains(*c))
        .collect();
    assert!(found.is_empty(), "rootcause-llm links {found:?}");
}

#[test]
fn the_rules_see_real_arrows() {
    // Guards the test itself: if `linked` stopped parsing cargo tree, every
    // rule above would pass vacuously.
    let tools = linked("rootcause-tools");
    assert!(tools.contains("rootcause-diagnosis"), "{tools:?}");
    assert!(tools.contains("reqwest"), "{tools:?}");
}
