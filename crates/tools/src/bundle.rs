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

/// What [`read_jsonl_lossy`] found in a JSON-lines file.
#[derive(Debug, Clone, Default)]
pub struct JsonlFile {
    /// Values of the lines that parsed, in file order.
    pub values: Vec<serde_json::Value>,
    /// Lines that did not parse as JSON.
    pub unparsed: usize,
    /// 1-based numbers of lines holding bytes that are not UTF-8; they were
    /// decoded with U+FFFD in place of the bad bytes and kept.
    pub lossy_lines: Vec<usize>,
}

/// Reads a JSON-lines file, line by line. Lines that do not parse are
/// counted, not fatal, and a line with bytes that are not UTF-8 is decoded
/// lossily and reported: one bad byte must not hide the rest of the file.
///
/// # Errors
/// [`ToolError::Io`] when the file cannot be read.
pub fn read_jsonl_lossy(path: &Path) -> Result<JsonlFile, ToolError> {
    let bytes = std::fs::read(path).map_err(|e| ToolError::io(path, &e))?;
    let mut out = JsonlFile::default();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = match std::str::from_utf8(raw) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => {
                out.lossy_lines.push(i + 1);
                String::from_utf8_lossy(raw)
            }
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.values.push(v),
            Err(_) => out.unparsed += 1,
        }
    }
    Ok(out)
}

/// Reads a JSON-lines file into values, skipping blank lines. Lines that do
/// not parse are counted, not fatal: one bad line must not hide the rest
/// (bytes that are not UTF-8 are decoded lossily, see [`read_jsonl_lossy`]).
///
/// # Errors
/// [`ToolError::Io`] when the file cannot be read.
pub fn read_jsonl(path: &Path) -> Result<(Vec<serde_json::Value>, usize), ToolError> {
    let file = read_jsonl_lossy(path)?;
    Ok((file.values, file.unparsed))
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn non_utf8_byte_in_a_log_file_is_decoded_lossily_and_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.jsonl");
        let mut bytes = b"{\"message\": \"ok\"}\n".to_vec();
        bytes.extend_from_slice(b"{\"message\": \"caf\xe9 down\"}\n");
        bytes.extend_from_slice(b"{\"message\": \"after\"}\n");
        std::fs::write(&path, bytes).expect("write");
        let (values, bad) = read_jsonl(&path).expect("the file is read despite the byte");
        assert_eq!(values.len(), 3);
        assert_eq!(bad, 0);
        assert_eq!(values[1]["message"], "caf\u{fffd} down");
        assert_eq!(read_jsonl_lossy(&path).expect("read").lossy_lines, vec![2]);
    }
}
