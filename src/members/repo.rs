//! Member SQL. Every query filters `tenant_id` explicitly; row-level security is the guard
//! (a tenant admin reads and updates their tenant's memberships only).

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{Member, MemberFilter, MemberStatus};
use crate::db::{MembershipId, TenantId, UserId};
use crate::rbac::Role;

/// One page of members ordered by membership id, after `after`.
///
/// Two statements, neither with an optional predicate. The plain list (no filter, no search)
/// walks the company's memberships by `(tenant_id, id)`. A filtered or searched list asks
/// `app_private.member_search` for the page's ids (planned per call with its values, and free
/// to use the trigram indexes, which row-level security forbids to the request role for a
/// non-leakproof `ILIKE`), then reads those rows under row-level security. Filters as
/// parameters of a cached statement were estimated at a few rows, and the generic plan read
/// and sorted the whole company.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    filter: &MemberFilter,
    after: Option<MembershipId>,
    limit: i64,
) -> Result<Vec<Member>, sqlx::Error> {
    // The first page starts after the nil id: every id is greater.
    let after = after.map_or(Uuid::nil(), |a| a.as_uuid());
    let rows = if filter.plain {
        sqlx::query_as!(
            MemberRow,
            r#"SELECT m.id, m.user_id, u.email, u.display_name, m.roles AS "roles: Vec<Role>", m.status, m.ended_at,
                      m.department, m.created_at
               FROM memberships m JOIN users u ON u.id = m.user_id
               WHERE m.tenant_id = $1 AND m.id > $2 AND m.ended_at IS NULL
               ORDER BY m.id
               LIMIT $3"#,
            tenant.as_uuid(),
            after,
            limit
        )
        .fetch_all(conn)
        .await?
    } else {
        sqlx::query_as!(
            MemberRow,
            r#"SELECT m.id, m.user_id, u.email, u.display_name, m.roles AS "roles: Vec<Role>", m.status, m.ended_at,
                      m.department, m.created_at
               FROM memberships m JOIN users u ON u.id = m.user_id
               WHERE m.tenant_id = $1
                 AND m.id = ANY (ARRAY(SELECT app_private.member_search($6, $3, $4, $5, $2, $7)))
                 AND m.roles && $3 AND m.status = ANY ($4) AND (m.ended_at IS NOT NULL) = $5
               ORDER BY m.id
               LIMIT $7"#,
            tenant.as_uuid(),
            after,
            &filter.roles,
            &filter.statuses,
            filter.ended,
            filter.pattern.as_deref(),
            i32::try_from(limit).unwrap_or(i32::MAX)
        )
        .fetch_all(conn)
        .await?
    };
    rows.into_iter().map(MemberRow::into_member).collect()
}

struct MemberRow {
    id: Uuid,
    user_id: Uuid,
    email: String,
    display_name: String,
    roles: Vec<Role>,
    status: String,
    ended_at: Option<OffsetDateTime>,
    department: Option<String>,
    created_at: OffsetDateTime,
}

impl MemberRow {
    /// A status outside the CHECK constraint is a decode error, logged and refused.
    fn into_member(self) -> Result<Member, sqlx::Error> {
        let status = MemberStatus::of_row(&self.status, self.ended_at.is_some()).map_err(|e| {
            tracing::error!(error = %e, "membership row refused");
            sqlx::Error::Decode(e.into())
        })?;
        Ok(Member {
            id: MembershipId(self.id),
            user_id: UserId(self.user_id),
            email: self.email,
            display_name: self.display_name,
            roles: self.roles,
            status,
            department: self.department,
            created_at: self.created_at,
        })
    }
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
    let r = sqlx::query_as!(
        MemberRow,
        r#"SELECT m.id, m.user_id, u.email, u.display_name, m.roles AS "roles: Vec<Role>", m.status, m.ended_at,
                  m.department, m.created_at
           FROM memberships m JOIN users u ON u.id = m.user_id
           WHERE m.tenant_id = $1 AND m.id = $2
           FOR UPDATE OF m"#,
        tenant.as_uuid(),
        id.as_uuid()
    )
    .fetch_optional(conn)
    .await?;
    r.map(|r| {
        Ok(LockedMember {
            ended: r.ended_at.is_some(),
            member: r.into_member()?,
        })
    })
    .transpose()
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
    roles: &[Role],
    status: MemberStatus,
    department: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE memberships SET roles = $3, status = $4, department = $5, updated_at = $6
         WHERE tenant_id = $1 AND id = $2",
        tenant.as_uuid(),
        id.as_uuid(),
        &crate::rbac::role_names(roles),
        status.as_str(),
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
