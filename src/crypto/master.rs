//! The master key-encryption key (KEK) and the settings of envelope encryption.
//!
//! Where the master key comes from, first match wins:
//! 1. `SEREIN_MASTER_KEY`: 32 bytes as 64 hex digits or base64 (standard or URL-safe, padded or
//!    not);
//! 2. `SEREIN_MASTER_KEY_FILE`: a file holding the same text, or exactly 32 raw bytes (a mounted
//!    Kubernetes secret);
//! 3. development only: `<SEREIN_DATA_DIR>/master.key`, generated once (mode 0600) with a
//!    warning. Refused when `SEREIN_REQUIRE_MASTER_KEY=true` (which defaults to
//!    `SEREIN_REQUIRE_SECRETS`).
//!
//! Master rotation: set the new key as `SEREIN_MASTER_KEY` and the old one as
//! `SEREIN_PREVIOUS_MASTER_KEY` (or `…_FILE`), run `serein keys rotate` (every live tenant key is
//! re-wrapped under the new master), then drop the previous key. Identity-scope blobs (TOTP
//! secrets) sealed under the previous master keep opening while it is configured; re-seal them
//! with `Keyring::reseal_identity` before dropping it.
//!
//! Invariants: key values are never echoed (errors name the variable, not the value); they are
//! held in `secrecy` types and `Zeroizing` buffers; a master key is identified by a 32-bit id
//! (the first four bytes of SHA-256 over a label and the key), which is what blobs name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::sealed::{DataKey, KEY_LEN};
use crate::config::{ConfigError, Settings, config_error};

/// Validated settings of envelope encryption.
#[derive(Clone)]
pub struct CryptoConfig {
    /// The master KEK (exactly 32 bytes); `None`: development fallback in the data dir.
    pub master_key: Option<SecretSlice<u8>>,
    /// The previous master KEK, still accepted for unwrapping during a master rotation.
    pub previous_master_key: Option<SecretSlice<u8>>,
    /// Refuse the generated development key (production).
    pub require_master_key: bool,
    /// Unwrapped keys kept in memory (0 disables the cache).
    pub key_cache_capacity: usize,
    /// How long an unwrapped key is reused before its row is read again. Bounds how long
    /// another server instance keeps opening data after a key was destroyed elsewhere.
    pub key_cache_ttl: Duration,
    /// Where the development master key is generated (`SEREIN_DATA_DIR`).
    pub data_dir: PathBuf,
}

impl std::fmt::Debug for CryptoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptoConfig")
            .field(
                "master_key",
                &self.master_key.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "previous_master_key",
                &self.previous_master_key.as_ref().map(|_| "[redacted]"),
            )
            .field("require_master_key", &self.require_master_key)
            .field("key_cache_capacity", &self.key_cache_capacity)
            .field("key_cache_ttl", &self.key_cache_ttl)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl CryptoConfig {
    pub fn load(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let master_key = key_setting(s, "SEREIN_MASTER_KEY")?;
        let previous_master_key = key_setting(s, "SEREIN_PREVIOUS_MASTER_KEY")?;
        if let (Some(m), Some(p)) = (&master_key, &previous_master_key)
            && m.expose_secret() == p.expose_secret()
        {
            return Err(config_error(
                "SEREIN_PREVIOUS_MASTER_KEY",
                "equals SEREIN_MASTER_KEY (value not shown)",
            ));
        }
        if previous_master_key.is_some() && master_key.is_none() {
            return Err(config_error(
                "SEREIN_PREVIOUS_MASTER_KEY",
                "needs SEREIN_MASTER_KEY (or SEREIN_MASTER_KEY_FILE) too",
            ));
        }
        let require_secrets = s.flag("SEREIN_REQUIRE_SECRETS", false)?;
        let require_master_key = s.flag("SEREIN_REQUIRE_MASTER_KEY", require_secrets)?;
        let key_cache_capacity =
            usize::try_from(s.int("SEREIN_KEY_CACHE_SIZE", 1024, 0, 1_000_000)?).unwrap_or(1024);
        let key_cache_ttl =
            Duration::from_secs(s.int("SEREIN_KEY_CACHE_TTL_SECS", 60, 0, 86_400)?);
        Ok(Self {
            master_key,
            previous_master_key,
            require_master_key,
            key_cache_capacity,
            key_cache_ttl,
            data_dir: s.data_dir()?,
        })
    }
}

/// `NAME` (the value) or `NAME_FILE` (a path), not both.
fn key_setting(s: &Settings<'_>, name: &str) -> Result<Option<SecretSlice<u8>>, ConfigError> {
    let file_name = format!("{name}_FILE");
    let value = s.secret(name);
    let file = s.opt(&file_name, |v| Ok(PathBuf::from(v)))?;
    match (value, file) {
        (Some(_), Some(_)) => Err(config_error(
            name,
            format!("set either {name} or {file_name}, not both"),
        )),
        (Some(v), None) => parse_key_text(v.expose_secret())
            .map(|k| Some(SecretSlice::from(k.to_vec())))
            .map_err(|reason| config_error(name, reason)),
        (None, Some(path)) => read_key_file(&path)
            .map(|k| Some(SecretSlice::from(k.to_vec())))
            .map_err(|reason| config_error(&file_name, reason)),
        (None, None) => Ok(None),
    }
}

/// 64 hex digits, or base64 of 32 bytes. The error never contains the value.
pub fn parse_key_text(text: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, String> {
    let text = text.trim();
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        for (out, pair) in key.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| "not hex".to_owned())?;
            *out = u8::from_str_radix(pair, 16).map_err(|_| "not hex".to_owned())?;
        }
        return Ok(key);
    }
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(bytes) = engine.decode(text) {
            let bytes = Zeroizing::new(bytes);
            if bytes.len() == KEY_LEN {
                key.copy_from_slice(&bytes);
                return Ok(key);
            }
            return Err(format!(
                "must decode to exactly {KEY_LEN} bytes (value not shown)"
            ));
        }
    }
    Err(format!(
        "expected {KEY_LEN} bytes as 64 hex digits or base64 (value not shown)"
    ))
}

/// A key file: text as [`parse_key_text`], or exactly 32 raw bytes.
pub fn read_key_file(path: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>, String> {
    let bytes = Zeroizing::new(
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    if let Ok(raw) = <[u8; KEY_LEN]>::try_from(bytes.as_slice()) {
        return Ok(Zeroizing::new(raw));
    }
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| format!("{}: neither 32 raw bytes nor text", path.display()))?;
    parse_key_text(text).map_err(|reason| format!("{}: {reason}", path.display()))
}

/// A master KEK and the id blobs name it by.
pub(crate) struct MasterKey {
    pub id: u32,
    pub key: DataKey,
}

impl MasterKey {
    pub fn new(bytes: &[u8; KEY_LEN]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"serein master key id v1|")
            .chain_update(bytes)
            .finalize();
        let mut id = [0u8; 4];
        for (o, d) in id.iter_mut().zip(digest.iter()) {
            *o = *d;
        }
        Self {
            id: u32::from_be_bytes(id),
            key: DataKey::from_bytes(bytes),
        }
    }

    pub fn from_secret(s: &SecretSlice<u8>) -> anyhow::Result<Self> {
        let bytes: [u8; KEY_LEN] = s
            .expose_secret()
            .try_into()
            .map_err(|_| anyhow::anyhow!("master key must be {KEY_LEN} bytes"))?;
        let bytes = Zeroizing::new(bytes);
        Ok(Self::new(&bytes))
    }
}

/// The development master key: `<data_dir>/master.key` (base64), generated once.
pub(crate) fn dev_master_key(data_dir: &Path) -> anyhow::Result<Zeroizing<[u8; KEY_LEN]>> {
    let path = data_dir.join("master.key");
    match read_key_file(&path) {
        Ok(k) => return Ok(k),
        Err(_) if !path.exists() => {}
        Err(reason) => anyhow::bail!("{reason}"),
    }
    std::fs::create_dir_all(data_dir)?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    super::sealed::fill_random(key.as_mut_slice())?;
    let text = Zeroizing::new(STANDARD.encode(key.as_slice()));
    match super::tokens::write_private(&path, text.as_bytes()) {
        Ok(()) => {
            tracing::warn!(
                path = %path.display(),
                "no SEREIN_MASTER_KEY configured: generated a development master key; \
                 losing this file makes every sealed record unreadable; set SEREIN_MASTER_KEY \
                 (or SEREIN_MASTER_KEY_FILE) and SEREIN_REQUIRE_MASTER_KEY=true in production"
            );
            Ok(key)
        }
        // Another process generated it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_key_file(&path).map_err(|r| anyhow::anyhow!(r))
        }
        Err(e) => Err(anyhow::anyhow!("cannot write {}: {e}", path.display())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn key_text_accepts_hex_and_base64_and_never_echoes() {
        let raw = [0xabu8; 32];
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(*parse_key_text(&hex).unwrap(), raw);
        assert_eq!(*parse_key_text(&hex.to_uppercase()).unwrap(), raw);
        for e in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
            assert_eq!(
                *parse_key_text(&format!(" {}\n", e.encode(raw))).unwrap(),
                raw
            );
        }
        let short = STANDARD.encode([1u8; 16]);
        let err = parse_key_text(&short).unwrap_err();
        assert!(!err.contains(&short));
        let err = parse_key_text("hunter2-not-a-key!").unwrap_err();
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn key_files_hold_text_or_raw_bytes_and_dev_key_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("raw");
        std::fs::write(&raw, [7u8; 32]).unwrap();
        assert_eq!(*read_key_file(&raw).unwrap(), [7u8; 32]);
        let text = dir.path().join("text");
        std::fs::write(&text, format!("{}\n", STANDARD.encode([8u8; 32]))).unwrap();
        assert_eq!(*read_key_file(&text).unwrap(), [8u8; 32]);

        let data = dir.path().join("data");
        let first = dev_master_key(&data).unwrap();
        let second = dev_master_key(&data).unwrap();
        assert_eq!(*first, *second, "the dev key is generated once");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join("master.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn master_ids_differ_per_key() {
        assert_ne!(MasterKey::new(&[1; 32]).id, MasterKey::new(&[2; 32]).id);
        assert_eq!(MasterKey::new(&[1; 32]).id, MasterKey::new(&[1; 32]).id);
    }
}
