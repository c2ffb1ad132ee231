//! The matching score: explainable and deterministic.
//!
//! `score = Σ weight_i × component_i / Σ weight_i`, over the components that APPLY to this
//! request, each component in [0, 1], so the score is in [0, 1] too:
//!
//! | component      | weight | value                                                        | applies when |
//! |----------------|--------|--------------------------------------------------------------|--------------|
//! | `specialty`    | 0.50   | share of the requested needs the practitioner covers         | always |
//! | `language`     | 0.20   | 1 if they speak the requested language, else 0               | a language was asked for |
//! | `availability` | 0.15   | 1 for a free slot now, falling linearly to 0 at 14 days      | the practitioner keeps a schedule (none free within 14 days: 0) |
//! | `rating`       | 0.10   | mean rating (1–5) mapped to [0, 1], shrunk toward 3.5 by 5 virtual reviews | the practitioner's released reviews reach the company's `min_cohort` |
//! | `verified`     | 0.05   | 1 if the platform verified their licence                     | always |
//!
//! A component that does not apply is excluded from BOTH sums (it neither helps nor hurts,
//! and the weights of the others are renormalised). `soonest_slot` comes from the slot engine
//! (`availability::open_slots::soonest_slot`, busy time from every company); `rating` is the
//! aggregate the directory shows (`repo::ratings`: reviews from every company, released in
//! steps of five, NULL below the company's `min_cohort`). The score must not use more than the
//! directory shows: with a single review counted, its value could be read back from the score
//! (the other components are public), which is exactly what the cohort rule forbids.
//!
//! Determinism: the inputs are the stored profile and the request; components are computed in
//! a fixed order with fixed weights; the total is rounded to 4 decimals and ties (equal rounded
//! totals) are broken by user id, ascending. Same data and request → same list, same numbers.

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::model::{PublicRating, Specialty};
use crate::db::UserId;

pub const W_SPECIALTY: f64 = 0.50;
pub const W_LANGUAGE: f64 = 0.20;
pub const W_AVAILABILITY: f64 = 0.15;
pub const W_RATING: f64 = 0.10;
pub const W_VERIFIED: f64 = 0.05;

/// Availability counts fully for a slot now and not at all from this horizon on.
pub const AVAILABILITY_HORIZON_HOURS: f64 = 14.0 * 24.0;
/// Bayesian shrinkage of ratings: this many virtual reviews at the prior mean.
pub const RATING_PRIOR_COUNT: f64 = 5.0;
pub const RATING_PRIOR_MEAN: f64 = 3.5;

/// What a request asks for.
#[derive(Debug, Clone)]
pub struct Need {
    /// Deduplicated, in request order.
    pub specialties: Vec<Specialty>,
    pub language: Option<String>,
    pub now: OffsetDateTime,
}

/// Released reviews of a practitioner (see `repo::ratings`).
#[derive(Debug, Clone, Copy)]
pub struct Rating {
    /// Mean of 1–5 stars.
    pub mean: f64,
    pub count: i64,
}

impl Rating {
    /// As the directory shows it (mean rounded to 2 decimals).
    pub fn public(self) -> PublicRating {
        PublicRating {
            average: (self.mean * 100.0).round() / 100.0,
            count: self.count,
        }
    }
}

/// A candidate as the database returns it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub user_id: UserId,
    pub specialties: Vec<Specialty>,
    pub languages: Vec<String>,
    pub verified: bool,
    /// Soonest free slot (scheduling; NULL until it exists).
    pub soonest_slot: Option<OffsetDateTime>,
    /// Released reviews (NULL below the company's `min_cohort`).
    pub rating: Option<Rating>,
}

/// One term of the score.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Component {
    /// `specialty`, `language`, `availability`, `rating` or `verified`.
    pub name: &'static str,
    /// In [0, 1]; absent when the component does not apply.
    pub value: Option<f64>,
    pub weight: f64,
    /// Whether it counts in this score (absent values do not).
    pub applied: bool,
    /// `weight × value / Σ applied weights` (0 when not applied).
    pub contribution: f64,
}

/// A scored candidate.
#[derive(Debug, Clone)]
pub struct Scored {
    pub user_id: UserId,
    pub score: f64,
    pub components: Vec<Component>,
    pub explanation: Vec<String>,
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Availability component of a soonest slot.
pub fn availability_value(slot: OffsetDateTime, now: OffsetDateTime) -> f64 {
    let hours = (slot - now).as_seconds_f64() / 3600.0;
    (1.0 - hours.max(0.0) / AVAILABILITY_HORIZON_HOURS).clamp(0.0, 1.0)
}

/// Rating component: the shrunk mean mapped from [1, 5] to [0, 1].
pub fn rating_value(r: Rating) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let n = r.count.max(0) as f64;
    let mean = (r.mean.clamp(1.0, 5.0) * n + RATING_PRIOR_MEAN * RATING_PRIOR_COUNT)
        / (n + RATING_PRIOR_COUNT);
    ((mean - 1.0) / 4.0).clamp(0.0, 1.0)
}

/// Score one candidate.
pub fn score(need: &Need, c: &Candidate) -> Scored {
    let mut explanation = Vec::new();
    let covered: Vec<Specialty> = need
        .specialties
        .iter()
        .copied()
        .filter(|s| c.specialties.contains(s))
        .collect();
    let missing: Vec<&str> = need
        .specialties
        .iter()
        .filter(|s| !c.specialties.contains(s))
        .map(|s| s.as_str())
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let fit = if need.specialties.is_empty() {
        0.0
    } else {
        covered.len() as f64 / need.specialties.len() as f64
    };
    let names: Vec<&str> = covered.iter().map(|s| s.as_str()).collect();
    let mut line = format!(
        "covers {} of {} needs: {}",
        covered.len(),
        need.specialties.len(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    );
    if !missing.is_empty() {
        line.push_str(&format!(" (not: {})", missing.join(", ")));
    }
    explanation.push(line);

    let language = need.language.as_ref().map(|l| {
        let speaks = c.languages.iter().any(|x| x == l);
        explanation.push(if speaks {
            format!("speaks {l}")
        } else {
            format!("does not speak {l}")
        });
        if speaks { 1.0 } else { 0.0 }
    });
    if need.language.is_none() {
        explanation.push("no language requested: language not counted".to_owned());
    }

    let availability = c
        .soonest_slot
        .map(|slot| availability_value(slot, need.now));
    explanation.push(match (c.soonest_slot, availability) {
        (Some(_), Some(v)) if v <= 0.0 => "no free slot within 14 days".to_owned(),
        (Some(slot), _) => {
            let hours = ((slot - need.now).as_seconds_f64() / 3600.0).max(0.0);
            if hours < 48.0 {
                format!("free within {} hours", hours.ceil())
            } else {
                format!("free within {} days", (hours / 24.0).ceil())
            }
        }
        (None, _) => "no schedule yet: availability not counted".to_owned(),
    });

    let rating = c.rating.filter(|r| r.count > 0).map(rating_value);
    explanation.push(match c.rating.filter(|r| r.count > 0) {
        Some(r) => format!("rated {:.1}/5 by {} reviews", r.mean, r.count),
        None => "too few reviews to show: rating not counted".to_owned(),
    });

    explanation.push(if c.verified {
        "licence verified by Serein".to_owned()
    } else {
        "licence not verified".to_owned()
    });
    let verified = Some(if c.verified { 1.0 } else { 0.0 });

    let terms: [(&'static str, Option<f64>, f64); 5] = [
        ("specialty", Some(fit), W_SPECIALTY),
        ("language", language, W_LANGUAGE),
        ("availability", availability, W_AVAILABILITY),
        ("rating", rating, W_RATING),
        ("verified", verified, W_VERIFIED),
    ];
    let applied_weight: f64 = terms
        .iter()
        .filter(|(_, v, _)| v.is_some())
        .map(|(_, _, w)| w)
        .sum();
    let components: Vec<Component> = terms
        .iter()
        .map(|&(name, value, weight)| {
            let contribution = match value {
                Some(v) if applied_weight > 0.0 => weight * v / applied_weight,
                _ => 0.0,
            };
            Component {
                name,
                value: value.map(round4),
                weight,
                applied: value.is_some(),
                contribution: round4(contribution),
            }
        })
        .collect();
    let total: f64 = terms
        .iter()
        .filter_map(|&(_, v, w)| v.map(|v| w * v))
        .sum::<f64>()
        / if applied_weight > 0.0 {
            applied_weight
        } else {
            1.0
        };
    Scored {
        user_id: c.user_id,
        score: round4(total),
        components,
        explanation,
    }
}

/// Score and rank candidates: best score first, ties by user id; at most `limit`.
pub fn rank(need: &Need, candidates: &[Candidate], limit: usize) -> Vec<Scored> {
    let mut scored: Vec<Scored> = candidates.iter().map(|c| score(need, c)).collect();
    scored.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.user_id.cmp(&b.user_id))
    });
    scored.truncate(limit);
    scored
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::float_cmp)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use uuid::Uuid;

    fn cand(id: u128, specs: &[Specialty], langs: &[&str], verified: bool) -> Candidate {
        Candidate {
            user_id: UserId(Uuid::from_u128(id)),
            specialties: specs.to_vec(),
            languages: langs.iter().map(|s| (*s).to_owned()).collect(),
            verified,
            soonest_slot: None,
            rating: None,
        }
    }

    fn need(specs: &[Specialty], lang: Option<&str>) -> Need {
        Need {
            specialties: specs.to_vec(),
            language: lang.map(str::to_owned),
            now: datetime!(2026-11-21 12:00 UTC),
        }
    }

    #[test]
    fn weights_are_renormalised_over_the_applied_components() {
        use Specialty::*;
        let n = need(&[Anxiety, Sleep], Some("fr"));
        let s = score(&n, &cand(1, &[Anxiety, Sleep], &["fr"], true));
        assert_eq!(s.score, 1.0);
        // Half the needs, no French, not verified: 0.5 × 0.5 / 0.75.
        let s = score(&n, &cand(2, &[Anxiety], &["en"], false));
        assert_eq!(s.score, round4(0.25 / 0.75));
        assert_eq!(
            s.explanation[0],
            "covers 1 of 2 needs: anxiety (not: sleep)"
        );
        assert_eq!(s.explanation[1], "does not speak fr");
        let names: Vec<_> = s.components.iter().map(|c| (c.name, c.applied)).collect();
        assert_eq!(
            names,
            vec![
                ("specialty", true),
                ("language", true),
                ("availability", false),
                ("rating", false),
                ("verified", true)
            ]
        );
        // Without a language the language weight leaves the denominator too.
        let s = score(
            &need(&[Anxiety], None),
            &cand(3, &[Anxiety], &["en"], false),
        );
        assert_eq!(s.score, round4(0.5 / 0.55));
        let sum: f64 = s.components.iter().map(|c| c.contribution).sum();
        assert!((sum - s.score).abs() < 1e-3);
    }

    #[test]
    fn future_terms_plug_in_without_other_changes() {
        use Specialty::*;
        let n = need(&[Stress], None);
        let mut c = cand(1, &[Stress], &["en"], true);
        c.soonest_slot = Some(n.now + time::Duration::days(7));
        c.rating = Some(Rating {
            mean: 5.0,
            count: 5,
        });
        let s = score(&n, &c);
        let avail = s
            .components
            .iter()
            .find(|c| c.name == "availability")
            .unwrap();
        assert_eq!(avail.value, Some(0.5));
        let rating = s.components.iter().find(|c| c.name == "rating").unwrap();
        assert_eq!(
            rating.value,
            Some(round4(((5.0 * 5.0 + 3.5 * 5.0) / 10.0 - 1.0) / 4.0))
        );
        assert!(s.score < 1.0 && s.score > 0.8);
        assert_eq!(
            availability_value(n.now - time::Duration::hours(1), n.now),
            1.0
        );
        assert_eq!(
            availability_value(n.now + time::Duration::days(30), n.now),
            0.0
        );
    }

    #[test]
    fn ranking_is_deterministic_with_ties_by_user_id() {
        use Specialty::*;
        let n = need(&[Anxiety, Sleep], Some("fr"));
        let cands = vec![
            cand(9, &[Anxiety], &["fr"], false),
            cand(3, &[Anxiety], &["fr"], false),
            cand(5, &[Anxiety, Sleep], &["en"], true),
            cand(7, &[Anxiety, Sleep], &["fr"], false),
        ];
        let r = rank(&n, &cands, 10);
        let ids: Vec<u128> = r.iter().map(|s| s.user_id.0.as_u128()).collect();
        assert_eq!(ids, vec![7, 5, 3, 9]);
        let mut reversed = cands.clone();
        reversed.reverse();
        let again: Vec<u128> = rank(&n, &reversed, 10)
            .iter()
            .map(|s| s.user_id.0.as_u128())
            .collect();
        assert_eq!(ids, again);
        assert_eq!(rank(&n, &cands, 2).len(), 2);
    }
}
