//! Liveness, readiness and metrics.
//!
//! `/health/live` answers as long as the process serves HTTP; `/health/ready` only when the
//! database answers and every migration is applied. Both are served on any Host (probes use the
//! pod address). `/metrics` renders Prometheus text on a listener of its own (`METRICS_BIND`,
//! [`metrics_router`]), never on the public API listener: it names routes, pool sizes and
//! error rates that a tenant's users have no business reading, and the ingress never reaches it.
//!
//! The probes take only the database (`FromRef`), and the metrics listener only the database and
//! the Prometheus handle: nothing here depends on the application's state.

use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::db::Db;
use crate::error::AppError;

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Db: FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
}

/// The metrics listener's whole service: `GET /metrics`, 404 for anything else (no tenant
/// resolution, no authentication: the listener is bound to loopback or a cluster-internal
/// port). Not an API route, so it is not in the OpenAPI document; it is a single fallback
/// rather than a router table.
pub fn metrics_router(db: Db, handle: Option<PrometheusHandle>) -> axum::Router {
    axum::Router::new()
        .fallback(metrics_listener)
        .with_state(MetricsState { db, handle })
}

/// What the metrics listener reads: pool statistics and the recorder's handle.
#[derive(Clone)]
struct MetricsState {
    db: Db,
    handle: Option<PrometheusHandle>,
}

async fn metrics_listener(
    State(state): State<MetricsState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
) -> Response {
    if method == axum::http::Method::GET && uri.path() == "/metrics" {
        metrics(State(state)).await
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health",
    extensions(("x-authz" = json!({"resource": "health", "action": "read"}))),
    responses((status = 200, body = Health)))]
pub async fn live() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The database answers and the schema is current.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    extensions(("x-authz" = json!({"resource": "health", "action": "read"}))),
    responses((status = 200, body = Health),
              (status = 503, description = "not_ready: the database does not answer or its schema is not current")))]
pub async fn ready(State(db): State<Db>) -> Response {
    match db.readiness().await {
        Ok(()) => Json(Health { status: "ok" }).into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            AppError::Unavailable {
                code: "not_ready",
                retry_after_secs: 1,
            }
            .into_response()
        }
    }
}

/// Prometheus metrics: requests by route and status, latency histogram, pool gauges.
async fn metrics(State(state): State<MetricsState>) -> Response {
    let stats = state.db.stats();
    metrics::gauge!("db_pool_connections").set(f64::from(stats.size));
    metrics::gauge!("db_pool_idle").set(stats.idle as f64);
    metrics::gauge!("db_pool_waiting").set(stats.waiting as f64);
    metrics::gauge!("db_pool_max").set(f64::from(stats.max));
    let body = state
        .handle
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    let mut res = (StatusCode::OK, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    res
}
