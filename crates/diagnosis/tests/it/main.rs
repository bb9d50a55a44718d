//! Integration tests of rootcause-diagnosis (one binary, one module per area).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub use rootcause_test_data::shared_has;

mod fold;
mod incident;
mod schema;
mod store;
mod support;

/// The shared scenarios and data directory.
pub fn shared_dir() -> std::path::PathBuf {
    rootcause_test_data::shared_dir()
}
