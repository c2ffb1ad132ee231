//! TOTP second factor: enrolment (setup → enable with a valid code → ten recovery codes),
//! disable (with a code or a recovery code), and the second step of login.
//!
//! Invariants:
//! - The secret is stored sealed under the identity key (AAD `v1|nil|users|totp_secret|{user}`)
//!   and only through `app_private` functions bound to the request's person.
//! - A code is accepted once (strictly increasing time step); a recovery code once.
//! - Wrong codes spend a per-person budget in PostgreSQL (`TOTP_MAX_FAILURES`, then locked for
//!   `LOGIN_LOCKOUT_SECS`), besides the per-(IP, person) governor limit. The password check of
//!   setup spends the person's LOGIN budget (same key as `POST /auth/login`).
//! - An accepted code or recovery code is a proof recorded by the database for its transaction
//!   only: enabling, disabling and opening a session happen in that same transaction
//!   ([`second_factor`] returns it), or the database refuses them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::actor::{Actor, TotpPrincipal};
use super::flows::session::{open_session, roles_from_db};
use super::flows::{HostScope, login_key};
use super::model::*;
use super::repo;
use super::throttle::ClientIp;
use crate::app::AppState;
use crate::crypto::sealed::Aad;
use crate::crypto::tokens::TokenType;
use crate::crypto::totp;
use crate::db::tenancy::DbActor;
use crate::db::{TenantId, TenantTx, UserId};
use crate::error::{AppError, AppResult};
use crate::http::extract::AppJson;

fn aad(user: UserId) -> Aad<'static> {
    Aad::identity("users", "totp_secret", user.as_uuid())
}

fn seal(state: &AppState, user: UserId, secret: &[u8]) -> AppResult<Vec<u8>> {
    state
        .keyring
        .seal_identity(&aad(user), secret)
        .map_err(|e| AppError::Internal(format!("cannot seal TOTP secret: {e}")))
}

fn open(state: &AppState, user: UserId, blob: &[u8]) -> AppResult<Zeroizing<Vec<u8>>> {
    state
        .keyring
        .open_identity(&aad(user), blob)
        .map_err(|e| AppError::Internal(format!("cannot open TOTP secret: {e}")))
}

/// The stored TOTP state of the transaction's person.
struct TotpState {
    secret: Option<Vec<u8>>,
    enabled: bool,
}

async fn load_state(tx: &mut TenantTx) -> AppResult<TotpState> {
    let r = sqlx::query!(r#"SELECT secret, enabled AS "enabled!" FROM app_private.totp_state()"#)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(match r {
        Some(r) => TotpState {
            secret: r.secret,
            enabled: r.enabled,
        },
        None => TotpState {
            secret: None,
            enabled: false,
        },
    })
}

fn not_pending() -> AppError {
    AppError::Conflict {
        code: "totp_not_pending",
        detail: "No pending enrolment: call POST /auth/totp/setup first.".into(),
    }
}

fn budget_key(user: UserId) -> [u8; 32] {
    Sha256::digest(format!("totp:{user}").as_bytes()).into()
}

/// Whose second factor is checked, and how their transaction begins.
enum Subject<'a> {
    /// A signed-in person (session guard) or an enrolling admin.
    Principal(&'a TotpPrincipal),
    /// The second step of login (no session yet).
    Login(TenantId, UserId),
}

impl Subject<'_> {
    fn tenant(&self) -> TenantId {
        match self {
            Self::Principal(p) => p.tenant(),
            Self::Login(t, _) => *t,
        }
    }
    fn user(&self) -> UserId {
        match self {
            Self::Principal(p) => p.user(),
            Self::Login(_, u) => *u,
        }
    }
    async fn begin(&self, state: &AppState) -> AppResult<TenantTx> {
        match self {
            Self::Principal(p) => p.begin(state).await,
            Self::Login(t, u) => {
                TenantTx::begin(&state.db, *t, Some(&DbActor::new(*u, Vec::new()))).await
            }
        }
    }
}

/// Check a TOTP code or a recovery code and spend it. Wrong → 401 `invalid_code`; out of
/// budget → 429. On success the returned transaction (the subject's, uncommitted) holds the
/// second-factor proof that `totp_enable`, `totp_disable` and `open_session` demand: the caller
/// finishes its change in it and commits.
async fn second_factor(
    state: &AppState,
    subject: Subject<'_>,
    ip: std::net::IpAddr,
    code: Option<&SecretString>,
    recovery: Option<&SecretString>,
    require_enabled: bool,
) -> AppResult<TenantTx> {
    let (tenant, user) = (subject.tenant(), subject.user());
    state.throttle.check_account(ip, &format!("totp:{user}"))?;
    let cfg = &state.config.auth;
    let now = state.clock.now();
    let actor = DbActor::new(user, Vec::new());
    let key = budget_key(user);
    let mut tx = TenantTx::begin(&state.db, tenant, Some(&actor)).await?;
    let attempt = repo::throttle_begin(
        &mut tx,
        &key,
        cfg.totp_max_failures,
        cfg.failure_window.as_secs(),
        cfg.lockout.as_secs(),
        now,
    )
    .await?;
    tx.commit().await?;
    attempt.refuse_if_spent()?;
    let mut tx = subject.begin(state).await?;
    let st = load_state(&mut tx).await?;
    if require_enabled && !st.enabled {
        return Err(AppError::Conflict {
            code: "totp_not_enabled",
            detail: "Two-factor authentication is not enabled.".into(),
        });
    }
    let ok = match (code, recovery) {
        (Some(code), None) => match &st.secret {
            Some(blob) => {
                let secret = open(state, user, blob)?;
                match totp::verify(&secret, code.expose_secret(), now) {
                    Some(step) => {
                        sqlx::query_scalar!(
                            r#"SELECT app_private.totp_accept_step($1) AS "ok!""#,
                            step
                        )
                        .fetch_one(&mut *tx)
                        .await?
                    }
                    None => false,
                }
            }
            None => false,
        },
        (None, Some(rc)) if st.enabled => {
            let hash = totp::hash_recovery_code(rc.expose_secret());
            sqlx::query_scalar!(
                r#"SELECT app_private.use_recovery_code($1, $2) AS "ok!""#,
                hash.as_slice(),
                now
            )
            .fetch_one(&mut *tx)
            .await?
        }
        (None, None) | (Some(_), Some(_)) => {
            return Err(AppError::invalid(
                "code",
                "give either `code` or `recovery_code`",
            ));
        }
        (None, Some(_)) => false,
    };
    if !ok {
        drop(tx);
        return Err(AppError::Unauthorized("invalid_code"));
    }
    repo::throttle_clear(&mut tx, &key).await?;
    Ok(tx)
}

/// Start enrolment: a new secret (replacing any pending one). A signed-in person must confirm
/// their password (`{"password": …}`): a stolen access token alone cannot bind the account to
/// an attacker's authenticator. An admin holding an enrolment token has just proved it at login;
/// the body may then be empty.
#[utoipa::path(post, path = "/api/v1/auth/totp/setup", tag = "auth",
    extensions(("x-authz" = json!({"resource": "totp", "action": "enroll"}))),
    security(("bearer" = [])),
    request_body(content = Option<TotpSetupRequest>, description = "Required with an access token"),
    responses(
        (status = 200, body = TotpSetupResponse),
        (status = 401, description = "unauthorized, or invalid_credentials (wrong password)"),
        (status = 409, description = "totp_already_enabled"),
        (status = 422, description = "password required"),
    ))]
pub async fn setup(
    State(state): State<AppState>,
    who: TotpPrincipal,
    ClientIp(ip): ClientIp,
    body: axum::body::Bytes,
) -> AppResult<Json<TotpSetupResponse>> {
    let req: TotpSetupRequest = if body.iter().all(u8::is_ascii_whitespace) {
        TotpSetupRequest { password: None }
    } else {
        crate::http::extract::json_object(&body)?
    };
    let user = who.user();
    let email = {
        let mut tx = who.begin(&state).await?;
        sqlx::query_scalar!("SELECT email FROM users WHERE id = $1", user.as_uuid())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(AppError::Unauthorized("unauthorized"))?
    };
    let mut budget = None;
    if matches!(who, TotpPrincipal::Actor(_)) {
        let password = req
            .password
            .as_ref()
            .ok_or_else(|| AppError::invalid("password", "confirm your password to set up TOTP"))?;
        state.throttle.check_account(ip, &format!("totp:{user}"))?;
        // The person's login budget (PostgreSQL, every instance) is spent and committed before
        // the check: a stolen access token cannot guess the password from many addresses.
        let cfg = &state.config.auth;
        let now = state.clock.now();
        let key = login_key(who.tenant(), &email);
        let mut tx = who.begin(&state).await?;
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
        // The hash is handed out only against the session proof the guard has just left in
        // this transaction (the session and its secret checked).
        let mut tx = who.begin(&state).await?;
        let hash = repo::proven_password_hash(&mut tx).await?;
        drop(tx);
        if !state.passwords.verify(password, hash.as_deref()).await? {
            return Err(AppError::Unauthorized("invalid_credentials"));
        }
        budget = Some(key);
    }
    let secret = totp::new_secret();
    let blob = seal(&state, user, &secret)?;
    let mut tx = who.begin(&state).await?;
    let stored = sqlx::query_scalar!(
        r#"SELECT app_private.totp_set_pending($1, $2) AS "ok!""#,
        blob,
        state.clock.now()
    )
    .fetch_one(&mut *tx)
    .await?;
    if !stored {
        return Err(AppError::Conflict {
            code: "totp_already_enabled",
            detail: "Two-factor authentication is already enabled; disable it first.".into(),
        });
    }
    if let Some(key) = budget {
        repo::throttle_clear(&mut tx, &key).await?;
    }
    tx.commit().await?;
    let issuer = format!("Serein ({})", who.host());
    let (otpauth_uri, secret_b32) = totp::provisioning(&secret, &issuer, &email)
        .ok_or_else(|| AppError::Internal("cannot build the otpauth URI".into()))?;
    Ok(Json(TotpSetupResponse {
        otpauth_uri,
        secret: secret_b32,
    }))
}

/// Finish enrolment with a valid code; returns ten single-use recovery codes (shown once).
#[utoipa::path(post, path = "/api/v1/auth/totp/enable", tag = "auth",
    extensions(("x-authz" = json!({"resource": "totp", "action": "enroll"}))),
    security(("bearer" = [])),
    request_body = TotpCodeRequest,
    responses(
        (status = 200, body = TotpEnabledResponse),
        (status = 401, description = "invalid_code"),
        (status = 409, description = "totp_not_pending: call setup first"),
    ))]
pub async fn enable(
    State(state): State<AppState>,
    who: TotpPrincipal,
    ClientIp(ip): ClientIp,
    AppJson(req): AppJson<TotpCodeRequest>,
) -> AppResult<Json<TotpEnabledResponse>> {
    let code = req
        .code
        .as_ref()
        .ok_or_else(|| AppError::invalid("code", "the 6-digit code is required"))?;
    let user = who.user();
    {
        let mut tx = who.begin(&state).await?;
        let st = load_state(&mut tx).await?;
        if st.enabled || st.secret.is_none() {
            return Err(not_pending());
        }
    }
    // The accepted code's proof lives in this transaction: enable in it.
    let mut tx = second_factor(
        &state,
        Subject::Principal(&who),
        ip,
        Some(code),
        None,
        false,
    )
    .await?;
    let codes = totp::new_recovery_codes();
    let hashes: Vec<Vec<u8>> = codes
        .iter()
        .map(|c| totp::hash_recovery_code(c).to_vec())
        .collect();
    let enabled = sqlx::query_scalar!(
        r#"SELECT app_private.totp_enable($1, $2) AS "ok!""#,
        &hashes,
        state.clock.now()
    )
    .fetch_one(&mut *tx)
    .await?;
    if !enabled {
        return Err(not_pending());
    }
    // A change of second factor ends every session: the next login uses the new factor.
    repo::revoke_all_sessions(&mut tx, "mfa_change", state.clock.now()).await?;
    tx.commit().await?;
    tracing::info!(%user, "TOTP enabled; sessions revoked");
    Ok(Json(TotpEnabledResponse {
        recovery_codes: codes,
    }))
}

/// Turn TOTP off (needs a current code or a recovery code). Every session of the person ends;
/// admin roles must enrol again at their next login.
#[utoipa::path(post, path = "/api/v1/auth/totp/disable", tag = "auth",
    extensions(("x-authz" = json!({"resource": "totp", "action": "manage"}))),
    security(("bearer" = [])),
    request_body = TotpCodeRequest,
    responses(
        (status = 204, description = "Disabled"),
        (status = 401, description = "invalid_code"),
        (status = 409, description = "totp_not_enabled"),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    actor: Actor,
    ClientIp(ip): ClientIp,
    AppJson(req): AppJson<TotpCodeRequest>,
) -> AppResult<StatusCode> {
    // The session must still be valid before anything is spent.
    drop(actor.begin(&state).await?);
    let who = TotpPrincipal::Actor(actor.clone());
    // The code's proof lives in this transaction (session-guarded): disable in it.
    let mut tx = second_factor(
        &state,
        Subject::Principal(&who),
        ip,
        req.code.as_ref(),
        req.recovery_code.as_ref(),
        true,
    )
    .await?;
    sqlx::query!("SELECT app_private.totp_disable($1)", state.clock.now())
        .execute(&mut *tx)
        .await?;
    repo::revoke_all_sessions(&mut tx, "mfa_change", state.clock.now()).await?;
    tx.commit().await?;
    tracing::info!(user = %actor.user, "TOTP disabled; sessions revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Second step of login: the MFA token from `POST /auth/login` plus a code (or a recovery
/// code) → a session.
#[utoipa::path(post, path = "/api/v1/auth/login/totp", tag = "auth",
    extensions(("x-authz" = json!({"resource": "auth", "action": "login"}))),
    request_body = LoginTotpRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "invalid_mfa_token or invalid_code"),
    ))]
pub async fn login_totp(
    State(state): State<AppState>,
    scope: HostScope,
    ClientIp(ip): ClientIp,
    AppJson(req): AppJson<LoginTotpRequest>,
) -> AppResult<Json<TokenResponse>> {
    let now = state.clock.now();
    let claims = state
        .tokens
        .verify(
            req.mfa_token.expose_secret(),
            &scope.host,
            scope.tenant,
            TokenType::Mfa,
            now,
        )
        .map_err(|_| AppError::Unauthorized("invalid_mfa_token"))?;
    let user = claims.sub;
    // The session is opened in the transaction that holds the second factor's proof.
    let mut tx = second_factor(
        &state,
        Subject::Login(scope.tenant, user),
        ip,
        req.code.as_ref(),
        req.recovery_code.as_ref(),
        true,
    )
    .await?;
    let (names, active) = repo::current_roles(&mut tx, scope.tenant, user)
        .await?
        .unwrap_or_default();
    let roles = roles_from_db(&names)?;
    if !active || roles.is_empty() {
        return Err(AppError::Unauthorized("invalid_credentials"));
    }
    let tokens = open_session(&state, &mut tx, &scope.host, user, &roles).await?;
    tx.commit().await?;
    Ok(Json(tokens))
}
