//! The authorization gate and the verified actor.
//!
//! [`authorize`] runs on every product route after routing (so it knows the route template):
//! 1. the route's declared (resource, action) is looked up — none → 403 (deny by default);
//! 2. if `anonymous` may do it, the request proceeds without an actor;
//! 3. otherwise a bearer access token is required (missing or invalid → 401): signature,
//!    algorithm, issuer, audience = this host, tenant = this host's tenant, type, expiry;
//!    an enrolment token is accepted only where the `enrolling` pseudo-role is allowed
//!    (else 403 `mfa_enrollment_required`);
//! 4. Casbin must allow one of the token's roles (else 403).
//!
//! The session itself (revoked? membership disabled? role removed?) is checked by the database
//! in the context statement of the request's first transaction ([`Actor::begin`]), in the same
//! round trip — handlers reach data only through that transaction.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::crypto::tokens::{Claims, TokenType};
use crate::db::tenancy::{DbActor, SessionCheck};
use crate::db::{SessionId, TenantId, TenantTx, UserId};
use crate::error::AppError;
use crate::rbac::Role;
use crate::rbac::enforcer::ENROLLING;
use crate::tenants::resolve::Tenancy;

/// A person authenticated by an access token, on the host it was issued for.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: UserId,
    pub tenant: TenantId,
    pub roles: Vec<Role>,
    pub session: SessionId,
    /// The host (audience) of the request.
    pub host: String,
}

impl Actor {
    /// Begin the request's RLS-scoped transaction as this person; the session guard runs in
    /// the same statement.
    pub async fn begin(&self, state: &AppState) -> Result<TenantTx, AppError> {
        TenantTx::begin(&state.db, self.tenant, Some(&self.db_actor(state))).await
    }

    pub fn db_actor(&self, state: &AppState) -> DbActor {
        DbActor {
            user: self.user,
            roles: self.roles.clone(),
            session: Some(SessionCheck {
                id: self.session,
                secret: state.keyring.session_secret(self.session),
                now: state.clock.now(),
            }),
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// For company routes: refuse the platform host (404 `tenant_required`), as defence in
    /// depth behind Casbin (platform tokens hold no company role).
    pub fn require_company(&self) -> Result<(), AppError> {
        if self.tenant.is_platform() {
            return Err(AppError::TenantRequired);
        }
        Ok(())
    }

    /// For platform routes: a platform admin on the platform host, or 403.
    pub fn require_platform_admin(&self) -> Result<(), AppError> {
        if self.tenant.is_platform() && self.has(Role::PlatformAdmin) {
            Ok(())
        } else {
            Err(AppError::forbidden())
        }
    }
}

/// An admin who must enrol TOTP and holds only an enrolment token.
#[derive(Debug, Clone)]
pub struct Enrolling {
    pub user: UserId,
    pub tenant: TenantId,
    pub host: String,
}

/// Who may manage TOTP: a signed-in person, or an admin enrolling.
#[derive(Debug, Clone)]
pub enum TotpPrincipal {
    Actor(Actor),
    Enrolling(Enrolling),
}

impl TotpPrincipal {
    pub fn user(&self) -> UserId {
        match self {
            Self::Actor(a) => a.user,
            Self::Enrolling(e) => e.user,
        }
    }
    pub fn tenant(&self) -> TenantId {
        match self {
            Self::Actor(a) => a.tenant,
            Self::Enrolling(e) => e.tenant,
        }
    }
    pub fn host(&self) -> &str {
        match self {
            Self::Actor(a) => &a.host,
            Self::Enrolling(e) => &e.host,
        }
    }

    /// The person's transaction: with the session guard for an actor; an enrolling admin has
    /// no session yet (the enrolment token is short-lived and reaches only TOTP enrolment).
    pub async fn begin(&self, state: &AppState) -> Result<TenantTx, AppError> {
        match self {
            Self::Actor(a) => a.begin(state).await,
            Self::Enrolling(e) => {
                TenantTx::begin(&state.db, e.tenant, Some(&DbActor::new(e.user, Vec::new()))).await
            }
        }
    }
}

/// The tenant and the audience host of a request: a company host, or the platform host.
pub fn scope(state: &AppState, parts_ext: &axum::http::Extensions) -> Option<(TenantId, String)> {
    match parts_ext.get::<Tenancy>()? {
        Tenancy::Tenant(t) => Some((
            t.id,
            format!("{}.{}", t.slug, state.config.core.base_domain),
        )),
        Tenancy::Platform => Some((TenantId::PLATFORM, state.config.core.base_domain.clone())),
    }
}

/// The bearer token of a request, if any. Only the `Bearer` scheme, once.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let v = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let v = v.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The access token a WebSocket client offers as the subprotocol `bearer.<token>` (a browser
/// cannot set `Authorization` on a WebSocket, and a token in the URL would reach logs). Only on
/// an upgrade request.
pub fn ws_bearer(headers: &HeaderMap) -> Option<&str> {
    let upgrade = headers.get(header::UPGRADE)?.to_str().ok()?;
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return None;
    }
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| p.strip_prefix("bearer."))
        .filter(|t| !t.is_empty())
}

/// The gate (see the module header).
pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match gate(&state, &mut req) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn gate(state: &AppState, req: &mut Request) -> Result<(), AppError> {
    let decision = {
        let Some(path) = req.extensions().get::<MatchedPath>() else {
            // Unmatched requests never reach a route layer; be strict anyway.
            return Err(AppError::forbidden());
        };
        let Some(decision) = state.rbac.decision(req.method(), path.as_str()) else {
            tracing::error!(route = %path.as_str(), "route without an authorization decision: denied");
            return Err(AppError::forbidden());
        };
        decision
    };
    if state.rbac.is_public(decision) {
        return Ok(());
    }
    // Host-independent routes are public; everything else needs a host scope.
    let (tenant, host) = scope(state, req.extensions()).ok_or(AppError::TenantRequired)?;
    // The subprotocol form is read on the socket route only.
    let token = bearer(req.headers())
        .or_else(|| {
            (decision.resource == "realtime")
                .then(|| ws_bearer(req.headers()))
                .flatten()
        })
        .ok_or(AppError::Unauthorized("unauthorized"))?;
    let now = state.clock.now();
    let claims: Claims = match state
        .tokens
        .verify(token, &host, tenant, TokenType::Access, now)
    {
        Ok(c) => c,
        Err(crate::crypto::tokens::TokenError::WrongType) => {
            let c = state
                .tokens
                .verify(token, &host, tenant, TokenType::Enroll, now)
                .map_err(|_| AppError::Unauthorized("unauthorized"))?;
            if !state.rbac.allows(ENROLLING, decision) {
                return Err(AppError::forbidden_because(
                    "mfa_enrollment_required",
                    "Enrol an authenticator app (TOTP) before using this route.",
                ));
            }
            req.extensions_mut().insert(Enrolling {
                user: c.sub,
                tenant,
                host,
            });
            return Ok(());
        }
        Err(e) => {
            tracing::debug!(reason = %e, "bearer token refused");
            return Err(AppError::Unauthorized("unauthorized"));
        }
    };
    if !state.rbac.allows_roles(&claims.roles, decision) {
        return Err(AppError::forbidden());
    }
    let session = claims.sid.ok_or(AppError::Unauthorized("unauthorized"))?;
    req.extensions_mut().insert(Actor {
        user: claims.sub,
        tenant,
        roles: claims.roles,
        session,
        host,
    });
    Ok(())
}

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or(AppError::Unauthorized("unauthorized"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TotpPrincipal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if let Some(a) = parts.extensions.get::<Actor>() {
            return Ok(Self::Actor(a.clone()));
        }
        parts
            .extensions
            .get::<Enrolling>()
            .cloned()
            .map(Self::Enrolling)
            .ok_or(AppError::Unauthorized("unauthorized"))
    }
}
