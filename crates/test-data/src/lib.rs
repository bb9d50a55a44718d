//! Where tests and benches find the shared scenarios and data sets
//! (`../shared` beside the checkout, or `ROOTCAUSE_SHARED_DIR`), and how a
//! test that needs them skips, saying so, in a bare clone that has none.
//!
//! ```
//! if !rootcause_test_data::shared_has("scenarios") {
//!     return; // a bare clone: the message says what was skipped and why
//! }
//! let scenarios = rootcause_test_data::shared_dir().join("scenarios");
//! assert!(scenarios.is_dir());
//! ```

use std::path::PathBuf;

/// The shared data folder: `ROOTCAUSE_SHARED_DIR` when set, else `shared`
/// beside the repository. It may not exist; see [`shared_has`].
#[must_use]
pub fn shared_dir() -> PathBuf {
    std::env::var_os("ROOTCAUSE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared").into())
}

/// Whether the shared data has `sub` (`"scenarios"`, `"data/loghub"`). When
/// it does not, prints that the calling test is skipped: tests that need the
/// data return early, so the suite passes where it is absent.
#[must_use]
pub fn shared_has(sub: &str) -> bool {
    let dir = shared_dir().join(sub);
    let present = dir.is_dir();
    if !present {
        eprintln!(
            "skipped: no shared data at {} (set ROOTCAUSE_SHARED_DIR)",
            dir.display()
        );
    }
    present
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_is_reported_absent() {
        assert!(!shared_has("no-such-folder-here"));
    }
}
