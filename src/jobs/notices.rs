//! What each consultation job does, inside the job's transaction (see [`super`]).
//!
//! | kind | to whom | when it is skipped |
//! |---|---|---|
//! | `reminder_24h`, `reminder_1h` | both participants | not confirmed any more, or moved |
//! | `notice_requested` | the practitioner | already confirmed (automatically) or gone |
//! | `notice_confirmed` | the employee, with a public cancel link; the practitioner too when the system confirmed it | no longer confirmed |
//! | `notice_cancelled` | the participant who did not cancel | — |
//! | `notice_rescheduled` | the participant who did not move it (the employee gets a new cancel link) | cancelled since |
//!
//! A notice is skipped once the consultation's end has passed (a cancellation a few minutes
//! before the start still reaches the practitioner, even after a retry); a reminder is skipped
//! when it comes too late to remind (the 24-hour one with under 2 hours left — the 1-hour one
//! follows —, the 1-hour one with under 5 minutes left) and says the time actually left. Each recipient gets an e-mail (through the outbox, in their
//! locale) and an in-app notification. A participant who left the company or whose account is
//! closed gets nothing (the definers only name reachable participants).

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Job, Links, Outcome};
use crate::crypto::tokens;
use crate::db::WorkerTx;
use crate::error::AppError;
use crate::mail::{ConsultationEvent, ConsultationMail, Message, templates};
use crate::tenants::model::Locale;

struct Context {
    status: String,
    kind: String,
    starts_at: OffsetDateTime,
    ends_at: OffsetDateTime,
    employee: Uuid,
    practitioner: Uuid,
    tenant_slug: String,
    time_zone: String,
}

struct Participant {
    user: Uuid,
    as_practitioner: bool,
    locale: Locale,
}

async fn context(tx: &mut WorkerTx, job: &Job) -> Result<Option<Context>, AppError> {
    let row = sqlx::query!(
        r#"SELECT status AS "status!", kind AS "kind!", starts_at AS "starts_at!",
                  ends_at AS "ends_at!", employee_id AS "employee_id!",
                  practitioner_id AS "practitioner_id!", tenant_slug AS "tenant_slug!",
                  tenant_time_zone AS "tenant_time_zone!"
           FROM app_private.job_consultation($1, $2)"#,
        job.tenant.as_uuid(),
        job.id
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| Context {
        status: r.status,
        kind: r.kind,
        starts_at: r.starts_at,
        ends_at: r.ends_at,
        employee: r.employee_id,
        practitioner: r.practitioner_id,
        tenant_slug: r.tenant_slug,
        time_zone: r.tenant_time_zone,
    }))
}

async fn participants(tx: &mut WorkerTx, job: &Job) -> Result<Vec<Participant>, AppError> {
    let rows = sqlx::query!(
        r#"SELECT user_id AS "user_id!", as_practitioner AS "as_practitioner!",
                  locale AS "locale!"
           FROM app_private.job_participants($1, $2)"#,
        job.tenant.as_uuid(),
        job.id
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Participant {
            user: r.user_id,
            as_practitioner: r.as_practitioner,
            locale: Locale::parse(&r.locale).unwrap_or(Locale::En),
        })
        .collect())
}

/// Who is told, and what.
struct Plan {
    event: ConsultationEvent,
    notification: &'static str,
    recipients: Vec<Uuid>,
    /// The employee (if a recipient) gets a public cancel link.
    cancel_link: bool,
}

/// A reminder this late no longer reminds.
fn too_late(kind: &str, left: time::Duration) -> bool {
    match kind {
        "reminder_24h" => left < time::Duration::hours(2),
        _ => left < time::Duration::minutes(5),
    }
}

fn plan(job: &Job, c: &Context, now: OffsetDateTime) -> Option<Plan> {
    if c.ends_at <= now {
        return None;
    }
    let left = c.starts_at - now;
    let everyone = vec![c.employee, c.practitioner];
    let others: Vec<Uuid> = everyone
        .iter()
        .copied()
        .filter(|u| Some(*u) != job.actor)
        .collect();
    let reminder = || {
        (c.status == "confirmed" && c.starts_at == job.for_starts_at && !too_late(&job.kind, left))
            .then(|| Plan {
                event: ConsultationEvent::Reminder {
                    minutes: u32::try_from(left.whole_minutes()).unwrap_or(0),
                },
                notification: "consultation_reminder",
                recipients: everyone.clone(),
                cancel_link: false,
            })
    };
    match job.kind.as_str() {
        "reminder_24h" | "reminder_1h" => reminder(),
        "notice_requested" => (c.status == "requested").then(|| Plan {
            event: ConsultationEvent::Requested,
            notification: "consultation_requested",
            recipients: vec![c.practitioner],
            cancel_link: false,
        }),
        "notice_confirmed" => (c.status == "confirmed").then(|| Plan {
            event: ConsultationEvent::Confirmed,
            notification: "consultation_confirmed",
            recipients: if job.actor.is_none() {
                everyone.clone()
            } else {
                vec![c.employee]
            },
            cancel_link: true,
        }),
        "notice_cancelled" => Some(Plan {
            event: ConsultationEvent::Cancelled,
            notification: "consultation_cancelled",
            recipients: others,
            cancel_link: false,
        }),
        "notice_rescheduled" => {
            matches!(c.status.as_str(), "requested" | "confirmed").then(|| Plan {
                event: ConsultationEvent::Rescheduled,
                notification: "consultation_rescheduled",
                recipients: others,
                cancel_link: true,
            })
        }
        _ => None,
    }
}

/// Run one job in its transaction.
pub async fn run(
    tx: &mut WorkerTx,
    job: &Job,
    links: &Links,
    now: OffsetDateTime,
) -> Result<Outcome, AppError> {
    let Some(c) = context(tx, job).await? else {
        return Ok(Outcome::Skipped);
    };
    let Some(plan) = plan(job, &c, now) else {
        return Ok(Outcome::Skipped);
    };
    let base = links.base(&c.tenant_slug);
    let length = u32::try_from((c.ends_at - c.starts_at).whole_minutes()).unwrap_or(0);
    let mut told = 0usize;
    for p in participants(tx, job).await? {
        if !plan.recipients.contains(&p.user) {
            continue;
        }
        let cancel_link = if plan.cancel_link && !p.as_practitioner {
            issue_cancel_link(tx, job, now)
                .await?
                .map(|t| format!("{base}/cancel/{t}"))
        } else {
            None
        };
        let message = Message::Consultation(ConsultationMail {
            event: plan.event,
            starts_at: c.starts_at,
            time_zone: c.time_zone.clone(),
            length_minutes: length,
            kind: c.kind.clone(),
            app_link: format!("{base}/consultations/{}", job.consultation),
            cancel_link,
        });
        message.validate()?;
        let rendered = templates::render(&message, p.locale);
        let mailed = sqlx::query_scalar!(
            r#"SELECT app_private.job_mail($1, $2, $3, $4, $5, $6, $7, $8, $9) AS "mailed!""#,
            job.tenant.as_uuid(),
            job.id,
            p.user,
            p.locale.as_str(),
            message.template(),
            rendered.subject,
            rendered.text,
            rendered.html,
            now
        )
        .fetch_one(&mut **tx)
        .await?;
        let notified = sqlx::query_scalar!(
            r#"SELECT app_private.job_notify($1, $2, $3, $4, $5) AS "notified!""#,
            job.tenant.as_uuid(),
            job.id,
            p.user,
            plan.notification,
            now
        )
        .fetch_one(&mut **tx)
        .await?;
        if mailed || notified {
            told += 1;
        }
    }
    Ok(if told > 0 {
        Outcome::Done
    } else {
        Outcome::Skipped
    })
}

/// A fresh single-use cancel link for the job's consultation; `None` when it can no longer be
/// cancelled.
async fn issue_cancel_link(
    tx: &mut WorkerTx,
    job: &Job,
    now: OffsetDateTime,
) -> Result<Option<String>, AppError> {
    let id = Uuid::now_v7();
    let token = tokens::record_token(id);
    let issued = sqlx::query_scalar!(
        r#"SELECT app_private.job_cancel_link($1, $2, $3, $4, $5) AS "issued!""#,
        job.tenant.as_uuid(),
        job.id,
        id,
        token.hash.as_slice(),
        now
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(issued.then_some(token.token))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::db::TenantId;
    use time::macros::datetime;

    fn job(kind: &str, actor: Option<Uuid>) -> Job {
        Job {
            tenant: TenantId(Uuid::nil()),
            id: Uuid::nil(),
            kind: kind.into(),
            consultation: Uuid::nil(),
            for_starts_at: datetime!(2026-12-10 13:00 UTC),
            actor,
            attempts: 0,
        }
    }

    fn ctx(status: &str) -> Context {
        Context {
            status: status.into(),
            kind: "video".into(),
            starts_at: datetime!(2026-12-10 13:00 UTC),
            ends_at: datetime!(2026-12-10 13:50 UTC),
            employee: Uuid::from_u128(1),
            practitioner: Uuid::from_u128(2),
            tenant_slug: "acme".into(),
            time_zone: "Europe/Paris".into(),
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-12-09 13:00 UTC);

    #[test]
    fn reminders_go_to_both_only_while_confirmed_and_unmoved() {
        let p = plan(&job("reminder_24h", None), &ctx("confirmed"), NOW).unwrap();
        assert_eq!(p.recipients.len(), 2);
        assert!(plan(&job("reminder_24h", None), &ctx("cancelled"), NOW).is_none());
        assert!(plan(&job("reminder_1h", None), &ctx("requested"), NOW).is_none());
        let mut moved = ctx("confirmed");
        moved.starts_at += time::Duration::hours(2);
        assert!(plan(&job("reminder_1h", None), &moved, NOW).is_none());
        // A reminder says the time actually left, and is dropped when too late to remind.
        let p = plan(
            &job("reminder_1h", None),
            &ctx("confirmed"),
            datetime!(2026-12-10 12:20 UTC),
        );
        assert_eq!(
            p.unwrap().event,
            ConsultationEvent::Reminder { minutes: 40 }
        );
        let at = |t| plan(&job("reminder_24h", None), &ctx("confirmed"), t).is_some();
        assert!(at(datetime!(2026-12-10 10:30 UTC)));
        assert!(
            !at(datetime!(2026-12-10 11:30 UTC)),
            "under 2 hours: the 1-hour one follows"
        );
        let at = |t| plan(&job("reminder_1h", None), &ctx("confirmed"), t).is_some();
        assert!(!at(datetime!(2026-12-10 12:56 UTC)));
        assert!(
            !at(datetime!(2026-12-10 13:00 UTC)),
            "nothing once it started"
        );
    }

    #[test]
    fn a_late_cancellation_is_still_told_until_the_end() {
        let e = Uuid::from_u128(1);
        let during = datetime!(2026-12-10 13:10 UTC);
        let cancelled = ctx("cancelled");
        assert!(plan(&job("notice_cancelled", Some(e)), &cancelled, during).is_some());
        let after = datetime!(2026-12-10 13:50 UTC);
        assert!(plan(&job("notice_cancelled", Some(e)), &cancelled, after).is_none());
    }

    #[test]
    fn notices_go_to_the_other_party_and_confirmations_to_the_employee() {
        let e = Uuid::from_u128(1);
        let d = Uuid::from_u128(2);
        let by_doc = plan(&job("notice_confirmed", Some(d)), &ctx("confirmed"), NOW).unwrap();
        assert_eq!(by_doc.recipients, vec![e]);
        assert!(by_doc.cancel_link);
        let auto = plan(&job("notice_confirmed", None), &ctx("confirmed"), NOW).unwrap();
        assert_eq!(auto.recipients, vec![e, d]);
        let cancelled = plan(&job("notice_cancelled", Some(e)), &ctx("cancelled"), NOW).unwrap();
        assert_eq!(cancelled.recipients, vec![d]);
        let moved = plan(&job("notice_rescheduled", Some(d)), &ctx("confirmed"), NOW).unwrap();
        assert_eq!(moved.recipients, vec![e]);
        assert!(plan(&job("notice_requested", Some(e)), &ctx("confirmed"), NOW).is_none());
        assert_eq!(
            plan(&job("notice_requested", Some(e)), &ctx("requested"), NOW)
                .unwrap()
                .recipients,
            vec![d]
        );
    }
}
