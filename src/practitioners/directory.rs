//! The practitioner directory and matching of a company (company host).
//!
//! Who: employees and tenant admins (`practitioners`/`read`), practitioners (their colleagues);
//! matching (`practitioners`/`match`) is for employees, the people seeking care. HR has no
//! access: it has no use for it and DESIGN §7 keeps HR away from anything about care.
//!
//! Invariants:
//! - Only practitioners with an ACTIVE practitioner membership in THIS tenant appear, by the
//!   explicit `tenant_id = $1` filter and, underneath, by the RLS policies on memberships and
//!   `practitioner_profiles`. Anyone else's id (another tenant's practitioner, an employee) is
//!   404 — the same answer as an id that does not exist.
//! - Never an e-mail address or a licence number (see `model`).
//! - Lists are keyset-paginated with a deterministic order (ties broken by user id).
//! - `rating` is the released aggregate of `repo::ratings` (never a review, never below this
//!   company's `min_cohort`); matching scores with the same figures.

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::model::*;
use super::repo::{self, DirectoryFilter};
use super::scoring::{self, Component, Need};
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::db::UserId;
use crate::error::{AppError, AppResult, FieldError};
use crate::http::extract::AppPath;
use crate::http::pagination::{Limit, decode_cursor, page};

/// Longest free-text query accepted.
const MAX_Q_CHARS: usize = 200;

/// The practitioners of this company. Filters: `specialty` (any of; repeated or
/// comma-separated), `language` (ISO 639-1), `q` (full-text search on name and bio,
/// `websearch_to_tsquery` syntax: words, "phrases", -exclusions, or). Without `q` ordered by
/// name; with `q` the practitioners whose name matches come first, then those whose bio
/// matches, each group by name (ties by id). Keyset pagination (`limit` 1–100, default 20).
#[utoipa::path(get, path = "/api/v1/practitioners", tag = "practitioners",
    extensions(("x-authz" = json!({"resource": "practitioners", "action": "read"}))),
    security(("bearer" = [])),
    params(
        ("specialty" = Option<Vec<Specialty>>, Query, description = "Any of these (repeat or comma-separate)"),
        ("language" = Option<String>, Query, pattern = "^[A-Za-z]{2}$", description = "ISO 639-1 code"),
        ("q" = Option<String>, Query, description = "Full-text search on name and bio"),
        ("limit" = Option<i64>, Query, minimum = 1, description = "Default 20; above 100 counts as 100"),
        ("cursor" = Option<String>, Query),
    ),
    responses(
        (status = 200, body = DirectoryPage),
    ))]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<AppState>,
    actor: Actor,
    RawQuery(raw): RawQuery,
) -> AppResult<Json<DirectoryPage>> {
    actor.require_company()?;
    let pairs = query_pairs(raw.as_deref());
    only_known(&pairs, &["specialty", "language", "q", "limit", "cursor"])?;
    let mut errors = Vec::new();
    let specs = values_of(&pairs, "specialty");
    let specialties = if specs.is_empty() {
        Vec::new()
    } else {
        parse_specialties("specialty", &specs, 1, &mut errors)
    };
    let language = match single(&pairs, "language")? {
        None => None,
        Some(l) => {
            let parsed = parse_language(&l);
            if parsed.is_none() {
                errors.push(FieldError {
                    field: "language".into(),
                    reason: "must be an ISO 639-1 code (two letters, e.g. en, fr)".into(),
                });
            }
            parsed
        }
    };
    let q = single(&pairs, "q")?
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    if q.as_ref().is_some_and(|q| q.chars().count() > MAX_Q_CHARS) {
        errors.push(FieldError {
            field: "q".into(),
            reason: format!("must be at most {MAX_Q_CHARS} characters"),
        });
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let limit = Limit::parse(single(&pairs, "limit")?.as_deref(), 20, 100)?;
    let after = decode_cursor::<Cursor>(single(&pairs, "cursor")?.as_deref())?;
    // A cursor carries the sort key of its list: a relevance cursor is meaningless without `q`
    // and a name cursor with it.
    match (&after, &q) {
        (Some(Cursor::Match { .. }), None) | (Some(Cursor::Name { .. }), Some(_)) => {
            return Err(AppError::bad_request(
                "invalid_cursor",
                "The cursor belongs to a different search.",
            ));
        }
        _ => {}
    }
    let filter = DirectoryFilter {
        specialties: specialty_names(&specialties),
        language,
        q,
    };
    let mut tx = actor.begin(&state).await?;
    let rows = repo::directory_page(
        &mut tx,
        actor.tenant,
        &filter,
        after.as_ref(),
        limit.fetch(),
    )
    .await?;
    tx.commit().await?;
    let (rows, next_cursor) = page(rows, limit, |(p, tier)| match tier {
        Some(t) => Cursor::Match {
            t: *t,
            n: p.display_name.clone(),
            u: p.user_id.as_uuid(),
        },
        None => Cursor::Name {
            n: p.display_name.clone(),
            u: p.user_id.as_uuid(),
        },
    });
    Ok(Json(DirectoryPage {
        items: rows.into_iter().map(|(p, _)| p).collect(),
        next_cursor,
    }))
}

/// One practitioner of this company (404 for anyone not assigned here).
#[utoipa::path(get, path = "/api/v1/practitioners/{id}", tag = "practitioners",
    extensions(("x-authz" = json!({"resource": "practitioners", "action": "read"}))),
    security(("bearer" = [])),
    params(("id" = UserId, Path, description = "The practitioner's user id")),
    responses(
        (status = 200, body = DirectoryPractitioner),
    ))]
#[tracing::instrument(skip_all)]
pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<UserId>,
) -> AppResult<Json<DirectoryPractitioner>> {
    actor.require_company()?;
    let mut tx = actor.begin(&state).await?;
    let p = repo::directory_one(&mut tx, actor.tenant, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(Json(p))
}

/// A ranked practitioner with the reasons of its score.
#[derive(Debug, Serialize, ToSchema)]
pub struct MatchItem {
    pub practitioner: DirectoryPractitioner,
    /// In [0, 1], rounded to 4 decimals: `Σ weight × value / Σ applied weights`.
    pub score: f64,
    pub components: Vec<Component>,
    pub explanation: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MatchResponse {
    /// The needs as understood (deduplicated, in request order).
    pub need: Vec<Specialty>,
    pub language: Option<String>,
    pub items: Vec<MatchItem>,
}

/// The practitioners of this company who best fit `need` (one or more specialties, repeated
/// or comma-separated) and `language`, with an explainable score (see the `scoring` module:
/// specialty fit, language, soonest availability, rating — only once the practitioner's
/// released reviews reach this company's `min_cohort`, as in the directory — and verified
/// licence).
/// Only practitioners covering at least one need are listed. Deterministic: equal inputs give
/// equal outputs; ties are broken by user id.
#[utoipa::path(get, path = "/api/v1/practitioners/match", tag = "practitioners",
    extensions(("x-authz" = json!({"resource": "practitioners", "action": "match"}))),
    security(("bearer" = [])),
    params(
        ("need" = Vec<Specialty>, Query, description = "One or more specialties (repeat or comma-separate)"),
        ("language" = Option<String>, Query, pattern = "^[A-Za-z]{2}$", description = "ISO 639-1 code"),
        ("limit" = Option<i64>, Query, minimum = 1, description = "Default 5; above 20 counts as 20"),
    ),
    responses(
        (status = 200, body = MatchResponse),
    ))]
#[tracing::instrument(skip_all)]
pub async fn match_practitioners(
    State(state): State<AppState>,
    actor: Actor,
    RawQuery(raw): RawQuery,
) -> AppResult<Json<MatchResponse>> {
    actor.require_company()?;
    let pairs = query_pairs(raw.as_deref());
    only_known(&pairs, &["need", "language", "limit"])?;
    let mut errors = Vec::new();
    let needs = values_of(&pairs, "need");
    let specialties = if needs.is_empty() {
        errors.push(FieldError {
            field: "need".into(),
            reason: "name at least one specialty".into(),
        });
        Vec::new()
    } else {
        parse_specialties("need", &needs, 1, &mut errors)
    };
    let language = match single(&pairs, "language")? {
        None => None,
        Some(l) => {
            let parsed = parse_language(&l);
            if parsed.is_none() {
                errors.push(FieldError {
                    field: "language".into(),
                    reason: "must be an ISO 639-1 code (two letters, e.g. en, fr)".into(),
                });
            }
            parsed
        }
    };
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let limit = Limit::parse(single(&pairs, "limit")?.as_deref(), 5, 20)?.get();
    let need = Need {
        specialties,
        language,
        now: state.clock.now(),
    };
    let mut tx = actor.begin(&state).await?;
    let candidates =
        repo::match_candidates(&mut tx, actor.tenant, &specialty_names(&need.specialties)).await?;
    // Availability: each candidate's soonest free slot across every company they serve.
    let mut candidates = candidates;
    for c in &mut candidates {
        c.soonest_slot =
            crate::availability::open_slots::soonest_slot(&mut tx, c.user_id, need.now).await?;
    }
    let ranked = scoring::rank(&need, &candidates, usize::try_from(limit).unwrap_or(5));
    let mut items = Vec::with_capacity(ranked.len());
    for s in ranked {
        // Re-read through the directory query (same visibility rules as GET /practitioners/{id}).
        if let Some(p) = repo::directory_one(&mut tx, actor.tenant, s.user_id).await? {
            items.push(MatchItem {
                practitioner: p,
                score: s.score,
                components: s.components,
                explanation: s.explanation,
            });
        }
    }
    tx.commit().await?;
    Ok(Json(MatchResponse {
        need: need.specialties,
        language: need.language,
        items,
    }))
}
