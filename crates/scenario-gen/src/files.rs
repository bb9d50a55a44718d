//! A bundle held in memory as relative path to bytes, so a generation can
//! be compared with what is on disk before anything is written.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::GenError;
use crate::json::J;

/// The files of one bundle, by path relative to the bundle directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleFiles {
    files: BTreeMap<String, Vec<u8>>,
}

impl BundleFiles {
    /// Adds (or replaces) a file.
    pub fn put(&mut self, path: &str, bytes: impl Into<Vec<u8>>) {
        self.files.insert(path.to_owned(), bytes.into());
    }

    /// Adds a pretty-printed JSON document.
    pub fn put_json(&mut self, path: &str, doc: &J) {
        self.put(path, doc.pretty());
    }

    /// Adds a JSON-lines file, one record per line.
    pub fn put_jsonl(&mut self, path: &str, records: &[J]) {
        let mut text = String::new();
        for r in records {
            text.push_str(&r.line());
            text.push('\n');
        }
        self.put(path, text);
    }

    /// A file's bytes.
    #[must_use]
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// Every file, sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Replaces `dir` with exactly these files: a file a story no longer
    /// makes must not linger in the committed examples.
    ///
    /// # Errors
    /// [`GenError::Io`] when the directory cannot be cleared or written.
    pub fn write_to(&self, dir: &Path) -> Result<(), GenError> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| GenError::io(dir, e))?;
        }
        for (rel, bytes) in &self.files {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| GenError::io(parent, e))?;
            }
            std::fs::write(&path, bytes).map_err(|e| GenError::io(&path, e))?;
        }
        Ok(())
    }

    /// Reads every file under `dir` (the committed copy of a bundle).
    ///
    /// # Errors
    /// [`GenError::Io`] when `dir` or a file in it cannot be read.
    pub fn read_from(dir: &Path) -> Result<Self, GenError> {
        let mut out = Self::default();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).map_err(|e| GenError::io(&d, e))? {
                let path = entry.map_err(|e| GenError::io(&d, e))?.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let bytes = std::fs::read(&path).map_err(|e| GenError::io(&path, e))?;
                    let rel = path
                        .strip_prefix(dir)
                        .unwrap_or(&path)
                        .to_string_lossy()
                        .replace('\\', "/");
                    out.files.insert(rel, bytes);
                }
            }
        }
        Ok(out)
    }
}
