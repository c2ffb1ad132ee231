//! The files routes: thin — extract, authorize (the gate did, by the declared pair), call the
//! service, respond. See the module header of [`super`] for the rules.

use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::model::{Avatar, AvatarRequest, FileInfo, Purpose, UploadForm};
use super::service::{self, Upload};
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::error::{AppError, AppResult, FieldError};
use crate::http::extract::{AppJson, AppPath};

/// Multipart framing allowed on top of `FILES_MAX_BYTES` (boundaries, part headers, the
/// `purpose` field).
pub const MULTIPART_OVERHEAD: usize = 64 * 1024;
/// Longest accepted `purpose` field.
const MAX_PURPOSE_BYTES: usize = 64;

fn multipart_error(e: &axum::extract::multipart::MultipartError) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge
    } else {
        AppError::bad_request("invalid_multipart", "The multipart body cannot be read.")
    }
}

fn unknown_part(name: &str) -> AppError {
    AppError::InvalidBody(vec![FieldError {
        field: name.chars().filter(|c| !c.is_control()).take(40).collect(),
        reason: "unknown part (expected `file` and optionally `purpose`)".into(),
    }])
}

/// Read the form: one `file` part (held to `max_bytes` while reading) and an optional
/// `purpose`; any other part is refused.
async fn read_form(state: &AppState, req: Request, max_bytes: usize) -> AppResult<Upload> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    if !is_multipart {
        return Err(AppError::UnsupportedMediaTypeExpected(
            "multipart/form-data",
        ));
    }
    // The route's own limit, counted while reading (a body without a length is held to it too).
    let limit = max_bytes.saturating_add(MULTIPART_OVERHEAD);
    let req = req.map(|b| axum::body::Body::new(http_body_util::Limited::new(b, limit)));
    let mut form = Multipart::from_request(req, state).await.map_err(|_| {
        AppError::bad_request("invalid_multipart", "The multipart body cannot be read.")
    })?;
    let mut file: Option<(Vec<u8>, Option<String>, Option<String>)> = None;
    let mut purpose: Option<Purpose> = None;
    while let Some(mut field) = form.next_field().await.map_err(|e| multipart_error(&e))? {
        match field.name().unwrap_or_default() {
            "file" if file.is_none() => {
                let name = field.file_name().map(str::to_owned);
                let declared = field.content_type().map(str::to_owned);
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&e))? {
                    if bytes.len().saturating_add(chunk.len()) > max_bytes {
                        return Err(AppError::PayloadTooLarge);
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some((bytes, declared, name));
            }
            "purpose" if purpose.is_none() => {
                let mut raw = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(&e))? {
                    raw.extend_from_slice(&chunk);
                    if raw.len() > MAX_PURPOSE_BYTES {
                        return Err(AppError::invalid(
                            "purpose",
                            "one of avatar, attachment, article_image",
                        ));
                    }
                }
                purpose = Some(Purpose::parse(&String::from_utf8_lossy(&raw))?);
            }
            other => return Err(unknown_part(other)),
        }
    }
    let Some((bytes, declared, name)) = file else {
        return Err(AppError::Validation(vec![FieldError {
            field: "file".into(),
            reason: "a part named `file` is required".into(),
        }]));
    };
    if bytes.is_empty() {
        return Err(AppError::Validation(vec![FieldError {
            field: "file".into(),
            reason: "the file is empty".into(),
        }]));
    }
    Ok(Upload {
        bytes,
        declared,
        name,
        purpose: purpose.unwrap_or(Purpose::Attachment),
    })
}

/// Upload a file.
#[utoipa::path(post, path = "/api/v1/files", tag = "files",
    extensions(("x-authz" = json!({"resource": "files", "action": "create"}))),
    security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data",
        description = "One part `file` (at most FILES_MAX_BYTES, default 10 MiB) and optionally \
                       `purpose`. The type is sniffed from the content: PNG, JPEG, WebP, GIF \
                       (re-encoded to PNG or JPEG, metadata removed), PDF or plain text."),
    responses(
        (status = 201, body = FileInfo),
        (status = 403, description = "purpose_not_allowed: article images are for practitioners"),
        (status = 413, description = "Larger than FILES_MAX_BYTES"),
        (status = 429, description = "upload_in_progress: the caller already has an upload in flight (Retry-After)"),
        (status = 503, description = "uploads_busy: too many images being inspected on this server; retry (Retry-After)"),
        (status = 415, description = "unsupported_media_type: not multipart, or content of a refused type (SVG, HTML, unknown)"),
        (status = 422, description = "type_mismatch (declared type or extension disagrees with the content), not_an_image, image_rejected (undecodable, or dimensions over the limit), validation_failed"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn upload(
    State(state): State<AppState>,
    actor: Actor,
    req: Request,
) -> AppResult<(StatusCode, Json<FileInfo>)> {
    actor.require_company()?;
    // One upload at a time per person (429 `upload_in_progress`); no process-wide permit
    // while the body arrives: permits bound only the inspection (`FileStore::inspect`).
    let _slot = state
        .files
        .person_slot(actor.tenant, actor.user.as_uuid())?;
    let form = read_form(&state, req, state.config.files.max_bytes).await?;
    let info = service::upload(&state, &actor, form).await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// Read a file: its owner, or whoever a link lets read it (an avatar, a message's attachment,
/// a published article image).
#[utoipa::path(get, path = "/api/v1/files/{id}", tag = "files",
    extensions(("x-authz" = json!({"resource": "files", "action": "read"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "File id")),
    responses(
        (status = 200, description = "The bytes, with their sniffed Content-Type; images (re-encoded PNG or JPEG) inline, everything else as an attachment",
            content((Vec<u8> = "image/png"), (Vec<u8> = "image/jpeg"), (Vec<u8> = "application/pdf"), (Vec<u8> = "text/plain"))),
        (status = 304, description = "Not modified (If-None-Match matched the ETag)"),
        (status = 404, description = "No such file the caller may read"),
        (status = 410, description = "file_unavailable: the stored object is missing or does not open"),
    ))]
#[tracing::instrument(skip_all, fields(file = %id))]
pub async fn download(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
    headers: HeaderMap,
) -> AppResult<Response> {
    actor.require_company()?;
    let file = service::open(&state, &actor, id).await?;
    let etag = format!("\"{}\"", service::hex(&file.sha256));
    let mut h = HeaderMap::new();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    let matched = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matched {
        return Ok((StatusCode::NOT_MODIFIED, h).into_response());
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.served.mime()),
    );
    let disposition = content_disposition(file.served.is_image(), &file.file_name);
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok((StatusCode::OK, h, file.bytes.to_vec()).into_response())
}

/// Delete a file of the caller's (its links are cleared: an avatar disappears, a message shows
/// no attachment, an article image is withdrawn).
#[utoipa::path(delete, path = "/api/v1/files/{id}", tag = "files",
    extensions(("x-authz" = json!({"resource": "files", "action": "delete"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "File id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "Not a file of the caller's here"),
    ))]
#[tracing::instrument(skip_all, fields(file = %id))]
pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    actor.require_company()?;
    service::delete(&state, &actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set the caller's avatar to one of their `avatar` uploads (the previous one is deleted).
#[utoipa::path(put, path = "/api/v1/me/avatar", tag = "files",
    extensions(("x-authz" = json!({"resource": "files", "action": "create"}))),
    security(("bearer" = [])),
    request_body = AvatarRequest,
    responses(
        (status = 200, body = Avatar),
        (status = 422, description = "validation_failed: not an avatar upload of the caller's here"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn set_avatar(
    State(state): State<AppState>,
    actor: Actor,
    AppJson(req): AppJson<AvatarRequest>,
) -> AppResult<Json<Avatar>> {
    actor.require_company()?;
    service::set_avatar(&state, &actor, req.file_id).await?;
    Ok(Json(Avatar {
        file_id: req.file_id,
        avatar_url: req.file_id.url(),
    }))
}

/// Remove the caller's avatar.
#[utoipa::path(delete, path = "/api/v1/me/avatar", tag = "files",
    extensions(("x-authz" = json!({"resource": "files", "action": "delete"}))),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "The caller has no avatar"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn clear_avatar(State(state): State<AppState>, actor: Actor) -> AppResult<StatusCode> {
    actor.require_company()?;
    service::clear_avatar(&state, &actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `inline` for re-encoded raster images, `attachment` for everything else; the name as an
/// RFC 8187 `filename*` (and an ASCII fallback).
pub fn content_disposition(inline: bool, name: &str) -> String {
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_quote_nothing_a_header_could_break_on() {
        assert_eq!(
            content_disposition(false, "résumé 1.pdf"),
            "attachment; filename=\"r_sum_ 1.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%201.pdf"
        );
        assert!(content_disposition(true, "a.png").starts_with("inline; "));
    }
}
