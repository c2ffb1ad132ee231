//! Application assembly: shared state, the router with its layers, and start-up.
//!
//! Start-up order (each step refuses to continue on failure): connect (creating the database
//! if configured) → migrate (or, with `SEREIN_MIGRATE_ON_START=false`, verify) → self-check (RLS would hold) → apply `tenants/` if configured →
//! bind → serve (with the mail worker beside it unless `MAIL_WORKER=false`, and the offboarding
//! purge job unless `PURGE_WORKER=false`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::throttle::Throttle;
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::keyring::Keyring;
use crate::crypto::passwords::Passwords;
use crate::crypto::tokens::TokenKeys;
use crate::db::Db;
use crate::http::middleware::{self, Limits};
use crate::http::server::{self, ServerOptions};
use crate::rbac::Rbac;
use crate::tenants::resolve::TenantDirectory;

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
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
}

/// The OpenAPI document's frame; paths are added by each feature's router.
#[derive(OpenApi)]
#[openapi(
    modifiers(&BearerAuth),
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
        (name = "platform", description = "Platform admins (platform host): tenants, practitioner assignment"),
        (name = "members", description = "Company settings, members, HR counts, invitations, CSV import"),
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
        .merge(crate::platform::router())
        .merge(crate::members::router())
}

/// A built application: state plus router, ready to serve.
pub struct App {
    pub state: AppState,
    pub router: Router,
    pub openapi: utoipa::openapi::OpenApi,
}

impl App {
    /// Connect, migrate, check, and assemble.
    pub async fn build(config: Config, clock: Clock) -> anyhow::Result<Self> {
        Self::build_with(config, clock, None).await
    }

    /// [`App::build`] with extra routes (the test suite mounts probes of the pipeline here).
    pub async fn build_with(
        config: Config,
        clock: Clock,
        extra: Option<Router<AppState>>,
    ) -> anyhow::Result<Self> {
        let db = Db::connect(&config).await?;
        if config.migrate_on_start {
            db.migrate().await?;
        } else if let Err(reason) = db.readiness().await {
            anyhow::bail!("database schema is not current ({reason}); run `serein migrate` first");
        }
        crate::db::selfcheck::run(&db).await?;
        // Background jobs go through doors of their own; refuse to start a job whose door would
        // fail every run.
        if config.mail.worker {
            db.check_worker_role().await?;
        }
        if config.platform.purge_worker {
            db.check_owner_door().await?;
        }
        if let Some(dir) = &config.tenants_dir {
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
        config: Config,
        db: Db,
        clock: Clock,
        extra: Option<Router<AppState>>,
    ) -> anyhow::Result<Self> {
        let (api, mut openapi) = api_routes().split_for_parts();
        crate::http::openapi::complete(&mut openapi);
        let rbac = Rbac::load(&openapi).await?;
        let tokens = TokenKeys::from_config(&config.auth, &config.data_dir)?;
        let passwords =
            Passwords::new(config.auth.password_cost, config.auth.password_concurrency)?;
        let throttle = Throttle::new(&config.auth);
        let keyring = Keyring::from_config_with_clock(&config, clock.clone())?;
        let mail = crate::mail::Mailer::from_config(&config.mail, &config.data_dir)?;
        let limits = Limits {
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
            routes: Arc::from(vec![crate::members::import::route_limits(&config)]),
            imports: Arc::new(Semaphore::new(crate::members::import::concurrency(&config))),
        };
        let state = AppState {
            tenants: TenantDirectory::new(db.clone(), clock.clone(), config.tenant_cache_ttl),
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
        let router = router
            .merge(SwaggerUi::new("/docs").url("/api/v1/openapi.json", openapi.clone()))
            .fallback(middleware::not_found)
            .method_not_allowed_fallback(middleware::method_not_allowed)
            .layer(CatchPanicLayer::custom(middleware::panic_response))
            .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
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
                state.clone(),
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
        let metrics = match self.state.config.metrics_bind {
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
        let cfg = self.state.config.clone();
        let opts = ServerOptions {
            header_read_timeout: cfg.header_read_timeout,
            max_connections: cfg.max_in_flight.saturating_mul(4).max(256),
            shutdown_grace: cfg.shutdown_grace,
        };
        let addr: Option<SocketAddr> = listener.local_addr().ok();
        tracing::info!(?addr, base_domain = %cfg.base_domain, "serving");
        // Background mail worker, stopped with the server.
        let (stop_mail, mail_stopped) = tokio::sync::watch::channel(false);
        let mail_worker = cfg.mail.worker.then(|| {
            tokio::spawn(crate::mail::MailWorker::from_state(&self.state).run(mail_stopped))
        });
        // Background purge job (offboarding), stopped with the server.
        let purge_stop = stop_mail.subscribe();
        let purge_worker = cfg.platform.purge_worker.then(|| {
            tokio::spawn(crate::platform::purge::run_worker(
                self.state.db.clone(),
                self.state.keyring.clone(),
                self.state.clock.clone(),
                cfg.platform.purge_interval,
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
                crate::health::metrics_router(self.state.clone()),
                opts,
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            ))
        });
        let shutdown = async move {
            shutdown.await;
            let _ = stop_mail.send(true);
        };
        server::serve(listener, self.router, opts, shutdown).await;
        if let Some(mut worker) = mail_worker
            && tokio::time::timeout(cfg.shutdown_grace, &mut worker)
                .await
                .is_err()
        {
            // A message cut off mid-send keeps its lease and is retried after it expires.
            worker.abort();
            tracing::warn!("mail worker did not stop within the grace period; aborted");
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
