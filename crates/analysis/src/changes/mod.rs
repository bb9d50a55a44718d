//! Change suspects: which deploy, config change or commit most likely
//! caused the incident.
//!
//! Inputs are plain values: the change log (`changes.jsonl`), commits with
//! their changed files and diffs, and the evidence found so far (stack
//! frames, log tokens, the services whose metrics moved and when). Each
//! suspect gets points for independent reasons, and every reason is kept as
//! a sentence so the ranking can be checked by a person:
//!
//! - **timing**: it took effect before the onset, and close to it (a deploy's
//!   commits take effect when the deploy does, not when they were written);
//!   after the onset it cannot be the cause;
//! - **service**: it changed the service that moved first, another service
//!   that moved, a dependency of one, or a service named in the report;
//! - **overlap**: its changed files are the files in the stack frames (more
//!   when a frame's line is inside a changed hunk), its diff names the
//!   frames' symbols, its text shares rare tokens with the error messages;
//! - **substance**: commits that touch only docs, CI or version files are
//!   unlikely causes; a release commit stands for the commits it ships.
//!
//! A deploy whose commit is known is expanded into the commits it shipped
//! (those since the previous deploy of the same service that touch that
//! service), so the answer names the culprit commit, not the release.
//!
//! ```
//! use rootcause_analysis::changes::{rank_suspects, ChangeRecord, CommitInfo, SuspectEvidence, RankConfig, StackFrame, ServiceOnset};
//!
//! let min = 60_000;
//! let changes = vec![ChangeRecord::new(100 * min, "cart", "deploy", Some("c2c2c2c"), "deploy cart v2")];
//! let commits = vec![
//!     CommitInfo::new("c1c1c1c", 10 * min, "fix imports", &["services/cart/Web.java"], ""),
//!     CommitInfo::new("c2c2c2c", 20 * min, "coupon stacking", &["services/cart/Promo.java"], "@@ -1,2 +1,9 @@\n+ tier.rate()"),
//! ];
//! let evidence = SuspectEvidence {
//!     frames: vec![StackFrame::new("Promo.java", Some(5), Some("Promo.stack"))],
//!     anomalies: vec![ServiceOnset { service: "cart".into(), onset_ms: 103 * min, score: 50.0 }],
//!     ..SuspectEvidence::default()
//! };
//! let ranked = rank_suspects(&changes, &commits, &evidence, &RankConfig::default());
//! assert_eq!(ranked[0].commit.as_deref(), Some("c2c2c2c"));
//! assert!(ranked[0].reasons.iter().any(|r| r.text.contains("Promo.java")));
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One entry of the change log (`changes.jsonl`): the one change record
/// of the workspace. The tools crate's `deploy_history` returns it, the
/// CLI reads bundles into it and the ranking weighs it, so the file format
/// has one reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// When it took effect (RFC 3339 in the file; offsets are honoured).
    pub ts: DateTime<Utc>,
    /// Service it changed.
    pub service: String,
    /// `deploy`, `config`, `flag`, `scale`, `infra` (anything else is kept).
    pub kind: String,
    /// Version deployed, when a deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Commit deployed (full or abbreviated id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

impl ChangeRecord {
    /// When it took effect, Unix ms (the ranking's clock).
    #[must_use]
    pub fn ts_ms(&self) -> i64 {
        self.ts.timestamp_millis()
    }

    /// A record without version (tests and examples); a time outside
    /// chrono's range becomes the Unix epoch.
    #[must_use]
    pub fn new(
        ts_ms: i64,
        service: &str,
        kind: &str,
        commit: Option<&str>,
        description: &str,
    ) -> Self {
        Self {
            ts: DateTime::from_timestamp_millis(ts_ms).unwrap_or_default(),
            service: service.to_owned(),
            kind: kind.to_owned(),
            version: None,
            commit: commit.map(str::to_owned),
            description: description.to_owned(),
        }
    }
}

/// One commit with what it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    /// Full or abbreviated id.
    pub id: String,
    /// Commit time, Unix ms.
    pub time_ms: i64,
    /// Author.
    pub author: String,
    /// Full message.
    pub message: String,
    /// Parent ids; empty when unknown (time order is used instead).
    pub parents: Vec<String>,
    /// Changed paths.
    pub files: Vec<String>,
    /// Unified diff text.
    pub diff: String,
}

impl CommitInfo {
    /// A commit without author or parents (tests and examples).
    #[must_use]
    pub fn new(id: &str, time_ms: i64, message: &str, files: &[&str], diff: &str) -> Self {
        Self {
            id: id.to_owned(),
            time_ms,
            author: String::new(),
            message: message.to_owned(),
            parents: Vec::new(),
            files: files.iter().map(|f| (*f).to_owned()).collect(),
            diff: diff.to_owned(),
        }
    }
}

/// A stack frame from the evidence.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StackFrame {
    /// File name or path as the runtime printed it.
    pub file: String,
    /// Line, when printed.
    pub line: Option<u32>,
    /// Function or `Class.method`.
    pub symbol: Option<String>,
}

impl StackFrame {
    /// A frame.
    #[must_use]
    pub fn new(file: &str, line: Option<u32>, symbol: Option<&str>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            symbol: symbol.map(str::to_owned),
        }
    }
}

/// When a service's metrics moved (from the metric analyzer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceOnset {
    /// Service.
    pub service: String,
    /// Onset, Unix ms.
    pub onset_ms: i64,
    /// Anomaly score.
    pub score: f64,
}

/// The evidence found so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SuspectEvidence {
    /// Stack frames of new errors.
    pub frames: Vec<StackFrame>,
    /// Tokens of new or risen log templates and error messages.
    pub tokens: Vec<String>,
    /// Services whose metrics moved, any order.
    pub anomalies: Vec<ServiceOnset>,
    /// Incident onset; defaults to the earliest anomaly onset.
    pub onset_ms: Option<i64>,
    /// Services named in the report (the symptom).
    pub affected: Vec<String>,
    /// Known `(caller, callee)` edges.
    pub dependencies: Vec<(String, String)>,
}

/// Weights and time constants of the ranking.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RankConfig {
    /// Points for a change right at the onset; they halve every `half_life_ms`.
    pub timing_points: f64,
    /// Half-life of the timing points.
    pub half_life_ms: i64,
    /// A change up to this long after the estimated onset still counts as
    /// before it (onsets are dated to a scrape interval or two).
    pub grace_ms: i64,
    /// Penalty for a change after the onset.
    pub after_onset_penalty: f64,
    /// Points for the service that moved first.
    pub first_mover_points: f64,
    /// Points for a stack frame's file changed by the commit.
    pub file_points: f64,
    /// Extra points when a frame's line is inside a changed hunk.
    pub hunk_points: f64,
    /// Points when the diff names a frame's symbol.
    pub symbol_points: f64,
}

impl Default for RankConfig {
    fn default() -> Self {
        Self {
            timing_points: 40.0,
            half_life_ms: 30 * 60_000,
            grace_ms: 120_000,
            after_onset_penalty: 60.0,
            first_mover_points: 25.0,
            file_points: 30.0,
            hunk_points: 10.0,
            symbol_points: 15.0,
        }
    }
}

/// One reason behind a suspect's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// `timing`, `service`, `overlap`, `substance`.
    pub factor: String,
    /// Points added (negative for penalties).
    pub points: f64,
    /// The reason in words.
    pub text: String,
}

/// A ranked suspect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspect {
    /// Commit id when the suspect is a commit.
    pub commit: Option<String>,
    /// Index into the change log of the change that shipped it or is it.
    pub change: Option<usize>,
    /// Service it changed.
    pub service: String,
    /// What it is, in a few words (`commit 717a18d "..." shipped by deploy cart v3.7.0`).
    pub title: String,
    /// When it took effect; `None` for a commit not known to be deployed.
    pub effective_ms: Option<i64>,
    /// Sum of the reasons' points.
    pub score: f64,
    /// Why, highest contribution first.
    pub reasons: Vec<Reason>,
}

/// Whether two commit ids name the same commit (one may be abbreviated;
/// 7 hex digits at least).
#[must_use]
pub fn same_commit(a: &str, b: &str) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    let n = a.len().min(b.len());
    n >= 7 && a[..n] == b[..n]
}

fn basename(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// Whether a frame's file and a repository path are the same file: equal
/// names, and equal parent directory names when both have one (runtimes
/// print `/app/orders/repository.py` for `services/orders/orders/repository.py`).
fn same_file(frame: &str, path: &str) -> bool {
    let mut f = frame.rsplit(['/', '\\']);
    let mut p = path.rsplit('/');
    if f.next() != p.next() {
        return false;
    }
    match (f.next(), p.next()) {
        (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() => a == b,
        _ => true,
    }
}

/// Whether a changed path belongs to `service`: one of its directories is
/// named after the service (`services/cart/...`, `deploy/k8s/cart/...`).
fn path_in_service(path: &str, service: &str) -> bool {
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop();
    parts.iter().any(|p| p.eq_ignore_ascii_case(service))
}

/// The services a commit touches, among `known`: by path, else by the
/// conventional `service: subject` message prefix.
fn commit_services(c: &CommitInfo, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = known
        .iter()
        .filter(|s| c.files.iter().any(|f| path_in_service(f, s)))
        .cloned()
        .collect();
    if out.is_empty() {
        let subject = c.message.lines().next().unwrap_or("");
        if let Some((prefix, _)) = subject.split_once(':') {
            let prefix = prefix
                .trim()
                .trim_start_matches("k8s(")
                .trim_end_matches(')');
            if let Some(s) = known.iter().find(|s| s.eq_ignore_ascii_case(prefix)) {
                out.insert(s.clone());
            }
        }
    }
    out
}

/// Files that carry no behaviour: docs, CI, version stamps.
fn is_inert_file(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let base = basename(&lower);
    lower.ends_with(".md")
        || lower.starts_with(".github/")
        || lower.starts_with("docs/")
        || base == "version"
        || base == "changelog"
        || base == "license"
}

/// New-file line ranges of each file's hunks in a unified diff.
fn hunks(diff: &str) -> HashMap<String, Vec<(u32, u32)>> {
    let mut out: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in diff.lines() {
        if let Some(p) = line.strip_prefix("+++ ") {
            let p = p.trim().trim_start_matches("b/");
            current = (p != "/dev/null").then(|| p.to_owned());
        } else if let Some(rest) = line.strip_prefix("@@ ") {
            // @@ -a,b +c,d @@
            let Some(plus) = rest.split_whitespace().find(|t| t.starts_with('+')) else {
                continue;
            };
            let mut nums = plus[1..].split(',');
            let start: u32 = nums.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let len: u32 = nums.next().and_then(|n| n.parse().ok()).unwrap_or(1);
            if let Some(f) = &current {
                out.entry(f.clone())
                    .or_default()
                    .push((start, start + len.saturating_sub(1)));
            }
        }
    }
    out
}

/// Identifiers on the changed (`+`/`-`) lines and hunk headers of a diff.
fn diff_identifiers(diff: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    for line in diff.lines() {
        let body = if line.starts_with("+++") || line.starts_with("---") {
            continue;
        } else if let Some(b) = line.strip_prefix('+').or_else(|| line.strip_prefix('-')) {
            b
        } else if line.starts_with("@@") {
            line
        } else {
            continue;
        };
        for tok in body.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if tok.len() >= 3 && !tok.chars().all(|c| c.is_ascii_digit()) {
                out.insert(tok.to_owned());
            }
        }
    }
    out
}

/// The parts of a frame symbol worth looking for in a diff: the method and
/// the class (`com.acme.PromotionResolver.stackedDiscount` gives
/// `stackedDiscount` and `PromotionResolver`).
fn symbol_parts(symbol: &str) -> Vec<String> {
    let parts: Vec<&str> = symbol
        .split(['.', ':', '/', '$', '#'])
        .filter(|p| p.len() >= 3 && !p.starts_with('<'))
        .collect();
    parts
        .iter()
        .rev()
        .take(2)
        .map(|p| (*p).to_owned())
        .collect()
}

fn fmt_minutes(ms: i64) -> String {
    let m = ms.abs() / 60_000;
    if m >= 120 {
        format!("{:.1} h", ms.abs() as f64 / 3_600_000.0)
    } else {
        format!("{m} min")
    }
}

struct Context<'a> {
    cfg: &'a RankConfig,
    onset: Option<i64>,
    /// Service -> rank by onset (0 = first mover).
    onset_rank: HashMap<String, usize>,
    callees_of_moved: HashSet<String>,
    affected: HashSet<String>,
    frames: &'a [StackFrame],
    tokens: HashSet<String>,
}

impl Context<'_> {
    fn timing(&self, at: Option<i64>, reasons: &mut Vec<Reason>) {
        let (Some(onset), Some(at)) = (self.onset, at) else {
            if at.is_none() {
                reasons.push(Reason {
                    factor: "timing".into(),
                    points: 0.0,
                    text: "not known to be deployed".into(),
                });
            }
            return;
        };
        let before = onset - at;
        if before < -self.cfg.grace_ms {
            reasons.push(Reason {
                factor: "timing".into(),
                points: -self.cfg.after_onset_penalty,
                text: format!(
                    "took effect {} after the onset, so it cannot have started it",
                    fmt_minutes(before)
                ),
            });
            return;
        }
        #[expect(clippy::cast_precision_loss, reason = "ms spans fit in f64")]
        let halves = before.max(0) as f64 / self.cfg.half_life_ms as f64;
        let points = self.cfg.timing_points * 0.5f64.powf(halves);
        reasons.push(Reason {
            factor: "timing".into(),
            points,
            text: if before >= 0 {
                format!("took effect {} before the onset", fmt_minutes(before))
            } else {
                "took effect at the onset".into()
            },
        });
    }

    fn service(&self, service: &str, reasons: &mut Vec<Reason>) {
        if let Some(&rank) = self.onset_rank.get(service) {
            #[expect(clippy::cast_precision_loss, reason = "small ranks")]
            let points = self.cfg.first_mover_points / (1.0 + rank as f64);
            reasons.push(Reason {
                factor: "service".into(),
                points,
                text: if rank == 0 {
                    format!("{service} is the first service whose metrics moved")
                } else {
                    format!("{service} is the #{} service whose metrics moved", rank + 1)
                },
            });
        } else if self.callees_of_moved.contains(service) {
            reasons.push(Reason {
                factor: "service".into(),
                points: self.cfg.first_mover_points * 0.4,
                text: format!("{service} is a dependency of a service whose metrics moved"),
            });
        } else if self.affected.contains(service) {
            reasons.push(Reason {
                factor: "service".into(),
                points: self.cfg.first_mover_points * 0.3,
                text: format!("{service} is named in the incident report"),
            });
        }
    }

    fn commit_overlap(&self, c: &CommitInfo, reasons: &mut Vec<Reason>) {
        let hunks = hunks(&c.diff);
        let idents = diff_identifiers(&c.diff);
        let mut files_hit: BTreeSet<String> = BTreeSet::new();
        let mut hunk_hit: Option<String> = None;
        let mut symbols_hit: BTreeSet<String> = BTreeSet::new();
        for f in self.frames {
            let fb = basename(&f.file);
            if fb.is_empty() {
                continue;
            }
            for path in &c.files {
                // Same file: same basename, and when the frame has a
                // directory, the path ends with it.
                if !same_file(&f.file, path) {
                    continue;
                }
                files_hit.insert(fb.to_owned());
                if let (Some(line), Some(ranges)) = (f.line, hunks.get(path.as_str()))
                    && ranges.iter().any(|&(a, b)| line >= a && line <= b)
                {
                    hunk_hit.get_or_insert_with(|| format!("{fb}:{line}"));
                }
            }
            if let Some(sym) = &f.symbol {
                for part in symbol_parts(sym) {
                    if idents.contains(&part) {
                        symbols_hit.insert(part);
                    }
                }
            }
        }
        if !files_hit.is_empty() {
            #[expect(clippy::cast_precision_loss, reason = "small counts")]
            let extra = (files_hit.len() - 1) as f64 * 5.0;
            reasons.push(Reason {
                factor: "overlap".into(),
                points: self.cfg.file_points + extra.min(10.0),
                text: format!(
                    "changes {}, which appear(s) in the stack frames",
                    files_hit.into_iter().collect::<Vec<_>>().join(", ")
                ),
            });
        }
        if let Some(at) = hunk_hit {
            reasons.push(Reason {
                factor: "overlap".into(),
                points: self.cfg.hunk_points,
                text: format!("frame {at} lies inside a hunk this commit changed"),
            });
        }
        if !symbols_hit.is_empty() {
            reasons.push(Reason {
                factor: "overlap".into(),
                points: self.cfg.symbol_points,
                text: format!(
                    "its diff names {} from the stack frames",
                    symbols_hit.into_iter().collect::<Vec<_>>().join(", ")
                ),
            });
        }
        let text_tokens: HashSet<String> = idents
            .iter()
            .map(|t| t.to_ascii_lowercase())
            .chain(words(&c.message))
            .collect();
        self.token_overlap(&text_tokens, reasons);
    }

    fn token_overlap(&self, text_tokens: &HashSet<String>, reasons: &mut Vec<Reason>) {
        let mut shared: Vec<&String> = self
            .tokens
            .iter()
            .filter(|t| text_tokens.contains(*t))
            .collect();
        if shared.is_empty() {
            return;
        }
        shared.sort();
        #[expect(clippy::cast_precision_loss, reason = "small counts")]
        let points = (shared.len() as f64 * 2.0).min(10.0);
        reasons.push(Reason {
            factor: "overlap".into(),
            points,
            text: format!(
                "shares {} with the error messages",
                shared
                    .iter()
                    .take(5)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
}

/// Lower-case words of 4+ letters (identifiers split on non-alphanumerics).
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| w.len() >= 4 && !w.chars().all(|c| c.is_ascii_digit()))
        .map(str::to_ascii_lowercase)
}

/// Words too common in code and logs to link a change to an error.
const COMMON: &[&str] = &[
    "error",
    "exception",
    "failed",
    "failure",
    "request",
    "response",
    "http",
    "https",
    "service",
    "null",
    "true",
    "false",
    "return",
    "java",
    "main",
    "with",
    "from",
    "that",
    "this",
    "import",
    "public",
    "private",
    "class",
    "self",
    "none",
    "info",
    "warn",
    "debug",
    "line",
    "file",
    "time",
    "timeout",
    "caused",
    "value",
    "string",
    "void",
    "final",
    "static",
    "new",
    "para",
    "data",
];

/// Ranks changes and commits as causes; best first.
#[must_use]
pub fn rank_suspects(
    changes: &[ChangeRecord],
    commits: &[CommitInfo],
    evidence: &SuspectEvidence,
    cfg: &RankConfig,
) -> Vec<Suspect> {
    // Services by onset: the first mover is rank 0.
    let mut moved: Vec<&ServiceOnset> = evidence.anomalies.iter().collect();
    moved.sort_by(|a, b| {
        a.onset_ms
            .cmp(&b.onset_ms)
            .then(b.score.total_cmp(&a.score))
    });
    let mut onset_rank: HashMap<String, usize> = HashMap::new();
    for s in &moved {
        let r = onset_rank.len();
        onset_rank.entry(s.service.clone()).or_insert(r);
    }
    let onset = evidence
        .onset_ms
        .or_else(|| moved.first().map(|s| s.onset_ms));
    let moved_set: HashSet<&str> = moved
        .iter()
        .map(|s| s.service.as_str())
        .chain(evidence.affected.iter().map(String::as_str))
        .collect();
    let callees_of_moved: HashSet<String> = evidence
        .dependencies
        .iter()
        .filter(|(caller, _)| moved_set.contains(caller.as_str()))
        .map(|(_, callee)| callee.clone())
        .collect();
    let common: HashSet<&str> = COMMON.iter().copied().collect();
    let tokens: HashSet<String> = evidence
        .tokens
        .iter()
        .flat_map(|t| words(t).collect::<Vec<_>>())
        .filter(|w| !common.contains(w.as_str()))
        .collect();
    let ctx = Context {
        cfg,
        onset,
        onset_rank,
        callees_of_moved,
        affected: evidence.affected.iter().cloned().collect(),
        frames: &evidence.frames,
        tokens,
    };

    let mut known: BTreeSet<String> = changes.iter().map(|c| c.service.clone()).collect();
    known.extend(evidence.anomalies.iter().map(|a| a.service.clone()));
    known.extend(evidence.affected.iter().cloned());
    for (a, b) in &evidence.dependencies {
        known.insert(a.clone());
        known.insert(b.clone());
    }

    let releases = shipped_commits(changes, commits, &known);
    let mut out = Vec::new();
    let mut expanded: HashSet<usize> = HashSet::new();
    for (ci, shipped) in &releases {
        let change = &changes[*ci];
        if shipped.is_empty() {
            continue;
        }
        expanded.insert(*ci);
        let label = change.version.as_deref().map_or_else(
            || change.description.clone(),
            |v| format!("deploy {} {v}", change.service),
        );
        for &k in shipped {
            let c = &commits[k];
            let mut reasons = Vec::new();
            ctx.timing(Some(change.ts_ms()), &mut reasons);
            ctx.service(&change.service, &mut reasons);
            ctx.commit_overlap(c, &mut reasons);
            substance(c, shipped.len(), &mut reasons);
            out.push(finish(Suspect {
                commit: Some(c.id.clone()),
                change: Some(*ci),
                service: change.service.clone(),
                title: format!(
                    "commit {} \"{}\" shipped by {label}",
                    short_commit(&c.id),
                    c.message.lines().next().unwrap_or("")
                ),
                effective_ms: Some(change.ts_ms()),
                score: 0.0,
                reasons,
            }));
        }
    }
    // Changes that were not expanded into commits.
    for (ci, change) in changes.iter().enumerate() {
        if expanded.contains(&ci) {
            continue;
        }
        let mut reasons = Vec::new();
        ctx.timing(Some(change.ts_ms()), &mut reasons);
        ctx.service(&change.service, &mut reasons);
        let text: HashSet<String> = words(&change.description).collect();
        ctx.token_overlap(&text, &mut reasons);
        out.push(finish(Suspect {
            commit: change.commit.clone(),
            change: Some(ci),
            service: change.service.clone(),
            title: format!("{} {}: {}", change.kind, change.service, change.description),
            effective_ms: Some(change.ts_ms()),
            score: 0.0,
            reasons,
        }));
    }
    // Commits not shipped by any known deploy: only their content speaks.
    let shipped_any: HashSet<usize> = releases.values().flat_map(|v| v.iter().copied()).collect();
    for (k, c) in commits.iter().enumerate() {
        if shipped_any.contains(&k)
            || changes.iter().any(|ch| {
                ch.commit
                    .as_deref()
                    .is_some_and(|id| same_commit(id, &c.id))
            })
        {
            continue;
        }
        let mut reasons = Vec::new();
        ctx.timing(None, &mut reasons);
        let services = commit_services(c, &known);
        if let Some(s) = services.iter().next() {
            ctx.service(s, &mut reasons);
        }
        ctx.commit_overlap(c, &mut reasons);
        substance(c, 1, &mut reasons);
        if c.parents.is_empty() && commits.iter().any(|o| !o.parents.is_empty()) {
            reasons.push(Reason {
                factor: "substance".into(),
                points: -30.0,
                text: "the first commit of the history (an import): it added the files, it did not change them".into(),
            });
        }
        out.push(finish(Suspect {
            commit: Some(c.id.clone()),
            change: None,
            service: services.into_iter().next().unwrap_or_default(),
            title: format!(
                "commit {} \"{}\" (no deploy found)",
                short_commit(&c.id),
                c.message.lines().next().unwrap_or("")
            ),
            effective_ms: None,
            score: 0.0,
            reasons,
        }));
    }
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.effective_ms.cmp(&a.effective_ms))
    });
    out
}

/// A commit id as people read it: its first 7 characters, git's default
/// abbreviation and the shortest prefix [`same_commit`] accepts, so a
/// shortened id still matches. Suspect titles, reports and remediation
/// steps all use it (the git tools return 10 characters to models, where
/// a longer prefix stays unique in a large repository).
#[must_use]
pub fn short_commit(id: &str) -> &str {
    id.get(..7).unwrap_or(id)
}

/// More changed files than this make a commit a bulk change.
const BULK_FILES: usize = 50;

fn substance(c: &CommitInfo, release_size: usize, reasons: &mut Vec<Reason>) {
    if c.files.len() > BULK_FILES {
        reasons.push(Reason {
            factor: "substance".into(),
            points: -30.0,
            text: format!(
                "touches {} files: a bulk change (import, mass rename), its overlap with the frames says little",
                c.files.len()
            ),
        });
    }
    if !c.files.is_empty() && c.files.iter().all(|f| is_inert_file(f)) {
        let what = if release_size > 1 {
            "only touches docs, CI or version files (the release stamp; its commits are ranked on their own)"
        } else {
            "only touches docs, CI or version files"
        };
        reasons.push(Reason {
            factor: "substance".into(),
            points: -15.0,
            text: what.into(),
        });
    }
}

fn finish(mut s: Suspect) -> Suspect {
    s.reasons
        .sort_by(|a, b| b.points.abs().total_cmp(&a.points.abs()));
    s.score = s.reasons.iter().map(|r| r.points).sum();
    s
}

/// How far back a deploy without a known previous deploy is taken to reach.
const FIRST_RELEASE_LOOKBACK_MS: i64 = 14 * 24 * 3_600_000;

/// For each deploy whose commit is among `commits`, the commits it shipped:
/// those after the previous deploy of the same service, up to and including
/// the deployed one, that touch the service (all of them when none does).
/// By ancestry when parents are known, else by commit time.
fn shipped_commits(
    changes: &[ChangeRecord],
    commits: &[CommitInfo],
    known: &BTreeSet<String>,
) -> BTreeMap<usize, Vec<usize>> {
    let find = |id: &str| commits.iter().position(|c| same_commit(&c.id, id));
    let have_parents = commits.iter().any(|c| !c.parents.is_empty());
    let ancestors = |start: usize| -> HashSet<usize> {
        let mut seen = HashSet::new();
        let mut stack = vec![start];
        while let Some(k) = stack.pop() {
            if !seen.insert(k) {
                continue;
            }
            for p in &commits[k].parents {
                if let Some(j) = find(p) {
                    stack.push(j);
                }
            }
        }
        seen
    };
    let mut out = BTreeMap::new();
    for (ci, ch) in changes.iter().enumerate() {
        if ch.kind != "deploy" {
            continue;
        }
        let Some(head) = ch.commit.as_deref().and_then(find) else {
            continue;
        };
        // Previous deploy of the same service with a known commit.
        let prev = changes
            .iter()
            .filter(|p| p.kind == "deploy" && p.service == ch.service && p.ts < ch.ts)
            .max_by_key(|p| p.ts)
            .and_then(|p| p.commit.as_deref().and_then(find));
        // Without a previous deploy, look back a bounded time only, and
        // leave out root commits (an initial import ships everything).
        let floor = commits[head].time_ms - FIRST_RELEASE_LOOKBACK_MS;
        let range: Vec<usize> = if have_parents {
            let mut inc = ancestors(head);
            if let Some(p) = prev {
                for a in ancestors(p) {
                    inc.remove(&a);
                }
            } else {
                inc.retain(|&k| {
                    k == head || (commits[k].time_ms >= floor && !commits[k].parents.is_empty())
                });
            }
            inc.into_iter().collect()
        } else {
            let lo = prev.map_or(floor, |p| commits[p].time_ms);
            let hi = commits[head].time_ms;
            (0..commits.len())
                .filter(|&k| commits[k].time_ms > lo && commits[k].time_ms <= hi)
                .collect()
        };
        let mut touching: Vec<usize> = range
            .iter()
            .copied()
            .filter(|&k| k == head || commit_services(&commits[k], known).contains(&ch.service))
            .collect();
        if touching.len() <= 1 {
            touching = range;
        }
        touching.sort_by_key(|&k| std::cmp::Reverse(commits[k].time_ms));
        out.insert(ci, touching);
    }
    out
}

#[cfg(test)]
mod tests {

    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn changes_jsonl_lines_are_change_records() {
        let line = |l: &str| serde_json::from_str::<ChangeRecord>(l);
        let c = line("{\"ts\": \"2026-03-02T13:58:40Z\", \"service\": \"checkout\", \"kind\": \"deploy\", \"version\": \"v2.14.0\", \"commit\": \"9c1e2ab\", \"description\": \"deploy checkout v2.14.0\"}").unwrap();
        assert_eq!(c.ts_ms(), 1_772_459_920_000);
        assert_eq!(c.commit.as_deref(), Some("9c1e2ab"));
        let c =
            line("{\"ts\": \"2026-03-02T14:00:00+01:00\", \"service\": \"x\", \"kind\": \"flag\"}")
                .unwrap();
        assert_eq!(c.ts_ms(), 1_772_456_400_000, "offsets are honoured");
        assert_eq!(c.description, "");
        assert!(line("{\"ts\": \"yesterday\", \"service\": \"x\", \"kind\": \"deploy\"}").is_err());
        assert!(line("{}").is_err());
    }

    #[test]
    fn hunk_ranges_and_identifiers() {
        let diff = "--- a/x/Foo.java\n+++ b/x/Foo.java\n@@ -40,7 +40,24 @@ public class Foo {\n+  int bar = tier.discountRate();\n";
        let h = hunks(diff);
        assert_eq!(h["x/Foo.java"], vec![(40, 63)]);
        let ids = diff_identifiers(diff);
        assert!(ids.contains("discountRate") && ids.contains("Foo"));
    }

    #[test]
    fn frame_files_match_repository_paths() {
        assert!(same_file(
            "PromotionResolver.java",
            "services/cart/src/PromotionResolver.java"
        ));
        assert!(same_file(
            "/app/orders/repository.py",
            "services/orders/orders/repository.py"
        ));
        assert!(!same_file(
            "/app/billing/repository.py",
            "services/orders/orders/repository.py"
        ));
        assert!(!same_file(
            "Other.java",
            "services/cart/src/PromotionResolver.java"
        ));
    }

    #[test]
    fn service_of_paths_and_prefixes() {
        let known: BTreeSet<String> = ["cart", "search"].map(String::from).into();
        let c = CommitInfo::new("a", 0, "x", &["services/cart/src/A.java"], "");
        assert_eq!(commit_services(&c, &known).len(), 1);
        let c = CommitInfo::new("a", 0, "search: tune", &["settings.py"], "");
        assert!(commit_services(&c, &known).contains("search"));
        assert!(
            !path_in_service("cart.txt", "cart"),
            "a file name is not a directory"
        );
    }

    #[test]
    fn change_after_onset_is_penalised() {
        let changes = vec![
            ChangeRecord::new(90 * MIN, "a", "config", None, "raise pool"),
            ChangeRecord::new(110 * MIN, "a", "config", None, "lower pool"),
        ];
        let ev = SuspectEvidence {
            onset_ms: Some(100 * MIN),
            ..SuspectEvidence::default()
        };
        let r = rank_suspects(&changes, &[], &ev, &RankConfig::default());
        assert_eq!(r[0].change, Some(0));
        assert!(r[1].score < 0.0);
        assert!(r[1].reasons[0].text.contains("after the onset"));
    }

    #[test]
    fn closer_change_ranks_higher_and_service_matters() {
        let changes = vec![
            ChangeRecord::new(95 * MIN, "b", "deploy", None, "deploy b"),
            ChangeRecord::new(80 * MIN, "a", "deploy", None, "deploy a"),
            ChangeRecord::new(97 * MIN, "c", "deploy", None, "deploy c"),
        ];
        let ev = SuspectEvidence {
            anomalies: vec![ServiceOnset {
                service: "a".into(),
                onset_ms: 100 * MIN,
                score: 10.0,
            }],
            ..SuspectEvidence::default()
        };
        let r = rank_suspects(&changes, &[], &ev, &RankConfig::default());
        // a moved first: its 25 points outweigh c being 17 minutes closer.
        assert_eq!(r[0].service, "a");
        assert_eq!(r[1].service, "c", "closer than b");
    }

    #[test]
    fn release_expanded_by_ancestry() {
        let mut c0 = CommitInfo::new("0000000a", 0, "cart: old", &["services/cart/A.java"], "");
        let mut c1 = CommitInfo::new("1111111b", MIN, "cart: new", &["services/cart/B.java"], "");
        let mut c2 = CommitInfo::new(
            "2222222c",
            2 * MIN,
            "search: unrelated",
            &["services/search/x.py"],
            "",
        );
        let mut c3 = CommitInfo::new(
            "3333333d",
            3 * MIN,
            "cart: release",
            &["services/cart/VERSION"],
            "",
        );
        c1.parents = vec![c0.id.clone()];
        c2.parents = vec![c1.id.clone()];
        c3.parents = vec![c2.id.clone()];
        c0.parents = vec![];
        let commits = vec![c0, c1, c2, c3];
        let changes = vec![
            ChangeRecord::new(0, "cart", "deploy", Some("0000000a"), "deploy cart v1"),
            ChangeRecord::new(
                10 * MIN,
                "cart",
                "deploy",
                Some("3333333d"),
                "deploy cart v2",
            ),
        ];
        let known: BTreeSet<String> = ["cart", "search"].map(String::from).into();
        let shipped = shipped_commits(&changes, &commits, &known);
        assert_eq!(
            shipped[&1],
            vec![3, 1],
            "cart commits since v1, newest first"
        );
        let ev = SuspectEvidence {
            frames: vec![StackFrame::new("B.java", Some(3), None)],
            onset_ms: Some(11 * MIN),
            ..SuspectEvidence::default()
        };
        let r = rank_suspects(&changes, &commits, &ev, &RankConfig::default());
        assert_eq!(r[0].commit.as_deref(), Some("1111111b"));
        assert!(r[0].title.contains("shipped by deploy cart v2"));
        let release = r
            .iter()
            .find(|s| s.commit.as_deref() == Some("3333333d"))
            .unwrap();
        assert!(release.reasons.iter().any(|x| x.factor == "substance"));
    }
}
