//! `rootcause prune` against a real database: sent rows go, unsent stay.
#![allow(missing_docs)]

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use rootcause_diagnosis::db::NewOutbox;
use rootcause_diagnosis::schema::outbox;
use rootcause_test_db::TestDatabase;

#[tokio::test(flavor = "multi_thread")]
async fn prune_deletes_old_sent_rows_and_keeps_unsent_ones() {
    let db = TestDatabase::new().await.expect("db");
    let mut conn = db.connect().await.expect("conn");
    for key in ["old-sent", "unsent", "new-sent"] {
        diesel::insert_into(outbox::table)
            .values(NewOutbox {
                message_id: uuid::Uuid::now_v7(),
                session_id: None,
                exchange: "rootcause.results".into(),
                routing_key: key.into(),
                payload: serde_json::json!({}),
                headers: serde_json::json!({}),
            })
            .execute(&mut conn)
            .await
            .expect("insert");
    }
    let now = chrono::Utc::now();
    for (key, at) in [
        ("old-sent", now - chrono::Duration::days(10)),
        ("new-sent", now),
    ] {
        diesel::update(outbox::table.filter(outbox::routing_key.eq(key)))
            .set(outbox::sent_at.eq(Some(at)))
            .execute(&mut conn)
            .await
            .expect("mark");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rootcause"))
        .args([
            "prune",
            "--older-than-days",
            "7",
            "--batch",
            "1",
            "--database-url",
            db.url(),
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("pruned 1 sent outbox row(s)"));
    let mut left: Vec<String> = outbox::table
        .select(outbox::routing_key)
        .load(&mut conn)
        .await
        .expect("left");
    left.sort();
    assert_eq!(left, ["new-sent", "unsent"]);

    // A zero retention is refused before anything runs.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_rootcause"))
        .args([
            "prune",
            "--older-than-days",
            "0",
            "--database-url",
            db.url(),
        ])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("older-than-days"));
}
