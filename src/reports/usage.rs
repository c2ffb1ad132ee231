//! HR's usage report and its CSV export (company host; HR and tenant admins). See the module
//! header of `reports` and migration 20261208000040 for what is released and why.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;

use super::model::{
    ExportQuery, GroupBy, Month, Suppression, UsageCell, UsageQuery, figure, resolve_range,
};
use super::repo;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::error::{AppError, AppResult};
use crate::http::AppQuery;
use crate::http::csv;

/// One closed month of the company.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageMonth {
    /// `YYYY-MM`.
    pub month: String,
    /// The company's `min_cohort` when the month was frozen: its cells were released under it.
    pub min_cohort: i32,
    /// Members enrolled at the month's end, rounded DOWN to a band of max(min_cohort, 10), as
    /// `GET /members/summary` shows them; `null` below one band.
    pub enrolled_members: Option<i32>,
    /// `enrolled_members` ÷ seats (three decimals).
    pub enrolment_rate: Option<f64>,
    /// Why the enrolment figures are hidden, when they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrolment_suppressed: Option<Suppression>,
}

/// `GET /reports/usage`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    /// First month covered, `YYYY-MM` (`null`: no month has closed yet).
    pub from: Option<String>,
    /// Last month covered.
    pub to: Option<String>,
    pub group_by: GroupBy,
    /// The latest month a report can cover: the last complete one.
    pub last_closed: Option<String>,
    /// The months of the range since the company's creation.
    pub months: Vec<UsageMonth>,
    /// The released cells, by month then group.
    pub cells: Vec<UsageCell>,
}

/// The report and the company's slug (for a file name).
struct Loaded {
    report: UsageReport,
    slug: String,
}

async fn load(
    state: &AppState,
    actor: &Actor,
    from: Option<&str>,
    to: Option<&str>,
    group_by: GroupBy,
) -> AppResult<Loaded> {
    let now = state.clock.now();
    let mut tx = actor.begin(state).await?;
    let window = repo::window(&mut tx, now).await?;
    let range = resolve_range(from, to, window.last_closed)?;
    let (months, cells) = match range {
        Some(r) => (
            repo::months(&mut tx, r, now).await?,
            repo::cells(&mut tx, r, group_by.grouping(), now).await?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    let slug = repo::slug(&mut tx).await?.ok_or(AppError::TenantNotFound)?;
    // The freeze is final before any figure leaves.
    tx.commit().await?;
    Ok(Loaded {
        report: UsageReport {
            from: range.map(|r| r.from.label()),
            to: range.map(|r| r.to.label()),
            group_by,
            last_closed: window.last_closed.map(Month::label),
            months: months
                .into_iter()
                .map(|m| UsageMonth {
                    month: Month::of(m.month).label(),
                    min_cohort: m.min_cohort,
                    enrolled_members: m.enrolled_members,
                    enrolment_rate: m.enrolment_rate,
                    enrolment_suppressed: Suppression::from_db(m.enrolment_hidden.as_deref()),
                })
                .collect(),
            cells: cells.into_iter().map(|c| c.released(group_by)).collect(),
        },
        slug,
    })
}

/// The company's usage per closed month: consultations booked, held and cancelled, minutes,
/// distinct users, by month, department, specialty or kind; enrolment per month. Figures below
/// the company's `min_cohort`, and those that would let one be worked out, are `null` with
/// their reason. Nothing of a month under way.
#[utoipa::path(get, path = "/api/v1/reports/usage", tag = "reports",
    extensions(("x-authz" = json!({"resource": "usage_report", "action": "read"}))),
    security(("bearer" = [])),
    params(UsageQuery),
    responses(
        (status = 200, body = UsageReport, description = "Released cells of closed months; never a person"),
        (status = 422, description = "validation_failed: a month not closed yet, from after to, more than 24 months, or an unknown group_by"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn usage_report(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(q): AppQuery<UsageQuery>,
) -> AppResult<Json<UsageReport>> {
    actor.require_company()?;
    let group_by = GroupBy::parse(q.group_by.as_deref(), true)?;
    let loaded = load(&state, &actor, q.from.as_deref(), q.to.as_deref(), group_by).await?;
    Ok(Json(loaded.report))
}

/// The report's released cells as CSV (RFC 4180, UTF-8; `bom=true` for a byte order mark,
/// `delimiter=semicolon`; formula-like text neutralised). Columns: `month`, the group (unless
/// `group_by=month`), `booked`, `held`, `cancelled`, `minutes`, `users` (empty when hidden),
/// with `enrolled_members` and `enrolment_rate` for `group_by=month`, and `suppressed` (each
/// hidden figure and why).
#[utoipa::path(get, path = "/api/v1/exports/usage.csv", tag = "reports",
    extensions(("x-authz" = json!({"resource": "usage_export", "action": "read"}))),
    security(("bearer" = [])),
    params(ExportQuery),
    responses(
        (status = 200, content_type = "text/csv", body = String, description = "RFC 4180, an attachment"),
        (status = 422, description = "validation_failed: a month not closed yet, from after to, more than 24 months, an unknown group_by or delimiter"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn usage_export(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(q): AppQuery<ExportQuery>,
) -> AppResult<Response> {
    actor.require_company()?;
    let group_by = GroupBy::parse(q.group_by.as_deref(), true)?;
    let format = q.format()?;
    let Loaded { report, slug } =
        load(&state, &actor, q.from.as_deref(), q.to.as_deref(), group_by).await?;
    let file_name = match (&report.from, &report.to) {
        (Some(from), Some(to)) => {
            format!("serein-usage-{slug}-{}-{from}-{to}.csv", group_by.as_str())
        }
        _ => format!("serein-usage-{slug}.csv"),
    };
    let (res, mut sink) = csv::attachment(&file_name, format);
    tokio::spawn(async move {
        let month_level = group_by == GroupBy::Month;
        let mut header = vec!["month"];
        if !month_level {
            header.push(group_by.as_str());
        }
        header.extend(["booked", "held", "cancelled", "minutes", "users"]);
        if month_level {
            header.extend(["enrolled_members", "enrolment_rate"]);
        }
        header.push("suppressed");
        if sink.record(&header).await.is_err() {
            return;
        }
        for cell in report.cells {
            let mut row = vec![cell.month.clone()];
            if !month_level {
                row.push(cell.group.clone().unwrap_or_default());
            }
            row.extend([
                figure(cell.booked),
                figure(cell.held),
                figure(cell.cancelled),
                figure(cell.minutes),
                figure(cell.users),
            ]);
            let mut suppressed = cell.suppressed.describe();
            if month_level {
                let m = report.months.iter().find(|m| m.month == cell.month);
                row.push(figure(m.and_then(|m| m.enrolled_members)));
                row.push(figure(m.and_then(|m| m.enrolment_rate)));
                if let Some(reason) = m.and_then(|m| m.enrolment_suppressed) {
                    if !suppressed.is_empty() {
                        suppressed.push_str("; ");
                    }
                    suppressed.push_str("enrolment: ");
                    suppressed.push_str(reason.as_str());
                }
            }
            row.push(suppressed);
            if sink.record(&row).await.is_err() {
                return;
            }
        }
        let _ = sink.finish().await;
    });
    Ok(res)
}
