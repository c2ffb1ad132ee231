//! Auth handlers: thin — parse, throttle, call the flow, respond.
//!
//! Enumeration resistance: unknown e-mail, wrong password, no membership in this tenant and a
//! disabled account all answer 401 `invalid_credentials` with the same body, after the same
//! work (the failure budget is spent and a dummy Argon2 verification runs for unknown
//! e-mails, and for addresses that are not members here: the look-up returns no hash for
//! them). Registration and "forgot password" answer 202 whatever the address (and whatever the
//! seats: a self-sign-up becomes a membership only at verification).
//!
//! Proofs: the database opens a session, sets a password or verifies an address only with a
//! proof recorded in the same transaction by the definer that checked a credential (login
//! challenge, spent link, accepted second factor, presented refresh token). Each flow (here,
//! in `links.rs` and in `totp.rs`) therefore finishes its change in the transaction that holds
//! the proof.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::actor::{Actor, scope};
use super::model::*;
use super::repo;
use super::throttle::ClientIp;
use crate::app::AppState;
use crate::crypto::passwords;
use crate::crypto::tokens::{self, TokenType};
use crate::db::tenancy::DbActor;
use crate::db::{SessionId, TenantId, TenantTx, UserId};
use crate::error::{AppError, AppResult, Problem};
use crate::http::extract::AppJson;
use crate::mail::{self, Message};
use crate::rbac::Role;
use crate::tenants::model::Locale;
use crate::tenants::resolve::Tenant;

/// The tenant (or platform) and audience host of an auth request.
pub struct HostScope {
    pub tenant: TenantId,
    pub host: String,
}

impl axum::extract::FromRequestParts<AppState> for HostScope {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        scope(state, &parts.extensions)
            .map(|(tenant, host)| Self { tenant, host })
            .ok_or(AppError::TenantRequired)
    }
}

pub(super) fn throttle_key(purpose: &str, subject: &str) -> [u8; 32] {
    Sha256::digest(format!("{purpose}:{subject}").as_bytes()).into()
}

/// The failed-login budget of an e-mail on one tenant (or the platform).
pub fn login_key(tenant: TenantId, email: &str) -> [u8; 32] {
    throttle_key("login", &format!("{tenant}:{email}"))
}

fn roles_of(names: &[String]) -> Vec<Role> {
    names.iter().filter_map(|n| Role::parse(n)).collect()
}

pub(super) fn secs(d: std::time::Duration) -> time::Duration {
    time::Duration::seconds(i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4))
}

fn sign_err(e: jsonwebtoken::errors::Error) -> AppError {
    AppError::Internal(format!("cannot sign token: {e}"))
}

/// Open a session for `user` (in `tx`) and issue its tokens.
pub(super) async fn open_session(
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
    let idle = now + secs(cfg.session_idle);
    let absolute = now + secs(cfg.session_absolute);
    let tenant = tx.tenant();
    repo::open_session(
        tx,
        session,
        &state.keyring.session_secret(session),
        &refresh.hash,
        now,
        idle.min(absolute),
        absolute,
    )
    .await?;
    let access = state
        .tokens
        .issue(
            TokenType::Access,
            host,
            tenant,
            user,
            roles,
            Some(session),
            now,
            cfg.access_ttl,
        )
        .map_err(sign_err)?;
    Ok(TokenResponse {
        status: "authenticated",
        access_token: access,
        token_type: "Bearer",
        expires_in: cfg.access_ttl.as_secs(),
        refresh_token: refresh.token,
        refresh_expires_at: idle.min(absolute),
        session_id: session,
    })
}

fn invalid_credentials() -> AppError {
    AppError::Unauthorized("invalid_credentials")
}

/// A 403 `mfa_enrollment_required` carrying an enrolment token for the TOTP routes.
fn enrollment_required(token: String, expires_in: u64) -> Response {
    let err = AppError::forbidden_because(
        "mfa_enrollment_required",
        "This role requires an authenticator app (TOTP). Enrol with the enrollment_token at \
         POST /api/v1/auth/totp/setup and /enable, then log in again.",
    );
    let mut body = serde_json::to_value(err.problem()).unwrap_or_else(|_| json!({}));
    if let Some(obj) = body.as_object_mut() {
        obj.insert("enrollment_token".into(), json!(token));
        obj.insert("expires_in".into(), json!(expires_in));
    }
    let mut res = (StatusCode::FORBIDDEN, Json(body)).into_response();
    res.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/problem+json"),
    );
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    res
}

/// Self-sign-up as an employee, for e-mails of the tenant's allowed domains. Creates the
/// identity and mails a verification link; the membership exists only once the address is
/// verified. The answer is the same for every address, whatever the seats.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    extensions(("x-authz" = json!({"resource": "auth", "action": "register"}))),
    request_body = RegisterRequest,
    responses(
        (status = 202, body = Accepted, description = "A confirmation e-mail was sent (whether or not the address already had an account)"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "signup_closed: the address's domain is not open for self-sign-up here"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    tenant: Tenant,
    ClientIp(ip): ClientIp,
    AppJson(req): AppJson<RegisterRequest>,
) -> AppResult<(StatusCode, Json<Accepted>)> {
    let email = Email::parse(&req.email)?;
    state.throttle.check_account(ip, email.as_str())?;
    passwords::check_policy(&req.password, email.as_str())?;
    let display_name = match req.display_name.as_deref().map(str::trim) {
        None | Some("") => String::new(),
        Some(n) => crate::http::text::single_line(n, 200)
            .map_err(|reason| AppError::invalid("display_name", reason))?,
    };
    let requested_locale = parse_locale(req.locale.as_deref())?;

    let mut tx = TenantTx::begin(&state.db, tenant.id, None).await?;
    let t = sqlx::query!(
        "SELECT allowed_email_domains, locale FROM tenants WHERE id = $1",
        tenant.id.as_uuid()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::TenantNotFound)?;
    drop(tx);
    if !t.allowed_email_domains.iter().any(|d| d == email.domain()) {
        return Err(AppError::forbidden_because(
            "signup_closed",
            "Self-sign-up is not open for this e-mail domain; ask your company for an invitation.",
        ));
    }
    let locale = requested_locale.unwrap_or_else(|| Locale::from_stored(&t.locale));
    // Hash whether or not the address is taken: both answers take the same time.
    let hash = state.passwords.hash(&req.password).await?;

    let now = state.clock.now();
    let user = UserId::new();
    let host = format!("{}.{}", tenant.slug, state.config.core.base_domain);
    let base = state.config.auth.public_base(&host);
    let mut tx =
        TenantTx::begin(&state.db, tenant.id, Some(&DbActor::new(user, Vec::new()))).await?;
    let created = repo::create_identity(
        &mut tx,
        user,
        email.as_str(),
        &display_name,
        Some(&hash),
        locale.as_str(),
        now,
    )
    .await?;
    if created {
        // No membership yet: it is created when the link and the password come back
        // (`verify_email`), so an unverified address takes no seat and the answer never
        // depends on the seats.
        let token = tokens::user_token(user);
        let expires = now + secs(state.config.auth.verify_ttl);
        repo::insert_auth_token(&mut tx, "email_verify", &token.hash, now, expires).await?;
        let link = format!("{base}/verify-email?token={}", token.token);
        mail::enqueue(
            &mut tx,
            tenant.id,
            email.as_str(),
            locale,
            &Message::VerifyEmail { link },
            now,
        )
        .await?;
    } else {
        let message = Message::AccountExists {
            login_link: format!("{base}/login"),
            reset_link: format!("{base}/forgot-password"),
        };
        mail::enqueue(&mut tx, tenant.id, email.as_str(), locale, &message, now).await?;
    }
    tx.commit().await?;
    tracing::info!(tenant = %tenant.slug, created, "registration accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            status: "accepted",
            detail: "Check your inbox to confirm your address.",
        }),
    ))
}

/// Log in with e-mail and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    extensions(("x-authz" = json!({"resource": "auth", "action": "login"}))),
    request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse, description = "Signed in (or `status: mfa_required` with an `mfa_token`, see MfaRequiredResponse)"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "invalid_credentials"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "email_not_verified, or mfa_enrollment_required (with an enrollment_token)"),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "too_many_requests, with Retry-After"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    scope: HostScope,
    ClientIp(ip): ClientIp,
    AppJson(req): AppJson<LoginRequest>,
) -> AppResult<Response> {
    // A malformed address is refused like an unknown one (same status, same body).
    let email = Email::parse(&req.email).map_err(|_| invalid_credentials())?;
    state.throttle.check_account(ip, email.as_str())?;
    if req.password.expose_secret().len() > 4 * passwords::MAX_LEN {
        return Err(invalid_credentials());
    }
    let cfg = &state.config.auth;
    let now = state.clock.now();
    // Per tenant: guesses on one company's host cannot lock the person out of another (nor a
    // platform admin out of the platform host); a host where the person is not a member answers
    // the same whatever the password, so it is no oracle either.
    let key = login_key(scope.tenant, email.as_str());

    // Spend one attempt of the budget first (committed, so parallel guesses see it), then read
    // the identity, in one transaction.
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
    let password_ok = state.passwords.verify(&req.password, hash).await?;
    let identity = match identity {
        Some(i) if password_ok && i.user_active && i.member_active && i.password_hash.is_some() => {
            i
        }
        other => {
            if let (true, Some(i)) = (attempt.locked_now, other) {
                // Off the request path: the answer must not take longer for a real account.
                let state = state.clone();
                let scope = HostScope {
                    tenant: scope.tenant,
                    host: scope.host.clone(),
                };
                tokio::spawn(async move {
                    notify_lockout(&state, &scope, &email, &i, now).await;
                });
            }
            return Err(invalid_credentials());
        }
    };

    // The password was right: the budget is restored.
    let mut tx = TenantTx::begin(
        &state.db,
        scope.tenant,
        Some(&DbActor::new(identity.user_id, Vec::new())),
    )
    .await?;
    repo::throttle_clear(&mut tx, &key).await?;
    tx.commit().await?;

    if !identity.email_verified {
        return Err(AppError::forbidden_because(
            "email_not_verified",
            "Confirm your e-mail address with the link we sent, then log in.",
        ));
    }
    let roles = roles_of(&identity.roles);
    let admin = roles.contains(&Role::TenantAdmin) || roles.contains(&Role::PlatformAdmin);
    if admin && !identity.totp_enabled {
        let token = state
            .tokens
            .issue(
                TokenType::Enroll,
                &scope.host,
                scope.tenant,
                identity.user_id,
                &[],
                None,
                now,
                cfg.mfa_ttl,
            )
            .map_err(sign_err)?;
        return Ok(enrollment_required(token, cfg.mfa_ttl.as_secs()));
    }
    if identity.totp_enabled {
        let token = state
            .tokens
            .issue(
                TokenType::Mfa,
                &scope.host,
                scope.tenant,
                identity.user_id,
                &[],
                None,
                now,
                cfg.mfa_ttl,
            )
            .map_err(sign_err)?;
        return Ok(Json(MfaRequiredResponse {
            status: "mfa_required",
            mfa_token: token,
            expires_in: cfg.mfa_ttl.as_secs(),
        })
        .into_response());
    }
    let mut tx = TenantTx::begin(
        &state.db,
        scope.tenant,
        Some(&DbActor::new(identity.user_id, roles.clone())),
    )
    .await?;
    // The database opens a session only with a login proof of this transaction: the hash
    // verified above must still be the person's current one.
    let verified = identity.password_hash.as_deref().unwrap_or_default();
    if !repo::login_challenge(&mut tx, verified).await? {
        return Err(invalid_credentials());
    }
    let tokens = open_session(&state, &mut tx, &scope.host, identity.user_id, &roles).await?;
    tx.commit().await?;
    Ok(Json(tokens).into_response())
}

/// Tell the owner of a real account that it was locked (best effort; never fails the login
/// answer, which must look the same as for unknown addresses).
async fn notify_lockout(
    state: &AppState,
    scope: &HostScope,
    email: &Email,
    identity: &repo::LoginIdentity,
    now: time::OffsetDateTime,
) {
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
            email.as_str(),
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
}

/// Rotate a refresh token: the presented one is spent, a new one is returned. Presenting a
/// spent token revokes the whole session (token theft is assumed).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    extensions(("x-authz" = json!({"resource": "auth", "action": "refresh"}))),
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "invalid_refresh_token, refresh_reused (the session is now revoked), session_expired"),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    scope: HostScope,
    AppJson(req): AppJson<RefreshRequest>,
) -> AppResult<Json<TokenResponse>> {
    let (user, hash) = tokens::parse_user_token(req.refresh_token.expose_secret())
        .ok_or(AppError::Unauthorized("invalid_refresh_token"))?;
    let cfg = &state.config.auth;
    let now = state.clock.now();
    let mut tx = TenantTx::begin(
        &state.db,
        scope.tenant,
        Some(&DbActor::new(user, Vec::new())),
    )
    .await?;
    let row = repo::lock_refresh(&mut tx, scope.tenant, &hash)
        .await?
        .ok_or(AppError::Unauthorized("invalid_refresh_token"))?;
    if row.used_at.is_some() {
        let revoked =
            repo::revoke_session(&mut tx, scope.tenant, row.session, "refresh_reuse", now).await?;
        tx.commit().await?;
        if revoked {
            tracing::warn!(session = %row.session, user = %row.user, "refresh token reused: session revoked");
        }
        return Err(AppError::Unauthorized("refresh_reused"));
    }
    if row.revoked
        || row.expires_at <= now
        || row.idle_expires_at <= now
        || row.absolute_expires_at <= now
    {
        return Err(AppError::Unauthorized("session_expired"));
    }
    // Roles are re-read: a token never outlives a change of membership.
    let (names, active) = repo::current_roles(&mut tx, scope.tenant, user)
        .await?
        .unwrap_or_default();
    let roles = roles_of(&names);
    if !active || roles.is_empty() {
        repo::revoke_session(&mut tx, scope.tenant, row.session, "membership_change", now).await?;
        tx.commit().await?;
        return Err(AppError::Unauthorized("session_expired"));
    }
    let next = tokens::user_token(user);
    let idle = (now + secs(cfg.session_idle)).min(row.absolute_expires_at);
    if !repo::rotate_refresh(&mut tx, &hash, &next.hash, now, idle).await? {
        return Err(AppError::Unauthorized("session_expired"));
    }
    tx.commit().await?;
    let access = state
        .tokens
        .issue(
            TokenType::Access,
            &scope.host,
            scope.tenant,
            user,
            &roles,
            Some(row.session),
            now,
            cfg.access_ttl,
        )
        .map_err(sign_err)?;
    Ok(Json(TokenResponse {
        status: "authenticated",
        access_token: access,
        token_type: "Bearer",
        expires_in: cfg.access_ttl.as_secs(),
        refresh_token: next.token,
        refresh_expires_at: idle,
        session_id: row.session,
    }))
}

/// End this session (every refresh token of it stops working; the access token is refused on
/// its next use).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    extensions(("x-authz" = json!({"resource": "session", "action": "delete"}))),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout(State(state): State<AppState>, actor: Actor) -> AppResult<StatusCode> {
    let mut tx = actor.begin(&state).await?;
    repo::revoke_session(
        &mut tx,
        actor.tenant,
        actor.session,
        "logout",
        state.clock.now(),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who am I, here.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    extensions(("x-authz" = json!({"resource": "session", "action": "read"}))),
    security(("bearer" = [])),
    responses(
        (status = 200, body = MeResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn me(State(state): State<AppState>, actor: Actor) -> AppResult<Json<MeResponse>> {
    let mut tx = actor.begin(&state).await?;
    let u = sqlx::query!(
        r#"SELECT u.email, u.display_name, u.locale, u.email_verified_at IS NOT NULL AS "verified!",
                  coalesce(app_private.own_totp_enabled(), false) AS "totp!", m.department AS "department?", m.status AS "status?"
           FROM users u
           LEFT JOIN memberships m ON m.user_id = u.id AND m.tenant_id = $2
           WHERE u.id = $1"#,
        actor.user.as_uuid(),
        actor.tenant.as_uuid()
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::Unauthorized("session_revoked"))?;
    tx.commit().await?;
    Ok(Json(MeResponse {
        user: MeUser {
            id: actor.user,
            email: u.email,
            display_name: u.display_name,
            locale: u.locale,
            email_verified: u.verified,
            totp_enabled: u.totp,
        },
        tenant_id: actor.tenant,
        host: actor.host.clone(),
        roles: actor.roles.clone(),
        session_id: actor.session,
        membership: u.status.map(|status| MeMembership {
            department: u.department,
            status,
        }),
    }))
}
