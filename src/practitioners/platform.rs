//! The platform's side of the practitioner network (platform host, `platform_admin`):
//! create a practitioner (identity + global profile + welcome mail with a single-use
//! set-password link), list, read and edit the network.
//!
//! Invariants:
//! - Every handler checks `actor.tenant == TenantId::PLATFORM` (defence in depth: the gate and
//!   the policies already confine `platform_admin` to the platform host).
//! - `POST /platform/practitioners` answers 202 with the same body for every address: only an
//!   address without an account becomes a practitioner (identity and profile made together by
//!   `app_private.create_practitioner_identity`; the request role inserts no profile); an
//!   address that has one gets a notice mail instead. The platform learns nothing about
//!   whether an address has an account (a company's employee stays invisible).
//! - A platform admin never touches credentials: the identity and the link are made by the
//!   definers of migration 0011, which issue a link only to an identity WITHOUT a password (an
//!   existing account is never taken over; its owner keeps their password and gets no link).
//! - The set-password link is a `password_reset` token of the platform tenant, spent by
//!   `POST /api/v1/auth/password/reset` on the platform host; it then works on every company
//!   host the practitioner is assigned to (one identity, one password).

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;

use super::model::*;
use super::repo::{self, PlatformFilter, ProfileFields};
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::auth::model::{Email, parse_locale};
use crate::crypto::tokens;
use crate::db::{TenantId, UserId};
use crate::error::{AppError, AppResult, FieldError};
use crate::http::extract::{AppJson, AppPath};
use crate::http::pagination::{Limit, decode_cursor, page};
use crate::mail::{self, Message};
use crate::tenants::model::Locale;

/// How long the welcome (set-password) link works.
pub const WELCOME_LINK_HOURS: u32 = 72;

fn validation(errors: Vec<FieldError>) -> Result<(), AppError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

/// Create a practitioner of the network and mail them a single-use link to set their password.
/// 202 with the same body for every address (see the module header).
#[utoipa::path(post, path = "/api/v1/platform/practitioners", tag = "practitioners",
    extensions(("x-authz" = json!({"resource": "practitioner_network", "action": "create"}))),
    security(("bearer" = [])),
    request_body = CreatePractitionerRequest,
    responses(
        (status = 202, body = PractitionerRequested, description = "The same for every address: a new address gets its identity, profile and welcome link; one that already has an account gets a notice mail and nothing is created"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    AppJson(req): AppJson<CreatePractitionerRequest>,
) -> AppResult<(StatusCode, Json<PractitionerRequested>)> {
    actor.require_platform_admin()?;
    let mut errors = Vec::new();
    let email = match Email::parse(&req.email) {
        Ok(e) => Some(e),
        Err(AppError::Validation(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(e) => return Err(e),
    };
    let display_name = parse_display_name(&req.display_name, &mut errors);
    let specialties = parse_specialties("specialties", &req.specialties, 1, &mut errors);
    let languages = parse_languages("languages", &req.languages, &mut errors);
    let bio = parse_bio(req.bio.as_deref().unwrap_or(""), &mut errors);
    let licence_number = req
        .licence_number
        .as_deref()
        .map(|l| parse_licence_number(l, &mut errors));
    let licence_country = req
        .licence_country
        .as_deref()
        .map(|c| parse_country(c, &mut errors));
    let locale = match parse_locale(req.locale.as_deref()) {
        Ok(l) => l.unwrap_or(Locale::En),
        Err(AppError::Validation(mut e)) => {
            errors.append(&mut e);
            Locale::En
        }
        Err(e) => return Err(e),
    };
    validation(errors)?;
    let Some(email) = email else {
        return Err(AppError::invalid("email", "is not a valid e-mail address"));
    };
    let email = mail::deliverable(email.as_str())?.to_owned();

    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    // The same answer for every address (no account oracle): a new address gets an identity,
    // its profile and the welcome link; an address that already has an account (a company's
    // employee, a practitioner already) gets a notice mail instead, and nothing is created.
    match repo::create_identity(
        &mut tx,
        UserId::new(),
        &email,
        &display_name,
        locale.as_str(),
        now,
    )
    .await?
    {
        Some((user, _created)) => {
            let fields = ProfileFields {
                specialties: specialty_names(&specialties),
                languages,
                bio,
                licence_number,
                licence_country,
                verified_at: req.verified.then_some(now),
                photo_file_id: req.photo_file_id,
            };
            if !repo::update_profile(&mut tx, user, &fields, now).await? {
                return Err(AppError::Internal(
                    "new practitioner profile not visible".into(),
                ));
            }
            send_welcome(&state, &actor, &mut tx, user, &email, locale.as_str()).await?;
        }
        None => {
            mail::enqueue(
                &mut tx,
                TenantId::PLATFORM,
                &email,
                locale,
                &Message::PractitionerAddressInUse,
                now,
            )
            .await?;
        }
    }
    tx.commit().await?;
    tracing::info!("practitioner request handled");
    Ok((StatusCode::ACCEPTED, Json(PractitionerRequested { email })))
}

/// Issue a fresh set-password link (retiring earlier ones) and queue the welcome mail, in the
/// caller's transaction. `false`: nothing issued (the person already has a password).
async fn send_welcome(
    state: &AppState,
    actor: &Actor,
    tx: &mut crate::db::TenantTx,
    user: UserId,
    email: &str,
    locale: &str,
) -> AppResult<bool> {
    let now = state.clock.now();
    let token = tokens::user_token(user);
    let expires = now + time::Duration::hours(i64::from(WELCOME_LINK_HOURS));
    if !repo::issue_password_link(tx, user, &token.hash, now, expires).await? {
        return Ok(false);
    }
    let link = format!(
        "{}/set-password?token={}",
        state.config.auth.public_base(&actor.host),
        token.token
    );
    let locale = Locale::from_stored(locale);
    mail::enqueue(
        tx,
        TenantId::PLATFORM,
        email,
        locale,
        &Message::PractitionerWelcome {
            link,
            expires_in_hours: WELCOME_LINK_HOURS,
        },
        now,
    )
    .await?;
    Ok(true)
}

/// Send a practitioner who has not set a password yet a fresh welcome link (the previous one
/// stops working). 409 `password_already_set` otherwise: they use "forgot password" instead.
#[utoipa::path(post, path = "/api/v1/platform/practitioners/{id}/welcome", tag = "practitioners",
    extensions(("x-authz" = json!({"resource": "practitioner_network", "action": "update"}))),
    security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The practitioner's user id")),
    responses(
        (status = 202, body = WelcomeSent),
        (status = 409, description = "password_already_set"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn resend_welcome(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<UserId>,
) -> AppResult<(StatusCode, Json<WelcomeSent>)> {
    actor.require_platform_admin()?;
    let mut tx = actor.begin(&state).await?;
    let (p, locale) = repo::platform_one(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if !send_welcome(&state, &actor, &mut tx, id, &p.email, &locale).await? {
        return Err(AppError::Conflict {
            code: "password_already_set",
            detail: "This practitioner has a password; they can use \"forgot password\" on a company host.".into(),
        });
    }
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(WelcomeSent {
            welcome_mail_sent: true,
            expires_in_hours: WELCOME_LINK_HOURS,
        }),
    ))
}

/// A welcome link was queued.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WelcomeSent {
    pub welcome_mail_sent: bool,
    pub expires_in_hours: u32,
}

/// The network: keyset pagination by name; filters `specialty` (any of, repeated or
/// comma-separated), `verified` (true|false), `q` (substring of name or e-mail).
#[utoipa::path(get, path = "/api/v1/platform/practitioners", tag = "practitioners",
    extensions(("x-authz" = json!({"resource": "practitioner_network", "action": "read"}))),
    security(("bearer" = [])),
    params(
        ("specialty" = Option<Vec<Specialty>>, Query, description = "Any of these (repeat or comma-separate)"),
        ("verified" = Option<bool>, Query),
        ("q" = Option<String>, Query, description = "Substring of the name or e-mail"),
        ("limit" = Option<i64>, Query, minimum = 1, description = "Default 20; above 100 counts as 100"),
        ("cursor" = Option<String>, Query),
    ),
    responses(
        (status = 200, body = PlatformPage),
    ))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    RawQuery(raw): RawQuery,
) -> AppResult<Json<PlatformPage>> {
    actor.require_platform_admin()?;
    let pairs = query_pairs(raw.as_deref());
    only_known(&pairs, &["specialty", "verified", "q", "limit", "cursor"])?;
    let mut errors = Vec::new();
    let specs = values_of(&pairs, "specialty");
    let specialties = if specs.is_empty() {
        Vec::new()
    } else {
        parse_specialties("specialty", &specs, 1, &mut errors)
    };
    let verified = match single(&pairs, "verified")?.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            errors.push(FieldError {
                field: "verified".into(),
                reason: "must be true or false".into(),
            });
            None
        }
    };
    let q = single(&pairs, "q")?
        .map(|q| q.trim().chars().take(200).collect::<String>())
        .filter(|q| !q.is_empty());
    validation(errors)?;
    let limit = Limit::parse(single(&pairs, "limit")?.as_deref(), 20, 100)?;
    let after = match decode_cursor::<Cursor>(single(&pairs, "cursor")?.as_deref())? {
        None => None,
        Some(c) => match c {
            Cursor::Name { n, u } => Some((n, u)),
            Cursor::Match { .. } => {
                return Err(AppError::bad_request(
                    "invalid_cursor",
                    "The cursor is not one this list issued.",
                ));
            }
        },
    };
    let filter = PlatformFilter {
        specialties: specialty_names(&specialties),
        verified,
        q,
    };
    let mut tx = actor.begin(&state).await?;
    let rows = repo::platform_page(
        &mut tx,
        &filter,
        after.as_ref().map(|(n, u)| (n.as_str(), *u)),
        limit.fetch(),
    )
    .await?;
    tx.commit().await?;
    let (items, next_cursor) = page(rows, limit, |last| Cursor::Name {
        n: last.display_name.clone(),
        u: last.user_id.as_uuid(),
    });
    Ok(Json(PlatformPage { items, next_cursor }))
}

/// One practitioner of the network.
#[utoipa::path(get, path = "/api/v1/platform/practitioners/{id}", tag = "practitioners",
    extensions(("x-authz" = json!({"resource": "practitioner_network", "action": "read"}))),
    security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The practitioner's user id")),
    responses(
        (status = 200, body = PlatformPractitioner),
    ))]
#[tracing::instrument(skip_all)]
pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<UserId>,
) -> AppResult<Json<PlatformPractitioner>> {
    actor.require_platform_admin()?;
    let mut tx = actor.begin(&state).await?;
    let (p, _) = repo::platform_one(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(p))
}

/// Edit a practitioner's profile, licence and verification included. The person's name and
/// locale are theirs (`PATCH /auth/me`).
#[utoipa::path(patch, path = "/api/v1/platform/practitioners/{id}", tag = "practitioners",
    extensions(("x-authz" = json!({"resource": "practitioner_network", "action": "update"}))),
    security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The practitioner's user id")),
    request_body = PlatformUpdateRequest,
    responses(
        (status = 200, body = PlatformPractitioner),
    ))]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<UserId>,
    AppJson(req): AppJson<PlatformUpdateRequest>,
) -> AppResult<Json<PlatformPractitioner>> {
    actor.require_platform_admin()?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let mut p = repo::profile_for_update(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let mut errors = Vec::new();
    if let Some(s) = &req.specialties {
        p.specialties = specialty_names(&parse_specialties("specialties", s, 1, &mut errors));
    }
    if let Some(l) = &req.languages {
        p.languages = parse_languages("languages", l, &mut errors);
    }
    if let Some(b) = &req.bio {
        p.bio = parse_bio(b, &mut errors);
    }
    if let Some(l) = &req.licence_number {
        p.licence_number = l.as_deref().map(|l| parse_licence_number(l, &mut errors));
    }
    if let Some(c) = &req.licence_country {
        p.licence_country = c.as_deref().map(|c| parse_country(c, &mut errors));
    }
    if let Some(v) = req.verified {
        // Re-verifying keeps the original date; un-verifying clears it.
        p.verified_at = match (v, p.verified_at) {
            (true, Some(at)) => Some(at),
            (true, None) => Some(now),
            (false, _) => None,
        };
    }
    if let Some(f) = req.photo_file_id {
        p.photo_file_id = f;
    }
    validation(errors)?;
    repo::update_profile(&mut tx, id, &p, now).await?;
    let (out, _) = repo::platform_one(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(out))
}
