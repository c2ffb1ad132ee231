//! Tokens: signed access JWTs (and the short-lived MFA and enrolment JWTs), and opaque random
//! tokens stored only as hashes (refresh tokens, reset and verification links, recovery codes).
//!
//! Invariants:
//! - One algorithm is accepted, the configured one; `alg: none` or another algorithm fails.
//! - `aud` is the host the token was issued on (`acme.localhost`, or the platform host) and
//!   must equal the host of the request; `tid` must equal the tenant the host resolved to; `typ`
//!   must be the type the caller expects (an MFA token is not an access token).
//! - Expiry is checked against the injected clock (not the wall clock), with no leeway.
//! - Opaque tokens are 256 random bits, base64url; only their SHA-256 is stored, so a database
//!   dump yields nothing usable. Comparisons happen in the database on the hash.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::token_config::{JwtAlgorithm, TokenConfig};
use crate::db::{SessionId, TenantId, UserId};
use crate::rbac::Role;

/// What a JWT may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// Bearer token of an authenticated session.
    Access,
    /// Proves the password step of a login with TOTP; exchanged with a code.
    Mfa,
    /// Lets an admin without TOTP reach the enrolment routes only.
    Enroll,
}

/// Claims of every JWT Serein issues.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The host the token was issued on.
    pub aud: String,
    pub sub: UserId,
    pub tid: TenantId,
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Session (refresh-token family); access tokens only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<SessionId>,
    pub typ: TokenType,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

/// Why a token was refused (all map to 401; the distinction is for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed or badly signed token")]
    Invalid,
    #[error("token expired")]
    Expired,
    #[error("token issued for another host or tenant")]
    WrongAudience,
    #[error("token of another type")]
    WrongType,
}

/// Signing and verification keys.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    algorithm: Algorithm,
    issuer: String,
    key_id: Option<String>,
}

impl TokenKeys {
    /// Keys from configuration. With HS256 and no secret configured, a development secret is
    /// generated once into `<data_dir>/jwt.secret` (refused when `SEREIN_REQUIRE_SECRETS`).
    pub fn from_config(cfg: &TokenConfig, data_dir: &Path) -> anyhow::Result<Self> {
        let (encoding, decoding, algorithm) = match cfg.jwt_algorithm {
            JwtAlgorithm::Hs256 => {
                let secret: Vec<u8> = match &cfg.jwt_secret {
                    Some(s) => {
                        use secrecy::ExposeSecret;
                        s.expose_secret().as_bytes().to_vec()
                    }
                    None => {
                        if cfg.require_secrets {
                            anyhow::bail!(
                                "JWT_SECRET (or JWT_SECRET_FILE) is required when SEREIN_REQUIRE_SECRETS=true"
                            );
                        }
                        dev_secret(data_dir)?
                    }
                };
                (
                    EncodingKey::from_secret(&secret),
                    DecodingKey::from_secret(&secret),
                    Algorithm::HS256,
                )
            }
            JwtAlgorithm::EdDsa | JwtAlgorithm::Rs256 => {
                let read =
                    |p: &Option<std::path::PathBuf>, what: &str| -> anyhow::Result<Vec<u8>> {
                        let p = p
                            .as_ref()
                            .ok_or_else(|| anyhow::anyhow!("{what} is not configured"))?;
                        std::fs::read(p)
                            .map_err(|e| anyhow::anyhow!("cannot read {what} {}: {e}", p.display()))
                    };
                let private = read(&cfg.jwt_private_key_file, "JWT_PRIVATE_KEY_FILE")?;
                let public = read(&cfg.jwt_public_key_file, "JWT_PUBLIC_KEY_FILE")?;
                if cfg.jwt_algorithm == JwtAlgorithm::EdDsa {
                    (
                        EncodingKey::from_ed_pem(&private)?,
                        DecodingKey::from_ed_pem(&public)?,
                        Algorithm::EdDSA,
                    )
                } else {
                    (
                        EncodingKey::from_rsa_pem(&private)?,
                        DecodingKey::from_rsa_pem(&public)?,
                        Algorithm::RS256,
                    )
                }
            }
        };
        let keys = Self {
            encoding,
            decoding,
            algorithm,
            issuer: cfg.jwt_issuer.clone(),
            key_id: None,
        };
        // Fail at start-up, not at the first login, if the pair does not match.
        let probe = keys.sign(&Claims {
            iss: keys.issuer.clone(),
            aud: "probe".into(),
            sub: UserId(Uuid::nil()),
            tid: TenantId::PLATFORM,
            roles: Vec::new(),
            sid: None,
            typ: TokenType::Mfa,
            iat: 0,
            exp: i64::MAX / 2,
            jti: Uuid::nil(),
        })?;
        keys.verify(
            &probe,
            "probe",
            TenantId::PLATFORM,
            TokenType::Mfa,
            OffsetDateTime::UNIX_EPOCH,
        )
        .map_err(|e| anyhow::anyhow!("JWT keys do not verify their own signature: {e}"))?;
        Ok(keys)
    }

    /// Keys for tests (HS256 with the given secret).
    pub fn hs256(secret: &[u8], issuer: &str) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            algorithm: Algorithm::HS256,
            issuer: issuer.to_owned(),
            key_id: None,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Sign claims.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(self.algorithm);
        header.kid.clone_from(&self.key_id);
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// Build and sign a token of `typ` for `user` on `host`.
    #[allow(clippy::too_many_arguments)]
    pub fn issue(
        &self,
        typ: TokenType,
        host: &str,
        tenant: TenantId,
        user: UserId,
        roles: &[Role],
        sid: Option<SessionId>,
        now: OffsetDateTime,
        ttl: std::time::Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let iat = now.unix_timestamp();
        let exp = iat.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 4));
        self.sign(&Claims {
            iss: self.issuer.clone(),
            aud: host.to_owned(),
            sub: user,
            tid: tenant,
            roles: roles.to_vec(),
            sid,
            typ,
            iat,
            exp,
            jti: Uuid::now_v7(),
        })
    }

    /// Verify signature, algorithm, issuer, audience (= `host`), tenant, type and expiry.
    pub fn verify(
        &self,
        token: &str,
        host: &str,
        tenant: TenantId,
        typ: TokenType,
        now: OffsetDateTime,
    ) -> Result<Claims, TokenError> {
        let mut v = Validation::new(self.algorithm);
        v.set_issuer(&[self.issuer.as_str()]);
        v.set_audience(&[host]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Expiry is checked below against the injected clock.
        v.validate_exp = false;
        v.leeway = 0;
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidAudience => TokenError::WrongAudience,
                    _ => TokenError::Invalid,
                }
            })?;
        let c = data.claims;
        if c.tid != tenant {
            return Err(TokenError::WrongAudience);
        }
        if c.typ != typ {
            return Err(TokenError::WrongType);
        }
        if c.exp <= now.unix_timestamp() {
            return Err(TokenError::Expired);
        }
        if typ == TokenType::Access && c.sid.is_none() {
            return Err(TokenError::Invalid);
        }
        Ok(c)
    }
}

fn dev_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("jwt.secret");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| anyhow::anyhow!("{} is not base64url", path.display()))?;
        if bytes.len() >= 32 {
            return Ok(bytes);
        }
        anyhow::bail!("{} holds fewer than 32 bytes", path.display());
    }
    std::fs::create_dir_all(data_dir)?;
    let secret: [u8; 32] = rand::random();
    write_private(&path, URL_SAFE_NO_PAD.encode(secret).as_bytes())?;
    tracing::warn!(
        path = %path.display(),
        "no JWT_SECRET configured: generated a development signing secret; set JWT_SECRET (or keys) in production"
    );
    Ok(secret.to_vec())
}

/// Write a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// An opaque token and the hash that is stored.
pub struct OpaqueToken {
    /// Sent to the client (or e-mailed) once; never stored, never logged.
    pub token: String,
    pub hash: [u8; 32],
}

impl std::fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpaqueToken([redacted])")
    }
}

/// A fresh 256-bit random token.
pub fn opaque_token() -> OpaqueToken {
    let bytes: [u8; 32] = rand::random();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_token(&token);
    OpaqueToken { token, hash }
}

/// SHA-256 of a presented token (what the database compares).
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A token bound to a person: `{user id, 32 hex}.{256 random bits}`. The id part lets the
/// server bind its transaction to that person before looking the hash up (row-level security
/// then shows only that person's tokens); it grants nothing without the secret part.
pub fn user_token(user: UserId) -> OpaqueToken {
    let bytes: [u8; 32] = rand::random();
    let token = format!(
        "{}.{}",
        user.as_uuid().simple(),
        URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash_token(&token);
    OpaqueToken { token, hash }
}

/// Split a presented [`user_token`]: the person it names and the hash to look up. Anything
/// malformed is `None` (and never reaches the database).
pub fn parse_user_token(token: &str) -> Option<(UserId, [u8; 32])> {
    let (id, secret) = token.split_once('.')?;
    if id.len() != 32 || !plausible_opaque(secret) {
        return None;
    }
    let user = Uuid::try_parse(id).ok()?;
    Some((UserId(user), hash_token(token)))
}

/// A token naming a record (an invitation): `{record id, 32 hex}.{256 random bits}`, stored as
/// the SHA-256 of the whole string. The id lets the server find the one row to compare against
/// (through a definer, before anyone is authenticated); it grants nothing without the secret.
pub fn record_token(id: Uuid) -> OpaqueToken {
    let bytes: [u8; 32] = rand::random();
    let token = format!("{}.{}", id.simple(), URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_token(&token);
    OpaqueToken { token, hash }
}

/// Split a presented [`record_token`]: the record it names and the hash to compare. Anything
/// malformed is `None` (and never reaches the database).
pub fn parse_record_token(token: &str) -> Option<(Uuid, [u8; 32])> {
    let (id, secret) = token.split_once('.')?;
    if id.len() != 32 || !plausible_opaque(secret) {
        return None;
    }
    let record = Uuid::try_parse(id).ok()?;
    Some((record, hash_token(token)))
}

/// Does this look like one of our opaque tokens (43 base64url characters)? Cheap pre-check so
/// garbage never reaches the database.
pub fn plausible_opaque(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::hs256(b"0123456789abcdef0123456789abcdef", "serein")
    }

    #[test]
    fn round_trip_and_refusals() {
        let k = keys();
        let now = OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
        let t = TenantId::new();
        let sid = SessionId::new();
        let tok = k
            .issue(
                TokenType::Access,
                "acme.localhost",
                t,
                UserId::new(),
                &[Role::Employee],
                Some(sid),
                now,
                std::time::Duration::from_secs(900),
            )
            .unwrap();
        let c = k
            .verify(&tok, "acme.localhost", t, TokenType::Access, now)
            .unwrap();
        assert_eq!(c.sid, Some(sid));
        assert_eq!(c.roles, vec![Role::Employee]);
        assert_eq!(
            k.verify(&tok, "globex.localhost", t, TokenType::Access, now)
                .unwrap_err(),
            TokenError::WrongAudience
        );
        assert_eq!(
            k.verify(
                &tok,
                "acme.localhost",
                TenantId::new(),
                TokenType::Access,
                now
            )
            .unwrap_err(),
            TokenError::WrongAudience
        );
        assert_eq!(
            k.verify(&tok, "acme.localhost", t, TokenType::Mfa, now)
                .unwrap_err(),
            TokenError::WrongType
        );
        let later = now + time::Duration::seconds(900);
        assert_eq!(
            k.verify(&tok, "acme.localhost", t, TokenType::Access, later)
                .unwrap_err(),
            TokenError::Expired
        );
        let other = TokenKeys::hs256(b"another-secret-another-secret-xx", "serein");
        assert_eq!(
            other
                .verify(&tok, "acme.localhost", t, TokenType::Access, now)
                .unwrap_err(),
            TokenError::Invalid
        );
        // alg: none with the same claims.
        let mut parts = tok.split('.');
        let _ = parts.next();
        let body = parts.next().unwrap();
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            body
        );
        assert_eq!(
            k.verify(&none, "acme.localhost", t, TokenType::Access, now)
                .unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn opaque_tokens_are_random_and_hashed() {
        let a = opaque_token();
        let b = opaque_token();
        assert_ne!(a.token, b.token);
        assert!(plausible_opaque(&a.token));
        assert_eq!(hash_token(&a.token), a.hash);
        assert!(!plausible_opaque("short"));
        assert_eq!(format!("{a:?}"), "OpaqueToken([redacted])");
        let u = UserId::new();
        let t = user_token(u);
        assert_eq!(parse_user_token(&t.token), Some((u, t.hash)));
        assert_eq!(parse_user_token(&t.token[1..]), None);
        assert_eq!(parse_user_token("x.y"), None);
    }
}
