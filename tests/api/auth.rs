//! PROOF.md 9, 10, 12, 13 and the issue's auth cases: login, tokens refused for every reason,
//! refresh rotation and reuse, logout and membership changes taking effect on the next
//! request, enumeration resistance, lockout under parallel guesses, throttling.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem};
use crate::people::*;
use serein::crypto::tokens::{Claims, TokenKeys, TokenType};
use serein::db::{SessionId, TenantId};
use serein::rbac::Role;

async fn me(app: &TestApp, host: &str, token: &str) -> reqwest::Response {
    call(app, Method::GET, host, "/api/v1/auth/me", token).await
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn login_me_logout() {
    let app = TestApp::spawn().await;
    let user = add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
    let h = host("alpha");
    let t = login(&app, &h, "ANA@alpha.test ").await;
    assert_eq!(t["status"], "authenticated");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 900);
    let access = t["access_token"].as_str().unwrap();
    let res = me(&app, &h, access).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["id"], user.to_string());
    assert_eq!(body["user"]["email"], "ana@alpha.test");
    assert_eq!(body["roles"], json!(["employee"]));
    assert_eq!(body["host"], "alpha.localhost");
    // No hash, no secret in the answer.
    let text = body.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "{text}"
    );

    let res = call(&app, Method::POST, &h, "/api/v1/auth/logout", access).await;
    assert_eq!(res.status(), 204);
    // The very next request with the same (unexpired) access token is refused.
    let res = me(&app, &h, access).await;
    assert_eq!(res.status(), 401);
    assert_eq!(problem(res).await["code"], "session_revoked");
    // And the refresh token of the session is dead.
    let res = post(
        &app,
        &h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": t["refresh_token"]}),
    )
    .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn unknown_email_wrong_password_and_foreign_member_look_the_same() {
    let app = TestApp::spawn().await;
    add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
    add_person(&app, app.tenant_b, "bob@bravo.test", &["employee"]).await;
    let h = host("alpha");
    let attempt = |email: &'static str, pw: &'static str| {
        let app = &app;
        let h = h.clone();
        async move {
            let res = post(
                app,
                &h,
                "/api/v1/auth/login",
                json!({"email": email, "password": pw}),
            )
            .await;
            (
                res.status(),
                res.headers().get("www-authenticate").cloned(),
                res.text().await.unwrap(),
            )
        }
    };
    let wrong = attempt("ana@alpha.test", "wrong password here").await;
    let unknown = attempt("nobody@alpha.test", "wrong password here").await;
    let foreign = attempt("bob@bravo.test", PASSWORD).await;
    let malformed = attempt("not-an-email", "wrong password here").await;
    assert_eq!(wrong.0, 401);
    let body: Value = serde_json::from_str(&wrong.2).unwrap();
    assert_eq!(body["code"], "invalid_credentials");
    for other in [&unknown, &foreign, &malformed] {
        assert_eq!(other, &wrong);
    }
    // Nothing was created by failed logins.
    assert_eq!(count(&app, "SELECT count(*) FROM sessions").await, 0);
}

#[tokio::test]
async fn unknown_email_costs_a_password_verification_too() {
    // Real (OWASP) Argon2 cost: an unknown address must take as long as a wrong password.
    let app = TestApp::spawn_with(|s| {
        s.env.insert("ARGON2_MEMORY_KIB".into(), "19456".into());
        s.env.insert("ARGON2_ITERATIONS".into(), "2".into());
    })
    .await;
    add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
    let h = host("alpha");
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..6 {
        for (i, email) in ["ana@alpha.test", "nobody@alpha.test"].iter().enumerate() {
            let email = if round % 2 == 0 {
                *email
            } else {
                ["nobody@alpha.test", "ana@alpha.test"][i]
            };
            let idx = usize::from(email.starts_with("nobody"));
            let t0 = std::time::Instant::now();
            let res = post(
                &app,
                &h,
                "/api/v1/auth/login",
                json!({"email": email, "password": "wrong password here"}),
            )
            .await;
            assert_eq!(res.status(), 401);
            times[idx].push(t0.elapsed().as_secs_f64());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let (known, unknown) = (median(&mut times[0]), median(&mut times[1]));
    // Same class: neither is a fraction of the other (a skipped hash would be ~20x faster).
    assert!(
        unknown > known * 0.4 && known > unknown * 0.4,
        "known {known:.4}s unknown {unknown:.4}s"
    );
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let app = TestApp::spawn().await;
    let (user, good) = member_session(&app, &[Role::Employee]).await;
    let h = host("alpha");
    assert_eq!(me(&app, &h, &good).await.status(), 200);

    // No token at all.
    let res = app.get(&h, "/api/v1/auth/me").await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_eq!(problem(res).await["code"], "unauthorized");

    let now = app.clock.now();
    let keys = &app.state.tokens;
    let sid = SessionId::new();
    let claims = |typ: TokenType, aud: &str, tid: TenantId, iat: i64, exp: i64| Claims {
        iss: "serein".into(),
        aud: aud.into(),
        sub: user,
        tid,
        roles: vec![Role::Employee],
        sid: Some(sid),
        typ,
        iat,
        exp,
        jti: uuid::Uuid::now_v7(),
    };
    let t = now.unix_timestamp();
    let expired = keys
        .sign(&claims(
            TokenType::Access,
            &h,
            app.tenant_a,
            t - 1000,
            t - 1,
        ))
        .unwrap();
    let wrong_type = keys
        .sign(&claims(TokenType::Mfa, &h, app.tenant_a, t, t + 300))
        .unwrap();
    let other_key = TokenKeys::hs256(b"another-secret-another-secret-another", "serein")
        .sign(&claims(TokenType::Access, &h, app.tenant_a, t, t + 300))
        .unwrap();
    let other_issuer = keys
        .sign(&Claims {
            iss: "evil".into(),
            ..claims(TokenType::Access, &h, app.tenant_a, t, t + 300)
        })
        .unwrap();
    // Signed for B's host but presented on A's; and A's tenant claimed on B's host.
    let for_b = keys
        .sign(&claims(
            TokenType::Access,
            &host("bravo"),
            app.tenant_b,
            t,
            t + 300,
        ))
        .unwrap();
    let mut parts = good.split('.');
    let (_, body) = (parts.next().unwrap(), parts.next().unwrap());
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let alg_none = format!("{}.{}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#), body);
    let tampered = {
        let mut c: Value = serde_json::from_slice(&b64.decode(body).unwrap()).unwrap();
        c["roles"] = json!(["tenant_admin"]);
        let sig = good.rsplit('.').next().unwrap();
        format!(
            "{}.{}.{}",
            good.split('.').next().unwrap(),
            b64.encode(c.to_string()),
            sig
        )
    };
    for (what, token) in [
        ("garbage", "not-a-jwt".to_owned()),
        ("expired", expired),
        ("wrong type", wrong_type),
        ("other key", other_key),
        ("other issuer", other_issuer),
        ("alg none", alg_none),
        ("tampered claims", tampered),
        ("another tenant's token", for_b.clone()),
    ] {
        let res = me(&app, &h, &token).await;
        assert_eq!(res.status(), 401, "{what}");
        assert_eq!(problem(res).await["code"], "unauthorized", "{what}");
    }
    // Token of A presented on B's host.
    assert_eq!(me(&app, &host("bravo"), &good).await.status(), 401);
    // A platform token on a tenant host, and a tenant token on the platform host.
    let admin = add_person(&app, app.tenant_a, "root@platform.test", &[]).await;
    make_platform_admin(&app, admin).await;
    let (_, platform) = mint_session(
        &app,
        TenantId::PLATFORM,
        "localhost",
        admin,
        &[Role::PlatformAdmin],
    )
    .await;
    assert_eq!(me(&app, "localhost", &platform).await.status(), 200);
    assert_eq!(me(&app, &h, &platform).await.status(), 401);
    assert_eq!(me(&app, "localhost", &good).await.status(), 401);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
    let h = host("alpha");
    let t1 = login(&app, &h, "ana@alpha.test").await;
    let r1 = t1["refresh_token"].clone();
    let res = post(
        &app,
        &h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": r1}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let t2: Value = res.json().await.unwrap();
    assert_ne!(t2["refresh_token"], r1);
    assert_eq!(t2["session_id"], t1["session_id"]);
    let a2 = t2["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&app, &h, &a2).await.status(), 200);
    // A refresh token of tenant A is unknown on B.
    let res = post(
        &app,
        &host("bravo"),
        "/api/v1/auth/refresh",
        json!({"refresh_token": t2["refresh_token"]}),
    )
    .await;
    assert_eq!(res.status(), 401);

    // Replaying the spent r1 once the reuse interval is over (within it, the same successor
    // comes back: tests/api/auth_flows.rs): refused, and the whole family dies with it.
    app.clock.advance(time::Duration::seconds(10));
    let res = post(
        &app,
        &h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": r1}),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(problem(res).await["code"], "refresh_reused");
    let res = post(
        &app,
        &h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": t2["refresh_token"]}),
    )
    .await;
    assert_eq!(res.status(), 401, "the sibling token must stop working");
    assert_eq!(
        me(&app, &h, &a2).await.status(),
        401,
        "access tokens of the family too"
    );
    let reason: String = sqlx::query_scalar("SELECT revoked_reason FROM sessions")
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    assert_eq!(reason, "refresh_reuse");
    // Another login is a new, healthy family.
    let t3 = login(&app, &h, "ana@alpha.test").await;
    assert_eq!(
        me(&app, &h, t3["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn sessions_expire_by_idle_and_absolute_lifetime() {
    let app = TestApp::spawn_with(|s| {
        s.env.insert("SESSION_IDLE_SECS".into(), "600".into());
        s.env.insert("SESSION_ABSOLUTE_SECS".into(), "1500".into());
    })
    .await;
    add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
    let h = host("alpha");
    let t = login(&app, &h, "ana@alpha.test").await;
    // Used within the idle window: rotation keeps it alive…
    app.clock.advance(time::Duration::seconds(500));
    let res = post(
        &app,
        &h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": t["refresh_token"]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let t: Value = res.json().await.unwrap();
    app.clock.advance(time::Duration::seconds(500));
    let res = post(
        &app,
        &h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": t["refresh_token"]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let t: Value = res.json().await.unwrap();
    // …but never past the absolute lifetime (1000 s used, 1500 s max; idle would allow 1600).
    app.clock.advance(time::Duration::seconds(550));
    let res = post(
        &app,
        &h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": t["refresh_token"]}),
    )
    .await;
    assert_eq!(res.status(), 401);
    // Idle: a fresh session left alone longer than the idle lifetime.
    let t = login(&app, &h, "ana@alpha.test").await;
    app.clock.advance(time::Duration::seconds(601));
    let res = post(
        &app,
        &h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": t["refresh_token"]}),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(problem(res).await["code"], "session_expired");
}

#[tokio::test]
async fn membership_changes_take_effect_on_the_next_request() {
    let app = TestApp::spawn().await;
    let h = host("alpha");
    let (user, token) = member_session(&app, &[Role::Employee, Role::Hr]).await;
    assert_eq!(me(&app, &h, &token).await.status(), 200);
    let mut owner = app.owner().await;
    // A role the token claims is removed.
    sqlx::query("UPDATE memberships SET roles = ARRAY['employee'] WHERE user_id = $1")
        .bind(user.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    let res = me(&app, &h, &token).await;
    assert_eq!(res.status(), 401);
    assert_eq!(problem(res).await["code"], "session_revoked");

    // Disabled membership.
    let (user, token) = member_session(&app, &[Role::Employee]).await;
    assert_eq!(me(&app, &h, &token).await.status(), 200);
    sqlx::query("UPDATE memberships SET status = 'disabled' WHERE user_id = $1")
        .bind(user.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    assert_eq!(me(&app, &h, &token).await.status(), 401);

    // Promoted to an admin role mid-session: the refreshed token carries it, but admin roles
    // act only once TOTP is enabled.
    add_person(&app, app.tenant_a, "eve@alpha.test", &["employee"]).await;
    let t = login(&app, &h, "eve@alpha.test").await;
    sqlx::query("UPDATE memberships m SET roles = ARRAY['employee', 'tenant_admin'] FROM users u WHERE u.id = m.user_id AND u.email = 'eve@alpha.test'")
        .execute(&mut owner)
        .await
        .unwrap();
    let res = post(
        &app,
        &h,
        "/api/v1/auth/refresh",
        json!({"refresh_token": t["refresh_token"]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let promoted: Value = res.json().await.unwrap();
    let res = me(&app, &h, promoted["access_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(problem(res).await["code"], "session_revoked");

    // Disabled person.
    let (user, token) = member_session(&app, &[Role::Employee]).await;
    sqlx::query("UPDATE users SET status = 'disabled' WHERE id = $1")
        .bind(user.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    assert_eq!(me(&app, &h, &token).await.status(), 401);
    // The refused requests left no context on pooled connections.
    let leaked: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction (aborted)' AND datname = current_database()")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(leaked, 0);
}

#[tokio::test]
async fn parallel_guesses_do_not_bypass_the_lockout() {
    let app = TestApp::spawn_with(|s| {
        s.env.insert("LOGIN_MAX_FAILURES".into(), "5".into());
        s.env.insert("LOGIN_LOCKOUT_SECS".into(), "900".into());
        s.env.insert("DB_MAX_CONNECTIONS".into(), "10".into());
    })
    .await;
    add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
    let h = host("alpha");
    let guesses = (0..50).map(|i| {
        let app = &app;
        let h = h.clone();
        async move {
            post(
                app,
                &h,
                "/api/v1/auth/login",
                json!({"email": "ana@alpha.test", "password": format!("guess number {i}")}),
            )
            .await
            .status()
            .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, 50, "{statuses:?}");
    assert!(
        checked <= 5,
        "{checked} passwords were checked: {statuses:?}"
    );
    // Locked: even the right password is refused now, with Retry-After.
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login",
        json!({"email": "ana@alpha.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 900, "{retry}");
    assert_eq!(problem(res).await["code"], "too_many_requests");
    // The lock lives in PostgreSQL (so every server instance sees it), keyed by a hash.
    let locked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM auth_throttle WHERE locked_until > $1 AND key_hash = sha256(convert_to('login:' || $2 || ':ana@alpha.test', 'UTF8'))",
    )
    .bind(app.clock.now())
    .bind(app.tenant_a.to_string())
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap();
    assert_eq!(locked, 1);
    // After the lock-out, the right password works and clears the count.
    app.clock.advance(time::Duration::seconds(901));
    login(&app, &h, "ana@alpha.test").await;
    // Unknown addresses are locked exactly the same way (no enumeration through lock-outs).
    for i in 0..5 {
        let res = post(
            &app,
            &h,
            "/api/v1/auth/login",
            json!({"email": "ghost@alpha.test", "password": format!("guess {i}")}),
        )
        .await;
        assert_eq!(res.status(), 401);
    }
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login",
        json!({"email": "ghost@alpha.test", "password": "guess 6"}),
    )
    .await;
    assert_eq!(res.status(), 429);
}

#[tokio::test]
async fn per_ip_and_per_account_limits_answer_429() {
    let app = TestApp::spawn_with(|s| {
        s.env.insert("AUTH_RATE_LIMIT_BURST".into(), "3".into());
        s.env.insert("AUTH_RATE_LIMIT_PER_MIN".into(), "1".into());
    })
    .await;
    let h = host("alpha");
    for _ in 0..3 {
        let res = post(
            &app,
            &h,
            "/api/v1/auth/login",
            json!({"email": "x@alpha.test", "password": "whatever123"}),
        )
        .await;
        assert_eq!(res.status(), 401);
    }
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login",
        json!({"email": "x@alpha.test", "password": "whatever123"}),
    )
    .await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(problem(res).await["code"], "too_many_requests");
    // Another account from the same address is still served.
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login",
        json!({"email": "y@alpha.test", "password": "whatever123"}),
    )
    .await;
    assert_eq!(res.status(), 401);

    let app = TestApp::spawn_with(|s| {
        s.env.insert("RATE_LIMIT_PER_IP_BURST".into(), "5".into());
        s.env.insert("RATE_LIMIT_PER_IP_PER_SEC".into(), "1".into());
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            app.get(&h, "/api/v1/tenant/profile")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(&statuses[..5], &[200; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
}

#[tokio::test]
async fn bad_bodies_are_refused_and_write_nothing() {
    let app = TestApp::spawn().await;
    let h = host("alpha");
    sqlx::query("UPDATE tenants SET allowed_email_domains = ARRAY['alpha.test'] WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    let users_before = count(&app, "SELECT count(*) FROM users").await;
    for (path, body, status, code) in [
        // Mass assignment: fields that are not part of the contract.
        (
            "/api/v1/auth/register",
            json!({"email": "a@alpha.test", "password": PASSWORD, "roles": ["tenant_admin"]}),
            422,
            "invalid_body",
        ),
        (
            "/api/v1/auth/register",
            json!({"email": "a@alpha.test", "password": PASSWORD, "tenant_id": app.tenant_b}),
            422,
            "invalid_body",
        ),
        (
            "/api/v1/auth/login",
            json!({"email": "a@alpha.test", "password": PASSWORD, "mfa": false}),
            422,
            "invalid_body",
        ),
        // Validation.
        (
            "/api/v1/auth/register",
            json!({"email": "a@alpha.test", "password": "short"}),
            422,
            "validation_failed",
        ),
        (
            "/api/v1/auth/register",
            json!({"email": "a@alpha.test", "password": "password123"}),
            422,
            "validation_failed",
        ),
        (
            "/api/v1/auth/register",
            json!({"email": "nope", "password": PASSWORD}),
            422,
            "validation_failed",
        ),
        (
            "/api/v1/auth/register",
            json!({"email": "a@other.test", "password": PASSWORD}),
            403,
            "signup_closed",
        ),
        (
            "/api/v1/auth/refresh",
            json!({"refresh_token": "x"}),
            401,
            "invalid_refresh_token",
        ),
        (
            "/api/v1/auth/password/reset",
            json!({"token": "x", "password": PASSWORD}),
            410,
            "reset_token_invalid",
        ),
        (
            "/api/v1/auth/email/verify",
            json!({"token": "x", "password": PASSWORD}),
            410,
            "verification_token_invalid",
        ),
        (
            "/api/v1/auth/login/totp",
            json!({"mfa_token": "x", "code": "123456"}),
            401,
            "invalid_mfa_token",
        ),
    ] {
        let res = post(&app, &h, path, body.clone()).await;
        assert_eq!(res.status(), status, "{path} {body}");
        assert_eq!(problem(res).await["code"], code, "{path} {body}");
    }
    // Malformed JSON.
    let res = app
        .req(Method::POST, &h, "/api/v1/auth/login")
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(problem(res).await["code"], "malformed_json");
    assert_eq!(
        count(&app, "SELECT count(*) FROM users").await,
        users_before
    );
    assert_eq!(count(&app, "SELECT count(*) FROM memberships").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM sessions").await, 0);
}

#[tokio::test]
async fn admins_must_enrol_totp_before_anything_else() {
    let app = TestApp::spawn().await;
    add_person(&app, app.tenant_a, "boss@alpha.test", &["tenant_admin"]).await;
    let h = host("alpha");
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login",
        json!({"email": "boss@alpha.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 403);
    let body = problem(res).await;
    assert_eq!(body["code"], "mfa_enrollment_required");
    let enroll = body["enrollment_token"].as_str().unwrap().to_owned();
    // The enrolment token opens nothing but the enrolment routes.
    let res = me(&app, &h, &enroll).await;
    assert_eq!(res.status(), 403);
    assert_eq!(problem(res).await["code"], "mfa_enrollment_required");
    let res = call(&app, Method::POST, &h, "/api/v1/auth/logout", &enroll).await;
    assert_eq!(res.status(), 403);
    // It is not valid on another host either.
    let res = call(
        &app,
        Method::POST,
        &host("bravo"),
        "/api/v1/auth/totp/setup",
        &enroll,
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(count(&app, "SELECT count(*) FROM sessions").await, 0);
}

#[tokio::test]
async fn eddsa_and_rs256_keys_from_pem_files() {
    for (alg, genargs) in [
        ("EdDSA", vec!["genpkey", "-algorithm", "ed25519"]),
        (
            "RS256",
            vec![
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("key.pem");
        let public = dir.path().join("key.pub");
        let ok = std::process::Command::new("openssl")
            .args(&genargs)
            .arg("-out")
            .arg(&private)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "openssl genpkey ({alg})");
        let ok = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .arg("-out")
            .arg(&public)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let (p, q) = (private.display().to_string(), public.display().to_string());
        let app = TestApp::spawn_with(|s| {
            s.env.insert("JWT_ALGORITHM".into(), alg.into());
            s.env.insert("JWT_PRIVATE_KEY_FILE".into(), p);
            s.env.insert("JWT_PUBLIC_KEY_FILE".into(), q);
        })
        .await;
        add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
        let h = host("alpha");
        let t = login(&app, &h, "ana@alpha.test").await;
        let access = t["access_token"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(access).unwrap();
        assert_eq!(format!("{:?}", header.alg), alg);
        assert_eq!(me(&app, &h, access).await.status(), 200, "{alg}");
        // An HS256 token signed with a guessable "secret" (the public key) is refused.
        let forged = TokenKeys::hs256(
            std::fs::read(dir.path().join("key.pub"))
                .unwrap()
                .as_slice(),
            "serein",
        )
        .issue(
            TokenType::Access,
            &h,
            app.tenant_a,
            serein::db::UserId::new(),
            &[Role::Employee],
            Some(SessionId::new()),
            app.clock.now(),
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(
            me(&app, &h, &forged).await.status(),
            401,
            "{alg}: algorithm confusion"
        );
    }
}

#[tokio::test]
async fn credentials_are_out_of_reach_of_the_request_role() {
    // Global credential tables and columns (DESIGN §2: the few global tables get explicit
    // tests): even the person themself, in any tenant context, cannot read or write them
    // directly; only the app_private functions bound to that person can.
    use sqlx::Executor;
    let app = TestApp::spawn().await;
    let user = add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
    let mut conn = app.owner().await;
    for sql in [
        "SELECT count(*) FROM recovery_codes",
        "INSERT INTO recovery_codes (user_id, code_hash) VALUES (gen_random_uuid(), sha256('x'))",
        "SELECT count(*) FROM auth_throttle",
        "DELETE FROM auth_throttle",
        "SELECT password_hash FROM users",
        "SELECT totp_secret FROM users",
        "SELECT totp_last_step FROM users",
        "UPDATE users SET password_hash = 'x'",
        "UPDATE users SET email_verified_at = now()",
        "UPDATE users SET platform_roles = ARRAY['platform_admin']",
        "INSERT INTO sessions (id, tenant_id, user_id, created_at, idle_expires_at, absolute_expires_at) SELECT gen_random_uuid(), tenant_id, user_id, now(), now(), now() FROM memberships",
        "INSERT INTO auth_tokens (id, tenant_id, user_id, purpose, token_hash, created_at, expires_at) SELECT gen_random_uuid(), tenant_id, user_id, 'password_reset', sha256('x'), now(), now() + interval '1 hour' FROM memberships",
    ] {
        crate::helpers::as_app(&mut conn, Some(app.tenant_a), Some(user)).await;
        let err = conn.execute(sql).await.expect_err(sql);
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .unwrap_or_default()
            .to_string();
        assert_eq!(code, "42501", "{sql}: {err}");
        conn.execute("ROLLBACK").await.unwrap();
    }
    // The definers refuse to act without a person in context, and act only on that person.
    crate::helpers::as_app(&mut conn, Some(app.tenant_a), None).await;
    let err = conn
        .execute("SELECT app_private.issue_auth_token(gen_random_uuid(), 'password_reset', sha256('x'), now(), now())")
        .await
        .expect_err("no person");
    assert_eq!(err.as_database_error().unwrap().code().unwrap(), "42501");
    conn.execute("ROLLBACK").await.unwrap();
    // Login look-up only before authentication, and only in the request's tenant.
    crate::helpers::as_app(&mut conn, Some(app.tenant_a), Some(user)).await;
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM app_private.login_identity($1, 'ana@alpha.test')")
            .bind(app.tenant_a.as_uuid())
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(n, 0);
    conn.execute("ROLLBACK").await.unwrap();
    crate::helpers::as_app(&mut conn, Some(app.tenant_b), None).await;
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM app_private.login_identity($1, 'ana@alpha.test')")
            .bind(app.tenant_a.as_uuid())
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(n, 0);
    conn.execute("ROLLBACK").await.unwrap();
}
