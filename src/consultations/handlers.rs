//! `/consultations`: booking (employees), and each participant's own consultations.
//!
//! Invariants:
//! - A consultation is read by its two participants only (row-level security: the proven
//!   employee or practitioner of this company); anyone else's id is 404. HR and tenant admins
//!   have no route here (Casbin) and no row (RLS).
//! - Bookings follow [`super::booking`].

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use uuid::Uuid;

use super::booking::{self, Booked};
use super::model::*;
use super::repo;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::error::{AppError, AppResult};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::pagination::{Limit, decode_cursor, page};

/// Book a slot of a practitioner of this company (employees). Send an `Idempotency-Key`
/// header to make retries safe: a replay answers the first response; the same key with
/// another body is 422.
#[utoipa::path(post, path = "/api/v1/consultations", tag = "consultations",
    extensions(("x-authz" = json!({"resource": "consultations", "action": "create"}))),
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1–255 visible ASCII characters; kept 24 hours")),
    request_body = BookRequest,
    responses(
        (status = 201, body = Consultation, description = "Booked (confirmed or requested, as the practitioner chose)"),
        (status = 404, description = "No such practitioner in this company"),
        (status = 409, description = "slot_unavailable, slot_taken, allowance_exhausted or overlapping_booking"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    AppJson(req): AppJson<BookRequest>,
) -> AppResult<Response> {
    actor.require_company()?;
    let key = booking::parse_key(
        headers
            .get("idempotency-key")
            .map(|v| v.to_str().unwrap_or("\u{0}")),
    )?;
    match booking::book(&state, &actor, &req, key.as_deref()).await? {
        Booked::New(c) => {
            tracing::info!(consultation = %c.id, "consultation booked");
            Ok((StatusCode::CREATED, Json(c)).into_response())
        }
        Booked::Replay { status, body } => Ok((status, Json(body)).into_response()),
    }
}

/// The caller's consultations in this company (as employee or practitioner), by start.
#[utoipa::path(get, path = "/api/v1/consultations", tag = "consultations",
    extensions(("x-authz" = json!({"resource": "consultations", "action": "read"}))),
    security(("bearer" = [])),
    params(ConsultationQuery),
    responses((status = 200, body = ConsultationPage)))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(q): AppQuery<ConsultationQuery>,
) -> AppResult<Json<ConsultationPage>> {
    actor.require_company()?;
    let limit = Limit::standard(q.limit.as_deref())?;
    let after = decode_cursor::<(OffsetDateTime, Uuid)>(q.cursor.as_deref())?
        .unwrap_or((OffsetDateTime::UNIX_EPOCH, Uuid::nil()));
    let mut tx = actor.begin(&state).await?;
    let rows = repo::page(&mut tx, actor.user, after, limit.fetch()).await?;
    let (items, next_cursor) = page(rows, limit, |c| (c.starts_at, c.id));
    let items = repo::named(&mut tx, items).await?;
    tx.commit().await?;
    Ok(Json(ConsultationPage { items, next_cursor }))
}

/// One of the caller's consultations.
#[utoipa::path(get, path = "/api/v1/consultations/{id}", tag = "consultations",
    extensions(("x-authz" = json!({"resource": "consultations", "action": "read"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Consultation id")),
    responses(
        (status = 200, body = Consultation),
        (status = 404, description = "Not one of the caller's consultations here"),
    ))]
#[tracing::instrument(skip_all, fields(consultation = %id))]
pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<Consultation>> {
    actor.require_company()?;
    let mut tx = actor.begin(&state).await?;
    let c = repo::one_named(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(c))
}
