//! A story's code history, built commit by commit with libgit2 and written
//! as a git bundle (`# v2 git bundle`, refs, then one pack).
//!
//! Every input of a commit id is fixed (contents, author, dates, parents),
//! so the ids are the same on every machine. The pack is written by
//! libgit2 with one thread, which makes it byte-stable for a given libgit2
//! and zlib; a different zlib could compress differently, which is why the
//! drift check compares a bundle's refs (ids that hash everything) rather
//! than its bytes.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use git2::{Index, IndexEntry, IndexTime, Oid, Repository, RepositoryInitOptions, Signature, Sort};

use crate::error::GenError;

/// A person who commits.
#[derive(Debug, Clone, Copy)]
pub struct Author {
    /// Full name.
    pub name: &'static str,
    /// E-mail.
    pub email: &'static str,
}

/// Builds a repository in a temporary directory.
pub struct RepoBuilder {
    story: String,
    _dir: tempfile::TempDir,
    repo: Repository,
    files: BTreeMap<String, String>,
    head: Option<Oid>,
    tags: Vec<(String, Oid)>,
}

impl std::fmt::Debug for RepoBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoBuilder")
            .field("story", &self.story)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl RepoBuilder {
    /// An empty repository whose branch is `main`.
    ///
    /// # Errors
    /// [`GenError::Io`] for the temporary directory, [`GenError::Git`].
    pub fn new(story: &str) -> Result<Self, GenError> {
        let dir = tempfile::Builder::new()
            .prefix("rootcause-scenario-gen-")
            .tempdir()
            .map_err(|e| GenError::io(std::env::temp_dir(), e))?;
        let repo = Repository::init_opts(
            dir.path(),
            RepositoryInitOptions::new().bare(true).initial_head("main"),
        )
        .map_err(|e| git(story, e))?;
        Ok(Self {
            story: story.to_owned(),
            _dir: dir,
            repo,
            files: BTreeMap::new(),
            head: None,
            tags: Vec::new(),
        })
    }

    /// Sets a file's content for the next commit.
    pub fn write(&mut self, path: &str, content: &str) {
        self.files.insert(path.to_owned(), content.to_owned());
    }

    /// Replaces `from` by `to` in a file (a story's small code change).
    ///
    /// # Errors
    /// [`GenError::Story`] when the file or the text is not there: the
    /// story's edit no longer applies to its own code.
    pub fn edit(&mut self, path: &str, from: &str, to: &str) -> Result<(), GenError> {
        let text = self.files.get(path).ok_or_else(|| GenError::Story {
            story: self.story.clone(),
            message: format!("edit of {path}: no such file"),
        })?;
        if !text.contains(from) {
            return Err(GenError::Story {
                story: self.story.clone(),
                message: format!("edit of {path}: text to replace not found: {from:?}"),
            });
        }
        let new = text.replacen(from, to, 1);
        self.files.insert(path.to_owned(), new);
        Ok(())
    }

    /// Commits the current files on `main`.
    ///
    /// # Errors
    /// [`GenError::Git`].
    pub fn commit(
        &mut self,
        author: Author,
        at: DateTime<Utc>,
        message: &str,
    ) -> Result<Oid, GenError> {
        let story = self.story.clone();
        let g = |e| git(&story, e);
        let mut index = Index::new().map_err(g)?;
        for (path, content) in &self.files {
            let blob = self.repo.blob(content.as_bytes()).map_err(g)?;
            let entry = IndexEntry {
                ctime: IndexTime::new(0, 0),
                mtime: IndexTime::new(0, 0),
                dev: 0,
                ino: 0,
                mode: 0o100_644,
                uid: 0,
                gid: 0,
                file_size: u32::try_from(content.len()).unwrap_or(u32::MAX),
                id: blob,
                flags: 0,
                flags_extended: 0,
                path: path.as_bytes().to_vec(),
            };
            index.add(&entry).map_err(g)?;
        }
        let tree_id = index.write_tree_to(&self.repo).map_err(g)?;
        let tree = self.repo.find_tree(tree_id).map_err(g)?;
        let sig = Signature::new(
            author.name,
            author.email,
            &git2::Time::new(at.timestamp(), 0),
        )
        .map_err(g)?;
        let parent = match self.head {
            Some(id) => Some(self.repo.find_commit(id).map_err(g)?),
            None => None,
        };
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let id = self
            .repo
            .commit(
                Some("refs/heads/main"),
                &sig,
                &sig,
                message,
                &tree,
                &parents,
            )
            .map_err(g)?;
        self.head = Some(id);
        Ok(id)
    }

    /// Tags the last commit (lightweight, as release tooling often does).
    ///
    /// # Errors
    /// [`GenError::Story`] before the first commit, [`GenError::Git`].
    pub fn tag(&mut self, name: &str) -> Result<(), GenError> {
        let head = self.head.ok_or_else(|| GenError::Story {
            story: self.story.clone(),
            message: format!("tag {name} before any commit"),
        })?;
        let obj = self
            .repo
            .find_object(head, None)
            .map_err(|e| git(&self.story, e))?;
        self.repo
            .tag_lightweight(name, &obj, false)
            .map_err(|e| git(&self.story, e))?;
        self.tags.push((format!("refs/tags/{name}"), head));
        Ok(())
    }

    /// The repository as `git bundle create repo.bundle --all` would hold it.
    ///
    /// # Errors
    /// [`GenError::Story`] for an empty history, [`GenError::Git`].
    pub fn bundle(&self) -> Result<Vec<u8>, GenError> {
        let head = self.head.ok_or_else(|| GenError::Story {
            story: self.story.clone(),
            message: "a repository without commits".to_owned(),
        })?;
        let g = |e| git(&self.story, e);
        let mut header = format!("# v2 git bundle\n{head} refs/heads/main\n");
        let mut tags = self.tags.clone();
        tags.sort();
        for (name, id) in &tags {
            header.push_str(&format!("{id} {name}\n"));
        }
        header.push_str(&format!("{head} HEAD\n\n"));
        let mut walk = self.repo.revwalk().map_err(g)?;
        walk.push(head).map_err(g)?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
            .map_err(g)?;
        let mut pb = self.repo.packbuilder().map_err(g)?;
        pb.set_threads(1);
        pb.insert_walk(&mut walk).map_err(g)?;
        let mut pack = git2::Buf::new();
        pb.write_buf(&mut pack).map_err(g)?;
        let mut out = header.into_bytes();
        out.extend_from_slice(&pack);
        Ok(out)
    }

    /// Where the repository lives while the story is built.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.repo.path()
    }
}

/// The ref lines of a bundle's header (`<id> <name>`), the part that
/// identifies its history completely.
#[must_use]
pub fn bundle_refs(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for line in bytes.split(|b| *b == b'\n').skip(1) {
        if line.is_empty() {
            break;
        }
        out.push(String::from_utf8_lossy(line).into_owned());
    }
    out
}

fn git(story: &str, source: git2::Error) -> GenError {
    GenError::Git {
        story: story.to_owned(),
        source,
    }
}

/// The seven-digit id that deploy records and `expected.json` quote.
#[must_use]
pub fn short(id: Oid) -> String {
    id.to_string().chars().take(7).collect()
}
