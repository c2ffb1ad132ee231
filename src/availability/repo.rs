//! SQL of availability. Every function runs inside the caller's `TenantTx`: row-level security
//! (migration 20261206000002) shows a practitioner's schedule, rules and exceptions to the
//! practitioner and to people of the companies they serve, and lets only the practitioner
//! write them — both proven by the session guard. The explicit `practitioner_id = $1` filters
//! narrow; they are not the guard.

use sqlx::PgConnection;
use time::{OffsetDateTime, Time};
use uuid::Uuid;

use super::model::*;
use crate::db::UserId;

/// The stored settings, if the practitioner saved any.
pub async fn settings(
    conn: &mut PgConnection,
    practitioner: UserId,
) -> Result<Option<(String, bool)>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT time_zone, auto_confirm FROM practitioner_schedules WHERE user_id = $1",
        practitioner.as_uuid()
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.time_zone, r.auto_confirm)))
}

/// Create or change the settings.
pub async fn save_settings(
    conn: &mut PgConnection,
    practitioner: UserId,
    time_zone: &str,
    auto_confirm: Option<bool>,
    now: OffsetDateTime,
) -> Result<(String, bool), sqlx::Error> {
    let row = sqlx::query!(
        "INSERT INTO practitioner_schedules (user_id, time_zone, auto_confirm, created_at, updated_at)
         VALUES ($1, $2, coalesce($3, true), $4, $4)
         ON CONFLICT (user_id) DO UPDATE
             SET time_zone = EXCLUDED.time_zone,
                 auto_confirm = coalesce($3, practitioner_schedules.auto_confirm),
                 updated_at = EXCLUDED.updated_at
         RETURNING time_zone, auto_confirm",
        practitioner.as_uuid(),
        time_zone,
        auto_confirm,
        now
    )
    .fetch_one(conn)
    .await?;
    Ok((row.time_zone, row.auto_confirm))
}

/// The schedule row, created with `time_zone` if the practitioner has none yet.
pub async fn ensure_schedule(
    conn: &mut PgConnection,
    practitioner: UserId,
    time_zone: &str,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO practitioner_schedules (user_id, time_zone, created_at, updated_at)
         VALUES ($1, $2, $3, $3)
         ON CONFLICT (user_id) DO NOTHING",
        practitioner.as_uuid(),
        time_zone,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The request's company time zone (the default of a new schedule).
pub async fn company_time_zone(conn: &mut PgConnection) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!("SELECT time_zone FROM tenants WHERE id = app.current_tenant()")
        .fetch_optional(conn)
        .await
}

struct RuleRow {
    id: Uuid,
    weekday: i16,
    start_time: Time,
    end_time: Time,
    lengths: Vec<i16>,
    step_minutes: Option<i16>,
    buffer_before: i16,
    buffer_after: i16,
    min_notice_minutes: i32,
    horizon_days: i16,
    kinds: Vec<String>,
    updated_at: OffsetDateTime,
}

impl From<RuleRow> for Rule {
    fn from(r: RuleRow) -> Self {
        Rule {
            id: r.id,
            weekday: weekday_name(r.weekday),
            start: format_clock(r.start_time),
            end: format_clock(r.end_time),
            offer: Offer {
                lengths: r.lengths,
                step_minutes: r.step_minutes,
                buffer_before_minutes: r.buffer_before,
                buffer_after_minutes: r.buffer_after,
                min_notice_minutes: r.min_notice_minutes,
                horizon_days: r.horizon_days,
                kinds: kinds_of(&r.kinds),
            },
            updated_at: r.updated_at,
        }
    }
}

/// Every weekly rule of a practitioner, by weekday and start.
pub async fn rules(
    conn: &mut PgConnection,
    practitioner: UserId,
) -> Result<Vec<Rule>, sqlx::Error> {
    let rows = sqlx::query_as!(
        RuleRow,
        "SELECT id, weekday, start_time, end_time, lengths, step_minutes, buffer_before,
                buffer_after, min_notice_minutes, horizon_days, kinds, updated_at
         FROM availability_rules WHERE practitioner_id = $1
         ORDER BY weekday, start_time, id",
        practitioner.as_uuid()
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Rule::from).collect())
}

/// How many rules the practitioner keeps.
pub async fn rule_count(conn: &mut PgConnection, practitioner: UserId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM availability_rules WHERE practitioner_id = $1"#,
        practitioner.as_uuid()
    )
    .fetch_one(conn)
    .await
}

pub async fn insert_rule(
    conn: &mut PgConnection,
    practitioner: UserId,
    rule: &NewRule,
    now: OffsetDateTime,
) -> Result<Rule, sqlx::Error> {
    let o = &rule.offer;
    let row = sqlx::query_as!(
        RuleRow,
        "INSERT INTO availability_rules
             (id, practitioner_id, weekday, start_time, end_time, lengths, step_minutes,
              buffer_before, buffer_after, min_notice_minutes, horizon_days, kinds,
              created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
         RETURNING id, weekday, start_time, end_time, lengths, step_minutes, buffer_before,
                   buffer_after, min_notice_minutes, horizon_days, kinds, updated_at",
        Uuid::now_v7(),
        practitioner.as_uuid(),
        rule.weekday,
        rule.start,
        rule.end,
        &o.lengths,
        o.step_minutes,
        o.buffer_before_minutes,
        o.buffer_after_minutes,
        o.min_notice_minutes,
        o.horizon_days,
        &kind_names(&o.kinds),
        now
    )
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

/// Replace one of the practitioner's rules; `None` when it is not theirs (or does not exist).
pub async fn update_rule(
    conn: &mut PgConnection,
    practitioner: UserId,
    id: Uuid,
    rule: &NewRule,
    now: OffsetDateTime,
) -> Result<Option<Rule>, sqlx::Error> {
    let o = &rule.offer;
    let row = sqlx::query_as!(
        RuleRow,
        "UPDATE availability_rules
         SET weekday = $3, start_time = $4, end_time = $5, lengths = $6, step_minutes = $7,
             buffer_before = $8, buffer_after = $9, min_notice_minutes = $10,
             horizon_days = $11, kinds = $12, updated_at = $13
         WHERE id = $1 AND practitioner_id = $2
         RETURNING id, weekday, start_time, end_time, lengths, step_minutes, buffer_before,
                   buffer_after, min_notice_minutes, horizon_days, kinds, updated_at",
        id,
        practitioner.as_uuid(),
        rule.weekday,
        rule.start,
        rule.end,
        &o.lengths,
        o.step_minutes,
        o.buffer_before_minutes,
        o.buffer_after_minutes,
        o.min_notice_minutes,
        o.horizon_days,
        &kind_names(&o.kinds),
        now
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(Rule::from))
}

/// Delete one of the practitioner's rules: whether it was theirs.
pub async fn delete_rule(
    conn: &mut PgConnection,
    practitioner: UserId,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM availability_rules WHERE id = $1 AND practitioner_id = $2",
        id,
        practitioner.as_uuid()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

struct ExceptionRow {
    id: Uuid,
    kind: String,
    starts_at: OffsetDateTime,
    ends_at: OffsetDateTime,
    lengths: Option<Vec<i16>>,
    step_minutes: Option<i16>,
    buffer_before: Option<i16>,
    buffer_after: Option<i16>,
    min_notice_minutes: Option<i32>,
    horizon_days: Option<i16>,
    kinds: Option<Vec<String>>,
}

impl From<ExceptionRow> for Exception {
    fn from(r: ExceptionRow) -> Self {
        let offer = match (r.kind.as_str(), r.lengths, r.kinds) {
            ("extra_hours", Some(lengths), Some(kinds)) => Some(Offer {
                lengths,
                step_minutes: r.step_minutes,
                buffer_before_minutes: r.buffer_before.unwrap_or(0),
                buffer_after_minutes: r.buffer_after.unwrap_or(0),
                min_notice_minutes: r.min_notice_minutes.unwrap_or(0),
                horizon_days: r.horizon_days.unwrap_or(1),
                kinds: kinds_of(&kinds),
            }),
            _ => None,
        };
        Exception {
            id: r.id,
            kind: if offer.is_some() {
                ExceptionKind::ExtraHours
            } else {
                ExceptionKind::TimeOff
            },
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            offer,
        }
    }
}

/// One page (plus one row) of the practitioner's exceptions still running at or after `from`,
/// by (starts_at, id) after the keyset.
pub async fn exceptions_page(
    conn: &mut PgConnection,
    practitioner: UserId,
    from: OffsetDateTime,
    after: (OffsetDateTime, Uuid),
    limit: i64,
) -> Result<Vec<Exception>, sqlx::Error> {
    let rows = sqlx::query_as!(
        ExceptionRow,
        "SELECT id, kind, starts_at, ends_at, lengths, step_minutes, buffer_before, buffer_after,
                min_notice_minutes, horizon_days, kinds
         FROM availability_exceptions
         WHERE practitioner_id = $1 AND ends_at > $2 AND (starts_at, id) > ($3, $4)
         ORDER BY starts_at, id
         LIMIT $5",
        practitioner.as_uuid(),
        from,
        after.0,
        after.1,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Exception::from).collect())
}

pub async fn insert_exception(
    conn: &mut PgConnection,
    practitioner: UserId,
    e: &NewException,
    now: OffsetDateTime,
) -> Result<Exception, sqlx::Error> {
    let o = e.offer.as_ref();
    let row = sqlx::query_as!(
        ExceptionRow,
        "INSERT INTO availability_exceptions
             (id, practitioner_id, kind, starts_at, ends_at, lengths, step_minutes, buffer_before,
              buffer_after, min_notice_minutes, horizon_days, kinds, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         RETURNING id, kind, starts_at, ends_at, lengths, step_minutes, buffer_before,
                   buffer_after, min_notice_minutes, horizon_days, kinds",
        Uuid::now_v7(),
        practitioner.as_uuid(),
        e.kind.as_str(),
        e.starts_at,
        e.ends_at,
        o.map(|o| o.lengths.clone()) as Option<Vec<i16>>,
        o.and_then(|o| o.step_minutes),
        o.map(|o| o.buffer_before_minutes),
        o.map(|o| o.buffer_after_minutes),
        o.map(|o| o.min_notice_minutes),
        o.map(|o| o.horizon_days),
        o.map(|o| kind_names(&o.kinds)) as Option<Vec<String>>,
        now
    )
    .fetch_one(conn)
    .await?;
    Ok(row.into())
}

/// Delete one of the practitioner's exceptions: whether it was theirs.
pub async fn delete_exception(
    conn: &mut PgConnection,
    practitioner: UserId,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "DELETE FROM availability_exceptions WHERE id = $1 AND practitioner_id = $2",
        id,
        practitioner.as_uuid()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Every exception of the practitioner overlapping `[from, to)` (for the slot engine).
pub async fn exceptions_between(
    conn: &mut PgConnection,
    practitioner: UserId,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<Exception>, sqlx::Error> {
    let rows = sqlx::query_as!(
        ExceptionRow,
        "SELECT id, kind, starts_at, ends_at, lengths, step_minutes, buffer_before, buffer_after,
                min_notice_minutes, horizon_days, kinds
         FROM availability_exceptions
         WHERE practitioner_id = $1 AND ends_at > $2 AND starts_at < $3
         ORDER BY starts_at, id",
        practitioner.as_uuid(),
        from,
        to
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Exception::from).collect())
}

/// The practitioner's busy time in `[from, to)` across every company (merged intervals, from
/// `app_private.practitioner_busy`: nothing about who or where).
pub async fn busy(
    conn: &mut PgConnection,
    practitioner: UserId,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> Result<Vec<(OffsetDateTime, OffsetDateTime)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT starts_at AS "starts_at!", ends_at AS "ends_at!"
           FROM app_private.practitioner_busy($1, $2, $3)"#,
        practitioner.as_uuid(),
        from,
        to
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.starts_at, r.ends_at)).collect())
}

/// Whether the practitioner has their profile (a schedule belongs to one).
pub async fn has_profile(
    conn: &mut PgConnection,
    practitioner: UserId,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM practitioner_profiles WHERE user_id = $1) AS "exists!""#,
        practitioner.as_uuid()
    )
    .fetch_one(conn)
    .await
}
