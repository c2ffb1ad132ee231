//! Member SQL. Every query filters `tenant_id` explicitly; row-level security is the guard
//! (a tenant admin reads and updates their tenant's memberships only).

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{Member, MemberFilter};
use crate::db::{MembershipId, TenantId, UserId};

fn status_of(status: &str, ended_at: Option<OffsetDateTime>) -> String {
    if ended_at.is_some() {
        "ended".to_owned()
    } else {
        status.to_owned()
    }
}

/// One page of members ordered by membership id, after `after`.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &MemberFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Member>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT m.id, m.user_id, u.email, u.display_name, m.roles, m.status, m.ended_at,
                  m.department, m.created_at
           FROM memberships m JOIN users u ON u.id = m.user_id
           WHERE m.tenant_id = $1
             AND ($2::uuid IS NULL OR m.id > $2)
             AND ($3::text IS NULL OR $3 = ANY (m.roles))
             AND CASE $4::text
                     WHEN 'active' THEN m.status = 'active'
                     WHEN 'disabled' THEN m.status = 'disabled' AND m.ended_at IS NULL
                     WHEN 'ended' THEN m.ended_at IS NOT NULL
                     ELSE m.ended_at IS NULL
                 END
             AND ($5::text IS NULL OR u.email ILIKE $5 ESCAPE '\' OR u.display_name ILIKE $5 ESCAPE '\')
           ORDER BY m.id
           LIMIT $6"#,
        tenant.as_uuid(),
        after,
        filter.role,
        filter.status,
        filter.pattern,
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Member {
            id: MembershipId(r.id),
            user_id: UserId(r.user_id),
            email: r.email,
            display_name: r.display_name,
            roles: r.roles,
            status: status_of(&r.status, r.ended_at),
            department: r.department,
            created_at: r.created_at,
        })
        .collect())
}

/// A membership, locked for the rest of the transaction.
pub struct LockedMember {
    pub member: Member,
    pub ended: bool,
}

pub async fn lock(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: MembershipId,
) -> Result<Option<LockedMember>, sqlx::Error> {
    let r = sqlx::query!(
        r#"SELECT m.id, m.user_id, u.email, u.display_name, m.roles, m.status, m.ended_at,
                  m.department, m.created_at
           FROM memberships m JOIN users u ON u.id = m.user_id
           WHERE m.tenant_id = $1 AND m.id = $2
           FOR UPDATE OF m"#,
        tenant.as_uuid(),
        id.as_uuid()
    )
    .fetch_optional(conn)
    .await?;
    Ok(r.map(|r| LockedMember {
        ended: r.ended_at.is_some(),
        member: Member {
            id: MembershipId(r.id),
            user_id: UserId(r.user_id),
            email: r.email,
            display_name: r.display_name,
            roles: r.roles,
            status: status_of(&r.status, r.ended_at),
            department: r.department,
            created_at: r.created_at,
        },
    }))
}

/// Lock the company's active tenant-admin memberships, so two admins demoting each other at
/// once cannot both pass the last-admin check.
pub async fn lock_admins(conn: &mut PgConnection, tenant: TenantId) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT id FROM memberships
         WHERE tenant_id = $1 AND status = 'active' AND 'tenant_admin' = ANY (roles)
         FOR UPDATE",
        tenant.as_uuid()
    )
    .fetch_all(conn)
    .await?;
    Ok(())
}

/// Active tenant admins (counted after a write, in the same transaction).
pub async fn active_admins(conn: &mut PgConnection, tenant: TenantId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM memberships
           WHERE tenant_id = $1 AND status = 'active' AND 'tenant_admin' = ANY (roles)"#,
        tenant.as_uuid()
    )
    .fetch_one(conn)
    .await
}

pub async fn update(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: MembershipId,
    roles: &[String],
    status: &str,
    department: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE memberships SET roles = $3, status = $4, department = $5, updated_at = $6
         WHERE tenant_id = $1 AND id = $2",
        tenant.as_uuid(),
        id.as_uuid(),
        roles,
        status,
        department,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// End a membership: disabled, with `ended_at` (the row stays for the records referencing it).
pub async fn end(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: MembershipId,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE memberships SET status = 'disabled', ended_at = $3, updated_at = $3
         WHERE tenant_id = $1 AND id = $2",
        tenant.as_uuid(),
        id.as_uuid(),
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Revoke a member's live sessions in the request's tenant (tenant admins only, in SQL).
pub async fn revoke_sessions(
    conn: &mut PgConnection,
    user: UserId,
    now: OffsetDateTime,
) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT app_private.revoke_member_sessions($1, 'membership_change', $2) AS "n!""#,
        user.as_uuid(),
        now
    )
    .fetch_one(conn)
    .await
}

/// `app_private.check_seats`: SR409 (→ 409 `seat_limit_reached`) when over the plan's seats.
pub async fn check_seats(conn: &mut PgConnection, now: OffsetDateTime) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT app_private.check_seats($1) AS "left!""#, now)
        .fetch_one(conn)
        .await
}

/// The row of `app_private.member_summary(now)`: the closed month, the band, the banded
/// company total (NULL when suppressed). Coarsening and the closed period are decided in SQL.
pub struct SummaryRow {
    pub period_start: OffsetDateTime,
    pub period_end: OffsetDateTime,
    pub band: i32,
    pub members: Option<i32>,
    pub suppressed: bool,
}

pub async fn summary(
    conn: &mut PgConnection,
    now: OffsetDateTime,
) -> Result<Option<SummaryRow>, sqlx::Error> {
    sqlx::query_as!(
        SummaryRow,
        r#"SELECT period_start AS "period_start!", period_end AS "period_end!", band AS "band!",
                  members, suppressed AS "suppressed!"
           FROM app_private.member_summary($1)"#,
        now
    )
    .fetch_optional(conn)
    .await
}
