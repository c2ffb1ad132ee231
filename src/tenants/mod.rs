//! The tenant, one home: its model ([`model::TenantSpec`], shared by the files and the platform
//! API), host resolution ([`resolve`]), the public profile ([`handlers`]), the company's own
//! settings for its tenant admins (`GET|PATCH /tenant`, [`settings`]), the declarative
//! `tenants/*.toml` files ([`file`], applied by `serein tenants apply`) and this feature's
//! configuration ([`config`]).
//!
//! The platform admin's management of tenants (`/platform/tenants`: create, suspend, offboard,
//! purge) stays in `platform`: it is another actor's feature, on another host, under other
//! policies (`tenants_platform_*`), and it builds on this module's model rather than owning a
//! second one.

pub mod config;
pub mod file;
pub mod handlers;
pub mod model;
pub mod repo;
pub mod resolve;
pub mod settings;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::profile))
        .routes(routes!(settings::get_tenant, settings::update_tenant))
}
