//! Tenant settings, the member list, membership changes, HR's counts, and the BOLA sweep of
//! these routes (tenant A's admin against tenant B's ids → 404, B's rows unchanged).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, problem};
use crate::people::*;
use serein::db::{TenantId, UserId};
use serein::rbac::Role;

/// A request with a bearer token and an optional JSON body.
pub async fn send(
    app: &TestApp,
    method: Method,
    host: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.req(method, host, path).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

/// A person with `roles` in `tenant` (host `slug`) and a live session there.
pub async fn person(
    app: &TestApp,
    tenant: TenantId,
    slug: &str,
    roles: &[Role],
) -> (UserId, String) {
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let email = format!("{}@{slug}.test", uuid::Uuid::now_v7().simple());
    let user = add_person(app, tenant, &email, &names).await;
    let (_, token) = mint_session(app, tenant, &host(slug), user, roles).await;
    (user, token)
}

pub async fn membership_of(app: &TestApp, tenant: TenantId, user: UserId) -> uuid::Uuid {
    sqlx::query_scalar("SELECT id FROM memberships WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant.as_uuid())
        .bind(user.as_uuid())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

async fn membership_row(
    app: &TestApp,
    id: uuid::Uuid,
) -> (Vec<String>, String, Option<String>, bool) {
    let r: (Vec<String>, String, Option<String>, bool) = sqlx::query_as(
        "SELECT roles, status, department, ended_at IS NOT NULL FROM memberships WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap();
    r
}

async fn set_person(app: &TestApp, user: UserId, name: &str, department: Option<&str>) {
    let mut owner = app.owner().await;
    sqlx::query("UPDATE users SET display_name = $2 WHERE id = $1")
        .bind(user.as_uuid())
        .bind(name)
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query("UPDATE memberships SET department = $2 WHERE user_id = $1")
        .bind(user.as_uuid())
        .bind(department)
        .execute(&mut owner)
        .await
        .unwrap();
}

#[tokio::test]
async fn tenant_settings_read_update_validate_and_refuse() {
    let app = TestApp::spawn().await;
    let a = host("alpha");
    let (_, admin) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let res = send(&app, Method::GET, &a, "/api/v1/tenant", &admin, None).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["slug"], "alpha");
    assert_eq!(body["plan"], "standard");
    assert_eq!(body["seats"], 50);
    assert_eq!(body["seats_used"], 1);

    let patch = json!({
        "name": "Alpha Corp", "locale": "fr", "time_zone": "Europe/Paris",
        "allowed_email_domains": ["Alpha.Test", "alpha.test"], "min_cohort": 7,
        "branding": {"primary_color": "#112233"}
    });
    let res = send(
        &app,
        Method::PATCH,
        &a,
        "/api/v1/tenant",
        &admin,
        Some(patch),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["name"], "Alpha Corp");
    assert_eq!(body["allowed_email_domains"], json!(["alpha.test"]));
    let row: (String, String, String, i32, serde_json::Value) = sqlx::query_as(
        "SELECT name, locale, time_zone, min_cohort, branding FROM tenants WHERE id = $1",
    )
    .bind(app.tenant_a.as_uuid())
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap();
    assert_eq!(
        (row.0.as_str(), row.1.as_str(), row.2.as_str(), row.3),
        ("Alpha Corp", "fr", "Europe/Paris", 7)
    );
    assert_eq!(row.4["primary_color"], "#112233");

    // Validation names the field; nothing changes.
    for (body, field) in [
        (json!({"time_zone": "Mars/Olympus_Mons"}), "time_zone"),
        (json!({"min_cohort": 2}), "min_cohort"),
        (json!({"locale": "de"}), "locale"),
        (
            json!({"allowed_email_domains": ["not a domain"]}),
            "allowed_email_domains[0]",
        ),
        (
            json!({"branding": {"logo_url": "http://x.example/l.png"}}),
            "branding.logo_url",
        ),
    ] {
        let res = send(
            &app,
            Method::PATCH,
            &a,
            "/api/v1/tenant",
            &admin,
            Some(body),
        )
        .await;
        assert_eq!(res.status(), 422, "{field}");
        let p = problem(res).await;
        assert_eq!(p["errors"][0]["field"], field);
    }
    // The platform's fields are refused (unknown to this body), and the row is unchanged.
    for body in [
        json!({"seats": 100000}),
        json!({"plan": "enterprise"}),
        json!({"status": "active"}),
        json!({"web_origins": []}),
    ] {
        let res = send(
            &app,
            Method::PATCH,
            &a,
            "/api/v1/tenant",
            &admin,
            Some(body),
        )
        .await;
        assert_eq!(res.status(), 422);
        assert_eq!(problem(res).await["code"], "invalid_body");
    }
    let (seats, plan, tz): (i32, String, String) =
        sqlx::query_as("SELECT seats, plan, time_zone FROM tenants WHERE id = $1")
            .bind(app.tenant_a.as_uuid())
            .fetch_one(&mut app.owner().await)
            .await
            .unwrap();
    assert_eq!(
        (seats, plan.as_str(), tz.as_str()),
        (50, "standard", "Europe/Paris")
    );

    // HR and employees may not read or change the settings.
    let (_, hr) = person(&app, app.tenant_a, "alpha", &[Role::Hr]).await;
    assert_eq!(
        send(&app, Method::GET, &a, "/api/v1/tenant", &hr, None)
            .await
            .status(),
        403
    );
    assert_eq!(
        send(
            &app,
            Method::PATCH,
            &a,
            "/api/v1/tenant",
            &hr,
            Some(json!({"name": "X"}))
        )
        .await
        .status(),
        403
    );

    // A file-managed tenant is changed by its file only.
    sqlx::query("UPDATE tenants SET managed_by = 'file' WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    let res = send(
        &app,
        Method::PATCH,
        &a,
        "/api/v1/tenant",
        &admin,
        Some(json!({"name": "Y"})),
    )
    .await;
    assert_eq!(res.status(), 409);
    assert_eq!(problem(res).await["code"], "managed_by_file");
    let name: String = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    assert_eq!(name, "Alpha Corp");
}

#[tokio::test]
async fn members_list_pages_filters_and_searches() {
    let app = TestApp::spawn().await;
    let a = host("alpha");
    let (_, admin) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let mut ids = Vec::new();
    for (i, name) in [
        "Ada Lovelace",
        "Alan Turing",
        "Grace 100%_Hopper",
        "Edsger Dijkstra",
    ]
    .iter()
    .enumerate()
    {
        let (u, _) = person(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
        set_person(&app, u, name, Some(if i % 2 == 0 { "eng" } else { "ops" })).await;
        ids.push(u);
    }
    let (hr_user, hr) = person(&app, app.tenant_a, "alpha", &[Role::Hr]).await;
    // A member of B never shows in A.
    let (b_user, _) = person(&app, app.tenant_b, "bravo", &[Role::Employee]).await;

    // Pages of 2, following the cursor, cover everyone exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/members?limit=2&cursor={c}"),
            None => "/api/v1/members?limit=2".to_owned(),
        };
        let res = send(&app, Method::GET, &a, &path, &admin, None).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        for m in items {
            seen.push(m["user_id"].as_str().unwrap().to_owned());
            assert!(m["email"].is_string() && m["roles"].is_array() && m["created_at"].is_string());
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 6);
    assert!(!seen.contains(&b_user.to_string()));

    // Filters.
    let body: Value = send(
        &app,
        Method::GET,
        &a,
        "/api/v1/members?role=hr",
        &admin,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["user_id"], hr_user.to_string());
    sqlx::query("UPDATE memberships SET status = 'disabled' WHERE user_id = $1")
        .bind(ids[1].as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    let body: Value = send(
        &app,
        Method::GET,
        &a,
        "/api/v1/members?status=disabled",
        &admin,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["items"][0]["user_id"], ids[1].to_string());

    // Search by name (case-insensitive) and e-mail; wildcards are literal.
    let body: Value = send(
        &app,
        Method::GET,
        &a,
        "/api/v1/members?q=TURING",
        &admin,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["items"][0]["display_name"], "Alan Turing");
    let body: Value = send(
        &app,
        Method::GET,
        &a,
        "/api/v1/members?q=%25_",
        &admin,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["items"][0]["display_name"], "Grace 100%_Hopper");
    let email: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(ids[3].as_uuid())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    let body: Value = send(
        &app,
        Method::GET,
        &a,
        &format!("/api/v1/members?q={}", &email[..12]),
        &admin,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["items"][0]["user_id"], ids[3].to_string());

    // Bad input.
    let res = send(
        &app,
        Method::GET,
        &a,
        "/api/v1/members?cursor=nope!",
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 400);
    let res = send(
        &app,
        Method::GET,
        &a,
        "/api/v1/members?status=gone",
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 422);
    // The limit is capped.
    let res = send(
        &app,
        Method::GET,
        &a,
        "/api/v1/members?limit=100000",
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    // HR sees no list.
    assert_eq!(
        send(&app, Method::GET, &a, "/api/v1/members", &hr, None)
            .await
            .status(),
        403
    );
    // Without a token: 401.
    assert_eq!(app.get(&a, "/api/v1/members").await.status(), 401);
}

#[tokio::test]
async fn patch_member_roles_status_last_admin_and_seats() {
    let app = TestApp::spawn().await;
    let a = host("alpha");
    let (admin_user, admin) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let (emp_user, emp) = person(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
    let emp_m = membership_of(&app, app.tenant_a, emp_user).await;
    let admin_m = membership_of(&app, app.tenant_a, admin_user).await;

    // Roles and department.
    let res = send(
        &app,
        Method::PATCH,
        &a,
        &format!("/api/v1/members/{emp_m}"),
        &admin,
        Some(json!({"roles": ["hr", "employee"], "department": "People"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["roles"], json!(["hr", "employee"]));
    assert_eq!(membership_row(&app, emp_m).await.0, ["hr", "employee"]);
    assert_eq!(
        membership_row(&app, emp_m).await.2.as_deref(),
        Some("People")
    );

    // Invalid roles: the practitioner role is the platform's.
    let res = send(
        &app,
        Method::PATCH,
        &a,
        &format!("/api/v1/members/{emp_m}"),
        &admin,
        Some(json!({"roles": ["practitioner"]})),
    )
    .await;
    assert_eq!(res.status(), 422);
    assert_eq!(problem(res).await["errors"][0]["field"], "roles[0]");

    // Removing a role revokes the person's sessions at once.
    let res = send(
        &app,
        Method::PATCH,
        &a,
        &format!("/api/v1/members/{emp_m}"),
        &admin,
        Some(json!({"roles": ["employee"]})),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        send(&app, Method::GET, &a, "/api/v1/auth/me", &emp, None)
            .await
            .status(),
        401
    );

    // The last active tenant admin cannot demote or disable themself.
    for body in [
        json!({"roles": ["employee"]}),
        json!({"status": "disabled"}),
    ] {
        let res = send(
            &app,
            Method::PATCH,
            &a,
            &format!("/api/v1/members/{admin_m}"),
            &admin,
            Some(body),
        )
        .await;
        assert_eq!(res.status(), 409);
        assert_eq!(problem(res).await["code"], "last_admin");
    }
    assert_eq!(membership_row(&app, admin_m).await.0, ["tenant_admin"]);
    assert_eq!(membership_row(&app, admin_m).await.1, "active");

    // Disable, then re-enable with no seat left: 409 and still disabled.
    let res = send(
        &app,
        Method::PATCH,
        &a,
        &format!("/api/v1/members/{emp_m}"),
        &admin,
        Some(json!({"status": "disabled"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    sqlx::query("UPDATE tenants SET seats = 1 WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    let res = send(
        &app,
        Method::PATCH,
        &a,
        &format!("/api/v1/members/{emp_m}"),
        &admin,
        Some(json!({"status": "active"})),
    )
    .await;
    assert_eq!(res.status(), 409);
    assert_eq!(problem(res).await["code"], "seat_limit_reached");
    assert_eq!(membership_row(&app, emp_m).await.1, "disabled");
    sqlx::query("UPDATE tenants SET seats = 2 WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .execute(&mut app.owner().await)
        .await
        .unwrap();
    let res = send(
        &app,
        Method::PATCH,
        &a,
        &format!("/api/v1/members/{emp_m}"),
        &admin,
        Some(json!({"status": "active"})),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(membership_row(&app, emp_m).await.1, "active");

    // With a second admin, the first may step down.
    let res = send(
        &app,
        Method::PATCH,
        &a,
        &format!("/api/v1/members/{emp_m}"),
        &admin,
        Some(json!({"roles": ["tenant_admin"]})),
    )
    .await;
    assert_eq!(res.status(), 200);
    let res = send(
        &app,
        Method::PATCH,
        &a,
        &format!("/api/v1/members/{admin_m}"),
        &admin,
        Some(json!({"roles": ["employee"]})),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(membership_row(&app, admin_m).await.0, ["employee"]);

    // A practitioner's membership is read-only here.
    let (_, admin2) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let (pr_user, _) = person(&app, app.tenant_a, "alpha", &[Role::Practitioner]).await;
    let pr_m = membership_of(&app, app.tenant_a, pr_user).await;
    let res = send(
        &app,
        Method::PATCH,
        &a,
        &format!("/api/v1/members/{pr_m}"),
        &admin2,
        Some(json!({"status": "disabled"})),
    )
    .await;
    assert_eq!(res.status(), 403);
    assert_eq!(membership_row(&app, pr_m).await.1, "active");
    // Unknown fields and unknown ids.
    let res = send(
        &app,
        Method::PATCH,
        &a,
        &format!("/api/v1/members/{emp_m}"),
        &admin2,
        Some(json!({"tenant_id": app.tenant_b})),
    )
    .await;
    assert_eq!(res.status(), 422);
    let res = send(
        &app,
        Method::PATCH,
        &a,
        &format!("/api/v1/members/{}", uuid::Uuid::now_v7()),
        &admin2,
        Some(json!({"status": "disabled"})),
    )
    .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn ending_a_membership_revokes_the_live_session_at_once() {
    let app = TestApp::spawn().await;
    let a = host("alpha");
    let (admin_user, admin) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let (emp_user, emp) = person(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
    let emp_m = membership_of(&app, app.tenant_a, emp_user).await;
    assert_eq!(
        send(&app, Method::GET, &a, "/api/v1/auth/me", &emp, None)
            .await
            .status(),
        200
    );

    let res = send(
        &app,
        Method::DELETE,
        &a,
        &format!("/api/v1/members/{emp_m}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        send(&app, Method::GET, &a, "/api/v1/auth/me", &emp, None)
            .await
            .status(),
        401
    );
    let (_, status, _, ended) = membership_row(&app, emp_m).await;
    assert_eq!((status.as_str(), ended), ("disabled", true));
    let revoked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NOT NULL AND revoked_reason = 'membership_change'",
    )
    .bind(emp_user.as_uuid())
    .fetch_one(&mut app.owner().await)
    .await
    .unwrap();
    assert_eq!(revoked, 1);
    // Ended members leave the default list, show under status=ended, and cannot be patched back.
    let body: Value = send(&app, Method::GET, &a, "/api/v1/members", &admin, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    let body: Value = send(
        &app,
        Method::GET,
        &a,
        "/api/v1/members?status=ended",
        &admin,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["items"][0]["status"], "ended");
    let res = send(
        &app,
        Method::PATCH,
        &a,
        &format!("/api/v1/members/{emp_m}"),
        &admin,
        Some(json!({"status": "active"})),
    )
    .await;
    assert_eq!(res.status(), 409);
    assert_eq!(
        send(
            &app,
            Method::DELETE,
            &a,
            &format!("/api/v1/members/{emp_m}"),
            &admin,
            None
        )
        .await
        .status(),
        404
    );

    // The last admin cannot end their own membership.
    let admin_m = membership_of(&app, app.tenant_a, admin_user).await;
    let res = send(
        &app,
        Method::DELETE,
        &a,
        &format!("/api/v1/members/{admin_m}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(res.status(), 409);
    assert_eq!(membership_row(&app, admin_m).await.1, "active");
}

#[tokio::test]
async fn hr_sees_one_coarse_closed_month_figure_and_no_individual() {
    let app = TestApp::spawn().await;
    let a = host("alpha");
    let (admin_user, admin) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let (hr_user, hr) = person(&app, app.tenant_a, "alpha", &[Role::Hr]).await;
    set_person(&app, admin_user, "Boss", Some("board")).await;
    set_person(&app, hr_user, "Harriet", Some("board")).await;

    // Everyone joined this month: nothing of it is released yet (the figure is for the last
    // complete month, when the company had no member: suppressed).
    let mut people = vec![admin_user, hr_user];
    for (dept, n) in [("eng", 12), ("legal", 1)] {
        for _ in 0..n {
            let (u, _) = person(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
            set_person(&app, u, &format!("Person of {dept}"), Some(dept)).await;
            people.push(u);
        }
    }
    let res = send(&app, Method::GET, &a, "/api/v1/members/summary", &hr, None).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["members"], Value::Null, "{body}");
    assert_eq!(body["suppressed"], true);
    assert_eq!(body["band"], 10);
    assert!(body["seats"].is_i64(), "{body}");

    // Move everyone's enrolment two months back: the closed month now holds 15 company
    // members (a practitioner is not one), released as the band "at least 10".
    person(&app, app.tenant_a, "alpha", &[Role::Practitioner]).await;
    sqlx::query(
        "UPDATE memberships SET enrolled_since = now() - interval '70 days' WHERE tenant_id = $1",
    )
    .bind(app.tenant_a.as_uuid())
    .execute(&mut app.owner().await)
    .await
    .unwrap();
    let res = send(&app, Method::GET, &a, "/api/v1/members/summary", &hr, None).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["members"], 10, "{body}");
    assert_eq!(body["suppressed"], false);
    // Nothing per department or role.
    for word in [
        "eng",
        "legal",
        "board",
        "employee",
        "tenant_admin",
        "\"hr\"",
    ] {
        assert!(!text.contains(word), "{word} in {text}");
    }
    // No individual: no e-mail, name, user id or membership id anywhere in HR's answer.
    let mut owner = app.owner().await;
    for u in &people {
        let (email, name): (String, String) =
            sqlx::query_as("SELECT email, display_name FROM users WHERE id = $1")
                .bind(u.as_uuid())
                .fetch_one(&mut owner)
                .await
                .unwrap();
        let m = membership_of(&app, app.tenant_a, *u).await;
        assert!(!text.contains(&email) && !text.contains(&name), "{text}");
        assert!(!text.contains(&u.to_string()) && !text.contains(&m.to_string()));
    }
    assert!(!text.contains('@'));
    // HR has no row access to memberships at the database level either.
    crate::helpers::as_app_with_roles(&mut owner, Some(app.tenant_a), Some(hr_user), "hr").await;
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM memberships WHERE user_id <> $1")
        .bind(hr_user.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(visible, 1, "HR sees only the practitioner directory row");
    // Tenant admins get the same figure; employees none.
    assert_eq!(
        send(
            &app,
            Method::GET,
            &a,
            "/api/v1/members/summary",
            &admin,
            None
        )
        .await
        .status(),
        200
    );
    let (_, emp) = person(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
    assert_eq!(
        send(&app, Method::GET, &a, "/api/v1/members/summary", &emp, None)
            .await
            .status(),
        403
    );
}

#[tokio::test]
async fn tenant_a_admin_cannot_touch_tenant_b_members() {
    let app = TestApp::spawn().await;
    let a = host("alpha");
    let (_, admin_a) = person(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let (b_user, b_token) = person(&app, app.tenant_b, "bravo", &[Role::Employee]).await;
    let b_m = membership_of(&app, app.tenant_b, b_user).await;
    let before = membership_row(&app, b_m).await;

    let res = send(
        &app,
        Method::PATCH,
        &a,
        &format!("/api/v1/members/{b_m}"),
        &admin_a,
        Some(json!({"status": "disabled", "roles": ["tenant_admin"]})),
    )
    .await;
    assert_eq!(res.status(), 404);
    let res = send(
        &app,
        Method::DELETE,
        &a,
        &format!("/api/v1/members/{b_m}"),
        &admin_a,
        None,
    )
    .await;
    assert_eq!(res.status(), 404);
    assert_eq!(membership_row(&app, b_m).await, before);
    // B's person's session is untouched.
    assert_eq!(
        send(
            &app,
            Method::GET,
            &host("bravo"),
            "/api/v1/auth/me",
            &b_token,
            None
        )
        .await
        .status(),
        200
    );
    // A's token on B's host is refused outright.
    assert_eq!(
        send(
            &app,
            Method::GET,
            &host("bravo"),
            "/api/v1/members",
            &admin_a,
            None
        )
        .await
        .status(),
        401
    );
}
