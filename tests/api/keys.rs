//! Envelope encryption against a real database (PROOF.md 15–17, DESIGN §3): sealing and
//! opening through `TenantTx` (as a member whose session the guard checked: the key definers
//! demand it, and serve a subject key to its subject only), ciphertext moved to another row or
//! tenant, concurrent first use, rotation (library and `serein keys rotate`, as the owner),
//! master rotation, crypto-shredding one subject or a whole tenant (as the owner). The attacks
//! on the key tables and definers as the request role are in `hardening_keys.rs`.

use std::process::Command;

use serein::crypto::keyring::{Aad, KeyScope, Keyring, SessionSecret};
use serein::crypto::sealed::CryptoError;
use serein::db::tenancy::{DbActor, SessionCheck};
use serein::db::{SessionId, TenantId, TenantTx, UserId};
use serein::rbac::Role;
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

use crate::helpers::{TEST_MASTER_KEY, TEST_MASTER_KEY_HEX, TEST_SESSION_SECRET, TestApp, db_url};

fn aad(tenant: TenantId, row: Uuid) -> Aad<'static> {
    Aad {
        tenant,
        table: "journal_entries",
        column: "body",
        row_id: row,
    }
}

/// A person (no membership, no keys yet).
async fn person(owner: &mut PgConnection) -> UserId {
    let user = UserId::new();
    sqlx::query("INSERT INTO users (id, email, display_name) VALUES ($1, $2, 'P')")
        .bind(user.as_uuid())
        .bind(format!("{}@example.test", user.as_uuid().simple()))
        .execute(owner)
        .await
        .unwrap();
    user
}

/// Make `user` an employee of `tenant` with a live session: the actor whose transactions the
/// key definers serve (the session guard runs in the context statement, as for a request).
async fn enrol(owner: &mut PgConnection, tenant: TenantId, user: UserId) -> DbActor {
    sqlx::query(
        "INSERT INTO memberships (id, tenant_id, user_id, roles, department) VALUES ($1, $2, $3, '{employee}', 'ops')",
    )
    .bind(Uuid::now_v7())
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .execute(&mut *owner)
    .await
    .unwrap();
    let session = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO sessions (id, tenant_id, user_id, created_at, idle_expires_at, absolute_expires_at,
                               secret_hash)
         VALUES ($1, $2, $3, now(), now() + interval '1 hour', now() + interval '1 day', sha256($4))",
    )
    .bind(session)
    .bind(tenant.as_uuid())
    .bind(user.as_uuid())
    .bind(TEST_SESSION_SECRET.as_slice())
    .execute(&mut *owner)
    .await
    .unwrap();
    DbActor {
        user,
        roles: vec![Role::Employee],
        session: Some(SessionCheck {
            id: SessionId(session),
            secret: SessionSecret::from_bytes(TEST_SESSION_SECRET),
            now: time::OffsetDateTime::now_utc(),
        }),
    }
}

/// An owner transaction (rotation and destruction are operator / job actions).
async fn as_owner(owner: &mut PgConnection) -> sqlx::Transaction<'_, sqlx::Postgres> {
    owner.begin().await.unwrap()
}

async fn seal(
    app: &TestApp,
    k: &Keyring,
    tenant: TenantId,
    actor: &DbActor,
    scope: KeyScope,
    row: Uuid,
    text: &[u8],
) -> Vec<u8> {
    let mut tx = TenantTx::begin(&app.db, tenant, Some(actor)).await.unwrap();
    let blob = k
        .seal(&mut tx, tenant, scope, &aad(tenant, row), text)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    blob
}

async fn open(
    app: &TestApp,
    k: &Keyring,
    tx_tenant: TenantId,
    actor: &DbActor,
    scope: KeyScope,
    aad: &Aad<'_>,
    blob: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut tx = TenantTx::begin(&app.db, tx_tenant, Some(actor))
        .await
        .unwrap();
    let r = k.open(&mut tx, tx_tenant, scope, aad, blob).await;
    tx.commit().await.unwrap();
    r.map(|z| z.to_vec())
}

async fn count(owner: &mut PgConnection, sql: &str, tenant: TenantId) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(tenant.as_uuid())
        .fetch_one(owner)
        .await
        .unwrap()
}

#[tokio::test]
async fn seal_and_open_through_tenant_tx_and_moved_ciphertext_fails() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    let mut owner = app.owner().await;
    let x = person(&mut owner).await;
    let (xa, xb) = (enrol(&mut owner, a, x).await, enrol(&mut owner, b, x).await);
    let k = Keyring::for_tests(TEST_MASTER_KEY);
    let (row, other_row) = (Uuid::now_v7(), Uuid::now_v7());

    for scope in [KeyScope::Clinical, KeyScope::Subject(x)] {
        let blob = seal(&app, &k, a, &xa, scope, row, b"I slept badly again").await;
        assert!(!blob.windows(6).any(|w| w == b"slept "), "plaintext stored");
        assert_eq!(
            open(&app, &k, a, &xa, scope, &aad(a, row), &blob)
                .await
                .unwrap(),
            b"I slept badly again"
        );
        // A fresh keyring (empty cache, another server) opens it from the stored keys.
        let cold = Keyring::for_tests(TEST_MASTER_KEY);
        assert!(
            open(&app, &cold, a, &xa, scope, &aad(a, row), &blob)
                .await
                .is_ok()
        );
        // Copied to another row of the same tenant: unreadable.
        assert!(matches!(
            open(&app, &k, a, &xa, scope, &aad(a, other_row), &blob).await,
            Err(CryptoError::Unreadable)
        ));
        // Copied into another tenant (its transaction, its AAD): unreadable.
        for keyring in [&k, &cold] {
            assert!(matches!(
                open(&app, keyring, b, &xb, scope, &aad(b, row), &blob).await,
                Err(CryptoError::Unreadable)
            ));
        }
        // An AAD naming another tenant than the transaction's is refused outright.
        assert!(matches!(
            open(&app, &k, b, &xb, scope, &aad(a, row), &blob).await,
            Err(CryptoError::InvalidAad(_))
        ));
        // Any flipped byte, through the keyring: unreadable, never a panic or a 500.
        for i in [0, 1, 4, 5, 16, 17, blob.len() - 1] {
            let mut t = blob.clone();
            t[i] ^= 0x01;
            assert!(
                matches!(
                    open(&app, &k, a, &xa, scope, &aad(a, row), &t).await,
                    Err(CryptoError::Unreadable)
                ),
                "byte {i}"
            );
        }
        // The wrong scope (another person's key, or clinical for subject data): unreadable.
        let y = person(&mut owner).await;
        let wrong = match scope {
            KeyScope::Clinical => KeyScope::Subject(y),
            KeyScope::Subject(_) => KeyScope::Clinical,
        };
        assert!(
            open(&app, &k, a, &xa, wrong, &aad(a, row), &blob)
                .await
                .is_err()
        );
    }
    // Another master key cannot unwrap the stored keys.
    let blob = seal(&app, &k, a, &xa, KeyScope::Clinical, row, b"note").await;
    let stranger = Keyring::for_tests([0x77; 32]);
    assert!(matches!(
        open(
            &app,
            &stranger,
            a,
            &xa,
            KeyScope::Clinical,
            &aad(a, row),
            &blob
        )
        .await,
        Err(CryptoError::Unreadable)
    ));
    // One key row per purpose in use, one subject key.
    assert_eq!(
        count(
            &mut owner,
            "SELECT count(*) FROM tenant_keys WHERE tenant_id = $1",
            a
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &mut owner,
            "SELECT count(*) FROM subject_keys WHERE tenant_id = $1",
            a
        )
        .await,
        1
    );
}

#[tokio::test]
async fn concurrent_first_use_creates_one_key() {
    let app = TestApp::spawn().await;
    let a = app.tenant_a;
    let mut owner = app.owner().await;
    let x = person(&mut owner).await;
    let xa = enrol(&mut owner, a, x).await;
    let k = Keyring::for_tests(TEST_MASTER_KEY);
    for scope in [KeyScope::Clinical, KeyScope::Subject(x)] {
        let mut tasks = Vec::new();
        for i in 0..4u8 {
            let (db, k, xa) = (app.db.clone(), k.clone(), xa.clone());
            tasks.push(tokio::spawn(async move {
                let row = Uuid::now_v7();
                let mut tx = TenantTx::begin(&db, a, Some(&xa)).await.unwrap();
                let blob = k.seal(&mut tx, a, scope, &aad(a, row), &[i]).await.unwrap();
                tx.commit().await.unwrap();
                (row, blob, i)
            }));
        }
        let mut sealed = Vec::new();
        for t in tasks {
            sealed.push(t.await.unwrap());
        }
        // Every writer's record opens with the one key that exists (cold keyring: from the DB).
        let cold = Keyring::for_tests(TEST_MASTER_KEY);
        for (row, blob, i) in sealed {
            assert_eq!(
                open(&app, &cold, a, &xa, scope, &aad(a, row), &blob)
                    .await
                    .unwrap(),
                vec![i]
            );
        }
    }
    assert_eq!(
        count(
            &mut owner,
            "SELECT count(*) FROM tenant_keys WHERE tenant_id = $1 AND purpose = 'clinical'",
            a
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &mut owner,
            "SELECT count(*) FROM subject_keys WHERE tenant_id = $1",
            a
        )
        .await,
        1
    );
}

#[tokio::test]
async fn rotation_keeps_v1_readable_and_new_writes_use_v2() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    let mut owner = app.owner().await;
    let x = person(&mut owner).await;
    let (xa, xb) = (enrol(&mut owner, a, x).await, enrol(&mut owner, b, x).await);
    let k = Keyring::for_tests(TEST_MASTER_KEY);
    let (r1, r2) = (Uuid::now_v7(), Uuid::now_v7());
    let clinical_v1 = seal(&app, &k, a, &xa, KeyScope::Clinical, r1, b"v1 note").await;
    let subject_v1 = seal(&app, &k, a, &xa, KeyScope::Subject(x), r2, b"v1 journal").await;
    let b_blob = seal(&app, &k, b, &xb, KeyScope::Clinical, r1, b"bravo").await;
    assert_eq!(Keyring::blob_key_version(&clinical_v1), Some(1));

    let mut tx = as_owner(&mut owner).await;
    let report = k.rotate_tenant(&mut tx, a).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(report.new_versions, vec![("data", 2), ("clinical", 2)]);
    assert_eq!(report.subject_keys_rewrapped, 1);
    assert_eq!(report.subject_keys_created, 1);

    // Old records still open (warm and cold keyrings); new writes name version 2.
    for keyring in [&k, &Keyring::for_tests(TEST_MASTER_KEY)] {
        assert_eq!(
            open(
                &app,
                keyring,
                a,
                &xa,
                KeyScope::Clinical,
                &aad(a, r1),
                &clinical_v1
            )
            .await
            .unwrap(),
            b"v1 note"
        );
        assert_eq!(
            open(
                &app,
                keyring,
                a,
                &xa,
                KeyScope::Subject(x),
                &aad(a, r2),
                &subject_v1
            )
            .await
            .unwrap(),
            b"v1 journal"
        );
    }
    let clinical_v2 = seal(&app, &k, a, &xa, KeyScope::Clinical, r1, b"v2 note").await;
    let subject_v2 = seal(&app, &k, a, &xa, KeyScope::Subject(x), r2, b"v2 journal").await;
    assert_eq!(Keyring::blob_key_version(&clinical_v2), Some(2));
    assert_eq!(Keyring::blob_key_version(&subject_v2), Some(2));
    let cold = Keyring::for_tests(TEST_MASTER_KEY);
    assert!(
        open(
            &app,
            &cold,
            a,
            &xa,
            KeyScope::Subject(x),
            &aad(a, r2),
            &subject_v2
        )
        .await
        .is_ok()
    );
    // The old versions are retired, the subject's v1 key is now wrapped by data key v2.
    assert_eq!(
        count(
            &mut owner,
            "SELECT count(*) FROM tenant_keys WHERE tenant_id = $1 AND version = 1 AND retired_at IS NOT NULL",
            a
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &mut owner,
            "SELECT count(*) FROM subject_keys WHERE tenant_id = $1 AND wrapping_version = 2",
            a
        )
        .await,
        2
    );
    // Tenant B was not touched.
    assert_eq!(
        count(
            &mut owner,
            "SELECT max(version)::int8 FROM tenant_keys WHERE tenant_id = $1",
            b
        )
        .await,
        1
    );
    assert!(
        open(
            &app,
            &cold,
            b,
            &xb,
            KeyScope::Clinical,
            &aad(b, r1),
            &b_blob
        )
        .await
        .is_ok()
    );

    // A tenant without keys is skipped, not given keys.
    let c = crate::helpers::create_tenant(&mut owner, "charlie").await;
    let mut tx = as_owner(&mut owner).await;
    assert_eq!(
        k.rotate_tenant(&mut tx, c).await.unwrap().skipped,
        Some("no keys yet")
    );
    drop(tx);
}

#[tokio::test]
async fn master_rotation_rewraps_tenant_keys() {
    let app = TestApp::spawn().await;
    let a = app.tenant_a;
    let mut owner = app.owner().await;
    let x = person(&mut owner).await;
    let xa = enrol(&mut owner, a, x).await;
    let old = Keyring::for_tests([0x01; 32]);
    let row = Uuid::now_v7();
    let note = seal(&app, &old, a, &xa, KeyScope::Clinical, row, b"note").await;
    let journal = seal(&app, &old, a, &xa, KeyScope::Subject(x), row, b"journal").await;

    let both = Keyring::with_keys(
        &[0x02; 32],
        Some(&[0x01; 32]),
        serein::clock::Clock::system(),
    );
    let mut tx = as_owner(&mut owner).await;
    let report = both.rotate_tenant(&mut tx, a).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(report.tenant_keys_rewrapped, 2, "{report:?}");

    // The previous master can now be dropped: everything opens under the new one alone.
    let new_only = Keyring::for_tests([0x02; 32]);
    assert_eq!(
        open(
            &app,
            &new_only,
            a,
            &xa,
            KeyScope::Clinical,
            &aad(a, row),
            &note
        )
        .await
        .unwrap(),
        b"note"
    );
    assert_eq!(
        open(
            &app,
            &new_only,
            a,
            &xa,
            KeyScope::Subject(x),
            &aad(a, row),
            &journal
        )
        .await
        .unwrap(),
        b"journal"
    );
    assert!(
        open(
            &app,
            &Keyring::for_tests([0x01; 32]),
            a,
            &xa,
            KeyScope::Clinical,
            &aad(a, row),
            &note
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn destroying_a_subject_key_shreds_only_that_subject() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    let mut owner = app.owner().await;
    let (x, y) = (person(&mut owner).await, person(&mut owner).await);
    let (xa, xb, ya) = (
        enrol(&mut owner, a, x).await,
        enrol(&mut owner, b, x).await,
        enrol(&mut owner, a, y).await,
    );
    let k = Keyring::for_tests(TEST_MASTER_KEY);
    let row = Uuid::now_v7();
    let x_a = seal(&app, &k, a, &xa, KeyScope::Subject(x), row, b"x in alpha").await;
    let y_a = seal(&app, &k, a, &ya, KeyScope::Subject(y), row, b"y in alpha").await;
    let x_b = seal(&app, &k, b, &xb, KeyScope::Subject(x), row, b"x in bravo").await;
    let note = seal(&app, &k, a, &xa, KeyScope::Clinical, row, b"clinical").await;
    // Warm the cache with X's key, then rotate so X has two versions.
    assert!(
        open(&app, &k, a, &xa, KeyScope::Subject(x), &aad(a, row), &x_a)
            .await
            .is_ok()
    );
    let mut tx = as_owner(&mut owner).await;
    k.rotate_tenant(&mut tx, a).await.unwrap();
    tx.commit().await.unwrap();
    let x_a2 = seal(&app, &k, a, &xa, KeyScope::Subject(x), row, b"x again").await;

    let mut tx = as_owner(&mut owner).await;
    k.destroy_subject(&mut tx, a, x).await.unwrap();
    tx.commit().await.unwrap();

    for keyring in [&k, &Keyring::for_tests(TEST_MASTER_KEY)] {
        for blob in [&x_a, &x_a2] {
            assert!(matches!(
                open(
                    &app,
                    keyring,
                    a,
                    &xa,
                    KeyScope::Subject(x),
                    &aad(a, row),
                    blob
                )
                .await,
                Err(CryptoError::Unreadable)
            ));
        }
        assert_eq!(
            open(
                &app,
                keyring,
                a,
                &ya,
                KeyScope::Subject(y),
                &aad(a, row),
                &y_a
            )
            .await
            .unwrap(),
            b"y in alpha"
        );
        // The same person in another tenant, and the tenant's clinical notes, are unaffected.
        assert_eq!(
            open(
                &app,
                keyring,
                b,
                &xb,
                KeyScope::Subject(x),
                &aad(b, row),
                &x_b
            )
            .await
            .unwrap(),
            b"x in bravo"
        );
        assert_eq!(
            open(
                &app,
                keyring,
                a,
                &xa,
                KeyScope::Clinical,
                &aad(a, row),
                &note
            )
            .await
            .unwrap(),
            b"clinical"
        );
    }
    // Nothing new can be sealed for the erased person; the key material is gone from the DB.
    let mut tx = TenantTx::begin(&app.db, a, Some(&xa)).await.unwrap();
    assert!(matches!(
        k.seal(&mut tx, a, KeyScope::Subject(x), &aad(a, row), b"more")
            .await,
        Err(CryptoError::Destroyed)
    ));
    drop(tx);
    assert_eq!(
        count(
            &mut owner,
            "SELECT count(*) FROM subject_keys WHERE tenant_id = $1 AND wrapped_key IS NOT NULL AND destroyed_at IS NOT NULL",
            a
        )
        .await,
        0
    );
    // A person erased before ever having a key gets a tombstone: no key is created later.
    let z = person(&mut owner).await;
    let za = enrol(&mut owner, a, z).await;
    let mut tx = as_owner(&mut owner).await;
    k.destroy_subject(&mut tx, a, z).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = TenantTx::begin(&app.db, a, Some(&za)).await.unwrap();
    assert!(matches!(
        k.seal(&mut tx, a, KeyScope::Subject(z), &aad(a, row), b"x")
            .await,
        Err(CryptoError::Destroyed)
    ));
    tx.commit().await.unwrap();
    // Destroyed stays destroyed, even for the owner.
    let revive = owner
        .execute(sqlx::AssertSqlSafe(format!(
            "UPDATE subject_keys SET destroyed_at = NULL, wrapped_key = decode(repeat('00', 65), 'hex') WHERE subject_id = '{x}'"
        )))
        .await;
    assert!(revive.is_err(), "a destroyed key was revived");
}

#[tokio::test]
async fn destroying_a_tenant_shreds_everything_of_that_tenant_only() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    let mut owner = app.owner().await;
    let x = person(&mut owner).await;
    let (xa, xb) = (enrol(&mut owner, a, x).await, enrol(&mut owner, b, x).await);
    let k = Keyring::for_tests(TEST_MASTER_KEY);
    let row = Uuid::now_v7();
    let note = seal(&app, &k, a, &xa, KeyScope::Clinical, row, b"a note").await;
    let journal = seal(&app, &k, a, &xa, KeyScope::Subject(x), row, b"a journal").await;
    let b_note = seal(&app, &k, b, &xb, KeyScope::Clinical, row, b"b note").await;

    let mut tx = as_owner(&mut owner).await;
    k.destroy_tenant(&mut tx, a).await.unwrap();
    tx.commit().await.unwrap();

    assert!(
        open(&app, &k, a, &xa, KeyScope::Clinical, &aad(a, row), &note)
            .await
            .is_err()
    );
    assert!(
        open(
            &app,
            &k,
            a,
            &xa,
            KeyScope::Subject(x),
            &aad(a, row),
            &journal
        )
        .await
        .is_err()
    );
    assert!(
        open(&app, &k, b, &xb, KeyScope::Clinical, &aad(b, row), &b_note)
            .await
            .is_ok()
    );
    let y = person(&mut owner).await;
    let ya = enrol(&mut owner, a, y).await;
    for (scope, actor) in [
        (KeyScope::Clinical, &xa),
        (KeyScope::Subject(x), &xa),
        (KeyScope::Subject(y), &ya),
    ] {
        let mut tx = TenantTx::begin(&app.db, a, Some(actor)).await.unwrap();
        assert!(
            matches!(
                k.seal(&mut tx, a, scope, &aad(a, row), b"x").await,
                Err(CryptoError::Destroyed)
            ),
            "{scope:?}"
        );
    }
    let mut tx = as_owner(&mut owner).await;
    assert_eq!(
        k.rotate_tenant(&mut tx, a).await.unwrap().skipped,
        Some("keys destroyed")
    );
}

fn serein(db: &str, args: &[&str], master_hex: &str) -> (bool, String) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_serein"));
    cmd.args(args)
        .env("DATABASE_URL", db_url(db))
        .env("SEREIN_CREATE_DATABASE", "false")
        .env("SEREIN_DATA_DIR", data_dir.path())
        .env("RUST_LOG", "warn")
        .env_remove("SEREIN_MASTER_KEY");
    if !master_hex.is_empty() {
        cmd.env("SEREIN_MASTER_KEY", master_hex);
    }
    let out = cmd.output().unwrap();
    assert!(
        !data_dir.path().join("master.key").exists(),
        "the CLI generated a development master key"
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn cli_keys_rotate_one_tenant_or_all() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.tenant_a, app.tenant_b);
    let mut owner = app.owner().await;
    let x = person(&mut owner).await;
    let (xa, xb) = (enrol(&mut owner, a, x).await, enrol(&mut owner, b, x).await);
    let k = Keyring::for_tests(TEST_MASTER_KEY);
    let row = Uuid::now_v7();
    let a_v1 = seal(&app, &k, a, &xa, KeyScope::Subject(x), row, b"alpha v1").await;
    let b_v1 = seal(&app, &k, b, &xb, KeyScope::Clinical, row, b"bravo v1").await;

    let (ok, out) = serein(
        &app.db_name,
        &["keys", "rotate", "--tenant", "alpha"],
        TEST_MASTER_KEY_HEX,
    );
    assert!(ok, "{out}");
    assert!(out.contains("1 tenant(s) rotated, 0 skipped"), "{out}");
    assert!(out.contains("alpha") && out.contains("data v2"), "{out}");
    assert!(!out.contains("bravo"), "{out}");

    let (ok, out) = serein(&app.db_name, &["keys", "rotate"], TEST_MASTER_KEY_HEX);
    assert!(ok, "{out}");
    // alpha and bravo rotated; the platform tenant has no keys.
    assert!(out.contains("2 tenant(s) rotated, 1 skipped"), "{out}");

    let cold = Keyring::for_tests(TEST_MASTER_KEY);
    assert_eq!(
        open(
            &app,
            &cold,
            a,
            &xa,
            KeyScope::Subject(x),
            &aad(a, row),
            &a_v1
        )
        .await
        .unwrap(),
        b"alpha v1"
    );
    assert_eq!(
        open(&app, &cold, b, &xb, KeyScope::Clinical, &aad(b, row), &b_v1)
            .await
            .unwrap(),
        b"bravo v1"
    );
    let a_new = seal(&app, &cold, a, &xa, KeyScope::Subject(x), row, b"alpha v3").await;
    assert_eq!(Keyring::blob_key_version(&a_new), Some(3));
    let b_new = seal(&app, &cold, b, &xb, KeyScope::Clinical, row, b"bravo v2").await;
    assert_eq!(Keyring::blob_key_version(&b_new), Some(2));

    let (ok, out) = serein(
        &app.db_name,
        &["keys", "rotate", "--tenant", "nope"],
        TEST_MASTER_KEY_HEX,
    );
    assert!(!ok && out.contains("no tenant with slug"), "{out}");
    // A wrong master key cannot rotate (it cannot unwrap the subject keys): nothing changes.
    let other = "ab".repeat(32);
    let (ok, out) = serein(
        &app.db_name,
        &["keys", "rotate", "--tenant", "alpha"],
        &other,
    );
    assert!(!ok, "{out}");
    // Without any master key the CLI refuses (and mints no development key).
    let (ok, out) = serein(&app.db_name, &["keys", "rotate"], "");
    assert!(!ok && out.contains("no master key"), "{out}");
    let sealed_again = seal(&app, &cold, a, &xa, KeyScope::Subject(x), row, b"still v3").await;
    assert_eq!(Keyring::blob_key_version(&sealed_again), Some(3));
}
