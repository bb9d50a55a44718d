//! Integration tests of rootcause-diagnosis (one binary, one module per area).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod fold;
mod incident;
mod schema;
mod store;
mod support;

/// The shared scenarios and data directory.
pub fn shared_dir() -> std::path::PathBuf {
    std::env::var_os("ROOTCAUSE_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .filter(|p| p.join("scenarios").is_dir())
        .unwrap_or_else(|| {
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"))
        })
}
