//! Consultation values.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::availability::model::Kind;
use crate::db::UserId;

/// `POST /consultations`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookRequest {
    pub practitioner_id: UserId,
    /// The slot's start, RFC 3339 (any offset), as `GET /practitioners/{id}/slots` gave it.
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    /// One of the slot's lengths, minutes.
    pub length_minutes: i64,
    /// `video`, `audio`, `chat` or `in_person`.
    pub kind: String,
}

/// Where a consultation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Status {
    Requested,
    Confirmed,
    Started,
    Ended,
    Cancelled,
    NoShow,
}

/// A consultation as its participants see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Consultation {
    pub id: Uuid,
    pub employee_id: UserId,
    pub practitioner_id: UserId,
    pub kind: Kind,
    pub status: Status,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    pub length_minutes: i64,
    /// Minutes between its start and end events, once ended.
    pub duration_minutes: Option<i64>,
    /// The other participant's display name (nothing else of them).
    pub with_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One page of the caller's consultations, by start.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsultationPage {
    pub items: Vec<Consultation>,
    pub next_cursor: Option<String>,
}

/// `GET /consultations`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsultationQuery {
    /// Page size: default 50; a number outside 1–200 counts as the nearest bound.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}
