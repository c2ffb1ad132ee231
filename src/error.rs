//! The one error type of the HTTP layer, rendered as RFC 9457 `application/problem+json`.
//!
//! Invariants: every failure a client can see carries a stable, greppable `code`; 5xx bodies
//! never contain internal detail (no SQL, no stack traces): the cause is logged once, here, and
//! the client gets the request id to quote instead.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// One invalid field of a request body or query.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON pointer-ish path of the field (`name`, `branding.primary_color`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One refused row of an uploaded file (the CSV member import).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RowError {
    /// The line of the file where the row starts; the header is row 1.
    pub row: u64,
    /// The column (`email`, `role`, …), or `row` for the row as a whole.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// The per-row report of an upload refused as a whole (422): added to the problem body.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RowsReport {
    /// Data rows read (the header excluded).
    pub rows: u64,
    /// The first errors, by row.
    pub errors: Vec<RowError>,
    /// All errors found, reported or not.
    pub error_count: u64,
    /// Whether `errors` was cut short.
    pub errors_truncated: bool,
    /// Always false here: nothing was applied.
    pub applied: bool,
}

/// Problem details (RFC 9457) as sent on the wire.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:serein:problem:{code}`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable machine-readable code, e.g. `tenant_not_found`.
    pub code: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Everything a handler or middleware can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("no tenant for this host")]
    TenantNotFound,
    #[error("tenant suspended")]
    TenantSuspended,
    #[error("this route needs a tenant host")]
    TenantRequired,
    #[error("invalid host: {0}")]
    InvalidHost(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("bad request: {detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 422 `invalid_body`: valid JSON of the wrong shape (not an object, a field of the wrong
    /// type, an unknown field, a refused character), each error with its field path.
    #[error("invalid body")]
    InvalidBody(Vec<FieldError>),
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 415 naming the content type the route expects.
    #[error("unsupported media type (expected {0})")]
    UnsupportedMediaTypeExpected(&'static str),
    /// 422 for an upload with bad rows: nothing applied, the per-row report in the body.
    #[error("rows rejected")]
    RowsRejected(Box<RowsReport>),
    #[error("payload too large")]
    PayloadTooLarge,
    /// 401 with a stable code (`unauthorized`, `invalid_credentials`, `session_revoked`, …).
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// 403 with a stable code (`forbidden`, `signup_closed`, `mfa_enrollment_required`, …).
    #[error("forbidden: {code}")]
    Forbidden { code: &'static str, detail: String },
    /// 403 `mfa_enrollment_required`: an admin role must enrol TOTP first; the problem body
    /// carries the enrolment token for the TOTP routes (`enrollment_token`, `expires_in`).
    #[error("mfa enrollment required")]
    EnrollmentRequired {
        token: secrecy::SecretString,
        expires_in: u64,
    },
    /// 429 with `Retry-After`.
    #[error("too many requests: {code}")]
    TooManyRequests {
        code: &'static str,
        retry_after_secs: u32,
    },
    /// 410: a single-use or expiring token that can no longer be used.
    #[error("gone: {0}")]
    Gone(&'static str),
    #[error("conflict: {detail}")]
    Conflict { code: &'static str, detail: String },
    /// 422 with a stable code of its own (an upload whose content contradicts its claims,
    /// `type_mismatch`; an image that cannot be decoded, `image_rejected`).
    #[error("unprocessable: {code}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("service unavailable: {code}")]
    Unavailable {
        code: &'static str,
        retry_after_secs: u32,
    },
    #[error("request timed out")]
    Timeout,
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// The generic 403.
    pub fn forbidden() -> Self {
        Self::Forbidden {
            code: "forbidden",
            detail: String::new(),
        }
    }

    /// A 403 with a stable code and an explanation.
    pub fn forbidden_because(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            detail: detail.into(),
        }
    }

    /// A 400 with a stable code.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    /// A 422 for one field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError {
            field: field.into(),
            reason: reason.into(),
        }])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound | Self::TenantNotFound | Self::TenantRequired => StatusCode::NOT_FOUND,
            Self::TenantSuspended | Self::Forbidden { .. } | Self::EnrollmentRequired { .. } => {
                StatusCode::FORBIDDEN
            }
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Gone(_) => StatusCode::GONE,
            Self::InvalidHost(_) | Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Validation(_)
            | Self::InvalidBody(_)
            | Self::RowsRejected(_)
            | Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType | Self::UnsupportedMediaTypeExpected(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unavailable { .. } | Self::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::TenantNotFound => "tenant_not_found",
            Self::TenantSuspended => "tenant_suspended",
            Self::TenantRequired => "tenant_required",
            Self::InvalidHost(_) => "invalid_host",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::BadRequest { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. } => code,
            Self::Validation(_) => "validation_failed",
            Self::InvalidBody(_) => "invalid_body",
            Self::RowsRejected(_) => "rows_rejected",
            Self::EnrollmentRequired { .. } => "mfa_enrollment_required",
            Self::UnsupportedMediaType | Self::UnsupportedMediaTypeExpected(_) => {
                "unsupported_media_type"
            }
            Self::PayloadTooLarge => "payload_too_large",
            Self::Unauthorized(code) | Self::Gone(code) => code,
            Self::Forbidden { code, .. } | Self::TooManyRequests { code, .. } => code,
            Self::Unavailable { code, .. } => code,
            Self::Timeout => "request_timeout",
            Self::Database(_) | Self::Internal(_) => "internal_error",
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            Self::TenantNotFound => Some("No tenant is served at this host.".into()),
            Self::TenantSuspended => Some("This organisation's access is suspended.".into()),
            Self::TenantRequired => Some("This route is served on a tenant host only.".into()),
            Self::InvalidHost(why) => Some((*why).into()),
            Self::BadRequest { detail, .. }
            | Self::Conflict { detail, .. }
            | Self::Unprocessable { detail, .. } => Some(detail.clone()),
            Self::Validation(_) => Some("One or more fields are invalid.".into()),
            // The first error in words (clients that read only `detail` still see the field).
            Self::InvalidBody(errors) => Some(errors.first().map_or_else(
                || "The body does not match this operation's schema.".to_owned(),
                |e| format!("{}: {}", e.field, e.reason),
            )),
            Self::UnsupportedMediaType => Some("Expected Content-Type: application/json.".into()),
            Self::UnsupportedMediaTypeExpected(expected) => {
                Some(format!("Expected Content-Type: {expected}."))
            }
            Self::RowsRejected(_) => Some(
                "Some rows are invalid; nothing was applied. Fix them, or import with \
                 ?partial=true to apply the valid rows only."
                    .into(),
            ),
            Self::PayloadTooLarge => Some("The request body exceeds the size limit.".into()),
            Self::Unavailable { .. } => Some("Temporarily unavailable; retry shortly.".into()),
            Self::Timeout => Some("The request took too long and was abandoned.".into()),
            Self::Forbidden { detail, .. } if !detail.is_empty() => Some(detail.clone()),
            Self::EnrollmentRequired { .. } => Some(
                "This role requires an authenticator app (TOTP). Enrol with the \
                 enrollment_token at POST /api/v1/auth/totp/setup and /enable, then log in again."
                    .into(),
            ),
            Self::TooManyRequests { .. } => Some("Too many attempts; retry later.".into()),
            _ => None,
        }
    }

    /// The problem body for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let code = self.code();
        Problem {
            kind: format!("urn:serein:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.detail(),
            code,
            errors: match self {
                Self::Validation(errors) | Self::InvalidBody(errors) => errors.clone(),
                _ => Vec::new(),
            },
        }
    }

    /// Problem extension members (RFC 9457 §3.2) beside the standard ones: the one place where
    /// an error adds fields to its body.
    fn extensions(&self) -> serde_json::Result<Option<serde_json::Map<String, serde_json::Value>>> {
        match self {
            // The row report (`errors` holds row errors here).
            Self::RowsRejected(report) => match serde_json::to_value(report.as_ref())? {
                serde_json::Value::Object(extra) => Ok(Some(extra)),
                _ => Ok(None),
            },
            Self::EnrollmentRequired { token, expires_in } => {
                use secrecy::ExposeSecret;
                let mut extra = serde_json::Map::new();
                extra.insert("enrollment_token".into(), token.expose_secret().into());
                extra.insert("expires_in".into(), (*expires_in).into());
                Ok(Some(extra))
            }
            _ => Ok(None),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut => Self::Unavailable {
                code: "database_busy",
                retry_after_secs: 1,
            },
            sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                Self::Unavailable {
                    code: "database_unavailable",
                    retry_after_secs: 2,
                }
            }
            // The server is shutting down or restarting (admin_shutdown, crash_shutdown,
            // cannot_connect_now): the request did not commit; tell the client to retry.
            sqlx::Error::Database(ref db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("57P") || c.starts_with("08")) =>
            {
                Self::Unavailable {
                    code: "database_unavailable",
                    retry_after_secs: 2,
                }
            }
            // Map by SQLSTATE so database refusals are client errors, never 500s. Constraint
            // and column names stay in the log; features map their own constraints to precise
            // codes before this fallback.
            sqlx::Error::Database(ref db) => match db.code().as_deref() {
                // Row-level security WITH CHECK or a missing grant: the row is not the
                // caller's to write. Logged: it is either an attack or a bug.
                Some("42501") => {
                    tracing::warn!(error = %db, "database refused the write (42501)");
                    Self::forbidden()
                }
                // `app_private.enforce_seats`: the company has no seat left for this change.
                Some("SR409") => Self::Conflict {
                    code: "seat_limit_reached",
                    detail: "The company has no seat left for this change; nothing was applied."
                        .into(),
                },
                Some("23505") => Self::Conflict {
                    code: "conflict",
                    detail: "This conflicts with an existing resource.".into(),
                },
                Some("23503") => {
                    Self::bad_request("invalid_reference", "A referenced resource does not exist.")
                }
                Some("23502" | "23514" | "22P02" | "22001" | "22003" | "22007" | "22008") => {
                    Self::Validation(vec![FieldError {
                        field: "(body)".into(),
                        reason: "A value is missing, malformed or out of range.".into(),
                    }])
                }
                // statement_timeout, serialization failure, deadlock, lock not available.
                Some("57014" | "40001" | "40P01" | "55P03") => Self::Unavailable {
                    code: "database_contention",
                    retry_after_secs: 1,
                },
                _ => Self::Database(e),
            },
            other => Self::Database(other),
        }
    }
}

/// Render a problem with an explicit status (used by middleware that has no `AppError`).
pub fn problem_response(err: &AppError) -> Response {
    let problem = err.problem();
    let status = err.status();
    let body = match err.extensions() {
        Ok(Some(extra)) => serde_json::to_value(&problem).and_then(|mut v| {
            if let Some(obj) = v.as_object_mut() {
                obj.extend(extra);
            }
            serde_json::to_vec(&v)
        }),
        _ => serde_json::to_vec(&problem),
    }
    .unwrap_or_default();
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let AppError::Unavailable {
        retry_after_secs, ..
    } = err
    {
        h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
    }
    if let AppError::TooManyRequests {
        retry_after_secs, ..
    } = err
    {
        h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
    }
    if let AppError::Unauthorized(_) = err {
        h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let AppError::Timeout = err {
        h.insert(header::RETRY_AFTER, HeaderValue::from(1u32));
    }
    res
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            match &self {
                Self::Database(e) => tracing::error!(error = %e, "database error"),
                Self::Internal(msg) => tracing::error!(error = %msg, "internal error"),
                other => tracing::warn!(code = other.code(), "unavailable"),
            }
        }
        problem_response(&self)
    }
}

/// Result alias for handlers.
pub type AppResult<T> = Result<T, AppError>;
