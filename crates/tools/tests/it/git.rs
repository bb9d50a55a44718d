//! `git_log`, `git_show`, `git_blame` and `deploy_history` on repositories
//! built here and on every shared scenario's `repo.bundle`.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rootcause_diagnosis::TenantId;
use rootcause_tools::code::{
    ChangesFile, ChangesHttp, DeployHistoryTool, GitBlameTool, GitLogTool, GitRepository,
    GitShowTool,
};
use rootcause_tools::logs::HttpAuth;
use rootcause_tools::{ToolError, ToolRegistry};
use serde_json::{Value, json};

use crate::{ctx, incident, scenarios};

/// Writes `files` and commits them at `when` (unix seconds) on HEAD.
fn commit(
    repo: &git2::Repository,
    files: &[(&str, &str)],
    msg: &str,
    author: &str,
    when: i64,
) -> git2::Oid {
    let workdir = repo.workdir().unwrap().to_owned();
    let mut index = repo.index().unwrap();
    for (path, content) in files {
        let full = workdir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
        index.add_path(Path::new(path)).unwrap();
    }
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::new(
        author,
        &format!("{}@acme.test", author.to_lowercase()),
        &git2::Time::new(when, 0),
    )
    .unwrap();
    let parents: Vec<git2::Commit<'_>> = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .into_iter()
        .collect();
    let parent_refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &parent_refs)
        .unwrap()
}

const T_A: i64 = 1_772_000_000; // 2026-02-25T06:13:20Z
const T_B: i64 = T_A + 86_400; // a day later
const T_C: i64 = T_A + 2 * 86_400;

fn ten_lines() -> String {
    (1..=10).map(|i| format!("line {i}\n")).collect()
}

/// A repository with three commits: A adds two files, B changes lines 4-5
/// of the service file (tagged cart/v2), C adds a large generated file.
fn build_repo(dir: &Path) -> (git2::Oid, git2::Oid, git2::Oid) {
    let repo = git2::Repository::init(dir).unwrap();
    let a = commit(
        &repo,
        &[
            ("services/cart/Cart.java", &ten_lines()),
            ("README.md", "hello\n"),
        ],
        "cart: initial import",
        "Ana",
        T_A,
    );
    let changed = ten_lines()
        .replace("line 4\n", "line four\n")
        .replace("line 5\n", "line five\n");
    let b = commit(
        &repo,
        &[("services/cart/Cart.java", &changed)],
        "cart: rename lines (CART-1)\n\nLonger body text.",
        "Ben",
        T_B,
    );
    let obj = repo.find_object(b, None).unwrap();
    repo.tag_lightweight("cart/v2", &obj, false).unwrap();
    let big: String = (0..3000).map(|i| format!("generated {i}\n")).collect();
    let c = commit(
        &repo,
        &[("services/search/gen.txt", &big)],
        "search: regenerate data",
        "Cleo",
        T_C,
    );
    (a, b, c)
}

fn registry(repo: GitRepository) -> ToolRegistry {
    let repo = Arc::new(repo);
    let mut r = ToolRegistry::default();
    r.register(GitLogTool::new(Arc::clone(&repo))).unwrap();
    r.register(GitShowTool::new(Arc::clone(&repo))).unwrap();
    r.register(GitBlameTool::new(repo)).unwrap();
    r
}

fn shorts(out: &Value) -> Vec<String> {
    out["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["commit"].as_str().unwrap()[..7].to_owned())
        .collect()
}

fn short(oid: git2::Oid) -> String {
    oid.to_string()[..7].to_owned()
}

#[tokio::test]
async fn log_show_and_blame_on_a_repository_built_here() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = build_repo(dir.path());
    let r = registry(GitRepository::open_local(dir.path(), TenantId::new("acme")).unwrap());
    // Window on day C: the default 14-day look-back includes all three.
    let cx = ctx("acme", "2026-02-27T06:00:00Z", "2026-02-27T08:00:00Z");

    let all = r.call(&cx, "git_log", json!({})).await.unwrap();
    assert_eq!(
        shorts(&all.content),
        vec![short(c), short(b), short(a)],
        "newest first"
    );
    let cb = &all.content["commits"][1];
    assert_eq!(cb["author"], "Ben");
    assert_eq!(cb["summary"], "cart: rename lines (CART-1)");
    assert_eq!(cb["body"], "Longer body text.");
    assert_eq!(cb["refs"], json!(["cart/v2"]));
    assert_eq!(
        cb["files"],
        json!([{"path": "services/cart/Cart.java", "status": "modified", "additions": 2, "deletions": 2}])
    );
    assert!(all.query.starts_with("git log --since="), "{}", all.query);

    // Time range: only B.
    let mid = r
        .call(
            &cx,
            "git_log",
            json!({"start": "2026-02-26T00:00:00Z", "end": "2026-02-26T23:59:59Z"}),
        )
        .await
        .unwrap();
    assert_eq!(shorts(&mid.content), vec![short(b)]);
    // Path prefix: the cart commits.
    let cart = r
        .call(&cx, "git_log", json!({"path": "services/cart"}))
        .await
        .unwrap();
    assert_eq!(shorts(&cart.content), vec![short(b), short(a)]);
    assert!(cart.query.ends_with("-- services/cart"));
    // Author and revision range.
    let by_cleo = r
        .call(&cx, "git_log", json!({"author": "cleo"}))
        .await
        .unwrap();
    assert_eq!(shorts(&by_cleo.content), vec![short(c)]);
    let release = r
        .call(
            &cx,
            "git_log",
            json!({"range": format!("{}..cart/v2", short(a))}),
        )
        .await
        .unwrap();
    assert_eq!(shorts(&release.content), vec![short(b)]);
    // Limit counts all matches but returns the newest.
    let one = r.call(&cx, "git_log", json!({"limit": 1})).await.unwrap();
    assert_eq!(
        (
            one.content["matched"].as_u64(),
            one.content["returned"].as_u64()
        ),
        (Some(3), Some(1))
    );

    // show: the diff of B, by tag.
    let show = r
        .call(&cx, "git_show", json!({"commit": "cart/v2"}))
        .await
        .unwrap();
    assert_eq!(show.content["commit"], b.to_string());
    let patch = show.content["patch"].as_str().unwrap();
    assert!(
        patch.contains("-line 4\n") && patch.contains("+line four\n"),
        "{patch}"
    );
    assert_eq!(show.content["patch_cut"], false);
    assert_eq!(show.query, format!("git show --stat --patch {b}"));
    // show: a big diff is cut to max_lines and says so.
    let big = r
        .call(
            &cx,
            "git_show",
            json!({"commit": short(c), "max_lines": 50}),
        )
        .await
        .unwrap();
    assert_eq!(big.content["patch_cut"], true);
    assert!(big.content["patch_lines"].as_u64().unwrap() > 3000);
    assert!(big.content["patch"].as_str().unwrap().lines().count() <= 50);
    assert!(big.warnings.iter().any(|w| w.contains("cut at 50 lines")));
    let missing = r
        .call(&cx, "git_show", json!({"commit": "deadbeef"}))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, ToolError::NotFound { ref what, .. } if what == "commit"),
        "{missing:?}"
    );
    let injected = r
        .call(&cx, "git_show", json!({"commit": "HEAD; rm -rf /"}))
        .await
        .unwrap_err();
    assert!(
        matches!(injected, ToolError::InvalidArguments { .. }),
        "{injected:?}"
    );

    // blame: lines 4-5 come from B, the rest from A.
    let blame = r
        .call(
            &cx,
            "git_blame",
            json!({"path": "services/cart/Cart.java", "start_line": 2, "end_line": 6}),
        )
        .await
        .unwrap();
    let lines = blame.content["lines"].as_array().unwrap();
    let got: Vec<(u64, String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["line"].as_u64().unwrap(),
                l["commit"].as_str().unwrap()[..7].to_owned(),
                l["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (2, short(a), "line 2".to_owned()),
            (3, short(a), "line 3".to_owned()),
            (4, short(b), "line four".to_owned()),
            (5, short(b), "line five".to_owned()),
            (6, short(a), "line 6".to_owned()),
        ]
    );
    assert_eq!(
        blame.query,
        format!("git blame -L 2,6 {c} -- services/cart/Cart.java")
    );
    // Blame at an older revision sees the original lines.
    let old = r
        .call(&cx, "git_blame", json!({"path": "services/cart/Cart.java", "start_line": 4, "end_line": 4, "rev": short(a)}))
        .await
        .unwrap();
    assert_eq!(old.content["lines"][0]["text"], "line 4");
    let past_end = r
        .call(
            &cx,
            "git_blame",
            json!({"path": "services/cart/Cart.java", "start_line": 40}),
        )
        .await
        .unwrap_err();
    assert!(past_end.to_string().contains("10 lines"), "{past_end}");
    let no_file = r
        .call(&cx, "git_blame", json!({"path": "nope.txt"}))
        .await
        .unwrap_err();
    assert!(matches!(no_file, ToolError::NotFound { .. }));

    // Another tenant cannot read this repository.
    let other = ctx("globex", "2026-02-27T06:00:00Z", "2026-02-27T08:00:00Z");
    let denied = r.call(&other, "git_log", json!({})).await.unwrap_err();
    assert!(
        matches!(denied, ToolError::TenantMismatch { .. }),
        "{denied:?}"
    );
}

#[tokio::test]
async fn a_remote_is_cloned_and_fetched_on_a_schedule() {
    let src = tempfile::tempdir().unwrap();
    let (_, _, c) = build_repo(src.path());
    let cache = tempfile::tempdir().unwrap();
    let url = src.path().to_str().unwrap().to_owned();
    let repo = Arc::new(
        GitRepository::clone_remote(&url, None, cache.path(), TenantId::new("acme")).unwrap(),
    );
    let r = {
        let mut r = ToolRegistry::default();
        r.register(GitLogTool::new(Arc::clone(&repo))).unwrap();
        r
    };
    let cx = ctx("acme", "2026-02-27T06:00:00Z", "2026-03-01T08:00:00Z");
    let before = r.call(&cx, "git_log", json!({})).await.unwrap();
    assert_eq!(shorts(&before.content)[0], short(c));
    assert!(
        before.content["commits"][1]["refs"]
            .as_array()
            .unwrap()
            .contains(&json!("cart/v2")),
        "tags are fetched"
    );

    // A new commit upstream appears after the next scheduled fetch.
    let upstream = git2::Repository::open(src.path()).unwrap();
    let d = commit(
        &upstream,
        &[("services/cart/Cart.java", "rewritten\n")],
        "cart: rewrite",
        "Dee",
        T_C + 3600,
    );
    let token = tokio_util::sync::CancellationToken::new();
    let task = Arc::clone(&repo).spawn_periodic_fetch(Duration::from_millis(100), token.clone());
    let mut seen = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = r.call(&cx, "git_log", json!({})).await.unwrap();
        if shorts(&now.content)[0] == short(d) {
            seen = true;
            break;
        }
    }
    token.cancel();
    task.await.unwrap();
    assert!(seen, "the scheduled fetch did not bring the new commit");
}

/// Commit ids `git` itself lists for a bundle, when the CLI is installed.
fn cli_commits(bundle: &Path, dir: &Path) -> Option<BTreeSet<String>> {
    let clone = Command::new("git")
        .args(["clone", "--quiet", "--mirror"])
        .arg(bundle)
        .arg(dir)
        .status()
        .ok()?;
    if !clone.success() {
        return None;
    }
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(dir)
        .args(["log", "--all", "--format=%H"])
        .output()
        .ok()?;
    Some(
        String::from_utf8(out.stdout)
            .ok()?
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

#[tokio::test]
async fn every_scenario_bundle_unpacks_and_answers() {
    if !crate::shared_has("scenarios") {
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    for dir in scenarios() {
        let bundle = dir.join("repo.bundle");
        if !bundle.is_file() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let repo =
            GitRepository::from_bundle(&bundle, cache.path(), TenantId::new("acme")).unwrap();
        // Unpacking again reuses the cached clone.
        let again =
            GitRepository::from_bundle(&bundle, cache.path(), TenantId::new("acme")).unwrap();
        assert_eq!(repo.path(), again.path());
        let r = registry(repo);
        let inc = incident(&dir);
        let w = inc.window();
        let cx = ctx("acme", &w.start().to_rfc3339(), &w.end().to_rfc3339());

        // The whole history, compared with what git itself sees.
        let all = r
            .call(&cx, "git_log", json!({"start": "1970-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z", "limit": 200}))
            .await
            .unwrap();
        let ours: BTreeSet<String> = all.content["commits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["commit"].as_str().unwrap().to_owned())
            .collect();
        assert!(ours.len() >= 5, "{name}: only {} commits", ours.len());
        assert_eq!(
            all.content["matched"].as_u64().unwrap() as usize,
            ours.len(),
            "{name}: raise the limit"
        );
        let mirror = tempfile::tempdir().unwrap();
        if let Some(theirs) = cli_commits(&bundle, &mirror.path().join("m.git")) {
            assert_eq!(ours, theirs, "{name}: git_log and git disagree");
        }
        // Default range: the look-back before the window holds commits.
        let recent = r.call(&cx, "git_log", json!({})).await.unwrap();
        assert!(
            recent.content["matched"].as_u64().unwrap() > 0,
            "{name}: no commits in the default range"
        );

        // Every deploy in changes.jsonl names a commit git_show resolves,
        // and blame works on a file that commit touched.
        let changes = std::fs::read_to_string(dir.join("changes.jsonl")).unwrap_or_default();
        let mut deploys = 0;
        for line in changes.lines().filter(|l| !l.trim().is_empty()) {
            let ch: Value = serde_json::from_str(line).unwrap();
            let Some(sha) = ch["commit"].as_str() else {
                continue;
            };
            deploys += 1;
            let show = r
                .call(&cx, "git_show", json!({"commit": sha}))
                .await
                .unwrap();
            assert!(
                show.content["commit"].as_str().unwrap().starts_with(sha),
                "{name}: {sha}"
            );
            let files = show.content["files"].as_array().unwrap();
            if let Some(f) = files.iter().find(|f| f["status"] != "deleted") {
                let path = f["path"].as_str().unwrap();
                let blame = r
                    .call(
                        &cx,
                        "git_blame",
                        json!({"path": path, "rev": sha, "start_line": 1, "end_line": 5}),
                    )
                    .await
                    .unwrap();
                assert!(
                    !blame.content["lines"].as_array().unwrap().is_empty(),
                    "{name}: blame {path}@{sha}"
                );
            }
        }
        assert!(deploys > 0, "{name}: no deploy commits in changes.jsonl");
    }
}

#[tokio::test]
async fn deploy_history_reads_changes_newest_first() {
    if !crate::shared_has("scenarios") {
        return;
    }
    let dir = crate::scenario("cart-errors-after-release");
    let mut r = ToolRegistry::default();
    r.register(DeployHistoryTool::new(ChangesFile::new(
        dir.join("changes.jsonl"),
        TenantId::new("acme"),
    )))
    .unwrap();
    let inc = incident(&dir);
    let cx = ctx(
        "acme",
        &inc.window().start().to_rfc3339(),
        &inc.window().end().to_rfc3339(),
    );
    // Default: 24 h before the window (14:14) to its end.
    let out = r.call(&cx, "deploy_history", json!({})).await.unwrap();
    let ts: Vec<&str> = out.content["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ts"].as_str().unwrap())
        .collect();
    assert_eq!(
        ts,
        vec![
            "2026-02-10T14:08:52Z",
            "2026-02-10T14:01:05Z",
            "2026-02-10T13:52:14Z"
        ]
    );
    assert_eq!(out.content["changes"][0]["version"], "v3.7.0");
    assert_eq!(out.content["changes"][0]["minutes_before_window"], 5);
    let deploys = r
        .call(
            &cx,
            "deploy_history",
            json!({"kinds": ["deploy"], "service": "cart", "start": "2026-01-01T00:00:00Z"}),
        )
        .await
        .unwrap();
    assert_eq!(deploys.content["matched"], 2);
    assert!(deploys.query.contains("service == \"cart\""));

    let mut absent = ToolRegistry::default();
    absent
        .register(DeployHistoryTool::new(ChangesFile::new(
            dir.join("no-such.jsonl"),
            TenantId::new("acme"),
        )))
        .unwrap();
    let empty = absent.call(&cx, "deploy_history", json!({})).await.unwrap();
    assert_eq!(empty.content["matched"], 0);
    assert!(
        empty.warnings[0].contains("no change data"),
        "{:?}",
        empty.warnings
    );
}

#[tokio::test]
async fn deploy_history_from_an_http_source() {
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/changes"))
        .and(query_param("tenant", "acme"))
        .and(query_param("since", "2026-03-01T14:00:00Z"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"ts": "2026-03-02T13:58:40Z", "service": "checkout", "kind": "deploy", "version": "v2.14.0", "commit": "9c1e2ab", "description": "deploy checkout v2.14.0"},
            {"ts": "2026-03-02T13:30:00Z", "service": "checkout", "kind": "flag", "description": "express on"},
            {"bogus": true}
        ])))
        .mount(&server)
        .await;
    let src = ChangesHttp::new(
        format!("{}/api/changes", server.uri()).parse().unwrap(),
        HttpAuth::None,
    )
    .unwrap();
    let mut r = ToolRegistry::default();
    r.register(DeployHistoryTool::new(src)).unwrap();
    let cx = ctx("acme", "2026-03-02T14:00:00Z", "2026-03-02T14:30:00Z");
    let out = r.call(&cx, "deploy_history", json!({})).await.unwrap();
    assert_eq!(out.source, "deploy-api");
    assert_eq!(out.content["matched"], 2);
    assert_eq!(out.content["changes"][0]["commit"], "9c1e2ab");
    assert!(out.partial, "the unreadable record is reported");
    assert!(out.query.starts_with("GET http://"));
}

/// A `git bundle` of the repository built here, made with the git CLI;
/// `None` (the test skips) when git is not installed.
fn bundle_of_built_repo(dir: &Path) -> Option<std::path::PathBuf> {
    let work = dir.join("work");
    build_repo(&work);
    let bundle = dir.join("repo.bundle");
    let ok = Command::new("git")
        .arg("-C")
        .arg(&work)
        .args(["bundle", "create"])
        .arg(&bundle)
        .arg("--all")
        .output()
        .ok()?
        .status
        .success();
    ok.then_some(bundle)
}

#[test]
fn bundle_cache_is_keyed_by_content_and_tenant_not_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let Some(bundle) = bundle_of_built_repo(dir.path()) else {
        eprintln!("skipped: the git CLI is not installed");
        return;
    };
    let cache = tempfile::tempdir().unwrap();
    let acme = GitRepository::from_bundle(&bundle, cache.path(), TenantId::new("acme")).unwrap();
    let globex =
        GitRepository::from_bundle(&bundle, cache.path(), TenantId::new("globex")).unwrap();
    assert_ne!(
        acme.path(),
        globex.path(),
        "two tenants share one unpacked repository"
    );
    // The same content under another path is the same cache entry ...
    let copy_dir = dir.path().join("elsewhere");
    std::fs::create_dir_all(&copy_dir).unwrap();
    let copy = copy_dir.join("repo.bundle");
    std::fs::copy(&bundle, &copy).unwrap();
    let again = GitRepository::from_bundle(&copy, cache.path(), TenantId::new("acme")).unwrap();
    assert_eq!(acme.path(), again.path());
    // ... and the name is the content's SHA-256, not a 64-bit hash.
    let name = acme
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(name.len(), 64 + ".git".len(), "{name}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(acme.path().parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the tenant cache directory is readable by others"
        );
    }
}

#[test]
fn bundle_header_line_over_the_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("repo.bundle");
    let mut bytes = b"# v2 git bundle\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'a', 1 << 20));
    bytes.extend_from_slice(b"\n\n");
    std::fs::write(&bundle, bytes).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = GitRepository::from_bundle(&bundle, cache.path(), TenantId::new("acme")).unwrap_err();
    assert!(
        err.to_string().contains("longer than"),
        "unexpected error: {err}"
    );
}

#[test]
fn git_fetch_errors_and_debug_do_not_print_the_url_token() {
    let cache = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 locally: the fetch fails and libgit2's
    // message may quote the URL.
    let url = "http://x-access-token:ghs_Fetch7oken9s3cret@127.0.0.1:9/acme/shop.git";
    let err =
        GitRepository::clone_remote(url, None, cache.path(), TenantId::new("acme")).unwrap_err();
    let shown = format!("{err} {err:?} {}", err.to_model_json());
    assert!(!shown.contains("ghs_Fetch7oken9s3cret"), "{shown}");
    assert!(
        shown.contains("127.0.0.1"),
        "the error still names the server: {shown}"
    );
    let origin = rootcause_tools::code::GitOrigin::Remote {
        url: url.to_owned().into(),
        credentials: None,
    };
    assert!(!format!("{origin:?}").contains("ghs_Fetch7oken9s3cret"));
}
