//! Request and response types of files, and the purpose of an upload.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{AppError, FieldError};

/// A file's id (UUIDv7, made by the application: it is part of the storage key and the AAD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct FileId(pub Uuid);

impl FileId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// Where the file is served: `/api/v1/files/{id}` (on any tenant host the reader is
    /// signed in on; Markdown refers to images by this path).
    pub fn url(&self) -> String {
        format!("/api/v1/files/{}", self.0)
    }
}

impl Default for FileId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for FileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a file is for; decides who else may read it and which key seals it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// A person's picture (raster image), shown wherever the person is shown.
    Avatar,
    /// A chat message's attachment (image, PDF or text). The default.
    Attachment,
    /// An image of a practitioner's article (raster image), readable by everyone once the
    /// article publishes it. Practitioners only.
    ArticleImage,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avatar => "avatar",
            Self::Attachment => "attachment",
            Self::ArticleImage => "article_image",
        }
    }

    pub fn parse(s: &str) -> Result<Self, AppError> {
        match s.trim() {
            "" | "attachment" => Ok(Self::Attachment),
            "avatar" => Ok(Self::Avatar),
            "article_image" => Ok(Self::ArticleImage),
            _ => Err(AppError::Validation(vec![FieldError {
                field: "purpose".into(),
                reason: "one of avatar, attachment, article_image".into(),
            }])),
        }
    }

    /// Avatars and article images must be raster images.
    pub fn needs_image(self) -> bool {
        !matches!(self, Self::Attachment)
    }

    /// Files shown outside the company they were uploaded in (an avatar in every company of
    /// its person, a published article image everywhere) are sealed under the platform-level
    /// key; attachments under the company's key.
    pub fn platform_sealed(self) -> bool {
        !matches!(self, Self::Attachment)
    }
}

/// `POST /files` (multipart/form-data): the OpenAPI description only (the handler reads the
/// parts itself, with its own size limit), hence never constructed.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file (one part named `file`). Its declared type and file name extension must agree
    /// with its content.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
    /// `attachment` (default), `avatar` or `article_image`.
    pub purpose: Option<Purpose>,
}

/// A stored file, as its owner reads it back.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FileInfo {
    pub id: FileId,
    pub purpose: Purpose,
    /// The type it is served with (sniffed; images re-encoded to PNG or JPEG).
    pub content_type: String,
    pub size_bytes: i64,
    /// SHA-256 of the served bytes, hex.
    pub sha256: String,
    /// The sanitised name it is served under.
    pub file_name: String,
    /// Where it is served.
    pub url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `PUT /me/avatar`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvatarRequest {
    /// A file of the caller's uploaded with purpose `avatar`.
    pub file_id: FileId,
}

/// The caller's avatar.
#[derive(Debug, Serialize, ToSchema)]
pub struct Avatar {
    pub file_id: FileId,
    /// `/api/v1/files/{id}`.
    pub avatar_url: String,
}
