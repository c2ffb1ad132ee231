//! SQL of consultations. Reads run under row-level security (a consultation is visible to its
//! two proven participants only); writes go through the definers of migration
//! 20261206000004 (the request role writes no consultation itself).

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{Consultation, Status};
use crate::availability::model::Kind;
use crate::db::UserId;

struct Row {
    id: Uuid,
    employee_id: UserId,
    practitioner_id: UserId,
    kind: String,
    status: Status,
    starts_at: OffsetDateTime,
    ends_at: OffsetDateTime,
    duration_minutes: Option<i64>,
    created_at: OffsetDateTime,
}

impl Row {
    fn into_consultation(self) -> Option<Consultation> {
        Some(Consultation {
            id: self.id,
            employee_id: self.employee_id,
            practitioner_id: self.practitioner_id,
            kind: Kind::parse(&self.kind)?,
            status: self.status,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            length_minutes: (self.ends_at - self.starts_at).whole_minutes(),
            duration_minutes: self.duration_minutes,
            with_name: None,
            created_at: self.created_at,
        })
    }
}

/// One consultation the caller takes part in, in this company.
pub async fn one(conn: &mut PgConnection, id: Uuid) -> Result<Option<Consultation>, sqlx::Error> {
    let row = sqlx::query_as!(
        Row,
        r#"SELECT id, employee_id AS "employee_id: UserId", practitioner_id AS "practitioner_id: UserId",
                  kind, status AS "status: Status", starts_at, ends_at,
                  (SELECT (extract(epoch FROM max(e.at) FILTER (WHERE e.kind = 'ended')
                                          - max(e.at) FILTER (WHERE e.kind = 'started')) / 60)::bigint
                   FROM consultation_events e
                   WHERE e.tenant_id = c.tenant_id AND e.consultation_id = c.id) AS duration_minutes,
                  created_at
           FROM consultations c WHERE id = $1 AND tenant_id = app.current_tenant()"#,
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(Row::into_consultation))
}

/// One page (plus one row) of the caller's consultations in this company, by (start, id).
pub async fn page(
    conn: &mut PgConnection,
    me: UserId,
    after: (OffsetDateTime, Uuid),
    limit: i64,
) -> Result<Vec<Consultation>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Row,
        r#"SELECT id, employee_id AS "employee_id: UserId", practitioner_id AS "practitioner_id: UserId",
                  kind, status AS "status: Status", starts_at, ends_at,
                  (SELECT (extract(epoch FROM max(e.at) FILTER (WHERE e.kind = 'ended')
                                          - max(e.at) FILTER (WHERE e.kind = 'started')) / 60)::bigint
                   FROM consultation_events e
                   WHERE e.tenant_id = c.tenant_id AND e.consultation_id = c.id) AS duration_minutes,
                  created_at
           FROM consultations c
           WHERE tenant_id = app.current_tenant() AND $1 IN (employee_id, practitioner_id)
             AND (starts_at, id) > ($2, $3)
           ORDER BY starts_at, id
           LIMIT $4"#,
        me.as_uuid(),
        after.0,
        after.1,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(Row::into_consultation)
        .collect())
}

/// What claiming an idempotency key found.
pub enum Claim {
    New,
    Replay {
        status: u16,
        body: serde_json::Value,
    },
    Mismatch,
}

pub async fn claim_key(
    conn: &mut PgConnection,
    key: &str,
    hash: &[u8],
    now: OffsetDateTime,
    ttl_hours: i32,
) -> Result<Claim, sqlx::Error> {
    let r = sqlx::query!(
        r#"SELECT outcome AS "outcome!", status, response
           FROM app_private.idempotency_claim($1, $2, $3, $4)"#,
        key,
        hash,
        now,
        ttl_hours
    )
    .fetch_one(conn)
    .await?;
    Ok(match r.outcome.as_str() {
        "new" => Claim::New,
        "replay" => Claim::Replay {
            status: r.status.and_then(|s| u16::try_from(s).ok()).unwrap_or(200),
            body: r.response.unwrap_or(serde_json::Value::Null),
        },
        _ => Claim::Mismatch,
    })
}

pub async fn finish_key(
    conn: &mut PgConnection,
    key: &str,
    status: u16,
    body: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT app_private.idempotency_finish($1, $2, $3)",
        key,
        i16::try_from(status).unwrap_or(0),
        body
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Take the booking locks: whether the practitioner confirms automatically, `None` when this
/// booking cannot be (no schedule; not an employee here; not this company's practitioner).
pub async fn lock(
    conn: &mut PgConnection,
    practitioner: UserId,
) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT app_private.booking_lock($1)",
        practitioner.as_uuid()
    )
    .fetch_one(conn)
    .await
}

/// `book_consultation`'s outcome code.
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    practitioner: UserId,
    kind: Kind,
    starts_at: OffsetDateTime,
    ends_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT outcome AS "outcome!" FROM app_private.book_consultation($1, $2, $3, $4, $5, $6)"#,
        id,
        practitioner.as_uuid(),
        kind.as_str(),
        starts_at,
        ends_at,
        now
    )
    .fetch_one(conn)
    .await
}

/// One move of `app_private.consultation_transition`: the new status, `not_found` or
/// `invalid_transition`.
pub async fn transition(
    conn: &mut PgConnection,
    id: Uuid,
    action: &str,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT app_private.consultation_transition($1, $2, $3, $4) AS "outcome!""#,
        id,
        action,
        reason,
        now
    )
    .fetch_one(conn)
    .await
}

/// Lock a consultation to move it: its practitioner, or `None` when it cannot move.
pub async fn reschedule_lock(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<Option<UserId>, sqlx::Error> {
    let p = sqlx::query_scalar!("SELECT app_private.reschedule_lock($1, $2)", id, now)
        .fetch_one(conn)
        .await?;
    Ok(p.map(UserId::from))
}

/// `consultation_reschedule`'s outcome code.
pub async fn reschedule(
    conn: &mut PgConnection,
    id: Uuid,
    starts_at: OffsetDateTime,
    ends_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT app_private.consultation_reschedule($1, $2, $3, $4) AS "outcome!""#,
        id,
        starts_at,
        ends_at,
        now
    )
    .fetch_one(conn)
    .await
}

/// The other participant's display name of each of the caller's consultations.
pub async fn counterparts(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, String>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT consultation_id AS "id!", display_name AS "name!"
           FROM app_private.consultation_counterparts($1)"#,
        ids
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.name)).collect())
}

/// Fill each consultation's `with_name` (the other participant's display name).
pub async fn named(
    conn: &mut PgConnection,
    mut items: Vec<Consultation>,
) -> Result<Vec<Consultation>, sqlx::Error> {
    let ids: Vec<Uuid> = items.iter().map(|c| c.id).collect();
    let mut names = counterparts(conn, &ids).await?;
    for c in &mut items {
        c.with_name = names.remove(&c.id);
    }
    Ok(items)
}

/// [`one`] with its `with_name`.
pub async fn one_named(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<Consultation>, sqlx::Error> {
    let Some(c) = one(&mut *conn, id).await? else {
        return Ok(None);
    };
    Ok(named(conn, vec![c]).await?.pop())
}

/// The room of one of the caller's consultations and the caller's own display name.
pub async fn room_and_name(
    conn: &mut PgConnection,
    id: Uuid,
    me: UserId,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT c.room, u.display_name
           FROM consultations c JOIN users u ON u.id = $2
           WHERE c.id = $1 AND c.tenant_id = app.current_tenant()"#,
        id,
        me.as_uuid()
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.room, r.display_name)))
}
