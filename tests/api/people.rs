//! Test helpers for people and sessions: create identities as the owner, log in through the
//! API, or mint a session directly (real session row + token signed by the app's keys).

use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::helpers::TestApp;
use serein::crypto::tokens::TokenType;
use serein::db::{SessionId, TenantId, UserId};
use serein::rbac::Role;

pub const PASSWORD: &str = "correct horse battery staple";

pub fn host(slug: &str) -> String {
    format!("{slug}.localhost")
}

/// A verified identity with `PASSWORD`, member of `tenant` with `roles` (no membership when
/// `roles` is empty).
pub async fn add_person(app: &TestApp, tenant: TenantId, email: &str, roles: &[&str]) -> UserId {
    let mut owner = app.owner().await;
    add_person_on(app, &mut owner, tenant, email, roles).await
}

pub async fn add_person_on(
    app: &TestApp,
    owner: &mut PgConnection,
    tenant: TenantId,
    email: &str,
    roles: &[&str],
) -> UserId {
    let hash = app
        .state
        .passwords
        .hash(&SecretString::from(PASSWORD.to_owned()))
        .await
        .unwrap();
    let id = UserId::new();
    sqlx::query(
        "INSERT INTO users (id, email, display_name, password_hash, email_verified_at)
         VALUES ($1, $2, 'Test Person', $3, now())",
    )
    .bind(id.as_uuid())
    .bind(email)
    .bind(hash)
    .execute(&mut *owner)
    .await
    .unwrap();
    if !roles.is_empty() {
        sqlx::query(
            "INSERT INTO memberships (id, tenant_id, user_id, roles) VALUES ($1, $2, $3, $4)",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(tenant.as_uuid())
        .bind(id.as_uuid())
        .bind(roles.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>())
        .execute(&mut *owner)
        .await
        .unwrap();
    }
    id
}

/// Make `user` a platform admin.
pub async fn make_platform_admin(app: &TestApp, user: UserId) {
    sqlx::query("UPDATE users SET platform_roles = ARRAY['platform_admin'] WHERE id = $1")
        .bind(user.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
}

/// POST JSON to `path` on `host`.
pub async fn post(app: &TestApp, host: &str, path: &str, body: Value) -> reqwest::Response {
    app.req(reqwest::Method::POST, host, path)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A request with a bearer token.
pub async fn call(
    app: &TestApp,
    method: reqwest::Method,
    host: &str,
    path: &str,
    token: &str,
) -> reqwest::Response {
    app.req(method, host, path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Log in through the API and return the JSON body (asserting 200).
pub async fn login(app: &TestApp, host: &str, email: &str) -> Value {
    let res = post(
        app,
        host,
        "/api/v1/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 200, "login of {email} on {host}");
    res.json().await.unwrap()
}

/// A live session minted directly (session row as the owner, token signed by the app): for
/// tests about authorization, where going through login (and TOTP for admins) is not the
/// point. `tenant` may be `TenantId::PLATFORM` (then `host` is the platform host).
pub async fn mint_session(
    app: &TestApp,
    tenant: TenantId,
    host: &str,
    user: UserId,
    roles: &[Role],
) -> (SessionId, String) {
    let session = SessionId::new();
    // Admin roles act only with TOTP enabled (the session guard checks): a minted admin session
    // stands for an admin who enrolled.
    if roles
        .iter()
        .any(|r| matches!(r, Role::TenantAdmin | Role::PlatformAdmin))
    {
        sqlx::query("UPDATE users SET totp_enabled_at = now() WHERE id = $1")
            .bind(user.as_uuid())
            .execute(&mut app.owner().await)
            .await
            .unwrap();
    }
    // The secret the server derives for this session (the guard demands it, not only the id).
    let secret = app.state.keyring.session_secret(session);
    sqlx::query(
        "INSERT INTO sessions (id, tenant_id, user_id, created_at, idle_expires_at, absolute_expires_at,
                               secret_hash)
         VALUES ($1, $2, $3, $4, $4 + interval '1 hour', $4 + interval '1 day', sha256($5))",
    )
    .bind(session.as_uuid())
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(app.clock.now())
    .bind(secret.as_bytes().as_slice())
    .execute(&mut app.owner().await)
    .await
    .unwrap();
    let token = app
        .state
        .tokens
        .issue(
            TokenType::Access,
            host,
            tenant,
            user,
            roles,
            Some(session),
            app.clock.now(),
            std::time::Duration::from_secs(900),
        )
        .unwrap();
    (session, token)
}

/// A person with `roles` in tenant A and a live session on A's host.
pub async fn member_session(app: &TestApp, roles: &[Role]) -> (UserId, String) {
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let email = format!("{}@alpha.test", uuid::Uuid::now_v7().simple());
    let user = add_person(app, app.tenant_a, &email, &names).await;
    let (_, token) = mint_session(app, app.tenant_a, &host("alpha"), user, roles).await;
    (user, token)
}
