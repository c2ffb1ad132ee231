//! Background jobs: a queue in PostgreSQL (`jobs`, migration `20261207000001`), taken with
//! `FOR UPDATE SKIP LOCKED`, for the consultations' reminders (24 h and 1 h before) and change
//! notices (request, confirmation, cancellation, reschedule); and, as periodic passes of the
//! same loop, retention and the digest of unread notifications
//! ([`crate::notifications::digest`]).
//!
//! Invariants:
//! - Jobs are planned by the database, by a trigger on `consultation_events`, in the same
//!   transaction as the move: nothing can book, move or cancel without planning its notices,
//!   and a move that rolls back plans nothing.
//! - The worker reaches the database only through `WorkerTx` (role `serein_worker`), through
//!   the `app_private.job_*` definers; the request role has no privilege on the queue.
//! - One job, one transaction: take it (locked), read what it needs, queue its e-mails in the
//!   outbox, store its notifications (and a cancel link), close it, commit. Its effects exist
//!   exactly when it is `done`; the mail worker sends the e-mails later.
//! - A failure rolls the job's work back to a savepoint taken after the job was locked, and
//!   the attempt is recorded in the same transaction, lock still held (no other worker reruns
//!   it before its backoff): retried with exponential backoff, `dead` after
//!   `JOBS_MAX_ATTEMPTS`. Only when the transaction itself is lost is the attempt recorded in
//!   a new one. A job that finds nothing to do any more (a cancelled or moved consultation's
//!   reminder) is `skipped`, never sent. `last_error` holds a class (`database 23514`,
//!   `internal`), never an error's text, which can quote values.
//! - Time is the injected [`Clock`]: due times and backoff read it; only the polling cadence
//!   uses real time. Logs carry job ids and kinds, never an address, a link or a body.

pub mod notices;

use std::time::Duration;

use tokio::sync::watch;

use crate::app::AppState;
use crate::clock::Clock;
use crate::config::{ConfigError, Settings};
use crate::db::{Db, TenantId, WorkerTx};
use crate::error::AppError;

/// Jobs taken per round before checking for shutdown.
const BATCH: usize = 20;
/// Finished rows deleted per statement of retention.
const PRUNE_BATCH: i32 = 500;
/// How often retention runs (real time).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How often the digest pass looks for people due one (real time; the rule itself is days).
const DIGEST_EVERY: Duration = Duration::from_secs(3600);

/// `JOBS_*` settings.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// `JOBS_WORKER` (default true): run the worker inside `serve`.
    pub worker: bool,
    /// `JOBS_POLL_MS` (default 1000).
    pub poll: Duration,
    /// `JOBS_MAX_ATTEMPTS` (default 8): then the job is `dead`.
    pub max_attempts: i32,
    /// `JOBS_RETRY_BASE_SECS` (default 30) and `JOBS_RETRY_CAP_SECS` (default 3600).
    pub retry_base_secs: i32,
    pub retry_cap_secs: i32,
    /// `JOBS_RETENTION_DAYS` (default 30): finished jobs are deleted after this.
    pub retention_days: i64,
    /// `CLINICAL_RETENTION_DAYS` (default 3650, ten years): superseded versions of clinical notes
    /// and deleted notes are pruned this long after they stopped being current.
    pub clinical_retention_days: i32,
    /// `DIGEST_INACTIVE_DAYS` (default 7) and `DIGEST_EVERY_DAYS` (default 7): who is sent the
    /// digest of unread notifications, and how often at most.
    pub digest: crate::notifications::digest::DigestRule,
}

fn small(v: u64) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl JobsConfig {
    pub fn load(s: &Settings<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            worker: s.flag("JOBS_WORKER", true)?,
            poll: Duration::from_millis(s.int("JOBS_POLL_MS", 1_000, 10, 600_000)?),
            max_attempts: small(s.int("JOBS_MAX_ATTEMPTS", 8, 1, 100)?),
            retry_base_secs: small(s.int("JOBS_RETRY_BASE_SECS", 30, 1, 86_400)?),
            retry_cap_secs: small(s.int("JOBS_RETRY_CAP_SECS", 3_600, 1, 604_800)?),
            retention_days: i64::try_from(s.int("JOBS_RETENTION_DAYS", 30, 1, 3_650)?)
                .unwrap_or(30),
            clinical_retention_days: small(s.int("CLINICAL_RETENTION_DAYS", 3_650, 1, 36_500)?),
            digest: crate::notifications::digest::DigestRule {
                inactive_days: small(s.int("DIGEST_INACTIVE_DAYS", 7, 1, 365)?),
                every_days: small(s.int("DIGEST_EVERY_DAYS", 7, 1, 365)?),
            },
        })
    }
}

/// A taken job.
#[derive(Debug, Clone)]
pub struct Job {
    pub tenant: TenantId,
    pub id: uuid::Uuid,
    pub kind: String,
    pub consultation: uuid::Uuid,
    pub for_starts_at: time::OffsetDateTime,
    pub actor: Option<uuid::Uuid>,
    pub attempts: i32,
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub done: usize,
    pub skipped: usize,
    pub failed: usize,
}

impl Round {
    pub fn total(&self) -> usize {
        self.done + self.skipped + self.failed
    }
}

/// Where links in e-mails point: `PUBLIC_URL` with the company's host.
#[derive(Debug, Clone)]
pub struct Links {
    public_url: String,
    base_domain: String,
}

impl Links {
    /// The web app's base for a company (`slug`).
    pub fn base(&self, slug: &str) -> String {
        self.public_url
            .replace("{host}", &format!("{slug}.{}", self.base_domain))
    }
}

/// Runs due jobs.
#[derive(Debug, Clone)]
pub struct JobWorker {
    db: Db,
    clock: Clock,
    config: JobsConfig,
    links: Links,
    /// The files' object store (the sweep removes objects of deleted and unlinked files).
    files: crate::files::FileStore,
}

impl JobWorker {
    pub fn from_state(state: &AppState) -> Self {
        Self {
            db: state.db.clone(),
            clock: state.clock.clone(),
            config: state.config.jobs.clone(),
            files: state.files.clone(),
            links: Links {
                public_url: state.config.auth.public_url.clone(),
                base_domain: state.config.core.base_domain.clone(),
            },
        }
    }

    /// Take and run one due job. `None`: nothing is due.
    async fn run_one(&self) -> Result<Option<Outcome>, AppError> {
        let now = self.clock.now();
        let mut tx = WorkerTx::begin(&self.db).await?;
        let Some(job) = take(&mut tx, now, self.config.max_attempts).await? else {
            tx.commit().await?;
            return Ok(None);
        };
        sqlx::raw_sql("SAVEPOINT job_work")
            .execute(&mut *tx)
            .await?;
        let worked = match notices::run(&mut tx, &job, &self.links, now).await {
            Ok(outcome) => finish(&mut tx, &job, outcome, now).await.map(|()| outcome),
            Err(e) => Err(e),
        };
        let error = match worked {
            Ok(outcome) => match tx.commit().await {
                Ok(()) => {
                    tracing::info!(job = %job.id, tenant = %job.tenant, kind = %job.kind,
                                   outcome = outcome.as_str(), "job finished");
                    return Ok(Some(outcome));
                }
                // Nothing of the job stayed; the attempt is recorded below, in a new
                // transaction.
                Err(e) => {
                    let class = error_class(&e);
                    self.record_failure(None, &job, &class).await?;
                    return Ok(Some(Outcome::Failed));
                }
            },
            Err(e) => e,
        };
        let class = error_class(&error);
        // Undo the job's work, keep the lock, record the attempt in the same transaction.
        let kept = match sqlx::raw_sql("ROLLBACK TO SAVEPOINT job_work")
            .execute(&mut *tx)
            .await
        {
            Ok(_) => Some(tx),
            Err(_) => None,
        };
        let status = self.record_failure(kept, &job, &class).await?;
        tracing::warn!(job = %job.id, tenant = %job.tenant, kind = %job.kind,
                       attempt = job.attempts + 1, status = %status, error = %class,
                       "job failed");
        Ok(Some(Outcome::Failed))
    }

    /// Count a failed attempt: in `tx` (the job's own, rolled back to its savepoint) when it is
    /// still usable, else in a new transaction.
    async fn record_failure(
        &self,
        tx: Option<WorkerTx>,
        job: &Job,
        class: &str,
    ) -> Result<String, AppError> {
        let mut tx = match tx {
            Some(tx) => tx,
            None => WorkerTx::begin(&self.db).await?,
        };
        let status = sqlx::query_scalar!(
            r#"SELECT app_private.job_failed($1, $2, $3, $4, $5, $6, $7) AS "status""#,
            job.tenant.as_uuid(),
            job.id,
            self.clock.now(),
            class,
            self.config.max_attempts,
            self.config.retry_base_secs,
            self.config.retry_cap_secs
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(status.unwrap_or_else(|| "lost".to_owned()))
    }

    /// Run due jobs until none is due or `BATCH` ran.
    pub async fn run_once(&self) -> Result<Round, AppError> {
        let mut round = Round::default();
        while round.total() < BATCH {
            match self.run_one().await? {
                None => break,
                Some(Outcome::Done) => round.done += 1,
                Some(Outcome::Skipped) => round.skipped += 1,
                Some(Outcome::Failed) => round.failed += 1,
            }
        }
        Ok(round)
    }

    /// Delete finished jobs past the retention period, then confidential records past theirs
    /// (superseded and deleted clinical notes, messages past their window), then the objects
    /// of deleted or never-linked files. Returns how many.
    pub async fn prune(&self) -> Result<usize, AppError> {
        let before = self.clock.now() - time::Duration::days(self.config.retention_days);
        let mut total = 0usize;
        loop {
            let mut tx = WorkerTx::begin(&self.db).await?;
            let n = sqlx::query_scalar!(
                r#"SELECT app_private.job_prune($1, $2) AS "n!""#,
                before,
                PRUNE_BATCH
            )
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            total = total.saturating_add(usize::try_from(n).unwrap_or(0));
            if n < PRUNE_BATCH {
                break;
            }
        }
        // Call signals (migration 20261208000003_call_signals.sql): an hour after they were sent.
        loop {
            let mut tx = WorkerTx::begin(&self.db).await?;
            let n = sqlx::query_scalar!(
                r#"SELECT app_private.call_signals_prune($1, $2) AS "n!""#,
                self.clock.now(),
                PRUNE_BATCH
            )
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            total = total.saturating_add(usize::try_from(n).unwrap_or(0));
            if n < PRUNE_BATCH {
                break;
            }
        }
        // Confidential records past their retention (migration 20261208000001_records.sql).
        loop {
            let mut tx = WorkerTx::begin(&self.db).await?;
            let n = sqlx::query_scalar!(
                r#"SELECT app_private.records_prune($1, $2, $3) AS "n!""#,
                self.clock.now(),
                self.config.clinical_retention_days,
                PRUNE_BATCH
            )
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            total = total.saturating_add(usize::try_from(n).unwrap_or(0));
            if n < PRUNE_BATCH {
                break;
            }
        }
        // Files (migration 20261209000100_files.sql): objects of deleted files and of uploads
        // left unlinked for a day (attachments of pruned messages among them).
        let swept = crate::files::service::sweep(&self.db, &self.files, self.clock.now()).await?;
        Ok(total.saturating_add(swept))
    }

    /// Queue the digests of unread notifications due now. Returns how many.
    pub async fn digest(&self) -> Result<usize, AppError> {
        crate::notifications::digest::send_due(
            &self.db,
            self.config.digest,
            self.clock.now(),
            |slug| self.links.base(slug),
        )
        .await
    }

    /// Poll until `stop` turns true (or its sender is dropped).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!(poll_ms = self.config.poll.as_millis(), "job worker started");
        let mut tick = tokio::time::interval(self.config.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_prune: Option<tokio::time::Instant> = None;
        let mut last_digest: Option<tokio::time::Instant> = None;
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
            loop {
                match self.run_once().await {
                    Ok(r) if r.total() >= BATCH && !*stop.borrow() => {}
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "job round failed");
                        break;
                    }
                }
            }
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(tokio::time::Instant::now());
                match self.prune().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "old jobs pruned"),
                    Err(e) => tracing::warn!(error = %e, "job pruning failed"),
                }
            }
            if last_digest.is_none_or(|t| t.elapsed() >= DIGEST_EVERY) {
                last_digest = Some(tokio::time::Instant::now());
                if let Err(e) = self.digest().await {
                    tracing::warn!(error = %e, "notification digest pass failed");
                }
            }
        }
        tracing::info!("job worker stopped");
    }
}

/// What went wrong, as a class: a database error's SQLSTATE, never its text (which can quote
/// an address or a value).
fn error_class(e: &AppError) -> String {
    match e {
        AppError::Database(sqlx::Error::Database(db)) => {
            format!("database {}", db.code().as_deref().unwrap_or("?"))
        }
        AppError::Database(_) => "database connection".to_owned(),
        AppError::Unavailable { code, .. } | AppError::Conflict { code, .. } => (*code).to_owned(),
        _ => "internal".to_owned(),
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Skipped,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }
}

async fn take(
    tx: &mut WorkerTx,
    now: time::OffsetDateTime,
    max_attempts: i32,
) -> Result<Option<Job>, AppError> {
    let row = sqlx::query!(
        r#"SELECT tenant_id AS "tenant_id!", id AS "id!", kind AS "kind!",
                  consultation_id AS "consultation_id!", for_starts_at AS "for_starts_at!",
                  actor_id, attempts AS "attempts!"
           FROM app_private.job_take($1, $2)"#,
        now,
        max_attempts
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| Job {
        tenant: TenantId(r.tenant_id),
        id: r.id,
        kind: r.kind,
        consultation: r.consultation_id,
        for_starts_at: r.for_starts_at,
        actor: r.actor_id,
        attempts: r.attempts,
    }))
}

async fn finish(
    tx: &mut WorkerTx,
    job: &Job,
    outcome: Outcome,
    now: time::OffsetDateTime,
) -> Result<(), AppError> {
    let status = match outcome {
        Outcome::Skipped => "skipped",
        _ => "done",
    };
    let finished = sqlx::query_scalar!(
        r#"SELECT app_private.job_finish($1, $2, $3, $4) AS "finished!""#,
        job.tenant.as_uuid(),
        job.id,
        status,
        now
    )
    .fetch_one(&mut **tx)
    .await?;
    if finished {
        Ok(())
    } else {
        Err(AppError::Internal(
            "a taken job was no longer pending".into(),
        ))
    }
}
