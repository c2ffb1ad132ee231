//! The request path made faster (issue 10) keeps its invariants: the context is set with the
//! BEGIN and lives only in its transaction, as the request role; the pool takes a connection
//! back without a round trip only after a clean COMMIT and resets (or closes) every other one
//! before reuse, including after a cancelled statement and a failed guard; and the functions
//! the migration `20261205000001_fast_context` rewrote keep their answers and their privileges,
//! tried as the attacker (`serein_app` with a crafted context).

use std::future::Future;

use serein::db::tenancy::DbActor;
use serein::db::{TenantTx, UserId};
use serein::rbac::Role;
use sqlx::{Executor, PgConnection};

use crate::helpers::*;
use crate::people::{host, member_session};

/// An app whose pool holds one connection: every transaction reuses the previous one's.
async fn one_connection() -> TestApp {
    TestApp::spawn_with(|s| {
        s.env.insert("DB_MAX_CONNECTIONS".into(), "1".into());
    })
    .await
}

/// A transaction as an admin of tenant A.
async fn admin_tx(app: &TestApp, user: UserId) -> TenantTx {
    TenantTx::begin(&app.db, app.tenant_a, Some(&actor(user)))
        .await
        .unwrap()
}

fn actor(user: UserId) -> DbActor {
    DbActor::new(user, vec![Role::TenantAdmin, Role::Hr])
}

/// Current role and settings of a connection.
async fn context_of(conn: &mut PgConnection) -> (String, String, String, String, String) {
    sqlx::query_as(
        "SELECT current_user::text, coalesce(current_setting('app.tenant_id', true), ''), \
                coalesce(current_setting('app.user_id', true), ''), \
                coalesce(current_setting('app.roles', true), ''), \
                current_setting('statement_timeout')",
    )
    .fetch_one(conn)
    .await
    .unwrap()
}

/// Not inside a transaction, and no context: what every pooled connection must look like.
async fn assert_clean(conn: &mut PgConnection) {
    assert!(
        conn.execute("SAVEPOINT leak_probe").await.is_err(),
        "a pooled connection is inside a transaction"
    );
    let (role, tenant, user, roles, timeout) = context_of(conn).await;
    assert_eq!(role, "postgres");
    assert_eq!(
        (tenant.as_str(), user.as_str(), roles.as_str()),
        ("", "", "")
    );
    assert_eq!(
        timeout, "0",
        "a transaction-local limit outlived its transaction"
    );
}

/// Poll until the pool has `n` idle connections (a reset runs in a spawned task). Bounded by a
/// number of scheduler turns, not by time.
async fn until_idle(app: &TestApp, n: usize) {
    for _ in 0..100_000 {
        if app.db.stats().idle == n {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!(
        "the pool never got {n} idle connection(s) back: {:?}",
        app.db.stats()
    );
}

#[tokio::test]
async fn the_context_is_the_request_roles_and_lives_only_in_its_transaction() {
    let app = one_connection().await;
    let user = UserId::new();
    let mut tx = admin_tx(&app, user).await;
    let (role, tenant, u, roles, timeout) = context_of(&mut tx).await;
    assert_eq!(role, "serein_app");
    assert_eq!(tenant, app.tenant_a.to_string());
    assert_eq!(u, user.to_string());
    assert_eq!(roles, "tenant_admin,hr");
    assert_ne!(timeout, "0", "the statement timeout is set per transaction");
    tx.commit().await.unwrap();
    // The only connection, taken straight back after the COMMIT: nothing of it remains.
    assert_eq!(app.db.stats().idle, 1);
    let mut c = app.db.admin_conn().await.unwrap();
    assert_clean(&mut c).await;
}

#[tokio::test]
async fn only_a_clean_commit_skips_the_reset_and_every_other_release_is_reset_first() {
    let app = one_connection().await;
    let user = UserId::new();

    // A committed transaction: back in the idle list at once (no reset round trip).
    let tx = admin_tx(&app, user).await;
    assert_eq!(app.db.stats().idle, 0);
    tx.commit().await.unwrap();
    assert_eq!(
        app.db.stats().idle,
        1,
        "a committed connection was not returned at once"
    );

    // Dropped without commit: not idle until the queued ROLLBACK was flushed by the reset.
    let tx = admin_tx(&app, user).await;
    drop(tx);
    assert_eq!(
        app.db.stats().idle,
        0,
        "a connection with a queued ROLLBACK was handed back without its reset"
    );
    until_idle(&app, 1).await;
    let mut c = app.db.admin_conn().await.unwrap();
    assert_clean(&mut c).await;
    drop(c);
    // A raw connection is reset too (its user may have left anything behind).
    assert_eq!(app.db.stats().idle, 0);
    until_idle(&app, 1).await;
    assert_eq!(
        app.db.stats().size,
        1,
        "the pool opened or lost a connection"
    );
}

#[tokio::test]
async fn a_statement_cancelled_mid_flight_never_reaches_the_next_request() {
    let app = one_connection().await;
    let user = UserId::new();
    let mut tx = admin_tx(&app, user).await;
    {
        // Sent, then abandoned before its reply (a client gone, a request timeout).
        let mut fut =
            Box::pin(tx.execute("SELECT pg_sleep(0.05), set_config('app.roles', 'hr', true)"));
        std::future::poll_fn(|cx| {
            let _ = fut.as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
    }
    drop(tx);
    // The only connection: the next transaction gets it only after the reset drained the
    // abandoned reply and rolled back, so it sees its own context and nothing else.
    let other = UserId::new();
    let mut next = TenantTx::begin(
        &app.db,
        app.tenant_b,
        Some(&DbActor::new(other, vec![Role::Employee])),
    )
    .await
    .unwrap();
    let (role, tenant, u, roles, _) = context_of(&mut next).await;
    assert_eq!(role, "serein_app");
    assert_eq!(tenant, app.tenant_b.to_string());
    assert_eq!(u, other.to_string());
    assert_eq!(roles, "employee");
    next.commit().await.unwrap();
    let mut c = app.db.admin_conn().await.unwrap();
    assert_clean(&mut c).await;
    assert_eq!(app.db.stats().waiting, 0);
}

#[tokio::test]
async fn a_refused_session_returns_a_clean_connection() {
    let app = one_connection().await;
    let h = host("alpha");
    let (_, token) = member_session(&app, &[Role::Employee]).await;
    let mut owner = app.owner().await;
    owner
        .execute("UPDATE sessions SET revoked_at = now(), revoked_reason = 'admin'")
        .await
        .unwrap();
    for _ in 0..3 {
        let res = app
            .req(reqwest::Method::GET, &h, "/api/v1/auth/me")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(problem(res).await["code"], "session_revoked");
    }
    // The failed guard's transaction was rolled back (awaited) on the one connection, which
    // then served the next requests: it is clean, and was never replaced.
    let mut c = app.db.admin_conn().await.unwrap();
    assert_clean(&mut c).await;
    assert_eq!(app.db.stats().size, 1);
}

/// The rewritten functions keep their privileges: definer rules where they were definers,
/// nothing for PUBLIC, and the request role only where it had EXECUTE before.
#[tokio::test]
async fn the_rewritten_functions_keep_their_privileges() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    for (f, definer, granted) in [
        ("app_private.session_proof_mac(uuid, uuid)", false, false),
        ("app_private.own_totp_enabled()", true, true),
        ("app_private.resolve_tenant(text)", true, true),
    ] {
        let (secdef, config, public, app_role, worker): (bool, Vec<String>, bool, bool, bool) =
            sqlx::query_as(
                "SELECT p.prosecdef, coalesce(p.proconfig, '{}'),
                        EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0),
                        has_function_privilege('serein_app', p.oid, 'EXECUTE'),
                        has_function_privilege('serein_worker', p.oid, 'EXECUTE')
                 FROM pg_proc p WHERE p.oid = $1::regprocedure",
            )
            .bind(f)
            .fetch_one(&mut owner)
            .await
            .unwrap();
        assert_eq!(secdef, definer, "{f}");
        assert_eq!(config, vec!["search_path=\"\"".to_owned()], "{f}");
        assert!(!public, "{f} is executable by PUBLIC");
        assert_eq!(app_role, granted, "{f}");
        assert!(!worker, "{f}");
    }
}

/// As the attacker: the request role cannot compute a session proof itself, whatever context
/// it claims; and the proof the guard leaves is still the one the key doors recompute (the
/// MAC is byte for byte the former SQL formula).
#[tokio::test]
async fn the_session_proof_is_unchanged_and_out_of_the_request_roles_reach() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let user = seed_world(&mut owner, app.tenant_a, "mac").await;

    as_app(&mut owner, Some(app.tenant_a), Some(user)).await;
    let e = sqlx::query_scalar::<_, String>("SELECT app_private.session_proof_mac($1, $2)")
        .bind(app.tenant_a.as_uuid())
        .bind(user.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap_err();
    assert_eq!(
        e.as_database_error().and_then(|d| d.code()).as_deref(),
        Some("42501")
    );
    owner.execute("ROLLBACK").await.unwrap();
    as_app(&mut owner, Some(app.tenant_a), Some(user)).await;
    assert!(
        owner
            .execute("SELECT * FROM app_private.proof_secret")
            .await
            .is_err()
    );
    owner.execute("ROLLBACK").await.unwrap();

    // Same transaction, same backend: the function and the former formula agree.
    owner.execute("BEGIN").await.unwrap();
    let (new, old): (String, String) = sqlx::query_as(
        "SELECT app_private.session_proof_mac($1, $2),
                (SELECT pg_catalog.encode(pg_catalog.sha256(s.secret || pg_catalog.sha256(s.secret ||
                     pg_catalog.convert_to(pg_catalog.concat_ws('|', 'serein session proof v1',
                         $1::text, $2::text, pg_catalog.pg_backend_pid()::text,
                         (EXTRACT(EPOCH FROM pg_catalog.transaction_timestamp()))::text), 'UTF8'))), 'hex')
                 FROM app_private.proof_secret s)",
    )
    .bind(app.tenant_a.as_uuid())
    .bind(user.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    owner.execute("COMMIT").await.unwrap();
    assert_eq!(new, old);
    assert_eq!(new.len(), 64);

    // End to end: the guard's proof opens proven_user() in its transaction, for its person.
    assert!(as_member_with_session(&mut owner, app.tenant_a, user).await);
    owner.execute("RESET ROLE").await.unwrap();
    let proven: Option<uuid::Uuid> = sqlx::query_scalar("SELECT app_private.proven_user()")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(proven, Some(user.as_uuid()));
    owner.execute("ROLLBACK").await.unwrap();
    // A context merely claiming the person proves nothing.
    as_app(&mut owner, Some(app.tenant_a), Some(user)).await;
    owner
        .execute("SELECT set_config('app.session_proof', repeat('0', 64), true)")
        .await
        .unwrap();
    owner.execute("RESET ROLE").await.unwrap();
    let proven: Option<uuid::Uuid> = sqlx::query_scalar("SELECT app_private.proven_user()")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(proven, None);
    owner.execute("ROLLBACK").await.unwrap();
}

/// As the attacker: `own_totp_enabled()` answers for the context's person only (NULL without
/// one), and `resolve_tenant` never resolves the platform's reserved slug.
#[tokio::test]
async fn the_rewritten_definers_answer_as_before() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let user = seed_world(&mut owner, app.tenant_a, "totp").await;
    sqlx::query("UPDATE users SET totp_enabled_at = now() WHERE id = $1")
        .bind(user.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    let other = seed_world(&mut owner, app.tenant_a, "nototp").await;
    for (who, want) in [
        (Some(user), Some(true)),
        (Some(other), Some(false)),
        (None, None),
    ] {
        as_app(&mut owner, Some(app.tenant_a), who).await;
        let got: Option<bool> = sqlx::query_scalar("SELECT app_private.own_totp_enabled()")
            .fetch_one(&mut owner)
            .await
            .unwrap();
        owner.execute("ROLLBACK").await.unwrap();
        assert_eq!(got, want, "{who:?}");
    }

    for (slug, found) in [
        ("alpha", true),
        ("platform", false),
        ("nope", false),
        ("", false),
    ] {
        as_app(&mut owner, None, None).await;
        let rows: Vec<(uuid::Uuid, String)> =
            sqlx::query_as("SELECT id, status FROM app_private.resolve_tenant($1)")
                .bind(slug)
                .fetch_all(&mut owner)
                .await
                .unwrap();
        owner.execute("ROLLBACK").await.unwrap();
        assert_eq!(rows.len(), usize::from(found), "{slug}");
        if found {
            assert_eq!(rows[0].0, app.tenant_a.as_uuid());
            assert_eq!(rows[0].1, "active");
        }
    }
}
