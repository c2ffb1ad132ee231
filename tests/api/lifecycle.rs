//! The consultation lifecycle (issue 11, item 4): legal moves only, by the right participant,
//! at the right time; history kept as events; the allowance given back by an early
//! cancellation only.

use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::booking::{book, bookable, booking, employee};
use crate::helpers::TestApp;
use crate::members::send;
use crate::people::{host, mint_session};
use serein::db::UserId;
use serein::rbac::Role;

pub async fn act(
    app: &TestApp,
    token: &str,
    id: &str,
    action: &str,
    body: Option<Value>,
) -> (u16, Value) {
    // A second between moves, as between any two clicks: the history orders by time.
    app.clock.advance(time::Duration::seconds(1));
    let body = body.or_else(|| (action == "cancel").then(|| json!({})));
    let res = send(
        app,
        Method::POST,
        &host("alpha"),
        &format!("/api/v1/consultations/{id}/{action}"),
        token,
        body,
    )
    .await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn counts(app: &TestApp, id: &str) -> (String, bool, i32) {
    sqlx::query_as(
        "SELECT status, counts_against_allowance, sequence FROM consultations WHERE id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap()
}

pub fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

/// Move the app's (manual) clock to `t`.
pub fn set_clock(app: &TestApp, t: OffsetDateTime) {
    app.clock.advance(t - app.clock.now());
}

/// The next whole hour of the app's clock (UTC).
pub fn next_hour(app: &TestApp) -> OffsetDateTime {
    let now = app.clock.now();
    let h = now
        .replace_minute(0)
        .unwrap()
        .replace_second(0)
        .unwrap()
        .replace_nanosecond(0)
        .unwrap();
    h + time::Duration::hours(1)
}

pub async fn practitioner_token(app: &TestApp, doc: UserId) -> String {
    mint_session(
        app,
        app.tenant_a,
        &host("alpha"),
        doc,
        &[Role::Practitioner],
    )
    .await
    .1
}

#[tokio::test]
async fn a_consultation_moves_only_along_its_lifecycle_and_keeps_its_history() {
    let app = TestApp::spawn().await;
    let doc = bookable(&app, &[app.tenant_a], false).await;
    let (_, e) = employee(&app, app.tenant_a, "alpha").await;
    let p = practitioner_token(&app, doc).await;
    let t0 = next_hour(&app) + time::Duration::days(2);
    let (s, c) = book(&app, "alpha", &e, booking(doc, &at(t0)), None).await;
    assert_eq!((s, c["status"].as_str()), (201, Some("requested")));
    let id = c["id"].as_str().unwrap().to_owned();

    // Only the practitioner confirms (Casbin: the employee's role has no `confirm`).
    assert_eq!(act(&app, &e, &id, "confirm", None).await.0, 403);
    let (s, c) = act(&app, &p, &id, "confirm", None).await;
    assert_eq!((s, c["status"].as_str()), (200, Some("confirmed")));
    // Illegal moves: confirm twice, end before starting, start two days early.
    for action in ["confirm", "end", "start", "no-show"] {
        let (s, body) = act(&app, &p, &id, action, None).await;
        assert_eq!(
            (s, body["code"].as_str()),
            (409, Some("invalid_transition")),
            "{action}"
        );
    }
    // Reschedule (the employee): to an offered slot; the practitioner confirms by hand, so it
    // waits for them again; not to a time that is not offered; not onto someone else's slot.
    let t1 = t0 + time::Duration::hours(3);
    let (s, c) = act(
        &app,
        &e,
        &id,
        "reschedule",
        Some(json!({"starts_at": at(t1)})),
    )
    .await;
    assert_eq!(
        (s, c["starts_at"].as_str(), c["status"].as_str()),
        (200, Some(at(t1).as_str()), Some("requested")),
        "{c}"
    );
    let (s, body) = act(
        &app,
        &e,
        &id,
        "reschedule",
        Some(json!({"starts_at": at(t1 + time::Duration::minutes(30))})),
    )
    .await;
    assert_eq!((s, body["code"].as_str()), (409, Some("slot_unavailable")));
    let (_, other) = employee(&app, app.tenant_a, "alpha").await;
    let t2 = t0 + time::Duration::hours(5);
    assert_eq!(
        book(&app, "alpha", &other, booking(doc, &at(t2)), None)
            .await
            .0,
        201
    );
    let (s, body) = act(
        &app,
        &e,
        &id,
        "reschedule",
        Some(json!({"starts_at": at(t2)})),
    )
    .await;
    assert_eq!((s, body["code"].as_str()), (409, Some("slot_taken")));
    // Moving by one slot within its own hour block is fine (its own time is not in its way).
    let (s, _) = act(
        &app,
        &p,
        &id,
        "reschedule",
        Some(json!({"starts_at": at(t1 + time::Duration::hours(1))})),
    )
    .await;
    assert_eq!(s, 200);
    // A colleague reaches nothing.
    for action in ["cancel", "reschedule"] {
        let body = (action == "reschedule").then(|| json!({"starts_at": at(t1)}));
        assert_eq!(
            act(&app, &other, &id, action, body).await.0,
            404,
            "{action}"
        );
    }
    // An early cancellation by the employee gives the session back; it cannot be cancelled twice.
    let (s, c) = act(
        &app,
        &e,
        &id,
        "cancel",
        Some(json!({"reason": "schedule_conflict"})),
    )
    .await;
    assert_eq!((s, c["status"].as_str()), (200, Some("cancelled")));
    assert_eq!(act(&app, &e, &id, "cancel", None).await.0, 409);
    assert_eq!(
        act(&app, &e, &id, "cancel", Some(json!({"reason": "because"})))
            .await
            .0,
        422
    );
    let (status, counted, sequence) = counts(&app, &id).await;
    assert_eq!((status.as_str(), counted), ("cancelled", false));
    assert_eq!(sequence, 4, "confirmed, rescheduled twice, cancelled");
    // The history: every move, the reschedules with the times they left.
    let events: Vec<(String, Option<OffsetDateTime>)> = sqlx::query_as(
        "SELECT kind, old_starts_at FROM consultation_events WHERE consultation_id = $1::uuid ORDER BY at",
    )
    .bind(&id)
    .fetch_all(&mut app.owner().await)
    .await
    .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "requested",
            "confirmed",
            "rescheduled",
            "rescheduled",
            "cancelled"
        ]
    );
    assert_eq!(events[2].1, Some(t0));
}

#[tokio::test]
async fn sessions_start_end_and_no_show_on_the_clock_and_late_cancellations_still_count() {
    let app = TestApp::spawn().await;
    let doc = bookable(&app, &[app.tenant_a], true).await;
    let (_, e) = employee(&app, app.tenant_a, "alpha").await;
    let h = next_hour(&app);
    let first = book(&app, "alpha", &e, booking(doc, &at(h)), None).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = book(
        &app,
        "alpha",
        &e,
        booking(doc, &at(h + time::Duration::hours(2))),
        None,
    )
    .await
    .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let late = book(
        &app,
        "alpha",
        &e,
        booking(doc, &at(h + time::Duration::hours(4))),
        None,
    )
    .await
    .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_doc = book(
        &app,
        "alpha",
        &e,
        booking(doc, &at(h + time::Duration::hours(6))),
        None,
    )
    .await
    .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Within 24 hours: the employee's cancellation still uses the session; the practitioner's
    // gives it back.
    let p = practitioner_token(&app, doc).await;
    assert_eq!(act(&app, &e, &late, "cancel", None).await.0, 200);
    assert!(
        counts(&app, &late).await.1,
        "a late cancellation still counts"
    );
    assert_eq!(
        act(
            &app,
            &p,
            &by_doc,
            "cancel",
            Some(json!({"reason": "practitioner_unavailable"}))
        )
        .await
        .0,
        200
    );
    assert!(
        !counts(&app, &by_doc).await.1,
        "the practitioner's cancellation gives it back"
    );

    // Five minutes after the start: started, then ended 40 minutes later (a duration).
    set_clock(&app, h + time::Duration::minutes(5));
    let p = practitioner_token(&app, doc).await;
    assert_eq!(
        act(&app, &p, &second, "no-show", None).await.0,
        409,
        "not before its start"
    );
    assert_eq!(
        act(&app, &p, &first, "start", None).await.1["status"],
        "started"
    );
    set_clock(&app, h + time::Duration::minutes(45));
    let p = practitioner_token(&app, doc).await;
    let (s, c) = act(&app, &p, &first, "end", None).await;
    assert_eq!(
        (s, c["status"].as_str(), c["duration_minutes"].as_i64()),
        (200, Some("ended"), Some(40))
    );
    // After the second one's start: a no-show, which uses up the session.
    set_clock(
        &app,
        h + time::Duration::hours(2) + time::Duration::minutes(1),
    );
    let p = practitioner_token(&app, doc).await;
    assert_eq!(
        act(&app, &p, &second, "no-show", None).await.1["status"],
        "no_show"
    );
    assert!(counts(&app, &second).await.1, "a no-show counts");
    // The practitioner's list names the employee (display name only).
    let list: Value = send(
        &app,
        Method::GET,
        &host("alpha"),
        "/api/v1/consultations",
        &p,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["with_name"].is_string()),
        "{list}"
    );
    assert!(!list.to_string().contains("@"), "no e-mail in {list}");
}

#[tokio::test]
async fn counters_are_exact_for_the_employee_and_cross_companies_for_the_practitioner() {
    let app = TestApp::spawn().await;
    let doc = bookable(&app, &[app.tenant_a, app.tenant_b], true).await;
    let (_, e) = employee(&app, app.tenant_a, "alpha").await;
    let (_, e_b) = employee(&app, app.tenant_b, "bravo").await;
    let h = next_hour(&app);
    // A: one session held, one cancelled early (given back); B: one held.
    let held_a = book(&app, "alpha", &e, booking(doc, &at(h)), None).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let given_back = book(
        &app,
        "alpha",
        &e,
        booking(doc, &at(h + time::Duration::days(3))),
        None,
    )
    .await
    .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let held_b = book(
        &app,
        "bravo",
        &e_b,
        booking(doc, &at(h + time::Duration::hours(2))),
        None,
    )
    .await
    .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(act(&app, &e, &given_back, "cancel", None).await.0, 200);
    let counters = |token: String, path: &'static str, slug: &'static str| {
        let app = &app;
        async move {
            let res = send(app, Method::GET, &host(slug), path, &token, None).await;
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };
    let mine = counters(e.clone(), "/api/v1/me/counters", "alpha").await;
    assert_eq!(
        (
            mine["allowance"].as_i64(),
            mine["used"].as_i64(),
            mine["remaining"].as_i64()
        ),
        (Some(6), Some(1), Some(5)),
        "{mine}"
    );

    // Hold both sessions: 30 minutes in A, 45 in B.
    set_clock(&app, h + time::Duration::minutes(1));
    let p = practitioner_token(&app, doc).await;
    assert_eq!(act(&app, &p, &held_a, "start", None).await.0, 200);
    app.clock.advance(time::Duration::minutes(30));
    let p = practitioner_token(&app, doc).await; // the access token lives 15 minutes
    assert_eq!(act(&app, &p, &held_a, "end", None).await.0, 200);
    set_clock(&app, h + time::Duration::hours(2));
    let act_b = |id: String, action: &'static str| {
        let app = &app;
        async move {
            app.clock.advance(time::Duration::seconds(1));
            let (_, p_b) = mint_session(
                app,
                app.tenant_b,
                &host("bravo"),
                doc,
                &[Role::Practitioner],
            )
            .await;
            let path = format!("/api/v1/consultations/{id}/{action}");
            send(app, Method::POST, &host("bravo"), &path, &p_b, None)
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(act_b(held_b.clone(), "start").await, 200);
    app.clock.advance(time::Duration::minutes(45));
    assert_eq!(act_b(held_b.clone(), "end").await, 200);

    // The practitioner, on either host: both companies, per month, no one named.
    let p = practitioner_token(&app, doc).await;
    let theirs = counters(p, "/api/v1/practitioner/counters", "alpha").await;
    let months = theirs["months"].as_array().unwrap();
    let in_a = months.iter().filter(|m| m["tenant_slug"] == "alpha");
    let in_b = months.iter().filter(|m| m["tenant_slug"] == "bravo");
    let sum = |it: &mut dyn Iterator<Item = &Value>, k: &str| {
        it.map(|m| m[k].as_i64().unwrap()).sum::<i64>()
    };
    assert_eq!(sum(&mut in_a.clone(), "held"), 1, "{theirs}");
    assert_eq!(sum(&mut in_a.clone(), "minutes"), 30);
    assert_eq!(sum(&mut in_a.clone(), "cancelled"), 1);
    assert_eq!(sum(&mut in_b.clone(), "held"), 1);
    assert_eq!(sum(&mut in_b.clone(), "minutes"), 45);
    let text = theirs.to_string();
    assert!(
        !text.contains("@") && !text.contains("employee_id"),
        "{text}"
    );

    // Who may ask: an employee has no practitioner counters; HR has neither.
    let (_, e) = employee(&app, app.tenant_a, "alpha").await;
    assert_eq!(
        send(
            &app,
            Method::GET,
            &host("alpha"),
            "/api/v1/practitioner/counters",
            &e,
            None
        )
        .await
        .status(),
        403
    );
    let (_, hr) = crate::people::member_session(&app, &[Role::Hr]).await;
    for path in ["/api/v1/me/counters", "/api/v1/practitioner/counters"] {
        assert_eq!(
            send(&app, Method::GET, &host("alpha"), path, &hr, None)
                .await
                .status(),
            403,
            "{path}"
        );
    }
    // The definer answers a claim nothing.
    let mut c = app.owner().await;
    crate::helpers::as_app_with_roles(&mut c, Some(app.tenant_a), Some(doc), "practitioner").await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app_private.practitioner_counters(now() - interval '1 year', now() + interval '1 year')")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

const JITSI_SECRET: &str = "a-jitsi-app-secret-of-at-least-32-bytes";

fn with_jitsi(s: &mut crate::helpers::Spawn) {
    s.env
        .insert("JITSI_DOMAIN".into(), "meet.example.test".into());
    s.env.insert("JITSI_APP_ID".into(), "serein".into());
    s.env.insert("JITSI_APP_SECRET".into(), JITSI_SECRET.into());
}

async fn video(app: &TestApp, token: &str, id: &str) -> (u16, Value) {
    let res = send(
        app,
        Method::GET,
        &host("alpha"),
        &format!("/api/v1/consultations/{id}/video"),
        token,
        None,
    )
    .await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_video_token_follows_the_jitsi_contract_for_the_two_participants_only() {
    let app = TestApp::spawn_with(with_jitsi).await;
    let doc = bookable(&app, &[app.tenant_a], true).await;
    let (me, e) = employee(&app, app.tenant_a, "alpha").await;
    let h = next_hour(&app) + time::Duration::hours(1);
    let id = book(&app, "alpha", &e, booking(doc, &at(h)), None).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Not yet: the room opens 10 minutes before the start.
    let (s, p) = video(&app, &e, &id).await;
    assert_eq!((s, p["code"].as_str()), (409, Some("not_joinable")));

    set_clock(&app, h - time::Duration::minutes(5));
    let (_, e) = mint_session(&app, app.tenant_a, &host("alpha"), me, &[Role::Employee]).await;
    let p_doc = practitioner_token(&app, doc).await;
    let (s, v) = video(&app, &e, &id).await;
    assert_eq!(s, 200, "{v}");
    let room = v["room"].as_str().unwrap();
    assert!(
        room.len() == 32 && room.chars().all(|c| c.is_ascii_hexdigit()),
        "{room}"
    );
    assert_eq!(
        v["url"],
        format!(
            "https://meet.example.test/{room}?jwt={}",
            v["token"].as_str().unwrap()
        )
    );
    // The token, checked claim by claim with the shared secret.
    let mut check = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    check.set_audience(&["jitsi"]);
    check.set_issuer(&["serein"]);
    check.validate_exp = false; // the test's clock is not the system's: checked below
    check.validate_nbf = false;
    let key = jsonwebtoken::DecodingKey::from_secret(JITSI_SECRET.as_bytes());
    let claims = jsonwebtoken::decode::<Value>(v["token"].as_str().unwrap(), &key, &check)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], "meet.example.test");
    assert_eq!(claims["room"], room);
    assert_eq!(
        claims["nbf"],
        (h - time::Duration::minutes(10)).unix_timestamp()
    );
    assert_eq!(
        claims["exp"],
        (h + time::Duration::minutes(60 + 15)).unix_timestamp()
    );
    assert_eq!(claims["context"]["user"]["moderator"], false);
    assert!(claims["context"]["user"]["name"].is_string());
    assert!(
        jsonwebtoken::decode::<Value>(
            v["token"].as_str().unwrap(),
            &jsonwebtoken::DecodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!"),
            &check
        )
        .is_err()
    );
    // The practitioner moderates the same room.
    let (s, vp) = video(&app, &p_doc, &id).await;
    assert_eq!(
        (s, vp["room"].as_str(), vp["moderator"].as_bool()),
        (200, Some(room), Some(true))
    );
    // Nobody else: a colleague 404, HR 403 (no route), no token 401.
    let (_, colleague) = employee(&app, app.tenant_a, "alpha").await;
    assert_eq!(video(&app, &colleague, &id).await.0, 404);
    let (_, hr) = crate::people::member_session(&app, &[Role::Hr]).await;
    assert_eq!(video(&app, &hr, &id).await.0, 403);
    // After the end and its 15 minutes: closed.
    set_clock(&app, h + time::Duration::minutes(76));
    let (_, e) = mint_session(&app, app.tenant_a, &host("alpha"), me, &[Role::Employee]).await;
    assert_eq!(video(&app, &e, &id).await.1["code"], "not_joinable");
}

#[tokio::test]
async fn video_without_jitsi_configured_is_a_clear_503() {
    let app = TestApp::spawn().await;
    let doc = bookable(&app, &[app.tenant_a], true).await;
    let (me, e) = employee(&app, app.tenant_a, "alpha").await;
    let h = next_hour(&app);
    let id = book(&app, "alpha", &e, booking(doc, &at(h)), None).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    set_clock(&app, h);
    let (_, e) = mint_session(&app, app.tenant_a, &host("alpha"), me, &[Role::Employee]).await;
    let (s, p) = video(&app, &e, &id).await;
    assert_eq!((s, p["code"].as_str()), (503, Some("video_unconfigured")));
    // Half a configuration is refused at start-up, naming what is missing.
    let mut env = crate::helpers::test_env("unused");
    env.insert("JITSI_DOMAIN".into(), "meet.example.test".into());
    let err = serein::app::AppConfig::load(&env).unwrap_err();
    assert_eq!(err.name, "JITSI_APP_ID");
    env.insert("JITSI_APP_ID".into(), "serein".into());
    env.insert("JITSI_APP_SECRET".into(), "short".into());
    assert_eq!(
        serein::app::AppConfig::load(&env).unwrap_err().name,
        "JITSI_APP_SECRET"
    );
}

#[tokio::test]
async fn a_calendar_feed_serves_rfc5545_without_names_and_is_gone_once_revoked() {
    let app = TestApp::spawn().await;
    let doc = bookable(&app, &[app.tenant_a], true).await;
    let (_, e) = employee(&app, app.tenant_a, "alpha").await;
    let h = next_hour(&app) + time::Duration::days(1);
    let kept = book(&app, "alpha", &e, booking(doc, &at(h)), None).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gone = book(
        &app,
        "alpha",
        &e,
        booking(doc, &at(h + time::Duration::hours(2))),
        None,
    )
    .await
    .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(act(&app, &e, &gone, "cancel", None).await.0, 200);

    let a = host("alpha");
    let res = send(&app, Method::POST, &a, "/api/v1/me/calendar-feed", &e, None).await;
    assert_eq!(res.status(), 201);
    let url = res.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = url[url.find("/api/v1/").unwrap()..].to_owned();
    assert!(path.ends_with(".ics"), "{path}");
    let get = |host: String, path: String| {
        let app = &app;
        async move {
            let res = app.req(Method::GET, &host, &path).send().await.unwrap();
            let status = res.status().as_u16();
            let ct = res
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, ct, res.text().await.unwrap())
        }
    };
    let (s, ct, body) = get(a.clone(), path.clone()).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(ct.as_deref(), Some("text/calendar; charset=utf-8"));
    assert!(
        body.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
            && body.ends_with("END:VCALENDAR\r\n")
    );
    assert!(body.split("\r\n").all(|l| l.len() <= 75));
    assert_eq!(body.matches("BEGIN:VEVENT").count(), 2);
    assert!(
        body.contains(&format!("UID:{kept}@serein"))
            && body.contains(&format!("UID:{gone}@serein"))
    );
    assert!(body.contains(&format!(
            "DTSTART:{}",
            h.format(&time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .unwrap()
        )));
    let cancelled = &body[body.find(&format!("UID:{gone}@serein")).unwrap()..];
    let cancelled = &cancelled[..cancelled.find("END:VEVENT").unwrap()];
    assert!(
        cancelled.contains("STATUS:CANCELLED") && cancelled.contains("SEQUENCE:1"),
        "{cancelled}"
    );
    // No one is named, nothing about care.
    for secret in ["Dr Book", "booking.test", "practice.test", "stress", "bio"] {
        assert!(!body.contains(secret), "{secret} in {body}");
    }
    // Another company's host, a mangled token, no suffix: 410 gone.
    assert_eq!(get(host("bravo"), path.clone()).await.0, 410);
    assert_eq!(
        get(a.clone(), path.trim_end_matches(".ics").to_owned())
            .await
            .0,
        410
    );
    assert_eq!(get(a.clone(), path.replace(".ics", "x.ics")).await.0, 410);
    // A new address revokes the old; deleting revokes the new.
    let res = send(&app, Method::POST, &a, "/api/v1/me/calendar-feed", &e, None).await;
    let url2 = res.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path2 = url2[url2.find("/api/v1/").unwrap()..].to_owned();
    assert_eq!(get(a.clone(), path.clone()).await.0, 410);
    assert_eq!(get(a.clone(), path2.clone()).await.0, 200);
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            &a,
            "/api/v1/me/calendar-feed",
            &e,
            None
        )
        .await
        .status(),
        204
    );
    assert_eq!(get(a.clone(), path2).await.0, 410);
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            &a,
            "/api/v1/me/calendar-feed",
            &e,
            None
        )
        .await
        .status(),
        404
    );
    let (_, hr) = crate::people::member_session(&app, &[Role::Hr]).await;
    assert_eq!(
        send(
            &app,
            Method::POST,
            &a,
            "/api/v1/me/calendar-feed",
            &hr,
            None
        )
        .await
        .status(),
        403
    );
}
