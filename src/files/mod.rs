//! Files (issue 13, item 6): uploads of avatars, chat attachments and article images.
//!
//! - `POST /files` (multipart: `file`, optional `purpose`) → 201 with the file's description;
//! - `GET /files/{id}` → the bytes, to whoever may read them (below), else 404;
//! - `DELETE /files/{id}` → the owner deletes (404 for anyone else);
//! - `PUT|DELETE /me/avatar` → the caller's avatar (one of their `avatar` uploads).
//!
//! Invariants:
//! - Content decides the type (`content`): the part's declared type and the name's extension
//!   must agree with the sniffed bytes (else 422 `type_mismatch`); only PNG, JPEG, WebP, GIF,
//!   PDF and plain text are accepted (SVG, HTML, unknown → 415); images are decoded within
//!   limits and re-encoded to PNG or JPEG without metadata; avatars and article images must be
//!   images. Size: `FILES_MAX_BYTES` (default 10 MiB), counted while reading (413), the
//!   route's own body limit and timeout (`route_limits`). File names lose `Cc` and `Cf`
//!   characters (direction overrides, zero-width characters).
//! - Memory (`content`, `store`): an image is capped at `FILES_MAX_IMAGE_PIXELS` (default
//!   4096² ≈ 16.8 MP) and the decoder's allocations at 4 B a pixel (`max_alloc` = 64 MiB);
//!   it is downscaled (avatars 1,024 px, others 4,096 px long side) before any rotation, so an
//!   inspection holds the upload plus at most two bitmaps: ≤ 10 + 2 × 64 ≈ 138 MiB. Two
//!   inspections per process (`store::UPLOADS_AT_ONCE`, permits owned by the blocking task,
//!   so a dropped request cannot free one early) ≈ 276 MiB, under the chart's 512 MiB limit.
//!   One upload at a time per person (429 `upload_in_progress`); the body is read before a
//!   permit is taken, so slow clients hold up only themselves.
//! - Serving: the sniffed `Content-Type`; `Content-Disposition: inline` only for the
//!   re-encoded PNG/JPEG, `attachment` for PDF and text; `X-Content-Type-Options: nosniff`;
//!   `Content-Security-Policy: default-src 'none'; sandbox`; `Cache-Control: private,
//!   no-store`; an `ETag` from the SHA-256. So an uploaded page or script never runs in the
//!   API's origin.
//! - Who reads: the definer `app_private.file_open` alone decides, for the person proven by
//!   the session guard — the owner in this company; anyone in a company where the owner is an
//!   active member, for the owner's CURRENT avatar; the participants of the consultation of
//!   the message the file is attached to, inside its window; everyone signed in, for a
//!   published article image. Anything else is 404 (never 403, which would confirm it exists).
//! - At rest: every object is AES-256-GCM sealed before it reaches the store, AAD
//!   `v1|{tenant}|files|content|{id}`, the SHA-256 of the plaintext checked after opening.
//!   An attachment is sealed under its own random data key, wrapped under a SUBJECT key
//!   (`files.wrapped_key`, `files.sealed_for`; AAD `…|files|content_key|{id bound to the
//!   subject}`): the uploader's at upload; once attached, the consultation EMPLOYEE's, like the
//!   message body — the employee's own uploads already are, a practitioner's is re-wrapped in
//!   the send transaction ([`service::seal_attachment_for`]; the row only, never the object),
//!   and `message_send` refuses one sealed for anyone else. So the employee's erasure (subject
//!   key destroyed) shreds the conversation's attachments and their own uploads: GET → 410
//!   `file_unavailable`; nobody else's files are affected. Attachments stored before migration
//!   `20261209000601` stay under the company's clinical key (readable; no longer attachable).
//!   Avatars and article images, which are read from other companies, use the platform-level
//!   identity key (derived from the master key; a request in one company can never obtain
//!   another company's keys). Keys: `tenants/{tenant}/files/{id}`.
//! - Deleting: the row is tombstoned and unlinked (the avatar cleared; a message keeps its text
//!   and shows no attachment; an article image is withdrawn), the object removed after commit;
//!   the job worker's sweep ([`service::sweep`]) removes what is left and uploads never linked
//!   within 24 hours (attachments, avatars — and so attachments of pruned messages). The sweep
//!   locks its candidates (`SKIP LOCKED`) and re-checks their links after locking; linking
//!   doors lock the file row (migration `20261209000600`), so no link names a swept file.
//! - An upload whose commit fails after its object was put leaves an object no row names
//!   (ciphertext, an id nobody was told): removed with the company's prefix at offboarding,
//!   not by the sweep, which walks rows (listing the store every round is not cheap).
//! - Never logged: file content or names; logs carry ids, purposes and sizes.
//!
//! For the content feature: [`publish_article_images`] / [`unpublish_article_images`] in the
//! caller's request transaction; Markdown refers to an image as `/api/v1/files/{id}`.

pub mod config;
pub mod content;
pub mod handlers;
pub mod model;
pub mod repo;
pub mod service;
pub mod store;

use axum::extract::DefaultBodyLimit;
use sqlx::PgConnection;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub use self::config::FilesConfig;
pub use self::model::FileId;
pub use self::store::FileStore;
use crate::app::AppState;
use crate::error::{AppError, AppResult};
use crate::http::middleware::RouteLimits;

/// The upload route's template (its own body limit and timeout are keyed by it).
pub const UPLOAD_ROUTE: &str = "/api/v1/files";

pub fn router() -> OpenApiRouter<AppState> {
    // The upload enforces its own limit while reading (`handlers::read_form`).
    let upload = OpenApiRouter::new()
        .routes(routes!(handlers::upload))
        .layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .merge(upload)
        .routes(routes!(handlers::download, handlers::delete))
        .routes(routes!(handlers::set_avatar, handlers::clear_avatar))
}

/// The upload route's body limit (the file plus multipart framing) and timeout.
pub fn route_limits(config: &FilesConfig) -> RouteLimits {
    RouteLimits {
        route: UPLOAD_ROUTE,
        max_body_bytes: config
            .max_bytes
            .saturating_add(handlers::MULTIPART_OVERHEAD),
        timeout: config.timeout,
    }
}

/// Publish the proven caller's article images for `article_id` (the content feature calls
/// this in its request transaction when an article is published or its images change). Every
/// file must be a live `article_image` upload of the caller's (in any of their companies) not
/// published for another article; otherwise nothing changes and the answer is 422 on `images`.
/// Once published, an image is readable by every signed-in person of every company at
/// `/api/v1/files/{id}`. Returns how many files are published for the article.
pub async fn publish_article_images(
    tx: &mut PgConnection,
    article_id: Uuid,
    files: &[FileId],
) -> AppResult<usize> {
    let ids: Vec<Uuid> = files.iter().map(FileId::as_uuid).collect();
    match repo::publish(tx, article_id, &ids, None).await? {
        Some(n) => Ok(usize::try_from(n).unwrap_or(0)),
        None => Err(AppError::invalid(
            "images",
            "every image must be an article image you uploaded, not used by another article",
        )),
    }
}

/// Withdraw every image the proven caller published for `article_id` (unpublished or deleted
/// article); they are then readable by their owner only. Returns how many.
pub async fn unpublish_article_images(tx: &mut PgConnection, article_id: Uuid) -> AppResult<usize> {
    let n = repo::unpublish(tx, article_id).await?;
    Ok(usize::try_from(n).unwrap_or(0))
}
