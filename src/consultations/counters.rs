//! Counters (issue 11, item 10), exact — computed from the consultations at each request, so
//! they never lag:
//! - `GET /me/counters` (employee): this company's yearly allowance, used and remaining this
//!   year, and each year's figures — the employee's own consultations, under row-level
//!   security;
//! - `GET /practitioner/counters` (practitioner): per month and company, sessions held, their
//!   minutes (from the start and end events), no-shows and cancellations — the practitioner's
//!   own consultations in every company they serve, through `app_private.practitioner_counters`
//!   (never who).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::error::{AppError, AppResult};
use crate::http::extract::AppQuery;

/// One year of an employee's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmployeeYear {
    pub year: i32,
    /// Sessions that use up the allowance (booked, held, no-show, late cancellations).
    pub used: i64,
    pub held: i64,
    pub cancelled: i64,
}

/// `GET /me/counters`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmployeeCounters {
    /// The current year in the company's time zone.
    pub year: i32,
    /// Sessions per employee per calendar year, set by the company's plan.
    pub allowance: i32,
    pub used: i64,
    pub remaining: i64,
    /// An employee's cancellation closer than this to the start still uses the session.
    pub late_cancel_hours: i32,
    pub by_year: Vec<EmployeeYear>,
}

/// The caller's sessions in this company and what is left of this year's allowance.
#[utoipa::path(get, path = "/api/v1/me/counters", tag = "consultations",
    extensions(("x-authz" = json!({"resource": "my_counters", "action": "read"}))),
    security(("bearer" = [])),
    responses((status = 200, body = EmployeeCounters)))]
#[tracing::instrument(skip_all)]
pub async fn mine(
    State(state): State<AppState>,
    actor: Actor,
) -> AppResult<Json<EmployeeCounters>> {
    actor.require_company()?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let terms = sqlx::query!(
        r#"SELECT allowance, late_cancel_hours,
                  date_part('year', $1::timestamptz AT TIME ZONE time_zone)::int AS "year!"
           FROM tenants WHERE id = app.current_tenant()"#,
        now
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    let by_year = sqlx::query_as!(
        EmployeeYear,
        r#"SELECT date_part('year', c.starts_at AT TIME ZONE t.time_zone)::int AS "year!",
                  count(*) FILTER (WHERE c.counts_against_allowance) AS "used!",
                  count(*) FILTER (WHERE c.status = 'ended') AS "held!",
                  count(*) FILTER (WHERE c.status = 'cancelled') AS "cancelled!"
           FROM consultations c JOIN tenants t ON t.id = c.tenant_id
           WHERE c.tenant_id = app.current_tenant() AND c.employee_id = $1
           GROUP BY 1 ORDER BY 1"#,
        actor.user.as_uuid()
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let used = by_year
        .iter()
        .find(|y| y.year == terms.year)
        .map_or(0, |y| y.used);
    Ok(Json(EmployeeCounters {
        year: terms.year,
        allowance: terms.allowance,
        used,
        remaining: (i64::from(terms.allowance) - used).max(0),
        late_cancel_hours: terms.late_cancel_hours,
        by_year,
    }))
}

/// `GET /practitioner/counters` range.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MonthsQuery {
    /// First day counted, `YYYY-MM-DD` (UTC; default: the first day of the month a year ago).
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<String>,
    /// Day after the last one counted (default: the first day of next month); at most three
    /// years after `from`.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<String>,
}

/// One month in one company.
#[derive(Debug, Serialize, ToSchema)]
pub struct PractitionerMonth {
    /// `YYYY-MM`.
    pub month: String,
    pub tenant_slug: String,
    pub tenant_name: String,
    pub held: i64,
    /// Minutes of the sessions held, from their start and end.
    pub minutes: i64,
    pub no_shows: i64,
    pub cancelled: i64,
}

/// `GET /practitioner/counters`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PractitionerCounters {
    pub months: Vec<PractitionerMonth>,
}

fn day(field: &str, raw: Option<&str>) -> Result<Option<Date>, AppError> {
    let Some(raw) = raw else { return Ok(None) };
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(raw, &fmt)
        .map(Some)
        .map_err(|_| AppError::invalid(field, "must be a date YYYY-MM-DD"))
}

/// The caller's sessions per month and company, across every company they serve.
#[utoipa::path(get, path = "/api/v1/practitioner/counters", tag = "consultations",
    extensions(("x-authz" = json!({"resource": "practitioner_counters", "action": "read"}))),
    security(("bearer" = [])),
    params(MonthsQuery),
    responses((status = 200, body = PractitionerCounters)))]
#[tracing::instrument(skip_all)]
pub async fn practitioner(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(q): AppQuery<MonthsQuery>,
) -> AppResult<Json<PractitionerCounters>> {
    actor.require_company()?;
    let today = state.clock.now().date();
    let first = today.replace_day(1).unwrap_or(today);
    let from = day("from", q.from.as_deref())?
        .unwrap_or_else(|| first.replace_year(first.year() - 1).unwrap_or(first));
    let to = day("to", q.to.as_deref())?
        .unwrap_or_else(|| (first + Duration::days(32)).replace_day(1).unwrap_or(first));
    if to <= from || to > from + Duration::days(3 * 366) {
        return Err(AppError::invalid(
            "to",
            "must be after from, at most three years later",
        ));
    }
    let at = |d: Date| -> OffsetDateTime { d.midnight().assume_utc() };
    let mut tx = actor.begin(&state).await?;
    let rows = sqlx::query!(
        r#"SELECT month AS "month!", tenant_slug AS "tenant_slug!", tenant_name AS "tenant_name!",
                  held AS "held!", minutes AS "minutes!", no_shows AS "no_shows!",
                  cancelled AS "cancelled!"
           FROM app_private.practitioner_counters($1, $2)"#,
        at(from),
        at(to)
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(PractitionerCounters {
        months: rows
            .into_iter()
            .map(|r| PractitionerMonth {
                month: format!("{:04}-{:02}", r.month.year(), u8::from(r.month.month())),
                tenant_slug: r.tenant_slug,
                tenant_name: r.tenant_name,
                held: r.held,
                minutes: r.minutes,
                no_shows: r.no_shows,
                cancelled: r.cancelled,
            })
            .collect(),
    }))
}
