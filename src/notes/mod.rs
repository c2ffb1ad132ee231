//! Clinical notes (issue 12, item 1): what a practitioner writes about a session.
//!
//! - `POST /consultations/{id}/notes`, `GET /consultations/{id}/notes` (the consultation's
//!   practitioner: their own notes on it);
//! - `GET /notes?employee_id=` (the author's notes about one employee, across consultations);
//! - `GET|PUT|DELETE /notes/{id}`, `GET /notes/{id}/versions`.
//!
//! Invariants:
//! - Only the author practitioner creates, reads, edits and deletes a note: Casbin gives
//!   `clinical_notes` to practitioners only, and the table policies (migration
//!   `20261208000001_records.sql`) show a row only to its author, proven by the session guard.
//!   A note is written on a consultation of which the caller is the practitioner, once it is
//!   confirmed (confirmed, started, ended, no-show: 409 `consultation_not_confirmed` before);
//!   anyone else's consultation or note is 404.
//! - Content (structured fields and free text, one JSON document per version) is sealed with
//!   the company's CLINICAL key, AAD `v1|tenant|clinical_note_versions|content|{row}` (the
//!   version row's id bound with its note and version number):
//!   it survives the employee's erasure (legal retention) and dies with the company's
//!   offboarding. A blob moved to another row, version or company does not open.
//! - Edits never overwrite: `PUT` adds a version and moves the note's current version, only
//!   from the version the editor saw (409 `version_conflict` otherwise). `DELETE` hides the
//!   note; superseded versions and deleted notes are kept for the clinical retention period
//!   (`CLINICAL_RETENTION_DAYS`, default ten years), then pruned by the job worker.
//! - A version that cannot be opened is shown as `unreadable` in a list and is 410
//!   `sealed_data_unreadable` alone; never a 500.
//! - Never logged: any content. Logs carry note and consultation ids only.

pub mod model;
pub mod repo;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sqlx::PgConnection;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::model::{Note, NoteContent, NoteEdit, NotePage, NoteRequest, NoteVersion, NoteVersions};
use self::repo::Written;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::consultations::model::Status;
use crate::crypto::keyring::{Aad, CryptoError, KeyScope, Keyring};
use crate::db::{TenantId, UserId};
use crate::error::{AppError, AppResult};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::pagination::{Limit, decode_cursor, page};

/// The key of clinical notes.
pub const SCOPE: KeyScope = KeyScope::Clinical;
const TABLE: &str = "clinical_note_versions";
const COLUMN: &str = "content";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list_for_consultation))
        .routes(routes!(list_for_employee))
        .routes(routes!(get, edit, delete))
        .routes(routes!(history))
}

/// A version's AAD: its row id bound with its note and its version number (a text moved to
/// another note or renumbered does not open).
fn aad(tenant: TenantId, version_row: Uuid, note: Uuid, version: i32) -> Aad<'static> {
    Aad {
        tenant,
        table: TABLE,
        column: COLUMN,
        row_id: Aad::bound_row(version_row, &[note.as_bytes(), &version.to_be_bytes()]),
    }
}

async fn seal(
    keyring: &Keyring,
    conn: &mut PgConnection,
    tenant: TenantId,
    (version_row, note, version): (Uuid, Uuid, i32),
    content: &NoteContent,
) -> Result<Vec<u8>, AppError> {
    let json = zeroize::Zeroizing::new(
        serde_json::to_vec(content).map_err(|e| AppError::Internal(format!("note json: {e}")))?,
    );
    Ok(keyring
        .seal(
            conn,
            tenant,
            SCOPE,
            &aad(tenant, version_row, note, version),
            &json,
        )
        .await?)
}

/// Open one version: `Ok(None)` when it cannot be opened (shown as unreadable).
async fn open(
    keyring: &Keyring,
    conn: &mut PgConnection,
    tenant: TenantId,
    (version_row, note, version): (Uuid, Uuid, i32),
    blob: &[u8],
) -> Result<Option<NoteContent>, AppError> {
    match keyring
        .open(
            conn,
            tenant,
            SCOPE,
            &aad(tenant, version_row, note, version),
            blob,
        )
        .await
    {
        Ok(plain) => Ok(serde_json::from_slice(&plain).ok()),
        Err(CryptoError::Unreadable | CryptoError::Destroyed) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn to_note(
    state: &AppState,
    conn: &mut PgConnection,
    tenant: TenantId,
    row: repo::NoteRow,
) -> Result<Note, AppError> {
    let at = (row.version_row, row.id, row.version);
    let content = open(&state.keyring, conn, tenant, at, &row.content).await?;
    Ok(Note {
        id: row.id,
        consultation_id: row.consultation_id,
        employee_id: row.employee_id,
        version: row.version,
        unreadable: content.is_none(),
        content: content.unwrap_or_default(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn not_confirmed() -> AppError {
    AppError::Conflict {
        code: "consultation_not_confirmed",
        detail: "Notes are written on a consultation once it is confirmed.".into(),
    }
}

fn version_conflict() -> AppError {
    AppError::Conflict {
        code: "version_conflict",
        detail: "The note was edited since this version; reload it and edit the current version."
            .into(),
    }
}

/// Write a note on one of the caller's consultations (as its practitioner).
#[utoipa::path(post, path = "/api/v1/consultations/{id}/notes", tag = "notes",
    extensions(("x-authz" = json!({"resource": "clinical_notes", "action": "create"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Consultation id")),
    request_body = NoteRequest,
    responses(
        (status = 201, body = Note),
        (status = 404, description = "Not one of the caller's consultations (as its practitioner) here"),
        (status = 409, description = "consultation_not_confirmed"),
        (status = 422, description = "validation_failed: empty note, a field too long"),
    ))]
#[tracing::instrument(skip_all, fields(consultation = %id))]
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<NoteRequest>,
) -> AppResult<(StatusCode, Json<Note>)> {
    actor.require_company()?;
    let content = req.parse()?;
    let now = state.clock.now_stored();
    let mut tx = actor.begin(&state).await?;
    let c = crate::consultations::repo::one(&mut tx, id)
        .await?
        .filter(|c| c.practitioner_id == actor.user)
        .ok_or(AppError::NotFound)?;
    if !matches!(
        c.status,
        Status::Confirmed | Status::Started | Status::Ended | Status::NoShow
    ) {
        return Err(not_confirmed());
    }
    let note_id = Uuid::now_v7();
    let version_row = Uuid::now_v7();
    let at = (version_row, note_id, 1);
    let sealed = seal(&state.keyring, &mut tx, actor.tenant, at, &content).await?;
    // The definer proves the same again for the proven person.
    let (written, now) = repo::create(&mut tx, note_id, id, version_row, &sealed, now).await?;
    match written {
        Written::Done => {}
        Written::NotConfirmed => return Err(not_confirmed()),
        Written::NotFound | Written::Conflict => return Err(AppError::NotFound),
    }
    tx.commit().await?;
    tracing::info!(note = %note_id, "clinical note written");
    Ok((
        StatusCode::CREATED,
        Json(Note {
            id: note_id,
            consultation_id: id,
            employee_id: c.employee_id,
            version: 1,
            content,
            unreadable: false,
            created_at: now,
            updated_at: now,
        }),
    ))
}

/// `?limit=&cursor=` of the note lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NoteListQuery {
    /// Page size: default 50; a number outside 1–200 counts as the nearest bound.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// `GET /notes?employee_id=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EmployeeNotesQuery {
    /// The employee whose notes (by the caller) to list.
    pub employee_id: Uuid,
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

async fn list_page(
    state: &AppState,
    actor: &Actor,
    consultation: Option<Uuid>,
    employee: Option<UserId>,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> AppResult<Json<NotePage>> {
    let limit = Limit::standard(limit)?;
    let before = decode_cursor::<(OffsetDateTime, Uuid)>(cursor)?;
    let before = before.unwrap_or((time::macros::datetime!(9999-12-31 0:00 UTC), Uuid::max()));
    let mut tx = actor.begin(state).await?;
    if let Some(id) = consultation {
        crate::consultations::repo::one(&mut tx, id)
            .await?
            .filter(|c| c.practitioner_id == actor.user)
            .ok_or(AppError::NotFound)?;
    }
    let rows = repo::page(
        &mut tx,
        actor.user,
        consultation,
        employee,
        before,
        limit.fetch(),
    )
    .await?;
    let (rows, next_cursor) = page(rows, limit, |n| (n.created_at, n.id));
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(to_note(state, &mut tx, actor.tenant, row).await?);
    }
    tx.commit().await?;
    Ok(Json(NotePage { items, next_cursor }))
}

/// The caller's notes on one of their consultations, newest first.
#[utoipa::path(get, path = "/api/v1/consultations/{id}/notes", tag = "notes",
    extensions(("x-authz" = json!({"resource": "clinical_notes", "action": "read"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Consultation id"), NoteListQuery),
    responses(
        (status = 200, body = NotePage),
        (status = 404, description = "Not one of the caller's consultations (as its practitioner) here"),
    ))]
#[tracing::instrument(skip_all, fields(consultation = %id))]
pub async fn list_for_consultation(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
    AppQuery(q): AppQuery<NoteListQuery>,
) -> AppResult<Json<NotePage>> {
    actor.require_company()?;
    list_page(
        &state,
        &actor,
        Some(id),
        None,
        q.limit.as_deref(),
        q.cursor.as_deref(),
    )
    .await
}

/// The caller's notes about one employee, across consultations, newest first (an employee the
/// caller never wrote about: an empty list).
#[utoipa::path(get, path = "/api/v1/notes", tag = "notes",
    extensions(("x-authz" = json!({"resource": "clinical_notes", "action": "read"}))),
    security(("bearer" = [])),
    params(EmployeeNotesQuery),
    responses((status = 200, body = NotePage)))]
#[tracing::instrument(skip_all)]
pub async fn list_for_employee(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(q): AppQuery<EmployeeNotesQuery>,
) -> AppResult<Json<NotePage>> {
    actor.require_company()?;
    list_page(
        &state,
        &actor,
        None,
        Some(UserId::from(q.employee_id)),
        q.limit.as_deref(),
        q.cursor.as_deref(),
    )
    .await
}

/// One of the caller's notes.
#[utoipa::path(get, path = "/api/v1/notes/{id}", tag = "notes",
    extensions(("x-authz" = json!({"resource": "clinical_notes", "action": "read"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Note id")),
    responses(
        (status = 200, body = Note),
        (status = 404, description = "Not one of the caller's notes here"),
        (status = 410, description = "sealed_data_unreadable"),
    ))]
#[tracing::instrument(skip_all, fields(note = %id))]
pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<Note>> {
    actor.require_company()?;
    let mut tx = actor.begin(&state).await?;
    let row = repo::one(&mut tx, id, actor.user)
        .await?
        .ok_or(AppError::NotFound)?;
    let note = to_note(&state, &mut tx, actor.tenant, row).await?;
    tx.commit().await?;
    if note.unreadable {
        return Err(CryptoError::Unreadable.into());
    }
    Ok(Json(note))
}

/// Edit one of the caller's notes: the whole new content, from the version they saw. The
/// previous version is kept.
#[utoipa::path(put, path = "/api/v1/notes/{id}", tag = "notes",
    extensions(("x-authz" = json!({"resource": "clinical_notes", "action": "update"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Note id")),
    request_body = NoteEdit,
    responses(
        (status = 200, body = Note),
        (status = 404, description = "Not one of the caller's notes here"),
        (status = 409, description = "version_conflict: edited since that version"),
        (status = 422, description = "validation_failed"),
    ))]
#[tracing::instrument(skip_all, fields(note = %id))]
pub async fn edit(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<NoteEdit>,
) -> AppResult<Json<Note>> {
    actor.require_company()?;
    let (from, content) = req.parse()?;
    let now = state.clock.now_stored();
    let mut tx = actor.begin(&state).await?;
    let row = repo::one(&mut tx, id, actor.user)
        .await?
        .ok_or(AppError::NotFound)?;
    if row.version != from {
        return Err(version_conflict());
    }
    let next = from.checked_add(1).ok_or_else(version_conflict)?;
    let version_row = Uuid::now_v7();
    let sealed = seal(
        &state.keyring,
        &mut tx,
        actor.tenant,
        (version_row, id, next),
        &content,
    )
    .await?;
    let (written, now) = repo::edit(&mut tx, id, from, version_row, &sealed, now).await?;
    match written {
        Written::Done => {}
        Written::Conflict => return Err(version_conflict()),
        Written::NotFound | Written::NotConfirmed => return Err(AppError::NotFound),
    }
    tx.commit().await?;
    tracing::info!(note = %id, version = next, "clinical note edited");
    Ok(Json(Note {
        id,
        consultation_id: row.consultation_id,
        employee_id: row.employee_id,
        version: next,
        content,
        unreadable: false,
        created_at: row.created_at,
        updated_at: now,
    }))
}

/// Delete one of the caller's notes: it leaves every list at once; its versions are kept for
/// the clinical retention period, then pruned.
#[utoipa::path(delete, path = "/api/v1/notes/{id}", tag = "notes",
    extensions(("x-authz" = json!({"resource": "clinical_notes", "action": "delete"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Note id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "Not one of the caller's notes here"),
    ))]
#[tracing::instrument(skip_all, fields(note = %id))]
pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    actor.require_company()?;
    let now = state.clock.now_stored();
    let mut tx = actor.begin(&state).await?;
    if !repo::delete(&mut tx, id, now).await? {
        return Err(AppError::NotFound);
    }
    tx.commit().await?;
    tracing::info!(note = %id, "clinical note deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The kept versions of one of the caller's notes, newest first.
#[utoipa::path(get, path = "/api/v1/notes/{id}/versions", tag = "notes",
    extensions(("x-authz" = json!({"resource": "clinical_notes", "action": "read"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Note id")),
    responses(
        (status = 200, body = NoteVersions),
        (status = 404, description = "Not one of the caller's notes here"),
    ))]
#[tracing::instrument(skip_all, fields(note = %id))]
pub async fn history(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<NoteVersions>> {
    actor.require_company()?;
    let mut tx = actor.begin(&state).await?;
    let rows = repo::versions(&mut tx, id, actor.user).await?;
    if rows.is_empty() {
        return Err(AppError::NotFound);
    }
    let mut items = Vec::with_capacity(rows.len());
    for v in rows {
        let at = (v.id, id, v.version);
        let content = open(&state.keyring, &mut tx, actor.tenant, at, &v.content).await?;
        items.push(NoteVersion {
            version: v.version,
            unreadable: content.is_none(),
            content: content.unwrap_or_default(),
            created_at: v.created_at,
        });
    }
    tx.commit().await?;
    Ok(Json(NoteVersions { items }))
}
