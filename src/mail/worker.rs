//! The mail worker: claims due outbox rows, sends them, records the outcome.
//!
//! Invariants:
//! - It reaches the database only through `WorkerTx` (role `serein_worker`: no table privilege,
//!   EXECUTE on the `app_private.mail_*` definers only, which the request role cannot call):
//!   no privileged connection, and no request transaction can act as the worker.
//! - No database transaction is held open while talking to SMTP: the claim commits a lease,
//!   the send happens, and the outcome is recorded in a new transaction under that lease.
//! - Time is the injected [`Clock`]: due times, leases and backoff read it, so tests move a
//!   manual clock instead of sleeping. Only the polling cadence uses real time.
//! - The loop stops when the server shuts down; a message cut off mid-send keeps its lease
//!   and is retried when the lease expires.

use std::time::Duration;

use axum::extract::FromRef;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::outbox::{self, AfterFailure, ClaimLimits, Claimed, RetryPolicy};
use super::transport::Mailer;
use crate::clock::Clock;
use crate::db::{Db, WorkerTx};
use crate::error::AppError;

/// Messages claimed per round.
const BATCH: i32 = 10;
/// Rows pruned per round of retention.
const PRUNE_BATCH: i32 = 500;
/// How often retention runs (real time).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Sends queued mail.
#[derive(Clone, Debug)]
pub struct MailWorker {
    db: Db,
    clock: Clock,
    mailer: Mailer,
}

fn clamp_secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs()).unwrap_or(i32::MAX)
}

impl MailWorker {
    pub fn new(db: Db, clock: Clock, mailer: Mailer) -> Self {
        Self { db, clock, mailer }
    }

    /// From any state that holds the three parts the worker needs (the application's state,
    /// through `FromRef`): the worker sees nothing else of it.
    pub fn from_state<S>(state: &S) -> Self
    where
        Db: FromRef<S>,
        Clock: FromRef<S>,
        Mailer: FromRef<S>,
    {
        Self::new(
            Db::from_ref(state),
            Clock::from_ref(state),
            Mailer::from_ref(state),
        )
    }

    fn policy(&self) -> RetryPolicy {
        let cfg = self.mailer.config();
        RetryPolicy {
            max_attempts: i32::try_from(cfg.max_attempts).unwrap_or(8),
            base_secs: clamp_secs(cfg.retry_base),
            cap_secs: clamp_secs(cfg.retry_cap),
        }
    }

    /// The lease must outlast a whole batch of sends at the SMTP timeout.
    fn lease_secs(&self) -> i32 {
        let per_send = self
            .mailer
            .config()
            .smtp
            .as_ref()
            .map_or(30, |s| clamp_secs(s.timeout));
        per_send
            .saturating_mul(3)
            .saturating_mul(BATCH)
            .saturating_add(60)
    }

    /// Claim one batch of due messages, send each, record each outcome. Returns how many
    /// messages were attempted (0: nothing was due).
    pub async fn run_once(&self) -> Result<usize, AppError> {
        let policy = self.policy();
        let mut tx = WorkerTx::begin(&self.db).await?;
        let batch = outbox::claim(
            &mut tx,
            self.clock.now(),
            ClaimLimits {
                batch: BATCH,
                lease_secs: self.lease_secs(),
                max_attempts: policy.max_attempts,
            },
        )
        .await?;
        tx.commit().await?;
        let n = batch.len();
        for mail in batch {
            let result = self.mailer.deliver(&mail, self.clock.now()).await;
            self.record(&mail, result, policy).await?;
        }
        Ok(n)
    }

    async fn record(
        &self,
        mail: &Claimed,
        result: Result<(), super::transport::SendError>,
        policy: RetryPolicy,
    ) -> Result<(), AppError> {
        let now = self.clock.now();
        let domain = super::address_domain(&mail.to);
        let mut tx = WorkerTx::begin(&self.db).await?;
        match result {
            Ok(()) => {
                let recorded = outbox::mark_sent(&mut tx, mail, now).await?;
                tx.commit().await?;
                metrics::counter!("mail_sent_total", "template" => mail.template.clone())
                    .increment(1);
                tracing::info!(
                    mail = %mail.id, tenant = %mail.tenant, template = %mail.template,
                    attempt = mail.attempt, to_domain = domain, recorded,
                    "mail sent"
                );
            }
            Err(e) => {
                let after =
                    outbox::mark_failed(&mut tx, mail, now, &e.kind, e.permanent, policy).await?;
                tx.commit().await?;
                metrics::counter!("mail_failed_attempts_total", "template" => mail.template.clone())
                    .increment(1);
                match after {
                    AfterFailure::Retry { at } => tracing::warn!(
                        mail = %mail.id, tenant = %mail.tenant, template = %mail.template,
                        attempt = mail.attempt, to_domain = domain, error = %e.kind,
                        retry_in_secs = (at - now).whole_seconds(),
                        "mail attempt failed; will retry"
                    ),
                    AfterFailure::Dead => {
                        metrics::counter!("mail_dead_total", "template" => mail.template.clone())
                            .increment(1);
                        tracing::error!(
                            mail = %mail.id, tenant = %mail.tenant, template = %mail.template,
                            attempt = mail.attempt, to_domain = domain, error = %e.kind,
                            permanent = e.permanent,
                            "mail given up (dead)"
                        );
                    }
                    AfterFailure::LeaseLost => tracing::warn!(
                        mail = %mail.id, tenant = %mail.tenant, attempt = mail.attempt,
                        "mail attempt failed after its lease was lost; another worker owns it"
                    ),
                }
            }
        }
        Ok(())
    }

    /// Delete sent and dead rows older than the retention period. Returns how many.
    pub async fn prune(&self) -> Result<usize, AppError> {
        let retention = time::Duration::try_from(self.mailer.config().retention)
            .unwrap_or(time::Duration::days(30));
        let before: OffsetDateTime = self.clock.now() - retention;
        let mut total = 0usize;
        loop {
            let mut tx = WorkerTx::begin(&self.db).await?;
            let n = outbox::prune(&mut tx, before, PRUNE_BATCH).await?;
            tx.commit().await?;
            total = total.saturating_add(usize::try_from(n).unwrap_or(0));
            if n < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }

    /// Poll until `stop` turns true (or its sender is dropped).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let poll = self.mailer.config().poll;
        tracing::info!(poll_ms = poll.as_millis(), "mail worker started");
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                    continue;
                }
                _ = tick.tick() => {}
            }
            // Drain while full batches come back, checking for shutdown between batches.
            loop {
                match self.run_once().await {
                    Ok(n) if n >= usize::try_from(BATCH).unwrap_or(10) && !*stop.borrow() => {}
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "mail worker round failed");
                        break;
                    }
                }
            }
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(tokio::time::Instant::now());
                match self.prune().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "old outbox rows pruned"),
                    Err(e) => tracing::warn!(error = %e, "outbox pruning failed"),
                }
            }
        }
        tracing::info!("mail worker stopped");
    }
}
