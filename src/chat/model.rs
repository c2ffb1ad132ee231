//! Chat types: a message to send, a message as its participants read it, read marks.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::db::UserId;
use crate::error::{AppError, FieldError};

/// Longest message, in characters.
pub const MAX_BODY_CHARS: usize = 10_000;

/// `POST /consultations/{id}/messages` (and the socket's `chat.send`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// 1–10,000 characters.
    #[schema(min_length = 1, max_length = 10000)]
    pub body: String,
    /// The sender's own id for this message (1–64 of `A–Z a–z 0–9 _ -`): sending again with the
    /// same `client_ref` returns the message already stored instead of a second one.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub client_ref: Option<String>,
    /// A file of the sender's to attach: one of their uploads with purpose `attachment`
    /// (`POST /files`), attached to no other message (else 422 on `attachment_id`). The other
    /// participant reads it at `/api/v1/files/{id}`.
    #[serde(default)]
    pub attachment_id: Option<Uuid>,
}

/// A message as validated.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub body: String,
    pub client_ref: Option<String>,
    pub attachment_id: Option<Uuid>,
}

/// Whether `s` is a valid `client_ref`.
pub fn valid_client_ref(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl SendRequest {
    /// Validate once.
    pub fn parse(self) -> Result<NewMessage, AppError> {
        let mut errors = Vec::new();
        let body = self.body.trim().to_owned();
        if body.is_empty() {
            errors.push(FieldError {
                field: "body".into(),
                reason: "must not be empty".into(),
            });
        } else if body.chars().count() > MAX_BODY_CHARS {
            errors.push(FieldError {
                field: "body".into(),
                reason: format!("must be at most {MAX_BODY_CHARS} characters"),
            });
        }
        if body.contains('\0') {
            errors.push(FieldError {
                field: "body".into(),
                reason: "must not contain NUL characters".into(),
            });
        }
        if let Some(r) = &self.client_ref
            && !valid_client_ref(r)
        {
            errors.push(FieldError {
                field: "client_ref".into(),
                reason: "1–64 characters of A–Z, a–z, 0–9, '_' or '-'".into(),
            });
        }
        if errors.is_empty() {
            Ok(NewMessage {
                body,
                client_ref: self.client_ref,
                attachment_id: self.attachment_id,
            })
        } else {
            Err(AppError::Validation(errors))
        }
    }
}

/// A message as the consultation's participants read it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Message {
    pub id: Uuid,
    pub consultation_id: Uuid,
    /// 1, 2, 3 … in this consultation, without gaps, in the order they were stored.
    pub seq: i64,
    pub sender_id: UserId,
    /// Absent when `unreadable`.
    pub body: Option<String>,
    /// True when the message cannot be opened (the employee's data was erased, or tampering).
    pub unreadable: bool,
    pub attachment_id: Option<Uuid>,
    pub client_ref: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// How far a participant has read.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReadMark {
    pub user_id: UserId,
    pub last_read_seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub read_at: OffsetDateTime,
}

/// A page of messages.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    /// Newest first; with `after=`, oldest first.
    pub items: Vec<Message>,
    /// Older messages: pass as `cursor` (absent with `after=`).
    pub next_cursor: Option<String>,
    /// More messages exist in this direction (with `after=`: continue with the last `seq`).
    pub has_more: bool,
    /// Both participants' read marks.
    pub reads: Vec<ReadMark>,
}

/// `GET /consultations/{id}/messages`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// Page size: default 20; a number outside 1–100 counts as the nearest bound.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    /// Older messages (from `next_cursor`).
    pub cursor: Option<String>,
    /// Catch up: the messages after this sequence number, oldest first (not with `cursor`).
    #[param(value_type = Option<i64>, minimum = 0)]
    pub after: Option<String>,
}

/// `POST /consultations/{id}/messages/read`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    /// The highest sequence number read.
    #[schema(minimum = 0)]
    pub seq: i64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn send(body: &str, client_ref: Option<&str>) -> SendRequest {
        SendRequest {
            body: body.to_owned(),
            client_ref: client_ref.map(str::to_owned),
            attachment_id: None,
        }
    }

    #[test]
    fn messages_validate_once() {
        assert_eq!(send("  hi ", None).parse().unwrap().body, "hi");
        assert!(send("   ", None).parse().is_err());
        assert!(send(&"x".repeat(MAX_BODY_CHARS + 1), None).parse().is_err());
        assert!(send("hi", Some("a-b_C9")).parse().is_ok());
        assert!(send("hi", Some("a b")).parse().is_err());
        assert!(send("hi", Some(&"a".repeat(65))).parse().is_err());
        // Whether an attachment is the sender's is for `app_private.message_send` to say.
        let mut with_file = send("hi", None);
        with_file.attachment_id = Some(Uuid::now_v7());
        assert!(with_file.parse().is_ok());
    }
}
