//! Content SQL: reads under the tables' policies, writes through the `app_private` definers
//! (migration `20261209000200_content.sql`), which take the writer from the session proof.
//!
//! Invariants: every read runs as the request role, so a row the policies hide (another
//! person's draft, another company's news) is simply absent; search parses the text with each
//! row's own language configuration, and ranks with `ts_rank` (title > summary > body).

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{ArticleWrite, Filters, NewsWrite};

/// An article as stored (bodies included).
pub struct ArticleRow {
    pub id: Uuid,
    pub author_id: Uuid,
    pub author_name: String,
    pub title: String,
    pub summary: String,
    pub body_markdown: String,
    pub body_html: String,
    pub tags: Vec<String>,
    pub language: String,
    pub status: String,
    pub published_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i32,
}

/// An article in a list.
pub struct ArticleListRow {
    pub id: Uuid,
    pub author_id: Uuid,
    pub author_name: String,
    pub title: String,
    pub summary: String,
    pub tags: Vec<String>,
    pub language: String,
    pub status: String,
    pub published_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
    pub version: i32,
    pub listed_at: OffsetDateTime,
    pub rank: Option<f32>,
}

/// The article `id`, if the caller may read it.
pub async fn article(conn: &mut PgConnection, id: Uuid) -> Result<Option<ArticleRow>, sqlx::Error> {
    sqlx::query_as!(
        ArticleRow,
        r#"SELECT id, author_id, author_name, title, summary, body_markdown, body_html, tags,
                  language, status, published_at, created_at, updated_at, version
           FROM articles WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Articles in list order (newest first) before `before`. `me` is the caller when the list is
/// their own (drafts included); otherwise only published articles.
pub async fn articles_browse(
    conn: &mut PgConnection,
    me: Option<Uuid>,
    f: &Filters,
    before: (OffsetDateTime, Uuid),
    fetch: i64,
) -> Result<Vec<ArticleListRow>, sqlx::Error> {
    sqlx::query_as!(
        ArticleListRow,
        r#"SELECT id, author_id, author_name, title, summary, tags, language, status, published_at,
                  updated_at, version, listed_at AS "listed_at!", NULL::real AS rank
           FROM articles
           WHERE (($1::uuid IS NULL AND status = 'published') OR author_id = $1)
             AND ($2::uuid IS NULL OR author_id = $2)
             AND ($3::text IS NULL OR language = $3)
             AND ($4::text IS NULL OR tags @> ARRAY[$4::text])
             AND ($5::text IS NULL OR status = $5)
             AND (listed_at, id) < ($6, $7)
           ORDER BY listed_at DESC, id DESC
           LIMIT $8"#,
        me,
        f.author,
        f.language.map(|l| l.as_str()),
        f.tag.as_deref(),
        f.status.map(|s| s.as_str()),
        before.0,
        before.1,
        fetch
    )
    .fetch_all(conn)
    .await
}

/// Articles matching `q`, most relevant first, before `before` (rank, listed_at, id).
pub async fn articles_search(
    conn: &mut PgConnection,
    me: Option<Uuid>,
    f: &Filters,
    q: &str,
    before: (f32, OffsetDateTime, Uuid),
    fetch: i64,
) -> Result<Vec<ArticleListRow>, sqlx::Error> {
    sqlx::query_as!(
        ArticleListRow,
        r#"SELECT id AS "id!", author_id AS "author_id!", author_name AS "author_name!",
                  title AS "title!", summary AS "summary!", tags AS "tags!",
                  language AS "language!", status AS "status!", published_at,
                  updated_at AS "updated_at!", version AS "version!", listed_at AS "listed_at!",
                  rank AS "rank?"
           FROM (
               SELECT id, author_id, author_name, title, summary, tags, language, status,
                      published_at, updated_at, version, listed_at,
                      ts_rank(search, CASE language WHEN 'fr' THEN websearch_to_tsquery('french', $6)
                                                    ELSE websearch_to_tsquery('english', $6) END) AS rank
               FROM articles
               WHERE (($1::uuid IS NULL AND status = 'published') OR author_id = $1)
                 AND ($2::uuid IS NULL OR author_id = $2)
                 AND ($3::text IS NULL OR language = $3)
                 AND ($4::text IS NULL OR tags @> ARRAY[$4::text])
                 AND ($5::text IS NULL OR status = $5)
                 AND ((language = 'fr' AND search @@ websearch_to_tsquery('french', $6))
                      OR (language = 'en' AND search @@ websearch_to_tsquery('english', $6)))
           ) hits
           WHERE (rank, listed_at, id) < ($7::real, $8, $9)
           ORDER BY rank DESC, listed_at DESC, id DESC
           LIMIT $10"#,
        me,
        f.author,
        f.language.map(|l| l.as_str()),
        f.tag.as_deref(),
        f.status.map(|s| s.as_str()),
        q,
        before.0,
        before.1,
        before.2,
        fetch
    )
    .fetch_all(conn)
    .await
}

/// `app_private.article_create`: 'created' or 'forbidden'.
pub async fn article_create(
    conn: &mut PgConnection,
    id: Uuid,
    w: &ArticleWrite,
    now: OffsetDateTime,
) -> Result<String, sqlx::Error> {
    let outcome = sqlx::query_scalar!(
        r#"SELECT app_private.article_create($1, $2, $3, $4, $5, $6, $7, $8, $9) AS "outcome!""#,
        id,
        w.title,
        w.summary,
        w.body.markdown,
        w.body.html,
        &w.tags,
        w.language.map(|l| l.as_str()),
        w.status.as_str(),
        now
    )
    .fetch_one(conn)
    .await?;
    Ok(outcome)
}

/// `app_private.article_update`: the outcome and whether it was published before.
pub async fn article_update(
    conn: &mut PgConnection,
    id: Uuid,
    version: i32,
    w: &ArticleWrite,
    now: OffsetDateTime,
) -> Result<(String, bool), sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", was_published FROM
           app_private.article_update($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"#,
        id,
        version,
        w.title,
        w.summary,
        w.body.markdown,
        w.body.html,
        &w.tags,
        w.language.map(|l| l.as_str()),
        w.status.as_str(),
        now
    )
    .fetch_one(conn)
    .await?;
    Ok((row.outcome, row.was_published.unwrap_or(false)))
}

/// `app_private.article_delete`: the outcome and whether it was published.
pub async fn article_delete(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<(String, bool), sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", was_published FROM app_private.article_delete($1)"#,
        id
    )
    .fetch_one(conn)
    .await?;
    Ok((row.outcome, row.was_published.unwrap_or(false)))
}

/// A news item as stored.
pub struct NewsRow {
    pub id: Uuid,
    pub title: String,
    pub body_markdown: String,
    pub body_html: String,
    pub language: String,
    pub status: String,
    pub pinned: bool,
    pub published_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub version: i32,
    pub listed_at: OffsetDateTime,
    pub rank: Option<f32>,
}

/// The news item `id` of the context company, if the caller may read it.
pub async fn news(conn: &mut PgConnection, id: Uuid) -> Result<Option<NewsRow>, sqlx::Error> {
    sqlx::query_as!(
        NewsRow,
        r#"SELECT id, title, body_markdown, body_html, language, status, pinned, published_at,
                  created_at, updated_at, version, listed_at AS "listed_at!", NULL::real AS rank
           FROM news WHERE tenant_id = app.current_tenant() AND id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// News of the context company, pinned first then newest, before `before`.
pub async fn news_browse(
    conn: &mut PgConnection,
    f: &Filters,
    before: (bool, OffsetDateTime, Uuid),
    fetch: i64,
) -> Result<Vec<NewsRow>, sqlx::Error> {
    sqlx::query_as!(
        NewsRow,
        r#"SELECT id, title, body_markdown, body_html, language, status, pinned, published_at,
                  created_at, updated_at, version, listed_at AS "listed_at!", NULL::real AS rank
           FROM news
           WHERE tenant_id = app.current_tenant()
             AND status = COALESCE($1::text, 'published')
             AND ($2::text IS NULL OR language = $2)
             AND (pinned, listed_at, id) < ($3, $4, $5)
           ORDER BY pinned DESC, listed_at DESC, id DESC
           LIMIT $6"#,
        f.status.map(|s| s.as_str()),
        f.language.map(|l| l.as_str()),
        before.0,
        before.1,
        before.2,
        fetch
    )
    .fetch_all(conn)
    .await
}

/// News of the context company matching `q`, most relevant first.
pub async fn news_search(
    conn: &mut PgConnection,
    f: &Filters,
    q: &str,
    before: (f32, OffsetDateTime, Uuid),
    fetch: i64,
) -> Result<Vec<NewsRow>, sqlx::Error> {
    sqlx::query_as!(
        NewsRow,
        r#"SELECT id AS "id!", title AS "title!", body_markdown AS "body_markdown!",
                  body_html AS "body_html!", language AS "language!", status AS "status!",
                  pinned AS "pinned!", published_at, created_at AS "created_at!",
                  updated_at AS "updated_at!", version AS "version!", listed_at AS "listed_at!",
                  rank AS "rank?"
           FROM (
               SELECT id, title, body_markdown, body_html, language, status, pinned,
                      published_at, created_at, updated_at, version, listed_at,
                      ts_rank(search, CASE language WHEN 'fr' THEN websearch_to_tsquery('french', $3)
                                                    ELSE websearch_to_tsquery('english', $3) END) AS rank
               FROM news
               WHERE tenant_id = app.current_tenant()
                 AND status = COALESCE($1::text, 'published')
                 AND ($2::text IS NULL OR language = $2)
                 AND ((language = 'fr' AND search @@ websearch_to_tsquery('french', $3))
                      OR (language = 'en' AND search @@ websearch_to_tsquery('english', $3)))
           ) hits
           WHERE (rank, listed_at, id) < ($4::real, $5, $6)
           ORDER BY rank DESC, listed_at DESC, id DESC
           LIMIT $7"#,
        f.status.map(|s| s.as_str()),
        f.language.map(|l| l.as_str()),
        q,
        before.0,
        before.1,
        before.2,
        fetch
    )
    .fetch_all(conn)
    .await
}

/// `app_private.news_create`: 'created' or 'forbidden'.
pub async fn news_create(
    conn: &mut PgConnection,
    id: Uuid,
    w: &NewsWrite,
    now: OffsetDateTime,
) -> Result<String, sqlx::Error> {
    let outcome = sqlx::query_scalar!(
        r#"SELECT app_private.news_create($1, $2, $3, $4, $5, $6, $7, $8) AS "outcome!""#,
        id,
        w.title,
        w.body.markdown,
        w.body.html,
        w.language.map(|l| l.as_str()),
        w.status.as_str(),
        w.pinned,
        now
    )
    .fetch_one(conn)
    .await?;
    Ok(outcome)
}

/// `app_private.news_update`: 'updated', 'not_found', 'conflict' or 'forbidden'.
pub async fn news_update(
    conn: &mut PgConnection,
    id: Uuid,
    version: i32,
    w: &NewsWrite,
    now: OffsetDateTime,
) -> Result<String, sqlx::Error> {
    let outcome = sqlx::query_scalar!(
        r#"SELECT app_private.news_update($1, $2, $3, $4, $5, $6, $7, $8, $9) AS "outcome!""#,
        id,
        version,
        w.title,
        w.body.markdown,
        w.body.html,
        w.language.map(|l| l.as_str()),
        w.status.as_str(),
        w.pinned,
        now
    )
    .fetch_one(conn)
    .await?;
    Ok(outcome)
}

/// `app_private.news_delete`: 'deleted', 'not_found' or 'forbidden'.
pub async fn news_delete(conn: &mut PgConnection, id: Uuid) -> Result<String, sqlx::Error> {
    let outcome = sqlx::query_scalar!(r#"SELECT app_private.news_delete($1) AS "outcome!""#, id)
        .fetch_one(conn)
        .await?;
    Ok(outcome)
}
