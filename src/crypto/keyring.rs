//! The keyring: envelope encryption of confidential records (DESIGN §3).
//!
//! Key hierarchy:
//! - the master KEK (32 bytes, process memory only; [`super::master`]) wraps versioned tenant
//!   keys (`tenant_keys`): purpose `data` wraps subject keys, purpose `clinical` seals clinical
//!   notes directly (their legal retention outlives a person's erasure);
//! - a tenant `data` key wraps versioned per-person subject keys (`subject_keys`), which seal
//!   that person's journal and messages: destroying them crypto-shreds exactly that person's
//!   data in that tenant ([`Keyring::destroy_subject`]);
//! - the identity scope (TOTP secrets of the global `users` table) uses a key derived from the
//!   master with HKDF-SHA256 (info `serein identity v1`): no database access.
//!
//! Invariants:
//! - A process builds its keyring with [`Keyring::connect`], which refuses a master key that is
//!   not the database's ([`super::keycheck`]) before anything is sealed, opened or wrapped.
//! - Requests reach key rows only through the `app_private` key definers ([`super::keystore`]):
//!   the request role has no privilege on the key tables. The definers take the tenant and the
//!   person from the transaction's context and demand a session checked by `session_guard` in
//!   that transaction; a subject key is served to its own subject only (the practitioner of a
//!   consultation will need the employee's key for messages: that check belongs in the
//!   definer, issue 12). Rotation and destruction run on the owner's connection.
//! - New records use the newest key version of their scope, read inside the caller's
//!   transaction (so rotation and destruction apply to writes at once, on every server);
//!   records name their key version, so rotation never makes old data unreadable.
//! - Keys are created lazily and race-safely (version 1 only, `INSERT … ON CONFLICT DO
//!   NOTHING` inside the definer, then read back), so two first writers agree on one key.
//! - A cached key opens a record without asking the definer again; the record itself was read
//!   through its own table's policies (a journal entry by its owner only), which is what keeps
//!   another person's ciphertext out of reach at the database layer.
//! - Wrapped keys are bound to their identity by the wrapping AAD
//!   (`serein-key v1|tenant|{tenant}|{purpose}|{version}`,
//!   `serein-key v1|subject|{tenant}|{subject}|{version}`) and name their parent's version (the
//!   master id, or the tenant data key version), so a swapped wrapped key fails to unwrap.
//! - Unwrapped keys sit in a bounded LRU ([`super::cache`]), zeroed on drop. Sealing checks a
//!   cached key against the current row's wrapping nonce; opening trusts a cached key for at
//!   most `SEREIN_KEY_CACHE_TTL_SECS` and falls back to the stored key when it does not open
//!   the record. Destroying a key evicts it here at once; other server instances stop opening
//!   with it within the TTL (set the TTL to 0 for immediate effect everywhere, at one key read
//!   per open).
//!
//! Errors: every failure to open is [`CryptoError::Unreadable`], logged once here as a warning
//! naming tenant, table, column and row (never content). It maps to `410 sealed_data_unreadable`
//! so one bad record never becomes a 500; a list should rather show the record as unreadable and
//! carry on. Sealing under a destroyed key is [`CryptoError::Destroyed`] (`410 key_destroyed`).

use std::sync::Arc;

use hkdf::Hkdf;
use sha2::Sha256;
use sqlx::PgConnection;
use zeroize::Zeroizing;

use super::cache::{KeyCache, KeyId, Purpose};
use super::keycheck;
use super::keystore;
use super::master::{CryptoConfig, MasterKey, dev_master_key};
use super::sealed::{self, DataKey, KEY_LEN};
use crate::clock::Clock;
use crate::db::{Db, SessionId, TenantId, UserId};
use crate::error::AppError;

pub use super::sealed::{Aad, CryptoError};

/// Which key seals a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyScope {
    /// The tenant's clinical key (clinical notes).
    Clinical,
    /// The subject key of one person in the tenant (their journal, their messages).
    Subject(UserId),
}

/// The keyring (see module header). Cheap to clone.
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

struct Inner {
    master: MasterKey,
    previous: Option<MasterKey>,
    /// Identity keys by master id, current first.
    identity: Vec<(u32, DataKey)>,
    cache: KeyCache,
    clock: Clock,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field(
                "master_key_id",
                &format_args!("{:08x}", self.inner.master.id),
            )
            .field("cached_keys", &self.inner.cache.len())
            .finish_non_exhaustive()
    }
}

fn identity_key(master: &MasterKey) -> Option<DataKey> {
    let hk = Hkdf::<Sha256>::new(None, master.key.expose());
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    hk.expand(b"serein identity v1", okm.as_mut_slice()).ok()?;
    Some(DataKey::from_bytes(&okm))
}

fn tenant_key_aad(tenant: TenantId, purpose: Purpose, version: u32) -> Vec<u8> {
    format!(
        "serein-key v1|tenant|{}|{}|{version}",
        tenant.as_uuid().hyphenated(),
        purpose.as_str()
    )
    .into_bytes()
}

fn subject_key_aad(tenant: TenantId, subject: UserId, version: u32) -> Vec<u8> {
    format!(
        "serein-key v1|subject|{}|{}|{version}",
        tenant.as_uuid().hyphenated(),
        subject.as_uuid().hyphenated()
    )
    .into_bytes()
}

fn to_key(bytes: &[u8]) -> Result<DataKey, CryptoError> {
    let arr: &[u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::Unreadable)?;
    Ok(DataKey::from_bytes(arr))
}

/// A stored version number as the blob's `u32` (and back).
fn v32(v: i32) -> Result<u32, CryptoError> {
    u32::try_from(v).map_err(|_| CryptoError::Unreadable)
}
fn v_db(v: u32) -> Result<i32, CryptoError> {
    i32::try_from(v).map_err(|_| CryptoError::Unreadable)
}

impl Keyring {
    /// The keyring of the configured master key (see [`super::master`] for the development
    /// fallback), checked against the database's master key check ([`super::keycheck`])
    /// before anything uses it: the one way a process builds its keyring. A master key that
    /// is not the database's is refused with one line naming the variable and the key ids.
    pub async fn connect(cfg: &CryptoConfig, clock: Clock, db: &Db) -> anyhow::Result<Self> {
        let keyring = Self::from_config_with_clock(cfg, clock)?;
        let var = match &cfg.master_key {
            Some(_) => "SEREIN_MASTER_KEY".to_owned(),
            None => format!(
                "SEREIN_MASTER_KEY (unset: the development key {})",
                cfg.data_dir.join("master.key").display()
            ),
        };
        keycheck::verify(&keyring, db, &var).await?;
        Ok(keyring)
    }

    /// The keyring of the configured master key, unchecked (see [`Keyring::connect`]).
    #[cfg(test)]
    fn from_config(cfg: &CryptoConfig) -> anyhow::Result<Self> {
        Self::from_config_with_clock(cfg, Clock::system())
    }

    /// [`Keyring::from_config`] on an injected clock (cache expiry, key timestamps).
    fn from_config_with_clock(c: &CryptoConfig, clock: Clock) -> anyhow::Result<Self> {
        let master = match &c.master_key {
            Some(k) => MasterKey::from_secret(k)?,
            None if c.require_master_key => anyhow::bail!(
                "SEREIN_MASTER_KEY (or SEREIN_MASTER_KEY_FILE) is required when \
                 SEREIN_REQUIRE_MASTER_KEY (or SEREIN_REQUIRE_SECRETS) is true"
            ),
            None => MasterKey::new(&*dev_master_key(&c.data_dir)?),
        };
        let previous = c
            .previous_master_key
            .as_ref()
            .map(MasterKey::from_secret)
            .transpose()?;
        if previous.as_ref().is_some_and(|p| p.id == master.id) {
            anyhow::bail!("SEREIN_PREVIOUS_MASTER_KEY has the same id as SEREIN_MASTER_KEY");
        }
        Ok(Self::build(
            master,
            previous,
            KeyCache::new(c.key_cache_capacity, c.key_cache_ttl),
            clock,
        ))
    }

    /// A keyring on a fixed master key (tests), with the default cache.
    pub fn for_tests(master: [u8; 32]) -> Self {
        let master = Zeroizing::new(master);
        Self::with_keys(&master, None, Clock::system())
    }

    /// A keyring on explicit master keys (tests of master rotation).
    pub fn with_keys(
        master: &[u8; KEY_LEN],
        previous: Option<&[u8; KEY_LEN]>,
        clock: Clock,
    ) -> Self {
        let cache = KeyCache::new(1024, std::time::Duration::from_secs(60));
        Self::build(
            MasterKey::new(master),
            previous.map(MasterKey::new),
            cache,
            clock,
        )
    }

    fn build(
        master: MasterKey,
        previous: Option<MasterKey>,
        cache: KeyCache,
        clock: Clock,
    ) -> Self {
        // HKDF-SHA256 cannot fail for a 32-byte output; were it to, the identity scope would
        // refuse to seal and open (an empty list) rather than panic.
        let identity = std::iter::once(&master)
            .chain(previous.as_ref())
            .filter_map(|m| identity_key(m).map(|k| (m.id, k)))
            .collect();
        Self {
            inner: Arc::new(Inner {
                master,
                previous,
                identity,
                cache,
                clock,
            }),
        }
    }

    /// The id of the current master key (what new wrapped tenant keys and identity blobs name).
    pub fn master_key_id(&self) -> u32 {
        self.inner.master.id
    }

    /// The current master key (the key check seals with it).
    pub(crate) fn master(&self) -> &MasterKey {
        &self.inner.master
    }

    /// The previous master key, during a master rotation.
    pub(crate) fn previous_master(&self) -> Option<&MasterKey> {
        self.inner.previous.as_ref()
    }

    /// Unwrapped keys currently cached.
    pub fn cached_keys(&self) -> usize {
        self.inner.cache.len()
    }

    fn now(&self) -> time::OffsetDateTime {
        self.inner.clock.now()
    }

    fn master_by_id(&self, id: u32) -> Option<&MasterKey> {
        if self.inner.master.id == id {
            return Some(&self.inner.master);
        }
        self.inner.previous.as_ref().filter(|p| p.id == id)
    }

    // ---------------------------------------------------------------------------------------
    // Identity scope: no database.

    /// The secret of a session: HKDF-SHA256 of the master key, bound to the session id. Only
    /// its SHA-256 is stored (`sessions.secret_hash`, unreadable by the request role), and
    /// `app_private.session_guard` demands the secret itself: a context that claims a person
    /// can read their session ids, but cannot compute this, so it cannot pass the guard nor
    /// obtain the session proof the key doors and credential definers accept. Recomputed
    /// from the token's `sid` on every request (two HMACs), so the token format does not carry
    /// it. A new master key makes open sessions fail the guard: people sign in again.
    pub fn session_secret(&self, session: SessionId) -> SessionSecret {
        let hk = Hkdf::<Sha256>::new(
            Some(b"serein session secret v1"),
            self.inner.master.key.expose(),
        );
        let mut okm = [0u8; KEY_LEN];
        // 32 bytes never exceed HKDF-SHA256's output limit (8160 bytes).
        let _ = hk.expand(session.as_uuid().as_bytes(), &mut okm);
        SessionSecret(okm)
    }

    /// Seal an identity-level secret of the global `users` table (TOTP secrets). Use
    /// [`Aad::identity`] (nil tenant).
    pub fn seal_identity(&self, aad: &Aad<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let ad = aad.encode()?;
        let (id, key) = self.inner.identity.first().ok_or(CryptoError::Unreadable)?;
        sealed::seal_with(key, *id, &ad, plaintext)
    }

    /// Open an identity-level secret (sealed under the current or the previous master).
    pub fn open_identity(
        &self,
        aad: &Aad<'_>,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let ad = aad.encode()?;
        let opened = sealed::key_version(blob)
            .and_then(|v| self.inner.identity.iter().find(|(id, _)| *id == v))
            .ok_or(CryptoError::Unreadable)
            .and_then(|(_, key)| sealed::open_with(key, &ad, blob));
        if opened.is_err() {
            tracing::warn!(
                table = aad.table,
                column = aad.column,
                row_id = %aad.row_id,
                "an identity-sealed value failed to open"
            );
        }
        opened
    }

    /// A new blob under the current master when `blob` was sealed under the previous one
    /// (master rotation); `None` when it is current already.
    pub fn reseal_identity(
        &self,
        aad: &Aad<'_>,
        blob: &[u8],
    ) -> Result<Option<Vec<u8>>, CryptoError> {
        if sealed::key_version(blob) == Some(self.inner.master.id) {
            return Ok(None);
        }
        let plain = self.open_identity(aad, blob)?;
        self.seal_identity(aad, &plain).map(Some)
    }

    // ---------------------------------------------------------------------------------------
    // Tenant and subject scopes: keys stored wrapped, read through the caller's transaction.

    /// Seal under the newest key of `scope` in `tenant`, inside the caller's `TenantTx` of that
    /// tenant (creating the key on first use). The transaction's actor must have a session
    /// checked by the guard in it, and a `Subject` scope must be the actor themselves: the key
    /// definers refuse anything else (a database error, never a key).
    pub async fn seal(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        scope: KeyScope,
        aad: &Aad<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        if aad.tenant != tenant {
            return Err(CryptoError::InvalidAad("the AAD names another tenant"));
        }
        let ad = aad.encode()?;
        let (version, key) = match scope {
            KeyScope::Clinical => {
                self.current_tenant_key(conn, tenant, Purpose::Clinical)
                    .await?
            }
            KeyScope::Subject(subject) => self.current_subject_key(conn, tenant, subject).await?,
        };
        sealed::seal_with(&key, version, &ad, plaintext)
    }

    /// Open a record sealed by [`Keyring::seal`] with the same tenant, scope and AAD, inside a
    /// `TenantTx` whose actor the key definers accept (as for [`Keyring::seal`]); a key still
    /// cached from an earlier use opens without asking them again.
    pub async fn open(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        scope: KeyScope,
        aad: &Aad<'_>,
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if aad.tenant != tenant {
            return Err(CryptoError::InvalidAad("the AAD names another tenant"));
        }
        let ad = aad.encode()?;
        let opened = self.open_inner(conn, tenant, scope, &ad, blob).await;
        if matches!(opened, Err(CryptoError::Unreadable)) {
            tracing::warn!(
                tenant = %tenant,
                table = aad.table,
                column = aad.column,
                row_id = %aad.row_id,
                "a sealed record failed to open (tampered, moved, or its key destroyed)"
            );
        }
        opened
    }

    /// The key version a blob names (for lazy re-encryption: compare with the newest).
    pub fn blob_key_version(blob: &[u8]) -> Option<u32> {
        sealed::key_version(blob)
    }

    async fn open_inner(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        scope: KeyScope,
        ad: &[u8],
        blob: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let version = sealed::key_version(blob).ok_or(CryptoError::Unreadable)?;
        let id = match scope {
            KeyScope::Clinical => KeyId::Tenant {
                tenant,
                purpose: Purpose::Clinical,
                version,
            },
            KeyScope::Subject(subject) => KeyId::Subject {
                tenant,
                subject,
                version,
            },
        };
        if let Some((key, _)) = self.inner.cache.get(&id, self.now()) {
            if let Ok(plain) = sealed::open_with(&key, ad, blob) {
                return Ok(plain);
            }
            // Stale (a creation rolled back and redone) or simply a bad record: ask the store.
            self.inner.cache.evict(&id);
        }
        let key = match scope {
            KeyScope::Clinical => {
                let row = keystore::tenant_key_at(conn, Purpose::Clinical, v_db(version)?)
                    .await?
                    .ok_or(CryptoError::Unreadable)?;
                let wrapped = row.wrapped_key.ok_or(CryptoError::Unreadable)?;
                self.tenant_key_from_row(tenant, Purpose::Clinical, version, &wrapped)?
            }
            KeyScope::Subject(subject) => {
                let row = keystore::subject_key_at(conn, subject, v_db(version)?)
                    .await?
                    .ok_or(CryptoError::Unreadable)?;
                self.subject_key_from_row(tenant, subject, &row)
                    .map_err(|_| CryptoError::Unreadable)?
            }
        };
        sealed::open_with(&key, ad, blob)
    }

    /// Crypto-shred one person's data in a tenant: every version of their subject key is
    /// destroyed (and a person without a key gets a destroyed tombstone, so none is created
    /// later). Their sealed records no longer open; nobody else's are affected. `conn` is the
    /// OWNER's connection (erasure is an operator / job action; the request role cannot touch
    /// key rows). Commit the caller's transaction to make it durable.
    pub async fn destroy_subject(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        subject: UserId,
    ) -> Result<(), CryptoError> {
        keystore::destroy_subject(conn, tenant, subject, self.now()).await?;
        self.inner.cache.evict_where(|id| {
            matches!(id, KeyId::Subject { tenant: t, subject: s, .. } if *t == tenant && *s == subject)
        });
        Ok(())
    }

    /// Crypto-shred a whole tenant (offboarding): every tenant and subject key is destroyed and
    /// no new key will be created for it. `conn` is the OWNER's connection (the purge job).
    pub async fn destroy_tenant(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
    ) -> Result<(), CryptoError> {
        keystore::destroy_tenant(conn, tenant, self.now()).await?;
        self.inner.cache.evict_tenant(tenant);
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Key resolution.

    /// The newest tenant key of `purpose`, created (version 1) on first use.
    pub(crate) async fn current_tenant_key(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        purpose: Purpose,
    ) -> Result<(u32, Arc<DataKey>), CryptoError> {
        let row = match keystore::current_tenant_key(conn, purpose).await? {
            Some(row) => row,
            None => {
                let key = DataKey::generate()?;
                let wrapped = self.wrap_tenant_key(tenant, purpose, 1, &key)?;
                keystore::create_first_tenant_key(conn, purpose, &wrapped, self.now()).await?;
                // Ours, or the one a concurrent first writer committed before us.
                keystore::current_tenant_key(conn, purpose)
                    .await?
                    .ok_or(CryptoError::Unreadable)?
            }
        };
        let version = v32(row.version)?;
        let wrapped = row.wrapped_key.ok_or(CryptoError::Destroyed)?;
        let key = self.tenant_key_from_row(tenant, purpose, version, &wrapped)?;
        Ok((version, key))
    }

    /// The newest subject key of a person, created (version 1) on first use.
    async fn current_subject_key(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        subject: UserId,
    ) -> Result<(u32, Arc<DataKey>), CryptoError> {
        let row = match keystore::current_subject_key(conn, subject).await? {
            Some(row) => row,
            None => {
                let (parent_version, parent) =
                    self.current_tenant_key(conn, tenant, Purpose::Data).await?;
                let key = DataKey::generate()?;
                let wrapped = sealed::seal_with(
                    &parent,
                    parent_version,
                    &subject_key_aad(tenant, subject, 1),
                    key.expose(),
                )?;
                keystore::create_first_subject_key(
                    conn,
                    subject,
                    v_db(parent_version)?,
                    &wrapped,
                    self.now(),
                )
                .await?;
                keystore::current_subject_key(conn, subject)
                    .await?
                    .ok_or(CryptoError::Unreadable)?
            }
        };
        if row.wrapped_key.is_none() || row.parent_wrapped.is_none() {
            return Err(CryptoError::Destroyed);
        }
        let key = self.subject_key_from_row(tenant, subject, &row)?;
        Ok((v32(row.version)?, key))
    }

    /// Unwrap (or find in the cache) a tenant key whose stored row is `wrapped`.
    pub(crate) fn tenant_key_from_row(
        &self,
        tenant: TenantId,
        purpose: Purpose,
        version: u32,
        wrapped: &[u8],
    ) -> Result<Arc<DataKey>, CryptoError> {
        let id = KeyId::Tenant {
            tenant,
            purpose,
            version,
        };
        let nonce = sealed::nonce_of(wrapped).ok_or(CryptoError::Unreadable)?;
        let now = self.now();
        if let Some((key, cached_nonce)) = self.inner.cache.get(&id, now)
            && cached_nonce == nonce
        {
            return Ok(key);
        }
        let master = sealed::key_version(wrapped)
            .and_then(|m| self.master_by_id(m))
            .ok_or(CryptoError::Unreadable)?;
        let raw = sealed::open_with(
            &master.key,
            &tenant_key_aad(tenant, purpose, version),
            wrapped,
        )?;
        let key = Arc::new(to_key(&raw)?);
        self.inner.cache.put(id, key.clone(), nonce, now);
        Ok(key)
    }

    /// Unwrap (or find in the cache) a subject key from its row (which carries its wrapping
    /// tenant key).
    fn subject_key_from_row(
        &self,
        tenant: TenantId,
        subject: UserId,
        row: &keystore::SubjectKeyRow,
    ) -> Result<Arc<DataKey>, CryptoError> {
        let version = v32(row.version)?;
        let wrapped = row.wrapped_key.as_deref().ok_or(CryptoError::Destroyed)?;
        let id = KeyId::Subject {
            tenant,
            subject,
            version,
        };
        let nonce = sealed::nonce_of(wrapped).ok_or(CryptoError::Unreadable)?;
        if let Some((key, cached_nonce)) = self.inner.cache.get(&id, self.now())
            && cached_nonce == nonce
        {
            return Ok(key);
        }
        let parent_version = v32(row.wrapping_version)?;
        let parent_wrapped = row
            .parent_wrapped
            .as_deref()
            .ok_or(CryptoError::Destroyed)?;
        if sealed::key_version(wrapped) != Some(parent_version) {
            return Err(CryptoError::Unreadable);
        }
        let parent =
            self.tenant_key_from_row(tenant, Purpose::Data, parent_version, parent_wrapped)?;
        let key = Arc::new(self.unwrap_subject_key(&parent, tenant, subject, version, wrapped)?);
        self.inner.cache.put(id, key.clone(), nonce, self.now());
        Ok(key)
    }

    pub(crate) fn unwrap_subject_key(
        &self,
        parent: &DataKey,
        tenant: TenantId,
        subject: UserId,
        version: u32,
        wrapped: &[u8],
    ) -> Result<DataKey, CryptoError> {
        let raw = sealed::open_with(parent, &subject_key_aad(tenant, subject, version), wrapped)?;
        to_key(&raw)
    }

    pub(crate) fn wrap_subject_key(
        &self,
        parent: &DataKey,
        parent_version: u32,
        tenant: TenantId,
        subject: UserId,
        version: u32,
        key: &DataKey,
    ) -> Result<Vec<u8>, CryptoError> {
        sealed::seal_with(
            parent,
            parent_version,
            &subject_key_aad(tenant, subject, version),
            key.expose(),
        )
    }

    /// Wrap a tenant key under the current master.
    pub(crate) fn wrap_tenant_key(
        &self,
        tenant: TenantId,
        purpose: Purpose,
        version: u32,
        key: &DataKey,
    ) -> Result<Vec<u8>, CryptoError> {
        sealed::seal_with(
            &self.inner.master.key,
            self.inner.master.id,
            &tenant_key_aad(tenant, purpose, version),
            key.expose(),
        )
    }

    /// The key that signs the realtime events servers publish without a database row behind
    /// them (typing, presence): HKDF-SHA256 of the master key, info `serein realtime v1`, so
    /// every server of a deployment derives the same one and nothing else can sign.
    pub fn realtime_key(&self) -> [u8; KEY_LEN] {
        let hk = Hkdf::<Sha256>::new(None, self.inner.master.key.expose());
        let mut okm = [0u8; KEY_LEN];
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(b"serein realtime v1", &mut okm);
        okm
    }

    pub(crate) fn clock_now(&self) -> time::OffsetDateTime {
        self.now()
    }
}

impl From<CryptoError> for AppError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Unreadable => AppError::Gone("sealed_data_unreadable"),
            CryptoError::Destroyed => AppError::Gone("key_destroyed"),
            CryptoError::TooLong => AppError::PayloadTooLarge,
            CryptoError::Concurrent => AppError::Conflict {
                code: "key_change_conflict",
                detail: "A concurrent key change won; retry.".to_owned(),
            },
            CryptoError::Database(db) => AppError::from(db),
            CryptoError::InvalidAad(why) => AppError::Internal(format!("sealing: {why}")),
            CryptoError::Rng => AppError::Internal("no randomness available".to_owned()),
        }
    }
}

/// A session's secret ([`Keyring::session_secret`]): 32 bytes, zeroed on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret([u8; KEY_LEN]);

impl SessionSecret {
    /// From raw bytes (tests and benchmarks that arrange sessions by hand).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Lower-case hex: the only form in which it enters SQL text (`decode(…, 'hex')`).
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(KEY_LEN * 2);
        for b in self.0 {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl Drop for SessionSecret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret([redacted])")
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use uuid::Uuid;

    fn config(pairs: &[(&str, &str)], data_dir: &std::path::Path) -> Result<CryptoConfig, String> {
        let mut m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        m.insert(
            "SEREIN_DATA_DIR".into(),
            data_dir.to_str().unwrap().to_owned(),
        );
        let s = crate::config::Settings::open(&m).map_err(|e| e.to_string())?;
        CryptoConfig::load(&s).map_err(|e| e.to_string())
    }

    #[test]
    fn identity_round_trip_is_bound_to_its_row_and_master() {
        let k = Keyring::for_tests([1; 32]);
        let user = Uuid::now_v7();
        let aad = Aad::identity("users", "totp_secret", user);
        let blob = k.seal_identity(&aad, b"JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(sealed::key_version(&blob), Some(k.master_key_id()));
        assert_eq!(
            &**k.open_identity(&aad, &blob).unwrap(),
            b"JBSWY3DPEHPK3PXP"
        );
        // Another person's row, another column, another master: unreadable.
        let other = Aad::identity("users", "totp_secret", Uuid::now_v7());
        assert!(matches!(
            k.open_identity(&other, &blob),
            Err(CryptoError::Unreadable)
        ));
        let col = Aad::identity("users", "recovery", user);
        assert!(k.open_identity(&col, &blob).is_err());
        assert!(
            Keyring::for_tests([2; 32])
                .open_identity(&aad, &blob)
                .is_err()
        );
        // The identity key is derived, not the master itself.
        let direct = sealed::seal_with(
            &DataKey::from_bytes(&[1; 32]),
            k.master_key_id(),
            &aad.encode().unwrap(),
            b"x",
        )
        .unwrap();
        assert!(k.open_identity(&aad, &direct).is_err());
    }

    #[test]
    fn identity_blobs_survive_master_rotation_and_reseal() {
        let old = Keyring::for_tests([1; 32]);
        let aad = Aad::identity("users", "totp_secret", Uuid::now_v7());
        let blob = old.seal_identity(&aad, b"secret").unwrap();
        let rotated = Keyring::with_keys(&[2; 32], Some(&[1; 32]), Clock::system());
        assert_eq!(&**rotated.open_identity(&aad, &blob).unwrap(), b"secret");
        let fresh = rotated.reseal_identity(&aad, &blob).unwrap().unwrap();
        assert_eq!(sealed::key_version(&fresh), Some(rotated.master_key_id()));
        assert!(rotated.reseal_identity(&aad, &fresh).unwrap().is_none());
        let new_only = Keyring::for_tests([2; 32]);
        assert_eq!(&**new_only.open_identity(&aad, &fresh).unwrap(), b"secret");
        assert!(new_only.open_identity(&aad, &blob).is_err());
    }

    #[test]
    fn wrapped_keys_are_bound_to_their_identity() {
        let k = Keyring::for_tests([3; 32]);
        let (t1, t2) = (TenantId::new(), TenantId::new());
        let key = DataKey::generate().unwrap();
        let w = k.wrap_tenant_key(t1, Purpose::Data, 1, &key).unwrap();
        assert_eq!(w.len(), sealed::WRAPPED_KEY_LEN);
        let back = k.tenant_key_from_row(t1, Purpose::Data, 1, &w).unwrap();
        assert_eq!(back.expose(), key.expose());
        for (t, p, v) in [
            (t2, Purpose::Data, 1),
            (t1, Purpose::Clinical, 1),
            (t1, Purpose::Data, 2),
        ] {
            assert!(k.tenant_key_from_row(t, p, v, &w).is_err(), "{p:?} v{v}");
        }
        let (s1, s2) = (UserId::new(), UserId::new());
        let sw = k.wrap_subject_key(&key, 1, t1, s1, 1, &key).unwrap();
        assert!(k.unwrap_subject_key(&key, t1, s1, 1, &sw).is_ok());
        assert!(k.unwrap_subject_key(&key, t1, s2, 1, &sw).is_err());
        assert!(k.unwrap_subject_key(&key, t2, s1, 1, &sw).is_err());
    }

    #[test]
    fn master_key_comes_from_config_or_a_private_dev_file() {
        let dir = tempfile::tempdir().unwrap();
        let hex = "11".repeat(32);
        let k = Keyring::from_config(&config(&[("SEREIN_MASTER_KEY", &hex)], dir.path()).unwrap())
            .unwrap();
        assert_eq!(k.master_key_id(), MasterKey::new(&[0x11; 32]).id);
        assert!(!dir.path().join("master.key").exists());

        // No key: generated once into the data dir, stable across restarts.
        let c = config(&[], dir.path()).unwrap();
        let first = Keyring::from_config(&c).unwrap();
        assert!(dir.path().join("master.key").exists());
        assert_eq!(
            Keyring::from_config(&c).unwrap().master_key_id(),
            first.master_key_id()
        );

        // Production refuses the fallback.
        let empty = tempfile::tempdir().unwrap();
        for flag in ["SEREIN_REQUIRE_MASTER_KEY", "SEREIN_REQUIRE_SECRETS"] {
            let c = config(
                &[(flag, "true"), ("JWT_SECRET", &"j".repeat(32))],
                empty.path(),
            )
            .unwrap();
            assert!(Keyring::from_config(&c).is_err(), "{flag}");
        }
        assert!(!empty.path().join("master.key").exists());

        // Bad values name the variable, never echo the value.
        let e = config(&[("SEREIN_MASTER_KEY", "hunter2hunter2")], dir.path()).unwrap_err();
        assert!(
            e.contains("SEREIN_MASTER_KEY") && !e.contains("hunter2"),
            "{e}"
        );
        let e = config(
            &[
                ("SEREIN_MASTER_KEY", &hex),
                ("SEREIN_PREVIOUS_MASTER_KEY", &hex),
            ],
            dir.path(),
        )
        .unwrap_err();
        assert!(e.contains("SEREIN_PREVIOUS_MASTER_KEY"), "{e}");
        let file = dir.path().join("kek");
        std::fs::write(&file, [0x22u8; 32]).unwrap();
        let c = config(
            &[("SEREIN_MASTER_KEY_FILE", file.to_str().unwrap())],
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            Keyring::from_config(&c).unwrap().master_key_id(),
            MasterKey::new(&[0x22; 32]).id
        );
        assert!(!format!("{c:?}").contains("22222222"));
        assert!(!format!("{c:?}").contains("[34, 34"));
    }

    #[test]
    fn crypto_errors_map_to_stable_non_500_problems() {
        assert_eq!(
            AppError::from(CryptoError::Unreadable).status().as_u16(),
            410
        );
        assert_eq!(
            AppError::from(CryptoError::Unreadable).code(),
            "sealed_data_unreadable"
        );
        assert_eq!(
            AppError::from(CryptoError::Destroyed).code(),
            "key_destroyed"
        );
    }
}
