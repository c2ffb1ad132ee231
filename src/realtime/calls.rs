//! Audio/video calls between a consultation's two participants: ICE servers (with TURN REST
//! credentials) and the signaling relayed over the socket (`call.offer`, `call.answer`,
//! `call.ice`, `call.hangup`).
//!
//! Invariants:
//! - Only the consultation's employee and practitioner, only while its call is open (a video or
//!   audio consultation, confirmed or started, from 10 minutes before its start to 15 after its
//!   end: `consultations::video::call_open`, checked here on the injected clock and again by
//!   `app_private.call_signal_send` on the database's).
//! - A signal goes to the other participant only: the definer takes the recipient from the
//!   consultation. It crosses servers as ids (`pg_notify`), and the recipient's server re-reads
//!   it under the recipient's policies. SDP and candidates carry network addresses: they are
//!   sealed at rest (employee's subject key, AAD `v1|tenant|call_signals|payload|{id}`) and
//!   deleted within the hour.
//! - TURN credentials follow the TURN REST convention coturn's `use-auth-secret` expects:
//!   username `{expiry unix time}:{person id}`, credential base64(HMAC-SHA1(secret, username)),
//!   valid `REALTIME_TURN_TTL_SECS`. The shared secret never leaves the server.
//! - Never logged: SDP, candidates, credentials.

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::config::{ConfigError, Settings};
use crate::consultations::video::call_open;
use crate::crypto::keyring::{Aad, CryptoError, KeyScope};
use crate::db::UserId;
use crate::error::{AppError, AppResult};
use crate::http::extract::AppPath;

/// Largest SDP accepted, in bytes.
pub const MAX_SDP_BYTES: usize = 16 * 1024;
/// Largest ICE candidate object accepted (serialised), in bytes.
pub const MAX_CANDIDATE_BYTES: usize = 2 * 1024;

/// `REALTIME_STUN_URLS`, `REALTIME_TURN_URLS`, `REALTIME_TURN_SECRET`, `REALTIME_TURN_TTL_SECS`.
#[derive(Clone)]
pub struct IceConfig {
    pub stun_urls: Vec<String>,
    pub turn_urls: Vec<String>,
    pub turn_secret: Option<SecretString>,
    pub turn_ttl: time::Duration,
}

impl std::fmt::Debug for IceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceConfig")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .field(
                "turn_secret",
                &self.turn_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("turn_ttl", &self.turn_ttl)
            .finish()
    }
}

fn urls(raw: &str, schemes: &[&str]) -> Result<Vec<String>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            let ok = schemes.iter().any(|s| {
                u.strip_prefix(s)
                    .is_some_and(|rest| rest.starts_with(':') && rest.len() > 1)
            }) && u.len() <= 255
                && !u.chars().any(char::is_whitespace);
            if ok {
                Ok(u.to_owned())
            } else {
                Err(format!("{u:?} is not a {} URL", schemes.join("/")))
            }
        })
        .collect()
}

impl IceConfig {
    pub fn load(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let stun_urls = s
            .opt("REALTIME_STUN_URLS", |v| urls(v, &["stun", "stuns"]))?
            .unwrap_or_default();
        let turn_urls = s
            .opt("REALTIME_TURN_URLS", |v| urls(v, &["turn", "turns"]))?
            .unwrap_or_default();
        let turn_secret = s.secret("REALTIME_TURN_SECRET");
        let turn_ttl = time::Duration::seconds(
            i64::try_from(s.int("REALTIME_TURN_TTL_SECS", 3_600, 60, 86_400)?).unwrap_or(3_600),
        );
        if !turn_urls.is_empty() && turn_secret.is_none() {
            return Err(ConfigError {
                name: "REALTIME_TURN_SECRET".into(),
                reason: "is required when REALTIME_TURN_URLS is set (coturn use-auth-secret)"
                    .into(),
            });
        }
        Ok(Self {
            stun_urls,
            turn_urls,
            turn_secret,
            turn_ttl,
        })
    }
}

/// TURN REST credentials for `user`, valid until `expires_at`.
pub fn turn_credentials(
    secret: &SecretString,
    user: UserId,
    expires_at: OffsetDateTime,
) -> Result<(String, String), AppError> {
    let username = format!("{}:{}", expires_at.unix_timestamp(), user.as_uuid());
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.expose_secret().as_bytes())
        .map_err(|_| AppError::Internal("TURN secret unusable".into()))?;
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    Ok((username, credential))
}

/// One ICE server, as `RTCPeerConnection` takes it.
#[derive(Debug, Serialize, ToSchema)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// `GET /consultations/{id}/ice`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IceServers {
    pub ice_servers: Vec<IceServer>,
    /// When the TURN credentials stop working (absent without TURN).
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

fn call_closed() -> AppError {
    AppError::Conflict {
        code: "call_closed",
        detail: "This consultation's call opens 10 minutes before its start, for video and audio \
                 consultations that are confirmed."
            .into(),
    }
}

/// The ICE servers of one of the caller's consultations' call (while it is open).
#[utoipa::path(get, path = "/api/v1/consultations/{id}/ice", tag = "chat",
    extensions(("x-authz" = json!({"resource": "consultations", "action": "join"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Consultation id")),
    responses(
        (status = 200, body = IceServers),
        (status = 404, description = "Not one of the caller's consultations here"),
        (status = 409, description = "call_closed"),
    ))]
#[tracing::instrument(skip_all, fields(consultation = %id))]
pub async fn ice_servers(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<IceServers>> {
    actor.require_company()?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let c = crate::consultations::repo::one(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    if !call_open(&c, now) {
        return Err(call_closed());
    }
    let ice = &state.config.realtime.ice;
    let mut servers = Vec::new();
    if !ice.stun_urls.is_empty() {
        servers.push(IceServer {
            urls: ice.stun_urls.clone(),
            username: None,
            credential: None,
        });
    }
    let mut expires_at = None;
    if let (false, Some(secret)) = (ice.turn_urls.is_empty(), ice.turn_secret.as_ref()) {
        let until = now + ice.turn_ttl;
        let (username, credential) = turn_credentials(secret, actor.user, until)?;
        servers.push(IceServer {
            urls: ice.turn_urls.clone(),
            username: Some(username),
            credential: Some(credential),
        });
        expires_at = Some(until);
    }
    Ok(Json(IceServers {
        ice_servers: servers,
        expires_at,
    }))
}

/// A signal's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    Offer,
    Answer,
    Ice,
    Hangup,
}

impl SignalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
            Self::Ice => "ice",
            Self::Hangup => "hangup",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "offer" => Some(Self::Offer),
            "answer" => Some(Self::Answer),
            "ice" => Some(Self::Ice),
            "hangup" => Some(Self::Hangup),
            _ => None,
        }
    }
}

/// Validate a signal's payload: an SDP for offers and answers, a candidate object for ICE,
/// nothing for a hang-up.
pub fn payload(
    kind: SignalKind,
    sdp: Option<String>,
    candidate: Option<serde_json::Value>,
) -> Result<Option<serde_json::Value>, AppError> {
    match kind {
        SignalKind::Offer | SignalKind::Answer => {
            let sdp = sdp
                .filter(|s| !s.trim().is_empty() && s.len() <= MAX_SDP_BYTES && !s.contains('\0'))
                .ok_or_else(|| {
                    AppError::invalid("sdp", format!("required, at most {MAX_SDP_BYTES} bytes"))
                })?;
            Ok(Some(serde_json::json!({ "sdp": sdp })))
        }
        SignalKind::Ice => {
            let c = candidate
                .filter(|c| {
                    c.is_object()
                        && serde_json::to_vec(c).is_ok_and(|v| v.len() <= MAX_CANDIDATE_BYTES)
                })
                .ok_or_else(|| {
                    AppError::invalid(
                        "candidate",
                        format!("an object of at most {MAX_CANDIDATE_BYTES} bytes"),
                    )
                })?;
            Ok(Some(serde_json::json!({ "candidate": c })))
        }
        SignalKind::Hangup => Ok(None),
    }
}

fn aad(actor: &Actor, id: Uuid) -> Aad<'static> {
    Aad {
        tenant: actor.tenant,
        table: "call_signals",
        column: "payload",
        row_id: id,
    }
}

/// Relay a signal to the other participant of one of the caller's consultations.
pub async fn send(
    state: &AppState,
    actor: &Actor,
    consultation: Uuid,
    kind: SignalKind,
    body: Option<serde_json::Value>,
) -> AppResult<()> {
    let now = state.clock.now();
    let mut tx = actor.begin(state).await?;
    let c = crate::consultations::repo::one(&mut tx, consultation)
        .await?
        .ok_or(AppError::NotFound)?;
    if !call_open(&c, now) {
        return Err(call_closed());
    }
    let id = Uuid::now_v7();
    let sealed = match &body {
        Some(v) => {
            let plain = zeroize::Zeroizing::new(
                serde_json::to_vec(v).map_err(|e| AppError::Internal(format!("signal: {e}")))?,
            );
            Some(
                state
                    .keyring
                    .seal(
                        &mut tx,
                        actor.tenant,
                        KeyScope::Subject(c.employee_id),
                        &aad(actor, id),
                        &plain,
                    )
                    .await?,
            )
        }
        None => None,
    };
    let outcome = sqlx::query_scalar!(
        r#"SELECT app_private.call_signal_send($1, $2, $3, $4, $5) AS "outcome!""#,
        id,
        consultation,
        kind.as_str(),
        sealed,
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    match outcome.as_str() {
        "sent" => {
            tx.commit().await?;
            Ok(())
        }
        "closed" => Err(call_closed()),
        _ => Err(AppError::NotFound),
    }
}

/// A signal as its recipient receives it.
#[derive(Debug)]
pub struct Received {
    pub consultation: Uuid,
    pub from: UserId,
    pub kind: SignalKind,
    pub body: Option<serde_json::Value>,
}

/// Re-read a signal addressed to the caller (none when it is not theirs, or unreadable).
pub async fn receive(state: &AppState, actor: &Actor, id: Uuid) -> AppResult<Option<Received>> {
    let mut tx = actor.begin(state).await?;
    let row = sqlx::query!(
        r#"SELECT s.consultation_id, s.sender_id AS "sender_id: UserId", s.kind, s.payload,
                  c.employee_id AS "employee_id: UserId"
           FROM call_signals s
           JOIN consultations c ON c.tenant_id = s.tenant_id AND c.id = s.consultation_id
           WHERE s.tenant_id = app.current_tenant() AND s.id = $1 AND s.recipient_id = $2"#,
        id,
        actor.user.as_uuid()
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let Some(kind) = SignalKind::parse(&row.kind) else {
        return Ok(None);
    };
    let body = match &row.payload {
        Some(blob) => match state
            .keyring
            .open(
                &mut tx,
                actor.tenant,
                KeyScope::Subject(row.employee_id),
                &aad(actor, id),
                blob,
            )
            .await
        {
            Ok(plain) => serde_json::from_slice(&plain).ok(),
            Err(CryptoError::Unreadable | CryptoError::Destroyed) => return Ok(None),
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    tx.commit().await?;
    Ok(Some(Received {
        consultation: row.consultation_id,
        from: row.sender_id,
        kind,
        body,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn turn_credentials_follow_the_rest_convention() {
        // The convention's reference values (draft-uberti-behave-turn-rest-00 style): the
        // credential is base64(HMAC-SHA1(secret, "expiry:user")).
        let secret = SecretString::from("north");
        let user = UserId::from(Uuid::nil());
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let (username, credential) = turn_credentials(&secret, user, at).unwrap();
        assert_eq!(username, "1700000000:00000000-0000-0000-0000-000000000000");
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"north").unwrap();
        mac.update(username.as_bytes());
        let expect = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(credential, expect);
        assert_eq!(credential.len(), 28, "20 bytes of SHA-1, base64");
    }

    #[test]
    fn payloads_are_bounded_by_kind() {
        assert!(payload(SignalKind::Offer, Some("v=0".into()), None).is_ok());
        assert!(payload(SignalKind::Offer, None, None).is_err());
        assert!(
            payload(
                SignalKind::Answer,
                Some("x".repeat(MAX_SDP_BYTES + 1)),
                None
            )
            .is_err()
        );
        let c = serde_json::json!({"candidate": "candidate:1 1 udp 1 10.0.0.1 9 typ host", "sdpMid": "0"});
        assert!(payload(SignalKind::Ice, None, Some(c)).is_ok());
        assert!(payload(SignalKind::Ice, None, Some(serde_json::json!("string"))).is_err());
        assert_eq!(payload(SignalKind::Hangup, None, None).unwrap(), None);
        assert!(
            urls(
                "stun:stun.example.com:3478, turns:turn.example.com",
                &["stun", "stuns", "turns"]
            )
            .is_ok()
        );
        assert!(urls("http://x", &["stun"]).is_err());
    }
}
