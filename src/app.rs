//! Application assembly: the configuration's sections, shared state, the router with its
//! layers, and start-up. This is the one place that knows every feature: the core (`db`, `http`,
//! `crypto`, `rbac`, `error`, `config`, `clock`, `telemetry`) names none of them, and its
//! middleware and jobs receive only the part of the state they read (`FromRef`, or the sub-state
//! given to `from_fn_with_state`), never [`AppState`] itself.
//!
//! Start-up order (each step refuses to continue on failure): connect (creating the database
//! if configured) → migrate (or, with `SEREIN_MIGRATE_ON_START=false`, verify) → self-check (RLS would hold) → apply `tenants/` if configured →
//! master key check (the configured master key is the database's: `crypto::keycheck`) →
//! bind → serve (with the mail worker beside it unless `MAIL_WORKER=false`, and the offboarding
//! purge job unless `PURGE_WORKER=false`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::config::AuthConfig;
use crate::auth::throttle::Throttle;
use crate::clock::Clock;
use crate::config::{Config, ConfigError, Env, Settings, Source};
use crate::crypto::keyring::Keyring;
use crate::crypto::master::CryptoConfig;
use crate::crypto::passwords::Passwords;
use crate::crypto::token_config::TokenConfig;
use crate::crypto::tokens::TokenKeys;
use crate::db::Db;
use crate::http::middleware::{self, Limits};
use crate::http::server::{self, ServerOptions};
use crate::mail::MailConfig;
use crate::members::config::ImportConfig;
use crate::platform::PlatformConfig;
use crate::rbac::Rbac;
use crate::tenants::config::TenantsConfig;
use crate::tenants::resolve::{TenantDirectory, TenantHosts};

/// The whole configuration: one section per owner, all read through one [`Settings`] (so one
/// file, one precedence rule, and one refusal of unknown file keys).
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Database, listeners, request pipeline, logs, data directory.
    pub core: Config,
    /// Token signing keys and issuer.
    pub tokens: TokenConfig,
    /// Master key and key cache of envelope encryption.
    pub crypto: CryptoConfig,
    /// Token lifetimes, passwords, sessions, throttling.
    pub auth: AuthConfig,
    /// Host resolution cache, declarative tenant files.
    pub tenants: TenantsConfig,
    /// The CSV member import's body limit and timeout.
    pub import: ImportConfig,
    /// E-mail: SMTP relay, sender, retries.
    pub mail: MailConfig,
    /// Platform tenant management: offboarding grace, purge job.
    pub platform: PlatformConfig,
    /// Consultations: the Jitsi deployment of calls.
    pub consultations: crate::consultations::config::ConsultationsConfig,
    /// Background jobs: reminders and change notices.
    pub jobs: crate::jobs::JobsConfig,
    /// The realtime gateway: socket limits, pings, the listener.
    pub realtime: crate::realtime::RealtimeConfig,
    /// Files: upload limits and the object store.
    pub files: crate::files::FilesConfig,
}

impl AppConfig {
    /// Load from the process environment (and `SEREIN_CONFIG` if set).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::load(&Env)
    }

    /// Load every section from `src`: the file named by `SEREIN_CONFIG`, then variables, then
    /// defaults. A file key that no section read is an error.
    pub fn load(src: &dyn Source) -> Result<Self, ConfigError> {
        let s = Settings::open(src)?;
        let core = Config::load(&s)?;
        let config = Self {
            tokens: TokenConfig::load(&s)?,
            crypto: CryptoConfig::load(&s)?,
            auth: AuthConfig::load(&s)?,
            tenants: TenantsConfig::load(&s)?,
            import: ImportConfig::load(&s)?,
            mail: MailConfig::load(&s, &core.base_domain)?,
            platform: PlatformConfig::load(&s)?,
            consultations: crate::consultations::config::ConsultationsConfig::load(&s)?,
            jobs: crate::jobs::JobsConfig::load(&s)?,
            realtime: crate::realtime::RealtimeConfig::load(&s)?,
            files: crate::files::FilesConfig::load(&s, &core.data_dir)?,
            core,
        };
        s.finish()?;
        Ok(config)
    }
}

/// State shared by every handler. Middleware and jobs of the core take one field of it
/// (`FromRef`), not the whole.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub config: Arc<AppConfig>,
    pub db: Db,
    pub clock: Clock,
    pub tenants: TenantDirectory,
    pub limits: Limits,
    pub metrics: Option<PrometheusHandle>,
    pub rbac: Rbac,
    pub tokens: TokenKeys,
    pub passwords: Passwords,
    pub throttle: Throttle,
    /// Envelope encryption (sealing and opening confidential records).
    pub keyring: Keyring,
    pub mail: crate::mail::Mailer,
    /// This server's live sockets and the fan-out to them.
    pub realtime: crate::realtime::Hub,
    /// Where uploaded files' (sealed) objects live.
    pub files: crate::files::FileStore,
}

/// The OpenAPI document's frame; paths are added by each feature's router.
#[derive(OpenApi)]
#[openapi(
    modifiers(&BearerAuth),
    // Every error answer's body (the document pass in `http::openapi` refers to it).
    components(schemas(crate::error::Problem)),
    info(
        title = "Serein API",
        description = "Multi-tenant employee mental-health platform. Every /api/v1 route is \
                       served on a tenant host `{slug}.{BASE_DOMAIN}` (or the platform host); \
                       errors are RFC 9457 problem+json with a stable `code`."
    ),
    tags(
        (name = "health", description = "Probes and metrics"),
        (name = "tenant", description = "The tenant of the request's host"),
        (name = "auth", description = "Sign-up, login, sessions, TOTP, password reset"),
        (name = "practitioners", description = "The practitioner network: platform management, company directory, matching"),
        (name = "consultations", description = "Booking and each participant's consultations"),
        (name = "availability", description = "A practitioner's schedule: settings, weekly rules, exceptions"),
        (name = "platform", description = "Platform admins (platform host): tenants, practitioner assignment"),
        (name = "members", description = "Company settings, members, HR counts, invitations, CSV import"),
        (name = "reports", description = "HR's usage report and CSV export: closed months, released cells only"),
        (name = "content", description = "Practitioners' articles (platform-wide) and company news"),
        (name = "files", description = "Uploads (sniffed, re-encoded, sealed at rest) and avatars"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme (access tokens) the auth routes refer to.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every feature's routes, with their OpenAPI paths.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(crate::health::router())
        .merge(crate::tenants::router())
        .merge(crate::auth::router())
        .merge(crate::practitioners::router())
        .merge(crate::availability::router())
        .merge(crate::consultations::router())
        .merge(crate::notifications::router())
        .merge(crate::notes::router())
        .merge(crate::journal::router())
        .merge(crate::chat::router())
        .merge(crate::realtime::router())
        .merge(crate::platform::router())
        .merge(crate::members::router())
        .merge(crate::reports::router())
        .merge(crate::content::router())
        .merge(crate::files::router())
}

/// A built application: state plus router, ready to serve.
pub struct App {
    pub state: AppState,
    pub router: Router,
    pub openapi: utoipa::openapi::OpenApi,
}

impl App {
    /// Connect, migrate, check, and assemble.
    pub async fn build(config: AppConfig, clock: Clock) -> anyhow::Result<Self> {
        Self::build_with(config, clock, None).await
    }

    /// [`App::build`] with extra routes (the test suite mounts probes of the pipeline here).
    pub async fn build_with(
        config: AppConfig,
        clock: Clock,
        extra: Option<Router<AppState>>,
    ) -> anyhow::Result<Self> {
        let db = Db::connect(&config.core).await?;
        if config.core.migrate_on_start {
            db.migrate().await?;
        } else if let Err(reason) = db.readiness().await {
            anyhow::bail!("database schema is not current ({reason}); run `serein migrate` first");
        }
        crate::db::selfcheck::run(&db).await?;
        // Background jobs go through doors of their own; refuse to start a job whose door would
        // fail every run.
        if config.mail.worker || config.jobs.worker {
            db.check_worker_role().await?;
        }
        if config.platform.purge_worker {
            db.check_owner_door().await?;
        }
        if let Some(dir) = &config.tenants.dir {
            if dir.is_dir() {
                let specs = crate::tenants::file::load_dir(dir)?;
                let mut conn = db.admin_conn().await?;
                let report = crate::tenants::repo::apply(&mut conn, &specs).await?;
                tracing::info!(
                    dir = %dir.display(),
                    created = report.created.len(),
                    updated = report.updated.len(),
                    suspended = report.suspended.len(),
                    unchanged = report.unchanged.len(),
                    "tenant files applied"
                );
            } else {
                tracing::info!(dir = %dir.display(), "no tenants directory; skipping apply");
            }
        }
        Self::assemble(config, db, clock, extra).await
    }

    /// Assemble state and router on an already prepared database. `extra` routes (used by the
    /// test suite to exercise the pipeline) get the same layers as the product's routes.
    pub async fn assemble(
        config: AppConfig,
        db: Db,
        clock: Clock,
        extra: Option<Router<AppState>>,
    ) -> anyhow::Result<Self> {
        let (api, mut openapi) = api_routes().split_for_parts();
        crate::http::openapi::complete(&mut openapi);
        let rbac = Rbac::load(&openapi).await?;
        let tokens = TokenKeys::from_config(&config.tokens, &config.core.data_dir)?;
        let passwords =
            Passwords::new(config.auth.password_cost, config.auth.password_concurrency)?;
        let throttle = Throttle::new(&config.auth);
        let keyring = Keyring::connect(&config.crypto, clock.clone(), &db).await?;
        let mail = crate::mail::Mailer::from_config(&config.mail, &config.core.data_dir)?;
        let core = &config.core;
        let limits = Limits {
            in_flight: Arc::new(Semaphore::new(core.max_in_flight)),
            max_body_bytes: core.max_body_bytes,
            request_timeout: core.request_timeout,
            routes: Arc::from(vec![
                crate::members::import::route_limits(&config.import),
                crate::files::route_limits(&config.files),
            ]),
            imports: Arc::new(Semaphore::new(crate::members::import::concurrency(core))),
        };
        let realtime = crate::realtime::Hub::new(
            config.realtime.queue,
            config.realtime.max_connections,
            config.realtime.max_per_person,
            keyring.realtime_key(),
        );
        let files = crate::files::FileStore::open(&config.files.store)?;
        let state = AppState {
            realtime,
            files,
            tenants: TenantDirectory::new(db.clone(), clock.clone(), config.tenants.cache_ttl),
            config: Arc::new(config),
            db,
            clock,
            limits,
            metrics: crate::telemetry::prometheus(),
            rbac,
            tokens,
            passwords,
            throttle,
            keyring,
            mail,
        };
        // Every product route passes the authorization gate (routes the test suite adds through
        // `extra` are merged after it and are not product routes).
        // Inside the gate: an operation that takes no body refuses one.
        let mut router = api
            .route_layer(axum::middleware::from_fn_with_state(
                middleware::Bodiless::from_openapi(&openapi),
                middleware::refuse_unexpected_body,
            ))
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::auth::actor::authorize,
            ));
        if let Some(extra) = extra {
            router = router.merge(extra);
        }
        let hosts = TenantHosts {
            directory: state.tenants.clone(),
            base_domain: Arc::from(state.config.core.base_domain.as_str()),
        };
        let router = router
            .merge(SwaggerUi::new("/docs").url("/api/v1/openapi.json", openapi.clone()))
            .fallback(middleware::not_found)
            .method_not_allowed_fallback(middleware::method_not_allowed)
            .layer(CatchPanicLayer::custom(middleware::panic_response))
            .layer(DefaultBodyLimit::max(state.config.core.max_body_bytes))
            .layer(axum::middleware::from_fn_with_state(
                hosts,
                crate::tenants::resolve::resolve_tenant,
            ))
            // Before tenant resolution and every handler: no NUL or control character in the
            // path or query string reaches a look-up.
            .layer(axum::middleware::from_fn(
                middleware::refuse_control_characters,
            ))
            // Before tenant resolution: a flood is refused before it costs a database look-up.
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::auth::throttle::per_ip,
            ))
            .layer(axum::middleware::from_fn_with_state(
                state.limits.clone(),
                middleware::observe,
            ))
            // Outermost too: a panic in the middleware itself still gets a problem body.
            .layer(CatchPanicLayer::custom(middleware::panic_response))
            .with_state(state.clone());
        Ok(Self {
            state,
            router,
            openapi,
        })
    }

    /// Serve on `listener` (and `/metrics` on `METRICS_BIND`) until `shutdown` resolves; then
    /// close the pool.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let metrics = match self.state.config.core.metrics_bind {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|e| anyhow::anyhow!("METRICS_BIND: cannot listen on {addr}: {e}"))?,
            ),
            None => None,
        };
        self.run_with_metrics(listener, metrics, shutdown).await
    }

    /// [`App::run`] with the metrics listener bound by the caller (`None`: no metrics).
    pub async fn run_with_metrics(
        self,
        listener: TcpListener,
        metrics: Option<TcpListener>,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let config = self.state.config.clone();
        if let Some(why) = config.realtime.listener_refusal() {
            anyhow::bail!("{why}");
        }
        let cfg = &config.core;
        let opts = ServerOptions {
            header_read_timeout: cfg.header_read_timeout,
            // Sockets are connections too (they hold no request slot once upgraded).
            max_connections: cfg
                .max_in_flight
                .saturating_mul(4)
                .max(256)
                .saturating_add(config.realtime.max_connections),
            shutdown_grace: cfg.shutdown_grace,
        };
        let addr: Option<SocketAddr> = listener.local_addr().ok();
        tracing::info!(?addr, base_domain = %cfg.base_domain, "serving");
        // Background mail worker, stopped with the server.
        let (stop_mail, mail_stopped) = tokio::sync::watch::channel(false);
        let mail_worker = config.mail.worker.then(|| {
            tokio::spawn(crate::mail::MailWorker::from_state(&self.state).run(mail_stopped))
        });
        // Background job worker (reminders, notices), stopped with the server.
        let jobs_stop = stop_mail.subscribe();
        let job_worker = config
            .jobs
            .worker
            .then(|| tokio::spawn(crate::jobs::JobWorker::from_state(&self.state).run(jobs_stop)));
        // Background purge job (offboarding), stopped with the server.
        let purge_stop = stop_mail.subscribe();
        let purge_worker = config.platform.purge_worker.then(|| {
            tokio::spawn(crate::platform::purge::run_worker(
                self.state.db.clone(),
                self.state.keyring.clone(),
                self.state.clock.clone(),
                config.platform.purge_interval,
                purge_stop,
            ))
        });
        // `/metrics` on its own listener, stopped with the server.
        let metrics_server = metrics.map(|l| {
            tracing::info!(addr = ?l.local_addr().ok(), "serving /metrics");
            let mut stop = stop_mail.subscribe();
            let opts = ServerOptions {
                header_read_timeout: cfg.header_read_timeout,
                max_connections: 64,
                shutdown_grace: cfg.shutdown_grace,
            };
            tokio::spawn(server::serve(
                l,
                crate::health::metrics_router(self.state.db.clone(), self.state.metrics.clone()),
                opts,
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            ))
        });
        // The realtime listener (fan-out from other servers), stopped with the server.
        let listen_stop = stop_mail.subscribe();
        let listener_task = config.realtime.listener.then(|| {
            tokio::spawn(crate::realtime::listen(
                self.state.realtime.clone(),
                self.state.db.clone(),
                config.realtime.database_url.clone(),
                listen_stop,
            ))
        });
        let hub = self.state.realtime.clone();
        let shutdown = async move {
            shutdown.await;
            // Open sockets close (going away) so the graceful shutdown does not wait on them.
            hub.close_all();
            let _ = stop_mail.send(true);
        };
        server::serve(listener, self.router, opts, shutdown).await;
        if let Some(task) = listener_task {
            task.abort();
        }
        if let Some(mut worker) = mail_worker
            && tokio::time::timeout(cfg.shutdown_grace, &mut worker)
                .await
                .is_err()
        {
            // A message cut off mid-send keeps its lease and is retried after it expires.
            worker.abort();
            tracing::warn!("mail worker did not stop within the grace period; aborted");
        }
        if let Some(mut worker) = job_worker
            && tokio::time::timeout(cfg.shutdown_grace, &mut worker)
                .await
                .is_err()
        {
            // A job cut off mid-transaction rolls back whole and runs again.
            worker.abort();
            tracing::warn!("job worker did not stop within the grace period; aborted");
        }
        if let Some(mut worker) = purge_worker
            && tokio::time::timeout(cfg.shutdown_grace, &mut worker)
                .await
                .is_err()
        {
            // A purge cut off mid-transaction rolls back whole and is retried next run.
            worker.abort();
            tracing::warn!("purge worker did not stop within the grace period; aborted");
        }
        if let Some(mut m) = metrics_server
            && tokio::time::timeout(cfg.shutdown_grace, &mut m)
                .await
                .is_err()
        {
            m.abort();
        }
        // Requests still running after the grace period hold connections; do not wait for
        // them forever.
        if tokio::time::timeout(cfg.shutdown_grace, self.state.db.close())
            .await
            .is_err()
        {
            tracing::warn!("database pool did not close within the grace period");
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::AppConfig;

    fn load_with_file(toml: &str, env: &[(&str, &str)]) -> Result<AppConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serein.toml");
        std::fs::write(&path, toml).unwrap();
        let mut m: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        m.insert("SEREIN_CONFIG".into(), path.to_str().unwrap().to_owned());
        AppConfig::load(&m).map_err(|e| e.to_string())
    }

    #[test]
    fn one_loader_reads_every_section_from_one_file() {
        let c = load_with_file(
            "bind = \"127.0.0.1:9999\"\nlog = \"debug\"\ndb_max_connections = 7\n\
             create_database = false\ntenant_cache_ttl_ms = 0\ntenants_dir = \"\"\n\
             jwt_issuer = \"acme\"\naccess_token_ttl_secs = 60\nkey_cache_size = 3\n\
             mail_from = \"Ops <ops@example.com>\"\noffboarding_grace_days = 7\n\
             import_max_bytes = 4096\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.core.bind.port(), 9999);
        assert_eq!(c.core.log_filter, "debug");
        assert_eq!(c.core.db_max_connections, 7);
        assert!(!c.core.create_database);
        assert!(c.tenants.cache_ttl.is_zero());
        assert!(c.tenants.dir.is_none());
        assert_eq!(c.tokens.jwt_issuer, "acme");
        assert_eq!(c.auth.access_ttl.as_secs(), 60);
        assert_eq!(c.crypto.key_cache_capacity, 3);
        assert_eq!(c.mail.from.email.to_string(), "ops@example.com");
        assert_eq!(c.platform.offboarding_grace_days, 7);
        assert_eq!(c.import.max_bytes, 4096);
    }

    #[test]
    fn variables_win_over_the_file() {
        let c = load_with_file(
            "bind = \"127.0.0.1:9999\"\njwt_issuer = \"file\"\n",
            &[("BIND", "127.0.0.1:7777"), ("JWT_ISSUER", "env")],
        )
        .unwrap();
        assert_eq!(c.core.bind.port(), 7777);
        assert_eq!(c.tokens.jwt_issuer, "env");
    }

    #[test]
    fn an_unknown_or_bad_file_key_is_refused_by_name() {
        let e = load_with_file("bnid = \"127.0.0.1:9999\"\n", &[]).unwrap_err();
        assert!(e.contains("SEREIN_CONFIG") && e.contains("bnid"), "{e}");
        let e = load_with_file("db_max_connections = 0\n", &[]).unwrap_err();
        assert!(e.contains("DB_MAX_CONNECTIONS"), "{e}");
        let e = load_with_file("not toml at all [\n", &[]).unwrap_err();
        assert!(e.contains("SEREIN_CONFIG"), "{e}");
    }
}
