//! The hub: this server's live connections, by person and by room, and the fan-out of the
//! `serein_realtime` notifications to them.
//!
//! Invariants:
//! - A notification carries ids only (`k` kind, `t` tenant, `c` consultation, `u` person, `s`
//!   sequence number, `id`); the hub turns it into a [`Signal`] for the connections of that
//!   tenant's room or person, and each connection re-reads what it needs under its own
//!   person's context and policies. Nothing content-bearing passes through here.
//! - Every connection has a bounded queue of signals; when it is full the connection is told
//!   to close (slow consumer) instead of the hub buffering without bound or waiting.
//! - Payloads that do not parse are ignored (and counted). Any database role can NOTIFY, so a
//!   payload is never believed: message, read-mark, notification and call payloads only make a
//!   connection re-read what its own policies allow; typing and presence, which have no row to
//!   re-read, carry an HMAC (key derived from the master key, [`Hub::sign`]) and are dropped
//!   without a valid one.
//! - A person holds at most `REALTIME_MAX_PER_PERSON` sockets on one server.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use serde::Deserialize;
use tokio::sync::{Notify, mpsc, watch};
use uuid::Uuid;

use crate::db::{TenantId, UserId};

/// The channel every server listens on.
pub const CHANNEL: &str = "serein_realtime";

/// What the hub tells one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// Messages up to `seq` exist in the room.
    Message {
        consultation: Uuid,
        seq: i64,
    },
    /// A participant's read mark moved.
    Read {
        consultation: Uuid,
        user: UserId,
        seq: i64,
    },
    Typing {
        consultation: Uuid,
        user: UserId,
    },
    Presence {
        consultation: Uuid,
        user: UserId,
        online: bool,
        /// A newcomer asks who is there: the others answer with their own presence.
        hello: bool,
    },
    /// A notification row of this connection's person.
    Notification {
        id: Uuid,
    },
    /// A call signal addressed to this connection's person.
    Call {
        id: Uuid,
    },
    /// Notifications may have been missed (the listener reconnected): re-read every room.
    Resync,
}

/// The notification payload (ids only).
#[derive(Debug, Deserialize, serde::Serialize)]
struct Payload {
    k: String,
    t: Uuid,
    #[serde(default)]
    c: Option<Uuid>,
    #[serde(default)]
    u: Option<Uuid>,
    #[serde(default)]
    s: Option<i64>,
    #[serde(default)]
    id: Option<Uuid>,
    #[serde(default)]
    on: Option<bool>,
    #[serde(default)]
    hello: Option<bool>,
    /// The signature of typing and presence payloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<String>,
}

type Mac = hmac::Hmac<sha2::Sha256>;

/// The signed fields of a payload, unambiguous (ids have a fixed form).
fn signed_text(p: &Payload) -> String {
    format!(
        "serein realtime v1|{}|{}|{}|{}|{}|{}",
        p.k,
        p.t,
        p.c.map(|c| c.to_string()).unwrap_or_default(),
        p.u.map(|u| u.to_string()).unwrap_or_default(),
        p.on.map(|b| b.to_string()).unwrap_or_default(),
        p.hello.map(|b| b.to_string()).unwrap_or_default(),
    )
}

fn mac(key: &[u8], p: &Payload) -> Option<Mac> {
    use hmac::{KeyInit, Mac as _};
    let mut m = <Mac as KeyInit>::new_from_slice(key).ok()?;
    m.update(signed_text(p).as_bytes());
    Some(m)
}

/// Where a parsed payload goes.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Room(TenantId, Uuid),
    Person(TenantId, UserId),
}

fn route(payload: &str, key: &[u8]) -> Option<(Route, Signal)> {
    let p: Payload = serde_json::from_str(payload).ok()?;
    if matches!(p.k.as_str(), "typing" | "presence") {
        use hmac::Mac as _;
        let sig = hex_decode(p.m.as_deref()?)?;
        mac(key, &p)?.verify_slice(&sig).ok()?;
    }
    let tenant = TenantId::from(p.t);
    match p.k.as_str() {
        "message" => {
            let c = p.c?;
            Some((
                Route::Room(tenant, c),
                Signal::Message {
                    consultation: c,
                    seq: p.s?,
                },
            ))
        }
        "read" => {
            let c = p.c?;
            Some((
                Route::Room(tenant, c),
                Signal::Read {
                    consultation: c,
                    user: UserId::from(p.u?),
                    seq: p.s?,
                },
            ))
        }
        "typing" => {
            let c = p.c?;
            Some((
                Route::Room(tenant, c),
                Signal::Typing {
                    consultation: c,
                    user: UserId::from(p.u?),
                },
            ))
        }
        "presence" => {
            let c = p.c?;
            Some((
                Route::Room(tenant, c),
                Signal::Presence {
                    consultation: c,
                    user: UserId::from(p.u?),
                    online: p.on?,
                    hello: p.hello.unwrap_or(false),
                },
            ))
        }
        "notification" => Some((
            Route::Person(tenant, UserId::from(p.u?)),
            Signal::Notification { id: p.id? },
        )),
        "call" => Some((
            Route::Person(tenant, UserId::from(p.u?)),
            Signal::Call { id: p.id? },
        )),
        _ => None,
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// Why a connection was not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// This server holds its maximum of sockets.
    Server,
    /// This person holds their maximum of sockets here.
    Person,
}

/// One connection as the hub sees it.
struct Handle {
    tenant: TenantId,
    user: UserId,
    tx: mpsc::Sender<Signal>,
    /// Fired when the queue overflowed: the connection closes as a slow consumer.
    overflow: Arc<Notify>,
    rooms: HashSet<Uuid>,
}

#[derive(Default)]
struct Maps {
    conns: HashMap<u64, Handle>,
    rooms: HashMap<(TenantId, Uuid), HashSet<u64>>,
    people: HashMap<(TenantId, UserId), HashSet<u64>>,
}

/// The hub (cheap to clone).
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    maps: RwLock<Maps>,
    next: AtomicU64,
    queue: usize,
    max_connections: usize,
    max_per_person: usize,
    key: zeroize::Zeroizing<[u8; 32]>,
    count: AtomicUsize,
    closing: watch::Sender<bool>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("connections", &self.connections())
            .finish_non_exhaustive()
    }
}

/// A connection's registration: its id, its signal queue, its overflow alarm. Dropping it
/// unregisters the connection.
pub struct Registration {
    hub: Hub,
    pub id: u64,
    pub signals: mpsc::Receiver<Signal>,
    pub overflow: Arc<Notify>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}

impl Hub {
    pub fn new(queue: usize, max_connections: usize, max_per_person: usize, key: [u8; 32]) -> Self {
        let (closing, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                maps: RwLock::new(Maps::default()),
                next: AtomicU64::new(1),
                queue: queue.max(1),
                max_connections,
                max_per_person: max_per_person.max(1),
                key: zeroize::Zeroizing::new(key),
                count: AtomicUsize::new(0),
                closing,
            }),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.inner.maps.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.inner.maps.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Live connections on this server.
    pub fn connections(&self) -> usize {
        self.inner.count.load(Ordering::Relaxed)
    }

    /// Whether one more connection may be accepted.
    pub fn has_room(&self) -> bool {
        self.connections() < self.inner.max_connections
    }

    /// Register a connection of `user` in `tenant`, unless the server or the person is full.
    pub fn register(&self, tenant: TenantId, user: UserId) -> Result<Registration, Full> {
        let (tx, signals) = mpsc::channel(self.inner.queue);
        let overflow = Arc::new(Notify::new());
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        {
            let mut m = self.write();
            if m.conns.len() >= self.inner.max_connections {
                return Err(Full::Server);
            }
            if m.people
                .get(&(tenant, user))
                .is_some_and(|set| set.len() >= self.inner.max_per_person)
            {
                return Err(Full::Person);
            }
            m.conns.insert(
                id,
                Handle {
                    tenant,
                    user,
                    tx,
                    overflow: overflow.clone(),
                    rooms: HashSet::new(),
                },
            );
            m.people.entry((tenant, user)).or_default().insert(id);
            self.inner.count.store(m.conns.len(), Ordering::Relaxed);
        }
        Ok(Registration {
            hub: self.clone(),
            id,
            signals,
            overflow,
        })
    }

    fn unregister(&self, id: u64) {
        let mut m = self.write();
        if let Some(h) = m.conns.remove(&id) {
            for room in h.rooms {
                if let Some(set) = m.rooms.get_mut(&(h.tenant, room)) {
                    set.remove(&id);
                    if set.is_empty() {
                        m.rooms.remove(&(h.tenant, room));
                    }
                }
            }
            if let Some(set) = m.people.get_mut(&(h.tenant, h.user)) {
                set.remove(&id);
                if set.is_empty() {
                    m.people.remove(&(h.tenant, h.user));
                }
            }
        }
        self.inner.count.store(m.conns.len(), Ordering::Relaxed);
    }

    /// Route a room's signals to connection `id` (its own tenant only).
    pub fn join(&self, id: u64, consultation: Uuid) {
        let mut m = self.write();
        let Some(tenant) = m.conns.get_mut(&id).map(|h| {
            h.rooms.insert(consultation);
            h.tenant
        }) else {
            return;
        };
        m.rooms
            .entry((tenant, consultation))
            .or_default()
            .insert(id);
    }

    pub fn leave(&self, id: u64, consultation: Uuid) {
        let mut m = self.write();
        let Some(tenant) = m.conns.get_mut(&id).map(|h| {
            h.rooms.remove(&consultation);
            h.tenant
        }) else {
            return;
        };
        if let Some(set) = m.rooms.get_mut(&(tenant, consultation)) {
            set.remove(&id);
            if set.is_empty() {
                m.rooms.remove(&(tenant, consultation));
            }
        }
    }

    fn deliver(h: &Handle, signal: Signal) {
        if let Err(mpsc::error::TrySendError::Full(_)) = h.tx.try_send(signal) {
            h.overflow.notify_one();
        }
    }

    /// Fan one notification payload out to this server's connections.
    pub fn dispatch(&self, payload: &str) {
        let Some((route, signal)) = route(payload, self.inner.key.as_slice()) else {
            metrics::counter!("serein_realtime_payloads_ignored_total").increment(1);
            return;
        };
        let m = self.read();
        let ids = match route {
            Route::Room(t, c) => m.rooms.get(&(t, c)),
            Route::Person(t, u) => m.people.get(&(t, u)),
        };
        for id in ids.into_iter().flatten() {
            if let Some(h) = m.conns.get(id) {
                Self::deliver(h, signal.clone());
            }
        }
    }

    /// The payload of a typing or presence event, signed (see the module header).
    pub fn sign(
        &self,
        event: &str,
        tenant: TenantId,
        consultation: Uuid,
        user: UserId,
        online: Option<bool>,
        hello: Option<bool>,
    ) -> String {
        use hmac::Mac as _;
        let mut p = Payload {
            k: event.to_owned(),
            t: tenant.as_uuid(),
            c: Some(consultation),
            u: Some(user.as_uuid()),
            s: None,
            id: None,
            on: online,
            hello,
            m: None,
        };
        p.m = mac(self.inner.key.as_slice(), &p).map(|m| {
            m.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        });
        serde_json::to_string(&p).unwrap_or_default()
    }

    /// Tell every connection to re-read its rooms (notifications may have been lost).
    pub fn resync_all(&self) {
        let m = self.read();
        for h in m.conns.values() {
            Self::deliver(h, Signal::Resync);
        }
    }

    /// Connections close (going away) once this turns true.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// Ask every connection to close (server shutdown).
    pub fn close_all(&self) {
        self.inner.closing.send_replace(true);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn payloads_route_by_tenant_and_room_or_person() {
        let (t, c, u) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let key = [7u8; 32];
        let (r, s) = route(
            &format!(r#"{{"k":"message","t":"{t}","c":"{c}","s":7}}"#),
            &key,
        )
        .unwrap();
        assert_eq!(r, Route::Room(TenantId::from(t), c));
        assert_eq!(
            s,
            Signal::Message {
                consultation: c,
                seq: 7
            }
        );
        let (r, _) = route(
            &format!(r#"{{"k":"notification","t":"{t}","u":"{u}","id":"{c}"}}"#),
            &key,
        )
        .unwrap();
        assert_eq!(r, Route::Person(TenantId::from(t), UserId::from(u)));
        assert!(route("not json", &key).is_none());
        assert!(route(&format!(r#"{{"k":"message","t":"{t}"}}"#), &key).is_none());
        assert!(route(&format!(r#"{{"k":"other","t":"{t}"}}"#), &key).is_none());
        // Typing and presence need the signature of this deployment's key.
        let hub = Hub::new(2, 10, 10, key);
        let (tenant, user) = (TenantId::from(t), UserId::from(u));
        let signed = hub.sign("typing", tenant, c, user, None, None);
        assert!(route(&signed, &key).is_some());
        assert!(route(&signed, &[8u8; 32]).is_none(), "another key");
        let unsigned = format!(r#"{{"k":"typing","t":"{t}","c":"{c}","u":"{u}"}}"#);
        assert!(route(&unsigned, &key).is_none());
        let forged = signed.replace(&u.to_string(), &Uuid::now_v7().to_string());
        assert!(
            route(&forged, &key).is_none(),
            "another person under the same signature"
        );
    }

    #[tokio::test]
    async fn a_full_queue_raises_the_overflow_alarm_and_rooms_are_per_tenant() {
        let hub = Hub::new(2, 10, 1, [0u8; 32]);
        let (t, other, c) = (TenantId::new(), TenantId::new(), Uuid::now_v7());
        let mut a = hub.register(t, UserId::new()).unwrap();
        let mut b = hub.register(other, UserId::new()).unwrap();
        hub.join(a.id, c);
        hub.join(b.id, c);
        let msg = |s: i64| {
            format!(
                r#"{{"k":"message","t":"{}","c":"{c}","s":{s}}}"#,
                t.as_uuid()
            )
        };
        hub.dispatch(&msg(1));
        assert!(matches!(
            a.signals.try_recv(),
            Ok(Signal::Message { seq: 1, .. })
        ));
        assert!(
            b.signals.try_recv().is_err(),
            "another tenant's room of the same id"
        );
        let alarm = a.overflow.clone();
        let fired = tokio::spawn(async move { alarm.notified().await });
        for s in 2..=4 {
            hub.dispatch(&msg(s));
        }
        tokio::time::timeout(std::time::Duration::from_secs(1), fired)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(hub.connections(), 2);
        drop(a);
        assert_eq!(hub.connections(), 1);
        let full = Hub::new(2, 1, 1, [0u8; 32]);
        let _one = full.register(t, UserId::new()).unwrap();
        assert_eq!(full.register(t, UserId::new()).err(), Some(Full::Server));
        let roomy = Hub::new(2, 10, 1, [0u8; 32]);
        let person = UserId::new();
        let _first = roomy.register(t, person).unwrap();
        assert_eq!(roomy.register(t, person).err(), Some(Full::Person));
        assert!(roomy.register(other, person).is_ok(), "per company");
    }
}
