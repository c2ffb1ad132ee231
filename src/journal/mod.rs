//! The private journal (issue 12, item 2): what an employee writes for themself.
//!
//! - `GET|POST /journal` (keyset, newest first; filters `from`, `to`, `mood`, `tag`);
//! - `GET|PUT|DELETE /journal/{id}`.
//!
//! Invariants:
//! - Only the owner reaches an entry: Casbin gives `journal` to employees only, and the table
//!   policy (migration `20261208000001_records.sql`) shows a row only to its owner, proven by
//!   the session guard. Another person's entry — a colleague's, their practitioner's view, HR's,
//!   an admin's — is 404; nobody else has a policy on the table.
//! - Text, mood and tags are one JSON document sealed with the OWNER's subject key, AAD
//!   `v1|tenant|journal_entries|content|{entry id}`: the owner's erasure crypto-shreds the
//!   journal, and nothing of it is in the clear — mood and tags included (health data).
//! - Hence no server-side search over the text, and filters on mood and tag are applied after
//!   opening, on the owner's own entries only (dates are filtered in SQL): one request opens
//!   at most [`SCAN_CAP`] entries, so a filtered page may be short and still carry a
//!   `next_cursor` — a client keeps following it until it is absent.
//! - An entry that cannot be opened is listed as `unreadable`; alone it is 410.
//! - Never logged: any content; logs carry entry ids only.

pub mod model;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sqlx::PgConnection;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use self::model::{Entry, EntryContent, EntryPage, EntryQuery, EntryRequest};
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::crypto::keyring::{Aad, CryptoError, KeyScope, Keyring};
use crate::db::{TenantId, UserId};
use crate::error::{AppError, AppResult};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::pagination::{Limit, decode_cursor, encode_cursor};

const TABLE: &str = "journal_entries";
const COLUMN: &str = "content";
/// Rows read per round when filtering on content.
const BATCH: i64 = 100;
/// Most entries one request opens when filtering on content.
pub const SCAN_CAP: usize = 1_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, replace, delete))
}

fn aad(tenant: TenantId, id: Uuid) -> Aad<'static> {
    Aad {
        tenant,
        table: TABLE,
        column: COLUMN,
        row_id: id,
    }
}

async fn seal(
    keyring: &Keyring,
    conn: &mut PgConnection,
    actor: &Actor,
    id: Uuid,
    content: &EntryContent,
) -> Result<Vec<u8>, AppError> {
    let json = zeroize::Zeroizing::new(
        serde_json::to_vec(content).map_err(|e| AppError::Internal(format!("entry json: {e}")))?,
    );
    Ok(keyring
        .seal(
            conn,
            actor.tenant,
            KeyScope::Subject(actor.user),
            &aad(actor.tenant, id),
            &json,
        )
        .await?)
}

async fn open(
    keyring: &Keyring,
    conn: &mut PgConnection,
    actor: &Actor,
    id: Uuid,
    blob: &[u8],
) -> Result<Option<EntryContent>, AppError> {
    match keyring
        .open(
            conn,
            actor.tenant,
            KeyScope::Subject(actor.user),
            &aad(actor.tenant, id),
            blob,
        )
        .await
    {
        Ok(plain) => Ok(serde_json::from_slice(&plain).ok()),
        Err(CryptoError::Unreadable | CryptoError::Destroyed) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

struct Row {
    id: Uuid,
    content: Vec<u8>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

async fn rows_before(
    conn: &mut PgConnection,
    owner: UserId,
    before: (OffsetDateTime, Uuid),
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
    fetch: i64,
) -> Result<Vec<Row>, sqlx::Error> {
    sqlx::query_as!(
        Row,
        r#"SELECT id, content, created_at, updated_at FROM journal_entries
           WHERE tenant_id = app.current_tenant() AND owner_id = $1
             AND (created_at, id) < ($2, $3)
             AND ($4::timestamptz IS NULL OR created_at >= $4)
             AND ($5::timestamptz IS NULL OR created_at < $5)
           ORDER BY created_at DESC, id DESC
           LIMIT $6"#,
        owner.as_uuid(),
        before.0,
        before.1,
        from,
        to,
        fetch
    )
    .fetch_all(conn)
    .await
}

/// Write a journal entry.
#[utoipa::path(post, path = "/api/v1/journal", tag = "journal",
    extensions(("x-authz" = json!({"resource": "journal", "action": "create"}))),
    security(("bearer" = [])),
    request_body = EntryRequest,
    responses(
        (status = 201, body = Entry),
        (status = 410, description = "key_destroyed: the caller's data here was erased"),
        (status = 422, description = "validation_failed"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    AppJson(req): AppJson<EntryRequest>,
) -> AppResult<(StatusCode, Json<Entry>)> {
    actor.require_company()?;
    let content = req.parse()?;
    let now = state.clock.now_stored();
    let id = Uuid::now_v7();
    let mut tx = actor.begin(&state).await?;
    let sealed = seal(&state.keyring, &mut tx, &actor, id, &content).await?;
    // The definer writes it as the proven person's own.
    let now = sqlx::query_scalar!(
        r#"SELECT app_private.journal_create($1, $2, $3) AS "at""#,
        id,
        sealed,
        now
    )
    .fetch_one(&mut *tx)
    .await?
    .ok_or(AppError::Unauthorized("unauthorized"))?;
    tx.commit().await?;
    tracing::info!(entry = %id, "journal entry written");
    Ok((
        StatusCode::CREATED,
        Json(Entry::new(id, Some(content), now, now)),
    ))
}

/// The caller's journal, newest first.
#[utoipa::path(get, path = "/api/v1/journal", tag = "journal",
    extensions(("x-authz" = json!({"resource": "journal", "action": "read"}))),
    security(("bearer" = [])),
    params(EntryQuery),
    responses(
        (status = 200, body = EntryPage),
        (status = 422, description = "validation_failed: a filter is malformed"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(q): AppQuery<EntryQuery>,
) -> AppResult<Json<EntryPage>> {
    actor.require_company()?;
    let limit = Limit::standard(q.limit.as_deref())?;
    let filters = q.filters()?;
    let mut before = decode_cursor::<(OffsetDateTime, Uuid)>(q.cursor.as_deref())?
        .unwrap_or((time::macros::datetime!(9999-12-31 0:00 UTC), Uuid::max()));
    let want = usize::try_from(limit.get()).unwrap_or(1);
    let fetch = if filters.on_content() {
        BATCH
    } else {
        limit.fetch()
    };
    let mut tx = actor.begin(&state).await?;
    let mut items: Vec<Entry> = Vec::new();
    let mut scanned = 0usize;
    let mut next_cursor = None;
    'scan: loop {
        let rows =
            rows_before(&mut tx, actor.user, before, filters.from, filters.to, fetch).await?;
        let exhausted = i64::try_from(rows.len()).unwrap_or(i64::MAX) < fetch;
        for row in rows {
            if items.len() == want {
                // A further matching row may exist: continue after the last one returned.
                next_cursor = items.last().map(|e| encode_cursor(&(e.created_at, e.id)));
                break 'scan;
            }
            scanned += 1;
            before = (row.created_at, row.id);
            let content = open(&state.keyring, &mut tx, &actor, row.id, &row.content).await?;
            let keep = match &content {
                Some(c) => filters.keeps(c),
                // Unreadable entries show only in unfiltered lists.
                None => !filters.on_content(),
            };
            if keep {
                items.push(Entry::new(row.id, content, row.created_at, row.updated_at));
            }
            if scanned >= SCAN_CAP && filters.on_content() {
                next_cursor = Some(encode_cursor(&before));
                break 'scan;
            }
        }
        if exhausted {
            break;
        }
        if !filters.on_content() && items.len() == want {
            // Unfiltered: the fetch asked for one more row, which exists (not exhausted).
            next_cursor = items.last().map(|e| encode_cursor(&(e.created_at, e.id)));
            break;
        }
    }
    tx.commit().await?;
    Ok(Json(EntryPage { items, next_cursor }))
}

async fn owned(
    conn: &mut PgConnection,
    owner: UserId,
    id: Uuid,
) -> Result<Option<Row>, sqlx::Error> {
    sqlx::query_as!(
        Row,
        r#"SELECT id, content, created_at, updated_at FROM journal_entries
           WHERE tenant_id = app.current_tenant() AND owner_id = $1 AND id = $2"#,
        owner.as_uuid(),
        id
    )
    .fetch_optional(conn)
    .await
}

/// One of the caller's entries.
#[utoipa::path(get, path = "/api/v1/journal/{id}", tag = "journal",
    extensions(("x-authz" = json!({"resource": "journal", "action": "read"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Entry id")),
    responses(
        (status = 200, body = Entry),
        (status = 404, description = "Not one of the caller's entries here"),
        (status = 410, description = "sealed_data_unreadable"),
    ))]
#[tracing::instrument(skip_all, fields(entry = %id))]
pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<Entry>> {
    actor.require_company()?;
    let mut tx = actor.begin(&state).await?;
    let row = owned(&mut tx, actor.user, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let content = open(&state.keyring, &mut tx, &actor, row.id, &row.content)
        .await?
        .ok_or(CryptoError::Unreadable)?;
    tx.commit().await?;
    Ok(Json(Entry::new(
        row.id,
        Some(content),
        row.created_at,
        row.updated_at,
    )))
}

/// Replace one of the caller's entries (text, mood and tags together).
#[utoipa::path(put, path = "/api/v1/journal/{id}", tag = "journal",
    extensions(("x-authz" = json!({"resource": "journal", "action": "update"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Entry id")),
    request_body = EntryRequest,
    responses(
        (status = 200, body = Entry),
        (status = 404, description = "Not one of the caller's entries here"),
        (status = 422, description = "validation_failed"),
    ))]
#[tracing::instrument(skip_all, fields(entry = %id))]
pub async fn replace(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<EntryRequest>,
) -> AppResult<Json<Entry>> {
    actor.require_company()?;
    let content = req.parse()?;
    let now = state.clock.now_stored();
    let mut tx = actor.begin(&state).await?;
    let row = owned(&mut tx, actor.user, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let sealed = seal(&state.keyring, &mut tx, &actor, id, &content).await?;
    let updated_at = now.max(row.created_at);
    sqlx::query!(
        r#"UPDATE journal_entries SET content = $3, updated_at = $4
           WHERE tenant_id = app.current_tenant() AND owner_id = $1 AND id = $2"#,
        actor.user.as_uuid(),
        id,
        sealed,
        updated_at
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(entry = %id, "journal entry replaced");
    Ok(Json(Entry::new(
        id,
        Some(content),
        row.created_at,
        updated_at,
    )))
}

/// Delete one of the caller's entries (for good).
#[utoipa::path(delete, path = "/api/v1/journal/{id}", tag = "journal",
    extensions(("x-authz" = json!({"resource": "journal", "action": "delete"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Entry id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "Not one of the caller's entries here"),
    ))]
#[tracing::instrument(skip_all, fields(entry = %id))]
pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    actor.require_company()?;
    let mut tx = actor.begin(&state).await?;
    let done = sqlx::query!(
        r#"DELETE FROM journal_entries
           WHERE tenant_id = app.current_tenant() AND owner_id = $1 AND id = $2"#,
        actor.user.as_uuid(),
        id
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::NotFound);
    }
    tx.commit().await?;
    tracing::info!(entry = %id, "journal entry deleted");
    Ok(StatusCode::NO_CONTENT)
}
