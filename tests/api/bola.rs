//! PROOF.md 5, the API BOLA sweep: every route of the served OpenAPI document that takes an id
//! (path parameter) is called, by every company role of tenant A on A's host, with the ids of
//! tenant B's objects (member, membership, invitation and its token, practitioner assigned only
//! to B, B itself) and with the id of a colleague who is not a practitioner. Nothing may
//! succeed, nothing may fail with a 5xx, and afterwards every row of tenant B — in every tenant
//! table (from the catalogue) and in the global tables (`tenants`, `users`,
//! `practitioner_profiles`) — is exactly as before. Positive controls show the same routes do
//! work on A's own objects, so the refusals are the tenant boundary, not a broken route.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{PgConnection, Row};

use crate::helpers::{TestApp, seed_world};
use crate::people::*;
use serein::crypto::tokens::record_token;
use serein::db::{TenantId, UserId};
use serein::rbac::Role;

/// Every operation with a path parameter: (method, path template, (resource, action)).
async fn operations_with_ids(app: &TestApp) -> Vec<(Method, String, (String, String))> {
    let doc: Value = app
        .get("localhost", "/api/v1/openapi.json")
        .await
        .json()
        .await
        .unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.contains('{') {
            continue;
        }
        for (m, op) in item.as_object().unwrap() {
            if let Ok(method) = m.to_uppercase().parse::<Method>() {
                let authz = &op["x-authz"];
                let pair = (
                    authz["resource"].as_str().unwrap_or_default().to_owned(),
                    authz["action"].as_str().unwrap_or_default().to_owned(),
                );
                ops.push((method, path.clone(), pair));
            }
        }
    }
    ops
}

/// Replace every `{param}` of `template` by `value`.
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

/// A fingerprint of everything tenant B owns: each tenant table's rows of B, B's tenant row, the
/// identities and practitioner profiles of B's people.
async fn fingerprint_b(
    owner: &mut PgConnection,
    b: TenantId,
) -> Vec<(String, i64, Option<String>)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1",
    )
    .fetch_all(&mut *owner)
    .await
    .unwrap();
    let mut out = Vec::new();
    let mut queries: Vec<(String, String)> = tables
        .into_iter()
        .map(|t| {
            let q = format!(
                "SELECT count(*), md5(string_agg(x::text, ',' ORDER BY x::text)) FROM {t} x WHERE tenant_id = $1"
            );
            (t, q)
        })
        .collect();
    queries.push((
        "tenants".into(),
        "SELECT count(*), md5(string_agg(x::text, ',' ORDER BY x::text)) FROM tenants x WHERE id = $1".into(),
    ));
    queries.push((
        "users".into(),
        "SELECT count(*), md5(string_agg(x::text, ',' ORDER BY x::text)) FROM users x
         WHERE id IN (SELECT user_id FROM memberships WHERE tenant_id = $1)"
            .into(),
    ));
    queries.push((
        "practitioner_profiles".into(),
        "SELECT count(*), md5(string_agg(x::text, ',' ORDER BY x::text)) FROM practitioner_profiles x
         WHERE user_id IN (SELECT user_id FROM memberships WHERE tenant_id = $1)".into(),
    ));
    queries.push((
        "articles".into(),
        "SELECT count(*), md5(string_agg(x::text, ',' ORDER BY x::text)) FROM articles x
         WHERE author_id IN (SELECT user_id FROM memberships WHERE tenant_id = $1)"
            .into(),
    ));
    for (name, q) in queries {
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(b.as_uuid())
            .fetch_one(&mut *owner)
            .await
            .unwrap();
        out.push((name, row.get(0), row.get(1)));
    }
    out
}

/// A practitioner identity with a profile, assigned (practitioner membership) to `tenant`.
async fn practitioner_in(app: &TestApp, tenant: TenantId, tag: &str) -> UserId {
    let email = format!("{tag}-{}@practice.test", uuid::Uuid::now_v7().simple());
    let user = add_person(app, tenant, &email, &["practitioner"]).await;
    sqlx::query(
        "INSERT INTO practitioner_profiles (user_id, specialties, languages, bio, created_at, updated_at)
         VALUES ($1, '{anxiety,sleep}', '{en,fr}', 'Calm and kind.', now(), now())",
    )
    .bind(user.as_uuid())
    .execute(&mut app.owner().await)
    .await
    .unwrap();
    user
}

/// The membership id of `user` in `tenant`.
async fn membership_of(app: &TestApp, tenant: TenantId, user: UserId) -> uuid::Uuid {
    sqlx::query_scalar("SELECT id FROM memberships WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant.as_uuid())
        .bind(user.as_uuid())
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap()
}

/// A pending invitation of `tenant` whose token we know.
async fn invitation_in(app: &TestApp, tenant: TenantId, email: &str) -> (uuid::Uuid, String) {
    let id = uuid::Uuid::now_v7();
    let token = record_token(id);
    sqlx::query(
        "INSERT INTO invitations (id, tenant_id, email, roles, token_hash, created_at, updated_at, expires_at)
         VALUES ($1, $2, $3, '{employee}', $4, now(), now(), now() + interval '7 days')",
    )
    .bind(id)
    .bind(tenant.as_uuid())
    .bind(email)
    .bind(token.hash.to_vec())
    .execute(&mut app.owner().await)
    .await
    .unwrap();
    (id, token.token)
}

#[tokio::test]
async fn tenant_a_cannot_reach_tenant_b_objects_through_any_route_with_an_id() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    let alpha = host("alpha");
    let mut owner = app.owner().await;
    // Tenant B's world: a member (with every tenant table seeded), a practitioner assigned to B
    // only, a pending invitation with a known token.
    let b_member = seed_world(&mut owner, b, "bravo").await;
    let b_membership = membership_of(&app, b, b_member).await;
    let b_practitioner = practitioner_in(&app, b, "bravo").await;
    let (b_invitation, b_token) = invitation_in(&app, b, "newcomer@bravo.test").await;
    // Tenant A: a colleague who is not a practitioner, and A's own objects for the controls.
    let a_colleague = seed_world(&mut owner, a, "alpha").await;
    let a_practitioner = practitioner_in(&app, a, "alpha").await;
    let a_membership = membership_of(&app, a, a_colleague).await;

    // Content: B's news (seeded) and a draft article of B's practitioner (a published article
    // is platform-wide by design, so only a draft is foreign to A).
    let b_news = b_record(
        &mut owner,
        "SELECT id FROM news WHERE tenant_id = $1 LIMIT 1",
        b,
    )
    .await;
    let b_draft = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO articles (id, author_id, author_name, title, body_markdown, body_html,
                               language, status, created_at, updated_at)
         VALUES ($1, $2, 'Dr B', 'Draft', 'x', '<p>x</p>', 'en', 'draft', now(), now())",
    )
    .bind(b_draft)
    .bind(b_practitioner.as_uuid())
    .execute(&mut owner)
    .await
    .unwrap();
    let before = fingerprint_b(&mut owner, b).await;
    assert!(
        before.iter().all(|(_, n, _)| *n > 0),
        "tenant B must own rows everywhere for the sweep to mean something: {before:?}"
    );

    // B's care records (seeded above): a consultation, a clinical note, a journal entry.
    async fn b_record(owner: &mut PgConnection, sql: &'static str, b: TenantId) -> String {
        let id: uuid::Uuid = sqlx::query_scalar(sql)
            .bind(b.as_uuid())
            .fetch_one(owner)
            .await
            .unwrap();
        id.to_string()
    }
    let b_consultation = b_record(
        &mut owner,
        "SELECT id FROM consultations WHERE tenant_id = $1 ORDER BY id LIMIT 1",
        b,
    )
    .await;
    let b_note = b_record(
        &mut owner,
        "SELECT id FROM clinical_notes WHERE tenant_id = $1 LIMIT 1",
        b,
    )
    .await;
    let b_entry = b_record(
        &mut owner,
        "SELECT id FROM journal_entries WHERE tenant_id = $1 LIMIT 1",
        b,
    )
    .await;
    // B's upload (files, issue 13 item 6).
    let b_file = b_record(
        &mut owner,
        "SELECT id FROM files WHERE tenant_id = $1 LIMIT 1",
        b,
    )
    .await;
    // …and a colleague's upload in A (nobody but its owner reaches it).
    let a_file: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM files WHERE tenant_id = $1 AND owner_id = $2 LIMIT 1")
            .bind(a.as_uuid())
            .bind(a_colleague.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    let foreign_ids: Vec<(&str, String)> = vec![
        ("B news", b_news),
        ("B practitioner's draft article", b_draft.to_string()),
        ("B consultation", b_consultation),
        ("B file", b_file),
        ("Another A person's file", a_file.to_string()),
        ("B clinical note", b_note),
        ("B journal entry", b_entry),
        ("B member (user id)", b_member.to_string()),
        ("B membership id", b_membership.to_string()),
        ("B practitioner", b_practitioner.to_string()),
        ("B invitation id", b_invitation.to_string()),
        ("B invitation token", b_token.clone()),
        ("B tenant id", b.to_string()),
        (
            "A colleague who is not a practitioner",
            a_colleague.to_string(),
        ),
    ];
    let ops = operations_with_ids(&app).await;
    assert!(
        ops.len() >= 8,
        "the document lists too few routes with ids for this sweep: {ops:?}"
    );

    // Bodies for the writing routes: plausible enough to pass validation somewhere (so the id
    // look-up is what refuses), and each would change something if the id were accepted.
    let bodies = [
        json!({"department": "Taken over"}),
        json!({"roles": ["tenant_admin"], "status": "disabled"}),
        json!({"password": "a brand new long passphrase", "display_name": "Mallory"}),
        json!({}),
        // Notes, journal, messages, read marks.
        json!({"text": "Taken over"}),
        json!({"version": 1, "text": "Taken over"}),
        json!({"body": "Taken over"}),
        json!({"seq": 1}),
        // Articles and news (a whole item from version 1).
        json!({"version": 1, "title": "Taken over", "body_markdown": "x", "status": "published"}),
    ];
    let admin_may = crate::rbac::policy()
        .remove("tenant_admin")
        .unwrap_or_default();
    let mut calls = 0;
    for roles in [
        vec![Role::TenantAdmin],
        vec![Role::Hr],
        vec![Role::Employee],
        vec![Role::Practitioner],
    ] {
        for (method, template, pair) in &ops {
            // A fresh session per route: nothing below may end it, but a route that did would
            // not hide the next one's answer behind a 401.
            let (_, token) = member_session(&app, &roles).await;
            let writes = [Method::POST, Method::PUT, Method::PATCH].contains(method);
            for (what, id) in &foreign_ids {
                // A tenant admin may legitimately act on a colleague of their own company.
                if roles == [Role::TenantAdmin] && what.starts_with("A colleague") {
                    continue;
                }
                let path = fill(template, id);
                let attempts: Vec<Option<&Value>> = if writes {
                    bodies.iter().map(Some).collect()
                } else {
                    vec![None]
                };
                for body in attempts {
                    let mut req = app.req(method.clone(), &alpha, &path).bearer_auth(&token);
                    if let Some(body) = body {
                        req = req.json(body);
                    }
                    let res = req.send().await.unwrap();
                    let status = res.status().as_u16();
                    calls += 1;
                    let text = res.text().await.unwrap_or_default();
                    assert!(
                        matches!(status, 400 | 403 | 404 | 405 | 410 | 415 | 422),
                        "{roles:?} {method} {template} with {what} {body:?}: {status} {text}"
                    );
                    // On every route the policy grants the tenant admin, a foreign id is "not
                    // found" (or "gone" for tokens), never "forbidden", which would confirm that
                    // the object exists. (Routes of care — availability, consultations — are
                    // refused to the role whatever the id: that 403 says nothing about B.)
                    if roles == [Role::TenantAdmin] && admin_may.contains(pair) {
                        assert_ne!(
                            status, 403,
                            "{method} {template} with {what} {body:?}: 403 instead of 404: {text}"
                        );
                    }
                    assert!(
                        !text.contains(&b_member.to_string()) && !text.contains("bravo"),
                        "{method} {template}: the answer names B's object: {text}"
                    );
                }
            }
        }
    }
    assert!(calls > 100, "the sweep made {calls} calls");

    let after = fingerprint_b(&mut owner, b).await;
    assert_eq!(before, after, "tenant B's rows changed during the sweep");
    let a_file_live: bool =
        sqlx::query_scalar("SELECT deleted_at IS NULL FROM files WHERE id = $1")
            .bind(a_file)
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert!(
        a_file_live,
        "A colleague's file was deleted by someone else"
    );

    // Positive controls: the same kinds of routes work on tenant A's own objects.
    let (_, admin) = member_session(&app, &[Role::TenantAdmin]).await;
    let res = app
        .req(
            Method::PATCH,
            &alpha,
            &format!("/api/v1/members/{a_membership}"),
        )
        .bearer_auth(&admin)
        .json(&json!({"department": "Finance"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let (_, employee) = member_session(&app, &[Role::Employee]).await;
    let res = call(
        &app,
        Method::GET,
        &alpha,
        &format!("/api/v1/practitioners/{a_practitioner}"),
        &employee,
    )
    .await;
    assert_eq!(res.status(), 200);
    // …and the B practitioner is "not found" on A's directory, not "forbidden".
    let res = call(
        &app,
        Method::GET,
        &alpha,
        &format!("/api/v1/practitioners/{b_practitioner}"),
        &employee,
    )
    .await;
    assert_eq!(res.status(), 404);
    // B's invitation token does not open anything on A's host.
    let res = app
        .req(
            Method::POST,
            &alpha,
            &format!("/api/v1/invitations/{b_token}/accept"),
        )
        .json(&json!({"password": "a brand new long passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410);
    let accepted: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT accepted_at FROM invitations WHERE id = $1")
            .bind(b_invitation)
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert!(accepted.is_none());
}
