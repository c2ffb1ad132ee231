//! Clinical note types: what a practitioner sends, what is sealed, what they read back.
//!
//! The sealed content is one JSON document ([`NoteContent`]) per version; nothing of it is
//! stored in the clear (the risk level included: it is health data).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::UserId;
use crate::error::{AppError, FieldError};

/// Longest structured field, in characters.
pub const MAX_FIELD_CHARS: usize = 10_000;
/// Longest free text, in characters.
pub const MAX_TEXT_CHARS: usize = 100_000;

/// The practitioner's assessment of risk at this session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    None,
    Low,
    Moderate,
    High,
}

/// The fields of a note, as written. Every field is optional; at least one must say something.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteContent {
    /// What the employee came with, in the practitioner's words (≤ 10,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presenting_concern: Option<String>,
    /// What the practitioner observed (≤ 10,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observations: Option<String>,
    /// The plan agreed or intended (≤ 10,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_level: Option<RiskLevel>,
    /// Free text (≤ 100,000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `POST /consultations/{id}/notes`: a new note.
pub type NoteRequest = NoteContent;

/// `PUT /notes/{id}`: the whole new content, and the version it replaces (a stale edit is 409
/// `version_conflict`: another edit came first; nothing is lost, nothing changed).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteEdit {
    /// The `version` the edit was made from.
    #[schema(minimum = 1)]
    pub version: i64,
    #[serde(default)]
    pub presenting_concern: Option<String>,
    #[serde(default)]
    pub observations: Option<String>,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub risk_level: Option<RiskLevel>,
    #[serde(default)]
    pub text: Option<String>,
}

fn field(
    errors: &mut Vec<FieldError>,
    name: &str,
    value: Option<String>,
    max: usize,
) -> Option<String> {
    let v = value
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())?;
    if v.chars().count() > max {
        errors.push(FieldError {
            field: name.to_owned(),
            reason: format!("must be at most {max} characters"),
        });
    }
    if v.contains('\0') {
        errors.push(FieldError {
            field: name.to_owned(),
            reason: "must not contain NUL characters".to_owned(),
        });
    }
    Some(v)
}

impl NoteContent {
    /// Validate once: trimmed, empty strings dropped, lengths bounded, something said.
    pub fn parse(self) -> Result<NoteContent, AppError> {
        let mut errors = Vec::new();
        let out = NoteContent {
            presenting_concern: field(
                &mut errors,
                "presenting_concern",
                self.presenting_concern,
                MAX_FIELD_CHARS,
            ),
            observations: field(
                &mut errors,
                "observations",
                self.observations,
                MAX_FIELD_CHARS,
            ),
            plan: field(&mut errors, "plan", self.plan, MAX_FIELD_CHARS),
            risk_level: self.risk_level,
            text: field(&mut errors, "text", self.text, MAX_TEXT_CHARS),
        };
        if errors.is_empty() && out == NoteContent::default() {
            errors.push(FieldError {
                field: "text".to_owned(),
                reason: "a note needs at least one field".to_owned(),
            });
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(AppError::Validation(errors))
        }
    }
}

impl NoteEdit {
    /// Validate once (the content as for a new note; the version positive).
    pub fn parse(self) -> Result<(i32, NoteContent), AppError> {
        let version = i32::try_from(self.version)
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| AppError::invalid("version", "must be a version of this note"))?;
        let content = NoteContent {
            presenting_concern: self.presenting_concern,
            observations: self.observations,
            plan: self.plan,
            risk_level: self.risk_level,
            text: self.text,
        };
        Ok((version, content.parse()?))
    }
}

/// A note as its author reads it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Note {
    pub id: Uuid,
    pub consultation_id: Uuid,
    pub employee_id: UserId,
    /// The current version (1 on creation; each edit adds one).
    pub version: i32,
    /// The content; absent when `unreadable`.
    #[serde(flatten)]
    pub content: NoteContent,
    /// True when this version's content cannot be opened (its key destroyed, or the record
    /// tampered with); the other fields are then absent.
    pub unreadable: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One page of notes, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotePage {
    pub items: Vec<Note>,
    pub next_cursor: Option<String>,
}

/// A kept version of a note.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteVersion {
    pub version: i32,
    #[serde(flatten)]
    pub content: NoteContent,
    pub unreadable: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The kept versions of a note, newest first (superseded versions are kept for the clinical
/// retention period).
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteVersions {
    pub items: Vec<NoteVersion>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_note_must_say_something_within_bounds() {
        assert!(NoteContent::default().parse().is_err());
        let blank = NoteContent {
            text: Some("   ".into()),
            ..NoteContent::default()
        };
        assert!(blank.parse().is_err());
        let ok = NoteContent {
            text: Some("  Slept better.  ".into()),
            risk_level: Some(RiskLevel::Low),
            ..NoteContent::default()
        }
        .parse()
        .unwrap();
        assert_eq!(ok.text.as_deref(), Some("Slept better."));
        let long = NoteContent {
            plan: Some("x".repeat(MAX_FIELD_CHARS + 1)),
            ..NoteContent::default()
        };
        assert!(long.parse().is_err());
        let only_risk = NoteContent {
            risk_level: Some(RiskLevel::None),
            ..NoteContent::default()
        };
        assert!(only_risk.parse().is_ok());
    }

    #[test]
    fn sealed_content_round_trips_and_refuses_unknown_fields() {
        let c = NoteContent {
            observations: Some("Calm".into()),
            risk_level: Some(RiskLevel::Moderate),
            ..NoteContent::default()
        };
        let json = serde_json::to_vec(&c).unwrap();
        assert_eq!(serde_json::from_slice::<NoteContent>(&json).unwrap(), c);
        assert!(serde_json::from_str::<NoteContent>(r#"{"author_id":"x"}"#).is_err());
        assert!(serde_json::from_str::<NoteEdit>(r#"{"version":1,"text":"a","x":1}"#).is_err());
    }
}
