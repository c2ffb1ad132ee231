//! Accepting an invitation: anonymous, on the company's host, by token.
//!
//! Invariants: the anonymous request cannot read invitations; it goes through two definers
//! bound to the host's tenant (`app_private.invitation_for_token`, `accept_invitation`). The
//! token names its invitation (`{id}.{secret}`); a malformed, unknown, used, revoked, refreshed
//! or expired token is 410 `invitation_gone`, all alike. Attempts are throttled per IP and
//! invitation. Accepting opens no session: the person logs in normally.

use axum::Json;
use axum::extract::State;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::throttle::ClientIp;
use crate::crypto::{passwords, tokens};
use crate::db::{MembershipId, TenantTx, UserId};
use crate::error::{AppError, AppResult};
use crate::http::extract::{AppJson, AppPath};
use crate::rbac::Role;
use crate::tenants::resolve::Tenant;

fn gone() -> AppError {
    AppError::Gone("invitation_gone")
}

/// What the acceptance page shows before the invitee decides.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationPreview {
    pub email: String,
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
    pub tenant: String,
    /// A verified account exists for this address: no password needed (it is linked).
    pub existing_account: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    /// Required unless the address already has a verified account.
    #[serde(default)]
    #[schema(schema_with = crate::http::openapi::optional_secret_schema)]
    pub password: Option<SecretString>,
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptResponse {
    pub email: String,
    /// The company's name.
    pub tenant: String,
    /// The invitation was linked to an account that already existed.
    pub existing_account: bool,
}

/// The token's invitation id and hash, after the throttle. Malformed → gone.
fn parse_token(state: &AppState, ip: std::net::IpAddr, token: &str) -> AppResult<(Uuid, [u8; 32])> {
    let (id, hash) = tokens::parse_record_token(token).ok_or_else(gone)?;
    state
        .throttle
        .check_account(ip, &format!("invitation:{id}"))?;
    Ok((id, hash))
}

struct Pending {
    email: String,
    roles: Vec<Role>,
    tenant_name: String,
    has_account: bool,
}

async fn pending(
    tx: &mut TenantTx,
    id: Uuid,
    hash: &[u8; 32],
    now: time::OffsetDateTime,
) -> AppResult<Pending> {
    let r = sqlx::query!(
        r#"SELECT email AS "email!", roles AS "roles!: Vec<Role>", tenant_name AS "tenant_name!",
                  has_account AS "has_account!"
           FROM app_private.invitation_for_token($1, $2, $3)"#,
        id,
        &hash[..],
        now
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(gone)?;
    Ok(Pending {
        email: r.email,
        roles: r.roles,
        tenant_name: r.tenant_name,
        has_account: r.has_account,
    })
}

/// Preview an invitation (anonymous, by token).
#[utoipa::path(get, path = "/api/v1/invitations/{token}", tag = "members",
    extensions(("x-authz" = json!({"resource": "invitation", "action": "read"}))),
    params(("token" = String, Path, description = "The token from the invitation e-mail")),
    responses(
        (status = 200, body = InvitationPreview, description = "The pending invitation"),
        (status = 410, description = "invitation_gone: unknown, used, revoked, refreshed or expired"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn preview_invitation(
    State(state): State<AppState>,
    tenant: Tenant,
    ClientIp(ip): ClientIp,
    AppPath(token): AppPath<String>,
) -> AppResult<Json<InvitationPreview>> {
    let (id, hash) = parse_token(&state, ip, &token)?;
    let mut tx = TenantTx::begin(&state.db, tenant.id, None).await?;
    let p = pending(&mut tx, id, &hash, state.clock.now()).await?;
    tx.commit().await?;
    Ok(Json(InvitationPreview {
        email: p.email,
        roles: p.roles,
        tenant: p.tenant_name,
        existing_account: p.has_account,
    }))
}

/// Accept an invitation (anonymous, by token): creates the account (password required) or
/// links the existing verified one, and the membership. Opens no session.
#[utoipa::path(post, path = "/api/v1/invitations/{token}/accept", tag = "members",
    extensions(("x-authz" = json!({"resource": "invitation", "action": "accept"}))),
    params(("token" = String, Path, description = "The token from the invitation e-mail")),
    request_body = AcceptRequest,
    responses(
        (status = 200, body = AcceptResponse, description = "Accepted; log in with the account"),
        (status = 409, description = "seat_limit_reached"),
        (status = 410, description = "invitation_gone: unknown, used, revoked, refreshed or expired"),
        (status = 422, description = "password required (no account yet) or too weak"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn accept_invitation(
    State(state): State<AppState>,
    tenant: Tenant,
    ClientIp(ip): ClientIp,
    AppPath(token): AppPath<String>,
    AppJson(req): AppJson<AcceptRequest>,
) -> AppResult<Json<AcceptResponse>> {
    let (id, hash) = parse_token(&state, ip, &token)?;
    let display_name = req
        .display_name
        .as_deref()
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    if display_name.chars().count() > 200 || display_name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "display_name",
            "must be at most 200 printable characters",
        ));
    }
    // Preview first (a cheap refusal for dead tokens, and whether a password is needed)…
    let mut tx = TenantTx::begin(&state.db, tenant.id, None).await?;
    let p = pending(&mut tx, id, &hash, state.clock.now()).await?;
    drop(tx);
    let password_hash = match (&req.password, p.has_account) {
        // A verified account is linked as it is: its password is not changed here.
        (_, true) => None,
        (Some(pw), false) => {
            passwords::check_policy(pw, &p.email)?;
            Some(state.passwords.hash(pw).await?)
        }
        (None, false) => {
            return Err(AppError::invalid(
                "password",
                "is required to create your account",
            ));
        }
    };
    // … then accept atomically (the definer re-checks everything under a row lock).
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.db, tenant.id, None).await?;
    let r = sqlx::query!(
        r#"SELECT outcome AS "outcome!", email, existing_account
           FROM app_private.accept_invitation($1, $2, $3, $4, $5, $6, $7, $8)"#,
        id,
        &hash[..],
        UserId::new().as_uuid(),
        display_name,
        password_hash,
        None::<String>,
        MembershipId::new().as_uuid(),
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    match r.outcome.as_str() {
        "accepted" => {}
        "password_required" => {
            return Err(AppError::invalid(
                "password",
                "is required to create your account",
            ));
        }
        _ => return Err(gone()),
    }
    tx.commit().await?;
    let existing_account = r.existing_account.unwrap_or(false);
    tracing::info!(tenant = %tenant.slug, invitation = %id, existing_account, "invitation accepted");
    Ok(Json(AcceptResponse {
        email: r.email.unwrap_or(p.email),
        tenant: p.tenant_name,
        existing_account,
    }))
}
