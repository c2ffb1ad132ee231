//! PROOF.md 1–4: the catalogue check, the database-level isolation matrix over every tenant
//! table discovered from the catalogue, fail-closed without a tenant, and no context left on
//! pooled connections. Plus the global tables (`tenants`, `users`), tested by name.
//!
//! These run as `serein_app` directly in SQL: the HTTP layer (and later Casbin) is out of the
//! picture, so what is shown here is what row-level security alone guarantees.

use sqlx::{Executor, PgConnection, Row};

use crate::helpers::{TestApp, as_app, as_app_with_roles, seed_world};
use serein::db::TenantId;

/// Every table with a `tenant_id` column (partitions included), as quoted names.
async fn tenant_tables(owner: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.oid::regclass::text FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg_toast%'
         ORDER BY 1",
    )
    .fetch_all(owner)
    .await
    .unwrap()
}

/// Run one statement inside a savepoint (rolled back on error): rows affected, or the error's
/// SQLSTATE and message.
async fn try_exec_full(
    conn: &mut PgConnection,
    sql: &str,
    bind: Option<serde_json::Value>,
) -> Result<u64, (String, String)> {
    conn.execute("SAVEPOINT probe").await.unwrap();
    let q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    let q = match bind {
        Some(v) => q.bind(v),
        None => q,
    };
    let r = q.execute(&mut *conn).await;
    match r {
        Ok(done) => {
            conn.execute("RELEASE SAVEPOINT probe").await.unwrap();
            Ok(done.rows_affected())
        }
        Err(e) => {
            conn.execute("ROLLBACK TO SAVEPOINT probe").await.unwrap();
            let (code, msg) = match e.as_database_error() {
                Some(d) => (
                    d.code().map(|c| c.to_string()).unwrap_or_default(),
                    d.message().to_owned(),
                ),
                None => (String::new(), e.to_string()),
            };
            Err((code, msg))
        }
    }
}

/// [`try_exec_full`], keeping only the SQLSTATE.
async fn try_exec(
    conn: &mut PgConnection,
    sql: &str,
    bind: Option<serde_json::Value>,
) -> Result<u64, String> {
    try_exec_full(conn, sql, bind)
        .await
        .map_err(|(code, _)| code)
}

/// What refused a statement: row-level security, or a missing grant.
#[derive(Debug, PartialEq)]
enum Refusal {
    Rls,
    NoGrant,
    Other(String, String),
}

fn refusal(err: &(String, String)) -> Refusal {
    match err {
        (code, msg) if code == "42501" && msg.contains("row-level security") => Refusal::Rls,
        (code, msg) if code == "42501" && msg.contains("permission denied") => Refusal::NoGrant,
        (code, msg) => Refusal::Other(code.clone(), msg.clone()),
    }
}

/// Does the request role hold `privilege` on the table (any column for SELECT/UPDATE)?
async fn app_may(owner: &mut PgConnection, table: &str, privilege: &str) -> bool {
    sqlx::query_scalar("SELECT has_any_column_privilege('serein_app', $1::regclass, $2)")
        .bind(table)
        .bind(privilege)
        .fetch_one(owner)
        .await
        .unwrap()
}

async fn digest(owner: &mut PgConnection, table: &str, tenant: TenantId) -> (i64, Option<String>) {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t WHERE tenant_id = $1"
    )))
    .bind(tenant.as_uuid())
    .fetch_one(owner)
    .await
    .unwrap();
    (row.get(0), row.get(1))
}

/// Insertable columns of a table (not generated, not dropped).
async fn insertable_columns(owner: &mut PgConnection, table: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT quote_ident(attname) FROM pg_attribute
         WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
           AND attidentity <> 'a'
         ORDER BY attnum",
    )
    .bind(table)
    .fetch_all(owner)
    .await
    .unwrap()
}

/// Primary-key and unique uuid columns other than tenant_id: refreshed when cloning a row.
async fn unique_uuid_columns(owner: &mut PgConnection, table: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT DISTINCT a.attname::text FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = $1::regclass AND (i.indisprimary OR i.indisunique)
           AND a.atttypid = 'uuid'::regtype AND a.attname <> 'tenant_id'",
    )
    .bind(table)
    .fetch_all(owner)
    .await
    .unwrap()
}

#[tokio::test]
async fn catalogue_every_tenant_table_forces_rls_and_app_role_is_unprivileged() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let tables = tenant_tables(&mut owner).await;
    assert!(tables.iter().any(|t| t == "memberships"), "{tables:?}");
    let unprotected: Vec<String> = sqlx::query_scalar(
        "SELECT c.oid::regclass::text FROM pg_class c
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema')
           AND NOT (c.relrowsecurity AND c.relforcerowsecurity)",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert!(
        unprotected.is_empty(),
        "without forced RLS: {unprotected:?}"
    );
    // Every tenant table has at least one policy, and every policy that applies to the app
    // role mentions the tenant.
    for t in &tables {
        let policies: Vec<(String, String)> = sqlx::query_as(
            "SELECT polname::text, coalesce(pg_get_expr(polqual, polrelid), '') || ' ' || coalesce(pg_get_expr(polwithcheck, polrelid), '')
             FROM pg_policy WHERE polrelid = $1::regclass",
        )
        .bind(t)
        .fetch_all(&mut owner)
        .await
        .unwrap();
        assert!(!policies.is_empty(), "{t} has no policy");
        for (name, expr) in policies {
            assert!(
                expr.contains("current_tenant()"),
                "{t}.{name} does not check the tenant: {expr}"
            );
        }
    }
    let (sup, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = 'serein_app'")
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert!(!sup && !bypass);
    let owned: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_class WHERE relowner = 'serein_app'::regrole)
              + (SELECT count(*) FROM pg_proc WHERE proowner = 'serein_app'::regrole)
              + (SELECT count(*) FROM pg_namespace WHERE nspowner = 'serein_app'::regrole)",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(owned, 0);
    // Every SECURITY DEFINER function lives in app_private, pins search_path, and is not
    // executable by PUBLIC.
    let definers: Vec<(String, String, bool, bool)> = sqlx::query_as(
        "SELECT p.oid::regprocedure::text, n.nspname::text,
                coalesce(array_to_string(p.proconfig, ',') LIKE '%search_path=%', false),
                has_function_privilege('public', p.oid, 'EXECUTE') AND EXISTS (
                    SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x WHERE x.grantee = 0)
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert!(!definers.is_empty());
    for (f, schema, pinned, public) in definers {
        assert_eq!(schema, "app_private", "{f}");
        assert!(pinned, "{f} does not set search_path");
        assert!(!public, "{f} is executable by PUBLIC");
    }
}

#[tokio::test]
async fn matrix_tenant_b_rows_are_invisible_and_unchangeable_from_tenant_a() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    let mut owner = app.owner().await;
    seed_world(&mut owner, a, "a").await;
    seed_world(&mut owner, b, "b").await;
    let tables = tenant_tables(&mut owner).await;
    assert!(!tables.is_empty());
    // The actor holds every tenant role, so what refuses below is the tenant check, not a role
    // gate; ownership policies may hide rows from this actor, never show foreign ones.
    // Proven (a live session checked in each transaction): a claimed role without proof
    // counts for nothing (migration 20261209000010).
    let actor = serein::db::UserId::new();
    let all_roles = "tenant_admin,hr,practitioner,employee";
    crate::helpers::give_roles(&mut owner, a, actor, all_roles).await;

    for t in &tables {
        let (a_rows, _) = digest(&mut owner, t, a).await;
        let before_b = digest(&mut owner, t, b).await;
        assert!(
            a_rows > 0 && before_b.0 > 0,
            "{t}: seed_world (tests/api/helpers.rs) must create rows for both tenants so the matrix can test this table"
        );
        let a_row: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT to_jsonb(t) FROM {t} t WHERE tenant_id = $1 LIMIT 1"
        )))
        .bind(a.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
        let cols = insertable_columns(&mut owner, t).await.join(", ");
        let fresh = unique_uuid_columns(&mut owner, t).await;
        let may_select = app_may(&mut owner, t, "SELECT").await;
        let may_insert = app_may(&mut owner, t, "INSERT").await;
        let may_update = app_may(&mut owner, t, "UPDATE").await;
        let may_delete = sqlx::query_scalar::<_, bool>(
            "SELECT has_table_privilege('serein_app', $1::regclass, 'DELETE')",
        )
        .bind(t)
        .fetch_one(&mut owner)
        .await
        .unwrap();
        let may_move: bool = sqlx::query_scalar(
            "SELECT has_column_privilege('serein_app', $1::regclass, 'tenant_id', 'UPDATE')",
        )
        .bind(t)
        .fetch_one(&mut owner)
        .await
        .unwrap();
        // An error is acceptable only as RLS, or as a missing grant the catalogue confirms.
        let refused = |r: Result<u64, (String, String)>, granted: bool, what: &str| match r {
            Ok(n) => panic!("{t}: {what} succeeded ({n} rows)"),
            Err(e) => match refusal(&e) {
                Refusal::Rls => {}
                Refusal::NoGrant => assert!(
                    !granted,
                    "{t}: {what}: 'permission denied' although granted"
                ),
                Refusal::Other(c, m) => panic!("{t}: {what}: unexpected error {c} {m}"),
            },
        };
        let nothing = |r: Result<u64, (String, String)>, granted: bool, what: &str| match r {
            Ok(0) => {}
            Ok(n) => panic!("{t}: {what} touched {n} of tenant B's rows"),
            Err(e) => assert!(
                refusal(&e) == Refusal::NoGrant && !granted,
                "{t}: {what}: unexpected error {e:?}"
            ),
        };

        let mut conn = app.owner().await;
        assert!(crate::helpers::as_member_with_session_roles(&mut conn, a, actor, all_roles).await);

        // SELECT: never a foreign row.
        if may_select {
            let r = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT count(*), count(*) FILTER (WHERE tenant_id <> '{a}') FROM {t}"
            )))
            .fetch_one(&mut conn)
            .await
            .unwrap();
            let (all, foreign): (i64, i64) = (r.get(0), r.get(1));
            assert_eq!(foreign, 0, "{t}: tenant A sees other tenants' rows");
            assert!(all <= a_rows, "{t}: tenant A sees more rows than it has");
        }
        let explicit = try_exec_full(
            &mut conn,
            &format!("SELECT 1 FROM {t} WHERE tenant_id = '{b}'"),
            None,
        )
        .await;
        nothing(explicit, may_select, "SELECT of B's rows");
        nothing(
            try_exec_full(
                &mut conn,
                &format!("UPDATE {t} SET tenant_id = tenant_id WHERE tenant_id = '{b}'"),
                None,
            )
            .await,
            may_move,
            "UPDATE of B's rows",
        );
        nothing(
            try_exec_full(
                &mut conn,
                &format!("DELETE FROM {t} WHERE tenant_id = '{b}'"),
                None,
            )
            .await,
            may_delete,
            "DELETE of B's rows",
        );
        // Moving A's row into B: WITH CHECK (or no grant on tenant_id) refuses.
        refused(
            try_exec_full(
                &mut conn,
                &format!("UPDATE {t} SET tenant_id = '{b}' WHERE tenant_id = '{a}'"),
                None,
            )
            .await,
            may_move,
            "moving a row to tenant B",
        );
        // Inserting a row claiming tenant B: WITH CHECK refuses.
        let clone = |tenant: TenantId| {
            let mut row = a_row.clone();
            row["tenant_id"] = serde_json::json!(tenant.to_string());
            for c in &fresh {
                row[c] = serde_json::json!(uuid::Uuid::now_v7().to_string());
            }
            row
        };
        let insert = format!(
            "INSERT INTO {t} ({cols}) SELECT {cols} FROM jsonb_populate_record(NULL::{t}, $1)"
        );
        refused(
            try_exec_full(&mut conn, &insert, Some(clone(b))).await,
            may_insert,
            "INSERT with tenant_id = B",
        );

        // Positive controls: the same statements on tenant A's own rows are not refused by RLS,
        // so the refusals above are the tenant check at work, not a blanket denial.
        if may_insert {
            let r = try_exec_full(&mut conn, &insert, Some(clone(a))).await;
            if let Err(e) = r {
                assert_ne!(
                    refusal(&e),
                    Refusal::Rls,
                    "{t}: RLS refused tenant A's own insert"
                );
                assert_ne!(
                    refusal(&e),
                    Refusal::NoGrant,
                    "{t}: no grant for an insert it has"
                );
            }
        }
        if may_update {
            let col: String = sqlx::query_scalar(
                "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0
                   AND NOT attisdropped AND has_column_privilege('serein_app', attrelid, attnum, 'UPDATE') LIMIT 1",
            )
            .bind(t)
            .fetch_one(&mut owner)
            .await
            .unwrap();
            let r = try_exec_full(
                &mut conn,
                &format!("UPDATE {t} SET {col} = {col} WHERE tenant_id = '{a}'"),
                None,
            )
            .await;
            assert!(r.is_ok(), "{t}: tenant A cannot update its own rows: {r:?}");
        }
        if may_delete {
            let r = try_exec_full(
                &mut conn,
                &format!("DELETE FROM {t} WHERE tenant_id = '{a}'"),
                None,
            )
            .await;
            if let Err(e) = r {
                assert_eq!(
                    refusal(&e),
                    Refusal::Other(e.0.clone(), e.1.clone()),
                    "{t}: tenant A cannot delete its own rows"
                );
            }
        }
        conn.execute("ROLLBACK").await.unwrap();

        let after_b = digest(&mut owner, t, b).await;
        assert_eq!(before_b, after_b, "{t}: tenant B's rows changed");
    }
}

#[tokio::test]
async fn fail_closed_without_tenant_every_tenant_table_is_empty() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    seed_world(&mut owner, app.tenant_a, "a").await;
    seed_world(&mut owner, app.tenant_b, "b").await;
    let tables = tenant_tables(&mut owner).await;
    for t in &tables {
        for setting in [None, Some("")] {
            let mut conn = app.owner().await;
            conn.execute("BEGIN").await.unwrap();
            conn.execute("SET LOCAL ROLE serein_app").await.unwrap();
            if let Some(v) = setting {
                sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
                    .bind(v)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            let r = try_exec(&mut conn, &format!("SELECT 1 FROM {t}"), None).await;
            assert!(
                matches!(r, Ok(0)) || r == Err("42501".into()),
                "{t} with tenant {setting:?}: {r:?}"
            );
        }
    }
    // A garbage tenant id is an error, never a match.
    let mut conn = app.owner().await;
    conn.execute("BEGIN").await.unwrap();
    conn.execute("SET LOCAL ROLE serein_app").await.unwrap();
    conn.execute("SELECT set_config('app.tenant_id', 'not-a-uuid', true)")
        .await
        .unwrap();
    assert!(conn.execute("SELECT 1 FROM memberships").await.is_err());
}

#[tokio::test]
async fn pooled_connections_carry_no_context_after_requests() {
    let app = TestApp::spawn().await;
    // Use several connections at once so more than one pooled connection has served a tenant.
    let mut handles = Vec::new();
    for _ in 0..8 {
        let r = app.req(
            reqwest::Method::GET,
            "alpha.localhost",
            "/api/v1/tenant/profile",
        );
        handles.push(tokio::spawn(r.send()));
    }
    for h in handles {
        assert_eq!(h.await.unwrap().unwrap().status(), 200);
    }
    let mut conns = Vec::new();
    for _ in 0..app.db.stats().max {
        conns.push(app.db.admin_conn().await.unwrap());
    }
    for c in &mut conns {
        let (user, tenant, uid, roles): (String, Option<String>, Option<String>, Option<String>) = sqlx::query_as(
            "SELECT current_user::text, current_setting('app.tenant_id', true), current_setting('app.user_id', true), current_setting('app.roles', true)",
        )
        .fetch_one(&mut **c)
        .await
        .unwrap();
        assert_eq!(user, "postgres");
        assert_eq!(tenant.unwrap_or_default(), "");
        assert_eq!(uid.unwrap_or_default(), "");
        assert_eq!(roles.unwrap_or_default(), "");
        // SAVEPOINT fails outside a transaction block: proof the connection is not in one.
        assert!(
            (&mut **c).execute("SAVEPOINT leak_probe").await.is_err(),
            "a pooled connection was left inside a transaction"
        );
    }
}

#[tokio::test]
async fn global_tenants_table_shows_only_the_current_tenant_and_is_read_only() {
    let app = TestApp::spawn().await;
    let mut conn = app.owner().await;
    as_app(&mut conn, Some(app.tenant_a), None).await;
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM tenants")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(ids, vec![app.tenant_a.as_uuid()]);
    // Without the tenant_admin role nothing is updatable (no row passes the policy); nothing is
    // deletable (no grant); creating tenants is the platform's (WITH CHECK refuses).
    assert_eq!(
        try_exec(&mut conn, "UPDATE tenants SET name = 'x'", None).await,
        Ok(0)
    );
    for sql in [
        format!("DELETE FROM tenants WHERE id = '{}'", app.tenant_b),
        "INSERT INTO tenants (id, slug, name, plan) VALUES (gen_random_uuid(), 'evil', 'Evil', 'standard')".to_owned(),
    ] {
        assert_eq!(try_exec(&mut conn, &sql, None).await, Err("42501".into()), "{sql}");
    }
    conn.execute("ROLLBACK").await.unwrap();
    // A role merely claimed in `app.roles`, without the session guard's proof of a person
    // holding it, changes nothing (migration 20261208000001).
    let admin = serein::db::UserId::new();
    as_app_with_roles(&mut conn, Some(app.tenant_a), Some(admin), "tenant_admin").await;
    assert_eq!(
        try_exec(&mut conn, "UPDATE tenants SET name = 'x'", None).await,
        Ok(0)
    );
    conn.execute("ROLLBACK").await.unwrap();
    // A proven tenant admin changes their own company's settings, never its commercial terms,
    // and never another company.
    let (admin, _) = crate::members::person(
        &app,
        app.tenant_a,
        "alpha",
        &[serein::rbac::Role::TenantAdmin],
    )
    .await;
    assert!(
        crate::helpers::as_member_with_session_roles(
            &mut conn,
            app.tenant_a,
            admin,
            "tenant_admin"
        )
        .await
    );
    assert_eq!(
        try_exec(&mut conn, "UPDATE tenants SET name = 'x'", None).await,
        Ok(1)
    );
    assert_eq!(
        try_exec(&mut conn, "UPDATE tenants SET seats = 100000", None).await,
        Err("42501".into())
    );
    assert_eq!(
        try_exec(
            &mut conn,
            &format!(
                "UPDATE tenants SET name = 'x' WHERE id = '{}'",
                app.tenant_b
            ),
            None
        )
        .await,
        Ok(0)
    );
    conn.execute("ROLLBACK").await.unwrap();
    as_app(&mut conn, Some(app.tenant_a), None).await;
    // The definer function answers for one slug and exposes only routing fields.
    let cols: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(proargnames) FROM pg_proc WHERE proname = 'resolve_tenant'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(cols, ["p_slug", "id", "status", "web_origins"]);
}

#[tokio::test]
async fn global_users_table_shows_members_of_the_tenant_and_self_only() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let alice = seed_world(&mut owner, app.tenant_a, "alice").await;
    let bob = seed_world(&mut owner, app.tenant_b, "bob").await;

    let mut conn = app.owner().await;
    // Members' identities are visible to the tenant's admins (through the memberships they may
    // read), never another tenant's; an actor without that role sees no colleague.
    // seed_world gives each company a member and a practitioner: every member of A, no one else.
    let a_people: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT user_id FROM memberships WHERE tenant_id = $1 ORDER BY 1")
            .bind(app.tenant_a.as_uuid())
            .fetch_all(&mut owner)
            .await
            .unwrap();
    assert_eq!(a_people.len(), 2);
    assert!(a_people.contains(&alice.as_uuid()));
    crate::helpers::as_proven(&mut conn, app.tenant_a, alice, "tenant_admin").await;
    let mut ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM users")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    ids.sort();
    assert_eq!(ids, a_people);
    conn.execute("ROLLBACK").await.unwrap();
    let carol = serein::db::UserId::new();
    crate::helpers::as_proven(&mut conn, app.tenant_a, carol, "hr,employee").await;
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE id <> $1")
        .bind(carol.as_uuid())
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(seen, 0, "HR and employees see no colleague's identity");
    conn.execute("ROLLBACK").await.unwrap();
    as_app(&mut conn, Some(app.tenant_a), None).await;
    // Credentials are not readable by the app role at all.
    assert_eq!(
        try_exec(&mut conn, "SELECT password_hash FROM users", None).await,
        Err("42501".into())
    );
    // Another user's row cannot be changed; nor can privileged columns of one's own.
    let n = try_exec(
        &mut conn,
        &format!("UPDATE users SET display_name = 'x' WHERE id = '{bob}'"),
        None,
    )
    .await;
    assert!(matches!(n, Ok(0)), "{n:?}");
    conn.execute("ROLLBACK").await.unwrap();

    crate::helpers::as_proven(&mut conn, app.tenant_a, alice, "employee").await;
    assert_eq!(
        try_exec(
            &mut conn,
            &format!("UPDATE users SET display_name = 'Alice' WHERE id = '{alice}'"),
            None
        )
        .await,
        Ok(1)
    );
    assert_eq!(
        try_exec(
            &mut conn,
            "UPDATE users SET platform_roles = '{platform_admin}'",
            None
        )
        .await,
        Err("42501".into())
    );
    assert_eq!(
        try_exec(&mut conn, "UPDATE users SET email = 'x@evil.test'", None).await,
        Err("42501".into())
    );
    conn.execute("ROLLBACK").await.unwrap();

    // No tenant, no user: nobody is visible.
    as_app(&mut conn, None, None).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
    conn.execute("ROLLBACK").await.unwrap();
    // The self clause: a user sees their own row even in a tenant they do not belong to (the
    // token layer decides whether they may act there); other rows only via the A memberships
    // the actor may read — and a tenant-admin role CLAIMED there by an outsider is no role
    // (migration 20261209000010): B's member sees nobody of A.
    as_app_with_roles(&mut conn, Some(app.tenant_a), Some(bob), "tenant_admin").await;
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM users")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(ids, [bob.as_uuid()]);
}

/// The production context statement, run by `TenantTx` and `SystemTx`, really drops to the
/// request role and sets exactly the tenant, user and roles (M1 of the review: the matrix
/// above sets its own context, so this proves the one the server uses).
#[tokio::test]
async fn tenant_tx_and_system_tx_run_as_the_request_role_with_their_context() {
    use serein::db::tenancy::DbActor;
    use serein::db::{SystemTx, TenantTx, UserId};
    use serein::rbac::Role;
    let app = TestApp::spawn().await;
    let user = UserId::new();
    let actor = DbActor {
        user,
        roles: vec![Role::Employee, Role::Hr],
        session: None,
    };
    let mut tx = TenantTx::begin(&app.db, app.tenant_a, Some(&actor))
        .await
        .unwrap();
    let (role, tenant, uid, roles, timeout): (String, Option<uuid::Uuid>, Option<uuid::Uuid>, Vec<String>, String) = sqlx::query_as(
        "SELECT current_user::text, app.current_tenant(), app.current_user_id(),
                string_to_array(current_setting('app.roles'), ','), current_setting('statement_timeout')",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(role, "serein_app");
    assert_eq!(tenant, Some(app.tenant_a.as_uuid()));
    assert_eq!(uid, Some(user.as_uuid()));
    assert_eq!(roles, ["employee", "hr"]);
    assert_eq!(timeout, "15s");
    // A claim is not a role: without a session proved in this transaction (this actor has
    // none), the policies' `app.current_roles()` answers nothing.
    let held: Vec<String> = sqlx::query_scalar("SELECT app.current_roles()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(held.is_empty(), "unproven roles: {held:?}");
    tx.commit().await.unwrap();

    let mut sys = SystemTx::begin(&app.db).await.unwrap();
    let (role, tenant, uid, roles): (String, Option<uuid::Uuid>, Option<uuid::Uuid>, Vec<String>) = sqlx::query_as(
        "SELECT current_user::text, app.current_tenant(), app.current_user_id(), app.current_roles()",
    )
    .fetch_one(&mut *sys)
    .await
    .unwrap();
    assert_eq!(
        (role.as_str(), tenant, uid, roles.len()),
        ("serein_app", None, None, 0)
    );
    sys.commit().await.unwrap();
}

/// A transaction dropped without commit is rolled back, and a BEGIN cancelled mid-flight never
/// puts its connection back into the pool inside a transaction (review H1).
#[tokio::test]
async fn dropped_and_cancelled_transactions_leave_no_context_in_the_pool() {
    use serein::db::TenantTx;
    use std::future::Future;
    let app = TestApp::spawn_with(|s| {
        s.env.insert("DB_MAX_CONNECTIONS".into(), "2".into());
    })
    .await;
    let mut owner = app.owner().await;
    let someone = seed_world(&mut owner, app.tenant_b, "x").await;

    // Dropped without commit: the insert is gone.
    {
        // A proven tenant admin (a claimed role counts only with the session guard's proof).
        let admin_id = serein::db::UserId::new();
        crate::helpers::give_roles(&mut owner, app.tenant_a, admin_id, "tenant_admin").await;
        let session: uuid::Uuid = sqlx::query_scalar(
            "UPDATE sessions SET secret_hash = sha256($2) WHERE user_id = $1 RETURNING id",
        )
        .bind(admin_id.as_uuid())
        .bind(crate::helpers::TEST_SESSION_SECRET.as_slice())
        .fetch_one(&mut owner)
        .await
        .unwrap();
        let admin = serein::db::tenancy::DbActor {
            user: admin_id,
            roles: vec![serein::rbac::Role::TenantAdmin],
            session: None,
        };
        let mut tx = TenantTx::begin(&app.db, app.tenant_a, Some(&admin))
            .await
            .unwrap();
        sqlx::query(
            "SELECT app_private.session_guard($1, $2, $3, $4, ARRAY['tenant_admin'], now())",
        )
        .bind(app.tenant_a.as_uuid())
        .bind(admin_id.as_uuid())
        .bind(session)
        .bind(crate::helpers::TEST_SESSION_SECRET.as_slice())
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query("INSERT INTO invitations (id, tenant_id, email, invited_by, roles, token_hash, created_at, updated_at, expires_at)
                     VALUES ($1, $2, 'dropped@x.test', $3, '{employee}', sha256('x'::bytea), now(), now(), now() + interval '1 day')")
            .bind(uuid::Uuid::now_v7())
            .bind(app.tenant_a.as_uuid())
            .bind(someone.as_uuid())
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    // Cancelled while BEGIN is in flight, many times, at every await point reachable.
    for polls in 1..6 {
        for _ in 0..5 {
            let mut fut = Box::pin(TenantTx::begin(&app.db, app.tenant_a, None));
            let mut finished = false;
            for _ in 0..polls {
                // A completed future must not be polled again (it would panic).
                if finished {
                    break;
                }
                std::future::poll_fn(|cx| {
                    finished = fut.as_mut().poll(cx).is_ready();
                    std::task::Poll::Ready(())
                })
                .await;
                tokio::task::yield_now().await;
            }
            drop(fut);
        }
    }
    // Let the pool process returned and closed connections.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM invitations WHERE tenant_id = $1")
        .bind(app.tenant_a.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(n, 0, "a dropped transaction committed");
    let mut conns = Vec::new();
    for _ in 0..2 {
        conns.push(app.db.admin_conn().await.unwrap());
    }
    for c in &mut conns {
        assert!(
            (&mut **c).execute("SAVEPOINT leak_probe").await.is_err(),
            "a pooled connection is still inside a transaction"
        );
        let tenant: Option<String> =
            sqlx::query_scalar("SELECT current_setting('app.tenant_id', true)")
                .fetch_one(&mut **c)
                .await
                .unwrap();
        assert_eq!(tenant.unwrap_or_default(), "");
    }
    assert_eq!(app.db.stats().waiting, 0, "the waiting gauge drifted");
}

/// Attaching a person to a tenant goes only through definers with their own rules (self-sign-up,
/// invitations, platform assignment): no actor can attach an arbitrary user id directly (and
/// then read that user's e-mail), and memberships are ended, never deleted.
#[tokio::test]
async fn nobody_inserts_or_deletes_a_membership_directly() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let outsider = seed_world(&mut owner, app.tenant_b, "outsider").await;
    let insert = format!(
        "INSERT INTO memberships (id, tenant_id, user_id, roles) VALUES ('{}', '{}', '{outsider}', '{{employee}}')",
        uuid::Uuid::now_v7(),
        app.tenant_a
    );
    let mut conn = app.owner().await;
    // Not even a tenant admin, nor the person themself: attaching a user id to a company would
    // make that person's e-mail readable there. Ways in are definers with their own rules.
    for (user, roles) in [
        (serein::db::UserId::new(), ""),
        (serein::db::UserId::new(), "employee"),
        (serein::db::UserId::new(), "hr"),
        (serein::db::UserId::new(), "tenant_admin"),
        (outsider, ""),
    ] {
        crate::helpers::as_app_with_roles(&mut conn, Some(app.tenant_a), Some(user), roles).await;
        let r = try_exec_full(&mut conn, &insert, None).await;
        assert_eq!(
            r.map_err(|e| refusal(&e)),
            Err(Refusal::NoGrant),
            "roles {roles:?}"
        );
        conn.execute("ROLLBACK").await.unwrap();
        crate::helpers::as_app_with_roles(&mut conn, Some(app.tenant_a), Some(user), roles).await;
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE id = $1")
            .bind(outsider.as_uuid())
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(seen, i64::from(user == outsider));
        let r = try_exec_full(&mut conn, "DELETE FROM memberships", None).await;
        assert_eq!(r.map_err(|e| refusal(&e)), Err(Refusal::NoGrant));
        conn.execute("ROLLBACK").await.unwrap();
    }
    // Self-sign-up goes through its definer, which holds the company to its allowed domains.
    crate::helpers::as_app_with_roles(&mut conn, Some(app.tenant_a), Some(outsider), "").await;
    let r = try_exec_full(
        &mut conn,
        "SELECT app_private.join_by_signup(gen_random_uuid(), now())",
        None,
    )
    .await;
    assert_eq!(
        r.map_err(|e| e.0),
        Err("42501".to_owned()),
        "domain not open"
    );
    conn.execute("ROLLBACK").await.unwrap();
    let domain: String =
        sqlx::query_scalar("SELECT split_part(email, '@', 2) FROM users WHERE id = $1")
            .bind(outsider.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    sqlx::query("UPDATE tenants SET allowed_email_domains = ARRAY[$2] WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .bind(&domain)
        .execute(&mut owner)
        .await
        .unwrap();
    // Even with the domain open, a claimed `app.user_id` joins nobody: since migration
    // 20261204000002 a self-sign-up becomes a membership only through `mark_email_verified`,
    // with a verification link spent in the same transaction (tests/api/hardening_auth.rs).
    crate::helpers::as_app_with_roles(&mut conn, Some(app.tenant_a), Some(outsider), "").await;
    let r = try_exec_full(
        &mut conn,
        "SELECT app_private.join_by_signup(gen_random_uuid(), now())",
        None,
    )
    .await;
    assert_eq!(r.map_err(|e| e.0), Err("42501".to_owned()), "no proof");
    conn.execute("ROLLBACK").await.unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM memberships WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(app.tenant_a.as_uuid())
    .bind(outsider.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(n, 0);
}
