//! `POST /public/cancel/{token}`: cancel a consultation from the link in its confirmation
//! e-mail, without signing in (issue 11, item 5).
//!
//! Invariants:
//! - The link is `{link id}.{256 random bits}`; only the SHA-256 of the whole is stored
//!   (`consultation_cancel_links`, issued by the job worker with the confirmation or
//!   reschedule notice). The request role cannot read that table: the definer
//!   `app_private.public_cancel` compares the hash, in the request's company only.
//! - Single use, and dead once the consultation can no longer be cancelled (its start has
//!   passed, it started, it was cancelled). Every dead case is the same 410
//!   `cancel_link_gone`: the answer says nothing about why, nor whether the link ever existed.
//! - It is a POST, never a GET: a mail scanner that follows links cancels nothing. The e-mail
//!   points to the web app's page, which asks the person and then posts here.
//! - The cancellation is the employee's, with the same late rule as `POST
//!   /consultations/{id}/cancel` (inside the company's window it counts against the
//!   allowance); the practitioner is notified by the job it plans.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::crypto::tokens;
use crate::db::TenantTx;
use crate::error::{AppError, AppResult};
use crate::http::extract::AppPath;
use crate::tenants::resolve::Tenant;

/// The cancellation a link made.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicCancelled {
    /// Always `cancelled`.
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    /// Late cancellation: the session counts as used.
    pub counts_against_allowance: bool,
}

fn gone() -> AppError {
    AppError::Gone("cancel_link_gone")
}

/// Cancel the consultation a single-use e-mailed link names (anonymous: the link is the
/// credential).
#[utoipa::path(post, path = "/api/v1/public/cancel/{token}", tag = "consultations",
    extensions(("x-authz" = json!({"resource": "cancel_link", "action": "use"}))),
    params(("token" = String, Path, pattern = "^[0-9a-f]{32}\\.[A-Za-z0-9_-]{43}$",
            description = "The link's last segment")),
    responses(
        (status = 200, body = PublicCancelled),
        (status = 410, description = "cancel_link_gone: unknown, used, expired, another company's, or the consultation can no longer be cancelled"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn cancel(
    State(state): State<AppState>,
    tenant: Tenant,
    AppPath(token): AppPath<String>,
) -> AppResult<Json<PublicCancelled>> {
    let (id, hash) = tokens::parse_record_token(&token).ok_or_else(gone)?;
    let now = state.clock.now();
    let mut tx = TenantTx::begin(&state.db, tenant.id, None).await?;
    let row = sqlx::query!(
        r#"SELECT outcome AS "outcome!", starts_at, counts_against_allowance
           FROM app_private.public_cancel($1, $2, $3)"#,
        id,
        hash.as_slice(),
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    match (
        row.outcome.as_str(),
        row.starts_at,
        row.counts_against_allowance,
    ) {
        ("cancelled", Some(starts_at), Some(counts)) => {
            tx.commit().await?;
            tracing::info!(link = %id, "consultation cancelled by its e-mailed link");
            Ok(Json(PublicCancelled {
                status: "cancelled".into(),
                starts_at,
                counts_against_allowance: counts,
            }))
        }
        _ => Err(gone()),
    }
}
