//! `POST /api/v1/members/import`: a tenant admin brings in the company's people from a CSV file.
//!
//! The file: RFC 4180, UTF-8 with or without BOM, `,` or `;` (detected from the header line),
//! header row `email,first_name,last_name,department,role` in any order and case. `email` is
//! required; `role` is `employee` (default for new people), `hr` or `tenant_admin`
//! (practitioners belong to the platform's network and are never imported); `department` at
//! most 120 characters, names at most 100. A blank cell means "not given": new people get the
//! default, existing members and pending invitations keep their value (so a re-import of a
//! sparser file never erases anything).
//!
//! Invariants:
//! - Streamed: the body is read chunk by chunk ([`parse::CsvStream`]); valid rows are staged in
//!   PostgreSQL in batches of [`apply::BATCH`]; memory holds one batch and at most
//!   [`MAX_REPORTED_ERRORS`] row errors (the rest are only counted). The route has its own body
//!   limit (`IMPORT_MAX_BYTES`, counted while reading, so a body without a length is held to it
//!   too) and timeout (`IMPORT_TIMEOUT_MS`); at most [`concurrency`] imports run at once per
//!   process (each holds a database connection while its upload arrives), others get 503.
//! - Validation first: every row is validated (and checked against the company's people)
//!   before anything is applied. Any bad row → 422 `rows_rejected` with the per-row report and
//!   nothing applied, unless `?partial=true` (then the valid rows are applied and the bad ones
//!   reported, 200). A row is reported at the line where it starts in the file (header = 1).
//! - One transaction (the admin's row-level-security transaction): staging, applying, the
//!   invitation e-mails (outbox) and the seat check commit together or not at all. Over the
//!   seat limit → 409 `seat_limit_reached` and nothing applied, even with `?partial=true`.
//! - Idempotent by e-mail (see [`apply`]): importing the same file twice changes nothing the
//!   second time and sends no e-mail.

mod apply;
mod parse;

use std::collections::{BinaryHeap, HashMap};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};

use self::parse::{CsvStream, Header, Record};
use super::config::ImportConfig;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::auth::model::Email;
use crate::config::Config;
use crate::error::{AppError, AppResult, RowError, RowsReport};
use crate::http::extract::AppQuery;
use crate::http::middleware::RouteLimits;

/// The route template (its own body limit and timeout are keyed by it).
pub const ROUTE: &str = "/api/v1/members/import";

/// Row errors kept for the report; beyond, errors are only counted.
pub const MAX_REPORTED_ERRORS: usize = 1000;

/// The import route's body limit and timeout.
pub fn route_limits(config: &ImportConfig) -> RouteLimits {
    RouteLimits {
        route: ROUTE,
        max_body_bytes: config.max_bytes,
        timeout: config.timeout,
    }
}

/// Imports running at once in this process: a quarter of the pool, at least one.
pub fn concurrency(config: &Config) -> usize {
    usize::try_from(config.db_max_connections / 4)
        .unwrap_or(1)
        .max(1)
}

/// Query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// Apply the valid rows even if some are bad (they are reported). Default false: any bad
    /// row and nothing is applied.
    pub partial: Option<bool>,
}

/// The outcome of an applied import.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Data rows read (the header and blank lines excluded).
    pub rows: u64,
    /// New invitations (or expired ones renewed), each with its e-mail.
    pub invited: u64,
    /// Members or pending invitations whose roles, department or names changed.
    pub updated: u64,
    /// Valid rows that changed nothing.
    pub unchanged: u64,
    /// The first errors, by row (rows not applied).
    pub errors: Vec<RowError>,
    /// All errors found, reported or not.
    pub error_count: u64,
    pub errors_truncated: bool,
    /// True: the valid rows were applied.
    pub applied: bool,
}

/// Import members from a CSV file (see the module documentation for the format).
#[utoipa::path(post, path = "/api/v1/members/import", tag = "members",
    extensions(("x-authz" = json!({"resource": "members", "action": "import"}))),
    security(("bearer" = [])),
    params(ImportParams),
    request_body(content = String, content_type = "text/csv",
        description = "Header `email,first_name,last_name,department,role` (any order, case-insensitive); \
                       `,` or `;`; UTF-8, optional BOM. `application/csv` is accepted too."),
    responses(
        (status = 200, body = ImportReport, description = "Applied (with `?partial=true`, bad rows are reported and skipped)"),
        (status = 403, description = "Not a tenant admin"),
        (status = 409, description = "seat_limit_reached: nothing applied"),
        (status = 413, description = "Larger than IMPORT_MAX_BYTES"),
        (status = 415, description = "Not text/csv"),
        (status = 422, description = "rows_rejected: the problem members plus the members of a RowsReport (`rows`, `errors` as RowError, `error_count`, `errors_truncated`, `applied`: false; nothing applied); or validation_failed for a bad header or file"),
        (status = 503, description = "import_busy: too many imports running; retry"),
    ))]
#[tracing::instrument(skip_all, fields(tenant = %actor.tenant))]
pub async fn import_members(
    State(state): State<AppState>,
    actor: Actor,
    AppQuery(params): AppQuery<ImportParams>,
    headers: HeaderMap,
    body: Body,
) -> AppResult<Json<ImportReport>> {
    // Company hosts only (the policy already grants this to tenant admins alone).
    actor.require_company()?;
    require_csv(&headers)?;
    let _slot = state
        .limits
        .imports
        .clone()
        .try_acquire_owned()
        .map_err(|_| AppError::Unavailable {
            code: "import_busy",
            retry_after_secs: 5,
        })?;
    let (max_bytes, _) = state.limits.of(ROUTE);
    let now = state.clock.now();

    let mut tx = actor.begin(&state).await?;
    apply::create_staging(&mut tx).await?;
    let mut reading = Reading::default();
    let mut csv = CsvStream::new();
    let mut body = body;
    let mut received: usize = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|_| AppError::bad_request("unreadable_body", "The body could not be read."))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received = received.saturating_add(data.len());
        if received > max_bytes {
            return Err(AppError::PayloadTooLarge);
        }
        csv.feed(&data, &mut |r| reading.record(r))?;
        if reading.batch.len() >= apply::BATCH {
            reading.flush(&mut tx).await?;
        }
    }
    csv.finish(&mut |r| reading.record(r))?;
    reading.flush(&mut tx).await?;

    for (line, reason) in apply::check_against_people(&mut tx, actor.tenant, actor.user).await? {
        reading.report.add(line, "email", reason);
    }
    let rows = reading.rows;
    let (errors, error_count, errors_truncated) = reading.report.finish();
    if error_count > 0 && !params.partial.unwrap_or(false) {
        tracing::info!(rows, error_count, "member import refused: bad rows");
        return Err(AppError::RowsRejected(Box::new(RowsReport {
            rows,
            errors,
            error_count,
            errors_truncated,
            applied: false,
        })));
    }

    let (tenant_name, locale, inviter_name) =
        apply::senders(&mut tx, actor.tenant, actor.user).await?;
    let ctx = apply::Context {
        tenant: actor.tenant,
        inviter: actor.user,
        now,
        expires_at: now + time::Duration::days(i64::from(super::invitations::INVITATION_DAYS)),
        expires_in_days: super::invitations::INVITATION_DAYS,
        accept_link: format!(
            "{}/invitations/accept?token=",
            state.config.auth.public_base(&actor.host)
        ),
        tenant_name,
        inviter_name,
        locale,
    };
    let counts = apply::apply(&mut tx, &ctx).await?;
    // Only new (or renewed) invitations take seats; role and department changes do not.
    if counts.invited > 0 {
        apply::check_seats(&mut tx, now).await?;
    }
    tx.commit().await?;
    tracing::info!(
        rows,
        invited = counts.invited,
        updated = counts.updated,
        unchanged = counts.unchanged,
        error_count,
        "members imported"
    );
    Ok(Json(ImportReport {
        rows,
        invited: counts.invited,
        updated: counts.updated,
        unchanged: counts.unchanged,
        errors,
        error_count,
        errors_truncated,
        applied: true,
    }))
}

/// `text/csv` or `application/csv`, UTF-8 (or its ASCII subset) if a charset is named.
fn require_csv(headers: &HeaderMap) -> Result<(), AppError> {
    let refused = || AppError::UnsupportedMediaTypeExpected("text/csv; charset=utf-8");
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(refused)?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !(essence.eq_ignore_ascii_case("text/csv")
        || essence.eq_ignore_ascii_case("application/csv"))
    {
        return Err(refused());
    }
    for param in parts {
        if let Some((name, value)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("charset")
        {
            let charset = value.trim().trim_matches('"');
            if !["utf-8", "utf8", "us-ascii"]
                .iter()
                .any(|c| charset.eq_ignore_ascii_case(c))
            {
                return Err(refused());
            }
        }
    }
    Ok(())
}

/// A row whose e-mail is valid, ready to stage (`ok` false when another field is bad: it is
/// staged all the same, so a later row with the same address is still a duplicate).
pub struct Row {
    pub line: u64,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub department: Option<String>,
    pub role: Option<&'static str>,
    pub ok: bool,
}

/// The state of a read in progress.
#[derive(Default)]
struct Reading {
    header: Option<Header>,
    rows: u64,
    report: Report,
    batch: Vec<Row>,
    /// E-mails of this batch → their row (earlier batches are checked by the staging insert).
    seen: HashMap<String, u64>,
}

impl Reading {
    fn record(&mut self, r: &Record<'_>) -> Result<(), AppError> {
        let Some(header) = self.header else {
            self.header = Some(Header::parse(r)?);
            return Ok(());
        };
        if r.is_blank() {
            return Ok(());
        }
        self.rows += 1;
        if r.len() != header.width {
            self.report.add(
                r.line,
                "row",
                format!("has {} fields; the header has {}", r.len(), header.width),
            );
            return Ok(());
        }
        let Some(row) = validate(r, &header, &mut self.report) else {
            return Ok(());
        };
        if let Some(first) = self.seen.get(&row.email) {
            self.report.add(
                row.line,
                "email",
                format!("appears more than once in the file (first on row {first})"),
            );
            return Ok(());
        }
        self.seen.insert(row.email.clone(), row.line);
        self.batch.push(row);
        Ok(())
    }

    async fn flush(&mut self, conn: &mut sqlx::PgConnection) -> Result<(), AppError> {
        for (line, first) in apply::stage(conn, &self.batch).await? {
            self.report.add(
                line,
                "email",
                format!("appears more than once in the file (first on row {first})"),
            );
        }
        self.batch.clear();
        self.seen.clear();
        Ok(())
    }
}

/// Validate one data row, reporting each bad field; the row is returned when its e-mail is
/// valid (see [`Row`]).
fn validate(r: &Record<'_>, h: &Header, report: &mut Report) -> Option<Row> {
    let [email_at, first_at, last_at, department_at, role_at] = h.index;
    let mut errors: Vec<(&'static str, String)> = Vec::new();
    let email = match text(r, email_at) {
        Err(e) => {
            errors.push(("email", e));
            None
        }
        Ok("") => {
            errors.push(("email", "is required".into()));
            None
        }
        Ok(t) => match Email::parse(t) {
            Ok(e) => Some(e.as_str().to_owned()),
            Err(_) => {
                errors.push(("email", "is not a valid e-mail address".into()));
                None
            }
        },
    };
    let first_name = optional(r, first_at, "first_name", 100, &mut errors);
    let last_name = optional(r, last_at, "last_name", 100, &mut errors);
    let department = optional(r, department_at, "department", 120, &mut errors);
    let role = match text(r, role_at) {
        Err(e) => {
            errors.push(("role", e));
            None
        }
        Ok(t) => match t.to_ascii_lowercase().as_str() {
            "" => None,
            "employee" => Some("employee"),
            "hr" => Some("hr"),
            "tenant_admin" => Some("tenant_admin"),
            "practitioner" => {
                errors.push((
                    "role",
                    "practitioners are assigned by the platform, not imported".into(),
                ));
                None
            }
            _ => {
                errors.push(("role", "must be one of employee, hr, tenant_admin".into()));
                None
            }
        },
    };
    let ok = errors.is_empty();
    for (field, reason) in errors {
        report.add(r.line, field, reason);
    }
    email.map(|email| Row {
        line: r.line,
        email,
        first_name,
        last_name,
        department,
        role,
        ok,
    })
}

/// Field `i`, trimmed, as UTF-8.
fn text<'a>(r: &Record<'a>, i: usize) -> Result<&'a str, String> {
    std::str::from_utf8(r.field(i).unwrap_or_default())
        .map(str::trim)
        .map_err(|_| "is not valid UTF-8".to_owned())
}

/// An optional text field: blank → `None`; at most `max` characters, no control characters.
fn optional(
    r: &Record<'_>,
    i: usize,
    field: &'static str,
    max: usize,
    errors: &mut Vec<(&'static str, String)>,
) -> Option<String> {
    match text(r, i) {
        Err(e) => {
            errors.push((field, e));
            None
        }
        Ok("") => None,
        Ok(t) if t.chars().count() > max => {
            errors.push((field, format!("must be at most {max} characters")));
            None
        }
        Ok(t) if t.chars().any(char::is_control) => {
            errors.push((
                field,
                "must not contain line breaks or other control characters".into(),
            ));
            None
        }
        Ok(t) => Some(t.to_owned()),
    }
}

/// Row errors: all counted, the [`MAX_REPORTED_ERRORS`] first (by row) kept. Errors can arrive
/// slightly out of order (duplicates across batches are found when a batch is staged), so the
/// kept ones are a bounded max-heap that drops the latest row when full.
#[derive(Default)]
struct Report {
    kept: BinaryHeap<Ranked>,
    total: u64,
    seq: u64,
}

struct Ranked {
    seq: u64,
    error: RowError,
}

impl Ranked {
    fn key(&self) -> (u64, u64) {
        (self.error.row, self.seq)
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl Report {
    fn add(&mut self, row: u64, field: &'static str, reason: impl Into<String>) {
        self.total += 1;
        self.seq += 1;
        let ranked = Ranked {
            seq: self.seq,
            error: RowError {
                row,
                field,
                reason: reason.into(),
            },
        };
        if self.kept.len() < MAX_REPORTED_ERRORS {
            self.kept.push(ranked);
        } else if self.kept.peek().is_some_and(|latest| ranked < *latest) {
            self.kept.pop();
            self.kept.push(ranked);
        }
    }

    /// The kept errors in row order, the total, and whether some were left out.
    fn finish(&mut self) -> (Vec<RowError>, u64, bool) {
        let kept = std::mem::take(&mut self.kept).into_sorted_vec();
        let truncated = (kept.len() as u64) < self.total;
        (
            kept.into_iter().map(|r| r.error).collect(),
            self.total,
            truncated,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn the_report_keeps_the_first_rows() {
        let mut r = Report::default();
        for row in (2..3000u64).rev() {
            r.add(row, "email", "bad");
        }
        let (errors, total, truncated) = r.finish();
        assert_eq!(total, 2998);
        assert!(truncated);
        assert_eq!(errors.len(), MAX_REPORTED_ERRORS);
        assert_eq!(errors[0].row, 2);
        assert_eq!(errors[MAX_REPORTED_ERRORS - 1].row, 1001);
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(require_csv(&h).is_err());
        for ok in [
            "text/csv",
            "Text/CSV; charset=UTF-8",
            "application/csv",
            "text/csv; header=present",
        ] {
            h.insert(header::CONTENT_TYPE, ok.parse().unwrap());
            assert!(require_csv(&h).is_ok(), "{ok}");
        }
        for bad in [
            "application/json",
            "text/plain",
            "text/csv; charset=latin1",
            "text/csvx",
        ] {
            h.insert(header::CONTENT_TYPE, bad.parse().unwrap());
            assert!(require_csv(&h).is_err(), "{bad}");
        }
    }
}
