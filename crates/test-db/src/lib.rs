//! Per-test PostgreSQL databases, cloned from a migrated template.
//!
//! Every test gets its own database (`CREATE DATABASE .. TEMPLATE ..`), so
//! tests run in parallel (nextest runs each in its own process) without
//! seeing each other's rows, and each database is dropped when the
//! [`TestDatabase`] is dropped. The template is named after a hash of the
//! embedded migrations, so changing a migration builds a new template instead
//! of reusing a stale one; a PostgreSQL advisory lock makes concurrent
//! processes build it once.
//!
//! The server is `ROOTCAUSE_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); the URL's database is only
//! used to issue `CREATE`/`DROP DATABASE`.
//!
//! ```no_run
//! # async fn t() -> Result<(), rootcause_test_db::TestDbError> {
//! let db = rootcause_test_db::TestDatabase::new().await?;
//! let pool = db.pool(4)?;
//! # Ok(()) }
//! ```

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

/// Why a test database could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestDbError {
    /// The server did not answer.
    #[error(
        "cannot connect to the test PostgreSQL at {url}: {message} (is it running? set ROOTCAUSE_TEST_DATABASE_URL)"
    )]
    Connect {
        /// Server URL.
        url: String,
        /// Driver message.
        message: String,
    },
    /// A statement failed.
    #[error("test database setup failed: {0}")]
    Sql(String),
    /// Migrations failed on the template.
    #[error(transparent)]
    Store(#[from] rootcause_diagnosis::db::StoreError),
}

/// The admin URL of the test server.
#[must_use]
pub fn server_url() -> String {
    std::env::var("ROOTCAUSE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` with its database name replaced.
fn with_database(url: &str, db: &str) -> String {
    // Strip query string, then the last path segment.
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let base = match base.rfind('/') {
        Some(i) if i > base.find("//").map_or(0, |j| j + 1) => &base[..i],
        _ => base,
    };
    format!("{base}/{db}{query}")
}

async fn connect(url: &str) -> Result<AsyncPgConnection, TestDbError> {
    AsyncPgConnection::establish(url)
        .await
        .map_err(|e| TestDbError::Connect {
            url: url.to_owned(),
            message: e.to_string(),
        })
}

fn template_name() -> Result<String, TestDbError> {
    let mut h = DefaultHasher::new();
    let migrations =
        MigrationSource::<Pg>::migrations(&rootcause_diagnosis::migrations::MIGRATIONS)
            .map_err(|e| TestDbError::Sql(e.to_string()))?;
    for m in migrations {
        m.name().to_string().hash(&mut h);
    }
    // The SQL text is part of the migrations' identity too: an edited
    // migration must not reuse a template built from the old text.
    for dir in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(dir.path().join("up.sql")) {
            s.hash(&mut h);
        }
    }
    Ok(format!("rc_tpl_{:016x}", h.finish()))
}

#[derive(diesel::QueryableByName)]
struct Exists {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    exists: bool,
}

async fn ensure_template(admin: &str) -> Result<String, TestDbError> {
    let name = template_name()?;
    let mut conn = connect(admin).await?;
    // One process builds the template; the others wait on the lock and then
    // find it ready.
    conn.batch_execute("SELECT pg_advisory_lock(74201)")
        .await
        .map_err(|e| TestDbError::Sql(e.to_string()))?;
    let result = async {
        let exists: Exists = diesel::sql_query(format!(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}') AS exists"
        ))
        .get_result(&mut conn)
        .await
        .map_err(|e| TestDbError::Sql(e.to_string()))?;
        if !exists.exists {
            let building = format!("{name}_building");
            conn.batch_execute(&format!("DROP DATABASE IF EXISTS {building}"))
                .await
                .map_err(|e| TestDbError::Sql(e.to_string()))?;
            conn.batch_execute(&format!("CREATE DATABASE {building}"))
                .await
                .map_err(|e| TestDbError::Sql(e.to_string()))?;
            rootcause_diagnosis::migrations::run_pending(&with_database(admin, &building)).await?;
            conn.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                .await
                .map_err(|e| TestDbError::Sql(e.to_string()))?;
        }
        Ok::<_, TestDbError>(())
    }
    .await;
    let _ = conn.batch_execute("SELECT pg_advisory_unlock(74201)").await;
    result.map(|()| name)
}

/// A database of its own for one test, migrated, dropped on `Drop`.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin: String,
}

impl TestDatabase {
    /// A fresh migrated database.
    ///
    /// # Errors
    /// When the server is unreachable or the template cannot be built.
    pub async fn new() -> Result<Self, TestDbError> {
        let admin = server_url();
        let template = ensure_template(&admin).await?;
        let name = format!("rc_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = connect(&admin).await?;
        conn.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .map_err(|e| TestDbError::Sql(e.to_string()))?;
        Ok(Self {
            url: with_database(&admin, &name),
            name,
            admin,
        })
    }

    /// A fresh database with no migrations applied, for migration tests.
    ///
    /// # Errors
    /// When the server is unreachable.
    pub async fn empty() -> Result<Self, TestDbError> {
        let admin = server_url();
        let name = format!("rc_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = connect(&admin).await?;
        conn.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|e| TestDbError::Sql(e.to_string()))?;
        Ok(Self {
            url: with_database(&admin, &name),
            name,
            admin,
        })
    }

    /// Connection URL of this database.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Database name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A pool over this database.
    ///
    /// # Errors
    /// When the pool cannot be built.
    pub fn pool(&self, max_size: usize) -> Result<rootcause_diagnosis::db::PgPool, TestDbError> {
        Ok(rootcause_diagnosis::db::pool(&self.url, max_size)?)
    }

    /// One connection to this database.
    ///
    /// # Errors
    /// When the server is unreachable.
    pub async fn connect(&self) -> Result<AsyncPgConnection, TestDbError> {
        connect(&self.url).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs outside any runtime guarantee, so use a thread with a
        // runtime of its own; FORCE ends connections a test left open.
        let admin = self.admin.clone();
        let name = self.name.clone();
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = connect(&admin).await {
                    let _ = conn
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        });
        let _ = handle.join();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_database_name() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/postgres?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
