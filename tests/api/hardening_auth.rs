//! Issue 9, items 3, 4, 5, 9 and 10: identity definers demand proof, the login look-up answers
//! only for members, a self-sign-up takes no seat before verification, password checks outside
//! login spend the login budget, "forgot password" does the same work for every address and a
//! reset retires every link of the person.
//!
//! The database-level tests run as `serein_app` with CRAFTED `app.*` values (the server's own
//! context statement, see `helpers::as_app`), so they hold whatever the handlers do.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{Executor, PgConnection};

use crate::helpers::{TestApp, as_app, problem};
use crate::people::*;
use serein::db::{TenantId, UserId};

/// Run `sql` as the request role in `tenant` claiming `user`, and return its SQLSTATE (or
/// "ok"). The transaction is rolled back.
async fn attempt(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    user: Option<UserId>,
    sql: &str,
) -> String {
    as_app(conn, tenant, user).await;
    let r = conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await;
    conn.execute("ROLLBACK").await.unwrap();
    match r {
        Ok(_) => "ok".to_owned(),
        Err(e) => e
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned())
            .unwrap_or_else(|| format!("{e}")),
    }
}

/// The link token of the last pending e-mail of `template` to `to`.
async fn mailed_token(app: &TestApp, to: &str, template: &str) -> String {
    let body: String = sqlx::query_scalar(
        "SELECT body_text FROM email_outbox WHERE to_address = $1 AND template = $2 ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(to)
    .bind(template)
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap();
    let at = body.find("token=").expect("a link with a token") + "token=".len();
    body[at..].split_whitespace().next().unwrap().to_owned()
}

/// POST with a client address (the test app trusts 127.0.0.1 as a proxy where asked).
async fn post_from(
    app: &TestApp,
    host: &str,
    path: &str,
    ip: &str,
    bearer: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut r = app
        .req(reqwest::Method::POST, host, path)
        .header("x-forwarded-for", ip)
        .json(&body);
    if let Some(t) = bearer {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Item 4: a claimed `app.user_id` is no proof.

/// A person's credentials and credential-bearing rows, to show nothing changed.
async fn snapshot(owner: &mut PgConnection, user: UserId) -> (Option<String>, bool, i64, i64, i64) {
    sqlx::query_as(
        "SELECT u.password_hash, u.totp_enabled_at IS NOT NULL,
                (SELECT count(*) FROM sessions s WHERE s.user_id = u.id),
                (SELECT count(*) FROM auth_tokens t WHERE t.user_id = u.id),
                (SELECT count(*) FROM recovery_codes r WHERE r.user_id = u.id)
         FROM users u WHERE u.id = $1",
    )
    .bind(user.as_uuid())
    .fetch_one(owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn crafted_user_id_mints_no_session_no_password_no_link_and_disables_no_totp() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    let victim = add_person(&app, a, "victim@alpha.test", &["tenant_admin"]).await;
    let mut owner = app.owner().await;
    // The victim has TOTP enabled (with a recovery code) and one live session.
    sqlx::query("UPDATE users SET totp_secret = '\\x00', totp_enabled_at = now() WHERE id = $1")
        .bind(victim.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, sha256('rc'))")
        .bind(victim.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    let (live, _) = mint_session(
        &app,
        a,
        &host("alpha"),
        victim,
        &[serein::rbac::Role::TenantAdmin],
    )
    .await;
    let before = snapshot(&mut owner, victim).await;
    assert!(before.1);

    let mut conn = app.owner().await;
    let me = Some(victim);
    for sql in [
        "SELECT app_private.open_session(gen_random_uuid(), sha256('s'), gen_random_uuid(), sha256('r'), now(), now() + interval '1 hour', now() + interval '1 day')",
        "SELECT app_private.set_password('$argon2id$forged', now())",
        "SELECT app_private.totp_disable(now())",
        "SELECT app_private.totp_enable(ARRAY[sha256('x')], now())",
        "SELECT app_private.issue_auth_token(gen_random_uuid(), 'password_reset', sha256('x'), now(), now() + interval '1 hour')",
        "SELECT app_private.issue_auth_token(gen_random_uuid(), 'email_verify', sha256('x'), now(), now() + interval '1 hour')",
        "SELECT app_private.mark_email_verified(gen_random_uuid(), now())",
        "SELECT app_private.proven_password_hash()",
        // A proof cannot be forged either: the table is out of the request role's reach.
        "INSERT INTO auth_proofs (tenant_id, xid, kind, user_id) SELECT app.current_tenant(), pg_current_xact_id(), 'login', app.current_user_id()",
        "SELECT count(*) FROM auth_proofs",
    ] {
        assert_eq!(attempt(&mut conn, Some(a), me, sql).await, "42501", "{sql}");
    }
    // Nor does a setting stand in for a proof.
    assert_eq!(
        attempt(
            &mut conn,
            Some(a),
            me,
            "SELECT set_config('app.proof', 'login', true), app_private.open_session(gen_random_uuid(), sha256('s'), gen_random_uuid(), sha256('r'), now(), now() + interval '1 hour', now() + interval '1 day')",
        )
        .await,
        "42501"
    );
    // The guard demands the session's secret, not its id. A context claiming the victim reads
    // the victim's live session ids (the sessions policy shows them) but not the secret's hash,
    // and cannot compute the secret: naming the live session opens nothing. (Before, this
    // returned true, and with it the session proof of the key doors and a password hash.)
    let secret = app
        .state
        .keyring
        .session_secret(serein::db::SessionId(live.as_uuid()));
    let guard_with = |tenant: TenantId, user: UserId, session: uuid::Uuid, secret: &str| {
        format!(
            "SELECT app_private.session_guard('{tenant}', '{user}', '{session}', decode('{secret}', 'hex'), '{{tenant_admin}}', now())"
        )
    };
    let guard = |tenant: TenantId, user: UserId, session: uuid::Uuid| {
        guard_with(tenant, user, session, &secret.to_hex())
    };
    as_app(&mut conn, Some(a), me).await;
    let seen: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM sessions")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.execute("ROLLBACK").await.unwrap();
    assert_eq!(seen, vec![live.as_uuid()]);
    assert_eq!(
        attempt(&mut conn, Some(a), me, "SELECT secret_hash FROM sessions").await,
        "42501"
    );
    for forged in ["00".repeat(32), "ab".repeat(32), String::new()] {
        assert_eq!(
            attempt(
                &mut conn,
                Some(a),
                me,
                &guard_with(a, victim, live.as_uuid(), &forged)
            )
            .await,
            "SR401"
        );
    }
    // Positive control: the secret the server derives passes.
    assert_eq!(
        attempt(&mut conn, Some(a), me, &guard(a, victim, live.as_uuid())).await,
        "ok"
    );
    // A session id that does not exist opens nothing.
    assert_eq!(
        attempt(
            &mut conn,
            Some(a),
            me,
            &guard(a, victim, uuid::Uuid::now_v7())
        )
        .await,
        "SR401"
    );
    // The guard answers only for the context's own person and tenant: another context naming
    // the victim's live session learns nothing from it.
    let other = add_person(&app, a, "other@alpha.test", &["employee"]).await;
    assert_eq!(
        attempt(
            &mut conn,
            Some(a),
            Some(other),
            &guard(a, victim, live.as_uuid())
        )
        .await,
        "SR401"
    );
    assert_eq!(
        attempt(&mut conn, Some(b), me, &guard(a, victim, live.as_uuid())).await,
        "SR401"
    );
    // Nor can a refresh token be planted in the victim's live session (its id is visible to a
    // context claiming the victim): adding one needs the presented token's secret.
    let plant = format!(
        "SELECT app_private.add_refresh_token('{}', gen_random_uuid(), NULL, sha256('planted'), now(), now() + interval '1 hour')",
        live.as_uuid()
    );
    assert_eq!(attempt(&mut conn, Some(a), me, &plant).await, "42501");
    as_app(&mut conn, Some(a), me).await;
    let rotated: String = sqlx::query_scalar(
        "SELECT outcome FROM app_private.rotate_refresh_token('guess', gen_random_uuid(), sha256('planted'), now(), now() + interval '1 hour', interval '10 seconds')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.execute("ROLLBACK").await.unwrap();
    assert_eq!(rotated, "unknown");
    let planted: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE user_id = $1")
        .bind(victim.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(planted, 0);
    // The victim's own context with their live session still passes (the guard still works).
    assert_eq!(
        attempt(&mut conn, Some(a), me, &guard(a, victim, live.as_uuid())).await,
        "ok"
    );
    assert_eq!(
        snapshot(&mut owner, victim).await,
        before,
        "nothing changed"
    );

    // The proofs do work when really spent: a reset link spent in the same transaction lets
    // set_password through (and only once).
    let token = serein::crypto::tokens::user_token(victim);
    sqlx::query(
        "INSERT INTO auth_tokens (id, tenant_id, user_id, purpose, token_hash, created_at, expires_at)
         VALUES (gen_random_uuid(), $1, $2, 'password_reset', $3, now(), now() + interval '1 hour')",
    )
    .bind(a.as_uuid())
    .bind(victim.as_uuid())
    .bind(token.hash.as_slice())
    .execute(&mut owner)
    .await
    .unwrap();
    as_app(&mut conn, Some(a), me).await;
    let outcome: String =
        sqlx::query_scalar("SELECT app_private.spend_auth_token('password_reset', $1, now())")
            .bind(token.hash.as_slice())
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(outcome, "ok");
    conn.execute("SELECT app_private.set_password('$argon2id$new', now())")
        .await
        .unwrap();
    let again = conn
        .execute("SELECT app_private.set_password('$argon2id$again', now())")
        .await
        .expect_err("a proof is spent once");
    assert_eq!(again.as_database_error().unwrap().code().unwrap(), "42501");
    conn.execute("ROLLBACK").await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Item 5: the login look-up hands out hashes only for members of the context's tenant.

#[tokio::test]
async fn login_identity_answers_only_for_members_of_the_context_tenant() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    add_person(&app, a, "ana@alpha.test", &["employee"]).await;
    let admin = add_person(&app, a, "root@serein.test", &[]).await;
    make_platform_admin(&app, admin).await;
    let mut conn = app.owner().await;
    let lookup = |tenant: TenantId, email: &'static str| {
        sqlx::query_as::<_, (Option<String>,)>(
            "SELECT password_hash FROM app_private.login_identity($1, $2)",
        )
        .bind(tenant.as_uuid())
        .bind(email)
    };
    // Company B's anonymous context: neither A's member nor the platform admin.
    for email in ["ana@alpha.test", "root@serein.test"] {
        as_app(&mut conn, Some(b), None).await;
        let rows = lookup(b, email).fetch_all(&mut conn).await.unwrap();
        conn.execute("ROLLBACK").await.unwrap();
        assert!(rows.is_empty(), "{email} on B: {rows:?}");
    }
    // Company A: its member, not the platform admin.
    as_app(&mut conn, Some(a), None).await;
    let rows = lookup(a, "ana@alpha.test")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(rows.len() == 1 && rows[0].0.is_some());
    assert!(
        lookup(a, "root@serein.test")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .is_empty()
    );
    conn.execute("ROLLBACK").await.unwrap();
    // The platform tenant: the platform admin only.
    as_app(&mut conn, Some(TenantId::PLATFORM), None).await;
    let rows = lookup(TenantId::PLATFORM, "root@serein.test")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(rows.len() == 1 && rows[0].0.is_some());
    assert!(
        lookup(TenantId::PLATFORM, "ana@alpha.test")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .is_empty()
    );
    conn.execute("ROLLBACK").await.unwrap();
    // Through the API: A's member with the right password on B answers like a stranger.
    let right = post(
        &app,
        &host("bravo"),
        "/api/v1/auth/login",
        json!({"email": "ana@alpha.test", "password": PASSWORD}),
    )
    .await;
    let unknown = post(
        &app,
        &host("bravo"),
        "/api/v1/auth/login",
        json!({"email": "nobody@alpha.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(right.status(), 401);
    assert_eq!(unknown.status(), 401);
    assert_eq!(problem(right).await, problem(unknown).await);
}

// ---------------------------------------------------------------------------------------------
// Item 3: a self-sign-up takes no seat before its address is verified.

async fn seats_used(app: &TestApp) -> i32 {
    sqlx::query_scalar("SELECT app_private.seats_used($1, now())")
        .bind(app.tenant_a.as_uuid())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

async fn memberships(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM memberships WHERE tenant_id = $1")
        .bind(app.tenant_a.as_uuid())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn self_signup_takes_no_seat_before_verification_and_answers_the_same_when_full() {
    let app = TestApp::spawn().await;
    let h = host("alpha");
    add_person(&app, app.tenant_a, "known@alpha.test", &["employee"]).await;
    // One seat, taken: the company is full.
    sqlx::query(
        "UPDATE tenants SET allowed_email_domains = ARRAY['alpha.test'], seats = 1 WHERE id = $1",
    )
    .bind(app.tenant_a.as_uuid())
    .execute(&mut app.owner().await)
    .await
    .unwrap();
    assert_eq!(seats_used(&app).await, 1);
    let register = |email: String| {
        let app = &app;
        let h = h.clone();
        async move {
            let res = post(
                app,
                &h,
                "/api/v1/auth/register",
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let known = register("known@alpha.test".into()).await;
    assert_eq!(known.0, 202);
    for i in 0..5 {
        let unknown = register(format!("made-up-{i}@alpha.test")).await;
        assert_eq!(
            unknown, known,
            "the same answer for every address, seats full"
        );
    }
    assert_eq!(seats_used(&app).await, 1, "pending sign-ups take no seat");
    assert_eq!(memberships(&app).await, 1, "and create no membership");

    // Verification with the seats full: a clear 409, nothing created, the link still works.
    let token = mailed_token(&app, "made-up-0@alpha.test", "verify_email").await;
    let verify = json!({"token": token, "password": PASSWORD});
    let res = post(&app, &h, "/api/v1/auth/email/verify", verify.clone()).await;
    assert_eq!(res.status(), 409);
    assert_eq!(problem(res).await["code"], "seat_limit_reached");
    assert_eq!(memberships(&app).await, 1);
    let verified: Option<time::OffsetDateTime> = sqlx::query_scalar(
        "SELECT email_verified_at FROM users WHERE email = 'made-up-0@alpha.test'",
    )
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap();
    assert!(verified.is_none());
    // A seat frees up: the same link now verifies and creates the membership.
    sqlx::query("UPDATE tenants SET seats = 2 WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    let res = post(&app, &h, "/api/v1/auth/email/verify", verify).await;
    assert_eq!(res.status(), 204);
    assert_eq!(memberships(&app).await, 2);
    assert_eq!(seats_used(&app).await, 2);
    login(&app, &h, "made-up-0@alpha.test").await;
}

// ---------------------------------------------------------------------------------------------
// Item 9: password checks outside login spend the person's login budget.

async fn budget_app() -> TestApp {
    TestApp::spawn_with(|s| {
        s.env
            .insert("TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
        s.env.insert("LOGIN_MAX_FAILURES".into(), "3".into());
    })
    .await
}

#[tokio::test]
async fn totp_setup_password_guesses_spend_the_login_budget_across_addresses() {
    let app = budget_app().await;
    let h = host("alpha");
    let user = add_person(&app, app.tenant_a, "eve@alpha.test", &["employee"]).await;
    let (_, token) = mint_session(
        &app,
        app.tenant_a,
        &h,
        user,
        &[serein::rbac::Role::Employee],
    )
    .await;
    for i in 0..3 {
        let res = post_from(
            &app,
            &h,
            "/api/v1/auth/totp/setup",
            &format!("198.51.100.{i}"),
            Some(&token),
            json!({"password": "not the password at all"}),
        )
        .await;
        assert_eq!(res.status(), 401, "guess {i}");
    }
    // From yet another address, even the right password is now refused, and so is login.
    let res = post_from(
        &app,
        &h,
        "/api/v1/auth/totp/setup",
        "203.0.113.9",
        Some(&token),
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    let res = post_from(
        &app,
        &h,
        "/api/v1/auth/login",
        "203.0.113.10",
        None,
        json!({"email": "eve@alpha.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 429);
    let pending: bool =
        sqlx::query_scalar("SELECT totp_secret IS NOT NULL FROM users WHERE id = $1")
            .bind(user.as_uuid())
            .fetch_one(&mut app.owner().await)
            .await
            .unwrap();
    assert!(!pending, "no secret was set");
}

#[tokio::test]
async fn email_verify_password_guesses_spend_the_login_budget_across_addresses() {
    let app = budget_app().await;
    let h = host("alpha");
    sqlx::query("UPDATE tenants SET allowed_email_domains = ARRAY['alpha.test'] WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    let res = post(
        &app,
        &h,
        "/api/v1/auth/register",
        json!({"email": "sam@alpha.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let token = mailed_token(&app, "sam@alpha.test", "verify_email").await;
    for i in 0..3 {
        let res = post_from(
            &app,
            &h,
            "/api/v1/auth/email/verify",
            &format!("198.51.100.{i}"),
            None,
            json!({"token": token, "password": "not the password at all"}),
        )
        .await;
        assert_eq!(res.status(), 401, "guess {i}");
    }
    let res = post_from(
        &app,
        &h,
        "/api/v1/auth/email/verify",
        "203.0.113.9",
        None,
        json!({"token": token, "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 429);
    // A forged link spends nothing of the person's budget (410 before any check).
    let user = token.split_once('.').unwrap().0;
    let forged = format!("{user}.{}", "A".repeat(43));
    let res = post_from(
        &app,
        &h,
        "/api/v1/auth/email/verify",
        "203.0.113.11",
        None,
        json!({"token": forged, "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 410);
    // Once the lock-out is over, the right password verifies with the same link.
    app.clock.advance(time::Duration::hours(1));
    let res = post_from(
        &app,
        &h,
        "/api/v1/auth/email/verify",
        "203.0.113.12",
        None,
        json!({"token": token, "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 204);
}

// ---------------------------------------------------------------------------------------------
// Item 10: "forgot password" does the same work for every address; a reset retires every link.

fn reset_key(tenant: TenantId, email: &str) -> Vec<u8> {
    Sha256::digest(format!("reset:{tenant}:{email}").as_bytes()).to_vec()
}

#[tokio::test]
async fn forgot_password_is_one_transaction_for_every_address() {
    let app = TestApp::spawn().await;
    let a = app.tenant_a;
    let h = host("alpha");
    let known = add_person(&app, a, "kim@alpha.test", &["employee"]).await;
    let forgot = |email: &'static str| {
        let (app, h) = (&app, h.clone());
        async move {
            let res = post(
                app,
                &h,
                "/api/v1/auth/password/forgot",
                json!({"email": email}),
            )
            .await;
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let k = forgot("kim@alpha.test").await;
    let u = forgot("nobody@alpha.test").await;
    assert_eq!(k.0, 202);
    assert_eq!(k, u, "the same answer");
    let mut owner = app.owner().await;
    let xmin = |sql: &'static str, bind: Vec<u8>| sqlx::query_scalar::<_, String>(sql).bind(bind);
    // The budget, the link and the mail of a member are written by ONE transaction: a member's
    // address costs no second transaction (no second commit, no second fsync).
    let throttle: Vec<String> = xmin(
        "SELECT xmin::text FROM auth_throttle WHERE key_hash = $1",
        reset_key(a, "kim@alpha.test"),
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    let token: Vec<String> =
        sqlx::query_scalar("SELECT xmin::text FROM auth_tokens WHERE user_id = $1")
            .bind(known.as_uuid())
            .fetch_all(&mut owner)
            .await
            .unwrap();
    let mail: Vec<String> = sqlx::query_scalar(
        "SELECT xmin::text FROM email_outbox WHERE to_address = 'kim@alpha.test'",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert_eq!(throttle.len(), 1);
    assert_eq!(token, throttle, "link written with the budget");
    assert_eq!(mail, throttle, "mail written with the budget");
    // The unknown address spent its budget the same way, and nothing else was written.
    let unknown: i64 = sqlx::query_scalar("SELECT count(*) FROM auth_throttle WHERE key_hash = $1")
        .bind(reset_key(a, "nobody@alpha.test"))
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(unknown, 1);
    let mails: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM email_outbox WHERE to_address = 'nobody@alpha.test'",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(mails, 0);
    // The link's secret was made by the database: the mailed link works.
    let link = mailed_token(&app, "kim@alpha.test", "password_reset").await;
    let res = post(
        &app,
        &h,
        "/api/v1/auth/password/reset",
        json!({"token": link, "password": "a brand new passphrase"}),
    )
    .await;
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn a_reset_retires_the_persons_links_in_every_tenant() {
    let app = TestApp::spawn().await;
    let user = add_person(&app, app.tenant_a, "pat@alpha.test", &["employee"]).await;
    sqlx::query(
        "INSERT INTO memberships (id, tenant_id, user_id, roles) VALUES ($1, $2, $3, '{employee}')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(app.tenant_b.as_uuid())
    .bind(user.as_uuid())
    .execute(&mut app.owner().await)
    .await
    .unwrap();
    let (ha, hb) = (host("alpha"), host("bravo"));
    for h in [&ha, &hb] {
        let res = post(
            &app,
            h,
            "/api/v1/auth/password/forgot",
            json!({"email": "pat@alpha.test"}),
        )
        .await;
        assert_eq!(res.status(), 202);
    }
    let tokens: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT tenant_id, body_text FROM email_outbox WHERE to_address = 'pat@alpha.test' AND template = 'password_reset'",
    )
    .fetch_all(&mut app.owner().await)
    .await
    .unwrap();
    let link_of = |tenant: TenantId| {
        let body = &tokens
            .iter()
            .find(|(t, _)| *t == tenant.as_uuid())
            .unwrap()
            .1;
        let at = body.find("token=").unwrap() + "token=".len();
        body[at..].split_whitespace().next().unwrap().to_owned()
    };
    let (link_a, link_b) = (link_of(app.tenant_a), link_of(app.tenant_b));
    let res = post(
        &app,
        &ha,
        "/api/v1/auth/password/reset",
        json!({"token": link_a, "password": "a brand new passphrase"}),
    )
    .await;
    assert_eq!(res.status(), 204);
    // B's link died with the reset on A.
    let res = post(
        &app,
        &hb,
        "/api/v1/auth/password/reset",
        json!({"token": link_b, "password": "yet another passphrase"}),
    )
    .await;
    assert_eq!(res.status(), 410);
    assert_eq!(problem(res).await["code"], "reset_token_invalid");
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM auth_tokens WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(user.as_uuid())
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap();
    assert_eq!(live, 0);
}
