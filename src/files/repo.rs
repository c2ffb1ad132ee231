//! The files definers (migration `20261209000100_files.sql`), one function each. The request
//! role writes nothing directly; every door takes the person from the session proof.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{FileId, Purpose};
use crate::db::{TenantId, UserId};
use crate::error::AppError;

/// A file the proven person may read (`app_private.file_open`).
#[derive(Debug)]
pub struct Readable {
    pub tenant: TenantId,
    pub id: Uuid,
    pub owner: UserId,
    pub purpose: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: Vec<u8>,
    pub storage_key: String,
    pub file_name: String,
}

/// What to record of an upload.
pub struct NewFile<'a> {
    pub id: FileId,
    pub purpose: Purpose,
    pub content_type: &'a str,
    pub size_bytes: i64,
    pub sha256: &'a [u8],
    pub file_name: &'a str,
    /// An attachment's data key wrapped under the uploader's subject key; `None` otherwise.
    pub wrapped_key: Option<&'a [u8]>,
}

/// `created`, `forbidden` (an article image by a non-practitioner) or `not_found`.
pub async fn create(
    conn: &mut PgConnection,
    f: &NewFile<'_>,
    now: OffsetDateTime,
) -> Result<String, AppError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT app_private.file_create($1, $2, $3, $4, $5, $6, $7, $8) AS "outcome!""#,
        f.id.as_uuid(),
        f.purpose.as_str(),
        f.content_type,
        f.size_bytes,
        f.sha256,
        f.file_name,
        f.wrapped_key,
        now
    )
    .fetch_one(conn)
    .await?)
}

/// The file if the proven person may read it.
pub async fn readable(conn: &mut PgConnection, id: Uuid) -> Result<Option<Readable>, AppError> {
    let row = sqlx::query!(
        r#"SELECT tenant_id AS "tenant_id!", id AS "id!", owner_id AS "owner_id!",
                  purpose AS "purpose!", content_type AS "content_type!",
                  size_bytes AS "size_bytes!", sha256 AS "sha256!",
                  storage_key AS "storage_key!", file_name AS "file_name!"
           FROM app_private.file_open($1)"#,
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Readable {
        tenant: TenantId(r.tenant_id),
        id: r.id,
        owner: UserId(r.owner_id),
        purpose: r.purpose,
        content_type: r.content_type,
        size_bytes: r.size_bytes,
        sha256: r.sha256,
        storage_key: r.storage_key,
        file_name: r.file_name,
    }))
}

/// Tombstone a file of the proven person's; its storage key, or `None` (not theirs).
pub async fn delete(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<Option<String>, AppError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT app_private.file_delete($1, $2) AS "key""#,
        id,
        now
    )
    .fetch_one(conn)
    .await?)
}

/// Whose subject key wraps a file's data key, and the wrapped key (`None, None`: sealed under
/// another key — avatars, article images, older attachments).
pub type SealedFor = (Option<UserId>, Option<Vec<u8>>);

/// The wrapped data key of a file the proven person may read (`app_private.file_key`).
pub async fn key_of(conn: &mut PgConnection, id: Uuid) -> Result<Option<SealedFor>, AppError> {
    let row = sqlx::query!(
        r#"SELECT sealed_for, wrapped_key FROM app_private.file_key($1)"#,
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.sealed_for.map(UserId), r.wrapped_key)))
}

/// The wrapped data key of a live file of the proven person's own here (the owner policy).
pub async fn own_key(conn: &mut PgConnection, id: Uuid) -> Result<Option<SealedFor>, AppError> {
    let row = sqlx::query!(
        r#"SELECT sealed_for, wrapped_key FROM files
           WHERE tenant_id = app.current_tenant() AND id = $1 AND purpose = 'attachment'"#,
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.sealed_for.map(UserId), r.wrapped_key)))
}

/// Re-wrap an unattached attachment of the proven person's under `subject`'s key
/// (`app_private.file_key_set`); false: refused, nothing changed.
pub async fn key_set(
    conn: &mut PgConnection,
    id: Uuid,
    subject: UserId,
    wrapped: &[u8],
) -> Result<bool, AppError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT app_private.file_key_set($1, $2, $3) AS "ok!""#,
        id,
        subject.as_uuid(),
        wrapped
    )
    .fetch_one(conn)
    .await?)
}

/// Make an avatar upload of the proven person's their avatar; false: no such file of theirs.
pub async fn avatar_set(
    conn: &mut PgConnection,
    file: FileId,
    now: OffsetDateTime,
) -> Result<bool, AppError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT app_private.avatar_set($1, $2) AS "ok!""#,
        file.as_uuid(),
        now
    )
    .fetch_one(conn)
    .await?)
}

/// Remove the proven person's avatar; false: they had none.
pub async fn avatar_clear(conn: &mut PgConnection, now: OffsetDateTime) -> Result<bool, AppError> {
    Ok(
        sqlx::query_scalar!(r#"SELECT app_private.avatar_clear($1) AS "ok!""#, now)
            .fetch_one(conn)
            .await?,
    )
}

/// Publish article images; `None`: refused (a file not the proven person's, of another
/// purpose, deleted, or published for another article), nothing changed.
pub async fn publish(
    conn: &mut PgConnection,
    article: Uuid,
    files: &[Uuid],
    now: Option<OffsetDateTime>,
) -> Result<Option<i32>, AppError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT app_private.article_images_publish($1, $2, $3) AS "n""#,
        article,
        files,
        now
    )
    .fetch_one(conn)
    .await?)
}

/// Withdraw the proven person's images of `article`; how many.
pub async fn unpublish(conn: &mut PgConnection, article: Uuid) -> Result<i32, AppError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT app_private.article_images_unpublish($1) AS "n!""#,
        article
    )
    .fetch_one(conn)
    .await?)
}

/// A tombstoned file whose object is to be removed (the job worker's sweep).
#[derive(Debug)]
pub struct Swept {
    pub tenant: Uuid,
    pub id: Uuid,
    pub storage_key: String,
}

/// Tombstone unlinked uploads older than a day; up to `limit` tombstoned files (locked).
pub async fn sweep(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    limit: i32,
) -> Result<Vec<Swept>, AppError> {
    let rows = sqlx::query!(
        r#"SELECT tenant_id AS "tenant_id!", id AS "id!", storage_key AS "storage_key!"
           FROM app_private.files_sweep($1, $2)"#,
        now,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Swept {
            tenant: r.tenant_id,
            id: r.id,
            storage_key: r.storage_key,
        })
        .collect())
}

/// Delete the rows of tombstoned files whose objects are gone.
pub async fn forget(conn: &mut PgConnection, done: &[Swept]) -> Result<i32, AppError> {
    let tenants: Vec<Uuid> = done.iter().map(|s| s.tenant).collect();
    let ids: Vec<Uuid> = done.iter().map(|s| s.id).collect();
    Ok(sqlx::query_scalar!(
        r#"SELECT app_private.files_forget($1, $2) AS "n!""#,
        &tenants,
        &ids
    )
    .fetch_one(conn)
    .await?)
}

/// Offboarded companies whose objects are still to be removed (locked).
pub async fn offboarded(conn: &mut PgConnection, limit: i32) -> Result<Vec<TenantId>, AppError> {
    let rows = sqlx::query_scalar!(
        r#"SELECT tenant_id AS "tenant_id!" FROM app_private.files_offboarded($1)"#,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(TenantId).collect())
}

/// Record that an offboarded company's objects are gone.
pub async fn offboarded_done(
    conn: &mut PgConnection,
    tenant: TenantId,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    sqlx::query!(
        "SELECT app_private.files_offboarded_done($1, $2)",
        tenant.as_uuid(),
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}
