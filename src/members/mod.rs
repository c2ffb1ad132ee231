//! The company's members. (In this work tree: the CSV import only; the rest of the feature
//! lives beside it once merged.)

pub mod import;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

/// `POST /members/import`.
pub fn import_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(import::import_members))
}
