//! The socket's events: JSON text frames, one object each, named by `type` (DESIGN §5).
//!
//! Client → server: `auth`, `subscribe`, `unsubscribe`, `chat.send`, `chat.typing`,
//! `chat.read`, `call.offer|answer|ice|hangup`, `ping`. Server → client: `ready`, `auth.ok`,
//! `auth.expiring`, `subscribed`, `unsubscribed`, `chat.message`, `chat.sent`, `chat.typing`,
//! `chat.read`, `presence`, `notification`, `call.sent`, `call.offer|answer|ice|hangup`,
//! `pong`, `error`.
//!
//! Unknown types and unknown fields are refused with an `error` event (`invalid_event`); the
//! connection stays open. Every client event may carry `ref` (≤ 64 characters), echoed in its
//! answer or error so a client can match them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::chat::model::{Message, ReadMark};
use crate::db::UserId;
use crate::notifications::Notification;

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ClientEvent {
    /// A fresh access token for this connection (same person, same company), before the one
    /// it runs on expires.
    #[serde(rename = "auth")]
    Auth {
        token: String,
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
    /// Join a consultation's room; `after_seq`: the last message seen (the messages after it
    /// are sent first, then live ones, without loss or duplicates).
    #[serde(rename = "subscribe")]
    Subscribe {
        consultation_id: Uuid,
        #[serde(default)]
        after_seq: Option<i64>,
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
    #[serde(rename = "unsubscribe")]
    Unsubscribe {
        consultation_id: Uuid,
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
    #[serde(rename = "chat.send")]
    ChatSend {
        consultation_id: Uuid,
        body: String,
        #[serde(default)]
        client_ref: Option<String>,
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
    #[serde(rename = "chat.typing")]
    ChatTyping {
        consultation_id: Uuid,
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
    #[serde(rename = "chat.read")]
    ChatRead {
        consultation_id: Uuid,
        seq: i64,
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
    #[serde(rename = "ping")]
    Ping {
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
    /// Call signaling, relayed to the other participant while the call is open.
    #[serde(rename = "call.offer")]
    CallOffer {
        consultation_id: Uuid,
        sdp: String,
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
    #[serde(rename = "call.answer")]
    CallAnswer {
        consultation_id: Uuid,
        sdp: String,
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
    #[serde(rename = "call.ice")]
    CallIce {
        consultation_id: Uuid,
        candidate: serde_json::Value,
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
    #[serde(rename = "call.hangup")]
    CallHangup {
        consultation_id: Uuid,
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
}

impl ClientEvent {
    /// The client's `ref`, if any.
    pub fn reference(&self) -> Option<&str> {
        match self {
            Self::Auth { reference, .. }
            | Self::Subscribe { reference, .. }
            | Self::Unsubscribe { reference, .. }
            | Self::ChatSend { reference, .. }
            | Self::ChatTyping { reference, .. }
            | Self::ChatRead { reference, .. }
            | Self::CallOffer { reference, .. }
            | Self::CallAnswer { reference, .. }
            | Self::CallIce { reference, .. }
            | Self::CallHangup { reference, .. }
            | Self::Ping { reference } => reference.as_deref(),
        }
    }
}

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub enum ServerEvent {
    /// First event of a connection.
    #[serde(rename = "ready")]
    Ready {
        user_id: UserId,
        #[serde(with = "time::serde::rfc3339")]
        token_expires_at: OffsetDateTime,
        /// Seconds between the server's pings; a peer silent for two is dropped.
        ping_interval_secs: u64,
    },
    #[serde(rename = "auth.ok")]
    AuthOk {
        #[serde(with = "time::serde::rfc3339")]
        token_expires_at: OffsetDateTime,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// The token expires soon: send `auth` with a fresh one, or the connection is closed
    /// (code 4001) when it does.
    #[serde(rename = "auth.expiring")]
    AuthExpiring {
        #[serde(with = "time::serde::rfc3339")]
        token_expires_at: OffsetDateTime,
    },
    #[serde(rename = "subscribed")]
    Subscribed {
        consultation_id: Uuid,
        /// The newest sequence number sent before live messages follow.
        last_seq: i64,
        /// Both participants' read marks.
        reads: Vec<ReadMark>,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    #[serde(rename = "unsubscribed")]
    Unsubscribed {
        consultation_id: Uuid,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// A message of a subscribed room, in sequence order, once each.
    #[serde(rename = "chat.message")]
    ChatMessage { message: Message },
    /// A `chat.send` was stored (the message itself arrives as `chat.message`).
    #[serde(rename = "chat.sent")]
    ChatSent {
        consultation_id: Uuid,
        id: Uuid,
        seq: i64,
        client_ref: Option<String>,
        /// True when the same `client_ref` had been stored before.
        replayed: bool,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    #[serde(rename = "chat.typing")]
    ChatTyping {
        consultation_id: Uuid,
        user_id: UserId,
    },
    #[serde(rename = "chat.read")]
    ChatRead {
        consultation_id: Uuid,
        user_id: UserId,
        seq: i64,
    },
    /// The other participant joined or left the room.
    #[serde(rename = "presence")]
    Presence {
        consultation_id: Uuid,
        user_id: UserId,
        online: bool,
    },
    #[serde(rename = "notification")]
    Notification { notification: Notification },
    /// A call signal was relayed.
    #[serde(rename = "call.sent")]
    CallSent {
        consultation_id: Uuid,
        kind: &'static str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    #[serde(rename = "call.offer")]
    CallOffer {
        consultation_id: Uuid,
        from: UserId,
        sdp: serde_json::Value,
    },
    #[serde(rename = "call.answer")]
    CallAnswer {
        consultation_id: Uuid,
        from: UserId,
        sdp: serde_json::Value,
    },
    #[serde(rename = "call.ice")]
    CallIce {
        consultation_id: Uuid,
        from: UserId,
        candidate: serde_json::Value,
    },
    #[serde(rename = "call.hangup")]
    CallHangup { consultation_id: Uuid, from: UserId },
    #[serde(rename = "pong")]
    Pong {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// A client event was refused; the connection stays open.
    #[serde(rename = "error")]
    Error {
        code: &'static str,
        detail: String,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
}

/// Close codes (RFC 6455 §7.4.2: 4000–4999 are the application's).
pub mod close {
    /// The access token is missing, invalid or expired without a fresh one.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// The session was ended or the person no longer belongs to the company.
    pub const SESSION_ENDED: u16 = 4003;
    /// The client did not read its events fast enough.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// No frame (nor pong) for two ping intervals.
    pub const DEAD_PEER: u16 = 4009;
    /// A frame the protocol does not allow (binary, oversized).
    pub const UNSUPPORTED: u16 = 1003;
    /// The server is shutting down; reconnect.
    pub const GOING_AWAY: u16 = 1001;
}

/// A `ref` kept only when short (it is echoed back).
pub fn clean_ref(r: Option<&str>) -> Option<String> {
    r.filter(|r| r.len() <= 64).map(str::to_owned)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_strictly() {
        let id = Uuid::now_v7();
        let e: ClientEvent = serde_json::from_str(&format!(
            r#"{{"type":"subscribe","consultation_id":"{id}","after_seq":3,"ref":"r1"}}"#
        ))
        .unwrap();
        assert!(matches!(
            e,
            ClientEvent::Subscribe {
                after_seq: Some(3),
                ..
            }
        ));
        assert_eq!(e.reference(), Some("r1"));
        for bad in [
            r#"{"type":"nope"}"#.to_owned(),
            format!(
                r#"{{"type":"chat.send","consultation_id":"{id}","body":"x","sender_id":"y"}}"#
            ),
            r#"{"type":"chat.read","seq":1}"#.to_owned(),
            "[]".to_owned(),
        ] {
            assert!(serde_json::from_str::<ClientEvent>(&bad).is_err(), "{bad}");
        }
        let out = serde_json::to_value(ServerEvent::Pong { reference: None }).unwrap();
        assert_eq!(out, serde_json::json!({"type": "pong"}));
    }
}
