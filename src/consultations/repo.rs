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
            created_at: self.created_at,
        })
    }
}

/// One consultation the caller takes part in, in this company.
pub async fn one(conn: &mut PgConnection, id: Uuid) -> Result<Option<Consultation>, sqlx::Error> {
    let row = sqlx::query_as!(
        Row,
        r#"SELECT id, employee_id AS "employee_id: UserId", practitioner_id AS "practitioner_id: UserId",
                  kind, status AS "status: Status", starts_at, ends_at, created_at
           FROM consultations WHERE id = $1 AND tenant_id = app.current_tenant()"#,
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
                  kind, status AS "status: Status", starts_at, ends_at, created_at
           FROM consultations
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
