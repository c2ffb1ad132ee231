//! `POST /api/v1/members/import`: CSV format, validation first (nothing applied on a bad row
//! unless `?partial=true`), idempotence, seats, limits, and who may call it.

use reqwest::Method;
use serde_json::Value;
use sqlx::PgConnection;

use crate::helpers::TestApp;
use crate::people::*;
use serein::crypto::tokens::{hash_token, parse_record_token};
use serein::db::{TenantId, UserId};
use serein::rbac::Role;

const PATH: &str = "/api/v1/members/import";
const HEADER: &str = "email,first_name,last_name,department,role\n";

async fn import_as(
    app: &TestApp,
    token: &str,
    query: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    app.req(Method::POST, &host("alpha"), &format!("{PATH}{query}"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn import(
    app: &TestApp,
    token: &str,
    query: &str,
    csv: impl Into<reqwest::Body>,
) -> reqwest::Response {
    import_as(app, token, query, "text/csv", csv).await
}

/// A tenant admin of A with a live session (and TOTP, as admins need).
async fn admin(app: &TestApp) -> (UserId, String) {
    member_session(app, &[Role::TenantAdmin]).await
}

async fn set_seats(app: &TestApp, tenant: TenantId, seats: i32) {
    sqlx::query("UPDATE tenants SET seats = $2 WHERE id = $1")
        .bind(tenant.as_uuid())
        .bind(seats)
        .execute(&mut app.owner().await)
        .await
        .unwrap();
}

#[derive(Debug, PartialEq, Eq)]
struct Invitation {
    email: String,
    roles: Vec<String>,
    department: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

async fn invitations(conn: &mut PgConnection, tenant: TenantId) -> Vec<Invitation> {
    sqlx::query_as::<
        _,
        (
            String,
            Vec<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ),
    >(
        "SELECT email, roles, department, first_name, last_name FROM invitations
         WHERE tenant_id = $1 ORDER BY email",
    )
    .bind(tenant.as_uuid())
    .fetch_all(conn)
    .await
    .unwrap()
    .into_iter()
    .map(
        |(email, roles, department, first_name, last_name)| Invitation {
            email,
            roles,
            department,
            first_name,
            last_name,
        },
    )
    .collect()
}

async fn count(conn: &mut PgConnection, sql: &str, tenant: TenantId) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(tenant.as_uuid())
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn mails(conn: &mut PgConnection, tenant: TenantId) -> i64 {
    count(
        conn,
        "SELECT count(*) FROM email_outbox WHERE tenant_id = $1 AND template = 'invitation'",
        tenant,
    )
    .await
}

async fn membership(
    conn: &mut PgConnection,
    user: UserId,
) -> (Vec<String>, Option<String>, String) {
    sqlx::query_as("SELECT roles, department, status FROM memberships WHERE user_id = $1")
        .bind(user.as_uuid())
        .fetch_one(conn)
        .await
        .unwrap()
}

fn inv(
    email: &str,
    role: &str,
    department: Option<&str>,
    first: Option<&str>,
    last: Option<&str>,
) -> Invitation {
    Invitation {
        email: email.into(),
        roles: vec![role.into()],
        department: department.map(Into::into),
        first_name: first.map(Into::into),
        last_name: last.map(Into::into),
    }
}

#[tokio::test]
async fn a_file_invites_new_people_and_updates_members() {
    let app = TestApp::spawn().await;
    let (admin_id, token) = admin(&app).await;
    let member = add_person(&app, app.tenant_a, "maria@alpha.test", &["employee"]).await;
    let steady = add_person(&app, app.tenant_a, "sam@alpha.test", &["hr"]).await;
    let csv = format!(
        "{HEADER}\
         Ann@Alpha.test,Ann,Lee,Sales,\n\
         bob@alpha.test,,,,hr\n\
         carl@alpha.test,Carl,Nash,,tenant_admin\n\
         maria@alpha.test,Maria,,Finance,hr\n\
         sam@alpha.test,,,,hr\n"
    );
    let res = import(&app, &token, "", csv).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["rows"], 5);
    assert_eq!(body["invited"], 3);
    assert_eq!(body["updated"], 1);
    assert_eq!(body["unchanged"], 1);
    assert_eq!(body["errors"], serde_json::json!([]));
    assert_eq!(body["error_count"], 0);
    assert_eq!(body["errors_truncated"], false);
    assert_eq!(body["applied"], true);

    let mut owner = app.owner().await;
    assert_eq!(
        invitations(&mut owner, app.tenant_a).await,
        vec![
            inv(
                "ann@alpha.test",
                "employee",
                Some("Sales"),
                Some("Ann"),
                Some("Lee")
            ),
            inv("bob@alpha.test", "hr", None, None, None),
            inv(
                "carl@alpha.test",
                "tenant_admin",
                None,
                Some("Carl"),
                Some("Nash")
            ),
        ]
    );
    // The member's roles and department were updated; the other was left as it was.
    assert_eq!(
        membership(&mut owner, member).await,
        (vec!["hr".into()], Some("Finance".into()), "active".into())
    );
    assert_eq!(
        membership(&mut owner, steady).await,
        (vec!["hr".into()], None, "active".into())
    );
    // Each invitation: the importer as inviter, 7 days, and one e-mail whose link carries the
    // token whose hash (only) is stored.
    type Issued = (
        uuid::Uuid,
        String,
        Vec<u8>,
        Option<uuid::Uuid>,
        time::OffsetDateTime,
    );
    let rows: Vec<Issued> = sqlx::query_as(
        "SELECT id, email, token_hash, invited_by, expires_at FROM invitations
             WHERE tenant_id = $1",
    )
    .bind(app.tenant_a.as_uuid())
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert_eq!(mails(&mut owner, app.tenant_a).await, 3);
    for (id, email, hash, invited_by, expires_at) in rows {
        assert_eq!(invited_by, Some(admin_id.as_uuid()));
        let off = expires_at - (app.clock.now() + time::Duration::days(7));
        assert!(
            off.abs() < time::Duration::milliseconds(1),
            "{email} expires in 7 days"
        );
        let (to, body): (String, String) = sqlx::query_as(
            "SELECT to_address, body_text FROM email_outbox
             WHERE tenant_id = $1 AND template = 'invitation' AND to_address = $2",
        )
        .bind(app.tenant_a.as_uuid())
        .bind(&email)
        .fetch_one(&mut owner)
        .await
        .unwrap();
        assert_eq!(to, email);
        let token = body
            .split_whitespace()
            .find_map(|w| w.split("/invitations/accept?token=").nth(1))
            .expect("an acceptance link")
            .to_owned();
        let (named, token_hash) = parse_record_token(&token).unwrap();
        assert_eq!(named, id);
        assert_eq!(token_hash.to_vec(), hash);
        assert_eq!(hash_token(&token).to_vec(), hash);
        assert!(body.contains("alpha.localhost"), "link on the company host");
    }
}

#[tokio::test]
async fn importing_the_same_file_twice_changes_nothing_the_second_time() {
    let app = TestApp::spawn().await;
    let (_, token) = admin(&app).await;
    add_person(&app, app.tenant_a, "maria@alpha.test", &["employee"]).await;
    let csv = format!(
        "{HEADER}ann@alpha.test,Ann,,Sales,\nbob@alpha.test,,,,hr\nmaria@alpha.test,,,Finance,\n"
    );
    let first: Value = import(&app, &token, "", csv.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (first["invited"].as_u64(), first["updated"].as_u64()),
        (Some(2), Some(1))
    );
    let mut owner = app.owner().await;
    let before: Vec<(uuid::Uuid, Vec<u8>, time::OffsetDateTime)> =
        sqlx::query_as("SELECT id, token_hash, updated_at FROM invitations ORDER BY id")
            .fetch_all(&mut owner)
            .await
            .unwrap();

    app.clock.advance(time::Duration::minutes(5));
    let res = import(&app, &token, "", csv).await;
    assert_eq!(res.status(), 200);
    let second: Value = res.json().await.unwrap();
    assert_eq!(second["rows"], 3);
    assert_eq!(second["invited"], 0);
    assert_eq!(second["updated"], 0);
    assert_eq!(second["unchanged"], 3);
    let after: Vec<(uuid::Uuid, Vec<u8>, time::OffsetDateTime)> =
        sqlx::query_as("SELECT id, token_hash, updated_at FROM invitations ORDER BY id")
            .fetch_all(&mut owner)
            .await
            .unwrap();
    assert_eq!(before, after, "no new token, no touched row");
    assert_eq!(mails(&mut owner, app.tenant_a).await, 2, "no second e-mail");
}

#[tokio::test]
async fn pending_invitations_are_updated_without_a_new_mail_and_expired_ones_are_renewed() {
    let app = TestApp::spawn().await;
    let (_, token) = admin(&app).await;
    let csv = format!("{HEADER}ann@alpha.test,Ann,,Sales,\nbob@alpha.test,Bob,,,\n");
    assert_eq!(import(&app, &token, "", csv).await.status(), 200);
    let mut owner = app.owner().await;
    // Bob's invitation has expired; Ann's is still pending.
    sqlx::query("UPDATE invitations SET expires_at = $1 WHERE email = 'bob@alpha.test'")
        .bind(app.clock.now() - time::Duration::minutes(1))
        .execute(&mut owner)
        .await
        .unwrap();
    let old_bob: Vec<u8> =
        sqlx::query_scalar("SELECT token_hash FROM invitations WHERE email = 'bob@alpha.test'")
            .fetch_one(&mut owner)
            .await
            .unwrap();

    // Blank cells keep what the invitation says; given ones replace it.
    let csv = format!("{HEADER}ann@alpha.test,,Lee,,hr\nbob@alpha.test,,,,\n");
    let body: Value = import(&app, &token, "", csv).await.json().await.unwrap();
    assert_eq!(body["invited"], 1, "{body}");
    assert_eq!(body["updated"], 1);
    assert_eq!(body["unchanged"], 0);
    assert_eq!(
        invitations(&mut owner, app.tenant_a).await,
        vec![
            inv(
                "ann@alpha.test",
                "hr",
                Some("Sales"),
                Some("Ann"),
                Some("Lee")
            ),
            inv("bob@alpha.test", "employee", None, Some("Bob"), None),
        ]
    );
    let (new_bob, expires): (Vec<u8>, time::OffsetDateTime) = sqlx::query_as(
        "SELECT token_hash, expires_at FROM invitations WHERE email = 'bob@alpha.test'",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_ne!(new_bob, old_bob, "renewed with a new token");
    assert!(expires > app.clock.now() + time::Duration::days(6));
    assert_eq!(
        mails(&mut owner, app.tenant_a).await,
        3,
        "one more mail, for Bob only"
    );
    let to_bob = count(
        &mut owner,
        "SELECT count(*) FROM email_outbox WHERE tenant_id = $1 AND to_address = 'bob@alpha.test'",
        app.tenant_a,
    )
    .await;
    assert_eq!(to_bob, 2);
}

#[tokio::test]
async fn bom_semicolons_and_quoted_fields_are_read() {
    let app = TestApp::spawn().await;
    let (_, token) = admin(&app).await;
    // Header in another order and case, CRLF, a quoted separator, doubled quotes, a quoted line
    // break (not allowed in a name, so it must be reported on the right row), a blank line.
    let csv = "\u{feff}Role ; EMAIL;Department;First_Name;last_name\r\n\
               hr;ann@alpha.test;\"R&D; \"\"Labs\"\"\";\"Ann-Marie\";\"O'Neil; Jr\"\r\n\
               ;bob@alpha.test;\"Sales, EMEA\";Bob;\r\n\
               \r\n\
               ;carl@alpha.test;;\"Carl\r\nSecond line\";\r\n\
               employee;dora@alpha.test;;;\"Smith\"\r\n";
    let res = import(&app, &token, "?partial=true", csv.as_bytes().to_vec()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["rows"], 4, "{body}");
    assert_eq!(body["invited"], 3);
    assert_eq!(
        body["errors"],
        serde_json::json!([{"row": 5, "field": "first_name",
            "reason": "must not contain line breaks or other control characters"}])
    );
    let mut owner = app.owner().await;
    assert_eq!(
        invitations(&mut owner, app.tenant_a).await,
        vec![
            inv(
                "ann@alpha.test",
                "hr",
                Some("R&D; \"Labs\""),
                Some("Ann-Marie"),
                Some("O'Neil; Jr")
            ),
            inv(
                "bob@alpha.test",
                "employee",
                Some("Sales, EMEA"),
                Some("Bob"),
                None
            ),
            inv("dora@alpha.test", "employee", None, None, Some("Smith")),
        ]
    );
}

/// A file with one valid row and a bad row of every kind, with the report it must get.
fn bad_file(admin_email: &str) -> (String, Value) {
    let long = "x".repeat(121);
    let csv = format!(
        "{HEADER}\
         ok@alpha.test,Ann,Lee,Sales,employee\n\
         not-an-email,,,,\n\
         ,Bob,,,\n\
         two@alpha.test,\"Multi\nline\",,,hr\n\
         three@alpha.test,,,,practitioner\n\
         four@alpha.test,,,{long},boss\n\
         OK@alpha.test,,,,\n\
         a,b\n\
         {admin_email},,,,employee\n\
         prac@alpha.test,,,,\n"
    );
    let report = serde_json::json!([
        {"row": 3, "field": "email", "reason": "is not a valid e-mail address"},
        {"row": 4, "field": "email", "reason": "is required"},
        {"row": 5, "field": "first_name", "reason": "must not contain line breaks or other control characters"},
        {"row": 7, "field": "role", "reason": "practitioners are assigned by the platform, not imported"},
        {"row": 8, "field": "department", "reason": "must be at most 120 characters"},
        {"row": 8, "field": "role", "reason": "must be one of employee, hr, tenant_admin"},
        {"row": 9, "field": "email", "reason": "appears more than once in the file (first on row 2)"},
        {"row": 10, "field": "row", "reason": "has 2 fields; the header has 5"},
        {"row": 11, "field": "email", "reason": "is your own address: you cannot change your own role by import"},
        {"row": 12, "field": "email", "reason": "belongs to a practitioner of the platform's network, who is not managed by import"},
    ]);
    (csv, report)
}

async fn admin_email(app: &TestApp, user: UserId) -> String {
    sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(user.as_uuid())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_rows_are_reported_by_row_and_field_and_nothing_is_applied() {
    let app = TestApp::spawn().await;
    let (admin_id, token) = admin(&app).await;
    add_person(&app, app.tenant_a, "prac@alpha.test", &["practitioner"]).await;
    let member = add_person(&app, app.tenant_a, "ok@alpha.test", &["employee"]).await;
    let (csv, report) = bad_file(&admin_email(&app, admin_id).await);
    let res = import(&app, &token, "", csv).await;
    assert_eq!(res.status(), 422);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "rows_rejected");
    assert_eq!(body["rows"], 10);
    assert_eq!(body["errors"], report, "{body:#}");
    assert_eq!(body["error_count"], 10);
    assert_eq!(body["errors_truncated"], false);
    assert_eq!(body["applied"], false);
    // Nothing applied: the valid row's member is untouched, no invitation, no mail, and the
    // admin is still an admin.
    let mut owner = app.owner().await;
    assert!(invitations(&mut owner, app.tenant_a).await.is_empty());
    assert_eq!(mails(&mut owner, app.tenant_a).await, 0);
    assert_eq!(
        membership(&mut owner, member).await,
        (vec!["employee".into()], None, "active".into())
    );
    assert_eq!(
        membership(&mut owner, admin_id).await.0,
        vec!["tenant_admin".to_owned()]
    );
}

#[tokio::test]
async fn with_partial_the_valid_rows_are_applied_and_the_bad_ones_reported() {
    let app = TestApp::spawn().await;
    let (admin_id, token) = admin(&app).await;
    add_person(&app, app.tenant_a, "prac@alpha.test", &["practitioner"]).await;
    let (csv, report) = bad_file(&admin_email(&app, admin_id).await);
    let res = import(&app, &token, "?partial=true", csv).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["applied"], true);
    assert_eq!(body["rows"], 10);
    assert_eq!(body["invited"], 1);
    assert_eq!(body["updated"], 0);
    assert_eq!(body["unchanged"], 0);
    assert_eq!(body["errors"], report);
    let mut owner = app.owner().await;
    assert_eq!(
        invitations(&mut owner, app.tenant_a).await,
        vec![inv(
            "ok@alpha.test",
            "employee",
            Some("Sales"),
            Some("Ann"),
            Some("Lee")
        )]
    );
    assert_eq!(mails(&mut owner, app.tenant_a).await, 1);
    assert_eq!(
        membership(&mut owner, admin_id).await.0,
        vec!["tenant_admin".to_owned()]
    );
}

#[tokio::test]
async fn a_bad_header_or_a_broken_file_is_refused_as_a_whole() {
    let app = TestApp::spawn().await;
    let (_, token) = admin(&app).await;
    let res = import(
        &app,
        &token,
        "",
        "Email,first_name,surname,department,email\nx@alpha.test,,,,\n",
    )
    .await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "validation_failed");
    let reasons: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["field"], "header");
            e["reason"].as_str().unwrap()
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("unknown column \"surname\"")),
        "{reasons:?}"
    );
    assert!(reasons.contains(&"column \"email\" appears twice"));
    assert!(reasons.contains(&"missing column \"last_name\""));
    assert!(reasons.contains(&"missing column \"role\""));

    let res = import(&app, &token, "", "").await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "file");

    // Invalid UTF-8 is a row error (never a 500), the rest of the file still read.
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(b"ann@alpha.test,\xff\xfe,,,\nbob@alpha.test,,,,\n");
    let res = import(&app, &token, "", bytes).await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["errors"],
        serde_json::json!([{"row": 2, "field": "first_name", "reason": "is not valid UTF-8"}])
    );
    assert_eq!(body["rows"], 2);
    assert!(
        invitations(&mut app.owner().await, app.tenant_a)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn past_the_seat_limit_nothing_is_applied_even_with_partial() {
    let app = TestApp::spawn().await;
    let (_, token) = admin(&app).await;
    let member = add_person(&app, app.tenant_a, "maria@alpha.test", &["employee"]).await;
    // Two seats taken (the admin, Maria); three left.
    set_seats(&app, app.tenant_a, 5).await;
    let csv = format!(
        "{HEADER}maria@alpha.test,,,Finance,\na@alpha.test,,,,\nb@alpha.test,,,,\nc@alpha.test,,,,\nd@alpha.test,,,,\n"
    );
    for query in ["", "?partial=true"] {
        let res = import(&app, &token, query, csv.clone()).await;
        assert_eq!(res.status(), 409, "{query}");
        assert_eq!(problem_code(res).await, "seat_limit_reached");
        let mut owner = app.owner().await;
        assert!(invitations(&mut owner, app.tenant_a).await.is_empty());
        assert_eq!(mails(&mut owner, app.tenant_a).await, 0);
        assert_eq!(
            membership(&mut owner, member).await.1,
            None,
            "department unchanged"
        );
    }
    // Exactly at the limit is fine.
    let csv = format!("{HEADER}a@alpha.test,,,,\nb@alpha.test,,,,\nc@alpha.test,,,,\n");
    let res = import(&app, &token, "", csv).await;
    assert_eq!(res.status(), 200);
}

async fn problem_code(res: reqwest::Response) -> String {
    let body: Value = res.json().await.unwrap();
    body["code"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn fifty_thousand_rows_are_streamed_and_applied() {
    let app = TestApp::spawn().await;
    let (_, token) = admin(&app).await;
    set_seats(&app, app.tenant_a, 100_000).await;
    let mut csv = String::from(HEADER);
    for i in 0..50_000 {
        csv.push_str(&format!(
            "person{i:05}@alpha.test,First{i},Last{i},Department {},{}\n",
            i % 40,
            if i % 100 == 0 { "hr" } else { "employee" }
        ));
    }
    assert!(
        csv.len() > 2 * 1024 * 1024,
        "more than the global body limit"
    );
    let started = std::time::Instant::now();
    let res = import(&app, &token, "", csv).await;
    let elapsed = started.elapsed();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    eprintln!("50,000-row import took {elapsed:?}");
    assert_eq!(body["rows"], 50_000);
    assert_eq!(body["invited"], 50_000);
    assert_eq!(body["error_count"], 0);
    let mut owner = app.owner().await;
    assert_eq!(
        count(
            &mut owner,
            "SELECT count(*) FROM invitations WHERE tenant_id = $1",
            app.tenant_a
        )
        .await,
        50_000
    );
    assert_eq!(
        count(
            &mut owner,
            "SELECT count(*) FROM invitations WHERE tenant_id = $1 AND roles = ARRAY['hr']",
            app.tenant_a
        )
        .await,
        500
    );
    assert_eq!(mails(&mut owner, app.tenant_a).await, 50_000);
    assert_eq!(
        count(
            &mut owner,
            "SELECT count(DISTINCT token_hash) FROM invitations WHERE tenant_id = $1",
            app.tenant_a
        )
        .await,
        50_000
    );
}

#[tokio::test]
async fn only_csv_is_accepted() {
    let app = TestApp::spawn().await;
    let (_, token) = admin(&app).await;
    let csv = format!("{HEADER}ann@alpha.test,,,,\n");
    for ct in ["application/json", "text/plain", "text/csv; charset=latin1"] {
        let res = import_as(&app, &token, "", ct, csv.clone()).await;
        assert_eq!(res.status(), 415, "{ct}");
        assert_eq!(problem_code(res).await, "unsupported_media_type");
    }
    let res = app
        .req(Method::POST, &host("alpha"), PATH)
        .bearer_auth(&token)
        .body(csv.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let res = import_as(&app, &token, "", "application/csv; charset=utf-8", csv).await;
    assert_eq!(res.status(), 200);
    let res = import(&app, &token, "?partial=yes", "").await;
    assert_eq!(res.status(), 400, "a malformed query is refused");
}

#[tokio::test]
async fn a_body_over_the_import_limit_is_413_declared_or_streamed() {
    let app = TestApp::spawn_with(|s| {
        s.env.insert("IMPORT_MAX_BYTES".into(), "4096".into());
    })
    .await;
    let (_, token) = admin(&app).await;
    let mut csv = String::from(HEADER);
    for i in 0..400 {
        csv.push_str(&format!("p{i}@alpha.test,,,,\n"));
    }
    assert!(csv.len() > 4096);
    // Declared length.
    let res = import(&app, &token, "", csv.clone()).await;
    assert_eq!(res.status(), 413);
    assert_eq!(problem_code(res).await, "payload_too_large");
    // No declared length (chunked): counted while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        csv.as_bytes().chunks(500).map(|c| Ok(c.to_vec())).collect();
    let res = import(
        &app,
        &token,
        "",
        reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
    )
    .await;
    assert_eq!(res.status(), 413);
    assert!(
        invitations(&mut app.owner().await, app.tenant_a)
            .await
            .is_empty()
    );
    // Under the limit, streamed in small chunks: fine.
    let small = format!("{HEADER}ann@alpha.test,,,,\nbob@alpha.test,,,,\n");
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        small.as_bytes().chunks(3).map(|c| Ok(c.to_vec())).collect();
    let res = import(
        &app,
        &token,
        "",
        reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
    )
    .await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn only_tenant_admins_import() {
    let app = TestApp::spawn().await;
    let csv = format!("{HEADER}ann@alpha.test,,,,\n");
    let res = app
        .req(Method::POST, &host("alpha"), PATH)
        .header("content-type", "text/csv")
        .body(csv.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    for role in [Role::Hr, Role::Employee, Role::Practitioner] {
        let (_, token) = member_session(&app, &[role]).await;
        let res = import(&app, &token, "", csv.clone()).await;
        assert_eq!(res.status(), 403, "{role:?}");
    }
    // Tenant B's admin cannot import into A with B's token (another audience).
    let b_admin = add_person(&app, app.tenant_b, "boss@bravo.test", &["tenant_admin"]).await;
    let (_, b_token) = mint_session(
        &app,
        app.tenant_b,
        &host("bravo"),
        b_admin,
        &[Role::TenantAdmin],
    )
    .await;
    let res = import(&app, &b_token, "", csv.clone()).await;
    assert_eq!(res.status(), 401);
    // On B's host, B's admin imports into B only.
    let res = app
        .req(Method::POST, &host("bravo"), PATH)
        .bearer_auth(&b_token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut owner = app.owner().await;
    assert!(invitations(&mut owner, app.tenant_a).await.is_empty());
    assert_eq!(invitations(&mut owner, app.tenant_b).await.len(), 1);
}
