//! `/api/v1/auth/me`, the one home of the signed-in person's own record: `GET` (who am I,
//! here) and `PATCH` (edit my profile).
//!
//! PATCH — anyone: `display_name`, `locale`. A practitioner (a person with a practitioner
//! profile) also: `specialties`, `languages`, `bio`, `photo_file_id`. The licence and the
//! verification are the platform's: sending them is 403 `platform_managed` and nothing changes
//! (the `practitioner_profiles_guard` trigger of migration 0008 refuses such a change from
//! anyone but a platform admin, whatever the application does). The practitioner profile's
//! parsing and SQL stay with the practitioners feature, which this module calls.

use axum::Json;
use axum::extract::State;

use super::actor::Actor;
use super::model::{MeMembership, MeResponse, MeUser, parse_locale};
use crate::app::AppState;
use crate::error::{AppError, AppResult, FieldError};
use crate::http::extract::AppJson;
use crate::practitioners::model::{
    MyProfile, OwnPractitionerProfile, UpdateMeRequest, parse_bio, parse_display_name,
    parse_languages, parse_specialties, specialties_of, specialty_names,
};
use crate::practitioners::repo;

/// Who am I, here.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    extensions(("x-authz" = json!({"resource": "session", "action": "read"}))),
    security(("bearer" = [])),
    responses(
        (status = 200, body = MeResponse),
    ))]
pub async fn me(State(state): State<AppState>, actor: Actor) -> AppResult<Json<MeResponse>> {
    let mut tx = actor.begin(&state).await?;
    let u = sqlx::query!(
        r#"SELECT u.email, u.display_name, u.locale, u.email_verified_at IS NOT NULL AS "verified!", u.avatar_file_id,
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
            avatar_url: u.avatar_file_id.map(|f| format!("/api/v1/files/{f}")),
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

/// Edit my profile (see the module header for who may change what).
#[utoipa::path(patch, path = "/api/v1/auth/me", tag = "auth",
    extensions(("x-authz" = json!({"resource": "profile", "action": "update"}))),
    security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, body = MyProfile),
        (status = 403, description = "platform_managed: licence and verification"),
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
