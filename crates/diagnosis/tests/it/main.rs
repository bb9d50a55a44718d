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

/// Whether the shared data (`../shared`, or `ROOTCAUSE_SHARED_DIR`) has
/// `sub`. When it does not (a bare clone), says so: the tests that need it
/// return early, so the suite still passes where the data is absent.
pub fn shared_has(sub: &str) -> bool {
    let dir = std::env::var_os("ROOTCAUSE_SHARED_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared").into())
        .join(sub);
    let present = dir.is_dir();
    if !present {
        eprintln!(
            "skipped: no shared data at {} (set ROOTCAUSE_SHARED_DIR)",
            dir.display()
        );
    }
    present
}
