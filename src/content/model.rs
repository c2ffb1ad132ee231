//! Content types: what authors send (validated once in `parse()`, Markdown rendered there),
//! what readers get back, and the lists' filters.
//!
//! Invariants: a parsed write carries sanitised HTML rendered from its own Markdown, the file
//! ids its images reference, trimmed text within the column limits, and normalised tags.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::markdown;
use crate::error::{AppError, FieldError};

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest article summary, in characters.
pub const MAX_SUMMARY_CHARS: usize = 500;
/// Longest article body (Markdown), in characters.
pub const MAX_ARTICLE_BODY_CHARS: usize = 100_000;
/// Longest news body (Markdown), in characters.
pub const MAX_NEWS_BODY_CHARS: usize = 20_000;
/// Most tags on an article.
pub const MAX_TAGS: usize = 10;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 40;
/// Longest search text, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// The language of an item: it picks the full-text configuration (stemming, stop words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = ContentLanguage)]
pub enum Language {
    En,
    Fr,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Fr => "fr",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "en" => Some(Self::En),
            "fr" => Some(Self::Fr),
            _ => None,
        }
    }
}

/// Draft (its writers only) or published (every reader).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
// Named apart from the consultations' `Status` in the OpenAPI document (one namespace there).
#[schema(as = ContentStatus)]
pub enum Status {
    Draft,
    Published,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Published => "published",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(Self::Draft),
            "published" => Some(Self::Published),
            _ => None,
        }
    }
}

fn field(errors: &mut Vec<FieldError>, name: &str, reason: impl Into<String>) {
    errors.push(FieldError {
        field: name.into(),
        reason: reason.into(),
    });
}

fn text(errors: &mut Vec<FieldError>, name: &str, raw: &str, min: usize, max: usize) -> String {
    let t = raw.trim().to_owned();
    let n = t.chars().count();
    if n < min || n > max {
        field(errors, name, format!("must be {min}–{max} characters"));
    }
    if t.contains('\0') {
        field(errors, name, "must not contain NUL characters");
    }
    t
}

/// A tag as stored and compared: trimmed, lower case, inner white space as `-`.
pub fn normalise_tag(raw: &str) -> Option<String> {
    let t = raw
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("-")
        .to_lowercase();
    let ok = !t.is_empty()
        && t.chars().count() <= MAX_TAG_CHARS
        && t.chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_');
    ok.then_some(t)
}

/// A validated, rendered body.
#[derive(Debug, Clone)]
pub struct Body {
    pub markdown: String,
    pub html: String,
    /// Same-origin file ids shown as images (see [`markdown::referenced_file_ids`]).
    pub file_ids: Vec<Uuid>,
}

fn body(errors: &mut Vec<FieldError>, raw: &str, max: usize) -> Body {
    let markdown = text(errors, "body_markdown", raw, 1, max);
    let html = markdown::render(&markdown);
    let file_ids = markdown::referenced_file_ids(&markdown);
    Body {
        markdown,
        html,
        file_ids,
    }
}

fn language(errors: &mut Vec<FieldError>, raw: Option<&str>) -> Option<Language> {
    let raw = raw?;
    let l = Language::parse(raw);
    if l.is_none() {
        field(errors, "language", "must be en or fr");
    }
    l
}

fn status(errors: &mut Vec<FieldError>, raw: Option<&str>) -> Status {
    match raw {
        None => Status::Draft,
        Some(s) => Status::parse(s).unwrap_or_else(|| {
            field(errors, "status", "must be draft or published");
            Status::Draft
        }),
    }
}

fn version(errors: &mut Vec<FieldError>, raw: i64) -> i32 {
    i32::try_from(raw)
        .ok()
        .filter(|v| *v >= 1)
        .unwrap_or_else(|| {
            field(
                errors,
                "version",
                "must be the version you read (1 or more)",
            );
            0
        })
}

fn done<T>(errors: Vec<FieldError>, ok: T) -> Result<T, AppError> {
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(AppError::Validation(errors))
    }
}

/// `POST /articles`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArticleCreate {
    /// 1–200 characters.
    pub title: String,
    /// Up to 500 characters (shown in lists).
    #[serde(default)]
    pub summary: String,
    /// Markdown, 1–100,000 characters. Raw HTML shows as text; images only from
    /// `/api/v1/files/{id}`.
    pub body_markdown: String,
    /// Up to 10 tags (1–40 letters, digits, `-`, `_`; spaces become `-`; lower case).
    #[serde(default)]
    pub tags: Vec<String>,
    /// `en` or `fr`; default: the author's account language.
    #[serde(default)]
    pub language: Option<String>,
    /// `draft` (default) or `published`.
    #[serde(default)]
    pub status: Option<String>,
}

/// `PUT /articles/{id}`: the whole article, from the version the author read. Setting
/// `status` publishes or unpublishes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArticleUpdate {
    pub title: String,
    #[serde(default)]
    pub summary: String,
    pub body_markdown: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// `en` or `fr`; absent keeps the current language.
    #[serde(default)]
    pub language: Option<String>,
    /// `draft` (default) or `published`.
    #[serde(default)]
    pub status: Option<String>,
    /// The version read (409 `version_conflict` when the article changed since).
    pub version: i64,
}

/// A validated article write.
#[derive(Debug, Clone)]
pub struct ArticleWrite {
    pub title: String,
    pub summary: String,
    pub body: Body,
    pub tags: Vec<String>,
    pub language: Option<Language>,
    pub status: Status,
}

fn article_write(
    errors: &mut Vec<FieldError>,
    title: &str,
    summary: &str,
    body_md: &str,
    tags: &[String],
    lang: Option<&str>,
    st: Option<&str>,
) -> ArticleWrite {
    let title = text(errors, "title", title, 1, MAX_TITLE_CHARS);
    let summary = text(errors, "summary", summary, 0, MAX_SUMMARY_CHARS);
    let body = body(errors, body_md, MAX_ARTICLE_BODY_CHARS);
    if tags.len() > MAX_TAGS {
        field(errors, "tags", format!("at most {MAX_TAGS} tags"));
    }
    let mut normal: Vec<String> = Vec::new();
    for (i, raw) in tags.iter().enumerate() {
        match normalise_tag(raw) {
            Some(t) if !normal.contains(&t) => normal.push(t),
            Some(_) => {}
            None => field(
                errors,
                &format!("tags[{i}]"),
                format!("1–{MAX_TAG_CHARS} letters, digits, '-' or '_'"),
            ),
        }
    }
    ArticleWrite {
        title,
        summary,
        body,
        tags: normal,
        language: language(errors, lang),
        status: status(errors, st),
    }
}

impl ArticleCreate {
    pub fn parse(self) -> Result<ArticleWrite, AppError> {
        let mut errors = Vec::new();
        let w = article_write(
            &mut errors,
            &self.title,
            &self.summary,
            &self.body_markdown,
            &self.tags,
            self.language.as_deref(),
            self.status.as_deref(),
        );
        done(errors, w)
    }
}

impl ArticleUpdate {
    pub fn parse(self) -> Result<(ArticleWrite, i32), AppError> {
        let mut errors = Vec::new();
        let w = article_write(
            &mut errors,
            &self.title,
            &self.summary,
            &self.body_markdown,
            &self.tags,
            self.language.as_deref(),
            self.status.as_deref(),
        );
        let v = version(&mut errors, self.version);
        done(errors, (w, v))
    }
}

/// An article's author: a practitioner (never an employee).
#[derive(Debug, Serialize, ToSchema)]
pub struct Author {
    /// The practitioner's id (`GET /practitioners/{id}` where they serve the company).
    pub id: Uuid,
    pub display_name: String,
}

/// An article as a reader gets it (`GET /articles/{id}`, and the answer to every write).
#[derive(Debug, Serialize, ToSchema)]
pub struct Article {
    pub id: Uuid,
    pub author: Author,
    pub title: String,
    pub summary: String,
    pub body_markdown: String,
    /// Sanitised HTML rendered from `body_markdown`.
    pub body_html: String,
    pub tags: Vec<String>,
    pub language: Language,
    pub status: Status,
    #[serde(with = "time::serde::rfc3339::option")]
    pub published_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Send it back with an edit.
    pub version: i32,
}

/// An article in a list (no body: open it for that).
#[derive(Debug, Serialize, ToSchema)]
pub struct ArticleItem {
    pub id: Uuid,
    pub author: Author,
    pub title: String,
    pub summary: String,
    pub tags: Vec<String>,
    pub language: Language,
    pub status: Status,
    #[serde(with = "time::serde::rfc3339::option")]
    pub published_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i32,
    /// Relevance when searching (`q`), higher first; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<f32>,
}

/// A page of articles.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArticlePage {
    pub items: Vec<ArticleItem>,
    /// Absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /articles` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ArticleQuery {
    /// Page size: default 50; a number outside 1–200 counts as the nearest bound.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
    /// Full-text search (web-search syntax: words, "phrases", -exclusions), each article in
    /// its own language; results by relevance.
    pub q: Option<String>,
    /// Only this practitioner's articles.
    #[param(value_type = Option<Uuid>)]
    pub author_id: Option<String>,
    /// `en` or `fr`.
    pub language: Option<String>,
    /// Only articles carrying this tag.
    pub tag: Option<String>,
    /// `true`: the caller's own articles, drafts included (otherwise published only).
    #[param(value_type = Option<bool>)]
    pub mine: Option<String>,
    /// With `mine=true`: `draft` or `published`.
    pub status: Option<String>,
}

/// Validated list filters, shared by articles and news.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub q: Option<String>,
    pub author: Option<Uuid>,
    pub language: Option<Language>,
    pub tag: Option<String>,
    pub mine: bool,
    pub status: Option<Status>,
}

fn query_text(errors: &mut Vec<FieldError>, raw: Option<&str>) -> Option<String> {
    let q = raw.map(str::trim).filter(|q| !q.is_empty())?;
    if q.chars().count() > MAX_QUERY_CHARS || q.contains('\0') {
        field(
            errors,
            "q",
            format!("at most {MAX_QUERY_CHARS} characters, no NUL"),
        );
    }
    Some(q.to_owned())
}

fn status_filter(errors: &mut Vec<FieldError>, raw: Option<&str>) -> Option<Status> {
    let s = raw?;
    let st = Status::parse(s);
    if st.is_none() {
        field(errors, "status", "must be draft or published");
    }
    st
}

impl ArticleQuery {
    pub fn filters(&self) -> Result<Filters, AppError> {
        let mut errors = Vec::new();
        let q = query_text(&mut errors, self.q.as_deref());
        let author = self.author_id.as_deref().and_then(|a| {
            let id = Uuid::try_parse(a.trim()).ok();
            if id.is_none() {
                field(&mut errors, "author_id", "must be a UUID");
            }
            id
        });
        let language = language(&mut errors, self.language.as_deref());
        let tag = self.tag.as_deref().and_then(|t| {
            let n = normalise_tag(t);
            if n.is_none() {
                field(&mut errors, "tag", "not a valid tag");
            }
            n
        });
        let mine = match self.mine.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                field(&mut errors, "mine", "must be true or false");
                false
            }
        };
        let status = status_filter(&mut errors, self.status.as_deref());
        if status.is_some() && !mine {
            field(&mut errors, "status", "only with mine=true");
        }
        done(
            errors,
            Filters {
                q,
                author,
                language,
                tag,
                mine,
                status,
            },
        )
    }
}

/// `POST /news`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewsCreate {
    /// 1–200 characters.
    pub title: String,
    /// Markdown, 1–20,000 characters (same renderer as articles).
    pub body_markdown: String,
    /// `en` or `fr`; default: the company's language.
    #[serde(default)]
    pub language: Option<String>,
    /// `draft` (default) or `published`.
    #[serde(default)]
    pub status: Option<String>,
    /// Pinned news comes first in the list (default false).
    #[serde(default)]
    pub pinned: Option<bool>,
}

/// `PUT /news/{id}`: the whole item, from the version read.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewsUpdate {
    pub title: String,
    pub body_markdown: String,
    /// Absent keeps the current language.
    #[serde(default)]
    pub language: Option<String>,
    /// `draft` (default) or `published`.
    #[serde(default)]
    pub status: Option<String>,
    /// Absent keeps the current value.
    #[serde(default)]
    pub pinned: Option<bool>,
    pub version: i64,
}

/// A validated news write.
#[derive(Debug, Clone)]
pub struct NewsWrite {
    pub title: String,
    pub body: Body,
    pub language: Option<Language>,
    pub status: Status,
    pub pinned: Option<bool>,
}

impl NewsCreate {
    pub fn parse(self) -> Result<NewsWrite, AppError> {
        let mut errors = Vec::new();
        let w = NewsWrite {
            title: text(&mut errors, "title", &self.title, 1, MAX_TITLE_CHARS),
            body: body(&mut errors, &self.body_markdown, MAX_NEWS_BODY_CHARS),
            language: language(&mut errors, self.language.as_deref()),
            status: status(&mut errors, self.status.as_deref()),
            pinned: self.pinned,
        };
        done(errors, w)
    }
}

impl NewsUpdate {
    pub fn parse(self) -> Result<(NewsWrite, i32), AppError> {
        let mut errors = Vec::new();
        let w = NewsWrite {
            title: text(&mut errors, "title", &self.title, 1, MAX_TITLE_CHARS),
            body: body(&mut errors, &self.body_markdown, MAX_NEWS_BODY_CHARS),
            language: language(&mut errors, self.language.as_deref()),
            status: status(&mut errors, self.status.as_deref()),
            pinned: self.pinned,
        };
        let v = version(&mut errors, self.version);
        done(errors, (w, v))
    }
}

/// A news item of the company.
#[derive(Debug, Serialize, ToSchema)]
pub struct News {
    pub id: Uuid,
    pub title: String,
    pub body_markdown: String,
    /// Sanitised HTML rendered from `body_markdown`.
    pub body_html: String,
    pub language: Language,
    pub status: Status,
    pub pinned: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub published_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub version: i32,
    /// Relevance when searching (`q`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rank: Option<f32>,
}

/// A page of news.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewsPage {
    pub items: Vec<News>,
    pub next_cursor: Option<String>,
}

/// `GET /news` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NewsQuery {
    /// Page size: default 20; a number outside 1–100 counts as the nearest bound.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
    /// Full-text search, each item in its own language; results by relevance.
    pub q: Option<String>,
    /// `en` or `fr`.
    pub language: Option<String>,
    /// `published` (default) or `draft` (HR and tenant admins only see drafts).
    pub status: Option<String>,
}

impl NewsQuery {
    pub fn filters(&self) -> Result<Filters, AppError> {
        let mut errors = Vec::new();
        let q = query_text(&mut errors, self.q.as_deref());
        let language = language(&mut errors, self.language.as_deref());
        let status = status_filter(&mut errors, self.status.as_deref());
        done(
            errors,
            Filters {
                q,
                language,
                status,
                ..Filters::default()
            },
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalised() {
        assert_eq!(
            normalise_tag("  Sleep  Hygiene "),
            Some("sleep-hygiene".into())
        );
        assert_eq!(normalise_tag("Thérapie"), Some("thérapie".into()));
        assert_eq!(normalise_tag("a,b"), None);
        assert_eq!(normalise_tag(""), None);
        assert_eq!(normalise_tag(&"x".repeat(41)), None);
    }

    #[test]
    fn article_writes_collect_every_error() {
        let req = ArticleCreate {
            title: " ".into(),
            summary: "s".repeat(501),
            body_markdown: String::new(),
            tags: vec!["ok".into(), "bad,tag".into()],
            language: Some("de".into()),
            status: Some("live".into()),
        };
        let AppError::Validation(errors) = req.parse().unwrap_err() else {
            panic!("not a validation error")
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "title",
            "summary",
            "body_markdown",
            "tags[1]",
            "language",
            "status",
        ] {
            assert!(fields.contains(&f), "{f} missing in {fields:?}");
        }
    }

    #[test]
    fn a_valid_write_is_rendered() {
        let id = Uuid::now_v7();
        let w = ArticleCreate {
            title: " Sleep ".into(),
            summary: String::new(),
            body_markdown: format!("Hi ![x](/api/v1/files/{id})"),
            tags: vec!["Sleep".into(), "sleep".into()],
            language: None,
            status: None,
        }
        .parse()
        .unwrap();
        assert_eq!(w.title, "Sleep");
        assert_eq!(w.tags, vec!["sleep".to_owned()]);
        assert_eq!(w.status, Status::Draft);
        assert_eq!(w.body.file_ids, vec![id]);
        assert!(w.body.html.contains("<img"));
    }
}
