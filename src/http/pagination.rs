//! Keyset pagination for every list (DESIGN §5: `?limit=&cursor=`, `limit` capped).
//!
//! Invariants:
//! - ONE cursor encoding: base64url (no padding) of the JSON of the sort key of the last row
//!   of a page. The key type is the list's own (`Uuid`, a slug, a (name, id) pair, …); a cursor
//!   that does not decode to that type is a 400 `invalid_cursor`, never a 500 and never a
//!   silently restarted list.
//! - ONE `limit` rule: absent → the list's default; below 1 → 1; above the list's maximum →
//!   the maximum. A number is capped, never refused; only a non-number is refused (422).
//! - The fetch-limit+1 pattern is written once: ask the database for `limit.fetch()` rows and
//!   hand them to [`page`], which keeps `limit` of them and makes the next cursor from the last
//!   one kept, only when a further row exists.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// Default page size of the lists that do not say otherwise.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page of the lists that do not say otherwise.
pub const MAX_LIMIT: i64 = 200;

/// A page size after the one rule: always within `1..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(i64);

impl Limit {
    /// [`Limit::parse`] with the usual default (50) and maximum (200).
    pub fn standard(raw: Option<&str>) -> Result<Self, AppError> {
        Self::parse(raw, DEFAULT_LIMIT, MAX_LIMIT)
    }

    /// The rule: `default` when absent, otherwise clamped into `1..=max`.
    pub fn capped(requested: Option<i64>, default: i64, max: i64) -> Self {
        let max = max.max(1);
        Self(requested.unwrap_or(default).clamp(1, max))
    }

    /// The rule on a raw query value: a non-number is 422 on `limit`; a number is capped, also
    /// one too large for an `i64` (all digits, optionally signed: capped at the bound it passed).
    pub fn parse(raw: Option<&str>, default: i64, max: i64) -> Result<Self, AppError> {
        let Some(s) = raw.map(str::trim) else {
            return Ok(Self::capped(None, default, max));
        };
        if let Ok(n) = s.parse::<i64>() {
            return Ok(Self::capped(Some(n), default, max));
        }
        let (negative, digits) = match s.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let bound = if negative { i64::MIN } else { i64::MAX };
            return Ok(Self::capped(Some(bound), default, max));
        }
        Err(AppError::invalid("limit", "must be an integer"))
    }

    /// Rows per page.
    pub fn get(self) -> i64 {
        self.0
    }

    /// Rows to ask the database for: one more than a page, to know whether another exists.
    pub fn fetch(self) -> i64 {
        self.0.saturating_add(1)
    }
}

fn invalid_cursor() -> AppError {
    AppError::bad_request("invalid_cursor", "The cursor is not one this list issued.")
}

/// Encode the sort key of a page's last row as an opaque cursor.
pub fn encode_cursor<K: Serialize>(key: &K) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

/// Decode a cursor back into the list's key type (400 `invalid_cursor` when it is not one).
pub fn decode_cursor<K: DeserializeOwned>(raw: Option<&str>) -> Result<Option<K>, AppError> {
    let Some(raw) = raw else { return Ok(None) };
    let bytes = URL_SAFE_NO_PAD
        .decode(raw.trim())
        .map_err(|_| invalid_cursor())?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|_| invalid_cursor())
}

/// Cut `limit.fetch()` rows down to one page; the next cursor is the key of the last row kept,
/// present only when the database returned more than a page.
pub fn page<T, K: Serialize>(
    mut rows: Vec<T>,
    limit: Limit,
    key: impl FnOnce(&T) -> K,
) -> (Vec<T>, Option<String>) {
    let keep = usize::try_from(limit.get()).unwrap_or(usize::MAX);
    let more = rows.len() > keep;
    rows.truncate(keep);
    let next = if more {
        rows.last().map(|last| encode_cursor(&key(last)))
    } else {
        None
    };
    (rows, next)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn the_limit_is_capped_never_refused() {
        assert_eq!(Limit::standard(None).unwrap().get(), 50);
        assert_eq!(Limit::standard(Some("0")).unwrap().get(), 1);
        assert_eq!(Limit::standard(Some("-7")).unwrap().get(), 1);
        assert_eq!(Limit::standard(Some("100000")).unwrap().get(), 200);
        assert_eq!(Limit::standard(Some(" 7 ")).unwrap().get(), 7);
        assert_eq!(Limit::capped(Some(i64::MAX), 50, 200).fetch(), 201);
        assert!(Limit::standard(Some("")).is_err());
        assert_eq!(Limit::parse(Some("0"), 20, 100).unwrap().get(), 1);
        assert_eq!(Limit::parse(Some("500"), 20, 100).unwrap().get(), 100);
        assert_eq!(Limit::parse(None, 20, 100).unwrap().get(), 20);
        assert!(Limit::parse(Some("ten"), 20, 100).is_err());
        assert!(Limit::parse(Some("1e3"), 20, 100).is_err());
        assert!(Limit::parse(Some("-"), 20, 100).is_err());
        let huge = "99999999999999999999999";
        assert_eq!(Limit::parse(Some(huge), 20, 100).unwrap().get(), 100);
        assert_eq!(
            Limit::parse(Some(&format!("-{huge}")), 20, 100)
                .unwrap()
                .get(),
            1
        );
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let id = Uuid::now_v7();
        let c = encode_cursor(&id);
        assert_eq!(decode_cursor::<Uuid>(Some(&c)).unwrap(), Some(id));
        assert_eq!(decode_cursor::<Uuid>(None).unwrap(), None);
        assert!(decode_cursor::<Uuid>(Some("nope!")).is_err());
        // A cursor of another list's key type is refused, not misread.
        let slug = encode_cursor(&"acme");
        assert!(decode_cursor::<Uuid>(Some(&slug)).is_err());
        let pair = encode_cursor(&("Ada", id));
        assert_eq!(
            decode_cursor::<(String, Uuid)>(Some(&pair)).unwrap(),
            Some(("Ada".to_owned(), id))
        );
    }

    #[test]
    fn a_page_keeps_limit_rows_and_points_past_the_last() {
        let limit = Limit::capped(Some(2), 50, 200);
        let (items, next) = page(vec![1, 2, 3], limit, |n| *n);
        assert_eq!(items, vec![1, 2]);
        assert_eq!(decode_cursor::<i32>(next.as_deref()).unwrap(), Some(2));
        let (items, next) = page(vec![1, 2], limit, |n| *n);
        assert_eq!(items, vec![1, 2]);
        assert_eq!(next, None);
        let (items, next) = page(Vec::<i32>::new(), limit, |n| *n);
        assert!(items.is_empty() && next.is_none());
    }
}
