//! Reminders, change notices and public cancel links (issue 11, items 5 and 8): planned in the
//! move's transaction, run by the job worker under its own door, sent in the recipient's
//! language through the outbox and stored as in-app notifications; a cancelled consultation
//! sends no reminder; failures are retried and then dead; a cancel link works once, in its
//! company, until the start.

use reqwest::Method;
use serde_json::Value;
use sqlx::Executor;
use time::Duration;

use crate::booking::{book, bookable, booking, employee};
use crate::helpers::{
    TestApp, as_app, as_app_with_roles, as_member_with_session, as_member_with_session_roles,
    problem,
};
use crate::lifecycle::{act, at, next_hour, practitioner_token, set_clock};
use crate::members::send;
use crate::people::{host, mint_session};
use serein::db::UserId;
use serein::jobs::{JobWorker, Round};
use serein::rbac::Role;

/// The worker's round, a second after whatever came before (as in a running server, where it
/// polls after the move that planned the job).
async fn run_jobs(app: &TestApp) -> Round {
    app.clock.advance(Duration::seconds(1));
    JobWorker::from_state(&app.state).run_once().await.unwrap()
}

/// The consultation's jobs as (kind, status), by kind.
async fn jobs(app: &TestApp, consultation: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT kind, status FROM jobs WHERE consultation_id = $1::uuid ORDER BY kind, created_at",
    )
    .bind(consultation)
    .fetch_all(&mut app.owner().await)
    .await
    .unwrap()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// Consultation mail queued so far: (to, template, subject, text), oldest first.
async fn mails(app: &TestApp) -> Vec<(String, String, String, String)> {
    sqlx::query_as(
        "SELECT to_address, template, subject, body_text FROM email_outbox
         WHERE template LIKE 'consultation%' ORDER BY created_at, template, to_address",
    )
    .fetch_all(&mut app.owner().await)
    .await
    .unwrap()
}

async fn email_of(app: &TestApp, user: UserId) -> String {
    sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(user.as_uuid())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

/// The cancel link's token in a mail's text.
fn cancel_token(text: &str) -> Option<String> {
    let i = text.find("/cancel/")? + "/cancel/".len();
    Some(
        text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            .collect(),
    )
}

async fn notifications(app: &TestApp, token: &str, query: &str) -> Value {
    let res = send(
        app,
        Method::GET,
        &host("alpha"),
        &format!("/api/v1/notifications{query}"),
        token,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn public_cancel(app: &TestApp, slug: &str, token: &str) -> (u16, Value) {
    let res = app
        .req(
            Method::POST,
            &host(slug),
            &format!("/api/v1/public/cancel/{token}"),
        )
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn status_of(app: &TestApp, id: &str) -> (String, bool) {
    sqlx::query_as("SELECT status, counts_against_allowance FROM consultations WHERE id = $1::uuid")
        .bind(id)
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_booking_plans_notices_and_reminders_and_a_cancellation_stops_them() {
    let app = TestApp::spawn().await;
    let doc = bookable(&app, &[app.tenant_a], true).await;
    let (emp, e) = employee(&app, app.tenant_a, "alpha").await;
    let (emp_mail, doc_mail) = (email_of(&app, emp).await, email_of(&app, doc).await);
    let t0 = next_hour(&app) + Duration::days(2);
    let (s, c) = book(&app, "alpha", &e, booking(doc, &at(t0)), None).await;
    assert_eq!((s, c["status"].as_str()), (201, Some("confirmed")));
    let id = c["id"].as_str().unwrap().to_owned();

    // Planned by the booking's own transaction.
    assert_eq!(
        jobs(&app, &id).await,
        pairs(&[
            ("notice_confirmed", "pending"),
            ("notice_requested", "pending"),
            ("reminder_1h", "pending"),
            ("reminder_24h", "pending"),
        ])
    );
    // Confirmed by the system: both are told; the request notice has nothing left to say.
    assert_eq!(
        run_jobs(&app).await,
        Round {
            done: 1,
            skipped: 1,
            failed: 0
        }
    );
    let m = mails(&app).await;
    assert_eq!(m.len(), 2, "{m:?}");
    for (to, template, subject, text) in &m {
        assert_eq!(template, "consultation_confirmed");
        // The subject says nothing a glance at an inbox should learn; the body has the facts.
        assert_eq!(subject, "Serein: an update for you");
        assert!(text.contains("is confirmed"), "{text}");
        // Discreet: no name, no specialty.
        assert!(
            !text.contains("Dr Book") && !text.contains("stress"),
            "{text}"
        );
        assert!(text.contains(&format!("/consultations/{id}")), "{text}");
        // Only the employee gets a cancel link.
        assert_eq!(
            cancel_token(text).is_some(),
            *to == emp_mail,
            "{to}: {text}"
        );
    }
    assert!(m.iter().any(|x| x.0 == doc_mail));
    // In-app too.
    let n = notifications(&app, &e, "").await;
    assert_eq!(n["unread"], 1);
    assert_eq!(n["items"][0]["kind"], "consultation_confirmed");
    assert_eq!(n["items"][0]["consultation_id"].as_str(), Some(id.as_str()));
    // Nothing else is due now.
    assert_eq!(run_jobs(&app).await.done, 0);

    // A day before: the reminder, to both.
    set_clock(&app, t0 - Duration::hours(24) + Duration::minutes(1));
    assert_eq!(run_jobs(&app).await.done, 1);
    let m = mails(&app).await;
    let reminders: Vec<_> = m
        .iter()
        .filter(|x| x.1 == "consultation_reminder")
        .collect();
    assert_eq!(reminders.len(), 2);
    assert_eq!(reminders[0].2, "Serein: a reminder");
    assert!(reminders[0].3.contains("in 24 hours"), "{}", reminders[0].3);

    // The employee cancels: the practitioner is told; the 1-hour reminder is void.
    let (_, e) = mint_session(&app, app.tenant_a, &host("alpha"), emp, &[Role::Employee]).await;
    assert_eq!(act(&app, &e, &id, "cancel", None).await.0, 200);
    assert_eq!(
        jobs(&app, &id).await,
        pairs(&[
            ("notice_cancelled", "pending"),
            ("notice_confirmed", "done"),
            ("notice_requested", "skipped"),
            ("reminder_1h", "cancelled"),
            ("reminder_24h", "done"),
        ])
    );
    assert_eq!(run_jobs(&app).await.done, 1);
    let m = mails(&app).await;
    let cancelled: Vec<_> = m
        .iter()
        .filter(|x| x.1 == "consultation_cancelled")
        .collect();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].0, doc_mail);
    // An hour before: no reminder for a cancelled consultation.
    set_clock(&app, t0 - Duration::minutes(30));
    assert_eq!(run_jobs(&app).await.total(), 0);
    assert_eq!(mails(&app).await.len(), 5);

    // The notifications: the practitioner has three, the employee two; each reads their own.
    let p = practitioner_token(&app, doc).await;
    let (_, e) = mint_session(&app, app.tenant_a, &host("alpha"), emp, &[Role::Employee]).await;
    let mine = notifications(&app, &p, "").await;
    assert_eq!(mine["unread"], 3);
    let kinds: Vec<&str> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "consultation_cancelled",
            "consultation_reminder",
            "consultation_confirmed"
        ]
    );
    let theirs = notifications(&app, &e, "").await;
    assert_eq!(theirs["unread"], 2);
    let their_id = theirs["items"][0]["id"].as_str().unwrap();
    let my_id = mine["items"][0]["id"].as_str().unwrap();
    // Another person's notification is 404, and stays unread.
    let path = format!("/api/v1/notifications/{their_id}/read");
    let res = send(&app, Method::POST, &host("alpha"), &path, &p, None).await;
    assert_eq!(res.status(), 404);
    assert_eq!(notifications(&app, &e, "").await["unread"], 2);
    // Own: read once, idempotent.
    let path = format!("/api/v1/notifications/{my_id}/read");
    for _ in 0..2 {
        let res = send(&app, Method::POST, &host("alpha"), &path, &p, None).await;
        assert_eq!(res.status(), 204);
    }
    let unread = notifications(&app, &p, "?unread=true").await;
    assert_eq!(unread["unread"], 2);
    assert_eq!(unread["items"].as_array().unwrap().len(), 2);
    // Pages: newest first, one at a time, nothing lost or repeated.
    let first = notifications(&app, &p, "?limit=1").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = notifications(&app, &p, &format!("?limit=1&cursor={cursor}")).await;
    assert_eq!(first["items"][0]["kind"], "consultation_cancelled");
    assert_eq!(second["items"][0]["kind"], "consultation_reminder");
    let res = send(
        &app,
        Method::POST,
        &host("alpha"),
        "/api/v1/notifications/read-all",
        &p,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["marked"], 2);
    assert_eq!(notifications(&app, &p, "").await["unread"], 0);
    assert_eq!(notifications(&app, &e, "").await["unread"], 2);
    // Bad input is a problem; no token is 401; HR has nothing to read of anyone else's.
    let res = send(
        &app,
        Method::GET,
        &host("alpha"),
        "/api/v1/notifications?unread=maybe",
        &p,
        None,
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(problem(res).await["code"], "validation_failed");
    let res = app
        .req(Method::GET, &host("alpha"), "/api/v1/notifications")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let (_, hr) = crate::people::member_session(&app, &[Role::Hr]).await;
    let hr_view = notifications(&app, &hr, "").await;
    assert_eq!(hr_view["items"].as_array().unwrap().len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_cancel_link_cancels_once_in_its_company_until_the_start() {
    let app = TestApp::spawn().await;
    let doc = bookable(&app, &[app.tenant_a, app.tenant_b], false).await;
    let (emp, e) = employee(&app, app.tenant_a, "alpha").await;
    let emp_mail = email_of(&app, emp).await;
    sqlx::query("UPDATE users SET locale = 'fr' WHERE id = $1")
        .bind(emp.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    let p = practitioner_token(&app, doc).await;
    let t0 = next_hour(&app) + Duration::days(2);
    let (s, c) = book(&app, "alpha", &e, booking(doc, &at(t0)), None).await;
    assert_eq!((s, c["status"].as_str()), (201, Some("requested")));
    let id = c["id"].as_str().unwrap().to_owned();
    // The request reaches the practitioner (who must confirm), and only them.
    assert_eq!(run_jobs(&app).await.done, 1);
    let m = mails(&app).await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].1, "consultation_requested");
    assert_ne!(m[0].0, emp_mail);
    // Confirmed by the practitioner: the employee is told, in French, with a link.
    assert_eq!(act(&app, &p, &id, "confirm", None).await.0, 200);
    assert_eq!(run_jobs(&app).await.done, 1);
    let m = mails(&app).await;
    let (to, template, subject, text) = m.last().unwrap().clone();
    assert_eq!(
        (to.as_str(), template.as_str(), subject.as_str()),
        (
            emp_mail.as_str(),
            "consultation_confirmed",
            "Serein : du nouveau pour vous"
        )
    );
    assert!(text.contains("est confirmée"), "{text}");
    let token = cancel_token(&text).unwrap();
    assert_eq!(token.len(), 32 + 1 + 43, "{token}");

    // Not in another company, not tampered with, not malformed: 410, nothing changes.
    let (s, body) = public_cancel(&app, "bravo", &token).await;
    assert_eq!((s, body["code"].as_str()), (410, Some("cancel_link_gone")));
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(public_cancel(&app, "alpha", &tampered).await.0, 410);
    assert_eq!(public_cancel(&app, "alpha", "nope").await.0, 410);
    assert_eq!(status_of(&app, &id).await.0, "confirmed");

    // The link: two days ahead, outside the 24-hour window, so the session is given back.
    let (s, body) = public_cancel(&app, "alpha", &token).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(body["counts_against_allowance"], false);
    assert_eq!(status_of(&app, &id).await, ("cancelled".to_owned(), false));
    let by: (UserId, String) =
        sqlx::query_as("SELECT cancelled_by, cancel_reason FROM consultations WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&mut app.owner().await)
            .await
            .unwrap();
    assert_eq!(by, (emp, "other".to_owned()));
    // Once only.
    assert_eq!(public_cancel(&app, "alpha", &token).await.0, 410);
    // The practitioner is told.
    assert_eq!(run_jobs(&app).await.done, 1);
    assert_eq!(
        mails(&app).await.last().unwrap().1,
        "consultation_cancelled"
    );

    // A second booking: the link dies at the start.
    let t1 = t0 + Duration::hours(3);
    let (_, e) = mint_session(&app, app.tenant_a, &host("alpha"), emp, &[Role::Employee]).await;
    let (s, c) = book(&app, "alpha", &e, booking(doc, &at(t1)), None).await;
    assert_eq!(s, 201);
    let id1 = c["id"].as_str().unwrap().to_owned();
    assert_eq!(act(&app, &p, &id1, "confirm", None).await.0, 200);
    run_jobs(&app).await;
    let late_token = cancel_token(&mails(&app).await.last().unwrap().3).unwrap();
    // Inside the window (2 hours before), it is a late cancellation: it counts.
    set_clock(&app, t1 - Duration::hours(2));
    let (s, body) = public_cancel(&app, "alpha", &late_token).await;
    assert_eq!(
        (s, body["counts_against_allowance"].as_bool()),
        (200, Some(true))
    );

    // A third: past its start, the link is gone and the consultation untouched.
    let t2 = t1 + Duration::hours(3);
    let (_, e) = mint_session(&app, app.tenant_a, &host("alpha"), emp, &[Role::Employee]).await;
    let p = practitioner_token(&app, doc).await;
    let (s, c) = book(&app, "alpha", &e, booking(doc, &at(t2)), None).await;
    assert_eq!(s, 201);
    let id2 = c["id"].as_str().unwrap().to_owned();
    assert_eq!(act(&app, &p, &id2, "confirm", None).await.0, 200);
    run_jobs(&app).await;
    let old_token = cancel_token(&mails(&app).await.last().unwrap().3).unwrap();
    set_clock(&app, t2 + Duration::minutes(1));
    assert_eq!(public_cancel(&app, "alpha", &old_token).await.0, 410);
    assert_eq!(status_of(&app, &id2).await.0, "confirmed");
    app.stop().await;
}

#[tokio::test]
async fn a_failing_job_rolls_back_whole_is_retried_then_dead() {
    let app = TestApp::spawn_with(|s| {
        s.env.insert("JOBS_MAX_ATTEMPTS".into(), "2".into());
        s.env.insert("JOBS_RETRY_BASE_SECS".into(), "60".into());
    })
    .await;
    let doc = bookable(&app, &[app.tenant_a], true).await;
    let (_, e) = employee(&app, app.tenant_a, "alpha").await;
    let t0 = next_hour(&app) + Duration::days(2);
    let (s, c) = book(&app, "alpha", &e, booking(doc, &at(t0)), None).await;
    assert_eq!(s, 201);
    let id = c["id"].as_str().unwrap().to_owned();
    // Break the notifications' insert: the job's mails (queued before it) must roll back too.
    let mut o = app.owner().await;
    o.execute("ALTER TABLE notifications ADD CONSTRAINT test_broken CHECK (false) NOT VALID")
        .await
        .unwrap();
    let r = run_jobs(&app).await;
    assert_eq!((r.failed, r.done), (1, 0));
    assert_eq!(mails(&app).await.len(), 0);
    let (attempts, status, delay, error): (i32, String, f64, String) = sqlx::query_as(
        "SELECT attempts, status, extract(epoch FROM run_at - $2)::float8, last_error
         FROM jobs WHERE consultation_id = $1::uuid AND kind = 'notice_confirmed'",
    )
    .bind(&id)
    .bind(app.clock.now())
    .fetch_one(&mut o)
    .await
    .unwrap();
    assert_eq!((attempts, status.as_str()), (1, "pending"));
    assert!((59.0..=61.0).contains(&delay), "{delay}");
    assert!(!error.contains('@'), "{error}");
    // Not due again before its backoff.
    assert_eq!(run_jobs(&app).await.total(), 0);
    app.clock.advance(Duration::seconds(61));
    assert_eq!(run_jobs(&app).await.failed, 1);
    let status: String = sqlx::query_scalar(
        "SELECT status FROM jobs WHERE consultation_id = $1::uuid AND kind = 'notice_confirmed'",
    )
    .bind(&id)
    .fetch_one(&mut o)
    .await
    .unwrap();
    assert_eq!(status, "dead");
    // Dead stays dead once the fault is gone; nothing was sent.
    o.execute("ALTER TABLE notifications DROP CONSTRAINT test_broken")
        .await
        .unwrap();
    app.clock.advance(Duration::hours(2));
    assert_eq!(run_jobs(&app).await.done, 0);
    assert_eq!(mails(&app).await.len(), 0);
    app.stop().await;
}

/// PROOF 8b: the queue, the links and the notifications hold against the request role with
/// crafted context, and the worker's definers refuse everyone but the worker.
#[tokio::test]
async fn the_database_keeps_the_queue_the_links_and_notifications_to_their_doors() {
    let app = TestApp::spawn().await;
    let doc = bookable(&app, &[app.tenant_a], true).await;
    let (emp, e) = employee(&app, app.tenant_a, "alpha").await;
    let (other, _) = employee(&app, app.tenant_a, "alpha").await;
    let t0 = next_hour(&app) + Duration::days(2);
    let (s, c) = book(&app, "alpha", &e, booking(doc, &at(t0)), None).await;
    assert_eq!(s, 201);
    let id = c["id"].as_str().unwrap().to_owned();
    run_jobs(&app).await;
    let token = cancel_token(
        &mails(&app)
            .await
            .into_iter()
            .find(|m| cancel_token(&m.3).is_some())
            .unwrap()
            .3,
    )
    .unwrap();
    let (link_id, hash) = serein::crypto::tokens::parse_record_token(&token).unwrap();
    let mut conn = app.owner().await;

    // The request role, whatever context it sets, has no privilege on the queue or the links.
    for (tenant, user) in [
        (Some(app.tenant_a), Some(emp)),
        (None, None),
        (Some(app.tenant_b), None),
    ] {
        for sql in [
            "SELECT count(*) FROM jobs",
            "SELECT count(*) FROM consultation_cancel_links",
            "UPDATE jobs SET run_at = now()",
            "DELETE FROM consultation_cancel_links",
            "INSERT INTO notifications (id, tenant_id, user_id, kind, created_at) \
             VALUES (gen_random_uuid(), app.current_tenant(), app.current_user_id(), 'consultation_reminder', now())",
        ] {
            as_app(&mut conn, tenant, user).await;
            let err = conn.execute(sql).await.unwrap_err();
            assert!(
                err.to_string().contains("permission denied"),
                "{sql}: {err}"
            );
            conn.execute("ROLLBACK").await.unwrap();
        }
        // Nor may it call the worker's definers (granted to serein_worker only).
        for sql in [
            "SELECT * FROM app_private.job_take(now() + interval '10 days', 10)",
            "SELECT app_private.job_prune(now() + interval '1000 days', 1000)",
        ] {
            as_app(&mut conn, tenant, user).await;
            let err = conn.execute(sql).await.unwrap_err();
            assert!(
                err.to_string().contains("permission denied"),
                "{sql}: {err}"
            );
            conn.execute("ROLLBACK").await.unwrap();
        }
    }
    // The worker's role refuses to work inside a tenant context.
    conn.execute("BEGIN").await.unwrap();
    sqlx::query(
        "SELECT set_config('role', 'serein_worker', true), set_config('app.tenant_id', $1, true)",
    )
    .bind(app.tenant_a.to_string())
    .execute(&mut conn)
    .await
    .unwrap();
    let err = conn
        .execute("SELECT * FROM app_private.job_take(now(), 10)")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("without a tenant context"),
        "{err}"
    );
    conn.execute("ROLLBACK").await.unwrap();

    // Notifications: a claimed app.user_id without the session's proof sees nothing; a
    // proven person sees only their own and may change nothing but `read_at`.
    as_app_with_roles(&mut conn, Some(app.tenant_a), Some(emp), "employee").await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0, "a claimed user id is no proof");
    conn.execute("ROLLBACK").await.unwrap();
    assert!(as_member_with_session(&mut conn, app.tenant_a, emp).await);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let err = conn
        .execute("UPDATE notifications SET kind = 'consultation_reminder'")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    conn.execute("ROLLBACK").await.unwrap();
    assert!(as_member_with_session(&mut conn, app.tenant_a, other).await);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0, "someone else's notifications");
    let changed = conn
        .execute("UPDATE notifications SET read_at = now()")
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 0);
    conn.execute("ROLLBACK").await.unwrap();
    // The practitioner in a role they claim but do not hold is refused by the guard.
    assert!(!as_member_with_session_roles(&mut conn, app.tenant_a, emp, "practitioner").await);

    // The public cancel definer answers only in the link's company.
    for tenant in [None, Some(app.tenant_b)] {
        as_app(&mut conn, tenant, None).await;
        let outcome: String =
            sqlx::query_scalar("SELECT outcome FROM app_private.public_cancel($1, $2, now())")
                .bind(link_id)
                .bind(hash.as_slice())
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(outcome, "gone");
        conn.execute("ROLLBACK").await.unwrap();
    }
    // A crafted past time does not reopen a consultation that started (the definer never goes
    // earlier than the database's own clock).
    let mut o = app.owner().await;
    sqlx::query(
        "UPDATE consultations SET starts_at = now() - interval '10 minutes',
                                  ends_at = now() + interval '40 minutes' WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(&mut o)
    .await
    .unwrap();
    as_app(&mut conn, Some(app.tenant_a), None).await;
    let outcome: String = sqlx::query_scalar(
        "SELECT outcome FROM app_private.public_cancel($1, $2, now() - interval '2 days')",
    )
    .bind(link_id)
    .bind(hash.as_slice())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(outcome, "gone");
    conn.execute("ROLLBACK").await.unwrap();
    // … nor dodges the late rule: three hours before, with a claimed time ten days earlier.
    sqlx::query(
        "UPDATE consultations SET starts_at = now() + interval '3 hours',
                                  ends_at = now() + interval '3 hours 50 minutes' WHERE id = $1::uuid",
    )
    .bind(&id)
    .execute(&mut o)
    .await
    .unwrap();
    as_app(&mut conn, Some(app.tenant_a), None).await;
    let (outcome, counts): (String, bool) = sqlx::query_as(
        "SELECT outcome, counts_against_allowance
         FROM app_private.public_cancel($1, $2, now() - interval '10 days')",
    )
    .bind(link_id)
    .bind(hash.as_slice())
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((outcome.as_str(), counts), ("cancelled", true));
    conn.execute("ROLLBACK").await.unwrap();

    // Every worker definer is the worker's alone: the request role may execute none of them.
    let definers: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT p.oid::regprocedure::text,
                has_function_privilege('serein_app', p.oid, 'EXECUTE'),
                has_function_privilege('serein_worker', p.oid, 'EXECUTE')
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'app_private' AND p.proname LIKE 'job\\_%'
         ORDER BY 1",
    )
    .fetch_all(&mut o)
    .await
    .unwrap();
    // At least the consultation jobs' ten and the digest's two (others may join: each is checked).
    assert!(definers.len() >= 12, "{definers:?}");
    for (f, app_may, worker_may) in definers {
        assert!(!app_may, "{f} is executable by serein_app");
        assert_eq!(worker_may, f != "app_private.job_door()", "{f}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_moved_consultation_is_reminded_at_its_new_time_and_a_link_works_once_under_a_race() {
    let app = TestApp::spawn().await;
    let doc = bookable(&app, &[app.tenant_a], true).await;
    let (emp, e) = employee(&app, app.tenant_a, "alpha").await;
    let emp_mail = email_of(&app, emp).await;
    let p = practitioner_token(&app, doc).await;
    let t0 = next_hour(&app) + Duration::days(2);
    let (s, c) = book(&app, "alpha", &e, booking(doc, &at(t0)), None).await;
    assert_eq!(s, 201);
    let id = c["id"].as_str().unwrap().to_owned();
    run_jobs(&app).await;
    // The practitioner moves it three hours later: the old reminders are void, new ones are
    // planned, and the employee is told (with a fresh link).
    let t1 = t0 + Duration::hours(3);
    let (s, _) = act(
        &app,
        &p,
        &id,
        "reschedule",
        Some(serde_json::json!({"starts_at": at(t1)})),
    )
    .await;
    assert_eq!(s, 200);
    let planned: Vec<(String, String, time::OffsetDateTime)> = sqlx::query_as(
        "SELECT kind, status, for_starts_at FROM jobs
         WHERE consultation_id = $1::uuid AND kind LIKE 'reminder%' ORDER BY created_at, kind",
    )
    .bind(&id)
    .fetch_all(&mut app.owner().await)
    .await
    .unwrap();
    assert_eq!(planned.len(), 4);
    assert!(
        planned[..2].iter().all(|j| j.1 == "cancelled" && j.2 == t0),
        "{planned:?}"
    );
    assert!(
        planned[2..].iter().all(|j| j.1 == "pending" && j.2 == t1),
        "{planned:?}"
    );
    assert_eq!(run_jobs(&app).await.done, 1);
    let (to, template, _, text) = mails(&app).await.last().unwrap().clone();
    assert_eq!(
        (to.as_str(), template.as_str()),
        (emp_mail.as_str(), "consultation_rescheduled")
    );
    let token = cancel_token(&text).unwrap();
    // At the old time's reminder nothing is sent; at the new one's, both are reminded.
    set_clock(&app, t0 - Duration::hours(24) + Duration::minutes(1));
    assert_eq!(run_jobs(&app).await.total(), 0);
    set_clock(&app, t1 - Duration::hours(24) + Duration::minutes(1));
    assert_eq!(run_jobs(&app).await.done, 1);
    let reminders: Vec<_> = mails(&app)
        .await
        .into_iter()
        .filter(|m| m.1 == "consultation_reminder")
        .collect();
    assert_eq!(reminders.len(), 2);
    assert!(reminders[0].3.contains("24 hours"), "{}", reminders[0].3);

    // Two clicks on the same link at once: one cancels, the other finds it gone.
    let (a, b) = tokio::join!(
        public_cancel(&app, "alpha", &token),
        public_cancel(&app, "alpha", &token)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 410]);
    assert_eq!(status_of(&app, &id).await.0, "cancelled");
    app.stop().await;
}

#[tokio::test]
async fn the_server_runs_the_job_worker_in_the_background_and_stops_it_on_shutdown() {
    let app = TestApp::spawn_with(|s| {
        s.env.insert("JOBS_WORKER".into(), "true".into());
        s.env.insert("JOBS_POLL_MS".into(), "20".into());
        // Long grace: if the worker ignored shutdown, stop() would take a minute.
        s.env.insert("SHUTDOWN_GRACE_MS".into(), "60000".into());
    })
    .await;
    let doc = bookable(&app, &[app.tenant_a], true).await;
    let (_, e) = employee(&app, app.tenant_a, "alpha").await;
    let t0 = next_hour(&app) + Duration::days(2);
    let (s, c) = book(&app, "alpha", &e, booking(doc, &at(t0)), None).await;
    assert_eq!(s, 201);
    let id = c["id"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::seconds(1));
    // A background task: poll with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let states = jobs(&app, &id).await;
        if states.contains(&("notice_confirmed".to_owned(), "done".to_owned())) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the background worker did not run the notice within 20 s: {states:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(mails(&app).await.len(), 2);
    tokio::time::timeout(std::time::Duration::from_secs(10), app.stop())
        .await
        .expect("the server and its job worker stop on shutdown");
}
