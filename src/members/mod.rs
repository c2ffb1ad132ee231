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

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

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
