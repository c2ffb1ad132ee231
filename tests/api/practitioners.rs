//! The practitioner network (issue 4 items 6, 7): platform creation with the welcome link,
//! self-service profile edits, the company directory (isolation, filters, full-text search,
//! keyset pagination) and matching.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::helpers::{TestApp, as_app_with_roles, problem};
use crate::people::*;
use serein::db::{TenantId, UserId};
use serein::practitioners::model::Specialty;
use serein::rbac::Role;

const PLATFORM: &str = "localhost";

/// A platform admin's live token on the platform host.
async fn platform_token(app: &TestApp) -> String {
    let email = format!("{}@platform.test", uuid::Uuid::now_v7().simple());
    let user = add_person(app, app.tenant_a, &email, &[]).await;
    make_platform_admin(app, user).await;
    let (_, t) = mint_session(
        app,
        TenantId::PLATFORM,
        PLATFORM,
        user,
        &[Role::PlatformAdmin],
    )
    .await;
    t
}

/// A practitioner arranged as the owner: identity with `PASSWORD`, profile, and an active
/// practitioner membership in each of `tenants`.
#[allow(clippy::too_many_arguments)]
pub async fn add_practitioner(
    app: &TestApp,
    owner: &mut PgConnection,
    name: &str,
    specialties: &[&str],
    languages: &[&str],
    bio: &str,
    verified: bool,
    tenants: &[TenantId],
) -> UserId {
    let email = format!("{}@practice.test", uuid::Uuid::now_v7().simple());
    let id = add_person_on(app, owner, app.tenant_a, &email, &[]).await;
    sqlx::query("UPDATE users SET display_name = $2 WHERE id = $1")
        .bind(id.as_uuid())
        .bind(name)
        .execute(&mut *owner)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO practitioner_profiles (user_id, specialties, languages, bio, licence_number,
                                            licence_country, verified_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'LIC-1', 'FR', CASE WHEN $5 THEN now() END, now(), now())",
    )
    .bind(id.as_uuid())
    .bind(
        specialties
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>(),
    )
    .bind(
        languages
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>(),
    )
    .bind(bio)
    .bind(verified)
    .execute(&mut *owner)
    .await
    .unwrap();
    for t in tenants {
        assign(owner, *t, id).await;
    }
    id
}

/// The practitioner membership the platform's assignment route creates (arranged as owner).
async fn assign(owner: &mut PgConnection, tenant: TenantId, user: UserId) {
    sqlx::query(
        "INSERT INTO memberships (id, tenant_id, user_id, roles) VALUES ($1, $2, $3, '{practitioner}')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
}

async fn send(
    app: &TestApp,
    method: Method,
    host: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut r = app.req(method, host, path).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

async fn get_json(app: &TestApp, host: &str, path: &str, token: &str) -> Value {
    let res = call(app, Method::GET, host, path, token).await;
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i.get("user_id")
                .or_else(|| i["practitioner"].get("user_id"))
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn new_practitioner_body(email: &str) -> Value {
    json!({
        "email": email,
        "display_name": "Dr Camille Martin",
        "specialties": ["anxiety", "sleep"],
        "languages": ["fr", "EN"],
        "bio": "Thérapies cognitives et comportementales.",
        "licence_number": "ADELI-123456",
        "licence_country": "FR",
        "verified": true,
        "locale": "fr"
    })
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_specialty_enum_is_the_database_vocabulary() {
    let app = TestApp::spawn().await;
    let db: Vec<String> = sqlx::query_scalar("SELECT app.practitioner_specialties()")
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    let rust: Vec<String> = Specialty::ALL
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    assert_eq!(db, rust);
}

#[tokio::test]
async fn platform_creates_a_practitioner_who_sets_a_password_and_logs_in_on_a_company_host() {
    let app = TestApp::spawn().await;
    let token = platform_token(&app).await;
    let email = "camille@practice.test";
    let res = send(
        &app,
        Method::POST,
        PLATFORM,
        "/api/v1/platform/practitioners",
        &token,
        Some(new_practitioner_body(email)),
    )
    .await;
    // 202 with the same body for every address (no account oracle).
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({ "email": email }));
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    let p = &get_json(
        &app,
        PLATFORM,
        &format!("/api/v1/platform/practitioners/{id}"),
        &token,
    )
    .await;
    assert_eq!(p["email"], email);
    assert_eq!(p["specialties"], json!(["anxiety", "sleep"]));
    assert_eq!(p["languages"], json!(["fr", "en"]));
    assert_eq!(p["verified"], true);
    assert_eq!(p["licence_country"], "FR");
    let user: uuid::Uuid = p["user_id"].as_str().unwrap().parse().unwrap();

    // Rows: identity without a password, profile, one set-password token in the platform
    // tenant, and the welcome mail (French) queued in the platform tenant.
    let mut owner = app.owner().await;
    let (hash, verified): (Option<String>, Option<time::OffsetDateTime>) = sqlx::query_as(
        "SELECT u.password_hash, p.verified_at FROM users u JOIN practitioner_profiles p ON p.user_id = u.id WHERE u.id = $1",
    )
    .bind(user)
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert!(hash.is_none() && verified.is_some());
    let tokens: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM auth_tokens WHERE user_id = $1 AND tenant_id = $2 AND purpose = 'password_reset'",
    )
    .bind(user)
    .bind(TenantId::PLATFORM.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(tokens, 1);
    let (tenant, locale, text): (uuid::Uuid, String, String) = sqlx::query_as(
        "SELECT tenant_id, locale, body_text FROM email_outbox WHERE to_address = $1 AND template = 'practitioner_welcome'",
    )
    .bind(email)
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(tenant, TenantId::PLATFORM.as_uuid());
    assert_eq!(locale, "fr");
    assert!(text.contains("72 heures"), "{text}");
    let at = text.find("token=").unwrap() + "token=".len();
    let link_token = text[at..].split_whitespace().next().unwrap().to_owned();
    assert!(text.contains(&format!("http://{PLATFORM}")) || text.contains(PLATFORM));

    // Assigned to alpha (the assignment route is another feature's: arranged here).
    assign(&mut owner, app.tenant_a, UserId(user)).await;

    // No password yet: login fails.
    let res = post(
        &app,
        &host("alpha"),
        "/api/v1/auth/login",
        json!({"email": email, "password": "a brand new passphrase 42"}),
    )
    .await;
    assert_eq!(res.status(), 401);

    // The link sets the password on the platform host…
    let res = post(
        &app,
        PLATFORM,
        "/api/v1/auth/password/reset",
        json!({"token": link_token, "password": "a brand new passphrase 42"}),
    )
    .await;
    assert_eq!(res.status(), 204);
    // … once.
    let res = post(
        &app,
        PLATFORM,
        "/api/v1/auth/password/reset",
        json!({"token": link_token, "password": "another passphrase 4242"}),
    )
    .await;
    assert_eq!(res.status(), 410);

    // The practitioner logs in on alpha and gets an alpha token with the practitioner role.
    let res = post(
        &app,
        &host("alpha"),
        "/api/v1/auth/login",
        json!({"email": email, "password": "a brand new passphrase 42"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let session: Value = res.json().await.unwrap();
    let access = session["access_token"].as_str().unwrap();
    let me = get_json(&app, &host("alpha"), "/api/v1/auth/me", access).await;
    assert_eq!(me["roles"], json!(["practitioner"]));
    assert_eq!(me["user"]["email"], email);
    // Not on bravo (not assigned), and not on the platform host (no platform role).
    for h in [host("bravo"), PLATFORM.to_owned()] {
        let res = post(
            &app,
            &h,
            "/api/v1/auth/login",
            json!({"email": email, "password": "a brand new passphrase 42"}),
        )
        .await;
        assert_eq!(res.status(), 401, "{h}");
    }
}

#[tokio::test]
async fn creation_is_validated_deduplicated_and_platform_only() {
    let app = TestApp::spawn().await;
    let token = platform_token(&app).await;
    let before = count(&app, "SELECT count(*) FROM practitioner_profiles").await;
    let users_before = count(&app, "SELECT count(*) FROM users").await;

    // 422 with every bad field named, nothing created.
    let res = send(
        &app,
        Method::POST,
        PLATFORM,
        "/api/v1/platform/practitioners",
        &token,
        Some(json!({
            "email": "not-an-email",
            "display_name": " ",
            "specialties": ["astrology"],
            "languages": ["english"],
            "bio": "x".repeat(4001),
            "licence_country": "fr",
        })),
    )
    .await;
    assert_eq!(res.status(), 422);
    let p = problem(res).await;
    let fields: BTreeSet<String> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    for f in [
        "email",
        "display_name",
        "specialties[0]",
        "specialties",
        "languages[0]",
        "bio",
        "licence_country",
    ] {
        assert!(fields.contains(f), "{f} not in {fields:?}");
    }
    // Unknown fields are refused (mass assignment).
    let mut body = new_practitioner_body("x@practice.test");
    body["platform_roles"] = json!(["platform_admin"]);
    let res = send(
        &app,
        Method::POST,
        PLATFORM,
        "/api/v1/platform/practitioners",
        &token,
        Some(body),
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(
        count(&app, "SELECT count(*) FROM practitioner_profiles").await,
        before
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM users").await,
        users_before
    );

    // Created once; the second time the same 202, nothing created, no second link: the
    // address gets a notice instead of a second welcome.
    let body = new_practitioner_body("dup@practice.test");
    let res = send(
        &app,
        Method::POST,
        PLATFORM,
        "/api/v1/platform/practitioners",
        &token,
        Some(body.clone()),
    )
    .await;
    assert_eq!(res.status(), 202);
    let res = send(
        &app,
        Method::POST,
        PLATFORM,
        "/api/v1/platform/practitioners",
        &token,
        Some(body),
    )
    .await;
    assert_eq!(res.status(), 202);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM email_outbox WHERE to_address = 'dup@practice.test' AND template = 'practitioner_welcome'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM users WHERE email = 'dup@practice.test'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM auth_tokens t JOIN users u ON u.id = t.user_id WHERE u.email = 'dup@practice.test'").await,
        1
    );

    // An existing identity (a company's employee) gets the same 202, and the answer says
    // nothing of it: no id, no name; the person is unchanged and no profile or link appears
    // (the address gets a notice mail).
    let existing = add_person(&app, app.tenant_a, "emp@alpha.test", &["employee"]).await;
    let res = send(
        &app,
        Method::POST,
        PLATFORM,
        "/api/v1/platform/practitioners",
        &token,
        Some(new_practitioner_body("Emp@Alpha.test")),
    )
    .await;
    assert_eq!(res.status(), 202);
    let text = res.text().await.unwrap();
    assert_eq!(text, r#"{"email":"emp@alpha.test"}"#);
    assert!(
        !text.contains(&existing.to_string()) && !text.contains("Test Person"),
        "{text}"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM practitioner_profiles p JOIN users u ON u.id = p.user_id WHERE u.email = 'emp@alpha.test'").await,
        0
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM auth_tokens t JOIN users u ON u.id = t.user_id WHERE u.email = 'emp@alpha.test'").await,
        0
    );

    // Without a token: 401. A tenant admin of alpha: 403. A platform token on a company host:
    // 401 (its audience is the platform host). A company route on the platform host refuses
    // the platform admin (403: not a role that may read a directory).
    let res = post(
        &app,
        PLATFORM,
        "/api/v1/platform/practitioners",
        new_practitioner_body("a@practice.test"),
    )
    .await;
    assert_eq!(res.status(), 401);
    let (_, admin) = member_session(&app, &[Role::TenantAdmin]).await;
    for path in ["/api/v1/platform/practitioners"] {
        let res = send(
            &app,
            Method::POST,
            &host("alpha"),
            path,
            &admin,
            Some(new_practitioner_body("b@practice.test")),
        )
        .await;
        assert_eq!(res.status(), 403);
        let res = call(&app, Method::GET, &host("alpha"), path, &admin).await;
        assert_eq!(res.status(), 403);
        let res = call(&app, Method::GET, &host("alpha"), path, &token).await;
        assert_eq!(res.status(), 401);
    }
    let res = call(&app, Method::GET, PLATFORM, "/api/v1/practitioners", &token).await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM users WHERE email IN ('a@practice.test', 'b@practice.test')"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn platform_lists_reads_and_edits_the_network() {
    let app = TestApp::spawn().await;
    let token = platform_token(&app).await;
    let mut owner = app.owner().await;
    let a = add_practitioner(
        &app,
        &mut owner,
        "Anne",
        &["anxiety"],
        &["fr"],
        "",
        true,
        &[],
    )
    .await;
    let _b = add_practitioner(
        &app,
        &mut owner,
        "Bruno",
        &["sleep"],
        &["en"],
        "",
        false,
        &[app.tenant_b],
    )
    .await;
    let all = get_json(&app, PLATFORM, "/api/v1/platform/practitioners", &token).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert!(
        all["items"][0]["email"]
            .as_str()
            .unwrap()
            .ends_with("@practice.test")
    );
    let v = get_json(
        &app,
        PLATFORM,
        "/api/v1/platform/practitioners?verified=false",
        &token,
    )
    .await;
    assert_eq!(v["items"][0]["display_name"], "Bruno");
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let s = get_json(
        &app,
        PLATFORM,
        "/api/v1/platform/practitioners?specialty=anxiety",
        &token,
    )
    .await;
    assert_eq!(ids(&s), vec![a.to_string()]);
    let q = get_json(
        &app,
        PLATFORM,
        "/api/v1/platform/practitioners?q=brun",
        &token,
    )
    .await;
    assert_eq!(q["items"][0]["display_name"], "Bruno");
    let page = get_json(
        &app,
        PLATFORM,
        "/api/v1/platform/practitioners?limit=1",
        &token,
    )
    .await;
    let next = page["next_cursor"].as_str().unwrap();
    let page2 = get_json(
        &app,
        PLATFORM,
        &format!("/api/v1/platform/practitioners?limit=1&cursor={next}"),
        &token,
    )
    .await;
    assert_eq!(page2["items"][0]["display_name"], "Bruno");
    assert!(page2["next_cursor"].is_null());

    // Edit licence and verification.
    let path = format!("/api/v1/platform/practitioners/{a}");
    let res = send(
        &app,
        Method::PATCH,
        PLATFORM,
        &path,
        &token,
        Some(json!({"licence_number": "NEW-9", "verified": false, "bio": "Updated."})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let got = get_json(&app, PLATFORM, &path, &token).await;
    assert_eq!(got["licence_number"], "NEW-9");
    assert_eq!(got["verified"], false);
    assert_eq!(got["bio"], "Updated.");
    let res = send(
        &app,
        Method::PATCH,
        PLATFORM,
        &path,
        &token,
        Some(json!({"licence_country": "france"})),
    )
    .await;
    assert_eq!(res.status(), 422);
    // A non-practitioner's id is 404.
    let emp = add_person(&app, app.tenant_a, "e@alpha.test", &["employee"]).await;
    let res = call(
        &app,
        Method::GET,
        PLATFORM,
        &format!("/api/v1/platform/practitioners/{emp}"),
        &token,
    )
    .await;
    assert_eq!(res.status(), 404);
    let res = send(
        &app,
        Method::PATCH,
        PLATFORM,
        &format!("/api/v1/platform/practitioners/{emp}"),
        &token,
        Some(json!({"bio": "x"})),
    )
    .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn practitioners_edit_their_profile_but_not_their_licence() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let p = add_practitioner(
        &app,
        &mut owner,
        "Paul",
        &["stress"],
        &["en"],
        "Old bio",
        true,
        &[app.tenant_a],
    )
    .await;
    let (_, token) =
        mint_session(&app, app.tenant_a, &host("alpha"), p, &[Role::Practitioner]).await;
    let res = send(&app, Method::PATCH, &host("alpha"), "/api/v1/auth/me", &token,
        Some(json!({"bio": "New bio", "languages": ["en", "de"], "display_name": "Dr Paul", "locale": "fr"}))).await;
    assert_eq!(res.status(), 200);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["display_name"], "Dr Paul");
    assert_eq!(b["locale"], "fr");
    assert_eq!(b["practitioner"]["bio"], "New bio");
    assert_eq!(b["practitioner"]["licence_number"], "LIC-1");
    let (bio, langs): (String, Vec<String>) =
        sqlx::query_as("SELECT bio, languages FROM practitioner_profiles WHERE user_id = $1")
            .bind(p.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(
        (bio.as_str(), langs),
        ("New bio", vec!["en".to_owned(), "de".to_owned()])
    );

    // Licence and verification: 403, and nothing changes (not even the bio sent alongside).
    for body in [
        json!({"licence_number": "FAKE", "bio": "sneaky"}),
        json!({"licence_country": "US"}),
        json!({"verified": true}),
        json!({"verified": null}),
    ] {
        let res = send(
            &app,
            Method::PATCH,
            &host("alpha"),
            "/api/v1/auth/me",
            &token,
            Some(body),
        )
        .await;
        assert_eq!(res.status(), 403);
        assert_eq!(problem(res).await["code"], "platform_managed");
    }
    let row: (String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT bio, licence_number, licence_country FROM practitioner_profiles WHERE user_id = $1",
    )
    .bind(p.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(
        row,
        ("New bio".into(), Some("LIC-1".into()), Some("FR".into()))
    );
    // Bad values: 422 naming the field.
    let res = send(
        &app,
        Method::PATCH,
        &host("alpha"),
        "/api/v1/auth/me",
        &token,
        Some(json!({"specialties": ["magic"]})),
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(problem(res).await["errors"][0]["field"], "specialties[0]");

    // The database refuses it too, with the application out of the picture (the practitioner
    // proven, as a request is: an unproven context changes no profile at all).
    let mut conn = app.owner().await;
    assert!(
        crate::helpers::as_member_with_session_roles(&mut conn, app.tenant_a, p, "practitioner")
            .await
    );
    let err =
        sqlx::query("UPDATE practitioner_profiles SET licence_number = 'FAKE' WHERE user_id = $1")
            .bind(p.as_uuid())
            .execute(&mut conn)
            .await
            .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );

    // An employee edits their name; practitioner fields are not theirs.
    let (emp, et) = member_session(&app, &[Role::Employee]).await;
    let res = send(
        &app,
        Method::PATCH,
        &host("alpha"),
        "/api/v1/auth/me",
        &et,
        Some(json!({"bio": "hello"})),
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(problem(res).await["errors"][0]["field"], "bio");
    let res = send(
        &app,
        Method::PATCH,
        &host("alpha"),
        "/api/v1/auth/me",
        &et,
        Some(json!({"display_name": "Émile"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let name: String = sqlx::query_scalar("SELECT display_name FROM users WHERE id = $1")
        .bind(emp.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(name, "Émile");
    // GET /auth/me still works beside the PATCH.
    let me = get_json(&app, &host("alpha"), "/api/v1/auth/me", &et).await;
    assert_eq!(me["user"]["display_name"], "Émile");
}

/// Alpha: Anne (anxiety, sleep; fr, en; verified), Bruno (burnout; en), Chloé (anxiety; fr;
/// also in bravo), a disabled Denis; Bravo only: Eve.
struct World {
    anne: UserId,
    bruno: UserId,
    chloe: UserId,
    denis: UserId,
    eve: UserId,
}

async fn world(app: &TestApp) -> World {
    let mut o = app.owner().await;
    let anne = add_practitioner(
        app,
        &mut o,
        "Anne Leroy",
        &["anxiety", "sleep"],
        &["fr", "en"],
        "Spécialiste du sommeil et des troubles anxieux, approche TCC.",
        true,
        &[app.tenant_a],
    )
    .await;
    let bruno = add_practitioner(
        app,
        &mut o,
        "Bruno Petit",
        &["burnout", "stress"],
        &["en"],
        "Coach for burnout recovery and stress at work.",
        false,
        &[app.tenant_a],
    )
    .await;
    let chloe = add_practitioner(
        app,
        &mut o,
        "Chloé Martin",
        &["anxiety"],
        &["fr"],
        "Psychologue clinicienne, thérapies brèves.",
        false,
        &[app.tenant_a, app.tenant_b],
    )
    .await;
    let denis = add_practitioner(
        app,
        &mut o,
        "Denis Roux",
        &["anxiety", "sleep"],
        &["fr"],
        "Sommeil.",
        true,
        &[app.tenant_a],
    )
    .await;
    sqlx::query("UPDATE memberships SET status = 'disabled' WHERE user_id = $1")
        .bind(denis.as_uuid())
        .execute(&mut o)
        .await
        .unwrap();
    let eve = add_practitioner(
        app,
        &mut o,
        "Eve Blanc",
        &["anxiety", "sleep"],
        &["fr", "en"],
        "Sommeil et anxiété.",
        true,
        &[app.tenant_b],
    )
    .await;
    World {
        anne,
        bruno,
        chloe,
        denis,
        eve,
    }
}

#[tokio::test]
async fn the_directory_shows_only_this_companys_practitioners_and_never_emails() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let (emp, token) = member_session(&app, &[Role::Employee]).await;
    let a = host("alpha");
    let res = call(&app, Method::GET, &a, "/api/v1/practitioners", &token).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(
        !text.contains("@practice.test") && !text.contains("email") && !text.contains("LIC-1"),
        "{text}"
    );
    let list: Value = serde_json::from_str(&text).unwrap();
    // Ordered by name.
    assert_eq!(
        ids(&list),
        vec![w.anne.to_string(), w.bruno.to_string(), w.chloe.to_string()]
    );
    assert_eq!(list["items"][0]["verified"], true);
    assert_eq!(list["items"][0]["licence_country"], "FR");

    // By id: here yes; Eve (bravo only), disabled Denis, an employee, unknown: 404.
    let one = get_json(
        &app,
        &a,
        &format!("/api/v1/practitioners/{}", w.chloe),
        &token,
    )
    .await;
    assert_eq!(one["display_name"], "Chloé Martin");
    assert!(one.get("email").is_none());
    for id in [w.eve, w.denis, emp, UserId::new()] {
        let res = call(
            &app,
            Method::GET,
            &a,
            &format!("/api/v1/practitioners/{id}"),
            &token,
        )
        .await;
        assert_eq!(res.status(), 404, "{id}");
    }
    // Bravo's directory from bravo: Chloé and Eve only.
    let b_emp = add_person(&app, app.tenant_b, "emp@bravo.test", &["employee"]).await;
    let (_, bt) = mint_session(&app, app.tenant_b, &host("bravo"), b_emp, &[Role::Employee]).await;
    let blist = get_json(&app, &host("bravo"), "/api/v1/practitioners", &bt).await;
    assert_eq!(ids(&blist), vec![w.chloe.to_string(), w.eve.to_string()]);
    let res = call(
        &app,
        Method::GET,
        &host("bravo"),
        &format!("/api/v1/practitioners/{}", w.anne),
        &bt,
    )
    .await;
    assert_eq!(res.status(), 404);
    // A tenant admin and a practitioner read the directory; HR does not.
    let (_, admin) = member_session(&app, &[Role::TenantAdmin]).await;
    assert_eq!(
        call(&app, Method::GET, &a, "/api/v1/practitioners", &admin)
            .await
            .status(),
        200
    );
    let (_, pt) = mint_session(&app, app.tenant_a, &a, w.bruno, &[Role::Practitioner]).await;
    assert_eq!(
        call(&app, Method::GET, &a, "/api/v1/practitioners", &pt)
            .await
            .status(),
        200
    );
    let (_, hr) = member_session(&app, &[Role::Hr]).await;
    assert_eq!(
        call(&app, Method::GET, &a, "/api/v1/practitioners", &hr)
            .await
            .status(),
        403
    );
    assert_eq!(app.get(&a, "/api/v1/practitioners").await.status(), 401);
}

#[tokio::test]
async fn directory_filters_and_full_text_search_find_the_right_people() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let (_, t) = member_session(&app, &[Role::Employee]).await;
    let a = host("alpha");
    let q = |path: &str| format!("/api/v1/practitioners?{path}");
    let cases: Vec<(&str, Vec<UserId>)> = vec![
        ("specialty=sleep", vec![w.anne]),
        ("specialty=burnout,sleep", vec![w.anne, w.bruno]),
        ("specialty=burnout&specialty=sleep", vec![w.anne, w.bruno]),
        ("language=fr", vec![w.anne, w.chloe]),
        ("language=EN&specialty=anxiety", vec![w.anne]),
        ("q=burnout", vec![w.bruno]),
        ("q=martin", vec![w.chloe]),
        ("q=sommeil", vec![w.anne]),
        ("q=%22th%C3%A9rapies%20br%C3%A8ves%22", vec![w.chloe]),
        ("q=anne%20OR%20bruno", vec![w.anne, w.bruno]),
        ("q=eve", vec![]),
    ];
    for (query, want) in cases {
        let got = get_json(&app, &a, &q(query), &t).await;
        let mut got = ids(&got);
        let mut want: Vec<String> = want.iter().map(ToString::to_string).collect();
        if query.starts_with("q=") {
            got.sort();
            want.sort();
        }
        assert_eq!(got, want, "{query}");
    }
    // Bad input: 422 naming the field; unknown parameter or bad cursor: 400.
    for (query, field) in [
        ("specialty=astrology", "specialty[0]"),
        ("language=english", "language"),
    ] {
        let res = call(&app, Method::GET, &a, &q(query), &t).await;
        assert_eq!(res.status(), 422, "{query}");
        assert_eq!(problem(res).await["errors"][0]["field"], field);
    }
    for query in ["specialties=sleep", "cursor=garbage", "limit=ten"] {
        let res = call(&app, Method::GET, &a, &q(query), &t).await;
        assert!(matches!(res.status().as_u16(), 400 | 422), "{query}");
    }
    // One `limit` rule for every list (DESIGN §5): a number is capped, never refused.
    let res = call(&app, Method::GET, &a, &q("limit=0"), &t).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn keyset_pagination_walks_everything_exactly_once() {
    let app = TestApp::spawn().await;
    let mut o = app.owner().await;
    let mut all = BTreeSet::new();
    // Duplicate names, so the id tie-breaker matters.
    for i in 0..9 {
        let name = format!("Dr Same {}", i % 3);
        let id = add_practitioner(
            &app,
            &mut o,
            &name,
            &["stress"],
            &["en"],
            &format!("stress coach number {i}"),
            false,
            &[app.tenant_a],
        )
        .await;
        all.insert(id.to_string());
    }
    let (_, t) = member_session(&app, &[Role::Employee]).await;
    let a = host("alpha");
    for base in [
        "/api/v1/practitioners?limit=2",
        "/api/v1/practitioners?limit=2&q=stress%20coach",
    ] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("{base}&cursor={c}"),
                None => base.to_owned(),
            };
            let page = get_json(&app, &a, &path, &t).await;
            assert!(page["items"].as_array().unwrap().len() <= 2);
            seen.extend(ids(&page));
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
            assert!(seen.len() <= 20, "runaway pagination");
        }
        assert_eq!(seen.len(), 9, "{base}: {seen:?}");
        assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), all, "{base}");
    }
    // A cursor of one kind of list is refused by the other.
    let p = get_json(&app, &a, "/api/v1/practitioners?limit=2", &t).await;
    let c = p["next_cursor"].as_str().unwrap();
    let res = call(
        &app,
        Method::GET,
        &a,
        &format!("/api/v1/practitioners?limit=2&q=stress&cursor={c}"),
        &t,
    )
    .await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn matching_ranks_as_designed_and_is_deterministic() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let (_, t) = member_session(&app, &[Role::Employee]).await;
    let a = host("alpha");
    let path = "/api/v1/practitioners/match?need=anxiety,sleep&language=fr";
    let first = get_json(&app, &a, path, &t).await;
    // Anne covers both needs, speaks French, verified: 1.0. Chloé covers 1 of 2, speaks
    // French: (0.5×0.5 + 0.2) / 0.75 = 0.6. Bruno covers none: not listed. Denis (disabled)
    // and Eve (bravo) are not candidates here.
    assert_eq!(ids(&first), vec![w.anne.to_string(), w.chloe.to_string()]);
    assert_eq!(first["items"][0]["score"], 1.0);
    assert_eq!(first["items"][1]["score"], 0.6);
    assert_eq!(
        first["items"][0]["explanation"][0],
        "covers 2 of 2 needs: anxiety, sleep"
    );
    assert_eq!(
        first["items"][1]["explanation"][0],
        "covers 1 of 2 needs: anxiety (not: sleep)"
    );
    let comps = first["items"][1]["components"].as_array().unwrap();
    let avail = comps.iter().find(|c| c["name"] == "availability").unwrap();
    assert_eq!(avail["applied"], false);
    assert!(avail["value"].is_null());
    assert!(
        first.to_string().find("@").is_none(),
        "no e-mail in {first}"
    );
    // Same input, same output.
    for _ in 0..3 {
        assert_eq!(get_json(&app, &a, path, &t).await, first);
    }
    // Order of needs does not change the ranking; repeated form is the same request.
    let again = get_json(
        &app,
        &a,
        "/api/v1/practitioners/match?need=sleep&need=anxiety&language=fr",
        &t,
    )
    .await;
    assert_eq!(ids(&again), ids(&first));
    // English speakers: Anne (1.0), then Chloé and Bruno tie? Bruno covers no anxiety → out;
    // need=anxiety,burnout&language=en: Anne 0.5 fit + en + verified = (0.25+0.2+0.05)/0.75,
    // Bruno 0.5 fit + en = 0.45/0.75, Chloé 0.5 fit, no en = 0.25/0.75.
    let en = get_json(
        &app,
        &a,
        "/api/v1/practitioners/match?need=anxiety,burnout&language=en",
        &t,
    )
    .await;
    assert_eq!(
        ids(&en),
        vec![w.anne.to_string(), w.bruno.to_string(), w.chloe.to_string()]
    );
    assert_eq!(en["items"][0]["score"], 0.6667);
    assert_eq!(en["items"][1]["score"], 0.6);
    assert_eq!(en["items"][2]["score"], 0.3333);
    // limit, default and cap.
    let one = get_json(
        &app,
        &a,
        "/api/v1/practitioners/match?need=anxiety&limit=1",
        &t,
    )
    .await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    let capped = get_json(
        &app,
        &a,
        "/api/v1/practitioners/match?need=anxiety&limit=500",
        &t,
    )
    .await;
    assert_eq!(capped["items"].as_array().unwrap().len(), 2);
    // Equal scores are ordered by user id.
    let tie = get_json(&app, &a, "/api/v1/practitioners/match?need=anxiety", &t).await;
    let scores: Vec<f64> = tie["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["score"].as_f64().unwrap())
        .collect();
    assert_eq!(scores.len(), 2);
    // Unknown specialty / missing need: 422 naming the field.
    for (query, field) in [
        ("need=anxiety,astrology", "need[1]"),
        ("language=fr", "need"),
        ("need=anxiety&language=xyz", "language"),
    ] {
        let res = call(
            &app,
            Method::GET,
            &a,
            &format!("/api/v1/practitioners/match?{query}"),
            &t,
        )
        .await;
        assert_eq!(res.status(), 422, "{query}");
        let p = problem(res).await;
        assert!(
            p["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{query}: {p}"
        );
    }
    // Matching is for employees.
    let (_, hr) = member_session(&app, &[Role::Hr]).await;
    assert_eq!(call(&app, Method::GET, &a, path, &hr).await.status(), 403);
    let _ = (w.denis, w.eve);
}

#[tokio::test]
async fn another_tenants_practitioner_is_404_everywhere() {
    let app = TestApp::spawn().await;
    let w = world(&app).await;
    let (_, t) = member_session(&app, &[Role::Employee]).await;
    let a = host("alpha");
    // Eve serves bravo only: invisible in alpha's list, search and match, 404 by id.
    let list = get_json(&app, &a, "/api/v1/practitioners?q=eve", &t).await;
    assert!(list["items"].as_array().unwrap().is_empty());
    let m = get_json(
        &app,
        &a,
        "/api/v1/practitioners/match?need=anxiety,sleep&language=en",
        &t,
    )
    .await;
    assert!(!ids(&m).contains(&w.eve.to_string()));
    let res = call(
        &app,
        Method::GET,
        &a,
        &format!("/api/v1/practitioners/{}", w.eve),
        &t,
    )
    .await;
    assert_eq!(res.status(), 404);
    assert_eq!(problem(res).await["code"], "not_found");
    // Row-level security alone hides Eve's profile from alpha.
    let mut conn = app.owner().await;
    as_app_with_roles(&mut conn, Some(app.tenant_a), Some(w.anne), "practitioner").await;
    let seen: i64 =
        sqlx::query_scalar("SELECT count(*) FROM practitioner_profiles WHERE user_id = $1")
            .bind(w.eve.as_uuid())
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(seen, 0);
}

/// Bodies of the mails queued to `late@practice.test`, oldest first.
async fn bodies(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT body_text FROM email_outbox WHERE to_address = 'late@practice.test' ORDER BY created_at, id",
    )
    .fetch_all(&mut app.owner().await)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_fresh_welcome_link_replaces_the_old_one_until_a_password_is_set() {
    let app = TestApp::spawn().await;
    let token = platform_token(&app).await;
    let email = "late@practice.test";
    let res = send(
        &app,
        Method::POST,
        PLATFORM,
        "/api/v1/platform/practitioners",
        &token,
        Some(new_practitioner_body(email)),
    )
    .await;
    assert_eq!(res.status(), 202);
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    let link_of = |body: String| {
        let at = body.find("token=").unwrap() + "token=".len();
        body[at..].split_whitespace().next().unwrap().to_owned()
    };
    let first = link_of(bodies(&app).await[0].clone());
    app.clock.advance(time::Duration::seconds(1));
    let path = format!("/api/v1/platform/practitioners/{id}/welcome");
    let res = send(&app, Method::POST, PLATFORM, &path, &token, None).await;
    assert_eq!(res.status(), 202);
    let all = bodies(&app).await;
    assert_eq!(all.len(), 2);
    let second = link_of(all[1].clone());
    // The first link no longer works; the second does, once; then no more links.
    let res = post(
        &app,
        PLATFORM,
        "/api/v1/auth/password/reset",
        json!({"token": first, "password": "a brand new passphrase 42"}),
    )
    .await;
    assert_eq!(res.status(), 410);
    let res = post(
        &app,
        PLATFORM,
        "/api/v1/auth/password/reset",
        json!({"token": second, "password": "a brand new passphrase 42"}),
    )
    .await;
    assert_eq!(res.status(), 204);
    let res = send(&app, Method::POST, PLATFORM, &path, &token, None).await;
    assert_eq!(res.status(), 409);
    assert_eq!(problem(res).await["code"], "password_already_set");
    assert_eq!(bodies(&app).await.len(), 2);
    // Not a practitioner: 404.
    let emp = add_person(&app, app.tenant_a, "x@alpha.test", &["employee"]).await;
    let res = send(
        &app,
        Method::POST,
        PLATFORM,
        &format!("/api/v1/platform/practitioners/{emp}/welcome"),
        &token,
        None,
    )
    .await;
    assert_eq!(res.status(), 404);
}
