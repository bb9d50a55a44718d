//! A local clone of a service repository, owned by one tenant.
//!
//! Three origins: an incident bundle's `repo.bundle` (unpacked once into a
//! cache directory with libgit2: the bundle's pack goes into a new bare
//! repository and its refs are created from the bundle header, so no `git`
//! binary is needed), an existing local repository, or a remote URL cloned
//! bare into the cache and fetched on a schedule
//! ([`GitRepository::spawn_periodic_fetch`]).
//!
//! `git2::Repository` is not `Sync`, so the repository is opened per
//! operation inside `spawn_blocking` (opening is cheap next to a diff).

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rootcause_diagnosis::TenantId;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use rootcause_analysis::changes::CommitInfo;

use crate::error::ToolError;

const SOURCE: &str = "git";

/// Longest bundle header line (a ref name with its object id); git's own
/// ref names stay far below this, so a longer line is not a bundle.
pub const MAX_BUNDLE_HEADER_LINE: usize = 4096;
/// Largest bundle header (every ref line together).
pub const MAX_BUNDLE_HEADER_BYTES: u64 = 4 * 1024 * 1024;
/// Largest pack a bundle may carry: an incident bundle holds one service's
/// history, not a monorepo; a bigger one is refused before unpacking.
pub const MAX_BUNDLE_PACK_BYTES: u64 = 1024 * 1024 * 1024;
/// Most unified-diff text kept per commit in [`GitRepository::commit_history`].
pub const MAX_COMMIT_DIFF_BYTES: usize = 256 * 1024;

/// Where the clone came from. `Debug` masks a credential embedded in a
/// remote URL.
#[derive(Clone)]
pub enum GitOrigin {
    /// Unpacked from a `git bundle` file.
    Bundle(PathBuf),
    /// An existing repository used in place.
    Local(PathBuf),
    /// Cloned from a URL; fetched again by [`GitRepository::fetch`].
    Remote {
        /// The URL (`https://`, `ssh://`, or a local path); secret because
        /// a URL may embed a token (`https://x-access-token:...@host/...`).
        url: SecretString,
        /// Credentials for HTTPS (user name and token), when needed.
        credentials: Option<(String, SecretString)>,
    },
}

impl std::fmt::Debug for GitOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bundle(p) => f.debug_tuple("Bundle").field(p).finish(),
            Self::Local(p) => f.debug_tuple("Local").field(p).finish(),
            Self::Remote { url, credentials } => f
                .debug_struct("Remote")
                .field("url", &rootcause_redact::url(url.expose_secret()))
                .field("credentials", credentials)
                .finish(),
        }
    }
}

/// A repository the code tools read.
#[derive(Debug)]
pub struct GitRepository {
    path: PathBuf,
    tenant: TenantId,
    origin: GitOrigin,
}

impl GitRepository {
    /// Unpacks `bundle_file` into `cache_root/<tenant>/<sha256>.git`, reused
    /// when already there. The key is the SHA-256 of the bundle's content
    /// under a directory of the tenant, so a changed bundle gets a new
    /// directory and two tenants never share (or can plant) an unpacked
    /// repository, whatever their bundles are named. The directories are
    /// created owner-only (0700).
    ///
    /// # Errors
    /// [`ToolError::Io`], [`ToolError::Parse`] for a file that is not a git
    /// bundle or is over the size limits ([`MAX_BUNDLE_HEADER_LINE`],
    /// [`MAX_BUNDLE_PACK_BYTES`]), [`ToolError::Backend`] for libgit2
    /// failures.
    pub fn from_bundle(
        bundle_file: &Path,
        cache_root: &Path,
        tenant: TenantId,
    ) -> Result<Self, ToolError> {
        let (_, refs, pack_offset) = read_bundle_header(bundle_file)?;
        let size = std::fs::metadata(bundle_file)
            .map_err(|e| ToolError::io(bundle_file, &e))?
            .len();
        if size.saturating_sub(pack_offset) > MAX_BUNDLE_PACK_BYTES {
            return Err(bundle_parse(
                bundle_file,
                &format!(
                    "the pack is {} MiB; the limit is {} MiB",
                    size.saturating_sub(pack_offset) / (1024 * 1024),
                    MAX_BUNDLE_PACK_BYTES / (1024 * 1024)
                ),
            ));
        }
        let digest = sha256_file(bundle_file)?;
        let cache_root = &tenant_dir(cache_root, &tenant);
        create_private_dir(cache_root)?;
        let path = cache_root.join(format!("{digest}.git"));
        if !path.join("HEAD").is_file() {
            // Unpack next to the target and rename, so concurrent processes
            // never see a half-written repository.
            let tmp = cache_root.join(format!(
                ".tmp-{}-{}",
                std::process::id(),
                uuid::Uuid::now_v7().simple()
            ));
            let result = unpack_bundle(bundle_file, pack_offset, &refs, &tmp);
            if let Err(e) = result {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
            if std::fs::rename(&tmp, &path).is_err() {
                // Another process won the race; its copy is identical.
                let _ = std::fs::remove_dir_all(&tmp);
                if !path.join("HEAD").is_file() {
                    return Err(ToolError::Io {
                        path: path.display().to_string(),
                        message: "could not move the unpacked bundle into place".to_owned(),
                    });
                }
            }
        }
        Ok(Self {
            path,
            tenant,
            origin: GitOrigin::Bundle(bundle_file.to_owned()),
        })
    }

    /// Uses an existing repository (bare or with a work tree) in place.
    ///
    /// # Errors
    /// [`ToolError::NotFound`] when `path` is not a git repository.
    pub fn open_local(path: &Path, tenant: TenantId) -> Result<Self, ToolError> {
        git2::Repository::open(path).map_err(|e| ToolError::NotFound {
            what: "git repository".to_owned(),
            value: format!("{} ({})", path.display(), e.message()),
        })?;
        Ok(Self {
            path: path.to_owned(),
            tenant,
            origin: GitOrigin::Local(path.to_owned()),
        })
    }

    /// Clones `url` bare into `cache_root` (or reuses the clone there) and
    /// fetches it once.
    ///
    /// # Errors
    /// [`ToolError::Backend`] when the clone or fetch fails.
    pub fn clone_remote(
        url: &str,
        credentials: Option<(String, SecretString)>,
        cache_root: &Path,
        tenant: TenantId,
    ) -> Result<Self, ToolError> {
        let cache_root = &tenant_dir(cache_root, &tenant);
        create_private_dir(cache_root)?;
        let path = cache_root.join(format!(
            "{}-{}.git",
            sanitize(url.rsplit('/').next().unwrap_or("repo")),
            &sha256_hex(url.as_bytes())[..32]
        ));
        if !path.join("HEAD").is_file() {
            std::fs::create_dir_all(&path).map_err(|e| ToolError::io(&path, &e))?;
            git2::Repository::init_bare(&path).map_err(git_err)?;
        }
        let repo = Self {
            path,
            tenant,
            origin: GitOrigin::Remote {
                url: SecretString::from(url.to_owned()),
                credentials,
            },
        };
        repo.fetch()?;
        Ok(repo)
    }

    /// The repository directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tenant whose code this is.
    #[must_use]
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// Where it came from.
    #[must_use]
    pub fn origin(&self) -> &GitOrigin {
        &self.origin
    }

    /// Opens the repository for one operation.
    ///
    /// # Errors
    /// [`ToolError::Backend`] when it cannot be opened.
    pub fn open(&self) -> Result<git2::Repository, ToolError> {
        git2::Repository::open(&self.path).map_err(git_err)
    }

    /// Fetches every branch and tag from the remote (a no-op for bundles and
    /// local repositories). Blocking: call from `spawn_blocking`.
    ///
    /// # Errors
    /// [`ToolError::Backend`] when the fetch fails.
    pub fn fetch(&self) -> Result<(), ToolError> {
        let GitOrigin::Remote { url, credentials } = &self.origin else {
            return Ok(());
        };
        let url = url.expose_secret();
        let repo = self.open()?;
        let mut remote = repo.remote_anonymous(url).map_err(git_err)?;
        let mut callbacks = git2::RemoteCallbacks::new();
        if let Some((user, token)) = credentials.clone() {
            callbacks.credentials(move |_, _, _| {
                git2::Cred::userpass_plaintext(&user, token.expose_secret())
            });
        }
        let mut opts = git2::FetchOptions::new();
        opts.remote_callbacks(callbacks);
        opts.download_tags(git2::AutotagOption::All);
        remote
            .fetch(
                &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
                Some(&mut opts),
                None,
            )
            .map_err(|e| {
                ToolError::backend(
                    SOURCE,
                    format!(
                        "fetching {url} failed: {}; check the URL and credentials",
                        e.message()
                    ),
                    true,
                )
            })?;
        // Point HEAD at the default branch if it does not resolve yet.
        if repo.head().is_err() {
            for candidate in ["refs/heads/main", "refs/heads/master"] {
                if repo.find_reference(candidate).is_ok() {
                    repo.set_head(candidate).map_err(git_err)?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Fetches every `interval` until `token` is cancelled; failures are
    /// logged and retried at the next tick (the clone keeps serving the
    /// last fetched state).
    pub fn spawn_periodic_fetch(
        self: Arc<Self>,
        interval: Duration,
        token: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await; // the first tick is immediate; the clone just fetched
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    _ = ticker.tick() => {
                        let repo = Arc::clone(&self);
                        match tokio::task::spawn_blocking(move || repo.fetch()).await {
                            Ok(Ok(())) => tracing::debug!(path = %self.path.display(), "fetched"),
                            Ok(Err(e)) => tracing::warn!(error = %e, "periodic git fetch failed"),
                            Err(e) => tracing::warn!(error = %e, "periodic git fetch panicked"),
                        }
                    }
                }
            }
        })
    }
}

/// A libgit2 error as a backend error.
pub(crate) fn git_err(e: git2::Error) -> ToolError {
    ToolError::backend(SOURCE, e.message().to_owned(), false)
}

/// Header text, refs (oid, name) and the byte offset where the pack starts.
type BundleHeader = (String, Vec<(git2::Oid, String)>, u64);

fn read_bundle_header(path: &Path) -> Result<BundleHeader, ToolError> {
    let file = std::fs::File::open(path).map_err(|e| ToolError::io(path, &e))?;
    let mut reader = std::io::BufReader::new(file);
    let mut header = String::new();
    let mut refs = Vec::new();
    let mut offset = 0u64;
    let mut first = true;
    loop {
        let mut line = Vec::new();
        let n = (&mut reader)
            .take(MAX_BUNDLE_HEADER_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| ToolError::io(path, &e))?;
        if n > MAX_BUNDLE_HEADER_LINE {
            return Err(bundle_parse(
                path,
                &format!("a header line is longer than {MAX_BUNDLE_HEADER_LINE} bytes"),
            ));
        }
        if offset + n as u64 > MAX_BUNDLE_HEADER_BYTES {
            return Err(bundle_parse(
                path,
                &format!(
                    "the header is longer than {} MiB",
                    MAX_BUNDLE_HEADER_BYTES / (1024 * 1024)
                ),
            ));
        }
        if n == 0 {
            return Err(bundle_parse(
                path,
                "the header does not end with a blank line",
            ));
        }
        offset += n as u64;
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches('\n')
            .to_owned();
        if first {
            if text != "# v2 git bundle" && text != "# v3 git bundle" {
                return Err(bundle_parse(
                    path,
                    "missing the `# v2 git bundle` signature",
                ));
            }
            first = false;
        } else if text.is_empty() {
            break;
        } else if text.starts_with('-') {
            return Err(bundle_parse(
                path,
                "the bundle has prerequisite commits (a thin bundle); create it with `git bundle create repo.bundle --all`",
            ));
        } else if !text.starts_with('@') {
            let (oid, name) = text
                .split_once(' ')
                .ok_or_else(|| bundle_parse(path, "a ref line has no name"))?;
            let oid = git2::Oid::from_str(oid).map_err(|e| bundle_parse(path, e.message()))?;
            refs.push((oid, name.to_owned()));
        }
        header.push_str(&text);
        header.push('\n');
    }
    Ok((header, refs, offset))
}

fn bundle_parse(path: &Path, message: &str) -> ToolError {
    ToolError::Parse {
        what: format!("git bundle {}", path.display()),
        message: message.to_owned(),
    }
}

fn unpack_bundle(
    bundle_file: &Path,
    pack_offset: u64,
    refs: &[(git2::Oid, String)],
    dest: &Path,
) -> Result<(), ToolError> {
    use std::io::{Seek, SeekFrom};
    let repo = git2::Repository::init_bare(dest).map_err(git_err)?;
    {
        let odb = repo.odb().map_err(git_err)?;
        let mut writer = odb.packwriter().map_err(git_err)?;
        let mut file =
            std::fs::File::open(bundle_file).map_err(|e| ToolError::io(bundle_file, &e))?;
        file.seek(SeekFrom::Start(pack_offset))
            .map_err(|e| ToolError::io(bundle_file, &e))?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| ToolError::io(bundle_file, &e))?;
            if n == 0 {
                break;
            }
            writer
                .write_all(&buf[..n])
                .map_err(|e| ToolError::io(bundle_file, &e))?;
        }
        writer.commit().map_err(git_err)?;
    }
    let mut head_target = None;
    for (oid, name) in refs {
        if name == "HEAD" {
            head_target = Some(*oid);
            continue;
        }
        repo.reference(name, *oid, true, "unpacked from bundle")
            .map_err(git_err)?;
    }
    // HEAD: the branch the bundle's HEAD points at, else main/master.
    let head_branch = refs
        .iter()
        .filter(|(_, n)| n.starts_with("refs/heads/"))
        .find(|(oid, _)| Some(*oid) == head_target)
        .or_else(|| {
            refs.iter()
                .find(|(_, n)| n == "refs/heads/main" || n == "refs/heads/master")
        })
        .or_else(|| refs.iter().find(|(_, n)| n.starts_with("refs/heads/")))
        .map(|(_, n)| n.clone());
    if let Some(branch) = head_branch {
        repo.set_head(&branch).map_err(git_err)?;
    } else if let Some(oid) = head_target {
        repo.set_head_detached(oid).map_err(git_err)?;
    }
    Ok(())
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// SHA-256 of a file's content, streamed.
fn sha256_file(path: &Path) -> Result<String, ToolError> {
    use sha2::Digest;
    let mut file = std::fs::File::open(path).map_err(|e| ToolError::io(path, &e))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(|e| ToolError::io(path, &e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// The tenant's own directory under the cache root: its readable name plus
/// a hash of the exact id, so ids that sanitize alike never share it.
fn tenant_dir(cache_root: &Path, tenant: &TenantId) -> PathBuf {
    cache_root.join(format!(
        "{}-{}",
        sanitize(tenant.as_str()),
        &sha256_hex(tenant.as_str().as_bytes())[..16]
    ))
}

/// Creates `dir` (and its parents) readable by the owner only, so another
/// local user cannot read or plant an unpacked repository in a shared
/// temporary directory.
fn create_private_dir(dir: &Path) -> Result<(), ToolError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| ToolError::io(dir, &e))
}

impl GitRepository {
    /// Every commit reachable from a branch or tag, newest first, with its
    /// changed files and unified diff against its first parent (as `git log
    /// --name-only` and `git show` print them; merges carry neither, as there),
    /// at most `max`: the input of the change-suspect ranking.
    ///
    /// # Errors
    /// [`ToolError`] when the repository cannot be read.
    pub fn commit_history(&self, max: usize) -> Result<Vec<CommitInfo>, ToolError> {
        self.walk_commits(max).map_err(git_err)
    }

    fn walk_commits(&self, max: usize) -> Result<Vec<CommitInfo>, git2::Error> {
        let r = git2::Repository::open(self.path())?;
        let mut walk = r.revwalk()?;
        walk.set_sorting(git2::Sort::TIME)?;
        for reference in r.references()?.flatten() {
            if let Ok(c) = reference.peel_to_commit() {
                walk.push(c.id())?;
            }
        }
        let mut out = Vec::new();
        for oid in walk.take(max) {
            let commit = r.find_commit(oid?)?;
            let mut files = Vec::new();
            let mut diff_text = String::new();
            if commit.parent_count() <= 1 {
                let tree = commit.tree()?;
                let parent_tree = match commit.parent(0) {
                    Ok(p) => Some(p.tree()?),
                    Err(_) => None,
                };
                let diff = r.diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), None)?;
                for delta in diff.deltas() {
                    if let Some(p) = delta.new_file().path().or_else(|| delta.old_file().path()) {
                        files.push(p.display().to_string());
                    }
                }
                diff.print(git2::DiffFormat::Patch, |_, _, line| {
                    // Bounded: a vendored or generated file must not pull
                    // megabytes of diff into memory and into the ranking.
                    if diff_text.len() >= MAX_COMMIT_DIFF_BYTES {
                        return true;
                    }
                    if matches!(line.origin(), '+' | '-' | ' ') {
                        diff_text.push(line.origin());
                    }
                    diff_text.push_str(&String::from_utf8_lossy(line.content()));
                    true
                })?;
            }
            out.push(CommitInfo {
                id: commit.id().to_string(),
                time_ms: commit.committer().when().seconds() * 1000,
                author: commit.author().name().unwrap_or("").to_owned(),
                message: commit.message().unwrap_or("").trim().to_owned(),
                parents: commit.parent_ids().map(|p| p.to_string()).collect(),
                files,
                diff: diff_text,
            });
        }
        Ok(out)
    }
}
