//! Settings of access-token signing: algorithm, keys and issuer. They belong to the signer
//! ([`super::tokens::TokenKeys`]); token lifetimes are the auth feature's policy and stay in its
//! section.
//!
//! Invariants: a configured HS256 secret is at least 32 bytes; EdDSA and RS256 need both PEM
//! files; secrets are `secrecy` types and never reach `Debug` output or errors.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use crate::config::{ConfigError, Settings, config_error};

/// JWT signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret (`JWT_SECRET`, ≥ 32 bytes).
    Hs256,
    /// Ed25519 with a PEM key pair (`JWT_PRIVATE_KEY_FILE`, `JWT_PUBLIC_KEY_FILE`).
    EdDsa,
    /// RSA PKCS#1 v1.5 SHA-256 with a PEM key pair.
    Rs256,
}

/// Validated token-signing settings.
#[derive(Clone)]
pub struct TokenConfig {
    pub jwt_algorithm: JwtAlgorithm,
    /// HS256 secret; with none configured (dev), one is generated once into the data dir.
    pub jwt_secret: Option<SecretString>,
    pub jwt_private_key_file: Option<PathBuf>,
    pub jwt_public_key_file: Option<PathBuf>,
    /// Refuse the generated development secret (production).
    pub require_secrets: bool,
    pub jwt_issuer: String,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("jwt_algorithm", &self.jwt_algorithm)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("jwt_private_key_file", &self.jwt_private_key_file)
            .field("jwt_public_key_file", &self.jwt_public_key_file)
            .field("require_secrets", &self.require_secrets)
            .field("jwt_issuer", &self.jwt_issuer)
            .finish()
    }
}

impl TokenConfig {
    pub fn load(s: &Settings<'_>) -> Result<Self, ConfigError> {
        let jwt_algorithm = s.get("JWT_ALGORITHM", JwtAlgorithm::Hs256, |v| {
            match v.to_ascii_uppercase().as_str() {
                "HS256" => Ok(JwtAlgorithm::Hs256),
                "EDDSA" => Ok(JwtAlgorithm::EdDsa),
                "RS256" => Ok(JwtAlgorithm::Rs256),
                other => Err(format!("expected HS256, EdDSA or RS256, got {other:?}")),
            }
        })?;
        let mut jwt_secret = s.secret("JWT_SECRET");
        if let Some(path) = s.opt("JWT_SECRET_FILE", |v| Ok(PathBuf::from(v)))? {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                config_error(
                    "JWT_SECRET_FILE",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            jwt_secret = Some(SecretString::from(text.trim().to_owned()));
        }
        if let Some(secret) = &jwt_secret
            && secret.expose_secret().len() < 32
        {
            return Err(config_error(
                "JWT_SECRET",
                "must be at least 32 bytes (value not shown)",
            ));
        }
        let jwt_private_key_file = s.opt("JWT_PRIVATE_KEY_FILE", |v| Ok(PathBuf::from(v)))?;
        let jwt_public_key_file = s.opt("JWT_PUBLIC_KEY_FILE", |v| Ok(PathBuf::from(v)))?;
        if jwt_algorithm != JwtAlgorithm::Hs256
            && (jwt_private_key_file.is_none() || jwt_public_key_file.is_none())
        {
            return Err(config_error(
                "JWT_PRIVATE_KEY_FILE",
                "EdDSA and RS256 need JWT_PRIVATE_KEY_FILE and JWT_PUBLIC_KEY_FILE (PEM)",
            ));
        }
        let require_secrets = s.flag("SEREIN_REQUIRE_SECRETS", false)?;
        let jwt_issuer = s.get("JWT_ISSUER", "serein".to_owned(), |v| {
            if v.is_empty() || v.len() > 200 {
                Err("must be 1–200 characters".to_owned())
            } else {
                Ok(v.to_owned())
            }
        })?;
        Ok(Self {
            jwt_algorithm,
            jwt_secret,
            jwt_private_key_file,
            jwt_public_key_file,
            require_secrets,
            jwt_issuer,
        })
    }
}
