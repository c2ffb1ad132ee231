//! One WebSocket connection: its person, its rooms, its two queues.
//!
//! Invariants:
//! - Every read and write runs in the connection's person's own `TenantTx` (the session guard
//!   re-checked each time), through the same flows as the REST routes (`chat::service`): a
//!   room is joined only by one of the consultation's two participants, inside its window.
//! - Messages of a room reach the client once each, in sequence order: the connection keeps
//!   the last sequence number it sent per room and, on any signal, sends what follows it from
//!   the database. Joining registers first and reads the backlog second, so nothing committed
//!   in between is lost; a listener reconnect (`Signal::Resync`) re-reads every room.
//! - Outgoing events go through a bounded queue to a separate writer task: the connection never
//!   waits on a slow client; a full queue (or a full signal queue) closes it with 4008.
//! - The token is re-checked when it expires: without a fresh `auth` before then, the
//!   connection closes with 4001; a session ended meanwhile closes it with 4003 at the next
//!   database use. A peer silent for two ping intervals is closed with 4009.
//! - Never logged: bodies, tokens. Logs carry connection, person and room ids.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::calls::{self, SignalKind};
use super::hub::{CHANNEL, Registration, Signal};
use super::protocol::{ClientEvent, ServerEvent, clean_ref, close};
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::chat::model::SendRequest;
use crate::chat::service::{self, Room, Sent};
use crate::crypto::tokens::TokenType;
use crate::db::UserId;
use crate::error::AppError;

/// Outgoing frames waiting for the writer.
const OUT_QUEUE: usize = 64;
/// How long one frame may take to write before the client counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages read per round when catching up a room.
const CATCH_UP: i64 = 100;
/// How long a backlog waits for room in the outgoing queue before the client counts as slow
/// (shorter than [`WRITE_TIMEOUT`], so the writer is still there to send the Close).
const BACKLOG_WAIT: Duration = Duration::from_secs(5);
/// How long a closing connection waits for the client's Close.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Rooms one connection may join.
const MAX_ROOMS: usize = 32;
/// Typing events relayed per room, at most one per this.
const TYPING_EVERY: Duration = Duration::from_secs(2);
/// `auth.expiring` is sent this long before the token's expiry.
const EXPIRY_WARNING: time::Duration = time::Duration::seconds(60);

/// Why a connection ends.
struct Closing(u16, &'static str);

struct RoomState {
    room: Room,
    /// The last sequence number sent to the client.
    sent: i64,
    last_typing: Option<tokio::time::Instant>,
}

struct Conn {
    state: AppState,
    actor: Actor,
    expires_at: OffsetDateTime,
    warned: bool,
    reg: Registration,
    out: mpsc::Sender<WsMessage>,
    rooms: HashMap<Uuid, RoomState>,
    /// Client events per second (twice that in a burst).
    limiter: governor::DefaultDirectRateLimiter,
    /// When the session guard last ran for this socket.
    checked_at: tokio::time::Instant,
}

/// Serve one upgraded connection until it closes.
pub async fn run(
    state: AppState,
    actor: Actor,
    expires_at: OffsetDateTime,
    reg: Registration,
    socket: WebSocket,
) {
    let ping_every = state.config.realtime.ping_interval;
    let events_per_sec = state.config.realtime.events_per_sec;
    let (mut sink, mut stream) = socket.split();
    let (out, mut out_rx) = mpsc::channel::<WsMessage>(OUT_QUEUE);
    // The Close of a connection whose queue is full cannot wait behind it: it comes through
    // `urgent` and skips what is queued (a slow client gets it once it reads again).
    let (urgent, mut urgent_rx) = tokio::sync::oneshot::channel::<WsMessage>();
    let mut urgent = Some(urgent);
    let writer = tokio::spawn(async move {
        loop {
            let frame = tokio::select! {
                biased;
                close = &mut urgent_rx => match close {
                    Ok(close) => close,
                    Err(_) => match out_rx.recv().await {
                        Some(frame) => frame,
                        None => break,
                    },
                },
                frame = out_rx.recv() => match frame {
                    Some(frame) => frame,
                    None => match (&mut urgent_rx).await {
                        Ok(close) => close,
                        Err(_) => break,
                    },
                },
            };
            let closing = matches!(frame, WsMessage::Close(_));
            match tokio::time::timeout(WRITE_TIMEOUT, sink.send(frame)).await {
                Ok(Ok(())) if !closing => {}
                _ => break,
            }
        }
        let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
    });
    let mut closing_rx = state.realtime.closing();
    let overflow = reg.overflow.clone();
    let mut conn = Conn {
        state,
        actor,
        expires_at,
        warned: false,
        reg,
        out,
        rooms: HashMap::new(),
        limiter: governor::RateLimiter::direct(events_quota(events_per_sec)),
        checked_at: tokio::time::Instant::now(),
    };
    tracing::debug!(conn = conn.reg.id, user = %conn.actor.user, "socket open");
    let mut tick = tokio::time::interval(ping_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last_seen = tokio::time::Instant::now();
    let ready = ServerEvent::Ready {
        user_id: conn.actor.user,
        token_expires_at: conn.expires_at,
        ping_interval_secs: ping_every.as_secs().max(1),
    };
    let mut outcome = conn.emit(&ready);
    while outcome.is_ok() {
        outcome = tokio::select! {
            _ = closing_rx.changed() => Err(Closing(close::GOING_AWAY, "server shutting down")),
            () = overflow.notified() => Err(Closing(close::SLOW_CONSUMER, "slow consumer")),
            frame = stream.next() => {
                last_seen = tokio::time::Instant::now();
                match frame {
                    Some(Ok(WsMessage::Text(text))) => conn.on_text(text.as_str()).await,
                    Some(Ok(WsMessage::Binary(_))) => {
                        Err(Closing(close::UNSUPPORTED, "text frames only"))
                    }
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => Ok(()),
                    Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
                }
            }
            signal = conn.reg.signals.recv() => match signal {
                Some(s) => conn.on_signal(s).await,
                None => break,
            },
            _ = tick.tick() => {
                if last_seen.elapsed() > ping_every * 2 {
                    Err(Closing(close::DEAD_PEER, "no answer to pings"))
                } else {
                    conn.on_tick().await
                }
            }
        };
    }
    let rooms: Vec<Uuid> = conn.rooms.keys().copied().collect();
    for room in rooms {
        conn.announce(room, false, false).await;
    }
    if let Err(Closing(code, reason)) = outcome {
        tracing::debug!(
            conn = conn.reg.id,
            code,
            reason,
            "socket closed by the server"
        );
        let frame = WsMessage::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        if let Err(mpsc::error::TrySendError::Full(frame)) = conn.out.try_send(frame)
            && let Some(urgent) = urgent.take()
        {
            let _ = urgent.send(frame);
        }
    }
    drop(conn);
    // Nothing more is urgent: the writer ends once the queue is drained.
    drop(urgent);
    // The closing handshake (RFC 6455 §7.1.1): read until the client's Close (bounded), so
    // the close frame reaches it before the connection is dropped.
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(frame)) = stream.next().await {
            if matches!(frame, WsMessage::Close(_)) {
                break;
            }
        }
    })
    .await;
    let mut writer = writer;
    if tokio::time::timeout(WRITE_TIMEOUT, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

fn events_quota(per_sec: u32) -> governor::Quota {
    let rate = std::num::NonZeroU32::new(per_sec.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    let burst = std::num::NonZeroU32::new(per_sec.max(1).saturating_mul(2))
        .unwrap_or(std::num::NonZeroU32::MIN);
    governor::Quota::per_second(rate).allow_burst(burst)
}

fn problem_event(e: &AppError, reference: Option<String>) -> ServerEvent {
    if e.status().is_server_error() {
        tracing::warn!(error = %e, "socket event failed");
    }
    let p = e.problem();
    let detail = p
        .errors
        .first()
        .map(|f| format!("{}: {}", f.field, f.reason))
        .or(p.detail)
        .unwrap_or_default();
    ServerEvent::Error {
        code: e.code(),
        detail,
        reference,
    }
}

impl Conn {
    /// Queue one event for the writer; a full queue is a slow consumer.
    /// Queue one event, waiting (at most [`BACKLOG_WAIT`]) for room; false when the client
    /// stayed slow.
    async fn emit_waiting(&self, event: &ServerEvent) -> bool {
        let Ok(text) = serde_json::to_string(event) else {
            return false;
        };
        matches!(
            tokio::time::timeout(BACKLOG_WAIT, self.out.send(WsMessage::Text(text.into()))).await,
            Ok(Ok(()))
        )
    }

    fn emit(&self, event: &ServerEvent) -> Result<(), Closing> {
        let text = serde_json::to_string(event)
            .map_err(|_| Closing(close::UNSUPPORTED, "unencodable event"))?;
        self.out
            .try_send(WsMessage::Text(text.into()))
            .map_err(|_| Closing(close::SLOW_CONSUMER, "slow consumer"))
    }

    /// A database failure of this connection's person: an ended session closes it; anything
    /// else is reported as an event.
    fn failed(&self, e: AppError, reference: Option<String>) -> Result<(), Closing> {
        if matches!(e, AppError::Unauthorized(_) | AppError::Forbidden { .. }) {
            return Err(Closing(close::SESSION_ENDED, "session ended"));
        }
        self.emit(&problem_event(&e, reference))
    }

    async fn on_tick(&mut self) -> Result<(), Closing> {
        let now = self.state.clock.now();
        if now >= self.expires_at {
            return Err(Closing(close::TOKEN_EXPIRED, "token expired"));
        }
        // The session guard, now and then, even on a socket that only listens: an ended session
        // or a disabled member stops receiving typing, presence and read marks too.
        if self.checked_at.elapsed() >= self.state.config.realtime.session_check {
            self.checked_at = tokio::time::Instant::now();
            let checked = match self.actor.begin(&self.state).await {
                Ok(tx) => tx.commit().await,
                Err(e) => Err(e),
            };
            if let Err(e) = checked {
                return match e {
                    AppError::Unauthorized(_) | AppError::Forbidden { .. } => {
                        Err(Closing(close::SESSION_ENDED, "session ended"))
                    }
                    // The database is unavailable: the next check decides.
                    _ => Ok(()),
                };
            }
        }
        if !self.warned && now + EXPIRY_WARNING >= self.expires_at {
            self.warned = true;
            self.emit(&ServerEvent::AuthExpiring {
                token_expires_at: self.expires_at,
            })?;
        }
        self.out
            .try_send(WsMessage::Ping(axum::body::Bytes::from_static(b"serein")))
            .map_err(|_| Closing(close::SLOW_CONSUMER, "slow consumer"))
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Closing> {
        if self.state.clock.now() >= self.expires_at {
            return Err(Closing(close::TOKEN_EXPIRED, "token expired"));
        }
        if self.limiter.check().is_err() {
            return self.emit(&ServerEvent::Error {
                code: "rate_limited",
                detail: "Too many events; slow down.".into(),
                reference: None,
            });
        }
        let event: ClientEvent = match serde_json::from_str(text) {
            Ok(e) => e,
            Err(e) => {
                return self.emit(&ServerEvent::Error {
                    code: "invalid_event",
                    detail: format!("not an event of this protocol: {e}"),
                    reference: None,
                });
            }
        };
        let reference = clean_ref(event.reference());
        match event {
            ClientEvent::Ping { .. } => self.emit(&ServerEvent::Pong { reference }),
            ClientEvent::Auth { token, .. } => self.reauth(&token, reference).await,
            ClientEvent::Subscribe {
                consultation_id,
                after_seq,
                ..
            } => self.subscribe(consultation_id, after_seq, reference).await,
            ClientEvent::Unsubscribe {
                consultation_id, ..
            } => {
                if self.rooms.remove(&consultation_id).is_some() {
                    self.state.realtime.leave(self.reg.id, consultation_id);
                    self.announce(consultation_id, false, false).await;
                }
                self.emit(&ServerEvent::Unsubscribed {
                    consultation_id,
                    reference,
                })
            }
            ClientEvent::ChatSend {
                consultation_id,
                body,
                client_ref,
                ..
            } => {
                let parsed = SendRequest {
                    body,
                    client_ref,
                    attachment_id: None,
                }
                .parse();
                let sent = match parsed {
                    Ok(new) => service::send(&self.state, &self.actor, consultation_id, new).await,
                    Err(e) => Err(e),
                };
                match sent {
                    Ok(s) => {
                        let (m, replayed) = match s {
                            Sent::New(m) => (m, false),
                            Sent::Replayed(m) => (m, true),
                        };
                        self.emit(&ServerEvent::ChatSent {
                            consultation_id,
                            id: m.id,
                            seq: m.seq,
                            client_ref: m.client_ref,
                            replayed,
                            reference,
                        })
                    }
                    Err(e) => self.failed(e, reference),
                }
            }
            ClientEvent::ChatTyping {
                consultation_id, ..
            } => {
                let Some(room) = self.rooms.get_mut(&consultation_id) else {
                    return self.emit(&not_subscribed(reference));
                };
                if room.last_typing.is_some_and(|t| t.elapsed() < TYPING_EVERY) {
                    return Ok(());
                }
                room.last_typing = Some(tokio::time::Instant::now());
                let payload = self.state.realtime.sign(
                    "typing",
                    self.actor.tenant,
                    consultation_id,
                    self.actor.user,
                    None,
                    None,
                );
                match self.publish(&payload).await {
                    Ok(()) => Ok(()),
                    Err(e) => self.failed(e, reference),
                }
            }
            ClientEvent::CallOffer {
                consultation_id,
                sdp,
                ..
            } => {
                self.signal(
                    consultation_id,
                    SignalKind::Offer,
                    Some(sdp),
                    None,
                    reference,
                )
                .await
            }
            ClientEvent::CallAnswer {
                consultation_id,
                sdp,
                ..
            } => {
                self.signal(
                    consultation_id,
                    SignalKind::Answer,
                    Some(sdp),
                    None,
                    reference,
                )
                .await
            }
            ClientEvent::CallIce {
                consultation_id,
                candidate,
                ..
            } => {
                self.signal(
                    consultation_id,
                    SignalKind::Ice,
                    None,
                    Some(candidate),
                    reference,
                )
                .await
            }
            ClientEvent::CallHangup {
                consultation_id, ..
            } => {
                self.signal(consultation_id, SignalKind::Hangup, None, None, reference)
                    .await
            }
            ClientEvent::ChatRead {
                consultation_id,
                seq,
                ..
            } => match service::mark_read(&self.state, &self.actor, consultation_id, seq).await {
                // The definer's notification tells the room (this connection included).
                Ok(_) => Ok(()),
                Err(e) => self.failed(e, reference),
            },
        }
    }

    async fn reauth(&mut self, token: &str, reference: Option<String>) -> Result<(), Closing> {
        let now = self.state.clock.now();
        let claims = self
            .state
            .tokens
            .verify(
                token,
                &self.actor.host,
                self.actor.tenant,
                TokenType::Access,
                now,
            )
            .ok()
            .filter(|c| c.sub == self.actor.user && c.sid.is_some());
        let Some(claims) = claims else {
            return Err(Closing(close::TOKEN_EXPIRED, "token refused"));
        };
        let mut actor = self.actor.clone();
        actor.roles = claims.roles;
        if let Some(sid) = claims.sid {
            actor.session = sid;
        }
        // The session guard, now, for the new token's session.
        let checked = match actor.begin(&self.state).await {
            Ok(tx) => tx.commit().await,
            Err(e) => Err(e),
        };
        if checked.is_err() {
            return Err(Closing(close::SESSION_ENDED, "session ended"));
        }
        self.actor = actor;
        self.expires_at = OffsetDateTime::from_unix_timestamp(claims.exp).unwrap_or(now);
        self.warned = false;
        self.emit(&ServerEvent::AuthOk {
            token_expires_at: self.expires_at,
            reference,
        })
    }

    async fn subscribe(
        &mut self,
        consultation: Uuid,
        after: Option<i64>,
        reference: Option<String>,
    ) -> Result<(), Closing> {
        if !self.rooms.contains_key(&consultation) && self.rooms.len() >= MAX_ROOMS {
            return self.emit(&ServerEvent::Error {
                code: "too_many_rooms",
                detail: format!("A connection joins at most {MAX_ROOMS} rooms."),
                reference,
            });
        }
        let now = self.state.clock.now();
        let room = async {
            let mut tx = self.actor.begin(&self.state).await?;
            let room = service::open_room(&mut tx, consultation, now).await?;
            tx.commit().await?;
            Ok::<Room, AppError>(room)
        }
        .await;
        let room = match room {
            Ok(r) => r,
            Err(e) => return self.failed(e, reference),
        };
        // Register first, read second: nothing committed in between is missed.
        self.state.realtime.join(self.reg.id, consultation);
        let sent = after.unwrap_or(0).max(0);
        let existing = self.rooms.insert(
            consultation,
            RoomState {
                room,
                sent,
                last_typing: None,
            },
        );
        let reads = match self.catch_up(consultation).await {
            Ok(reads) => reads,
            Err(e) => return self.failed(e, reference),
        };
        let last_seq = self.rooms.get(&consultation).map_or(sent, |r| r.sent);
        self.emit(&ServerEvent::Subscribed {
            consultation_id: consultation,
            last_seq,
            reads,
            reference,
        })?;
        if existing.is_none() {
            self.announce(consultation, true, true).await;
        }
        Ok(())
    }

    /// Send the room's messages after the last one sent; the read marks as a by-product.
    async fn catch_up(
        &mut self,
        consultation: Uuid,
    ) -> Result<Vec<crate::chat::model::ReadMark>, AppError> {
        let Some(state) = self.rooms.get(&consultation) else {
            return Ok(Vec::new());
        };
        let room = state.room.clone();
        let mut sent = state.sent;
        let mut tx = self.actor.begin(&self.state).await?;
        loop {
            let batch = service::after(
                &self.state,
                &mut tx,
                self.actor.tenant,
                &room,
                (sent, CATCH_UP),
                self.actor.user,
            )
            .await?;
            let full = i64::try_from(batch.len()).unwrap_or(0) >= CATCH_UP;
            for m in batch {
                sent = m.seq;
                // A backlog waits for room in the queue (bounded): only a client that reads
                // nothing for BACKLOG_WAIT counts as slow.
                if !self
                    .emit_waiting(&ServerEvent::ChatMessage { message: m })
                    .await
                {
                    return Err(AppError::Unavailable {
                        code: "slow_consumer",
                        retry_after_secs: 0,
                    });
                }
            }
            if !full {
                break;
            }
        }
        let reads = service::reads(&mut tx, consultation).await?;
        tx.commit().await?;
        if let Some(state) = self.rooms.get_mut(&consultation) {
            state.sent = sent;
        }
        Ok(reads)
    }

    async fn on_signal(&mut self, signal: Signal) -> Result<(), Closing> {
        match signal {
            Signal::Message { consultation, seq } => {
                let behind = self.rooms.get(&consultation).is_some_and(|r| r.sent < seq);
                if behind && let Err(e) = self.catch_up(consultation).await {
                    return self.caught_up_failed(e);
                }
                Ok(())
            }
            Signal::Resync => {
                let rooms: Vec<Uuid> = self.rooms.keys().copied().collect();
                for c in rooms {
                    if let Err(e) = self.catch_up(c).await {
                        return self.caught_up_failed(e);
                    }
                }
                Ok(())
            }
            Signal::Read {
                consultation, user, ..
            } => {
                if !self.is_participant(consultation, user) {
                    return Ok(());
                }
                // The mark as stored, read under this person's policies (the payload's number
                // is never believed).
                let marks = async {
                    let mut tx = self.actor.begin(&self.state).await?;
                    let marks = service::reads(&mut tx, consultation).await?;
                    tx.commit().await?;
                    Ok::<_, AppError>(marks)
                }
                .await;
                match marks {
                    Ok(marks) => match marks.into_iter().find(|m| m.user_id == user) {
                        Some(m) => self.emit(&ServerEvent::ChatRead {
                            consultation_id: consultation,
                            user_id: user,
                            seq: m.last_read_seq,
                        }),
                        None => Ok(()),
                    },
                    Err(e) => self.failed(e, None),
                }
            }
            Signal::Typing { consultation, user } => {
                if user == self.actor.user || !self.is_participant(consultation, user) {
                    return Ok(());
                }
                self.emit(&ServerEvent::ChatTyping {
                    consultation_id: consultation,
                    user_id: user,
                })
            }
            Signal::Presence {
                consultation,
                user,
                online,
                hello,
            } => {
                if user == self.actor.user || !self.is_participant(consultation, user) {
                    return Ok(());
                }
                self.emit(&ServerEvent::Presence {
                    consultation_id: consultation,
                    user_id: user,
                    online,
                })?;
                if hello {
                    // The newcomer learns that this side is here too.
                    self.announce(consultation, true, false).await;
                }
                Ok(())
            }
            Signal::Call { id } => match calls::receive(&self.state, &self.actor, id).await {
                Ok(Some(r)) => {
                    let body = r.body.unwrap_or(serde_json::Value::Null);
                    let field = |name: &str| body.get(name).cloned().unwrap_or_default();
                    let c = r.consultation;
                    self.emit(&match r.kind {
                        SignalKind::Offer => ServerEvent::CallOffer {
                            consultation_id: c,
                            from: r.from,
                            sdp: field("sdp"),
                        },
                        SignalKind::Answer => ServerEvent::CallAnswer {
                            consultation_id: c,
                            from: r.from,
                            sdp: field("sdp"),
                        },
                        SignalKind::Ice => ServerEvent::CallIce {
                            consultation_id: c,
                            from: r.from,
                            candidate: field("candidate"),
                        },
                        SignalKind::Hangup => ServerEvent::CallHangup {
                            consultation_id: c,
                            from: r.from,
                        },
                    })
                }
                Ok(None) => Ok(()),
                Err(e) => self.failed(e, None),
            },
            Signal::Notification { id } => {
                let found = async {
                    let mut tx = self.actor.begin(&self.state).await?;
                    let n = crate::notifications::one(&mut tx, self.actor.user, id).await?;
                    tx.commit().await?;
                    Ok::<_, AppError>(n)
                }
                .await;
                match found {
                    Ok(Some(notification)) => {
                        self.emit(&ServerEvent::Notification { notification })
                    }
                    Ok(None) => Ok(()),
                    Err(e) => self.failed(e, None),
                }
            }
        }
    }

    async fn signal(
        &self,
        consultation: Uuid,
        kind: SignalKind,
        sdp: Option<String>,
        candidate: Option<serde_json::Value>,
        reference: Option<String>,
    ) -> Result<(), Closing> {
        let sent = match calls::payload(kind, sdp, candidate) {
            Ok(body) => calls::send(&self.state, &self.actor, consultation, kind, body).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(()) => self.emit(&ServerEvent::CallSent {
                consultation_id: consultation,
                kind: kind.as_str(),
                reference,
            }),
            Err(e) => self.failed(e, reference),
        }
    }

    fn caught_up_failed(&self, e: AppError) -> Result<(), Closing> {
        match e {
            AppError::Unavailable {
                code: "slow_consumer",
                ..
            } => Err(Closing(close::SLOW_CONSUMER, "slow consumer")),
            e => self.failed(e, None),
        }
    }

    /// The other participant of a joined room is `user` (the only one whose typing, presence
    /// and read marks this connection relays).
    fn is_participant(&self, consultation: Uuid, user: UserId) -> bool {
        self.rooms
            .get(&consultation)
            .is_some_and(|r| user == r.room.employee || user == r.room.practitioner)
    }

    /// Tell the room this person joined or left (best effort: a connection closing because its
    /// session ended announces nothing).
    async fn announce(&self, consultation: Uuid, online: bool, hello: bool) {
        let payload = self.state.realtime.sign(
            "presence",
            self.actor.tenant,
            consultation,
            self.actor.user,
            Some(online),
            Some(hello),
        );
        if let Err(e) = self.publish(&payload).await {
            tracing::debug!(conn = self.reg.id, error = %e, "presence not announced");
        }
    }

    /// `pg_notify` in this person's own transaction (ids only; delivered at commit).
    async fn publish(&self, payload: &str) -> Result<(), AppError> {
        let mut tx = self.actor.begin(&self.state).await?;
        sqlx::query!("SELECT pg_notify($1, $2)", CHANNEL, payload)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn not_subscribed(reference: Option<String>) -> ServerEvent {
    ServerEvent::Error {
        code: "not_subscribed",
        detail: "Subscribe to the consultation's room first.".into(),
        reference,
    }
}
