//! The lifecycle of a consultation: confirm, cancel, start, end, no-show (one definer,
//! `app_private.consultation_transition`, holds the table of legal moves) and reschedule (a
//! new slot, checked like a booking). Every move is an event; an illegal one is 409
//! `invalid_transition`; a consultation the caller does not take part in is 404.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

use super::model::Consultation;
use super::repo;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::availability::open_slots::{busy_around, load_schedule};
use crate::availability::slots::{self, Offered};
use crate::error::{AppError, AppResult, FieldError};
use crate::http::extract::{AppJson, AppPath};

/// Why a consultation is cancelled: a code, never free text (a reason is not health content).
pub const CANCEL_REASONS: [&str; 5] = [
    "schedule_conflict",
    "unwell",
    "no_longer_needed",
    "practitioner_unavailable",
    "other",
];

/// `POST /consultations/{id}/cancel`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// `schedule_conflict`, `unwell`, `no_longer_needed`, `practitioner_unavailable` or
    /// `other` (default).
    #[schema(
        pattern = "^(schedule_conflict|unwell|no_longer_needed|practitioner_unavailable|other)$"
    )]
    pub reason: Option<String>,
}

/// `POST /consultations/{id}/reschedule`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    /// The new start, RFC 3339, an offered slot.
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    /// One of the slot's lengths (default: the current one).
    pub length_minutes: Option<i64>,
}

fn invalid_transition() -> AppError {
    AppError::Conflict {
        code: "invalid_transition",
        detail: "This consultation cannot make that move now.".into(),
    }
}

/// Run one move of the definer's table and answer the consultation as it now stands.
async fn transition(
    state: &AppState,
    actor: &Actor,
    id: Uuid,
    action: &str,
    reason: Option<&str>,
) -> AppResult<Json<Consultation>> {
    actor.require_company()?;
    let now = state.clock.now();
    let mut tx = actor.begin(state).await?;
    match repo::transition(&mut tx, id, action, reason, now)
        .await?
        .as_str()
    {
        "not_found" => return Err(AppError::NotFound),
        "invalid_transition" => return Err(invalid_transition()),
        _ => {}
    }
    let c = repo::one_named(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    tracing::info!(consultation = %id, action, "consultation moved");
    Ok(Json(c))
}

macro_rules! move_route {
    ($name:ident, $path:literal, $action:literal, $authz:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, path = $path, tag = "consultations",
            extensions(("x-authz" = json!({"resource": "consultations", "action": $authz}))),
            security(("bearer" = [])),
            params(("id" = Uuid, Path, description = "Consultation id")),
            responses(
                (status = 200, body = Consultation),
                (status = 404, description = "Not one of the caller's consultations here"),
                (status = 409, description = "invalid_transition"),
            ))]
        #[tracing::instrument(skip_all, fields(consultation = %id))]
        pub async fn $name(
            State(state): State<AppState>,
            actor: Actor,
            AppPath(id): AppPath<Uuid>,
        ) -> AppResult<Json<Consultation>> {
            transition(&state, &actor, id, $action, None).await
        }
    };
}

move_route!(
    confirm,
    "/api/v1/consultations/{id}/confirm",
    "confirm",
    "confirm",
    "Confirm a requested consultation (its practitioner)."
);
move_route!(
    start,
    "/api/v1/consultations/{id}/start",
    "start",
    "conduct",
    "Start a confirmed consultation (its practitioner; from 15 minutes before the start)."
);
move_route!(
    end,
    "/api/v1/consultations/{id}/end",
    "end",
    "conduct",
    "End a started consultation (its practitioner)."
);
move_route!(
    no_show,
    "/api/v1/consultations/{id}/no-show",
    "no_show",
    "conduct",
    "Mark a confirmed consultation whose start has passed as a no-show (its practitioner); it uses up the session."
);

/// Cancel a requested or confirmed consultation before its start (either participant). An
/// employee cancelling within the company's late-cancellation window (`late_cancel_hours`,
/// default 24) still uses up the session; earlier, or by the practitioner, it is given back.
#[utoipa::path(post, path = "/api/v1/consultations/{id}/cancel", tag = "consultations",
    extensions(("x-authz" = json!({"resource": "consultations", "action": "cancel"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Consultation id")),
    request_body = CancelRequest,
    responses(
        (status = 200, body = Consultation),
        (status = 404, description = "Not one of the caller's consultations here"),
        (status = 409, description = "invalid_transition"),
    ))]
#[tracing::instrument(skip_all, fields(consultation = %id))]
pub async fn cancel(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<CancelRequest>,
) -> AppResult<Json<Consultation>> {
    if let Some(r) = req.reason.as_deref()
        && !CANCEL_REASONS.contains(&r)
    {
        return Err(AppError::invalid(
            "reason",
            "must be schedule_conflict, unwell, no_longer_needed, practitioner_unavailable or other",
        ));
    }
    transition(&state, &actor, id, "cancel", req.reason.as_deref()).await
}

/// Move a requested or confirmed consultation to another offered slot before its start
/// (either participant). The history keeps the old time; calendars see a new SEQUENCE; a
/// practitioner who confirms by hand confirms again when the employee moved it.
#[utoipa::path(post, path = "/api/v1/consultations/{id}/reschedule", tag = "consultations",
    extensions(("x-authz" = json!({"resource": "consultations", "action": "reschedule"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Consultation id")),
    request_body = RescheduleRequest,
    responses(
        (status = 200, body = Consultation),
        (status = 404, description = "Not one of the caller's consultations here"),
        (status = 409, description = "invalid_transition, slot_unavailable, slot_taken or overlapping_booking"),
    ))]
#[tracing::instrument(skip_all, fields(consultation = %id))]
pub async fn reschedule(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<RescheduleRequest>,
) -> AppResult<Json<Consultation>> {
    actor.require_company()?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let current = repo::one(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    let length = match req.length_minutes {
        None => u16::try_from(current.length_minutes).unwrap_or(0),
        Some(l) => u16::try_from(l)
            .ok()
            .filter(|l| (15..=240).contains(l))
            .ok_or_else(|| {
                AppError::Validation(vec![FieldError {
                    field: "length_minutes".into(),
                    reason: "must be between 15 and 240".into(),
                }])
            })?,
    };
    if req.starts_at <= now {
        return Err(AppError::invalid("starts_at", "must be in the future"));
    }
    let Some(practitioner) = repo::reschedule_lock(&mut tx, id, now).await? else {
        return Err(invalid_transition());
    };
    let starts_at = req.starts_at;
    let ends_at = starts_at + Duration::minutes(i64::from(length));
    let day = Duration::days(1);
    let unavailable = || AppError::Conflict {
        code: "slot_unavailable",
        detail: "This time is not offered.".into(),
    };
    let Some((_, schedule)) =
        load_schedule(&mut tx, practitioner, starts_at - day, ends_at + day).await?
    else {
        return Err(unavailable());
    };
    // The consultation's own time is not in its way (consultations never overlap, so its
    // period is exactly a piece of one merged busy interval).
    let busy = without(
        busy_around(&mut tx, practitioner, starts_at, ends_at).await?,
        (current.starts_at, current.ends_at),
    );
    let taken = || AppError::Conflict {
        code: "slot_taken",
        detail: "Someone booked this time first.".into(),
    };
    match slots::offered(&schedule, &busy, now, starts_at, length, current.kind) {
        Offered::Yes => {}
        Offered::Busy => return Err(taken()),
        Offered::No => return Err(unavailable()),
    }
    match repo::reschedule(&mut tx, id, starts_at, ends_at, now)
        .await?
        .as_str()
    {
        "rescheduled" => {}
        "slot_taken" => return Err(taken()),
        "overlapping_booking" => {
            return Err(AppError::Conflict {
                code: "overlapping_booking",
                detail: "You already have a session at this time.".into(),
            });
        }
        "not_found" => return Err(AppError::NotFound),
        _ => return Err(invalid_transition()),
    }
    let c = repo::one_named(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(c))
}

/// `busy` without the instants of `own`.
fn without(
    busy: Vec<(OffsetDateTime, OffsetDateTime)>,
    own: (OffsetDateTime, OffsetDateTime),
) -> Vec<(OffsetDateTime, OffsetDateTime)> {
    let mut out = Vec::with_capacity(busy.len() + 1);
    for (s, e) in busy {
        if e <= own.0 || own.1 <= s {
            out.push((s, e));
            continue;
        }
        if s < own.0 {
            out.push((s, own.0));
        }
        if own.1 < e {
            out.push((own.1, e));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_consultation_is_cut_out_of_the_busy_block_it_sits_in() {
        let (a, b, c, d) = (
            datetime!(2027-01-01 09:00 UTC),
            datetime!(2027-01-01 10:00 UTC),
            datetime!(2027-01-01 11:00 UTC),
            datetime!(2027-01-01 12:00 UTC),
        );
        assert_eq!(without(vec![(a, d)], (b, c)), vec![(a, b), (c, d)]);
        assert_eq!(without(vec![(a, b), (c, d)], (a, b)), vec![(c, d)]);
        assert_eq!(without(vec![(a, c)], (b, c)), vec![(a, b)]);
    }
}
