//! Content (issue 13, item 5): practitioners' articles, platform-wide, and company news.
//!
//! - `GET|POST /articles`, `GET|PUT|DELETE /articles/{id}` ([`articles`]);
//! - `GET|POST /news`, `GET|PUT|DELETE /news/{id}` ([`news`]).
//!
//! Invariants: Markdown is rendered and sanitised once per write ([`markdown`]), both source
//! and HTML are stored, and the HTML is sanitised again on read; drafts are their writers'
//! only; articles are global (read in every company), news stays in its company — both held
//! by row-level security and `app_private` definers (migration `20261209000200_content.sql`),
//! not only by these handlers. Lists use the one keyset cursor of `http::pagination`.

pub mod articles;
pub mod markdown;
pub mod model;
pub mod news;
pub mod repo;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(articles::create, articles::list))
        .routes(routes!(articles::get, articles::replace, articles::delete))
        .routes(routes!(news::create, news::list))
        .routes(routes!(news::get, news::replace, news::delete))
}
