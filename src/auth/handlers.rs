//! Auth handlers: thin — extract, throttle per address, call the flow (`flows/`), render its
//! outcome. Registration is one transaction and stays here.
//!
//! Enumeration resistance: see `flows/login.rs`. Registration and "forgot password" answer 202
//! whatever the address (and whatever the seats: a self-sign-up becomes a membership only at
//! verification).
//!
//! Proofs: the database opens a session, sets a password or verifies an address only with a
//! proof recorded in the same transaction by the definer that checked a credential (login
//! challenge, spent link, accepted second factor, presented refresh token). Each flow (in
//! `flows/`, `links.rs` and `totp.rs`) therefore finishes its change in the transaction that
//! holds the proof.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::actor::Actor;
pub use super::flows::HostScope;
use super::flows::login::{self as login_flow, LoginOutcome};
use super::flows::refresh as refresh_flow;
use super::flows::session::secs;
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
use crate::tenants::resolve::Tenant;

fn invalid_credentials() -> AppError {
    AppError::Unauthorized("invalid_credentials")
}

impl IntoResponse for LoginOutcome {
    fn into_response(self) -> Response {
        match self {
            Self::Authenticated(tokens) => Json(*tokens).into_response(),
            Self::MfaRequired {
                mfa_token,
                expires_in,
            } => Json(MfaRequiredResponse {
                status: "mfa_required",
                mfa_token,
                expires_in,
            })
            .into_response(),
            Self::EnrollmentRequired {
                enrollment_token,
                expires_in,
            } => AppError::EnrollmentRequired {
                token: enrollment_token,
                expires_in,
            }
            .into_response(),
            Self::EmailNotVerified => AppError::forbidden_because(
                "email_not_verified",
                "Confirm your e-mail address with the link we sent, then log in.",
            )
            .into_response(),
            Self::InvalidCredentials => invalid_credentials().into_response(),
        }
    }
}

/// Self-sign-up as an employee, for e-mails of the tenant's allowed domains. Creates the
/// identity and mails a verification link; the membership exists only once the address is
/// verified. The answer is the same for every address, whatever the seats.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    extensions(("x-authz" = json!({"resource": "auth", "action": "register"}))),
    request_body = RegisterRequest,
    responses(
        (status = 202, body = Accepted, description = "A confirmation e-mail was sent (whether or not the address already had an account)"),
        (status = 403, description = "signup_closed: the address's domain is not open for self-sign-up here"),
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
        (status = 401, description = "invalid_credentials"),
        (status = 403, description = "email_not_verified, or mfa_enrollment_required (with an enrollment_token)"),
        (status = 429, description = "too_many_requests, with Retry-After"),
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
    login_flow::login(&state, &scope, &email, &req.password)
        .await
        .map(IntoResponse::into_response)
}

/// Rotate a refresh token: the presented one is spent, a new one is returned. Presenting a
/// spent token again within `REFRESH_TOKEN_REUSE_INTERVAL_SECS` returns the same successor;
/// later, it revokes the whole session (token theft is assumed).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    extensions(("x-authz" = json!({"resource": "auth", "action": "refresh"}))),
    request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "invalid_refresh_token, refresh_reused (the session is now revoked), session_expired"),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    scope: HostScope,
    AppJson(req): AppJson<RefreshRequest>,
) -> AppResult<Json<TokenResponse>> {
    refresh_flow::refresh(&state, scope.tenant, &scope.host, &req.refresh_token)
        .await
        .map(Json)
}

/// End this session (every refresh token of it stops working; the access token is refused on
/// its next use).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    extensions(("x-authz" = json!({"resource": "session", "action": "delete"}))),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
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
