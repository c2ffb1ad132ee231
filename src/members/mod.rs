//! Members: the company's people, HR's counts, and invitations (the company's own settings
//! live with the tenant, in `tenants::settings`).
//!
//! Invariants:
//! - Every route runs on a company host; handlers refuse the platform tenant as defence in
//!   depth (Casbin already grants these routes to company roles only).
//! - Tenant admins read and change memberships under row-level security; HR reads no
//!   membership row: `GET /members/summary` goes through `app_private.member_summary(now)`,
//!   which returns ONE company-wide figure for the last complete month, rounded down to a band
//!   of `max(min_cohort, 10)` and suppressed below one band, decided in SQL (DESIGN §7). HR
//!   learns no count per department or role and nothing live, never a name, e-mail or id.
//! - Ending a membership keeps the row (`status = disabled`, `ended_at` set) for the records
//!   that will reference it, and revokes the person's sessions in this tenant at once.
//! - Invitation tokens are `{invitation id}.{secret}`; only SHA-256 of the whole is stored;
//!   pending invitations take a seat; accepting goes through one definer, all or nothing.

pub mod accept;
pub mod config;
pub mod handlers;
pub mod import;
pub mod invitations;
pub mod model;
pub mod repo;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::AppError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::list_members))
        .routes(routes!(handlers::member_summary))
        .routes(routes!(handlers::update_member, handlers::end_member))
        .routes(routes!(
            invitations::list_invitations,
            invitations::create_invitation
        ))
        .routes(routes!(invitations::revoke_invitation))
        .routes(routes!(accept::preview_invitation))
        .routes(routes!(accept::accept_invitation))
        .routes(routes!(import::import_members))
}

/// Default and maximum page sizes of the lists here.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// A page size: default 50, capped at 200, at least 1.
pub fn page_limit(limit: Option<i64>) -> i64 {
    limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

/// An opaque keyset cursor: the last id of the previous page, base64url.
pub fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// Decode a cursor (400 `invalid_cursor` when it is not one of ours).
pub fn decode_cursor(cursor: Option<&str>) -> Result<Option<Uuid>, AppError> {
    let Some(c) = cursor else { return Ok(None) };
    URL_SAFE_NO_PAD
        .decode(c.as_bytes())
        .ok()
        .and_then(|b| Uuid::from_slice(&b).ok())
        .map(Some)
        .ok_or_else(|| AppError::bad_request("invalid_cursor", "The cursor is not valid."))
}
