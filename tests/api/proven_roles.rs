//! A claimed role is not a role (PROOF 8b, "a role not held"): `app.current_roles()` answers
//! only the claimed roles the person proved in this transaction holds, so every policy and
//! definer that asks it refuses a context that raised its own `app.roles` after the session
//! guard, or never passed it (migration 20261209000010_proven_roles).

use sqlx::{Executor, PgConnection};

use crate::helpers::{
    TestApp, as_app_with_roles, as_member_with_session_roles, create_tenant, seed_world,
};

/// The SQLSTATE of a statement's failure (in a savepoint), or the rows it touched.
async fn attempt(conn: &mut PgConnection, sql: &str) -> Result<u64, String> {
    conn.execute("SAVEPOINT attempt").await.unwrap();
    match conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await {
        Ok(r) => {
            conn.execute("RELEASE SAVEPOINT attempt").await.unwrap();
            Ok(r.rows_affected())
        }
        Err(e) => {
            conn.execute("ROLLBACK TO SAVEPOINT attempt").await.unwrap();
            Err(e
                .as_database_error()
                .and_then(|d| d.code().map(|c| c.into_owned()))
                .unwrap_or_else(|| e.to_string()))
        }
    }
}

async fn held(conn: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar("SELECT app.current_roles()")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

async fn raise_claim(conn: &mut PgConnection, roles: &str) {
    sqlx::query("SELECT set_config('app.roles', $1, true)")
        .bind(roles)
        .execute(&mut *conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_employee_who_raises_their_claim_after_the_guard_gains_nothing() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let emp = seed_world(&mut owner, app.tenant_a, "raiser").await;
    let other = seed_world(&mut owner, app.tenant_a, "other").await;

    assert!(as_member_with_session_roles(&mut owner, app.tenant_a, emp, "employee").await);
    assert_eq!(held(&mut owner).await, ["employee"]);
    raise_claim(&mut owner, "employee,hr,tenant_admin").await;
    // Only the role held survives the claim.
    assert_eq!(held(&mut owner).await, ["employee"]);
    // HR's definer refuses (42501) …
    assert_eq!(
        attempt(
            &mut owner,
            "SELECT * FROM app_private.member_summary(now())"
        )
        .await,
        Err("42501".into())
    );
    // … the tenant-admin policies see and change nothing of someone else's membership …
    assert_eq!(
        attempt(
            &mut owner,
            &format!("UPDATE memberships SET department = 'pwned' WHERE user_id = '{other}'")
        )
        .await,
        Ok(0)
    );
    // … nor of the company's settings.
    assert_eq!(
        attempt(
            &mut owner,
            &format!(
                "UPDATE tenants SET name = 'Pwned' WHERE id = '{}'",
                app.tenant_a
            )
        )
        .await,
        Ok(0)
    );
    owner.execute("ROLLBACK").await.unwrap();

    let dept: String = sqlx::query_scalar("SELECT department FROM memberships WHERE user_id = $1")
        .bind(other.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(dept, "ops");
}

#[tokio::test]
async fn a_claim_without_a_session_proof_holds_no_role() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let admin = seed_world(&mut owner, app.tenant_a, "admin").await;
    sqlx::query("UPDATE memberships SET roles = '{employee,hr,tenant_admin}' WHERE user_id = $1")
        .bind(admin.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query("UPDATE users SET totp_enabled_at = now() WHERE id = $1")
        .bind(admin.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    // The real admin's id, claimed, but no guard in this transaction.
    as_app_with_roles(
        &mut owner,
        Some(app.tenant_a),
        Some(admin),
        "tenant_admin,hr",
    )
    .await;
    assert!(held(&mut owner).await.is_empty());
    assert_eq!(
        attempt(
            &mut owner,
            "SELECT * FROM app_private.member_summary(now())"
        )
        .await,
        Err("42501".into())
    );
    let colleagues = "SELECT count(*) FROM users WHERE id <> $1";
    let visible: i64 = sqlx::query_scalar(colleagues)
        .bind(admin.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(visible, 0, "a claimed admin reads colleagues' identities");
    owner.execute("ROLLBACK").await.unwrap();

    // Proven, the same person holds both roles (the positive control) …
    assert!(as_member_with_session_roles(&mut owner, app.tenant_a, admin, "tenant_admin,hr").await);
    assert_eq!(held(&mut owner).await, ["hr", "tenant_admin"]);
    assert_eq!(
        attempt(
            &mut owner,
            "SELECT * FROM app_private.member_summary(now())"
        )
        .await,
        Ok(1)
    );
    let visible: i64 = sqlx::query_scalar(colleagues)
        .bind(admin.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert!(visible > 0, "the proven admin reads the company's people");
    // … and the roles proof is the guard's alone: a roles list written by hand, or the proof
    // carried to a wider list, is worth nothing.
    let proof: String = sqlx::query_scalar("SELECT current_setting('app.roles_proof')")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    sqlx::query(
        "SELECT set_config('app.proven_roles', 'employee,hr,practitioner,tenant_admin', true)",
    )
    .execute(&mut owner)
    .await
    .unwrap();
    raise_claim(&mut owner, "employee,hr,practitioner,tenant_admin").await;
    assert!(held(&mut owner).await.is_empty());
    owner.execute("ROLLBACK").await.unwrap();
    // … nor in the next transaction of the same connection.
    as_app_with_roles(
        &mut owner,
        Some(app.tenant_a),
        Some(admin),
        "tenant_admin,hr",
    )
    .await;
    for (name, value) in [
        ("app.proven_roles", "hr,tenant_admin"),
        ("app.roles_proof", proof.as_str()),
    ] {
        sqlx::query("SELECT set_config($1, $2, true)")
            .bind(name)
            .bind(value)
            .execute(&mut owner)
            .await
            .unwrap();
    }
    assert!(held(&mut owner).await.is_empty());
    owner.execute("ROLLBACK").await.unwrap();
}

/// The roles proved at the start of a request's transaction hold to its end (the request was
/// authorised then): an admin demoting themself still finishes that request as an admin, and
/// the next transaction no longer proves the role.
#[tokio::test]
async fn roles_are_those_proved_when_the_transaction_began() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let admin = seed_world(&mut owner, app.tenant_a, "admin").await;
    crate::helpers::give_roles(&mut owner, app.tenant_a, admin, "tenant_admin").await;
    assert!(as_member_with_session_roles(&mut owner, app.tenant_a, admin, "tenant_admin").await);
    assert_eq!(held(&mut owner).await, ["tenant_admin"]);
    assert_eq!(
        attempt(
            &mut owner,
            &format!("UPDATE memberships SET roles = '{{employee}}' WHERE user_id = '{admin}'")
        )
        .await,
        Ok(1)
    );
    assert_eq!(held(&mut owner).await, ["tenant_admin"]);
    owner.execute("COMMIT").await.unwrap();
    assert!(!as_member_with_session_roles(&mut owner, app.tenant_a, admin, "tenant_admin").await);
}

#[tokio::test]
async fn a_proof_in_one_company_holds_no_role_in_another() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let hr = seed_world(&mut owner, app.tenant_a, "hr").await;
    sqlx::query("UPDATE memberships SET roles = '{hr}' WHERE user_id = $1")
        .bind(hr.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    let c = create_tenant(&mut owner, "gamma").await;
    assert!(as_member_with_session_roles(&mut owner, app.tenant_a, hr, "hr").await);
    assert_eq!(held(&mut owner).await, ["hr"]);
    // Moving the context to another company (or to the platform) after the guard: the proof
    // answers only for the context it was made in.
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(c.to_string())
        .execute(&mut owner)
        .await
        .unwrap();
    assert!(held(&mut owner).await.is_empty());
    sqlx::query("SELECT set_config('app.tenant_id', '00000000-0000-0000-0000-000000000000', true)")
        .execute(&mut owner)
        .await
        .unwrap();
    raise_claim(&mut owner, "platform_admin").await;
    assert!(held(&mut owner).await.is_empty());
    owner.execute("ROLLBACK").await.unwrap();
}

/// Someone else's `app.user_id` is no proof either: without the guard's proof of that person,
/// their name and their practitioner profile cannot be changed (migration
/// 20261209000700_self_updates_proven); proven, a person changes their own.
#[tokio::test]
async fn a_named_person_is_not_a_proven_one_for_self_updates() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    let victim = seed_world(&mut owner, app.tenant_a, "victim").await;
    let doc: uuid::Uuid = sqlx::query_scalar(
        "SELECT m.user_id FROM memberships m JOIN practitioner_profiles p ON p.user_id = m.user_id
         WHERE m.tenant_id = $1 LIMIT 1",
    )
    .bind(app.tenant_a.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    let doc = serein::db::UserId::from(doc);
    for (who, sql) in [
        (
            victim,
            format!("UPDATE users SET display_name = 'Pwned' WHERE id = '{victim}'"),
        ),
        (
            doc,
            format!("UPDATE practitioner_profiles SET bio = 'Pwned' WHERE user_id = '{doc}'"),
        ),
    ] {
        as_app_with_roles(
            &mut owner,
            Some(app.tenant_a),
            Some(who),
            "employee,practitioner",
        )
        .await;
        assert_eq!(attempt(&mut owner, &sql).await, Ok(0), "{sql}");
        owner.execute("ROLLBACK").await.unwrap();
    }
    assert!(as_member_with_session_roles(&mut owner, app.tenant_a, victim, "employee").await);
    assert_eq!(
        attempt(
            &mut owner,
            &format!("UPDATE users SET display_name = 'Renamed' WHERE id = '{victim}'")
        )
        .await,
        Ok(1)
    );
    owner.execute("ROLLBACK").await.unwrap();
    let (name, bio): (String, String) = sqlx::query_as(
        "SELECT (SELECT display_name FROM users WHERE id = $1),
                (SELECT bio FROM practitioner_profiles WHERE user_id = $2)",
    )
    .bind(victim.as_uuid())
    .bind(doc.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_ne!(name, "Pwned");
    assert_ne!(bio, "Pwned");
}
