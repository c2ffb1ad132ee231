//! A bounded LRU of unwrapped keys, shared by every request of one server instance.
//!
//! Invariants: at most `capacity` keys are held (the least recently used is dropped first);
//! an entry older than the TTL (injected clock) is never returned; key material lives in
//! [`DataKey`] behind an `Arc`, zeroed when the last holder drops it (eviction drops the
//! cache's hold at once). Each entry remembers the nonce of the wrapped blob it came from, so a
//! caller holding the current row can tell a cached key from a different key that reuses the
//! same (tenant, purpose/subject, version) — a creation rolled back and made again.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use time::{Duration, OffsetDateTime};

use super::sealed::{DataKey, NONCE_LEN};
use crate::db::{TenantId, UserId};

/// What a tenant key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Wraps the tenant's subject keys.
    Data,
    /// Seals clinical notes directly (retention outlives a subject's erasure).
    Clinical,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::Clinical => "clinical",
        }
    }
}

/// The identity of one unwrapped key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyId {
    Tenant {
        tenant: TenantId,
        purpose: Purpose,
        version: u32,
    },
    Subject {
        tenant: TenantId,
        subject: UserId,
        version: u32,
    },
}

impl KeyId {
    fn tenant(&self) -> TenantId {
        match self {
            Self::Tenant { tenant, .. } | Self::Subject { tenant, .. } => *tenant,
        }
    }
}

struct Entry {
    key: Arc<DataKey>,
    wrapped_nonce: [u8; NONCE_LEN],
    loaded_at: OffsetDateTime,
    tick: u64,
}

#[derive(Default)]
struct State {
    map: HashMap<KeyId, Entry>,
    order: BTreeMap<u64, KeyId>,
    tick: u64,
}

/// The cache (see module header).
pub struct KeyCache {
    capacity: usize,
    ttl: Duration,
    state: Mutex<State>,
}

impl KeyCache {
    pub fn new(capacity: usize, ttl: std::time::Duration) -> Self {
        Self {
            capacity,
            ttl: Duration::try_from(ttl).unwrap_or(Duration::ZERO),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map inconsistent in a way that
        // matters (worst case: a stale order entry), so a poisoned lock is still used.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key and the nonce of its wrapped blob, if cached and fresh.
    pub fn get(&self, id: &KeyId, now: OffsetDateTime) -> Option<(Arc<DataKey>, [u8; NONCE_LEN])> {
        if self.capacity == 0 {
            return None;
        }
        let mut st = self.lock();
        st.tick = st.tick.wrapping_add(1);
        let tick = st.tick;
        let fresh = match st.map.get(id) {
            None => return None,
            Some(e) => now - e.loaded_at < self.ttl && now >= e.loaded_at,
        };
        if !fresh {
            if let Some(e) = st.map.remove(id) {
                st.order.remove(&e.tick);
            }
            return None;
        }
        let (key, nonce, old) = {
            let e = st.map.get_mut(id)?;
            let old = e.tick;
            e.tick = tick;
            (e.key.clone(), e.wrapped_nonce, old)
        };
        st.order.remove(&old);
        st.order.insert(tick, *id);
        Some((key, nonce))
    }

    /// Remember a key (replacing any entry of the same id).
    pub fn put(
        &self,
        id: KeyId,
        key: Arc<DataKey>,
        wrapped_nonce: [u8; NONCE_LEN],
        now: OffsetDateTime,
    ) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        let mut st = self.lock();
        st.tick = st.tick.wrapping_add(1);
        let tick = st.tick;
        if let Some(old) = st.map.insert(
            id,
            Entry {
                key,
                wrapped_nonce,
                loaded_at: now,
                tick,
            },
        ) {
            st.order.remove(&old.tick);
        }
        st.order.insert(tick, id);
        while st.map.len() > self.capacity {
            let Some((_, victim)) = st.order.pop_first() else {
                break;
            };
            st.map.remove(&victim);
        }
    }

    /// Forget one key.
    pub fn evict(&self, id: &KeyId) {
        let mut st = self.lock();
        if let Some(e) = st.map.remove(id) {
            st.order.remove(&e.tick);
        }
    }

    /// Forget every key matching `pred` (a destroyed subject, a destroyed tenant).
    pub fn evict_where(&self, pred: impl Fn(&KeyId) -> bool) {
        let mut st = self.lock();
        let victims: Vec<(KeyId, u64)> = st
            .map
            .iter()
            .filter(|(id, _)| pred(id))
            .map(|(id, e)| (*id, e.tick))
            .collect();
        for (id, tick) in victims {
            st.map.remove(&id);
            st.order.remove(&tick);
        }
    }

    /// Forget every key of a tenant.
    pub fn evict_tenant(&self, tenant: TenantId) {
        self.evict_where(|id| id.tenant() == tenant);
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn id(v: u32) -> KeyId {
        KeyId::Tenant {
            tenant: TenantId(uuid::Uuid::nil()),
            purpose: Purpose::Data,
            version: v,
        }
    }

    fn key() -> Arc<DataKey> {
        Arc::new(DataKey::from_bytes(&[1; 32]))
    }

    #[test]
    fn bounded_lru_with_ttl_and_eviction() {
        let now = OffsetDateTime::now_utc();
        let c = KeyCache::new(2, std::time::Duration::from_secs(60));
        c.put(id(1), key(), [1; 12], now);
        c.put(id(2), key(), [2; 12], now);
        assert!(c.get(&id(1), now).is_some()); // 1 is now the most recent
        c.put(id(3), key(), [3; 12], now);
        assert_eq!(c.len(), 2);
        assert!(c.get(&id(2), now).is_none(), "least recently used evicted");
        assert_eq!(c.get(&id(1), now).unwrap().1, [1; 12]);
        assert!(c.get(&id(3), now).is_some());
        // Expiry by the injected time.
        assert!(c.get(&id(1), now + Duration::seconds(61)).is_none());
        assert!(c.get(&id(1), now).is_none(), "expired entries are dropped");
        c.evict(&id(3));
        assert!(c.is_empty());
        // The key material is released when evicted (only the test holds it now).
        let k = key();
        c.put(id(4), k.clone(), [4; 12], now);
        c.evict_tenant(TenantId(uuid::Uuid::nil()));
        assert_eq!(Arc::strong_count(&k), 1);
        // Disabled cache holds nothing.
        let off = KeyCache::new(0, std::time::Duration::from_secs(60));
        off.put(id(1), key(), [0; 12], now);
        assert!(off.get(&id(1), now).is_none());
    }
}
