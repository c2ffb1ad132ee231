//! The platform's reports (platform admins, platform host): usage across every company, the
//! per-company overview, and the practitioners' activity export. Same release rules as HR's
//! (migration 20261208000040, rules 8 and 9): closed and frozen months, released cells only,
//! no employee identity anywhere.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use futures_util::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;

use super::model::{
    GroupBy, Hidden, Month, Range, RangeExportQuery, RangeQuery, UsageCell, UsageQuery,
    resolve_range,
};
use super::repo;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::db::TenantId;
use crate::error::AppResult;
use crate::http::AppQuery;
use crate::http::csv;

/// One closed month of the platform.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformMonth {
    /// `YYYY-MM`.
    pub month: String,
    /// The strictest `min_cohort` of the companies with consultations that month (at least 5).
    pub min_cohort: i32,
}

/// `GET /platform/reports/usage`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformUsageReport {
    pub from: Option<String>,
    pub to: Option<String>,
    pub group_by: GroupBy,
    /// The latest month a report can cover (every company's month over).
    pub last_closed: Option<String>,
    pub months: Vec<PlatformMonth>,
    pub cells: Vec<UsageCell>,
}

/// The range of a platform request (`None`: nothing closed yet), after checking the caller.
async fn platform_range(
    state: &AppState,
    actor: &Actor,
    from: Option<&str>,
    to: Option<&str>,
) -> AppResult<(Option<Range>, Option<Month>, crate::db::TenantTx)> {
    actor.require_platform_admin()?;
    let mut tx = actor.begin(state).await?;
    let last = repo::platform_last_closed(&mut tx, state.clock.now()).await?;
    let range = resolve_range(from, to, last)?;
    Ok((range, last, tx))
}

/// Usage across every company per closed month (by month, specialty or kind), released under
/// the strictest cohort of the companies concerned. Never a company's or a person's figure.
#[utoipa::path(get, path = "/api/v1/platform/reports/usage", tag = "platform",
    extensions(("x-authz" = json!({"resource": "platform_usage_report", "action": "read"}))),
    security(("bearer" = [])),
    params(UsageQuery),
    responses(
        (status = 200, body = PlatformUsageReport, description = "Released cells of closed months"),
        (status = 422, description = "validation_failed: a month not closed yet, from after to, more than 24 months, or group_by not month, specialty or kind"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn platform_usage_report(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(q): AppQuery<UsageQuery>,
) -> AppResult<Json<PlatformUsageReport>> {
    let group_by = GroupBy::parse(q.group_by.as_deref(), false)?;
    let (range, last, mut tx) =
        platform_range(&state, &actor, q.from.as_deref(), q.to.as_deref()).await?;
    let rows = match range {
        Some(r) => repo::platform_cells(&mut tx, r, group_by.grouping(), state.clock.now()).await?,
        None => Vec::new(),
    };
    tx.commit().await?;
    let mut months: Vec<PlatformMonth> = Vec::new();
    let mut cells = Vec::with_capacity(rows.len());
    for row in rows {
        let month = Month::of(row.cell.month).label();
        if months.last().is_none_or(|m| m.month != month) {
            months.push(PlatformMonth {
                month,
                min_cohort: row.min_cohort,
            });
        }
        cells.push(row.cell.released(group_by));
    }
    Ok(Json(PlatformUsageReport {
        from: range.map(|r| r.from.label()),
        to: range.map(|r| r.to.label()),
        group_by,
        last_closed: last.map(Month::label),
        months,
        cells,
    }))
}

/// One company's closed month, for the platform.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantMonth {
    /// `YYYY-MM`.
    pub month: String,
    pub tenant_id: TenantId,
    pub slug: String,
    pub name: String,
    /// The company's `min_cohort` when the month was frozen.
    pub min_cohort: i32,
    pub seats: i32,
    /// Members enrolled at the month's end.
    pub seats_used: i32,
    /// Distinct employees who booked ÷ `seats_used` (`null` when `users` is hidden).
    pub active_rate: Option<f64>,
    pub booked: Option<i32>,
    pub held: Option<i32>,
    pub cancelled: Option<i32>,
    pub minutes: Option<i64>,
    pub users: Option<i32>,
    /// The company's month total as its HR sees it: hidden figures and why.
    pub suppressed: Hidden,
}

/// `GET /platform/reports/tenants`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantOverview {
    pub from: Option<String>,
    pub to: Option<String>,
    pub last_closed: Option<String>,
    /// By month, then company slug.
    pub items: Vec<TenantMonth>,
}

/// Per company and closed month: seats, seats used, the active rate, and the company's month
/// total, hidden where its HR's is.
#[utoipa::path(get, path = "/api/v1/platform/reports/tenants", tag = "platform",
    extensions(("x-authz" = json!({"resource": "platform_usage_report", "action": "read"}))),
    security(("bearer" = [])),
    params(RangeQuery),
    responses(
        (status = 200, body = TenantOverview, description = "Each company's closed months"),
        (status = 422, description = "validation_failed: a month not closed yet, from after to, or more than 24 months"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn tenant_overview(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(q): AppQuery<RangeQuery>,
) -> AppResult<Json<TenantOverview>> {
    let (range, last, mut tx) =
        platform_range(&state, &actor, q.from.as_deref(), q.to.as_deref()).await?;
    let rows = match range {
        Some(r) => repo::overview(&mut tx, r, state.clock.now()).await?,
        None => Vec::new(),
    };
    tx.commit().await?;
    let items = rows
        .into_iter()
        .map(|r| {
            let cell = r.cell.released(GroupBy::Month);
            TenantMonth {
                month: cell.month,
                tenant_id: r.tenant_id,
                slug: r.slug,
                name: r.name,
                min_cohort: r.min_cohort,
                seats: r.seats,
                seats_used: r.members,
                active_rate: cell
                    .users
                    .filter(|_| r.members > 0)
                    .map(|u| (f64::from(u) / f64::from(r.members) * 1000.0).round() / 1000.0),
                booked: cell.booked,
                held: cell.held,
                cancelled: cell.cancelled,
                minutes: cell.minutes,
                users: cell.users,
                suppressed: cell.suppressed,
            }
        })
        .collect();
    Ok(Json(TenantOverview {
        from: range.map(|r| r.from.label()),
        to: range.map(|r| r.to.label()),
        last_closed: last.map(Month::label),
        items,
    }))
}

/// Per practitioner, closed month and company: consultations held and their minutes, as CSV
/// (what practitioners are paid from). No employee identity. Columns: `month`,
/// `practitioner_id`, `practitioner`, `company`, `company_name`, `consultations`, `minutes`.
#[utoipa::path(get, path = "/api/v1/platform/exports/practitioner-activity.csv", tag = "platform",
    extensions(("x-authz" = json!({"resource": "practitioner_activity_export", "action": "read"}))),
    security(("bearer" = [])),
    params(RangeExportQuery),
    responses(
        (status = 200, content_type = "text/csv", body = String, description = "RFC 4180, an attachment, streamed"),
        (status = 422, description = "validation_failed: a month not closed yet, from after to, more than 24 months, or an unknown delimiter"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn practitioner_activity_export(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(q): AppQuery<RangeExportQuery>,
) -> AppResult<Response> {
    let format = q.format()?;
    let now = state.clock.now();
    let (range, _, mut tx) =
        platform_range(&state, &actor, q.from.as_deref(), q.to.as_deref()).await?;
    if let Some(r) = range {
        repo::platform_freeze(&mut tx, r, now).await?;
    }
    // The release is final before any figure leaves; the rows are then read in a transaction of
    // their own, streamed as the client reads.
    tx.commit().await?;
    let file_name = match range {
        Some(r) => format!(
            "serein-practitioner-activity-{}-{}.csv",
            r.from.label(),
            r.to.label()
        ),
        None => "serein-practitioner-activity.csv".to_owned(),
    };
    let mut tx = actor.begin(&state).await?;
    let (res, mut sink) = csv::attachment(&file_name, format);
    tokio::spawn(async move {
        let header = [
            "month",
            "practitioner_id",
            "practitioner",
            "company",
            "company_name",
            "consultations",
            "minutes",
        ];
        if sink.record(&header).await.is_err() {
            return;
        }
        if let Some(r) = range {
            let mut rows = sqlx::query!(
                r#"SELECT month AS "month!", practitioner_id AS "practitioner_id!",
                          practitioner_name AS "practitioner_name!", tenant_slug AS "tenant_slug!",
                          tenant_name AS "tenant_name!", held AS "held!", minutes AS "minutes!"
                   FROM app_private.platform_practitioner_activity($1, $2, $3)"#,
                r.from.first_day(),
                r.to.first_day(),
                now
            )
            .fetch(&mut *tx);
            while let Some(row) = rows.next().await {
                let row = match row {
                    Ok(row) => row,
                    Err(e) => {
                        tracing::warn!(error = %e, "practitioner activity export failed");
                        sink.fail("database").await;
                        return;
                    }
                };
                let fields = [
                    Month::of(row.month).label(),
                    row.practitioner_id.to_string(),
                    row.practitioner_name,
                    row.tenant_slug,
                    row.tenant_name,
                    row.held.to_string(),
                    row.minutes.to_string(),
                ];
                if sink.record(&fields).await.is_err() {
                    return;
                }
            }
        }
        let _ = sink.finish().await;
    });
    Ok(res)
}
