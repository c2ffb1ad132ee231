//! Platform tenant management (issue 4 items 1, 2, 6): create/list/read/update, suspension
//! with live tokens, offboarding and the crypto-shredding purge, practitioner assignment, and
//! what a platform admin may learn of a company's people (counts only).

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};

use crate::helpers::{
    TestApp, as_app_with_roles, as_member_with_session_roles, problem, seed_world,
};
use crate::people::*;
use serein::crypto::keyring::{Aad, KeyScope, Keyring};
use serein::db::{TenantId, UserId};
use serein::rbac::Role;

const TENANTS: &str = "/api/v1/platform/tenants";

/// A platform admin with a live session on the platform host.
pub async fn platform_admin(app: &TestApp) -> String {
    let email = format!("{}@platform.test", uuid::Uuid::now_v7().simple());
    let user = add_person(app, app.tenant_a, &email, &[]).await;
    make_platform_admin(app, user).await;
    let (_, t) = mint_session(
        app,
        TenantId::PLATFORM,
        "localhost",
        user,
        &[Role::PlatformAdmin],
    )
    .await;
    t
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.req(method, "localhost", path).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

async fn create(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    send(app, Method::POST, TENANTS, token, Some(body)).await
}

async fn tenant_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

/// The stored row as text (to prove a refused request changed nothing).
async fn row_text(app: &TestApp, id: TenantId) -> String {
    sqlx::query_scalar("SELECT t::text FROM tenants t WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

fn field_names(p: &Value) -> Vec<String> {
    p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn create_validates_slugs_and_refuses_taken_ones() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app).await;

    // No token → 401.
    let res = app
        .req(Method::POST, "localhost", TENANTS)
        .json(&json!({"slug": "acme", "name": "Acme", "plan": "standard"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(app.get("localhost", TENANTS).await.status(), 401);

    // The host is unknown before creation (and that answer is cached)...
    assert_eq!(
        app.get("acme.localhost", "/api/v1/tenant/profile")
            .await
            .status(),
        404
    );
    let before = tenant_count(&app).await;

    for (slug, why) in [
        ("Acme", "upper case"),
        ("a_b", "underscore"),
        ("www", "reserved"),
        ("platform", "reserved"),
        ("-x", "hyphen"),
    ] {
        let res = create(
            &app,
            &admin,
            json!({"slug": slug, "name": "X", "plan": "starter"}),
        )
        .await;
        assert_eq!(res.status(), 422, "{slug}: {why}");
        let p = problem(res).await;
        assert_eq!(field_names(&p), ["slug"], "{slug}");
    }
    let res = create(
        &app,
        &admin,
        json!({"slug": "acme", "name": "Acme", "plan": "standard", "min_cohort": 2}),
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(field_names(&problem(res).await), ["min_cohort"]);
    let res = create(
        &app,
        &admin,
        json!({"slug": "acme", "name": "Acme", "plan": "standard", "time_zone": "Mars/Olympus"}),
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(field_names(&problem(res).await), ["time_zone"]);
    // Mass assignment: unknown fields are refused.
    let res = create(
        &app,
        &admin,
        json!({"slug": "acme", "name": "Acme", "plan": "standard", "managed_by": "file"}),
    )
    .await;
    assert_eq!(res.status(), 422);
    let res = create(
        &app,
        &admin,
        json!({"slug": "alpha", "name": "Again", "plan": "standard"}),
    )
    .await;
    assert_eq!(res.status(), 409);
    assert_eq!(problem(res).await["code"], "slug_taken");
    assert_eq!(
        tenant_count(&app).await,
        before,
        "a refused create wrote a tenant"
    );

    let res = create(
        &app,
        &admin,
        json!({"slug": "acme", "name": "Acme", "plan": "standard", "time_zone": "Europe/Paris",
               "allowed_email_domains": ["Acme.Example"], "branding": {"primary_color": "#112233"}}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        location,
        format!("{TENANTS}/{}", body["id"].as_str().unwrap())
    );
    assert_eq!(body["seats"], 500, "standard plan default");
    assert_eq!(body["status"], "active");
    assert_eq!(body["managed_by"], "api");
    assert_eq!(body["allowed_email_domains"], json!(["acme.example"]));
    assert_eq!(body["members"]["seats_used"], 0);
    let (managed_by, seats, tz): (String, i32, String) =
        sqlx::query_as("SELECT managed_by, seats, time_zone FROM tenants WHERE slug = 'acme'")
            .fetch_one(&mut app.owner().await)
            .await
            .unwrap();
    assert_eq!(
        (managed_by.as_str(), seats, tz.as_str()),
        ("api", 500, "Europe/Paris")
    );
    // ...and served at once after it (the cached "unknown" was forgotten).
    assert_eq!(
        app.get("acme.localhost", "/api/v1/tenant/profile")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn list_paginates_filters_and_hides_the_platform_tenant() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app).await;
    for slug in ["c-one", "c-two", "c-three"] {
        let res = create(
            &app,
            &admin,
            json!({"slug": slug, "name": slug, "plan": "starter"}),
        )
        .await;
        assert_eq!(res.status(), 201);
    }
    let mut slugs = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{TENANTS}?limit=2&cursor={c}"),
            None => format!("{TENANTS}?limit=2"),
        };
        let res = send(&app, Method::GET, &path, &admin, None).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["cache-control"], "no-store");
        let page: Value = res.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for i in items {
            assert!(i.get("members").is_none(), "lists carry no counts");
            slugs.push(i["slug"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(slugs, ["alpha", "bravo", "c-one", "c-three", "c-two"]);

    let id: String = sqlx::query_scalar("SELECT id::text FROM tenants WHERE slug = 'c-two'")
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    let res = send(
        &app,
        Method::POST,
        &format!("{TENANTS}/{id}/suspend"),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let page: Value = send(
        &app,
        Method::GET,
        &format!("{TENANTS}?status=suspended"),
        &admin,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let only: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["slug"].as_str().unwrap())
        .collect();
    assert_eq!(only, ["c-two"]);

    // The limit is capped (DESIGN §5), not refused: 201 gives at most 200, 0 gives one.
    for (q, most) in [("limit=201", 200), ("limit=0", 1)] {
        let res = send(&app, Method::GET, &format!("{TENANTS}?{q}"), &admin, None).await;
        assert_eq!(res.status(), 200, "{q}");
        let page: Value = res.json().await.unwrap();
        assert!(page["items"].as_array().unwrap().len() <= most, "{q}");
    }
    for bad in ["limit=x", "status=gone"] {
        let res = send(&app, Method::GET, &format!("{TENANTS}?{bad}"), &admin, None).await;
        assert!(
            matches!(res.status().as_u16(), 400 | 422),
            "{bad}: {}",
            res.status()
        );
    }
}

#[tokio::test]
async fn company_roles_are_refused_and_unknown_ids_are_404() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app).await;
    let (_, tenant_admin) = member_session(&app, &[Role::TenantAdmin]).await;
    // A company admin on their own host: Casbin refuses.
    let res = call(&app, Method::GET, &host("alpha"), TENANTS, &tenant_admin).await;
    assert_eq!(res.status(), 403);
    let res = call(
        &app,
        Method::POST,
        &host("alpha"),
        &format!("{TENANTS}/{}/suspend", app.tenant_a),
        &tenant_admin,
    )
    .await;
    assert_eq!(res.status(), 403);
    // Their token on the platform host: another audience.
    let res = call(&app, Method::GET, "localhost", TENANTS, &tenant_admin).await;
    assert_eq!(res.status(), 401);
    assert!(row_text(&app, app.tenant_a).await.contains("active"));

    let unknown = uuid::Uuid::now_v7();
    for (m, path) in [
        (Method::GET, format!("{TENANTS}/{unknown}")),
        (Method::PATCH, format!("{TENANTS}/{unknown}")),
        (Method::DELETE, format!("{TENANTS}/{unknown}")),
        (Method::POST, format!("{TENANTS}/{unknown}/suspend")),
        (Method::POST, format!("{TENANTS}/{unknown}/resume")),
        // The platform tenant is nobody's to read or change here.
        (Method::GET, format!("{TENANTS}/{}", TenantId::PLATFORM)),
        (
            Method::POST,
            format!("{TENANTS}/{}/suspend", TenantId::PLATFORM),
        ),
        (Method::GET, format!("{TENANTS}/not-a-uuid")),
        (
            Method::PUT,
            format!("{TENANTS}/{unknown}/practitioners/{unknown}"),
        ),
    ] {
        let body = (m == Method::PATCH).then(|| json!({"name": "X"}));
        let res = send(&app, m.clone(), &path, &admin, body).await;
        assert_eq!(res.status(), 404, "{m} {path}");
    }
}

#[tokio::test]
async fn patch_validates_like_files_and_updates_plan_and_seats() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app).await;
    let path = format!("{TENANTS}/{}", app.tenant_a);
    let before = row_text(&app, app.tenant_a).await;

    let res = send(
        &app,
        Method::PATCH,
        &path,
        &admin,
        Some(json!({"min_cohort": 2})),
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(field_names(&problem(res).await), ["min_cohort"]);
    let res = send(
        &app,
        Method::PATCH,
        &path,
        &admin,
        Some(json!({"time_zone": "Mars/Olympus", "name": "New"})),
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(field_names(&problem(res).await), ["time_zone"]);
    let res = send(
        &app,
        Method::PATCH,
        &path,
        &admin,
        Some(json!({"web_origins": ["https://x.example/path"], "seats": -1, "late_cancel_hours": 169})),
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(
        field_names(&problem(res).await),
        ["late_cancel_hours", "seats", "web_origins[0]"]
    );
    let res = send(
        &app,
        Method::PATCH,
        &path,
        &admin,
        Some(json!({"status": "active"})),
    )
    .await;
    assert_eq!(res.status(), 422, "status is not a settings field");
    assert_eq!(
        row_text(&app, app.tenant_a).await,
        before,
        "a refused PATCH changed the row"
    );

    // A plan change without seats takes the new plan's default.
    let res = send(
        &app,
        Method::PATCH,
        &path,
        &admin,
        Some(json!({"plan": "enterprise"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["plan"].as_str(), body["seats"].as_i64()),
        (Some("enterprise"), Some(5000))
    );
    let res = send(
        &app,
        Method::PATCH,
        &path,
        &admin,
        Some(json!({"seats": 42, "allowance": 12, "name": "  Alpha Corp ", "min_cohort": 7, "locale": "fr",
                    "time_zone": "America/New_York", "branding": {"display_name": "Alpha"},
                    "late_cancel_hours": 2})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["seats"], 42);
    assert_eq!(body["late_cancel_hours"], 2);
    let late: i32 = sqlx::query_scalar("SELECT late_cancel_hours FROM tenants WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    assert_eq!(late, 2);
    // The database holds alone: a tenant admin of this (now API-managed) company may rename it
    // but not move its late-cancellation window, even with the request role's column grant.
    let boss = add_person(&app, app.tenant_a, "boss@alpha.test", &["tenant_admin"]).await;
    // A live session of theirs: company settings take the session guard's proof.
    crate::people::mint_session(
        &app,
        app.tenant_a,
        &crate::people::host("alpha"),
        boss,
        &[serein::rbac::Role::TenantAdmin],
    )
    .await;
    let mut conn = app.owner().await;
    for (sql, ok) in [
        (
            "UPDATE tenants SET name = 'Renamed' WHERE id = app.current_tenant()",
            true,
        ),
        (
            "UPDATE tenants SET late_cancel_hours = 0 WHERE id = app.current_tenant()",
            false,
        ),
    ] {
        assert!(
            crate::helpers::as_member_with_session_roles(
                &mut conn,
                app.tenant_a,
                boss,
                "tenant_admin"
            )
            .await
        );
        let done = conn.execute(sql).await;
        match (done, ok) {
            (Ok(r), true) => assert_eq!(r.rows_affected(), 1, "{sql}"),
            (Err(e), false) => assert!(
                e.to_string().contains("late-cancellation window"),
                "{sql}: {e}"
            ),
            (other, _) => panic!("{sql}: {other:?}"),
        }
        conn.execute("ROLLBACK").await.unwrap();
    }
    assert_eq!(body["name"], "Alpha Corp");
    let row: (String, i32, i32, i32, String, String, Value) = sqlx::query_as(
        "SELECT plan, seats, allowance, min_cohort, locale, time_zone, branding FROM tenants WHERE id = $1",
    )
    .bind(app.tenant_a.as_uuid())
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            "enterprise".into(),
            42,
            12,
            7,
            "fr".into(),
            "America/New_York".into(),
            json!({"display_name": "Alpha"})
        )
    );
}

#[tokio::test]
async fn file_managed_tenants_are_read_only_through_the_api() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app).await;
    sqlx::query("UPDATE tenants SET managed_by = 'file' WHERE id = $1")
        .bind(app.tenant_b.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    let before = row_text(&app, app.tenant_b).await;
    let path = format!("{TENANTS}/{}", app.tenant_b);
    let res = send(&app, Method::GET, &path, &admin, None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["managed_by"], "file");
    for (m, p, body) in [
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"name": "Hijacked"})),
        ),
        (Method::POST, format!("{path}/suspend"), None),
        (Method::POST, format!("{path}/resume"), None),
        (Method::DELETE, path.clone(), None),
    ] {
        let res = send(&app, m.clone(), &p, &admin, body).await;
        assert_eq!(res.status(), 409, "{m} {p}");
        assert_eq!(problem(res).await["code"], "managed_by_file");
    }
    assert_eq!(row_text(&app, app.tenant_b).await, before);
}

#[tokio::test]
async fn suspension_refuses_live_tokens_and_resume_restores_them() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app).await;
    let (_, employee) = member_session(&app, &[Role::Employee]).await;
    let alpha = host("alpha");
    assert_eq!(
        call(&app, Method::GET, &alpha, "/api/v1/auth/me", &employee)
            .await
            .status(),
        200
    );

    // Another pod's cache (same database, own TTL): it learns of the change within the TTL.
    let other_pod = serein::tenants::resolve::TenantDirectory::new(
        app.db.clone(),
        app.clock.clone(),
        std::time::Duration::from_secs(5),
    );
    assert_eq!(
        other_pod.lookup("alpha").await.unwrap().unwrap().status,
        serein::tenants::model::TenantStatus::Active
    );

    let res = send(
        &app,
        Method::POST,
        &format!("{TENANTS}/{}/suspend", app.tenant_a),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "suspended");
    // This pod: at once (its cache entry was forgotten), the live token included.
    let res = call(&app, Method::GET, &alpha, "/api/v1/auth/me", &employee).await;
    assert_eq!(res.status(), 403);
    assert_eq!(problem(res).await["code"], "tenant_suspended");
    let res = post(
        &app,
        &alpha,
        "/api/v1/auth/login",
        json!({"email": "x@alpha.test", "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 403);
    // Other pod: still the cached answer until the TTL passes, then the new one.
    assert_eq!(
        other_pod.lookup("alpha").await.unwrap().unwrap().status,
        serein::tenants::model::TenantStatus::Active
    );
    app.clock.advance(time::Duration::seconds(6));
    assert_eq!(
        other_pod.lookup("alpha").await.unwrap().unwrap().status,
        serein::tenants::model::TenantStatus::Suspended
    );
    // Tenant B is unaffected.
    assert_eq!(
        app.get(&host("bravo"), "/api/v1/tenant/profile")
            .await
            .status(),
        200
    );
    // Suspending again is idempotent.
    let res = send(
        &app,
        Method::POST,
        &format!("{TENANTS}/{}/suspend", app.tenant_a),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);

    let res = send(
        &app,
        Method::POST,
        &format!("{TENANTS}/{}/resume", app.tenant_a),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "active");
    assert_eq!(
        call(&app, Method::GET, &alpha, "/api/v1/auth/me", &employee)
            .await
            .status(),
        200
    );
}

/// The person whose checked session carries a key operation in `tenant` (the key definers
/// serve only a proven member, and a subject key only to its subject): the subject itself, or
/// for the clinical key any member with a live session.
async fn key_actor(owner: &mut PgConnection, tenant: TenantId, scope: KeyScope) -> Option<UserId> {
    match scope {
        KeyScope::Subject(person) => Some(person),
        KeyScope::Clinical => sqlx::query_scalar(
            "SELECT s.user_id FROM sessions s
             JOIN memberships m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id
             WHERE s.tenant_id = $1 AND s.revoked_at IS NULL AND s.idle_expires_at > now()
               AND m.status = 'active' AND m.roles @> '{employee}'
             ORDER BY s.created_at, s.id LIMIT 1",
        )
        .bind(tenant.as_uuid())
        .fetch_optional(owner)
        .await
        .unwrap()
        .map(UserId),
    }
}

/// Seal a record for `tenant` the way features do and return (aad row id, blob).
async fn seal(
    app: &TestApp,
    owner: &mut PgConnection,
    tenant: TenantId,
    scope: KeyScope,
    text: &[u8],
) -> (uuid::Uuid, Vec<u8>) {
    let row = uuid::Uuid::now_v7();
    let aad = Aad {
        tenant,
        table: "journal_entries",
        column: "body",
        row_id: row,
    };
    let actor = key_actor(owner, tenant, scope).await.unwrap();
    assert!(crate::helpers::as_member_with_session(owner, tenant, actor).await);
    let blob = app
        .state
        .keyring
        .seal(owner, tenant, scope, &aad, text)
        .await
        .unwrap();
    owner.execute("COMMIT").await.unwrap();
    (row, blob)
}

/// Open a record as a proven member of `tenant`; `None` when it does not open (or nobody can
/// be proven there any more: a purged tenant has no members).
async fn open(
    keyring: &Keyring,
    owner: &mut PgConnection,
    tenant: TenantId,
    scope: KeyScope,
    row: uuid::Uuid,
    blob: &[u8],
) -> Option<Vec<u8>> {
    let aad = Aad {
        tenant,
        table: "journal_entries",
        column: "body",
        row_id: row,
    };
    let actor = key_actor(owner, tenant, scope).await?;
    if !crate::helpers::as_member_with_session(owner, tenant, actor).await {
        return None;
    }
    let opened = keyring
        .open(owner, tenant, scope, &aad, blob)
        .await
        .ok()
        .map(|z| z.to_vec());
    owner.execute("ROLLBACK").await.unwrap();
    opened
}

/// Tables with a `tenant_id` column, from the catalogue.
async fn tenant_tables(owner: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = 'public' ORDER BY 1",
    )
    .fetch_all(owner)
    .await
    .unwrap()
}

async fn rows_of(owner: &mut PgConnection, table: &str, tenant: TenantId) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {table} WHERE tenant_id = $1"
    )))
    .bind(tenant.as_uuid())
    .fetch_one(owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn offboarding_refuses_the_host_and_the_purge_crypto_shreds_the_tenant() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app).await;
    let mut owner = app.owner().await;
    let person_a = seed_world(&mut owner, app.tenant_a, "a").await;
    let person_b = seed_world(&mut owner, app.tenant_b, "b").await;
    let (note_a, note_a_blob) = seal(
        &app,
        &mut owner,
        app.tenant_a,
        KeyScope::Clinical,
        b"clinical A",
    )
    .await;
    let (jour_a, jour_a_blob) = seal(
        &app,
        &mut owner,
        app.tenant_a,
        KeyScope::Subject(person_a),
        b"journal A",
    )
    .await;
    let (note_b, note_b_blob) = seal(
        &app,
        &mut owner,
        app.tenant_b,
        KeyScope::Clinical,
        b"clinical B",
    )
    .await;
    let (jour_b, jour_b_blob) = seal(
        &app,
        &mut owner,
        app.tenant_b,
        KeyScope::Subject(person_b),
        b"journal B",
    )
    .await;
    let (_, employee) = member_session(&app, &[Role::Employee]).await;
    let alpha = host("alpha");
    assert_eq!(
        call(&app, Method::GET, &alpha, "/api/v1/auth/me", &employee)
            .await
            .status(),
        200
    );

    // Resume during the grace period cancels an offboarding.
    let path = format!("{TENANTS}/{}", app.tenant_a);
    let res = send(
        &app,
        Method::DELETE,
        &format!("{path}?grace_days=1"),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 202);
    let res = send(&app, Method::POST, &format!("{path}/resume"), &admin, None).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "active");
    assert!(body["purge_after"].is_null() && body["offboard_requested_at"].is_null());
    app.clock.advance(time::Duration::seconds(2 * 86_400));
    let purged = serein::platform::purge::purge_due(&app.db, &app.state.keyring, app.clock.now())
        .await
        .unwrap();
    assert!(purged.is_empty(), "a cancelled offboarding was purged");

    // Sessions minted two days ago have expired: new ones.
    let admin = platform_admin(&app).await;
    let (_, employee) = member_session(&app, &[Role::Employee]).await;
    assert_eq!(
        call(&app, Method::GET, &alpha, "/api/v1/auth/me", &employee)
            .await
            .status(),
        200
    );
    let res = send(
        &app,
        Method::DELETE,
        &format!("{path}?grace_days=400"),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 422);
    let res = send(&app, Method::DELETE, &path, &admin, None).await;
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "offboarding");
    let purge_after = time::OffsetDateTime::parse(
        body["purge_after"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expected = app.clock.now() + time::Duration::days(30);
    assert!(
        (purge_after - expected).abs() < time::Duration::seconds(1),
        "{purge_after} vs {expected}"
    );
    // Refused meanwhile, live tokens included; a repeated DELETE keeps the date.
    let res = call(&app, Method::GET, &alpha, "/api/v1/auth/me", &employee).await;
    assert_eq!(res.status(), 403);
    assert_eq!(problem(res).await["code"], "tenant_suspended");
    let again: Value = send(&app, Method::DELETE, &path, &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["purge_after"], body["purge_after"]);
    let res = send(
        &app,
        Method::PATCH,
        &path,
        &admin,
        Some(json!({"name": "X"})),
    )
    .await;
    assert_eq!(res.status(), 409);
    // Not yet due.
    assert!(
        serein::platform::purge::purge_due(&app.db, &app.state.keyring, app.clock.now())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        open(
            &app.state.keyring,
            &mut owner,
            app.tenant_a,
            KeyScope::Clinical,
            note_a,
            &note_a_blob
        )
        .await
        .as_deref(),
        Some(&b"clinical A"[..])
    );

    app.clock.advance(time::Duration::seconds(31 * 86_400));
    let admin = platform_admin(&app).await;
    let purged = serein::platform::purge::purge_due(&app.db, &app.state.keyring, app.clock.now())
        .await
        .unwrap();
    assert_eq!(purged.len(), 1);
    assert_eq!(purged[0].tenant, app.tenant_a);
    assert!(purged[0].rows > 0);

    // Every tenant table: A's rows are gone (tenant_keys keeps destroyed tombstones only);
    // B's are all still there.
    let tables = tenant_tables(&mut owner).await;
    assert!(tables.len() >= 8, "{tables:?}");
    for t in &tables {
        let a = rows_of(&mut owner, t, app.tenant_a).await;
        if t == "public.tenant_keys" {
            let live: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM tenant_keys WHERE tenant_id = $1 AND wrapped_key IS NOT NULL",
            )
            .bind(app.tenant_a.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
            assert_eq!(live, 0, "a tenant key of A survived");
        } else {
            assert_eq!(a, 0, "{t} still holds rows of A");
        }
        assert!(
            rows_of(&mut owner, t, app.tenant_b).await > 0,
            "{t} lost B's rows"
        );
    }
    // Crypto-shred: A's ciphertexts no longer open, with this keyring or a fresh one on the
    // same master key; B's still do.
    let fresh = Keyring::for_tests(crate::helpers::TEST_MASTER_KEY);
    for k in [&app.state.keyring, &fresh] {
        assert!(
            open(
                k,
                &mut owner,
                app.tenant_a,
                KeyScope::Clinical,
                note_a,
                &note_a_blob
            )
            .await
            .is_none()
        );
        assert!(
            open(
                k,
                &mut owner,
                app.tenant_a,
                KeyScope::Subject(person_a),
                jour_a,
                &jour_a_blob
            )
            .await
            .is_none()
        );
        assert_eq!(
            open(
                k,
                &mut owner,
                app.tenant_b,
                KeyScope::Clinical,
                note_b,
                &note_b_blob
            )
            .await
            .as_deref(),
            Some(&b"clinical B"[..])
        );
        assert_eq!(
            open(
                k,
                &mut owner,
                app.tenant_b,
                KeyScope::Subject(person_b),
                jour_b,
                &jour_b_blob
            )
            .await
            .as_deref(),
            Some(&b"journal B"[..])
        );
    }
    // Identities of A's people are gone; B's person stays.
    let users: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM users WHERE id = ANY($1)")
        .bind(vec![person_a.as_uuid(), person_b.as_uuid()])
        .fetch_all(&mut owner)
        .await
        .unwrap();
    assert_eq!(users, [person_b.as_uuid()]);
    // The tombstone: offboarded, its slug never reused, its host gone.
    let (status, offboarded_at): (String, Option<time::OffsetDateTime>) =
        sqlx::query_as("SELECT status, offboarded_at FROM tenants WHERE id = $1")
            .bind(app.tenant_a.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(status, "offboarded");
    assert!(offboarded_at.is_some());
    app.clock.advance(time::Duration::seconds(10));
    let res = app.get(&alpha, "/api/v1/tenant/profile").await;
    assert_eq!(res.status(), 410);
    assert_eq!(problem(res).await["code"], "tenant_offboarded");
    let res = create(
        &app,
        &admin,
        json!({"slug": "alpha", "name": "New Alpha", "plan": "starter"}),
    )
    .await;
    assert_eq!(res.status(), 409);
    assert_eq!(problem(res).await["code"], "slug_taken");
    let res = send(&app, Method::POST, &format!("{path}/resume"), &admin, None).await;
    assert_eq!(res.status(), 409);
    assert_eq!(problem(res).await["code"], "tenant_offboarded");
    // A second run finds nothing.
    assert!(
        serein::platform::purge::purge_due(&app.db, &app.state.keyring, app.clock.now())
            .await
            .unwrap()
            .is_empty()
    );
    // Tenant B still serves.
    assert_eq!(
        app.get(&host("bravo"), "/api/v1/tenant/profile")
            .await
            .status(),
        200
    );
}

/// A practitioner identity (user + profile) with `PASSWORD`, without memberships.
async fn practitioner(app: &TestApp, email: &str) -> UserId {
    let user = add_person(app, app.tenant_a, email, &[]).await;
    sqlx::query(
        "INSERT INTO practitioner_profiles (user_id, specialties, languages, bio, created_at, updated_at)
         VALUES ($1, '{stress}', '{en}', 'Bio', now(), now())",
    )
    .bind(user.as_uuid())
    .execute(&mut app.owner().await)
    .await
    .unwrap();
    user
}

#[tokio::test]
async fn a_practitioner_assigned_to_two_tenants_gets_a_token_per_host() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app).await;
    let email = "dr.who@practice.test";
    let doc = practitioner(&app, email).await;
    let (alpha, bravo) = (host("alpha"), host("bravo"));
    let assign = |t: TenantId| format!("{TENANTS}/{t}/practitioners/{doc}");

    // Not assigned anywhere yet: no login.
    let res = post(
        &app,
        &alpha,
        "/api/v1/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 401);

    let res = send(&app, Method::PUT, &assign(app.tenant_a), &admin, None).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["outcome"], "assigned");
    let res = send(&app, Method::PUT, &assign(app.tenant_a), &admin, None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        send(&app, Method::PUT, &assign(app.tenant_b), &admin, None)
            .await
            .status(),
        201
    );

    let token_a = login(&app, &alpha, email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let token_b = login(&app, &bravo, email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me: Value = call(&app, Method::GET, &alpha, "/api/v1/auth/me", &token_a)
        .await
        .json()
        .await
        .unwrap();
    assert!(me.to_string().contains("practitioner"), "{me}");
    assert_eq!(
        call(&app, Method::GET, &bravo, "/api/v1/auth/me", &token_b)
            .await
            .status(),
        200
    );
    // A token is valid only on the host it was issued for.
    assert_eq!(
        call(&app, Method::GET, &bravo, "/api/v1/auth/me", &token_a)
            .await
            .status(),
        401
    );
    assert_eq!(
        call(&app, Method::GET, &alpha, "/api/v1/auth/me", &token_b)
            .await
            .status(),
        401
    );

    // The platform admin sees counts only.
    let res = send(
        &app,
        Method::GET,
        &format!("{TENANTS}/{}", app.tenant_a),
        &admin,
        None,
    )
    .await;
    let text = res.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["members"]["by_role"]["practitioner"], 1);
    assert_eq!(
        body["members"]["seats_used"], 0,
        "practitioners take no seat"
    );
    assert!(
        !text.contains(email) && !text.contains("Test Person") && !text.contains(&doc.to_string()),
        "{text}"
    );

    // Unassigning ends their session in A at once; B is untouched.
    assert_eq!(
        send(&app, Method::DELETE, &assign(app.tenant_a), &admin, None)
            .await
            .status(),
        204
    );
    assert_eq!(
        call(&app, Method::GET, &alpha, "/api/v1/auth/me", &token_a)
            .await
            .status(),
        401
    );
    assert_eq!(
        call(&app, Method::GET, &bravo, "/api/v1/auth/me", &token_b)
            .await
            .status(),
        200
    );
    let mut owner = app.owner().await;
    let (status, revoked): (String, i64) = sqlx::query_as(
        "SELECT m.status, (SELECT count(*) FROM sessions s WHERE s.tenant_id = m.tenant_id AND s.user_id = m.user_id AND s.revoked_at IS NOT NULL)
         FROM memberships m WHERE m.tenant_id = $1 AND m.user_id = $2",
    )
    .bind(app.tenant_a.as_uuid())
    .bind(doc.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!((status.as_str(), revoked), ("disabled", 1));
    let res = post(
        &app,
        &alpha,
        "/api/v1/auth/login",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert!(
        matches!(res.status().as_u16(), 401 | 403),
        "{}",
        res.status()
    );
    assert_eq!(
        send(&app, Method::DELETE, &assign(app.tenant_a), &admin, None)
            .await
            .status(),
        404
    );
    // Re-assignment re-activates the membership.
    let res = send(&app, Method::PUT, &assign(app.tenant_a), &admin, None).await;
    assert_eq!(res.status(), 201);
    assert_eq!(res.json::<Value>().await.unwrap()["outcome"], "assigned");

    // Someone without a practitioner profile cannot be assigned (and nothing is written).
    let plain = add_person(&app, app.tenant_b, "plain@bravo.test", &["employee"]).await;
    let res = send(
        &app,
        Method::PUT,
        &format!("{TENANTS}/{}/practitioners/{plain}", app.tenant_a),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 404);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships WHERE user_id = $1")
        .bind(plain.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(n, 1);
    // The platform tenant is never a target.
    let res = send(
        &app,
        Method::PUT,
        &format!("{TENANTS}/{}/practitioners/{doc}", TenantId::PLATFORM),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 404);
    // A company admin cannot assign (Casbin), even in their own company.
    let (_, tenant_admin) = member_session(&app, &[Role::TenantAdmin]).await;
    let res = call(
        &app,
        Method::PUT,
        &alpha,
        &assign(app.tenant_a),
        &tenant_admin,
    )
    .await;
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn the_platform_admin_sees_counts_never_members() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app).await;
    let mut owner = app.owner().await;
    seed_world(&mut owner, app.tenant_a, "a").await; // an employee, a practitioner, an invitation
    add_person(
        &app,
        app.tenant_a,
        "boss@alpha.test",
        &["tenant_admin", "employee"],
    )
    .await;
    add_person(&app, app.tenant_a, "hr@alpha.test", &["hr"]).await;
    let gone = add_person(&app, app.tenant_a, "gone@alpha.test", &["employee"]).await;
    sqlx::query("UPDATE memberships SET status = 'disabled' WHERE user_id = $1")
        .bind(gone.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    let res = send(
        &app,
        Method::GET,
        &format!("{TENANTS}/{}", app.tenant_a),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["members"],
        json!({"seats_used": 4, "seats_available": 46, "active_members": 4, "disabled_members": 1,
               "pending_invitations": 1,
               "by_role": {"tenant_admin": 1, "hr": 1, "employee": 2, "practitioner": 1}})
    );
    for secret in [
        "@alpha.test",
        "@example.test",
        "Person a",
        "Dr a",
        "Test Person",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    // The database agrees: in the platform context, the company's member rows are invisible...
    as_app_with_roles(
        &mut owner,
        Some(TenantId::PLATFORM),
        Some(UserId::new()),
        "platform_admin",
    )
    .await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships WHERE tenant_id = $1")
        .bind(app.tenant_a.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(n, 0);
    owner.execute("ROLLBACK").await.unwrap();
    // ...and the counting definer refuses anyone but a platform admin.
    as_app_with_roles(
        &mut owner,
        Some(app.tenant_a),
        Some(UserId::new()),
        "tenant_admin",
    )
    .await;
    let err = sqlx::query("SELECT * FROM app_private.tenant_member_counts($1, now())")
        .bind(app.tenant_a.as_uuid())
        .fetch_all(&mut owner)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );
    owner.execute("ROLLBACK").await.unwrap();
    as_app_with_roles(
        &mut owner,
        Some(app.tenant_a),
        Some(UserId::new()),
        "tenant_admin",
    )
    .await;
    let err = sqlx::query("SELECT app_private.assign_practitioner($1, $2, $3, now())")
        .bind(app.tenant_a.as_uuid())
        .bind(gone.as_uuid())
        .bind(uuid::Uuid::now_v7())
        .fetch_all(&mut owner)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );
    owner.execute("ROLLBACK").await.unwrap();
}

/// `practitioner_profiles` is a GLOBAL table (no tenant_id), so the catalogue-driven tests do
/// not cover it: its policies are tested here.
#[tokio::test]
async fn practitioner_profiles_are_visible_only_where_assigned_and_verification_is_the_platforms() {
    let app = TestApp::spawn().await;
    let admin = platform_admin(&app).await;
    let doc = practitioner(&app, "dr.b@practice.test").await;
    assert_eq!(
        send(
            &app,
            Method::PUT,
            &format!("{TENANTS}/{}/practitioners/{doc}", app.tenant_b),
            &admin,
            None
        )
        .await
        .status(),
        201
    );
    let employee_a = add_person(&app, app.tenant_a, "e@alpha.test", &["employee"]).await;
    let employee_b = add_person(&app, app.tenant_b, "e@bravo.test", &["employee"]).await;
    let mut conn = app.owner().await;
    let visible = |tenant: TenantId, user: UserId, roles: &'static str| {
        let url = crate::helpers::db_url(&app.db_name);
        async move {
            let mut c = PgConnection::connect(&url).await.unwrap();
            as_app_with_roles(&mut c, Some(tenant), Some(user), roles).await;
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM practitioner_profiles WHERE user_id = $1")
                    .bind(doc.as_uuid())
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
            n
        }
    };
    assert_eq!(
        visible(app.tenant_a, employee_a, "employee").await,
        0,
        "seen from a tenant it does not serve"
    );
    assert_eq!(visible(app.tenant_b, employee_b, "employee").await, 1);
    assert_eq!(visible(app.tenant_a, doc, "").await, 1, "its owner sees it");

    // The practitioner (proven) may edit their bio, not their verification.
    crate::helpers::as_proven(&mut conn, app.tenant_b, doc, "practitioner").await;
    let done = sqlx::query("UPDATE practitioner_profiles SET bio = 'New bio' WHERE user_id = $1")
        .bind(doc.as_uuid())
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    let err =
        sqlx::query("UPDATE practitioner_profiles SET verified_at = now() WHERE user_id = $1")
            .bind(doc.as_uuid())
            .execute(&mut conn)
            .await
            .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );
    conn.execute("ROLLBACK").await.unwrap();
    // A tenant admin of B cannot either (not their row: nothing matches).
    as_app_with_roles(
        &mut conn,
        Some(app.tenant_b),
        Some(employee_b),
        "tenant_admin",
    )
    .await;
    let done =
        sqlx::query("UPDATE practitioner_profiles SET verified_at = now() WHERE user_id = $1")
            .bind(doc.as_uuid())
            .execute(&mut conn)
            .await
            .unwrap();
    assert_eq!(done.rows_affected(), 0);
    conn.execute("ROLLBACK").await.unwrap();
    // A context that only claims the platform role cannot (migration 20261207000005) …
    as_app_with_roles(
        &mut conn,
        Some(TenantId::PLATFORM),
        Some(UserId::new()),
        "platform_admin",
    )
    .await;
    let done =
        sqlx::query("UPDATE practitioner_profiles SET verified_at = now() WHERE user_id = $1")
            .bind(doc.as_uuid())
            .execute(&mut conn)
            .await
            .unwrap();
    assert_eq!(done.rows_affected(), 0, "a claimed platform role");
    for sql in [
        "UPDATE tenants SET late_cancel_hours = 0, allowance = 100 WHERE slug = 'alpha'",
        "UPDATE tenants SET seats = 1 WHERE slug = 'alpha'",
    ] {
        let done = conn.execute(sql).await.unwrap();
        assert_eq!(done.rows_affected(), 0, "{sql}");
    }
    conn.execute("ROLLBACK").await.unwrap();
    // … a proven platform admin can.
    let pa_mail = format!("{}@platform.test", uuid::Uuid::now_v7().simple());
    let pa = add_person(&app, app.tenant_a, &pa_mail, &[]).await;
    make_platform_admin(&app, pa).await;
    mint_session(
        &app,
        TenantId::PLATFORM,
        "localhost",
        pa,
        &[Role::PlatformAdmin],
    )
    .await;
    assert!(
        as_member_with_session_roles(&mut conn, TenantId::PLATFORM, pa, "platform_admin").await
    );
    let done =
        sqlx::query("UPDATE practitioner_profiles SET verified_at = now() WHERE user_id = $1")
            .bind(doc.as_uuid())
            .execute(&mut conn)
            .await
            .unwrap();
    assert_eq!(done.rows_affected(), 1);
    conn.execute("ROLLBACK").await.unwrap();
    let verified: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT verified_at FROM practitioner_profiles WHERE user_id = $1")
            .bind(doc.as_uuid())
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(verified.is_none());
}
