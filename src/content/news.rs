//! Company news (`/news`): written by the company's HR (tenant admins inherit it), read by
//! every member of that company.
//!
//! - `POST /news`, `GET /news` (keyset: pinned first, then newest; `q` by relevance;
//!   `language`, `status`), `GET|PUT|DELETE /news/{id}`.
//!
//! Invariants:
//! - Tenant-scoped: the table's policy shows the context company's rows only; another
//!   company's id is 404 by every route, in lists and in search.
//! - Drafts are seen by the company's PROVEN HR and tenant admins only (policy); writes go
//!   through definers demanding that proven role, never `app.roles`.
//! - `body_html` is sanitised at write time and again on every read.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use time::OffsetDateTime;
use uuid::Uuid;

use super::articles::far_future;
use super::markdown::sanitize_stored;
use super::model::{Language, News, NewsCreate, NewsPage, NewsQuery, NewsUpdate, Status};
use super::repo::{self, NewsRow};
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::error::{AppError, AppResult};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::pagination::{Limit, decode_cursor, page};

/// Default page of news.
const DEFAULT_LIMIT: i64 = 20;
/// Largest page of news (bodies included).
const MAX_LIMIT: i64 = 100;

impl TryFrom<NewsRow> for News {
    type Error = AppError;
    fn try_from(r: NewsRow) -> AppResult<Self> {
        Ok(Self {
            id: r.id,
            title: r.title,
            body_html: sanitize_stored(&r.body_html),
            body_markdown: r.body_markdown,
            language: Language::parse(&r.language)
                .ok_or_else(|| AppError::Internal(format!("news language {}", r.language)))?,
            status: Status::parse(&r.status)
                .ok_or_else(|| AppError::Internal(format!("news status {}", r.status)))?,
            pinned: r.pinned,
            published_at: r.published_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
            rank: r.rank,
        })
    }
}

fn forbidden() -> AppError {
    AppError::forbidden_because(
        "hr_required",
        "Company news is written by the company's HR.",
    )
}

fn version_conflict() -> AppError {
    AppError::Conflict {
        code: "version_conflict",
        detail: "The news was edited since this version; reload it and edit the current one."
            .into(),
    }
}

async fn read_back(tx: &mut sqlx::PgConnection, id: Uuid) -> AppResult<News> {
    repo::news(tx, id)
        .await?
        .ok_or(AppError::NotFound)?
        .try_into()
}

/// Write company news (a draft unless `status` is `published`).
#[utoipa::path(post, path = "/api/v1/news", tag = "content",
    extensions(("x-authz" = json!({"resource": "news", "action": "create"}))),
    security(("bearer" = [])),
    request_body = NewsCreate,
    responses(
        (status = 201, body = News),
        (status = 403, description = "hr_required"),
        (status = 422, description = "validation_failed"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    AppJson(req): AppJson<NewsCreate>,
) -> AppResult<(StatusCode, Json<News>)> {
    actor.require_company()?;
    let w = req.parse()?;
    let id = Uuid::now_v7();
    let mut tx = actor.begin(&state).await?;
    if repo::news_create(&mut tx, id, &w, state.clock.now_stored()).await? != "created" {
        return Err(forbidden());
    }
    let news = read_back(&mut tx, id).await?;
    tx.commit().await?;
    tracing::info!(news = %id, "news written");
    Ok((StatusCode::CREATED, Json(news)))
}

/// The company's news: pinned first, then newest; with `q`, by relevance.
#[utoipa::path(get, path = "/api/v1/news", tag = "content",
    extensions(("x-authz" = json!({"resource": "news", "action": "read"}))),
    security(("bearer" = [])),
    params(NewsQuery),
    responses(
        (status = 200, body = NewsPage),
        (status = 400, description = "invalid_cursor"),
        (status = 422, description = "validation_failed: a filter is malformed"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(query): AppQuery<NewsQuery>,
) -> AppResult<Json<NewsPage>> {
    actor.require_company()?;
    let limit = Limit::parse(query.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
    let f = query.filters()?;
    let mut tx = actor.begin(&state).await?;
    let (rows, next_cursor) = match &f.q {
        Some(q) => {
            let before = decode_cursor::<(f32, OffsetDateTime, Uuid)>(query.cursor.as_deref())?
                .unwrap_or((f32::MAX, far_future(), Uuid::max()));
            let rows = repo::news_search(&mut tx, &f, q, before, limit.fetch()).await?;
            page(rows, limit, |r| (r.rank.unwrap_or(0.0), r.listed_at, r.id))
        }
        None => {
            let before = decode_cursor::<(bool, OffsetDateTime, Uuid)>(query.cursor.as_deref())?
                .unwrap_or((true, far_future(), Uuid::max()));
            let rows = repo::news_browse(&mut tx, &f, before, limit.fetch()).await?;
            page(rows, limit, |r| (r.pinned, r.listed_at, r.id))
        }
    };
    tx.commit().await?;
    let items = rows
        .into_iter()
        .map(News::try_from)
        .collect::<AppResult<Vec<_>>>()?;
    Ok(Json(NewsPage { items, next_cursor }))
}

/// One news item of the company.
#[utoipa::path(get, path = "/api/v1/news/{id}", tag = "content",
    extensions(("x-authz" = json!({"resource": "news", "action": "read"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "News id")),
    responses(
        (status = 200, body = News),
        (status = 404, description = "No such news in this company (or a draft, for non-HR)"),
    ))]
#[tracing::instrument(skip_all, fields(news = %id))]
pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<News>> {
    actor.require_company()?;
    let mut tx = actor.begin(&state).await?;
    let news = read_back(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(news))
}

/// Replace company news (its status included: publish or unpublish).
#[utoipa::path(put, path = "/api/v1/news/{id}", tag = "content",
    extensions(("x-authz" = json!({"resource": "news", "action": "update"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "News id")),
    request_body = NewsUpdate,
    responses(
        (status = 200, body = News),
        (status = 403, description = "hr_required"),
        (status = 404, description = "No such news in this company"),
        (status = 409, description = "version_conflict: edited since that version"),
        (status = 422, description = "validation_failed"),
    ))]
#[tracing::instrument(skip_all, fields(news = %id))]
pub async fn replace(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<NewsUpdate>,
) -> AppResult<Json<News>> {
    actor.require_company()?;
    let (w, version) = req.parse()?;
    let mut tx = actor.begin(&state).await?;
    match repo::news_update(&mut tx, id, version, &w, state.clock.now_stored())
        .await?
        .as_str()
    {
        "updated" => {}
        "not_found" => return Err(AppError::NotFound),
        "conflict" => return Err(version_conflict()),
        _ => return Err(forbidden()),
    }
    let news = read_back(&mut tx, id).await?;
    tx.commit().await?;
    tracing::info!(news = %id, "news replaced");
    Ok(Json(news))
}

/// Delete company news.
#[utoipa::path(delete, path = "/api/v1/news/{id}", tag = "content",
    extensions(("x-authz" = json!({"resource": "news", "action": "delete"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "News id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "hr_required"),
        (status = 404, description = "No such news in this company"),
    ))]
#[tracing::instrument(skip_all, fields(news = %id))]
pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    actor.require_company()?;
    let mut tx = actor.begin(&state).await?;
    match repo::news_delete(&mut tx, id).await?.as_str() {
        "deleted" => {}
        "not_found" => return Err(AppError::NotFound),
        _ => return Err(forbidden()),
    }
    tx.commit().await?;
    tracing::info!(news = %id, "news deleted");
    Ok(StatusCode::NO_CONTENT)
}
