//! The request pipeline around every route (outermost first):
//! request id → tracing span → metrics → load shedding (in-flight cap → 503 + Retry-After) →
//! early 413 on a declared oversized body → request timeout (503 `request_timeout`) →
//! security headers. Then the per-IP throttle, the refusal of control characters in path and
//! query ([`refuse_control_characters`]), and tenant resolution (`tenants::resolve`).
//!
//! Body limit and timeout are global (`MAX_BODY_BYTES`, `REQUEST_TIMEOUT_MS`) except for the
//! routes listed in [`Limits::routes`] (the CSV member import), which stream their bodies and
//! enforce their own, larger limit while reading.
//!
//! Invariants: the span carries request id, method, route template, tenant and status, and
//! nothing from headers or bodies (no tokens, no content); metrics are labelled by route
//! template, never by raw path (bounded cardinality).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::error::{AppError, problem_response};

/// Header carrying the request id, in and out.
pub const REQUEST_ID: &str = "x-request-id";

/// Shared limits of the pipeline.
#[derive(Clone)]
pub struct Limits {
    pub in_flight: Arc<Semaphore>,
    pub max_body_bytes: usize,
    pub request_timeout: std::time::Duration,
    /// Routes with their own body limit and timeout, by route template.
    pub routes: Arc<[RouteLimits]>,
    /// Concurrent CSV imports of this process (each holds a database connection while it
    /// reads its upload).
    pub imports: Arc<Semaphore>,
}

/// A route's own limits (it must enforce `max_body_bytes` itself on bodies of unknown length).
#[derive(Debug, Clone)]
pub struct RouteLimits {
    pub route: &'static str,
    pub max_body_bytes: usize,
    pub timeout: std::time::Duration,
}

impl Limits {
    /// Body limit and timeout of a route template.
    pub fn of(&self, route: &str) -> (usize, std::time::Duration) {
        self.routes
            .iter()
            .find(|r| r.route == route)
            .map_or((self.max_body_bytes, self.request_timeout), |r| {
                (r.max_body_bytes, r.timeout)
            })
    }
}

/// Accept a caller's request id only if it is short and boring; otherwise make one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(new_request_id, str::to_owned)
}

/// A UUIDv7 from the clock and the thread-local generator: `Uuid::now_v7` asks the kernel for
/// fresh random bytes twice per call (two `getrandom` system calls on every request). A request
/// id needs uniqueness, not secrecy.
fn new_request_id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let millis = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
    let random: [u8; 10] = rand::random();
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .to_string()
}

/// The outermost middleware; see the module header.
pub async fn observe(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = request_id(&req);
    let route: Arc<str> = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| Arc::from("unmatched"), |m| Arc::from(m.as_str()));
    let method = req.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        route = %route,
        tenant = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    async move {
        let mut res = guarded(&limits, &route, req, next).await;
        let status = res.status();
        let h = res.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&id) {
            h.insert(REQUEST_ID, v);
        }
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if !h.contains_key(header::CACHE_CONTROL) {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        let elapsed = start.elapsed().as_secs_f64();
        let labels = [
            ("method", method.as_str().to_owned()),
            ("route", route.to_string()),
            ("status", status.as_u16().to_string()),
        ];
        metrics::counter!("http_requests_total", &labels).increment(1);
        metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed);
        tracing::Span::current().record("status", status.as_u16());
        if status.is_server_error() {
            tracing::warn!(latency_ms = elapsed * 1000.0, "request failed");
        } else {
            tracing::info!(latency_ms = elapsed * 1000.0, "request served");
        }
        res
    }
    .instrument(span)
    .await
}

async fn guarded(limits: &Limits, route: &str, req: Request, next: Next) -> Response {
    // Liveness must answer even when the pod is saturated, or the orchestrator kills it.
    let _permit = if route == "/health/live" {
        None
    } else {
        match limits.in_flight.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                metrics::counter!("http_requests_shed_total").increment(1);
                return problem_response(&AppError::Unavailable {
                    code: "overloaded",
                    retry_after_secs: 1,
                });
            }
        }
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (max_body_bytes, timeout) = limits.of(route);
    if declared.is_some_and(|n| n > max_body_bytes as u64) {
        return problem_response(&AppError::PayloadTooLarge);
    }
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(res) => res,
        Err(_) => problem_response(&AppError::Timeout),
    }
}

/// Fallback for unknown routes.
pub async fn not_found() -> Response {
    AppError::NotFound.into_response()
}

/// Fallback for a known path with the wrong method.
pub async fn method_not_allowed() -> Response {
    AppError::MethodNotAllowed.into_response()
}

/// A panic in a handler becomes a 500 problem (the panic message is not sent).
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    problem_response(&AppError::Internal("panic".into()))
}

/// Refuse NUL and control characters in the path (404: such a path names nothing) and in the
/// query string (400 `invalid_query`, naming the parameter) of every request, before routing:
/// handlers that read the raw query (`RawQuery`) are covered as well as `AppQuery`.
pub async fn refuse_control_characters(req: Request, next: Next) -> Response {
    let uri = req.uri();
    if crate::http::text::percent_decoded(uri.path())
        .chars()
        .any(char::is_control)
    {
        return problem_response(&AppError::NotFound);
    }
    if let Some(query) = uri.query() {
        for pair in query.split('&') {
            let decoded = crate::http::text::percent_decoded(pair);
            if decoded.chars().any(char::is_control) {
                let name: String = decoded
                    .split('=')
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(40)
                    .collect();
                return problem_response(&AppError::bad_request(
                    "invalid_query",
                    format!("Query parameter `{name}` must not contain control characters."),
                ));
            }
        }
    }
    next.run(req).await
}

/// The operations that take no request body, from the OpenAPI document: path template →
/// methods. Built once at start-up; looked up without allocating.
#[derive(Clone, Debug, Default)]
pub struct Bodiless(Arc<std::collections::HashMap<String, Vec<axum::http::Method>>>);

impl Bodiless {
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Self {
        use utoipa::openapi::HttpMethod;
        let mut map: std::collections::HashMap<String, Vec<axum::http::Method>> =
            std::collections::HashMap::new();
        for (path, item) in &doc.paths.paths {
            let ops = [
                (HttpMethod::Get, &item.get),
                (HttpMethod::Put, &item.put),
                (HttpMethod::Post, &item.post),
                (HttpMethod::Delete, &item.delete),
                (HttpMethod::Patch, &item.patch),
            ];
            for (method, op) in ops {
                if let Some(op) = op
                    && op.request_body.is_none()
                {
                    let m = match method {
                        HttpMethod::Get => axum::http::Method::GET,
                        HttpMethod::Put => axum::http::Method::PUT,
                        HttpMethod::Post => axum::http::Method::POST,
                        HttpMethod::Delete => axum::http::Method::DELETE,
                        _ => axum::http::Method::PATCH,
                    };
                    map.entry(path.clone()).or_default().push(m);
                }
            }
        }
        Self(Arc::new(map))
    }

    fn takes_no_body(&self, method: &axum::http::Method, path: &str) -> bool {
        self.0.get(path).is_some_and(|m| m.contains(method))
    }
}

/// An operation that takes no body refuses one (422 `invalid_body`), so that a body sent by
/// mistake (an array, a form, fields the operation does not read) is never answered 2xx as if
/// it had been understood. An empty body, or an empty JSON object (what many clients send with
/// every POST), is accepted. Runs after the authorization gate, on matched routes only.
pub async fn refuse_unexpected_body(
    State(bodiless): State<Bodiless>,
    req: Request,
    next: Next,
) -> Response {
    use axum::body::HttpBody as _;
    use http_body_util::BodyExt as _;
    let takes_none = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| bodiless.takes_no_body(req.method(), p.as_str()));
    if !takes_none || req.body().is_end_stream() || req.body().size_hint().exact() == Some(0) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    // At most a few bytes are worth reading: anything longer is not an empty object.
    let bytes = match http_body_util::Limited::new(body, 64).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return unexpected_body(),
    };
    let trimmed: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if trimmed.is_empty() || trimmed == b"{}" {
        return next
            .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
            .await;
    }
    unexpected_body()
}

fn unexpected_body() -> Response {
    problem_response(&AppError::InvalidBody(vec![crate::error::FieldError {
        field: "(body)".to_owned(),
        reason: "this operation takes no request body".to_owned(),
    }]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn made_request_ids_are_distinct_uuid_v7() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        for id in [a, b] {
            let u = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(u.get_version_num(), 7, "{id}");
            let (secs, _) = u.get_timestamp().unwrap().to_unix();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!(secs.abs_diff(now) < 3600, "{id}");
        }
    }
}
