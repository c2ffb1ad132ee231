//! `GET /practitioners/{id}/slots`: the times a person of this company can book with one of
//! its practitioners (Casbin: `practitioner_slots` read — employees, and practitioners for
//! their own).
//!
//! Invariants:
//! - Only a practitioner of this company's directory has slots here; anyone else's id is 404.
//! - Busy time comes from every company the practitioner serves, through
//!   `app_private.practitioner_busy`, as merged intervals: a slot disappears without telling
//!   anyone who took it, or in which company.
//! - The weekly rules are local times of the practitioner's zone, expanded DST-correctly by
//!   [`super::slots`]; the answer is in the zone the caller asks for (`tz`, default UTC), with
//!   offsets.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, Time};
use utoipa::{IntoParams, ToSchema};

use super::model::{Exception, Kind, Offer};
use super::repo;
use super::slots::{self, Schedule, SlotQuery, Zone};
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::db::UserId;
use crate::error::{AppError, AppResult, FieldError};
use crate::http::extract::{AppPath, AppQuery};

/// Default range when `to` is absent.
const DEFAULT_DAYS: i64 = 14;

/// `GET /practitioners/{id}/slots` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SlotsQuery {
    /// Start of the range, RFC 3339 (default: now).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// End of the range, RFC 3339, at most 62 days after `from` (default: 14 days after).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Only slots offering this kind.
    #[param(value_type = Option<Kind>)]
    pub kind: Option<String>,
    /// Only slots of this length (minutes).
    #[param(value_type = Option<i64>, minimum = 15, maximum = 240)]
    pub length: Option<String>,
    /// IANA time zone of the answer's times (default UTC).
    pub tz: Option<String>,
}

/// One bookable slot.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenSlot {
    /// RFC 3339 with the offset of the requested zone.
    pub starts_at: String,
    pub ends_at: String,
    pub length_minutes: u16,
    pub kinds: Vec<Kind>,
}

/// The slots of a practitioner in a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct Slots {
    pub practitioner_id: UserId,
    /// The practitioner's own zone (their weekly rules are local times in it); null when they
    /// have no schedule yet.
    pub time_zone: Option<String>,
    /// The zone of the times below.
    pub tz: String,
    pub from: String,
    pub to: String,
    pub slots: Vec<OpenSlot>,
}

fn instant(field: &str, raw: Option<&str>, errors: &mut Vec<FieldError>) -> Option<OffsetDateTime> {
    let raw = raw?;
    match OffsetDateTime::parse(raw, &Rfc3339) {
        Ok(t) => Some(t),
        Err(_) => {
            errors.push(FieldError {
                field: field.into(),
                reason: "must be an RFC 3339 instant, e.g. 2027-03-28T09:00:00+02:00".into(),
            });
            None
        }
    }
}

/// The engine's offer from a stored one (the columns' CHECKs bound every value).
pub fn engine_offer(o: &Offer) -> slots::Offer {
    let minutes = |v: i16| u16::try_from(v).unwrap_or(0);
    slots::Offer {
        lengths: o.lengths.iter().map(|&l| minutes(l)).collect(),
        step: o.step_minutes.map(minutes),
        buffer_before: minutes(o.buffer_before_minutes),
        buffer_after: minutes(o.buffer_after_minutes),
        min_notice: u32::try_from(o.min_notice_minutes).unwrap_or(0),
        horizon_days: minutes(o.horizon_days),
        kinds: o.kinds.clone(),
    }
}

/// A practitioner's schedule as the engine takes it, if they have one (rules, and exceptions
/// overlapping `[from, to)`), read under the caller's row-level security.
pub async fn load_schedule(
    conn: &mut PgConnection,
    practitioner: UserId,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Option<(String, Schedule)>, AppError> {
    let Some((tz_name, _)) = repo::settings(conn, practitioner).await? else {
        return Ok(None);
    };
    let Some(zone) = Zone::parse(&tz_name) else {
        tracing::error!(%practitioner, "a stored time zone the slot engine does not know");
        return Err(AppError::Internal("unknown stored time zone".into()));
    };
    let rules = repo::rules(conn, practitioner).await?;
    let exceptions = repo::exceptions_between(conn, practitioner, from, to).await?;
    let mut schedule = Schedule {
        time_zone: zone,
        rules: Vec::with_capacity(rules.len()),
        extra: Vec::new(),
        time_off: Vec::new(),
    };
    for r in rules {
        let (Some(weekday), Some(start), Some(end)) = (
            super::model::WEEKDAYS
                .iter()
                .position(|d| *d == r.weekday)
                .and_then(|i| u8::try_from(i + 1).ok()),
            clock(&r.start),
            clock(&r.end),
        ) else {
            continue;
        };
        schedule.rules.push(slots::WeeklyRule {
            weekday,
            start,
            end,
            offer: engine_offer(&r.offer),
        });
    }
    for e in exceptions {
        push_exception(&mut schedule, e);
    }
    Ok(Some((tz_name, schedule)))
}

fn push_exception(schedule: &mut Schedule, e: Exception) {
    match e.offer {
        Some(offer) => schedule.extra.push(slots::ExtraHours {
            starts_at: e.starts_at,
            ends_at: e.ends_at,
            offer: engine_offer(&offer),
        }),
        None => schedule.time_off.push(slots::TimeOff {
            starts_at: e.starts_at,
            ends_at: e.ends_at,
        }),
    }
}

/// `HH:MM` as shown by the API back to a local time; `24:00` is the end of the day, which the
/// engine reads as the last representable instant of it.
fn clock(s: &str) -> Option<Time> {
    if s == "24:00" {
        return Time::from_hms_nano(23, 59, 59, 999_999_999).ok();
    }
    let (h, m) = s.split_once(':')?;
    Time::from_hms(h.parse().ok()?, m.parse().ok()?, 0).ok()
}

/// Busy time of the practitioner around `[from, to)`, padded by the longest buffer.
pub async fn busy_around(
    conn: &mut PgConnection,
    practitioner: UserId,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<(OffsetDateTime, OffsetDateTime)>, sqlx::Error> {
    let pad = Duration::hours(3);
    repo::busy(conn, practitioner, from - pad, to + pad).await
}

/// The slots a person of this company can book with one of its practitioners.
#[utoipa::path(get, path = "/api/v1/practitioners/{id}/slots", tag = "availability",
    extensions(("x-authz" = json!({"resource": "practitioner_slots", "action": "read"}))),
    security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The practitioner's user id"), SlotsQuery),
    responses(
        (status = 200, body = Slots),
        (status = 404, description = "No such practitioner in this company"),
        (status = 422, description = "invalid_request: from, to (at most 62 days), kind, length, tz"),
    ))]
#[tracing::instrument(skip_all, fields(practitioner = %id))]
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<UserId>,
    AppQuery(q): AppQuery<SlotsQuery>,
) -> AppResult<Json<Slots>> {
    actor.require_company()?;
    let now = state.clock.now();
    let mut errors = Vec::new();
    let from = instant("from", q.from.as_deref(), &mut errors).unwrap_or(now);
    let to =
        instant("to", q.to.as_deref(), &mut errors).unwrap_or(from + Duration::days(DEFAULT_DAYS));
    if to <= from {
        errors.push(FieldError {
            field: "to".into(),
            reason: "must be after from".into(),
        });
    } else if to - from > Duration::days(slots::MAX_RANGE_DAYS) {
        errors.push(FieldError {
            field: "to".into(),
            reason: format!("must be at most {} days after from", slots::MAX_RANGE_DAYS),
        });
    }
    let kind = match q.kind.as_deref() {
        None => None,
        Some(k) => {
            let parsed = Kind::parse(k);
            if parsed.is_none() {
                errors.push(FieldError {
                    field: "kind".into(),
                    reason: "must be video, audio, chat or in_person".into(),
                });
            }
            parsed
        }
    };
    let length = match q.length.as_deref() {
        None => None,
        Some(l) => match l.trim().parse::<u16>() {
            Ok(l) if (15..=240).contains(&l) => Some(l),
            _ => {
                errors.push(FieldError {
                    field: "length".into(),
                    reason: "must be a number of minutes between 15 and 240".into(),
                });
                None
            }
        },
    };
    let tz_name = q.tz.clone().unwrap_or_else(|| "UTC".into());
    let answer_zone = Zone::parse(&tz_name);
    if answer_zone.is_none() {
        errors.push(FieldError {
            field: "tz".into(),
            reason: "must be an IANA time zone, e.g. Europe/Paris".into(),
        });
    }
    let Some(answer_zone) = answer_zone.filter(|_| errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };

    let mut tx = actor.begin(&state).await?;
    if crate::practitioners::repo::directory_one(&mut tx, actor.tenant, id)
        .await?
        .is_none()
    {
        return Err(AppError::NotFound);
    }
    let around = Duration::days(1);
    let schedule = load_schedule(&mut tx, id, from - around, to + around).await?;
    let (time_zone, open) = match schedule {
        None => (None, Vec::new()),
        Some((tz, schedule)) => {
            let busy = busy_around(&mut tx, id, from, to).await?;
            let query = SlotQuery {
                from,
                to,
                now,
                kind,
                length,
            };
            let open = slots::expand(&schedule, &busy, &query)
                .map_err(|e| AppError::invalid("to", e.to_string()))?;
            (Some(tz), open)
        }
    };
    tx.commit().await?;
    let at = |t: OffsetDateTime| slots::rfc3339_in(t, &answer_zone);
    Ok(Json(Slots {
        practitioner_id: id,
        time_zone,
        tz: tz_name,
        from: at(from),
        to: at(to),
        slots: open
            .into_iter()
            .map(|s| OpenSlot {
                starts_at: at(s.starts_at),
                ends_at: at(s.ends_at),
                length_minutes: s.length,
                kinds: s.kinds,
            })
            .collect(),
    }))
}

/// The start of the practitioner's soonest free slot in the next
/// [`scoring::AVAILABILITY_HORIZON_HOURS`](crate::practitioners::scoring::AVAILABILITY_HORIZON_HOURS),
/// for matching: `None` when they keep no schedule (availability does not apply); the horizon
/// itself when they keep one but nothing is free before it (availability applies, as 0 — a
/// schedule with no free time must not rank above one free in 13 days).
pub async fn soonest_slot(
    conn: &mut PgConnection,
    practitioner: UserId,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, AppError> {
    // The scoring horizon is a whole number of hours (14 days).
    #[allow(clippy::cast_possible_truncation)]
    let horizon = Duration::hours(crate::practitioners::scoring::AVAILABILITY_HORIZON_HOURS as i64);
    let to = now + horizon;
    let Some((_, schedule)) = load_schedule(
        conn,
        practitioner,
        now - Duration::days(1),
        to + Duration::days(1),
    )
    .await?
    else {
        return Ok(None);
    };
    let busy = busy_around(conn, practitioner, now, to).await?;
    let query = SlotQuery {
        from: now,
        to,
        now,
        kind: None,
        length: None,
    };
    let first = slots::expand(&schedule, &busy, &query)
        .map_err(|e| AppError::Internal(e.to_string()))?
        .first()
        .map(|s| s.starts_at);
    Ok(Some(first.unwrap_or(to)))
}
