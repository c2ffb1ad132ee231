//! `POST|GET /consultations/{id}/review` (issue 11, item 9): one review per ended consultation,
//! by its employee — a rating of 1–5 and an optional comment (at most 2,000 characters).
//!
//! Invariants:
//! - Only the consultation's employee reviews it, once, and only once it has `ended`: the
//!   handler answers 404 (not their consultation, or another company's), 409 `not_reviewable`
//!   (not ended) or 409 `review_exists`; underneath, the request role cannot write the table:
//!   `app_private.review_consultation` (migration 20261207000002) proves the same for the
//!   person proven by the session guard, takes the practitioner from the consultation, and
//!   UNIQUE (tenant_id, consultation_id) settles a race.
//! - A review is read back by its author only (policy and route); the practitioner, HR and
//!   tenant admins read no review. What others see is the practitioner's released aggregate
//!   (count and mean, only from the company's `min_cohort` on, in steps of five): the
//!   directory and the matching engine (`practitioners::repo::ratings`).
//! - The comment is stored only as AES-256-GCM ciphertext with the AAD
//!   `v1|tenant|consultation_reviews|comment|{review id}` (a blob moved to another row or
//!   company does not open). Key: [`KeyScope::Clinical`], the company's TENANT-level key that
//!   seals records directly (the `data` purpose only wraps subject keys and has no record
//!   scope), not the employee's subject key: the review is a record the company's platform
//!   keeps for its quality process, like other tenant-held records, so it survives the
//!   employee's crypto-shredding; the company's offboarding destroys it with the tenant keys.
//! - Never logged: the rating or the comment.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::model::Status;
use super::repo;
use crate::app::AppState;
use crate::auth::actor::Actor;
use crate::crypto::keyring::{Aad, KeyScope};
use crate::db::{TenantId, UserId};
use crate::error::{AppError, AppResult, FieldError};
use crate::http::extract::{AppJson, AppPath};

/// Longest comment, in characters (Unicode scalar values).
pub const MAX_COMMENT_CHARS: usize = 2000;
/// The key that seals comments (see the module header).
pub const COMMENT_SCOPE: KeyScope = KeyScope::Clinical;
const TABLE: &str = "consultation_reviews";
const COLUMN: &str = "comment";

/// `POST /consultations/{id}/review`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// 1 (poor) to 5 (excellent).
    #[schema(minimum = 1, maximum = 5)]
    pub rating: i64,
    /// Optional; at most 2,000 characters (surrounding white space dropped; empty = none).
    /// Read by the platform's quality process, never shown to the practitioner.
    #[schema(max_length = 2000)]
    pub comment: Option<String>,
}

/// A review as validated.
#[derive(Debug)]
pub struct NewReview {
    pub rating: i16,
    pub comment: Option<String>,
}

impl ReviewRequest {
    /// Validate once: every field's problems at once (422 `validation_failed`).
    pub fn parse(self) -> Result<NewReview, AppError> {
        let mut errors = Vec::new();
        let rating = i16::try_from(self.rating)
            .ok()
            .filter(|r| (1..=5).contains(r));
        if rating.is_none() {
            errors.push(FieldError {
                field: "rating".into(),
                reason: "must be a whole number from 1 to 5".into(),
            });
        }
        let comment = self
            .comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
        {
            errors.push(FieldError {
                field: "comment".into(),
                reason: format!("must be at most {MAX_COMMENT_CHARS} characters"),
            });
        }
        match rating {
            Some(rating) if errors.is_empty() => Ok(NewReview { rating, comment }),
            _ => Err(AppError::Validation(errors)),
        }
    }
}

/// A review, as its author reads it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Review {
    pub id: Uuid,
    pub consultation_id: Uuid,
    pub practitioner_id: UserId,
    /// 1–5.
    pub rating: i16,
    pub comment: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

fn comment_aad(tenant: TenantId, review: Uuid) -> Aad<'static> {
    Aad {
        tenant,
        table: TABLE,
        column: COLUMN,
        row_id: review,
    }
}

fn not_reviewable() -> AppError {
    AppError::Conflict {
        code: "not_reviewable",
        detail: "A consultation can be reviewed once it has ended.".into(),
    }
}

fn review_exists() -> AppError {
    AppError::Conflict {
        code: "review_exists",
        detail: "This consultation has been reviewed already.".into(),
    }
}

/// Review one of the caller's ended consultations (its employee; once).
#[utoipa::path(post, path = "/api/v1/consultations/{id}/review", tag = "consultations",
    extensions(("x-authz" = json!({"resource": "consultation_reviews", "action": "create"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Consultation id")),
    request_body = ReviewRequest,
    responses(
        (status = 201, body = Review),
        (status = 404, description = "Not one of the caller's consultations (as its employee) here"),
        (status = 409, description = "not_reviewable (the consultation has not ended) or review_exists"),
        (status = 422, description = "validation_failed: rating outside 1–5, comment over 2,000 characters"),
    ))]
#[tracing::instrument(skip_all, fields(consultation = %id))]
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
    AppJson(req): AppJson<ReviewRequest>,
) -> AppResult<(StatusCode, Json<Review>)> {
    actor.require_company()?;
    let new = req.parse()?;
    let now = state.clock.now();
    let mut tx = actor.begin(&state).await?;
    let c = repo::one(&mut tx, id)
        .await?
        .filter(|c| c.employee_id == actor.user)
        .ok_or(AppError::NotFound)?;
    if c.status != Status::Ended {
        return Err(not_reviewable());
    }
    if stored(&mut tx, id).await?.is_some() {
        return Err(review_exists());
    }
    let review_id = Uuid::now_v7();
    let sealed = match &new.comment {
        Some(text) => Some(
            state
                .keyring
                .seal(
                    &mut tx,
                    actor.tenant,
                    COMMENT_SCOPE,
                    &comment_aad(actor.tenant, review_id),
                    text.as_bytes(),
                )
                .await?,
        ),
        None => None,
    };
    // The definer proves all of the above again for the proven person, and settles a race.
    let outcome = sqlx::query_scalar!(
        r#"SELECT app_private.review_consultation($1, $2, $3, $4, $5) AS "outcome!""#,
        review_id,
        id,
        new.rating,
        sealed,
        now
    )
    .fetch_one(&mut *tx)
    .await?;
    match outcome.as_str() {
        "created" => {}
        "review_exists" => return Err(review_exists()),
        "not_reviewable" => return Err(not_reviewable()),
        _ => return Err(AppError::NotFound),
    }
    tx.commit().await?;
    tracing::info!(review = %review_id, "consultation reviewed");
    Ok((
        StatusCode::CREATED,
        Json(Review {
            id: review_id,
            consultation_id: id,
            practitioner_id: c.practitioner_id,
            rating: new.rating,
            comment: new.comment,
            created_at: now,
        }),
    ))
}

/// The caller's own review of one of their consultations.
#[utoipa::path(get, path = "/api/v1/consultations/{id}/review", tag = "consultations",
    extensions(("x-authz" = json!({"resource": "consultation_reviews", "action": "read"}))),
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Consultation id")),
    responses(
        (status = 200, body = Review),
        (status = 404, description = "No review of this consultation by the caller here"),
        (status = 410, description = "sealed_data_unreadable: the comment cannot be opened"),
    ))]
#[tracing::instrument(skip_all, fields(consultation = %id))]
pub async fn get(
    State(state): State<AppState>,
    actor: Actor,
    AppPath(id): AppPath<Uuid>,
) -> AppResult<Json<Review>> {
    actor.require_company()?;
    let mut tx = actor.begin(&state).await?;
    let row = stored(&mut tx, id).await?.ok_or(AppError::NotFound)?;
    let comment = match &row.comment {
        Some(blob) => {
            let plain = state
                .keyring
                .open(
                    &mut tx,
                    actor.tenant,
                    COMMENT_SCOPE,
                    &comment_aad(actor.tenant, row.id),
                    blob,
                )
                .await?;
            Some(
                String::from_utf8(plain.to_vec())
                    .map_err(|_| AppError::Gone("sealed_data_unreadable"))?,
            )
        }
        None => None,
    };
    tx.commit().await?;
    Ok(Json(Review {
        id: row.id,
        consultation_id: row.consultation_id,
        practitioner_id: row.practitioner_id,
        rating: row.rating,
        comment,
        created_at: row.created_at,
    }))
}

/// A review as stored (comment sealed).
struct Stored {
    id: Uuid,
    consultation_id: Uuid,
    practitioner_id: UserId,
    rating: i16,
    comment: Option<Vec<u8>>,
    created_at: OffsetDateTime,
}

/// The review of a consultation in this company, when the caller may read it (its author:
/// row-level security).
async fn stored(
    conn: &mut PgConnection,
    consultation: Uuid,
) -> Result<Option<Stored>, sqlx::Error> {
    sqlx::query_as!(
        Stored,
        r#"SELECT id, consultation_id, practitioner_id AS "practitioner_id: UserId", rating,
                  comment, created_at
           FROM consultation_reviews
           WHERE tenant_id = app.current_tenant() AND consultation_id = $1"#,
        consultation
    )
    .fetch_optional(conn)
    .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    fn req(rating: i64, comment: Option<&str>) -> ReviewRequest {
        ReviewRequest {
            rating,
            comment: comment.map(str::to_owned),
        }
    }

    fn fields(e: AppError) -> Vec<String> {
        match e {
            AppError::Validation(errors) => errors.into_iter().map(|f| f.field).collect(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn ratings_are_one_to_five_and_comments_at_most_2000_characters() {
        for r in 1..=5 {
            assert_eq!(
                req(r, None).parse().unwrap().rating,
                i16::try_from(r).unwrap()
            );
        }
        for r in [0, 6, -1, i64::from(i16::MAX) + 1, i64::MAX] {
            assert_eq!(fields(req(r, None).parse().unwrap_err()), ["rating"]);
        }
        // Characters, not bytes: 2,000 multi-byte characters pass, 2,001 do not.
        let long = "é".repeat(MAX_COMMENT_CHARS);
        assert!(req(4, Some(&long)).parse().is_ok());
        let longer = format!("{long}é");
        assert_eq!(
            fields(req(4, Some(&longer)).parse().unwrap_err()),
            ["comment"]
        );
        assert_eq!(
            fields(req(9, Some(&longer)).parse().unwrap_err()),
            ["rating", "comment"]
        );
        // Blank is no comment.
        assert_eq!(req(3, Some("  \n ")).parse().unwrap().comment, None);
        assert_eq!(
            req(3, Some(" Kind. ")).parse().unwrap().comment.as_deref(),
            Some("Kind.")
        );
    }
}
