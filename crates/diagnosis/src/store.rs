//! The event store: see the crate documentation.
