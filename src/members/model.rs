//! Request and response types of the member routes, and their validation.
//!
//! Invariants: request types reject unknown fields; roles a tenant admin may grant are the
//! company roles only (`tenant_admin`, `hr`, `employee`) — `practitioner` is the platform's.
//! HR's summary type holds one coarse company-wide figure for a closed month: no name, e-mail,
//! user id or membership id, and no count per department or role.

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::db::{MembershipId, UserId};
use crate::error::{AppError, FieldError};
use crate::rbac::Role;

/// The roles a company grants (invitations, PATCH /members/{id}).
pub const COMPANY_ROLES: [Role; 3] = [Role::TenantAdmin, Role::Hr, Role::Employee];

/// Validate a list of company roles: non-empty, known, deduplicated, in a stable order.
pub fn parse_company_roles(field: &str, roles: &[String]) -> Result<Vec<Role>, FieldError> {
    if roles.is_empty() {
        return Err(FieldError {
            field: field.to_owned(),
            reason: "must hold at least one role".into(),
        });
    }
    for (i, r) in roles.iter().enumerate() {
        if !COMPANY_ROLES.iter().any(|c| c.as_str() == r) {
            return Err(FieldError {
                field: format!("{field}[{i}]"),
                reason: "must be one of tenant_admin, hr, employee".into(),
            });
        }
    }
    Ok(COMPANY_ROLES
        .into_iter()
        .filter(|c| roles.iter().any(|r| r == c.as_str()))
        .collect())
}

/// A department name: trimmed, 1-120 printable characters; empty means none.
pub fn parse_department(field: &str, raw: Option<&str>) -> Result<Option<String>, FieldError> {
    let Some(d) = raw.map(str::trim).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    if d.chars().count() > 120 || d.chars().any(char::is_control) {
        return Err(FieldError {
            field: field.to_owned(),
            reason: "must be 1-120 printable characters".into(),
        });
    }
    Ok(Some(d.to_owned()))
}

/// One membership, as its tenant admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    /// The membership id (the `{id}` of PATCH/DELETE /members/{id}).
    pub id: MembershipId,
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
    /// `active`, `disabled`, or `ended` (removed from the company).
    #[schema(value_type = String)]
    pub status: MemberStatus,
    pub department: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Where a membership stands, as its tenant admins see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Active,
    Disabled,
    /// Removed from the company: disabled, with `ended_at` set.
    Ended,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Ended => "ended",
        }
    }

    /// From the row: `status` (`active` | `disabled`, a CHECK constraint) and `ended_at`.
    /// Another status is refused, not guessed.
    pub fn of_row(status: &str, ended: bool) -> Result<Self, String> {
        match (status, ended) {
            (_, true) => Ok(Self::Ended),
            ("active", false) => Ok(Self::Active),
            ("disabled", false) => Ok(Self::Disabled),
            (other, false) => Err(format!(
                "unknown membership status `{}`",
                other.chars().take(40).collect::<String>()
            )),
        }
    }
}

impl std::fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A page of members.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPage {
    pub items: Vec<Member>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A role a company grants (the documented item type of `roles` in requests).
#[derive(utoipa::ToSchema)]
#[schema(as = CompanyRole)]
#[allow(dead_code, non_camel_case_types)]
pub enum CompanyRoleDoc {
    tenant_admin,
    hr,
    employee,
}

/// Filters and paging of GET /members.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MemberQuery {
    /// Page size: default 50; a number outside 1–200 counts as the nearest bound, anything
    /// else is 422 (the one `limit` rule of `http::pagination`).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
    /// Members holding this role.
    #[param(value_type = Option<String>, pattern = "^(tenant_admin|hr|employee|practitioner)$")]
    pub role: Option<String>,
    /// `active`, `disabled` or `ended` (default: active and disabled).
    #[param(value_type = Option<String>, pattern = "^(active|disabled|ended)$")]
    pub status: Option<String>,
    /// Case-insensitive substring of the name or e-mail; a term of one or two characters
    /// matches the start of a word (of the name, or of the e-mail split at `.`, `@`, `-`, `_`,
    /// `+`) when it holds a letter or a digit.
    #[param(max_length = 100)]
    pub q: Option<String>,
}

/// A validated member filter.
///
/// Every filter is always present (no optional predicate in SQL: one statement per shape, so
/// the planner sees the same conditions whichever filters the request used): the roles to
/// overlap (all of them when no role was asked), the statuses to keep, and ended or not.
#[derive(Debug)]
pub struct MemberFilter {
    /// No filter and no search: the plain list.
    pub plain: bool,
    pub roles: Vec<String>,
    pub statuses: Vec<String>,
    pub ended: bool,
    /// An ILIKE pattern with the wildcards of the search text escaped.
    pub pattern: Option<String>,
}

/// Every role a membership can hold (the `role` filter's default: all of them).
const MEMBERSHIP_ROLES: [Role; 4] = [
    Role::TenantAdmin,
    Role::Hr,
    Role::Employee,
    Role::Practitioner,
];

impl MemberQuery {
    pub fn filter(&self) -> Result<MemberFilter, AppError> {
        let mut errs = Vec::new();
        let role = self.role.as_deref().map(Role::parse);
        if matches!(role, Some(None | Some(Role::PlatformAdmin))) {
            errs.push(FieldError {
                field: "role".into(),
                reason: "must be tenant_admin, hr, employee or practitioner".into(),
            });
        }
        if let Some(s) = &self.status
            && !["active", "disabled", "ended"].contains(&s.as_str())
        {
            errs.push(FieldError {
                field: "status".into(),
                reason: "must be active, disabled or ended".into(),
            });
        }
        let q = self.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
        if q.is_some_and(|q| q.chars().count() > 100) {
            errs.push(FieldError {
                field: "q".into(),
                reason: "must be at most 100 characters".into(),
            });
        }

        if !errs.is_empty() {
            return Err(AppError::Validation(errs));
        }
        let roles = match role.flatten() {
            Some(r) => vec![r.as_str().to_owned()],
            None => MEMBERSHIP_ROLES
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
        };
        // `ended` is a disabled membership with `ended_at` set (a check constraint says so).
        let (statuses, ended): (&[&str], bool) = match self.status.as_deref() {
            Some("active") => (&["active"], false),
            Some("disabled") => (&["disabled"], false),
            Some(_) => (&["disabled"], true),
            None => (&["active", "disabled"], false),
        };
        Ok(MemberFilter {
            plain: self.role.is_none() && self.status.is_none() && q.is_none(),
            roles,
            statuses: statuses.iter().map(|s| (*s).to_owned()).collect(),
            ended,
            pattern: q.map(crate::db::like_contains),
        })
    }
}

/// `Some(None)` for an explicit `null`, `None` for an absent field.
fn explicit<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// What a tenant admin may change of a membership.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberPatch {
    /// Company roles (a subset of tenant_admin, hr, employee).
    #[serde(default)]
    #[schema(value_type = Option<Vec<CompanyRoleDoc>>, min_items = 1)]
    pub roles: Option<Vec<String>>,
    /// `active` or `disabled`.
    #[serde(default)]
    #[schema(pattern = "^(active|disabled)$")]
    pub status: Option<String>,
    /// A department name (one line, at most 120 characters), or `null` to clear it.
    #[serde(default, deserialize_with = "explicit")]
    #[schema(value_type = Option<String>, max_length = 120)]
    pub department: Option<Option<String>>,
}

/// A validated [`MemberPatch`].
#[derive(Debug)]
pub struct ValidMemberPatch {
    pub roles: Option<Vec<Role>>,
    /// `Active` or `Disabled` (never `Ended`: ending is DELETE).
    pub status: Option<MemberStatus>,
    pub department: Option<Option<String>>,
}

impl MemberPatch {
    pub fn parse(self) -> Result<ValidMemberPatch, AppError> {
        let mut errs = Vec::new();
        let roles = match self
            .roles
            .as_deref()
            .map(|r| parse_company_roles("roles", r))
        {
            Some(Ok(r)) => Some(r),
            Some(Err(e)) => {
                errs.push(e);
                None
            }
            None => None,
        };
        let status = match self.status.as_deref() {
            None => None,
            Some("active") => Some(MemberStatus::Active),
            Some("disabled") => Some(MemberStatus::Disabled),
            Some(_) => {
                errs.push(FieldError {
                    field: "status".into(),
                    reason: "must be active or disabled".into(),
                });
                None
            }
        };
        let department = match self.department {
            Some(d) => match parse_department("department", d.as_deref()) {
                Ok(d) => Some(d),
                Err(e) => {
                    errs.push(e);
                    None
                }
            },
            None => None,
        };
        if !errs.is_empty() {
            return Err(AppError::Validation(errs));
        }
        Ok(ValidMemberPatch {
            roles,
            status,
            department,
        })
    }
}

/// HR's view of the company's people: ONE company-wide figure for the last complete month,
/// coarsened. No count per department or role, nothing live: HR knows the org chart and can
/// ask again, so any live or per-department count would tell it who signed up (DESIGN §7).
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberSummary {
    /// The closed period the figure describes: the last complete calendar month in the
    /// company's time zone, `[period_start, period_end)`.
    #[serde(with = "time::serde::rfc3339")]
    pub period_start: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub period_end: OffsetDateTime,
    /// Members are counted in bands of this size (`max(min_cohort, 10)`).
    pub band: i32,
    /// Company members enrolled at `period_end`, rounded DOWN to a multiple of `band`
    /// (the true figure is in `[members, members + band)`); `null` when suppressed.
    pub members: Option<i32>,
    /// True when fewer than one band of members were enrolled.
    pub suppressed: bool,
    /// Seats of the plan.
    pub seats: i32,
}
