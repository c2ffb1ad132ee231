//! The `email_outbox` table: the request's insert, and the worker's calls to the `app_private`
//! definer functions (claim with a lease, mark sent, mark failed, prune).
//!
//! Invariants: [`insert`] runs in the caller's tenant transaction and needs only the INSERT
//! grant (no RETURNING, no read-back). Every other function here runs in a `WorkerTx` (role
//! `serein_worker`, the only role granted the worker definers; they also refuse a tenant context) and identifies a row by
//! tenant, id and the lease id of the claim, so an outcome can only be recorded by the worker
//! that holds the lease.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::templates::Rendered;
use crate::db::TenantId;
use crate::error::AppError;
use crate::tenants::model::Locale;

/// An outbox row's id (UUIDv7, made here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MailId(pub Uuid);

impl std::fmt::Display for MailId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A message to insert.
pub struct NewMail<'a> {
    pub tenant: TenantId,
    pub to: &'a str,
    pub locale: Locale,
    pub template: &'static str,
    pub rendered: &'a Rendered,
    pub now: OffsetDateTime,
}

/// Insert a pending row, due now, in the caller's transaction.
pub async fn insert(conn: &mut PgConnection, mail: &NewMail<'_>) -> Result<MailId, AppError> {
    let id = MailId(Uuid::now_v7());
    sqlx::query!(
        "INSERT INTO email_outbox (id, tenant_id, to_address, locale, template, subject,
                                   body_text, body_html, created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        id.0,
        mail.tenant.as_uuid(),
        mail.to,
        mail.locale.as_str(),
        mail.template,
        mail.rendered.subject,
        mail.rendered.text,
        mail.rendered.html,
        mail.now,
    )
    .execute(conn)
    .await?;
    Ok(id)
}

/// A leased row, ready to send.
#[derive(Clone)]
pub struct Claimed {
    pub tenant: TenantId,
    pub id: MailId,
    pub lease: Uuid,
    /// This attempt's number (1 for the first).
    pub attempt: i32,
    pub to: String,
    pub template: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

// Hand-written: the address, subject and bodies stay out of any debug output.
impl std::fmt::Debug for Claimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimed")
            .field("tenant", &self.tenant)
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

/// Limits of a claim.
#[derive(Debug, Clone, Copy)]
pub struct ClaimLimits {
    pub batch: i32,
    pub lease_secs: i32,
    pub max_attempts: i32,
}

/// Lease up to `limits.batch` due rows across tenants (attempt counted now).
pub async fn claim(
    conn: &mut PgConnection,
    now: OffsetDateTime,
    limits: ClaimLimits,
) -> Result<Vec<Claimed>, AppError> {
    let rows = sqlx::query!(
        r#"SELECT tenant_id AS "tenant_id!", id AS "id!", lease_id AS "lease_id!",
                  attempts AS "attempts!", to_address AS "to_address!", template AS "template!",
                  subject AS "subject!", body_text AS "body_text!", body_html
           FROM app_private.mail_claim($1, $2, $3, $4)"#,
        now,
        limits.batch,
        limits.lease_secs,
        limits.max_attempts,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Claimed {
            tenant: TenantId(r.tenant_id),
            id: MailId(r.id),
            lease: r.lease_id,
            attempt: r.attempts,
            to: r.to_address,
            template: r.template,
            subject: r.subject,
            text: r.body_text,
            html: r.body_html,
        })
        .collect())
}

/// Record a delivery (purges the body). False when the lease was lost.
pub async fn mark_sent(
    conn: &mut PgConnection,
    mail: &Claimed,
    now: OffsetDateTime,
) -> Result<bool, AppError> {
    let done = sqlx::query_scalar!(
        r#"SELECT app_private.mail_mark_sent($1, $2, $3, $4) AS "done!""#,
        mail.tenant.as_uuid(),
        mail.id.0,
        mail.lease,
        now,
    )
    .fetch_one(conn)
    .await?;
    Ok(done)
}

/// Retry policy of failed attempts.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: i32,
    pub base_secs: i32,
    pub cap_secs: i32,
}

/// What became of a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Will be retried at this time.
    Retry { at: OffsetDateTime },
    /// Given up (attempts spent, or a permanent refusal); body purged.
    Dead,
    /// The lease had been lost (another worker owns the row now).
    LeaseLost,
}

/// Record a failed attempt with a short, address-free error classification.
pub async fn mark_failed(
    conn: &mut PgConnection,
    mail: &Claimed,
    now: OffsetDateTime,
    error: &str,
    permanent: bool,
    policy: RetryPolicy,
) -> Result<AfterFailure, AppError> {
    let row = sqlx::query!(
        r#"SELECT status AS "status!", next_attempt_at AS "next_attempt_at!"
           FROM app_private.mail_mark_failed($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
        mail.tenant.as_uuid(),
        mail.id.0,
        mail.lease,
        now,
        error,
        permanent,
        policy.max_attempts,
        policy.base_secs,
        policy.cap_secs,
    )
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        None => AfterFailure::LeaseLost,
        Some(r) if r.status == "dead" => AfterFailure::Dead,
        Some(r) => AfterFailure::Retry {
            at: r.next_attempt_at,
        },
    })
}

/// Delete sent and dead rows created before `before` (at most `limit`).
pub async fn prune(
    conn: &mut PgConnection,
    before: OffsetDateTime,
    limit: i32,
) -> Result<i32, AppError> {
    let n = sqlx::query_scalar!(
        r#"SELECT app_private.mail_prune($1, $2) AS "n!""#,
        before,
        limit
    )
    .fetch_one(conn)
    .await?;
    Ok(n)
}
