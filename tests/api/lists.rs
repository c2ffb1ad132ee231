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
    user: UserId,
    roles: &str,
    pattern: &str,
) -> BTreeSet<Uuid> {
    // Proven, as a request is: a claimed role alone counts for nothing.
    assert!(crate::helpers::as_member_with_session_roles(conn, tenant, user, roles).await);
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
        let want = policy_view(&mut c, app.tenant_a, admin_a, "tenant_admin", pattern).await;
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
        // Not a number: the same 422 naming `limit` on every list.
        for limit in ["ten", "1e3", ""] {
            let res = call(&app, Method::GET, &a, &format!("{list}?limit={limit}"), &t).await;
            assert_eq!(res.status(), 422, "{list} limit={limit}");
            assert_eq!(problem(res).await["errors"][0]["field"], "limit");
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

/// `practitioner_search(q, …)` as a context (proven when `user` has a live session in
/// `tenant`): (id, name, tier) in page order.
async fn search_directory_as(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    q: &str,
    after: (i32, &str, Uuid),
    limit: i32,
) -> Vec<(Uuid, String, i32)> {
    if !as_member_with_session(conn, tenant, user).await {
        as_app_with_roles(conn, Some(tenant), Some(user), "employee").await;
    }
    let rows: Vec<(Uuid, String, i32)> = sqlx::query_as(
        "SELECT id, display_name, tier FROM app_private.practitioner_search($1, NULL, NULL, $2, $3, $4, $5)",
    )
    .bind(q)
    .bind(after.0)
    .bind(after.1)
    .bind(after.2)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    conn.execute("ROLLBACK").await.unwrap();
    rows
}

/// Run `sql` as the request role in a crafted context of `user` in tenant A (the policies let
/// a person change their own name and profile): rows changed.
async fn as_self(conn: &mut PgConnection, app: &TestApp, user: UserId, sql: &str) -> u64 {
    // Proven, with the roles the person holds (a named person is not a proven one).
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT roles FROM memberships WHERE tenant_id = $1 AND user_id = $2")
            .bind(app.tenant_a.as_uuid())
            .bind(user.as_uuid())
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    crate::helpers::as_proven(conn, app.tenant_a, user, &roles.join(",")).await;
    let n = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
        .unwrap()
        .rows_affected();
    conn.execute("COMMIT").await.unwrap();
    n
}

#[tokio::test]
async fn the_directory_follows_every_change_of_name_profile_and_membership() {
    let app = TestApp::spawn().await;
    let mut o = app.owner().await;
    let zed = add_practitioner(
        &app,
        &mut o,
        "Dr Zed",
        &["sleep"],
        &["en"],
        "calm",
        true,
        &[app.tenant_a],
    )
    .await;
    let me = signed_in(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
    let mut c = app.owner().await;
    let start = ("", NIL);
    let names = |rows: Vec<(Uuid, String)>| rows.into_iter().map(|r| r.1).collect::<Vec<_>>();
    let dir = async |c: &mut PgConnection| {
        names(directory_as(c, Some(app.tenant_a), Some(me), None, start, 100).await)
    };
    assert_eq!(dir(&mut c).await, ["Dr Zed"]);

    // The request role has no grant on the stored entries: the definers are the only door.
    as_member_with_session(&mut c, app.tenant_a, me).await;
    let denied = c
        .execute("SELECT 1 FROM practitioner_directory_entries")
        .await
        .unwrap_err();
    assert_eq!(
        denied.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42501")
    );
    c.execute("ROLLBACK").await.unwrap();

    // The person renames themself and edits their bio as the request role: the triggers
    // (definers) rewrite the entry although the role cannot write it.
    let zed_sql = |s: &str| s.replace("{zed}", &zed.to_string());
    assert_eq!(
        as_self(
            &mut c,
            &app,
            zed,
            &zed_sql("UPDATE users SET display_name = 'Dr Zora' WHERE id = '{zed}'")
        )
        .await,
        1
    );
    assert_eq!(
        as_self(
            &mut c,
            &app,
            zed,
            &zed_sql("UPDATE practitioner_profiles SET bio = 'insomnia and jet lag' WHERE user_id = '{zed}'")
        )
        .await,
        1
    );
    assert_eq!(dir(&mut c).await, ["Dr Zora"]);
    let hits =
        |rows: Vec<(Uuid, String, i32)>| rows.into_iter().map(|r| (r.1, r.2)).collect::<Vec<_>>();
    let s0 = (0, "", NIL);
    assert_eq!(
        hits(search_directory_as(&mut c, app.tenant_a, me, "zora", s0, 10).await),
        [("Dr Zora".to_owned(), 1)]
    );
    assert_eq!(
        hits(search_directory_as(&mut c, app.tenant_a, me, "insomnia", s0, 10).await),
        [("Dr Zora".to_owned(), 2)]
    );
    assert!(
        search_directory_as(&mut c, app.tenant_a, me, "zed", s0, 10)
            .await
            .is_empty()
    );
    assert!(
        search_directory_as(&mut c, app.tenant_a, me, "calm", s0, 10)
            .await
            .is_empty()
    );

    // Membership disabled, then active again; the person disabled; the membership removed.
    for (sql, shown) in [
        (
            "UPDATE memberships SET status = 'disabled' WHERE user_id = '{zed}'",
            false,
        ),
        (
            "UPDATE memberships SET status = 'active' WHERE user_id = '{zed}'",
            true,
        ),
        (
            "UPDATE memberships SET roles = '{employee}' WHERE user_id = '{zed}'",
            false,
        ),
        (
            "UPDATE memberships SET roles = '{practitioner}' WHERE user_id = '{zed}'",
            true,
        ),
        (
            "UPDATE users SET status = 'disabled' WHERE id = '{zed}'",
            false,
        ),
        (
            "UPDATE users SET status = 'active' WHERE id = '{zed}'",
            true,
        ),
        (
            "DELETE FROM practitioner_profiles WHERE user_id = '{zed}'",
            false,
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(zed_sql(sql)))
            .execute(&mut o)
            .await
            .unwrap();
        let want: &[&str] = if shown { &["Dr Zora"] } else { &[] };
        assert_eq!(dir(&mut c).await, want, "{sql}");
    }
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM practitioner_directory_entries WHERE user_id = $1",
    )
    .bind(zed.as_uuid())
    .fetch_one(&mut o)
    .await
    .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_text_search_lists_name_matches_first_and_pages_across_tiers_exactly_once() {
    let app = TestApp::spawn().await;
    let mut o = app.owner().await;
    let mut add = async |name: &str, bio: &str, tenants: &[TenantId]| {
        add_practitioner(&app, &mut o, name, &["stress"], &["en"], bio, true, tenants)
            .await
            .as_uuid()
    };
    let both = [app.tenant_a, app.tenant_b];
    let calm_alpha = add("Dr Calm Alpha", "listens", &both).await;
    let beta = add("Dr Beta", "calm and steady", &both).await;
    let calm_gamma = add("Dr Calm Gamma", "calm too", &both[..1]).await;
    let delta = add("Dr Delta", "keeps calm", &both[..1]).await;
    add("Dr Other", "nothing in common", &both[..1]).await;
    let only_b = add("Dr Calm B", "only in B", &both[1..]).await;
    let (_, t) = member_session(&app, &[Role::Employee]).await;
    let a = host("alpha");

    // Through the API, one row a page: name matches by name, then bio matches by name.
    let walk = async |q: &str| {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/practitioners?limit=1&q={q}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let res = call(&app, Method::GET, &a, &path, &t).await;
            assert_eq!(res.status(), 200, "{path}");
            let page: serde_json::Value = res.json().await.unwrap();
            for item in page["items"].as_array().unwrap() {
                seen.push(Uuid::parse_str(item["user_id"].as_str().unwrap()).unwrap());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
            assert!(seen.len() <= 10, "runaway pagination");
        }
        seen
    };
    assert_eq!(walk("calm").await, [calm_alpha, calm_gamma, beta, delta]);
    // A negation applies to the whole entry, in both tiers.
    assert_eq!(walk("calm%20-gamma").await, [calm_alpha, beta, delta]);
    assert_eq!(
        walk("steady%20OR%20listens").await,
        [beta, calm_alpha],
        "bio matches only: by name"
    );
    assert!(walk("astrology").await.is_empty());
    assert!(!walk("calm").await.contains(&only_b));

    // The definer, attacked: a claimed person, a foreign company, a reader of B.
    let mut c = app.owner().await;
    let unproven = add_person(&app, app.tenant_a, "claims@lists.test", &["employee"]).await;
    assert!(
        search_directory_as(&mut c, app.tenant_a, unproven, "calm", (0, "", NIL), 10)
            .await
            .is_empty()
    );
    let me = signed_in(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
    let reader_b = signed_in(&app, app.tenant_b, "bravo", &[Role::Employee]).await;
    assert!(
        search_directory_as(&mut c, app.tenant_b, me, "calm", (0, "", NIL), 10)
            .await
            .is_empty(),
        "A's reader pointed at B proves nothing there"
    );
    let in_b: Vec<Uuid> =
        search_directory_as(&mut c, app.tenant_b, reader_b, "calm", (0, "", NIL), 10)
            .await
            .into_iter()
            .map(|r| r.0)
            .collect();
    assert_eq!(in_b, [calm_alpha, only_b, beta]);
    // Out-of-range keyset tiers and limits answer nothing rather than everything.
    assert!(
        search_directory_as(&mut c, app.tenant_a, me, "calm", (3, "", NIL), 10)
            .await
            .is_empty()
    );
    assert!(
        search_directory_as(&mut c, app.tenant_a, me, "calm", (0, "", NIL), 0)
            .await
            .is_empty()
    );
    // (Not executable by PUBLIC: the catalogue test checks every definer.)
}

#[tokio::test]
async fn a_member_search_of_one_or_two_characters_matches_the_start_of_a_word() {
    let app = TestApp::spawn().await;
    let mut o = app.owner().await;
    let mut named = async |email: &str, name: &str| {
        let user = add_person(&app, app.tenant_a, email, &["employee"]).await;
        sqlx::query("UPDATE users SET display_name = $2 WHERE id = $1")
            .bind(user.as_uuid())
            .bind(name)
            .execute(&mut o)
            .await
            .unwrap();
        membership_of(&app, app.tenant_a, user).await
    };
    let alan = named("turing@lists.test", "Alan Turing").await;
    let khalid = named("khalid@lists.test", "Khalid Ben").await;
    let jp = named("jp@lists.test", "Jean-Paul Sartre").await;
    let mail = named("x.qv+news@lists.test", "Someone").await;
    let admin = signed_in(&app, app.tenant_a, "alpha", &[Role::TenantAdmin]).await;
    let mut c = app.owner().await;
    for (pattern, want) in [
        ("%al%", vec![alan]),
        ("%tu%", vec![alan]),
        ("%a%", vec![alan]),
        ("%pa%", vec![jp]),
        ("%qv%", vec![mail]),
        ("%ne%", vec![mail]),
        ("%be%", vec![khalid]),
        // Three characters and more: a substring anywhere.
        ("%ali%", vec![khalid]),
        ("%uri%", vec![alan]),
    ] {
        let got = search_proven(&mut c, app.tenant_a, admin, "tenant_admin", pattern).await;
        let want: BTreeSet<Uuid> = want.into_iter().collect();
        assert!(got.is_superset(&want), "{pattern}: {got:?}");
        for other in [alan, khalid, jp, mail] {
            if !want.contains(&other) {
                assert!(!got.contains(&other), "{pattern} matched {other}");
            }
        }
    }
    // A short term without a letter or digit keeps the substring match.
    let got = search_proven(&mut c, app.tenant_a, admin, "tenant_admin", "%-%").await;
    assert!(got.contains(&jp));
}
