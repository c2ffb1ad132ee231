//! The practitioner network (issue 4, items 6 and 7).
//!
//! - Platform host, `platform_admin`: create practitioners (identity, global profile, welcome
//!   mail with a single-use set-password link), list, read and edit the network ([`platform`]).
//! - Any signed-in person: `PATCH /auth/me` edits their own profile; practitioners their
//!   specialties, languages, bio and photo, never their licence or verification (the handler
//!   lives with `GET /auth/me` in `auth::me`; its parsing and SQL are here).
//! - Company host: the directory of the practitioners assigned to this company, full-text
//!   search, and explainable, deterministic matching ([`directory`], [`scoring`]).
//!
//! Assigning a practitioner to a company (`PUT|DELETE /platform/tenants/{id}/practitioners/
//! {user_id}`) belongs to the platform's tenant management.

pub mod directory;
pub mod model;
pub mod platform;
pub mod repo;
pub mod scoring;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(platform::create, platform::list))
        .routes(routes!(platform::get, platform::update))
        .routes(routes!(platform::resend_welcome))
        .routes(routes!(directory::list))
        .routes(routes!(directory::match_practitioners))
        .routes(routes!(directory::get))
}
