//! Invitations by tenant admins: create (or refresh), list pending, revoke.
//!
//! The building blocks are public for the CSV import: [`NewInvitation::parse`] validates one
//! invitation, [`invite_context`] reads what the e-mail needs once per request, [`stage`]
//! writes (or refreshes) one invitation and returns its token, [`queue_mail`] puts the
//! invitation e-mail in the outbox, all in the caller's transaction; the caller then runs
//! [`super::repo::check_seats`] AFTER its writes (pending invitations take seats) and commits.
//!
//! Invariants: only the token's SHA-256 is stored; at most one pending invitation per address
//! and company (re-inviting refreshes it: new token, new expiry, the old link dies); nobody
//! already holding an active company membership here is invited (409 `already_member`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::model::{parse_company_roles, parse_department};
use super::repo;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::auth::model::Email;
use crate::crypto::tokens::{self, OpaqueToken};
use crate::db::ids::InvitationId;
use crate::db::{TenantId, UserId};
use crate::error::{AppError, AppResult, FieldError};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::pagination::{Limit, decode_cursor, page};
use crate::mail::{self, Message};
use crate::rbac::{Role, role_names};
use crate::tenants::model::Locale;

/// Days an invitation link stays valid.
pub const INVITATION_DAYS: u32 = 7;

/// POST /members/invitations.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// Company roles (default `["employee"]`).
    #[serde(default)]
    #[schema(value_type = Option<Vec<super::model::CompanyRoleDoc>>, min_items = 1)]
    pub roles: Option<Vec<String>>,
    /// One line, at most 120 characters.
    #[serde(default)]
    #[schema(max_length = 120)]
    pub department: Option<String>,
    /// One line, at most 100 characters (empty: none).
    #[serde(default)]
    #[schema(max_length = 100)]
    pub first_name: Option<String>,
    /// One line, at most 100 characters (empty: none).
    #[serde(default)]
    #[schema(max_length = 100)]
    pub last_name: Option<String>,
}

/// A validated invitation.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub email: Email,
    pub roles: Vec<Role>,
    pub department: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

fn parse_name(field: &str, raw: Option<&str>) -> Result<Option<String>, FieldError> {
    let Some(n) = raw.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if n.chars().count() > 100 || n.chars().any(char::is_control) {
        return Err(FieldError {
            field: field.to_owned(),
            reason: "must be 1-100 printable characters".into(),
        });
    }
    Ok(Some(n.to_owned()))
}

impl NewInvitation {
    /// Validate every field; all errors at once, each naming its field.
    pub fn parse(req: InvitationRequest) -> Result<Self, Vec<FieldError>> {
        let mut errs = Vec::new();
        let email = match Email::parse(&req.email) {
            Ok(e) => Some(e),
            Err(_) => {
                errs.push(FieldError {
                    field: "email".into(),
                    reason: "is not a valid e-mail address".into(),
                });
                None
            }
        };
        let roles = req.roles.unwrap_or_else(|| vec!["employee".to_owned()]);
        let roles = parse_company_roles("roles", &roles)
            .map_err(|e| errs.push(e))
            .ok();
        let department = parse_department("department", req.department.as_deref())
            .map_err(|e| errs.push(e))
            .ok()
            .flatten();
        let first_name = parse_name("first_name", req.first_name.as_deref())
            .map_err(|e| errs.push(e))
            .ok()
            .flatten();
        let last_name = parse_name("last_name", req.last_name.as_deref())
            .map_err(|e| errs.push(e))
            .ok()
            .flatten();
        match (email, roles) {
            (Some(email), Some(roles)) if errs.is_empty() => Ok(Self {
                email,
                roles,
                department,
                first_name,
                last_name,
            }),
            _ => Err(errs),
        }
    }
}

/// An invitation as its tenant admins see it (never the token).
#[derive(Debug, Serialize, ToSchema)]
pub struct Invitation {
    pub id: InvitationId,
    pub email: String,
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
    pub department: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `pending` or `expired`.
    #[schema(value_type = String)]
    pub status: InvitationStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Where an unanswered invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    Pending,
    /// Past `expires_at`, not yet refreshed.
    Expired,
}

impl InvitationStatus {
    fn at(expires_at: OffsetDateTime, now: OffsetDateTime) -> Self {
        if expires_at > now {
            Self::Pending
        } else {
            Self::Expired
        }
    }
}

/// A page of pending invitations.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationPage {
    pub items: Vec<Invitation>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InvitationQuery {
    /// Page size: default 50; a number outside 1–200 counts as the nearest bound, anything
    /// else is 422 (the one `limit` rule of `http::pagination`).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// An invitation just written, with the token to mail (once).
#[derive(Debug)]
pub struct StagedInvitation {
    pub invitation: Invitation,
    pub token: OpaqueToken,
    /// A pending invitation of that address was refreshed rather than created.
    pub refreshed: bool,
}

/// What the invitation e-mail needs, read once per request.
#[derive(Debug, Clone)]
pub struct InviteContext {
    pub tenant_name: String,
    pub inviter_name: Option<String>,
    pub locale: Locale,
    /// `{public base of the host}`; the link is `{base}/invitations/accept?token=…`.
    pub base: String,
}

/// Read the tenant's name and locale and the inviter's name (tenant admin's transaction).
pub async fn invite_context(
    conn: &mut PgConnection,
    state: &AppState,
    tenant: TenantId,
    inviter: UserId,
    host: &str,
) -> AppResult<InviteContext> {
    let r = sqlx::query!(
        r#"SELECT t.name, t.locale,
                  (SELECT NULLIF(u.display_name, '') FROM users u WHERE u.id = $2) AS inviter
           FROM tenants t WHERE t.id = $1"#,
        tenant.as_uuid(),
        inviter.as_uuid()
    )
    .fetch_optional(conn)
    .await?
    .ok_or(AppError::TenantNotFound)?;
    Ok(InviteContext {
        tenant_name: r.name,
        inviter_name: r.inviter,
        locale: Locale::from_stored(&r.locale),
        base: state.config.auth.public_base(host),
    })
}

fn already_member() -> AppError {
    AppError::Conflict {
        code: "already_member",
        detail: "This address already holds an active membership in this company.".into(),
    }
}

/// Does `email` already hold an active company membership here? (Such an address is not
/// invited: 409 `already_member` for one invitation; an import may skip it instead.)
pub async fn is_active_member(
    conn: &mut PgConnection,
    tenant: TenantId,
    email: &Email,
) -> AppResult<bool> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (
               SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
               WHERE m.tenant_id = $1 AND u.email = $2 AND m.status = 'active'
                 AND m.roles && ARRAY['employee', 'hr', 'tenant_admin']) AS "member!""#,
        tenant.as_uuid(),
        email.as_str()
    )
    .fetch_one(conn)
    .await?)
}

/// Create or refresh the pending invitation of `inv.email` (see the module header); 409
/// `already_member` when [`is_active_member`]. The caller checks seats after its writes and
/// commits.
pub async fn stage(
    conn: &mut PgConnection,
    tenant: TenantId,
    inviter: UserId,
    inv: &NewInvitation,
    now: OffsetDateTime,
) -> AppResult<StagedInvitation> {
    if is_active_member(&mut *conn, tenant, &inv.email).await? {
        return Err(already_member());
    }
    let expires = now + time::Duration::days(i64::from(INVITATION_DAYS));
    let pending = sqlx::query_scalar!(
        "SELECT id FROM invitations
         WHERE tenant_id = $1 AND email = $2 AND accepted_at IS NULL AND revoked_at IS NULL
         FOR UPDATE",
        tenant.as_uuid(),
        inv.email.as_str()
    )
    .fetch_optional(&mut *conn)
    .await?;
    let refreshed = pending.is_some();
    let id = pending.map_or_else(InvitationId::new, InvitationId);
    let token = tokens::record_token(id.as_uuid());
    let r = if refreshed {
        sqlx::query!(
            "UPDATE invitations SET roles = $3, department = $4, first_name = $5, last_name = $6,
                 token_hash = $7, invited_by = $8, updated_at = $9, expires_at = $10
             WHERE tenant_id = $1 AND id = $2
             RETURNING created_at",
            tenant.as_uuid(),
            id.as_uuid(),
            &role_names(&inv.roles),
            inv.department,
            inv.first_name,
            inv.last_name,
            &token.hash[..],
            inviter.as_uuid(),
            now,
            expires
        )
        .fetch_one(&mut *conn)
        .await?
        .created_at
    } else {
        sqlx::query!(
            "INSERT INTO invitations (id, tenant_id, email, roles, department, first_name,
                 last_name, token_hash, invited_by, created_at, updated_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11)",
            id.as_uuid(),
            tenant.as_uuid(),
            inv.email.as_str(),
            &role_names(&inv.roles),
            inv.department,
            inv.first_name,
            inv.last_name,
            &token.hash[..],
            inviter.as_uuid(),
            now,
            expires
        )
        .execute(&mut *conn)
        .await?;
        now
    };
    Ok(StagedInvitation {
        invitation: Invitation {
            id,
            email: inv.email.as_str().to_owned(),
            roles: inv.roles.clone(),
            department: inv.department.clone(),
            first_name: inv.first_name.clone(),
            last_name: inv.last_name.clone(),
            status: InvitationStatus::Pending,
            created_at: r,
            updated_at: now,
            expires_at: expires,
        },
        token,
        refreshed,
    })
}

/// The link of an invitation e-mail.
pub fn accept_link(base: &str, token: &OpaqueToken) -> String {
    format!("{base}/invitations/accept?token={}", token.token)
}

/// Queue the invitation e-mail in the caller's transaction.
pub async fn queue_mail(
    conn: &mut PgConnection,
    tenant: TenantId,
    ctx: &InviteContext,
    staged: &StagedInvitation,
    now: OffsetDateTime,
) -> AppResult<()> {
    let message = Message::Invitation {
        link: accept_link(&ctx.base, &staged.token),
        tenant_name: ctx.tenant_name.clone(),
        inviter_name: ctx.inviter_name.clone(),
        expires_in_days: INVITATION_DAYS,
    };
    mail::enqueue(
        conn,
        tenant,
        &staged.invitation.email,
        ctx.locale,
        &message,
        now,
    )
    .await
}

/// Invite a person (tenant admins). Re-inviting a pending address refreshes its invitation.
#[utoipa::path(post, path = "/api/v1/members/invitations", tag = "members",
    extensions(("x-authz" = json!({"resource": "invitations", "action": "create"}))),
    security(("bearer" = [])),
    request_body = InvitationRequest,
    responses(
        (status = 201, body = Invitation, description = "Invitation created or refreshed; e-mail queued"),
        (status = 409, description = "already_member, or seat_limit_reached (nothing written)"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create_invitation(
    State(state): State<AppState>,
    actor: Actor,
    AppJson(req): AppJson<InvitationRequest>,
) -> AppResult<(StatusCode, Json<Invitation>)> {
    actor.require_company()?;
    let inv = NewInvitation::parse(req).map_err(AppError::Validation)?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let ctx = invite_context(&mut tx, &state, actor.tenant, actor.user, &actor.host).await?;
    let staged = stage(&mut tx, actor.tenant, actor.user, &inv, now).await?;
    repo::check_seats(&mut tx, now).await?;
    queue_mail(&mut tx, actor.tenant, &ctx, &staged, now).await?;
    tx.commit().await?;
    tracing::info!(tenant = %actor.tenant, invitation = %staged.invitation.id,
        refreshed = staged.refreshed, "invitation sent");
    Ok((StatusCode::CREATED, Json(staged.invitation)))
}

/// Pending invitations (tenant admins), oldest first.
#[utoipa::path(get, path = "/api/v1/members/invitations", tag = "members",
    extensions(("x-authz" = json!({"resource": "invitations", "action": "list"}))),
    security(("bearer" = [])),
    params(InvitationQuery),
    responses(
        (status = 200, body = InvitationPage, description = "A page of pending (or expired, not yet refreshed) invitations"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn list_invitations(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(q): AppQuery<InvitationQuery>,
) -> AppResult<Json<InvitationPage>> {
    actor.require_company()?;
    let after = decode_cursor::<InvitationId>(q.cursor.as_deref())?;
    let limit = Limit::standard(q.limit.as_deref())?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let rows = sqlx::query!(
        r#"SELECT id AS "id: InvitationId", email, roles AS "roles: Vec<Role>", department,
                first_name, last_name, created_at, updated_at, expires_at
         FROM invitations
         WHERE tenant_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND id > $2
         ORDER BY id LIMIT $3"#,
        actor.tenant.as_uuid(),
        // The first page starts after the nil id (one statement, no optional predicate).
        after.map_or(Uuid::nil(), |a| a.as_uuid()),
        limit.fetch()
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let rows: Vec<Invitation> = rows
        .into_iter()
        .map(|r| Invitation {
            id: r.id,
            email: r.email,
            roles: r.roles,
            department: r.department,
            first_name: r.first_name,
            last_name: r.last_name,
            status: InvitationStatus::at(r.expires_at, now),
            created_at: r.created_at,
            updated_at: r.updated_at,
            expires_at: r.expires_at,
        })
        .collect();
    let (items, next_cursor) = page(rows, limit, |i| i.id);
    Ok(Json(InvitationPage { items, next_cursor }))
}

/// Revoke a pending invitation (tenant admins): its link stops working.
#[utoipa::path(delete, path = "/api/v1/members/invitations/{id}", tag = "members",
    extensions(("x-authz" = json!({"resource": "invitations", "action": "revoke"}))),
    security(("bearer" = [])),
    params(("id" = InvitationId, Path, description = "Invitation id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No pending invitation with this id here"),
    ))]
#[tracing::instrument(skip_all, fields(invitation = %id))]
pub async fn revoke_invitation(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<InvitationId>,
) -> AppResult<StatusCode> {
    actor.require_company()?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let n = sqlx::query!(
        "UPDATE invitations SET revoked_at = $3, updated_at = $3
         WHERE tenant_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
        actor.tenant.as_uuid(),
        id.as_uuid(),
        now
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 0 {
        return Err(AppError::NotFound);
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
