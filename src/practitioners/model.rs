//! Domain types of the practitioner network, with their `parse()` constructors, and the request
//! and response types of its routes.
//!
//! Invariants:
//! - [`Specialty`] is the closed vocabulary of `app.practitioner_specialties()` (migration 0008),
//!   in the same order; a test against the database keeps the two identical.
//! - Languages are ISO 639-1 codes (two lower-case ASCII letters; input is lower-cased), 1–10
//!   per practitioner, deduplicated in input order. Countries are ISO 3166-1 alpha-2, upper case.
//! - Responses to company members never carry an e-mail address or a licence number: the
//!   directory shows who a practitioner is and where they are licensed, not how to reach them
//!   outside Serein. Only the platform's own views carry the e-mail and the licence number.

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::UserId;
use crate::error::{AppError, FieldError};

/// The fixed vocabulary of specialties.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Specialty {
    Anxiety,
    Depression,
    Stress,
    Burnout,
    Trauma,
    Grief,
    Relationships,
    Family,
    Parenting,
    Addiction,
    Sleep,
    EatingDisorders,
    SelfEsteem,
    Career,
    Adhd,
    Ocd,
    Bipolar,
    Loneliness,
    LifeTransitions,
    WorkConflict,
}

impl Specialty {
    /// Every specialty, in the order of `app.practitioner_specialties()`.
    pub const ALL: [Specialty; 20] = [
        Specialty::Anxiety,
        Specialty::Depression,
        Specialty::Stress,
        Specialty::Burnout,
        Specialty::Trauma,
        Specialty::Grief,
        Specialty::Relationships,
        Specialty::Family,
        Specialty::Parenting,
        Specialty::Addiction,
        Specialty::Sleep,
        Specialty::EatingDisorders,
        Specialty::SelfEsteem,
        Specialty::Career,
        Specialty::Adhd,
        Specialty::Ocd,
        Specialty::Bipolar,
        Specialty::Loneliness,
        Specialty::LifeTransitions,
        Specialty::WorkConflict,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Specialty::Anxiety => "anxiety",
            Specialty::Depression => "depression",
            Specialty::Stress => "stress",
            Specialty::Burnout => "burnout",
            Specialty::Trauma => "trauma",
            Specialty::Grief => "grief",
            Specialty::Relationships => "relationships",
            Specialty::Family => "family",
            Specialty::Parenting => "parenting",
            Specialty::Addiction => "addiction",
            Specialty::Sleep => "sleep",
            Specialty::EatingDisorders => "eating_disorders",
            Specialty::SelfEsteem => "self_esteem",
            Specialty::Career => "career",
            Specialty::Adhd => "adhd",
            Specialty::Ocd => "ocd",
            Specialty::Bipolar => "bipolar",
            Specialty::Loneliness => "loneliness",
            Specialty::LifeTransitions => "life_transitions",
            Specialty::WorkConflict => "work_conflict",
        }
    }

    pub fn parse(s: &str) -> Option<Specialty> {
        let s = s.trim();
        Specialty::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Most specialties and languages one practitioner lists (the table's CHECKs).
pub const MAX_SPECIALTIES: usize = 10;
pub const MAX_LANGUAGES: usize = 10;
pub const MAX_BIO_CHARS: usize = 4000;
pub const MAX_DISPLAY_NAME_CHARS: usize = 200;

fn field(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Parse a list of specialties: each known, deduplicated (first occurrence kept), `min..=10`.
pub fn parse_specialties(
    name: &str,
    raw: &[String],
    min: usize,
    errors: &mut Vec<FieldError>,
) -> Vec<Specialty> {
    let mut out: Vec<Specialty> = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        match Specialty::parse(s) {
            Some(sp) if !out.contains(&sp) => out.push(sp),
            Some(_) => {}
            None => errors.push(field(
                &format!("{name}[{i}]"),
                "is not a known specialty (see GET /api/v1/openapi.json, schema Specialty)",
            )),
        }
    }
    if out.len() < min || out.len() > MAX_SPECIALTIES {
        errors.push(field(
            name,
            format!("must list between {min} and {MAX_SPECIALTIES} specialties"),
        ));
    }
    out
}

/// An ISO 639-1 language code, lower case.
pub fn parse_language(raw: &str) -> Option<String> {
    let l = raw.trim().to_ascii_lowercase();
    (l.len() == 2 && l.bytes().all(|b| b.is_ascii_lowercase())).then_some(l)
}

/// Parse a list of languages: 1–10 ISO 639-1 codes, deduplicated.
pub fn parse_languages(name: &str, raw: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        match parse_language(s) {
            Some(l) if !out.contains(&l) => out.push(l),
            Some(_) => {}
            None => errors.push(field(
                &format!("{name}[{i}]"),
                "must be an ISO 639-1 code (two letters, e.g. en, fr)",
            )),
        }
    }
    if out.is_empty() || out.len() > MAX_LANGUAGES {
        errors.push(field(
            name,
            format!("must list between 1 and {MAX_LANGUAGES} languages"),
        ));
    }
    out
}

pub fn parse_bio(raw: &str, errors: &mut Vec<FieldError>) -> String {
    let bio = raw.trim().to_owned();
    if bio.chars().count() > MAX_BIO_CHARS {
        errors.push(field(
            "bio",
            format!("must be at most {MAX_BIO_CHARS} characters"),
        ));
    }
    if bio
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        errors.push(field("bio", "must not contain control characters"));
    }
    bio
}

pub fn parse_display_name(raw: &str, errors: &mut Vec<FieldError>) -> String {
    let name = raw.trim().to_owned();
    let n = name.chars().count();
    if n == 0 || n > MAX_DISPLAY_NAME_CHARS {
        errors.push(field(
            "display_name",
            format!("must be 1 to {MAX_DISPLAY_NAME_CHARS} characters"),
        ));
    } else if name.chars().any(char::is_control) {
        errors.push(field("display_name", "must not contain control characters"));
    }
    name
}

pub fn parse_licence_number(raw: &str, errors: &mut Vec<FieldError>) -> String {
    let l = raw.trim().to_owned();
    let n = l.chars().count();
    if n == 0 || n > 64 || l.chars().any(char::is_control) {
        errors.push(field(
            "licence_number",
            "must be 1 to 64 printable characters",
        ));
    }
    l
}

/// ISO 3166-1 alpha-2, upper case (as written: `fr` is refused, not corrected).
pub fn parse_country(raw: &str, errors: &mut Vec<FieldError>) -> String {
    let c = raw.trim().to_owned();
    if !(c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())) {
        errors.push(field(
            "licence_country",
            "must be an ISO 3166-1 alpha-2 code in upper case (e.g. FR)",
        ));
    }
    c
}

/// Deserialize a present field (even `null`) as `Some`: tells "absent" from "null".
pub fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

// ------------------------------------------------------------------------------------------
// Requests.

/// A new practitioner of the network.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePractitionerRequest {
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    /// Used only when the e-mail has no identity yet (an existing identity keeps its name).
    pub display_name: String,
    /// 1–10, from the vocabulary.
    pub specialties: Vec<String>,
    /// 1–10 ISO 639-1 codes.
    pub languages: Vec<String>,
    /// At most 4000 characters.
    #[serde(default)]
    pub bio: Option<String>,
    #[serde(default)]
    pub licence_number: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    #[serde(default)]
    pub licence_country: Option<String>,
    #[serde(default)]
    pub verified: bool,
    #[serde(default)]
    pub photo_file_id: Option<Uuid>,
    /// Language of the welcome mail and of a new identity: `en` (default) or `fr`.
    #[serde(default)]
    #[schema(pattern = "^(en|fr)$")]
    pub locale: Option<String>,
}

/// A platform edit of a practitioner's profile; absent fields are unchanged, `null` clears an
/// optional one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlatformUpdateRequest {
    #[serde(default)]
    pub specialties: Option<Vec<String>>,
    #[serde(default)]
    pub languages: Option<Vec<String>>,
    #[serde(default)]
    pub bio: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub licence_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub licence_country: Option<Option<String>>,
    #[serde(default)]
    pub verified: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub photo_file_id: Option<Option<Uuid>>,
}

/// A person's edit of their own profile (`PATCH /auth/me`). The practitioner fields are
/// accepted only from a person with a practitioner profile; licence and verification belong to
/// the platform and are refused (403 `platform_managed`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub display_name: Option<String>,
    /// `en` or `fr`.
    #[serde(default)]
    #[schema(pattern = "^(en|fr)$")]
    pub locale: Option<String>,
    #[serde(default)]
    pub specialties: Option<Vec<String>>,
    #[serde(default)]
    pub languages: Option<Vec<String>>,
    #[serde(default)]
    pub bio: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub photo_file_id: Option<Option<Uuid>>,
    /// Refused: managed by the platform.
    #[serde(default, deserialize_with = "present")]
    #[schema(ignore)]
    pub licence_number: Option<serde_json::Value>,
    /// Refused: managed by the platform.
    #[serde(default, deserialize_with = "present")]
    #[schema(ignore)]
    pub licence_country: Option<serde_json::Value>,
    /// Refused: managed by the platform.
    #[serde(default, deserialize_with = "present")]
    #[schema(ignore)]
    pub verified: Option<serde_json::Value>,
}

// ------------------------------------------------------------------------------------------
// Responses.

/// A practitioner as the platform sees them.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformPractitioner {
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
    pub specialties: Vec<Specialty>,
    pub languages: Vec<String>,
    pub bio: String,
    pub licence_number: Option<String>,
    pub licence_country: Option<String>,
    pub verified: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub verified_at: Option<OffsetDateTime>,
    pub photo_file_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The answer to a creation request: the same for every address (no account oracle). The
/// new practitioner appears in `GET /platform/practitioners` once created.
#[derive(Debug, Serialize, ToSchema)]
pub struct PractitionerRequested {
    /// The address, normalised.
    pub email: String,
}

/// A practitioner as a company's members see them (no e-mail, no licence number).
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryPractitioner {
    pub user_id: UserId,
    pub display_name: String,
    pub specialties: Vec<Specialty>,
    pub languages: Vec<String>,
    pub bio: String,
    pub verified: bool,
    pub licence_country: Option<String>,
    pub photo_file_id: Option<Uuid>,
    /// Reviews from every company the practitioner serves, released in steps of five and shown
    /// only once they reach this company's `min_cohort` (`null` before: too few to be
    /// anonymous).
    pub rating: Option<PublicRating>,
}

/// A practitioner's released reviews (see migration 20261207000002): how many, and their mean.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct PublicRating {
    /// Mean of 1–5 stars, rounded to 2 decimals.
    pub average: f64,
    /// Reviews counted (a multiple of five, at least this company's `min_cohort`).
    pub count: i64,
}

/// One page of the directory (keyset pagination).
#[derive(Debug, Serialize, ToSchema)]
pub struct DirectoryPage {
    pub items: Vec<DirectoryPractitioner>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One page of the platform's list (keyset pagination).
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformPage {
    pub items: Vec<PlatformPractitioner>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A person's own profile after `PATCH /auth/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyProfile {
    pub user_id: UserId,
    pub display_name: String,
    pub locale: String,
    /// Present for practitioners.
    pub practitioner: Option<OwnPractitionerProfile>,
}

/// A practitioner's own profile (their licence is theirs to read, not to change).
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnPractitionerProfile {
    pub specialties: Vec<Specialty>,
    pub languages: Vec<String>,
    pub bio: String,
    pub licence_number: Option<String>,
    pub licence_country: Option<String>,
    pub verified: bool,
    pub photo_file_id: Option<Uuid>,
}

/// Specialties as stored (text) → the enum; a value outside the vocabulary cannot be stored
/// (CHECK), so none is dropped in practice.
pub fn specialties_of(stored: &[String]) -> Vec<Specialty> {
    stored.iter().filter_map(|s| Specialty::parse(s)).collect()
}

pub fn specialty_names(list: &[Specialty]) -> Vec<String> {
    list.iter().map(|s| s.as_str().to_owned()).collect()
}

// ------------------------------------------------------------------------------------------
// Query strings: repeated keys (`specialty=a&specialty=b`) and comma-separated values
// (`specialty=a,b`) are both accepted, so they are parsed here rather than by serde.

/// The `key=value` pairs of a raw query string, decoded.
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    })
    .unwrap_or_default()
}

/// Every value of `key`, comma-separated values split, empty pieces dropped.
pub fn values_of(pairs: &[(String, String)], key: &str) -> Vec<String> {
    pairs
        .iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The single value of `key` (a repeated key is a 400).
pub fn single(pairs: &[(String, String)], key: &str) -> Result<Option<String>, AppError> {
    let mut it = pairs.iter().filter(|(k, _)| k == key);
    let first = it.next().map(|(_, v)| v.clone());
    if it.next().is_some() {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("`{key}` may be given once"),
        ));
    }
    Ok(first)
}

/// Refuse parameters a route does not know (a typo must not silently widen a search).
pub fn only_known(pairs: &[(String, String)], known: &[&str]) -> Result<(), AppError> {
    match pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((k, _)) => Err(AppError::bad_request(
            "invalid_query",
            format!(
                "unknown query parameter `{}`",
                k.chars().take(40).collect::<String>()
            ),
        )),
        None => Ok(()),
    }
}

/// The keyset of the practitioner lists: the sort key of the last row of a page (encoded by
/// `http::pagination`, the one cursor encoding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "k", deny_unknown_fields)]
pub enum Cursor {
    /// Ordered by (display_name, user_id).
    #[serde(rename = "n")]
    Name { n: String, u: Uuid },
    /// A text search, ordered by (tier, display_name, user_id): tier 1 the name matches, tier 2
    /// the bio only.
    #[serde(rename = "s")]
    Match { t: u8, n: String, u: Uuid },
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::http::pagination::{decode_cursor, encode_cursor};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn specialties_round_trip_and_serialize_as_their_names() {
        for s in Specialty::ALL {
            assert_eq!(Specialty::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Specialty::parse("Anxiety"), None);
    }

    #[test]
    fn lists_are_validated_and_deduplicated() {
        let mut e = Vec::new();
        let s = parse_specialties(
            "specialties",
            &["sleep".into(), "anxiety".into(), "sleep".into()],
            1,
            &mut e,
        );
        assert!(e.is_empty());
        assert_eq!(s, vec![Specialty::Sleep, Specialty::Anxiety]);
        parse_specialties("specialties", &["astrology".into()], 1, &mut e);
        assert_eq!(e[0].field, "specialties[0]");
        let mut e = Vec::new();
        assert_eq!(
            parse_languages(
                "languages",
                &["EN".into(), "fr".into(), "en".into()],
                &mut e
            ),
            vec!["en", "fr"]
        );
        assert!(e.is_empty());
        parse_languages("languages", &["eng".into()], &mut e);
        assert!(e.iter().any(|f| f.field == "languages[0]"));
        let mut e = Vec::new();
        parse_country("fr", &mut e);
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn query_values_accept_repeats_and_commas() {
        let p = query_pairs(Some("need=anxiety,sleep&need=stress&language=fr&x=%20"));
        assert_eq!(values_of(&p, "need"), vec!["anxiety", "sleep", "stress"]);
        assert_eq!(single(&p, "language").unwrap().as_deref(), Some("fr"));
        assert!(only_known(&p, &["need", "language"]).is_err());
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        for c in [
            Cursor::Name {
                n: "Zoé d'Arc".into(),
                u: Uuid::now_v7(),
            },
            Cursor::Match {
                t: 2,
                n: "Zoé d'Arc".into(),
                u: Uuid::now_v7(),
            },
        ] {
            let raw = encode_cursor(&c);
            assert_eq!(decode_cursor::<Cursor>(Some(&raw)).unwrap(), Some(c));
        }
        assert!(decode_cursor::<Cursor>(Some("not-a-cursor")).is_err());
        assert!(decode_cursor::<Cursor>(Some(&URL_SAFE_NO_PAD.encode(b"{\"k\":\"x\"}"))).is_err());
    }
}
