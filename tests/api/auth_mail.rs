//! Auth flows that go through e-mail (read from the outbox, where the worker would pick them
//! up): self-sign-up and verification, password reset (single use, revokes every session in
//! every tenant), lock-out notice, "account exists" on duplicate sign-up.

use serde_json::{Value, json};

use crate::helpers::{TestApp, problem};
use crate::people::*;

/// The link (with its token) of the last pending e-mail of `template` to `to`.
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

async fn mails(app: &TestApp, to: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT template FROM email_outbox WHERE to_address = $1 ORDER BY created_at, id",
    )
    .bind(to)
    .fetch_all(&mut app.owner().await)
    .await
    .unwrap()
}

async fn open_signup(app: &TestApp) {
    sqlx::query("UPDATE tenants SET allowed_email_domains = ARRAY['alpha.test'], locale = 'fr' WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
}

#[tokio::test]
async fn self_signup_verification_and_login() {
    let app = TestApp::spawn().await;
    open_signup(&app).await;
    let h = host("alpha");
    let res = post(
        &app,
        &h,
        "/api/v1/auth/register",
        json!({"email": "Zoe@Alpha.test", "password": PASSWORD, "display_name": "Zoé"}),
    )
    .await;
    assert_eq!(res.status(), 202);
    // No membership before the address is verified (it would take a seat): login answers like
    // for any stranger to this company.
    let roles: Vec<String> = sqlx::query_scalar("SELECT m.roles[1] FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = 'zoe@alpha.test'")
        .fetch_all(&mut app.owner().await)
        .await
        .unwrap();
    assert!(roles.is_empty());
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login",
        json!({"email": "zoe@alpha.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(problem(res).await["code"], "invalid_credentials");
    // The tenant's locale (fr) is used for the e-mail.
    let locale: String =
        sqlx::query_scalar("SELECT locale FROM email_outbox WHERE to_address = 'zoe@alpha.test'")
            .fetch_one(&mut app.owner().await)
            .await
            .unwrap();
    assert_eq!(locale, "fr");
    let token = mailed_token(&app, "zoe@alpha.test", "verify_email").await;
    // The link of alpha is unknown on bravo.
    let res = post(
        &app,
        &host("bravo"),
        "/api/v1/auth/email/verify",
        json!({"token": token, "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 410);
    // The link alone is not enough: whoever clicks must know the account's password (else an
    // address registered by someone else would be verified by its owner's click). A wrong
    // password leaves the link usable (it spends only the person's login budget).
    let res = post(
        &app,
        &h,
        "/api/v1/auth/email/verify",
        json!({"token": token, "password": "somebody else's passphrase"}),
    )
    .await;
    assert_eq!(res.status(), 401);
    let verified: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT email_verified_at FROM users WHERE email = 'zoe@alpha.test'")
            .fetch_one(&mut app.owner().await)
            .await
            .unwrap();
    assert!(verified.is_none());
    let res = post(
        &app,
        &h,
        "/api/v1/auth/email/verify",
        json!({"token": token, "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 204);
    let res = post(
        &app,
        &h,
        "/api/v1/auth/email/verify",
        json!({"token": token, "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 410, "single use");
    // Verified: now an employee of the company.
    let roles: Vec<String> = sqlx::query_scalar("SELECT m.roles[1] FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = 'zoe@alpha.test'")
        .fetch_all(&mut app.owner().await)
        .await
        .unwrap();
    assert_eq!(roles, ["employee"]);
    let t = login(&app, &h, "zoe@alpha.test").await;
    let me: Value = call(
        &app,
        reqwest::Method::GET,
        &h,
        "/api/v1/auth/me",
        t["access_token"].as_str().unwrap(),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(me["roles"], json!(["employee"]));
    assert_eq!(me["user"]["display_name"], "Zoé");

    // Signing up again with the same address answers the same, changes nothing, and tells the
    // owner instead.
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    let res = post(
        &app,
        &h,
        "/api/v1/auth/register",
        json!({"email": "zoe@alpha.test", "password": "a different passphrase"}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    assert_eq!(users, after);
    assert_eq!(
        mails(&app, "zoe@alpha.test").await,
        ["verify_email", "account_exists"]
    );
    login(&app, &h, "zoe@alpha.test").await;
}

#[tokio::test]
async fn password_reset_is_single_use_and_revokes_every_session() {
    let app = TestApp::spawn().await;
    let (a, b) = (host("alpha"), host("bravo"));
    let user = add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
    // Ana also works for bravo (one identity, two memberships).
    sqlx::query("INSERT INTO memberships (id, tenant_id, user_id, roles) VALUES ($1, $2, $3, ARRAY['practitioner'])")
        .bind(uuid::Uuid::now_v7())
        .bind(app.tenant_b.as_uuid())
        .bind(user.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    let ta = login(&app, &a, "ana@alpha.test").await;
    let tb = login(&app, &b, "ana@alpha.test").await;
    let (aa, ab) = (
        ta["access_token"].as_str().unwrap(),
        tb["access_token"].as_str().unwrap(),
    );
    assert_eq!(
        call(&app, reqwest::Method::GET, &a, "/api/v1/auth/me", aa)
            .await
            .status(),
        200
    );

    // Unknown addresses get the same answer and no e-mail.
    let res = post(
        &app,
        &a,
        "/api/v1/auth/password/forgot",
        json!({"email": "ghost@alpha.test"}),
    )
    .await;
    assert_eq!(res.status(), 202);
    let known = post(
        &app,
        &a,
        "/api/v1/auth/password/forgot",
        json!({"email": "ana@alpha.test"}),
    )
    .await;
    assert_eq!(known.status(), 202);
    assert_eq!(known.text().await.unwrap(), res.text().await.unwrap());
    assert!(mails(&app, "ghost@alpha.test").await.is_empty());
    let token = mailed_token(&app, "ana@alpha.test", "password_reset").await;

    // A weak new password is refused and spends nothing.
    let res = post(
        &app,
        &a,
        "/api/v1/auth/password/reset",
        json!({"token": token, "password": "password1"}),
    )
    .await;
    assert_eq!(res.status(), 422);
    let res = post(
        &app,
        &a,
        "/api/v1/auth/password/reset",
        json!({"token": token, "password": "a brand new passphrase"}),
    )
    .await;
    assert_eq!(res.status(), 204);
    // Every session, in both tenants, is gone at once.
    assert_eq!(
        call(&app, reqwest::Method::GET, &a, "/api/v1/auth/me", aa)
            .await
            .status(),
        401
    );
    assert_eq!(
        call(&app, reqwest::Method::GET, &b, "/api/v1/auth/me", ab)
            .await
            .status(),
        401
    );
    let res = post(
        &app,
        &b,
        "/api/v1/auth/refresh",
        json!({"refresh_token": tb["refresh_token"]}),
    )
    .await;
    assert_eq!(res.status(), 401);
    // Single use.
    let res = post(
        &app,
        &a,
        "/api/v1/auth/password/reset",
        json!({"token": token, "password": "yet another passphrase"}),
    )
    .await;
    assert_eq!(res.status(), 410);
    // Old password dead, new one works on both hosts.
    let res = post(
        &app,
        &a,
        "/api/v1/auth/login",
        json!({"email": "ana@alpha.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 401);
    for h in [&a, &b] {
        let res = post(
            &app,
            h,
            "/api/v1/auth/login",
            json!({"email": "ana@alpha.test", "password": "a brand new passphrase"}),
        )
        .await;
        assert_eq!(res.status(), 200);
    }
    // An expired token (1 h) is refused.
    post(
        &app,
        &a,
        "/api/v1/auth/password/forgot",
        json!({"email": "ana@alpha.test"}),
    )
    .await;
    let token = mailed_token(&app, "ana@alpha.test", "password_reset").await;
    app.clock.advance(time::Duration::seconds(3601));
    let res = post(
        &app,
        &a,
        "/api/v1/auth/password/reset",
        json!({"token": token, "password": "a fourth passphrase"}),
    )
    .await;
    assert_eq!(res.status(), 410);
}

#[tokio::test]
async fn lockout_notifies_the_owner_once() {
    let app = TestApp::spawn_with(|s| {
        s.env.insert("LOGIN_MAX_FAILURES".into(), "3".into());
    })
    .await;
    add_person(&app, app.tenant_a, "ana@alpha.test", &["employee"]).await;
    let h = host("alpha");
    for i in 0..5 {
        post(
            &app,
            &h,
            "/api/v1/auth/login",
            json!({"email": "ana@alpha.test", "password": format!("wrong {i}")}),
        )
        .await;
    }
    assert_eq!(mails(&app, "ana@alpha.test").await, ["account_locked"]);
    for i in 0..5 {
        post(
            &app,
            &h,
            "/api/v1/auth/login",
            json!({"email": "ghost@alpha.test", "password": format!("wrong {i}")}),
        )
        .await;
    }
    assert!(mails(&app, "ghost@alpha.test").await.is_empty());
}
