//! SQL of the practitioner network. Every function runs inside the caller's `TenantTx`, so
//! row-level security applies on top of the explicit filters:
//! - directory queries filter `m.tenant_id = $1` on ACTIVE practitioner memberships (and the
//!   `practitioner_profiles_read` policy shows a profile only through such a membership); they
//!   read names through `app_private.practitioner_names()` (id and display name of the active
//!   practitioners serving the request's company): a company's people cannot read a
//!   practitioner's identity row (e-mail, verification), migration 20261204000003; a page of
//!   the directory comes from `app_private.practitioner_directory(…)` (by name) and
//!   `app_private.practitioner_search(…)` (a text search), the same rows one page at a time
//!   from the company's stored directory entries (migrations 20261205000002 and
//!   20261206000001), so a page costs a page, not the company;
//! - ratings (directory and matching alike) come only from `app_private.practitioner_ratings`
//!   (migration 20261207000002): counts and means released in steps of five and hidden below
//!   the company's `min_cohort`; no query here reads a review row;
//! - platform queries run in the platform tenant as `platform_admin`, where the policies of
//!   migration 0008 show the network's profiles and identities, and nothing of any company.

use std::collections::HashMap;

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::model::{Cursor, DirectoryPractitioner, PlatformPractitioner, specialties_of};
use super::scoring::{Candidate, Rating};
use crate::db::{TenantId, UserId};

/// Directory filters, already validated.
#[derive(Debug, Clone, Default)]
pub struct DirectoryFilter {
    /// Practitioners covering ANY of these (empty: no filter).
    pub specialties: Vec<String>,
    pub language: Option<String>,
    /// Free text (`websearch_to_tsquery('simple', …)` syntax).
    pub q: Option<String>,
}

struct DirRow {
    user_id: UserId,
    display_name: String,
    specialties: Vec<String>,
    languages: Vec<String>,
    bio: String,
    verified: bool,
    licence_country: Option<String>,
    photo_file_id: Option<Uuid>,
    tier: Option<i32>,
}

impl DirRow {
    fn into_item(self) -> (DirectoryPractitioner, Option<u8>) {
        (
            DirectoryPractitioner {
                user_id: self.user_id,
                display_name: self.display_name,
                specialties: specialties_of(&self.specialties),
                languages: self.languages,
                bio: self.bio,
                verified: self.verified,
                licence_country: self.licence_country,
                photo_file_id: self.photo_file_id,
                rating: None,
            },
            self.tier.and_then(|t| u8::try_from(t).ok()),
        )
    }
}

/// One page of the directory plus one row (the caller passes `Limit::fetch`).
/// Without `q`: ordered by (display_name, user_id). With `q`: by (tier, display_name, user_id),
/// tier 1 the name matches, tier 2 the bio only (`app_private.practitioner_search`).
pub async fn directory_page(
    conn: &mut PgConnection,
    tenant: TenantId,
    f: &DirectoryFilter,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<(DirectoryPractitioner, Option<u8>)>, sqlx::Error> {
    let specs: Option<Vec<String>> = (!f.specialties.is_empty()).then(|| f.specialties.clone());
    let rows = match &f.q {
        None => {
            // The first page starts after ('', nil): one statement, no optional keyset.
            let (after_name, after_id) = match after {
                Some(Cursor::Name { n, u }) => (n.clone(), *u),
                _ => (String::new(), Uuid::nil()),
            };
            sqlx::query_as!(
                DirRow,
                r#"SELECT d.id AS "user_id!: UserId", d.display_name AS "display_name!",
                          p.specialties AS "specialties!", p.languages AS "languages!", p.bio AS "bio!",
                          p.verified_at IS NOT NULL AS "verified!", p.licence_country,
                          p.photo_file_id, NULL::int4 AS "tier?"
                   FROM app_private.practitioner_directory($2, $3, $4, $5, $6) d
                   -- LATERAL … LIMIT 1: a look-up per row of the page, never a join that a
                   -- generic plan could turn into a read of the whole company.
                   JOIN LATERAL (SELECT 1 FROM memberships m
                                 WHERE m.user_id = d.id AND m.tenant_id = $1 AND m.status = 'active'
                                   AND 'practitioner' = ANY (m.roles) LIMIT 1) m ON true
                   JOIN practitioner_profiles p ON p.user_id = d.id
                   ORDER BY d.display_name, d.id"#,
                tenant.as_uuid(),
                specs.as_deref(),
                f.language.as_deref(),
                after_name,
                after_id,
                i32::try_from(limit).unwrap_or(i32::MAX)
            )
            .fetch_all(&mut *conn)
            .await?
        }
        Some(q) => {
            // Tier 0 starts at the beginning: one statement, no optional keyset.
            let (after_tier, after_name, after_id) = match after {
                Some(Cursor::Match { t, n, u }) => (i32::from(*t), n.clone(), *u),
                _ => (0, String::new(), Uuid::nil()),
            };
            sqlx::query_as!(
                DirRow,
                r#"SELECT d.id AS "user_id!: UserId", d.display_name AS "display_name!",
                          p.specialties AS "specialties!", p.languages AS "languages!", p.bio AS "bio!",
                          p.verified_at IS NOT NULL AS "verified!", p.licence_country,
                          p.photo_file_id, d.tier AS "tier?"
                   FROM app_private.practitioner_search($2, $3, $4, $5, $6, $7, $8) d
                   -- LATERAL … LIMIT 1: a look-up per row of the page, never a join that a
                   -- generic plan could turn into a read of the whole company.
                   JOIN LATERAL (SELECT 1 FROM memberships m
                                 WHERE m.user_id = d.id AND m.tenant_id = $1 AND m.status = 'active'
                                   AND 'practitioner' = ANY (m.roles) LIMIT 1) m ON true
                   JOIN practitioner_profiles p ON p.user_id = d.id
                   ORDER BY d.tier, d.display_name, d.id"#,
                tenant.as_uuid(),
                q,
                specs.as_deref(),
                f.language.as_deref(),
                after_tier,
                after_name,
                after_id,
                i32::try_from(limit).unwrap_or(i32::MAX)
            )
            .fetch_all(&mut *conn)
            .await?
        }
    };
    let mut items: Vec<(DirectoryPractitioner, Option<u8>)> =
        rows.into_iter().map(DirRow::into_item).collect();
    let ids: Vec<Uuid> = items.iter().map(|(p, _)| p.user_id.as_uuid()).collect();
    let mut rated = ratings(conn, &ids).await?;
    for (p, _) in &mut items {
        p.rating = rated.remove(&p.user_id).map(Rating::public);
    }
    Ok(items)
}

/// One practitioner of this tenant's directory.
pub async fn directory_one(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<DirectoryPractitioner>, sqlx::Error> {
    let row = sqlx::query_as!(
        DirRow,
        r#"SELECT u.id AS "user_id!: UserId", u.display_name AS "display_name!",
                  p.specialties AS "specialties!", p.languages AS "languages!", p.bio AS "bio!",
                  p.verified_at IS NOT NULL AS "verified!", p.licence_country,
                  p.photo_file_id, NULL::int4 AS "tier?"
           FROM memberships m
           JOIN app_private.practitioner_names() u ON u.id = m.user_id
           JOIN practitioner_profiles p ON p.user_id = m.user_id
           WHERE m.tenant_id = $1 AND m.user_id = $2 AND m.status = 'active'
             AND 'practitioner' = ANY (m.roles)"#,
        tenant.as_uuid(),
        user.as_uuid()
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(mut p) = row.map(|r| r.into_item().0) else {
        return Ok(None);
    };
    p.rating = ratings(conn, &[p.user_id.as_uuid()])
        .await?
        .remove(&p.user_id)
        .map(Rating::public);
    Ok(Some(p))
}

/// The released ratings of these practitioners, by `app_private.practitioner_ratings`
/// (migration 20261207000002): only practitioners serving this company whose reviews, from
/// every company, released in steps of five, reach this company's `min_cohort`. Absent:
/// hidden (too few to be anonymous), or not a practitioner here.
pub async fn ratings(
    conn: &mut PgConnection,
    practitioners: &[Uuid],
) -> Result<HashMap<UserId, Rating>, sqlx::Error> {
    if practitioners.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query!(
        r#"SELECT practitioner_id AS "practitioner_id!: UserId", review_count AS "count!",
                  rating_mean AS "mean!"
           FROM app_private.practitioner_ratings($1)"#,
        practitioners
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.practitioner_id,
                Rating {
                    mean: r.mean,
                    count: r.count,
                },
            )
        })
        .collect())
}

/// Matching candidates: this tenant's active practitioners covering at least one need.
/// `soonest_slot` is NULL here (the caller asks the slot engine); the rating is the released
/// one of [`ratings`] (NULL below this company's `min_cohort`, so a score never reveals what
/// the directory hides).
pub async fn match_candidates(
    conn: &mut PgConnection,
    tenant: TenantId,
    needs: &[String],
) -> Result<Vec<Candidate>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"WITH c AS (
               SELECT u.id, p.specialties, p.languages, p.verified_at IS NOT NULL AS verified
               FROM memberships m
               JOIN app_private.practitioner_names() u ON u.id = m.user_id
               JOIN practitioner_profiles p ON p.user_id = m.user_id
               WHERE m.tenant_id = $1 AND m.status = 'active' AND 'practitioner' = ANY (m.roles)
                 AND p.specialties && $2)
           SELECT c.id AS "user_id!: UserId", c.specialties AS "specialties!",
                  c.languages AS "languages!", c.verified AS "verified!",
                  NULL::timestamptz AS "soonest_slot?", r.rating_mean AS "rating_mean?",
                  r.review_count AS "rating_count?"
           FROM c
           LEFT JOIN app_private.practitioner_ratings(ARRAY(SELECT c.id FROM c)) r
             ON r.practitioner_id = c.id
           ORDER BY c.id"#,
        tenant.as_uuid(),
        needs
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Candidate {
            user_id: r.user_id,
            specialties: specialties_of(&r.specialties),
            languages: r.languages,
            verified: r.verified,
            soonest_slot: r.soonest_slot,
            rating: match (r.rating_mean, r.rating_count) {
                (Some(mean), Some(count)) => Some(Rating { mean, count }),
                _ => None,
            },
        })
        .collect())
}

// ------------------------------------------------------------------------------------------
// Platform.

/// Create the identity of a new practitioner and its empty profile (definer; platform admins
/// only). `None` when the address already has an account (nothing created, nothing returned).
pub async fn create_identity(
    conn: &mut PgConnection,
    id: UserId,
    email: &str,
    display_name: &str,
    locale: &str,
    now: OffsetDateTime,
) -> Result<Option<(UserId, bool)>, sqlx::Error> {
    let r = sqlx::query!(
        r#"SELECT user_id AS "user_id!: UserId", created AS "created!"
           FROM app_private.create_practitioner_identity($1, $2, $3, $4, $5)"#,
        id.as_uuid(),
        email,
        display_name,
        locale,
        now
    )
    .fetch_optional(conn)
    .await?;
    Ok(r.map(|r| (r.user_id, r.created)))
}

/// The stored fields of a profile.
#[derive(Debug, Clone)]
pub struct ProfileFields {
    pub specialties: Vec<String>,
    pub languages: Vec<String>,
    pub bio: String,
    pub licence_number: Option<String>,
    pub licence_country: Option<String>,
    pub verified_at: Option<OffsetDateTime>,
    pub photo_file_id: Option<Uuid>,
}

/// Issue the set-password link (definer). `false`: not issued (the person has a password).
pub async fn issue_password_link(
    conn: &mut PgConnection,
    user: UserId,
    hash: &[u8; 32],
    now: OffsetDateTime,
    expires: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let issued = sqlx::query_scalar!(
        r#"SELECT app_private.issue_practitioner_password_link($1, $2, $3, $4, $5) AS "issued!""#,
        user.as_uuid(),
        Uuid::now_v7(),
        hash.as_slice(),
        now,
        expires
    )
    .fetch_one(conn)
    .await?;
    Ok(issued)
}

struct PlatformRow {
    user_id: UserId,
    email: String,
    display_name: String,
    locale: String,
    specialties: Vec<String>,
    languages: Vec<String>,
    bio: String,
    licence_number: Option<String>,
    licence_country: Option<String>,
    verified_at: Option<OffsetDateTime>,
    photo_file_id: Option<Uuid>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl PlatformRow {
    fn into_item(self) -> PlatformPractitioner {
        PlatformPractitioner {
            user_id: self.user_id,
            email: self.email,
            display_name: self.display_name,
            specialties: specialties_of(&self.specialties),
            languages: self.languages,
            bio: self.bio,
            licence_number: self.licence_number,
            licence_country: self.licence_country,
            verified: self.verified_at.is_some(),
            verified_at: self.verified_at,
            photo_file_id: self.photo_file_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// One practitioner of the network, with their locale (for mail).
pub async fn platform_one(
    conn: &mut PgConnection,
    user: UserId,
) -> Result<Option<(PlatformPractitioner, String)>, sqlx::Error> {
    let r = sqlx::query_as!(
        PlatformRow,
        r#"SELECT u.id AS "user_id!: UserId", u.email AS "email!", u.display_name AS "display_name!",
                  u.locale AS "locale!", p.specialties AS "specialties!", p.languages AS "languages!",
                  p.bio AS "bio!", p.licence_number, p.licence_country, p.verified_at, p.photo_file_id,
                  p.created_at AS "created_at!", p.updated_at AS "updated_at!"
           FROM practitioner_profiles p
           JOIN users u ON u.id = p.user_id
           WHERE p.user_id = $1"#,
        user.as_uuid()
    )
    .fetch_optional(conn)
    .await?;
    Ok(r.map(|r| {
        let locale = r.locale.clone();
        (r.into_item(), locale)
    }))
}

/// Platform list filters.
#[derive(Debug, Clone, Default)]
pub struct PlatformFilter {
    pub specialties: Vec<String>,
    pub verified: Option<bool>,
    /// Case-insensitive substring of the name or the e-mail.
    pub q: Option<String>,
}

/// One page of the network, by (display_name, user_id), plus one row (`Limit::fetch`).
pub async fn platform_page(
    conn: &mut PgConnection,
    f: &PlatformFilter,
    after: Option<(&str, Uuid)>,
    limit: i64,
) -> Result<Vec<PlatformPractitioner>, sqlx::Error> {
    let specs: Option<Vec<String>> = (!f.specialties.is_empty()).then(|| f.specialties.clone());
    let pattern = f.q.as_deref().map(crate::db::like_contains);
    let rows = sqlx::query_as!(
        PlatformRow,
        r#"SELECT u.id AS "user_id!: UserId", u.email AS "email!", u.display_name AS "display_name!",
                  u.locale AS "locale!", p.specialties AS "specialties!", p.languages AS "languages!",
                  p.bio AS "bio!", p.licence_number, p.licence_country, p.verified_at, p.photo_file_id,
                  p.created_at AS "created_at!", p.updated_at AS "updated_at!"
           FROM practitioner_profiles p
           JOIN users u ON u.id = p.user_id
           WHERE ($1::text[] IS NULL OR p.specialties && $1)
             AND ($2::boolean IS NULL OR (p.verified_at IS NOT NULL) = $2)
             AND ($3::text IS NULL OR u.display_name ILIKE $3 OR u.email ILIKE $3)
             AND ($4::text IS NULL OR (u.display_name, u.id) > ($4, $5::uuid))
           ORDER BY u.display_name, u.id
           LIMIT $6"#,
        specs.as_deref(),
        f.verified,
        pattern,
        after.map(|(n, _)| n),
        after.map(|(_, u)| u),
        limit
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(PlatformRow::into_item).collect())
}

/// Update a profile's fields (the caller has merged the patch into `p`).
pub async fn update_profile(
    conn: &mut PgConnection,
    user: UserId,
    p: &ProfileFields,
    now: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        r#"UPDATE practitioner_profiles
           SET specialties = $2, languages = $3, bio = $4, licence_number = $5, licence_country = $6,
               verified_at = $7, photo_file_id = $8, updated_at = $9
           WHERE user_id = $1"#,
        user.as_uuid(),
        &p.specialties,
        &p.languages,
        p.bio,
        p.licence_number,
        p.licence_country,
        p.verified_at,
        p.photo_file_id,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The stored fields of a profile visible to the caller, locked for an update.
pub async fn profile_for_update(
    conn: &mut PgConnection,
    user: UserId,
) -> Result<Option<ProfileFields>, sqlx::Error> {
    let r = sqlx::query_as!(
        ProfileFields,
        r#"SELECT specialties, languages, bio, licence_number, licence_country, verified_at,
                  photo_file_id
           FROM practitioner_profiles WHERE user_id = $1 FOR UPDATE"#,
        user.as_uuid()
    )
    .fetch_optional(conn)
    .await?;
    Ok(r)
}

// ------------------------------------------------------------------------------------------
// Self-service.

/// Update the person's own name and locale (policy `users_self_update`).
pub async fn update_own_identity(
    conn: &mut PgConnection,
    user: UserId,
    display_name: Option<&str>,
    locale: Option<&str>,
    now: OffsetDateTime,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let r = sqlx::query!(
        r#"UPDATE users SET display_name = coalesce($2, display_name), locale = coalesce($3, locale),
                            updated_at = $4
           WHERE id = $1
           RETURNING display_name, locale"#,
        user.as_uuid(),
        display_name,
        locale,
        now
    )
    .fetch_optional(conn)
    .await?;
    Ok(r.map(|r| (r.display_name, r.locale)))
}
