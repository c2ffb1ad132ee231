//! Journal entry types: what the owner sends, what is sealed, what they read back, and the
//! list's filters.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{AppError, FieldError};

/// Longest entry text, in characters.
pub const MAX_TEXT_CHARS: usize = 20_000;
/// Most tags on one entry.
pub const MAX_TAGS: usize = 10;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 40;

/// `POST /journal` and `PUT /journal/{id}` (the whole entry).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryRequest {
    /// What the owner writes (≤ 20,000 characters). May be empty when a mood is given.
    #[serde(default)]
    pub text: Option<String>,
    /// 1 (very low) to 5 (very good).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 5)]
    pub mood: Option<i64>,
    /// Up to 10 tags of 1–40 letters, digits, spaces, `-` or `_`; kept in lower case, without
    /// duplicates.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The sealed content of an entry (one JSON document).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryContent {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mood: Option<u8>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A tag as stored and compared: trimmed, inner white space collapsed, lower case.
pub fn normalise_tag(raw: &str) -> Option<String> {
    let t = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty()
        || t.chars().count() > MAX_TAG_CHARS
        || !t
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '_')
    {
        return None;
    }
    Some(t.to_lowercase())
}

impl EntryRequest {
    /// Validate once: every field's problems at once.
    pub fn parse(self) -> Result<EntryContent, AppError> {
        let mut errors = Vec::new();
        let text = self.text.map(|t| t.trim().to_owned()).unwrap_or_default();
        if text.chars().count() > MAX_TEXT_CHARS {
            errors.push(FieldError {
                field: "text".into(),
                reason: format!("must be at most {MAX_TEXT_CHARS} characters"),
            });
        }
        if text.contains('\0') {
            errors.push(FieldError {
                field: "text".into(),
                reason: "must not contain NUL characters".into(),
            });
        }
        let mood = match self.mood {
            None => None,
            Some(m) => match u8::try_from(m).ok().filter(|m| (1..=5).contains(m)) {
                Some(m) => Some(m),
                None => {
                    errors.push(FieldError {
                        field: "mood".into(),
                        reason: "must be a whole number from 1 to 5".into(),
                    });
                    None
                }
            },
        };
        if text.is_empty() && mood.is_none() && self.mood.is_none() {
            errors.push(FieldError {
                field: "text".into(),
                reason: "an entry needs a text or a mood".into(),
            });
        }
        if self.tags.len() > MAX_TAGS {
            errors.push(FieldError {
                field: "tags".into(),
                reason: format!("at most {MAX_TAGS} tags"),
            });
        }
        let mut tags: Vec<String> = Vec::new();
        for (i, raw) in self.tags.iter().enumerate() {
            match normalise_tag(raw) {
                Some(t) => {
                    if !tags.contains(&t) {
                        tags.push(t);
                    }
                }
                None => errors.push(FieldError {
                    field: format!("tags[{i}]"),
                    reason: format!("1–{MAX_TAG_CHARS} letters, digits, spaces, '-' or '_'"),
                }),
            }
        }
        if errors.is_empty() {
            Ok(EntryContent { text, mood, tags })
        } else {
            Err(AppError::Validation(errors))
        }
    }
}

/// An entry as its owner reads it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Entry {
    pub id: Uuid,
    /// Absent when `unreadable`.
    pub text: Option<String>,
    pub mood: Option<u8>,
    pub tags: Vec<String>,
    /// True when the entry cannot be opened (the owner's key destroyed, or tampering).
    pub unreadable: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Entry {
    pub fn new(
        id: Uuid,
        content: Option<EntryContent>,
        created_at: OffsetDateTime,
        updated_at: OffsetDateTime,
    ) -> Self {
        match content {
            Some(c) => Self {
                id,
                text: Some(c.text),
                mood: c.mood,
                tags: c.tags,
                unreadable: false,
                created_at,
                updated_at,
            },
            None => Self {
                id,
                text: None,
                mood: None,
                tags: Vec::new(),
                unreadable: true,
                created_at,
                updated_at,
            },
        }
    }
}

/// One page of entries, newest first. A filtered page may hold fewer than `limit` entries
/// and still have a `next_cursor`: each request opens at most a bounded number of entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryPage {
    pub items: Vec<Entry>,
    pub next_cursor: Option<String>,
}

/// `GET /journal` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EntryQuery {
    /// Page size: default 50; a number outside 1–200 counts as the nearest bound.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
    /// Entries written at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Entries written before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Only entries with this mood (1–5).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 5)]
    pub mood: Option<String>,
    /// Only entries carrying this tag (compared as stored: lower case).
    pub tag: Option<String>,
}

/// The validated filters.
#[derive(Debug, Default)]
pub struct Filters {
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub mood: Option<u8>,
    pub tag: Option<String>,
}

fn instant(field: &str, raw: Option<&str>) -> Result<Option<OffsetDateTime>, AppError> {
    raw.map(|s| {
        OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
            .map_err(|_| AppError::invalid(field, "must be an RFC 3339 date-time"))
    })
    .transpose()
}

impl EntryQuery {
    pub fn filters(&self) -> Result<Filters, AppError> {
        let from = instant("from", self.from.as_deref())?;
        let to = instant("to", self.to.as_deref())?;
        if let (Some(f), Some(t)) = (from, to)
            && t <= f
        {
            return Err(AppError::invalid("to", "must be after from"));
        }
        let mood = self
            .mood
            .as_deref()
            .map(|m| {
                m.trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|m| (1..=5).contains(m))
                    .ok_or_else(|| AppError::invalid("mood", "must be a whole number from 1 to 5"))
            })
            .transpose()?;
        let tag = self
            .tag
            .as_deref()
            .map(|t| normalise_tag(t).ok_or_else(|| AppError::invalid("tag", "not a valid tag")))
            .transpose()?;
        Ok(Filters {
            from,
            to,
            mood,
            tag,
        })
    }
}

impl Filters {
    /// Whether an opened entry passes the content filters (dates are applied in SQL).
    pub fn keeps(&self, c: &EntryContent) -> bool {
        self.mood.is_none_or(|m| c.mood == Some(m))
            && self.tag.as_ref().is_none_or(|t| c.tags.contains(t))
    }

    pub fn on_content(&self) -> bool {
        self.mood.is_some() || self.tag.is_some()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(text: Option<&str>, mood: Option<i64>, tags: &[&str]) -> EntryRequest {
        EntryRequest {
            text: text.map(str::to_owned),
            mood,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn entries_validate_once() {
        let c = req(
            Some(" Calm day "),
            Some(4),
            &["Work", " work ", "Sleep  well"],
        )
        .parse()
        .unwrap();
        assert_eq!(c.text, "Calm day");
        assert_eq!(c.mood, Some(4));
        assert_eq!(c.tags, vec!["work", "sleep well"]);
        assert!(req(None, None, &[]).parse().is_err());
        assert!(req(None, Some(3), &[]).parse().is_ok());
        assert!(req(Some("x"), Some(6), &[]).parse().is_err());
        assert!(req(Some("x"), Some(0), &[]).parse().is_err());
        assert!(req(Some("x"), None, &["<script>"]).parse().is_err());
        let many: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(req(Some("x"), None, &many).parse().is_err());
    }

    #[test]
    fn filters_match_opened_content() {
        let c = EntryContent {
            text: "x".into(),
            mood: Some(2),
            tags: vec!["work".into()],
        };
        let f = Filters {
            mood: Some(2),
            tag: Some("work".into()),
            ..Filters::default()
        };
        assert!(f.keeps(&c));
        let f = Filters {
            mood: Some(3),
            ..Filters::default()
        };
        assert!(!f.keeps(&c));
    }
}
