//! `git_log`, `git_show` and `git_blame` over a [`GitRepository`].
//!
//! Each returns the `git` command that reproduces it. Work runs in
//! `spawn_blocking` (libgit2 is synchronous); the registry's timeout still
//! bounds what the agent waits for.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::repo::{GitRepository, git_err};
use crate::context::ToolContext;
use crate::error::ToolError;
use crate::tool::{ToolOutput, TypedTool};

/// Default look-back of `git_log` before the incident window: the change
/// that breaks production is often released days after it was committed.
pub const DEFAULT_LOOKBACK_DAYS: i64 = 14;
/// Commits walked at most per `git_log` call.
const MAX_WALK: usize = 20_000;

fn time_of(t: git2::Time) -> DateTime<Utc> {
    Utc.timestamp_opt(t.seconds(), 0)
        .single()
        .unwrap_or_default()
}

fn short(oid: git2::Oid) -> String {
    oid.to_string().chars().take(10).collect()
}

/// Tag and branch names by the commit they point at.
fn refs_by_commit(repo: &git2::Repository) -> HashMap<git2::Oid, Vec<String>> {
    let mut map: HashMap<git2::Oid, Vec<String>> = HashMap::new();
    if let Ok(refs) = repo.references() {
        for r in refs.flatten() {
            let Ok(name) = r.shorthand().map(str::to_owned) else {
                continue;
            };
            if let Ok(commit) = r.peel_to_commit() {
                map.entry(commit.id()).or_default().push(name);
            }
        }
    }
    for names in map.values_mut() {
        names.sort();
    }
    map
}

/// Files a commit changed against its first parent, with line counts.
fn changed_files(
    repo: &git2::Repository,
    commit: &git2::Commit<'_>,
    pathspec: Option<&str>,
) -> Result<Vec<Value>, ToolError> {
    let tree = commit.tree().map_err(git_err)?;
    let parent_tree = match commit.parent(0) {
        Ok(p) => Some(p.tree().map_err(git_err)?),
        Err(_) => None,
    };
    let mut opts = git2::DiffOptions::new();
    if let Some(p) = pathspec {
        opts.pathspec(p);
    }
    let diff = repo
        .diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), Some(&mut opts))
        .map_err(git_err)?;
    let mut files = Vec::new();
    for (i, delta) in diff.deltas().enumerate() {
        let path = delta
            .new_file()
            .path()
            .or_else(|| delta.old_file().path())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let (adds, dels) = git2::Patch::from_diff(&diff, i)
            .ok()
            .flatten()
            .and_then(|p| p.line_stats().ok())
            .map_or((0, 0), |(_, a, d)| (a, d));
        files.push(json!({
            "path": path,
            "status": status_name(delta.status()),
            "additions": adds,
            "deletions": dels,
        }));
    }
    Ok(files)
}

fn status_name(s: git2::Delta) -> &'static str {
    match s {
        git2::Delta::Added => "added",
        git2::Delta::Deleted => "deleted",
        git2::Delta::Modified => "modified",
        git2::Delta::Renamed => "renamed",
        git2::Delta::Copied => "copied",
        git2::Delta::Typechange => "typechange",
        _ => "other",
    }
}

fn check_rev(tool: &str, pointer: &str, rev: &str) -> Result<(), ToolError> {
    // A revision is passed to libgit2's parser and shown in a shell command:
    // refuse anything that is not a plain revision expression.
    let ok = !rev.is_empty()
        && !rev.starts_with('-')
        && rev
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-~^@{}:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ToolError::bad_argument(
            tool,
            pointer,
            format!("{rev:?} is not a revision (use a commit id, tag or branch)"),
        ))
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "._/-:@".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ToolError> + Send + 'static,
) -> Result<T, ToolError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ToolError::backend("git", format!("the git task failed: {e}"), false))?
}

// ---------------------------------------------------------------- git_log

/// `git_log`: commits in a time range with the files they changed.
pub struct GitLogTool {
    repo: Arc<GitRepository>,
}

impl GitLogTool {
    /// The tool's name.
    pub const NAME: &'static str = "git_log";
    /// The tool over `repo`.
    #[must_use]
    pub fn new(repo: Arc<GitRepository>) -> Self {
        Self { repo }
    }
}

/// Arguments of `git_log`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitLogArgs {
    /// Commits at or after; default 14 days before the incident window.
    pub start: Option<DateTime<Utc>>,
    /// Commits before; default the end of the incident window.
    pub end: Option<DateTime<Utc>>,
    /// Only commits touching this path (file or directory prefix).
    pub path: Option<String>,
    /// `A..B`: only commits reachable from B and not from A (a release range).
    pub range: Option<String>,
    /// Substring of the author name or e-mail.
    pub author: Option<String>,
    /// Commits to return, newest first.
    pub limit: Option<usize>,
}

#[async_trait]
impl TypedTool for GitLogTool {
    type Args = GitLogArgs;
    fn name(&self) -> &str {
        Self::NAME
    }
    fn description(&self) -> &str {
        "List commits (newest first) committed in a time range, with author, message, the tags \
         and branches pointing at them, and the files each changed with added/deleted line counts. \
         Default range: 14 days before the incident window to its end. Filter by path prefix \
         (e.g. services/cart), author, or a revision range such as cart/v3.6.2..cart/v3.7.0."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "start": {"type": "string", "format": "date-time"},
                "end": {"type": "string", "format": "date-time"},
                "path": {"type": "string", "minLength": 1, "maxLength": 500},
                "range": {"type": "string", "minLength": 3, "maxLength": 200, "description": "A..B"},
                "author": {"type": "string", "minLength": 1, "maxLength": 100},
                "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 30}
            },
            "additionalProperties": false
        })
    }
    async fn run(&self, ctx: &ToolContext, args: GitLogArgs) -> Result<ToolOutput, ToolError> {
        ctx.check_tenant(Self::NAME, self.repo.tenant())?;
        // With an explicit range, the time filter only applies when asked.
        let (start, end) = if args.range.is_some() && args.start.is_none() && args.end.is_none() {
            (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC)
        } else {
            ctx.range_with_lookback(
                Self::NAME,
                args.start,
                args.end,
                Duration::days(DEFAULT_LOOKBACK_DAYS),
            )?
        };
        if let Some(r) = &args.range {
            let (a, b) = r.split_once("..").ok_or_else(|| {
                ToolError::bad_argument(
                    Self::NAME,
                    "/range",
                    format!("{r:?} is not of the form A..B"),
                )
            })?;
            check_rev(Self::NAME, "/range", a)?;
            check_rev(Self::NAME, "/range", b.trim_start_matches('.'))?;
        }
        let limit = args.limit.unwrap_or(30).clamp(1, 200);
        let repo = Arc::clone(&self.repo);
        let a = args.clone();
        let (commits, matched) = blocking(move || git_log(&repo, &a, start, end, limit)).await?;

        let mut cmd = vec!["git log".to_owned()];
        if args.range.is_none() || args.start.is_some() || args.end.is_some() {
            cmd.push(format!("--since={}", start.to_rfc3339()));
            cmd.push(format!("--until={}", end.to_rfc3339()));
        }
        if let Some(a) = &args.author {
            cmd.push(format!("--author={}", shell_quote(a)));
        }
        cmd.push(format!("--max-count={limit} --numstat --date=iso-strict"));
        match &args.range {
            Some(r) => cmd.push(shell_quote(r)),
            None => cmd.push("--all".to_owned()),
        }
        if let Some(p) = &args.path {
            cmd.push(format!("-- {}", shell_quote(p)));
        }
        let returned = commits.len();
        let mut out = ToolOutput::new(
            json!({"matched": matched, "returned": returned, "commits": commits}),
            cmd.join(" "),
            "git",
        );
        if matched == 0 {
            out = out.with_warning(format!("no commits between {start} and {end} match"));
        }
        Ok(out)
    }
}

fn git_log(
    repo: &GitRepository,
    args: &GitLogArgs,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    limit: usize,
) -> Result<(Vec<Value>, usize), ToolError> {
    let r = repo.open()?;
    let tags = refs_by_commit(&r);
    let mut walk = r.revwalk().map_err(git_err)?;
    walk.set_sorting(git2::Sort::TIME).map_err(git_err)?;
    match &args.range {
        Some(range) => walk.push_range(range).map_err(|e| ToolError::NotFound {
            what: "revision range".to_owned(),
            value: format!("{range} ({})", e.message()),
        })?,
        None => {
            // Every branch and tag: a bundle or mirror may hold releases on tags only.
            for reference in r.references().map_err(git_err)?.flatten() {
                if let Ok(c) = reference.peel_to_commit() {
                    walk.push(c.id()).map_err(git_err)?;
                }
            }
            if let Ok(head) = r.head().and_then(|h| h.peel_to_commit()) {
                walk.push(head.id()).map_err(git_err)?;
            }
        }
    }
    let author = args.author.as_deref().map(str::to_lowercase);
    let mut out = Vec::new();
    let mut matched = 0;
    for oid in walk.take(MAX_WALK) {
        let oid = oid.map_err(git_err)?;
        let commit = r.find_commit(oid).map_err(git_err)?;
        let when = time_of(commit.committer().when());
        if when < start || when >= end {
            continue;
        }
        if let Some(a) = &author {
            let sig = commit.author();
            let who = format!("{} {}", sig.name().unwrap_or(""), sig.email().unwrap_or(""))
                .to_lowercase();
            if !who.contains(a.as_str()) {
                continue;
            }
        }
        let files = changed_files(&r, &commit, args.path.as_deref())?;
        if args.path.is_some() && files.is_empty() {
            continue;
        }
        matched += 1;
        if out.len() >= limit {
            continue;
        }
        let message = commit.message().unwrap_or("").trim().to_owned();
        let body: String = message.lines().skip(1).collect::<Vec<_>>().join("\n");
        let mut c = json!({
            "commit": oid.to_string(),
            "short": short(oid),
            "committed_at": when.to_rfc3339(),
            "authored_at": time_of(commit.author().when()).to_rfc3339(),
            "author": commit.author().name().unwrap_or(""),
            "summary": commit.summary().ok().flatten().unwrap_or(""),
            "files": files,
        });
        let body = body.trim();
        if !body.is_empty() {
            c["body"] = json!(body.chars().take(600).collect::<String>());
        }
        if let Some(refs) = tags.get(&oid) {
            c["refs"] = json!(refs);
        }
        if commit.parent_count() > 1 {
            c["merge"] = json!(true);
        }
        out.push(c);
    }
    Ok((out, matched))
}

// ---------------------------------------------------------------- git_show

/// `git_show`: one commit with its diff, capped.
pub struct GitShowTool {
    repo: Arc<GitRepository>,
}

impl GitShowTool {
    /// The tool's name.
    pub const NAME: &'static str = "git_show";
    /// The tool over `repo`.
    #[must_use]
    pub fn new(repo: Arc<GitRepository>) -> Self {
        Self { repo }
    }
}

/// Arguments of `git_show`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitShowArgs {
    /// Commit id (7+ hex digits), tag or branch.
    pub commit: String,
    /// Only the diff of this path (file or directory prefix).
    pub path: Option<String>,
    /// Patch lines to return at most.
    pub max_lines: Option<usize>,
}

#[async_trait]
impl TypedTool for GitShowTool {
    type Args = GitShowArgs;
    fn name(&self) -> &str {
        Self::NAME
    }
    fn description(&self) -> &str {
        "Show one commit: author, dates, full message, refs, changed files with line counts, and \
         the unified diff against its first parent (cut to max_lines, default 400; narrow with \
         path to see one file)."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "commit": {"type": "string", "minLength": 4, "maxLength": 200, "description": "commit id, tag or branch"},
                "path": {"type": "string", "minLength": 1, "maxLength": 500},
                "max_lines": {"type": "integer", "minimum": 10, "maximum": 2000, "default": 400}
            },
            "required": ["commit"],
            "additionalProperties": false
        })
    }
    async fn run(&self, ctx: &ToolContext, args: GitShowArgs) -> Result<ToolOutput, ToolError> {
        ctx.check_tenant(Self::NAME, self.repo.tenant())?;
        check_rev(Self::NAME, "/commit", &args.commit)?;
        let max_lines = args.max_lines.unwrap_or(400).clamp(10, 2000);
        let repo = Arc::clone(&self.repo);
        let a = args.clone();
        let (content, full) = blocking(move || git_show(&repo, &a, max_lines)).await?;
        let mut cmd = format!("git show --stat --patch {full}");
        if let Some(p) = &args.path {
            cmd.push_str(&format!(" -- {}", shell_quote(p)));
        }
        let mut out = ToolOutput::new(content, cmd, "git");
        if out.content["patch_cut"].as_bool() == Some(true) {
            out = out.with_warning(format!(
                "the patch was cut at {max_lines} lines; pass path to see one file"
            ));
        }
        Ok(out)
    }
}

fn resolve_commit<'r>(
    repo: &'r git2::Repository,
    rev: &str,
) -> Result<git2::Commit<'r>, ToolError> {
    repo.revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| ToolError::NotFound {
            what: "commit".to_owned(),
            value: format!("{rev} ({})", e.message()),
        })
}

fn git_show(
    repo: &GitRepository,
    args: &GitShowArgs,
    max_lines: usize,
) -> Result<(Value, String), ToolError> {
    let r = repo.open()?;
    let commit = resolve_commit(&r, &args.commit)?;
    let oid = commit.id();
    let files = changed_files(&r, &commit, args.path.as_deref())?;
    let (patch, total_lines) = patch_text(&r, &commit, args.path.as_deref(), max_lines)?;
    let tags = refs_by_commit(&r);
    let content = json!({
        "commit": oid.to_string(),
        "short": short(oid),
        "author": commit.author().name().unwrap_or(""),
        "authored_at": time_of(commit.author().when()).to_rfc3339(),
        "committed_at": time_of(commit.committer().when()).to_rfc3339(),
        "parents": commit.parent_ids().map(|p| p.to_string()).collect::<Vec<_>>(),
        "refs": tags.get(&oid).cloned().unwrap_or_default(),
        "message": commit.message().unwrap_or("").trim().chars().take(4000).collect::<String>(),
        "files": files,
        "patch": patch,
        "patch_lines": total_lines,
        "patch_cut": total_lines > max_lines,
    });
    Ok((content, oid.to_string()))
}

/// The unified diff against the first parent, cut to `max_lines`; returns
/// the text and the full line count.
fn patch_text(
    repo: &git2::Repository,
    commit: &git2::Commit<'_>,
    pathspec: Option<&str>,
    max_lines: usize,
) -> Result<(String, usize), ToolError> {
    let tree = commit.tree().map_err(git_err)?;
    let parent_tree = match commit.parent(0) {
        Ok(p) => Some(p.tree().map_err(git_err)?),
        Err(_) => None,
    };
    let mut opts = git2::DiffOptions::new();
    opts.context_lines(3);
    if let Some(p) = pathspec {
        opts.pathspec(p);
    }
    let diff = repo
        .diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), Some(&mut opts))
        .map_err(git_err)?;
    let mut text = String::new();
    let mut lines = 0usize;
    diff.print(git2::DiffFormat::Patch, |_, _, line| {
        let origin = line.origin();
        let content = String::from_utf8_lossy(line.content());
        // File and hunk headers arrive as one "line" holding several.
        for (i, part) in content.split_inclusive('\n').enumerate() {
            lines += 1;
            if lines <= max_lines {
                if i == 0 && matches!(origin, '+' | '-' | ' ') {
                    text.push(origin);
                }
                text.push_str(part);
            }
        }
        true
    })
    .map_err(git_err)?;
    Ok((text, lines))
}

// ---------------------------------------------------------------- git_blame

/// `git_blame`: who last changed each line of a file range.
pub struct GitBlameTool {
    repo: Arc<GitRepository>,
}

impl GitBlameTool {
    /// The tool's name.
    pub const NAME: &'static str = "git_blame";
    /// The tool over `repo`.
    #[must_use]
    pub fn new(repo: Arc<GitRepository>) -> Self {
        Self { repo }
    }
}

/// Arguments of `git_blame`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitBlameArgs {
    /// File path in the repository.
    pub path: String,
    /// First line, from 1.
    pub start_line: Option<usize>,
    /// Last line (inclusive).
    pub end_line: Option<usize>,
    /// Revision to blame at; default HEAD.
    pub rev: Option<String>,
}

/// Lines blamed at most per call.
const MAX_BLAME_LINES: usize = 200;

#[async_trait]
impl TypedTool for GitBlameTool {
    type Args = GitBlameArgs;
    fn name(&self) -> &str {
        Self::NAME
    }
    fn description(&self) -> &str {
        "Blame a range of lines of a file (default lines 1-80, at most 200): for each line, the \
         commit that last changed it, its author, date and summary. Use it on the file and lines \
         named in a stack trace to find the change that introduced them."
    }
    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "minLength": 1, "maxLength": 500},
                "start_line": {"type": "integer", "minimum": 1, "default": 1},
                "end_line": {"type": "integer", "minimum": 1},
                "rev": {"type": "string", "minLength": 1, "maxLength": 200, "description": "default HEAD"}
            },
            "required": ["path"],
            "additionalProperties": false
        })
    }
    async fn run(&self, ctx: &ToolContext, args: GitBlameArgs) -> Result<ToolOutput, ToolError> {
        ctx.check_tenant(Self::NAME, self.repo.tenant())?;
        if let Some(rev) = &args.rev {
            check_rev(Self::NAME, "/rev", rev)?;
        }
        let start = args.start_line.unwrap_or(1).max(1);
        let end = args.end_line.unwrap_or(start + 79);
        if end < start {
            return Err(ToolError::bad_argument(
                Self::NAME,
                "/end_line",
                format!("end_line {end} is before start_line {start}"),
            ));
        }
        let end = end.min(start + MAX_BLAME_LINES - 1);
        let repo = Arc::clone(&self.repo);
        let a = args.clone();
        let (content, rev_id) = blocking(move || git_blame(&repo, &a, start, end)).await?;
        let cmd = format!(
            "git blame -L {start},{} {rev_id} -- {}",
            content["end_line"],
            shell_quote(&args.path)
        );
        Ok(ToolOutput::new(content, cmd, "git"))
    }
}

fn git_blame(
    repo: &GitRepository,
    args: &GitBlameArgs,
    start: usize,
    end: usize,
) -> Result<(Value, String), ToolError> {
    let r = repo.open()?;
    let rev = args.rev.as_deref().unwrap_or("HEAD");
    let commit = resolve_commit(&r, rev)?;
    let tree = commit.tree().map_err(git_err)?;
    let entry = tree
        .get_path(std::path::Path::new(&args.path))
        .map_err(|_| ToolError::NotFound {
            what: "file".to_owned(),
            value: format!("{} at {rev}", args.path),
        })?;
    let blob = r.find_blob(entry.id()).map_err(|_| ToolError::NotFound {
        what: "file".to_owned(),
        value: format!("{} at {rev} is not a file", args.path),
    })?;
    let text = String::from_utf8_lossy(blob.content()).into_owned();
    let file_lines: Vec<&str> = text.lines().collect();
    if start > file_lines.len() {
        return Err(ToolError::bad_argument(
            GitBlameTool::NAME,
            "/start_line",
            format!(
                "{} has {} lines; start_line {start} is past the end",
                args.path,
                file_lines.len()
            ),
        ));
    }
    let end = end.min(file_lines.len());
    let mut opts = git2::BlameOptions::new();
    opts.newest_commit(commit.id())
        .min_line(start)
        .max_line(end);
    let blame = r
        .blame_file(std::path::Path::new(&args.path), Some(&mut opts))
        .map_err(git_err)?;
    let mut commits: HashMap<git2::Oid, Value> = HashMap::new();
    let mut lines = Vec::new();
    let mut hunks = Vec::new();
    for hunk in blame.iter() {
        let oid = hunk.final_commit_id();
        let first = hunk.final_start_line();
        let last = first + hunk.lines_in_hunk() - 1;
        if let std::collections::hash_map::Entry::Vacant(slot) = commits.entry(oid) {
            let info = match r.find_commit(oid) {
                Ok(c) => json!({
                    "commit": short(oid),
                    "author": c.author().name().unwrap_or(""),
                    "committed_at": time_of(c.committer().when()).to_rfc3339(),
                    "summary": c.summary().ok().flatten().unwrap_or(""),
                }),
                Err(_) => json!({"commit": short(oid)}),
            };
            slot.insert(info);
        }
        hunks.push(json!({"lines": format!("{first}-{last}"), "commit": short(oid)}));
        for n in first.max(start)..=last.min(end) {
            lines.push(json!({
                "line": n,
                "commit": short(oid),
                "text": file_lines.get(n - 1).copied().unwrap_or(""),
            }));
        }
    }
    let mut commit_list: Vec<Value> = commits.into_values().collect();
    commit_list.sort_by(|a, b| b["committed_at"].as_str().cmp(&a["committed_at"].as_str()));
    Ok((
        json!({
            "path": args.path,
            "rev": commit.id().to_string(),
            "start_line": start,
            "end_line": end,
            "file_lines": file_lines.len(),
            "commits": commit_list,
            "hunks": hunks,
            "lines": lines,
        }),
        commit.id().to_string(),
    ))
}
