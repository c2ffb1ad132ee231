//! PROOF.md 6: the function-level matrix, generated from `policies/policy.csv` (read here
//! independently of Casbin) and the served OpenAPI document: every route declares a decision
//! the policy knows, and every (role, route) pair answers 403 exactly when the policy denies.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::people::*;
use serein::crypto::tokens::TokenType;
use serein::db::TenantId;
use serein::rbac::Role;

/// (resource, action) pairs each subject may use, with `g` inheritance resolved.
pub fn policy() -> HashMap<String, BTreeSet<(String, String)>> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/policy.csv"))
        .unwrap();
    let mut grants: HashMap<String, BTreeSet<(String, String)>> = HashMap::new();
    let mut parents: HashMap<String, Vec<String>> = HashMap::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        match cols.as_slice() {
            ["p", sub, obj, act] => {
                grants
                    .entry((*sub).into())
                    .or_default()
                    .insert(((*obj).into(), (*act).into()));
            }
            ["g", child, parent] => parents
                .entry((*child).into())
                .or_default()
                .push((*parent).into()),
            other => panic!("unexpected policy line {other:?}"),
        }
    }
    let subjects = [
        "anonymous",
        "enrolling",
        "platform_admin",
        "tenant_admin",
        "hr",
        "practitioner",
        "employee",
    ];
    let mut out = HashMap::new();
    for s in subjects {
        let mut seen = BTreeSet::new();
        let mut stack = vec![s.to_owned()];
        let mut all = BTreeSet::new();
        while let Some(x) = stack.pop() {
            if !seen.insert(x.clone()) {
                continue;
            }
            all.extend(grants.get(&x).cloned().unwrap_or_default());
            stack.extend(parents.get(&x).cloned().unwrap_or_default());
        }
        out.insert(s.to_owned(), all);
    }
    out
}

/// Every operation of the served document: (method, path, resource, action).
async fn operations(app: &TestApp) -> Vec<(Method, String, String, String)> {
    let doc: Value = app
        .get("localhost", "/api/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (m, op) in item.as_object().unwrap() {
            let Ok(method) = m.to_uppercase().parse::<Method>() else {
                continue;
            };
            let authz = &op["x-authz"];
            let (Some(r), Some(a)) = (authz["resource"].as_str(), authz["action"].as_str()) else {
                panic!("{m} {path} declares no decision (x-authz)");
            };
            ops.push((method, path.clone(), r.to_owned(), a.to_owned()));
        }
    }
    ops
}

#[tokio::test]
async fn every_route_declares_a_decision_the_policy_knows() {
    let app = TestApp::spawn().await;
    let ops = operations(&app).await;
    assert!(ops.len() >= 15, "{ops:?}");
    let known: BTreeSet<(String, String)> = policy().into_values().flatten().collect();
    for (m, p, r, a) in &ops {
        assert!(
            known.contains(&(r.clone(), a.clone())),
            "{m} {p}: ({r}, {a}) is granted to nobody"
        );
    }
    // The server's own table is exactly the document's.
    let served: BTreeMap<String, (String, String)> = app
        .state
        .rbac
        .routes()
        .map(|(m, p, d)| (format!("{m} {p}"), (d.resource.clone(), d.action.clone())))
        .collect();
    let documented: BTreeMap<String, (String, String)> = ops
        .iter()
        .map(|(m, p, r, a)| (format!("{m} {p}"), (r.clone(), a.clone())))
        .collect();
    assert_eq!(served, documented);
}

#[tokio::test]
async fn every_role_route_pair_is_allowed_or_403_as_the_policy_says() {
    let app = TestApp::spawn().await;
    let policy = policy();
    let ops = operations(&app).await;
    let alpha = host("alpha");

    // One live token per subject (a fresh one per call: some routes end the session).
    async fn token_for(app: &TestApp, subject: &str) -> (String, Option<String>) {
        let alpha = host("alpha");
        match subject {
            "anonymous" => (alpha, None),
            "enrolling" => {
                let email = format!("{}@alpha.test", uuid::Uuid::now_v7().simple());
                let user = add_person(app, app.tenant_a, &email, &["tenant_admin"]).await;
                let t = app
                    .state
                    .tokens
                    .issue(
                        TokenType::Enroll,
                        &alpha,
                        app.tenant_a,
                        user,
                        &[],
                        None,
                        app.clock.now(),
                        std::time::Duration::from_secs(300),
                    )
                    .unwrap();
                (alpha, Some(t))
            }
            "platform_admin" => {
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
                ("localhost".into(), Some(t))
            }
            role => {
                let (_, t) = member_session(app, &[Role::parse(role).unwrap()]).await;
                (alpha, Some(t))
            }
        }
    }

    let mut checked = 0;
    for subject in [
        "anonymous",
        "enrolling",
        "platform_admin",
        "tenant_admin",
        "hr",
        "practitioner",
        "employee",
    ] {
        let grants = &policy[subject];
        let public = &policy["anonymous"];
        for (method, path, r, a) in &ops {
            let pair = (r.clone(), a.clone());
            let (h, token) = token_for(&app, subject).await;
            let url = path.replace("{id}", &uuid::Uuid::now_v7().to_string());
            let mut req = app.req(method.clone(), &h, &url);
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            if [Method::POST, Method::PUT, Method::PATCH].contains(method) {
                req = req.json(&json!({}));
            }
            let status = req.send().await.unwrap().status().as_u16();
            let allowed = grants.contains(&pair);
            if subject == "anonymous" && !allowed {
                assert_eq!(status, 401, "anonymous {method} {path}");
            } else if allowed {
                assert_ne!(
                    status, 403,
                    "{subject} {method} {path} is allowed by the policy"
                );
                assert_ne!(
                    status, 401,
                    "{subject} {method} {path}: valid token refused"
                );
            } else {
                assert_eq!(
                    status, 403,
                    "{subject} {method} {path} is denied by the policy"
                );
            }
            let _ = public;
            checked += 1;
        }
    }
    assert!(checked >= 7 * 15);
    let _ = alpha;
}

#[tokio::test]
async fn casbin_refuses_where_row_level_security_would_allow() {
    // DESIGN §2: both layers are tested on their own. The isolation tests show RLS refusing
    // with Casbin out of the picture; here Casbin refuses a read RLS would allow: an admin
    // holding only an enrolment token asks for their own profile.
    let app = TestApp::spawn().await;
    let alpha = host("alpha");
    let user = add_person(&app, app.tenant_a, "boss@alpha.test", &["tenant_admin"]).await;
    let enroll = app
        .state
        .tokens
        .issue(
            TokenType::Enroll,
            &alpha,
            app.tenant_a,
            user,
            &[],
            None,
            app.clock.now(),
            std::time::Duration::from_secs(300),
        )
        .unwrap();
    let res = call(&app, Method::GET, &alpha, "/api/v1/auth/me", &enroll).await;
    assert_eq!(res.status(), 403);
    // The database alone would have shown the row to this person.
    let mut conn = app.owner().await;
    crate::helpers::as_app(&mut conn, Some(app.tenant_a), Some(user)).await;
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE id = $1")
        .bind(user.as_uuid())
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(visible, 1);
}
