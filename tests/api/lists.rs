//! Lists (issue 10, items 4 and 8): the search definer `app_private.member_search` attacked as
//! `serein_app` with crafted `app.*` values (to a tenant admin proven by the session guard it
//! must answer exactly what the policies let a tenant admin read; nothing to anyone else, nor to
//! a context that only claims to be one), and the one `limit` rule and cursor encoding on every
//! list.

use std::collections::BTreeSet;

use reqwest::Method;
use sqlx::{Executor, PgConnection};
use uuid::Uuid;

use crate::helpers::{
    TestApp, as_app_with_roles, as_member_with_session, as_member_with_session_roles, problem,
    seed_world,
};
use crate::members::membership_of;
use crate::people::{add_person, call, host, member_session, mint_session};
use crate::practitioners::add_practitioner;
use serein::db::{TenantId, UserId};
use serein::rbac::Role;

const NIL: Uuid = Uuid::nil();
const ALL_ROLES: [&str; 4] = ["tenant_admin", "hr", "employee", "practitioner"];

/// Add an employee of `tenant` whose e-mail starts with `name` (as the owner).
async fn add_member(app: &TestApp, tenant: TenantId, name: &str) -> Uuid {
    let email = format!("{name}.{}@lists.test", Uuid::now_v7().simple());
    let user = add_person(app, tenant, &email, &["employee"]).await;
    membership_of(app, tenant, user).await
}

/// The search with all filters open and a large page, in the transaction `conn` has begun.
async fn search_in(conn: &mut PgConnection, pattern: &str) -> BTreeSet<Uuid> {
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

/// `member_search(pattern)` in a crafted context (no session checked): it claims, proves nothing.
async fn search_as(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    roles: &str,
    pattern: &str,
) -> BTreeSet<Uuid> {
    as_app_with_roles(conn, tenant, None, roles).await;
    search_in(conn, pattern).await
}

/// `member_search(pattern)` as `user`, proven by the session guard, claiming `roles`.
async fn search_proven(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    roles: &str,
    pattern: &str,
) -> BTreeSet<Uuid> {
    assert!(as_member_with_session_roles(conn, tenant, user, roles).await);
    search_in(conn, pattern).await
}

/// A member of `tenant` (host `slug`) with `roles` and a live session (admins with TOTP).
async fn signed_in(app: &TestApp, tenant: TenantId, slug: &str, roles: &[Role]) -> UserId {
    let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    let email = format!("{slug}.{}@lists.test", Uuid::now_v7().simple());
    let user = add_person(app, tenant, &email, &names).await;
    mint_session(app, tenant, &host(slug), user, roles).await;
    user
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
    let admin_a = signed_in(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let admin_b = signed_in(&app, app.tenant_b, "bravo", &[Role::TenantAdmin, Role::Hr]).await;
    let employee_a = signed_in(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
    let mut c = app.owner().await;

    // A company's admin, proven: the same rows as the policies, for narrow and match-all patterns.
    for pattern in ["%nadi%", "%", "%zz%", "%nadia%"] {
        let got = search_proven(&mut c, app.tenant_a, admin_a, "tenant_admin", pattern).await;
        let want = policy_view(&mut c, app.tenant_a, "tenant_admin", pattern).await;
        assert_eq!(got, want, "{pattern}");
    }
    let got = search_proven(&mut c, app.tenant_a, admin_a, "tenant_admin", "%nadi%").await;
    assert_eq!(got, BTreeSet::from([a1, a2]));
    let got = search_proven(&mut c, app.tenant_b, admin_b, "hr,tenant_admin", "%nadi%").await;
    assert_eq!(got, BTreeSet::from([b1]), "B's admin sees B's only");

    // A context that only claims: nothing, whatever it claims (the policies would show a
    // claimed tenant admin everything; the definer demands the proof and the held role).
    for (tenant, roles) in [
        (Some(app.tenant_a), "tenant_admin"),
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
    // A proven employee, or a proven HR person, is not a tenant admin.
    let got = search_proven(&mut c, app.tenant_a, employee_a, "employee", "%").await;
    assert!(got.is_empty(), "{got:?}");
    let got = search_proven(&mut c, app.tenant_b, admin_b, "hr", "%").await;
    assert!(got.is_empty(), "{got:?}");
    // A proven employee who then claims the role in the context: the membership says no.
    assert!(as_member_with_session(&mut c, app.tenant_a, employee_a).await);
    sqlx::query("SELECT set_config('app.roles', 'tenant_admin', true)")
        .execute(&mut c)
        .await
        .unwrap();
    assert!(search_in(&mut c, "%").await.is_empty());
    // A proven admin of A who then points the context at B: the proof is A's, so nothing.
    assert!(as_member_with_session_roles(&mut c, app.tenant_a, admin_a, "tenant_admin").await);
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(app.tenant_b.to_string())
        .execute(&mut c)
        .await
        .unwrap();
    assert!(search_in(&mut c, "%").await.is_empty());

    // The filters, keyset and limit only narrow: a page after a1 holds a2 alone.
    assert!(as_member_with_session_roles(&mut c, app.tenant_a, admin_a, "tenant_admin").await);
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

/// `practitioner_directory(…)` as `user` in `tenant`: proven when they have a live session there,
/// else a crafted context that only claims them. (id, name) pairs in page order.
async fn directory_as(
    conn: &mut PgConnection,
    tenant: Option<TenantId>,
    user: Option<UserId>,
    specialties: Option<&[&str]>,
    after: (&str, Uuid),
    limit: i32,
) -> Vec<(Uuid, String)> {
    // A person with a live session there is proven by the guard; anyone else only claims.
    let proven = match (tenant, user) {
        (Some(t), Some(u)) => as_member_with_session(conn, t, u).await,
        _ => false,
    };
    if !proven {
        as_app_with_roles(conn, tenant, user, "employee").await;
    }
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, display_name FROM app_private.practitioner_directory($1, NULL, $2, $3, $4)",
    )
    .bind(specialties.map(|s| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>()))
    .bind(after.0)
    .bind(after.1)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    conn.execute("ROLLBACK").await.unwrap();
    rows
}

#[tokio::test]
async fn practitioner_directory_pages_exactly_the_names_practitioner_names_shows() {
    let app = TestApp::spawn().await;
    let mut o = app.owner().await;
    let both = [app.tenant_a, app.tenant_b];
    let mut in_a = Vec::new();
    for (name, spec, tenants) in [
        ("Dr Same", "sleep", &both[..]),
        ("Dr Same", "stress", &both[..1]),
        ("Dr Able", "sleep", &both[..1]),
        ("Dr Only B", "sleep", &both[1..]),
    ] {
        let id = add_practitioner(&app, &mut o, name, &[spec], &["en"], "bio", true, tenants).await;
        if tenants.contains(&app.tenant_a) {
            in_a.push((id.as_uuid(), name.to_owned()));
        }
    }
    in_a.sort_by(|x, y| (&x.1, x.0).cmp(&(&y.1, y.0)));
    let me = signed_in(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
    let reader_b = signed_in(&app, app.tenant_b, "bravo", &[Role::Employee]).await;
    let unproven = add_person(&app, app.tenant_a, "reader@lists.test", &["employee"]).await;
    let mut c = app.owner().await;
    let start = ("", NIL);

    // The same rows as practitioner_names(), in (name, id) order, page by page.
    let all = directory_as(&mut c, Some(app.tenant_a), Some(me), None, start, 100).await;
    assert_eq!(all, in_a);
    assert!(as_member_with_session(&mut c, app.tenant_a, me).await);
    let mut names: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, display_name FROM app_private.practitioner_names()")
            .fetch_all(&mut c)
            .await
            .unwrap();
    c.execute("ROLLBACK").await.unwrap();
    names.sort_by(|x, y| (&x.1, x.0).cmp(&(&y.1, y.0)));
    assert_eq!(all, names);
    let first = directory_as(&mut c, Some(app.tenant_a), Some(me), None, start, 2).await;
    assert_eq!(first, in_a[..2]);
    let last = &first[1];
    let rest = directory_as(
        &mut c,
        Some(app.tenant_a),
        Some(me),
        None,
        (&last.1, last.0),
        2,
    )
    .await;
    assert_eq!(rest, in_a[2..]);

    // Filters only narrow.
    let sleep = directory_as(
        &mut c,
        Some(app.tenant_a),
        Some(me),
        Some(&["sleep"]),
        start,
        100,
    )
    .await;
    assert_eq!(sleep.len(), 2);
    assert!(sleep.iter().all(|r| all.contains(r)));

    // No signed-in person, no company, another company's reader: nothing of A's.
    assert!(
        directory_as(&mut c, Some(app.tenant_a), None, None, start, 100)
            .await
            .is_empty()
    );
    assert!(
        directory_as(&mut c, None, Some(me), None, start, 100)
            .await
            .is_empty()
    );
    // A member of A without a session, claimed by the context: nothing.
    assert!(
        directory_as(&mut c, Some(app.tenant_a), Some(unproven), None, start, 100)
            .await
            .is_empty()
    );
    // A's reader pointed at B (no session there): nothing; B's own reader: B's names only.
    assert!(
        directory_as(&mut c, Some(app.tenant_b), Some(me), None, start, 100)
            .await
            .is_empty()
    );
    let b = directory_as(&mut c, Some(app.tenant_b), Some(reader_b), None, start, 100).await;
    assert_eq!(b.len(), 2);
    assert!(b.iter().all(|r| r.1 != "Dr Able"));
    let public: bool = sqlx::query_scalar(
        "SELECT has_function_privilege('public', 'app_private.practitioner_directory(text[], text, text, uuid, integer)', 'EXECUTE')",
    )
    .fetch_one(&mut o)
    .await
    .unwrap();
    assert!(!public);
}
