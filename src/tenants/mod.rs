//! Tenants: host resolution, the public tenant profile, and the declarative
//! `tenants/*.toml` files applied by `serein tenants apply`.

pub mod file;
pub mod handlers;
pub mod model;
pub mod repo;
pub mod resolve;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(handlers::profile))
}
