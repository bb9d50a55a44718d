//! The `agent_tools` policy: seeded defaults, only enabled and registered
//! tools, cache with TTL and explicit invalidation, refusal of other tools.

use std::time::Duration;

use async_trait::async_trait;
use diesel_async::RunQueryDsl;
use rootcause_diagnosis::AgentKind;
use rootcause_test_db::TestDatabase;
use rootcause_tools::{
    AgentToolAccess, ToolContext, ToolError, ToolOutput, ToolRegistry, TypedTool,
};
use serde_json::{Value, json};

use crate::ctx;

struct Named(&'static str);

#[async_trait]
impl TypedTool for Named {
    type Args = Value;
    fn name(&self) -> &str {
        self.0
    }
    fn description(&self) -> &str {
        "named test tool"
    }
    fn parameters(&self) -> Value {
        json!({"type": "object"})
    }
    async fn run(&self, _: &ToolContext, _: Value) -> Result<ToolOutput, ToolError> {
        Ok(ToolOutput::new(json!({"tool": self.0}), self.0, "test"))
    }
}

fn names(specs: &[rootcause_tools::ToolSpec]) -> Vec<&str> {
    specs.iter().map(|s| s.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_for_agent_follows_the_table_through_the_cache() {
    let db = TestDatabase::new().await.unwrap();
    let pool = db.pool(2).unwrap();
    // Long TTL: only invalidation can make changes visible in this test.
    let access = AgentToolAccess::from_database(pool, Duration::from_secs(3600));
    let mut r = ToolRegistry::default();
    // git_blame and deploy_history are not registered in this process.
    for n in ["git_log", "git_show", "elasticsearch_search", "scratch"] {
        r.register(Named(n)).unwrap();
    }
    assert_eq!(
        names(&r.tools_for_agent(&access, AgentKind::Code).await.unwrap()),
        vec!["git_log", "git_show"],
        "seeded, enabled and registered only"
    );
    assert_eq!(
        names(&r.tools_for_agent(&access, AgentKind::Log).await.unwrap()),
        vec!["elasticsearch_search"]
    );
    assert!(
        r.tools_for_agent(&access, AgentKind::Coordinator)
            .await
            .unwrap()
            .is_empty()
    );

    // An operator disables git_show behind the cache's back: still cached...
    let mut conn = db.connect().await.unwrap();
    diesel::sql_query(
        "UPDATE agent_tools SET enabled = false WHERE agent = 'code' AND tool = 'git_show'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        names(&r.tools_for_agent(&access, AgentKind::Code).await.unwrap()),
        vec!["git_log", "git_show"]
    );
    // ...until invalidated.
    access.invalidate();
    assert_eq!(
        names(&r.tools_for_agent(&access, AgentKind::Code).await.unwrap()),
        vec!["git_log"]
    );
    // set_enabled writes and invalidates at once.
    access
        .set_enabled(AgentKind::Code, "scratch", true)
        .await
        .unwrap();
    assert_eq!(
        names(&r.tools_for_agent(&access, AgentKind::Code).await.unwrap()),
        vec!["git_log", "scratch"]
    );

    // Calls as an agent are refused for tools it may not use.
    let c = ctx("acme", "2026-03-02T14:00:00Z", "2026-03-02T14:30:00Z");
    let err = r
        .call_for_agent(&access, AgentKind::Code, &c, "git_show", json!({}))
        .await
        .unwrap_err();
    match err {
        ToolError::NotAllowed {
            tool,
            agent,
            allowed,
        } => {
            assert_eq!((tool.as_str(), agent.as_str()), ("git_show", "code"));
            assert_eq!(allowed, "git_log, scratch");
        }
        other => panic!("expected NotAllowed, got {other:?}"),
    }
    let ok = r
        .call_for_agent(&access, AgentKind::Code, &c, "git_log", json!({}))
        .await
        .unwrap();
    assert_eq!(ok.content["tool"], "git_log");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_ttl_picks_up_changes_without_invalidation() {
    let db = TestDatabase::new().await.unwrap();
    let access = AgentToolAccess::from_database(db.pool(2).unwrap(), Duration::from_millis(200));
    let before = access.enabled_tools(AgentKind::Knowledge).await.unwrap();
    assert!(before.contains("knowledge_search"));
    let mut conn = db.connect().await.unwrap();
    diesel::sql_query("UPDATE agent_tools SET enabled = false WHERE tool = 'knowledge_search'")
        .execute(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        access
            .enabled_tools(AgentKind::Knowledge)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_fixed_defaults_match_the_seeded_table() {
    let access = AgentToolAccess::defaults();
    let code = access.enabled_tools(AgentKind::Code).await.unwrap();
    assert_eq!(
        code.into_iter().collect::<Vec<_>>(),
        vec!["deploy_history", "git_blame", "git_log", "git_show"]
    );
    assert!(
        access
            .set_enabled(AgentKind::Code, "x", true)
            .await
            .is_err()
    );
}
