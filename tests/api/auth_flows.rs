//! Issue 10, item 6: the auth flows as a real client meets them. Refresh-token rotation with a
//! reuse interval (two tabs, a retry after a timeout): within the interval the previous token
//! returns the SAME successor, after it reuse still revokes the family; both sides of the
//! window on the injected clock; two refreshes sent at once; the definer attacked as
//! `serein_app` with crafted `app.*` values; roles from the database that the server does not
//! know are an error, never dropped.

use serde_json::{Value, json};
use sqlx::{Executor, PgConnection};

use crate::helpers::{TestApp, as_app, problem};
use crate::people::*;
use serein::db::{TenantId, UserId};

const REFRESH: &str = "/api/v1/auth/refresh";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn refresh(app: &TestApp, h: &str, token: &Value) -> reqwest::Response {
    post(app, h, REFRESH, json!({ "refresh_token": token })).await
}

async fn me_status(app: &TestApp, h: &str, body: &Value) -> u16 {
    call(
        app,
        reqwest::Method::GET,
        h,
        "/api/v1/auth/me",
        body["access_token"].as_str().unwrap(),
    )
    .await
    .status()
    .as_u16()
}

async fn revoked_reason(app: &TestApp, session: &Value) -> Option<String> {
    sqlx::query_scalar("SELECT revoked_reason FROM sessions WHERE id = $1::text::uuid")
        .bind(session.as_str().unwrap())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

async fn refresh_rows(app: &TestApp, session: &Value) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE session_id = $1::text::uuid")
        .bind(session.as_str().unwrap())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_replay_within_the_interval_returns_the_same_successor_and_after_it_revokes() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.state.config.auth.refresh_reuse_interval,
        std::time::Duration::from_secs(10),
        "the default interval"
    );
    add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
    let h = host("alpha");
    let t1 = login(&app, &h, "ana@alpha.test").await;
    let r1 = t1["refresh_token"].clone();
    let res = refresh(&app, &h, &r1).await;
    assert_eq!(res.status(), 200);
    let t2: Value = res.json().await.unwrap();
    assert_ne!(t2["refresh_token"], r1);

    // The same instant (a retry after a timeout) and 9 s later (a second tab): the same
    // successor, a working access token, nothing new in the database.
    for wait in [0, 9] {
        app.clock.advance(time::Duration::seconds(wait));
        let res = refresh(&app, &h, &r1).await;
        assert_eq!(res.status(), 200, "replay {wait} s after the rotation");
        let again: Value = res.json().await.unwrap();
        assert_eq!(
            again["refresh_token"], t2["refresh_token"],
            "the same successor"
        );
        assert_eq!(again["session_id"], t1["session_id"]);
        assert_eq!(again["refresh_expires_at"], t2["refresh_expires_at"]);
        assert_eq!(me_status(&app, &h, &again).await, 200);
        assert_eq!(refresh_rows(&app, &t1["session_id"]).await, 2);
        assert_eq!(revoked_reason(&app, &t1["session_id"]).await, None);
    }

    // 10 s after the rotation: the interval is over, reuse revokes the whole family.
    app.clock.advance(time::Duration::seconds(1));
    let res = refresh(&app, &h, &r1).await;
    assert_eq!(res.status(), 401);
    assert_eq!(problem(res).await["code"], "refresh_reused");
    assert_eq!(
        revoked_reason(&app, &t1["session_id"]).await.as_deref(),
        Some("refresh_reuse")
    );
    let res = refresh(&app, &h, &t2["refresh_token"]).await;
    assert_eq!(res.status(), 401, "the successor dies with the family");
    assert_eq!(me_status(&app, &h, &t2).await, 401);
}

#[tokio::test]
async fn the_successor_keeps_rotating_and_an_older_generation_still_revokes() {
    let app = TestApp::spawn().await;
    add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
    let h = host("alpha");
    let t1 = login(&app, &h, "ana@alpha.test").await;
    let r1 = t1["refresh_token"].clone();
    let t2: Value = refresh(&app, &h, &r1).await.json().await.unwrap();
    // The (replayed) successor rotates normally into a new one.
    let res = refresh(&app, &h, &t2["refresh_token"]).await;
    assert_eq!(res.status(), 200);
    let t3: Value = res.json().await.unwrap();
    assert_ne!(t3["refresh_token"], t2["refresh_token"]);
    assert_ne!(t3["refresh_token"], r1);
    // r1's successor is spent now: replaying r1, even within the interval, is an older
    // generation: the family dies.
    let res = refresh(&app, &h, &r1).await;
    assert_eq!(res.status(), 401);
    assert_eq!(problem(res).await["code"], "refresh_reused");
    assert_eq!(refresh(&app, &h, &t3["refresh_token"]).await.status(), 401);
    assert_eq!(
        revoked_reason(&app, &t1["session_id"]).await.as_deref(),
        Some("refresh_reuse")
    );
}

#[tokio::test]
async fn two_refreshes_sent_at_once_both_get_the_same_successor() {
    let app = TestApp::spawn().await;
    add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
    let h = host("alpha");
    let t = login(&app, &h, "ana@alpha.test").await;
    let session = t["session_id"].clone();
    let mut token = t["refresh_token"].clone();
    // Several rounds: two tabs refresh the same token at the same time, each round.
    for round in 1..=3_i64 {
        let (a, b) = tokio::join!(refresh(&app, &h, &token), refresh(&app, &h, &token));
        assert_eq!(a.status(), 200, "round {round}, first");
        assert_eq!(b.status(), 200, "round {round}, second");
        let a: Value = a.json().await.unwrap();
        let b: Value = b.json().await.unwrap();
        assert_eq!(a["refresh_token"], b["refresh_token"], "round {round}");
        assert_ne!(a["refresh_token"], token);
        assert_eq!(me_status(&app, &h, &a).await, 200);
        assert_eq!(me_status(&app, &h, &b).await, 200);
        // One successor per rotation, never two.
        assert_eq!(refresh_rows(&app, &session).await, round + 1);
        assert_eq!(revoked_reason(&app, &session).await, None);
        token = a["refresh_token"].clone();
        app.clock.advance(time::Duration::seconds(60));
    }
}

#[tokio::test]
async fn an_interval_of_zero_is_strict_reuse_detection() {
    let app = TestApp::spawn_with(|s| {
        s.env
            .insert("REFRESH_TOKEN_REUSE_INTERVAL_SECS".into(), "0".into());
    })
    .await;
    add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
    let h = host("alpha");
    let t1 = login(&app, &h, "ana@alpha.test").await;
    assert_eq!(refresh(&app, &h, &t1["refresh_token"]).await.status(), 200);
    let res = refresh(&app, &h, &t1["refresh_token"]).await;
    assert_eq!(res.status(), 401);
    assert_eq!(problem(res).await["code"], "refresh_reused");
    // The setting is bounded: above 60 s the server refuses to start.
    let mut env = crate::helpers::test_env("unused");
    env.insert("REFRESH_TOKEN_REUSE_INTERVAL_SECS".into(), "61".into());
    assert!(serein::app::AppConfig::load(&env).is_err());
}

/// `app_private.rotate_refresh_token` as `serein_app` in `tenant` claiming `user`: its outcome.
/// Rolled back.
async fn rotate_as(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    user: Option<UserId>,
    presented: &str,
    child_hash: &[u8],
    interval: &str,
) -> String {
    as_app(conn, tenant, user).await;
    let outcome: String = sqlx::query_scalar(
        "SELECT outcome FROM app_private.rotate_refresh_token($1, gen_random_uuid(), $2, now(), now() + interval '1 hour', $3::interval)",
    )
    .bind(presented)
    .bind(child_hash)
    .bind(interval)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    conn.execute("ROLLBACK").await.unwrap();
    outcome
}

async fn unspent(owner: &mut PgConnection, user: UserId) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND used_at IS NULL")
        .bind(user.as_uuid())
        .fetch_one(owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_rotation_definer_holds_against_crafted_contexts() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    let victim = add_person(&app, a, "victim@alpha.test", &["employee"]).await;
    let other = add_person(&app, a, "other@alpha.test", &["employee"]).await;
    let h = host("alpha");
    let t = login(&app, &h, "victim@alpha.test").await;
    let live = t["refresh_token"].as_str().unwrap().to_owned();
    let mut owner = app.owner().await;
    assert_eq!(unspent(&mut owner, victim).await, 1);
    let planted = [7u8; 32];

    // A context claiming the victim can read the hash of their live token (the policy shows
    // it), but the hash is no proof any more: presented as the token, it is unknown.
    let mut conn = app.owner().await;
    as_app(&mut conn, Some(a), Some(victim)).await;
    let hash: Vec<u8> =
        sqlx::query_scalar("SELECT token_hash FROM refresh_tokens WHERE used_at IS NULL LIMIT 1")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    conn.execute("ROLLBACK").await.unwrap();
    for presented in [
        hex(&hash),
        format!("\\x{}", hex(&hash)),
        // The raw bytes as text (a NUL cannot travel in a text parameter: PostgreSQL refuses
        // it with 22021 for the attacker too, so it is left out here).
        String::from_utf8_lossy(&hash).replace('\0', ""),
    ] {
        assert_eq!(
            rotate_as(
                &mut conn,
                Some(a),
                Some(victim),
                &presented,
                &planted,
                "10 seconds"
            )
            .await,
            "unknown"
        );
    }
    // The old signature, which took the hash as proof, is gone.
    as_app(&mut conn, Some(a), Some(victim)).await;
    let old = conn
        .execute(sqlx::AssertSqlSafe(format!(
            "SELECT app_private.rotate_refresh_token('\\x{}'::bytea, gen_random_uuid(), '\\x{}'::bytea, now(), now() + interval '1 hour')",
            hex(&hash),
            hex(&planted)
        )))
        .await
        .unwrap_err();
    conn.execute("ROLLBACK").await.unwrap();
    assert_eq!(old.as_database_error().unwrap().code().unwrap(), "42883");
    // Nor can the request role spend the victim's tokens itself (which would make their next
    // refresh look like a reuse and kill their session).
    as_app(&mut conn, Some(a), Some(victim)).await;
    let spend = conn
        .execute("UPDATE refresh_tokens SET used_at = now()")
        .await
        .unwrap_err();
    conn.execute("ROLLBACK").await.unwrap();
    assert_eq!(spend.as_database_error().unwrap().code().unwrap(), "42501");

    // Even with the real token, it acts only for the context's own tenant and person.
    for (tenant, user) in [
        (Some(a), Some(other)),
        (Some(b), Some(victim)),
        (Some(a), None),
        (None, Some(victim)),
    ] {
        assert_eq!(
            rotate_as(&mut conn, tenant, user, &live, &planted, "10 seconds").await,
            "unknown",
            "{tenant:?} {user:?}"
        );
    }
    assert_eq!(
        unspent(&mut owner, victim).await,
        1,
        "nothing planted, nothing spent"
    );
    let children: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND token_hash = $2",
    )
    .bind(victim.as_uuid())
    .bind(planted.as_slice())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(children, 0);

    // A spent token: a replay with a child hash that is not the server's derivation of the
    // successor is reuse, whatever the interval; and a replay long after the spend is reuse
    // even when the caller asks for a century of interval (clamped to 60 s).
    let res = post(&app, &h, REFRESH, json!({ "refresh_token": live })).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        rotate_as(
            &mut conn,
            Some(a),
            Some(victim),
            &live,
            &planted,
            "10 seconds"
        )
        .await,
        "reused"
    );
    sqlx::query("UPDATE refresh_tokens SET used_at = now() - interval '61 seconds' WHERE user_id = $1 AND used_at IS NOT NULL")
        .bind(victim.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    let successor_hash: Vec<u8> = sqlx::query_scalar(
        "SELECT token_hash FROM refresh_tokens WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(victim.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(
        rotate_as(
            &mut conn,
            Some(a),
            Some(victim),
            &live,
            &successor_hash,
            "100 years"
        )
        .await,
        "reused"
    );
    // Inside the interval, with the real successor's hash, the replay is recognised (and
    // mints nothing).
    sqlx::query("UPDATE refresh_tokens SET used_at = now() - interval '5 seconds' WHERE user_id = $1 AND used_at IS NOT NULL")
        .bind(victim.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    assert_eq!(
        rotate_as(
            &mut conn,
            Some(a),
            Some(victim),
            &live,
            &successor_hash,
            "10 seconds"
        )
        .await,
        "replayed"
    );
    assert_eq!(
        rotate_as(
            &mut conn,
            Some(a),
            Some(victim),
            &live,
            &successor_hash,
            "0 seconds"
        )
        .await,
        "reused"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE user_id = $1")
        .bind(victim.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(
        count, 2,
        "every attempt above was rolled back or minted nothing"
    );
    let revoked: Option<String> =
        sqlx::query_scalar("SELECT revoked_reason FROM sessions WHERE user_id = $1")
            .bind(victim.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(revoked, None);
}

#[tokio::test]
async fn a_role_the_server_does_not_know_is_an_error_not_dropped() {
    let app = TestApp::spawn().await;
    let ana = add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
    let h = host("alpha");
    let t = login(&app, &h, "ana@alpha.test").await;
    // A database ahead of this server (a newer migration added a role): the owner widens the
    // check and gives Ana a role this build does not know.
    let mut owner = app.owner().await;
    let check: String = sqlx::query_scalar(
        "SELECT conname::text FROM pg_constraint
         WHERE conrelid = 'memberships'::regclass AND contype = 'c'
           AND pg_get_constraintdef(oid) LIKE '%tenant_admin%'",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    owner
        .execute(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE memberships DROP CONSTRAINT {check}"
        )))
        .await
        .unwrap();
    sqlx::query("UPDATE memberships SET roles = ARRAY['employee', 'auditor'] WHERE user_id = $1")
        .bind(ana.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    // Login and refresh refuse (500, logged) instead of signing a token with fewer roles.
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login",
        json!({"email": "ana@alpha.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 500);
    assert_eq!(problem(res).await["code"], "internal_error");
    let res = refresh(&app, &h, &t["refresh_token"]).await;
    assert_eq!(res.status(), 500);
    assert_eq!(problem(res).await["code"], "internal_error");
}
