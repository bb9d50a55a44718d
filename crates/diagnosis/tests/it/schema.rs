//! Migrations and schema against the real PostgreSQL: up/down/up, the
//! generated `schema.rs` matches the migrations, every table takes and gives
//! back a row, and a seq collision is a typed conflict.

use chrono::Utc;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use rootcause_diagnosis::db::{
    self, AgentExecutionRow, AgentToolRow, ApiTokenRow, KnowledgeDocumentRow, NewOutbox,
    NewSession, OutboxRow, ProcessedMessageRow, SessionRow, StoreError,
};
use rootcause_diagnosis::migrations;
use rootcause_diagnosis::schema::*;
use rootcause_diagnosis::{DiagnosisEvent, EventId, EventKind, SessionId};
use rootcause_test_db::TestDatabase;
use uuid::Uuid;

use crate::support::created;

const TABLES: [&str; 8] = [
    "agent_executions",
    "agent_tools",
    "api_tokens",
    "diagnosis_events",
    "diagnosis_sessions",
    "knowledge_documents",
    "outbox",
    "processed_messages",
];

async fn tables(url: &str) -> Vec<String> {
    #[derive(QueryableByName)]
    struct T {
        #[diesel(sql_type = diesel::sql_types::Text)]
        table_name: String,
    }
    let mut conn =
        <diesel_async::AsyncPgConnection as diesel_async::AsyncConnection>::establish(url)
            .await
            .expect("connect");
    let rows: Vec<T> = diesel::sql_query(
        "SELECT table_name::text AS table_name FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_name NOT LIKE '\\_\\_%' ORDER BY 1",
    )
    .load(&mut conn)
    .await
    .expect("list tables");
    rows.into_iter().map(|t| t.table_name).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn migrations_up_down_up_and_twice_is_a_noop() {
    let db = TestDatabase::empty().await.expect("db");
    let applied = migrations::run_pending(db.url()).await.expect("up");
    assert_eq!(applied.len(), 4, "{applied:?}");
    assert_eq!(tables(db.url()).await, TABLES);
    // Again: nothing to do.
    assert!(
        migrations::run_pending(db.url())
            .await
            .expect("up again")
            .is_empty()
    );
    assert_eq!(
        migrations::applied(db.url()).await.expect("applied").len(),
        4
    );

    // Down really rolls back: no table is left.
    let reverted = migrations::revert_all(db.url()).await.expect("down");
    assert_eq!(reverted.len(), 4);
    assert!(
        tables(db.url()).await.is_empty(),
        "down.sql left tables behind"
    );

    // And up again gives the same schema, seed rows included.
    migrations::run_pending(db.url())
        .await
        .expect("up after down");
    assert_eq!(tables(db.url()).await, TABLES);
    let mut conn = db.connect().await.expect("conn");
    let seeded: i64 = agent_tools::table
        .count()
        .get_result(&mut conn)
        .await
        .expect("count");
    assert_eq!(seeded, 8);
}

fn diesel_cli() -> std::path::PathBuf {
    let home = std::env::var_os("HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_default();
    let candidates = [
        home.join(".cargo/bin/diesel"),
        "/usr/local/bin/diesel".into(),
    ];
    candidates
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| "diesel".into())
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_rs_is_what_diesel_generates_from_the_migrations() {
    let db = TestDatabase::new().await.expect("db");
    let out = std::process::Command::new(diesel_cli())
        .args(["print-schema", "--database-url", db.url()])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .expect("the diesel CLI must be installed (scripts/services-up.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("utf8");
    let committed = include_str!("../../src/schema.rs");
    assert_eq!(
        generated.trim(),
        committed.trim(),
        "crates/diagnosis/src/schema.rs is stale: run `diesel print-schema > crates/diagnosis/src/schema.rs` against a migrated database"
    );
}

fn event(session_id: SessionId, seq: u64) -> DiagnosisEvent {
    DiagnosisEvent {
        id: EventId::new(),
        session_id,
        seq,
        parent_id: None,
        occurred_at: Utc::now(),
        kind: EventKind::Paused {
            reason: format!("seq {seq}"),
        },
    }
}

async fn new_session(conn: &mut diesel_async::AsyncPgConnection) -> SessionId {
    let id = SessionId::new();
    diesel::insert_into(diagnosis_sessions::table)
        .values(NewSession {
            session_id: id.0,
            tenant: "acme",
            status: "queued",
            title: "checkout 5xx",
        })
        .execute(conn)
        .await
        .expect("insert session");
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn seq_collision_is_a_typed_conflict() {
    let db = TestDatabase::new().await.expect("db");
    let mut conn = db.connect().await.expect("conn");
    let sid = new_session(&mut conn).await;
    let mut genesis = created(sid);
    genesis.id = EventId::new();
    db::insert_events(&mut conn, &[genesis.clone(), event(sid, 2)])
        .await
        .expect("first");
    let err = db::insert_events(&mut conn, &[event(sid, 2)])
        .await
        .expect_err("collision");
    assert!(
        matches!(err, StoreError::SeqConflict { seq: 2, session_id } if session_id == sid),
        "{err:?}"
    );
    assert!(err.is_conflict());
    // Nothing of the failed insert is there, and the events read back equal.
    let back = db::events_after_any_tenant(&mut conn, sid, 0, 100)
        .await
        .expect("read");
    assert_eq!(back.len(), 2);
    assert_eq!(back[0], genesis);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_table_takes_and_returns_a_row() {
    let db = TestDatabase::new().await.expect("db");
    let mut conn = db.connect().await.expect("conn");
    let sid = new_session(&mut conn).await;

    let s: SessionRow = diagnosis_sessions::table
        .find(sid.0)
        .select(SessionRow::as_select())
        .first(&mut conn)
        .await
        .expect("session");
    assert_eq!(
        (
            s.tenant.as_str(),
            s.status.as_str(),
            s.last_seq,
            s.snapshot_seq
        ),
        ("acme", "queued", 0, 0)
    );
    assert!(s.snapshot.is_none());

    // A snapshot cannot claim a seq beyond the last event.
    let bad = diesel::update(diagnosis_sessions::table.find(sid.0))
        .set(diagnosis_sessions::snapshot_seq.eq(5))
        .execute(&mut conn)
        .await;
    assert!(bad.is_err(), "CHECK snapshot_seq <= last_seq must hold");

    let mut g = created(sid);
    g.id = EventId::new();
    db::insert_events(&mut conn, &[g.clone()])
        .await
        .expect("event");
    assert_eq!(
        db::events_after_any_tenant(&mut conn, sid, 0, 10)
            .await
            .expect("events"),
        vec![g]
    );

    let exec = AgentExecutionRow {
        id: Uuid::now_v7(),
        session_id: sid.0,
        task_id: Uuid::now_v7(),
        agent: "log".into(),
        attempt: 1,
        provider: Some("anthropic".into()),
        model: Some("claude-sonnet-4-5".into()),
        tokens_in: 1200,
        tokens_out: 300,
        tokens_cached: 800,
        cost_micros: 8_100,
        duration_ms: 2_500,
        outcome: "completed".into(),
        error: None,
        started_at: Utc::now(),
        finished_at: Some(Utc::now()),
    };
    diesel::insert_into(agent_executions::table)
        .values(&exec)
        .execute(&mut conn)
        .await
        .expect("exec");
    let back: AgentExecutionRow = agent_executions::table
        .find(exec.id)
        .select(AgentExecutionRow::as_select())
        .first(&mut conn)
        .await
        .expect("exec back");
    assert_eq!(
        (back.tokens_in, back.cost_micros, back.model),
        (1200, 8_100, exec.model.clone())
    );
    // One row per (task, attempt).
    let dup = AgentExecutionRow {
        id: Uuid::now_v7(),
        ..exec.clone()
    };
    let err: StoreError = diesel::insert_into(agent_executions::table)
        .values(&dup)
        .execute(&mut conn)
        .await
        .expect_err("dup attempt")
        .into();
    assert!(
        matches!(err, StoreError::Duplicate { ref constraint } if constraint == "agent_executions_task_attempt_key"),
        "{err:?}"
    );

    let msg = Uuid::now_v7();
    diesel::insert_into(outbox::table)
        .values(NewOutbox {
            message_id: msg,
            session_id: Some(sid.0),
            exchange: "rootcause.tasks".into(),
            routing_key: "agent.log".into(),
            payload: serde_json::json!({"id": msg}),
            headers: serde_json::json!({}),
        })
        .execute(&mut conn)
        .await
        .expect("outbox");
    let o: OutboxRow = outbox::table
        .filter(outbox::message_id.eq(msg))
        .select(OutboxRow::as_select())
        .first(&mut conn)
        .await
        .expect("outbox back");
    assert!(o.sent_at.is_none() && o.attempts == 0 && o.routing_key == "agent.log");

    let p = ProcessedMessageRow {
        consumer: "orchestrator.commands".into(),
        message_id: msg,
        session_id: Some(sid.0),
        processed_at: Utc::now(),
    };
    diesel::insert_into(processed_messages::table)
        .values(&p)
        .execute(&mut conn)
        .await
        .expect("processed");
    let again: StoreError = diesel::insert_into(processed_messages::table)
        .values(&p)
        .execute(&mut conn)
        .await
        .expect_err("idempotency key")
        .into();
    assert!(again.is_conflict());

    let tools: Vec<AgentToolRow> = agent_tools::table
        .filter(agent_tools::agent.eq("code"))
        .order(agent_tools::tool)
        .select(AgentToolRow::as_select())
        .load(&mut conn)
        .await
        .expect("tools");
    let names: Vec<&str> = tools.iter().map(|t| t.tool.as_str()).collect();
    assert_eq!(
        names,
        ["deploy_history", "git_blame", "git_log", "git_show"]
    );

    let doc = KnowledgeDocumentRow {
        id: Uuid::now_v7(),
        tenant: "acme".into(),
        kind: "runbook".into(),
        source: "runbooks/deploy-rollback.md".into(),
        title: "Rolling back a bad deploy".into(),
        body: "When error rates jump right after a release, roll the deployment back.".into(),
        metadata: serde_json::json!({}),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    diesel::insert_into(knowledge_documents::table)
        .values(&doc)
        .execute(&mut conn)
        .await
        .expect("doc");
    // The generated tsvector is searchable through the GIN index.
    #[derive(QueryableByName)]
    struct Hit {
        #[diesel(sql_type = diesel::sql_types::Text)]
        title: String,
    }
    let hits: Vec<Hit> = diesel::sql_query(
        "SELECT title FROM knowledge_documents WHERE search @@ websearch_to_tsquery('english', $1)",
    )
    .bind::<diesel::sql_types::Text, _>("errors after a releasing")
    .load(&mut conn)
    .await
    .expect("fts");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].title, doc.title);

    let token = ApiTokenRow {
        id: Uuid::now_v7(),
        tenant: "acme".into(),
        name: "ci".into(),
        token_hash: vec![7; 32],
        scopes: vec![Some("diagnoses:write".into())],
        created_at: Utc::now(),
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    };
    diesel::insert_into(api_tokens::table)
        .values(&token)
        .execute(&mut conn)
        .await
        .expect("token");
    let back: ApiTokenRow = api_tokens::table
        .find(token.id)
        .select(ApiTokenRow::as_select())
        .first(&mut conn)
        .await
        .expect("token back");
    assert_eq!(back.token_hash, token.token_hash);
    // Only 32-byte hashes are accepted: a raw token cannot be stored by mistake.
    let raw = ApiTokenRow {
        id: Uuid::now_v7(),
        token_hash: b"rc_live_plaintext".to_vec(),
        ..token
    };
    assert!(
        diesel::insert_into(api_tokens::table)
            .values(&raw)
            .execute(&mut conn)
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_forgets_only_what_has_done_its_job() {
    use rootcause_diagnosis::store::{Pruned, prune};
    let db = TestDatabase::new().await.expect("db");
    let mut conn = db.connect().await.expect("conn");
    let long_ago = Utc::now() - chrono::Duration::days(30);
    let row = |sent: bool| NewOutbox {
        message_id: Uuid::now_v7(),
        session_id: None,
        exchange: "rootcause.tasks".into(),
        routing_key: if sent { "sent".into() } else { "unsent".into() },
        payload: serde_json::json!({}),
        headers: serde_json::json!({}),
    };
    for sent in [true, true, true, false] {
        diesel::insert_into(outbox::table)
            .values(row(sent))
            .execute(&mut conn)
            .await
            .expect("outbox");
    }
    diesel::update(outbox::table.filter(outbox::routing_key.eq("sent")))
        .set(outbox::sent_at.eq(Some(long_ago)))
        .execute(&mut conn)
        .await
        .expect("mark sent");
    for (i, at) in [long_ago, long_ago, Utc::now()].into_iter().enumerate() {
        let p = ProcessedMessageRow {
            consumer: format!("c{i}"),
            message_id: Uuid::now_v7(),
            session_id: None,
            processed_at: at,
        };
        diesel::insert_into(processed_messages::table)
            .values(&p)
            .execute(&mut conn)
            .await
            .expect("processed");
    }
    let cut = Utc::now() - chrono::Duration::days(7);
    // Batches bound each call; a second call takes the rest.
    assert_eq!(
        prune(&mut conn, cut, 2).await.expect("prune"),
        Pruned {
            outbox_sent: 2,
            processed_messages: 2
        }
    );
    assert_eq!(
        prune(&mut conn, cut, 2).await.expect("prune"),
        Pruned {
            outbox_sent: 1,
            processed_messages: 0
        }
    );
    assert_eq!(
        prune(&mut conn, cut, 2).await.expect("prune"),
        Pruned::default()
    );
    // The unsent row and the recent idempotency record stay.
    let left: Vec<String> = outbox::table
        .select(outbox::routing_key)
        .load(&mut conn)
        .await
        .expect("left");
    assert_eq!(left, ["unsent"]);
    let recent: i64 = processed_messages::table
        .count()
        .get_result(&mut conn)
        .await
        .expect("count");
    assert_eq!(recent, 1);
}
