//! Passwords: Argon2id hashing off the async runtime, and the acceptance policy.
//!
//! Invariants:
//! - Hashing and verification run in `spawn_blocking` behind a semaphore (one permit per core by
//!   default), so a burst of logins queues instead of starving the runtime or the memory
//!   (19 MiB per hash with the OWASP parameters).
//! - Verification of an unknown account runs against a dummy hash with the same parameters, so
//!   "no such e-mail" and "wrong password" take the same time.
//! - Accepted passwords are 8–128 characters and not among the most common passwords
//!   (`common_passwords.txt`, 11,611 entries of 8+ characters, compared case-insensitively).
//! - Plaintext passwords only travel as `SecretString` and are never logged.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::error::{AppError, FieldError};

/// Shortest and longest accepted password, in characters.
pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
});

/// Number of entries of the common-password list (documentation and tests).
pub fn common_list_len() -> usize {
    COMMON.len()
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashCost {
    /// OWASP's recommended Argon2id configuration (19 MiB, t=2, p=1).
    pub const OWASP: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
    };
}

/// Why a candidate password is refused.
pub fn check_policy(password: &SecretString, email: &str) -> Result<(), AppError> {
    let p = password.expose_secret();
    let n = p.chars().count();
    let reason = if n < MIN_LEN {
        Some(format!("must be at least {MIN_LEN} characters"))
    } else if n > MAX_LEN {
        Some(format!("must be at most {MAX_LEN} characters"))
    } else {
        let lower = p.to_lowercase();
        let local = email.split('@').next().unwrap_or_default().to_lowercase();
        if COMMON.contains(lower.as_str()) {
            Some("is one of the most common passwords; choose another".to_owned())
        } else if !local.is_empty() && lower == local || lower == email.to_lowercase() {
            Some("must not be your e-mail address".to_owned())
        } else {
            None
        }
    };
    match reason {
        Some(reason) => Err(AppError::Validation(vec![FieldError {
            field: "password".into(),
            reason,
        }])),
        None => Ok(()),
    }
}

/// The password hasher shared by every request.
#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    permits: Semaphore,
    /// A hash of a random password, verified against when the account does not exist.
    dummy: String,
}

impl Passwords {
    pub fn new(cost: HashCost, concurrency: usize) -> anyhow::Result<Self> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid Argon2 parameters: {e}"))?;
        let random: [u8; 32] = rand::random();
        let dummy = hasher(&params)
            .hash_password(&random)
            .map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?
            .to_string();
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                permits: Semaphore::new(concurrency.max(1)),
                dummy,
            }),
        })
    }

    /// Hash a password (PHC string: algorithm, parameters and salt travel with the hash).
    pub async fn hash(&self, password: &SecretString) -> Result<String, AppError> {
        let _permit = self.permit().await?;
        let params = self.inner.params.clone();
        let password = password.clone();
        tokio::task::spawn_blocking(move || {
            hasher(&params)
                .hash_password(password.expose_secret().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| AppError::Internal(format!("password hashing failed: {e}")))
        })
        .await
        .map_err(|e| AppError::Internal(format!("hashing task failed: {e}")))?
    }

    /// Check a password against a stored hash; `None` (no account, or no password set) is
    /// checked against the dummy hash and always fails, in the same time.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<bool, AppError> {
        let _permit = self.permit().await?;
        let (hash, real) = match stored {
            Some(h) => (h.to_owned(), true),
            None => (self.inner.dummy.clone(), false),
        };
        let params = self.inner.params.clone();
        let password = password.clone();
        let ok = tokio::task::spawn_blocking(move || {
            hasher(&params)
                .verify_password(password.expose_secret().as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
        .map_err(|e| AppError::Internal(format!("verification task failed: {e}")))?;
        Ok(ok && real)
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, AppError> {
        self.inner
            .permits
            .acquire()
            .await
            .map_err(|_| AppError::Internal("password semaphore closed".into()))
    }
}

fn hasher(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn cheap() -> Passwords {
        Passwords::new(
            HashCost {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            2,
        )
        .unwrap()
    }

    #[test]
    fn list_is_shipped_and_policy_applies() {
        assert!(common_list_len() >= 10_000, "{}", common_list_len());
        let s = |p: &str| SecretString::from(p.to_owned());
        assert!(check_policy(&s("short"), "a@b.c").is_err());
        assert!(check_policy(&s(&"x".repeat(129)), "a@b.c").is_err());
        assert!(check_policy(&s("Password1"), "a@b.c").is_err());
        assert!(check_policy(&s("qwertyuiop"), "a@b.c").is_err());
        assert!(check_policy(&s("alice.martin"), "alice.martin@acme.test").is_err());
        assert!(check_policy(&s("correct horse battery staple"), "a@b.c").is_ok());
        // Length counts characters, not bytes.
        assert!(check_policy(&s("éééééééé"), "a@b.c").is_ok());
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let p = cheap();
        let pw = SecretString::from("correct horse battery staple".to_owned());
        let h = p.hash(&pw).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert!(p.verify(&pw, Some(&h)).await.unwrap());
        let wrong = SecretString::from("correct horse battery stapler".to_owned());
        assert!(!p.verify(&wrong, Some(&h)).await.unwrap());
        assert!(!p.verify(&pw, None).await.unwrap());
        assert!(!p.verify(&pw, Some("not a hash")).await.unwrap());
    }
}
