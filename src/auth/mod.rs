//! Identity and access: registration, login (with TOTP), sessions and refresh-token rotation,
//! password reset, e-mail verification, and the authorization gate every route passes.

pub mod actor;
pub mod config;
pub mod flows;
pub mod handlers;
pub mod links;
pub mod me;
pub mod model;
pub mod repo;
pub mod throttle;
pub mod totp;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::register))
        .routes(routes!(handlers::login))
        .routes(routes!(handlers::refresh))
        .routes(routes!(handlers::logout))
        .routes(routes!(me::me, me::update_me))
        .routes(routes!(links::forgot_password))
        .routes(routes!(links::reset_password))
        .routes(routes!(links::verify_email))
        .routes(routes!(totp::login_totp))
        .routes(routes!(totp::setup))
        .routes(routes!(totp::enable))
        .routes(routes!(totp::disable))
}
