//! The plan of the demo's synthetic past (see the parent module): the synthetic company's
//! departments and people, and, for one month, who books when, with whom, and how each session
//! ends. Pure and deterministic (a seeded generator): the same month, members and taken slots
//! give the same plan.
//!
//! Invariants (checked by the unit test): every department but Legal has at least 5 people who
//! book and 5 who do not, and at least 5 who held a session; no practitioner or employee holds
//! two sessions at once; each timeline is in order (requested < confirmed < start, a
//! cancellation before the start); nobody exceeds the allowance in a year.

use std::collections::HashMap;

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::db::UserId;

/// A department of the synthetic company, and how many of its people book each month.
pub(super) struct Department {
    pub name: &'static str,
    size: usize,
    /// Distinct people who book, by month (the absolute month number modulo 3).
    bookers: [usize; 3],
    /// Second sessions that month, given to the first bookers one each.
    extras: &'static [Outcome],
}

/// Every department has at least `min_cohort` (5) bookers and at least 5 who do not book, so
/// its figures are released; each has a cancellation or a no-show every month so that a hidden
/// `cancelled` is never pinned by its own cell. Legal (4 people) stays below the cohort.
pub(super) const DEPARTMENTS: [Department; 4] = [
    Department {
        name: "Sales",
        size: 12,
        bookers: [6, 7, 6],
        extras: &[Outcome::Cancelled, Outcome::Ended, Outcome::NoShow],
    },
    Department {
        name: "Engineering",
        size: 14,
        bookers: [8, 7, 9],
        extras: &[
            Outcome::Cancelled,
            Outcome::Ended,
            Outcome::Cancelled,
            Outcome::Ended,
        ],
    },
    Department {
        name: "Operations",
        size: 11,
        bookers: [5, 6, 5],
        extras: &[Outcome::Cancelled, Outcome::NoShow, Outcome::Ended],
    },
    Department {
        name: "Legal",
        size: 4,
        bookers: [2, 1, 2],
        extras: &[Outcome::Ended],
    },
];

/// Plausible names for the synthetic people, in member order.
const NAMES: [&str; 41] = [
    "Camille Dubois",
    "Lucas Bernard",
    "Sofia Rossi",
    "Noah Weber",
    "Emma Laurent",
    "Mateo Garcia",
    "Lea Fischer",
    "Hugo Lefebvre",
    "Amira Haddad",
    "Jonas Schmidt",
    "Ines Moreau",
    "Oscar Lindqvist",
    "Chloe Martin",
    "Yusuf Demir",
    "Nina Kowalski",
    "Theo Girard",
    "Mia Novak",
    "Samuel Cohen",
    "Julia Costa",
    "Adam Nowak",
    "Clara Hoffmann",
    "Ethan Roux",
    "Zoe Andersen",
    "Leo Fontaine",
    "Maya Petrovic",
    "Arthur Blanc",
    "Lina Benali",
    "Victor Mercier",
    "Alice Dupont",
    "Karim Mansour",
    "Eva Horvat",
    "Paul Muller",
    "Sara Lopez",
    "Nathan Chevalier",
    "Olivia Brunner",
    "Tom Jansen",
    "Rosa Ferreira",
    "Gabriel Morel",
    "Hanna Keller",
    "Louis Perrin",
    "Anna Vogel",
];

/// Local start hours of the demo's weekly rules (09:00–12:30 and 14:00–18:00, on the hour).
pub(super) const HOURS: [i32; 7] = [9, 10, 11, 14, 15, 16, 17];
const LENGTH_MINUTES: i64 = 50;
const CANCEL_REASONS: [&str; 3] = ["schedule_conflict", "unwell", "no_longer_needed"];

/// How a history session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Ended,
    Cancelled,
    NoShow,
}

/// A synthetic member: planned department, and the account when it exists and qualifies.
pub(super) struct Member {
    pub email: String,
    pub name: &'static str,
    pub department: &'static str,
}

/// The 41 members, numbered across departments in order.
pub(super) fn members() -> Vec<Member> {
    let mut out = Vec::new();
    let mut names = NAMES.iter();
    for d in &DEPARTMENTS {
        for _ in 0..d.size {
            let n = out.len() + 1;
            out.push(Member {
                email: format!("member-{n:02}@demo.serein.test"),
                name: names.next().copied().unwrap_or("Demo Member"),
                department: d.name,
            });
        }
    }
    out
}

/// A tiny deterministic generator (SplitMix64): the same month gives the same plan.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// One practitioner of the history: their id and whether they confirm automatically.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HistoryPractitioner {
    pub user: UserId,
    pub auto_confirm: bool,
}

/// What the planner needs of a month.
pub(super) struct MonthInput<'a> {
    /// Absolute month number (year × 12 + month − 1): the seed and the rotation.
    pub seq: i64,
    /// Candidate starts (UTC), ascending.
    pub slots: &'a [OffsetDateTime],
    /// Each practitioner's busy periods in the month (their other sessions).
    pub busy: &'a [Vec<(OffsetDateTime, OffsetDateTime)>],
    /// The qualifying members by department (same order as `DEPARTMENTS`), user ids.
    pub departments: &'a [Vec<UserId>],
    /// Sessions already counting against each member's allowance in the month's year.
    pub used: &'a HashMap<UserId, i64>,
    pub allowance: i64,
    pub late_cancel_hours: i64,
    pub practitioners: &'a [HistoryPractitioner],
    /// No session is created before this (the members' enrolment).
    pub not_before: OffsetDateTime,
}

/// One planned session and its timeline.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    pub id: Uuid,
    pub employee: UserId,
    pub practitioner: HistoryPractitioner,
    pub kind: &'static str,
    pub starts_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub confirmed_at: OffsetDateTime,
    pub outcome: Outcome,
    /// started/ended, the no-show, or the cancellation.
    pub first_at: OffsetDateTime,
    pub second_at: OffsetDateTime,
    pub cancelled_by_employee: bool,
    pub cancel_reason: &'static str,
    pub counts: bool,
}

impl Planned {
    pub fn ends_at(&self) -> OffsetDateTime {
        self.starts_at + Duration::minutes(LENGTH_MINUTES)
    }
    pub fn status(&self) -> &'static str {
        match self.outcome {
            Outcome::Ended => "ended",
            Outcome::Cancelled => "cancelled",
            Outcome::NoShow => "no_show",
        }
    }
    /// The consultation's `sequence`: +1 for a confirmation by hand, +1 for a cancellation.
    pub fn sequence(&self) -> i32 {
        i32::from(!self.practitioner.auto_confirm) + i32::from(self.outcome == Outcome::Cancelled)
    }
    pub fn updated_at(&self) -> OffsetDateTime {
        match self.outcome {
            Outcome::Ended => self.second_at,
            Outcome::Cancelled | Outcome::NoShow => self.first_at,
        }
    }
    pub fn cancelled_by(&self) -> Option<UserId> {
        match (self.outcome, self.cancelled_by_employee) {
            (Outcome::Cancelled, true) => Some(self.employee),
            (Outcome::Cancelled, false) => Some(self.practitioner.user),
            _ => None,
        }
    }
}

/// Plan one month: who books, when, with whom, and how it ends.
pub(super) fn plan_month(input: &MonthInput<'_>) -> Vec<Planned> {
    let mut rng = Rng(0x5E4E_1D3E_u64 ^ (input.seq as u64).wrapping_mul(0x1000_0000_01B3));
    // (slot, practitioner index), shuffled: consumed in order.
    let mut candidates: Vec<(OffsetDateTime, usize)> = input
        .slots
        .iter()
        .flat_map(|s| (0..input.practitioners.len()).map(move |p| (*s, p)))
        .collect();
    rng.shuffle(&mut candidates);
    let mut taken: Vec<Vec<(OffsetDateTime, OffsetDateTime)>> = input.busy.to_vec();
    taken.resize(input.practitioners.len(), Vec::new());
    let mut mine: HashMap<UserId, Vec<OffsetDateTime>> = HashMap::new();
    let mut used = input.used.clone();
    let rotation = usize::try_from(input.seq.rem_euclid(3)).unwrap_or(0);

    // Who books what, department by department.
    let mut wanted: Vec<(UserId, Outcome)> = Vec::new();
    for (d, people) in DEPARTMENTS.iter().zip(input.departments) {
        if people.is_empty() {
            continue;
        }
        let n = d
            .bookers
            .get(rotation)
            .copied()
            .unwrap_or(0)
            .min(people.len());
        let offset = usize::try_from((input.seq * 5).rem_euclid(people.len() as i64)).unwrap_or(0);
        let bookers: Vec<UserId> = people
            .iter()
            .cycle()
            .skip(offset)
            .take(n)
            .copied()
            .collect();
        wanted.extend(bookers.iter().map(|u| (*u, Outcome::Ended)));
        wanted.extend(bookers.iter().zip(d.extras.iter()).map(|(u, o)| (*u, *o)));
    }

    let overlaps = |list: &[(OffsetDateTime, OffsetDateTime)], s: OffsetDateTime| {
        let e = s + Duration::minutes(LENGTH_MINUTES);
        list.iter().any(|(a, b)| *a < e && s < *b)
    };
    let mut out = Vec::new();
    let mut cursor = 0usize;
    for (employee, outcome) in wanted {
        // A cancellation made early gives the session back; the others count.
        let counted = used.get(&employee).copied().unwrap_or(0);
        if outcome != Outcome::Cancelled && counted >= input.allowance {
            continue;
        }
        // The next free candidate for both the practitioner and the employee.
        let mut chosen = None;
        while let Some((s, p)) = candidates.get(cursor).copied() {
            cursor += 1;
            let free_p = taken.get(p).is_some_and(|t| !overlaps(t, s));
            let free_e = !mine.get(&employee).is_some_and(|v| v.contains(&s));
            if free_p && free_e {
                chosen = Some((s, p));
                break;
            }
        }
        let Some((starts_at, p)) = chosen else {
            break;
        };
        let Some(practitioner) = input.practitioners.get(p).copied() else {
            continue;
        };
        if let Some(t) = taken.get_mut(p) {
            t.push((starts_at, starts_at + Duration::minutes(LENGTH_MINUTES)));
        }
        mine.entry(employee).or_default().push(starts_at);

        let kind = match rng.below(10) {
            0..=4 => "video",
            5..=7 => "audio",
            _ => "chat",
        };
        let lead = Duration::days(1 + rng.below(13) as i64) + Duration::hours(rng.below(9) as i64);
        let created_at = (starts_at - lead).max(input.not_before + Duration::minutes(1));
        let confirmed_at = if practitioner.auto_confirm {
            created_at + Duration::microseconds(1)
        } else {
            created_at + ((starts_at - created_at) / 3_i32).min(Duration::hours(3))
        };
        let (first_at, second_at, by_employee, reason, counts) = match outcome {
            Outcome::Ended => {
                let started = starts_at + Duration::minutes(rng.below(4) as i64);
                let ended = started + Duration::minutes(44 + rng.below(6) as i64);
                (started, ended, false, "", true)
            }
            Outcome::NoShow => {
                let at = starts_at + Duration::minutes(15);
                (at, at, false, "", true)
            }
            Outcome::Cancelled => {
                let by_employee = rng.below(4) != 0;
                let window = starts_at - confirmed_at;
                let at = confirmed_at + window * (0.3 + 0.1 * rng.below(5) as f64);
                let late = starts_at - at < Duration::hours(input.late_cancel_hours);
                let reason = if by_employee {
                    CANCEL_REASONS
                        .get(rng.below(CANCEL_REASONS.len() as u64) as usize)
                        .copied()
                        .unwrap_or("other")
                } else {
                    "practitioner_unavailable"
                };
                (at, at, by_employee, reason, by_employee && late)
            }
        };
        if counts {
            if counted >= input.allowance {
                continue;
            }
            used.insert(employee, counted + 1);
        }
        out.push(Planned {
            id: Uuid::now_v7(),
            employee,
            practitioner,
            kind,
            starts_at,
            created_at,
            confirmed_at,
            outcome,
            first_at,
            second_at,
            cancelled_by_employee: by_employee,
            cancel_reason: reason,
            counts,
        });
    }
    out.sort_by_key(|p| p.starts_at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input_for(
        seq: i64,
        slots: &[OffsetDateTime],
        departments: &[Vec<UserId>],
        used: &HashMap<UserId, i64>,
        practitioners: &[HistoryPractitioner],
    ) -> Vec<Planned> {
        plan_month(&MonthInput {
            seq,
            slots,
            busy: &[],
            departments,
            used,
            allowance: 6,
            late_cancel_hours: 24,
            practitioners,
            not_before: OffsetDateTime::UNIX_EPOCH,
        })
    }

    /// Every department but Legal has ≥ 5 bookers, ≥ 5 people who did not book, ≥ 5 held by
    /// ≥ 5 people; no practitioner or employee holds two sessions at once; the timelines are
    /// in order; the allowance holds over three months.
    #[test]
    fn a_month_plan_releases_the_big_departments_and_overlaps_nothing() {
        let start = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let slots: Vec<OffsetDateTime> = (0..21)
            .flat_map(|d| HOURS.map(|h| start + Duration::days(d) + Duration::hours(i64::from(h))))
            .collect();
        let departments: Vec<Vec<UserId>> = DEPARTMENTS
            .iter()
            .map(|d| (0..d.size).map(|_| UserId::new()).collect())
            .collect();
        let practitioners = [
            HistoryPractitioner {
                user: UserId::new(),
                auto_confirm: true,
            },
            HistoryPractitioner {
                user: UserId::new(),
                auto_confirm: false,
            },
        ];
        let mut used: HashMap<UserId, i64> = HashMap::new();
        for seq in [24_317, 24_318, 24_319] {
            let plan = input_for(seq, &slots, &departments, &used, &practitioners);
            for (d, people) in DEPARTMENTS.iter().zip(&departments) {
                let mine: Vec<&Planned> = plan
                    .iter()
                    .filter(|p| people.contains(&p.employee))
                    .collect();
                let users: std::collections::HashSet<_> = mine.iter().map(|p| p.employee).collect();
                let held: std::collections::HashSet<_> = mine
                    .iter()
                    .filter(|p| p.outcome == Outcome::Ended)
                    .map(|p| p.employee)
                    .collect();
                if d.name == "Legal" {
                    assert!(!mine.is_empty() && mine.len() < 5, "{}", mine.len());
                } else {
                    assert!(users.len() >= 5 && d.size - users.len() >= 5, "{}", d.name);
                    assert!(held.len() >= 5, "{}", d.name);
                    assert!(
                        mine.iter().any(|p| p.outcome != Outcome::Ended),
                        "{}",
                        d.name
                    );
                }
            }
            for (i, a) in plan.iter().enumerate() {
                assert!(a.created_at < a.confirmed_at && a.confirmed_at < a.starts_at);
                assert!(a.first_at <= a.second_at);
                if a.outcome == Outcome::Cancelled {
                    assert!(a.first_at > a.confirmed_at && a.first_at < a.starts_at);
                } else {
                    assert!(a.first_at >= a.starts_at);
                }
                for b in plan.iter().skip(i + 1) {
                    let overlap = a.starts_at < b.ends_at() && b.starts_at < a.ends_at();
                    assert!(
                        !(overlap && a.practitioner.user == b.practitioner.user),
                        "practitioner double-booked"
                    );
                    assert!(
                        !(overlap && a.employee == b.employee),
                        "employee double-booked"
                    );
                }
            }
            for p in plan.iter().filter(|p| p.counts) {
                *used.entry(p.employee).or_default() += 1;
            }
        }
        assert!(used.values().all(|n| *n <= 6), "{used:?}");
        // Deterministic: the same month, the same plan.
        let a = input_for(
            24_317,
            &slots,
            &departments,
            &HashMap::new(),
            &practitioners,
        );
        let b = input_for(
            24_317,
            &slots,
            &departments,
            &HashMap::new(),
            &practitioners,
        );
        let key = |v: &[Planned]| {
            v.iter()
                .map(|p| (p.employee, p.starts_at, p.kind, p.outcome))
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&a), key(&b));
    }

    #[test]
    fn forty_one_members_with_distinct_addresses() {
        let m = members();
        assert_eq!(m.len(), 41);
        let emails: std::collections::HashSet<_> = m.iter().map(|x| &x.email).collect();
        assert_eq!(emails.len(), 41);
        assert_eq!(
            m.first().map(|x| x.email.as_str()),
            Some("member-01@demo.serein.test")
        );
    }
}
