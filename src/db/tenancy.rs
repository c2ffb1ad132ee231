//! The doors to data: [`TenantTx`] (a request's RLS-scoped transaction), [`SystemTx`]
//! (pre-authentication look-ups through `app_private` definer functions), both as the request
//! role, and [`WorkerTx`] (background workers, as the worker role, which reaches nothing but
//! the worker definers).
//!
//! Invariants:
//! - The context travels with the `BEGIN` in ONE round trip (one simple-protocol message):
//!   `BEGIN; SET LOCAL role '…'; SET LOCAL app.tenant_id = '…'; SET LOCAL app.user_id = '…';
//!   SET LOCAL app.roles = '…'; SET LOCAL statement_timeout = …;
//!   SET LOCAL idle_in_transaction_session_timeout = …` and, for a bearer token's session,
//!   `; SELECT app_private.session_guard(…)`. `SET LOCAL` is exactly `set_config(…, true)`:
//!   every setting is transaction-local, so nothing survives COMMIT or ROLLBACK and a pooled
//!   connection never carries one request's tenant into the next. Utility statements are not
//!   planned and return no row, which made this form measurably cheaper for PostgreSQL than one
//!   `SELECT set_config(…) × 6` parsed and planned per request (issue 10, bench/RESULTS.md).
//! - The values are placed as literals (the simple protocol cannot bind parameters, and a
//!   separate round trip costs more than the parse it saves). That is safe only because every
//!   value is typed: the role is a validated identifier (config), ids are `Uuid`s whose
//!   `Display` emits only hex digits and hyphens, and roles come from the closed [`Role`] enum.
//! - Dropping a transaction without `commit()` rolls it back before the connection is reused;
//!   any failure while beginning or committing closes the connection instead of reusing it.
//! - A dead pooled connection (database restarted) fails the BEGIN with an I/O error before
//!   anything ran, so `begin` retries on another connection: clients see 503 only while the
//!   database is actually down, without paying a ping per request.

use std::fmt::Write as _;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;

use sqlx::postgres::PgTransactionManager;
use sqlx::{AssertSqlSafe, PgConnection, SqlSafeStr};
use sqlx_core::transaction::TransactionManager;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::pool::PooledConn;
use super::{Db, SessionId, TenantId, UserId};
use crate::crypto::keyring::SessionSecret;
use crate::error::AppError;
use crate::rbac::Role;

/// The verified actor of a request, as the database sees it.
#[derive(Debug, Clone)]
pub struct DbActor {
    pub user: UserId,
    pub roles: Vec<Role>,
    /// The session a bearer token named. When present, the context statement also runs
    /// `app_private.session_guard` in the same round trip: a revoked or expired session, a
    /// disabled person or membership, or a role no longer held fails the BEGIN with SQLSTATE
    /// SR401, answered as 401 `session_revoked`.
    pub session: Option<SessionCheck>,
}

impl DbActor {
    /// An actor without a session (CLI, flows that establish the person themselves).
    pub fn new(user: UserId, roles: Vec<Role>) -> Self {
        Self {
            user,
            roles,
            session: None,
        }
    }
}

/// The session to re-check, its secret (proof that the caller holds the session, not merely
/// its id: see [`crate::crypto::keyring::Keyring::session_secret`]), and the time (injected
/// clock) to check its lifetimes against.
#[derive(Debug, Clone)]
pub struct SessionCheck {
    pub id: SessionId,
    pub secret: SessionSecret,
    pub now: OffsetDateTime,
}

/// SQLSTATE raised by `app_private.session_guard`.
pub const SESSION_REVOKED_SQLSTATE: &str = "SR401";

/// A transaction scoped to one tenant (and actor), running as the unprivileged app role.
pub struct TenantTx {
    inner: ScopedConn,
    tenant: TenantId,
}

/// A transaction as the unprivileged app role with no tenant: tenant tables show no rows; only
/// the `app_private` definer functions granted to the role answer.
pub struct SystemTx {
    inner: ScopedConn,
}

/// A pooled connection inside a transaction we opened ourselves.
///
/// sqlx's `Transaction` is not used because, when a custom BEGIN statement fails after `BEGIN`
/// has run (a failed `SET LOCAL`), it hands the connection back to the pool inside an aborted
/// transaction. Here every failure to begin or commit closes the connection; a drop without
/// `commit()` queues a ROLLBACK, which the pool flushes (reset round trip) before the connection
/// is reused. Only a successful COMMIT marks the connection clean, i.e. reusable at once.
struct ScopedConn {
    conn: PooledConn,
    open: bool,
}

impl ScopedConn {
    async fn commit(mut self) -> Result<(), AppError> {
        match PgTransactionManager::commit(&mut self.conn).await {
            Ok(()) => {
                self.open = false;
                self.conn.mark_clean();
                Ok(())
            }
            Err(e) => {
                self.open = false;
                self.conn.discard();
                Err(e.into())
            }
        }
    }
}

impl Drop for ScopedConn {
    fn drop(&mut self) {
        if self.open {
            PgTransactionManager::start_rollback(&mut self.conn);
        }
    }
}

/// Server-side limits set with the context (transaction-local, so they also hold behind a
/// transaction-mode pooler, which drops connection start-up options).
#[derive(Debug, Clone, Copy)]
pub struct TxLimits {
    pub statement_timeout_ms: u128,
    pub idle_in_transaction_timeout_ms: u128,
}

/// Build the context statement. Only typed values reach the string (see module header). All
/// four settings are always written, empty when absent, so nothing a previous transaction on
/// the connection might have left behind can be inherited.
fn context_statement(
    role: &str,
    limits: TxLimits,
    tenant: Option<TenantId>,
    actor: Option<&DbActor>,
) -> String {
    let mut s = String::with_capacity(512);
    let _ = write!(
        s,
        "BEGIN; SET LOCAL role '{role}'; SET LOCAL app.tenant_id = '"
    );
    if let Some(t) = tenant {
        let _ = write!(s, "{}", t.as_uuid());
    }
    s.push_str("'; SET LOCAL app.user_id = '");
    if let Some(a) = actor {
        let _ = write!(s, "{}", a.user.as_uuid());
    }
    s.push_str("'; SET LOCAL app.roles = '");
    if let Some(a) = actor {
        push_roles(&mut s, &a.roles);
    }
    let _ = write!(
        s,
        "'; SET LOCAL statement_timeout = {}; SET LOCAL idle_in_transaction_session_timeout = {}",
        limits.statement_timeout_ms, limits.idle_in_transaction_timeout_ms
    );
    if let (Some(t), Some(a)) = (tenant, actor)
        && let Some(check) = &a.session
    {
        // Typed values only: uuids, the secret as hex digits, roles from the closed enum, an
        // RFC 3339 timestamp formatted here (digits, '-', ':', '.', 'T', 'Z').
        let now = check
            .now
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .unwrap_or_default();
        let _ = write!(
            s,
            "; SELECT app_private.session_guard('{}', '{}', '{}', decode('{}', 'hex'), '{{",
            t.as_uuid(),
            a.user.as_uuid(),
            check.id.as_uuid(),
            check.secret.to_hex()
        );
        push_roles(&mut s, &a.roles);
        let _ = write!(s, "}}', '{now}')");
    }
    s
}

/// Roles as `a,b,c` (names from the closed enum: lower-case letters and `_` only).
fn push_roles(s: &mut String, roles: &[Role]) {
    for (i, r) in roles.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(r.as_str());
    }
}

/// Is this error a broken connection (so the statement certainly did not run)?
fn is_connection_error(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_) | sqlx::Error::Protocol(_))
        || matches!(e, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")))
}

/// A connection between acquisition and a completed BEGIN. If the future is cancelled while
/// BEGIN is in flight (client gone, request timeout), this guard closes the connection: it may
/// be inside a transaction carrying another request's context, and sqlx would otherwise put it
/// back in the pool as it is.
struct Pending<'a> {
    conn: Option<PooledConn>,
    waiting: Option<&'a std::sync::atomic::AtomicI64>,
}

impl Pending<'_> {
    fn release(mut self) -> Option<PooledConn> {
        self.conn.take()
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.waiting.take() {
            w.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(c) = self.conn.as_mut() {
            c.discard();
        }
    }
}

async fn begin(db: &Db, statement: String) -> Result<ScopedConn, AppError> {
    // A pooled connection may have died with the server (restart, failover). Nothing has run
    // yet, so retrying on another connection is safe; bound the retries by the pool size.
    let attempts = db.pool().max_connections().saturating_add(1);
    let mut last = None;
    for _ in 0..attempts {
        db.waiting_counter().fetch_add(1, Ordering::Relaxed);
        let mut pending = Pending {
            conn: None,
            waiting: Some(db.waiting_counter()),
        };
        let acquired = db.pool().acquire().await?;
        if let Some(w) = pending.waiting.take() {
            w.fetch_sub(1, Ordering::Relaxed);
        }
        let conn = pending.conn.insert(acquired);
        match PgTransactionManager::begin(
            &mut *conn,
            Some(AssertSqlSafe(statement.clone()).into_sql_str()),
        )
        .await
        {
            Ok(()) => {
                if let Some(conn) = pending.release() {
                    return Ok(ScopedConn { conn, open: true });
                }
            }
            // Whatever failed, the connection may sit in an aborted transaction: dropping
            // `pending` closes it, never handing it to anyone else.
            Err(e) if is_connection_error(&e) => last = Some(e),
            Err(sqlx::Error::Database(db))
                if db.code().as_deref() == Some(SESSION_REVOKED_SQLSTATE) =>
            {
                // The guard refused the session. The connection is healthy but inside an
                // aborted transaction: roll it back and return it to the pool (closing it
                // would let a revoked token churn connections). If that fails, `pending`
                // closes it.
                if let Some(c) = pending.conn.as_mut()
                    && sqlx::Executor::execute(&mut **c, "ROLLBACK").await.is_ok()
                    && let Some(mut c) = pending.release()
                {
                    c.mark_clean();
                }
                return Err(AppError::Unauthorized("session_revoked"));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.map_or(
        AppError::Unavailable {
            code: "database_unavailable",
            retry_after_secs: 2,
        },
        AppError::from,
    ))
}

impl TenantTx {
    /// Begin a transaction for `tenant`, as `actor` (or anonymous).
    pub async fn begin(
        db: &Db,
        tenant: TenantId,
        actor: Option<&DbActor>,
    ) -> Result<Self, AppError> {
        let inner = begin(
            db,
            context_statement(db.app_role(), db.tx_limits(), Some(tenant), actor),
        )
        .await?;
        Ok(Self { inner, tenant })
    }

    /// The tenant this transaction is bound to.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// Commit. Dropping instead rolls back.
    pub async fn commit(self) -> Result<(), AppError> {
        self.inner.commit().await
    }
}

impl SystemTx {
    pub async fn begin(db: &Db) -> Result<Self, AppError> {
        let inner = begin(
            db,
            context_statement(db.app_role(), db.tx_limits(), None, None),
        )
        .await?;
        Ok(Self { inner })
    }

    pub async fn commit(self) -> Result<(), AppError> {
        self.inner.commit().await
    }
}

impl Deref for TenantTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.inner.conn
    }
}
impl DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.inner.conn
    }
}
impl Deref for SystemTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.inner.conn
    }
}
impl DerefMut for SystemTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.inner.conn
    }
}

/// The role background workers drop to (migration `20261204000005_worker_role`). Fixed, like
/// the definers granted to it: it is not configurable, so no deployment can point the workers at
/// a role that holds more.
pub const WORKER_ROLE: &str = "serein_worker";

/// A background worker's transaction: role `serein_worker`, no tenant, no person. The role
/// holds no table privilege at all, only EXECUTE on the worker definers (the mail outbox's);
/// the request role is not a member of it, so a request transaction cannot reach them
/// whatever context it sets.
pub struct WorkerTx {
    inner: ScopedConn,
}

impl WorkerTx {
    pub async fn begin(db: &Db) -> Result<Self, AppError> {
        let inner = begin(
            db,
            context_statement(WORKER_ROLE, db.tx_limits(), None, None),
        )
        .await?;
        Ok(Self { inner })
    }

    pub async fn commit(self) -> Result<(), AppError> {
        self.inner.commit().await
    }
}

impl Deref for WorkerTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.inner.conn
    }
}
impl DerefMut for WorkerTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.inner.conn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_travels_with_begin_in_one_message() {
        let limits = TxLimits {
            statement_timeout_ms: 15_000,
            idle_in_transaction_timeout_ms: 60_000,
        };
        let t = TenantId(uuid::Uuid::nil());
        let u = UserId(uuid::Uuid::max());
        let actor = DbActor {
            user: u,
            roles: vec![Role::TenantAdmin, Role::Hr],
            session: None,
        };
        assert_eq!(
            context_statement("serein_app", limits, Some(t), Some(&actor)),
            "BEGIN; SET LOCAL role 'serein_app'; \
             SET LOCAL app.tenant_id = '00000000-0000-0000-0000-000000000000'; \
             SET LOCAL app.user_id = 'ffffffff-ffff-ffff-ffff-ffffffffffff'; \
             SET LOCAL app.roles = 'tenant_admin,hr'; \
             SET LOCAL statement_timeout = 15000; \
             SET LOCAL idle_in_transaction_session_timeout = 60000"
        );
        // No tenant, no actor: every setting is still written, empty.
        let system = context_statement("serein_app", limits, None, None);
        assert!(system.contains("SET LOCAL app.tenant_id = '';"));
        assert!(system.contains("SET LOCAL app.user_id = '';"));
        assert!(system.contains("SET LOCAL app.roles = '';"));
        assert!(!system.contains("SELECT"));
    }

    #[test]
    fn the_guard_gets_the_session_secret_as_hex_only() {
        let limits = TxLimits {
            statement_timeout_ms: 15_000,
            idle_in_transaction_timeout_ms: 60_000,
        };
        let actor = DbActor {
            user: UserId(uuid::Uuid::max()),
            roles: vec![Role::Employee],
            session: Some(SessionCheck {
                id: SessionId(uuid::Uuid::nil()),
                secret: SessionSecret::from_bytes([0xab; 32]),
                now: OffsetDateTime::UNIX_EPOCH,
            }),
        };
        let s = context_statement(
            "serein_app",
            limits,
            Some(TenantId(uuid::Uuid::nil())),
            Some(&actor),
        );
        assert!(
            s.ends_with(&format!(
                "; SELECT app_private.session_guard('00000000-0000-0000-0000-000000000000', \
                 'ffffffff-ffff-ffff-ffff-ffffffffffff', '00000000-0000-0000-0000-000000000000', \
                 decode('{}', 'hex'), '{{employee}}', '1970-01-01T00:00:00Z')",
                "ab".repeat(32)
            )),
            "{s}"
        );
        // The Debug form of the actor never carries the secret.
        assert!(!format!("{actor:?}").contains("abab"));
    }
}
