//! The booking flow (`POST /consultations`), one transaction:
//!
//! 1. claim the `Idempotency-Key` (a concurrent request with the same key waits for this one,
//!    then replays its answer; the same key with another body is 422);
//! 2. the practitioner must be in this company's directory (else 404);
//! 3. take the booking locks (`booking_lock`: the practitioner's schedule, then the employee's
//!    membership) — from here every statement sees the previous booking's commit;
//! 4. the slot must be offered by the availability now, busy time of every company included
//!    (409 `slot_unavailable`, or `slot_taken` when only busy time removes it);
//! 5. `book_consultation` checks the yearly allowance and inserts; the exclusion constraint
//!    stays the last word (409 `slot_taken`, never a 500);
//! 6. the answer is stored with the key, in the same transaction.
//!
//! Any refusal rolls everything back, the key included: a retry with the same key tries
//! again (nothing was created to replay).

use axum::http::StatusCode;
use sha2::{Digest, Sha256};
use time::Duration;
use uuid::Uuid;

use super::model::{BookRequest, Consultation};
use super::repo::{self, Claim};
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::availability::model::Kind;
use crate::availability::open_slots::{busy_around, load_schedule};
use crate::availability::slots::{self, Offered};
use crate::error::{AppError, FieldError};

/// How long an `Idempotency-Key` is remembered.
pub const KEY_TTL_HOURS: i32 = 24;

/// The flow's answer: a new booking, or the first answer of a replayed key.
pub enum Booked {
    New(Consultation),
    Replay {
        status: StatusCode,
        body: serde_json::Value,
    },
}

fn conflict(code: &'static str, detail: &str) -> AppError {
    AppError::Conflict {
        code,
        detail: detail.into(),
    }
}

/// A key as RFC drafts and Stripe take it: 1–255 visible ASCII characters.
pub fn parse_key(raw: Option<&str>) -> Result<Option<String>, AppError> {
    match raw {
        None => Ok(None),
        Some(k)
            if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x21..=0x7e).contains(&b)) =>
        {
            Ok(Some(k.to_owned()))
        }
        Some(_) => Err(AppError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters.",
        )),
    }
}

/// The checked request: kind and length.
fn checked(req: &BookRequest) -> Result<(Kind, u16), AppError> {
    let mut errors = Vec::new();
    let kind = Kind::parse(&req.kind);
    if kind.is_none() {
        errors.push(FieldError {
            field: "kind".into(),
            reason: "must be video, audio, chat or in_person".into(),
        });
    }
    let length = u16::try_from(req.length_minutes)
        .ok()
        .filter(|l| (15..=240).contains(l));
    if length.is_none() {
        errors.push(FieldError {
            field: "length_minutes".into(),
            reason: "must be between 15 and 240".into(),
        });
    }
    match (kind, length) {
        (Some(k), Some(l)) if errors.is_empty() => Ok((k, l)),
        _ => Err(AppError::Validation(errors)),
    }
}

/// What the key is bound to: the request's meaning, not its bytes.
fn request_hash(req: &BookRequest) -> Vec<u8> {
    let canonical = format!(
        "{}|{}|{}|{}",
        req.practitioner_id,
        req.starts_at.unix_timestamp_nanos(),
        req.length_minutes,
        req.kind
    );
    Sha256::digest(canonical.as_bytes()).to_vec()
}

pub async fn book(
    state: &AppState,
    actor: &Actor,
    req: &BookRequest,
    key: Option<&str>,
) -> Result<Booked, AppError> {
    let (kind, length) = checked(req)?;
    let now = state.clock.now();
    if req.starts_at <= now {
        return Err(AppError::invalid("starts_at", "must be in the future"));
    }
    let starts_at = req.starts_at;
    let ends_at = starts_at + Duration::minutes(i64::from(length));
    let mut tx = actor.begin(state).await?;
    if let Some(key) = key {
        match repo::claim_key(&mut tx, key, &request_hash(req), now, KEY_TTL_HOURS).await? {
            Claim::New => {}
            Claim::Replay { status, body } => {
                tx.commit().await?;
                return Ok(Booked::Replay {
                    status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                    body,
                });
            }
            Claim::Mismatch => {
                return Err(AppError::Validation(vec![FieldError {
                    field: "Idempotency-Key".into(),
                    reason: "was already used with a different request".into(),
                }]));
            }
        }
    }
    let practitioner = req.practitioner_id;
    if crate::practitioners::repo::directory_one(&mut tx, actor.tenant, practitioner)
        .await?
        .is_none()
    {
        return Err(AppError::NotFound);
    }
    let unavailable = || conflict("slot_unavailable", "This time is not offered.");
    if repo::lock(&mut tx, practitioner).await?.is_none() {
        return Err(unavailable());
    }
    let day = Duration::days(1);
    let Some((_, schedule)) =
        load_schedule(&mut tx, practitioner, starts_at - day, ends_at + day).await?
    else {
        return Err(unavailable());
    };
    let busy = busy_around(&mut tx, practitioner, starts_at, ends_at).await?;
    match slots::offered(&schedule, &busy, now, starts_at, length, kind) {
        Offered::Yes => {}
        Offered::Busy => return Err(taken()),
        Offered::No => return Err(unavailable()),
    }
    let id = Uuid::now_v7();
    let outcome = repo::insert(&mut tx, id, practitioner, kind, starts_at, ends_at, now).await?;
    match outcome.as_str() {
        "booked" => {}
        "slot_taken" => return Err(taken()),
        "allowance_exhausted" => {
            return Err(conflict(
                "allowance_exhausted",
                "This year's sessions are all used.",
            ));
        }
        "overlapping_booking" => {
            return Err(conflict(
                "overlapping_booking",
                "You already have a session at this time.",
            ));
        }
        _ => return Err(AppError::NotFound),
    }
    let booked = repo::one_named(&mut tx, id)
        .await?
        .ok_or_else(|| AppError::Internal("a booked consultation is not readable".into()))?;
    if let Some(key) = key {
        let body = serde_json::to_value(&booked)
            .map_err(|e| AppError::Internal(format!("serializing a consultation: {e}")))?;
        repo::finish_key(&mut tx, key, StatusCode::CREATED.as_u16(), &body).await?;
    }
    tx.commit().await?;
    Ok(Booked::New(booked))
}

fn taken() -> AppError {
    conflict("slot_taken", "Someone booked this time first.")
}
