//! What can go wrong while generating or writing the example bundles.

use std::path::PathBuf;

/// A failure of the generator; each names the file or step and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenError {
    /// A file or directory of the output could not be written or read.
    #[error("{path}: {source}; check that the output directory is writable")]
    Io {
        /// The path being written or read.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// libgit2 refused a step while building a story's repository.
    #[error("building the git history of story {story}: {source}")]
    Git {
        /// The story whose repository failed.
        story: String,
        /// libgit2's error.
        source: git2::Error,
    },
    /// A story asked for something the generator does not have.
    #[error("unknown story {name:?}; known stories: {known}")]
    UnknownStory {
        /// The requested name.
        name: String,
        /// The names that exist, comma-separated.
        known: String,
    },
    /// A story is inconsistent (a bug in the story's code, not in the input).
    #[error("story {story}: {message}")]
    Story {
        /// The story.
        story: String,
        /// What is inconsistent.
        message: String,
    },
}

impl GenError {
    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
