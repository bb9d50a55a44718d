//! The embedded migrations and the functions that run them.
//!
//! Migrations are compiled into every binary that depends on this crate, so
//! `migrate` needs no files at run time. Each migration runs in its own
//! transaction; running them twice is a no-op because diesel records applied
//! versions in `__diesel_schema_migrations`.

use std::time::Instant;

use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::db::StoreError;

/// Every migration under `migrations/`, embedded at compile time.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Connects to `database_url` and applies every pending migration, logging
/// each one's version and duration. Returns the versions applied.
///
/// Needs a multi-threaded tokio runtime (diesel's migration machinery is
/// synchronous and runs under `block_in_place`).
///
/// # Errors
/// [`StoreError::Connection`] when the database cannot be reached,
/// [`StoreError::Migration`] when a migration fails (earlier ones stay applied).
pub async fn run_pending(database_url: &str) -> Result<Vec<String>, StoreError> {
    let conn = AsyncPgConnection::establish(database_url)
        .await
        .map_err(|e| StoreError::Connection(e.to_string()))?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let mut applied = Vec::new();
    loop {
        let pending = harness
            .pending_migrations(MIGRATIONS)
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        let Some(next) = pending.into_iter().next() else {
            break;
        };
        let started = Instant::now();
        let version = harness
            .run_migration(&*next)
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        tracing::info!(
            migration = %version,
            duration_ms = started.elapsed().as_millis(),
            "migration applied"
        );
        applied.push(version.to_string());
    }
    Ok(applied)
}

/// Reverts every applied migration, newest first. Returns the versions reverted.
///
/// # Errors
/// As [`run_pending`].
pub async fn revert_all(database_url: &str) -> Result<Vec<String>, StoreError> {
    let conn = AsyncPgConnection::establish(database_url)
        .await
        .map_err(|e| StoreError::Connection(e.to_string()))?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let reverted = harness
        .revert_all_migrations(MIGRATIONS)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    for v in &reverted {
        tracing::info!(migration = %v, "migration reverted");
    }
    Ok(reverted.into_iter().map(|v| v.to_string()).collect())
}

/// Versions already applied, oldest first.
///
/// # Errors
/// As [`run_pending`].
pub async fn applied(database_url: &str) -> Result<Vec<String>, StoreError> {
    let conn = AsyncPgConnection::establish(database_url)
        .await
        .map_err(|e| StoreError::Connection(e.to_string()))?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let mut v: Vec<String> = harness
        .applied_migrations()
        .map_err(|e| StoreError::Migration(e.to_string()))?
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    v.sort();
    Ok(v)
}

/// Creates the database named in `database_url` when it does not exist,
/// connecting to the server's `postgres` database to do so. Lets `make demo`
/// and a first deployment start from an empty server.
///
/// # Errors
/// [`StoreError::Connection`] when the server is unreachable,
/// [`StoreError::Migration`] when the name is unusable or creation fails.
pub async fn create_database_if_missing(database_url: &str) -> Result<(), StoreError> {
    use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
    if AsyncPgConnection::establish(database_url).await.is_ok() {
        return Ok(());
    }
    let (server, name) = split_database(database_url).ok_or_else(|| {
        StoreError::Migration(
            "cannot find a database name in the URL; expected postgres://user@host:5432/<database>"
                .to_owned(),
        )
    })?;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(StoreError::Migration(format!(
            "database name {name:?} must be letters, digits and underscores"
        )));
    }
    let mut conn = AsyncPgConnection::establish(&format!("{server}/postgres"))
        .await
        .map_err(|e| StoreError::Connection(e.to_string()))?;
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        found: bool,
    }
    let found: Found =
        diesel::sql_query("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS found")
            .bind::<diesel::sql_types::Text, _>(&name)
            .get_result(&mut conn)
            .await?;
    if !found.found {
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        tracing::info!(database = %name, "database created");
    }
    Ok(())
}

/// Splits `postgres://u@h:p/db?x` into (`postgres://u@h:p`, `db`).
fn split_database(url: &str) -> Option<(String, String)> {
    let no_query = url.split('?').next()?;
    let scheme_end = no_query.find("://")? + 3;
    let slash = no_query[scheme_end..].find('/')? + scheme_end;
    let name = &no_query[slash + 1..];
    if name.is_empty() {
        return None;
    }
    Some((no_query[..slash].to_owned(), name.to_owned()))
}
