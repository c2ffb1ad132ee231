//! The start-up self-check refuses a database where row-level security would not hold.

use sqlx::{Connection, Executor, PgConnection};

use crate::helpers::{db_url, fresh_database, test_env};
use serein::app::App;
use serein::app::AppConfig;
use serein::clock::Clock;

/// Create a cluster-wide role if missing, tolerating a concurrent creator.
pub async fn ensure_role(conn: &mut PgConnection, name: &str, attrs: &str) {
    let sql = format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
           BEGIN CREATE ROLE {name} {attrs}; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
         END IF; END $$"
    );
    conn.execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
}

async fn build_error(db: &str, role: Option<&str>) -> String {
    let mut env = test_env(db);
    if let Some(r) = role {
        env.insert("SEREIN_APP_ROLE".into(), r.into());
    }
    match App::build(AppConfig::load(&env).unwrap(), Clock::system()).await {
        Ok(_) => String::new(),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn refuses_a_superuser_request_role() {
    let db = fresh_database().await;
    let mut owner = PgConnection::connect(&db_url(&db)).await.unwrap();
    ensure_role(&mut owner, "serein_test_super", "NOLOGIN SUPERUSER").await;
    let err = build_error(&db, Some("serein_test_super")).await;
    assert!(err.contains("is a superuser"), "{err}");
    // The real role passes.
    assert_eq!(build_error(&db, None).await, "");
    let _ = owner.execute("DROP ROLE IF EXISTS serein_test_super").await;
}

#[tokio::test]
async fn refuses_a_bypassrls_request_role_or_one_that_can_become_privileged() {
    let db = fresh_database().await;
    let mut owner = PgConnection::connect(&db_url(&db)).await.unwrap();
    ensure_role(&mut owner, "serein_test_bypass", "NOLOGIN BYPASSRLS").await;
    let err = build_error(&db, Some("serein_test_bypass")).await;
    assert!(err.contains("has BYPASSRLS"), "{err}");
    ensure_role(&mut owner, "serein_test_member", "NOLOGIN").await;
    owner
        .execute("GRANT serein_test_bypass TO serein_test_member")
        .await
        .unwrap();
    let err = build_error(&db, Some("serein_test_member")).await;
    assert!(err.contains("member of privileged role"), "{err}");
}

#[tokio::test]
async fn refuses_when_the_request_role_owns_a_table() {
    let db = fresh_database().await;
    let mut owner = PgConnection::connect(&db_url(&db)).await.unwrap();
    ensure_role(&mut owner, "serein_test_owner", "NOLOGIN").await;
    owner
        .execute("CREATE TABLE owned_by_app (id int)")
        .await
        .unwrap();
    owner
        .execute("ALTER TABLE owned_by_app OWNER TO serein_test_owner")
        .await
        .unwrap();
    let err = build_error(&db, Some("serein_test_owner")).await;
    assert!(err.contains("owns public.owned_by_app"), "{err}");
}

#[tokio::test]
async fn refuses_a_tenant_table_without_forced_rls() {
    let db = fresh_database().await;
    let mut owner = PgConnection::connect(&db_url(&db)).await.unwrap();
    owner
        .execute("CREATE TABLE leaky (tenant_id uuid NOT NULL, body text)")
        .await
        .unwrap();
    let err = build_error(&db, None).await;
    assert!(
        err.contains("public.leaky has row-level security disabled"),
        "{err}"
    );
    owner
        .execute("ALTER TABLE leaky ENABLE ROW LEVEL SECURITY")
        .await
        .unwrap();
    let err = build_error(&db, None).await;
    assert!(
        err.contains("public.leaky does not FORCE row-level security"),
        "{err}"
    );
    owner
        .execute("ALTER TABLE leaky FORCE ROW LEVEL SECURITY")
        .await
        .unwrap();
    assert_eq!(build_error(&db, None).await, "");
}

/// The production shape: a NOINHERIT login role that can only become `serein_app`, with
/// migrations run beforehand by the owner. The server starts without migrating, serves, and is
/// ready; with a migration missing it refuses to start.
#[tokio::test]
async fn serves_as_a_noinherit_authenticator_without_migrating() {
    let mut maint = PgConnection::connect(&db_url("postgres")).await.unwrap();
    ensure_role(&mut maint, "serein_test_authenticator", "LOGIN NOINHERIT").await;
    maint
        .execute("GRANT serein_app TO serein_test_authenticator")
        .await
        .unwrap();

    let app = crate::helpers::TestApp::spawn_with(|s| {
        let mut u = url::Url::parse(&s.env["DATABASE_URL"]).unwrap();
        u.set_username("serein_test_authenticator").unwrap();
        s.env.insert("DATABASE_URL".into(), u.to_string());
        s.env
            .insert("SEREIN_MIGRATE_ON_START".into(), "false".into());
    })
    .await;
    assert_eq!(
        app.get("alpha.localhost", "/api/v1/tenant/profile")
            .await
            .status(),
        200
    );
    assert_eq!(app.get("127.0.0.1", "/health/ready").await.status(), 200);

    // The login role itself can read nothing: only the request role can.
    let mut u = url::Url::parse(&db_url(&app.db_name)).unwrap();
    u.set_username("serein_test_authenticator").unwrap();
    let mut login = PgConnection::connect(u.as_str()).await.unwrap();
    assert!(login.execute("SELECT 1 FROM tenants").await.is_err());

    let mut owner = app.owner().await;
    owner.execute("DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)").await.unwrap();
    let mut env = test_env(&app.db_name);
    env.insert("DATABASE_URL".into(), u.to_string());
    env.insert("SEREIN_MIGRATE_ON_START".into(), "false".into());
    let err = match App::build(AppConfig::load(&env).unwrap(), Clock::system()).await {
        Ok(_) => String::new(),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("run `serein migrate` first"), "{err}");

    // Leave no passwordless login role behind on the developer's cluster (best effort: a
    // concurrent run may still be using it).
    drop(login);
    app.stop().await;
    let _ = maint
        .execute("DROP ROLE IF EXISTS serein_test_authenticator")
        .await;
}

/// The roles migration is cluster-wide and must survive several databases migrating at once
/// (parallel test processes, replicas starting together): run it concurrently on fresh, empty
/// databases while the roles are being dropped and recreated.
#[tokio::test]
async fn role_migration_is_safe_when_run_concurrently() {
    let sql = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations/20261121000001_roles_and_app_schema.sql"),
    )
    .unwrap();
    // The real roles are in use by other tests; exercise the same statements on private names.
    let sql = sql
        .replace("serein_app", "serein_race_app")
        .replace("serein_owner", "serein_race_owner");
    let mut maint = PgConnection::connect(&db_url("postgres")).await.unwrap();
    let mut names = Vec::new();
    for i in 0..6 {
        let n = format!("serein_t_{}_race{i}", std::process::id());
        maint
            .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {n}")))
            .await
            .unwrap();
        maint
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {n}")))
            .await
            .unwrap();
        names.push(n);
    }
    for round in 0..3 {
        // Start from no roles each round so the creations really race.
        for n in &names {
            let mut c = PgConnection::connect(&db_url(n)).await.unwrap();
            c.execute(
                "DROP SCHEMA IF EXISTS app CASCADE; DROP SCHEMA IF EXISTS app_private CASCADE",
            )
            .await
            .unwrap();
        }
        let _ = maint.execute("DROP ROLE IF EXISTS serein_race_app").await;
        let _ = maint.execute("DROP ROLE IF EXISTS serein_race_owner").await;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(names.len()));
        let mut tasks = Vec::new();
        for n in &names {
            let url = db_url(n);
            let sql = sql.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = PgConnection::connect(&url).await.unwrap();
                barrier.wait().await;
                c.execute(sqlx::AssertSqlSafe(format!("BEGIN; {sql}; COMMIT")))
                    .await
                    .map(|_| ())
            }));
        }
        for t in tasks {
            t.await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
    }
    let (sup, bypass): (bool, bool) = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'serein_race_app'",
    )
    .fetch_one(&mut maint)
    .await
    .unwrap();
    assert!(!sup && !bypass);
    for n in &names {
        let mut c = PgConnection::connect(&db_url(n)).await.unwrap();
        c.execute("DROP SCHEMA IF EXISTS app CASCADE; DROP SCHEMA IF EXISTS app_private CASCADE")
            .await
            .unwrap();
        drop(c);
        maint
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {n} WITH (FORCE)"
            )))
            .await
            .unwrap();
    }
    let _ = maint.execute("DROP ROLE IF EXISTS serein_race_app").await;
    let _ = maint.execute("DROP ROLE IF EXISTS serein_race_owner").await;
}

#[tokio::test]
async fn refuses_definer_views_and_preset_context() {
    let db = fresh_database().await;
    let mut owner = PgConnection::connect(&db_url(&db)).await.unwrap();
    owner
        .execute("CREATE VIEW member_view AS SELECT tenant_id, user_id FROM memberships")
        .await
        .unwrap();
    let err = build_error(&db, None).await;
    assert!(
        err.contains("view public.member_view lacks security_invoker"),
        "{err}"
    );
    owner
        .execute("ALTER VIEW member_view SET (security_invoker = true)")
        .await
        .unwrap();
    assert_eq!(build_error(&db, None).await, "");

    owner.execute("CREATE MATERIALIZED VIEW member_counts AS SELECT tenant_id, count(*) FROM memberships GROUP BY 1").await.unwrap();
    assert_eq!(
        build_error(&db, None).await,
        "",
        "not readable by the app role: fine"
    );
    owner
        .execute("GRANT SELECT ON member_counts TO serein_app")
        .await
        .unwrap();
    let err = build_error(&db, None).await;
    assert!(
        err.contains("materialized view public.member_counts is readable"),
        "{err}"
    );
    owner
        .execute("DROP MATERIALIZED VIEW member_counts")
        .await
        .unwrap();

    owner
        .execute(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE {db} SET app.tenant_id = '00000000-0000-0000-0000-000000000001'"
        )))
        .await
        .unwrap();
    let err = build_error(&db, None).await;
    assert!(err.contains("default setting app.tenant_id="), "{err}");
    assert!(
        err.contains("this connection starts with app.tenant_id set"),
        "{err}"
    );
}
