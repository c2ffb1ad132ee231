//! Issue 9 item 13: bad input never reaches PostgreSQL and never fills a struct by position.
//! The sweep is generated from the served OpenAPI document (a new route is covered without
//! editing this file): every operation is called with NUL and control characters in its path
//! parameters, its query parameters (documented or not) and, for a JSON body, in every property
//! of the body's schema (nested objects and arrays included), and with JSON arrays instead of
//! the object — anonymously and as the most privileged caller of its host. Nothing may answer
//! 5xx, no operation accepts an array (one that takes no body refuses any body but an empty
//! one or `{}`), each refusal is the precise one (404 for a path, 400 `invalid_query`, 422
//! `invalid_body` naming the field), and no row of any table changes.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::helpers::{TestApp, problem};
use crate::people::*;
use serein::db::TenantId;
use serein::rbac::Role;

const PLATFORM: &str = "localhost";

/// Refused characters, percent-encoded for a URI: NUL, ESC, DEL, a C1 control (U+0085), a
/// line feed (refused in a query: parameters are one line).
const URI_BAD: [&str; 5] = ["a%00b", "%1b%5B31m", "x%7F", "%C2%85", "a%0Ab"];
/// Refused characters in JSON strings.
const JSON_BAD: [&str; 4] = ["a\u{0}b", "\u{1b}[31m", "x\u{7f}", "\u{85}"];

struct Op {
    method: Method,
    path: String,
    query: Vec<String>,
    /// The JSON body's schema (resolved), if the operation takes a JSON body.
    body: Option<Value>,
    /// Its declared (resource, action).
    authz: (String, String),
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(alts) = schema[key].as_array()
            && let Some(obj) = alts.iter().find(|a| a["type"] != "null")
        {
            return resolve(doc, obj);
        }
    }
    schema
}

fn operations(doc: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            let Ok(method) = m.to_uppercase().parse::<Method>() else {
                continue;
            };
            let query = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            let content = &op["requestBody"]["content"];
            let body = content
                .get("application/json")
                .map(|c| resolve(doc, &c["schema"]).clone());
            let authz = (
                op["x-authz"]["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                op["x-authz"]["action"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
            ops.push(Op {
                method,
                path: path.clone(),
                query,
                body,
                authz,
            });
        }
    }
    ops
}

/// Bodies each with one refused string: (expected field path, body). Every property of the
/// schema, one level into nested objects, the first item of arrays.
fn poisoned_bodies(doc: &Value, schema: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let props = schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (i, (name, prop)) in props.iter().enumerate() {
        let bad = JSON_BAD[i % JSON_BAD.len()];
        let prop = resolve(doc, prop);
        let is = |t: &str| {
            prop["type"] == t
                || prop["type"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!(t)))
        };
        if is("object") || prop["properties"].is_object() {
            for sub in prop["properties"]
                .as_object()
                .into_iter()
                .flat_map(|p| p.keys())
            {
                out.push((format!("{name}.{sub}"), json!({ name: { sub: bad } })));
            }
        } else if is("array") {
            out.push((format!("{name}[0]"), json!({ name: [bad] })));
        } else {
            out.push((name.clone(), json!({ name: bad })));
        }
    }
    out
}

fn fill(template: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Row counts and a digest of every table in `public` (any change shows).
async fn fingerprint(owner: &mut PgConnection) -> Vec<(String, Option<String>)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE '\\_sqlx%'
         ORDER BY 1",
    )
    .fetch_all(&mut *owner)
    .await
    .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let q = format!("SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM {t} x");
        let digest: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(q))
            .fetch_one(&mut *owner)
            .await
            .unwrap();
        out.push((t, digest));
    }
    out
}

#[tokio::test]
async fn every_route_refuses_nul_control_characters_and_array_bodies() {
    let app = TestApp::spawn().await;
    let alpha = host("alpha");
    let doc: Value = app
        .get(PLATFORM, "/api/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let ops = operations(&doc);
    assert!(ops.len() >= 40, "too few operations: {}", ops.len());
    assert!(ops.iter().filter(|o| o.body.is_some()).count() >= 15);

    // The most privileged caller of each host: a tenant admin on A's host (or, for the care
    // routes the policy gives only to practitioners or employees, one of those), a platform
    // admin on the platform host. A fresh session per operation: nothing may end it, but if
    // something did, the next operation's answer would not hide behind a 401.
    let policy = crate::rbac::policy();
    let company_role = |pair: &(String, String)| {
        [
            ("tenant_admin", Role::TenantAdmin),
            ("practitioner", Role::Practitioner),
            ("employee", Role::Employee),
        ]
        .into_iter()
        .find(|(name, _)| policy.get(*name).is_some_and(|g| g.contains(pair)))
        .map_or(Role::TenantAdmin, |(_, role)| role)
    };
    let platform_admin = {
        let email = format!("{}@platform.test", uuid::Uuid::now_v7().simple());
        let user = add_person(&app, app.tenant_a, &email, &[]).await;
        make_platform_admin(&app, user).await;
        user
    };
    let mut admins = Vec::new();
    for op in &ops {
        admins.push(if op.path.starts_with("/api/v1/platform/") {
            mint_session(
                &app,
                TenantId::PLATFORM,
                PLATFORM,
                platform_admin,
                &[Role::PlatformAdmin],
            )
            .await
            .1
        } else {
            member_session(&app, &[company_role(&op.authz)]).await.1
        });
    }
    let mut owner = app.owner().await;
    let before = fingerprint(&mut owner).await;

    let mut calls = 0;
    for (op, admin) in ops.iter().zip(&admins) {
        let platform = op.path.starts_with("/api/v1/platform/");
        let h = if platform { PLATFORM } else { alpha.as_str() };
        let id = uuid::Uuid::now_v7().to_string();
        let concrete = fill(&op.path, &id);
        let what = format!("{} {}", op.method, op.path);
        for token in [None, Some(admin.as_str())] {
            let who = if token.is_some() {
                "admin"
            } else {
                "anonymous"
            };
            let send = |path: String, body: Option<Value>| {
                let mut req = app.req(op.method.clone(), h, &path);
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                if let Some(b) = body {
                    req = req.json(&b);
                }
                req.send()
            };
            // Path parameters: such a path names nothing.
            if op.path.contains('{') {
                for bad in URI_BAD {
                    let res = send(fill(&op.path, bad), None).await.unwrap();
                    calls += 1;
                    assert_eq!(res.status(), 404, "{who} {what} with path {bad}");
                }
            }
            // Query parameters, documented ones and an undocumented `q`.
            let mut names = op.query.clone();
            names.push("q".into());
            for name in &names {
                for bad in URI_BAD {
                    let res = send(format!("{concrete}?{name}={bad}"), None)
                        .await
                        .unwrap();
                    calls += 1;
                    assert_eq!(res.status(), 400, "{who} {what} with ?{name}={bad}");
                    assert_eq!(problem(res).await["code"], "invalid_query", "{who} {what}");
                }
            }
            // Arrays where the object is required: never a 2xx, never a 5xx; and where the body
            // is read, the precise refusal.
            let mut refused_as_array = false;
            let arrays = vec![json!(["e@x.test", "pw"]), json!([null, null]), json!([])];
            for arr in arrays {
                let res = send(concrete.clone(), Some(arr.clone())).await.unwrap();
                calls += 1;
                let status = res.status().as_u16();
                let p = res.text().await.unwrap();
                assert!(
                    (400..500).contains(&status),
                    "{who} {what} with {arr}: {status} {p}"
                );
                if status == 422 {
                    let p: Value = serde_json::from_str(&p).unwrap();
                    assert_eq!(p["code"], "invalid_body", "{who} {what} {p}");
                    assert_eq!(p["errors"][0]["field"], "(body)", "{who} {what} {p}");
                    refused_as_array = true;
                }
            }
            // A body is read on every operation that documents one, by one caller or the other.
            if op.body.is_some() && token.is_some() && !refused_as_array {
                let res = send(concrete.clone(), Some(json!([]))).await.unwrap();
                let anon = app
                    .req(op.method.clone(), h, &concrete)
                    .json(&json!([]))
                    .send()
                    .await
                    .unwrap();
                panic!(
                    "{what}: an array body was not refused as such ({} as admin, {} anonymously)",
                    res.status(),
                    anon.status()
                );
            }
            // Refused characters in every property of the body.
            if let Some(schema) = &op.body {
                for (field, body) in poisoned_bodies(&doc, schema) {
                    let res = send(concrete.clone(), Some(body.clone())).await.unwrap();
                    calls += 1;
                    let status = res.status().as_u16();
                    let p = problem(res).await;
                    assert!(
                        matches!(status, 401 | 403 | 422),
                        "{who} {what} with {body}: {status} {p}"
                    );
                    if status == 422 {
                        assert_eq!(p["code"], "invalid_body", "{who} {what} {body}: {p}");
                        assert_eq!(p["errors"][0]["field"], field.as_str(), "{who} {what} {p}");
                    }
                }
            }
        }
    }
    assert!(calls > 1000, "the sweep made {calls} calls");
    assert_eq!(
        before,
        fingerprint(&mut owner).await,
        "a refused request changed a row"
    );
}

async fn count_users(o: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(o)
        .await
        .unwrap()
}

/// The cases found by hand, each pinned to its exact answer.
#[tokio::test]
async fn the_cases_found_by_hand_are_refused_precisely() {
    let app = TestApp::spawn().await;
    let alpha = host("alpha");
    let mut owner = app.owner().await;
    sqlx::query("UPDATE tenants SET allowed_email_domains = ARRAY['alpha.test'] WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    let email = format!("{}@alpha.test", uuid::Uuid::now_v7().simple());
    add_person(&app, app.tenant_a, &email, &["employee"]).await;

    // Login by position: ["email", "password"] no longer logs in.
    let res = post(&app, &alpha, "/api/v1/auth/login", json!([email, PASSWORD])).await;
    assert_eq!(res.status(), 422);
    let p = problem(res).await;
    assert_eq!(p["code"], "invalid_body");
    assert_eq!(p["errors"][0]["field"], "(body)");
    assert_eq!(p["errors"][0]["reason"], "must be a JSON object");

    // Anonymous register with NUL, ESC, or a line break in the display name.
    let n_users = count_users(&mut owner).await;
    for (name, code) in [
        ("a\u{0}b", "invalid_body"),
        ("\u{1b}[2J", "invalid_body"),
        ("two\nlines", "validation_failed"),
        ("evil\u{202E}gpj.exe", "validation_failed"),
    ] {
        let res = post(
            &app,
            &alpha,
            "/api/v1/auth/register",
            json!({"email": "new@alpha.test", "password": PASSWORD, "display_name": name}),
        )
        .await;
        assert_eq!(res.status(), 422, "{name:?}");
        let p = problem(res).await;
        assert_eq!(p["code"], code, "{name:?} {p}");
        assert_eq!(p["errors"][0]["field"], "display_name", "{name:?} {p}");
    }
    assert_eq!(count_users(&mut owner).await, n_users);

    // NUL in the search of every list: 400, not 500.
    let (_, admin) = member_session(&app, &[Role::TenantAdmin]).await;
    for path in ["/api/v1/practitioners?q=%00", "/api/v1/members?q=a%00b"] {
        let res = call(&app, Method::GET, &alpha, path, &admin).await;
        assert_eq!(res.status(), 400, "{path}");
        assert_eq!(problem(res).await["code"], "invalid_query");
    }

    // Branding: NUL / control characters / line breaks refused, nothing stored.
    let branding_before: Value =
        sqlx::query_scalar("SELECT to_jsonb(t) FROM tenants t WHERE id = $1")
            .bind(app.tenant_a.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    for (branding, code, field) in [
        (
            json!({"display_name": "a\u{0}b"}),
            "invalid_body",
            "branding.display_name",
        ),
        (
            json!({"logo_url": "https://x.test/\u{0}.png"}),
            "invalid_body",
            "branding.logo_url",
        ),
        (
            json!({"display_name": "Acme\r\nInc"}),
            "validation_failed",
            "branding.display_name",
        ),
        (
            json!({"logo_url": "https://x.test/a b.png"}),
            "validation_failed",
            "branding.logo_url",
        ),
    ] {
        let res = app
            .req(Method::PATCH, &alpha, "/api/v1/tenant")
            .bearer_auth(&admin)
            .json(&json!({ "branding": branding }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{branding}");
        let p = problem(res).await;
        assert_eq!(p["code"], code, "{branding} {p}");
        assert_eq!(p["errors"][0]["field"], field, "{branding} {p}");
    }
    let branding_after: Value =
        sqlx::query_scalar("SELECT to_jsonb(t) FROM tenants t WHERE id = $1")
            .bind(app.tenant_a.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(branding_before, branding_after);

    // `[null, null]` to PATCH /members/{id}: refused, not 200.
    let (colleague, _) = member_session(&app, &[Role::Employee]).await;
    let membership: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM memberships WHERE user_id = $1")
            .bind(colleague.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    let res = app
        .req(
            Method::PATCH,
            &alpha,
            &format!("/api/v1/members/{membership}"),
        )
        .bearer_auth(&admin)
        .json(&json!([null, null]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);

    // A type error is not a syntax error: 422 with the field path, not 400 malformed_json.
    let platform_admin = {
        let email = format!("{}@platform.test", uuid::Uuid::now_v7().simple());
        let user = add_person(&app, app.tenant_a, &email, &[]).await;
        make_platform_admin(&app, user).await;
        mint_session(
            &app,
            TenantId::PLATFORM,
            PLATFORM,
            user,
            &[Role::PlatformAdmin],
        )
        .await
        .1
    };
    let path = format!("/api/v1/platform/tenants/{}", app.tenant_a);
    let res = app
        .req(Method::PATCH, PLATFORM, &path)
        .bearer_auth(&platform_admin)
        .json(&json!({"plan": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let p = problem(res).await;
    assert_eq!(p["code"], "invalid_body");
    assert_eq!(p["errors"][0]["field"], "plan");
    // An integral float is the integer it equals (JSON Schema's `integer`); a fraction is not.
    let res = app
        .req(Method::PATCH, PLATFORM, &path)
        .bearer_auth(&platform_admin)
        .json(&json!({"seats": 8104.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let seats: i32 = sqlx::query_scalar("SELECT seats FROM tenants WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(seats, 8104);
    let res = app
        .req(Method::PATCH, PLATFORM, &path)
        .bearer_auth(&platform_admin)
        .json(&json!({"seats": 8104.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    assert_eq!(problem(res).await["errors"][0]["field"], "seats");
    // Syntax errors stay 400.
    let res = app
        .req(Method::PATCH, PLATFORM, &path)
        .bearer_auth(&platform_admin)
        .header("content-type", "application/json")
        .body("{\"seats\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(problem(res).await["code"], "malformed_json");
}

/// An operation that takes no body refuses one, so a body sent by mistake is never answered as
/// if understood: `logout` with an array body is 422 and the session lives on; with nothing, or
/// the `{}` many clients send, it logs out.
#[tokio::test]
async fn an_operation_without_a_body_refuses_one_but_accepts_nothing_or_an_empty_object() {
    let app = TestApp::spawn().await;
    let h = host("alpha");
    let (_, token) = member_session(&app, &[Role::Employee]).await;
    let me = || {
        app.req(Method::GET, &h, "/api/v1/auth/me")
            .bearer_auth(&token)
            .send()
    };
    for body in [json!(["x"]), json!({"session_id": "all"}), json!("logout")] {
        let res = app
            .req(Method::POST, &h, "/api/v1/auth/logout")
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{body}");
        let p = problem(res).await;
        assert_eq!(p["code"], "invalid_body");
        assert_eq!(p["errors"][0]["field"], "(body)");
        assert_eq!(
            me().await.unwrap().status(),
            200,
            "still signed in after {body}"
        );
    }
    let res = app
        .req(Method::POST, &h, "/api/v1/auth/logout")
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(" { } ")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(me().await.unwrap().status(), 401);

    // Without a body at all (a fresh session).
    let (_, token) = member_session(&app, &[Role::Employee]).await;
    let res = app
        .req(Method::POST, &h, "/api/v1/auth/logout")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
}
