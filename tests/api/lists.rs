//! Lists (issue 10, items 4 and 8): the search definer `app_private.member_search` attacked as
//! `serein_app` with crafted `app.*` values (it must answer exactly what the policies would let
//! the same context read, and nothing to anyone else), and the one `limit` rule and cursor
//! encoding on every list.

use std::collections::BTreeSet;

use reqwest::Method;
use sqlx::{Executor, PgConnection};
use uuid::Uuid;

use crate::helpers::{TestApp, as_app_with_roles, problem, seed_world};
use crate::members::membership_of;
use crate::people::{add_person, call, host, member_session};
use serein::db::TenantId;
use serein::rbac::Role;

const NIL: Uuid = Uuid::nil();
const ALL_ROLES: [&str; 4] = ["tenant_admin", "hr", "employee", "practitioner"];

/// Add an employee of `tenant` whose e-mail starts with `name` (as the owner).
async fn add_member(app: &TestApp, tenant: TenantId, name: &str) -> Uuid {
    let email = format!("{name}.{}@lists.test", Uuid::now_v7().simple());
    let user = add_person(app, tenant, &email, &["employee"]).await;
    membership_of(app, tenant, user).await
}

/// `member_search(pattern)` in a crafted context, all filters open, a large page.
async fn search_as(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    roles: &str,
    pattern: &str,
) -> BTreeSet<Uuid> {
    as_app_with_roles(conn, tenant, None, roles).await;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT app_private.member_search($1, $2, '{active,disabled}', false, $3, 1000)",
    )
    .bind(pattern)
    .bind(ALL_ROLES.map(str::to_owned).to_vec())
    .bind(NIL)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    conn.execute("ROLLBACK").await.unwrap();
    ids.into_iter().collect()
}

/// What the policies alone let the same context read: memberships joined to visible users.
async fn policy_view(
    conn: &mut PgConnection,
    tenant: TenantId,
    roles: &str,
    pattern: &str,
) -> BTreeSet<Uuid> {
    as_app_with_roles(conn, Some(tenant), None, roles).await;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT m.id FROM memberships m JOIN users u ON u.id = m.user_id
         WHERE m.ended_at IS NULL AND (u.email ILIKE $1 OR u.display_name ILIKE $1)",
    )
    .bind(pattern)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    conn.execute("ROLLBACK").await.unwrap();
    ids.into_iter().collect()
}

#[tokio::test]
async fn member_search_answers_a_company_admin_exactly_what_the_policies_show() {
    let app = TestApp::spawn().await;
    let mut o = app.owner().await;
    seed_world(&mut o, app.tenant_a, "la").await;
    seed_world(&mut o, app.tenant_b, "lb").await;
    let a1 = add_member(&app, app.tenant_a, "nadia").await;
    let a2 = add_member(&app, app.tenant_a, "nadine").await;
    let b1 = add_member(&app, app.tenant_b, "nadia").await;
    let mut c = app.owner().await;

    // A company's admin: the same rows as the policies, for a narrow and a match-all pattern.
    for pattern in ["%nadi%", "%", "%zz%", "%nadia%"] {
        let got = search_as(&mut c, Some(app.tenant_a), "tenant_admin", pattern).await;
        let want = policy_view(&mut c, app.tenant_a, "tenant_admin", pattern).await;
        assert_eq!(got, want, "{pattern}");
    }
    let got = search_as(&mut c, Some(app.tenant_a), "tenant_admin", "%nadi%").await;
    assert_eq!(got, BTreeSet::from([a1, a2]));
    let got = search_as(&mut c, Some(app.tenant_b), "hr,tenant_admin", "%nadi%").await;
    assert_eq!(got, BTreeSet::from([b1]), "B's admin sees B's only");

    // Any other context: nothing (the policies give these contexts no other person either).
    for (tenant, roles) in [
        (Some(app.tenant_a), "employee"),
        (Some(app.tenant_a), "hr"),
        (Some(app.tenant_a), "practitioner"),
        (Some(app.tenant_a), ""),
        (Some(app.tenant_a), "tenant_admin_x"),
        (None, "tenant_admin"),
        (Some(TenantId::PLATFORM), "tenant_admin,platform_admin"),
        (Some(TenantId::new()), "tenant_admin"),
    ] {
        let got = search_as(&mut c, tenant, roles, "%").await;
        assert!(got.is_empty(), "{tenant:?} {roles}: {got:?}");
    }

    // The filters, keyset and limit only narrow: a page after a1 holds a2 alone.
    as_app_with_roles(&mut c, Some(app.tenant_a), None, "tenant_admin").await;
    let page: Vec<Uuid> = sqlx::query_scalar(
        "SELECT app_private.member_search('%nadi%', '{employee}', '{active}', false, $1, 5)",
    )
    .bind(a1)
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(page, vec![a2]);
    let none: Vec<Uuid> = sqlx::query_scalar(
        "SELECT app_private.member_search('%nadi%', '{hr}', '{active}', false, $1, 5)",
    )
    .bind(NIL)
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert!(none.is_empty());
    c.execute("ROLLBACK").await.unwrap();

    // The definer is not callable by PUBLIC, only granted to the request role.
    let public: bool = sqlx::query_scalar(
        "SELECT has_function_privilege('public', 'app_private.member_search(text, text[], text[], boolean, uuid, integer)', 'EXECUTE')",
    )
    .fetch_one(&mut o)
    .await
    .unwrap();
    assert!(!public);
}

#[tokio::test]
async fn every_list_caps_the_limit_and_refuses_a_foreign_cursor() {
    let app = TestApp::spawn().await;
    let (_, t) = member_session(&app, &[Role::TenantAdmin, Role::Employee]).await;
    let a = host("alpha");
    for list in [
        "/api/v1/members",
        "/api/v1/members/invitations",
        "/api/v1/practitioners",
    ] {
        for (limit, most) in [("0", 1), ("-3", 1), ("100000", 200)] {
            let res = call(&app, Method::GET, &a, &format!("{list}?limit={limit}"), &t).await;
            assert_eq!(res.status(), 200, "{list} limit={limit}");
            let body: serde_json::Value = res.json().await.unwrap();
            assert!(
                body["items"].as_array().unwrap().len() <= most,
                "{list} limit={limit}"
            );
        }
        for cursor in ["nope!", "eyJrIjoieCJ9"] {
            let res = call(
                &app,
                Method::GET,
                &a,
                &format!("{list}?cursor={cursor}"),
                &t,
            )
            .await;
            assert_eq!(res.status(), 400, "{list} cursor={cursor}");
            assert_eq!(problem(res).await["code"], "invalid_cursor");
        }
    }
}
