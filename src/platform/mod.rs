//! Platform administration, served on the platform host (bare `BASE_DOMAIN`) to platform
//! admins (TOTP enforced by the session guard): the tenant life cycle (create, read, update,
//! suspend/resume, offboard), practitioner assignment, and the purge job that finishes an
//! offboarding.
//!
//! Invariants:
//! - Every handler requires an actor in the platform tenant holding `platform_admin`
//!   (defence in depth: Casbin already refused everybody else), and reaches data through that
//!   actor's RLS-scoped transaction: the `tenants_platform_*` policies let it read every company
//!   row and change only API-managed ones; file-managed tenants answer 409 `managed_by_file`.
//! - A platform admin never receives a company's member rows: what they learn of its people is
//!   counts, through `app_private.tenant_member_counts`; assignment goes through definers that
//!   answer with an outcome word.
//! - A status change forgets the slug in this process's tenant cache at once; other processes
//!   pick it up within `TENANT_CACHE_TTL_MS`.

pub mod assignments;
pub mod config;
pub mod handlers;
pub mod model;
pub mod purge;
pub mod repo;

pub use config::PlatformConfig;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::list_tenants, handlers::create_tenant))
        .routes(routes!(
            handlers::get_tenant,
            handlers::update_tenant,
            handlers::offboard_tenant
        ))
        .routes(routes!(handlers::suspend_tenant))
        .routes(routes!(handlers::resume_tenant))
        .routes(routes!(
            assignments::assign_practitioner,
            assignments::unassign_practitioner
        ))
}
