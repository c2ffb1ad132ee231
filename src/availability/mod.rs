//! Availability (issue 11, item 1): a practitioner's weekly rules and exceptions, global
//! across the companies they serve (their time is one resource), and the slots they expand to.
//!
//! - `/availability/*` (practitioner, company host): settings (time zone, confirmation),
//!   weekly rules, exceptions (time off, extra hours) — [`handlers`].
//! - `GET /practitioners/{id}/slots` (employees; practitioners for their own): the bookable
//!   slots, minus busy time from every company — [`open_slots`], expanded by [`slots`].
//! - Storage and its row-level security: migration `20261206000002_availability.sql`; busy
//!   time: `app_private.practitioner_busy` (migration `20261206000003_consultations.sql`).

pub mod handlers;
pub mod model;
pub mod open_slots;
pub mod repo;
pub mod slots;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::get_settings, handlers::put_settings))
        .routes(routes!(handlers::list_rules, handlers::create_rule))
        .routes(routes!(handlers::update_rule, handlers::delete_rule))
        .routes(routes!(
            handlers::list_exceptions,
            handlers::create_exception
        ))
        .routes(routes!(handlers::delete_exception))
        .routes(routes!(open_slots::list))
}
