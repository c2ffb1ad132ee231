//! Practitioners' articles: a platform-wide blog (`/articles`).
//!
//! - `POST /articles`, `GET /articles` (keyset; `q`, `author_id`, `language`, `tag`, `mine`,
//!   `status`), `GET|PUT|DELETE /articles/{id}`.
//! - Publishing is an edit: `status` on `POST`/`PUT` (`draft` → `published` and back), so one
//!   write path carries content and visibility together, with the optimistic `version`.
//!
//! Invariants:
//! - Casbin gives `articles` writes to practitioners; the definers demand the PROVEN
//!   practitioner membership in the request's company and make the proven person the author;
//!   edits and deletes reach the author's own articles only (another's is 404).
//! - A published article is read in every company; a draft only by its author (policy).
//! - Lists carry no bodies; `body_html` is sanitised again on every read.
//! - An article's images follow its visibility in the same transaction: [`images_follow`] is
//!   the one place, called once per write path.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::markdown::sanitize_stored;
use super::model::{
    Article, ArticleCreate, ArticleItem, ArticlePage, ArticleQuery, ArticleUpdate, Author,
    Language, Status,
};
use super::repo::{self, ArticleListRow, ArticleRow};
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::error::{AppError, AppResult};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::pagination::{Limit, decode_cursor, page};

/// Where an article's images stand after a write.
#[derive(Debug, Clone, Copy)]
pub enum Visibility<'a> {
    /// The article is published and shows these files.
    Published(&'a [Uuid]),
    /// The article was published and is not any more (unpublished or deleted).
    Withdrawn,
}

/// THE place where an article's image files follow its visibility, inside the write's
/// transaction (one call per write path: create, update, delete). Published: the files the
/// Markdown shows become readable by every signed-in person of every company — each must be an
/// `article_image` upload of the author's, used by no other article, or the whole write is
/// 422 on `images`; images an edit dropped are withdrawn (`app_private.article_images_publish`,
/// migration 20261209000500). Withdrawn (unpublished or deleted): readable by their owner
/// only. Independently, `GET /files/{id}` serves an article image only while an article of its
/// owner naming it is published.
pub async fn images_follow(
    tx: &mut PgConnection,
    article: Uuid,
    visibility: Visibility<'_>,
) -> AppResult<()> {
    match visibility {
        Visibility::Published(ids) => {
            let files: Vec<crate::files::FileId> =
                ids.iter().copied().map(crate::files::FileId).collect();
            crate::files::publish_article_images(tx, article, &files).await?;
        }
        Visibility::Withdrawn => {
            crate::files::unpublish_article_images(tx, article).await?;
        }
    }
    Ok(())
}

fn language(raw: &str) -> AppResult<Language> {
    Language::parse(raw).ok_or_else(|| AppError::Internal(format!("article language {raw}")))
}

fn status(raw: &str) -> AppResult<Status> {
    Status::parse(raw).ok_or_else(|| AppError::Internal(format!("article status {raw}")))
}

impl TryFrom<ArticleRow> for Article {
    type Error = AppError;
    fn try_from(r: ArticleRow) -> AppResult<Self> {
        Ok(Self {
            id: r.id,
            author: Author {
                id: r.author_id,
                display_name: r.author_name,
            },
            title: r.title,
            summary: r.summary,
            body_html: sanitize_stored(&r.body_html),
            body_markdown: r.body_markdown,
            tags: r.tags,
            language: language(&r.language)?,
            status: status(&r.status)?,
            published_at: r.published_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            version: r.version,
        })
    }
}

impl TryFrom<ArticleListRow> for ArticleItem {
    type Error = AppError;
    fn try_from(r: ArticleListRow) -> AppResult<Self> {
        Ok(Self {
            id: r.id,
            author: Author {
                id: r.author_id,
                display_name: r.author_name,
            },
            title: r.title,
            summary: r.summary,
            tags: r.tags,
            language: language(&r.language)?,
            status: status(&r.status)?,
            published_at: r.published_at,
            updated_at: r.updated_at,
            version: r.version,
            rank: r.rank,
        })
    }
}

fn forbidden() -> AppError {
    AppError::forbidden_because(
        "practitioner_required",
        "Articles are written by practitioners serving this company.",
    )
}

fn version_conflict() -> AppError {
    AppError::Conflict {
        code: "version_conflict",
        detail: "The article was edited since this version; reload it and edit the current one."
            .into(),
    }
}

async fn read_back(tx: &mut PgConnection, id: Uuid) -> AppResult<Article> {
    repo::article(tx, id)
        .await?
        .ok_or(AppError::NotFound)?
        .try_into()
}

/// Write an article (a draft unless `status` is `published`).
#[utoipa::path(post, path = "/api/v1/articles", tag = "content",
    extensions(("x-authz" = json!({"resource": "articles", "action": "create"}))),
    security(("bearer" = [])),
    request_body = ArticleCreate,
    responses(
        (status = 201, body = Article),
        (status = 403, description = "practitioner_required"),
        (status = 422, description = "validation_failed"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    AppJson(req): AppJson<ArticleCreate>,
) -> AppResult<(StatusCode, Json<Article>)> {
    actor.require_company()?;
    let w = req.parse()?;
    let id = Uuid::now_v7();
    let mut tx = actor.begin(&state).await?;
    match repo::article_create(&mut tx, id, &w, state.clock.now_stored())
        .await?
        .as_str()
    {
        "created" => {}
        _ => return Err(forbidden()),
    }
    if w.status == Status::Published {
        images_follow(&mut tx, id, Visibility::Published(&w.body.file_ids)).await?;
    }
    let article = read_back(&mut tx, id).await?;
    tx.commit().await?;
    tracing::info!(article = %id, "article written");
    Ok((StatusCode::CREATED, Json(article)))
}

/// Published articles (or the caller's own with `mine=true`), newest first; with `q`, by
/// relevance.
#[utoipa::path(get, path = "/api/v1/articles", tag = "content",
    extensions(("x-authz" = json!({"resource": "articles", "action": "read"}))),
    security(("bearer" = [])),
    params(ArticleQuery),
    responses(
        (status = 200, body = ArticlePage),
        (status = 400, description = "invalid_cursor"),
        (status = 422, description = "validation_failed: a filter is malformed"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(query): AppQuery<ArticleQuery>,
) -> AppResult<Json<ArticlePage>> {
    actor.require_company()?;
    let limit = Limit::standard(query.limit.as_deref())?;
    let f = query.filters()?;
    let me = f.mine.then(|| actor.user.as_uuid());
    let mut tx = actor.begin(&state).await?;
    let (rows, next_cursor) = match &f.q {
        Some(q) => {
            let before = decode_cursor::<(f32, OffsetDateTime, Uuid)>(query.cursor.as_deref())?
                .unwrap_or((f32::MAX, far_future(), Uuid::max()));
            let rows = repo::articles_search(&mut tx, me, &f, q, before, limit.fetch()).await?;
            page(rows, limit, |r| (r.rank.unwrap_or(0.0), r.listed_at, r.id))
        }
        None => {
            let before = decode_cursor::<(OffsetDateTime, Uuid)>(query.cursor.as_deref())?
                .unwrap_or((far_future(), Uuid::max()));
            let rows = repo::articles_browse(&mut tx, me, &f, before, limit.fetch()).await?;
            page(rows, limit, |r| (r.listed_at, r.id))
        }
    };
    tx.commit().await?;
    let items = rows
        .into_iter()
        .map(ArticleItem::try_from)
        .collect::<AppResult<Vec<_>>>()?;
    Ok(Json(ArticlePage { items, next_cursor }))
}

/// The first key of a list read newest first.
pub fn far_future() -> OffsetDateTime {
    time::macros::datetime!(9999-12-31 0:00 UTC)
}

/// One article: published, or a draft of the caller's own.
#[utoipa::path(get, path = "/api/v1/articles/{id}", tag = "content",
    extensions(("x-authz" = json!({"resource": "articles", "action": "read"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Article id")),
    responses(
        (status = 200, body = Article),
        (status = 404, description = "No such article, or a draft of someone else's"),
    ))]
#[tracing::instrument(skip_all, fields(article = %id))]
pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<Article>> {
    actor.require_company()?;
    let mut tx = actor.begin(&state).await?;
    let article = read_back(&mut tx, id).await?;
    tx.commit().await?;
    Ok(Json(article))
}

/// Replace one of the caller's articles (its status included: publish or unpublish).
#[utoipa::path(put, path = "/api/v1/articles/{id}", tag = "content",
    extensions(("x-authz" = json!({"resource": "articles", "action": "update"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Article id")),
    request_body = ArticleUpdate,
    responses(
        (status = 200, body = Article),
        (status = 403, description = "practitioner_required"),
        (status = 404, description = "Not one of the caller's articles"),
        (status = 409, description = "version_conflict: edited since that version"),
        (status = 422, description = "validation_failed"),
    ))]
#[tracing::instrument(skip_all, fields(article = %id))]
pub async fn replace(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<ArticleUpdate>,
) -> AppResult<Json<Article>> {
    actor.require_company()?;
    let (w, version) = req.parse()?;
    let mut tx = actor.begin(&state).await?;
    let (outcome, was_published) =
        repo::article_update(&mut tx, id, version, &w, state.clock.now_stored()).await?;
    match outcome.as_str() {
        "updated" => {}
        "not_found" => return Err(AppError::NotFound),
        "conflict" => return Err(version_conflict()),
        _ => return Err(forbidden()),
    }
    match w.status {
        Status::Published => {
            images_follow(&mut tx, id, Visibility::Published(&w.body.file_ids)).await?;
        }
        Status::Draft if was_published => {
            images_follow(&mut tx, id, Visibility::Withdrawn).await?;
        }
        Status::Draft => {}
    }
    let article = read_back(&mut tx, id).await?;
    tx.commit().await?;
    tracing::info!(article = %id, "article replaced");
    Ok(Json(article))
}

/// Delete one of the caller's articles.
#[utoipa::path(delete, path = "/api/v1/articles/{id}", tag = "content",
    extensions(("x-authz" = json!({"resource": "articles", "action": "delete"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Article id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "practitioner_required"),
        (status = 404, description = "Not one of the caller's articles"),
    ))]
#[tracing::instrument(skip_all, fields(article = %id))]
pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<StatusCode> {
    actor.require_company()?;
    let mut tx = actor.begin(&state).await?;
    let (outcome, was_published) = repo::article_delete(&mut tx, id).await?;
    match outcome.as_str() {
        "deleted" => {}
        "not_found" => return Err(AppError::NotFound),
        _ => return Err(forbidden()),
    }
    if was_published {
        images_follow(&mut tx, id, Visibility::Withdrawn).await?;
    }
    tx.commit().await?;
    tracing::info!(article = %id, "article deleted");
    Ok(StatusCode::NO_CONTENT)
}
