//! Extractors whose rejections are problem+json with stable codes (axum's own answer in
//! plain text).
//!
//! Invariants: bodies are JSON objects only (an array would fill a struct's fields by
//! position), parsed with `deny_unknown_fields` on every request type (mass assignment is
//! refused, not ignored); no string anywhere in a body (object keys included) carries a
//! character [`text::is_refused`] refuses; a number with a zero fraction (`8104.0`) is the
//! integer it equals, as JSON Schema says; a syntax error is 400 `malformed_json`, valid JSON of
//! the wrong shape is 422 `invalid_body` with the field path; a body over the limit is 413; a
//! malformed path id is 404 (it can name no resource), never a 500. Query strings and paths are
//! checked for refused characters before routing (`middleware::refuse_control_characters`).

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{AppError, FieldError};
use crate::http::text;

/// JSON body (an object).
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(AppError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge
            } else {
                AppError::bad_request("unreadable_body", "The body could not be read.")
            }
        })?;
        json_object(&bytes).map(Self)
    }
}

/// `application/json` or any `application/*+json`, parameters ignored.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

/// Parse a request body that must be a JSON object into `T`, under the rules of the module
/// header. For the few handlers that read the bytes themselves (an optional body).
pub fn json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut value: Value = serde_json::from_slice(bytes)
        .map_err(|_| AppError::bad_request("malformed_json", "The body is not valid JSON."))?;
    if !value.is_object() {
        return Err(body_error("(body)", "must be a JSON object"));
    }
    let mut path = String::new();
    normalise(&mut value, &mut path)?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = match e.path().to_string() {
            p if p == "." => "(body)".to_owned(),
            p => p,
        };
        let reason: String = e.inner().to_string().chars().take(300).collect();
        body_error(&field, &reason)
    })
}

fn body_error(field: &str, reason: &str) -> AppError {
    AppError::InvalidBody(vec![FieldError {
        field: field.to_owned(),
        reason: reason.to_owned(),
    }])
}

/// Refuse forbidden characters at any depth and turn integral floats into integers. `path` is
/// the field path so far (`branding.display_name`, `roles[2]`).
fn normalise(value: &mut Value, path: &mut String) -> Result<(), AppError> {
    let here = |path: &str| {
        if path.is_empty() {
            "(body)".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        Value::String(s) if text::has_refused(s) => Err(body_error(
            &here(path),
            "must not contain NUL or control characters",
        )),
        Value::Number(n) if n.is_f64() => {
            if let Some(i) = n.as_f64().and_then(integral) {
                *value = Value::from(i);
            }
            Ok(())
        }
        Value::Array(items) => {
            let len = path.len();
            for (i, item) in items.iter_mut().enumerate() {
                path.push_str(&format!("[{i}]"));
                normalise(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(map) => {
            let len = path.len();
            for (key, item) in map.iter_mut() {
                if !path.is_empty() {
                    path.push('.');
                }
                if text::has_refused(key) {
                    return Err(body_error(
                        &here(path),
                        "a member name contains NUL or control characters",
                    ));
                }
                path.push_str(key);
                normalise(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The integer a float equals, if it has no fraction and is exactly representable (|x| ≤ 2^53).
fn integral(f: f64) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if f.fract() == 0.0 && f.abs() <= EXACT {
        // In range and integral: the conversion is exact.
        #[allow(clippy::cast_possible_truncation)]
        Some(f as i64)
    } else {
        None
    }
}

/// serde's message for a data error names the field and what was expected; it never echoes
/// more of the input than the offending token. Trim axum's prefix.
fn body_text(e: &impl std::error::Error) -> String {
    let text = std::error::Error::source(e)
        .map(ToString::to_string)
        .unwrap_or_else(|| e.to_string());
    text.chars().take(300).collect()
}

/// Query string.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(AppError::bad_request("invalid_query", body_text(&e)))
            }
            Err(_) => Err(AppError::bad_request(
                "invalid_query",
                "Invalid query string.",
            )),
        }
    }
}

/// Path parameters. Anything unparsable is 404: such an id names nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AppPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => Err(AppError::NotFound),
            Err(_) => Err(AppError::Internal("path parameters unavailable".into())),
        }
    }
}
