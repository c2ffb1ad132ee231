//! Sealed records: AES-256-GCM with a fresh random nonce per record, bound to where the record
//! lives by its associated data, stored as one self-describing blob. Pure functions over a key
//! in memory; which key to use is the [`crate::crypto::keyring`]'s business.
//!
//! Blob format (version 1), all integers big-endian:
//!
//! ```text
//! offset  0      1              5                17                      len
//!         | 0x01 | key_version  | nonce (12 B)   | ciphertext | tag (16 B) |
//! ```
//!
//! - `key_version` names the key that sealed the record: the tenant key version (clinical
//!   scope), the subject key version (subject scope), or the master key id (identity scope and
//!   wrapped tenant keys). Rotation therefore never rewrites old blobs to keep them readable.
//! - GCM authenticates the header's first five bytes (format, key version) followed by the
//!   caller's associated data, so even a key version rewritten in place fails to open.
//! - The associated data of a record is `v1|{tenant_id}|{table}|{column}|{row_id}` (the identity
//!   scope uses the nil tenant). Table and column must be SQL identifiers (`[a-z0-9_]`, ≤ 63), so
//!   the `|`-joined string is unambiguous. A blob copied to another row, column, table or
//!   tenant fails to open.
//! - Wrapped keys use the same format with associated data naming the key's identity
//!   (`serein-key v1|…`, see the keyring), so a wrapped key cannot be swapped between tenants,
//!   purposes, subjects or versions. The master key check seals a known constant under the
//!   master with `serein-key-check v1|{id}` ([`crate::crypto::keycheck`]). The three AAD
//!   families cannot collide (different prefixes).
//!
//! Invariants: every failure to open (wrong key, any flipped byte, truncation, moved record,
//! unknown format version) is the one opaque [`CryptoError::Unreadable`]; nothing here logs or
//! formats key material or plaintext; keys live in [`DataKey`], zeroed on drop; opened
//! plaintext is returned in `Zeroizing` buffers. Nonces are 96 random bits from the operating
//! system's generator: the collision bound (2⁻³² after 2³² records under one key, NIST SP
//! 800-38D) is far above what one tenant or subject key seals before rotation.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use rand::TryRng;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::db::TenantId;

/// The only blob format version written (and read) today.
pub const FORMAT_V1: u8 = 1;
/// Bytes of a key.
pub const KEY_LEN: usize = 32;
/// Bytes of a nonce (96 bits, the GCM standard).
pub const NONCE_LEN: usize = 12;
/// Bytes of the authentication tag.
pub const TAG_LEN: usize = 16;
/// Bytes before the ciphertext: format, key version, nonce.
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// Bytes of a wrapped key (a sealed 32-byte key).
pub const WRAPPED_KEY_LEN: usize = HEADER_LEN + KEY_LEN + TAG_LEN;

/// Why sealing or opening failed. Callers decide how to answer (see [`crate::crypto::keyring`]);
/// none of the variants carries secret material.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The blob cannot be opened: wrong or destroyed key, tampering, a record moved to another
    /// row or tenant, truncation, or an unknown format. Deliberately one opaque case.
    #[error("sealed data is unreadable")]
    Unreadable,
    /// Sealing was refused because the key of this scope was destroyed (an erased subject, an
    /// offboarded tenant): nothing new may be written under it.
    #[error("the key of this scope has been destroyed")]
    Destroyed,
    /// The associated data is malformed (a programming error: table or column not an
    /// identifier, or a tenant that is not the transaction's).
    #[error("invalid associated data: {0}")]
    InvalidAad(&'static str),
    /// The operating system's random generator failed.
    #[error("no randomness available")]
    Rng,
    /// The plaintext is too long for one AES-GCM message (64 GiB).
    #[error("plaintext too long")]
    TooLong,
    /// A concurrent key change (another rotation) won the race; retry.
    #[error("a concurrent key change won; retry")]
    Concurrent,
    /// The key tables could not be read or written.
    #[error("key storage: {0}")]
    Database(#[from] sqlx::Error),
}

/// A 256-bit key in memory, zeroed when dropped. `Debug` never shows it.
pub struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Result<Self, CryptoError> {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(k.as_mut_slice())?;
        Ok(Self(k))
    }

    /// Take ownership of key bytes (the caller's buffer should itself be `Zeroizing`).
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(*bytes))
    }

    /// The raw bytes (for wrapping under a parent key, and HKDF).
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn cipher(&self) -> Aes256Gcm {
        // With the `zeroize` feature the expanded key schedule is zeroed on drop too.
        Aes256Gcm::new((&*self.0).into())
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// Fill `buf` from the operating system's generator.
pub fn fill_random(buf: &mut [u8]) -> Result<(), CryptoError> {
    rand::rngs::SysRng
        .try_fill_bytes(buf)
        .map_err(|_| CryptoError::Rng)
}

/// Where a sealed record lives; becomes its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aad<'a> {
    pub tenant: TenantId,
    pub table: &'a str,
    pub column: &'a str,
    pub row_id: Uuid,
}

impl<'a> Aad<'a> {
    /// The associated data of an identity-level secret of the global `users` table (TOTP
    /// secrets): the tenant is the nil UUID.
    pub fn identity(table: &'a str, column: &'a str, row_id: Uuid) -> Self {
        Self {
            tenant: TenantId(Uuid::nil()),
            table,
            column,
            row_id,
        }
    }

    /// A row identity that also binds other columns of the row (who sent a message, which
    /// consultation it belongs to, which note and version a text is): the first 128 bits of
    /// SHA-256 over `serein row v1` and the parts. A blob whose row was edited in any of
    /// them then fails to open, like one moved to another row.
    pub fn bound_row(id: Uuid, parts: &[&[u8]]) -> Uuid {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(b"serein row v1");
        h.update(id.as_bytes());
        for p in parts {
            h.update(u64::try_from(p.len()).unwrap_or(u64::MAX).to_be_bytes());
            h.update(p);
        }
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        for (b, d) in bytes.iter_mut().zip(digest.iter()) {
            *b = *d;
        }
        Uuid::from_bytes(bytes)
    }

    /// `v1|{tenant}|{table}|{column}|{row_id}`.
    pub fn encode(&self) -> Result<Vec<u8>, CryptoError> {
        if !is_identifier(self.table) {
            return Err(CryptoError::InvalidAad("table is not an identifier"));
        }
        if !is_identifier(self.column) {
            return Err(CryptoError::InvalidAad("column is not an identifier"));
        }
        Ok(format!(
            "v1|{}|{}|{}|{}",
            self.tenant.as_uuid().hyphenated(),
            self.table,
            self.column,
            self.row_id.hyphenated()
        )
        .into_bytes())
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The key version a blob names, if it is a well-formed version-1 blob.
pub fn key_version(blob: &[u8]) -> Option<u32> {
    if blob.len() < HEADER_LEN + TAG_LEN || blob.first() != Some(&FORMAT_V1) {
        return None;
    }
    let v: [u8; 4] = blob.get(1..5)?.try_into().ok()?;
    Some(u32::from_be_bytes(v))
}

/// The nonce of a well-formed blob: unique per sealing, so it identifies one wrapping of a key.
pub fn nonce_of(blob: &[u8]) -> Option<[u8; NONCE_LEN]> {
    key_version(blob)?;
    blob.get(5..HEADER_LEN)?.try_into().ok()
}

/// What GCM authenticates besides the ciphertext: the header's format byte and key version,
/// then the caller's associated data. (The nonce is authenticated by GCM itself.)
fn authenticated_data(format: u8, key_version: u32, aad: &[u8]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(5 + aad.len());
    ad.push(format);
    ad.extend_from_slice(&key_version.to_be_bytes());
    ad.extend_from_slice(aad);
    ad
}

/// Seal `plaintext` under `key`, naming `key_version` in the blob.
pub fn seal_with(
    key: &DataKey,
    key_version: u32,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    seal_with_nonce(key, key_version, &nonce, aad, plaintext)
}

fn seal_with_nonce(
    key: &DataKey,
    key_version: u32,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    // The whole blob is built in one allocation of its final size, so the plaintext copied in
    // is encrypted where it lies and no reallocation leaves a plaintext copy behind.
    let total = HEADER_LEN
        .checked_add(plaintext.len())
        .and_then(|n| n.checked_add(TAG_LEN))
        .ok_or(CryptoError::TooLong)?;
    let mut blob = Vec::with_capacity(total);
    blob.push(FORMAT_V1);
    blob.extend_from_slice(&key_version.to_be_bytes());
    blob.extend_from_slice(nonce);
    blob.extend_from_slice(plaintext);
    let body = blob.get_mut(HEADER_LEN..).ok_or(CryptoError::TooLong)?;
    let ad = authenticated_data(FORMAT_V1, key_version, aad);
    let tag = key
        .cipher()
        .encrypt_inout_detached(&Nonce::from(*nonce), &ad, body.into())
        .map_err(|_| CryptoError::TooLong)?;
    blob.extend_from_slice(tag.as_slice());
    Ok(blob)
}

/// Open a blob sealed by [`seal_with`] under `key` with the same associated data.
pub fn open_with(
    key: &DataKey,
    aad: &[u8],
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let version = key_version(blob).ok_or(CryptoError::Unreadable)?;
    let ad = authenticated_data(FORMAT_V1, version, aad);
    let nonce: [u8; NONCE_LEN] = blob
        .get(5..HEADER_LEN)
        .and_then(|n| n.try_into().ok())
        .ok_or(CryptoError::Unreadable)?;
    let body = blob.get(HEADER_LEN..).ok_or(CryptoError::Unreadable)?;
    let split = body
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(CryptoError::Unreadable)?;
    let (ciphertext, tag) = body.split_at(split);
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| CryptoError::Unreadable)?;
    let mut out = Zeroizing::new(ciphertext.to_vec());
    key.cipher()
        .decrypt_inout_detached(
            &Nonce::from(nonce),
            &ad,
            out.as_mut_slice().into(),
            &tag.into(),
        )
        .map_err(|_| CryptoError::Unreadable)?;
    Ok(out)
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
    use proptest::prelude::*;

    fn key(b: u8) -> DataKey {
        DataKey::from_bytes(&[b; KEY_LEN])
    }

    fn aad(tenant: Uuid, row: Uuid) -> Vec<u8> {
        Aad {
            tenant: TenantId(tenant),
            table: "journal_entries",
            column: "body",
            row_id: row,
        }
        .encode()
        .unwrap()
    }

    #[test]
    fn the_blob_is_self_describing() {
        let k = key(7);
        let a = aad(Uuid::now_v7(), Uuid::now_v7());
        let blob = seal_with(&k, 0x0102_0304, &a, b"hello").unwrap();
        assert_eq!(blob.len(), HEADER_LEN + 5 + TAG_LEN);
        assert_eq!(blob[0], FORMAT_V1);
        assert_eq!(&blob[1..5], &[1, 2, 3, 4]);
        assert_eq!(key_version(&blob), Some(0x0102_0304));
        assert!(!blob.windows(5).any(|w| w == b"hello"), "plaintext visible");
        assert_eq!(&**open_with(&k, &a, &blob).unwrap(), b"hello");
        // A wrapped key has the documented fixed length.
        let wrapped = seal_with(&k, 1, &a, &[9u8; KEY_LEN]).unwrap();
        assert_eq!(wrapped.len(), WRAPPED_KEY_LEN);
    }

    #[test]
    fn the_aad_is_the_documented_string_and_refuses_ambiguity() {
        let t = Uuid::from_u128(1);
        let r = Uuid::from_u128(2);
        let a = Aad {
            tenant: TenantId(t),
            table: "clinical_notes",
            column: "body",
            row_id: r,
        };
        assert_eq!(
            String::from_utf8(a.encode().unwrap()).unwrap(),
            "v1|00000000-0000-0000-0000-000000000001|clinical_notes|body|00000000-0000-0000-0000-000000000002"
        );
        for (table, column) in [("a|b", "c"), ("a", "b|c"), ("", "c"), ("Notes", "c")] {
            let bad = Aad {
                tenant: TenantId(t),
                table,
                column,
                row_id: r,
            };
            assert!(matches!(bad.encode(), Err(CryptoError::InvalidAad(_))));
        }
        assert!(Aad::identity("users", "totp_secret", r).tenant.0.is_nil());
    }

    #[test]
    fn wrong_key_moved_row_other_tenant_other_column_fail() {
        let k = key(1);
        let (t1, t2, r1, r2) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let blob = seal_with(&k, 1, &aad(t1, r1), b"secret").unwrap();
        assert!(open_with(&k, &aad(t1, r1), &blob).is_ok());
        for bad in [aad(t1, r2), aad(t2, r1)] {
            assert!(matches!(
                open_with(&k, &bad, &blob),
                Err(CryptoError::Unreadable)
            ));
        }
        let other_column = Aad {
            tenant: TenantId(t1),
            table: "journal_entries",
            column: "title",
            row_id: r1,
        }
        .encode()
        .unwrap();
        assert!(open_with(&k, &other_column, &blob).is_err());
        assert!(open_with(&key(2), &aad(t1, r1), &blob).is_err());
    }

    #[test]
    fn truncated_or_unknown_format_fails() {
        let k = key(1);
        let a = aad(Uuid::now_v7(), Uuid::now_v7());
        let blob = seal_with(&k, 1, &a, b"x").unwrap();
        for n in 0..blob.len() {
            assert!(
                open_with(&k, &a, &blob[..n]).is_err(),
                "prefix of {n} opened"
            );
        }
        let mut v2 = blob.clone();
        v2[0] = 2;
        assert!(matches!(
            open_with(&k, &a, &v2),
            Err(CryptoError::Unreadable)
        ));
        let mut longer = blob;
        longer.push(0);
        assert!(open_with(&k, &a, &longer).is_err());
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let k = key(3);
        let a = aad(Uuid::now_v7(), Uuid::now_v7());
        let blob = seal_with(&k, 9, &a, b"").unwrap();
        assert!(open_with(&k, &a, &blob).unwrap().is_empty());
    }

    #[test]
    fn nonces_never_repeat_over_100k_encryptions() {
        let k = key(5);
        let a = aad(Uuid::now_v7(), Uuid::now_v7());
        let mut seen = std::collections::HashSet::with_capacity(100_000);
        for _ in 0..100_000 {
            let blob = seal_with(&k, 1, &a, b"").unwrap();
            assert!(seen.insert(nonce_of(&blob).unwrap()), "nonce repeated");
        }
        assert_eq!(seen.len(), 100_000);
    }

    #[test]
    fn debug_never_shows_the_key() {
        assert_eq!(format!("{:?}", key(0x41)), "DataKey([redacted])");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn round_trip(plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
                      version in any::<u32>(), kb in any::<[u8; 32]>()) {
            let k = DataKey::from_bytes(&kb);
            let a = aad(Uuid::now_v7(), Uuid::now_v7());
            let blob = seal_with(&k, version, &a, &plaintext).unwrap();
            prop_assert_eq!(key_version(&blob), Some(version));
            prop_assert_eq!(&**open_with(&k, &a, &blob).unwrap(), plaintext.as_slice());
        }

        #[test]
        fn any_flipped_bit_fails(plaintext in proptest::collection::vec(any::<u8>(), 0..256),
                                 pos in any::<proptest::sample::Index>(), bit in 0u8..8) {
            let k = key(9);
            let a = aad(Uuid::now_v7(), Uuid::now_v7());
            let mut blob = seal_with(&k, 1, &a, &plaintext).unwrap();
            let i = pos.index(blob.len());
            blob[i] ^= 1 << bit;
            prop_assert!(matches!(open_with(&k, &a, &blob), Err(CryptoError::Unreadable)));
        }
    }

    #[test]
    fn every_single_byte_flip_fails_exhaustively() {
        let k = key(4);
        let a = aad(Uuid::now_v7(), Uuid::now_v7());
        let blob = seal_with(&k, 3, &a, b"a journal entry").unwrap();
        for i in 0..blob.len() {
            for bit in 0..8 {
                let mut t = blob.clone();
                t[i] ^= 1 << bit;
                assert!(open_with(&k, &a, &t).is_err(), "byte {i} bit {bit}");
            }
        }
    }
}
