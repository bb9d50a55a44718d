//! `[database]` builds a working pool and migrates at start only when asked.

use rootcause_runtime::Settings;

use crate::settings_with;

fn settings(url: &str, migrate: bool) -> Settings {
    settings_with(&[
        ("ROOTCAUSE__DATABASE__URL", url),
        (
            "ROOTCAUSE__DATABASE__MIGRATE_ON_START",
            if migrate { "true" } else { "false" },
        ),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_on_start_applies_pending_migrations_only_when_set() {
    let db = rootcause_test_db::TestDatabase::new()
        .await
        .expect("test database");
    let reverted = rootcause_diagnosis::migrations::revert_all(db.url())
        .await
        .expect("revert");
    assert!(!reverted.is_empty());

    let off = settings(db.url(), false);
    assert!(
        off.database
            .migrate_if_enabled()
            .await
            .expect("off")
            .is_empty()
    );
    assert!(
        rootcause_diagnosis::migrations::applied(db.url())
            .await
            .expect("applied")
            .is_empty(),
        "nothing applied when migrate_on_start is false"
    );

    let on = settings(db.url(), true);
    let mut applied = on.database.migrate_if_enabled().await.expect("migrate");
    applied.sort();
    let mut expected = reverted.clone();
    expected.sort();
    assert_eq!(applied, expected);
    assert!(
        on.database
            .migrate_if_enabled()
            .await
            .expect("again")
            .is_empty(),
        "idempotent"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_reaches_the_configured_database() {
    use diesel_async::RunQueryDsl as _;
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let db = rootcause_test_db::TestDatabase::new()
        .await
        .expect("test database");
    let s = settings(db.url(), false);
    let pool = s.database.pool().expect("pool");
    assert_eq!(pool.status().max_size, 10);
    let mut conn = pool.get().await.expect("connection");
    let row: Name = diesel::sql_query("SELECT current_database()::text AS name")
        .get_result(&mut conn)
        .await
        .expect("query");
    assert!(
        db.url().ends_with(&row.name),
        "{} vs {}",
        row.name,
        db.url()
    );
}
