//! Issue 9, items 1, 6, 7 and 8 (migration 20261204000003): HR's view over time, practitioner
//! identities, guard triggers under another request role, one-way revocation and ending, and
//! who reads a practitioner's identity row. Each attack runs at the database level as the
//! request role with crafted `app.*` values, and through the API where the leak was there.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Executor, PgConnection};

use crate::helpers::{
    TestApp, as_app_with_roles, as_member_with_session_roles, fresh_database, test_env,
};
use crate::members::{person, send};
use crate::people::*;
use serein::app::App;
use serein::app::AppConfig;
use serein::clock::Clock;
use serein::db::{TenantId, UserId};
use serein::rbac::Role;

const PLATFORM: &str = "localhost";

/// Run `sql` inside a savepoint of the open transaction; the SQLSTATE when it failed.
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

/// An identity without a password, member of `tenant` with `roles` in `department`, whose
/// membership began at `since` (as the owner: arranging history).
async fn member_since(
    owner: &mut PgConnection,
    tenant: TenantId,
    roles: &[&str],
    department: &str,
    since: time::OffsetDateTime,
) -> UserId {
    let user = UserId::new();
    sqlx::query("INSERT INTO users (id, email, display_name) VALUES ($1, $2, 'Someone')")
        .bind(user.as_uuid())
        .bind(format!("{}@alpha.test", user.as_uuid().simple()))
        .execute(&mut *owner)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO memberships (id, tenant_id, user_id, roles, department, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(roles.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>())
    .bind(department)
    .bind(since)
    .execute(&mut *owner)
    .await
    .unwrap();
    user
}

// ---------------------------------------------------------------------------------------------
// Item 1: HR's view over time.

#[tokio::test]
async fn two_snapshots_one_sign_up_apart_look_the_same_to_hr() {
    let app = TestApp::spawn().await;
    let a = host("alpha");
    let now = app.clock.now();
    let long_ago = now - time::Duration::days(70);
    let mut owner = app.owner().await;
    // Departments of 1, 3, 7 and 20 people, all enrolled well before the last closed month.
    for (dept, n) in [("legal", 1), ("ops", 3), ("sales", 7), ("eng", 20)] {
        for _ in 0..n {
            member_since(&mut owner, app.tenant_a, &["employee"], dept, long_ago).await;
        }
    }
    let (hr_user, hr) = person(&app, app.tenant_a, "alpha", &[Role::Hr]).await;

    let snapshot = || async {
        let res = send(&app, Method::GET, &a, "/api/v1/members/summary", &hr, None).await;
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    };
    let first = snapshot().await;
    let body: Value = serde_json::from_str(&first).unwrap();
    // One coarse company-wide figure for the closed month: 31 enrolled → "at least 30".
    assert_eq!(body["members"], 30, "{first}");
    assert_eq!(body["band"], 10);
    assert_eq!(body["suppressed"], false);
    for word in [
        "legal",
        "ops",
        "sales",
        "eng",
        "department",
        "role",
        "employee",
    ] {
        assert!(!first.contains(word), "{word} in {first}");
    }
    let month_start = now
        .replace_day(1)
        .unwrap()
        .replace_time(time::Time::MIDNIGHT);
    assert_eq!(
        body["period_end"],
        month_start
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
        "{first}"
    );

    // One sign-up at a time, in a department of each size: HR's answer does not move.
    for dept in ["legal", "ops", "sales", "eng"] {
        member_since(&mut owner, app.tenant_a, &["employee"], dept, now).await;
        assert_eq!(snapshot().await, first, "after a sign-up in {dept}");
    }
    // Nor when someone leaves now (the closed month counted them), nor at the database level
    // with a clock pushed into the future (the month under way is never released).
    let leaver = member_since(&mut owner, app.tenant_a, &["employee"], "ops", long_ago).await;
    let with_leaver = snapshot().await;
    sqlx::query("UPDATE memberships SET status = 'disabled', ended_at = $2 WHERE user_id = $1")
        .bind(leaver.as_uuid())
        .bind(now)
        .execute(&mut owner)
        .await
        .unwrap();
    assert_eq!(snapshot().await, with_leaver);

    crate::helpers::as_proven(&mut owner, app.tenant_a, hr_user, "hr").await;
    let rows = |at: time::OffsetDateTime| {
        sqlx::query_as::<_, (time::OffsetDateTime, Option<i32>, bool)>(
            "SELECT period_end, members, suppressed FROM app_private.member_summary($1)",
        )
        .bind(at)
    };
    let today = rows(now).fetch_all(&mut owner).await.unwrap();
    let future = rows(now + time::Duration::days(45))
        .fetch_all(&mut owner)
        .await
        .unwrap();
    assert_eq!(today, future, "a future clock opened the month under way");
    assert_eq!(today.len(), 1);
    owner.execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn a_small_company_is_suppressed_whole_and_employees_get_nothing() {
    let app = TestApp::spawn().await;
    let a = host("alpha");
    let long_ago = app.clock.now() - time::Duration::days(70);
    let mut owner = app.owner().await;
    for _ in 0..9 {
        member_since(&mut owner, app.tenant_a, &["employee"], "eng", long_ago).await;
    }
    // A practitioner is not a company member.
    member_since(&mut owner, app.tenant_a, &["practitioner"], "eng", long_ago).await;
    let (_, hr) = person(&app, app.tenant_a, "alpha", &[Role::Hr]).await;
    let res = send(&app, Method::GET, &a, "/api/v1/members/summary", &hr, None).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["members"], Value::Null, "{body}");
    assert_eq!(body["suppressed"], true);
    let (_, emp) = person(&app, app.tenant_a, "alpha", &[Role::Employee]).await;
    let res = send(&app, Method::GET, &a, "/api/v1/members/summary", &emp, None).await;
    assert_eq!(res.status(), 403);
    // The definer refuses an employee context and the platform tenant.
    as_app_with_roles(&mut owner, Some(app.tenant_a), None, "employee").await;
    assert_eq!(
        attempt(
            &mut owner,
            "SELECT * FROM app_private.member_summary(now())"
        )
        .await,
        Err("42501".into())
    );
    owner.execute("ROLLBACK").await.unwrap();
    as_app_with_roles(&mut owner, Some(TenantId::PLATFORM), None, "hr").await;
    assert_eq!(
        attempt(
            &mut owner,
            "SELECT * FROM app_private.member_summary(now())"
        )
        .await,
        Err("42501".into())
    );
    owner.execute("ROLLBACK").await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Item 6: practitioner identities.

async fn platform_session(app: &TestApp) -> (UserId, String) {
    let email = format!("{}@platform.test", uuid::Uuid::now_v7().simple());
    let user = add_person(app, app.tenant_a, &email, &[]).await;
    make_platform_admin(app, user).await;
    let (_, t) = mint_session(
        app,
        TenantId::PLATFORM,
        PLATFORM,
        user,
        &[Role::PlatformAdmin],
    )
    .await;
    (user, t)
}

#[tokio::test]
async fn a_platform_admin_cannot_make_an_employee_a_practitioner_in_the_database() {
    let app = TestApp::spawn().await;
    let (admin, _) = platform_session(&app).await;
    let emp = add_person(&app, app.tenant_a, "emp@alpha.test", &["employee"]).await;
    let mut owner = app.owner().await;
    // A proven platform admin (the guard checked their live platform session in this
    // transaction): a claimed role is no longer enough (migration 20261207000005).
    assert!(
        as_member_with_session_roles(&mut owner, TenantId::PLATFORM, admin, "platform_admin").await
    );
    // The direct insert of a profile for the employee's id is refused …
    let insert = format!(
        "INSERT INTO practitioner_profiles (user_id, created_at, updated_at) VALUES ('{emp}', now(), now())"
    );
    assert_eq!(attempt(&mut owner, &insert).await, Err("42501".into()));
    // … the definer creates nothing for an address that has an account, and returns no id …
    let made: Vec<(uuid::Uuid, bool)> = sqlx::query_as(
        "SELECT * FROM app_private.create_practitioner_identity($1, 'emp@alpha.test', 'X', 'en', now())",
    )
    .bind(uuid::Uuid::now_v7())
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert!(made.is_empty());
    // … so the employee cannot be assigned anywhere, nor seen by the platform.
    let outcome: String =
        sqlx::query_scalar("SELECT app_private.assign_practitioner($1, $2, $3, now())")
            .bind(app.tenant_b.as_uuid())
            .bind(emp.as_uuid())
            .bind(uuid::Uuid::now_v7())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(outcome, "not_found");
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE id = $1")
        .bind(emp.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(seen, 0);
    owner.execute("ROLLBACK").await.unwrap();
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM practitioner_profiles WHERE user_id = $1)
              + (SELECT count(*) FROM memberships WHERE user_id = $1 AND tenant_id = $2)",
    )
    .bind(emp.as_uuid())
    .bind(app.tenant_b.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn practitioner_creation_and_assignment_answer_the_same_whoever_the_address_is() {
    let app = TestApp::spawn().await;
    let (_, token) = platform_session(&app).await;
    let existing = add_person(&app, app.tenant_a, "emp@alpha.test", &["employee"]).await;
    let body = |email: &str| {
        json!({
            "email": email, "display_name": "Dr Camille Martin", "specialties": ["anxiety"],
            "languages": ["fr"], "bio": "TCC.", "verified": true, "locale": "fr"
        })
    };
    let create = |email: &'static str| {
        let token = token.clone();
        let app = &app;
        let b = body(email);
        async move {
            let res = send(
                app,
                Method::POST,
                PLATFORM,
                "/api/v1/platform/practitioners",
                &token,
                Some(b),
            )
            .await;
            let status = res.status().as_u16();
            (status, res.text().await.unwrap())
        }
    };
    let fresh = create("new.doc@practice.test").await;
    let taken = create("Emp@Alpha.test").await;
    assert_eq!(fresh.0, 202, "{}", fresh.1);
    assert_eq!(taken.0, 202, "{}", taken.1);
    // The same body but for the address itself.
    assert_eq!(
        fresh.1.replace("new.doc@practice.test", "X"),
        taken.1.replace("emp@alpha.test", "X")
    );
    assert!(!taken.1.contains(&existing.to_string()) && !taken.1.contains("Test Person"));
    let mut owner = app.owner().await;
    let (profiles, tokens): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM practitioner_profiles WHERE user_id = $1),
                (SELECT count(*) FROM auth_tokens WHERE user_id = $1)",
    )
    .bind(existing.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(
        (profiles, tokens),
        (0, 0),
        "the existing account was not touched"
    );
    let mails: Vec<(String, String)> =
        sqlx::query_as("SELECT to_address, template FROM email_outbox ORDER BY to_address")
            .fetch_all(&mut owner)
            .await
            .unwrap();
    assert_eq!(
        mails,
        vec![
            (
                "emp@alpha.test".to_owned(),
                "practitioner_address_in_use".to_owned()
            ),
            (
                "new.doc@practice.test".to_owned(),
                "practitioner_welcome".to_owned()
            ),
        ]
    );

    // Assignment: a company where the practitioner is not a member, and one where they are
    // (they accepted an employee invitation there): the same answer.
    let doc: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'new.doc@practice.test'")
            .fetch_one(&mut owner)
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO memberships (id, tenant_id, user_id, roles) VALUES ($1, $2, $3, '{employee}')",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(app.tenant_b.as_uuid())
    .bind(doc)
    .execute(&mut owner)
    .await
    .unwrap();
    let mut answers = Vec::new();
    for t in [app.tenant_a, app.tenant_b] {
        let res = send(
            &app,
            Method::PUT,
            PLATFORM,
            &format!("/api/v1/platform/tenants/{t}/practitioners/{doc}"),
            &token,
            None,
        )
        .await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap().replace(&t.to_string(), "T");
        answers.push((status, text));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 201);
}

// ---------------------------------------------------------------------------------------------
// Item 7: a request role other than serein_app.

const IN_ROLE: &str = "serein_test_in_app_role";

async fn ensure_in_role(owner: &mut PgConnection) {
    owner
        .execute(sqlx::AssertSqlSafe(format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{IN_ROLE}') THEN
               BEGIN CREATE ROLE {IN_ROLE} NOLOGIN IN ROLE serein_app;
               EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END;
             END IF; END $$"
        )))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_role_in_role_serein_app_neither_skips_the_triggers_nor_passes_the_self_check() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    ensure_in_role(&mut owner).await;
    let admin = add_person(&app, app.tenant_a, "boss@alpha.test", &["tenant_admin"]).await;
    let emp = add_person(&app, app.tenant_a, "emp@alpha.test", &["employee"]).await;
    sqlx::query("UPDATE tenants SET managed_by = 'api' WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    let before: (i32, String) = sqlx::query_as("SELECT seats, plan FROM tenants WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();

    // A live session of the admin whose secret the test knows (the guard demands it; an admin
    // acts only with TOTP enabled).
    sqlx::query("UPDATE users SET totp_enabled_at = now() WHERE id = $1")
        .bind(admin.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    let session = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO sessions (id, tenant_id, user_id, created_at, idle_expires_at, absolute_expires_at, secret_hash)
         VALUES ($1, $2, $3, now(), now() + interval '1 hour', now() + interval '1 day', sha256($4))",
    )
    .bind(session)
    .bind(app.tenant_a.as_uuid())
    .bind(admin.as_uuid())
    .bind(crate::helpers::TEST_SESSION_SECRET.as_slice())
    .execute(&mut owner)
    .await
    .unwrap();
    owner.execute("BEGIN").await.unwrap();
    sqlx::query(
        "SELECT set_config('role', $1, true), set_config('app.tenant_id', $2, true),
                set_config('app.user_id', $3, true), set_config('app.roles', 'tenant_admin', true)",
    )
    .bind(IN_ROLE)
    .bind(app.tenant_a.to_string())
    .bind(admin.to_string())
    .execute(&mut owner)
    .await
    .unwrap();
    // Proven as a request would be (company settings need the proof, not the claim).
    sqlx::query("SELECT app_private.session_guard($1, $2, $3, $4, ARRAY['tenant_admin'], now())")
        .bind(app.tenant_a.as_uuid())
        .bind(admin.as_uuid())
        .bind(session)
        .bind(crate::helpers::TEST_SESSION_SECRET.as_slice())
        .execute(&mut owner)
        .await
        .unwrap();
    let t = app.tenant_a;
    // The policies apply to the member role (the tenant admin may update their company) …
    assert_eq!(
        attempt(
            &mut owner,
            &format!("UPDATE tenants SET name = 'Renamed' WHERE id = '{t}'")
        )
        .await,
        Ok(1)
    );
    // … and so do the guard triggers now.
    for sql in [
        format!("UPDATE tenants SET seats = 1000000 WHERE id = '{t}'"),
        format!("UPDATE tenants SET plan = 'enterprise' WHERE id = '{t}'"),
        format!(
            "UPDATE memberships SET roles = '{{employee,practitioner}}' WHERE user_id = '{emp}'"
        ),
    ] {
        assert_eq!(
            attempt(&mut owner, &sql).await,
            Err("42501".into()),
            "{sql}"
        );
    }
    owner.execute("ROLLBACK").await.unwrap();
    let after: (i32, String) = sqlx::query_as("SELECT seats, plan FROM tenants WHERE id = $1")
        .bind(app.tenant_a.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(before, after);

    // And the server refuses to start with it as its request role.
    let db = fresh_database().await;
    let mut env = test_env(&db);
    env.insert("SEREIN_APP_ROLE".into(), IN_ROLE.into());
    let err = match App::build(AppConfig::load(&env).unwrap(), Clock::system()).await {
        Ok(_) => String::new(),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("is not \"serein_app\""), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Item 8: one-way revocation and ending; who reads a practitioner's identity.

#[tokio::test]
async fn a_revoked_session_stays_revoked_and_an_ended_membership_stays_ended() {
    let app = TestApp::spawn().await;
    let user = add_person(&app, app.tenant_a, "emp@alpha.test", &["employee"]).await;
    let admin = add_person(&app, app.tenant_a, "boss@alpha.test", &["tenant_admin"]).await;
    let (session, _) =
        mint_session(&app, app.tenant_a, &host("alpha"), user, &[Role::Employee]).await;
    let mut owner = app.owner().await;
    sqlx::query("UPDATE sessions SET revoked_at = now(), revoked_reason = 'admin' WHERE id = $1")
        .bind(session.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query("UPDATE memberships SET status = 'disabled', ended_at = now() WHERE user_id = $1")
        .bind(user.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();

    // The session's owner cannot un-revoke it (nor rewrite the revocation).
    as_app_with_roles(&mut owner, Some(app.tenant_a), Some(user), "employee").await;
    for sql in [
        format!(
            "UPDATE sessions SET revoked_at = NULL, revoked_reason = NULL WHERE id = '{session}'"
        ),
        format!(
            "UPDATE sessions SET revoked_at = now() + interval '1 year' WHERE id = '{session}'"
        ),
    ] {
        assert_eq!(
            attempt(&mut owner, &sql).await,
            Err("42501".into()),
            "{sql}"
        );
    }
    owner.execute("ROLLBACK").await.unwrap();

    // A tenant admin cannot bring the ended membership back in two steps.
    crate::helpers::as_proven(&mut owner, app.tenant_a, admin, "tenant_admin").await;
    assert_eq!(
        attempt(
            &mut owner,
            &format!("UPDATE memberships SET ended_at = NULL WHERE user_id = '{user}'")
        )
        .await,
        Err("42501".into())
    );
    assert_eq!(
        attempt(
            &mut owner,
            &format!("UPDATE memberships SET status = 'active' WHERE user_id = '{user}'")
        )
        .await,
        Err("42501".into())
    );
    owner.execute("ROLLBACK").await.unwrap();

    let (revoked, status, ended): (bool, String, bool) = sqlx::query_as(
        "SELECT s.revoked_at IS NOT NULL, m.status, m.ended_at IS NOT NULL
         FROM sessions s JOIN memberships m ON m.user_id = s.user_id AND m.tenant_id = s.tenant_id
         WHERE s.id = $1",
    )
    .bind(session.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!((revoked, status.as_str(), ended), (true, "disabled", true));
}

#[tokio::test]
async fn only_the_person_and_their_company_admins_read_a_practitioners_identity() {
    let app = TestApp::spawn().await;
    let doc = add_person(&app, app.tenant_a, "doc@practice.test", &["practitioner"]).await;
    let mut owner = app.owner().await;
    sqlx::query("UPDATE users SET totp_enabled_at = now(), display_name = 'Dr Doc' WHERE id = $1")
        .bind(doc.as_uuid())
        .execute(&mut owner)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO practitioner_profiles (user_id, specialties, created_at, updated_at)
         VALUES ($1, '{stress}', now(), now())",
    )
    .bind(doc.as_uuid())
    .execute(&mut owner)
    .await
    .unwrap();
    let hr = add_person(&app, app.tenant_a, "hr@alpha.test", &["hr"]).await;
    let emp = add_person(&app, app.tenant_a, "emp@alpha.test", &["employee"]).await;
    let admin = add_person(&app, app.tenant_a, "boss@alpha.test", &["tenant_admin"]).await;

    let read_doc = format!("SELECT email FROM users WHERE id = '{doc}'");
    // Anonymous, HR and employee contexts of the company see no identity row of the
    // practitioner (no e-mail, verification, status) …
    for (user, roles) in [(None, ""), (Some(hr), "hr"), (Some(emp), "employee")] {
        as_app_with_roles(&mut owner, Some(app.tenant_a), user, roles).await;
        let rows = sqlx::query(sqlx::AssertSqlSafe(read_doc.clone()))
            .fetch_all(&mut owner)
            .await
            .unwrap();
        assert!(
            rows.is_empty(),
            "context {roles:?} read the practitioner's identity"
        );
        // … nor the directory's names: a claimed `app.user_id` proves nobody …
        let names: Vec<(uuid::Uuid, String)> =
            sqlx::query_as("SELECT id, display_name FROM app_private.practitioner_names()")
                .fetch_all(&mut owner)
                .await
                .unwrap();
        assert_eq!(names, vec![], "{roles:?}");
        owner.execute("ROLLBACK").await.unwrap();
    }
    // … which a person proven by the session guard reads (names only) …
    for (user, role) in [(hr, Role::Hr), (emp, Role::Employee)] {
        mint_session(&app, app.tenant_a, &host("alpha"), user, &[role]).await;
        assert!(as_member_with_session_roles(&mut owner, app.tenant_a, user, role.as_str()).await);
        let names: Vec<(uuid::Uuid, String)> =
            sqlx::query_as("SELECT id, display_name FROM app_private.practitioner_names()")
                .fetch_all(&mut owner)
                .await
                .unwrap();
        assert_eq!(
            names,
            vec![(doc.as_uuid(), "Dr Doc".to_owned())],
            "{role:?}"
        );
        owner.execute("ROLLBACK").await.unwrap();
    }
    // … the company's tenant admin reads the identity, but not its TOTP status …
    crate::helpers::as_proven(&mut owner, app.tenant_a, admin, "tenant_admin").await;
    let email: String = sqlx::query_scalar(sqlx::AssertSqlSafe(read_doc.clone()))
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(email, "doc@practice.test");
    assert_eq!(
        attempt(
            &mut owner,
            &format!("SELECT totp_enabled_at FROM users WHERE id = '{doc}'")
        )
        .await,
        Err("42501".into())
    );
    owner.execute("ROLLBACK").await.unwrap();
    // … which is the person's own only.
    as_app_with_roles(&mut owner, Some(app.tenant_a), Some(doc), "practitioner").await;
    let mine: bool = sqlx::query_scalar("SELECT app_private.own_totp_enabled()")
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert!(mine);
    owner.execute("ROLLBACK").await.unwrap();

    // The directory still serves the practitioner to an employee, without any e-mail.
    let (_, token) = mint_session(&app, app.tenant_a, &host("alpha"), emp, &[Role::Employee]).await;
    let res = send(
        &app,
        Method::GET,
        &host("alpha"),
        "/api/v1/practitioners",
        &token,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains("Dr Doc") && !text.contains('@'), "{text}");
}
