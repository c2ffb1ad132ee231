//! The digest of unread notifications, e-mailed to people who have not signed in for a while
//! (issue 13, item 4). Run by the job worker ([`crate::jobs::JobWorker::digest`]).
//!
//! Who gets one (decided in the database, `app_private.job_digest_due`, migration
//! `20261209000300_notification_preferences.sql`): an active member with unread notifications in
//! a company, at least one of them new since their last digest there, who has not signed in
//! there for `DIGEST_INACTIVE_DAYS` (their newest login, token refresh or the membership's
//! start is older), was not sent one there in the last `DIGEST_EVERY_DAYS`, and has not turned
//! the digest off.
//!
//! Invariants:
//! - Through `WorkerTx` (role `serein_worker`) and the `job_digest_*` definers only; the
//!   request role can execute neither, nor read `notification_digests`.
//! - Recording the digest and queueing its e-mail are one statement each in one transaction
//!   with the check, by the definer, that the person is due one (the same rule again) and that
//!   none was sent within the period: two workers never both send one, and the worker can mail
//!   no one else.
//! - The e-mail says counts per kind and links to the app on the company's host: no name, no
//!   time, no content (see `mail::digest_templates`). It is written in the person's locale.
//! - Logs carry counts, never a person, an address or a link.

use time::OffsetDateTime;

use crate::db::{Db, WorkerTx};
use crate::error::AppError;
use crate::mail::{DigestMail, Message, templates};
use crate::tenants::model::Locale;

/// People handled per transaction.
const BATCH: i32 = 200;

/// When digests are due.
#[derive(Debug, Clone, Copy)]
pub struct DigestRule {
    /// Days without signing in before a digest is sent.
    pub inactive_days: i32,
    /// Days between two digests to one person in one company.
    pub every_days: i32,
}

/// Send every digest due at `now`; `link(slug)` is the web app's base for a company. Returns
/// how many were queued.
pub async fn send_due(
    db: &Db,
    rule: DigestRule,
    now: OffsetDateTime,
    link: impl Fn(&str) -> String,
) -> Result<usize, AppError> {
    let mut total = 0usize;
    loop {
        let mut tx = WorkerTx::begin(db).await?;
        let due = sqlx::query!(
            r#"SELECT tenant_id AS "tenant_id!", user_id AS "user_id!", locale AS "locale!",
                      tenant_slug AS "tenant_slug!", kinds AS "kinds!", counts AS "counts!"
               FROM app_private.job_digest_due($1, $2, $3, $4)"#,
            now,
            rule.inactive_days,
            rule.every_days,
            BATCH
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut sent = 0usize;
        for d in &due {
            let locale = Locale::parse(&d.locale).unwrap_or(Locale::En);
            let message = Message::Digest(DigestMail {
                counts: d
                    .kinds
                    .iter()
                    .cloned()
                    .zip(
                        d.counts
                            .iter()
                            .map(|n| u32::try_from(*n).unwrap_or(u32::MAX)),
                    )
                    .collect(),
                app_link: format!("{}/notifications", link(&d.tenant_slug)),
            });
            message.validate()?;
            let r = templates::render(&message, locale);
            let queued = sqlx::query_scalar!(
                r#"SELECT app_private.job_digest_send($1, $2, $3, $4, $5, $6, $7, $8, $9) AS "q!""#,
                d.tenant_id,
                d.user_id,
                locale.as_str(),
                r.subject,
                r.text,
                r.html,
                now,
                rule.inactive_days,
                rule.every_days
            )
            .fetch_one(&mut *tx)
            .await?;
            if queued {
                sent += 1;
            }
        }
        tx.commit().await?;
        total = total.saturating_add(sent);
        // Another batch only when this one was full and every person in it was served (so a
        // person the send refuses cannot keep the loop going).
        if i32::try_from(due.len()).unwrap_or(0) < BATCH || sent < due.len() {
            if total > 0 {
                tracing::info!(sent = total, "notification digests queued");
            }
            return Ok(total);
        }
    }
}
