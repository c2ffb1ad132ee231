//! Booking (issue 11, item 3; PROOF.md 18, 19, 20): no double booking under concurrency, in one
//! company or across two; `Idempotency-Key` replays; the yearly allowance under concurrency;
//! the slot must be offered; only employees book, only participants read.

use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{TestApp, problem};
use crate::members::send;
use crate::people::{add_person, host, member_session, mint_session};
use crate::practitioners::add_practitioner;
use serein::db::{TenantId, UserId};
use serein::rbac::Role;

/// A practitioner serving `tenants`, free every day around the clock (UTC, hour-long slots,
/// no notice), confirming automatically or not.
pub async fn bookable(app: &TestApp, tenants: &[TenantId], auto_confirm: bool) -> UserId {
    let mut o = app.owner().await;
    let id = add_practitioner(
        app,
        &mut o,
        "Dr Book",
        &["stress"],
        &["en"],
        "bio",
        true,
        tenants,
    )
    .await;
    let (home, slug) = if tenants.contains(&app.tenant_a) {
        (app.tenant_a, "alpha")
    } else {
        (app.tenant_b, "bravo")
    };
    let a = host(slug);
    let (_, t) = mint_session(app, home, &a, id, &[Role::Practitioner]).await;
    let res = send(
        app,
        Method::PUT,
        &a,
        "/api/v1/availability/settings",
        &t,
        Some(json!({"time_zone": "UTC", "auto_confirm": auto_confirm})),
    )
    .await;
    assert_eq!(res.status(), 200);
    crate::availability::open_all_week(app, &a, &t, &["video", "chat"]).await;
    id
}

/// An employee of `tenant` (host `slug`) with a session: (id, token).
pub async fn employee(app: &TestApp, tenant: TenantId, slug: &str) -> (UserId, String) {
    let email = format!("{}@{slug}.booking.test", uuid::Uuid::now_v7().simple());
    let user = add_person(app, tenant, &email, &["employee"]).await;
    let (_, token) = mint_session(app, tenant, &host(slug), user, &[Role::Employee]).await;
    (user, token)
}

/// A slot start `days` ahead at `hour`:00 UTC.
fn slot(days: i64, hour: u8) -> String {
    let d = (OffsetDateTime::now_utc() + time::Duration::days(days)).date();
    d.with_hms(hour, 0, 0)
        .unwrap()
        .assume_utc()
        .format(&Rfc3339)
        .unwrap()
}

pub fn booking(practitioner: UserId, starts_at: &str) -> Value {
    json!({"practitioner_id": practitioner, "starts_at": starts_at, "length_minutes": 60, "kind": "video"})
}

pub async fn book(
    app: &TestApp,
    slug: &str,
    token: &str,
    body: Value,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = app
        .req(Method::POST, &host(slug), "/api/v1/consultations")
        .bearer_auth(token)
        .json(&body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn rows(app: &TestApp, practitioner: UserId) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM consultations WHERE practitioner_id = $1 AND status <> 'cancelled'",
    )
    .bind(practitioner.as_uuid())
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_employee_books_an_offered_slot_and_both_participants_see_it() {
    let app = TestApp::spawn().await;
    let doc = bookable(&app, &[app.tenant_a], true).await;
    let (me, t) = employee(&app, app.tenant_a, "alpha").await;
    let at = slot(2, 10);
    let (status, c) = book(&app, "alpha", &t, booking(doc, &at), None).await;
    assert_eq!(status, 201, "{c}");
    assert_eq!(c["status"], "confirmed");
    assert_eq!(c["employee_id"], me.to_string());
    assert_eq!(c["length_minutes"], 60);
    let id = c["id"].as_str().unwrap().to_owned();
    // Listed and readable by both participants; the slot is gone from the slots.
    let a = host("alpha");
    let mine = send(&app, Method::GET, &a, "/api/v1/consultations", &t, None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(mine["items"][0]["id"], id.as_str());
    let (_, t_doc) = mint_session(&app, app.tenant_a, &a, doc, &[Role::Practitioner]).await;
    let theirs = send(
        &app,
        Method::GET,
        &a,
        &format!("/api/v1/consultations/{id}"),
        &t_doc,
        None,
    )
    .await;
    assert_eq!(theirs.status(), 200);
    let day = &at[..10];
    let slots = send(
        &app,
        Method::GET,
        &a,
        &format!("/api/v1/practitioners/{doc}/slots?from={day}T00:00:00Z&to={day}T23:00:00Z"),
        &t,
        None,
    )
    .await
    .json::<Value>()
    .await
    .unwrap();
    let starts: Vec<&str> = slots["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["starts_at"].as_str().unwrap())
        .collect();
    assert!(
        !starts.contains(&at.as_str()) && starts.contains(&format!("{day}T11:00:00Z").as_str()),
        "{starts:?}"
    );
    // Nobody else reads it: a colleague, HR, the tenant admin (404 or 403, never the row).
    let (_, colleague) = employee(&app, app.tenant_a, "alpha").await;
    assert_eq!(
        send(
            &app,
            Method::GET,
            &a,
            &format!("/api/v1/consultations/{id}"),
            &colleague,
            None
        )
        .await
        .status(),
        404
    );
    for roles in [vec![Role::Hr], vec![Role::TenantAdmin]] {
        let (_, tok) = member_session(&app, &roles).await;
        assert_eq!(
            send(
                &app,
                Method::GET,
                &a,
                &format!("/api/v1/consultations/{id}"),
                &tok,
                None
            )
            .await
            .status(),
            403
        );
        assert_eq!(
            send(&app, Method::GET, &a, "/api/v1/consultations", &tok, None)
                .await
                .status(),
            403
        );
        let (s, _) = book(&app, "alpha", &tok, booking(doc, &slot(3, 10)), None).await;
        assert_eq!(s, 403, "{roles:?}");
    }
    let (s, _) = book(&app, "alpha", &t_doc, booking(doc, &slot(3, 10)), None).await;
    assert_eq!(s, 403, "a practitioner does not book");
    assert_eq!(
        app.req(Method::POST, &a, "/api/v1/consultations")
            .json(&booking(doc, &at))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // A practitioner who confirms by hand: the booking waits as requested.
    let manual = bookable(&app, &[app.tenant_a], false).await;
    let (s, c) = book(&app, "alpha", &t, booking(manual, &slot(4, 9)), None).await;
    assert_eq!((s, c["status"].as_str()), (201, Some("requested")));
}

#[tokio::test]
async fn a_slot_that_is_not_offered_or_bad_input_is_refused_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let doc = bookable(&app, &[app.tenant_a], true).await;
    let only_b = bookable(&app, &[app.tenant_b], true).await;
    let (_, t) = employee(&app, app.tenant_a, "alpha").await;
    // Not on the hour (the rule steps by 60 minutes), not a length offered, a kind not offered.
    for body in [
        json!({"practitioner_id": doc, "starts_at": slot(2, 10).replace(":00:00Z", ":30:00Z"), "length_minutes": 60, "kind": "video"}),
        json!({"practitioner_id": doc, "starts_at": slot(2, 10), "length_minutes": 45, "kind": "video"}),
        json!({"practitioner_id": doc, "starts_at": slot(2, 10), "length_minutes": 60, "kind": "audio"}),
        json!({"practitioner_id": doc, "starts_at": slot(90, 10), "length_minutes": 60, "kind": "video"}),
    ] {
        let (s, p) = book(&app, "alpha", &t, body.clone(), None).await;
        assert_eq!(
            (s, p["code"].as_str()),
            (409, Some("slot_unavailable")),
            "{body}"
        );
    }
    for (body, field) in [
        (
            json!({"practitioner_id": doc, "starts_at": slot(-1, 10), "length_minutes": 60, "kind": "video"}),
            "starts_at",
        ),
        (
            json!({"practitioner_id": doc, "starts_at": slot(2, 10), "length_minutes": 7, "kind": "video"}),
            "length_minutes",
        ),
        (
            json!({"practitioner_id": doc, "starts_at": slot(2, 10), "length_minutes": 60, "kind": "smoke"}),
            "kind",
        ),
    ] {
        let (s, p) = book(&app, "alpha", &t, body.clone(), None).await;
        assert_eq!(
            (s, p["errors"][0]["field"].as_str()),
            (422, Some(field)),
            "{body}"
        );
    }
    let res = app.req(Method::POST, &host("alpha"), "/api/v1/consultations").bearer_auth(&t)
        .json(&json!({"practitioner_id": doc, "starts_at": slot(2, 10), "length_minutes": 60, "kind": "video", "extra": 1}))
        .send().await.unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(problem(res).await["code"], "invalid_body");
    // Another company's practitioner, or nobody: 404.
    for who in [only_b, UserId::new()] {
        let (s, _) = book(&app, "alpha", &t, booking(who, &slot(2, 10)), None).await;
        assert_eq!(s, 404);
    }
    let (s, p) = book(
        &app,
        "alpha",
        &t,
        booking(doc, &slot(2, 10)),
        Some("bad key with spaces"),
    )
    .await;
    assert_eq!(
        (s, p["code"].as_str()),
        (400, Some("invalid_idempotency_key"))
    );
    assert_eq!(rows(&app, doc).await, 0);
}

#[tokio::test]
async fn fifty_concurrent_attempts_at_one_slot_book_it_once_in_one_company_and_across_two() {
    let app = TestApp::spawn().await;
    for tenants in [vec![app.tenant_a], vec![app.tenant_a, app.tenant_b]] {
        let doc = bookable(&app, &tenants, true).await;
        let people = join_all((0..50).map(|i| {
            let (tenant, slug) = if tenants.len() == 2 && i % 2 == 1 {
                (app.tenant_b, "bravo")
            } else {
                (app.tenant_a, "alpha")
            };
            let app = &app;
            async move { (slug, employee(app, tenant, slug).await.1) }
        }))
        .await;
        let at = slot(5, 14);
        let answers = join_all(
            people
                .iter()
                .map(|(slug, t)| book(&app, slug, t, booking(doc, &at), None)),
        )
        .await;
        let created = answers.iter().filter(|(s, _)| *s == 201).count();
        let taken = answers
            .iter()
            .filter(|(s, p)| *s == 409 && p["code"] == "slot_taken")
            .count();
        assert_eq!(
            (created, taken),
            (1, 49),
            "{tenants:?}: {:?}",
            answers.iter().map(|a| a.0).collect::<Vec<_>>()
        );
        assert_eq!(rows(&app, doc).await, 1);
    }
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let app = TestApp::spawn().await;
    let doc = bookable(&app, &[app.tenant_a], true).await;
    let (_, t) = employee(&app, app.tenant_a, "alpha").await;
    let body = booking(doc, &slot(2, 15));
    let first = book(&app, "alpha", &t, body.clone(), Some("key-1")).await;
    assert_eq!(first.0, 201);
    let again = book(&app, "alpha", &t, body.clone(), Some("key-1")).await;
    assert_eq!(again, first, "a replay answers the first response");
    assert_eq!(rows(&app, doc).await, 1);
    let (s, p) = book(&app, "alpha", &t, booking(doc, &slot(2, 16)), Some("key-1")).await;
    assert_eq!(
        (s, p["errors"][0]["field"].as_str()),
        (422, Some("Idempotency-Key"))
    );
    // Ten at once with one new key: one booking, ten identical answers.
    let body = booking(doc, &slot(3, 15));
    let answers =
        join_all((0..10).map(|_| book(&app, "alpha", &t, body.clone(), Some("key-2")))).await;
    assert!(
        answers.iter().all(|a| *a == answers[0] && a.0 == 201),
        "{answers:?}"
    );
    assert_eq!(rows(&app, doc).await, 2);
    // The key belongs to its person: another employee's same key books for them.
    let (_, other) = employee(&app, app.tenant_a, "alpha").await;
    let (s, c) = book(
        &app,
        "alpha",
        &other,
        booking(doc, &slot(4, 15)),
        Some("key-1"),
    )
    .await;
    assert_eq!(s, 201);
    assert_ne!(c["id"], first.1["id"]);
}

#[tokio::test]
async fn the_yearly_allowance_holds_under_concurrency() {
    let app = TestApp::spawn().await;
    sqlx::query("UPDATE tenants SET allowance = 2 WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    // Ten practitioners, so the slots never compete: only the allowance decides.
    let mut docs = Vec::new();
    for _ in 0..10 {
        docs.push(bookable(&app, &[app.tenant_a], true).await);
    }
    let (me, t) = employee(&app, app.tenant_a, "alpha").await;
    // Ten days of one calendar year (next January when this year ends sooner), one a day.
    let mut base = (OffsetDateTime::now_utc() + time::Duration::days(2)).date();
    if (base + time::Duration::days(10)).year() != base.year() {
        base = time::Date::from_calendar_date(base.year() + 1, time::Month::January, 2).unwrap();
    }
    let at = |i: usize| {
        (base + time::Duration::days(i64::try_from(i).unwrap()))
            .with_hms(10, 0, 0)
            .unwrap()
            .assume_utc()
            .format(&Rfc3339)
            .unwrap()
    };
    let answers = join_all(
        docs.iter()
            .enumerate()
            .map(|(i, d)| book(&app, "alpha", &t, booking(*d, &at(i)), None)),
    )
    .await;
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let exhausted = answers
        .iter()
        .filter(|(s, p)| *s == 409 && p["code"] == "allowance_exhausted")
        .count();
    assert_eq!((created, exhausted), (2, 8), "{answers:?}");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM consultations WHERE employee_id = $1")
        .bind(me.as_uuid())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    assert_eq!(n, 2);
}
