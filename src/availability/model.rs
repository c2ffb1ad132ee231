//! Availability values: parsed and checked once, then typed (the SQL checks say the same, as
//! the last line).

use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::{OffsetDateTime, Time};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::FieldError;

/// How a consultation is held.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Video,
    Audio,
    Chat,
    InPerson,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Video, Kind::Audio, Kind::Chat, Kind::InPerson];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Video => "video",
            Kind::Audio => "audio",
            Kind::Chat => "chat",
            Kind::InPerson => "in_person",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// ISO weekday names, Monday first (stored as 1–7).
pub const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Most weekly rules one practitioner may keep.
pub const MAX_RULES: i64 = 50;

/// What a window offers (minutes), as the API takes it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OfferRequest {
    /// Session lengths offered, 15–240 minutes, 1 to 6 of them.
    pub lengths: Vec<i64>,
    /// Minutes between two starts (default: each length steps by itself).
    pub step_minutes: Option<i64>,
    /// Kept free before a session, 0–120 (default 0).
    pub buffer_before_minutes: Option<i64>,
    /// Kept free after a session, 0–120 (default 0).
    pub buffer_after_minutes: Option<i64>,
    /// No booking closer than this to its start, 0–43200 (default 720: 12 hours).
    pub min_notice_minutes: Option<i64>,
    /// No booking further ahead than this, 1–365 days (default 60).
    pub horizon_days: Option<i64>,
    /// `video`, `audio`, `chat`, `in_person`: at least one.
    pub kinds: Vec<String>,
}

/// A checked offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Offer {
    pub lengths: Vec<i16>,
    pub step_minutes: Option<i16>,
    pub buffer_before_minutes: i16,
    pub buffer_after_minutes: i16,
    pub min_notice_minutes: i32,
    pub horizon_days: i16,
    pub kinds: Vec<Kind>,
}

fn bounded(
    field: &str,
    v: Option<i64>,
    default: i64,
    lo: i64,
    hi: i64,
    errors: &mut Vec<FieldError>,
) -> i64 {
    let v = v.unwrap_or(default);
    if !(lo..=hi).contains(&v) {
        errors.push(FieldError {
            field: field.into(),
            reason: format!("must be between {lo} and {hi}"),
        });
    }
    v.clamp(lo, hi)
}

impl OfferRequest {
    /// Check every field; `window_minutes` (when known) bounds the lengths.
    pub fn parse(&self, window_minutes: Option<i64>, errors: &mut Vec<FieldError>) -> Offer {
        let mut lengths: Vec<i16> = Vec::new();
        if self.lengths.is_empty() || self.lengths.len() > 6 {
            errors.push(FieldError {
                field: "lengths".into(),
                reason: "must hold 1 to 6 session lengths".into(),
            });
        }
        for (i, &l) in self.lengths.iter().enumerate() {
            if !(15..=240).contains(&l) {
                errors.push(FieldError {
                    field: format!("lengths[{i}]"),
                    reason: "must be between 15 and 240 minutes".into(),
                });
            } else if window_minutes.is_some_and(|w| l > w) {
                errors.push(FieldError {
                    field: format!("lengths[{i}]"),
                    reason: "is longer than the window".into(),
                });
            } else if let Ok(l) = i16::try_from(l)
                && !lengths.contains(&l)
            {
                lengths.push(l);
            }
        }
        lengths.sort_unstable();
        let step_minutes = self.step_minutes.map(|s| {
            i16::try_from(bounded("step_minutes", Some(s), 0, 5, 240, errors)).unwrap_or(5)
        });
        let narrow = |v: i64| i16::try_from(v).unwrap_or(0);
        let buffer_before_minutes = narrow(bounded(
            "buffer_before_minutes",
            self.buffer_before_minutes,
            0,
            0,
            120,
            errors,
        ));
        let buffer_after_minutes = narrow(bounded(
            "buffer_after_minutes",
            self.buffer_after_minutes,
            0,
            0,
            120,
            errors,
        ));
        let min_notice_minutes = i32::try_from(bounded(
            "min_notice_minutes",
            self.min_notice_minutes,
            720,
            0,
            43_200,
            errors,
        ))
        .unwrap_or(0);
        let horizon_days = narrow(bounded(
            "horizon_days",
            self.horizon_days,
            60,
            1,
            365,
            errors,
        ));
        let mut kinds = Vec::new();
        if self.kinds.is_empty() {
            errors.push(FieldError {
                field: "kinds".into(),
                reason: "must hold at least one of video, audio, chat, in_person".into(),
            });
        }
        for (i, k) in self.kinds.iter().enumerate() {
            match Kind::parse(k) {
                Some(k) if !kinds.contains(&k) => kinds.push(k),
                Some(_) => {}
                None => errors.push(FieldError {
                    field: format!("kinds[{i}]"),
                    reason: "must be video, audio, chat or in_person".into(),
                }),
            }
        }
        kinds.sort_unstable();
        Offer {
            lengths,
            step_minutes,
            buffer_before_minutes,
            buffer_after_minutes,
            min_notice_minutes,
            horizon_days,
            kinds,
        }
    }
}

/// A weekly rule as the API takes it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleRequest {
    /// `monday` … `sunday`.
    pub weekday: String,
    /// Local start, `HH:MM`, in the schedule's time zone.
    pub start: String,
    /// Local end, `HH:MM`, after the start on the same day (`24:00` for midnight).
    pub end: String,
    // The offer's fields, spelled out (not `#[serde(flatten)]`: serde cannot refuse unknown
    // fields through a flattened struct, and OpenAPI would describe two closed objects at once).
    /// Session lengths offered, 15–240 minutes, 1 to 6 of them.
    pub lengths: Vec<i64>,
    /// Minutes between two starts (default: each length steps by itself).
    pub step_minutes: Option<i64>,
    /// Kept free before a session, 0–120 (default 0).
    pub buffer_before_minutes: Option<i64>,
    /// Kept free after a session, 0–120 (default 0).
    pub buffer_after_minutes: Option<i64>,
    /// No booking closer than this to its start, 0–43200 (default 720: 12 hours).
    pub min_notice_minutes: Option<i64>,
    /// No booking further ahead than this, 1–365 days (default 60).
    pub horizon_days: Option<i64>,
    /// `video`, `audio`, `chat`, `in_person`: at least one.
    pub kinds: Vec<String>,
}

/// A checked weekly rule.
#[derive(Debug, Clone)]
pub struct NewRule {
    pub weekday: i16,
    pub start: Time,
    pub end: Time,
    pub offer: Offer,
}

/// `HH:MM` (24-hour). `24:00` is the end of the day, stored as 23:59:59.999999 (`time`
/// has no 24:00).
pub fn parse_clock(field: &str, s: &str, end: bool, errors: &mut Vec<FieldError>) -> Option<Time> {
    if end && s == "24:00" {
        return Time::from_hms_micro(23, 59, 59, 999_999).ok();
    }
    let fmt = format_description!("[hour]:[minute]");
    match Time::parse(s, &fmt) {
        Ok(t) => Some(t),
        Err(_) => {
            errors.push(FieldError {
                field: field.into(),
                reason: "must be a local time HH:MM".into(),
            });
            None
        }
    }
}

/// `HH:MM` of a stored time (23:59:59.999999 shows as 24:00).
pub fn format_clock(t: Time) -> String {
    if t.hour() == 23 && t.minute() == 59 && t.second() == 59 {
        return "24:00".into();
    }
    format!("{:02}:{:02}", t.hour(), t.minute())
}

impl RuleRequest {
    pub fn parse(&self) -> Result<NewRule, Vec<FieldError>> {
        let mut errors = Vec::new();
        let weekday = WEEKDAYS
            .iter()
            .position(|d| *d == self.weekday)
            .and_then(|i| i16::try_from(i + 1).ok());
        if weekday.is_none() {
            errors.push(FieldError {
                field: "weekday".into(),
                reason: "must be monday, tuesday, … or sunday".into(),
            });
        }
        let start = parse_clock("start", &self.start, false, &mut errors);
        let end = parse_clock("end", &self.end, true, &mut errors);
        let window = match (start, end) {
            // The 24:00 sentinel ends a microsecond early: count the window to midnight.
            (Some(s), Some(e)) if s < e => {
                Some((e - s).whole_minutes() + i64::from(format_clock(e) == "24:00"))
            }
            (Some(_), Some(_)) => {
                errors.push(FieldError {
                    field: "end".into(),
                    reason: "must be after the start, on the same day".into(),
                });
                None
            }
            _ => None,
        };
        let offer = OfferRequest {
            lengths: self.lengths.clone(),
            step_minutes: self.step_minutes,
            buffer_before_minutes: self.buffer_before_minutes,
            buffer_after_minutes: self.buffer_after_minutes,
            min_notice_minutes: self.min_notice_minutes,
            horizon_days: self.horizon_days,
            kinds: self.kinds.clone(),
        }
        .parse(window, &mut errors);
        match (weekday, start, end) {
            (Some(weekday), Some(start), Some(end)) if errors.is_empty() => Ok(NewRule {
                weekday,
                start,
                end,
                offer,
            }),
            _ => Err(errors),
        }
    }
}

/// A weekly rule as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Rule {
    pub id: Uuid,
    pub weekday: String,
    pub start: String,
    pub end: String,
    #[serde(flatten)]
    pub offer: Offer,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The practitioner's weekly rules (all of them: at most [`MAX_RULES`]).
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleList {
    /// Their IANA time zone (the rules' local times are in it).
    pub time_zone: String,
    pub items: Vec<Rule>,
}

/// `time_off` or `extra_hours`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExceptionKind {
    TimeOff,
    ExtraHours,
}

impl ExceptionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TimeOff => "time_off",
            Self::ExtraHours => "extra_hours",
        }
    }
}

/// An exception as the API takes it: time off (no offer) or extra hours (with one).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExceptionRequest {
    pub kind: ExceptionKind,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    /// Extra hours only: what they offer.
    pub offer: Option<OfferRequest>,
}

/// A checked exception.
#[derive(Debug, Clone)]
pub struct NewException {
    pub kind: ExceptionKind,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub offer: Option<Offer>,
}

impl ExceptionRequest {
    pub fn parse(&self) -> Result<NewException, Vec<FieldError>> {
        let mut errors = Vec::new();
        let span = self.ends_at - self.starts_at;
        let longest = match self.kind {
            ExceptionKind::TimeOff => time::Duration::days(366),
            ExceptionKind::ExtraHours => time::Duration::hours(24),
        };
        if span <= time::Duration::ZERO {
            errors.push(FieldError {
                field: "ends_at".into(),
                reason: "must be after starts_at".into(),
            });
        } else if span > longest {
            errors.push(FieldError {
                field: "ends_at".into(),
                reason: match self.kind {
                    ExceptionKind::TimeOff => "time off lasts at most 366 days".into(),
                    ExceptionKind::ExtraHours => "extra hours last at most 24 hours".into(),
                },
            });
        }
        let offer = match (self.kind, &self.offer) {
            (ExceptionKind::TimeOff, None) => None,
            (ExceptionKind::TimeOff, Some(_)) => {
                errors.push(FieldError {
                    field: "offer".into(),
                    reason: "time off offers nothing".into(),
                });
                None
            }
            (ExceptionKind::ExtraHours, None) => {
                errors.push(FieldError {
                    field: "offer".into(),
                    reason: "extra hours need an offer".into(),
                });
                None
            }
            (ExceptionKind::ExtraHours, Some(o)) => {
                let mut inner = Vec::new();
                let offer = o.parse(Some(span.whole_minutes()), &mut inner);
                errors.extend(inner.into_iter().map(|e| FieldError {
                    field: format!("offer.{}", e.field),
                    reason: e.reason,
                }));
                Some(offer)
            }
        };
        if errors.is_empty() {
            Ok(NewException {
                kind: self.kind,
                starts_at: self.starts_at,
                ends_at: self.ends_at,
                offer,
            })
        } else {
            Err(errors)
        }
    }
}

/// An exception as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Exception {
    pub id: Uuid,
    pub kind: ExceptionKind,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offer: Option<Offer>,
}

/// One page of exceptions, by start.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExceptionPage {
    pub items: Vec<Exception>,
    pub next_cursor: Option<String>,
}

/// `GET /availability/exceptions` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExceptionQuery {
    /// Exceptions still running at or after this instant (default: now), RFC 3339.
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    /// Page size: default 50; a number outside 1–200 counts as the nearest bound.
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// The practitioner's schedule settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Settings {
    /// IANA time zone of the weekly rules.
    pub time_zone: String,
    /// Bookings are confirmed at once (true) or wait for the practitioner (false).
    pub auto_confirm: bool,
    /// False until the practitioner saves settings or a first rule (the values shown are then
    /// the defaults: this company's time zone, automatic confirmation).
    pub saved: bool,
}

/// `PUT /availability/settings`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsRequest {
    pub time_zone: String,
    pub auto_confirm: Option<bool>,
}

/// The weekday name of an ISO number (1 = Monday).
pub fn weekday_name(n: i16) -> String {
    usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| WEEKDAYS.get(i))
        .map(|s| (*s).to_owned())
        .unwrap_or_default()
}

/// Kinds from their stored names (the column's CHECK admits only these).
pub fn kinds_of(names: &[String]) -> Vec<Kind> {
    names.iter().filter_map(|k| Kind::parse(k)).collect()
}

/// Stored names of kinds.
pub fn kind_names(kinds: &[Kind]) -> Vec<String> {
    kinds.iter().map(|k| k.as_str().to_owned()).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn rule(weekday: &str, start: &str, end: &str, lengths: Vec<i64>) -> RuleRequest {
        RuleRequest {
            weekday: weekday.into(),
            start: start.into(),
            end: end.into(),
            lengths,
            step_minutes: None,
            buffer_before_minutes: None,
            buffer_after_minutes: Some(10),
            min_notice_minutes: None,
            horizon_days: None,
            kinds: vec!["video".into(), "audio".into(), "video".into()],
        }
    }

    #[test]
    fn a_rule_is_checked_field_by_field() {
        let ok = rule("tuesday", "09:00", "12:30", vec![50, 30, 50])
            .parse()
            .unwrap();
        assert_eq!(ok.weekday, 2);
        assert_eq!(ok.offer.lengths, vec![30, 50]);
        assert_eq!(ok.offer.kinds, vec![Kind::Video, Kind::Audio]);
        assert_eq!(ok.offer.min_notice_minutes, 720);
        assert_eq!(ok.offer.horizon_days, 60);
        let bad = rule("funday", "9", "08:00", vec![10, 300])
            .parse()
            .unwrap_err();
        let fields: Vec<&str> = bad.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["weekday", "start", "lengths[0]", "lengths[1]"]);
        let inverted = rule("monday", "12:00", "09:00", vec![60])
            .parse()
            .unwrap_err();
        assert_eq!(inverted[0].field, "end");
        let too_long = rule("monday", "09:00", "09:30", vec![60])
            .parse()
            .unwrap_err();
        assert_eq!(too_long[0].reason, "is longer than the window");
        let midnight = rule("sunday", "20:00", "24:00", vec![240]).parse().unwrap();
        assert_eq!(format_clock(midnight.end), "24:00");
        assert_eq!(weekday_name(midnight.weekday), "sunday");
    }
}
