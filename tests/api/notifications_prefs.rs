//! Notification preferences, polling and the digest (issue 13, item 4): the kind × channel
//! matrix with its defaults, all-or-nothing and idempotent changes; preferences obeyed by every
//! writer (the job worker's notices and reminders, a real chat message, the live push); polling
//! with `since`; the weekly digest of unread notifications for people who stay away, in their
//! language, at most once a week, only when wanted; and the database holding alone against the
//! request role with crafted `app.*` values.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Executor, PgConnection};
use time::Duration;

use crate::booking::{book, bookable, booking, employee};
use crate::helpers::{TestApp, as_app, as_member_with_session, problem};
use crate::lifecycle::{act, at, next_hour, practitioner_token, set_clock};
use crate::members::send;
use crate::people::{host, mint_session};
use serein::db::UserId;
use serein::jobs::JobWorker;
use serein::rbac::Role;

const KINDS: [&str; 6] = [
    "consultation_requested",
    "consultation_confirmed",
    "consultation_cancelled",
    "consultation_rescheduled",
    "consultation_reminder",
    "message_received",
];

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let res = send(app, method, &host("alpha"), path, token, body).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn prefs(app: &TestApp, token: &str) -> Vec<Value> {
    let (s, v) = call(
        app,
        Method::GET,
        "/api/v1/notifications/preferences",
        token,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["preferences"].as_array().unwrap().clone()
}

fn cell<'a>(m: &'a [Value], kind: &str, channel: &str) -> &'a Value {
    m.iter()
        .find(|c| c["kind"] == kind && c["channel"] == channel)
        .unwrap_or_else(|| panic!("no cell {kind}/{channel}"))
}

/// Set every changeable cell of `channel` to `enabled`.
async fn set_channel(app: &TestApp, token: &str, channel: &str, enabled: bool) {
    let changes: Vec<Value> = KINDS
        .iter()
        .filter(|k| !(**k == "message_received" && channel == "email"))
        .map(|k| json!({"kind": k, "channel": channel, "enabled": enabled}))
        .collect();
    let (s, v) = call(
        app,
        Method::PUT,
        "/api/v1/notifications/preferences",
        token,
        Some(json!({ "preferences": changes })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
}

async fn worker_round(app: &TestApp) {
    app.clock.advance(Duration::seconds(1));
    JobWorker::from_state(&app.state).run_once().await.unwrap();
}

async fn email_of(app: &TestApp, user: UserId) -> String {
    sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(user.as_uuid())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

/// Templates mailed to `to` so far (queued, not necessarily sent), in order.
async fn mailed(app: &TestApp, to: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT template FROM email_outbox WHERE to_address = $1 ORDER BY created_at, template",
    )
    .bind(to)
    .fetch_all(&mut app.owner().await)
    .await
    .unwrap()
}

/// Kinds of `user`'s stored notifications, sorted.
async fn notified(app: &TestApp, user: UserId) -> Vec<String> {
    sqlx::query_scalar("SELECT kind FROM notifications WHERE user_id = $1 ORDER BY kind")
        .bind(user.as_uuid())
        .fetch_all(&mut app.owner().await)
        .await
        .unwrap()
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn the_matrix_has_stated_defaults_and_changes_are_all_or_nothing_and_idempotent() {
    let app = TestApp::spawn().await;
    let (_, e) = employee(&app, app.tenant_a, "alpha").await;
    // Without a token: 401, on both verbs.
    for m in [Method::GET, Method::PUT] {
        let res = app
            .req(m, &host("alpha"), "/api/v1/notifications/preferences")
            .json(&json!({"preferences": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let m = prefs(&app, &e).await;
    assert_eq!(m.len(), 14, "every kind × channel");
    for k in KINDS {
        assert_eq!(cell(&m, k, "in_app")["enabled"], true, "{k}");
    }
    for k in &KINDS[..5] {
        let c = cell(&m, k, "email");
        assert_eq!(
            (c["enabled"].as_bool(), c["changeable"].as_bool()),
            (Some(true), Some(true))
        );
    }
    // Not offered: a message by e-mail, the digest in-app. The digest by e-mail is on.
    let c = cell(&m, "message_received", "email");
    assert_eq!(
        (c["enabled"].as_bool(), c["changeable"].as_bool()),
        (Some(false), Some(false))
    );
    let c = cell(&m, "digest", "in_app");
    assert_eq!(
        (c["enabled"].as_bool(), c["changeable"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(cell(&m, "digest", "email")["enabled"], true);
    assert!(
        m.iter()
            .all(|c| c["updated_at"].is_null() && c["default"] == c["enabled"])
    );

    // One change: stored, stamped, answered with the whole matrix.
    let body = json!({"preferences": [{"kind": "digest", "channel": "email", "enabled": false}]});
    let (s, v) = call(
        &app,
        Method::PUT,
        "/api/v1/notifications/preferences",
        &e,
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let m = v["preferences"].as_array().unwrap();
    let c = cell(m, "digest", "email");
    assert_eq!(
        (c["enabled"].as_bool(), c["default"].as_bool()),
        (Some(false), Some(true))
    );
    let stamp = c["updated_at"].as_str().unwrap().to_owned();
    // Idempotent: the same again changes nothing, not even the time.
    app.clock.advance(Duration::minutes(5));
    let (s, v) = call(
        &app,
        Method::PUT,
        "/api/v1/notifications/preferences",
        &e,
        Some(body),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        cell(v["preferences"].as_array().unwrap(), "digest", "email")["updated_at"],
        stamp.as_str()
    );

    // All or nothing: a good change beside a bad one is not stored; every bad item is named.
    for (bad, field) in [
        (
            json!({"kind": "newsletter", "channel": "email", "enabled": true}),
            "preferences[1].kind",
        ),
        (
            json!({"kind": "digest", "channel": "sms", "enabled": true}),
            "preferences[1].channel",
        ),
        (
            json!({"kind": "message_received", "channel": "email", "enabled": true}),
            "preferences[1]",
        ),
        (
            json!({"kind": "consultation_reminder", "channel": "in_app", "enabled": true}),
            "preferences[1]",
        ),
    ] {
        let body = json!({"preferences": [
            {"kind": "consultation_reminder", "channel": "in_app", "enabled": false}, bad]});
        let res = send(
            &app,
            Method::PUT,
            &host("alpha"),
            "/api/v1/notifications/preferences",
            &e,
            Some(body),
        )
        .await;
        assert_eq!(res.status(), 422);
        let p = problem(res).await;
        let fields: Vec<&str> = p["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{p}");
        assert_eq!(
            cell(&prefs(&app, &e).await, "consultation_reminder", "in_app")["enabled"],
            true
        );
    }
    // Mass assignment: unknown fields are refused.
    for body in [
        json!({"preferences": [{"kind": "digest", "channel": "email", "enabled": true, "user_id": uuid::Uuid::nil()}]}),
        json!({"preferences": [], "tenant_id": uuid::Uuid::nil()}),
    ] {
        let res = send(
            &app,
            Method::PUT,
            &host("alpha"),
            "/api/v1/notifications/preferences",
            &e,
            Some(body),
        )
        .await;
        assert!(res.status().is_client_error());
        assert_eq!(
            cell(&prefs(&app, &e).await, "digest", "email")["enabled"],
            false
        );
    }
    // HR has a matrix too (and so a tenant admin, who holds HR's permissions).
    let (_, hr) = crate::members::person(&app, app.tenant_a, "alpha", &[Role::Hr]).await;
    assert_eq!(prefs(&app, &hr).await.len(), 14);
}

/// Every consultation notice and reminder, and a chat message: requested → confirmed → moved →
/// reminded → cancelled, with a message in between. (consultation id, employee, practitioner)
/// tokens.
async fn every_kind(app: &TestApp, doc: UserId, e: &str, p: &str) {
    // Just over a day ahead (its 24-hour reminder is planned), so the whole story keeps the
    // clock within a day of the database's (a message's time is capped at that).
    let t0 = next_hour(app) + Duration::hours(26);
    let (s, c) = book(app, "alpha", e, booking(doc, &at(t0)), None).await;
    assert_eq!((s, c["status"].as_str()), (201, Some("requested")), "{c}");
    let id = c["id"].as_str().unwrap().to_owned();
    worker_round(app).await;
    assert_eq!(act(app, p, &id, "confirm", None).await.0, 200);
    worker_round(app).await;
    let t1 = t0 + Duration::hours(1);
    let (s, _) = act(
        app,
        p,
        &id,
        "reschedule",
        Some(json!({"starts_at": at(t1)})),
    )
    .await;
    assert_eq!(s, 200);
    worker_round(app).await;
    let (s, v) = call(
        app,
        Method::POST,
        &format!("/api/v1/consultations/{id}/messages"),
        e,
        Some(json!({"body": "hello"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    // And an answer: each is told of the other's message.
    let (s, v) = call(
        app,
        Method::POST,
        &format!("/api/v1/consultations/{id}/messages"),
        p,
        Some(json!({"body": "hello to you"})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    set_clock(app, t1 - Duration::hours(24) + Duration::minutes(1));
    worker_round(app).await;
    // Tokens minted before the clock moved have expired.
    let e = mint_session(
        app,
        app.tenant_a,
        &host("alpha"),
        employee_of(app, &id).await,
        &[Role::Employee],
    )
    .await
    .1;
    assert_eq!(act(app, &e, &id, "cancel", None).await.0, 200);
    worker_round(app).await;
}

async fn employee_of(app: &TestApp, consultation: &str) -> UserId {
    UserId(
        sqlx::query_scalar("SELECT employee_id FROM consultations WHERE id = $1::uuid")
            .bind(consultation)
            .fetch_one(&mut app.owner().await)
            .await
            .unwrap(),
    )
}

#[tokio::test]
async fn each_kind_and_channel_switched_off_is_suppressed_and_switched_on_is_delivered() {
    let app = TestApp::spawn().await;
    let doc = bookable(&app, &[app.tenant_a], false).await;
    let (emp, e) = employee(&app, app.tenant_a, "alpha").await;
    let p = practitioner_token(&app, doc).await;
    let (emp_mail, doc_mail) = (email_of(&app, emp).await, email_of(&app, doc).await);

    // Round 1: the employee wants nothing in-app, the practitioner nothing by e-mail.
    set_channel(&app, &e, "in_app", false).await;
    set_channel(&app, &p, "email", false).await;
    every_kind(&app, doc, &e, &p).await;
    assert_eq!(notified(&app, emp).await, Vec::<String>::new());
    assert_eq!(
        notified(&app, doc).await,
        sorted(&[
            "consultation_requested",
            "consultation_reminder",
            "consultation_cancelled",
            "message_received"
        ])
    );
    assert_eq!(
        mailed(&app, &emp_mail).await,
        [
            "consultation_confirmed",
            "consultation_rescheduled",
            "consultation_reminder"
        ]
    );
    assert_eq!(mailed(&app, &doc_mail).await, Vec::<String>::new());

    // Round 2, switched over: each gets exactly the other channel.
    let e = mint_session(&app, app.tenant_a, &host("alpha"), emp, &[Role::Employee])
        .await
        .1;
    let p = practitioner_token(&app, doc).await;
    set_channel(&app, &e, "in_app", true).await;
    set_channel(&app, &e, "email", false).await;
    set_channel(&app, &p, "email", true).await;
    set_channel(&app, &p, "in_app", false).await;
    sqlx::query("DELETE FROM notifications")
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    sqlx::query("DELETE FROM email_outbox")
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    every_kind(&app, doc, &e, &p).await;
    assert_eq!(
        notified(&app, emp).await,
        sorted(&[
            "consultation_confirmed",
            "consultation_rescheduled",
            "consultation_reminder",
            "message_received"
        ])
    );
    assert_eq!(notified(&app, doc).await, Vec::<String>::new());
    assert_eq!(mailed(&app, &emp_mail).await, Vec::<String>::new());
    assert_eq!(
        mailed(&app, &doc_mail).await,
        [
            "consultation_requested",
            "consultation_reminder",
            "consultation_cancelled"
        ]
    );

    // One kind off leaves the others alone (the database's rule, every kind × channel): as the
    // owner, offer each kind to a person who turned only that kind off.
    let mut o = app.owner().await;
    for kind in KINDS {
        for channel in ["in_app", "email"] {
            if kind == "message_received" && channel == "email" {
                continue;
            }
            sqlx::query("DELETE FROM notification_preferences WHERE user_id = $1")
                .bind(emp.as_uuid())
                .execute(&mut o)
                .await
                .unwrap();
            sqlx::query("INSERT INTO notification_preferences (tenant_id, user_id, kind, channel, enabled, updated_at) VALUES ($1, $2, $3, $4, false, now())")
                .bind(app.tenant_a.as_uuid()).bind(emp.as_uuid()).bind(kind).bind(channel)
                .execute(&mut o).await.unwrap();
            for other in KINDS {
                for ch in ["in_app", "email"] {
                    let wanted: bool = sqlx::query_scalar(
                        "SELECT app_private.notification_wanted($1, $2, $3, $4)",
                    )
                    .bind(app.tenant_a.as_uuid())
                    .bind(emp.as_uuid())
                    .bind(other)
                    .bind(ch)
                    .fetch_one(&mut o)
                    .await
                    .unwrap();
                    let switched_off = other == kind && ch == channel;
                    let not_offered = other == "message_received" && ch == "email";
                    let expected = !(switched_off || not_offered);
                    assert_eq!(wanted, expected, "{kind}/{channel} off: {other}/{ch}");
                }
            }
        }
    }
    // Transactional mail ignores preferences: with every e-mail off, a password reset is queued.
    let before = mailed(&app, &emp_mail).await.len();
    let res = app
        .req(Method::POST, &host("alpha"), "/api/v1/auth/password/forgot")
        .json(&json!({"email": emp_mail}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(mailed(&app, &emp_mail).await.len(), before + 1);
    assert_eq!(
        mailed(&app, &emp_mail).await.last().map(String::as_str),
        Some("password_reset")
    );
}

#[tokio::test]
async fn polling_with_since_returns_newer_ones_oldest_first_with_a_cursor() {
    let app = TestApp::spawn().await;
    let (emp, e) = employee(&app, app.tenant_a, "alpha").await;
    let t0 = app.clock.now().replace_nanosecond(0).unwrap();
    let mut o = app.owner().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = uuid::Uuid::now_v7();
        sqlx::query("INSERT INTO notifications (id, tenant_id, user_id, kind, created_at) VALUES ($1, $2, $3, 'consultation_reminder', $4)")
            .bind(id).bind(app.tenant_a.as_uuid()).bind(emp.as_uuid()).bind(t0 + Duration::minutes(i))
            .execute(&mut o).await.unwrap();
        ids.push(id.to_string());
    }
    let since = (t0 + Duration::minutes(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let q = |extra: &str| {
        format!(
            "/api/v1/notifications?since={}{extra}",
            since.replace('+', "%2B")
        )
    };
    let (s, v) = call(&app, Method::GET, &q("&limit=2"), &e, None).await;
    assert_eq!(s, 200, "{v}");
    let got: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        [ids[2].as_str(), ids[3].as_str()],
        "strictly after, oldest first"
    );
    assert_eq!(v["unread"], 5);
    let cursor = v["next_cursor"].as_str().unwrap().to_owned();
    let (_, v) = call(
        &app,
        Method::GET,
        &q(&format!("&limit=2&cursor={cursor}")),
        &e,
        None,
    )
    .await;
    let got: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[4].as_str()]);
    assert!(v["next_cursor"].is_null());
    // Polling again from the newest seen: nothing new.
    let newest = v["items"][0]["created_at"]
        .as_str()
        .unwrap()
        .replace('+', "%2B");
    let (_, v) = call(
        &app,
        Method::GET,
        &format!("/api/v1/notifications?since={newest}"),
        &e,
        None,
    )
    .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 0);
    // The newest-first list is unchanged, and its cursors do not mix with polling's.
    let (_, v) = call(&app, Method::GET, "/api/v1/notifications?limit=2", &e, None).await;
    assert_eq!(v["items"][0]["id"].as_str(), Some(ids[4].as_str()));
    let back = v["next_cursor"].as_str().unwrap().to_owned();
    let (s, _) = call(&app, Method::GET, &q(&format!("&cursor={back}")), &e, None).await;
    assert_eq!(s, 400);
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/notifications?cursor={cursor}"),
        &e,
        None,
    )
    .await;
    assert_eq!(s, 400);
    // A bad `since` is a 422 problem on that field.
    for bad in ["yesterday", "2026-12-06", "2026-13-01T00:00:00Z"] {
        let res = send(
            &app,
            Method::GET,
            &host("alpha"),
            &format!("/api/v1/notifications?since={bad}"),
            &e,
            None,
        )
        .await;
        assert_eq!(res.status(), 422, "{bad}");
        assert_eq!(problem(res).await["errors"][0]["field"], "since");
    }
}

async fn add_unread(o: &mut PgConnection, app: &TestApp, user: UserId, kind: &str) {
    sqlx::query("INSERT INTO notifications (id, tenant_id, user_id, kind, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(uuid::Uuid::now_v7()).bind(app.tenant_a.as_uuid()).bind(user.as_uuid()).bind(kind).bind(app.clock.now())
        .execute(o).await.unwrap();
}

/// Digest e-mails queued to `to`: (locale, subject, text, html).
async fn digests(app: &TestApp, to: &str) -> Vec<(String, String, String, String)> {
    sqlx::query_as("SELECT locale, subject, body_text, body_html FROM email_outbox WHERE to_address = $1 AND template = 'notification_digest' ORDER BY created_at")
        .bind(to)
        .fetch_all(&mut app.owner().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn people_away_for_a_week_get_one_digest_of_counts_in_their_language_when_they_want_it() {
    let app = TestApp::spawn().await;
    let worker = JobWorker::from_state(&app.state);
    let doc = bookable(&app, &[app.tenant_a], true).await;
    let (away, _) = employee(&app, app.tenant_a, "alpha").await;
    let (french, _) = employee(&app, app.tenant_a, "alpha").await;
    let (active, _) = employee(&app, app.tenant_a, "alpha").await;
    let (refuses, refuses_token) = employee(&app, app.tenant_a, "alpha").await;
    let (all_read, _) = employee(&app, app.tenant_a, "alpha").await;
    sqlx::query("UPDATE users SET locale = 'fr' WHERE id = $1")
        .bind(french.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    let (s, _) = call(
        &app,
        Method::PUT,
        "/api/v1/notifications/preferences",
        &refuses_token,
        Some(json!({"preferences": [{"kind": "digest", "channel": "email", "enabled": false}]})),
    )
    .await;
    assert_eq!(s, 200);
    let mut o = app.owner().await;
    for u in [away, french, active, refuses] {
        add_unread(&mut o, &app, u, "message_received").await;
        add_unread(&mut o, &app, u, "consultation_reminder").await;
        add_unread(&mut o, &app, u, "consultation_reminder").await;
    }
    add_unread(&mut o, &app, all_read, "consultation_confirmed").await;
    sqlx::query("UPDATE notifications SET read_at = created_at WHERE user_id = $1")
        .bind(all_read.as_uuid())
        .execute(&mut o)
        .await
        .unwrap();

    // Six days on: nobody has been away a week yet.
    app.clock.advance(Duration::days(6));
    assert_eq!(worker.digest().await.unwrap(), 0);
    // The active one signs in again (a new session) on day 6; a day later the others are due.
    mint_session(
        &app,
        app.tenant_a,
        &host("alpha"),
        active,
        &[Role::Employee],
    )
    .await;
    app.clock.advance(Duration::days(1) + Duration::minutes(1));
    assert_eq!(worker.digest().await.unwrap(), 2);
    let mine = digests(&app, &email_of(&app, away).await).await;
    assert_eq!(mine.len(), 1);
    let (locale, subject, text, html) = &mine[0];
    assert_eq!(
        (locale.as_str(), subject.as_str()),
        ("en", "Serein: unread notifications")
    );
    assert!(text.contains("You have 3 unread"), "{text}");
    // Kinds the person does not take by e-mail (a message never is) are not named: "other
    // updates" (migration 20261209000800).
    assert!(
        text.contains("• session reminders: 2")
            && text.contains("• other updates: 1")
            && !text.contains("conversations"),
        "{text}"
    );
    assert!(
        text.contains("http://alpha.") && text.contains("/notifications"),
        "{text}"
    );
    // Never a name (the practitioner's is "Dr Book"), a time or content.
    assert!(
        !text.contains("Book") && !html.contains("Book") && !text.contains("hello"),
        "{text}"
    );
    let fr = digests(&app, &email_of(&app, french).await).await;
    assert_eq!(fr.len(), 1);
    assert_eq!(
        (fr[0].0.as_str(), fr[0].1.as_str()),
        ("fr", "Serein : notifications non lues")
    );
    assert!(
        fr[0].2.contains("Vous avez 3 notification(s) non lue(s)")
            && fr[0].2.contains("• rappels de séance : 2"),
        "{}",
        fr[0].2
    );
    for u in [active, refuses, all_read, doc] {
        assert_eq!(digests(&app, &email_of(&app, u).await).await.len(), 0);
    }
    // Again the same day: nothing. A week later, the one who signed in on day 6 has been away
    // a week too and gets theirs; the others, with nothing new, nothing.
    assert_eq!(worker.digest().await.unwrap(), 0);
    app.clock.advance(Duration::days(7));
    assert_eq!(worker.digest().await.unwrap(), 1);
    assert_eq!(digests(&app, &email_of(&app, active).await).await.len(), 1);
    assert_eq!(digests(&app, &email_of(&app, away).await).await.len(), 1);
    // Something new while still away: one more, but only once the week since the last is over.
    add_unread(&mut o, &app, away, "consultation_cancelled").await;
    app.clock.advance(Duration::days(1));
    assert_eq!(worker.digest().await.unwrap(), 1);
    let mine = digests(&app, &email_of(&app, away).await).await;
    assert_eq!(mine.len(), 2);
    assert!(
        mine[1].2.contains("You have 4 unread") && mine[1].2.contains("• cancelled sessions: 1"),
        "{}",
        mine[1].2
    );
    add_unread(&mut o, &app, away, "consultation_cancelled").await;
    app.clock.advance(Duration::days(3));
    assert_eq!(
        worker.digest().await.unwrap(),
        0,
        "a week between two digests"
    );
    // A refresh of a live session counts as being there.
    add_unread(&mut o, &app, french, "consultation_cancelled").await;
    app.clock.advance(Duration::days(5));
    let session: uuid::Uuid = sqlx::query_scalar("SELECT id FROM sessions WHERE user_id = $1")
        .bind(french.as_uuid())
        .fetch_one(&mut o)
        .await
        .unwrap();
    sqlx::query("INSERT INTO refresh_tokens (id, tenant_id, session_id, user_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, sha256($1::text::bytea), $5, $5 + interval '1 day')")
        .bind(uuid::Uuid::now_v7()).bind(app.tenant_a.as_uuid()).bind(session).bind(french.as_uuid()).bind(app.clock.now() - Duration::days(1))
        .execute(&mut o).await.unwrap();
    let before = digests(&app, &email_of(&app, french).await).await.len();
    worker.digest().await.unwrap();
    assert_eq!(
        digests(&app, &email_of(&app, french).await).await.len(),
        before
    );
}

#[tokio::test]
async fn a_connected_person_is_pushed_only_the_notifications_they_want() {
    let app = TestApp::spawn().await;
    let (doc, emp, c) = crate::realtime::care(&app).await;
    let et = mint_session(&app, app.tenant_a, &host("alpha"), emp, &[Role::Employee])
        .await
        .1;
    let pt = practitioner_token(&app, doc).await;
    let off = json!({"preferences": [{"kind": "message_received", "channel": "in_app", "enabled": false}]});
    assert_eq!(
        call(
            &app,
            Method::PUT,
            "/api/v1/notifications/preferences",
            &et,
            Some(off)
        )
        .await
        .0,
        200
    );
    let mut ws = crate::realtime::connect(&app, "alpha", &et).await;
    crate::realtime::rest_send(&app, &c, &pt, "one").await;
    crate::realtime::emit(&mut ws, json!({"type": "ping"})).await;
    let (_, skipped) = crate::realtime::until(&mut ws, "pong").await;
    assert!(
        skipped.iter().all(|e| e["type"] != "notification"),
        "{skipped:?}"
    );
    assert_eq!(notified(&app, emp).await, Vec::<String>::new());
    // Switched back on: the next message is pushed.
    let on = json!({"preferences": [{"kind": "message_received", "channel": "in_app", "enabled": true}]});
    assert_eq!(
        call(
            &app,
            Method::PUT,
            "/api/v1/notifications/preferences",
            &et,
            Some(on)
        )
        .await
        .0,
        200
    );
    crate::realtime::rest_send(&app, &c, &pt, "two").await;
    let (n, _) = crate::realtime::until(&mut ws, "notification").await;
    assert_eq!(n["notification"]["kind"], "message_received");
}

#[tokio::test]
async fn the_database_alone_keeps_preferences_and_digests_to_their_people() {
    let app = TestApp::spawn().await;
    let (me, _) = employee(&app, app.tenant_a, "alpha").await;
    let (other, other_token) = employee(&app, app.tenant_a, "alpha").await;
    set_channel(&app, &other_token, "email", false).await;
    let mut conn = app.owner().await;
    let insert = "INSERT INTO notification_preferences (tenant_id, user_id, kind, channel, enabled, updated_at)
                  VALUES ($1, $2, 'digest', 'email', false, now())";
    let set = |kind: &'static str, channel: &'static str| {
        format!(
            "SELECT app_private.notification_preferences_set(ARRAY['{kind}'], ARRAY['{channel}'], ARRAY[false], now())"
        )
    };
    async fn attempt(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::query("SAVEPOINT s")
            .execute(&mut *conn)
            .await
            .unwrap();
        let r = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut *conn)
            .await
            .map(|_| ());
        sqlx::query("ROLLBACK TO SAVEPOINT s")
            .execute(&mut *conn)
            .await
            .unwrap();
        r
    }

    // A crafted app.user_id without the session's proof: sees nothing and writes nothing, even
    // about that very person — neither directly nor through the definer.
    as_app(&mut conn, Some(app.tenant_a), Some(other)).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notification_preferences")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert!(
        attempt(&mut conn, &set("digest", "email")).await.is_err(),
        "unproven set"
    );
    assert!(
        attempt(
            &mut conn,
            "UPDATE notification_preferences SET enabled = true"
        )
        .await
        .is_err(),
        "no UPDATE grant"
    );
    conn.execute("ROLLBACK").await.unwrap();
    // A proven person with no company in context: refused.
    assert!(as_member_with_session(&mut conn, app.tenant_a, me).await);
    sqlx::query("SELECT set_config('app.tenant_id', '', true)")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(
        attempt(&mut conn, &set("digest", "email")).await.is_err(),
        "no company"
    );
    conn.execute("ROLLBACK").await.unwrap();

    // Proven as `me`: my rows only; no direct write at all, the definer writes my own cells.
    assert!(as_member_with_session(&mut conn, app.tenant_a, me).await);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notification_preferences")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0, "another person's choices are invisible");
    for (tenant, user) in [
        (app.tenant_a, other),
        (app.tenant_a, me),
        (app.tenant_b, me),
    ] {
        sqlx::query("SAVEPOINT s").execute(&mut conn).await.unwrap();
        let r = sqlx::query(insert)
            .bind(tenant.as_uuid())
            .bind(user.as_uuid())
            .execute(&mut conn)
            .await;
        assert!(r.is_err(), "a direct insert for {user:?} in {tenant:?}");
        sqlx::query("ROLLBACK TO SAVEPOINT s")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    // A cell that cannot be changed cannot be stored, even through the definer.
    assert!(
        attempt(&mut conn, &set("message_received", "email"))
            .await
            .is_err()
    );
    assert!(
        attempt(&mut conn, &set("newsletter", "email"))
            .await
            .is_err()
    );
    let changed: i32 = sqlx::query_scalar(sqlx::AssertSqlSafe(set("digest", "email")))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let mine: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT user_id, kind FROM notification_preferences")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(mine, vec![(me.as_uuid(), "digest".to_owned())]);
    // No DELETE, no moving a row to another kind or person.
    for attack in [
        "DELETE FROM notification_preferences",
        "UPDATE notification_preferences SET kind = 'consultation_reminder'",
        "UPDATE notification_preferences SET user_id = gen_random_uuid()",
    ] {
        assert!(attempt(&mut conn, attack).await.is_err(), "{attack}");
    }
    // The rule and the digest's doors are not the request role's; the digest log is closed.
    for attack in [
        "SELECT app_private.notification_wanted(app.current_tenant(), gen_random_uuid(), 'digest', 'email')",
        "SELECT * FROM app_private.job_digest_due(now(), 0, 0, 10)",
        "SELECT app_private.job_digest_send(app.current_tenant(), gen_random_uuid(), 'en', 's', 't', 'h', now(), 0, 0)",
        "SELECT * FROM notification_digests",
        "INSERT INTO notification_digests (tenant_id, user_id, sent_at) VALUES (app.current_tenant(), app_private.proven_person(), now())",
    ] {
        sqlx::query("SAVEPOINT s").execute(&mut conn).await.unwrap();
        let r = sqlx::query(attack).execute(&mut conn).await;
        assert!(r.is_err(), "{attack}");
        sqlx::query("ROLLBACK TO SAVEPOINT s")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.execute("ROLLBACK").await.unwrap();
    // The other person's choices are intact.
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notification_preferences WHERE user_id = $1 AND NOT enabled",
    )
    .bind(other.as_uuid())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(n, 5);

    // The worker's doors refuse a tenant context.
    conn.execute("BEGIN").await.unwrap();
    sqlx::query(
        "SELECT set_config('role', 'serein_worker', true), set_config('app.tenant_id', $1, true)",
    )
    .bind(app.tenant_a.to_string())
    .execute(&mut conn)
    .await
    .unwrap();
    let r = sqlx::query("SELECT * FROM app_private.job_digest_due(now(), 0, 0, 10)")
        .execute(&mut conn)
        .await;
    assert!(r.is_err());
    conn.execute("ROLLBACK").await.unwrap();
    // Without one, the worker still mails nobody who is not due a digest: neither `me` nor
    // `other` has anything unread, so neither gets one, whatever time is claimed.
    conn.execute("BEGIN").await.unwrap();
    sqlx::query("SELECT set_config('role', 'serein_worker', true)")
        .execute(&mut conn)
        .await
        .unwrap();
    for user in [me, other] {
        let sent: bool = sqlx::query_scalar(
            "SELECT app_private.job_digest_send($1, $2, 'en', 's', 't', 'h', now() + interval '1 year', 7, 7)",
        )
        .bind(app.tenant_a.as_uuid())
        .bind(user.as_uuid())
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(!sent, "{user:?}");
    }
    conn.execute("ROLLBACK").await.unwrap();
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM email_outbox WHERE template = 'notification_digest'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(queued, 0);
    let grants: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT p.oid::regprocedure::text,
                has_function_privilege('serein_app', p.oid, 'EXECUTE'),
                has_function_privilege('serein_worker', p.oid, 'EXECUTE')
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'app_private'
           AND p.proname IN ('notification_wanted', 'notifications_filter', 'email_outbox_filter')
         ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(grants.len(), 3);
    assert!(grants.iter().all(|(_, a, w)| !a && !w), "{grants:?}");
}
