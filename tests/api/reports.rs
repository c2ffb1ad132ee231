//! Usage reports and exports (issue 13, items 1–3; PROOF 8b, 8c, 23, 24): closed months only,
//! frozen releases, primary and complementary suppression, the definers attacked as
//! `serein_app`, and who may read what. The CSV files (read back by Python's `csv` module) and
//! the platform's reports are in `reports_exports.rs`, the property test over random data in
//! `reports_property.rs`; both use the fixtures here.

use reqwest::Method;
use serde_json::Value;
use sqlx::{Executor, PgConnection};

use crate::helpers::{TestApp, as_app_with_roles, as_member_with_session_roles, create_tenant};
use crate::people::{call, host, mint_session};
use serein::db::{TenantId, UserId};
use serein::rbac::Role;

// ---------------------------------------------------------------------------------------------
// Fixtures: a company with a history, written as the owner.

/// A company created two years ago (so past months are reportable), with `min_cohort`.
pub async fn company(owner: &mut PgConnection, slug: &str, min_cohort: i32) -> TenantId {
    let id = create_tenant(owner, slug).await;
    sqlx::query(
        "UPDATE tenants SET created_at = now() - interval '2 years', min_cohort = $2 WHERE id = $1",
    )
    .bind(id.as_uuid())
    .bind(min_cohort)
    .execute(owner)
    .await
    .unwrap();
    id
}

/// `n` people enrolled two years ago in `department` (None: no department) with `roles`.
pub async fn people(
    owner: &mut PgConnection,
    tenant: TenantId,
    department: Option<&str>,
    roles: &[&str],
    n: usize,
) -> Vec<UserId> {
    let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO users (id, email, display_name)
         SELECT u, u::text || '@people.test', 'Person ' || left(u::text, 8) FROM unnest($1::uuid[]) AS u",
    )
    .bind(&ids)
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO memberships (id, tenant_id, user_id, roles, department, created_at, updated_at)
         SELECT gen_random_uuid(), $2, u, $3, $4, now() - interval '2 years', now() - interval '2 years'
         FROM unnest($1::uuid[]) AS u",
    )
    .bind(&ids)
    .bind(tenant.as_uuid())
    .bind(roles.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>())
    .bind(department)
    .execute(&mut *owner)
    .await
    .unwrap();
    ids.into_iter().map(UserId::from).collect()
}

/// A practitioner with `specialties` (first = the one reports use) serving `tenant`.
pub async fn practitioner(
    owner: &mut PgConnection,
    tenant: TenantId,
    name: &str,
    specialties: &[&str],
) -> UserId {
    let id = uuid::Uuid::now_v7();
    sqlx::query("INSERT INTO users (id, email, display_name) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(format!("{id}@practice.test"))
        .bind(name)
        .execute(&mut *owner)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO practitioner_profiles (user_id, specialties, created_at, updated_at)
         VALUES ($1, $2, now(), now())",
    )
    .bind(id)
    .bind(
        specialties
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO memberships (id, tenant_id, user_id, roles) VALUES ($1, $2, $3, '{practitioner}')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(id)
    .execute(&mut *owner)
    .await
    .unwrap();
    UserId::from(id)
}

/// One consultation booked by `employee` with `practitioner`, `months_ago` months before the
/// current month (its `slot`-th hour), of `kind`, ending in `status` (`ended`: 50 minutes held,
/// with its start and end events).
pub struct Booking {
    pub employee: UserId,
    pub practitioner: UserId,
    pub kind: &'static str,
    pub status: &'static str,
    pub months_ago: i32,
}

pub async fn book(owner: &mut PgConnection, tenant: TenantId, bookings: &[Booking]) {
    let n = bookings.len();
    let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::now_v7()).collect();
    let slot: Vec<i32> = (0..n as i32).collect();
    sqlx::query(
        "WITH b AS (
             SELECT * FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::int[], $8::int[])
                 AS b(id, employee, practitioner, kind, status, months_ago, slot))
         INSERT INTO consultations (id, tenant_id, employee_id, practitioner_id, kind, status,
                                    starts_at, ends_at, room, cancelled_by, cancel_reason,
                                    created_at, updated_at)
         SELECT b.id, $1, b.employee, b.practitioner, b.kind, b.status,
                date_trunc('month', now()) - make_interval(months => b.months_ago) + make_interval(hours => b.slot),
                date_trunc('month', now()) - make_interval(months => b.months_ago) + make_interval(hours => b.slot, mins => 50),
                md5(b.id::text), CASE WHEN b.status = 'cancelled' THEN b.employee END,
                CASE WHEN b.status = 'cancelled' THEN 'other' END, now(), now()
         FROM b",
    )
    .bind(tenant.as_uuid())
    .bind(&ids)
    .bind(bookings.iter().map(|b| b.employee.as_uuid()).collect::<Vec<_>>())
    .bind(bookings.iter().map(|b| b.practitioner.as_uuid()).collect::<Vec<_>>())
    .bind(bookings.iter().map(|b| b.kind.to_owned()).collect::<Vec<_>>())
    .bind(bookings.iter().map(|b| b.status.to_owned()).collect::<Vec<_>>())
    .bind(bookings.iter().map(|b| b.months_ago).collect::<Vec<_>>())
    .bind(&slot)
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO consultation_events (id, tenant_id, consultation_id, kind, actor_id, at)
         SELECT gen_random_uuid(), c.tenant_id, c.id, e.kind, c.practitioner_id,
                CASE e.kind WHEN 'started' THEN c.starts_at ELSE c.ends_at END
         FROM consultations c CROSS JOIN (VALUES ('started'), ('ended')) AS e(kind)
         WHERE c.id = ANY($1) AND c.status = 'ended'",
    )
    .bind(&ids)
    .execute(&mut *owner)
    .await
    .unwrap();
}

/// One booking (see [`book`]).
pub async fn book_one(
    owner: &mut PgConnection,
    tenant: TenantId,
    (employee, practitioner): (UserId, UserId),
    kind: &'static str,
    status: &'static str,
    months_ago: i32,
) {
    let b = Booking {
        employee,
        practitioner,
        kind,
        status,
        months_ago,
    };
    book(owner, tenant, &[b]).await;
}

/// `YYYY-MM` of `months_ago` months before the current one (UTC, the test companies' zone).
pub fn month_label(app: &TestApp, months_ago: i32) -> String {
    let now = app.clock.now();
    let index = now.year() * 12 + i32::from(u8::from(now.month())) - 1 - months_ago;
    format!(
        "{:04}-{:02}",
        index.div_euclid(12),
        index.rem_euclid(12) + 1
    )
}

/// A live HR session (token) in `tenant`.
pub async fn hr_token(
    app: &TestApp,
    owner: &mut PgConnection,
    tenant: TenantId,
    slug: &str,
) -> String {
    let hr = people(owner, tenant, Some("People"), &["hr"], 1).await;
    mint_session(app, tenant, &host(slug), hr[0], &[Role::Hr])
        .await
        .1
}

pub async fn get_json(app: &TestApp, host: &str, path: &str, token: &str) -> (u16, Value) {
    let res = call(app, Method::GET, host, path, token).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The SQLSTATE of a statement's failure (in a savepoint), or Ok.
async fn attempt(conn: &mut PgConnection, sql: &str) -> Result<(), String> {
    conn.execute("SAVEPOINT attempt").await.unwrap();
    match conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await {
        Ok(_) => {
            conn.execute("RELEASE SAVEPOINT attempt").await.unwrap();
            Ok(())
        }
        Err(e) => {
            conn.execute("ROLLBACK TO SAVEPOINT attempt").await.unwrap();
            Err(e
                .as_database_error()
                .and_then(|d| d.code().map(|c| c.to_string()))
                .unwrap_or_else(|| e.to_string()))
        }
    }
}

const MEASURES: [&str; 4] = ["booked", "held", "cancelled", "users"];

/// PROOF 23 on one answer: no released figure below `min_cohort`; every hidden figure has a
/// reason and minutes follow held; in every month, no measure of the grouping has exactly one
/// hidden cell while the month's total is released (total − visible would reveal it), and
/// fully released groupings add up to the total (distinct users only by department: a person
/// books several kinds or specialties).
pub fn assert_released_safely(body: &Value, min_cohort: i64, totals: &Value) {
    for cell in body["cells"].as_array().unwrap() {
        for m in MEASURES {
            match cell[m].as_i64() {
                Some(v) => {
                    assert!(
                        v >= min_cohort,
                        "{m} = {v} released below {min_cohort}: {cell}"
                    );
                    assert!(cell["suppressed"][m].is_null(), "{cell}");
                }
                None => assert!(
                    ["below_min_cohort", "complementary"]
                        .contains(&cell["suppressed"][m].as_str().unwrap_or_default()),
                    "{m} hidden without a reason: {cell}"
                ),
            }
        }
        assert_eq!(cell["minutes"].is_null(), cell["held"].is_null(), "{cell}");
        assert_eq!(cell["suppressed"]["minutes"], cell["suppressed"]["held"]);
    }
    for total in totals["cells"].as_array().unwrap() {
        let month = &total["month"];
        for m in MEASURES {
            let cells: Vec<&Value> = body["cells"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| &c["month"] == month)
                .collect();
            let hidden = cells.iter().filter(|c| c[m].is_null()).count();
            if let Some(t) = total[m].as_i64() {
                assert_ne!(
                    hidden, 1,
                    "{m} in {month}: one hidden cell beside a released total"
                );
                let visible: i64 = cells.iter().filter_map(|c| c[m].as_i64()).sum();
                let additive = m != "users" || body["group_by"] == "department";
                if hidden == 0 && body["group_by"] != "month" && additive {
                    assert_eq!(visible, t, "{m} in {month}: cells do not add up");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// The scene: Sales (20 people, most book), Ops (12), Legal (3, nobody books), members without
/// a department (4); three practitioners; bookings three and two months ago.
pub struct Scene {
    pub tenant: TenantId,
    pub sales: Vec<UserId>,
    pub ops: Vec<UserId>,
    pub legal: Vec<UserId>,
    pub drs: Vec<UserId>,
}

pub async fn scene(owner: &mut PgConnection, slug: &str) -> Scene {
    let tenant = company(owner, slug, 5).await;
    let sales = people(owner, tenant, Some("Sales"), &["employee"], 20).await;
    let ops = people(owner, tenant, Some("Ops"), &["employee"], 12).await;
    let legal = people(owner, tenant, Some("Legal"), &["employee"], 3).await;
    people(owner, tenant, None, &["employee"], 4).await;
    let drs = vec![
        practitioner(owner, tenant, "Dr Alice", &["stress", "sleep"]).await,
        practitioner(owner, tenant, "Dr Bruno", &["anxiety"]).await,
        practitioner(owner, tenant, "Dr Chloé", &["stress"]).await,
    ];
    let kinds = ["video", "audio", "chat", "video", "video"];
    let mut bookings = Vec::new();
    for months_ago in [3, 2] {
        for (i, e) in sales.iter().enumerate().take(16) {
            bookings.push(Booking {
                employee: *e,
                practitioner: drs[i % 3],
                kind: kinds[i % 5],
                status: if i % 6 == 5 { "cancelled" } else { "ended" },
                months_ago,
            });
        }
        for (i, e) in ops.iter().enumerate().take(7) {
            bookings.push(Booking {
                employee: *e,
                practitioner: drs[(i + 1) % 3],
                kind: kinds[i % 5],
                status: if i == 0 { "no_show" } else { "ended" },
                months_ago,
            });
        }
    }
    book(owner, tenant, &bookings).await;
    Scene {
        tenant,
        sales,
        ops,
        legal,
        drs,
    }
}

#[tokio::test]
async fn hr_gets_released_cells_of_closed_months_only() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let s = scene(&mut owner, "acme").await;
    let h = host("acme");
    let hr = hr_token(&app, &mut owner, s.tenant, "acme").await;
    let (m3, m2, m1, m0) = (
        month_label(&app, 3),
        month_label(&app, 2),
        month_label(&app, 1),
        month_label(&app, 0),
    );
    let range = format!("from={m3}&to={m2}");

    let (status, totals) = get_json(&app, &h, &format!("/api/v1/reports/usage?{range}"), &hr).await;
    assert_eq!(status, 200, "{totals}");
    assert_eq!(totals["group_by"], "month");
    assert_eq!(totals["last_closed"], m1.as_str());
    let cells = totals["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 2, "{totals}");
    // Three months ago: 32 bookings (16 Sales + 7 Ops, twice over two months → 23 a month).
    assert_eq!(cells[0]["month"], m3.as_str());
    assert_eq!(cells[0]["booked"], 23);
    assert_eq!(cells[0]["users"], 23);
    assert_eq!(cells[0]["held"], 20);
    assert_eq!(cells[0]["minutes"], 20 * 50);
    assert!(cells[0]["group"].is_null());
    // Two cancellations a month (two people): below the cohort.
    assert!(cells[0]["cancelled"].is_null());
    assert_eq!(cells[0]["suppressed"]["cancelled"], "below_min_cohort");
    // Enrolment: 40 members at the month's end (39 employees + HR), banded by 10, over 50 seats.
    let months = totals["months"].as_array().unwrap();
    assert_eq!(months.len(), 2);
    assert_eq!(months[0]["min_cohort"], 5);
    assert_eq!(months[0]["enrolled_members"], 40);
    assert_eq!(months[0]["enrolment_rate"], 0.8);

    let (status, by_dept) = get_json(
        &app,
        &h,
        &format!("/api/v1/reports/usage?{range}&group_by=department"),
        &hr,
    )
    .await;
    assert_eq!(status, 200, "{by_dept}");
    assert_released_safely(&by_dept, 5, &totals);
    let dept = |month: &str, name: Option<&str>| -> Value {
        by_dept["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["month"] == month && c["group"].as_str() == name)
            .cloned()
            .unwrap_or_else(|| panic!("no cell {month} {name:?}: {by_dept}"))
    };
    // Every department is a cell, the empty ones too ("nobody in Legal" is about Legal's 3).
    let legal = dept(&m3, Some("Legal"));
    assert!(legal["booked"].is_null());
    assert_eq!(legal["suppressed"]["booked"], "below_min_cohort");
    assert_eq!(legal["suppressed"]["users"], "below_min_cohort");
    let none = dept(&m3, None);
    assert_eq!(none["suppressed"]["booked"], "below_min_cohort");
    // Sales: 16 bookings, released; but 16 of its 20 people booked, and the 4 who did not are
    // fewer than the cohort ("20 of 20" would name everyone; so would "16" to whoever knows
    // four absentees): its distinct users are hidden.
    let sales = dept(&m3, Some("Sales"));
    assert_eq!(sales["booked"], 16, "{sales}");
    assert_eq!(sales["suppressed"]["users"], "below_min_cohort", "{sales}");
    // Ops: 7 bookings, not small, hidden all the same: with the empty departments alone hidden
    // their sum (60 − 16 − 7 = 0) would show each is 0. Its parts follow.
    let ops = dept(&m3, Some("Ops"));
    assert_eq!(ops["suppressed"]["booked"], "complementary", "{ops}");
    assert!(ops["users"].is_null() && ops["held"].is_null(), "{ops}");
    // The People department (HR's own) has nobody who booked: hidden.
    assert_eq!(
        dept(&m3, Some("People"))["suppressed"]["booked"],
        "below_min_cohort"
    );

    for g in ["specialty", "kind"] {
        let (status, body) = get_json(
            &app,
            &h,
            &format!("/api/v1/reports/usage?{range}&group_by={g}"),
            &hr,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_released_safely(&body, 5, &totals);
    }

    // Closed months only: the month under way, or the future, is refused; so is a range that
    // reaches it. The default range ends at the last closed month.
    for q in [
        format!("to={m0}"),
        format!("from={m1}&to={m0}"),
        "to=2999-01".to_owned(),
    ] {
        let res = call(
            &app,
            Method::GET,
            &h,
            &format!("/api/v1/reports/usage?{q}"),
            &hr,
        )
        .await;
        assert_eq!(res.status(), 422, "{q}");
        let p: Value = res.json().await.unwrap();
        assert_eq!(p["code"], "validation_failed");
        assert_eq!(p["errors"][0]["field"], "to", "{p}");
        assert!(
            p["errors"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("not a closed month"),
            "{p}"
        );
    }
    let (_, default) = get_json(&app, &h, "/api/v1/reports/usage", &hr).await;
    assert_eq!(default["to"], m1.as_str());
    assert_eq!(default["cells"].as_array().unwrap().len(), 12);
    for (q, field) in [
        (format!("from={m2}&to={m3}"), "from"),
        ("from=2023-01&to=2025-06".to_owned(), "from"),
        ("to=2026-13".to_owned(), "to"),
        ("from=26-01".to_owned(), "from"),
        ("group_by=person".to_owned(), "group_by"),
    ] {
        let res = call(
            &app,
            Method::GET,
            &h,
            &format!("/api/v1/reports/usage?{q}"),
            &hr,
        )
        .await;
        assert_eq!(res.status(), 422, "{q}");
        let p: Value = res.json().await.unwrap();
        assert_eq!(p["errors"][0]["field"], field, "{q}: {p}");
    }
    let res = call(
        &app,
        Method::GET,
        &h,
        "/api/v1/reports/usage?employee=1",
        &hr,
    )
    .await;
    assert_eq!(res.status(), 400);
    let _ = (&s.sales, &s.ops, &s.legal, &s.drs);
}

/// PROOF 8c: once a month is released it never moves, whatever happens afterwards; the month
/// under way is never released, so HR cannot compare a day before and a day after.
#[tokio::test]
async fn a_released_month_never_moves() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let s = scene(&mut owner, "acme").await;
    let h = host("acme");
    let hr = hr_token(&app, &mut owner, s.tenant, "acme").await;
    let m3 = month_label(&app, 3);
    let snapshot = |g: &'static str| {
        let (app, h, hr, m3) = (&app, &h, &hr, &m3);
        async move {
            let (status, body) = get_json(
                app,
                h,
                &format!("/api/v1/reports/usage?from={m3}&to={m3}&group_by={g}"),
                hr,
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    let groupings = ["month", "department", "specialty", "kind"];
    let mut before = Vec::new();
    for g in groupings {
        before.push(snapshot(g).await);
    }
    // One booking entered late for a Legal employee (Legal had none), a sign-up into a new
    // department, Ops people moving to Legal, an erasure (membership and its consultations
    // gone), a new practitioner's specialty, and a new min_cohort.
    book_one(
        &mut owner,
        s.tenant,
        (s.legal[0], s.drs[0]),
        "chat",
        "ended",
        3,
    )
    .await;
    people(&mut owner, s.tenant, Some("Finance"), &["employee"], 1).await;
    sqlx::query("UPDATE memberships SET department = 'Legal' WHERE user_id = ANY($1)")
        .bind(
            s.ops
                .iter()
                .take(3)
                .map(|u| u.as_uuid())
                .collect::<Vec<_>>(),
        )
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query("DELETE FROM memberships WHERE user_id = $1")
        .bind(s.sales[0].as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    practitioner(&mut owner, s.tenant, "Dr Dora", &["grief"]).await;
    sqlx::query("UPDATE tenants SET min_cohort = 3 WHERE id = $1")
        .bind(s.tenant.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    for (g, was) in groupings.iter().zip(&before) {
        assert_eq!(
            &snapshot(g).await,
            was,
            "{g} moved after the month was released"
        );
    }
    // The month under way: a booking now changes nothing HR can see, today or "tomorrow".
    let (_, default_before) = get_json(&app, &h, "/api/v1/reports/usage", &hr).await;
    book_one(
        &mut owner,
        s.tenant,
        (s.legal[1], s.drs[1]),
        "video",
        "cancelled",
        0,
    )
    .await;
    app.clock.advance(time::Duration::days(1));
    let hr2 = hr_token(&app, &mut owner, s.tenant, "acme").await;
    let (_, default_after) = get_json(&app, &h, "/api/v1/reports/usage", &hr2).await;
    assert_eq!(default_before, default_after);
    // In the database: a caller's clock pushed past the month under way opens nothing (the
    // definers take the earlier of it and the database's clock).
    let hr_user: uuid::Uuid = sqlx::query_scalar(
        "SELECT m.user_id FROM memberships m WHERE m.tenant_id = $1 AND 'hr' = ANY(m.roles) LIMIT 1",
    )
    .bind(s.tenant.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert!(as_member_with_session_roles(&mut owner, s.tenant, UserId::from(hr_user), "hr").await);
    let last: Option<time::Date> = sqlx::query_scalar(
        "SELECT last_closed FROM app_private.usage_window(now() + interval '60 days')",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    let this_month: time::Date = sqlx::query_scalar("SELECT date_trunc('month', now())::date")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert!(last.unwrap() < this_month);
    assert_eq!(
        attempt(
            &mut owner,
            "SELECT * FROM app_private.usage_report(date_trunc('month', now())::date,
                                                    date_trunc('month', now())::date, 'total',
                                                    now() + interval '60 days')"
        )
        .await,
        Err("22023".into())
    );
    owner.execute("ROLLBACK").await.unwrap();
}

/// PROOF 8b: the definers and the frozen tables, attacked as the request role.
#[tokio::test]
async fn the_report_definers_hold_alone() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let s = scene(&mut owner, "acme").await;
    let other = scene(&mut owner, "globex").await;
    let hr = people(&mut owner, s.tenant, Some("People"), &["hr"], 1).await[0];
    let employee = s.sales[1];
    let report = "SELECT * FROM app_private.usage_report(
                      (date_trunc('month', now()) - interval '3 months')::date,
                      (date_trunc('month', now()) - interval '2 months')::date, 'department', now())";
    let doors = [
        report.to_owned(),
        "SELECT * FROM app_private.usage_window(now())".to_owned(),
        "SELECT * FROM app_private.usage_report_months(
             (date_trunc('month', now()) - interval '3 months')::date,
             (date_trunc('month', now()) - interval '2 months')::date, now())"
            .to_owned(),
    ];
    // Claimed contexts without a session proof: HR's own id and role, a tenant admin's role.
    for roles in ["hr", "tenant_admin", "hr,tenant_admin"] {
        as_app_with_roles(&mut owner, Some(s.tenant), Some(hr), roles).await;
        for d in &doors {
            assert_eq!(
                attempt(&mut owner, d).await,
                Err("42501".into()),
                "{roles}: {d}"
            );
        }
        owner.execute("ROLLBACK").await.unwrap();
    }
    // Sessions for the people below.
    for u in [hr, employee] {
        sqlx::query(
            "INSERT INTO sessions (id, tenant_id, user_id, created_at, idle_expires_at, absolute_expires_at)
             VALUES (gen_random_uuid(), $1, $2, now(), now() + interval '1 hour', now() + interval '1 day')",
        )
        .bind(s.tenant.as_uuid())
        .bind(u.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    }
    // An employee's PROVEN session that then claims hr: refused (the role is checked against
    // the membership, not `app.roles`).
    assert!(as_member_with_session_roles(&mut owner, s.tenant, employee, "employee").await);
    owner
        .execute("SELECT set_config('app.roles', 'hr,tenant_admin', true)")
        .await
        .unwrap();
    for d in &doors {
        assert_eq!(attempt(&mut owner, d).await, Err("42501".into()), "{d}");
    }
    owner.execute("ROLLBACK").await.unwrap();
    // HR's proven session moved to another company: the proof does not follow.
    assert!(as_member_with_session_roles(&mut owner, s.tenant, hr, "hr").await);
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(other.tenant.to_string())
        .execute(&mut owner)
        .await
        .unwrap();
    for d in &doors {
        assert_eq!(attempt(&mut owner, d).await, Err("42501".into()), "{d}");
    }
    owner.execute("ROLLBACK").await.unwrap();
    // HR's proven session: its company's figures only; the frozen tables stay out of reach, as
    // do the internal functions and the platform's doors.
    assert!(as_member_with_session_roles(&mut owner, s.tenant, hr, "hr").await);
    assert_eq!(attempt(&mut owner, report).await, Ok(()));
    let keys: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT group_key FROM ({report}) r"
    )))
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert!(keys.contains(&"Sales".to_owned()) && keys.contains(&"People".to_owned()));
    for table in ["usage_months", "usage_cells", "usage_practitioner_months"] {
        for sql in [
            format!("SELECT * FROM {table}"),
            format!("DELETE FROM {table}"),
            format!("UPDATE {table} SET month = month"),
            format!("INSERT INTO {table} SELECT * FROM {table}"),
        ] {
            assert_eq!(
                attempt(&mut owner, &sql).await,
                Err("42501".into()),
                "{sql}"
            );
        }
    }
    let month = "(date_trunc('month', now()) - interval '4 months')::date";
    for sql in [
        format!("SELECT app_private.usage_freeze('{}', {month}, now())", s.tenant),
        format!(
            "SELECT app_private.usage_freeze_range('{}', {month}, {month}, now())",
            other.tenant
        ),
        format!("SELECT app_private.platform_usage_freeze({month}, now())"),
        "SELECT app_private.usage_hr_tenant()".to_owned(),
        format!(
            "SELECT * FROM app_private.usage_month_rows('{}', now() - interval '1 year', now())",
            s.tenant
        ),
        "SELECT * FROM app_private.usage_suppress('{total}', '{1}', '{1}', '{1}', '{1}', '{1}', '{1}', '{1}', '{\"\"}', 5, '{f,f,f,f}')".to_owned(),
        "SELECT app_private.usage_hidden_safe('{1}', '{0}', '{4}')".to_owned(),
        format!("SELECT * FROM app_private.usage_released('{}', {month}, {month}, 'total')", s.tenant),
        format!("SELECT app_private.usage_release('{}', {month}, 5, '{{f,f,f,f}}')", s.tenant),
        format!("SELECT app_private.platform_usage_prepare({month}, {month}, now())"),
        format!("SELECT * FROM app_private.platform_usage_report({month}, {month}, 'total', now())"),
        format!("SELECT * FROM app_private.platform_tenant_overview({month}, {month}, now())"),
        format!("SELECT * FROM app_private.platform_practitioner_activity({month}, {month}, now())"),
        "SELECT app_private.platform_usage_window(now())".to_owned(),
    ] {
        assert_eq!(attempt(&mut owner, &sql).await, Err("42501".into()), "{sql}");
    }
    owner.execute("ROLLBACK").await.unwrap();
    // A claimed platform context (tenant zero, platform_admin) without a proof: refused.
    as_app_with_roles(
        &mut owner,
        Some(TenantId::PLATFORM),
        Some(hr),
        "platform_admin",
    )
    .await;
    for sql in [
        "SELECT app_private.platform_usage_window(now())",
        "SELECT * FROM app_private.platform_practitioner_activity('2026-01-01', '2026-01-01', now())",
        "SELECT app_private.platform_usage_prepare('2026-01-01', '2026-01-01', now())",
    ] {
        assert_eq!(attempt(&mut owner, sql).await, Err("42501".into()), "{sql}");
    }
    owner.execute("ROLLBACK").await.unwrap();
    // Nothing of the other company was frozen by all this (each company's months are frozen
    // by its own HR's requests, or by the platform's).
    let frozen: i64 = sqlx::query_scalar("SELECT count(*) FROM usage_months WHERE tenant_id = $1")
        .bind(other.tenant.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(frozen, 0);
}

#[tokio::test]
async fn only_hr_and_tenant_admins_read_the_report_and_only_platform_admins_the_platforms() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let s = scene(&mut owner, "acme").await;
    let h = host("acme");
    let hr_routes = ["/api/v1/reports/usage", "/api/v1/exports/usage.csv"];
    let platform_routes = [
        "/api/v1/platform/reports/usage",
        "/api/v1/platform/reports/tenants",
        "/api/v1/platform/exports/practitioner-activity.csv",
    ];
    for path in hr_routes {
        let res = app.get(&h, path).await;
        assert_eq!(res.status(), 401, "{path}");
    }
    for path in platform_routes {
        let res = app.get("localhost", path).await;
        assert_eq!(res.status(), 401, "{path}");
    }
    let tenant = s.tenant;
    let token = |roles: &'static [Role]| {
        let app = &app;
        async move {
            let mut owner = app.owner().await;
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            let u = people(&mut owner, tenant, Some("Ops"), &names, 1).await[0];
            mint_session(app, tenant, &host("acme"), u, roles).await.1
        }
    };
    for roles in [&[Role::Employee][..], &[Role::Practitioner][..]] {
        let t = token(roles).await;
        for path in hr_routes {
            let res = call(&app, Method::GET, &h, path, &t).await;
            assert_eq!(res.status(), 403, "{roles:?} {path}");
        }
    }
    for roles in [&[Role::Hr][..], &[Role::TenantAdmin][..]] {
        let t = token(roles).await;
        for path in hr_routes {
            let res = call(&app, Method::GET, &h, path, &t).await;
            assert_eq!(res.status(), 200, "{roles:?} {path}");
        }
        for path in platform_routes {
            let res = call(&app, Method::GET, &h, path, &t).await;
            assert_eq!(res.status(), 403, "{roles:?} {path}");
        }
    }
    // A platform admin reads the platform's reports on the platform host, never a company's.
    let admin = crate::platform::platform_admin(&app).await;
    for path in platform_routes {
        let res = call(&app, Method::GET, "localhost", path, &admin).await;
        assert_eq!(res.status(), 200, "{path}");
    }
    for path in hr_routes {
        let res = call(&app, Method::GET, "localhost", path, &admin).await;
        assert_eq!(res.status(), 403, "{path}");
    }
}
