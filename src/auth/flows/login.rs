//! Login with e-mail and password, as one flow with a typed outcome.
//!
//! Enumeration resistance: unknown e-mail, wrong password, no membership in this tenant and a
//! disabled account all end in [`LoginOutcome::InvalidCredentials`] after the same work (the
//! failure budget is spent and an Argon2 verification runs, against a dummy hash when the
//! look-up returned none).
//!
//! Transactions, and why two: the attempt is spent and the identity read in the FIRST
//! transaction, committed BEFORE the password is verified, so parallel guesses see each other's
//! spend (holding it open across Argon2 would instead hold a pooled connection and the budget
//! row's lock for each guess: a handful of parallel guesses would exhaust the pool). After a
//! right password, the SECOND transaction restores the budget, records the login proof and
//! opens the session, all or nothing; the MFA and enrolment outcomes use it to restore the
//! budget only. A wrong password writes nothing more: its spend is already committed. The one
//! detached write is the lock-out notice, queued off the request path when the attempt that
//! locked the address was wrong, so that a real account's answer takes no longer than an
//! unknown address's.

use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use super::session::{TokenRequest, open_session, roles_from_db, secs};
use super::{HostScope, login_key};
use crate::app::AppState;
use crate::auth::model::{Email, TokenResponse};
use crate::auth::repo::{self, LoginIdentity};
use crate::crypto::passwords;
use crate::crypto::tokens::TokenType;
use crate::db::TenantTx;
use crate::db::tenancy::DbActor;
use crate::error::AppResult;
use crate::mail::{self, Message};
use crate::rbac::Role;
use crate::tenants::model::Locale;

/// How a login ended (no `Debug`: it carries tokens).
pub enum LoginOutcome {
    /// Signed in: a new session and its tokens.
    Authenticated(Box<TokenResponse>),
    /// The password was right and the person has TOTP: the second step needs this token.
    MfaRequired { mfa_token: String, expires_in: u64 },
    /// The password was right, but an admin role must enrol TOTP first.
    EnrollmentRequired {
        enrollment_token: SecretString,
        expires_in: u64,
    },
    /// The password was right, but the address is not verified yet.
    EmailNotVerified,
    /// Unknown e-mail, wrong password, not a member here, disabled: all alike.
    InvalidCredentials,
}

/// Log `email` in with `password` on `scope`. Errors: a spent failure budget (429 with
/// `Retry-After`) and infrastructure failures; every other answer is an outcome.
pub async fn login(
    state: &AppState,
    scope: &HostScope,
    email: &Email,
    password: &SecretString,
) -> AppResult<LoginOutcome> {
    if password.expose_secret().len() > 4 * passwords::MAX_LEN {
        return Ok(LoginOutcome::InvalidCredentials);
    }
    let cfg = &state.config.auth;
    let now = state.clock.now();
    // Per tenant: guesses on one company's host cannot lock the person out of another (nor a
    // platform admin out of the platform host); a host where the person is not a member answers
    // the same whatever the password, so it is no oracle either.
    let key = login_key(scope.tenant, email.as_str());

    // Transaction 1: spend one attempt (committed, so parallel guesses see it) and read the
    // identity.
    let mut tx = TenantTx::begin(&state.db, scope.tenant, None).await?;
    let attempt = repo::throttle_begin(
        &mut tx,
        &key,
        cfg.login_max_failures,
        cfg.failure_window.as_secs(),
        cfg.lockout.as_secs(),
        now,
    )
    .await?;
    let identity = repo::login_identity(&mut tx, scope.tenant, email.as_str()).await?;
    tx.commit().await?;
    attempt.refuse_if_spent()?;

    let hash = identity.as_ref().and_then(|i| i.password_hash.as_deref());
    let password_ok = state.passwords.verify(password, hash).await?;
    let identity = match identity {
        Some(i) if password_ok && i.user_active && i.member_active && i.password_hash.is_some() => {
            i
        }
        other => {
            if let (true, Some(i)) = (attempt.locked_now, other) {
                spawn_lockout_notice(state, scope, email, i, now);
            }
            return Ok(LoginOutcome::InvalidCredentials);
        }
    };
    let roles = roles_from_db(&identity.roles)?;

    // Transaction 2: the password was right. The budget is restored; a session is opened only
    // with the login proof of this transaction (the hash verified above must still be the
    // person's current one).
    let mut tx = TenantTx::begin(
        &state.db,
        scope.tenant,
        Some(&DbActor::new(identity.user_id, roles.clone())),
    )
    .await?;
    repo::throttle_clear(&mut tx, &key).await?;
    let step = |kind| {
        TokenRequest::step(
            kind,
            &scope.host,
            scope.tenant,
            identity.user_id,
            cfg.mfa_ttl,
        )
    };
    let admin = roles.contains(&Role::TenantAdmin) || roles.contains(&Role::PlatformAdmin);
    let outcome = if !identity.email_verified {
        LoginOutcome::EmailNotVerified
    } else if admin && !identity.totp_enabled {
        LoginOutcome::EnrollmentRequired {
            enrollment_token: SecretString::from(step(TokenType::Enroll).sign(state, now)?),
            expires_in: cfg.mfa_ttl.as_secs(),
        }
    } else if identity.totp_enabled {
        LoginOutcome::MfaRequired {
            mfa_token: step(TokenType::Mfa).sign(state, now)?,
            expires_in: cfg.mfa_ttl.as_secs(),
        }
    } else {
        let verified = identity.password_hash.as_deref().unwrap_or_default();
        if !repo::login_challenge(&mut tx, verified).await? {
            // The hash changed meanwhile (a reset): the budget stays restored, which a right
            // password earned.
            tx.commit().await?;
            return Ok(LoginOutcome::InvalidCredentials);
        }
        let tokens = open_session(state, &mut tx, &scope.host, identity.user_id, &roles).await?;
        LoginOutcome::Authenticated(Box::new(tokens))
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Tell the owner of a real account that it was locked, off the request path (best effort;
/// never fails the login answer, which must look the same as for unknown addresses).
fn spawn_lockout_notice(
    state: &AppState,
    scope: &HostScope,
    email: &Email,
    identity: LoginIdentity,
    now: OffsetDateTime,
) {
    let state = state.clone();
    let scope = scope.clone();
    let email = email.as_str().to_owned();
    tokio::spawn(async move {
        let until = now + secs(state.config.auth.lockout);
        let message = Message::AccountLocked {
            until,
            reset_link: format!(
                "{}/forgot-password",
                state.config.auth.public_base(&scope.host)
            ),
        };
        let result = async {
            let mut tx = TenantTx::begin(
                &state.db,
                scope.tenant,
                Some(&DbActor::new(identity.user_id, Vec::new())),
            )
            .await?;
            mail::enqueue(
                &mut tx,
                scope.tenant,
                &email,
                Locale::from_stored(&identity.locale),
                &message,
                now,
            )
            .await?;
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => {
                tracing::warn!(user = %identity.user_id, "account locked after repeated failed logins")
            }
            Err(e) => tracing::error!(error = %e, "could not queue the lock-out notice"),
        }
    });
}
