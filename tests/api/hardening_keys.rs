//! Issue 9, item 2 (PROOF 8b: "Key tables are never readable or writable by the request role
//! directly"). Each attack runs as `serein_app` with the server's own context statement and
//! crafted `app.*` values, not through the API: HR destroying the company's clinical key or
//! another person's subject key, a forged newest subject key, a tenant admin listing who has a
//! subject key, and the key definers called with crafted contexts (no session, someone else's
//! person, an empty or foreign tenant, a forged or replayed proof). Plus: rotation and
//! destruction refuse the request role and work as the owner.

use serein::crypto::keyring::{Aad, KeyScope, Keyring};
use serein::db::{TenantId, TenantTx, UserId};
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

use crate::helpers::{
    TEST_MASTER_KEY, TestApp, as_app_with_roles, as_member_with_session, seed_world,
};

/// Run one statement in a savepoint: rows affected, or the error's SQLSTATE and message.
pub async fn try_exec(conn: &mut PgConnection, sql: &str) -> Result<u64, (String, String)> {
    conn.execute("SAVEPOINT probe").await.unwrap();
    match conn.execute(sqlx::AssertSqlSafe(sql.to_owned())).await {
        Ok(done) => {
            conn.execute("RELEASE SAVEPOINT probe").await.unwrap();
            Ok(done.rows_affected())
        }
        Err(e) => {
            conn.execute("ROLLBACK TO SAVEPOINT probe").await.unwrap();
            let d = e.as_database_error().expect("a database error");
            Err((
                d.code().map(|c| c.to_string()).unwrap_or_default(),
                d.message().to_owned(),
            ))
        }
    }
}

/// The statement was refused for lack of a privilege (not merely filtered to zero rows).
pub fn assert_permission_denied(r: Result<u64, (String, String)>, what: &str) {
    match r {
        Err((code, msg)) => assert!(
            code == "42501" && msg.contains("permission denied"),
            "{what}: unexpected error {code} {msg}"
        ),
        Ok(n) => panic!("{what}: succeeded ({n} rows)"),
    }
}

/// Refused by a key definer (42501), whatever the message.
fn assert_refused(r: Result<u64, (String, String)>, what: &str) {
    match r {
        Err((code, _)) => assert_eq!(code, "42501", "{what}"),
        Ok(n) => panic!("{what}: succeeded ({n} rows)"),
    }
}

/// Every key row of a tenant, as text (to show rows unchanged).
async fn key_rows(owner: &mut PgConnection, tenant: TenantId) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT k::text FROM (SELECT tenant_id, purpose AS who, version, wrapped_key, retired_at, destroyed_at FROM tenant_keys
                              UNION ALL
                              SELECT tenant_id, subject_id::text, version, wrapped_key, retired_at, destroyed_at FROM subject_keys) k
         WHERE tenant_id = $1 ORDER BY 1",
    )
    .bind(tenant.as_uuid())
    .fetch_all(owner)
    .await
    .unwrap()
}

/// A member of `tenant` holding `roles` (no session).
async fn member(owner: &mut PgConnection, tenant: TenantId, roles: &[&str]) -> UserId {
    let user = UserId::new();
    sqlx::query("INSERT INTO users (id, email, display_name) VALUES ($1, $2, 'M')")
        .bind(user.as_uuid())
        .bind(format!("m-{}@example.test", user.as_uuid().simple()))
        .execute(&mut *owner)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO memberships (id, tenant_id, user_id, roles, department) VALUES ($1, $2, $3, $4, 'ops')",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(roles.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>())
    .execute(&mut *owner)
    .await
    .unwrap();
    user
}

#[tokio::test]
async fn hr_cannot_destroy_the_clinical_key_or_another_persons_subject_key() {
    let app = TestApp::spawn().await;
    let a = app.tenant_a;
    let mut owner = app.owner().await;
    let victim = seed_world(&mut owner, a, "a").await;
    let hr = member(&mut owner, a, &["hr"]).await;
    let before = key_rows(&mut owner, a).await;
    assert_eq!(
        before.len(),
        3,
        "seed_world makes data, clinical and one subject key"
    );

    let mut conn = app.owner().await;
    as_app_with_roles(&mut conn, Some(a), Some(hr), "hr").await;
    assert_permission_denied(
        try_exec(
            &mut conn,
            "UPDATE tenant_keys SET wrapped_key = NULL, destroyed_at = now() WHERE purpose = 'clinical'",
        )
        .await,
        "HR destroys the clinical key",
    );
    assert_permission_denied(
        try_exec(
            &mut conn,
            &format!(
                "UPDATE subject_keys SET wrapped_key = NULL, destroyed_at = now() WHERE subject_id = '{victim}'"
            ),
        )
        .await,
        "HR destroys another person's subject key",
    );
    assert_permission_denied(
        try_exec(&mut conn, "UPDATE tenant_keys SET retired_at = now()").await,
        "HR retires the tenant keys",
    );
    for table in ["tenant_keys", "subject_keys"] {
        assert_permission_denied(
            try_exec(&mut conn, &format!("DELETE FROM {table}")).await,
            &format!("HR deletes {table}"),
        );
    }
    // No definer lets a request destroy anything either: the only key definers granted to the
    // request role read or create version 1, or read the master key check and record the
    // database's first one (keycheck.rs attacks those), or read and set one file's wrapped data
    // key for the proven person (files.rs attacks those; they touch no tenant or subject key).
    let granted: Vec<String> = sqlx::query_scalar(
        "SELECT p.proname::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = 'app_private' AND p.proname LIKE '%key%'
           AND has_function_privilege('serein_app', p.oid, 'EXECUTE') ORDER BY 1",
    )
    .fetch_all(&mut owner)
    .await
    .unwrap();
    assert_eq!(
        granted,
        [
            "file_key",
            "file_key_set",
            "master_key_check_record",
            "master_key_check_state",
            "subject_key",
            "subject_key_create",
            "tenant_key",
            "tenant_key_create"
        ]
    );
    conn.execute("COMMIT").await.unwrap();
    assert_eq!(key_rows(&mut owner, a).await, before, "key rows changed");
}

#[tokio::test]
async fn a_forged_newest_subject_key_cannot_be_inserted() {
    let app = TestApp::spawn().await;
    let a = app.tenant_a;
    let mut owner = app.owner().await;
    let victim = seed_world(&mut owner, a, "a").await;
    let before = key_rows(&mut owner, a).await;
    // As anyone in the tenant, and as the victim themselves (a crafted app.user_id).
    for actor in [member(&mut owner, a, &["hr"]).await, victim] {
        let mut conn = app.owner().await;
        as_app_with_roles(&mut conn, Some(a), Some(actor), "employee").await;
        assert_permission_denied(
            try_exec(
                &mut conn,
                &format!(
                    "INSERT INTO subject_keys (tenant_id, subject_id, version, wrapping_version, wrapped_key, created_at)
                     VALUES ('{a}', '{victim}', 2, 1, decode(repeat('00', 65), 'hex'), now())"
                ),
            )
            .await,
            "forged subject key",
        );
        assert_permission_denied(
            try_exec(
                &mut conn,
                &format!(
                    "INSERT INTO tenant_keys (tenant_id, purpose, version, wrapped_key, created_at)
                     VALUES ('{a}', 'clinical', 2, decode(repeat('00', 65), 'hex'), now())"
                ),
            )
            .await,
            "forged tenant key",
        );
        conn.execute("COMMIT").await.unwrap();
    }
    assert_eq!(key_rows(&mut owner, a).await, before);
}

#[tokio::test]
async fn a_tenant_admin_cannot_list_who_has_a_subject_key() {
    let app = TestApp::spawn().await;
    let a = app.tenant_a;
    let mut owner = app.owner().await;
    seed_world(&mut owner, a, "a").await;
    let admin = member(&mut owner, a, &["tenant_admin"]).await;
    let mut conn = app.owner().await;
    as_app_with_roles(&mut conn, Some(a), Some(admin), "tenant_admin").await;
    for sql in [
        "SELECT u.email FROM subject_keys k JOIN users u ON u.id = k.subject_id",
        "SELECT count(*) FROM subject_keys",
        "SELECT purpose, version FROM tenant_keys",
        "SELECT count(*) FROM tenant_keys",
    ] {
        assert_permission_denied(try_exec(&mut conn, sql).await, sql);
    }
    // Through the door: another person's key is refused (no session, and not theirs).
    let victim: Uuid =
        sqlx::query_scalar("SELECT subject_id FROM subject_keys WHERE tenant_id = $1 LIMIT 1")
            .bind(a.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_refused(
        try_exec(
            &mut conn,
            &format!("SELECT * FROM app_private.subject_key('{victim}', NULL)"),
        )
        .await,
        "admin reads a subject key",
    );
    conn.execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn key_definers_refuse_crafted_contexts() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    let mut owner = app.owner().await;
    let victim = seed_world(&mut owner, a, "a").await;
    let me = seed_world(&mut owner, a, "a2").await;
    seed_world(&mut owner, b, "b").await;
    let before_a = key_rows(&mut owner, a).await;
    let before_b = key_rows(&mut owner, b).await;
    let garbage = "decode(repeat('00', 65), 'hex')";
    let reads = |who: UserId| {
        vec![
            format!("SELECT * FROM app_private.subject_key('{who}', NULL)"),
            format!("SELECT * FROM app_private.subject_key('{who}', 1)"),
            format!("SELECT app_private.subject_key_create('{who}', 1, {garbage}, now())"),
        ]
    };
    let tenant_doors = [
        "SELECT * FROM app_private.tenant_key('clinical', NULL)".to_owned(),
        "SELECT * FROM app_private.tenant_key('data', 1)".to_owned(),
        format!("SELECT app_private.tenant_key_create('clinical', {garbage}, now())"),
    ];

    // 1. Someone else's app.user_id, no session checked: every door refuses.
    let mut conn = app.owner().await;
    as_app_with_roles(&mut conn, Some(a), Some(victim), "employee").await;
    for sql in reads(victim).iter().chain(&tenant_doors) {
        assert_refused(
            try_exec(&mut conn, sql).await,
            &format!("no session: {sql}"),
        );
    }
    // A proof typed in by hand is no proof.
    conn.execute("SELECT set_config('app.session_proof', repeat('ab', 32), true)")
        .await
        .unwrap();
    assert_refused(
        try_exec(&mut conn, &reads(victim)[0]).await,
        "hand-made proof",
    );
    conn.execute("ROLLBACK").await.unwrap();

    // 2. My own session checked: my key, yes; the victim's, no; nothing in another context.
    let mut conn = app.owner().await;
    assert!(as_member_with_session(&mut conn, a, me).await);
    let mine: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM app_private.subject_key('{me}', NULL)"
    )))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(mine, 1, "my own subject key");
    for sql in reads(victim) {
        assert_refused(
            try_exec(&mut conn, &sql).await,
            &format!("proven, another person: {sql}"),
        );
    }
    // Creating my key again, or a forged version, changes nothing (version 1 exists).
    let created: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT app_private.subject_key_create('{me}', 1, {garbage}, now())"
    )))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(!created);
    let created: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT app_private.tenant_key_create('clinical', {garbage}, now())"
    )))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(!created);
    // My proof, carried to the victim's app.user_id: refused.
    conn.execute(sqlx::AssertSqlSafe(format!(
        "SELECT set_config('app.user_id', '{victim}', true)"
    )))
    .await
    .unwrap();
    for sql in reads(victim).iter().chain(&tenant_doors) {
        assert_refused(
            try_exec(&mut conn, sql).await,
            &format!("proof moved to another person: {sql}"),
        );
    }
    // An empty tenant, and a foreign tenant, with my person and my proof: refused.
    for tenant in [String::new(), b.to_string()] {
        conn.execute(sqlx::AssertSqlSafe(format!(
            "SELECT set_config('app.user_id', '{me}', true), set_config('app.tenant_id', '{tenant}', true)"
        )))
        .await
        .unwrap();
        for sql in reads(me).iter().chain(&tenant_doors) {
            assert_refused(
                try_exec(&mut conn, sql).await,
                &format!("tenant {tenant:?}: {sql}"),
            );
        }
    }
    // The proof does not outlive its transaction: replayed in the next one, refused.
    let proof: String = sqlx::query_scalar("SELECT current_setting('app.session_proof')")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.execute("COMMIT").await.unwrap();
    as_app_with_roles(&mut conn, Some(a), Some(me), "employee").await;
    sqlx::query("SELECT set_config('app.session_proof', $1, true)")
        .bind(&proof)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_refused(
        try_exec(&mut conn, &reads(me)[0]).await,
        "proof replayed in another transaction",
    );
    conn.execute("ROLLBACK").await.unwrap();

    assert_eq!(key_rows(&mut owner, a).await, before_a);
    assert_eq!(key_rows(&mut owner, b).await, before_b);
}

#[tokio::test]
async fn rotation_and_destruction_refuse_the_request_role_and_work_as_the_owner() {
    let app = TestApp::spawn().await;
    let a = app.tenant_a;
    let mut owner = app.owner().await;
    let person = seed_world(&mut owner, a, "a").await;
    let before = key_rows(&mut owner, a).await;
    let k = Keyring::for_tests(TEST_MASTER_KEY);

    // As an anonymous TenantTx (what `serein keys rotate` used): refused, nothing changes.
    let mut tx = TenantTx::begin(&app.db, a, None).await.unwrap();
    assert!(k.rotate_tenant(&mut tx, a).await.is_err());
    drop(tx);
    let mut tx = TenantTx::begin(&app.db, a, None).await.unwrap();
    assert!(
        k.destroy_tenant(&mut tx, a).await.is_err(),
        "a request transaction destroyed the tenant's keys"
    );
    drop(tx);
    let mut tx = TenantTx::begin(&app.db, a, None).await.unwrap();
    assert!(k.destroy_subject(&mut tx, a, person).await.is_err());
    drop(tx);
    assert_eq!(key_rows(&mut owner, a).await, before);

    // As the owner: rotation works, and the person still seals under the new version.
    let mut tx = owner.begin().await.unwrap();
    let report = k.rotate_tenant(&mut tx, a).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(report.new_versions, vec![("data", 2), ("clinical", 2)]);
    let aad = Aad {
        tenant: a,
        table: "journal_entries",
        column: "body",
        row_id: Uuid::now_v7(),
    };
    let mut conn = app.owner().await;
    assert!(as_member_with_session(&mut conn, a, person).await);
    let blob = k
        .seal(
            &mut conn,
            a,
            KeyScope::Subject(person),
            &aad,
            b"after rotation",
        )
        .await
        .unwrap();
    assert_eq!(Keyring::blob_key_version(&blob), Some(2));
    conn.execute("COMMIT").await.unwrap();

    // As the owner: destroying the subject works.
    let mut tx = owner.begin().await.unwrap();
    k.destroy_subject(&mut tx, a, person).await.unwrap();
    tx.commit().await.unwrap();
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM subject_keys WHERE tenant_id = $1 AND subject_id = $2 AND wrapped_key IS NOT NULL",
    )
    .bind(a.as_uuid())
    .bind(person.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(live, 0);
}
