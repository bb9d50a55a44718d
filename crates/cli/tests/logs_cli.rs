//! `rootcause logs parse` and `rootcause logs diff` run as a user runs them:
//! the real binary, real files, stdout and stderr.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::process::{Command, Stdio};

fn rootcause() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rootcause"))
}

fn parse(input: &str, extra: &[&str]) -> (String, String) {
    let mut child = rootcause()
        .args(["logs", "parse", "-"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn parse_writes_final_groups_in_input_order() {
    // Lines 1 and 2 start in different groups (their first token differs and
    // routes them apart); line 3 is the variable form that joins them at the
    // end. Every line must carry the final group, including the first two.
    let input = "alice connected to the primary node\n\
                 bob connected to the primary node\n\
                 42 connected to the primary node\n\
                 cache flushed by operator\n";
    let (out, _) = parse(input, &[]);
    let recs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 4);
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r["line"], i as u64 + 1);
    }
    assert_eq!(recs[0]["template_id"], recs[1]["template_id"]);
    assert_eq!(recs[0]["template_id"], recs[2]["template_id"]);
    assert_eq!(recs[0]["template"], "<*> connected to the primary node");
    assert_ne!(recs[0]["template_id"], recs[3]["template_id"]);
    assert_eq!(recs[3]["template"], "cache flushed by operator");
}

#[test]
fn parse_csv_and_stats() {
    let input = "took 5 ms, \"quoted\"\ntook 7 ms, \"quoted\"\n";
    let (out, err) = parse(input, &["--format", "csv", "--stats", "--threads", "2"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("line,template_id,template"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].starts_with("1,"), "{}", rows[0]);
    assert!(
        rows[0].ends_with(",\"took <*>, \"\"quoted\"\"\""),
        "{}",
        rows[0]
    );
    assert_eq!(rows[0][2..18], rows[1][2..18]);
    assert!(err.contains("lines=2 "), "{err}");
    assert!(err.contains("peak_rss_kib="), "{err}");
}

#[test]
fn parse_reads_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("miner.toml");
    std::fs::write(
        &config,
        "[[masks]]\npattern = \"ORD-[A-Z]+\"\nplaceholder = \"<ORDER>\"\n",
    )
    .unwrap();
    let (out, _) = parse(
        "order ORD-ABC shipped\n",
        &["--config", config.to_str().unwrap()],
    );
    assert!(
        out.contains("\"template\":\"order <ORDER> shipped\""),
        "{out}"
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"similarity": 3}"#).unwrap();
    let out = rootcause()
        .args(["logs", "parse", "--config", bad.to_str().unwrap(), "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("similarity"));
}

#[test]
fn diff_prints_new_error_template_as_json_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = dir.path().join("baseline.jsonl");
    let incident = dir.path().join("incident.jsonl");
    let mut b = String::new();
    for i in 0..50 {
        b += &format!(
            "{{\"@timestamp\":\"2026-02-10T12:{:02}:00Z\",\"log.level\":\"INFO\",\"message\":\"GET /cart/{i} 200\"}}\n",
            i % 60
        );
    }
    std::fs::write(&baseline, b).unwrap();
    let mut inc = String::new();
    for i in 0..20 {
        inc += &format!(
            "{{\"@timestamp\":\"2026-02-10T13:{:02}:00Z\",\"log.level\":\"INFO\",\"message\":\"GET /cart/{i} 200\"}}\n",
            i
        );
        let msg = serde_json::to_string(&format!(
            "Failed for cart {i}\njava.lang.NullPointerException: tier is null\n\tat com.acme.Promo.apply(Promo.java:59)"
        ))
        .unwrap();
        inc += &format!(
            "{{\"@timestamp\":\"2026-02-10T13:{:02}:30Z\",\"log.level\":\"ERROR\",\"message\":{msg}}}\n",
            i
        );
    }
    std::fs::write(&incident, inc).unwrap();
    let args = |json: bool| {
        let mut c = rootcause();
        c.args(["logs", "diff", "--baseline"])
            .arg(&baseline)
            .arg("--incident")
            .arg(&incident);
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let out = args(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = &d["changes"][0];
    assert_eq!(first["kind"], "new");
    assert_eq!(first["level"], "ERROR");
    assert_eq!(first["incident_count"], 20);
    assert_eq!(first["first_seen"], "2026-02-10T13:00:30Z");
    assert_eq!(
        first["exception"]["exception_type"],
        "java.lang.NullPointerException"
    );
    assert_eq!(d["exposure_unit"], "seconds");

    let out = args(false);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("java.lang.NullPointerException at Promo.java:59"),
        "{table}"
    );
    assert!(table.contains("new"), "{table}");
}
