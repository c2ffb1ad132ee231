//! The property test of issue 13, item 1 (PROOF 23): over random companies (people in
//! departments, practitioners of random specialties, consultations of random kinds, outcomes
//! and months, a random `min_cohort`) and random queries (grouping × range), through HR's
//! definer in a proven HR session:
//! - no released figure is below `min_cohort`, every hidden one has a reason, minutes follow
//!   held, and released figures are the true ones;
//! - every answer is the month's one fixed release (the same cell, whatever the query);
//! - no hidden cell is derivable by linear combination of the released cells of its month: its
//!   indicator vector over the month's finest cells (department × specialty × kind) is not in
//!   the span of the released cells' vectors (exact rank, fraction-free over i128), per measure
//!   (distinct users over the total and departments, where they add up);
//! - nor pinned to one value by a grouping's sum, the published reasons and the cell's own
//!   released figures (an independent re-implementation of the interval test of the migration).
//!
//! 48 cases: each is a new company on one test database.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sqlx::{Executor, PgConnection, Row};

use crate::helpers::{TestApp, as_member_with_session_roles};
use crate::reports::{Booking, book, company, people, practitioner};
use serein::db::{TenantId, UserId};

const SPECIALTIES: [&str; 3] = ["anxiety", "stress", "sleep"];
const KINDS: [&str; 4] = ["audio", "chat", "in_person", "video"];
const OUTCOMES: [&str; 3] = ["ended", "cancelled", "no_show"];
const GROUPINGS: [&str; 4] = ["total", "department", "specialty", "kind"];
const MEASURES: [&str; 4] = ["booked", "held", "cancelled", "users"];

#[derive(Debug, Clone)]
struct Case {
    min_cohort: i32,
    departments: usize,
    /// Each person's department (index == departments: none).
    people: Vec<usize>,
    /// Each practitioner's specialty (index 3: none listed).
    practitioners: Vec<usize>,
    /// (person, practitioner, kind, month 0|1, outcome).
    bookings: Vec<(usize, usize, usize, usize, usize)>,
    /// (grouping, range: 0 both months, 1 the earlier, 2 the later).
    queries: Vec<(usize, usize)>,
}

fn cases() -> impl Strategy<Value = Case> {
    (3i32..=8, 1usize..=4, 1usize..=3)
        .prop_flat_map(|(m, d, p)| {
            (
                Just(m),
                Just(d),
                prop::collection::vec(0..=d, 3..45),
                prop::collection::vec(0usize..4, p..=p),
                prop::collection::vec(
                    (any::<u16>(), any::<u16>(), 0usize..4, 0usize..2, 0usize..3),
                    0..150,
                ),
                prop::collection::vec((0usize..4, 0usize..3), 1..6),
            )
        })
        .prop_map(
            |(min_cohort, departments, people, practitioners, raw, queries)| {
                let bookings = raw
                    .into_iter()
                    .map(|(p, d, k, m, o)| {
                        (
                            usize::from(p) % people.len(),
                            usize::from(d) % practitioners.len(),
                            k,
                            m,
                            o,
                        )
                    })
                    .collect();
                Case {
                    min_cohort,
                    departments,
                    people,
                    practitioners,
                    bookings,
                    queries,
                }
            },
        )
}

/// One released cell as HR's definer returns it: figures (None: hidden) and reasons.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    figures: [Option<i64>; 4],
    minutes: Option<i64>,
    reasons: [Option<String>; 4],
}

type Key = (i32, String, String); // (month index 0|1, grouping, key)

fn dept_key(case: &Case, d: usize) -> String {
    if d == case.departments {
        String::new()
    } else {
        format!("d{d}")
    }
}

fn specialty_key(s: usize) -> String {
    SPECIALTIES
        .get(s)
        .map(|s| (*s).to_owned())
        .unwrap_or_default()
}

/// The true figures of every cell, from the case alone.
fn truth(case: &Case) -> HashMap<Key, [i64; 4]> {
    let mut out: HashMap<Key, [i64; 4]> = HashMap::new();
    let mut users: HashMap<Key, BTreeSet<usize>> = HashMap::new();
    for &(p, pr, k, month, o) in &case.bookings {
        let keys = [
            ("total", String::new()),
            ("department", dept_key(case, case.people[p])),
            ("specialty", specialty_key(case.practitioners[pr])),
            ("kind", KINDS[k].to_owned()),
        ];
        for (g, key) in keys {
            let id = (month as i32, g.to_owned(), key);
            let f = out.entry(id.clone()).or_default();
            f[0] += 1;
            f[1] += i64::from(o == 0);
            f[2] += i64::from(o == 1);
            users.entry(id).or_default().insert(p);
        }
    }
    for (id, set) in users {
        if let Some(f) = out.get_mut(&id) {
            f[3] = set.len() as i64;
        }
    }
    out
}

/// Rank of a set of integer row vectors, exactly (fraction-free elimination, rows kept small
/// by their gcd).
fn rank(rows: &[Vec<i128>]) -> usize {
    fn gcd(a: i128, b: i128) -> i128 {
        if b == 0 { a.abs() } else { gcd(b, a % b) }
    }
    let mut m: Vec<Vec<i128>> = rows.to_vec();
    let cols = m.first().map_or(0, Vec::len);
    let mut r = 0;
    for c in 0..cols {
        let Some(p) = (r..m.len()).find(|&i| m[i][c] != 0) else {
            continue;
        };
        m.swap(r, p);
        for i in 0..m.len() {
            if i != r && m[i][c] != 0 {
                let (a, b) = (m[r][c], m[i][c]);
                let pivot = m[r].clone();
                for (x, p) in m[i].iter_mut().zip(&pivot) {
                    *x = *x * a - p * b;
                }
                let g = m[i].iter().fold(0, |g, &x| gcd(g, x));
                if g > 1 {
                    for x in &mut m[i] {
                        *x /= g;
                    }
                }
            }
        }
        r += 1;
    }
    r
}

/// HR's view of one hidden cell alone, as the migration's `usage_box` states it.
fn bounds(m: usize, reason: &str, value: i64, min: i64, cell: &Answer) -> (i64, Option<i64>) {
    let (mut lo, mut hi) = if reason == "complementary" {
        (min, None)
    } else {
        (0, Some((min - 1).max(value)))
    };
    if m > 0
        && let Some(booked) = cell.figures[0]
    {
        let ub = if m == 3 {
            if booked > 0 {
                lo = lo.max(1);
            }
            booked
        } else {
            let sib = 3 - m; // held (1) ↔ cancelled (2)
            booked
                - match (&cell.figures[sib], cell.reasons[sib].as_deref()) {
                    (Some(v), _) => *v,
                    (None, Some("complementary")) => min,
                    _ => 0,
                }
        };
        hi = Some(hi.map_or(ub, |h| h.min(ub)));
    }
    (lo, hi)
}

/// Does each hidden cell of a relation with a known sum keep two possible values?
fn interval_safe(cells: &[(i64, i64, Option<i64>)]) -> bool {
    let r: i64 = cells.iter().map(|c| c.0).sum();
    cells.iter().enumerate().all(|(i, &(_, lo_i, hi_i))| {
        let others = cells.iter().enumerate().filter(|(j, _)| *j != i);
        let sum_lo: i64 = others.clone().map(|(_, c)| c.1).sum();
        let sum_hi: Option<i64> = others.map(|(_, c)| c.2).sum();
        let lo = match sum_hi {
            Some(h) => lo_i.max(r - h),
            None => lo_i,
        };
        let hi = match hi_i {
            Some(h) => h.min(r - sum_lo),
            None => r - sum_lo,
        };
        hi - lo >= 1
    })
}

async fn setup(app: &TestApp, case: &Case, n: usize) -> (TenantId, UserId) {
    let mut owner = app.owner().await;
    let tenant = company(&mut owner, &format!("prop{n}"), case.min_cohort).await;
    let mut person_ids: Vec<Option<UserId>> = vec![None; case.people.len()];
    for d in 0..=case.departments {
        let idx: Vec<usize> = (0..case.people.len())
            .filter(|&i| case.people[i] == d)
            .collect();
        if idx.is_empty() {
            continue;
        }
        let key = dept_key(case, d);
        let dept = (!key.is_empty()).then_some(key.as_str());
        let ids = people(&mut owner, tenant, dept, &["employee"], idx.len()).await;
        for (i, id) in idx.into_iter().zip(ids) {
            person_ids[i] = Some(id);
        }
    }
    let mut drs = Vec::new();
    for (i, s) in case.practitioners.iter().enumerate() {
        let specialties: Vec<&str> = SPECIALTIES.get(*s).into_iter().copied().collect();
        drs.push(practitioner(&mut owner, tenant, &format!("Dr {i}"), &specialties).await);
    }
    let bookings: Vec<Booking> = case
        .bookings
        .iter()
        .map(|&(p, pr, k, m, o)| Booking {
            employee: person_ids[p].unwrap(),
            practitioner: drs[pr],
            kind: KINDS[k],
            status: OUTCOMES[o],
            months_ago: 3 - m as i32,
        })
        .collect();
    if !bookings.is_empty() {
        book(&mut owner, tenant, &bookings).await;
    }
    let hr = people(&mut owner, tenant, None, &["hr"], 1).await[0];
    sqlx::query(
        "INSERT INTO sessions (id, tenant_id, user_id, created_at, idle_expires_at, absolute_expires_at)
         VALUES (gen_random_uuid(), $1, $2, now(), now() + interval '1 hour', now() + interval '1 day')",
    )
    .bind(tenant.as_uuid())
    .bind(hr.as_uuid())
    .execute(&mut owner)
    .await
    .unwrap();
    (tenant, hr)
}

/// HR's definer, in a proven HR session: (grouping, from month, to month) → answers.
async fn ask(
    conn: &mut PgConnection,
    tenant: TenantId,
    hr: UserId,
    grouping: &str,
    months: (i32, i32),
) -> Vec<(Key, Answer)> {
    assert!(as_member_with_session_roles(conn, tenant, hr, "hr").await);
    let rows = sqlx::query(
        "SELECT CASE WHEN month = (date_trunc('month', now()) - interval '3 months')::date
                     THEN 0 ELSE 1 END AS idx,
                group_key, booked, held, cancelled, users, minutes,
                booked_hidden, held_hidden, cancelled_hidden, users_hidden
         FROM app_private.usage_report(
             (date_trunc('month', now()) - make_interval(months => 3 - $1))::date,
             (date_trunc('month', now()) - make_interval(months => 3 - $2))::date, $3, now())",
    )
    .bind(months.0)
    .bind(months.1)
    .bind(grouping)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    conn.execute("COMMIT").await.unwrap();
    rows.into_iter()
        .map(|r| {
            let idx: i32 = r.get("idx");
            let fig = |c: &str| r.get::<Option<i32>, _>(c).map(i64::from);
            (
                (idx, grouping.to_owned(), r.get::<String, _>("group_key")),
                Answer {
                    figures: [fig("booked"), fig("held"), fig("cancelled"), fig("users")],
                    minutes: r.get("minutes"),
                    reasons: [
                        r.get("booked_hidden"),
                        r.get("held_hidden"),
                        r.get("cancelled_hidden"),
                        r.get("users_hidden"),
                    ],
                },
            )
        })
        .collect()
}

async fn check(app: &TestApp, case: &Case, n: usize) -> Result<(), TestCaseError> {
    let (tenant, hr) = setup(app, case, n).await;
    let mut conn = app.owner().await;
    let min = i64::from(case.min_cohort);
    // The random queries first (they freeze what they touch), then the full release.
    let mut asked = Vec::new();
    for &(g, r) in &case.queries {
        let months = match r {
            0 => (0, 1),
            1 => (0, 0),
            _ => (1, 1),
        };
        asked.extend(ask(&mut conn, tenant, hr, GROUPINGS[g], months).await);
    }
    let mut release: BTreeMap<Key, Answer> = BTreeMap::new();
    for g in GROUPINGS {
        for (k, a) in ask(&mut conn, tenant, hr, g, (0, 1)).await {
            release.insert(k, a);
        }
    }
    // One fixed release.
    for (k, a) in &asked {
        prop_assert_eq!(release.get(k), Some(a), "{:?} differs between queries", k);
    }
    let truth = truth(case);
    for (k, a) in &release {
        let t = truth.get(k).copied().unwrap_or_default();
        for (m, name) in MEASURES.iter().enumerate() {
            match a.figures[m] {
                Some(v) => {
                    prop_assert!(v >= min, "{:?} {}: {} released below {}", k, name, v, min);
                    prop_assert_eq!(v, t[m], "{:?} {}: released figure is wrong", k, name);
                    prop_assert!(a.reasons[m].is_none());
                }
                None => prop_assert!(
                    matches!(
                        a.reasons[m].as_deref(),
                        Some("below_min_cohort" | "complementary")
                    ),
                    "{:?} {} hidden without a reason",
                    k,
                    name
                ),
            }
        }
        prop_assert_eq!(a.minutes.is_some(), a.figures[1].is_some());
        if let (Some(held), Some(minutes)) = (a.figures[1], a.minutes) {
            prop_assert_eq!(minutes, held * 50);
        }
    }
    // Linear non-derivability, per month and measure, over the finest cells.
    for month in 0..2 {
        let keys = |g: &str| -> Vec<String> {
            release
                .keys()
                .filter(|(m, gg, _)| *m == month && gg == g)
                .map(|(_, _, k)| k.clone())
                .collect()
        };
        let (ds, ss, ks) = (keys("department"), keys("specialty"), keys("kind"));
        prop_assert!(!ds.is_empty() && !ss.is_empty() && ks.len() == 4);
        let mut finest: Vec<(String, String, String)> = Vec::new();
        for d in &ds {
            for s in &ss {
                for k in &ks {
                    finest.push((d.clone(), s.clone(), k.clone()));
                }
            }
        }
        let vector = |g: &str, key: &str| -> Vec<i128> {
            finest
                .iter()
                .map(|(d, s, k)| {
                    i128::from(match g {
                        "total" => true,
                        "department" => d == key,
                        "specialty" => s == key,
                        _ => k == key,
                    })
                })
                .collect()
        };
        for (m, name) in MEASURES.iter().enumerate() {
            let groupings: &[&str] = if m == 3 {
                &["total", "department"]
            } else {
                &GROUPINGS
            };
            let cells: Vec<(&Key, &Answer)> = release
                .iter()
                .filter(|((mm, g, _), _)| *mm == month && groupings.contains(&g.as_str()))
                .collect();
            let released: Vec<Vec<i128>> = cells
                .iter()
                .filter(|(_, a)| a.figures[m].is_some())
                .map(|((_, g, k), _)| vector(g, k))
                .collect();
            let base = rank(&released);
            for ((_, g, k), a) in &cells {
                if a.figures[m].is_none() {
                    let mut with = released.clone();
                    with.push(vector(g, k));
                    prop_assert_eq!(
                        rank(&with),
                        base + 1,
                        "{} of {} {:?} in month {} is derivable from the released cells",
                        name,
                        g,
                        k,
                        month
                    );
                }
            }
            // Pinned by a grouping's sum, the reasons and the cell's own figures?
            let total = release.get(&(month, "total".to_owned(), String::new()));
            if total.is_some_and(|t| t.figures[m].is_some()) {
                for g in &groupings[1..] {
                    let hidden: Vec<(i64, i64, Option<i64>)> = cells
                        .iter()
                        .filter(|((_, gg, _), a)| gg == g && a.figures[m].is_none())
                        .map(|((mm, gg, kk), a)| {
                            let v = truth
                                .get(&(*mm, gg.clone(), kk.clone()))
                                .map_or(0, |t| t[m]);
                            let (lo, hi) =
                                bounds(m, a.reasons[m].as_deref().unwrap_or(""), v, min, a);
                            (v, lo, hi)
                        })
                        .collect();
                    prop_assert!(
                        hidden.is_empty() || interval_safe(&hidden),
                        "{} by {} in month {}: a hidden cell is pinned: {:?}",
                        name,
                        g,
                        month,
                        hidden
                    );
                }
            }
        }
    }
    Ok(())
}

#[test]
fn random_companies_and_queries_never_release_a_small_or_derivable_cell() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = rt.block_on(TestApp::spawn());
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let released = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&cases(), |case| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            rt.block_on(check(&app, &case, n))?;
            let cells: i64 = rt.block_on(async {
                sqlx::query_scalar(
                    "SELECT count(*) FROM usage_cells c JOIN tenants t ON t.id = c.tenant_id
                     WHERE t.slug = $1 AND c.grouping <> 'total' AND c.booked_hidden IS NULL",
                )
                .bind(format!("prop{n}"))
                .fetch_one(&mut app.owner().await)
                .await
                .unwrap()
            });
            released.fetch_add(cells as usize, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    // The cases were not all suppressed whole: the property was tested on released cells.
    assert!(
        released.load(std::sync::atomic::Ordering::Relaxed) > 48,
        "too few released cells to mean anything"
    );
}
