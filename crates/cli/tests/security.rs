//! The security commands and switches as an operator uses them: the built
//! binary, its stdout and its exit code.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

const DB_PASSWORD: &str = "Sup3r-s3cret-pw";

fn rootcause(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rootcause"))
        .args(args)
        .env(
            "ROOTCAUSE__DATABASE__URL",
            format!("postgres://app:{DB_PASSWORD}@db.internal:5432/rootcause"),
        )
        .output()
        .expect("run rootcause")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn help_does_not_print_the_database_url_from_the_environment() {
    for args in [
        &["migrate", "--help"][..],
        &["prune", "--help"],
        &["knowledge", "ingest", "--help"],
    ] {
        let out = rootcause(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        assert!(
            text.contains("ROOTCAUSE__DATABASE__URL"),
            "{args:?}: {text}"
        );
        assert!(
            !text.contains(DB_PASSWORD),
            "{args:?} printed the password:\n{text}"
        );
    }
}

#[test]
fn sql_check_exits_0_for_an_accepted_query_and_1_naming_the_refused_function() {
    let ok = rootcause(&[
        "sql",
        "check",
        "select pid, pg_blocking_pids(pid) from pg_stat_activity",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert!(
        stdout(&ok).starts_with("accepted: SELECT pid"),
        "{}",
        stdout(&ok)
    );

    let refused = rootcause(&["sql", "check", "SELECT pg_stat_reset()"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let text = stdout(&refused);
    assert!(text.starts_with("refused: "), "{text}");
    assert!(text.contains("pg_stat_reset()"), "{text}");

    let write = rootcause(&["sql", "check", "DELETE FROM orders"]);
    assert_eq!(write.status.code(), Some(1), "{write:?}");
}

#[test]
fn redact_prints_each_line_as_a_model_would_receive_it() {
    let mut input: Vec<u8> = b"ok line one\n\
        login failed password=\"hunter2hunter2\" for app\n\
        postgres://app:p@ss;word@db/orders\n\
        token validation failed\n\
        \n\
        cafe "
        .to_vec();
    // A byte that is not UTF-8 must not stop the command.
    input.extend_from_slice(b"\xff end\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rootcause"))
        .arg("redact")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "same line structure:\n{text}");
    assert_eq!(lines[0], "ok line one");
    assert!(
        lines[1].starts_with("login failed password=\"[REDACTED_SECRET_"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!text.contains("ss;word"), "{text}");
    assert!(lines[2].ends_with("@db/orders"), "{text}");
    assert_eq!(lines[3], "token validation failed");
    assert_eq!(lines[4], "");
    assert!(lines[5].contains('\u{fffd}'), "{text}");
}
