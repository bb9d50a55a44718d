//! The incident bundle of `SCENARIO_FORMAT.md`, as an offline data source.
//!
//! A bundle belongs to one tenant: every bundle backend checks the call's
//! tenant against it. A file that is absent means "no data" (evidence of
//! absence), never an error.

use std::path::{Path, PathBuf};

use rootcause_diagnosis::{Incident, TenantId};

use crate::error::ToolError;

/// An incident bundle directory, owned by a tenant.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
    tenant: TenantId,
}

impl Bundle {
    /// Opens the bundle at `dir` for `tenant`.
    ///
    /// # Errors
    /// [`ToolError::Io`] when `dir` has no `incident.json` (not a bundle).
    pub fn open(dir: impl Into<PathBuf>, tenant: TenantId) -> Result<Self, ToolError> {
        let dir = dir.into();
        let incident = dir.join("incident.json");
        if !incident.is_file() {
            return Err(ToolError::Io {
                path: incident.display().to_string(),
                message:
                    "not found; an incident bundle needs incident.json (see SCENARIO_FORMAT.md)"
                        .to_owned(),
            });
        }
        Ok(Self { dir, tenant })
    }

    /// The bundle directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tenant the bundle belongs to.
    #[must_use]
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// A path inside the bundle.
    #[must_use]
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// The incident as reported.
    ///
    /// # Errors
    /// [`ToolError::Io`] or [`ToolError::Parse`].
    pub fn incident(&self) -> Result<Incident, ToolError> {
        let path = self.path("incident.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ToolError::io(&path, &e))?;
        Incident::from_json(&text).map_err(|e| ToolError::Parse {
            what: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Sorted `*.jsonl` files of a sub-directory (`logs`, `db`); empty when
    /// the directory is absent.
    ///
    /// # Errors
    /// [`ToolError::Io`] when the directory exists but cannot be listed.
    pub fn jsonl_files(&self, sub: &str) -> Result<Vec<PathBuf>, ToolError> {
        let dir = self.path(sub);
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| ToolError::io(&dir, &e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        Ok(files)
    }
}

/// Reads a JSON-lines file into values, skipping blank lines. Lines that do
/// not parse are counted, not fatal: one bad line must not hide the rest.
///
/// # Errors
/// [`ToolError::Io`] when the file cannot be read.
pub fn read_jsonl(path: &Path) -> Result<(Vec<serde_json::Value>, usize), ToolError> {
    let text = std::fs::read_to_string(path).map_err(|e| ToolError::io(path, &e))?;
    let mut values = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => values.push(v),
            Err(_) => bad += 1,
        }
    }
    Ok((values, bad))
}
