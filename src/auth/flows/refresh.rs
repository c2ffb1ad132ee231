//! Refresh-token rotation with a reuse interval.
//!
//! Each refresh spends the presented token and returns its successor. A token presented again
//! less than `REFRESH_TOKEN_REUSE_INTERVAL_SECS` after it was spent (two tabs, a retry after a
//! timeout) answers with the SAME successor, as long as that successor is still unspent; a
//! replay after the interval, or of an older generation, is taken for theft and revokes the
//! whole family (the session).
//!
//! "The same successor" without storing it: a successor's secret is derived from its parent's
//! hash with HKDF keyed by the session's secret (itself derived from the master key; see
//! `Keyring::session_secret`), so the server can compute it again and the database keeps only
//! hashes. `app_private.rotate_refresh_token` (migration 20261205000003) takes the presented
//! token's plaintext as its proof, and hands out nothing itself: it only says whether the
//! successor with the derived hash exists and may be returned.
//!
//! What the interval costs, stated: a thief who replays a stolen token within the interval
//! after its owner's refresh gets the owner's successor too (the same trade the anchors make);
//! the interval is bounded to 60 s, here and in the database.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

use super::session::{TokenRequest, roles_from_db, secs, token_response};
use crate::app::AppState;
use crate::auth::model::TokenResponse;
use crate::auth::repo::{self, Rotation};
use crate::crypto::keyring::SessionSecret;
use crate::crypto::tokens::{self, OpaqueToken, TokenType};
use crate::db::tenancy::DbActor;
use crate::db::{SessionId, TenantId, TenantTx, UserId};
use crate::error::{AppError, AppResult};

/// The successor of the refresh token whose hash is `parent_hash`, in `session` of `user`:
/// the same input always gives the same token, and nobody without the session's secret can
/// compute it.
pub fn successor(secret: &SessionSecret, user: UserId, parent_hash: &[u8; 32]) -> OpaqueToken {
    let hk = Hkdf::<Sha256>::new(Some(b"serein refresh successor v1"), secret.as_bytes());
    let mut okm = zeroize::Zeroizing::new([0u8; 32]);
    // 32 bytes never exceed HKDF-SHA256's output limit (8160 bytes).
    let _ = hk.expand(parent_hash, okm.as_mut_slice());
    let token = format!(
        "{}.{}",
        user.as_uuid().simple(),
        URL_SAFE_NO_PAD.encode(okm.as_slice())
    );
    let hash = tokens::hash_token(&token);
    OpaqueToken { token, hash }
}

/// Rotate `presented` on the tenant (or platform) `tenant` whose audience host is `host`.
pub async fn refresh(
    state: &AppState,
    tenant: TenantId,
    host: &str,
    presented: &SecretString,
) -> AppResult<TokenResponse> {
    let invalid = || AppError::Unauthorized("invalid_refresh_token");
    let (user, hash) = tokens::parse_user_token(presented.expose_secret()).ok_or_else(invalid)?;
    let cfg = &state.config.auth;
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.db, tenant, Some(&DbActor::new(user, Vec::new()))).await?;
    // The session the token belongs to (its hash is readable by the person's context): the
    // successor's derivation needs the session's secret.
    let session: SessionId = repo::refresh_session(&mut tx, tenant, &hash)
        .await?
        .ok_or_else(invalid)?;
    let next = successor(&state.keyring.session_secret(session), user, &hash);
    let idle = now + secs(cfg.session_idle);
    let rotation = repo::rotate_refresh(
        &mut tx,
        presented,
        &next.hash,
        now,
        idle,
        cfg.refresh_reuse_interval,
    )
    .await?;
    let refresh_expires_at = match rotation {
        Rotation::Rotated { expires_at } | Rotation::Replayed { expires_at } => expires_at,
        Rotation::Reused => {
            tx.commit().await?;
            tracing::warn!(%session, %user, "refresh token reused: session revoked");
            return Err(AppError::Unauthorized("refresh_reused"));
        }
        Rotation::Expired => return Err(AppError::Unauthorized("session_expired")),
        Rotation::Unknown => return Err(invalid()),
    };
    if matches!(rotation, Rotation::Replayed { .. }) {
        tracing::info!(%session, "refresh token presented again within the reuse interval");
    }
    // Roles are re-read: a token never outlives a change of membership.
    let (names, active) = repo::current_roles(&mut tx, tenant, user)
        .await?
        .unwrap_or_default();
    let roles = roles_from_db(&names)?;
    if !active || roles.is_empty() {
        repo::revoke_session(&mut tx, tenant, session, "membership_change", now).await?;
        tx.commit().await?;
        return Err(AppError::Unauthorized("session_expired"));
    }
    tx.commit().await?;
    let access = TokenRequest {
        kind: TokenType::Access,
        host,
        tenant,
        user,
        roles: &roles,
        session: Some(session),
        ttl: cfg.access_ttl,
    };
    token_response(state, access, session, next.token, refresh_expires_at, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_successor_is_a_pure_keyed_function_of_its_parent() {
        let user = UserId::new();
        let key = SessionSecret::from_bytes([1; 32]);
        let parent = [9u8; 32];
        let a = successor(&key, user, &parent);
        let b = successor(&key, user, &parent);
        assert_eq!(a.token, b.token, "the same successor every time");
        assert_eq!(a.hash, tokens::hash_token(&a.token));
        // A well-formed refresh token of the same person.
        assert_eq!(tokens::parse_user_token(&a.token), Some((user, a.hash)));
        // Another parent, or another session's key: another successor.
        assert_ne!(successor(&key, user, &[8u8; 32]).token, a.token);
        let other = SessionSecret::from_bytes([2; 32]);
        assert_ne!(successor(&other, user, &parent).token, a.token);
    }
}
