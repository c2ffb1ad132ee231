//! `GET|PATCH /tenant`: a company's own settings, for its tenant admins.
//!
//! Invariants: a tenant admin changes only name, branding, locale, time zone, allowed e-mail
//! domains and `min_cohort` (≥ 3). The body rejects every other field (plan, seats, allowance,
//! status, origins stay with the platform — and the database trigger refuses them too); a
//! file-managed tenant is not changed through the API (the policy hides it from UPDATE, and we
//! answer 409 `managed_by_file`).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::model::{Branding, rules};
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::db::TenantId;
use crate::error::{AppError, AppResult, FieldError};
use crate::http::extract::AppJson;

/// The company's settings, plan and seats.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantSettings {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub plan: String,
    pub status: String,
    pub locale: String,
    pub time_zone: String,
    /// Consultations per employee per year (set by the platform).
    pub allowance: i32,
    /// Smallest cell an HR report shows.
    pub min_cohort: i32,
    /// Days after a consultation's end during which its participants can still read and send
    /// messages; then the conversation is deleted.
    pub message_retention_days: i32,
    pub allowed_email_domains: Vec<String>,
    pub branding: Branding,
    /// `file` (changed by editing `tenants/<slug>.toml`) or `api`.
    pub managed_by: String,
    pub seats: i32,
    /// Active company members plus pending invitations.
    pub seats_used: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What a tenant admin may change. Absent fields stay as they are; `branding` replaces the
/// whole object.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSettingsPatch {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    #[serde(default)]
    pub branding: Option<Branding>,
    /// `en` or `fr`.
    #[serde(default)]
    #[schema(pattern = "^(en|fr)$")]
    pub locale: Option<String>,
    /// An IANA name known to PostgreSQL (`pg_timezone_names`).
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub allowed_email_domains: Option<Vec<String>>,
    /// 3 to 1000.
    #[serde(default)]
    #[schema(minimum = 3, maximum = 1000)]
    pub min_cohort: Option<i32>,
    /// 0 to 365 days.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 365)]
    pub message_retention_days: Option<i32>,
}

/// A validated patch.
#[derive(Debug, Default)]
struct ValidPatch {
    name: Option<String>,
    branding: Option<serde_json::Value>,
    locale: Option<String>,
    time_zone: Option<String>,
    allowed_email_domains: Option<Vec<String>>,
    min_cohort: Option<i32>,
    message_retention_days: Option<i32>,
}

fn field(errs: &mut Vec<FieldError>, name: &str, reason: &str) {
    errs.push(FieldError {
        field: name.to_owned(),
        reason: reason.to_owned(),
    });
}

impl TenantSettingsPatch {
    fn parse(self) -> Result<ValidPatch, AppError> {
        let mut errs = Vec::new();
        let mut out = ValidPatch::default();
        if let Some(n) = self.name {
            match rules::name(&n) {
                Ok(n) => out.name = Some(n),
                Err(reason) => field(&mut errs, "name", reason),
            }
        }
        if let Some(b) = self.branding {
            for (f, reason) in rules::branding(&b) {
                field(&mut errs, &format!("branding.{f}"), reason);
            }
            out.branding =
                Some(serde_json::to_value(&b).map_err(|e| AppError::Internal(e.to_string()))?);
        }
        if let Some(l) = self.locale {
            if l != "en" && l != "fr" {
                field(&mut errs, "locale", "must be en or fr");
            }
            out.locale = Some(l);
        }
        if let Some(tz) = self.time_zone {
            if let Err(reason) = rules::time_zone(&tz) {
                field(&mut errs, "time_zone", reason);
            }
            out.time_zone = Some(tz);
        }
        if let Some(domains) = self.allowed_email_domains {
            if domains.len() > 50 {
                field(&mut errs, "allowed_email_domains", "at most 50 domains");
            }
            match rules::email_domains(&domains) {
                Ok(clean) => out.allowed_email_domains = Some(clean),
                Err(bad) => {
                    for (i, reason) in bad {
                        field(&mut errs, &format!("allowed_email_domains[{i}]"), &reason);
                    }
                }
            }
        }
        if let Some(k) = self.min_cohort {
            if let Err(reason) = rules::min_cohort(k) {
                field(&mut errs, "min_cohort", reason);
            }
            out.min_cohort = Some(k);
        }
        if let Some(d) = self.message_retention_days {
            if let Err(reason) = rules::message_retention_days(d) {
                field(&mut errs, "message_retention_days", reason);
            }
            out.message_retention_days = Some(d);
        }
        if errs.is_empty() {
            Ok(out)
        } else {
            Err(AppError::Validation(errs))
        }
    }
}

async fn load(
    conn: &mut PgConnection,
    tenant: TenantId,
    now: OffsetDateTime,
) -> AppResult<TenantSettings> {
    let t = sqlx::query!(
        r#"SELECT t.id, t.slug, t.name, t.plan, t.status, t.locale, t.time_zone, t.allowance,
                  t.min_cohort, t.message_retention_days, t.allowed_email_domains, t.branding, t.managed_by, t.updated_at,
                  s.seats AS "seats!", s.used AS "seats_used!"
           FROM tenants t, app_private.seat_usage($2) s
           WHERE t.id = $1"#,
        tenant.as_uuid(),
        now
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(AppError::TenantNotFound)?;
    // The column is validated on every write path; an unreadable one shows as empty.
    let branding = serde_json::from_value(t.branding).unwrap_or_default();
    Ok(TenantSettings {
        id: TenantId(t.id),
        slug: t.slug,
        name: t.name,
        plan: t.plan,
        status: t.status,
        locale: t.locale,
        time_zone: t.time_zone,
        allowance: t.allowance,
        min_cohort: t.min_cohort,
        message_retention_days: t.message_retention_days,
        allowed_email_domains: t.allowed_email_domains,
        branding,
        managed_by: t.managed_by,
        seats: t.seats,
        seats_used: t.seats_used,
        updated_at: t.updated_at,
    })
}

/// The company's settings, plan and seats (tenant admins).
#[utoipa::path(get, path = "/api/v1/tenant", tag = "members",
    extensions(("x-authz" = json!({"resource": "tenant_settings", "action": "read"}))),
    security(("bearer" = [])),
    responses(
        (status = 200, body = TenantSettings, description = "The company's settings"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn get_tenant(
    State(state): State<AppState>,
    actor: Actor,
) -> AppResult<Json<TenantSettings>> {
    actor.require_company()?;
    let mut tx = actor.begin(&state).await?;
    let settings = load(&mut tx, actor.tenant, state.clock.now()).await?;
    tx.commit().await?;
    Ok(Json(settings))
}

/// Change the company's settings (tenant admins; not for file-managed tenants).
#[utoipa::path(patch, path = "/api/v1/tenant", tag = "members",
    extensions(("x-authz" = json!({"resource": "tenant_settings", "action": "update"}))),
    security(("bearer" = [])),
    request_body = TenantSettingsPatch,
    responses(
        (status = 200, body = TenantSettings, description = "The updated settings"),
        (status = 400, description = "Unknown field (plan, seats, … belong to the platform) or malformed body"),
        (status = 409, description = "managed_by_file: edit tenants/<slug>.toml instead"),
        (status = 422, description = "Invalid field, named"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn update_tenant(
    State(state): State<AppState>,
    actor: Actor,
    AppJson(req): AppJson<TenantSettingsPatch>,
) -> AppResult<Json<TenantSettings>> {
    actor.require_company()?;
    let patch = req.parse()?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    if let Some(tz) = &patch.time_zone {
        let known = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1) AS "known!""#,
            tz
        )
        .fetch_one(&mut *tx)
        .await?;
        if !known {
            return Err(AppError::invalid(
                "time_zone",
                "is not a known IANA time zone",
            ));
        }
    }
    let updated = sqlx::query!(
        "UPDATE tenants SET
             name = coalesce($2, name),
             branding = coalesce($3, branding),
             locale = coalesce($4, locale),
             time_zone = coalesce($5, time_zone),
             allowed_email_domains = coalesce($6, allowed_email_domains),
             min_cohort = coalesce($7, min_cohort),
             updated_at = $8,
             message_retention_days = coalesce($9, message_retention_days)
         WHERE id = $1",
        actor.tenant.as_uuid(),
        patch.name,
        patch.branding,
        patch.locale,
        patch.time_zone,
        patch.allowed_email_domains.as_deref(),
        patch.min_cohort,
        now,
        patch.message_retention_days
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if updated == 0 {
        let managed_by = sqlx::query_scalar!(
            "SELECT managed_by FROM tenants WHERE id = $1",
            actor.tenant.as_uuid()
        )
        .fetch_optional(&mut *tx)
        .await?;
        return Err(match managed_by.as_deref() {
            Some("file") => AppError::Conflict {
                code: "managed_by_file",
                detail: "This company is declared in a tenant file; change the file instead."
                    .into(),
            },
            _ => AppError::TenantNotFound,
        });
    }
    let settings = load(&mut tx, actor.tenant, now).await?;
    tx.commit().await?;
    tracing::info!(tenant = %actor.tenant, "tenant settings updated");
    // The cached profile (name, branding) refreshes within the tenant cache TTL.
    Ok(Json(settings))
}
