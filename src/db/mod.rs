//! Database access: the pool, migrations, the start-up self-check and the two doors to data.
//!
//! Invariants:
//! - Feature code reaches tenant data only through [`TenantTx`] (RLS-scoped, transaction-local
//!   context); pre-authentication look-ups use [`SystemTx`] (the same unprivileged role, no
//!   tenant). Both live in [`tenancy`].
//! - The pool itself is private to this module. The only raw uses are migrations, the self-check,
//!   the readiness probe and operator commands of the CLI ([`Db::admin_conn`]), all of which run
//!   as the login role and none of which serves a request's data.
//! - Background jobs have named doors of their own, never the serving pool pretending to be the
//!   owner: [`WorkerTx`] (role `serein_worker`, the mail worker) and [`Db::owner_conn`] (the
//!   `JOBS_DATABASE_URL` login, for the owner-level purge), checked at start-up
//!   ([`Db::check_worker_role`], [`Db::check_owner_door`]).

pub mod ids;
pub mod pool;
pub mod selfcheck;
pub mod tenancy;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use secrecy::ExposeSecret;
use sqlx::ConnectOptions;
use sqlx::migrate::MigrateDatabase;
use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres};

use crate::config::Config;

pub use ids::{MembershipId, SessionId, TenantId, UserId};
pub use pool::PooledConn;
pub use tenancy::{SystemTx, TenantTx, TxLimits, WORKER_ROLE, WorkerTx};

/// The embedded migrations (`migrations/`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Shared database handle: the pool plus what every transaction needs to scope itself.
#[derive(Clone)]
pub struct Db {
    pool: pool::Pool,
    /// The owner door (`JOBS_DATABASE_URL`): a small lazy pool used only by owner-level jobs.
    owner: Option<PgPool>,
    app_role: Arc<str>,
    tx_limits: TxLimits,
    waiting: Arc<AtomicI64>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("app_role", &self.app_role)
            .finish_non_exhaustive()
    }
}

/// Pool statistics for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub size: u32,
    pub idle: usize,
    pub waiting: i64,
    pub max: u32,
}

impl Db {
    /// A `LISTEN` connection of its own (the realtime fan-out): outside the pool, one per
    /// server, on `url` (direct to the primary) or else the pool's own URL (listening needs no
    /// privilege; payloads carry ids only).
    pub async fn listener(
        &self,
        url: Option<&secrecy::SecretString>,
    ) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
        let opts = match url {
            Some(u) => u
                .expose_secret()
                .parse::<PgConnectOptions>()?
                .disable_statement_logging(),
            None => self.pool.connect_options(),
        }
        .application_name("serein-realtime");
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .connect_lazy_with(opts);
        sqlx::postgres::PgListener::connect_with(&pool).await
    }

    /// Connect (creating the database first when configured and missing).
    pub async fn connect(cfg: &Config) -> anyhow::Result<Self> {
        let url = cfg.database_url();
        if cfg.create_database && !Postgres::database_exists(url).await? {
            tracing::info!("database does not exist; creating it");
            if let Err(e) = Postgres::create_database(url).await {
                // Another process may have created it meanwhile.
                if !Postgres::database_exists(url).await? {
                    return Err(e.into());
                }
            }
        }
        let options: PgConnectOptions = url.parse()?;
        // Statement and idle-in-transaction timeouts are set per transaction by the context
        // statement (`tenancy`), not as start-up options: a transaction-mode pooler drops those.
        // No statement text in the logs, slow or not: the context statement carries the
        // session secret the guard checks (like a bearer token), and sqlx would otherwise log a
        // statement slower than a second at WARN, text included. Slowness is measured by the
        // request metrics instead.
        let options = options
            .application_name("serein")
            .disable_statement_logging();
        // Our own pool (`pool`): no ping when a connection is taken (a dead one surfaces as an
        // I/O error on the first statement of a transaction, which `tenancy::begin` retries on
        // another connection: nothing has been done yet, so the retry is safe) and none when a
        // cleanly finished transaction gives it back. Saves two round trips per request over
        // sqlx's defaults.
        let pool = pool::Pool::connect(
            options,
            pool::PoolOptions {
                max: cfg.db_max_connections,
                min: cfg.db_min_connections,
                acquire_timeout: cfg.db_acquire_timeout,
                idle_timeout: std::time::Duration::from_secs(600),
                max_lifetime: std::time::Duration::from_secs(1800),
            },
        )
        .await?;
        // Lazy and small: it serves one job at a time, and a server without due work never
        // opens it.
        let owner = match &cfg.jobs_database_url {
            Some(u) => {
                let opts: PgConnectOptions = u.expose_secret().parse()?;
                Some(
                    PgPoolOptions::new()
                        .max_connections(2)
                        .min_connections(0)
                        .acquire_timeout(cfg.db_acquire_timeout)
                        .idle_timeout(Some(std::time::Duration::from_secs(60)))
                        .connect_lazy_with(opts.application_name("serein-jobs")),
                )
            }
            None => None,
        };
        Ok(Self {
            pool,
            owner,
            app_role: Arc::from(cfg.app_role.as_str()),
            tx_limits: TxLimits {
                statement_timeout_ms: cfg.db_statement_timeout.as_millis(),
                idle_in_transaction_timeout_ms: cfg.db_idle_in_transaction_timeout.as_millis(),
            },
            waiting: Arc::new(AtomicI64::new(0)),
        })
    }

    /// Apply pending migrations (as the login role, which owns the schema). Pooled connections
    /// carry no statement timeout of their own (requests set theirs per transaction), so long
    /// migrations are not cut short.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await?;
        MIGRATOR.run(&mut *conn).await?;
        Ok(())
    }

    /// Server-side limits every scoped transaction sets.
    pub fn tx_limits(&self) -> TxLimits {
        self.tx_limits
    }

    /// The role request transactions drop to.
    pub fn app_role(&self) -> &str {
        &self.app_role
    }

    /// A connection as the login role, for operator commands (CLI) only. Never used to serve
    /// a request: it bypasses the request role and therefore row-level security. It is reset
    /// (a Sync round trip) before the pool hands it out again.
    pub async fn admin_conn(&self) -> Result<PooledConn, sqlx::Error> {
        self.pool.acquire().await
    }

    /// The owner door, for owner-level background jobs only (the offboarding purge): the
    /// `JOBS_DATABASE_URL` login, or, when that is unset, the login of `DATABASE_URL`
    /// (development). Never used to serve a request.
    pub async fn owner_conn(&self) -> Result<OwnerConn, sqlx::Error> {
        match &self.owner {
            Some(p) => Ok(OwnerConn::Jobs(p.acquire().await?)),
            None => Ok(OwnerConn::Login(self.pool.acquire().await?)),
        }
    }

    /// Can the owner door act as the owner, i.e. bypass row-level security? `Err` names what
    /// to configure. Checked at start-up before an in-process owner-level job is started, so a
    /// production layout (a NOINHERIT authenticator that can only become the request role)
    /// fails loudly instead of never purging.
    pub async fn check_owner_door(&self) -> anyhow::Result<()> {
        let mut conn = self.owner_conn().await?;
        let row: (String, bool) = sqlx::query_as(
            "SELECT current_user::text, rolsuper OR rolbypassrls FROM pg_catalog.pg_roles \
             WHERE rolname = current_user",
        )
        .fetch_one(&mut *conn)
        .await?;
        if row.1 {
            Ok(())
        } else {
            anyhow::bail!(
                "the owner door logs in as {:?}, which cannot bypass row-level security: \
                 set JOBS_DATABASE_URL to the owner's URL, or set PURGE_WORKER=false and run \
                 `serein tenants purge` with the owner's DATABASE_URL (the Helm chart's purge CronJob)",
                row.0
            )
        }
    }

    /// Can the login role become the worker role? Checked at start-up before the mail worker
    /// is started.
    pub async fn check_worker_role(&self) -> anyhow::Result<()> {
        let mut conn = self.pool.acquire().await?;
        let row: (String, bool, bool) = sqlx::query_as(
            "SELECT session_user::text, \
                    pg_catalog.pg_has_role(session_user, $1, 'MEMBER'), \
                    EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1 \
                            AND (rolsuper OR rolbypassrls))",
        )
        .bind(WORKER_ROLE)
        .fetch_one(&mut *conn)
        .await?;
        if row.2 {
            anyhow::bail!("role {WORKER_ROLE} must be neither superuser nor BYPASSRLS");
        }
        if row.1 {
            Ok(())
        } else {
            anyhow::bail!(
                "MAIL_WORKER needs the login role {:?} to be able to become {WORKER_ROLE}: \
                 GRANT {WORKER_ROLE} TO {} (or set MAIL_WORKER=false)",
                row.0,
                row.0
            )
        }
    }

    /// Readiness: the database answers (as the request role, like every request) and every
    /// embedded migration has been applied.
    pub async fn readiness(&self) -> Result<(), String> {
        let mut tx = SystemTx::begin(self)
            .await
            .map_err(|e| e.code().to_owned())?;
        let applied: Vec<i64> = sqlx::query_scalar!(
            r#"SELECT version AS "version!" FROM _sqlx_migrations WHERE success ORDER BY version"#
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(|_| "migration history unreadable".to_owned())?;
        tx.commit().await.map_err(|e| e.code().to_owned())?;
        let missing = MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .filter(|m| !applied.contains(&m.version))
            .count();
        if missing > 0 {
            return Err(format!("{missing} migration(s) pending"));
        }
        Ok(())
    }

    /// Size, idle and waiting counts of the pool.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: self.pool.num_idle(),
            waiting: self.waiting.load(Ordering::Relaxed),
            max: self.pool.max_connections(),
        }
    }

    /// Close every connection (graceful shutdown).
    pub async fn close(&self) {
        if let Some(owner) = &self.owner {
            owner.close().await;
        }
        self.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &pool::Pool {
        &self.pool
    }

    pub(crate) fn waiting_counter(&self) -> &AtomicI64 {
        &self.waiting
    }
}

/// A connection of the owner door ([`Db::owner_conn`]): the jobs pool's, or the login pool's.
pub enum OwnerConn {
    Jobs(PoolConnection<Postgres>),
    Login(PooledConn),
}

impl Deref for OwnerConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            Self::Jobs(c) => c,
            Self::Login(c) => c,
        }
    }
}

impl DerefMut for OwnerConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Self::Jobs(c) => c,
            Self::Login(c) => c,
        }
    }
}

/// A `LIKE`/`ILIKE` pattern matching `q` anywhere, with its own `\`, `%` and `_` taken
/// literally (PostgreSQL's default escape character is `\`).
pub fn like_contains(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for c in q.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}
