//! The report definers (migration 20261208000040_usage_reports): each checks its caller in SQL,
//! freezes the months it is asked for where needed, and returns released figures only.

use sqlx::PgConnection;
use time::{Date, OffsetDateTime};

use super::model::{CellRow, Month, Range};

/// A [`CellRow`] from a definer's record with the same column names.
macro_rules! cell_row {
    ($r:expr, $key:expr) => {
        CellRow {
            month: $r.month,
            group_key: $key,
            booked: $r.booked,
            held: $r.held,
            cancelled: $r.cancelled,
            minutes: $r.minutes,
            users: $r.users,
            booked_hidden: $r.booked_hidden,
            held_hidden: $r.held_hidden,
            cancelled_hidden: $r.cancelled_hidden,
            users_hidden: $r.users_hidden,
        }
    };
}
use crate::db::TenantId;

/// HR's reportable months: the company's first month and its last closed one.
pub struct Window {
    pub first: Month,
    pub last_closed: Option<Month>,
}

pub async fn window(conn: &mut PgConnection, now: OffsetDateTime) -> Result<Window, sqlx::Error> {
    let r = sqlx::query!(
        r#"SELECT first_month AS "first_month!", last_closed FROM app_private.usage_window($1)"#,
        now
    )
    .fetch_one(conn)
    .await?;
    Ok(Window {
        first: Month::of(r.first_month),
        last_closed: r.last_closed.map(Month::of),
    })
}

/// HR's released cells of one grouping.
pub async fn cells(
    conn: &mut PgConnection,
    range: Range,
    grouping: &str,
    now: OffsetDateTime,
) -> Result<Vec<CellRow>, sqlx::Error> {
    sqlx::query_as!(
        CellRow,
        r#"SELECT month AS "month!", group_key AS "group_key!", booked, held, cancelled, minutes,
                  users, booked_hidden, held_hidden, cancelled_hidden, users_hidden
           FROM app_private.usage_report($1, $2, $3, $4)"#,
        range.from.first_day(),
        range.to.first_day(),
        grouping,
        now
    )
    .fetch_all(conn)
    .await
}

/// A company's month as HR sees it: its cohort and its (banded) enrolment.
pub struct MonthRow {
    pub month: Date,
    pub min_cohort: i32,
    pub enrolled_members: Option<i32>,
    pub enrolment_rate: Option<f64>,
    pub enrolment_hidden: Option<String>,
}

pub async fn months(
    conn: &mut PgConnection,
    range: Range,
    now: OffsetDateTime,
) -> Result<Vec<MonthRow>, sqlx::Error> {
    sqlx::query_as!(
        MonthRow,
        r#"SELECT month AS "month!", min_cohort AS "min_cohort!", enrolled_members,
                  enrolment_rate, enrolment_hidden
           FROM app_private.usage_report_months($1, $2, $3)"#,
        range.from.first_day(),
        range.to.first_day(),
        now
    )
    .fetch_all(conn)
    .await
}

/// The company's slug (file names).
pub async fn slug(conn: &mut PgConnection) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!("SELECT slug FROM tenants WHERE id = app.current_tenant()")
        .fetch_optional(conn)
        .await
}

/// The platform's last closed month (every company's month over).
pub async fn platform_last_closed(
    conn: &mut PgConnection,
    now: OffsetDateTime,
) -> Result<Option<Month>, sqlx::Error> {
    let d = sqlx::query_scalar!(
        r#"SELECT app_private.platform_usage_window($1) AS "d""#,
        now
    )
    .fetch_one(conn)
    .await?;
    Ok(d.map(Month::of))
}

/// A platform cell with the cohort its month was released under.
pub struct PlatformCellRow {
    pub min_cohort: i32,
    pub cell: CellRow,
}

pub async fn platform_cells(
    conn: &mut PgConnection,
    range: Range,
    grouping: &str,
    now: OffsetDateTime,
) -> Result<Vec<PlatformCellRow>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT month AS "month!", min_cohort AS "min_cohort!", group_key AS "group_key!",
                  booked, held, cancelled, minutes, users, booked_hidden, held_hidden,
                  cancelled_hidden, users_hidden
           FROM app_private.platform_usage_report($1, $2, $3, $4)"#,
        range.from.first_day(),
        range.to.first_day(),
        grouping,
        now
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| PlatformCellRow {
            min_cohort: r.min_cohort,
            cell: cell_row!(r, r.group_key),
        })
        .collect())
}

/// One company's month in the platform's overview.
pub struct OverviewRow {
    pub tenant_id: TenantId,
    pub slug: String,
    pub name: String,
    pub min_cohort: i32,
    pub seats: i32,
    pub members: i32,
    pub cell: CellRow,
}

pub async fn overview(
    conn: &mut PgConnection,
    range: Range,
    now: OffsetDateTime,
) -> Result<Vec<OverviewRow>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT month AS "month!", tenant_id AS "tenant_id!: TenantId", slug AS "slug!", name AS "name!",
                  min_cohort AS "min_cohort!", seats AS "seats!", members AS "members!",
                  booked, held, cancelled, minutes, users, booked_hidden, held_hidden,
                  cancelled_hidden, users_hidden
           FROM app_private.platform_tenant_overview($1, $2, $3)"#,
        range.from.first_day(),
        range.to.first_day(),
        now
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| OverviewRow {
            tenant_id: r.tenant_id,
            slug: r.slug,
            name: r.name,
            min_cohort: r.min_cohort,
            seats: r.seats,
            members: r.members,
            cell: cell_row!(r, String::new()),
        })
        .collect())
}

/// Freeze the platform's months of `range` (and every company's), checking the caller; the
/// export then reads them in a transaction of its own.
pub async fn platform_freeze(
    conn: &mut PgConnection,
    range: Range,
    now: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "SELECT app_private.platform_usage_prepare($1, $2, $3)",
        range.from.first_day(),
        range.to.first_day(),
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}
