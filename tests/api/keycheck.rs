//! Issue 12, item 6: a wrong master key never serves (`crypto::keycheck`, migration
//! 20261208000020). A second server on the same database with another `SEREIN_MASTER_KEY`
//! refuses to start, naming the variable and the key ids; the same key starts; a fresh database
//! records the first check (the development key included, and only one of two racing first
//! starters); an existing deployment without a check accepts its key (proven by unwrapping a
//! tenant key) and refuses a wrong one without recording anything; `serein keys rotate` keeps
//! the check current, after which the old key refuses; the real binary exits non-zero with the
//! message; and the request role can neither read nor write the check table, while its two
//! start-up doors never serve a key once a check exists nor record a second check.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

use serein::app::{App, AppConfig};
use serein::clock::Clock;
use serein::crypto::keyring::Keyring;
use sqlx::{Connection, Executor, PgConnection};

use crate::hardening_keys::{assert_permission_denied, try_exec};
use crate::helpers::{
    TEST_MASTER_KEY, TEST_MASTER_KEY_HEX, TestApp, as_app_with_roles, db_url, fresh_database,
    seed_world, test_env,
};

const OTHER_KEY: [u8; 32] = [0xab; 32];
const OTHER_KEY_HEX: &str = "abababababababababababababababababababababababababababababababab";
const NEW_KEY: [u8; 32] = [0xc3; 32];
const NEW_KEY_HEX: &str = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3";

fn id(key: [u8; 32]) -> u32 {
    Keyring::for_tests(key).master_key_id()
}

fn hex_id(key: [u8; 32]) -> String {
    format!("{:08x}", id(key))
}

/// A server's configuration on database `db`: `master` (`None`: the development key of
/// `data`) and `previous`.
fn env(
    db: &str,
    data: &Path,
    master: Option<&str>,
    previous: Option<&str>,
) -> HashMap<String, String> {
    let mut env = test_env(db);
    env.insert(
        "SEREIN_DATA_DIR".into(),
        data.to_string_lossy().into_owned(),
    );
    env.remove("SEREIN_MASTER_KEY");
    if let Some(m) = master {
        env.insert("SEREIN_MASTER_KEY".into(), m.into());
    }
    if let Some(p) = previous {
        env.insert("SEREIN_PREVIOUS_MASTER_KEY".into(), p.into());
    }
    env
}

/// Build a server with [`env`] (and drop it): `Err` is the start-up refusal as `main` prints it.
async fn start_with(
    db: &str,
    data: &Path,
    master: Option<&str>,
    previous: Option<&str>,
) -> Result<(), String> {
    let env = env(db, data, master, previous);
    match App::build(AppConfig::load(&env).unwrap(), Clock::system()).await {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{e:#}")),
    }
}

/// The master ids the database holds a check for.
async fn checks(owner: &mut PgConnection) -> Vec<i64> {
    sqlx::query_scalar("SELECT master_id FROM app_private.master_key_checks ORDER BY 1")
        .fetch_all(owner)
        .await
        .unwrap()
}

fn ids(keys: &[[u8; 32]]) -> Vec<i64> {
    let mut v: Vec<i64> = keys.iter().map(|k| i64::from(id(*k))).collect();
    v.sort_unstable();
    v
}

/// One line, naming the variable, never the key.
fn assert_refusal(err: &str, wants: &[&str]) {
    for w in wants {
        assert!(err.contains(w), "{w:?} not in: {err}");
    }
    assert!(!err.contains('\n'), "{err}");
    for key in [OTHER_KEY_HEX, NEW_KEY_HEX, TEST_MASTER_KEY_HEX] {
        assert!(!err.contains(&key[..16]), "key material in: {err}");
    }
}

#[tokio::test]
async fn a_second_server_with_another_master_key_refuses_to_start_and_the_same_key_starts() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    // The first server recorded the check of its key on the fresh database.
    assert_eq!(checks(&mut owner).await, ids(&[TEST_MASTER_KEY]));
    seed_world(&mut owner, app.tenant_a, "a").await;
    let data = tempfile::tempdir().unwrap();

    let err = start_with(&app.db_name, data.path(), Some(OTHER_KEY_HEX), None)
        .await
        .unwrap_err();
    assert_refusal(
        &err,
        &[
            &format!(
                "SEREIN_MASTER_KEY (master key id {}) is not this database's master key",
                hex_id(OTHER_KEY)
            ),
            &hex_id(TEST_MASTER_KEY),
            "refusing to start",
        ],
    );
    // A wrong previous key does not help.
    let err = start_with(
        &app.db_name,
        data.path(),
        Some(OTHER_KEY_HEX),
        Some(NEW_KEY_HEX),
    )
    .await
    .unwrap_err();
    assert_refusal(
        &err,
        &[
            "neither SEREIN_MASTER_KEY",
            &format!(
                "SEREIN_PREVIOUS_MASTER_KEY (master key id {})",
                hex_id(NEW_KEY)
            ),
        ],
    );

    start_with(&app.db_name, data.path(), Some(TEST_MASTER_KEY_HEX), None)
        .await
        .unwrap();
    assert_eq!(checks(&mut owner).await, ids(&[TEST_MASTER_KEY]));
}

#[tokio::test]
async fn a_fresh_database_records_one_check_and_the_development_key_keeps_working() {
    // `serein serve` on a fresh database without SEREIN_MASTER_KEY (the README's first run).
    let db = fresh_database().await;
    let mut owner = PgConnection::connect(&db_url(&db)).await.unwrap();
    let dev = tempfile::tempdir().unwrap();
    start_with(&db, dev.path(), None, None).await.unwrap();
    let dev_key = serein::crypto::master::read_key_file(&dev.path().join("master.key")).unwrap();
    assert_eq!(checks(&mut owner).await, ids(&[*dev_key]));
    start_with(&db, dev.path(), None, None).await.unwrap();
    // Another checkout's development key is not this database's.
    let elsewhere = tempfile::tempdir().unwrap();
    let err = start_with(&db, elsewhere.path(), None, None)
        .await
        .unwrap_err();
    assert_refusal(
        &err,
        &[
            "SEREIN_MASTER_KEY (unset: the development key",
            "is not this database's master key",
        ],
    );

    // Two first starters with different keys race on a fresh database: one check, one winner.
    let db = fresh_database().await;
    let mut owner = PgConnection::connect(&db_url(&db)).await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let (a, b) = tokio::join!(
        start_with(&db, data.path(), Some(OTHER_KEY_HEX), None),
        start_with(&db, data.path(), Some(NEW_KEY_HEX), None),
    );
    assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
    let winner = if a.is_ok() { OTHER_KEY } else { NEW_KEY };
    assert_eq!(checks(&mut owner).await, ids(&[winner]));
}

#[tokio::test]
async fn an_existing_deployment_without_a_check_accepts_its_key_and_refuses_a_wrong_one() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    seed_world(&mut owner, app.tenant_a, "a").await;
    seed_world(&mut owner, app.tenant_b, "b").await;
    // As on a deployment that ran before the check existed: tenant keys, no check.
    owner
        .execute("DELETE FROM app_private.master_key_checks")
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();

    let err = start_with(&app.db_name, data.path(), Some(OTHER_KEY_HEX), None)
        .await
        .unwrap_err();
    assert_refusal(
        &err,
        &[&format!(
            "SEREIN_MASTER_KEY (master key id {}) is not this database's master key (its tenant \
             keys are wrapped under master key id {})",
            hex_id(OTHER_KEY),
            hex_id(TEST_MASTER_KEY)
        )],
    );
    assert!(
        checks(&mut owner).await.is_empty(),
        "a wrong key recorded a check"
    );

    // A key that carries the right id but does not unwrap (stands for a collision): refused,
    // nothing recorded.
    let flip = "UPDATE tenant_keys SET wrapped_key = set_byte(wrapped_key, 30, get_byte(wrapped_key, 30) # 1)
                WHERE wrapped_key IS NOT NULL";
    owner.execute(flip).await.unwrap();
    let err = start_with(&app.db_name, data.path(), Some(TEST_MASTER_KEY_HEX), None)
        .await
        .unwrap_err();
    assert_refusal(
        &err,
        &[&format!(
            "SEREIN_MASTER_KEY (master key id {}) does not unwrap the tenant keys",
            hex_id(TEST_MASTER_KEY)
        )],
    );
    assert!(checks(&mut owner).await.is_empty());
    owner.execute(flip).await.unwrap();

    start_with(&app.db_name, data.path(), Some(TEST_MASTER_KEY_HEX), None)
        .await
        .unwrap();
    assert_eq!(checks(&mut owner).await, ids(&[TEST_MASTER_KEY]));
    let err = start_with(&app.db_name, data.path(), Some(OTHER_KEY_HEX), None)
        .await
        .unwrap_err();
    assert_refusal(
        &err,
        &["is not this database's master key (its key check names"],
    );
}

/// Run the real binary with these master keys; exit code and everything it printed.
fn serein(db: &str, args: &[&str], keys: &[(&str, &str)]) -> (Option<i32>, String) {
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_serein"));
    cmd.args(args)
        .env("DATABASE_URL", db_url(db))
        .env("SEREIN_CREATE_DATABASE", "false")
        .env("SEREIN_DATA_DIR", data.path())
        .env("SEREIN_TENANTS_DIR", "")
        .env("BIND", "127.0.0.1:0")
        .env("METRICS_BIND", "off")
        .env("MAIL_WORKER", "false")
        .env("JOBS_WORKER", "false")
        .env("PURGE_WORKER", "false")
        .env("RUST_LOG", "warn")
        .env_remove("SEREIN_MASTER_KEY")
        .env_remove("SEREIN_PREVIOUS_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in keys {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // A `serve` that wrongly passed the check would serve forever.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("`serein {}` did not exit", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn keys_rotate_keeps_the_check_current_and_the_old_key_then_refuses() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    seed_world(&mut owner, app.tenant_a, "a").await;
    seed_world(&mut owner, app.tenant_b, "b").await;
    let data = tempfile::tempdir().unwrap();
    let both = [
        ("SEREIN_MASTER_KEY", NEW_KEY_HEX),
        ("SEREIN_PREVIOUS_MASTER_KEY", TEST_MASTER_KEY_HEX),
    ];

    // Before the rotation the new key alone refuses; with the current key as the previous one
    // it starts (a rotation in progress) and records nothing.
    assert!(
        start_with(&app.db_name, data.path(), Some(NEW_KEY_HEX), None)
            .await
            .is_err()
    );
    start_with(
        &app.db_name,
        data.path(),
        Some(NEW_KEY_HEX),
        Some(TEST_MASTER_KEY_HEX),
    )
    .await
    .unwrap();
    assert_eq!(checks(&mut owner).await, ids(&[TEST_MASTER_KEY]));

    // One tenant re-wrapped: the new key's check commits with it, but bravo's keys are still
    // under the old key, so the new key alone still refuses (and says why).
    let (code, out) = serein(
        &app.db_name,
        &["keys", "rotate", "--tenant", "alpha"],
        &both,
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(checks(&mut owner).await, ids(&[TEST_MASTER_KEY, NEW_KEY]));
    let err = start_with(&app.db_name, data.path(), Some(NEW_KEY_HEX), None)
        .await
        .unwrap_err();
    assert_refusal(
        &err,
        &[
            &format!(
                "tenant keys are still wrapped under master key id {}",
                hex_id(TEST_MASTER_KEY)
            ),
            "SEREIN_PREVIOUS_MASTER_KEY",
        ],
    );

    // Everything re-wrapped: the old key's check is removed; the new key alone starts.
    let (code, out) = serein(&app.db_name, &["keys", "rotate"], &both);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "master key check current for id {}; removed the check of id {}",
            hex_id(NEW_KEY),
            hex_id(TEST_MASTER_KEY)
        )),
        "{out}"
    );
    assert_eq!(checks(&mut owner).await, ids(&[NEW_KEY]));
    start_with(&app.db_name, data.path(), Some(NEW_KEY_HEX), None)
        .await
        .unwrap();

    // The old key's server now refuses; so does the CLI, before touching anything.
    let err = start_with(&app.db_name, data.path(), Some(TEST_MASTER_KEY_HEX), None)
        .await
        .unwrap_err();
    assert_refusal(
        &err,
        &[&format!(
            "SEREIN_MASTER_KEY (master key id {}) is not this database's master key (its key \
             check names master key id {})",
            hex_id(TEST_MASTER_KEY),
            hex_id(NEW_KEY)
        )],
    );
    let keys_before: Vec<String> =
        sqlx::query_scalar("SELECT k::text FROM tenant_keys k ORDER BY 1")
            .fetch_all(&mut owner)
            .await
            .unwrap();
    let (code, out) = serein(
        &app.db_name,
        &["keys", "rotate"],
        &[("SEREIN_MASTER_KEY", TEST_MASTER_KEY_HEX)],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("is not this database's master key"), "{out}");
    let keys_after: Vec<String> =
        sqlx::query_scalar("SELECT k::text FROM tenant_keys k ORDER BY 1")
            .fetch_all(&mut owner)
            .await
            .unwrap();
    assert_eq!(keys_before, keys_after);
}

#[tokio::test]
async fn serve_with_a_wrong_key_exits_non_zero_before_listening_naming_the_variable() {
    let app = TestApp::spawn().await;
    let (code, out) = serein(
        &app.db_name,
        &["serve"],
        &[("SEREIN_MASTER_KEY", OTHER_KEY_HEX)],
    );
    assert_eq!(code, Some(1), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("serein: "))
        .unwrap_or_else(|| panic!("no refusal line in: {out}"));
    assert_refusal(
        line,
        &[
            &format!("SEREIN_MASTER_KEY (master key id {})", hex_id(OTHER_KEY)),
            &hex_id(TEST_MASTER_KEY),
        ],
    );
    // Without any key: the development key generated into an empty data dir is refused too.
    let (code, out) = serein(&app.db_name, &["serve"], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("SEREIN_MASTER_KEY (unset: the development key"),
        "{out}"
    );
}

#[tokio::test]
async fn the_request_role_can_neither_read_nor_write_the_check_and_its_doors_stay_narrow() {
    let app = TestApp::spawn().await;
    let a = app.tenant_a;
    let mut owner = app.owner().await;
    let user = seed_world(&mut owner, a, "a").await;
    let rows = "SELECT coalesce(string_agg(c::text, ';' ORDER BY master_id), '') FROM app_private.master_key_checks c";
    let before: String = sqlx::query_scalar(rows)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    let (test, other) = (i64::from(id(TEST_MASTER_KEY)), i64::from(id(OTHER_KEY)));
    // A well-formed check blob naming `id` (garbage inside).
    let blob = |id: i64| {
        format!(
            "'\\x01'::bytea || decode(lpad(to_hex({id}::bigint), 8, '0'), 'hex') || decode(repeat('00', 54), 'hex')"
        )
    };

    let mut conn = app.owner().await;
    as_app_with_roles(
        &mut conn,
        Some(a),
        Some(user),
        "tenant_admin,hr,practitioner,employee",
    )
    .await;
    for sql in [
        "SELECT * FROM app_private.master_key_checks".to_owned(),
        format!(
            "INSERT INTO app_private.master_key_checks VALUES ({other}, {}, now())",
            blob(other)
        ),
        "UPDATE app_private.master_key_checks SET created_at = now()".to_owned(),
        "DELETE FROM app_private.master_key_checks".to_owned(),
        "TRUNCATE app_private.master_key_checks".to_owned(),
        "SELECT app_private.sealed_key_version('\\x01'::bytea)".to_owned(),
    ] {
        assert_permission_denied(try_exec(&mut conn, &sql).await, &sql);
    }
    // Once a check exists, the state door serves no tenant key, whichever ids it is asked
    // about, and the record door records nothing.
    for (m, p) in [
        (test, "NULL".to_owned()),
        (other, test.to_string()),
        (other, "NULL".to_owned()),
    ] {
        let sample: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT sample_wrapped IS NOT NULL FROM app_private.master_key_check_state({m}, {p})"
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(!sample, "a tenant key was served for ({m}, {p})");
    }
    for m in [test, other] {
        let recorded: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT app_private.master_key_check_record({m}, {}, now())",
            blob(m)
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(!recorded, "recorded a check for {m}");
    }
    conn.execute("COMMIT").await.unwrap();
    let after: String = sqlx::query_scalar(rows)
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(before, after);

    // Before the first check (a deployment just migrated): the record door refuses an id no
    // live tenant key names, and a blob whose header names another id than its row.
    owner
        .execute("DELETE FROM app_private.master_key_checks")
        .await
        .unwrap();
    as_app_with_roles(&mut conn, Some(a), Some(user), "tenant_admin").await;
    for (row, header, code) in [(other, other, "42501"), (test, other, "23514")] {
        let sql = format!(
            "SELECT app_private.master_key_check_record({row}, {}, now())",
            blob(header)
        );
        let r = try_exec(&mut conn, &sql).await;
        assert!(matches!(&r, Err((c, _)) if c == code), "{sql}: {r:?}");
    }
    conn.execute("ROLLBACK").await.unwrap();
    assert!(checks(&mut owner).await.is_empty());
}
