//! Test harness: a fresh database per test, the app served on a random port, tenants A and B.
//!
//! Databases: a template `serein_tpl_<hash of the migrations>` is migrated once (under an
//! advisory lock, so parallel test processes agree), and each test clones it with
//! `CREATE DATABASE … TEMPLATE`, which takes milliseconds. Test databases are named
//! `serein_t_<pid>_<n>`; those left by dead processes are dropped at start.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use serein::app::AppConfig;
use serein::app::{App, AppState};
use serein::clock::Clock;
use serein::crypto::keyring::{Aad, KeyScope};
use serein::db::{Db, TenantId, UserId};
use sqlx::{Connection, Executor, PgConnection};
use tokio::sync::{OnceCell, oneshot};

/// The server the tests use; override with `SEREIN_TEST_DATABASE_URL` (any database on it).
pub fn server_url() -> String {
    std::env::var("SEREIN_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn db_url(name: &str) -> String {
    let mut u = url::Url::parse(&server_url()).unwrap();
    u.set_path(&format!("/{name}"));
    u.to_string()
}

static TEMPLATE: OnceCell<String> = OnceCell::const_new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

async fn maintenance() -> PgConnection {
    PgConnection::connect(&db_url("postgres")).await.unwrap()
}

async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for m in serein::db::MIGRATOR.iter() {
                for b in m.checksum.iter().chain(m.version.to_le_bytes().iter()) {
                    hash ^= u64::from(*b);
                    hash = hash.wrapping_mul(0x100_0000_01b3);
                }
            }
            let name = format!("serein_tpl_{hash:016x}");
            let mut conn = maintenance().await;
            conn.execute("SELECT pg_advisory_lock(727272)").await.unwrap();
            drop_stale(&mut conn).await;
            // Templates of other migration sets (earlier checkouts) are dead weight — unless
            // several checkouts share this server (parallel work trees): then keep them.
            let keep = std::env::var_os("SEREIN_TEST_KEEP_TEMPLATES").is_some();
            let old: Vec<String> = if keep { Vec::new() } else { sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'serein\\_tpl\\_%' AND datname <> $1",
            )
            .bind(&name)
            .fetch_all(&mut conn)
            .await
            .unwrap() };
            for o in old {
                let _ = conn
                    .execute(sqlx::AssertSqlSafe(format!("ALTER DATABASE {o} WITH IS_TEMPLATE false")))
                    .await;
                let _ = conn
                    .execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {o} WITH (FORCE)")))
                    .await;
            }
            let ready: Option<bool> =
                sqlx::query_scalar("SELECT datistemplate FROM pg_database WHERE datname = $1")
                    .bind(&name)
                    .fetch_optional(&mut conn)
                    .await
                    .unwrap();
            if ready != Some(true) {
                if ready.is_some() {
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE {name} WITH (FORCE)"
                    )))
                    .await
                    .unwrap();
                }
                conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .unwrap();
                let mut t = PgConnection::connect(&db_url(&name)).await.unwrap();
                serein::db::MIGRATOR.run(&mut t).await.unwrap();
                t.close().await.unwrap();
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "ALTER DATABASE {name} WITH IS_TEMPLATE true"
                )))
                .await
                .unwrap();
            }
            conn.execute("SELECT pg_advisory_unlock(727272)")
                .await
                .unwrap();
            name
        })
        .await
}

/// Drop test databases whose creating process is gone.
async fn drop_stale(conn: &mut PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'serein\\_t\\_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    for n in names {
        let pid = n.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = conn
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {n} WITH (FORCE)"
                )))
                .await;
        }
    }
}

/// A fresh, migrated database; returns its name.
pub async fn fresh_database() -> String {
    let tpl = template().await;
    let name = format!(
        "serein_t_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = maintenance().await;
    conn.execute(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} TEMPLATE {tpl}"
    )))
    .await
    .unwrap();
    name
}

/// Base configuration of a test app on database `name`.
pub fn test_env(name: &str) -> HashMap<String, String> {
    let mut env = HashMap::new();
    env.insert("DATABASE_URL".into(), db_url(name));
    env.insert("SEREIN_CREATE_DATABASE".into(), "false".into());
    env.insert("SEREIN_TENANTS_DIR".into(), String::new());
    env.insert("BIND".into(), "127.0.0.1:0".into());
    env.insert("DB_MAX_CONNECTIONS".into(), "4".into());
    env.insert("RUST_LOG".into(), "warn".into());
    // Identity and access: a fixed signing secret, cheap Argon2, and limits high enough that
    // only the tests about throttling meet them.
    env.insert("JWT_SECRET".into(), TEST_JWT_SECRET.into());
    env.insert("ARGON2_MEMORY_KIB".into(), "64".into());
    env.insert("ARGON2_ITERATIONS".into(), "1".into());
    env.insert("RATE_LIMIT_PER_IP_PER_SEC".into(), "100000".into());
    env.insert("RATE_LIMIT_PER_IP_BURST".into(), "100000".into());
    env.insert("AUTH_RATE_LIMIT_PER_MIN".into(), "100000".into());
    env.insert("AUTH_RATE_LIMIT_BURST".into(), "100000".into());
    // Hermetic: a fixed master key, so nothing is generated into the repository's `.data/`.
    env.insert("SEREIN_MASTER_KEY".into(), TEST_MASTER_KEY_HEX.into());
    // Tests drive the mail worker by hand (`MailWorker::run_once`).
    env.insert("MAIL_WORKER".into(), "false".into());
    // ... and the job worker (`JobWorker::run_once`).
    env.insert("JOBS_WORKER".into(), "false".into());
    // Tests run the offboarding purge by hand (`platform::purge::purge_due`).
    env.insert("PURGE_WORKER".into(), "false".into());
    // Parallel apps must not fight over the metrics port; tests that read metrics bind their own.
    env.insert("METRICS_BIND".into(), "off".into());
    env
}

/// The secret tests give sessions they arrange by hand (the server derives real ones from the
/// master key: `Keyring::session_secret`).
pub const TEST_SESSION_SECRET: [u8; 32] = [0x5a; 32];

/// The JWT secret of every test app.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

/// The master key every test app runs with (64 hex digits of [`TEST_MASTER_KEY`]).
pub const TEST_MASTER_KEY_HEX: &str =
    "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";
pub const TEST_MASTER_KEY: [u8; 32] = [0x5e; 32];

/// A running app on its own database, with tenants `alpha` (A) and `bravo` (B).
pub struct TestApp {
    pub addr: SocketAddr,
    pub db_name: String,
    pub db: Db,
    pub clock: Clock,
    pub client: reqwest::Client,
    pub tenant_a: TenantId,
    pub tenant_b: TenantId,
    /// The running app's state (tokens, keyring, mailer, config, …).
    pub state: AppState,
    /// `SEREIN_DATA_DIR` of this app (dev keys, `.eml` files); removed on drop.
    pub data_dir: std::path::PathBuf,
    _data_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

pub struct Spawn {
    pub env: HashMap<String, String>,
    pub extra: Option<Router<AppState>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(f: impl FnOnce(&mut Spawn)) -> Self {
        let db_name = fresh_database().await;
        let mut s = Spawn {
            env: test_env(&db_name),
            extra: None,
        };
        let data_dir = tempfile::tempdir().unwrap();
        s.env.insert(
            "SEREIN_DATA_DIR".into(),
            data_dir.path().to_string_lossy().into_owned(),
        );
        f(&mut s);
        let config = AppConfig::load(&s.env).unwrap();
        let clock = Clock::manual(time::OffsetDateTime::now_utc());
        let mut owner = PgConnection::connect(&db_url(&db_name)).await.unwrap();
        let tenant_a = create_tenant(&mut owner, "alpha").await;
        let tenant_b = create_tenant(&mut owner, "bravo").await;
        let app = App::build_with(config, clock.clone(), s.extra)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let state = app.state.clone();
        let server = tokio::spawn(async move {
            app.run(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            db: state.db.clone(),
            db_name,
            clock,
            // The server closes a keep-alive connection idle for HEADER_READ_TIMEOUT_MS (10 s):
            // a client that keeps one longer races that close and sees a reset POST
            // (IncompleteMessage). Keep idle connections for less.
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_idle_timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap(),
            tenant_a,
            tenant_b,
            state,
            data_dir: data_dir.path().to_owned(),
            _data_dir: data_dir,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// A second server on this app's database (same tenants, same manual clock): what two
    /// pods behind one ingress are. `f` adjusts its environment like [`TestApp::spawn_with`].
    pub async fn spawn_peer(&self, f: impl FnOnce(&mut Spawn)) -> Self {
        let mut s = Spawn {
            env: test_env(&self.db_name),
            extra: None,
        };
        let data_dir = tempfile::tempdir().unwrap();
        s.env.insert(
            "SEREIN_DATA_DIR".into(),
            data_dir.path().to_string_lossy().into_owned(),
        );
        f(&mut s);
        let config = AppConfig::load(&s.env).unwrap();
        let app = App::build_with(config, self.clock.clone(), s.extra)
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let state = app.state.clone();
        let server = tokio::spawn(async move {
            app.run(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            addr,
            db: state.db.clone(),
            db_name: self.db_name.clone(),
            clock: self.clock.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .pool_idle_timeout(std::time::Duration::from_secs(5))
                .build()
                .unwrap(),
            tenant_a: self.tenant_a,
            tenant_b: self.tenant_b,
            state,
            data_dir: data_dir.path().to_owned(),
            _data_dir: data_dir,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// A request to `path` with `Host: {host}` (port appended like a browser would).
    pub fn req(&self, method: reqwest::Method, host: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("http://{}{path}", self.addr))
            .header("host", format!("{host}:{}", self.addr.port()))
    }

    pub async fn get(&self, host: &str, path: &str) -> reqwest::Response {
        self.req(reqwest::Method::GET, host, path)
            .send()
            .await
            .unwrap()
    }

    /// A superuser connection to this test's database (bypasses RLS: for arranging and
    /// inspecting only).
    pub async fn owner(&self) -> PgConnection {
        PgConnection::connect(&db_url(&self.db_name)).await.unwrap()
    }

    /// Stop the server gracefully and wait for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Insert an active tenant directly (as the owner).
pub async fn create_tenant(owner: &mut PgConnection, slug: &str) -> TenantId {
    let id = TenantId::new();
    sqlx::query(
        "INSERT INTO tenants (id, slug, name, plan, web_origins) VALUES ($1, $2, $3, 'standard', $4)",
    )
    .bind(id.as_uuid())
    .bind(slug)
    .bind(format!("Tenant {slug}"))
    .bind(vec![format!("https://{slug}.example")])
    .execute(owner)
    .await
    .unwrap();
    id
}

/// Seed one row of every tenant-scoped table for `tenant`, as the owner. Every table with a
/// `tenant_id` must get rows here: the catalogue-driven isolation test fails, naming the
/// table, when a tenant has none (so a new table can never pass untested).
pub async fn seed_world(owner: &mut PgConnection, tenant: TenantId, tag: &str) -> UserId {
    let user = UserId::new();
    sqlx::query("INSERT INTO users (id, email, display_name) VALUES ($1, $2, $3)")
        .bind(user.as_uuid())
        .bind(format!("{tag}-{}@example.test", user.as_uuid().simple()))
        .bind(format!("Person {tag}"))
        .execute(&mut *owner)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO memberships (id, tenant_id, user_id, roles, department) VALUES ($1, $2, $3, $4, 'ops')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(vec!["employee".to_owned()])
    .execute(&mut *owner)
    .await
    .unwrap();
    // Identity and access: a session with one refresh token, and a one-time token.
    let session = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO sessions (id, tenant_id, user_id, created_at, idle_expires_at, absolute_expires_at)
         VALUES ($1, $2, $3, now(), now() + interval '1 hour', now() + interval '1 day')",
    )
    .bind(session)
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO refresh_tokens (id, tenant_id, session_id, user_id, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, $4, sha256(gen_random_uuid()::text::bytea), now(), now() + interval '1 hour')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(session)
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO auth_tokens (id, tenant_id, user_id, purpose, token_hash, created_at, expires_at)
         VALUES ($1, $2, $3, 'email_verify', sha256(gen_random_uuid()::text::bytea), now(), now() + interval '1 hour')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    // Identity proofs are transaction-local and swept, but one row each lets the catalogue
    // matrix cover the table.
    sqlx::query(
        "INSERT INTO auth_proofs (tenant_id, xid, kind, user_id) VALUES ($1, pg_current_xact_id(), 'login', $2)",
    )
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    // Envelope encryption: real keys under the test master key (the tenant's data and clinical
    // keys, and this person's subject key), created the way the app creates them: through the
    // key definers, in a transaction of this person's session checked by the guard.
    let keyring = serein::crypto::keyring::Keyring::for_tests(TEST_MASTER_KEY);
    assert!(as_member_with_session(&mut *owner, tenant, user).await);
    for scope in [KeyScope::Clinical, KeyScope::Subject(user)] {
        let aad = Aad {
            tenant,
            table: "seed",
            column: "seed",
            row_id: uuid::Uuid::now_v7(),
        };
        keyring
            .seal(&mut *owner, tenant, scope, &aad, b"seed")
            .await
            .unwrap();
    }
    owner.execute("COMMIT").await.unwrap();
    // Organizations and people: one pending invitation.
    sqlx::query(
        "INSERT INTO invitations (id, tenant_id, email, roles, department, token_hash, created_at, updated_at, expires_at)
         VALUES ($1, $2, $3, '{employee}', 'ops', sha256(gen_random_uuid()::text::bytea), now(), now(), now() + interval '7 days')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(format!("{tag}-invitee-{}@example.test", user.as_uuid().simple()))
    .execute(&mut *owner)
    .await
    .unwrap();
    // E-mail: one queued message.
    sqlx::query(
        "INSERT INTO email_outbox (id, tenant_id, to_address, locale, template, subject, body_text, created_at, next_attempt_at)
         VALUES ($1, $2, $3, 'en', 'verify_email', 'Confirm your email address', 'https://x.example/verify', now(), now())",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(format!("{tag}-{}@example.test", user.as_uuid().simple()))
    .execute(&mut *owner)
    .await
    .unwrap();
    // The practitioner network: one practitioner serving the company (the triggers of
    // migration 20261206000001 give it its directory entry).
    let practitioner = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO users (id, email, display_name) VALUES ($1, $2, $3)")
        .bind(practitioner)
        .bind(format!("{tag}-dr-{}@example.test", practitioner.simple()))
        .bind(format!("Dr {tag}"))
        .execute(&mut *owner)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO practitioner_profiles (user_id, specialties, languages, bio, created_at, updated_at)
         VALUES ($1, '{stress}', '{en}', 'Seed practitioner', now(), now())",
    )
    .bind(practitioner)
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO memberships (id, tenant_id, user_id, roles) VALUES ($1, $2, $3, '{practitioner}')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(practitioner)
    .execute(&mut *owner)
    .await
    .unwrap();
    // Scheduling: a consultation between the two, in three days, with its first event.
    let consultation = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO consultations (id, tenant_id, employee_id, practitioner_id, kind, status,
                                    starts_at, ends_at, room, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'video', 'confirmed', now() + interval '3 days',
                 now() + interval '3 days 50 minutes', md5($1::text), now(), now())",
    )
    .bind(consultation)
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(practitioner)
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO consultation_events (id, tenant_id, consultation_id, kind, actor_id, at)
         VALUES ($1, $2, $3, 'requested', $4, now())",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(consultation)
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    // Booking: the idempotency record of that booking.
    sqlx::query(
        "INSERT INTO idempotency_keys (tenant_id, user_id, key, request_hash, status, response,
                                       created_at, expires_at)
         VALUES ($1, $2, $3, sha256($3::bytea), 201, '{}', now(), now() + interval '1 day')",
    )
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(format!("seed-{consultation}"))
    .execute(&mut *owner)
    .await
    .unwrap();
    // Reviews: the employee's review of an earlier, ended consultation with the practitioner
    // (the comment column holds an opaque blob here, as a sealed one would be).
    let ended = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO consultations (id, tenant_id, employee_id, practitioner_id, kind, status,
                                    starts_at, ends_at, room, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'video', 'ended', now() - interval '7 days',
                 now() - interval '7 days' + interval '50 minutes', md5($1::text), now(), now())",
    )
    .bind(ended)
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(practitioner)
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO consultation_reviews (id, tenant_id, consultation_id, employee_id,
                                           practitioner_id, rating, comment, created_at)
         VALUES ($1, $2, $3, $4, $5, 4, sha256($1::text::bytea) || sha256($3::text::bytea), now())",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(ended)
    .bind(user.as_uuid())
    .bind(practitioner)
    .execute(&mut *owner)
    .await
    .unwrap();
    // Confidential records (opaque blobs, as sealed ones would be): the practitioner's note on
    // the confirmed consultation with its first version, the employee's journal entry, a
    // message of the employee's in that consultation and their read mark.
    let note = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO clinical_notes (id, tenant_id, consultation_id, author_id, employee_id,
                                     current_version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 1, now(), now())",
    )
    .bind(note)
    .bind(tenant.as_uuid())
    .bind(consultation)
    .bind(practitioner)
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO clinical_note_versions (id, tenant_id, note_id, version, author_id, content, created_at)
         VALUES ($1, $2, $3, 1, $4, sha256($1::text::bytea) || sha256($3::text::bytea), now())",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(note)
    .bind(practitioner)
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO journal_entries (id, tenant_id, owner_id, content, created_at, updated_at)
         VALUES ($1, $2, $3, sha256($1::text::bytea) || sha256($3::text::bytea), now(), now())",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO messages (id, tenant_id, consultation_id, seq, sender_id, body, created_at)
         VALUES ($1, $2, $3, 1, $4, sha256($1::text::bytea) || sha256($3::text::bytea), now())",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(consultation)
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO message_reads (tenant_id, consultation_id, user_id, last_read_seq, read_at)
         VALUES ($1, $2, $3, 1, now())",
    )
    .bind(tenant.as_uuid())
    .bind(consultation)
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    // A call signal of the practitioner's to the employee on that consultation.
    sqlx::query(
        "INSERT INTO call_signals (id, tenant_id, consultation_id, sender_id, recipient_id, kind, created_at)
         VALUES ($1, $2, $3, $4, $5, 'hangup', now())",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(consultation)
    .bind(practitioner)
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    // The employee's calendar feed.
    sqlx::query(
        "INSERT INTO calendar_feeds (id, tenant_id, user_id, token_hash, created_at)
         VALUES ($1, $2, $3, sha256($1::text::bytea), now())",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    // Jobs: the event above planned its reminders and notice (trigger); a notification for the
    // employee and a cancel link, as the worker would have made them.
    sqlx::query(
        "INSERT INTO notifications (id, tenant_id, user_id, kind, consultation_id, starts_at, created_at)
         VALUES ($1, $2, $3, 'consultation_confirmed', $4, now() + interval '3 days', now())",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(consultation)
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO consultation_cancel_links (id, tenant_id, consultation_id, token_hash, created_at)
         VALUES ($1, $2, $3, sha256($1::text::bytea), now())",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(consultation)
    .execute(&mut *owner)
    .await
    .unwrap();
    // Usage reports: a frozen month with its total cell and the practitioner's month (as the
    // freeze writes them; only report definers read these tables). A tenant seeded twice keeps
    // its one frozen month.
    sqlx::query(
        "INSERT INTO usage_months (tenant_id, month, min_cohort, members, band, seats, frozen_at)
         VALUES ($1, date_trunc('month', now() - interval '3 months')::date, 5, 1, 10, 50, now())
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO usage_cells (tenant_id, month, grouping, group_key, booked, held, cancelled,
                                  minutes, users, held_users, cancelled_users, population,
                                  booked_hidden, held_hidden, cancelled_hidden, users_hidden)
         VALUES ($1, date_trunc('month', now() - interval '3 months')::date, 'total', '', 1, 1, 0,
                 50, 1, 1, 0, 1, 'below_min_cohort', 'below_min_cohort', 'below_min_cohort',
                 'below_min_cohort')
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO usage_practitioner_months (tenant_id, month, practitioner_id, held, minutes)
         VALUES ($1, date_trunc('month', now() - interval '3 months')::date, $2, 1, 50)",
    )
    .bind(tenant.as_uuid())
    .bind(practitioner)
    .execute(&mut *owner)
    .await
    .unwrap();
    // Notification preferences (issue 13 item 4): the employee turned reminder e-mails off, and
    // was once sent a digest.
    sqlx::query(
        "INSERT INTO notification_preferences (tenant_id, user_id, kind, channel, enabled, updated_at)
         VALUES ($1, $2, 'consultation_reminder', 'email', false, now())",
    )
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO notification_digests (tenant_id, user_id, sent_at) VALUES ($1, $2, now())",
    )
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    // Content: one published news item of the company (articles are global: content.rs).
    sqlx::query(
        "INSERT INTO news (id, tenant_id, author_id, title, body_markdown, body_html, language,
                           status, published_at, created_at, updated_at)
         VALUES ($1, $2, $3, 'Seeded news', 'Hello', '<p>Hello</p>', 'en', 'published', now(),
                 now(), now())",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    // Files: an attachment upload of the employee's (no object behind it: rows only).
    let file = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO files (id, tenant_id, owner_id, purpose, content_type, size_bytes, sha256,
                            storage_key, file_name, created_at)
         VALUES ($1, $2, $3, 'attachment', 'text/plain', 4, sha256('seed'::bytea),
                 'tenants/' || $2::text || '/files/' || $1::text, 'seed.txt', now())",
    )
    .bind(file)
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    user
}

/// Begin a transaction on `conn` as the request role with the given context, exactly like
/// `TenantTx` does (but with Casbin and handlers out of the picture).
pub async fn as_app(conn: &mut PgConnection, tenant: Option<TenantId>, user: Option<UserId>) {
    as_app_with_roles(conn, tenant, user, "").await;
}

/// [`as_app`] with the actor's roles (comma-separated).
pub async fn as_app_with_roles(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    user: Option<UserId>,
    roles: &str,
) {
    conn.execute("BEGIN").await.unwrap();
    sqlx::query(
        "SELECT set_config('role', 'serein_app', true), set_config('app.tenant_id', $1, true), \
                set_config('app.user_id', $2, true), set_config('app.roles', $3, true)",
    )
    .bind(tenant.map(|t| t.to_string()).unwrap_or_default())
    .bind(user.map(|u| u.to_string()).unwrap_or_default())
    .bind(roles)
    .execute(&mut *conn)
    .await
    .unwrap();
}

/// Begin a transaction on `conn` as `user` (an active employee member of `tenant`) with their
/// newest live session checked by `app_private.session_guard` in it, exactly as an
/// authenticated request's context statement does: what the key definers demand. False (and
/// nothing left open) when the person has no live session or membership there.
pub async fn as_member_with_session(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
) -> bool {
    as_member_with_session_roles(conn, tenant, user, "employee").await
}

/// [`as_member_with_session`] claiming `roles` (comma-separated; the guard checks they are held).
pub async fn as_member_with_session_roles(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    roles: &str,
) -> bool {
    // As the owner (the test plays the server): give the newest live session a known secret,
    // since the guard demands the secret, not only the id.
    let session: Option<uuid::Uuid> = sqlx::query_scalar(
        "UPDATE sessions SET secret_hash = sha256($3)
         WHERE id = (SELECT id FROM sessions WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL
                       AND idle_expires_at > now() AND absolute_expires_at > now()
                     ORDER BY created_at DESC, id DESC LIMIT 1)
         RETURNING id",
    )
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(TEST_SESSION_SECRET.as_slice())
    .fetch_optional(&mut *conn)
    .await
    .unwrap();
    as_app_with_roles(conn, Some(tenant), Some(user), roles).await;
    let guarded = sqlx::query(
        "SELECT app_private.session_guard($1, $2, $3, $4, string_to_array($5, ','), now())",
    )
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(session)
    .bind(TEST_SESSION_SECRET.as_slice())
    .bind(roles)
    .execute(&mut *conn)
    .await;
    if guarded.is_err() {
        conn.execute("ROLLBACK").await.unwrap();
    }
    guarded.is_ok()
}

/// Make `user` (created if missing) an active member of `tenant` holding `roles`
/// (comma-separated, added to what they hold), with TOTP enabled when an admin role is among
/// them and a live session: what [`as_member_with_session_roles`] needs to prove the person.
/// Since migration 20261209000010 a claimed role counts only for a proven person who holds it,
/// so a DB-level test that needs a role proves it. Run as the owner, outside a transaction.
pub async fn give_roles(owner: &mut PgConnection, tenant: TenantId, user: UserId, roles: &str) {
    let list: Vec<String> = roles
        .split(',')
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    let admin = list
        .iter()
        .any(|r| r == "tenant_admin" || r == "platform_admin");
    sqlx::query(
        "INSERT INTO users (id, email, display_name) VALUES ($1, $2, 'Proven Person')
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(user.as_uuid())
    .bind(format!("proven-{}@example.test", user.as_uuid().simple()))
    .execute(&mut *owner)
    .await
    .unwrap();
    if admin {
        sqlx::query(
            "UPDATE users SET totp_enabled_at = coalesce(totp_enabled_at, now()) WHERE id = $1",
        )
        .bind(user.as_uuid())
        .execute(&mut *owner)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO memberships (id, tenant_id, user_id, roles) VALUES ($1, $2, $3, $4)
         ON CONFLICT (tenant_id, user_id) DO UPDATE
             SET roles = ARRAY(SELECT DISTINCT r FROM unnest(memberships.roles || EXCLUDED.roles) r ORDER BY r),
                 status = 'active'",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(&list)
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO sessions (id, tenant_id, user_id, created_at, idle_expires_at, absolute_expires_at)
         SELECT $1, $2, $3, now(), now() + interval '1 hour', now() + interval '1 day'
         WHERE NOT EXISTS (SELECT 1 FROM sessions WHERE tenant_id = $2 AND user_id = $3
                             AND revoked_at IS NULL AND idle_expires_at > now()
                             AND absolute_expires_at > now())",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
}

/// [`give_roles`], then begin a request-role transaction on `conn` as that person, proven.
pub async fn as_proven(conn: &mut PgConnection, tenant: TenantId, user: UserId, roles: &str) {
    give_roles(conn, tenant, user, roles).await;
    assert!(
        as_member_with_session_roles(conn, tenant, user, roles).await,
        "the session guard refused {user} as {roles}"
    );
}

/// Problem body of a response, asserting its content type.
pub async fn problem(res: reqwest::Response) -> serde_json::Value {
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(ct, "application/problem+json", "content type");
    res.json().await.unwrap()
}
