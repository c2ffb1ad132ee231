//! The realtime gateway (issue 12, items 4–5): `GET /api/v1/ws`, one WebSocket per client,
//! carrying chat, typing, read marks, presence and notifications; fan-out across server
//! instances through PostgreSQL `LISTEN/NOTIFY`.
//!
//! - Authentication: the access token travels as the subprotocol `bearer.<token>` (with
//!   `serein.v1`, which the server selects: the token is never echoed), never in the URL (URLs
//!   reach logs). The gate checks it like a bearer header; the handler runs the session guard
//!   before upgrading (401/403 before any socket exists).
//! - Events and close codes: [`protocol`]. A connection: [`connection`]. Routing: [`hub`].
//! - Fan-out: every write that others must see (`app_private.message_send`,
//!   `message_read_mark`, the notifications trigger, typing and presence) issues
//!   `pg_notify('serein_realtime', …)` with ids only; each server keeps one `LISTEN`
//!   connection ([`listen`]) and hands the ids to its connections, which re-read under their own
//!   person's policies. A lost listener is re-established with back-off, then every connection
//!   re-reads its rooms after its cursor (nothing lost, nothing twice).
//! - Limits (`REALTIME_*`): connections per server, queue sizes, ping interval.
//!
//! Invariants: nothing here reads or writes a table directly: rooms, messages and
//! notifications are reached through the same flows and policies as the REST routes.

pub mod calls;
pub mod connection;
pub mod hub;
pub mod protocol;

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use tokio::sync::watch;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use self::hub::Hub;
use crate::app::AppState;
use crate::auth::actor::{Actor, ws_bearer};
use crate::config::{ConfigError, Settings};
use crate::crypto::tokens::TokenType;
use crate::db::Db;
use crate::error::{AppError, AppResult};

/// The subprotocol the server speaks (and selects).
pub const SUBPROTOCOL: &str = "serein.v1";
/// Largest client frame.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// The read chunk of a socket (a larger frame, up to [`MAX_FRAME_BYTES`], is read in several).
pub const READ_BUFFER_BYTES: usize = 4 * 1024;

/// `REALTIME_*` settings.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// `REALTIME_MAX_CONNECTIONS` (default 20000): sockets per server; more are 503.
    pub max_connections: usize,
    /// `REALTIME_QUEUE` (default 256): signals waiting per connection before it counts as slow.
    pub queue: usize,
    /// `REALTIME_PING_SECS` (default 20): pings; a peer silent for two intervals is dropped.
    pub ping_interval: Duration,
    /// `REALTIME_LISTENER` (default true): listen for other servers' events.
    pub listener: bool,
    /// ICE servers handed to call participants ([`calls`]).
    pub ice: calls::IceConfig,
    /// `REALTIME_MAX_PER_PERSON` (default 10): sockets one person holds on one server.
    pub max_per_person: usize,
    /// `REALTIME_EVENTS_PER_SEC` (default 20, bursts of twice that): client events per socket.
    pub events_per_sec: u32,
    /// `REALTIME_SESSION_CHECK_SECS` (default 60): how often an idle socket re-runs the session
    /// guard (an ended session or disabled member is closed with 4003 by then at the latest).
    pub session_check: Duration,
    /// `REALTIME_DATABASE_URL`: the `LISTEN` connection's own URL, DIRECT to the primary.
    /// `LISTEN` does not work through a transaction-mode pooler (PgBouncer), which is what
    /// `DATABASE_URL` points at in the Helm deployment; unset, `DATABASE_URL` is used (fine for
    /// a direct connection). Required when `SEREIN_REQUIRE_SECRETS=true` and the listener runs.
    pub database_url: Option<secrecy::SecretString>,
    /// `SEREIN_REQUIRE_SECRETS`: `serve` refuses to start a listener without
    /// `REALTIME_DATABASE_URL` (other commands do not listen).
    pub require_direct_url: bool,
}

impl RealtimeConfig {
    /// Why `serve` must not start its listener as configured, if it must not.
    pub fn listener_refusal(&self) -> Option<&'static str> {
        (self.listener && self.database_url.is_none() && self.require_direct_url).then_some(
            "REALTIME_DATABASE_URL is required when SEREIN_REQUIRE_SECRETS=true: the LISTEN \
             connection must reach PostgreSQL directly (LISTEN does not work through a \
             transaction pooler such as PgBouncer)",
        )
    }
}

impl RealtimeConfig {
    pub fn load(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let listener = s.flag("REALTIME_LISTENER", true)?;
        let database_url = s.secret("REALTIME_DATABASE_URL");
        let require_direct_url = s.flag("SEREIN_REQUIRE_SECRETS", false)?;
        Ok(Self {
            max_connections: s.size("REALTIME_MAX_CONNECTIONS", 20_000, 1, 1_000_000)?,
            queue: s.size("REALTIME_QUEUE", 256, 2, 65_536)?,
            ping_interval: Duration::from_secs(s.int("REALTIME_PING_SECS", 20, 1, 3_600)?),
            listener,
            ice: calls::IceConfig::load(s)?,
            max_per_person: s.size("REALTIME_MAX_PER_PERSON", 10, 1, 1_000)?,
            events_per_sec: u32::try_from(s.int("REALTIME_EVENTS_PER_SEC", 20, 1, 10_000)?)
                .unwrap_or(20),
            session_check: Duration::from_secs(s.int(
                "REALTIME_SESSION_CHECK_SECS",
                60,
                1,
                3_600,
            )?),
            database_url,
            require_direct_url,
        })
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(socket))
        .routes(routes!(calls::ice_servers))
}

/// Open the realtime socket. Send `Sec-WebSocket-Protocol: serein.v1, bearer.<access token>`;
/// the server answers with `serein.v1`. Events: see the README ("Realtime").
#[utoipa::path(get, path = "/api/v1/ws", tag = "chat",
    extensions(("x-authz" = json!({"resource": "realtime", "action": "connect"}))),
    security(("bearer" = [])),
    responses(
        (status = 101, description = "Switching protocols: the socket is open"),
        (status = 400, description = "websocket_required: not a WebSocket upgrade, or without the serein.v1 subprotocol"),
        (status = 401, description = "No valid access token (as `bearer.<token>` subprotocol or Authorization header)"),
        (status = 503, description = "realtime_full: this server holds its maximum of sockets"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn socket(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> AppResult<Response> {
    actor.require_company()?;
    let offered = headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    let Some(upgrade) = upgrade.ok().filter(|_| offered) else {
        return Err(AppError::bad_request(
            "websocket_required",
            "Open a WebSocket with the subprotocols `serein.v1` and `bearer.<access token>`.",
        ));
    };
    // The token's expiry (the gate verified it already; this reads its claims).
    let token = crate::auth::actor::bearer(&headers)
        .or_else(|| ws_bearer(&headers))
        .ok_or(AppError::Unauthorized("unauthorized"))?;
    let claims = state
        .tokens
        .verify(
            token,
            &actor.host,
            actor.tenant,
            TokenType::Access,
            state.clock.now(),
        )
        .map_err(|_| AppError::Unauthorized("unauthorized"))?;
    let expires_at = OffsetDateTime::from_unix_timestamp(claims.exp)
        .map_err(|_| AppError::Unauthorized("unauthorized"))?;
    // The session guard, before any socket exists.
    let tx = actor.begin(&state).await?;
    tx.commit().await?;
    let reg = match state.realtime.register(actor.tenant, actor.user) {
        Ok(reg) => reg,
        Err(hub::Full::Server) => {
            return Err(AppError::Unavailable {
                code: "realtime_full",
                retry_after_secs: 5,
            });
        }
        Err(hub::Full::Person) => {
            return Err(AppError::TooManyRequests {
                code: "too_many_sockets",
                retry_after_secs: 5,
            });
        }
    };
    Ok(upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        // tungstenite's default 128 KiB read buffer stays allocated per socket (bench: about
        // 126 of the 143 KiB each idle socket held); client frames are small.
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| connection::run(state, actor, expires_at, reg, socket))
        .into_response())
}

/// Keep this server's `LISTEN` connection, re-establishing it with back-off (1 s doubling to
/// 30 s) when it drops, and telling every connection to re-read its rooms once it listens
/// again. Stops when `stop` turns true.
pub async fn listen(
    hub: Hub,
    db: Db,
    url: Option<secrecy::SecretString>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    let mut first = true;
    loop {
        if *stop.borrow() {
            return;
        }
        let listener = async {
            let mut l = db.listener(url.as_ref()).await?;
            l.listen(hub::CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        }
        .await;
        match listener {
            Ok(mut l) => {
                backoff = Duration::from_secs(1);
                if !first {
                    tracing::info!(
                        "realtime listener re-established; connections re-read their rooms"
                    );
                    hub.resync_all();
                }
                first = false;
                loop {
                    tokio::select! {
                        _ = stop.changed() => return,
                        n = l.try_recv() => match n {
                            Ok(Some(n)) => hub.dispatch(n.payload()),
                            Ok(None) => {
                                tracing::warn!("realtime listener lost its connection");
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "realtime listener failed");
                                break;
                            }
                        }
                    }
                }
                metrics::counter!("serein_realtime_listener_reconnects_total").increment(1);
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_secs = backoff.as_secs(), "realtime listener cannot connect");
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
