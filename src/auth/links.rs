//! The e-mailed-link flows: "forgot password", password reset, e-mail verification.
//!
//! Invariants:
//! - A link is `{user}.{secret}`; the transaction is bound to the person the link names before
//!   its hash is looked up, and the link is spent by `app_private.spend_auth_token`, which
//!   records the proof that `set_password` / `mark_email_verified` demand in the SAME
//!   transaction (see migration 20261204000002).
//! - "Forgot password" does the same work for every address, in one transaction; the link's
//!   secret is made by the database and never passes through this process.
//! - Password checks here (verification) spend the person's login budget, committed before the
//!   check, so guesses from many addresses meet the login lock-out.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::ExposeSecret;

use super::flows::session::secs;
use super::flows::{HostScope, login_key, throttle_key};
use super::model::*;
use super::repo;
use super::throttle::ClientIp;
use crate::app::AppState;
use crate::crypto::passwords;
use crate::crypto::tokens;
use crate::db::tenancy::DbActor;
use crate::db::{TenantTx, UserId};
use crate::error::{AppError, AppResult};
use crate::http::extract::AppJson;
use crate::mail::{self, Message};
use crate::tenants::model::Locale;

/// Spend an e-mailed single-use link token of `purpose`: the transaction is bound to the person
/// the token names before its hash is looked up (and locked). Any failure is `gone`. The
/// returned transaction holds the link's proof: the definer it unlocks must run in it.
async fn spend_link(
    state: &AppState,
    scope: &HostScope,
    purpose: &str,
    token: &secrecy::SecretString,
    gone: AppError,
    ip: Option<std::net::IpAddr>,
) -> AppResult<(UserId, TenantTx)> {
    let Some((user, hash)) = tokens::parse_user_token(token.expose_secret()) else {
        return Err(gone);
    };
    if let Some(ip) = ip {
        state
            .throttle
            .check_account(ip, &format!("{purpose}:{user}"))?;
    }
    let actor = DbActor::new(user, Vec::new());
    let mut tx = TenantTx::begin(&state.db, scope.tenant, Some(&actor)).await?;
    match repo::spend_auth_token(&mut tx, purpose, &hash, state.clock.now()).await? {
        Ok(()) => Ok((user, tx)),
        Err(_) => Err(gone),
    }
}

/// Ask for a password-reset link (sent only if the address has an account here; the answer is
/// the same either way).
#[utoipa::path(post, path = "/api/v1/auth/password/forgot", tag = "auth",
    extensions(("x-authz" = json!({"resource": "auth", "action": "password_reset"}))),
    request_body = ForgotRequest,
    responses(
        (status = 202, body = Accepted),
    ))]
pub async fn forgot_password(
    State(state): State<AppState>,
    scope: HostScope,
    ClientIp(ip): ClientIp,
    AppJson(req): AppJson<ForgotRequest>,
) -> AppResult<(StatusCode, Json<Accepted>)> {
    let accepted = (
        StatusCode::ACCEPTED,
        Json(Accepted {
            status: "accepted",
            detail: "If this address has an account here, a reset link is on its way.",
        }),
    );
    let Ok(email) = Email::parse(&req.email) else {
        return Ok(accepted);
    };
    state
        .throttle
        .check_account(ip, &format!("reset:{}", email.as_str()))?;
    let cfg = &state.config.auth;
    let now = state.clock.now();
    // The same work for every address, in ONE transaction that spends a budget, looks the
    // address up, renders the mail and hands it to `queue_password_reset`, then commits: the
    // database writes the link and the mail only for a member, inside that same transaction,
    // so a member's address costs no second transaction (no second fsync) and neither the
    // answer nor its timing tells whether the address has an account here. The budget also
    // caps reset mails per address across every server instance. The link's secret is made
    // by the database and never passes through this process.
    let mut tx = TenantTx::begin(&state.db, scope.tenant, None).await?;
    let attempt = repo::throttle_begin(
        &mut tx,
        &throttle_key("reset", &format!("{}:{}", scope.tenant, email.as_str())),
        cfg.login_max_failures,
        cfg.failure_window.as_secs(),
        cfg.failure_window.as_secs(),
        now,
    )
    .await?;
    if attempt.allowed {
        let locale = repo::login_identity(&mut tx, scope.tenant, email.as_str())
            .await?
            .map_or(Locale::En, |i| Locale::from_stored(&i.locale));
        let message = Message::PasswordReset {
            link: format!(
                "{}/reset-password?token={}",
                cfg.public_base(&scope.host),
                repo::LINK_TOKEN_PLACEHOLDER
            ),
            expires_in_minutes: u32::try_from(cfg.reset_ttl.as_secs() / 60).unwrap_or(60),
        };
        if mail::deliverable(email.as_str()).is_ok() && message.validate().is_ok() {
            let rendered = mail::templates::render(&message, locale);
            repo::queue_password_reset(
                &mut tx,
                email.as_str(),
                &rendered.subject,
                &rendered.text,
                &rendered.html,
                now,
                now + secs(cfg.reset_ttl),
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(accepted)
}

/// Set a new password with a reset token (single use, 1 h). Every session of the person, in
/// every tenant, is revoked; the lock-out is lifted.
#[utoipa::path(post, path = "/api/v1/auth/password/reset", tag = "auth",
    extensions(("x-authz" = json!({"resource": "auth", "action": "password_reset"}))),
    request_body = ResetRequest,
    responses(
        (status = 204, description = "Password changed; log in again"),
        (status = 410, description = "reset_token_invalid: unknown, used or expired"),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    scope: HostScope,
    ClientIp(ip): ClientIp,
    AppJson(req): AppJson<ResetRequest>,
) -> AppResult<StatusCode> {
    // The token is checked (and locked) before anything about the person is looked at, so a
    // forged `{user}.{garbage}` learns nothing and costs no hashing. A refused new password
    // rolls back: the link still works.
    let gone = AppError::Gone("reset_token_invalid");
    let (user, mut tx) =
        spend_link(&state, &scope, "password_reset", &req.token, gone, Some(ip)).await?;
    let now = state.clock.now();
    let email = sqlx::query_scalar!("SELECT email FROM users WHERE id = $1", user.as_uuid())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(AppError::Gone("reset_token_invalid"))?;
    passwords::check_policy(&req.password, &email)?;
    let new_hash = state.passwords.hash(&req.password).await?;
    // Spends the link's proof: the address is verified, every reset link of the person in
    // every tenant retired, every session everywhere revoked.
    let revoked = repo::set_password(&mut tx, &new_hash, now).await?;
    repo::throttle_clear(&mut tx, &login_key(scope.tenant, &email)).await?;
    tx.commit().await?;
    tracing::info!(%user, revoked, "password reset; sessions revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Confirm an e-mail address with the link from registration, and the password chosen then.
///
/// The password is required because the link alone proves only that someone reads the
/// mailbox: whoever registered an address that is not theirs would otherwise get the identity
/// verified by its real owner's click (and a verified identity is linked by invitations without
/// a password). A wrong password leaves the link usable but spends the person's login budget
/// (so a stolen link cannot be used to guess the password from many addresses). A self-sign-up
/// becomes a membership here, not at registration.
#[utoipa::path(post, path = "/api/v1/auth/email/verify", tag = "auth",
    extensions(("x-authz" = json!({"resource": "auth", "action": "email_verify"}))),
    request_body = VerifyEmailRequest,
    responses(
        (status = 204, description = "Address confirmed (and, for a self-sign-up, the membership created)"),
        (status = 409, description = "seat_limit_reached: the company has no free seat; nothing was created, the link still works"),
        (status = 401, description = "invalid_credentials: not the password of this account"),
        (status = 410, description = "verification_token_invalid"),
    ))]
pub async fn verify_email(
    State(state): State<AppState>,
    scope: HostScope,
    ClientIp(ip): ClientIp,
    AppJson(req): AppJson<VerifyEmailRequest>,
) -> AppResult<StatusCode> {
    let gone = || AppError::Gone("verification_token_invalid");
    let Some((user, link_hash)) = tokens::parse_user_token(req.token.expose_secret()) else {
        return Err(gone());
    };
    state
        .throttle
        .check_account(ip, &format!("email_verify:{user}"))?;
    let cfg = &state.config.auth;
    let now = state.clock.now();
    // The person's password budget (the login one, in PostgreSQL) is spent first and committed,
    // so guesses from many addresses meet the same lock-out as login; only for a live link, so a
    // forged link costs the person nothing.
    let key = {
        let mut tx = TenantTx::begin(
            &state.db,
            scope.tenant,
            Some(&DbActor::new(user, Vec::new())),
        )
        .await?;
        if !repo::link_pending(&mut tx, scope.tenant, "email_verify", &link_hash, now).await? {
            return Err(gone());
        }
        let email = sqlx::query_scalar!("SELECT email FROM users WHERE id = $1", user.as_uuid())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(gone)?;
        let key = login_key(scope.tenant, &email);
        let attempt = repo::throttle_begin(
            &mut tx,
            &key,
            cfg.login_max_failures,
            cfg.failure_window.as_secs(),
            cfg.lockout.as_secs(),
            now,
        )
        .await?;
        tx.commit().await?;
        attempt.refuse_if_spent()?;
        key
    };
    let (_, mut tx) = spend_link(&state, &scope, "email_verify", &req.token, gone(), None).await?;
    // Readable only with the link spent in this transaction.
    let hash = repo::proven_password_hash(&mut tx).await?;
    if !state
        .passwords
        .verify(&req.password, hash.as_deref())
        .await?
    {
        // Dropping `tx` rolls the spending of the link back.
        return Err(AppError::Unauthorized("invalid_credentials"));
    }
    // Verified; a self-sign-up joins its company now (409 `seat_limit_reached` when the seats
    // are full: nothing is created and the link still works).
    let joined = repo::mark_email_verified(&mut tx, now).await?;
    repo::throttle_clear(&mut tx, &key).await?;
    tx.commit().await?;
    tracing::info!(%user, joined, "e-mail address verified");
    Ok(StatusCode::NO_CONTENT)
}
