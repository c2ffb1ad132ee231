//! Request and response types of the platform tenant API. Bodies become the shared
//! [`TenantSpec`] through [`TenantSpec::parse`] (the files' validation), so the API and
//! `tenants/*.toml` cannot drift apart.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::db::{TenantId, UserId};
use crate::error::{AppError, FieldError};
use crate::tenants::model::{
    self, Branding, Locale, Plan, PrivacyFile, SignupFile, SpecError, TenantFile, TenantSpec,
    TenantStatus, api_field,
};

fn spec_errors(errs: Vec<SpecError>) -> AppError {
    AppError::Validation(
        errs.into_iter()
            .map(|e| FieldError {
                field: api_field(&e.field),
                reason: e.reason,
            })
            .collect(),
    )
}

/// A new company. Omitted settings take the files' defaults (seats: the plan's).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Lower-case DNS label, not reserved; the company's host is `{slug}.{BASE_DOMAIN}`.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub slug: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    pub plan: Plan,
    /// Default: the plan's (starter 50, standard 500, enterprise 5000).
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub seats: Option<i32>,
    /// Consultations per employee per year (default 6).
    #[schema(minimum = 0, maximum = 100)]
    pub allowance: Option<i32>,
    /// Hours before a start inside which an employee's cancellation still uses up the session
    /// (0–168, default 24).
    #[schema(minimum = 0, maximum = 168)]
    pub late_cancel_hours: Option<i32>,
    pub locale: Option<Locale>,
    /// IANA name known to PostgreSQL (default `UTC`).
    pub time_zone: Option<String>,
    /// Smallest cell an HR report may show (3–1000, default 5).
    #[schema(minimum = 3, maximum = 1000)]
    pub min_cohort: Option<i32>,
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    #[serde(default)]
    pub web_origins: Vec<String>,
    #[serde(default)]
    pub branding: Branding,
}

impl CreateTenant {
    /// Validate through the file model.
    pub fn into_spec(self) -> Result<TenantSpec, AppError> {
        let file = TenantFile {
            slug: None,
            name: self.name,
            plan: self.plan,
            status: TenantStatus::Active,
            locale: self.locale.unwrap_or_else(model::default_locale),
            time_zone: self.time_zone.unwrap_or_else(model::default_time_zone),
            allowance: self.allowance.unwrap_or_else(model::default_allowance),
            late_cancel_hours: self
                .late_cancel_hours
                .unwrap_or_else(model::default_late_cancel_hours),
            seats: self.seats,
            web_origins: self.web_origins,
            signup: SignupFile {
                allowed_email_domains: self.allowed_email_domains,
            },
            privacy: PrivacyFile {
                min_cohort: self.min_cohort.unwrap_or_else(model::default_min_cohort),
                message_retention_days: model::default_message_retention_days(),
            },
            branding: self.branding,
        };
        TenantSpec::parse(&self.slug, file).map_err(spec_errors)
    }
}

/// A partial update: absent fields keep their value. `branding`, `allowed_email_domains` and
/// `web_origins` are replaced as a whole. Changing `plan` without `seats` sets seats to the new
/// plan's default (as a file that omits seats would).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTenant {
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    pub plan: Option<Plan>,
    #[schema(minimum = 0, maximum = 1_000_000)]
    pub seats: Option<i32>,
    #[schema(minimum = 0, maximum = 100)]
    pub allowance: Option<i32>,
    #[schema(minimum = 0, maximum = 168)]
    pub late_cancel_hours: Option<i32>,
    pub locale: Option<Locale>,
    pub time_zone: Option<String>,
    #[schema(minimum = 3, maximum = 1000)]
    pub min_cohort: Option<i32>,
    pub allowed_email_domains: Option<Vec<String>>,
    pub web_origins: Option<Vec<String>>,
    pub branding: Option<Branding>,
}

impl PatchTenant {
    /// The spec after this patch, validated exactly like a file.
    pub fn apply(self, current: &TenantSpec) -> Result<TenantSpec, AppError> {
        let mut f = current.to_file();
        if let Some(v) = self.name {
            f.name = v;
        }
        if let Some(plan) = self.plan
            && plan != current.plan
        {
            f.plan = plan;
            f.seats = None;
        }
        if let Some(v) = self.seats {
            f.seats = Some(v);
        }
        if let Some(v) = self.allowance {
            f.allowance = v;
        }
        if let Some(v) = self.late_cancel_hours {
            f.late_cancel_hours = v;
        }
        if let Some(v) = self.locale {
            f.locale = v;
        }
        if let Some(v) = self.time_zone {
            f.time_zone = v;
        }
        if let Some(v) = self.min_cohort {
            f.privacy.min_cohort = v;
        }
        if let Some(v) = self.allowed_email_domains {
            f.signup.allowed_email_domains = v;
        }
        if let Some(v) = self.web_origins {
            f.web_origins = v;
        }
        if let Some(v) = self.branding {
            f.branding = v;
        }
        TenantSpec::parse(&current.slug, f).map_err(spec_errors)
    }
}

/// `GET /platform/tenants` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size: default 50; a number outside 1–200 counts as the nearest bound, anything
    /// else is 422 (the one `limit` rule of `http::pagination`).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub limit: Option<String>,
    /// Opaque cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Only tenants in this status.
    pub status: Option<TenantStatus>,
}

/// `DELETE /platform/tenants/{id}` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OffboardQuery {
    /// Days before the purge (0–365; default `OFFBOARDING_GRACE_DAYS`).
    #[param(minimum = 0, maximum = 365)]
    pub grace_days: Option<i64>,
}

/// Active memberships by role.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleCounts {
    pub tenant_admin: i32,
    pub hr: i32,
    pub employee: i32,
    pub practitioner: i32,
}

/// What the platform learns about a company's people: counts only, never who.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberCounts {
    /// Active members holding a company role plus pending invitations (practitioners take
    /// no seat).
    pub seats_used: i32,
    /// `seats - seats_used`, never below 0.
    pub seats_available: i32,
    pub active_members: i32,
    pub disabled_members: i32,
    pub pending_invitations: i32,
    pub by_role: RoleCounts,
}

/// A company as the platform sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub plan: Plan,
    pub seats: i32,
    pub allowance: i32,
    pub late_cancel_hours: i32,
    pub status: TenantStatus,
    pub locale: Locale,
    pub time_zone: String,
    pub min_cohort: i32,
    pub allowed_email_domains: Vec<String>,
    pub web_origins: Vec<String>,
    pub branding: Branding,
    /// `api` (this API changes it) or `file` (read-only here: edit `tenants/<slug>.toml`).
    pub managed_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub offboard_requested_at: Option<OffsetDateTime>,
    /// When the purge job may destroy the keys and delete the data (offboarding only).
    #[serde(with = "time::serde::rfc3339::option")]
    pub purge_after: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub offboarded_at: Option<OffsetDateTime>,
    /// Counts of the company's people (single-tenant answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<MemberCounts>,
}

/// A page of tenants.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantPage {
    pub items: Vec<TenantView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The practitioner assignment of one person in one company.
#[derive(Debug, Serialize, ToSchema)]
pub struct Assignment {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// `assigned` (made now; the same whether or not the person was a member of that company)
    /// or `unchanged` (the practitioner assignment already held).
    pub outcome: String,
}
