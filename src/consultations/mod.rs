//! Consultations (issue 11, items 3–4): booking that cannot double-book, and each
//! participant's consultations.
//!
//! - `POST /consultations` (employees): [`booking`], one transaction with idempotency,
//!   locks, the slot check, the allowance and the exclusion constraint.
//! - `GET /consultations`, `GET /consultations/{id}` (the two participants): [`handlers`].
//! - `POST /consultations/{id}/confirm|cancel|reschedule|start|end|no-show`: [`lifecycle`].
//! - `GET /consultations/{id}/video` (the two participants): the Jitsi room and its token,
//!   [`video`] (settings in [`config`]).
//! - `POST|DELETE /me/calendar-feed`, `GET /calendar/{feed_token}.ics`: [`calendar`] (the
//!   RFC 5545 writer in [`ics`]).
//! - `GET /me/counters` (employee), `GET /practitioner/counters` (practitioner): [`counters`].
//! - `POST /public/cancel/{token}` (anonymous, the e-mailed link): [`public_cancel`]; the
//!   reminders and notices that carry it are jobs (`crate::jobs`).
//! - `POST|GET /consultations/{id}/review` (the employee of an ended consultation, once; read
//!   back by its author only): [`reviews`]; the released aggregate reaches the directory and
//!   matching through `practitioners::repo::ratings`.
//! - Storage: migrations `20261206000003_consultations.sql` (table, RLS, busy time) and
//!   `20261206000004_booking.sql` (idempotency keys, the booking definers),
//!   `20261206000005_lifecycle.sql` (the transitions), `20261207000002_reviews.sql` (reviews and
//!   their aggregate).

pub mod booking;
pub mod calendar;
pub mod config;
pub mod counters;
pub mod handlers;
pub mod ics;
pub mod lifecycle;
pub mod model;
pub mod public_cancel;
pub mod repo;
pub mod reviews;
pub mod video;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::create, handlers::list))
        .routes(routes!(handlers::get))
        .routes(routes!(lifecycle::confirm))
        .routes(routes!(lifecycle::cancel))
        .routes(routes!(lifecycle::reschedule))
        .routes(routes!(lifecycle::start))
        .routes(routes!(lifecycle::end))
        .routes(routes!(lifecycle::no_show))
        .routes(routes!(video::video))
        .routes(routes!(calendar::rotate, calendar::revoke))
        .routes(routes!(calendar::feed))
        .routes(routes!(counters::mine))
        .routes(routes!(counters::practitioner))
        .routes(routes!(public_cancel::cancel))
        .routes(routes!(reviews::create, reviews::get))
}
