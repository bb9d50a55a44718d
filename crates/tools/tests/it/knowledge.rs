//! `knowledge_search` over the shared scenarios' runbooks and past
//! incidents: ingestion (idempotent), tenant isolation, concluded
//! diagnoses, and retrieval of the runbook each incident needs from its
//! symptoms alone.

use std::collections::BTreeMap;

use chrono::Utc;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rootcause_diagnosis::state::{ConclusionReason, FinalResult};
use rootcause_diagnosis::{
    Category, Confidence, DiagnosisEvent, DiagnosisState, EventId, EventKind, Hypothesis,
    HypothesisId, SessionId, TenantId,
};
use rootcause_test_db::TestDatabase;
use rootcause_tools::ToolRegistry;
use rootcause_tools::knowledge::{
    KnowledgeSearchTool, incident_query, ingest_bundle, ingest_runbooks, record_concluded_diagnosis,
};
use serde_json::{Value, json};

use crate::{ctx, incident, scenario, scenarios};

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

async fn count(conn: &mut AsyncPgConnection, sql: &str) -> i64 {
    diesel::sql_query(sql)
        .get_result::<Count>(conn)
        .await
        .unwrap()
        .n
}

/// The runbook each scenario's root cause needs, judged by a person from
/// `expected.json` and the runbooks (test data only; the search never sees it).
fn relevant_runbook() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("cart-errors-after-release", "deploy-rollback.md"),
        ("checkout-intermittent-503", "oomkilled-crashloop.md"),
        (
            "checkout-payment-failures",
            "payment-provider-degradation.md",
        ),
        ("inventory-timeouts-morning", "postgres-lock-contention.md"),
        ("orders-history-slow", "latency-regression.md"),
        (
            "storefront-recommendations-errors",
            "certificate-rotation.md",
        ),
    ])
}

/// One organisation's knowledge base: the scenarios are incidents of the
/// same shop, so their runbooks (the same files in several bundles) and
/// past incidents go to one tenant.
async fn ingest_all(conn: &mut AsyncPgConnection, tenant: &TenantId) -> usize {
    let mut upserted = 0;
    for dir in scenarios() {
        let report = ingest_bundle(conn, tenant, &dir).await.unwrap();
        assert!(
            report.skipped.is_empty(),
            "{}: {:?}",
            dir.display(),
            report.skipped
        );
        upserted += report.upserted;
    }
    upserted
}

#[tokio::test(flavor = "multi_thread")]
async fn each_incident_finds_its_runbook_in_the_top_three() {
    if !crate::shared_has("scenarios") {
        return;
    }
    let db = TestDatabase::new().await.unwrap();
    let mut conn = db.connect().await.unwrap();
    let acme = TenantId::new("acme");
    let upserted = ingest_all(&mut conn, &acme).await;

    // Shared runbooks were upserted, not duplicated.
    let runbooks = count(
        &mut conn,
        "SELECT count(*) AS n FROM knowledge_documents WHERE kind = 'runbook'",
    )
    .await;
    let mut distinct = std::collections::BTreeSet::new();
    for dir in scenarios() {
        for f in std::fs::read_dir(dir.join("runbooks")).unwrap() {
            distinct.insert(f.unwrap().file_name());
        }
    }
    assert_eq!(runbooks as usize, distinct.len());
    let total = count(&mut conn, "SELECT count(*) AS n FROM knowledge_documents").await;
    assert!(
        (total as usize) < upserted,
        "re-ingested runbooks must update in place"
    );
    // Ingesting again changes nothing.
    ingest_all(&mut conn, &acme).await;
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM knowledge_documents").await,
        total
    );

    let mut r = ToolRegistry::default();
    r.register(KnowledgeSearchTool::new(db.pool(2).unwrap()))
        .unwrap();
    let relevant = relevant_runbook();
    let mut report = Vec::new();
    let mut misses = Vec::new();
    for dir in scenarios() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let inc = incident(&dir);
        let w = inc.window();
        let cx = ctx("acme", &w.start().to_rfc3339(), &w.end().to_rfc3339());
        // The knowledge agent asks for runbooks; past incidents expand the query.
        let out = r
            .call(
                &cx,
                "knowledge_search",
                json!({"query": incident_query(&inc), "kinds": ["runbook"], "limit": 10}),
            )
            .await
            .unwrap();
        let results = out.content["results"].as_array().unwrap();
        let runbook_rank = results
            .iter()
            .position(|h| h["source"] == relevant[name.as_str()]);
        // For the record: the same search over every kind of document.
        let all = r
            .call(
                &cx,
                "knowledge_search",
                json!({"query": incident_query(&inc), "limit": 20}),
            )
            .await
            .unwrap();
        let overall_rank = all.content["results"]
            .as_array()
            .unwrap()
            .iter()
            .position(|h| h["source"] == relevant[name.as_str()]);
        // For the record: without the past-incident expansion.
        let plain = r
            .call(&cx, "knowledge_search", json!({"query": incident_query(&inc), "kinds": ["runbook"], "limit": 10, "expand": false}))
            .await
            .unwrap();
        let plain_rank = plain.content["results"]
            .as_array()
            .unwrap()
            .iter()
            .position(|h| h["source"] == relevant[name.as_str()]);
        let shown: Vec<&str> = results
            .iter()
            .take(3)
            .map(|h| h["source"].as_str().unwrap())
            .collect();
        let expanded = out.content["expanded_with"].clone();
        report.push(format!(
            "{name}: runbook rank {runbook_rank:?} (without expansion {plain_rank:?}, among all documents {overall_rank:?}); top 3 {shown:?}; expanded with {expanded}"
        ));
        if runbook_rank.is_none_or(|r| r >= 3) {
            misses.push(name);
        }
    }
    println!("{}", report.join("\n"));
    assert!(
        misses.is_empty(),
        "relevant runbook not in the top 3 for {misses:?}:\n{}",
        report.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_see_only_their_documents_and_hits_explain_themselves() {
    if !crate::shared_has("scenarios") {
        return;
    }
    let db = TestDatabase::new().await.unwrap();
    let mut conn = db.connect().await.unwrap();
    ingest_runbooks(
        &mut conn,
        &TenantId::new("acme"),
        &scenario("inventory-timeouts-morning").join("runbooks"),
    )
    .await
    .unwrap();
    let mut r = ToolRegistry::default();
    r.register(KnowledgeSearchTool::new(db.pool(2).unwrap()))
        .unwrap();
    let acme = ctx("acme", "2026-03-10T10:18:00Z", "2026-03-10T10:45:00Z");
    let globex = ctx("globex", "2026-03-10T10:18:00Z", "2026-03-10T10:45:00Z");
    let q = json!({"query": "lock wait idle in transaction"});
    let hit = r.call(&acme, "knowledge_search", q.clone()).await.unwrap();
    assert_eq!(
        hit.content["results"][0]["source"],
        "postgres-lock-contention.md"
    );
    assert_eq!(
        hit.content["results"][0]["title"],
        "PostgreSQL lock contention"
    );
    assert!(
        hit.content["results"][0]["snippet"]
            .as_str()
            .unwrap()
            .contains('«')
    );
    assert!(hit.query.contains("websearch_to_tsquery") && hit.query.contains("$1 = 'acme'"));
    let none = r.call(&globex, "knowledge_search", q).await.unwrap();
    assert_eq!(none.content["hits"], 0, "another tenant's runbooks leaked");

    // match=all uses web-search syntax: a phrase that is not there finds nothing.
    let strict = r
        .call(
            &acme,
            "knowledge_search",
            json!({"query": "\"lock contention\" -postgresql", "match": "all"}),
        )
        .await
        .unwrap();
    assert_eq!(strict.content["hits"], 0);
    let phrase = r
        .call(
            &acme,
            "knowledge_search",
            json!({"query": "\"idle in transaction\"", "match": "all", "kinds": ["runbook"]}),
        )
        .await
        .unwrap();
    assert_eq!(
        phrase.content["results"][0]["source"],
        "postgres-lock-contention.md"
    );
    let only_incidents = r
        .call(
            &acme,
            "knowledge_search",
            json!({"query": "lock", "kinds": ["past_incident"]}),
        )
        .await
        .unwrap();
    assert_eq!(only_incidents.content["hits"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn concluded_diagnoses_become_searchable() {
    if !crate::shared_has("scenarios") {
        return;
    }
    let db = TestDatabase::new().await.unwrap();
    let mut conn = db.connect().await.unwrap();
    let dir = scenario("storefront-recommendations-errors");
    let session_id = SessionId::new();
    let created = DiagnosisEvent {
        id: EventId::new(),
        session_id,
        seq: 1,
        parent_id: None,
        occurred_at: Utc::now(),
        kind: EventKind::Created {
            tenant: TenantId::new("acme"),
            incident: incident(&dir),
            deadline: Utc::now(),
            options: Default::default(),
            arm: Default::default(),
        },
    };
    let mut state = DiagnosisState::genesis(&created).unwrap();
    // Not concluded yet: nothing is written.
    assert!(!record_concluded_diagnosis(&mut conn, &state).await.unwrap());

    let h = Hypothesis {
        id: HypothesisId::new(),
        parent: None,
        statement:
            "catalog's serving certificate catalog-tls expired; mTLS clients fail the handshake"
                .to_owned(),
        service: "catalog".to_owned(),
        category: Category::Network,
        confidence: Confidence::saturating(90),
        supporting: Vec::new(),
        refuting: Vec::new(),
        remediation: vec!["cmctl renew catalog-tls".to_owned()],
    };
    // The state changes only through events, as the orchestrator's would.
    let next = |seq: u64, kind: EventKind| DiagnosisEvent {
        id: EventId::new(),
        session_id,
        seq,
        parent_id: None,
        occurred_at: Utc::now(),
        kind,
    };
    let added = next(
        state.seq() + 1,
        EventKind::HypothesisAdded {
            hypothesis: h.clone(),
        },
    );
    state.apply(&added).unwrap();
    let concluded = next(
        state.seq() + 1,
        EventKind::Concluded {
            result: FinalResult {
                summary: "Expired TLS certificate on catalog".to_owned(),
                ranked: vec![h.id],
                confidence: Confidence::saturating(90),
                reason: ConclusionReason::Confident,
            },
        },
    );
    state.apply(&concluded).unwrap();
    assert!(record_concluded_diagnosis(&mut conn, &state).await.unwrap());
    assert!(
        record_concluded_diagnosis(&mut conn, &state).await.unwrap(),
        "idempotent"
    );
    assert_eq!(
        count(
            &mut conn,
            "SELECT count(*) AS n FROM knowledge_documents WHERE kind = 'diagnosis'"
        )
        .await,
        1
    );

    let mut r = ToolRegistry::default();
    r.register(KnowledgeSearchTool::new(db.pool(2).unwrap()))
        .unwrap();
    let cx = ctx("acme", "2026-03-05T06:17:00Z", "2026-03-05T06:45:00Z");
    let out = r
        .call(
            &cx,
            "knowledge_search",
            json!({"query": "recommendations errors expired certificate", "kinds": ["diagnosis"]}),
        )
        .await
        .unwrap();
    let hit: &Value = &out.content["results"][0];
    assert_eq!(hit["source"], session_id.0.to_string());
    assert_eq!(hit["metadata"]["category"], "network");
    assert_eq!(hit["metadata"]["service"], "catalog");
}
