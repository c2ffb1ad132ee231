//! `PATCH /api/v1/auth/me`: a signed-in person edits their own profile.
//!
//! Anyone: `display_name`, `locale`. A practitioner (a person with a practitioner profile)
//! also: `specialties`, `languages`, `bio`, `photo_file_id`. The licence and the verification
//! are the platform's: sending them is 403 `platform_managed` and nothing changes (the
//! `practitioner_profiles_guard` trigger of migration 0008 refuses such a change from anyone
//! but a platform admin, whatever the application does). The route sits beside `GET /auth/me`
//! (same path, another method) and its handler lives here with the rest of the profile code.

use axum::Json;
use axum::extract::State;

use super::model::*;
use super::repo;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::auth::model::parse_locale;
use crate::error::{AppError, AppResult, FieldError, Problem};
use crate::http::extract::AppJson;

/// Edit my profile (see the module header for who may change what).
#[utoipa::path(patch, path = "/api/v1/auth/me", tag = "auth",
    extensions(("x-authz" = json!({"resource": "profile", "action": "update"}))),
    security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, body = MyProfile),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "platform_managed: licence and verification"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn update_me(
    State(state): State<AppState>,
    actor: Actor,
    AppJson(req): AppJson<UpdateMeRequest>,
) -> AppResult<Json<MyProfile>> {
    if req.licence_number.is_some() || req.licence_country.is_some() || req.verified.is_some() {
        return Err(AppError::forbidden_because(
            "platform_managed",
            "The licence and its verification are managed by the Serein platform.",
        ));
    }
    let mut errors = Vec::new();
    let display_name = req
        .display_name
        .as_deref()
        .map(|n| parse_display_name(n, &mut errors));
    let locale = match parse_locale(req.locale.as_deref()) {
        Ok(l) => l,
        Err(AppError::Validation(mut e)) => {
            errors.append(&mut e);
            None
        }
        Err(e) => return Err(e),
    };
    let wants_profile = req.specialties.is_some()
        || req.languages.is_some()
        || req.bio.is_some()
        || req.photo_file_id.is_some();

    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let mut profile = repo::profile_for_update(&mut tx, actor.user).await?;
    if wants_profile {
        match profile.as_mut() {
            None => {
                for (present, name) in [
                    (req.specialties.is_some(), "specialties"),
                    (req.languages.is_some(), "languages"),
                    (req.bio.is_some(), "bio"),
                    (req.photo_file_id.is_some(), "photo_file_id"),
                ] {
                    if present {
                        errors.push(FieldError {
                            field: name.into(),
                            reason: "only practitioners have this field".into(),
                        });
                    }
                }
            }
            Some(p) => {
                if let Some(s) = &req.specialties {
                    p.specialties =
                        specialty_names(&parse_specialties("specialties", s, 1, &mut errors));
                }
                if let Some(l) = &req.languages {
                    p.languages = parse_languages("languages", l, &mut errors);
                }
                if let Some(b) = &req.bio {
                    p.bio = parse_bio(b, &mut errors);
                }
                if let Some(f) = req.photo_file_id {
                    p.photo_file_id = f;
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let (display_name, locale) = repo::update_own_identity(
        &mut tx,
        actor.user,
        display_name.as_deref(),
        locale.map(|l| l.as_str()),
        now,
    )
    .await?
    .ok_or(AppError::Unauthorized("session_revoked"))?;
    if wants_profile && let Some(p) = &profile {
        repo::update_profile(&mut tx, actor.user, p, now).await?;
    }
    tx.commit().await?;
    Ok(Json(MyProfile {
        user_id: actor.user,
        display_name,
        locale,
        practitioner: profile.map(|p| OwnPractitionerProfile {
            specialties: specialties_of(&p.specialties),
            languages: p.languages,
            bio: p.bio,
            licence_number: p.licence_number,
            licence_country: p.licence_country,
            verified: p.verified_at.is_some(),
            photo_file_id: p.photo_file_id,
        }),
    }))
}
