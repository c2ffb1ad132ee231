//! Confidential records (issue 12, items 1–3; PROOF 8, 8b, 14–16): clinical notes are their
//! author's alone, the journal its owner's, messages the two participants' inside the window —
//! through the API and at the database alone — all sealed at rest, tamper-evident, rotated and
//! crypto-shredded as DESIGN §3 says.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Executor, PgConnection, Row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::booking::{book, bookable, booking, employee};
use crate::helpers::{TEST_MASTER_KEY, TestApp, as_app_with_roles, as_member_with_session_roles};
use crate::members::{person, send};
use crate::people::{host, mint_session};
use serein::crypto::keyring::Keyring;
use serein::db::UserId;
use serein::rbac::Role;

/// One call on alpha's host: (status, JSON body or Null).
async fn api(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let res = send(app, method, &host("alpha"), path, token, body).await;
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A fresh session of `user` in tenant A (the clock moves; tokens live 15 minutes).
async fn tok(app: &TestApp, user: UserId, role: Role) -> String {
    mint_session(app, app.tenant_a, &host("alpha"), user, &[role])
        .await
        .1
}

fn next_hour(app: &TestApp) -> OffsetDateTime {
    let now = app.clock.now();
    now.replace_minute(0)
        .unwrap()
        .replace_second(0)
        .unwrap()
        .replace_nanosecond(0)
        .unwrap()
        + time::Duration::hours(1)
}

/// A practitioner (confirming automatically), an employee, and a confirmed consultation
/// between them in tenant A, starting in two to three hours: (doc, employee, consultation).
async fn care(app: &TestApp) -> (UserId, UserId, String) {
    let doc = bookable(app, &[app.tenant_a], true).await;
    let (emp, e) = employee(app, app.tenant_a, "alpha").await;
    let t = (next_hour(app) + time::Duration::hours(2))
        .format(&Rfc3339)
        .unwrap();
    let (s, c) = book(app, "alpha", &e, booking(doc, &t), None).await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["status"], "confirmed");
    (doc, emp, c["id"].as_str().unwrap().to_owned())
}

async fn count(owner: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_clinical_note_is_its_authors_alone_and_every_edit_keeps_the_previous_version() {
    let app = TestApp::spawn().await;
    let (doc, emp, c) = care(&app).await;
    let p = tok(&app, doc, Role::Practitioner).await;
    let notes = format!("/api/v1/consultations/{c}/notes");

    // Bad input: 422, nothing stored.
    for body in [
        json!({}),
        json!({"text": "   "}),
        json!({"text": "x".repeat(100_001)}),
        json!({"text": "ok", "author_id": emp}),
        json!({"text": "ok", "risk_level": "extreme"}),
    ] {
        let (s, problem) = api(&app, Method::POST, &notes, &p, Some(body.clone())).await;
        assert_eq!(s, 422, "{body}: {problem}");
    }
    assert_eq!(
        count(
            &mut app.owner().await,
            "SELECT count(*) FROM clinical_notes"
        )
        .await,
        0
    );

    let first = json!({"presenting_concern": "Work stress since the reorganisation",
                       "observations": "Tired, articulate", "plan": "Sleep diary; review in two weeks",
                       "risk_level": "low", "text": "Marker-note-v1 talks about the manager."});
    let (s, note) = api(&app, Method::POST, &notes, &p, Some(first.clone())).await;
    assert_eq!(s, 201, "{note}");
    assert_eq!(note["version"], 1);
    assert_eq!(note["employee_id"], emp.to_string());
    assert_eq!(note["risk_level"], "low");
    assert_eq!(note["unreadable"], false);
    let id = note["id"].as_str().unwrap().to_owned();
    let one = format!("/api/v1/notes/{id}");
    let (s, read) = api(&app, Method::GET, &one, &p, None).await;
    assert_eq!((s, &read), (200, &note), "read back as written");

    // An edit from version 1 makes version 2; a second edit from version 1 is stale.
    app.clock.advance(time::Duration::seconds(5));
    let (s, v2) = api(
        &app,
        Method::PUT,
        &one,
        &p,
        Some(json!({"version": 1, "text": "Marker-note-v2 revised.", "risk_level": "moderate"})),
    )
    .await;
    assert_eq!(s, 200, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["risk_level"], "moderate");
    assert!(v2.get("plan").is_none(), "a PUT replaces the whole content");
    let (s, problem) = api(
        &app,
        Method::PUT,
        &one,
        &p,
        Some(json!({"version": 1, "text": "lost update"})),
    )
    .await;
    assert_eq!(
        (s, problem["code"].as_str()),
        (409, Some("version_conflict"))
    );
    let (_, read) = api(&app, Method::GET, &one, &p, None).await;
    assert_eq!(read["text"], "Marker-note-v2 revised.");
    let (s, history) = api(&app, Method::GET, &format!("{one}/versions"), &p, None).await;
    assert_eq!(s, 200);
    let versions: Vec<i64> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![2, 1]);
    assert_eq!(
        history["items"][1]["text"],
        "Marker-note-v1 talks about the manager."
    );

    // Lists: per consultation and per employee, the author's only.
    let (s, list) = api(&app, Method::GET, &notes, &p, None).await;
    assert_eq!(s, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["version"], 2);
    let (s, list) = api(
        &app,
        Method::GET,
        &format!("/api/v1/notes?employee_id={emp}"),
        &p,
        None,
    )
    .await;
    assert_eq!((s, list["items"].as_array().unwrap().len()), (200, 1));

    // Another practitioner of the same company: not found, whatever the route.
    let other = bookable(&app, &[app.tenant_a], true).await;
    let o = tok(&app, other, Role::Practitioner).await;
    for (m, path, body) in [
        (Method::GET, one.clone(), None),
        (
            Method::PUT,
            one.clone(),
            Some(json!({"version": 2, "text": "taken"})),
        ),
        (Method::DELETE, one.clone(), None),
        (Method::GET, format!("{one}/versions"), None),
        (Method::GET, notes.clone(), None),
        (
            Method::POST,
            notes.clone(),
            Some(json!({"text": "mine now"})),
        ),
    ] {
        let (s, body) = api(&app, m.clone(), &path, &o, body).await;
        assert_eq!(s, 404, "{m} {path}: {body}");
    }
    let (_, list) = api(
        &app,
        Method::GET,
        &format!("/api/v1/notes?employee_id={emp}"),
        &o,
        None,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    // The employee the note is about, HR and tenant admins: refused by role.
    let e = tok(&app, emp, Role::Employee).await;
    let (_, hr) = person(&app, app.tenant_a, "alpha", &[Role::Hr]).await;
    let (_, admin) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    for t in [&e, &hr, &admin] {
        for path in [one.clone(), notes.clone(), format!("{one}/versions")] {
            assert_eq!(
                api(&app, Method::GET, &path, t, None).await.0,
                403,
                "{path}"
            );
        }
    }

    // Not before the consultation is confirmed.
    let manual = bookable(&app, &[app.tenant_a], false).await;
    let (_, e2) = employee(&app, app.tenant_a, "alpha").await;
    let t = (next_hour(&app) + time::Duration::hours(5))
        .format(&Rfc3339)
        .unwrap();
    let (s, requested) = book(&app, "alpha", &e2, booking(manual, &t), None).await;
    assert_eq!((s, requested["status"].as_str()), (201, Some("requested")));
    let m = tok(&app, manual, Role::Practitioner).await;
    let (s, problem) = api(
        &app,
        Method::POST,
        &format!(
            "/api/v1/consultations/{}/notes",
            requested["id"].as_str().unwrap()
        ),
        &m,
        Some(json!({"text": "too early"})),
    )
    .await;
    assert_eq!(
        (s, problem["code"].as_str()),
        (409, Some("consultation_not_confirmed"))
    );

    // At rest: only ciphertext, one row per version.
    let mut owner = app.owner().await;
    let blobs: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT content FROM clinical_note_versions ORDER BY version")
            .fetch_all(&mut owner)
            .await
            .unwrap();
    assert_eq!(blobs.len(), 2);
    for b in &blobs {
        assert!(
            !b.windows(11).any(|w| w == b"Marker-note"),
            "plaintext at rest"
        );
    }

    // Delete: gone from every route at once; the versions stay for the retention period.
    assert_eq!(api(&app, Method::DELETE, &one, &p, None).await.0, 204);
    assert_eq!(api(&app, Method::GET, &one, &p, None).await.0, 404);
    assert_eq!(api(&app, Method::DELETE, &one, &p, None).await.0, 404);
    let (_, list) = api(&app, Method::GET, &notes, &p, None).await;
    assert!(list["items"].as_array().unwrap().is_empty());
    assert_eq!(
        count(&mut owner, "SELECT count(*) FROM clinical_note_versions").await,
        2
    );
}

#[tokio::test]
async fn the_journal_is_its_owners_alone_with_filters_over_sealed_content() {
    let app = TestApp::spawn().await;
    let (me, _) = employee(&app, app.tenant_a, "alpha").await;
    let e = tok(&app, me, Role::Employee).await;
    for body in [
        json!({}),
        json!({"text": "x", "mood": 6}),
        json!({"text": "x", "tags": ["<b>"]}),
        json!({"text": "x", "owner_id": me}),
    ] {
        let (s, problem) = api(
            &app,
            Method::POST,
            "/api/v1/journal",
            &e,
            Some(body.clone()),
        )
        .await;
        assert_eq!(s, 422, "{body}: {problem}");
    }
    let mut ids = Vec::new();
    for (text, mood, tags) in [
        ("Marker-journal-a slept badly", 2, vec!["Sleep"]),
        (
            "Marker-journal-b good talk with Sam",
            4,
            vec!["work", "friends"],
        ),
        ("Marker-journal-c deadline", 2, vec!["work"]),
    ] {
        app.clock.advance(time::Duration::seconds(2));
        let (s, entry) = api(
            &app,
            Method::POST,
            "/api/v1/journal",
            &e,
            Some(json!({"text": text, "mood": mood, "tags": tags})),
        )
        .await;
        assert_eq!(s, 201, "{entry}");
        ids.push(entry["id"].as_str().unwrap().to_owned());
    }
    let texts = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["text"].as_str().unwrap()[15..16].to_owned())
            .collect()
    };
    let (s, all) = api(&app, Method::GET, "/api/v1/journal", &e, None).await;
    assert_eq!(s, 200);
    assert_eq!(texts(&all), vec!["c", "b", "a"], "newest first");
    assert_eq!(all["items"][2]["tags"], json!(["sleep"]));
    // Keyset pages.
    let (_, p1) = api(&app, Method::GET, "/api/v1/journal?limit=2", &e, None).await;
    assert_eq!(texts(&p1), vec!["c", "b"]);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = api(
        &app,
        Method::GET,
        &format!("/api/v1/journal?limit=2&cursor={cursor}"),
        &e,
        None,
    )
    .await;
    assert_eq!(texts(&p2), vec!["a"]);
    assert!(p2["next_cursor"].is_null());
    // Filters on sealed mood and tag, and on dates.
    let (_, low) = api(&app, Method::GET, "/api/v1/journal?mood=2", &e, None).await;
    assert_eq!(texts(&low), vec!["c", "a"]);
    let (_, work) = api(&app, Method::GET, "/api/v1/journal?tag=WORK", &e, None).await;
    assert_eq!(texts(&work), vec!["c", "b"]);
    let (_, both) = api(
        &app,
        Method::GET,
        "/api/v1/journal?tag=work&mood=2&limit=1",
        &e,
        None,
    )
    .await;
    assert_eq!(texts(&both), vec!["c"]);
    let b_at = all["items"][1]["created_at"].as_str().unwrap();
    let (_, since) = api(
        &app,
        Method::GET,
        &format!("/api/v1/journal?from={}", b_at.replace('+', "%2B")),
        &e,
        None,
    )
    .await;
    assert_eq!(texts(&since), vec!["c", "b"]);
    for q in ["mood=9", "tag=%3Cx%3E", "from=yesterday", "limit=ten"] {
        assert_eq!(
            api(&app, Method::GET, &format!("/api/v1/journal?{q}"), &e, None)
                .await
                .0,
            422,
            "{q}"
        );
    }

    // Replace, then delete.
    let one = format!("/api/v1/journal/{}", ids[0]);
    let (s, replaced) = api(
        &app,
        Method::PUT,
        &one,
        &e,
        Some(json!({"text": "Marker-journal-a rewritten", "mood": 3})),
    )
    .await;
    assert_eq!(s, 200, "{replaced}");
    assert_eq!(replaced["tags"], json!([]));
    let (_, read) = api(&app, Method::GET, &one, &e, None).await;
    assert_eq!(read["text"], "Marker-journal-a rewritten");

    // A colleague: not found, nothing changed. Practitioners, HR, admins: refused by role.
    let (_, colleague) = employee(&app, app.tenant_a, "alpha").await;
    for (m, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"text": "taken"}))),
        (Method::DELETE, None),
    ] {
        assert_eq!(api(&app, m, &one, &colleague, body).await.0, 404);
    }
    let (_, theirs) = api(&app, Method::GET, "/api/v1/journal", &colleague, None).await;
    assert!(theirs["items"].as_array().unwrap().is_empty());
    for roles in [[Role::Practitioner], [Role::Hr], [Role::TenantAdmin]] {
        let (_, t) = person(&app, app.tenant_a, "alpha", &roles).await;
        assert_eq!(api(&app, Method::GET, &one, &t, None).await.0, 403);
        assert_eq!(
            api(&app, Method::GET, "/api/v1/journal", &t, None).await.0,
            403
        );
    }
    let (_, read) = api(&app, Method::GET, &one, &e, None).await;
    assert_eq!(read["text"], "Marker-journal-a rewritten");
    assert_eq!(api(&app, Method::DELETE, &one, &e, None).await.0, 204);
    assert_eq!(api(&app, Method::GET, &one, &e, None).await.0, 404);
    assert_eq!(
        count(
            &mut app.owner().await,
            "SELECT count(*) FROM journal_entries"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn the_two_participants_chat_in_order_with_retries_read_marks_and_notifications() {
    let app = TestApp::spawn().await;
    let (doc, emp, c) = care(&app).await;
    let (p, e) = (
        tok(&app, doc, Role::Practitioner).await,
        tok(&app, emp, Role::Employee).await,
    );
    let msgs = format!("/api/v1/consultations/{c}/messages");

    for body in [
        json!({"body": "  "}),
        json!({"body": "x".repeat(10_001)}),
        json!({"body": "hi", "client_ref": "has space"}),
        json!({"body": "hi", "attachment_id": Uuid::now_v7()}),
        json!({"body": "hi", "sender_id": doc}),
    ] {
        let (s, problem) = api(&app, Method::POST, &msgs, &e, Some(body.clone())).await;
        assert_eq!(s, 422, "{body}: {problem}");
    }
    let (s, m1) = api(
        &app,
        Method::POST,
        &msgs,
        &e,
        Some(json!({"body": "Bonjour, Marker-chat-1", "client_ref": "c-1"})),
    )
    .await;
    assert_eq!(s, 201, "{m1}");
    assert_eq!(
        (m1["seq"].as_i64(), m1["sender_id"].as_str()),
        (Some(1), Some(emp.to_string().as_str()))
    );
    // A retry with the same client_ref: the stored message, nothing new.
    let (s, again) = api(
        &app,
        Method::POST,
        &msgs,
        &e,
        Some(json!({"body": "Bonjour, Marker-chat-1", "client_ref": "c-1"})),
    )
    .await;
    assert_eq!((s, &again["id"]), (200, &m1["id"]));
    app.clock.advance(time::Duration::seconds(1));
    let (s, m2) = api(
        &app,
        Method::POST,
        &msgs,
        &p,
        Some(json!({"body": "Hello, Marker-chat-2"})),
    )
    .await;
    assert_eq!((s, m2["seq"].as_i64()), (201, Some(2)), "{m2}");

    let (s, page) = api(&app, Method::GET, &msgs, &p, None).await;
    assert_eq!(s, 200, "{page}");
    let bodies: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(
        bodies,
        vec!["Hello, Marker-chat-2", "Bonjour, Marker-chat-1"]
    );
    let (_, page) = api(&app, Method::GET, &format!("{msgs}?limit=1"), &e, None).await;
    assert_eq!(page["items"][0]["seq"], 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, older) = api(
        &app,
        Method::GET,
        &format!("{msgs}?limit=1&cursor={cursor}"),
        &e,
        None,
    )
    .await;
    assert_eq!(
        (
            older["items"][0]["seq"].as_i64(),
            older["has_more"].as_bool()
        ),
        (Some(1), Some(false))
    );
    let (_, catch_up) = api(&app, Method::GET, &format!("{msgs}?after=1"), &e, None).await;
    assert_eq!(catch_up["items"].as_array().unwrap().len(), 1);
    assert_eq!(catch_up["items"][0]["seq"], 2);
    assert_eq!(
        api(
            &app,
            Method::GET,
            &format!("{msgs}?after=1&cursor={cursor}"),
            &e,
            None
        )
        .await
        .0,
        422
    );

    // Each got one "new message" notification; reading up to the newest clears it.
    let unread = |t: String| {
        let app = &app;
        async move {
            let (_, n) = api(
                app,
                Method::GET,
                "/api/v1/notifications?unread=true",
                &t,
                None,
            )
            .await;
            n["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|n| n["kind"] == "message_received")
                .count()
        }
    };
    assert_eq!(unread(p.clone()).await, 1);
    assert_eq!(unread(e.clone()).await, 1);
    let (s, mark) = api(
        &app,
        Method::POST,
        &format!("{msgs}/read"),
        &e,
        Some(json!({"seq": 99})),
    )
    .await;
    assert_eq!(
        (s, mark["last_read_seq"].as_i64()),
        (200, Some(2)),
        "capped at the newest"
    );
    assert_eq!(unread(e.clone()).await, 0);
    let (_, page) = api(&app, Method::GET, &msgs, &p, None).await;
    let reads: Vec<(String, i64)> = page["reads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["user_id"].as_str().unwrap().to_owned(),
                r["last_read_seq"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(
        reads.contains(&(emp.to_string(), 2)) && reads.contains(&(doc.to_string(), 2)),
        "{reads:?}"
    );

    // Outsiders: a colleague is "not found"; HR and admins are refused by role.
    let (_, colleague) = employee(&app, app.tenant_a, "alpha").await;
    assert_eq!(api(&app, Method::GET, &msgs, &colleague, None).await.0, 404);
    assert_eq!(
        api(
            &app,
            Method::POST,
            &msgs,
            &colleague,
            Some(json!({"body": "hi"}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        api(
            &app,
            Method::POST,
            &format!("{msgs}/read"),
            &colleague,
            Some(json!({"seq": 1}))
        )
        .await
        .0,
        404
    );
    for roles in [[Role::Hr], [Role::TenantAdmin]] {
        let (_, t) = person(&app, app.tenant_a, "alpha", &roles).await;
        assert_eq!(api(&app, Method::GET, &msgs, &t, None).await.0, 403);
    }
    assert_eq!(
        count(&mut app.owner().await, "SELECT count(*) FROM messages").await,
        2
    );

    // After the window (end + the company's 30 days): closed both ways.
    app.clock
        .advance(time::Duration::days(31) + time::Duration::hours(4));
    let e = tok(&app, emp, Role::Employee).await;
    let (s, problem) = api(&app, Method::GET, &msgs, &e, None).await;
    assert_eq!((s, problem["code"].as_str()), (410, Some("chat_closed")));
    let (s, _) = api(&app, Method::POST, &msgs, &e, Some(json!({"body": "late"}))).await;
    assert_eq!(s, 410);
}

#[tokio::test]
async fn the_database_alone_keeps_records_from_everyone_but_their_people() {
    let app = TestApp::spawn().await;
    let (doc, emp, c) = care(&app).await;
    let (p, e) = (
        tok(&app, doc, Role::Practitioner).await,
        tok(&app, emp, Role::Employee).await,
    );
    let (s, _) = api(
        &app,
        Method::POST,
        &format!("/api/v1/consultations/{c}/notes"),
        &p,
        Some(json!({"text": "n"})),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(
        api(
            &app,
            Method::POST,
            "/api/v1/journal",
            &e,
            Some(json!({"text": "j", "mood": 3}))
        )
        .await
        .0,
        201
    );
    assert_eq!(
        api(
            &app,
            Method::POST,
            &format!("/api/v1/consultations/{c}/messages"),
            &e,
            Some(json!({"body": "m"}))
        )
        .await
        .0,
        201
    );
    let other = bookable(&app, &[app.tenant_a], true).await;
    let (colleague, _) = employee(&app, app.tenant_a, "alpha").await;
    let (hr, _) = person(&app, app.tenant_a, "alpha", &[Role::Hr]).await;
    let (admin, _) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let tables = [
        "clinical_notes",
        "clinical_note_versions",
        "journal_entries",
        "messages",
        "message_reads",
    ];
    let mut conn = app.owner().await;
    async fn visible(conn: &mut PgConnection, tables: &[&str]) -> Vec<i64> {
        let mut out = Vec::new();
        for t in tables {
            out.push(count(conn, &format!("SELECT count(*) FROM {t}")).await);
        }
        out
    }

    // A crafted context (someone's app.user_id, no session proof) proves nothing.
    for (who, roles) in [(doc, "practitioner"), (emp, "employee")] {
        as_app_with_roles(&mut conn, Some(app.tenant_a), Some(who), roles).await;
        assert_eq!(
            visible(&mut conn, &tables).await,
            vec![0; 5],
            "{roles} without proof"
        );
        conn.execute("ROLLBACK").await.unwrap();
    }
    // Proven people see exactly their own: the author (note, version, message, read mark), the
    // employee (journal, message, read mark, never the note), nobody else anything.
    for (who, roles, expect) in [
        (doc, "practitioner", vec![1, 1, 0, 1, 1]),
        (emp, "employee", vec![0, 0, 1, 1, 1]),
        (other, "practitioner", vec![0; 5]),
        (colleague, "employee", vec![0; 5]),
        (hr, "hr", vec![0; 5]),
        (admin, "tenant_admin", vec![0; 5]),
    ] {
        assert!(
            as_member_with_session_roles(&mut conn, app.tenant_a, who, roles).await,
            "{roles}"
        );
        assert_eq!(visible(&mut conn, &tables).await, expect, "{roles}");
        conn.execute("ROLLBACK").await.unwrap();
    }
    // A proven person of another company sees nothing here either (their own tenant context).
    let (stranger, _) = employee(&app, app.tenant_b, "bravo").await;
    assert!(as_member_with_session_roles(&mut conn, app.tenant_b, stranger, "employee").await);
    assert_eq!(visible(&mut conn, &tables).await, vec![0; 5]);
    conn.execute("ROLLBACK").await.unwrap();

    // Writes the request role may not do, even proven: direct message inserts, rewriting a
    // version, re-binding a note, deleting notes; another practitioner's note on this
    // consultation; a send by a non-participant.
    for (who, roles, sql) in [
        (emp, "employee", "INSERT INTO messages (id, tenant_id, consultation_id, seq, sender_id, body, created_at)
            SELECT gen_random_uuid(), tenant_id, id, 99, employee_id, '\\x00', now() FROM consultations"),
        (doc, "practitioner", "UPDATE clinical_note_versions SET content = '\\x00'"),
        (doc, "practitioner", "UPDATE clinical_notes SET employee_id = gen_random_uuid()"),
        (doc, "practitioner", "DELETE FROM clinical_notes"),
        (doc, "practitioner", "UPDATE messages SET body = '\\x00'"),
        (emp, "employee", "UPDATE journal_entries SET owner_id = gen_random_uuid()"),
    ] {
        assert!(as_member_with_session_roles(&mut conn, app.tenant_a, who, roles).await);
        let err = conn.execute(sqlx::AssertSqlSafe(sql)).await.unwrap_err();
        let code = err.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err}");
        conn.execute("ROLLBACK").await.unwrap();
    }
    assert!(as_member_with_session_roles(&mut conn, app.tenant_a, other, "practitioner").await);
    let err = sqlx::query(
        "INSERT INTO clinical_notes (id, tenant_id, consultation_id, author_id, employee_id, current_version, created_at, updated_at)
         VALUES (gen_random_uuid(), $1, $2::uuid, $3, $4, 1, now(), now())")
        .bind(app.tenant_a.as_uuid()).bind(&c).bind(other.as_uuid()).bind(emp.as_uuid())
        .execute(&mut conn).await.unwrap_err();
    let code = err
        .as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("42501"), "{err}");
    conn.execute("ROLLBACK").await.unwrap();
    for (who, roles) in [(colleague, "employee"), (other, "practitioner"), (hr, "hr")] {
        assert!(as_member_with_session_roles(&mut conn, app.tenant_a, who, roles).await);
        let outcome: String = sqlx::query_scalar(
            "SELECT outcome FROM app_private.message_send(gen_random_uuid(), $1::uuid, '\\x00', NULL, NULL, now())")
            .bind(&c).fetch_one(&mut conn).await.unwrap();
        assert_eq!(outcome, "not_found", "{roles}");
        conn.execute("ROLLBACK").await.unwrap();
    }
    // The write doors take the person from the proof: another practitioner cannot write,
    // edit or delete a note on this consultation; a non-participant marks nothing read; a
    // crafted context writes no journal entry.
    let note: Uuid = sqlx::query_scalar("SELECT id FROM clinical_notes")
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    assert!(as_member_with_session_roles(&mut conn, app.tenant_a, other, "practitioner").await);
    let row = sqlx::query(
        "SELECT (app_private.note_create(gen_random_uuid(), $1::uuid, gen_random_uuid(), '\\x00', now())).outcome,
                (app_private.note_edit($2, 1, gen_random_uuid(), '\\x00', now())).outcome,
                app_private.note_delete($2, now()),
                (SELECT count(*) FROM app_private.message_read_mark($1::uuid, 1, now()))",
    )
    .bind(&c)
    .bind(note)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>(0), "not_found");
    assert_eq!(row.get::<String, _>(1), "not_found");
    assert!(!row.get::<bool, _>(2));
    assert_eq!(row.get::<i64, _>(3), 0);
    conn.execute("ROLLBACK").await.unwrap();
    as_app_with_roles(&mut conn, Some(app.tenant_a), Some(emp), "employee").await;
    let wrote: bool = sqlx::query_scalar(
        "SELECT app_private.journal_create(gen_random_uuid(), '\\x00', now()) IS NOT NULL",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(!wrote, "a crafted context writes no journal entry");
    conn.execute("ROLLBACK").await.unwrap();
    let versions: i64 = count(
        &mut app.owner().await,
        "SELECT count(*) FROM clinical_note_versions",
    )
    .await;
    assert_eq!(versions, 1, "nothing written by the refused doors");

    // …nor by a participant's crafted context without proof.
    as_app_with_roles(&mut conn, Some(app.tenant_a), Some(emp), "employee").await;
    let outcome: String = sqlx::query_scalar(
        "SELECT outcome FROM app_private.message_send(gen_random_uuid(), $1::uuid, '\\x00', NULL, NULL, now())")
        .bind(&c).fetch_one(&mut conn).await.unwrap();
    assert_eq!(outcome, "not_found");
    conn.execute("ROLLBACK").await.unwrap();

    // The employee's subject key: to the employee and the consultation's practitioner only.
    for (who, roles, ok) in [
        (emp, "employee", true),
        (doc, "practitioner", true),
        (other, "practitioner", false),
        (colleague, "employee", false),
        (hr, "hr", false),
    ] {
        assert!(as_member_with_session_roles(&mut conn, app.tenant_a, who, roles).await);
        let got = sqlx::query("SELECT * FROM app_private.subject_key($1, NULL)")
            .bind(emp.as_uuid())
            .fetch_all(&mut conn)
            .await;
        assert_eq!(got.is_ok(), ok, "{roles}: {got:?}");
        conn.execute("ROLLBACK").await.unwrap();
    }
    // The worker's pruning door is not the request role's.
    assert!(as_member_with_session_roles(&mut conn, app.tenant_a, doc, "practitioner").await);
    let err = conn
        .execute("SELECT app_private.records_prune(now(), 1, 10)")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    conn.execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn records_are_ciphertext_at_rest_tamper_evident_rotatable_and_shredded_with_their_subject() {
    let app = TestApp::spawn().await;
    let (doc, emp, c) = care(&app).await;
    let (p, e) = (
        tok(&app, doc, Role::Practitioner).await,
        tok(&app, emp, Role::Employee).await,
    );
    let (s, note) = api(
        &app,
        Method::POST,
        &format!("/api/v1/consultations/{c}/notes"),
        &p,
        Some(json!({"text": "Plaintext-marker-note"})),
    )
    .await;
    assert_eq!(s, 201);
    let note = note["id"].as_str().unwrap().to_owned();
    let mut entries = Vec::new();
    for text in ["Plaintext-marker-journal-1", "Plaintext-marker-journal-2"] {
        let (s, j) = api(
            &app,
            Method::POST,
            "/api/v1/journal",
            &e,
            Some(json!({"text": text})),
        )
        .await;
        assert_eq!(s, 201);
        entries.push(j["id"].as_str().unwrap().to_owned());
    }
    let msgs = format!("/api/v1/consultations/{c}/messages");
    for body in ["Plaintext-marker-message-1", "Plaintext-marker-message-2"] {
        assert_eq!(
            api(&app, Method::POST, &msgs, &e, Some(json!({"body": body})))
                .await
                .0,
            201
        );
    }

    // PROOF 14: a pg_dump of the database holds none of the plaintext.
    let out = std::process::Command::new("pg_dump")
        .args([
            "--data-only",
            "--no-owner",
            &crate::helpers::db_url(&app.db_name),
        ])
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(dump.contains("clinical_note_versions") && dump.len() > 10_000);
    assert!(!dump.contains("Plaintext-marker"), "plaintext in the dump");

    // PROOF 16: rotation — written under v1, read after v2; new writes use v2.
    let mut owner = app.owner().await;
    let k = Keyring::for_tests(TEST_MASTER_KEY);
    let mut tx = sqlx::Connection::begin(&mut owner).await.unwrap();
    k.rotate_tenant(&mut tx, app.tenant_a).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        api(
            &app,
            Method::GET,
            &format!("/api/v1/notes/{note}"),
            &p,
            None
        )
        .await
        .1["text"],
        "Plaintext-marker-note"
    );
    let (_, j) = api(
        &app,
        Method::GET,
        &format!("/api/v1/journal/{}", entries[0]),
        &e,
        None,
    )
    .await;
    assert_eq!(j["text"], "Plaintext-marker-journal-1");
    let (s, _) = api(
        &app,
        Method::PUT,
        &format!("/api/v1/notes/{note}"),
        &p,
        Some(json!({"version": 1, "text": "after rotation"})),
    )
    .await;
    assert_eq!(s, 200);
    let newest: Vec<u8> =
        sqlx::query_scalar("SELECT content FROM clinical_note_versions WHERE version = 2")
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(Keyring::blob_key_version(&newest), Some(2));

    // PROOF 15: a flipped byte, or a blob moved to another row or table, does not open — a
    // 410 alone, "unreadable" in a list, never a 500.
    sqlx::query("UPDATE journal_entries SET content = overlay(content placing '\\xff' from 30 for 1) WHERE id = $1::uuid")
        .bind(&entries[0]).execute(&mut owner).await.unwrap();
    let (s, problem) = api(
        &app,
        Method::GET,
        &format!("/api/v1/journal/{}", entries[0]),
        &e,
        None,
    )
    .await;
    assert_eq!(
        (s, problem["code"].as_str()),
        (410, Some("sealed_data_unreadable"))
    );
    let (s, list) = api(&app, Method::GET, "/api/v1/journal", &e, None).await;
    assert_eq!(s, 200);
    let flags: Vec<bool> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["unreadable"].as_bool().unwrap())
        .collect();
    assert_eq!(flags, vec![false, true]);
    sqlx::query("UPDATE messages SET body = (SELECT body FROM messages WHERE seq = 1 AND consultation_id = $1::uuid)
                 WHERE seq = 2 AND consultation_id = $1::uuid")
        .bind(&c).execute(&mut owner).await.unwrap();
    sqlx::query("UPDATE journal_entries SET content = (SELECT body FROM messages WHERE seq = 1 AND consultation_id = $2::uuid)
                 WHERE id = $1::uuid")
        .bind(&entries[1]).bind(&c).execute(&mut owner).await.unwrap();
    let (_, page) = api(&app, Method::GET, &msgs, &p, None).await;
    let flags: Vec<(i64, bool)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["seq"].as_i64().unwrap(),
                m["unreadable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        flags,
        vec![(2, true), (1, false)],
        "a body moved to another row does not open"
    );
    // A message re-attributed to the other participant does not open either (the AAD binds
    // the sender and the consultation), nor a note version renumbered.
    sqlx::query("UPDATE messages SET sender_id = $2 WHERE seq = 1 AND consultation_id = $1::uuid")
        .bind(&c)
        .bind(doc.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    let (_, page) = api(&app, Method::GET, &msgs, &p, None).await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["unreadable"] == true),
        "{page}"
    );
    let renumber = |from: i32, to: i32| {
        sqlx::query(
            "UPDATE clinical_note_versions SET version = $3 WHERE note_id = $1::uuid AND version = $2",
        )
        .bind(note.clone())
        .bind(from)
        .bind(to)
    };
    for (from, to) in [(2, 99), (1, 2), (99, 1)] {
        renumber(from, to).execute(&mut owner).await.unwrap();
    }
    let (s, problem) = api(
        &app,
        Method::GET,
        &format!("/api/v1/notes/{note}"),
        &p,
        None,
    )
    .await;
    assert_eq!(
        (s, problem["code"].as_str()),
        (410, Some("sealed_data_unreadable"))
    );
    for (from, to) in [(1, 99), (2, 1), (99, 2)] {
        renumber(from, to).execute(&mut owner).await.unwrap();
    }
    assert_eq!(
        api(
            &app,
            Method::GET,
            &format!("/api/v1/journal/{}", entries[1]),
            &e,
            None
        )
        .await
        .0,
        410,
        "a message body moved into the journal does not open"
    );

    // PROOF 16: the employee's erasure (subject key destroyed) shreds their journal and the
    // conversation; the practitioner's note stays readable to its author.
    let mut tx = sqlx::Connection::begin(&mut owner).await.unwrap();
    app.state
        .keyring
        .destroy_subject(&mut tx, app.tenant_a, emp)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (_, page) = api(&app, Method::GET, &msgs, &p, None).await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["unreadable"] == true),
        "{page}"
    );
    let (s, problem) = api(
        &app,
        Method::POST,
        &msgs,
        &p,
        Some(json!({"body": "still there?"})),
    )
    .await;
    assert_eq!((s, problem["code"].as_str()), (410, Some("key_destroyed")));
    let (s, problem) = api(
        &app,
        Method::POST,
        "/api/v1/journal",
        &e,
        Some(json!({"text": "new"})),
    )
    .await;
    assert_eq!((s, problem["code"].as_str()), (410, Some("key_destroyed")));
    let (s, read) = api(
        &app,
        Method::GET,
        &format!("/api/v1/notes/{note}"),
        &p,
        None,
    )
    .await;
    assert_eq!((s, read["text"].as_str()), (200, Some("after rotation")));
    let row = sqlx::query(
        "SELECT count(*) FROM subject_keys WHERE subject_id = $1 AND wrapped_key IS NOT NULL",
    )
    .bind(emp.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(row.get::<i64, _>(0), 0);
}

#[tokio::test]
async fn retention_prunes_superseded_versions_deleted_notes_and_closed_conversations_only() {
    let app = TestApp::spawn_with(|s| {
        s.env.insert("CLINICAL_RETENTION_DAYS".into(), "1".into());
    })
    .await;
    let (doc, emp, c) = care(&app).await;
    let p = tok(&app, doc, Role::Practitioner).await;
    let e = tok(&app, emp, Role::Employee).await;
    let notes = format!("/api/v1/consultations/{c}/notes");
    // A note edited once, a note deleted, a note left alone.
    let (_, edited) = api(&app, Method::POST, &notes, &p, Some(json!({"text": "v1"}))).await;
    let edited = edited["id"].as_str().unwrap().to_owned();
    let one = format!("/api/v1/notes/{edited}");
    assert_eq!(
        api(
            &app,
            Method::PUT,
            &one,
            &p,
            Some(json!({"version": 1, "text": "v2"}))
        )
        .await
        .0,
        200
    );
    let (_, gone) = api(
        &app,
        Method::POST,
        &notes,
        &p,
        Some(json!({"text": "to delete"})),
    )
    .await;
    let gone = gone["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api(
            &app,
            Method::DELETE,
            &format!("/api/v1/notes/{gone}"),
            &p,
            None
        )
        .await
        .0,
        204
    );
    let (_, kept) = api(
        &app,
        Method::POST,
        &notes,
        &p,
        Some(json!({"text": "kept"})),
    )
    .await;
    let kept = kept["id"].as_str().unwrap().to_owned();
    // A conversation on this consultation, and one on an older consultation whose window closed.
    let msgs = format!("/api/v1/consultations/{c}/messages");
    assert_eq!(
        api(
            &app,
            Method::POST,
            &msgs,
            &e,
            Some(json!({"body": "open window"}))
        )
        .await
        .0,
        201
    );
    let t = (next_hour(&app) + time::Duration::hours(6))
        .format(&Rfc3339)
        .unwrap();
    let (_, old) = book(&app, "alpha", &e, booking(doc, &t), None).await;
    let old = old["id"].as_str().unwrap().to_owned();
    let old_msgs = format!("/api/v1/consultations/{old}/messages");
    for body in ["one", "two"] {
        assert_eq!(
            api(
                &app,
                Method::POST,
                &old_msgs,
                &p,
                Some(json!({"body": body}))
            )
            .await
            .0,
            201
        );
    }
    let mut owner = app.owner().await;
    // Time passes (as the owner: the database's clock cannot be moved): version 2 was written
    // two days ago, the deletion too, and the older consultation ended 40 days ago.
    sqlx::query(
        "UPDATE clinical_note_versions SET created_at = now() - interval '2 days'
                 WHERE note_id = $1::uuid AND version = 2",
    )
    .bind(&edited)
    .execute(&mut owner)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE clinical_notes SET deleted_at = now() - interval '2 days' WHERE id = $1::uuid",
    )
    .bind(&gone)
    .execute(&mut owner)
    .await
    .unwrap();
    sqlx::query("UPDATE consultations SET created_at = now() - interval '50 days',
                        starts_at = now() - interval '41 days', ends_at = now() - interval '41 days' + interval '1 hour'
                 WHERE id = $1::uuid")
        .bind(&old).execute(&mut owner).await.unwrap();

    let pruned = serein::jobs::JobWorker::from_state(&app.state)
        .prune()
        .await
        .unwrap();
    assert!(pruned >= 5, "pruned {pruned}");
    let versions = |note: &str| {
        let note = note.to_owned();
        let app = &app;
        async move {
            sqlx::query_scalar::<_, i32>("SELECT version FROM clinical_note_versions WHERE note_id = $1::uuid ORDER BY version")
                .bind(note)
                .fetch_all(&mut app.owner().await)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        versions(&edited).await,
        vec![2],
        "the superseded version went, the current stayed"
    );
    assert!(versions(&gone).await.is_empty());
    assert_eq!(
        count(
            &mut owner,
            &format!("SELECT count(*) FROM clinical_notes WHERE id = '{gone}'")
        )
        .await,
        0
    );
    assert_eq!(
        versions(&kept).await,
        vec![1],
        "a live note's only version stays"
    );
    assert_eq!(api(&app, Method::GET, &one, &p, None).await.1["text"], "v2");
    // The closed conversation, its read marks and its notifications are gone; the open one stays.
    for (sql, expect) in [
        (
            format!("SELECT count(*) FROM messages WHERE consultation_id = '{old}'"),
            0,
        ),
        (
            format!("SELECT count(*) FROM message_reads WHERE consultation_id = '{old}'"),
            0,
        ),
        (
            format!(
                "SELECT count(*) FROM notifications WHERE consultation_id = '{old}' AND kind = 'message_received'"
            ),
            0,
        ),
        (
            format!("SELECT count(*) FROM messages WHERE consultation_id = '{c}'"),
            1,
        ),
        (
            format!("SELECT message_seq FROM consultations WHERE id = '{old}'"),
            2,
        ),
    ] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(&mut owner)
            .await
            .unwrap();
        assert_eq!(n, expect, "{sql}");
    }
}

#[tokio::test]
async fn only_a_proven_tenant_admin_changes_the_company_message_window() {
    let app = TestApp::spawn().await;
    sqlx::query("UPDATE tenants SET managed_by = 'api' WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    let (admin, t) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let mut conn = app.owner().await;
    // A claimed role without the session's proof changes nothing.
    as_app_with_roles(&mut conn, Some(app.tenant_a), Some(admin), "tenant_admin").await;
    let done = sqlx::query("UPDATE tenants SET message_retention_days = 0 WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 0);
    conn.execute("ROLLBACK").await.unwrap();
    // An employee's proven session claiming the role changes nothing either.
    let (emp, _) = employee(&app, app.tenant_a, "alpha").await;
    assert!(as_member_with_session_roles(&mut conn, app.tenant_a, emp, "employee").await);
    sqlx::query("SELECT set_config('app.roles', 'tenant_admin', true)")
        .execute(&mut conn)
        .await
        .unwrap();
    let done = sqlx::query("UPDATE tenants SET message_retention_days = 0 WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 0);
    conn.execute("ROLLBACK").await.unwrap();
    // Through the API, the proven tenant admin sets it; bad values are refused.
    let t = {
        let _ = t;
        tok(&app, admin, Role::TenantAdmin).await
    };
    for bad in [json!(-1), json!(366), json!("30")] {
        let (s, _) = api(
            &app,
            Method::PATCH,
            "/api/v1/tenant",
            &t,
            Some(json!({"message_retention_days": bad})),
        )
        .await;
        assert_eq!(s, 422, "{bad}");
    }
    let (s, settings) = api(
        &app,
        Method::PATCH,
        "/api/v1/tenant",
        &t,
        Some(json!({"message_retention_days": 7})),
    )
    .await;
    assert_eq!(
        (s, settings["message_retention_days"].as_i64()),
        (200, Some(7)),
        "{settings}"
    );
}
