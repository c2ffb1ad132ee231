//! SQL of the key tables (`tenant_keys`, `subject_keys`, migration 0006). Every function runs
//! on the caller's connection — a `TenantTx` (row-level security limits it to that tenant) —
//! and filters `tenant_id` explicitly as well. Only wrapped keys pass through here.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::cache::Purpose;
use crate::db::{TenantId, UserId};

/// One version of a tenant key.
#[derive(Debug)]
pub struct TenantKeyRow {
    pub purpose: String,
    pub version: i32,
    /// `None` once destroyed.
    pub wrapped_key: Option<Vec<u8>>,
}

/// One version of a subject key, with the wrapped tenant 'data' key that wraps it.
#[derive(Debug)]
pub struct SubjectKeyRow {
    pub version: i32,
    pub wrapped_key: Option<Vec<u8>>,
    pub wrapping_version: i32,
    /// The wrapping tenant key (`None`: destroyed or missing).
    pub parent_wrapped: Option<Vec<u8>>,
}

/// The newest version of a tenant key (the one new writes use).
pub async fn current_tenant_key(
    conn: &mut PgConnection,
    tenant: TenantId,
    purpose: Purpose,
) -> Result<Option<TenantKeyRow>, sqlx::Error> {
    sqlx::query_as!(
        TenantKeyRow,
        "SELECT purpose, version, wrapped_key FROM tenant_keys
         WHERE tenant_id = $1 AND purpose = $2 ORDER BY version DESC LIMIT 1",
        tenant.as_uuid(),
        purpose.as_str()
    )
    .fetch_optional(conn)
    .await
}

/// One version of a tenant key.
pub async fn tenant_key_at(
    conn: &mut PgConnection,
    tenant: TenantId,
    purpose: Purpose,
    version: i32,
) -> Result<Option<TenantKeyRow>, sqlx::Error> {
    sqlx::query_as!(
        TenantKeyRow,
        "SELECT purpose, version, wrapped_key FROM tenant_keys
         WHERE tenant_id = $1 AND purpose = $2 AND version = $3",
        tenant.as_uuid(),
        purpose.as_str(),
        version
    )
    .fetch_optional(conn)
    .await
}

/// Every version of every tenant key of a tenant (rotation).
pub async fn tenant_keys_all(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<TenantKeyRow>, sqlx::Error> {
    sqlx::query_as!(
        TenantKeyRow,
        "SELECT purpose, version, wrapped_key FROM tenant_keys
         WHERE tenant_id = $1 ORDER BY purpose, version",
        tenant.as_uuid()
    )
    .fetch_all(conn)
    .await
}

/// Insert a tenant key version unless it exists (the caller reads back the winner). Returns
/// whether this call inserted it.
pub async fn insert_tenant_key(
    conn: &mut PgConnection,
    tenant: TenantId,
    purpose: Purpose,
    version: i32,
    wrapped: &[u8],
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO tenant_keys (tenant_id, purpose, version, wrapped_key, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        tenant.as_uuid(),
        purpose.as_str(),
        version,
        wrapped,
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replace the wrapping of a live tenant key (master rotation).
pub async fn rewrap_tenant_key(
    conn: &mut PgConnection,
    tenant: TenantId,
    purpose: &str,
    version: i32,
    wrapped: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE tenant_keys SET wrapped_key = $4
         WHERE tenant_id = $1 AND purpose = $2 AND version = $3 AND destroyed_at IS NULL",
        tenant.as_uuid(),
        purpose,
        version,
        wrapped
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Mark every tenant key version older than the newest of its purpose as retired.
pub async fn retire_old_tenant_keys(
    conn: &mut PgConnection,
    tenant: TenantId,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE tenant_keys k SET retired_at = $2
         WHERE k.tenant_id = $1 AND k.retired_at IS NULL AND k.destroyed_at IS NULL
           AND k.version < (SELECT max(m.version) FROM tenant_keys m
                            WHERE m.tenant_id = k.tenant_id AND m.purpose = k.purpose)",
        tenant.as_uuid(),
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The newest version of a subject's key.
pub async fn current_subject_key(
    conn: &mut PgConnection,
    tenant: TenantId,
    subject: UserId,
) -> Result<Option<SubjectKeyRow>, sqlx::Error> {
    sqlx::query_as!(
        SubjectKeyRow,
        r#"SELECT s.version, s.wrapped_key, s.wrapping_version,
                  t.wrapped_key AS "parent_wrapped?"
           FROM subject_keys s
           LEFT JOIN tenant_keys t ON t.tenant_id = s.tenant_id AND t.purpose = 'data'
                                  AND t.version = s.wrapping_version
           WHERE s.tenant_id = $1 AND s.subject_id = $2
           ORDER BY s.version DESC LIMIT 1"#,
        tenant.as_uuid(),
        subject.as_uuid()
    )
    .fetch_optional(conn)
    .await
}

/// One version of a subject's key.
pub async fn subject_key_at(
    conn: &mut PgConnection,
    tenant: TenantId,
    subject: UserId,
    version: i32,
) -> Result<Option<SubjectKeyRow>, sqlx::Error> {
    sqlx::query_as!(
        SubjectKeyRow,
        r#"SELECT s.version, s.wrapped_key, s.wrapping_version,
                  t.wrapped_key AS "parent_wrapped?"
           FROM subject_keys s
           LEFT JOIN tenant_keys t ON t.tenant_id = s.tenant_id AND t.purpose = 'data'
                                  AND t.version = s.wrapping_version
           WHERE s.tenant_id = $1 AND s.subject_id = $2 AND s.version = $3"#,
        tenant.as_uuid(),
        subject.as_uuid(),
        version
    )
    .fetch_optional(conn)
    .await
}

/// Insert a subject key version unless it exists. Returns whether this call inserted it.
pub async fn insert_subject_key(
    conn: &mut PgConnection,
    tenant: TenantId,
    subject: UserId,
    version: i32,
    wrapping_version: i32,
    wrapped: &[u8],
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO subject_keys (tenant_id, subject_id, version, wrapping_version, wrapped_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        tenant.as_uuid(),
        subject.as_uuid(),
        version,
        wrapping_version,
        wrapped,
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Destroy every version of a subject's key; a subject that never had one gets a destroyed
/// tombstone, so no key is created for them later.
pub async fn destroy_subject(
    conn: &mut PgConnection,
    tenant: TenantId,
    subject: UserId,
    now: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE subject_keys SET wrapped_key = NULL, destroyed_at = $3
         WHERE tenant_id = $1 AND subject_id = $2 AND destroyed_at IS NULL",
        tenant.as_uuid(),
        subject.as_uuid(),
        now
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO subject_keys (tenant_id, subject_id, version, wrapping_version, wrapped_key,
                                   created_at, destroyed_at)
         VALUES ($1, $2, 1, 0, NULL, $3, $3) ON CONFLICT DO NOTHING",
        tenant.as_uuid(),
        subject.as_uuid(),
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Destroy every key of a tenant (offboarding); tombstones keep new keys from being created.
pub async fn destroy_tenant(
    conn: &mut PgConnection,
    tenant: TenantId,
    now: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let subjects = sqlx::query!(
        "UPDATE subject_keys SET wrapped_key = NULL, destroyed_at = $2
         WHERE tenant_id = $1 AND destroyed_at IS NULL",
        tenant.as_uuid(),
        now
    )
    .execute(&mut *conn)
    .await?;
    let tenants = sqlx::query!(
        "UPDATE tenant_keys SET wrapped_key = NULL, destroyed_at = $2
         WHERE tenant_id = $1 AND destroyed_at IS NULL",
        tenant.as_uuid(),
        now
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO tenant_keys (tenant_id, purpose, version, wrapped_key, created_at, destroyed_at)
         SELECT $1, p, 1, NULL, $2, $2 FROM unnest(ARRAY['data', 'clinical']) AS p
         ON CONFLICT DO NOTHING",
        tenant.as_uuid(),
        now
    )
    .execute(conn)
    .await?;
    Ok(subjects.rows_affected() + tenants.rows_affected())
}

/// A page of live subject keys in (subject, version) order after `after` (rotation).
pub async fn live_subject_keys_after(
    conn: &mut PgConnection,
    tenant: TenantId,
    after: (Uuid, i32),
    limit: i64,
) -> Result<Vec<(Uuid, i32, i32, Vec<u8>)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT subject_id, version, wrapping_version, wrapped_key AS "wrapped_key!"
           FROM subject_keys
           WHERE tenant_id = $1 AND destroyed_at IS NULL AND wrapped_key IS NOT NULL
             AND (subject_id, version) > ($2, $3)
           ORDER BY subject_id, version LIMIT $4"#,
        tenant.as_uuid(),
        after.0,
        after.1,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.subject_id, r.version, r.wrapping_version, r.wrapped_key))
        .collect())
}

/// A page of subjects whose newest key version is live, after subject `after` (rotation).
pub async fn live_subjects_after(
    conn: &mut PgConnection,
    tenant: TenantId,
    after: Uuid,
    limit: i64,
) -> Result<Vec<(Uuid, i32)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT subject_id AS "subject_id!", version AS "version!" FROM (
               SELECT DISTINCT ON (subject_id) subject_id, version, destroyed_at
               FROM subject_keys WHERE tenant_id = $1 AND subject_id > $2
               ORDER BY subject_id, version DESC
           ) newest
           WHERE destroyed_at IS NULL
           ORDER BY subject_id LIMIT $3"#,
        tenant.as_uuid(),
        after,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.subject_id, r.version))
        .collect())
}

/// Re-wrap many subject keys under tenant 'data' key `wrapping_version` in one statement.
pub async fn rewrap_subject_keys(
    conn: &mut PgConnection,
    tenant: TenantId,
    wrapping_version: i32,
    subjects: &[Uuid],
    versions: &[i32],
    wrapped: &[Vec<u8>],
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE subject_keys s SET wrapped_key = u.wrapped, wrapping_version = $2
         FROM unnest($3::uuid[], $4::int4[], $5::bytea[]) AS u(subject_id, version, wrapped)
         WHERE s.tenant_id = $1 AND s.subject_id = u.subject_id AND s.version = u.version
           AND s.destroyed_at IS NULL",
        tenant.as_uuid(),
        wrapping_version,
        subjects,
        versions,
        wrapped
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Insert many new subject key versions in one statement.
pub async fn insert_subject_keys(
    conn: &mut PgConnection,
    tenant: TenantId,
    wrapping_version: i32,
    subjects: &[Uuid],
    versions: &[i32],
    wrapped: &[Vec<u8>],
    now: OffsetDateTime,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "INSERT INTO subject_keys (tenant_id, subject_id, version, wrapping_version, wrapped_key, created_at)
         SELECT $1, u.subject_id, u.version, $2, u.wrapped, $6
         FROM unnest($3::uuid[], $4::int4[], $5::bytea[]) AS u(subject_id, version, wrapped)",
        tenant.as_uuid(),
        wrapping_version,
        subjects,
        versions,
        wrapped,
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Mark every subject key version older than the subject's newest as retired.
pub async fn retire_old_subject_keys(
    conn: &mut PgConnection,
    tenant: TenantId,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE subject_keys k SET retired_at = $2
         WHERE k.tenant_id = $1 AND k.retired_at IS NULL AND k.destroyed_at IS NULL
           AND k.version < (SELECT max(m.version) FROM subject_keys m
                            WHERE m.tenant_id = k.tenant_id AND m.subject_id = k.subject_id)",
        tenant.as_uuid(),
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}
