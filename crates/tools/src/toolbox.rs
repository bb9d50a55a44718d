//! The standard tools over one incident bundle, registered in one call:
//! what `make demo`, the CLI and offline agent workers use.

use std::path::Path;
use std::sync::Arc;

use rootcause_diagnosis::db::PgPool;

use crate::bundle::Bundle;
use crate::code::{
    ChangesFile, DeployHistoryTool, GitBlameTool, GitLogTool, GitRepository, GitShowTool,
};
use crate::error::ToolError;
use crate::knowledge::KnowledgeSearchTool;
use crate::logs::{BundleLogs, LogSearchTool};
use crate::prometheus::{BundleMetrics, PrometheusQueryTool};
use crate::registry::ToolRegistry;
use crate::sql::{BundleDb, SqlDiagnosticsTool};

/// Registers `elasticsearch_search`, `prometheus_query`, `deploy_history`,
/// `sql_diagnostics`, and (when the bundle has `repo.bundle`) `git_log`,
/// `git_show`, `git_blame` over `bundle`, plus `knowledge_search` when a
/// knowledge-base pool is given. The git clone goes under `git_cache`.
///
/// # Errors
/// Registration errors, or a `repo.bundle` that cannot be unpacked.
pub fn register_bundle_tools(
    registry: &mut ToolRegistry,
    bundle: &Arc<Bundle>,
    git_cache: &Path,
    knowledge: Option<PgPool>,
) -> Result<(), ToolError> {
    registry.register(LogSearchTool::new(BundleLogs::new(Arc::clone(bundle))))?;
    registry.register(PrometheusQueryTool::new(BundleMetrics::new(Arc::clone(
        bundle,
    ))))?;
    registry.register(DeployHistoryTool::new(ChangesFile::new(
        bundle.path("changes.jsonl"),
        bundle.tenant().clone(),
    )))?;
    registry.register(SqlDiagnosticsTool::new(
        BundleDb::new(Arc::clone(bundle)),
        false,
    ))?;
    let repo_bundle = bundle.path("repo.bundle");
    if repo_bundle.is_file() {
        let repo = Arc::new(GitRepository::from_bundle(
            &repo_bundle,
            git_cache,
            bundle.tenant().clone(),
        )?);
        registry.register(GitLogTool::new(Arc::clone(&repo)))?;
        registry.register(GitShowTool::new(Arc::clone(&repo)))?;
        registry.register(GitBlameTool::new(repo))?;
    }
    if let Some(pool) = knowledge {
        registry.register(KnowledgeSearchTool::new(pool))?;
    }
    Ok(())
}
