//! Clinical notes in the database (migration `20261208000001_records.sql`). Every query runs in
//! the author's `TenantTx`: the policies show a practitioner their own notes only, and the
//! explicit `author_id` filters below say the same for the planner.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::UserId;

/// A note with its current version's sealed content.
#[derive(Debug)]
pub struct NoteRow {
    pub id: Uuid,
    pub consultation_id: Uuid,
    pub employee_id: UserId,
    pub version: i32,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// The version row's id (bound into the content's AAD).
    pub version_row: Uuid,
    pub content: Vec<u8>,
}

/// A kept version.
#[derive(Debug)]
pub struct VersionRow {
    pub id: Uuid,
    pub version: i32,
    pub content: Vec<u8>,
    pub created_at: OffsetDateTime,
}

/// What a write did (the definers' outcomes, migration `20261208000001_records.sql`).
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    Done,
    NotFound,
    NotConfirmed,
    Conflict,
}

fn written(outcome: &str) -> Written {
    match outcome {
        "created" | "edited" => Written::Done,
        "not_confirmed" => Written::NotConfirmed,
        "conflict" => Written::Conflict,
        _ => Written::NotFound,
    }
}

/// Write a note and its first version as the proven person (the caller sealed `content` for
/// `version_row`); the definer checks they are the consultation's practitioner. With the time
/// it recorded (never before the database's clock).
pub async fn create(
    conn: &mut PgConnection,
    id: Uuid,
    consultation: Uuid,
    version_row: Uuid,
    content: &[u8],
    now: OffsetDateTime,
) -> Result<(Written, OffsetDateTime), sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", at FROM app_private.note_create($1, $2, $3, $4, $5)"#,
        id,
        consultation,
        version_row,
        content,
        now
    )
    .fetch_one(conn)
    .await?;
    Ok((written(&row.outcome), row.at.unwrap_or(now)))
}

/// Add version `from + 1` of a live note of the proven person's, if it is still at `from`.
pub async fn edit(
    conn: &mut PgConnection,
    id: Uuid,
    from: i32,
    version_row: Uuid,
    content: &[u8],
    now: OffsetDateTime,
) -> Result<(Written, OffsetDateTime), sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", at FROM app_private.note_edit($1, $2, $3, $4, $5)"#,
        id,
        from,
        version_row,
        content,
        now
    )
    .fetch_one(conn)
    .await?;
    Ok((written(&row.outcome), row.at.unwrap_or(now)))
}

/// Mark a live note of the proven person's deleted; false when there is none.
pub async fn delete(
    conn: &mut PgConnection,
    id: Uuid,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT app_private.note_delete($1, $2) AS "deleted!""#,
        id,
        now
    )
    .fetch_one(conn)
    .await
}

/// One live note of the author's, with its current content.
pub async fn one(
    conn: &mut PgConnection,
    id: Uuid,
    author: UserId,
) -> Result<Option<NoteRow>, sqlx::Error> {
    sqlx::query_as!(
        NoteRow,
        r#"SELECT n.id, n.consultation_id, n.employee_id AS "employee_id: UserId",
                  n.current_version AS version, n.created_at, n.updated_at,
                  v.id AS version_row, v.content
           FROM clinical_notes n
           JOIN clinical_note_versions v
             ON v.tenant_id = n.tenant_id AND v.note_id = n.id AND v.version = n.current_version
           WHERE n.tenant_id = app.current_tenant() AND n.id = $1 AND n.author_id = $2
             AND n.deleted_at IS NULL"#,
        id,
        author.as_uuid()
    )
    .fetch_optional(conn)
    .await
}

/// The author's live notes on one consultation, or about one employee (exactly one of the two
/// filters is given), newest first after `before`.
pub async fn page(
    conn: &mut PgConnection,
    author: UserId,
    consultation: Option<Uuid>,
    employee: Option<UserId>,
    before: (OffsetDateTime, Uuid),
    fetch: i64,
) -> Result<Vec<NoteRow>, sqlx::Error> {
    sqlx::query_as!(
        NoteRow,
        r#"SELECT n.id, n.consultation_id, n.employee_id AS "employee_id: UserId",
                  n.current_version AS version, n.created_at, n.updated_at,
                  v.id AS version_row, v.content
           FROM clinical_notes n
           JOIN clinical_note_versions v
             ON v.tenant_id = n.tenant_id AND v.note_id = n.id AND v.version = n.current_version
           WHERE n.tenant_id = app.current_tenant() AND n.author_id = $1 AND n.deleted_at IS NULL
             AND ($2::uuid IS NULL OR n.consultation_id = $2)
             AND ($3::uuid IS NULL OR n.employee_id = $3)
             AND (n.created_at, n.id) < ($4, $5)
           ORDER BY n.created_at DESC, n.id DESC
           LIMIT $6"#,
        author.as_uuid(),
        consultation,
        employee.map(|e| e.as_uuid()),
        before.0,
        before.1,
        fetch
    )
    .fetch_all(conn)
    .await
}

/// The kept versions of a live note of the author's, newest first.
pub async fn versions(
    conn: &mut PgConnection,
    id: Uuid,
    author: UserId,
) -> Result<Vec<VersionRow>, sqlx::Error> {
    sqlx::query_as!(
        VersionRow,
        r#"SELECT v.id, v.version, v.content, v.created_at
           FROM clinical_note_versions v
           JOIN clinical_notes n ON n.tenant_id = v.tenant_id AND n.id = v.note_id
           WHERE v.tenant_id = app.current_tenant() AND v.note_id = $1 AND v.author_id = $2
             AND n.deleted_at IS NULL
           ORDER BY v.version DESC"#,
        id,
        author.as_uuid()
    )
    .fetch_all(conn)
    .await
}
