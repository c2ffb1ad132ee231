//! SQL of the key tables (`tenant_keys`, `subject_keys`, migrations 0006 and 20261204000001).
//! Only wrapped keys pass through here.
//!
//! Two sides, never mixed:
//! - request side (a `TenantTx`): the request role holds no privilege on the key tables, so
//!   these call the `app_private` key definers, which take tenant and person from the context
//!   and demand a session proven by `session_guard` in the same transaction; a subject key is
//!   served to its own subject only, and only version 1 of a key can be created this way;
//! - owner side (the operator / job connection: rotation, erasure, tenant purge): plain SQL
//!   that filters `tenant_id` explicitly; on a `TenantTx` it fails with `permission denied`.

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

/// The newest version of the context tenant's key of `purpose` (the one new writes use).
/// Request side: `app_private.tenant_key`, which demands a session proven in this transaction.
pub async fn current_tenant_key(
    conn: &mut PgConnection,
    purpose: Purpose,
) -> Result<Option<TenantKeyRow>, sqlx::Error> {
    sqlx::query_as!(
        TenantKeyRow,
        r#"SELECT $1::text AS "purpose!", version AS "version!", wrapped_key
           FROM app_private.tenant_key($1, NULL)"#,
        purpose.as_str()
    )
    .fetch_optional(conn)
    .await
}

/// One version of the context tenant's key of `purpose` (request side, like
/// [`current_tenant_key`]).
pub async fn tenant_key_at(
    conn: &mut PgConnection,
    purpose: Purpose,
    version: i32,
) -> Result<Option<TenantKeyRow>, sqlx::Error> {
    sqlx::query_as!(
        TenantKeyRow,
        r#"SELECT $1::text AS "purpose!", version AS "version!", wrapped_key
           FROM app_private.tenant_key($1, $2)"#,
        purpose.as_str(),
        version
    )
    .fetch_optional(conn)
    .await
}

/// Create version 1 of the context tenant's key of `purpose` unless it has one (request side:
/// `app_private.tenant_key_create`; the caller reads back the winner). Returns whether this
/// call created it.
pub async fn create_first_tenant_key(
    conn: &mut PgConnection,
    purpose: Purpose,
    wrapped: &[u8],
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let created = sqlx::query_scalar!(
        r#"SELECT app_private.tenant_key_create($1, $2, $3) AS "created!""#,
        purpose.as_str(),
        wrapped,
        now
    )
    .fetch_one(conn)
    .await?;
    Ok(created)
}

/// The newest version of a subject's key in the context tenant (request side:
/// `app_private.subject_key`, which serves the proven person's own key only).
pub async fn current_subject_key(
    conn: &mut PgConnection,
    subject: UserId,
) -> Result<Option<SubjectKeyRow>, sqlx::Error> {
    sqlx::query_as!(
        SubjectKeyRow,
        r#"SELECT version AS "version!", wrapped_key, wrapping_version AS "wrapping_version!",
                  parent_wrapped
           FROM app_private.subject_key($1, NULL)"#,
        subject.as_uuid()
    )
    .fetch_optional(conn)
    .await
}

/// One version of a subject's key in the context tenant (request side, like
/// [`current_subject_key`]).
pub async fn subject_key_at(
    conn: &mut PgConnection,
    subject: UserId,
    version: i32,
) -> Result<Option<SubjectKeyRow>, sqlx::Error> {
    sqlx::query_as!(
        SubjectKeyRow,
        r#"SELECT version AS "version!", wrapped_key, wrapping_version AS "wrapping_version!",
                  parent_wrapped
           FROM app_private.subject_key($1, $2)"#,
        subject.as_uuid(),
        version
    )
    .fetch_optional(conn)
    .await
}

/// Create version 1 of the proven person's own subject key unless they have one (request side:
/// `app_private.subject_key_create`). Returns whether this call created it.
pub async fn create_first_subject_key(
    conn: &mut PgConnection,
    subject: UserId,
    wrapping_version: i32,
    wrapped: &[u8],
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let created = sqlx::query_scalar!(
        r#"SELECT app_private.subject_key_create($1, $2, $3, $4) AS "created!""#,
        subject.as_uuid(),
        wrapping_version,
        wrapped,
        now
    )
    .fetch_one(conn)
    .await?;
    Ok(created)
}

// -------------------------------------------------------------------------------------------
// Owner side: the connection is the owner's (rotation, erasure, purge). The request role has no
// privilege on the key tables, so these fail with `permission denied` on a `TenantTx`.

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
