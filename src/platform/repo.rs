//! Platform tenant persistence, inside a platform admin's RLS-scoped transaction: the
//! `tenants_platform_*` policies show every company row (never tenant zero's changes) and let
//! only API-managed rows change; the column grants and `tenants_guard_update` do the rest.

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::model::{MemberCounts, RoleCounts, TenantView};
use crate::db::{MembershipId, TenantId, UserId};
use crate::error::AppError;
use crate::tenants::model::{TenantSpec, TenantStatus};
use crate::tenants::repo::spec_from_row;

/// A stored company row.
#[derive(Debug)]
pub struct TenantRow {
    pub id: TenantId,
    pub slug: String,
    pub name: String,
    pub plan: String,
    pub seats: i32,
    pub status: String,
    pub locale: String,
    pub time_zone: String,
    pub allowance: i32,
    pub late_cancel_hours: i32,
    pub min_cohort: i32,
    pub message_retention_days: i32,
    pub allowed_email_domains: Vec<String>,
    pub web_origins: Vec<String>,
    pub branding: serde_json::Value,
    pub managed_by: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub offboard_requested_at: Option<OffsetDateTime>,
    pub purge_after: Option<OffsetDateTime>,
    pub offboarded_at: Option<OffsetDateTime>,
}

impl TenantRow {
    pub fn status(&self) -> TenantStatus {
        // An unknown status (newer schema) reads as offboarded: nothing may be done to it.
        TenantStatus::parse(&self.status).unwrap_or(TenantStatus::Offboarded)
    }

    pub fn spec(&self) -> Result<TenantSpec, AppError> {
        spec_from_row(
            self.slug.clone(),
            self.name.clone(),
            &self.plan,
            &self.status,
            &self.locale,
            self.time_zone.clone(),
            self.allowance,
            self.late_cancel_hours,
            self.seats,
            self.min_cohort,
            self.message_retention_days,
            self.allowed_email_domains.clone(),
            self.web_origins.clone(),
            self.branding.clone(),
        )
        .map_err(AppError::Internal)
    }

    pub fn view(&self, members: Option<MemberCounts>) -> Result<TenantView, AppError> {
        let spec = self.spec()?;
        Ok(TenantView {
            id: self.id,
            slug: spec.slug,
            name: spec.name,
            plan: spec.plan,
            seats: spec.seats,
            allowance: spec.allowance,
            late_cancel_hours: spec.late_cancel_hours,
            status: spec.status,
            locale: spec.locale,
            time_zone: spec.time_zone,
            min_cohort: spec.min_cohort,
            allowed_email_domains: spec.allowed_email_domains,
            web_origins: spec.web_origins,
            branding: spec.branding,
            managed_by: self.managed_by.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            offboard_requested_at: self.offboard_requested_at,
            purge_after: self.purge_after,
            offboarded_at: self.offboarded_at,
            members,
        })
    }
}

/// A page of company tenants in slug order, after `after`.
pub async fn list(
    conn: &mut PgConnection,
    status: Option<TenantStatus>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<TenantRow>, sqlx::Error> {
    sqlx::query_as!(
        TenantRow,
        r#"SELECT id AS "id: TenantId", slug, name, plan, seats, status, locale, time_zone,
                  allowance, late_cancel_hours, min_cohort, message_retention_days,
                  allowed_email_domains, web_origins, branding, managed_by,
                  created_at, updated_at, offboard_requested_at, purge_after, offboarded_at
           FROM tenants
           WHERE managed_by <> 'platform'
             AND ($1::text IS NULL OR status = $1)
             AND slug > $2
           ORDER BY slug
           LIMIT $3"#,
        status.map(TenantStatus::as_str),
        // The first page starts after the empty slug (every slug is longer).
        after.unwrap_or(""),
        limit
    )
    .fetch_all(conn)
    .await
}

/// One company tenant (never tenant zero).
pub async fn get(conn: &mut PgConnection, id: TenantId) -> Result<Option<TenantRow>, sqlx::Error> {
    sqlx::query_as!(
        TenantRow,
        r#"SELECT id AS "id: TenantId", slug, name, plan, seats, status, locale, time_zone,
                  allowance, late_cancel_hours, min_cohort, message_retention_days,
                  allowed_email_domains, web_origins, branding, managed_by,
                  created_at, updated_at, offboard_requested_at, purge_after, offboarded_at
           FROM tenants
           WHERE id = $1 AND managed_by <> 'platform'"#,
        id as TenantId
    )
    .fetch_optional(conn)
    .await
}

/// Does PostgreSQL know this time zone?
pub async fn time_zone_known(conn: &mut PgConnection, tz: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = $1) AS "known!""#,
        tz
    )
    .fetch_one(conn)
    .await
}

/// Insert an API-managed, active company. A taken slug (tombstones included) fails on
/// `tenants_slug_key`.
pub async fn insert(
    conn: &mut PgConnection,
    id: TenantId,
    spec: &TenantSpec,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    let branding = serde_json::to_value(&spec.branding)
        .map_err(|e| AppError::Internal(format!("branding: {e}")))?;
    sqlx::query!(
        r#"INSERT INTO tenants (id, slug, name, plan, seats, status, locale, time_zone, allowance,
                                min_cohort, allowed_email_domains, web_origins, branding,
                                managed_by, created_at, updated_at, late_cancel_hours)
           VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $9, $10, $11, $12, 'api', $13, $13,
                   $14)"#,
        id as TenantId,
        spec.slug,
        spec.name,
        spec.plan.as_str(),
        spec.seats,
        spec.locale.as_str(),
        spec.time_zone,
        spec.allowance,
        spec.min_cohort,
        &spec.allowed_email_domains,
        &spec.web_origins,
        branding,
        now,
        spec.late_cancel_hours
    )
    .execute(conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("tenants_slug_key") => {
            AppError::Conflict {
                code: "slug_taken",
                detail: "This slug is taken (slugs of offboarded companies are never reused)."
                    .into(),
            }
        }
        _ => e.into(),
    })?;
    Ok(())
}

/// Write a validated spec's settings (not the status) to an API-managed row, if it is still the
/// version read (`read_at` = its `updated_at`): a tenant admin's concurrent `PATCH /tenant` is
/// never silently overwritten. Returns whether a row was written.
pub async fn update_settings(
    conn: &mut PgConnection,
    id: TenantId,
    spec: &TenantSpec,
    read_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<bool, AppError> {
    let branding = serde_json::to_value(&spec.branding)
        .map_err(|e| AppError::Internal(format!("branding: {e}")))?;
    let done = sqlx::query!(
        r#"UPDATE tenants
           SET name = $2, plan = $3, seats = $4, locale = $5, time_zone = $6, allowance = $7,
               min_cohort = $8, allowed_email_domains = $9, web_origins = $10, branding = $11,
               updated_at = $12, late_cancel_hours = $14
           WHERE id = $1 AND managed_by = 'api' AND status IN ('active', 'suspended')
             AND updated_at = $13"#,
        id as TenantId,
        spec.name,
        spec.plan.as_str(),
        spec.seats,
        spec.locale.as_str(),
        spec.time_zone,
        spec.allowance,
        spec.min_cohort,
        &spec.allowed_email_domains,
        &spec.web_origins,
        branding,
        now,
        read_at,
        spec.late_cancel_hours
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Move an API-managed row from `from` to `to` (compare-and-set: a concurrent change makes it
/// write nothing). Offboarding sets the request time and the purge date; any other target
/// clears them. Returns whether a row was written.
pub async fn set_status(
    conn: &mut PgConnection,
    id: TenantId,
    from: TenantStatus,
    to: TenantStatus,
    purge_after: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let offboarding = to == TenantStatus::Offboarding;
    let done = sqlx::query!(
        r#"UPDATE tenants
           SET status = $3,
               offboard_requested_at = CASE WHEN $4::boolean THEN $6::timestamptz END,
               purge_after = CASE WHEN $4::boolean THEN $5::timestamptz END,
               updated_at = $6
           WHERE id = $1 AND status = $2 AND managed_by = 'api'"#,
        id as TenantId,
        from.as_str(),
        to.as_str(),
        offboarding,
        purge_after,
        now
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Member counts of a company (definer; platform admins only).
pub async fn member_counts(
    conn: &mut PgConnection,
    id: TenantId,
    seats: i32,
    now: OffsetDateTime,
) -> Result<Option<MemberCounts>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT seats_used AS "seats_used!", active_members AS "active_members!",
                  disabled_members AS "disabled_members!",
                  pending_invitations AS "pending_invitations!",
                  tenant_admins AS "tenant_admins!", hr AS "hr!", employees AS "employees!",
                  practitioners AS "practitioners!"
           FROM app_private.tenant_member_counts($1, $2)"#,
        id as TenantId,
        now
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| MemberCounts {
        seats_used: r.seats_used,
        seats_available: seats.saturating_sub(r.seats_used).max(0),
        active_members: r.active_members,
        disabled_members: r.disabled_members,
        pending_invitations: r.pending_invitations,
        by_role: RoleCounts {
            tenant_admin: r.tenant_admins,
            hr: r.hr,
            employee: r.employees,
            practitioner: r.practitioners,
        },
    }))
}

/// Assign a practitioner (definer): the outcome word (see the migration).
pub async fn assign_practitioner(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    now: OffsetDateTime,
) -> Result<String, sqlx::Error> {
    let membership = MembershipId::new();
    sqlx::query_scalar!(
        r#"SELECT app_private.assign_practitioner($1, $2, $3, $4) AS "outcome!""#,
        tenant as TenantId,
        user as UserId,
        membership as MembershipId,
        now
    )
    .fetch_one(conn)
    .await
}

/// End a practitioner's assignment (definer): the outcome word.
pub async fn unassign_practitioner(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    now: OffsetDateTime,
) -> Result<String, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT app_private.unassign_practitioner($1, $2, $3) AS "outcome!""#,
        tenant as TenantId,
        user as UserId,
        now
    )
    .fetch_one(conn)
    .await
}
