//! `serein demo --history`: a synthetic past for the demo company, so that HR's usage report
//! and CSV export (which release CLOSED months only, frozen on the first request after they
//! close: migration 20261208000040) have real released cells to show from the README alone.
//!
//! What it writes, in tenant `demo` only, in ONE transaction (serialised by an advisory lock):
//! - 41 synthetic employees, `member-01@demo.serein.test` … `member-41@demo.serein.test`, in
//!   Sales (12), Engineering (14), Operations (11) and Legal (4: a department too small for
//!   `min_cohort`, whose cells the report suppresses). No password and an unverified address:
//!   they cannot log in. Their identity and membership are created at the first instant of the
//!   first history month (company time), so `enrolled_since` (set from `created_at` by the
//!   membership trigger) counts them in every history month's population, before any of their
//!   consultations.
//! - The company's `created_at` moved back to that instant when it is later: months before a
//!   company's creation month have no release. It is never moved forward.
//! - For each of the last three CLOSED months in the company's time zone (the report's rule),
//!   consultations with the demo practitioners on working days at the hours of their weekly
//!   rules (50 minutes on the hour), written as the domain writes them: the row in its final
//!   state and its events (`requested`, `confirmed` — by the system for a practitioner who
//!   confirms automatically, by hand otherwise —, then `started` + `ended`, `no_show`, or
//!   `cancelled`), with the sequence, `cancelled_by`, `cancel_reason` and
//!   `counts_against_allowance` the transitions of migrations 0004/0005 would have left. The
//!   report's minutes come from the `started`/`ended` events. No session overlaps another of
//!   its practitioner (any company, any status but cancelled) or of its employee; no employee
//!   exceeds the company's allowance in a calendar year (existing sessions counted).
//! - The event trigger of migration 20261207000001 plans reminder and notice jobs for every
//!   `requested`, `confirmed` and `cancelled` event; for a past session they would be due at
//!   once and mail or notify people. The jobs planned for the new consultations are deleted in
//!   the same transaction, before it commits: no job, e-mail or notification ever exists for
//!   the history (the worker writes mail and notifications from jobs only).
//!
//! Invariants:
//! - Deterministic: the plan of a month depends on the month, the members and the slots
//!   already taken, not on the run (a seeded generator), so the README's figures reproduce.
//! - Idempotent and additive: a member who exists is left as they are; a month in which any
//!   history member already has a consultation is left as it is. A second run writes nothing
//!   and prints `history: unchanged`. A later run, after another month closed, adds that month.
//! - Nothing is released here: the first HR request after this freezes the months (a month
//!   already frozen before the history was added keeps its earlier release — the report's rule).
//! - A demo tool: tenant `demo` only (the slug is fixed by the caller), never another company.

mod plan;

use std::collections::HashMap;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::{Db, TenantId, UserId};

pub(crate) use plan::HistoryPractitioner;
use plan::{DEPARTMENTS, HOURS, MonthInput, Outcome, Planned, members, plan_month};

/// What one run did (for the summary).
pub(crate) struct HistoryOutcome {
    pub lines: Vec<String>,
    pub changed: bool,
}

/// The tenant's settings the history needs.
struct TenantFacts {
    time_zone: String,
    allowance: i64,
    late_cancel_hours: i64,
}

/// Add the synthetic past (see the module header). `practitioners`: the demo practitioners, in
/// their order; `now`: the operator's clock (closed months are judged by it).
pub(crate) async fn ensure_history(
    db: &Db,
    tenant: TenantId,
    practitioners: &[HistoryPractitioner],
    now: OffsetDateTime,
) -> anyhow::Result<HistoryOutcome> {
    let mut conn = db.admin_conn().await?;
    let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
    sqlx::query_scalar!(
        r#"SELECT true AS "locked!" FROM pg_advisory_xact_lock(hashtext('serein demo history'))"#
    )
    .fetch_one(&mut *tx)
    .await?;
    let facts = sqlx::query!(
        r#"SELECT time_zone, allowance, late_cancel_hours FROM tenants WHERE id = $1"#,
        tenant.as_uuid()
    )
    .fetch_one(&mut *tx)
    .await?;
    let facts = TenantFacts {
        time_zone: facts.time_zone,
        allowance: i64::from(facts.allowance),
        late_cancel_hours: i64::from(facts.late_cancel_hours),
    };
    // The last three closed months in the company's zone, with their bounds.
    let months = sqlx::query!(
        r#"SELECT m::date AS "month!", (m AT TIME ZONE $2) AS "starts!", ((m + interval '1 month') AT TIME ZONE $2) AS "ends!"
           FROM generate_series(date_trunc('month', $1::timestamptz AT TIME ZONE $2) - interval '3 months',
                                date_trunc('month', $1::timestamptz AT TIME ZONE $2) - interval '1 month',
                                interval '1 month') AS m
           ORDER BY 1"#,
        now,
        facts.time_zone
    )
    .fetch_all(&mut *tx)
    .await?;
    let Some(first) = months.first() else {
        anyhow::bail!("no closed month to fill");
    };
    let enrolled_at = first.starts;
    let mut lines = Vec::new();
    let mut changed = false;

    // The company exists from the first history month on (months before its creation month
    // have no release).
    let backdated = sqlx::query_scalar!(
        r#"UPDATE tenants SET created_at = $2 WHERE id = $1 AND created_at > $2
           RETURNING true AS "moved!""#,
        tenant.as_uuid(),
        enrolled_at
    )
    .fetch_optional(&mut *tx)
    .await?;
    if backdated.is_some() {
        changed = true;
        lines.push(format!(
            "history: company creation moved back to {} ({}), the first history month",
            first.month, facts.time_zone
        ));
    }

    // The members: identities without a password, memberships enrolled from `enrolled_at`.
    let planned = members();
    let mut created = 0usize;
    for m in &planned {
        let user = sqlx::query_scalar!(
            r#"INSERT INTO users (id, email, display_name, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $4)
               ON CONFLICT (email) DO NOTHING
               RETURNING id AS "id: UserId""#,
            UserId::new().as_uuid(),
            m.email,
            m.name,
            enrolled_at
        )
        .fetch_optional(&mut *tx)
        .await?;
        let user = match user {
            Some(u) => u,
            None => {
                sqlx::query_scalar!(
                    r#"SELECT id AS "id: UserId" FROM users WHERE email = $1"#,
                    m.email
                )
                .fetch_one(&mut *tx)
                .await?
            }
        };
        let inserted = sqlx::query!(
            r#"INSERT INTO memberships (id, tenant_id, user_id, roles, status, department, created_at, updated_at)
               VALUES ($1, $2, $3, ARRAY['employee'], 'active', $4, $5, $5)
               ON CONFLICT (tenant_id, user_id) DO NOTHING"#,
            Uuid::now_v7(),
            tenant.as_uuid(),
            user.as_uuid(),
            m.department,
            enrolled_at
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        created += usize::try_from(inserted).unwrap_or(0);
    }
    if created > 0 {
        changed = true;
        sqlx::query_scalar!(
            r#"SELECT app_private.enforce_seats($1, $2) AS "left!""#,
            tenant.as_uuid(),
            now
        )
        .fetch_one(&mut *tx)
        .await?;
    }
    // Those who qualify: an active, not ended employee membership in their planned department,
    // enrolled by the first history month. Anyone else (an address someone took for
    // themselves) gets no history.
    let emails: Vec<String> = planned.iter().map(|m| m.email.clone()).collect();
    let rows = sqlx::query!(
        r#"SELECT u.email, u.id AS "id: UserId", m.department
           FROM users u JOIN memberships m ON m.user_id = u.id AND m.tenant_id = $1
           WHERE u.email = ANY($2) AND m.status = 'active' AND m.ended_at IS NULL
             AND 'employee' = ANY (m.roles) AND m.enrolled_since <= $3
           ORDER BY u.email"#,
        tenant.as_uuid(),
        &emails,
        enrolled_at
    )
    .fetch_all(&mut *tx)
    .await?;
    let departments: Vec<Vec<UserId>> = DEPARTMENTS
        .iter()
        .map(|d| {
            rows.iter()
                .filter(|r| r.department.as_deref() == Some(d.name))
                .filter(|r| {
                    planned
                        .iter()
                        .any(|m| m.email == r.email && m.department == d.name)
                })
                .map(|r| r.id)
                .collect()
        })
        .collect();
    let qualifying: Vec<Uuid> = departments.iter().flatten().map(|u| u.as_uuid()).collect();
    lines.push(format!(
        "history: {} synthetic employees (member-01 … member-{:02}@demo.serein.test, no password: \
         they cannot log in) in {}  [{}]",
        qualifying.len(),
        planned.len(),
        DEPARTMENTS
            .iter()
            .zip(&departments)
            .map(|(d, p)| format!("{} ({})", d.name, p.len()))
            .collect::<Vec<_>>()
            .join(", "),
        if created > 0 {
            format!("created {created}")
        } else {
            "unchanged".to_owned()
        }
    ));
    if qualifying.len() < planned.len() {
        lines.push(format!(
            "  note: {} of the member addresses belong to accounts that do not fit the history \
             (not an employee of the planned department enrolled by {}); they get no sessions",
            planned.len() - qualifying.len(),
            first.month
        ));
    }

    let practitioner_ids: Vec<Uuid> = practitioners.iter().map(|p| p.user.as_uuid()).collect();
    let mut all_new: Vec<Uuid> = Vec::new();
    for month in &months {
        let exists = sqlx::query_scalar!(
            r#"SELECT EXISTS (SELECT 1 FROM consultations
                              WHERE tenant_id = $1 AND employee_id = ANY($2)
                                AND starts_at >= $3 AND starts_at < $4) AS "exists!""#,
            tenant.as_uuid(),
            &qualifying,
            month.starts,
            month.ends
        )
        .fetch_one(&mut *tx)
        .await?;
        let label = month.month.to_string().chars().take(7).collect::<String>();
        if exists {
            lines.push(format!(
                "history {label}: already has its consultations  [unchanged]"
            ));
            continue;
        }
        let slots = sqlx::query_scalar!(
            r#"SELECT ((d + make_interval(hours => h)) AT TIME ZONE $2) AS "at!"
               FROM generate_series($1::date::timestamp, $1::date + interval '1 month' - interval '1 day',
                                    interval '1 day') AS d,
                    unnest($3::int4[]) AS h
               WHERE extract(isodow FROM d) < 6
               ORDER BY 1"#,
            month.month,
            facts.time_zone,
            &HOURS
        )
        .fetch_all(&mut *tx)
        .await?;
        let busy_rows = sqlx::query!(
            r#"SELECT practitioner_id, starts_at, ends_at FROM consultations
               WHERE practitioner_id = ANY($1) AND status <> 'cancelled'
                 AND starts_at < $3 AND ends_at > $2"#,
            &practitioner_ids,
            month.starts,
            month.ends
        )
        .fetch_all(&mut *tx)
        .await?;
        let busy: Vec<Vec<(OffsetDateTime, OffsetDateTime)>> = practitioner_ids
            .iter()
            .map(|p| {
                busy_rows
                    .iter()
                    .filter(|r| r.practitioner_id == *p)
                    .map(|r| (r.starts_at, r.ends_at))
                    .collect()
            })
            .collect();
        let used_rows = sqlx::query!(
            r#"SELECT employee_id AS "id: UserId", count(*) AS "n!"
               FROM consultations
               WHERE tenant_id = $1 AND employee_id = ANY($2) AND counts_against_allowance
                 AND date_part('year', starts_at AT TIME ZONE $3) = date_part('year', $4::date)
               GROUP BY 1"#,
            tenant.as_uuid(),
            &qualifying,
            facts.time_zone,
            month.month
        )
        .fetch_all(&mut *tx)
        .await?;
        let used: HashMap<UserId, i64> = used_rows.into_iter().map(|r| (r.id, r.n)).collect();
        let seq = i64::from(month.month.year()) * 12 + i64::from(u8::from(month.month.month())) - 1;
        let plan = plan_month(&MonthInput {
            seq,
            slots: &slots,
            busy: &busy,
            departments: &departments,
            used: &used,
            allowance: facts.allowance,
            late_cancel_hours: facts.late_cancel_hours,
            practitioners,
            not_before: enrolled_at,
        });
        insert(&mut tx, tenant, &plan).await?;
        all_new.extend(plan.iter().map(|p| p.id));
        let count = |o: Outcome| plan.iter().filter(|p| p.outcome == o).count();
        lines.push(format!(
            "history {label}: {} consultations ({} held, {} cancelled, {} no-shows)  [created]",
            plan.len(),
            count(Outcome::Ended),
            count(Outcome::Cancelled),
            count(Outcome::NoShow)
        ));
        changed = true;
    }
    if !all_new.is_empty() {
        // The event trigger planned reminders and notices for these past sessions: due at
        // once, they would mail and notify people. Removed before anything commits.
        let removed = sqlx::query!(
            "DELETE FROM jobs WHERE tenant_id = $1 AND consultation_id = ANY($2)",
            tenant.as_uuid(),
            &all_new
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        lines.push(format!(
            "history: the {removed} reminder and notice jobs the event trigger planned for these \
             past sessions were removed in the same transaction: nobody is mailed or notified"
        ));
    }
    tx.commit().await?;
    if !changed {
        lines = vec![format!(
            "history: unchanged ({} synthetic employees; {} already have their consultations)",
            qualifying.len(),
            months
                .iter()
                .map(|m| m.month.to_string().chars().take(7).collect::<String>())
                .collect::<Vec<_>>()
                .join(", ")
        )];
    }
    Ok(HistoryOutcome { lines, changed })
}

/// Write the planned sessions and their events, as the booking and transition definers would
/// have left them.
async fn insert(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    plan: &[Planned],
) -> anyhow::Result<()> {
    if plan.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = plan.iter().map(|p| p.id).collect();
    let employees: Vec<Uuid> = plan.iter().map(|p| p.employee.as_uuid()).collect();
    let practitioners: Vec<Uuid> = plan.iter().map(|p| p.practitioner.user.as_uuid()).collect();
    let kinds: Vec<String> = plan.iter().map(|p| p.kind.to_owned()).collect();
    let statuses: Vec<String> = plan.iter().map(|p| p.status().to_owned()).collect();
    let starts: Vec<OffsetDateTime> = plan.iter().map(|p| p.starts_at).collect();
    let ends: Vec<OffsetDateTime> = plan.iter().map(Planned::ends_at).collect();
    let sequences: Vec<i32> = plan.iter().map(Planned::sequence).collect();
    // Nil: not cancelled (NULLIF below).
    let cancelled_by: Vec<Uuid> = plan
        .iter()
        .map(|p| p.cancelled_by().map_or(Uuid::nil(), |u| u.as_uuid()))
        .collect();
    let reasons: Vec<String> = plan.iter().map(|p| p.cancel_reason.to_owned()).collect();
    let counts: Vec<bool> = plan.iter().map(|p| p.counts).collect();
    let created: Vec<OffsetDateTime> = plan.iter().map(|p| p.created_at).collect();
    let updated: Vec<OffsetDateTime> = plan.iter().map(Planned::updated_at).collect();
    sqlx::query!(
        r#"INSERT INTO consultations (id, tenant_id, employee_id, practitioner_id, kind, status,
                                      starts_at, ends_at, sequence, room, cancelled_by,
                                      cancel_reason, counts_against_allowance, created_at, updated_at)
           SELECT x.id, $1, x.employee, x.practitioner, x.kind, x.status, x.starts_at, x.ends_at,
                  x.sequence, replace(gen_random_uuid()::text, '-', ''),
                  NULLIF(x.cancelled_by, '00000000-0000-0000-0000-000000000000'::uuid),
                  NULLIF(x.reason, ''), x.counts, x.created_at, x.updated_at
           FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[],
                       $7::timestamptz[], $8::timestamptz[], $9::int4[], $10::uuid[], $11::text[],
                       $12::bool[], $13::timestamptz[], $14::timestamptz[])
                AS x(id, employee, practitioner, kind, status, starts_at, ends_at, sequence,
                     cancelled_by, reason, counts, created_at, updated_at)"#,
        tenant.as_uuid(),
        &ids,
        &employees,
        &practitioners,
        &kinds,
        &statuses,
        &starts,
        &ends,
        &sequences,
        &cancelled_by,
        &reasons,
        &counts,
        &created,
        &updated
    )
    .execute(&mut *tx)
    .await?;

    // The events, in the order they happened (actor nil: the system).
    let mut e_consultation = Vec::new();
    let mut e_kind = Vec::new();
    let mut e_actor = Vec::new();
    let mut e_at = Vec::new();
    for p in plan {
        let mut push = |kind: &str, actor: Option<UserId>, at: OffsetDateTime| {
            e_consultation.push(p.id);
            e_kind.push(kind.to_owned());
            e_actor.push(actor.map_or(Uuid::nil(), |a| a.as_uuid()));
            e_at.push(at);
        };
        push("requested", Some(p.employee), p.created_at);
        push(
            "confirmed",
            (!p.practitioner.auto_confirm).then_some(p.practitioner.user),
            p.confirmed_at,
        );
        match p.outcome {
            Outcome::Ended => {
                push("started", Some(p.practitioner.user), p.first_at);
                push("ended", Some(p.practitioner.user), p.second_at);
            }
            Outcome::NoShow => push("no_show", Some(p.practitioner.user), p.first_at),
            Outcome::Cancelled => push("cancelled", p.cancelled_by(), p.first_at),
        }
    }
    sqlx::query!(
        r#"INSERT INTO consultation_events (id, tenant_id, consultation_id, kind, actor_id, at)
           SELECT gen_random_uuid(), $1, x.consultation, x.kind,
                  NULLIF(x.actor, '00000000-0000-0000-0000-000000000000'::uuid), x.at
           FROM unnest($2::uuid[], $3::text[], $4::uuid[], $5::timestamptz[])
                WITH ORDINALITY AS x(consultation, kind, actor, at, n)
           ORDER BY x.n"#,
        tenant.as_uuid(),
        &e_consultation,
        &e_kind,
        &e_actor,
        &e_at
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
