//! Which tools each agent may use: the `agent_tools` table, cached.
//!
//! Operators change the table to disable a misbehaving tool without a
//! deploy. Reading it on every call would put a query in every agent step,
//! so rows are cached for a short TTL; [`AgentToolAccess::set_enabled`]
//! and [`AgentToolAccess::invalidate`] make a change visible at once in
//! this process (other processes see it within the TTL).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use rootcause_diagnosis::AgentKind;
use rootcause_diagnosis::db::{AgentToolRow, PgPool, StoreError};
use rootcause_diagnosis::schema::agent_tools;

use crate::error::ToolError;

/// agent -> tool -> enabled.
type Table = BTreeMap<String, BTreeMap<String, bool>>;

enum Source {
    Database(PgPool),
    Fixed(Arc<Table>),
}

/// The `agent_tools` policy with an in-memory cache.
pub struct AgentToolAccess {
    source: Source,
    ttl: Duration,
    /// A std mutex: it is held only to read or swap the cached `Arc`, never
    /// across an await.
    cache: Mutex<Option<(Instant, Arc<Table>)>>,
}

impl std::fmt::Debug for AgentToolAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentToolAccess")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl AgentToolAccess {
    /// Reads `agent_tools` through `pool`, caching for `ttl` (10 to 30
    /// seconds is a good trade between freshness and load).
    #[must_use]
    pub fn from_database(pool: PgPool, ttl: Duration) -> Self {
        Self {
            source: Source::Database(pool),
            ttl,
            cache: Mutex::new(None),
        }
    }

    /// A fixed policy (the defaults of the architecture page when no
    /// database is used, or a test's own).
    #[must_use]
    pub fn fixed(pairs: &[(AgentKind, &str)]) -> Self {
        let mut table = Table::new();
        for (agent, tool) in pairs {
            table
                .entry(agent.as_str().to_owned())
                .or_default()
                .insert((*tool).to_owned(), true);
        }
        Self {
            source: Source::Fixed(Arc::new(table)),
            ttl: Duration::MAX,
            cache: Mutex::new(None),
        }
    }

    /// The defaults seeded by the `agent_tools` migration.
    #[must_use]
    pub fn defaults() -> Self {
        Self::fixed(&[
            (AgentKind::Log, "elasticsearch_search"),
            (AgentKind::Metric, "prometheus_query"),
            (AgentKind::Code, "git_log"),
            (AgentKind::Code, "git_show"),
            (AgentKind::Code, "git_blame"),
            (AgentKind::Code, "deploy_history"),
            (AgentKind::Knowledge, "knowledge_search"),
            (AgentKind::Database, "sql_diagnostics"),
        ])
    }

    /// Tools enabled for `agent`.
    ///
    /// # Errors
    /// [`ToolError::Store`] when the table cannot be read.
    pub async fn enabled_tools(&self, agent: AgentKind) -> Result<BTreeSet<String>, ToolError> {
        let table = self.table().await?;
        Ok(table
            .get(agent.as_str())
            .map(|tools| {
                tools
                    .iter()
                    .filter(|(_, enabled)| **enabled)
                    .map(|(tool, _)| tool.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Drops the cache; the next read goes to the database.
    pub fn invalidate(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            *cache = None;
        }
    }

    /// Enables or disables a tool for an agent (upsert), then invalidates
    /// the cache.
    ///
    /// # Errors
    /// [`ToolError::Store`] on a database error; [`ToolError::QueryRefused`]
    /// for a fixed policy.
    pub async fn set_enabled(
        &self,
        agent: AgentKind,
        tool: &str,
        enabled: bool,
    ) -> Result<(), ToolError> {
        let Source::Database(pool) = &self.source else {
            return Err(ToolError::QueryRefused {
                reason: "this tool policy is fixed in code; use a database-backed one".to_owned(),
            });
        };
        let mut conn = pool.get().await.map_err(StoreError::from)?;
        diesel::insert_into(agent_tools::table)
            .values((
                agent_tools::agent.eq(agent.as_str()),
                agent_tools::tool.eq(tool),
                agent_tools::enabled.eq(enabled),
            ))
            .on_conflict((agent_tools::agent, agent_tools::tool))
            .do_update()
            .set((
                agent_tools::enabled.eq(enabled),
                agent_tools::updated_at.eq(diesel::dsl::now),
            ))
            .execute(&mut conn)
            .await
            .map_err(StoreError::from)?;
        self.invalidate();
        Ok(())
    }

    async fn table(&self) -> Result<Arc<Table>, ToolError> {
        let pool = match &self.source {
            Source::Fixed(t) => return Ok(Arc::clone(t)),
            Source::Database(pool) => pool,
        };
        if let Ok(cache) = self.cache.lock()
            && let Some((loaded, table)) = cache.as_ref()
            && loaded.elapsed() < self.ttl
        {
            return Ok(Arc::clone(table));
        }
        let mut conn = pool.get().await.map_err(StoreError::from)?;
        let rows: Vec<AgentToolRow> = agent_tools::table
            .select(AgentToolRow::as_select())
            .load(&mut conn)
            .await
            .map_err(StoreError::from)?;
        let mut table = Table::new();
        for row in rows {
            table
                .entry(row.agent)
                .or_default()
                .insert(row.tool, row.enabled);
        }
        let table = Arc::new(table);
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((Instant::now(), Arc::clone(&table)));
        }
        Ok(table)
    }
}
