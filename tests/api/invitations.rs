//! Invitations: create (mail in the outbox), accept (new identity, or link an existing one),
//! refresh on re-invite, expiry, single use, seat limit (nothing written), revoke, and the
//! BOLA sweep (tenant A's admin against tenant B's invitation ids).

use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, problem};
use crate::members::{membership_of, person, send};
use crate::people::*;
use serein::rbac::Role;

/// The token of the last invitation e-mail to `to`, and the whole link.
async fn mailed(app: &TestApp, to: &str) -> (String, String) {
    let body: String = sqlx::query_scalar(
        "SELECT body_text FROM email_outbox WHERE to_address = $1 AND template = 'invitation'
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(to)
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap();
    let at = body.find("/invitations/accept?token=").expect("a link");
    let start = body[..at].rfind("http").unwrap();
    let link = body[start..].split_whitespace().next().unwrap().to_owned();
    let at = link.find("token=").unwrap() + "token=".len();
    (link[at..].to_owned(), link)
}

async fn count(app: &TestApp, sql: &'static str, email: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(email)
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

async fn invite(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    send(
        app,
        Method::POST,
        &host("alpha"),
        "/api/v1/members/invitations",
        token,
        Some(body),
    )
    .await
}

async fn accept(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    post(
        app,
        &host("alpha"),
        &format!("/api/v1/invitations/{token}/accept"),
        body,
    )
    .await
}

#[tokio::test]
async fn invitation_mail_accept_creates_identity_and_login_works() {
    let app = TestApp::spawn().await;
    let (_, admin) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let res = invite(&app, &admin, json!({"email": "New.Hire@Example.test", "department": "eng", "first_name": "New", "last_name": "Hire"})).await;
    assert_eq!(res.status(), 201);
    let text = res.text().await.unwrap();
    let inv: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(inv["email"], "new.hire@example.test");
    assert_eq!(inv["roles"], json!(["employee"]));
    assert_eq!(inv["status"], "pending");

    let (token, link) = mailed(&app, "new.hire@example.test").await;
    assert!(
        link.contains("alpha.localhost") && link.contains("/invitations/accept?token="),
        "{link}"
    );
    assert!(!text.contains(&token), "the token is never in the response");
    let stored: Vec<u8> = sqlx::query_scalar(
        "SELECT token_hash FROM invitations WHERE email = 'new.hire@example.test'",
    )
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap();
    assert_eq!(stored, Sha256::digest(token.as_bytes()).to_vec());

    // Preview, then accept: a password is required for a new account.
    let res = app
        .get(&host("alpha"), &format!("/api/v1/invitations/{token}"))
        .await;
    assert_eq!(res.status(), 200);
    let p: Value = res.json().await.unwrap();
    assert_eq!(p["existing_account"], false);
    assert_eq!(p["tenant"], "Tenant alpha");
    let res = accept(&app, &token, json!({})).await;
    assert_eq!(res.status(), 422);
    assert_eq!(problem(res).await["errors"][0]["field"], "password");
    let res = accept(&app, &token, json!({"password": "password"})).await;
    assert_eq!(res.status(), 422);
    let res = accept(
        &app,
        &token,
        json!({"password": PASSWORD, "display_name": "New Hire"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"email": "new.hire@example.test", "tenant": "Tenant alpha", "existing_account": false})
    );

    let (verified, roles, dept): (bool, Vec<String>, Option<String>) = sqlx::query_as(
        "SELECT u.email_verified_at IS NOT NULL, m.roles, m.department FROM users u
         JOIN memberships m ON m.user_id = u.id AND m.tenant_id = $1 WHERE u.email = 'new.hire@example.test'",
    )
    .bind(app.tenant_a.as_uuid())
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap();
    assert!(verified);
    assert_eq!(roles, ["employee"]);
    assert_eq!(dept.as_deref(), Some("eng"));
    let accepted = count(
        &app,
        "SELECT count(*) FROM invitations WHERE email = $1 AND accepted_at IS NOT NULL",
        "new.hire@example.test",
    )
    .await;
    assert_eq!(accepted, 1);

    // Login with the chosen password works.
    let session = login(&app, &host("alpha"), "new.hire@example.test").await;
    assert_eq!(session["status"], "authenticated");

    // The token is single-use.
    let res = accept(&app, &token, json!({"password": PASSWORD})).await;
    assert_eq!(res.status(), 410);
    assert_eq!(problem(res).await["code"], "invitation_gone");
    assert_eq!(
        app.get(&host("alpha"), &format!("/api/v1/invitations/{token}"))
            .await
            .status(),
        410
    );
    // Now a member: a new invitation is refused.
    let res = invite(&app, &admin, json!({"email": "new.hire@example.test"})).await;
    assert_eq!(res.status(), 409);
    assert_eq!(problem(res).await["code"], "already_member");
    // Garbage tokens are gone too, never a 500.
    for t in [
        "nope",
        "a.b",
        &format!("{}.{}", uuid::Uuid::now_v7().simple(), "x".repeat(43)),
    ] {
        assert_eq!(
            accept(&app, t, json!({"password": PASSWORD}))
                .await
                .status(),
            410,
            "{t}"
        );
    }
}

#[tokio::test]
async fn accepting_links_an_existing_identity_of_another_tenant() {
    let app = TestApp::spawn().await;
    let (_, admin) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let user = add_person(&app, app.tenant_b, "shared@bravo.test", &["employee"]).await;
    let res = invite(
        &app,
        &admin,
        json!({"email": "shared@bravo.test", "roles": ["hr"]}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let (token, _) = mailed(&app, "shared@bravo.test").await;
    let p: Value = app
        .get(&host("alpha"), &format!("/api/v1/invitations/{token}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(p["existing_account"], true);
    // No password needed (and none is changed).
    let res = accept(&app, &token, json!({})).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["existing_account"], true);
    let users = count(
        &app,
        "SELECT count(*) FROM users WHERE email = $1",
        "shared@bravo.test",
    )
    .await;
    assert_eq!(users, 1);
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT roles FROM memberships WHERE tenant_id = $1 AND user_id = $2")
            .bind(app.tenant_a.as_uuid())
            .bind(user.as_uuid())
            .fetch_one(&mut app.owner().await)
            .await
            .unwrap();
    assert_eq!(roles, ["hr"]);
    // One password, two companies; B's membership untouched.
    login(&app, &host("alpha"), "shared@bravo.test").await;
    login(&app, &host("bravo"), "shared@bravo.test").await;
}

#[tokio::test]
async fn reinviting_refreshes_and_the_old_token_is_gone() {
    let app = TestApp::spawn().await;
    let (_, admin) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let first: Value = invite(&app, &admin, json!({"email": "twice@example.test"}))
        .await
        .json()
        .await
        .unwrap();
    let (old, _) = mailed(&app, "twice@example.test").await;
    app.clock.advance(time::Duration::minutes(10));
    let res = invite(
        &app,
        &admin,
        json!({"email": "twice@example.test", "roles": ["hr", "employee"], "department": "people"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let second: Value = res.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_ne!(first["expires_at"], second["expires_at"]);
    let rows = count(
        &app,
        "SELECT count(*) FROM invitations WHERE email = $1",
        "twice@example.test",
    )
    .await;
    assert_eq!(rows, 1);
    let (new, _) = mailed(&app, "twice@example.test").await;
    assert_ne!(old, new);
    assert_eq!(
        accept(&app, &old, json!({"password": PASSWORD}))
            .await
            .status(),
        410
    );
    assert_eq!(
        accept(&app, &new, json!({"password": PASSWORD}))
            .await
            .status(),
        200
    );
    let roles: Vec<String> = sqlx::query_scalar(
        "SELECT m.roles FROM memberships m JOIN users u ON u.id = m.user_id WHERE u.email = 'twice@example.test'",
    )
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap();
    assert_eq!(roles, ["hr", "employee"]);
}

#[tokio::test]
async fn an_invitation_expires_after_seven_days() {
    let app = TestApp::spawn().await;
    let (_, admin) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    assert_eq!(
        invite(&app, &admin, json!({"email": "late@example.test"}))
            .await
            .status(),
        201
    );
    let (token, _) = mailed(&app, "late@example.test").await;
    app.clock
        .advance(time::Duration::days(7) + time::Duration::seconds(1));
    assert_eq!(
        app.get(&host("alpha"), &format!("/api/v1/invitations/{token}"))
            .await
            .status(),
        410
    );
    let res = accept(&app, &token, json!({"password": PASSWORD})).await;
    assert_eq!(res.status(), 410);
    let users = count(
        &app,
        "SELECT count(*) FROM users WHERE email = $1",
        "late@example.test",
    )
    .await;
    assert_eq!(users, 0);
    // Listed as expired until refreshed.
    let (_, admin) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let body: Value = send(
        &app,
        Method::GET,
        &host("alpha"),
        "/api/v1/members/invitations",
        &admin,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["items"][0]["status"], "expired");
}

#[tokio::test]
async fn the_seat_limit_refuses_an_invitation_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let (_, admin) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    sqlx::query("UPDATE tenants SET seats = 2 WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    // Admin + one pending invitation = 2 seats: the next one is refused.
    assert_eq!(
        invite(&app, &admin, json!({"email": "one@example.test"}))
            .await
            .status(),
        201
    );
    let res = invite(&app, &admin, json!({"email": "two@example.test"})).await;
    assert_eq!(res.status(), 409);
    assert_eq!(problem(res).await["code"], "seat_limit_reached");
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM invitations WHERE email = $1",
            "two@example.test"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM email_outbox WHERE to_address = $1",
            "two@example.test"
        )
        .await,
        0
    );
    // Revoking the pending one frees its seat.
    let list: Value = send(
        &app,
        Method::GET,
        &host("alpha"),
        "/api/v1/members/invitations",
        &admin,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let (token, _) = mailed(&app, "one@example.test").await;
    let res = send(
        &app,
        Method::DELETE,
        &host("alpha"),
        &format!("/api/v1/members/invitations/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        accept(&app, &token, json!({"password": PASSWORD}))
            .await
            .status(),
        410
    );
    assert_eq!(
        invite(&app, &admin, json!({"email": "two@example.test"}))
            .await
            .status(),
        201
    );
    // Validation names fields; HR may not invite.
    let res = invite(
        &app,
        &admin,
        json!({"email": "bad", "roles": ["practitioner"]}),
    )
    .await;
    assert_eq!(res.status(), 422);
    let p = problem(res).await;
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "roles[0]"]);
    let (_, hr) = person(&app, app.tenant_a, "alpha", &[Role::Hr]).await;
    assert_eq!(
        invite(&app, &hr, json!({"email": "x@example.test"}))
            .await
            .status(),
        403
    );
}

#[tokio::test]
async fn tenant_a_admin_cannot_touch_tenant_b_invitations() {
    let app = TestApp::spawn().await;
    let (_, admin_a) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let (_, admin_b) = person(&app, app.tenant_b, "bravo", &[Role::TenantAdmin]).await;
    let res = send(
        &app,
        Method::POST,
        &host("bravo"),
        "/api/v1/members/invitations",
        &admin_b,
        Some(json!({"email": "b-invitee@example.test"})),
    )
    .await;
    assert_eq!(res.status(), 201);
    let inv: Value = res.json().await.unwrap();
    let id = inv["id"].as_str().unwrap();
    let res = send(
        &app,
        Method::DELETE,
        &host("alpha"),
        &format!("/api/v1/members/invitations/{id}"),
        &admin_a,
        None,
    )
    .await;
    assert_eq!(res.status(), 404);
    let revoked = count(
        &app,
        "SELECT count(*) FROM invitations WHERE email = $1 AND revoked_at IS NULL",
        "b-invitee@example.test",
    )
    .await;
    assert_eq!(revoked, 1);
    // A's list does not show it; B's token does not work on A's host.
    let list: Value = send(
        &app,
        Method::GET,
        &host("alpha"),
        "/api/v1/members/invitations",
        &admin_a,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(list["items"].as_array().unwrap().is_empty());
    let (token, _) = mailed(&app, "b-invitee@example.test").await;
    assert_eq!(
        accept(&app, &token, json!({"password": PASSWORD}))
            .await
            .status(),
        410
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM users WHERE email = $1",
            "b-invitee@example.test"
        )
        .await,
        0
    );
    // On B's host it works, and makes a B membership only.
    let res = post(
        &app,
        &host("bravo"),
        &format!("/api/v1/invitations/{token}/accept"),
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let user: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'b-invitee@example.test'")
            .fetch_one(&mut app.owner().await)
            .await
            .unwrap();
    let _ = membership_of(&app, app.tenant_b, user.into()).await;
    let in_a: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM memberships WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(app.tenant_a.as_uuid())
    .bind(user)
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap();
    assert_eq!(in_a, 0);
}
