//! Issue 9, items 4 (mail-worker part), 11 and 12: background jobs reach the database through
//! doors of their own, tested as the attacker (the request role with a crafted context) and in
//! the production role layout of helm/serein/README.md (a NOINHERIT authenticator that can
//! become `serein_app` and `serein_worker` only, migrations run beforehand by the owner).

use serein::app::App;
use serein::app::AppConfig;
use serein::clock::Clock;
use serein::mail::{MailWorker, Message};
use serein::tenants::model::Locale;
use sqlx::{Connection, Executor, PgConnection};

use crate::helpers::{TestApp, as_app, db_url, seed_world, test_env};
use crate::selfcheck::ensure_role;

/// The SQLSTATE of an error, or "" on success.
async fn sqlstate(conn: &mut PgConnection, sql: &str) -> String {
    conn.execute("SAVEPOINT probe").await.unwrap();
    let out = match conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await {
        Ok(_) => String::new(),
        Err(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()).unwrap_or_default(),
        Err(e) => panic!("{e}"),
    };
    conn.execute("ROLLBACK TO SAVEPOINT probe").await.unwrap();
    out
}

/// The mail worker's definers used to trust "no tenant context" as proof that the caller was the
/// worker; `set_config('app.tenant_id', '', true)` gave any request transaction every tenant's
/// queued mail (reset links included). Now only `serein_worker` may call them, and that role
/// reaches nothing else.
#[tokio::test]
async fn the_request_role_cannot_act_as_the_mail_worker_whatever_its_context() {
    let app = TestApp::spawn().await;
    crate::mail::support::enqueue_committed(
        &app,
        app.tenant_a,
        "victim@acme.test",
        Locale::En,
        &Message::PasswordReset {
            link: "https://alpha.localhost/reset-password?token=0190.s3cret".into(),
            expires_in_minutes: 60,
        },
    )
    .await;
    let mut conn = app.owner().await;
    let calls = [
        "SELECT * FROM app_private.mail_claim(now() + interval '1 day', 10, 60, 5)",
        "SELECT app_private.mail_prune(now() + interval '100 days', 10)",
        "SELECT app_private.mail_mark_sent(gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), now())",
        "SELECT * FROM app_private.mail_mark_failed(gen_random_uuid(), gen_random_uuid(), \
         gen_random_uuid(), now(), 'x', true, 5, 1, 1)",
    ];
    // Unset context, an explicitly emptied tenant (the old bypass), and a tenant's context.
    for tenant in [None, Some(app.tenant_a)] {
        as_app(&mut conn, tenant, None).await;
        conn.execute("SELECT set_config('app.tenant_id', '', true)")
            .await
            .unwrap();
        for call in calls {
            assert_eq!(sqlstate(&mut conn, call).await, "42501", "{call}");
        }
        conn.execute("ROLLBACK").await.unwrap();
    }
    // Nothing was leased: the row is still pending with no attempt.
    let (status, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM email_outbox")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("pending", 0));

    // The worker role is narrow: no table of any tenant, no request definer.
    conn.execute("BEGIN").await.unwrap();
    conn.execute("SELECT set_config('role', 'serein_worker', true)")
        .await
        .unwrap();
    for sql in [
        "SELECT 1 FROM email_outbox",
        "SELECT 1 FROM tenants",
        "SELECT 1 FROM users",
        "SELECT 1 FROM memberships",
        "SELECT 1 FROM sessions",
        "INSERT INTO email_outbox (tenant_id) VALUES (gen_random_uuid())",
    ] {
        assert_eq!(sqlstate(&mut conn, sql).await, "42501", "{sql}");
    }
    conn.execute("ROLLBACK").await.unwrap();
    // And the request role is not a member of it (so no request can SET ROLE to it).
    let member: bool = sqlx::query_scalar(
        "SELECT pg_has_role('serein_app', 'serein_worker', 'MEMBER') \
             OR pg_has_role('serein_worker', 'serein_app', 'MEMBER')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(!member);

    // The worker itself still delivers through its own door.
    assert_eq!(
        MailWorker::from_state(&app.state).run_once().await.unwrap(),
        1
    );
    let status: String = sqlx::query_scalar("SELECT status FROM email_outbox")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(status, "sent");
}

async fn build_error(env: &std::collections::HashMap<String, String>) -> String {
    match App::build(AppConfig::load(env).unwrap(), Clock::system()).await {
        Ok(_) => String::new(),
        Err(e) => format!("{e:#}"),
    }
}

fn with_user(url: &str, user: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_username(user).unwrap();
    u.to_string()
}

/// The production layout: the API pods log in as a NOINHERIT authenticator. Before, the purge
/// job ran on that login as if it were the owner and failed every run (offboarded companies were
/// never purged), and the mail worker ran as the request role. Now each job's door is checked
/// at start-up, and with the documented configuration both jobs work.
#[tokio::test]
async fn jobs_work_in_the_production_role_layout_or_refuse_to_start() {
    const AUTH: &str = "serein_test_jobs_authenticator";
    let mut maint = PgConnection::connect(&db_url("postgres")).await.unwrap();
    ensure_role(&mut maint, AUTH, "LOGIN NOINHERIT").await;
    maint
        .execute(sqlx::AssertSqlSafe(format!("GRANT serein_app TO {AUTH}")))
        .await
        .unwrap();
    maint
        .execute(sqlx::AssertSqlSafe(format!(
            "REVOKE serein_worker FROM {AUTH}"
        )))
        .await
        .unwrap();

    // An app serving as the authenticator, jobs off (as the tests run them by hand).
    let app = TestApp::spawn_with(|s| {
        let url = with_user(&s.env["DATABASE_URL"], AUTH);
        s.env.insert("DATABASE_URL".into(), url);
        s.env
            .insert("SEREIN_MIGRATE_ON_START".into(), "false".into());
    })
    .await;
    let owner_url = db_url(&app.db_name);
    let auth_url = with_user(&owner_url, AUTH);
    let mut env = test_env(&app.db_name);
    env.insert("DATABASE_URL".into(), auth_url.clone());
    env.insert("SEREIN_MIGRATE_ON_START".into(), "false".into());

    // Mail worker: the authenticator cannot become serein_worker → refuse to start, saying so.
    env.insert("MAIL_WORKER".into(), "true".into());
    let err = build_error(&env).await;
    assert!(
        err.contains("GRANT serein_worker TO serein_test_jobs_authenticator"),
        "{err}"
    );
    maint
        .execute(sqlx::AssertSqlSafe(format!(
            "GRANT serein_worker TO {AUTH}"
        )))
        .await
        .unwrap();
    assert_eq!(build_error(&env).await, "");
    env.insert("MAIL_WORKER".into(), "false".into());

    // Purge worker: no owner door → refuse to start, naming the setting.
    env.insert("PURGE_WORKER".into(), "true".into());
    let err = build_error(&env).await;
    assert!(err.contains("JOBS_DATABASE_URL"), "{err}");
    env.insert("JOBS_DATABASE_URL".into(), owner_url.clone());
    assert_eq!(build_error(&env).await, "");

    // With the owner door configured, the authenticator-served app's purge really purges.
    let mut owner = app.owner().await;
    let due = serein::db::TenantId::new();
    sqlx::query(
        "INSERT INTO tenants (id, slug, name, plan, status, offboard_requested_at, purge_after)
         VALUES ($1, 'gone', 'Gone', 'starter', 'offboarding', now(), now() - interval '1 day')",
    )
    .bind(due.as_uuid())
    .execute(&mut owner)
    .await
    .unwrap();
    seed_world(&mut owner, due, "gone").await;
    let jobs = App::build(AppConfig::load(&env).unwrap(), Clock::system())
        .await
        .unwrap();
    let purged = serein::platform::purge::purge_due(
        &jobs.state.db,
        &jobs.state.keyring,
        time::OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(purged.len(), 1);
    let (status, members): (String, i64) = sqlx::query_as(
        "SELECT t.status, (SELECT count(*) FROM memberships m WHERE m.tenant_id = t.id)
         FROM tenants t WHERE t.id = $1",
    )
    .bind(due.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!((status.as_str(), members), ("offboarded", 0));

    // The mail worker, as the authenticator through serein_worker, delivers.
    crate::mail::support::enqueue_committed(
        &app,
        app.tenant_a,
        "someone@acme.test",
        Locale::En,
        &Message::VerifyEmail {
            link: "https://alpha.localhost/verify-email?token=x".into(),
        },
    )
    .await;
    assert_eq!(
        MailWorker::from_state(&app.state).run_once().await.unwrap(),
        1
    );

    jobs.state.db.close().await;
    app.stop().await;
    drop(owner);
    let _ = maint
        .execute(sqlx::AssertSqlSafe(format!(
            "REVOKE serein_worker, serein_app FROM {AUTH}"
        )))
        .await;
    let _ = maint
        .execute(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {AUTH}")))
        .await;
}
