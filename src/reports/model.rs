//! Report types: months and ranges (parsed once), groupings, released cells and their
//! suppression reasons, shared by HR's and the platform's reports and exports.

use serde::{Deserialize, Serialize};
use time::{Date, Month as CalendarMonth};
use utoipa::{IntoParams, ToSchema};

use crate::error::AppError;
use crate::http::csv::{CsvFormat, Delimiter};

/// Months a range may span.
pub const MAX_MONTHS: i32 = 24;
/// Months a range spans when `from` is omitted.
pub const DEFAULT_MONTHS: i32 = 12;

/// A calendar month (its first day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month(Date);

impl Month {
    /// `YYYY-MM`, year 1970–9999.
    pub fn parse(field: &str, raw: &str) -> Result<Self, AppError> {
        let bad = || AppError::invalid(field, "must be a month YYYY-MM");
        let (y, m) = raw.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u8 = m.parse().map_err(|_| bad())?;
        if year < 1970 {
            return Err(bad());
        }
        let month = CalendarMonth::try_from(month).map_err(|_| bad())?;
        Date::from_calendar_date(year, month, 1)
            .map(Self)
            .map_err(|_| bad())
    }

    /// The month of a date.
    pub fn of(date: Date) -> Self {
        Self(date.replace_day(1).unwrap_or(date))
    }

    pub fn first_day(self) -> Date {
        self.0
    }

    fn index(self) -> i32 {
        self.0.year() * 12 + i32::from(u8::from(self.0.month())) - 1
    }

    fn from_index(i: i32) -> Option<Self> {
        let month = u8::try_from(i.rem_euclid(12) + 1).ok()?;
        let month = CalendarMonth::try_from(month).ok()?;
        Date::from_calendar_date(i.div_euclid(12), month, 1)
            .ok()
            .map(Self)
    }

    /// `n` months later (earlier when negative); saturates at the calendar's ends.
    pub fn plus(self, n: i32) -> Self {
        Self::from_index(self.index().saturating_add(n)).unwrap_or(self)
    }

    /// Months from `self` to `to`, both included (0 when `to` is earlier).
    pub fn span(self, to: Month) -> i32 {
        (to.index() - self.index() + 1).max(0)
    }

    /// `YYYY-MM`.
    pub fn label(self) -> String {
        format!("{:04}-{:02}", self.0.year(), u8::from(self.0.month()))
    }
}

/// A validated range of closed months.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: Month,
    pub to: Month,
}

/// The range asked for, against the last closed month (`None`: none has closed yet). Omitted
/// `to` is the last closed month; omitted `from` is twelve months before `to`. A month that is
/// not closed is refused (422), not clamped: the answer never silently covers less than asked.
/// `Ok(None)`: nothing asked and nothing closed yet (an empty report).
pub fn resolve_range(
    from: Option<&str>,
    to: Option<&str>,
    last_closed: Option<Month>,
) -> Result<Option<Range>, AppError> {
    let from = from.map(|f| Month::parse("from", f)).transpose()?;
    let to = to.map(|t| Month::parse("to", t)).transpose()?;
    let Some(last) = last_closed else {
        return match (from, to) {
            (None, None) => Ok(None),
            _ => Err(AppError::invalid(
                "to",
                "no month has closed yet: figures are released for complete months only",
            )),
        };
    };
    let to = to.unwrap_or(last);
    if to > last {
        return Err(AppError::invalid(
            "to",
            format!(
                "{} is not a closed month: figures are released for complete months only; the last closed month is {}",
                to.label(),
                last.label()
            ),
        ));
    }
    let from = from.unwrap_or_else(|| to.plus(1 - DEFAULT_MONTHS));
    if from > to {
        return Err(AppError::invalid("from", "must not be after to"));
    }
    if from.span(to) > MAX_MONTHS {
        return Err(AppError::invalid(
            "from",
            format!("a range covers at most {MAX_MONTHS} months"),
        ));
    }
    Ok(Some(Range { from, to }))
}

/// A report's grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Month,
    Department,
    Specialty,
    Kind,
}

impl GroupBy {
    /// `month` (default), `department`, `specialty` or `kind`; `department` only where
    /// `departments` (a company's report).
    pub fn parse(raw: Option<&str>, departments: bool) -> Result<Self, AppError> {
        match raw {
            None | Some("month") => Ok(Self::Month),
            Some("department") if departments => Ok(Self::Department),
            Some("specialty") => Ok(Self::Specialty),
            Some("kind") => Ok(Self::Kind),
            Some(_) if departments => Err(AppError::invalid(
                "group_by",
                "must be month, department, specialty or kind",
            )),
            Some(_) => Err(AppError::invalid(
                "group_by",
                "must be month, specialty or kind",
            )),
        }
    }

    /// The grouping's name in the frozen release.
    pub fn grouping(self) -> &'static str {
        match self {
            Self::Month => "total",
            Self::Department => "department",
            Self::Specialty => "specialty",
            Self::Kind => "kind",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Month => "month",
            Self::Department => "department",
            Self::Specialty => "specialty",
            Self::Kind => "kind",
        }
    }
}

/// Why a figure is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Suppression {
    /// Fewer than `min_cohort`: the count, the people behind it, or (distinct users) the people
    /// of the group who did not book.
    BelowMinCohort,
    /// Not small itself, hidden so that no hidden figure can be worked out from the others.
    Complementary,
}

impl Suppression {
    /// The frozen release's word (anything else reads as hidden, to fail closed).
    pub fn from_db(raw: Option<&str>) -> Option<Self> {
        match raw? {
            "below_min_cohort" => Some(Self::BelowMinCohort),
            _ => Some(Self::Complementary),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BelowMinCohort => "below_min_cohort",
            Self::Complementary => "complementary",
        }
    }
}

/// The reason of each hidden figure of a cell (released figures are absent).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Hidden {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booked: Option<Suppression>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<Suppression>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<Suppression>,
    /// Follows `held`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minutes: Option<Suppression>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Suppression>,
}

impl Hidden {
    /// `held: below_min_cohort; minutes: below_min_cohort` (the CSV column).
    pub fn describe(&self) -> String {
        [
            ("booked", self.booked),
            ("held", self.held),
            ("cancelled", self.cancelled),
            ("minutes", self.minutes),
            ("users", self.users),
        ]
        .iter()
        .filter_map(|(m, s)| s.map(|s| format!("{m}: {}", s.as_str())))
        .collect::<Vec<_>>()
        .join("; ")
    }
}

/// One released cell of one month. A hidden figure is `null`, its reason in `suppressed`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UsageCell {
    /// `YYYY-MM`.
    pub month: String,
    /// The department (`null`: members without one), the practitioner's first listed
    /// specialty (`null`: none listed) or the kind; `null` for `group_by=month`.
    pub group: Option<String>,
    /// Consultations whose start fell in the month, whatever became of them.
    pub booked: Option<i32>,
    /// Consultations held (ended).
    pub held: Option<i32>,
    pub cancelled: Option<i32>,
    /// Minutes of the consultations held, from their start and end.
    pub minutes: Option<i64>,
    /// Distinct employees who booked.
    pub users: Option<i32>,
    pub suppressed: Hidden,
}

/// A frozen cell as the definers return it.
pub struct CellRow {
    pub month: Date,
    pub group_key: String,
    pub booked: Option<i32>,
    pub held: Option<i32>,
    pub cancelled: Option<i32>,
    pub minutes: Option<i64>,
    pub users: Option<i32>,
    pub booked_hidden: Option<String>,
    pub held_hidden: Option<String>,
    pub cancelled_hidden: Option<String>,
    pub users_hidden: Option<String>,
}

impl CellRow {
    /// The cell as released: a figure is shown only when its reason is absent (the definers
    /// already return NULL for hidden ones; this holds even if they did not).
    pub fn released(self, group_by: GroupBy) -> UsageCell {
        let booked = Suppression::from_db(self.booked_hidden.as_deref());
        let held = Suppression::from_db(self.held_hidden.as_deref());
        let cancelled = Suppression::from_db(self.cancelled_hidden.as_deref());
        let users = Suppression::from_db(self.users_hidden.as_deref());
        let shown = |reason: Option<Suppression>, v: Option<i32>| v.filter(|_| reason.is_none());
        UsageCell {
            month: Month::of(self.month).label(),
            group: (group_by != GroupBy::Month && !self.group_key.is_empty())
                .then_some(self.group_key),
            booked: shown(booked, self.booked),
            held: shown(held, self.held),
            cancelled: shown(cancelled, self.cancelled),
            minutes: self.minutes.filter(|_| held.is_none()),
            users: shown(users, self.users),
            suppressed: Hidden {
                booked,
                held,
                cancelled,
                minutes: held,
                users,
            },
        }
    }
}

/// `GET /reports/usage` and `GET /platform/reports/usage` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// First month, `YYYY-MM` (default: eleven months before `to`).
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$")]
    pub from: Option<String>,
    /// Last month, `YYYY-MM`, a closed one (default: the last closed month). At most 24 months
    /// from `from`. A month not yet complete is 422: nothing live is released.
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$")]
    pub to: Option<String>,
    /// `month` (default), `department` (companies only), `specialty` or `kind`.
    #[param(pattern = "^(month|department|specialty|kind)$")]
    pub group_by: Option<String>,
}

/// CSV export parameters: the report's, and the file's format.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// First month, `YYYY-MM` (default: eleven months before `to`).
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$")]
    pub from: Option<String>,
    /// Last month, `YYYY-MM`, a closed one (default: the last closed month).
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$")]
    pub to: Option<String>,
    /// `month` (default), `department`, `specialty` or `kind` (the usage export only).
    #[param(pattern = "^(month|department|specialty|kind)$")]
    pub group_by: Option<String>,
    /// Start the file with a UTF-8 byte order mark (for spreadsheets).
    pub bom: Option<bool>,
    /// `comma` (default) or `semicolon`.
    #[param(pattern = "^(comma|semicolon)$")]
    pub delimiter: Option<String>,
}

impl ExportQuery {
    pub fn format(&self) -> Result<CsvFormat, AppError> {
        csv_format(self.bom, self.delimiter.as_deref())
    }
}

/// A range of months (the platform's overview).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// First month, `YYYY-MM` (default: eleven months before `to`).
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$")]
    pub from: Option<String>,
    /// Last month, `YYYY-MM`, a closed one (default: the last closed month).
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$")]
    pub to: Option<String>,
}

/// A range of months as a CSV file (the practitioners' activity).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RangeExportQuery {
    /// First month, `YYYY-MM` (default: eleven months before `to`).
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$")]
    pub from: Option<String>,
    /// Last month, `YYYY-MM`, a closed one (default: the last closed month).
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$")]
    pub to: Option<String>,
    /// Start the file with a UTF-8 byte order mark (for spreadsheets).
    pub bom: Option<bool>,
    /// `comma` (default) or `semicolon`.
    #[param(pattern = "^(comma|semicolon)$")]
    pub delimiter: Option<String>,
}

impl RangeExportQuery {
    pub fn format(&self) -> Result<CsvFormat, AppError> {
        csv_format(self.bom, self.delimiter.as_deref())
    }
}

fn csv_format(bom: Option<bool>, delimiter: Option<&str>) -> Result<CsvFormat, AppError> {
    Ok(CsvFormat {
        delimiter: Delimiter::parse("delimiter", delimiter)?,
        bom: bom.unwrap_or(false),
    })
}

/// Write an optional number (empty when hidden).
pub fn figure<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Month {
        Month::parse("m", s).unwrap_or_else(|_| Month::of(Date::MIN))
    }

    #[test]
    fn months_parse_strictly_and_count() {
        assert!(Month::parse("m", "2026-13").is_err());
        assert!(Month::parse("m", "2026-1").is_err());
        assert!(Month::parse("m", "26-01").is_err());
        assert!(Month::parse("m", "2026-01-01").is_err());
        assert_eq!(m("2026-01").plus(-1).label(), "2025-12");
        assert_eq!(m("2025-12").plus(13).label(), "2027-01");
        assert_eq!(m("2025-01").span(m("2026-12")), 24);
    }

    #[test]
    fn ranges_end_at_the_last_closed_month() {
        let last = Some(m("2026-11"));
        let r = resolve_range(None, None, last).ok().flatten();
        assert_eq!(
            r,
            Some(Range {
                from: m("2025-12"),
                to: m("2026-11")
            })
        );
        assert!(resolve_range(None, Some("2026-12"), last).is_err());
        assert!(resolve_range(Some("2026-06"), Some("2026-05"), last).is_err());
        assert!(resolve_range(Some("2024-11"), Some("2026-11"), last).is_err());
        assert!(resolve_range(Some("2024-12"), Some("2026-11"), last).is_ok());
        assert_eq!(resolve_range(None, None, None).ok(), Some(None));
        assert!(resolve_range(None, Some("2026-01"), None).is_err());
    }
}
