//! PROOF.md 11 and the TOTP items: mandatory enrolment for admins, enable with a valid
//! code, login in two steps, a code accepted once, recovery codes single-use, wrong codes
//! throttled, the secret stored sealed, disable.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem};
use crate::people::*;

fn secret_of(setup: &Value) -> Vec<u8> {
    let b32 = setup["secret"].as_str().unwrap();
    totp_rs::Secret::try_from_base32(b32)
        .unwrap()
        .as_bytes()
        .to_vec()
}

fn code(app: &TestApp, secret: &[u8]) -> String {
    serein::crypto::totp::current_code(secret, app.clock.now()).unwrap()
}

async fn post_bearer(
    app: &TestApp,
    host: &str,
    path: &str,
    token: &str,
    body: Value,
) -> reqwest::Response {
    app.req(Method::POST, host, path)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Enrol `email` (an admin): returns (secret, recovery codes).
async fn enrol(app: &TestApp, host: &str, email: &str) -> (Vec<u8>, Vec<String>) {
    let res = post(
        app,
        host,
        "/api/v1/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 403);
    let body = problem(res).await;
    assert_eq!(body["code"], "mfa_enrollment_required");
    let enroll = body["enrollment_token"].as_str().unwrap().to_owned();
    let res = post_bearer(app, host, "/api/v1/auth/totp/setup", &enroll, json!({})).await;
    assert_eq!(res.status(), 200);
    let setup: Value = res.json().await.unwrap();
    assert!(
        setup["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let secret = secret_of(&setup);
    // A wrong code does not enable.
    let res = post_bearer(
        app,
        host,
        "/api/v1/auth/totp/enable",
        &enroll,
        json!({"code": "000000"}),
    )
    .await;
    if res.status() != 401 {
        // One in a million: 000000 was the right code.
        assert_eq!(res.status(), 200);
    }
    let res = post_bearer(
        app,
        host,
        "/api/v1/auth/totp/enable",
        &enroll,
        json!({"code": code(app, &secret)}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let codes: Vec<String> =
        serde_json::from_value(res.json::<Value>().await.unwrap()["recovery_codes"].clone())
            .unwrap();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

async fn mfa_token(app: &TestApp, host: &str, email: &str) -> String {
    let res = post(
        app,
        host,
        "/api/v1/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "mfa_required");
    assert!(body.get("access_token").is_none());
    body["mfa_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn admin_enrols_then_logs_in_with_a_code_accepted_once() {
    let app = TestApp::spawn().await;
    let h = host("alpha");
    let user = add_person(&app, app.tenant_a, "boss@alpha.test", &["tenant_admin"]).await;
    let (secret, _) = enrol(&app, &h, "boss@alpha.test").await;

    // The secret is stored sealed: neither its bytes nor its base32 form are in the row.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT totp_secret FROM users WHERE id = $1")
        .bind(user.as_uuid())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    assert!(stored.len() > secret.len() + 16);
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_slice()));

    // The code used to enable was spent: the same code cannot log in (replay → 401).
    let mfa = mfa_token(&app, &h, "boss@alpha.test").await;
    let spent = code(&app, &secret);
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login/totp",
        json!({"mfa_token": mfa, "code": spent}),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(problem(res).await["code"], "invalid_code");
    // Next time step: accepted once…
    app.clock.advance(time::Duration::seconds(30));
    let fresh = code(&app, &secret);
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login/totp",
        json!({"mfa_token": mfa, "code": fresh}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let t: Value = res.json().await.unwrap();
    let access = t["access_token"].as_str().unwrap();
    let me: Value = call(&app, Method::GET, &h, "/api/v1/auth/me", access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["tenant_admin"]));
    assert_eq!(me["user"]["totp_enabled"], true);
    // …and never twice, even in a new login within its validity window.
    let mfa = mfa_token(&app, &h, "boss@alpha.test").await;
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login/totp",
        json!({"mfa_token": mfa, "code": fresh}),
    )
    .await;
    assert_eq!(res.status(), 401);
    // An MFA token is not a bearer token, and is bound to its host.
    assert_eq!(
        call(&app, Method::GET, &h, "/api/v1/auth/me", &mfa)
            .await
            .status(),
        401
    );
    app.clock.advance(time::Duration::seconds(30));
    let res = post(
        &app,
        &host("bravo"),
        "/api/v1/auth/login/totp",
        json!({"mfa_token": mfa, "code": code(&app, &secret)}),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(problem(res).await["code"], "invalid_mfa_token");
    // An expired MFA token is refused.
    app.clock.advance(time::Duration::seconds(600));
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login/totp",
        json!({"mfa_token": mfa, "code": code(&app, &secret)}),
    )
    .await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn recovery_codes_are_single_use() {
    let app = TestApp::spawn().await;
    let h = host("alpha");
    add_person(&app, app.tenant_a, "boss@alpha.test", &["tenant_admin"]).await;
    let (_, codes) = enrol(&app, &h, "boss@alpha.test").await;
    let mfa = mfa_token(&app, &h, "boss@alpha.test").await;
    // Case and dashes do not matter.
    let typed = codes[0].to_lowercase().replace('-', " ");
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login/totp",
        json!({"mfa_token": mfa, "recovery_code": typed}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let mfa = mfa_token(&app, &h, "boss@alpha.test").await;
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login/totp",
        json!({"mfa_token": mfa, "recovery_code": codes[0]}),
    )
    .await;
    assert_eq!(res.status(), 401, "a recovery code works once");
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login/totp",
        json!({"mfa_token": mfa, "recovery_code": codes[1]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM recovery_codes WHERE used_at IS NULL")
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    assert_eq!(left, 8);
}

#[tokio::test]
async fn wrong_codes_are_throttled() {
    let app = TestApp::spawn_with(|s| {
        s.env.insert("TOTP_MAX_FAILURES".into(), "3".into());
    })
    .await;
    let h = host("alpha");
    add_person(&app, app.tenant_a, "boss@alpha.test", &["tenant_admin"]).await;
    let (secret, _) = enrol(&app, &h, "boss@alpha.test").await;
    app.clock.advance(time::Duration::seconds(30));
    let mfa = mfa_token(&app, &h, "boss@alpha.test").await;
    let right = code(&app, &secret);
    let wrong = if right == "111111" {
        "222222"
    } else {
        "111111"
    };
    // The failed enable attempt of `enrol` was cleared by its success; three more wrong codes…
    for _ in 0..2 {
        let res = post(
            &app,
            &h,
            "/api/v1/auth/login/totp",
            json!({"mfa_token": mfa, "code": wrong}),
        )
        .await;
        assert_eq!(res.status(), 401);
    }
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login/totp",
        json!({"mfa_token": mfa, "code": wrong}),
    )
    .await;
    assert_eq!(res.status(), 401);
    // …and even the right code is refused until the lock expires.
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login/totp",
        json!({"mfa_token": mfa, "code": right}),
    )
    .await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn disabling_needs_a_code_and_admins_must_enrol_again() {
    let app = TestApp::spawn().await;
    let h = host("alpha");
    add_person(&app, app.tenant_a, "boss@alpha.test", &["tenant_admin"]).await;
    let (secret, codes) = enrol(&app, &h, "boss@alpha.test").await;
    app.clock.advance(time::Duration::seconds(30));
    let mfa = mfa_token(&app, &h, "boss@alpha.test").await;
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login/totp",
        json!({"mfa_token": mfa, "code": code(&app, &secret)}),
    )
    .await;
    let access = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Setup while enabled is refused.
    let res = post_bearer(
        &app,
        &h,
        "/api/v1/auth/totp/setup",
        &access,
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 409);
    let res = post_bearer(&app, &h, "/api/v1/auth/totp/disable", &access, json!({})).await;
    assert_eq!(res.status(), 422);
    let res = post_bearer(
        &app,
        &h,
        "/api/v1/auth/totp/disable",
        &access,
        json!({"recovery_code": "AAAA-BBBB-CCCC-DDDD"}),
    )
    .await;
    assert_eq!(res.status(), 401);
    let res = post_bearer(
        &app,
        &h,
        "/api/v1/auth/totp/disable",
        &access,
        json!({"recovery_code": codes[3]}),
    )
    .await;
    assert_eq!(res.status(), 204);
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM users WHERE totp_secret IS NOT NULL OR totp_enabled_at IS NOT NULL",
    )
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap();
    assert_eq!(n, 0);
    // The admin is back to enrolment at the next login.
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login",
        json!({"email": "boss@alpha.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 403);
    assert_eq!(problem(res).await["code"], "mfa_enrollment_required");
}

#[tokio::test]
async fn employees_may_opt_in_and_platform_admins_enrol_on_the_platform_host() {
    let app = TestApp::spawn().await;
    let h = host("alpha");
    add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
    let t = login(&app, &h, "ana@alpha.test").await;
    let access = t["access_token"].as_str().unwrap();
    // With an access token, the password must be confirmed.
    let res = post_bearer(&app, &h, "/api/v1/auth/totp/setup", access, json!({})).await;
    assert_eq!(res.status(), 422);
    let res = post_bearer(
        &app,
        &h,
        "/api/v1/auth/totp/setup",
        access,
        json!({"password": "not the password"}),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(problem(res).await["code"], "invalid_credentials");
    let res = post_bearer(
        &app,
        &h,
        "/api/v1/auth/totp/setup",
        access,
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let secret = secret_of(&res.json().await.unwrap());
    let res = post_bearer(
        &app,
        &h,
        "/api/v1/auth/totp/enable",
        access,
        json!({"code": code(&app, &secret)}),
    )
    .await;
    assert_eq!(res.status(), 200);
    app.clock.advance(time::Duration::seconds(30));
    let mfa = mfa_token(&app, &h, "ana@alpha.test").await;
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login/totp",
        json!({"mfa_token": mfa, "code": code(&app, &secret)}),
    )
    .await;
    assert_eq!(res.status(), 200);

    let root = add_person(&app, app.tenant_a, "root@platform.test", &[]).await;
    make_platform_admin(&app, root).await;
    // Not a member of alpha: invalid credentials there.
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login",
        json!({"email": "root@platform.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 401);
    let (secret, _) = enrol(&app, "localhost", "root@platform.test").await;
    app.clock.advance(time::Duration::seconds(30));
    let mfa = mfa_token(&app, "localhost", "root@platform.test").await;
    let res = post(
        &app,
        "localhost",
        "/api/v1/auth/login/totp",
        json!({"mfa_token": mfa, "code": code(&app, &secret)}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let access = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me: Value = call(&app, Method::GET, "localhost", "/api/v1/auth/me", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["platform_admin"]));
    assert!(me["membership"].is_null());
}
