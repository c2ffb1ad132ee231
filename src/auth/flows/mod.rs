//! Multi-step auth logic, one flow per file, each returning a typed outcome: handlers only
//! extract, call a flow and render its outcome.
//!
//! - [`login`]: password login (budget, verification, second factor or session).
//! - [`refresh`]: refresh-token rotation with a reuse interval.
//! - [`session`]: the tokens a session hands out, and opening one.

pub mod login;
pub mod refresh;
pub mod session;

use sha2::{Digest, Sha256};

use super::actor::scope;
use crate::app::AppState;
use crate::db::TenantId;
use crate::error::AppError;

/// The tenant (or platform) and audience host of an auth request.
#[derive(Debug, Clone)]
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

/// The key of a failure budget: `purpose` (`login`, `reset`, …) and its subject, hashed.
pub fn throttle_key(purpose: &str, subject: &str) -> [u8; 32] {
    Sha256::digest(format!("{purpose}:{subject}").as_bytes()).into()
}

/// The failed-login budget of an e-mail on one tenant (or the platform).
pub fn login_key(tenant: TenantId, email: &str) -> [u8; 32] {
    throttle_key("login", &format!("{tenant}:{email}"))
}
