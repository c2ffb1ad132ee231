//! A person's notification preferences in one company: `GET|PUT /notifications/preferences`.
//!
//! The matrix (every kind × channel, its default and whether it can be changed) is the
//! database's `app_private.notification_options()`, read here, never copied: what this module
//! validates against is what the table's CHECK and the delivery triggers enforce.
//!
//! Invariants:
//! - A person reads and writes only their own cells in this company: the table's policy on the
//!   proven person for reading, and for writing the definer
//!   `app_private.notification_preferences_set`, which takes the person from the session proof
//!   (no person argument) and never deletes.
//! - `PUT` is all or nothing: an unknown kind or channel, a cell that cannot be changed, or two
//!   different values for one cell is a 422 naming every bad item, and nothing is stored.
//! - `PUT` is idempotent: storing the value a cell already holds changes nothing (not even its
//!   `updated_at`).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::db::TenantTx;
use crate::error::{AppError, AppResult, FieldError};
use crate::http::extract::AppJson;

/// Most cells one `PUT` may name (the matrix has 14).
const MAX_CHANGES: usize = 100;

/// One cell of the matrix, as it applies to the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preference {
    /// `consultation_requested`, `consultation_confirmed`, `consultation_cancelled`,
    /// `consultation_rescheduled`, `consultation_reminder`, `message_received` or `digest`.
    pub kind: String,
    /// `in_app` or `email`.
    pub channel: String,
    /// What applies now: the caller's choice, else the default.
    pub enabled: bool,
    /// The value when the caller has made no choice.
    pub default: bool,
    /// False: not offered (always `enabled = default`), e.g. a new message by e-mail.
    pub changeable: bool,
    /// When the caller last changed it (absent: never).
    #[serde(with = "time::serde::rfc3339::option")]
    pub updated_at: Option<OffsetDateTime>,
}

/// The whole matrix, kind by kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preferences {
    pub preferences: Vec<Preference>,
}

/// One cell to set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferenceChange {
    pub kind: String,
    pub channel: String,
    pub enabled: bool,
}

/// `PUT` body: the cells to set (others keep their value).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferenceChanges {
    pub preferences: Vec<PreferenceChange>,
}

async fn matrix(tx: &mut TenantTx, actor: &Actor) -> Result<Vec<Preference>, AppError> {
    Ok(sqlx::query_as!(
        Preference,
        r#"SELECT o.kind AS "kind!", o.channel AS "channel!",
                  CASE WHEN o.changeable THEN coalesce(p.enabled, o.default_enabled)
                       ELSE o.default_enabled END AS "enabled!",
                  o.default_enabled AS "default!", o.changeable AS "changeable!",
                  p.updated_at AS "updated_at?"
           FROM app_private.notification_options() WITH ORDINALITY
                AS o(kind, channel, default_enabled, changeable, n)
           LEFT JOIN notification_preferences p
                  ON p.tenant_id = app.current_tenant() AND p.user_id = $1
                 AND p.kind = o.kind AND p.channel = o.channel
           ORDER BY o.n"#,
        actor.user.as_uuid()
    )
    .fetch_all(&mut **tx)
    .await?)
}

/// Check every change against the matrix; all the errors at once.
fn check(cells: &[Preference], changes: &[PreferenceChange]) -> Result<(), AppError> {
    let mut errors = Vec::new();
    let mut err = |i: usize, field: &str, reason: &str| {
        errors.push(FieldError {
            field: format!("preferences[{i}]{field}"),
            reason: reason.to_owned(),
        });
    };
    if changes.len() > MAX_CHANGES {
        return Err(AppError::invalid(
            "preferences",
            format!("at most {MAX_CHANGES} items"),
        ));
    }
    for (i, c) in changes.iter().enumerate() {
        if !cells.iter().any(|p| p.kind == c.kind) {
            err(i, ".kind", "is not a notification kind");
        } else if !cells.iter().any(|p| p.channel == c.channel) {
            err(i, ".channel", "must be in_app or email");
        } else if !cells
            .iter()
            .any(|p| p.kind == c.kind && p.channel == c.channel && p.changeable)
        {
            err(i, "", "this kind cannot be changed on this channel");
        } else if changes
            .iter()
            .any(|o| o.kind == c.kind && o.channel == c.channel && o.enabled != c.enabled)
        {
            err(i, "", "the same cell is given two different values");
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(errors))
    }
}

/// The caller's notification preferences here: every kind × channel with what applies.
#[utoipa::path(get, path = "/api/v1/notifications/preferences", tag = "notifications",
    extensions(("x-authz" = json!({"resource": "notification_preferences", "action": "read"}))),
    security(("bearer" = [])),
    responses((status = 200, body = Preferences)))]
#[tracing::instrument(skip_all)]
pub async fn show(State(state): State<AppState>, actor: Actor) -> AppResult<Json<Preferences>> {
    actor.require_company()?;
    let mut tx = actor.begin(&state).await?;
    let preferences = matrix(&mut tx, &actor).await?;
    tx.commit().await?;
    Ok(Json(Preferences { preferences }))
}

/// Set some of the caller's preferences (all or nothing; idempotent); answers the whole matrix.
#[utoipa::path(put, path = "/api/v1/notifications/preferences", tag = "notifications",
    extensions(("x-authz" = json!({"resource": "notification_preferences", "action": "update"}))),
    security(("bearer" = [])),
    request_body = PreferenceChanges,
    responses(
        (status = 200, body = Preferences),
        (status = 422, description = "An unknown kind or channel, a cell that cannot be changed, \
                                      or two values for one cell: nothing was changed"),
    ))]
#[tracing::instrument(skip_all, fields(changes = body.preferences.len()))]
pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    AppJson(body): AppJson<PreferenceChanges>,
) -> AppResult<Json<Preferences>> {
    actor.require_company()?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let cells = matrix(&mut tx, &actor).await?;
    check(&cells, &body.preferences)?;
    let (mut kinds, mut channels, mut enabled) = (Vec::new(), Vec::new(), Vec::new());
    for c in body.preferences {
        kinds.push(c.kind);
        channels.push(c.channel);
        enabled.push(c.enabled);
    }
    sqlx::query_scalar!(
        r#"SELECT app_private.notification_preferences_set($1, $2, $3, $4) AS "changed!""#,
        &kinds,
        &channels,
        &enabled,
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    let preferences = matrix(&mut tx, &actor).await?;
    tx.commit().await?;
    Ok(Json(Preferences { preferences }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn cell(kind: &str, channel: &str, changeable: bool) -> Preference {
        Preference {
            kind: kind.into(),
            channel: channel.into(),
            enabled: true,
            default: true,
            changeable,
            updated_at: None,
        }
    }

    fn change(kind: &str, channel: &str, enabled: bool) -> PreferenceChange {
        PreferenceChange {
            kind: kind.into(),
            channel: channel.into(),
            enabled,
        }
    }

    #[test]
    fn every_bad_item_is_named_and_good_ones_pass() {
        let cells = vec![
            cell("message_received", "in_app", true),
            cell("message_received", "email", false),
        ];
        check(&cells, &[change("message_received", "in_app", false)]).unwrap();
        check(
            &cells,
            &[
                change("message_received", "in_app", false),
                change("message_received", "in_app", false),
            ],
        )
        .unwrap();
        let Err(AppError::Validation(errors)) = check(
            &cells,
            &[
                change("nope", "in_app", true),
                change("message_received", "sms", true),
                change("message_received", "email", true),
                change("message_received", "in_app", true),
                change("message_received", "in_app", false),
            ],
        ) else {
            panic!("expected a validation error")
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "preferences[0].kind",
                "preferences[1].channel",
                "preferences[2]",
                "preferences[3]",
                "preferences[4]"
            ]
        );
    }
}
