//! Usage reports and CSV exports (issue 13, items 1–3): what HR learns of its programme, what
//! the platform learns across companies, and what practitioners are paid from — never who.
//!
//! Routes:
//! - `GET /reports/usage` and `GET /exports/usage.csv` (HR; tenant admins inherit HR): per closed
//!   month, consultations booked, held and cancelled, their minutes and the distinct employees
//!   who booked, for the month as a whole or by department, specialty or kind; per month the
//!   company's enrolment, banded, and its rate over the seats. The CSV holds exactly the
//!   report's released cells.
//! - `GET /platform/reports/usage` (platform admins, platform host): the same figures summed
//!   over every company (by month, specialty or kind), and `GET /platform/reports/tenants`: per
//!   company and month, seats, seats used, the active rate and the company's month total as its
//!   HR sees it.
//! - `GET /platform/exports/practitioner-activity.csv` (platform admins): per practitioner,
//!   month and company, consultations held and their minutes. No employee identity.
//!
//! The privacy design lives in SQL, in migration `20261208000040_usage_reports` (its header is
//! the full argument); in short:
//! - HR and tenant admins read no consultation or membership row. Every figure comes from a
//!   `SECURITY DEFINER` function that checks the caller there (a person proven by the session
//!   guard in this transaction who holds hr or tenant_admin in the request's company; a
//!   platform admin proven on the platform host), and returns released aggregates only.
//! - Closed months only, by the injected clock (and never later than the database's): a range
//!   reaching a month under way is 422, not clamped. Nothing live.
//! - Frozen: a month's release is computed once, on the first request after it closed, and
//!   every later answer reads it, so two answers a day apart (before and after a sign-up, a late
//!   booking, a department change, an erasure) are identical. The handlers commit the freeze
//!   before anything leaves, so no figure is ever sent from a release that could be rolled back
//!   and computed differently.
//! - One fixed release per month: every grouping's cells are suppressed jointly at the freeze
//!   (primary below `min_cohort`, zero included, by count, by the people behind it, and for
//!   distinct users by the people who did NOT book; complementary until no hidden figure can be
//!   pinned by the groupings' sums, the published reasons and the cell's other figures). A query
//!   returns month cells only: no range sum, no cross-tabulation, no filter.
//! - Each hidden figure is `null` with its reason (`below_min_cohort` or `complementary`);
//!   minutes follow held.

pub mod model;
pub mod platform;
pub mod repo;
pub mod usage;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(usage::usage_report))
        .routes(routes!(usage::usage_export))
        .routes(routes!(platform::platform_usage_report))
        .routes(routes!(platform::tenant_overview))
        .routes(routes!(platform::practitioner_activity_export))
}
