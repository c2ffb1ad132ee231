//! Sessions and the tokens they hand out: the one place that signs auth tokens (a
//! [`TokenRequest`] says what to sign) and opens a session with its first refresh token.
//!
//! Invariants: a session is opened only inside the transaction holding the proof the database
//! demands (`app_private.open_session`); roles come from the database as [`Role`]s, and a role
//! name the server does not know is an error (logged), never silently dropped.

use time::OffsetDateTime;

use crate::app::AppState;
use crate::auth::model::TokenResponse;
use crate::auth::repo;
use crate::crypto::tokens::{self, TokenType};
use crate::db::{SessionId, TenantId, TenantTx, UserId};
use crate::error::{AppError, AppResult};
use crate::rbac::Role;

/// What to sign: one auth token of `kind` for `user` on `host` (its audience), valid `ttl`.
#[derive(Debug, Clone, Copy)]
pub struct TokenRequest<'a> {
    pub kind: TokenType,
    pub host: &'a str,
    pub tenant: TenantId,
    pub user: UserId,
    pub roles: &'a [Role],
    pub session: Option<SessionId>,
    pub ttl: std::time::Duration,
}

impl TokenRequest<'_> {
    /// A step token (MFA, enrolment): no roles, no session.
    pub fn step(
        kind: TokenType,
        host: &str,
        tenant: TenantId,
        user: UserId,
        ttl: std::time::Duration,
    ) -> TokenRequest<'_> {
        TokenRequest {
            kind,
            host,
            tenant,
            user,
            roles: &[],
            session: None,
            ttl,
        }
    }

    /// Sign it with the server's token key, issued at `now`.
    pub fn sign(&self, state: &AppState, now: OffsetDateTime) -> AppResult<String> {
        state
            .tokens
            .issue(
                self.kind,
                self.host,
                self.tenant,
                self.user,
                self.roles,
                self.session,
                now,
                self.ttl,
            )
            .map_err(|e| AppError::Internal(format!("cannot sign token: {e}")))
    }
}

/// A `std::time::Duration` setting as a `time::Duration` (saturating).
pub(crate) fn secs(d: std::time::Duration) -> time::Duration {
    time::Duration::seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4))
}

/// Role names read from the database, as [`Role`]s. An unknown name means the database holds
/// something this server cannot reason about: refuse (500, logged) rather than sign a token
/// with fewer roles than the database says.
pub fn roles_from_db(names: &[String]) -> AppResult<Vec<Role>> {
    names
        .iter()
        .map(|n| {
            Role::parse(n).ok_or_else(|| {
                tracing::error!(role = %n, "unknown role name in the database");
                AppError::Internal("unknown role name in the database".into())
            })
        })
        .collect()
}

/// The answer to a successful login or refresh: an access token for `session` plus the
/// refresh token that continues it.
pub fn token_response(
    state: &AppState,
    access: TokenRequest<'_>,
    session: SessionId,
    refresh_token: String,
    refresh_expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> AppResult<TokenResponse> {
    Ok(TokenResponse {
        status: "authenticated",
        access_token: access.sign(state, now)?,
        token_type: "Bearer",
        expires_in: access.ttl.as_secs(),
        refresh_token,
        refresh_expires_at,
        session_id: session,
    })
}

/// Open a session for `user` (in `tx`, which must hold a login or second-factor proof) and
/// issue its tokens.
pub async fn open_session(
    state: &AppState,
    tx: &mut TenantTx,
    host: &str,
    user: UserId,
    roles: &[Role],
) -> AppResult<TokenResponse> {
    let cfg = &state.config.auth;
    let now = state.clock.now();
    let session = SessionId::new();
    let refresh = tokens::user_token(user);
    let absolute = now + secs(cfg.session_absolute);
    let idle = (now + secs(cfg.session_idle)).min(absolute);
    let tenant = tx.tenant();
    repo::open_session(
        tx,
        session,
        &state.keyring.session_secret(session),
        &refresh.hash,
        now,
        idle,
        absolute,
    )
    .await?;
    let access = TokenRequest {
        kind: TokenType::Access,
        host,
        tenant,
        user,
        roles,
        session: Some(session),
        ttl: cfg.access_ttl,
    };
    token_response(state, access, session, refresh.token, idle, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_role_is_an_error_not_dropped() {
        let known = vec!["employee".to_owned(), "hr".to_owned()];
        assert!(matches!(
            roles_from_db(&known).as_deref(),
            Ok([Role::Employee, Role::Hr])
        ));
        let unknown = vec!["employee".to_owned(), "auditor".to_owned()];
        assert!(matches!(
            roles_from_db(&unknown),
            Err(AppError::Internal(_))
        ));
    }
}
