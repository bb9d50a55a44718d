//! `agent_executions` rows and session totals on real PostgreSQL.

use chrono::Utc;
use diesel_async::RunQueryDsl;
use rootcause_diagnosis::db::NewSession;
use rootcause_diagnosis::schema::diagnosis_sessions;
use rootcause_diagnosis::{AgentKind, SessionId, TaskId, Usage};
use rootcause_llm::store::{record_execution, session_usage};
use rootcause_llm::{Execution, Llm};
use rootcause_test_db::TestDatabase;
use serde_json::json;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::fallback::settings;
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn executions_are_recorded_updated_and_summed_into_the_next_budget() {
    let db = TestDatabase::new().await.expect("test database");
    let mut conn = db.connect().await.expect("connect");
    let session = SessionId::new();
    diesel::insert_into(diagnosis_sessions::table)
        .values(NewSession {
            session_id: session.0,
            tenant: "acme",
            status: "running",
            title: "checkout 5xx",
        })
        .execute(&mut conn)
        .await
        .expect("session row");

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(openai_text("ok", 1000, 200, 400)))
        .mount(&server)
        .await;
    let llm = Llm::from_settings(&settings(json!({
        "providers": {"openai": {"kind": "openai", "model": "gpt-4o", "api_key": OPENAI_KEY, "base_url": format!("{}/v1", server.uri())}},
        "budget": {"max_cost_usd": 0.013}
    })))
    .expect("settings");
    let diagnosis = llm.diagnosis(session, Usage::default());
    let log = diagnosis.agent(AgentKind::Log).online().expect("online");

    let mut execution = Execution {
        id: uuid::Uuid::now_v7(),
        session_id: session,
        task_id: TaskId::new(),
        attempt: 1,
        outcome: "running".into(),
        error: None,
        started_at: Utc::now(),
        finished_at: None,
    };
    record_execution(&mut conn, &log.execution_row(&execution))
        .await
        .expect("insert running");
    log.chat(question()).await.expect("call 1");
    log.chat(question()).await.expect("call 2");
    execution.outcome = "completed".into();
    execution.finished_at = Some(Utc::now());
    record_execution(&mut conn, &log.execution_row(&execution))
        .await
        .expect("update completed");

    let metric = diagnosis.agent(AgentKind::Metric).online().expect("online");
    metric.chat(question()).await.expect("call 3");
    let metric_execution = Execution {
        id: uuid::Uuid::now_v7(),
        task_id: TaskId::new(),
        outcome: "completed".into(),
        finished_at: Some(Utc::now()),
        ..execution.clone()
    };
    record_execution(&mut conn, &metric.execution_row(&metric_execution))
        .await
        .expect("insert metric");

    let totals = session_usage(&mut conn, session).await.expect("sum");
    // Each call: 1000 in (400 cached), 200 out, 4000 micro-USD.
    assert_eq!(
        totals.per_agent["log"],
        Usage {
            input_tokens: 2000,
            output_tokens: 400,
            cached_tokens: 800,
            cost_micros: 8000
        }
    );
    assert_eq!(totals.per_agent["metric"].cost_micros, 4000);
    assert_eq!(totals.total.cost_micros, 12_000);
    assert_eq!(totals.total, diagnosis.ledger().spent());

    use diesel::{ExpressionMethods, QueryDsl};
    use rootcause_diagnosis::schema::agent_executions::dsl as a;
    let row: (String, Option<String>, Option<String>, i64, String) = a::agent_executions
        .filter(a::id.eq(execution.id))
        .select((a::agent, a::provider, a::model, a::tokens_in, a::outcome))
        .first(&mut conn)
        .await
        .expect("row");
    assert_eq!(
        row,
        (
            "log".into(),
            Some("openai".into()),
            Some("gpt-4o-2024-08-06".into()),
            2000,
            "completed".into()
        )
    );

    // Another worker picks up the diagnosis: seeded with the stored totals,
    // 12,000 of the 13,000 micro-USD budget are used and
    // the next call is estimated at 2,610.
    let resumed = llm.diagnosis(session, totals.total);
    let err = resumed
        .agent(AgentKind::Code)
        .online()
        .expect("online")
        .chat(question())
        .await
        .expect_err("budget");
    assert_eq!(err.class(), rootcause_llm::ErrorClass::BudgetExceeded);
    assert_eq!(request_count(&server).await, 3);
}
