//! Extractors whose rejections are problem+json with stable codes (axum's own answer in
//! plain text).
//!
//! Invariants: bodies are JSON only, parsed with `deny_unknown_fields` on every request type
//! (mass assignment is refused, not ignored); a body over the limit is 413; a malformed path
//! id is 404 (it can name no resource), never a 500.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// JSON body.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(r: &JsonRejection) -> AppError {
    match r {
        JsonRejection::JsonDataError(e) => AppError::bad_request("invalid_body", body_text(e)),
        JsonRejection::JsonSyntaxError(_) => {
            AppError::bad_request("malformed_json", "The body is not valid JSON.")
        }
        JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType,
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        _ => AppError::bad_request("unreadable_body", "The body could not be read."),
    }
}

/// serde's message for a data error names the field and what was expected; it never echoes
/// more of the body than the offending token. Trim axum's prefix.
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
