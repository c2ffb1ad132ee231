//! `GET /consultations/{id}/video`: the Jitsi room of a video or audio consultation and a
//! token following lib-jitsi-meet's JWT contract (prosody `token` authentication): HS256 with
//! the deployment's app secret; `iss` = app id, `aud` = audience, `sub` = the Jitsi domain,
//! `room` = the consultation's opaque room name (128 random bits, unguessable), `nbf` = start
//! − 10 minutes, `exp` = end + 15 minutes, `context.user` = the caller's display name and
//! `moderator` (true for the practitioner only).
//!
//! Only the two participants get one (anyone else: 404); outside that window, or for a
//! consultation that is not confirmed or started, or a chat or in-person one: 409
//! `not_joinable`; no Jitsi configured: 503 `video_unconfigured`.

use axum::Json;
use axum::extract::State;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

use super::model::Status;
use super::repo;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::availability::model::Kind;
use crate::error::{AppError, AppResult};
use crate::http::extract::AppPath;

/// How early a participant may join.
pub const JOIN_BEFORE: Duration = Duration::minutes(10);
/// How long after the end the room stays open.
pub const STAY_AFTER: Duration = Duration::minutes(15);

/// What a participant needs to join.
#[derive(Debug, Serialize, ToSchema)]
pub struct VideoAccess {
    /// The room URL with the token, to open as is.
    pub url: String,
    pub domain: String,
    pub room: String,
    /// The JWT alone (for an embedded client).
    pub token: String,
    pub moderator: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

#[derive(Serialize)]
struct JitsiUser<'a> {
    name: &'a str,
    id: String,
    moderator: bool,
}

#[derive(Serialize)]
struct JitsiContext<'a> {
    user: JitsiUser<'a>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    room: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    context: JitsiContext<'a>,
}

/// Whether the call of consultation `c` is open at `now`: a video or audio consultation,
/// confirmed or started, from [`JOIN_BEFORE`] its start until [`STAY_AFTER`] its end (the Jitsi
/// token's window, and the realtime signaling's).
pub fn call_open(c: &super::model::Consultation, now: time::OffsetDateTime) -> bool {
    matches!(c.kind, Kind::Video | Kind::Audio)
        && matches!(c.status, Status::Confirmed | Status::Started)
        && now >= c.starts_at - JOIN_BEFORE
        && now < c.ends_at + STAY_AFTER
}

/// The call of one of the caller's consultations.
#[utoipa::path(get, path = "/api/v1/consultations/{id}/video", tag = "consultations",
    extensions(("x-authz" = json!({"resource": "consultations", "action": "join"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Consultation id")),
    responses(
        (status = 200, body = VideoAccess),
        (status = 404, description = "Not one of the caller's consultations here"),
        (status = 409, description = "not_joinable: outside 10 minutes before the start to 15 after the end, not confirmed or started, or not a video or audio consultation"),
        (status = 503, description = "video_unconfigured"),
    ))]
#[tracing::instrument(skip_all, fields(consultation = %id))]
pub async fn video(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<VideoAccess>> {
    actor.require_company()?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let c = repo::one(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    let Some(jitsi) = state.config.consultations.jitsi.as_ref() else {
        return Err(AppError::Unavailable {
            code: "video_unconfigured",
            retry_after_secs: 3600,
        });
    };
    let not_before = c.starts_at - JOIN_BEFORE;
    let expires_at = c.ends_at + STAY_AFTER;
    if !call_open(&c, now) {
        return Err(AppError::Conflict {
            code: "not_joinable",
            detail: "This consultation's call opens 10 minutes before its start.".into(),
        });
    }
    let (room, name) = repo::room_and_name(&mut tx, id, actor.user)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    let moderator = c.practitioner_id == actor.user;
    let claims = Claims {
        iss: &jitsi.app_id,
        aud: &jitsi.audience,
        sub: &jitsi.domain,
        room: &room,
        iat: now.unix_timestamp(),
        nbf: not_before.unix_timestamp(),
        exp: expires_at.unix_timestamp(),
        context: JitsiContext {
            user: JitsiUser {
                name: &name,
                id: actor.user.to_string(),
                moderator,
            },
        },
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(jitsi.app_secret.expose_secret().as_bytes()),
    )
    .map_err(|e| AppError::Internal(format!("signing a Jitsi token: {e}")))?;
    Ok(Json(VideoAccess {
        url: format!("https://{}/{}?jwt={}", jitsi.domain, room, token),
        domain: jitsi.domain.clone(),
        room,
        token,
        moderator,
        not_before,
        expires_at,
    }))
}
