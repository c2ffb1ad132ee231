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
//! - Payloads that do not parse are ignored (and counted): a forged NOTIFY from the request
//!   role can at worst make a connection re-read what its own policies already allow.

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
    /// Notifications may have been missed (the listener reconnected): re-read every room.
    Resync,
}

/// The notification payload (ids only).
#[derive(Debug, Deserialize)]
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
}

/// Where a parsed payload goes.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Room(TenantId, Uuid),
    Person(TenantId, UserId),
}

fn route(payload: &str) -> Option<(Route, Signal)> {
    let p: Payload = serde_json::from_str(payload).ok()?;
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
        _ => None,
    }
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
    pub fn new(queue: usize, max_connections: usize) -> Self {
        let (closing, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                maps: RwLock::new(Maps::default()),
                next: AtomicU64::new(1),
                queue: queue.max(1),
                max_connections,
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

    /// Register a connection of `user` in `tenant`; `None` when the server is full.
    pub fn register(&self, tenant: TenantId, user: UserId) -> Option<Registration> {
        let (tx, signals) = mpsc::channel(self.inner.queue);
        let overflow = Arc::new(Notify::new());
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        {
            let mut m = self.write();
            if m.conns.len() >= self.inner.max_connections {
                return None;
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
        Some(Registration {
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
        let Some((route, signal)) = route(payload) else {
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
        let (r, s) = route(&format!(r#"{{"k":"message","t":"{t}","c":"{c}","s":7}}"#)).unwrap();
        assert_eq!(r, Route::Room(TenantId::from(t), c));
        assert_eq!(
            s,
            Signal::Message {
                consultation: c,
                seq: 7
            }
        );
        let (r, _) = route(&format!(
            r#"{{"k":"notification","t":"{t}","u":"{u}","id":"{c}"}}"#
        ))
        .unwrap();
        assert_eq!(r, Route::Person(TenantId::from(t), UserId::from(u)));
        assert!(route("not json").is_none());
        assert!(route(&format!(r#"{{"k":"message","t":"{t}"}}"#)).is_none());
        assert!(route(&format!(r#"{{"k":"other","t":"{t}"}}"#)).is_none());
    }

    #[tokio::test]
    async fn a_full_queue_raises_the_overflow_alarm_and_rooms_are_per_tenant() {
        let hub = Hub::new(2, 10);
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
        let full = Hub::new(2, 1);
        let _one = full.register(t, UserId::new()).unwrap();
        assert!(full.register(t, UserId::new()).is_none());
    }
}
