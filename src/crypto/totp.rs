//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step of skew) and recovery codes.
//!
//! Invariants:
//! - A code is accepted once: [`verify`] returns the matched time step, and the caller accepts
//!   it only if it is newer than every step accepted before (`app_private.totp_accept_step`).
//! - Secrets are 160 random bits, stored only sealed (identity-scope envelope encryption).
//! - Recovery codes are 80 random bits (16 base32 characters, shown as `XXXX-XXXX-XXXX-XXXX`);
//!   only their SHA-256 is stored; input is normalised (case, dashes, spaces) before hashing.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use totp_rs::{Builder, Secret, Totp};
use zeroize::Zeroizing;

/// Number of recovery codes issued when TOTP is enabled.
pub const RECOVERY_CODES: usize = 10;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A fresh TOTP secret.
pub fn new_secret() -> Zeroizing<Vec<u8>> {
    let bytes: [u8; 20] = rand::random();
    Zeroizing::new(bytes.to_vec())
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Option<Totp> {
    // ':' separates issuer and account in otpauth URIs.
    let clean = |s: &str| s.replace(':', " ");
    Builder::new()
        .with_secret(secret.to_vec())
        .with_issuer(Some(clean(issuer)))
        .with_account_name(clean(account))
        .build()
        .ok()
}

/// The `otpauth://` URI and the base32 secret for manual entry.
pub fn provisioning(secret: &[u8], issuer: &str, account: &str) -> Option<(String, String)> {
    let t = totp(secret, issuer, account)?;
    let uri = t.to_url().ok()?;
    Some((uri, Secret::from(secret.to_vec()).to_base32()))
}

/// The time step a code matches at `now` (±1 step), if any.
pub fn verify(secret: &[u8], code: &str, now: OffsetDateTime) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, "serein", "x")?;
    let time = u64::try_from(now.unix_timestamp()).ok()?;
    t.check(&code, time)
        .and_then(|step| i64::try_from(step).ok())
}

/// The current code (tests and tooling).
pub fn current_code(secret: &[u8], now: OffsetDateTime) -> Option<String> {
    let t = totp(secret, "serein", "x")?;
    let time = u64::try_from(now.unix_timestamp()).ok()?;
    Some(t.generate(time).to_string())
}

/// Fresh recovery codes, as shown to the person.
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let bytes: [u8; 16] = rand::random();
            let chars: String = bytes
                .iter()
                .map(|b| char::from(BASE32.get(usize::from(b & 31)).copied().unwrap_or(b'A')))
                .collect();
            chars
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// What is stored for a recovery code (and compared on use).
pub fn hash_recovery_code(code: &str) -> [u8; 32] {
    let norm: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    Sha256::digest(norm.as_bytes()).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_step_with_skew_one() {
        let s = new_secret();
        let now = OffsetDateTime::from_unix_timestamp(1_900_000_020).unwrap();
        let code = current_code(&s, now).unwrap();
        let step = verify(&s, &code, now).unwrap();
        assert_eq!(step, 1_900_000_020 / 30);
        // Still accepted one step later, not two.
        assert_eq!(
            verify(&s, &code, now + time::Duration::seconds(30)),
            Some(step)
        );
        assert_eq!(verify(&s, &code, now + time::Duration::seconds(90)), None);
        assert_eq!(verify(&s, "12345", now), None);
        assert_eq!(verify(&s, "abcdef", now), None);
        let other = new_secret();
        assert_ne!(verify(&other, &code, now), Some(step));
    }

    #[test]
    fn provisioning_uri() {
        let s = new_secret();
        let (uri, b32) = provisioning(&s, "Serein (acme)", "ana@acme.test").unwrap();
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        assert!(uri.contains(&b32), "{uri}");
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalised() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut set = std::collections::HashSet::new();
        for c in &codes {
            assert_eq!(c.len(), 19, "{c}");
            assert!(set.insert(hash_recovery_code(c)));
            assert_eq!(
                hash_recovery_code(c),
                hash_recovery_code(&c.to_lowercase().replace('-', " "))
            );
        }
    }
}
