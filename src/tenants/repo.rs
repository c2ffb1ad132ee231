//! Tenant persistence: host resolution (definer function), the public profile (RLS-scoped),
//! and the operator's declarative apply/list/export (login role, CLI only).
//!
//! Apply and API-managed tenants: a file whose slug is API-managed is refused (the API owns
//! that tenant's state), unless the operator passes `--adopt` ([`ApplyOptions::adopt`]): then
//! the tenant switches to file management and the file becomes its desired state. This is how
//! a file exported by `serein tenants export` moves an API-created tenant into the files.
//! Offboarding/offboarded tenants are never touched by apply (a file cannot revive a tombstone).

use sqlx::PgConnection;

use super::model::{Branding, Locale, Plan, TenantProfile, TenantSpec, TenantStatus};
use crate::db::TenantId;

/// What routing needs to know about a slug.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub id: TenantId,
    pub status: TenantStatus,
    pub web_origins: Vec<String>,
}

/// Look a slug up through `app_private.resolve_tenant` (runs in a `SystemTx`).
pub async fn resolve(conn: &mut PgConnection, slug: &str) -> Result<Option<Resolved>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT id AS "id!: TenantId", status AS "status!", web_origins AS "web_origins!"
           FROM app_private.resolve_tenant($1)"#,
        slug
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Resolved {
        id: r.id,
        // An unknown status (newer schema) is treated as suspended: fail closed.
        status: TenantStatus::parse(&r.status).unwrap_or(TenantStatus::Suspended),
        web_origins: r.web_origins,
    }))
}

/// The public profile of the current tenant (runs in a `TenantTx`; RLS shows only that row).
pub async fn profile(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Option<TenantProfile>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT slug, name, locale, time_zone, branding,
                  cardinality(allowed_email_domains) > 0 AS "self_signup!"
           FROM tenants WHERE id = $1"#,
        tenant as TenantId
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| TenantProfile {
        slug: r.slug,
        name: r.name,
        locale: r.locale,
        time_zone: r.time_zone,
        branding: serde_json::from_value::<Branding>(r.branding).unwrap_or_default(),
        self_signup: r.self_signup,
    }))
}

/// Outcome of a declarative apply.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub suspended: Vec<String>,
    pub unchanged: Vec<String>,
}

impl ApplyReport {
    pub fn changed(&self) -> bool {
        !(self.created.is_empty() && self.updated.is_empty() && self.suspended.is_empty())
    }
}

/// Why an apply was refused (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// How [`apply_with`] treats API-managed tenants.
#[derive(Debug, Default, Clone, Copy)]
pub struct ApplyOptions {
    /// Take API-managed tenants named by a file over (they become file-managed).
    pub adopt: bool,
}

/// Make the database match `specs` for file-managed tenants, in one transaction: create what is
/// missing, update what differs, suspend file-managed tenants that no longer have a file.
/// Idempotent: a second run reports everything unchanged and writes nothing.
pub async fn apply(
    conn: &mut PgConnection,
    specs: &[TenantSpec],
) -> Result<ApplyReport, ApplyError> {
    apply_with(conn, specs, ApplyOptions::default()).await
}

/// [`apply`] with options (see the module header about `adopt`).
pub async fn apply_with(
    conn: &mut PgConnection,
    specs: &[TenantSpec],
    options: ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    let mut tx = sqlx::Connection::begin(conn).await?;
    // One apply at a time (two replicas starting together, or an operator and a replica).
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('serein.tenants.apply')::bigint)")
        .execute(&mut *tx)
        .await?;

    let mut problems = Vec::new();
    for s in specs {
        let known: bool = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = $1) AS "known!""#,
            s.time_zone
        )
        .fetch_one(&mut *tx)
        .await?;
        if !known {
            problems.push(format!(
                "{}.toml: field `time_zone`: {:?} is not a time zone PostgreSQL knows",
                s.slug, s.time_zone
            ));
        }
        let existing = sqlx::query!(
            "SELECT managed_by, status FROM tenants WHERE slug = $1",
            s.slug
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            if row.managed_by == "api" && !options.adopt {
                problems.push(format!(
                    "{}.toml: field `slug`: tenant {:?} is managed through the platform API, not by files \
                     (pass --adopt to hand it to the files)",
                    s.slug, s.slug
                ));
            }
            if row.managed_by == "platform" {
                problems.push(format!(
                    "{}.toml: field `slug`: {:?} is the platform tenant",
                    s.slug, s.slug
                ));
            }
            if row.status == "offboarding" || row.status == "offboarded" {
                problems.push(format!(
                    "{}.toml: field `slug`: tenant {:?} is {} and cannot be applied",
                    s.slug, s.slug, row.status
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(ApplyError::Invalid(problems.join("\n")));
    }

    let mut report = ApplyReport::default();
    for s in specs {
        let branding = serde_json::to_value(&s.branding)
            .map_err(|e| ApplyError::Invalid(format!("{}.toml: branding: {e}", s.slug)))?;
        // One statement: insert, or update only when something differs (so a second run
        // writes nothing and `updated_at` stays put). `xmax = 0` tells an insert from an update;
        // no row back means unchanged.
        let outcome: Option<bool> = sqlx::query_scalar!(
            r#"INSERT INTO tenants AS t (id, slug, name, plan, status, locale, time_zone, allowance,
                                         min_cohort, allowed_email_domains, web_origins, branding,
                                         seats, late_cancel_hours, message_retention_days, managed_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $15, $16, 'file')
               ON CONFLICT (slug) DO UPDATE
                  SET name = EXCLUDED.name, plan = EXCLUDED.plan, status = EXCLUDED.status,
                      locale = EXCLUDED.locale, time_zone = EXCLUDED.time_zone,
                      allowance = EXCLUDED.allowance, min_cohort = EXCLUDED.min_cohort,
                      allowed_email_domains = EXCLUDED.allowed_email_domains,
                      web_origins = EXCLUDED.web_origins, branding = EXCLUDED.branding,
                      seats = EXCLUDED.seats, late_cancel_hours = EXCLUDED.late_cancel_hours,
                      message_retention_days = EXCLUDED.message_retention_days,
                      managed_by = 'file',
                      updated_at = now()
                WHERE (t.managed_by = 'file' OR ($14 AND t.managed_by = 'api'))
                  AND t.status IN ('active', 'suspended')
                  AND ((t.name, t.plan, t.status, t.locale, t.time_zone, t.allowance, t.min_cohort,
                        t.allowed_email_domains, t.web_origins, t.branding, t.seats,
                        t.late_cancel_hours, t.message_retention_days)
                       IS DISTINCT FROM
                       (EXCLUDED.name, EXCLUDED.plan, EXCLUDED.status, EXCLUDED.locale,
                        EXCLUDED.time_zone, EXCLUDED.allowance, EXCLUDED.min_cohort,
                        EXCLUDED.allowed_email_domains, EXCLUDED.web_origins, EXCLUDED.branding,
                        EXCLUDED.seats, EXCLUDED.late_cancel_hours,
                        EXCLUDED.message_retention_days)
                       OR t.managed_by <> 'file')
               RETURNING (xmax = 0) AS "inserted!""#,
            TenantId::new() as TenantId,
            s.slug,
            s.name,
            s.plan.as_str(),
            s.status.as_str(),
            s.locale.as_str(),
            s.time_zone,
            s.allowance,
            s.min_cohort,
            &s.allowed_email_domains,
            &s.web_origins,
            branding,
            s.seats,
            options.adopt,
            s.late_cancel_hours,
            s.message_retention_days,
        )
        .fetch_optional(&mut *tx)
        .await?;
        match outcome {
            Some(true) => report.created.push(s.slug.clone()),
            Some(false) => report.updated.push(s.slug.clone()),
            None => report.unchanged.push(s.slug.clone()),
        }
    }

    let slugs: Vec<String> = specs.iter().map(|s| s.slug.clone()).collect();
    let suspended: Vec<String> = sqlx::query_scalar!(
        r#"UPDATE tenants SET status = 'suspended', updated_at = now()
           WHERE managed_by = 'file' AND status = 'active' AND NOT (slug = ANY($1))
           RETURNING slug"#,
        &slugs
    )
    .fetch_all(&mut *tx)
    .await?;
    report.suspended = suspended;
    tx.commit().await?;
    Ok(report)
}

/// One line of `serein tenants list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TenantRow {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub plan: String,
    pub status: String,
    pub managed_by: String,
}

/// Every tenant (operator view; login role).
pub async fn list(conn: &mut PgConnection) -> Result<Vec<TenantRow>, sqlx::Error> {
    sqlx::query_as!(
        TenantRow,
        r#"SELECT id AS "id: TenantId", slug, name, plan, status, managed_by
           FROM tenants WHERE managed_by <> 'platform' ORDER BY slug"#
    )
    .fetch_all(conn)
    .await
}

/// Rebuild the validated spec of a stored row (the row was written through the same
/// validation, so this fails only on a schema newer than this code).
#[allow(clippy::too_many_arguments)]
pub fn spec_from_row(
    slug: String,
    name: String,
    plan: &str,
    status: &str,
    locale: &str,
    time_zone: String,
    allowance: i32,
    late_cancel_hours: i32,
    seats: i32,
    min_cohort: i32,
    message_retention_days: i32,
    allowed_email_domains: Vec<String>,
    web_origins: Vec<String>,
    branding: serde_json::Value,
) -> Result<TenantSpec, String> {
    Ok(TenantSpec {
        plan: Plan::parse(plan).ok_or_else(|| format!("{slug}: unknown plan {plan:?}"))?,
        status: TenantStatus::parse(status)
            .ok_or_else(|| format!("{slug}: unknown status {status:?}"))?,
        locale: Locale::parse(locale)
            .ok_or_else(|| format!("{slug}: unknown locale {locale:?}"))?,
        branding: serde_json::from_value(branding).map_err(|e| format!("{slug}: branding: {e}"))?,
        slug,
        name,
        time_zone,
        allowance,
        late_cancel_hours,
        seats,
        min_cohort,
        message_retention_days,
        allowed_email_domains,
        web_origins,
    })
}

/// One tenant to export, with who manages it.
#[derive(Debug, Clone)]
pub struct Exported {
    pub spec: TenantSpec,
    pub managed_by: String,
}

/// Every company tenant in the file model, for `serein tenants export` (login role). The
/// platform tenant and tenants in the offboarding states (which a file cannot declare) are
/// left out.
pub async fn export(conn: &mut PgConnection) -> Result<Vec<Exported>, ApplyError> {
    let rows = sqlx::query!(
        r#"SELECT slug, name, plan, status, locale, time_zone, allowance, late_cancel_hours,
                  seats, min_cohort, message_retention_days, allowed_email_domains, web_origins,
                  branding, managed_by
           FROM tenants
           WHERE managed_by <> 'platform' AND status IN ('active', 'suspended')
           ORDER BY slug"#
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            let spec = spec_from_row(
                r.slug,
                r.name,
                &r.plan,
                &r.status,
                &r.locale,
                r.time_zone,
                r.allowance,
                r.late_cancel_hours,
                r.seats,
                r.min_cohort,
                r.message_retention_days,
                r.allowed_email_domains,
                r.web_origins,
                r.branding,
            )
            .map_err(ApplyError::Invalid)?;
            Ok(Exported {
                spec,
                managed_by: r.managed_by,
            })
        })
        .collect()
}
