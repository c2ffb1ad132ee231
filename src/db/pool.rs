//! The connection pool of the login role (requests, CLI, migrations, the start-up checks).
//!
//! Why not sqlx's `Pool`: sqlx 0.9 pings every connection it takes back (a Sync round trip, in
//! a spawned task), so every request paid a fourth round trip after its COMMIT — CPU on both
//! sides of the loopback that the pgbench twin of the request never pays (issue 10). Here a
//! connection whose transaction is known finished goes straight back to the idle list.
//!
//! Invariants:
//! - A connection returns to the idle list without a round trip ONLY when its user marked it
//!   clean ([`PooledConn::mark_clean`]): `tenancy` does so after an awaited, successful COMMIT
//!   or ROLLBACK, when the connection is idle, outside any transaction, with nothing queued or
//!   unread. Everything else — a transaction dropped without commit (its ROLLBACK is queued), a
//!   request cancelled mid-statement, any raw use (`Db::admin_conn`) — is reset in a spawned
//!   task before reuse, exactly as sqlx does it: a Sync round trip that flushes what was queued
//!   and drains every pending reply. A reset that fails or takes longer than
//!   [`RESET_TIMEOUT`] closes the connection. [`PooledConn::discard`] closes it outright.
//! - At most `max` connections exist (in use + idle + being reset): a connection is opened only
//!   under a permit and only when no idle one is left. A permit is released after its connection
//!   is back in the idle list (or closed), so a waiter woken by it finds that connection.
//! - Connections older than `max_lifetime`, or idle longer than `idle_timeout`, are closed when
//!   next taken or returned. The pool keeps `min` connections open from the start (at least one,
//!   which also proves at start-up that the database answers).

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

/// How long the reset of a returned connection (a Sync round trip, after draining whatever a
/// cancelled statement left unread) may take before the connection is closed instead.
pub const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// Sizes and lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    pub max: u32,
    pub min: u32,
    pub acquire_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
}

/// The pool (cheap to clone).
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    connect: PgConnectOptions,
    options: PoolOptions,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Idle>>,
    /// Open connections: in use, idle, or being reset.
    size: AtomicU32,
    closed: AtomicBool,
}

/// A connection's home: the user of the connection holds its lock.
type Slot = Arc<AsyncMutex<PgConnection>>;

struct Idle {
    slot: Slot,
    born: Instant,
    since: Instant,
}

/// What happens to a connection when its [`PooledConn`] is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    /// Known idle, outside a transaction, nothing queued or unread: back to the idle list.
    Clean,
    /// Unknown state: reset (Sync round trip) in a spawned task, then back, or closed.
    Reset,
    /// Closed.
    Close,
}

impl Pool {
    /// Open the pool and its first connections (`max(min, 1)`).
    pub async fn connect(
        connect: PgConnectOptions,
        options: PoolOptions,
    ) -> Result<Self, sqlx::Error> {
        let max = options.max.max(1);
        let options = PoolOptions { max, ..options };
        let pool = Self {
            inner: Arc::new(Inner {
                connect,
                options,
                permits: Arc::new(Semaphore::new(usize::try_from(max).unwrap_or(1))),
                idle: Mutex::new(Vec::new()),
                size: AtomicU32::new(0),
                closed: AtomicBool::new(false),
            }),
        };
        let mut first = Vec::new();
        for _ in 0..options.min.clamp(1, max) {
            let mut c = pool.acquire().await?;
            c.mark_clean();
            first.push(c);
        }
        drop(first);
        Ok(pool)
    }

    /// The options connections are opened with (for a dedicated connection outside the pool).
    pub fn connect_options(&self) -> PgConnectOptions {
        self.inner.connect.clone()
    }

    /// A connection, waiting at most `acquire_timeout` for one (`PoolTimedOut`).
    pub async fn acquire(&self) -> Result<PooledConn, sqlx::Error> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(sqlx::Error::PoolClosed);
        }
        match tokio::time::timeout(self.inner.options.acquire_timeout, self.acquire_inner()).await {
            Ok(r) => r,
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }

    async fn acquire_inner(&self) -> Result<PooledConn, sqlx::Error> {
        let inner = &self.inner;
        let permit = inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let now = Instant::now();
        loop {
            let Some(idle) = inner.lock_idle().pop() else {
                break;
            };
            if inner.expired(idle.born, now)
                || now.duration_since(idle.since) > inner.options.idle_timeout
            {
                inner.close_in_background(idle.slot);
                continue;
            }
            // Uncontended but for the instant between a PooledConn's drop putting the slot
            // back and its lock being released.
            let guard = idle.slot.clone().lock_owned().await;
            return Ok(PooledConn::new(
                guard,
                idle.slot,
                idle.born,
                permit,
                inner.clone(),
            ));
        }
        // Counted before connecting, uncounted if connecting fails or is cancelled.
        let opening = Opening::new(inner);
        let conn = inner.connect.connect().await?;
        opening.done();
        let slot: Slot = Arc::new(AsyncMutex::new(conn));
        let guard = slot.clone().lock_owned().await;
        Ok(PooledConn::new(
            guard,
            slot,
            Instant::now(),
            permit,
            inner.clone(),
        ))
    }

    /// Open connections (in use, idle or being reset).
    pub fn size(&self) -> u32 {
        self.inner.size.load(Ordering::Relaxed)
    }

    /// Idle connections.
    pub fn num_idle(&self) -> usize {
        self.inner.lock_idle().len()
    }

    pub fn max_connections(&self) -> u32 {
        self.inner.options.max
    }

    /// Refuse new acquisitions, close idle connections now and in-use ones when returned.
    pub async fn close(&self) {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::Release);
        inner.permits.close();
        let idle: Vec<Idle> = inner.lock_idle().drain(..).collect();
        for i in idle {
            inner.size.fetch_sub(1, Ordering::Relaxed);
            if let Some(conn) = take_connection(i.slot).await {
                let _ = tokio::time::timeout(RESET_TIMEOUT, conn.close()).await;
            }
        }
    }
}

/// The connection of a slot nobody else holds (after waiting for its last user's lock).
async fn take_connection(slot: Slot) -> Option<PgConnection> {
    drop(slot.lock().await);
    Arc::try_unwrap(slot).ok().map(AsyncMutex::into_inner)
}

impl Inner {
    fn lock_idle(&self) -> MutexGuard<'_, Vec<Idle>> {
        // A panic while holding this lock cannot leave the Vec inconsistent (push/pop/drain).
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn expired(&self, born: Instant, now: Instant) -> bool {
        now.duration_since(born) > self.options.max_lifetime
    }

    fn push_idle(&self, slot: Slot, born: Instant) {
        if self.closed.load(Ordering::Acquire) || self.expired(born, Instant::now()) {
            self.close_in_background(slot);
            return;
        }
        self.lock_idle().push(Idle {
            slot,
            born,
            since: Instant::now(),
        });
    }

    /// Uncount and close (gracefully, in a task, when a runtime is there; else just drop it).
    fn close_in_background(&self, slot: Slot) {
        self.size.fetch_sub(1, Ordering::Relaxed);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Some(conn) = take_connection(slot).await {
                    let _ = tokio::time::timeout(RESET_TIMEOUT, conn.close()).await;
                }
            });
        }
    }
}

/// The size counter of a connection being opened (see `acquire_inner`).
struct Opening<'a> {
    inner: &'a Inner,
    done: bool,
}

impl<'a> Opening<'a> {
    fn new(inner: &'a Inner) -> Self {
        inner.size.fetch_add(1, Ordering::Relaxed);
        Self { inner, done: false }
    }
    fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.inner.size.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A connection taken from the pool; returned (or reset, or closed) on drop. A waiter woken by
/// the permit may find the slot still locked for an instant (the lock is a field, released
/// just after `drop`): it waits for it.
pub struct PooledConn {
    slot: Slot,
    guard: OwnedMutexGuard<PgConnection>,
    born: Instant,
    release: Release,
    permit: Option<OwnedSemaphorePermit>,
    pool: Arc<Inner>,
}

impl PooledConn {
    fn new(
        guard: OwnedMutexGuard<PgConnection>,
        slot: Slot,
        born: Instant,
        permit: OwnedSemaphorePermit,
        pool: Arc<Inner>,
    ) -> Self {
        Self {
            slot,
            guard,
            born,
            release: Release::Reset,
            permit: Some(permit),
            pool,
        }
    }

    /// The connection is idle, outside any transaction, with nothing queued or unread (an
    /// awaited COMMIT or ROLLBACK just succeeded): it may be reused without a reset. Any later
    /// mutable use undoes this (the connection is reset before reuse again).
    pub fn mark_clean(&mut self) {
        if self.release != Release::Close {
            self.release = Release::Clean;
        }
    }

    /// Close the connection instead of returning it (its state cannot be trusted).
    pub fn discard(&mut self) {
        self.release = Release::Close;
    }
}

impl Deref for PooledConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.guard
    }
}

impl DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        // Mutable use may leave anything behind: reset before reuse unless marked clean again.
        if self.release == Release::Clean {
            self.release = Release::Reset;
        }
        &mut self.guard
    }
}

impl Drop for PooledConn {
    fn drop(&mut self) {
        let slot = self.slot.clone();
        let pool = self.pool.clone();
        let born = self.born;
        let permit = self.permit.take();
        match self.release {
            // The lock is released right after this (field drop).
            Release::Clean => {
                pool.push_idle(slot, born);
                drop(permit);
            }
            Release::Close => {
                pool.close_in_background(slot);
                drop(permit);
            }
            Release::Reset => match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        let mut guard = slot.clone().lock_owned().await;
                        let reset = tokio::time::timeout(RESET_TIMEOUT, guard.ping()).await;
                        drop(guard);
                        match reset {
                            Ok(Ok(())) => pool.push_idle(slot, born),
                            // Broken or stuck: never reused, closed.
                            _ => pool.close_in_background(slot),
                        }
                        drop(permit);
                    });
                }
                Err(_) => {
                    pool.size.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                }
            },
        }
    }
}
