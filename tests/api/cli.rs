//! `serein tenants apply|list` and `serein migrate`, run as the real binary against a fresh
//! database: the files are the desired state, a second run changes nothing, an invalid file
//! applies nothing and names file and field.

use std::path::Path;
use std::process::Command;

use sqlx::{Connection, PgConnection};

use crate::helpers::{db_url, fresh_database};

fn serein(db: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_serein"))
        .args(args)
        .env("DATABASE_URL", db_url(db))
        .env("SEREIN_CREATE_DATABASE", "false")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn write(dir: &Path, slug: &str, body: &str) {
    std::fs::write(dir.join(format!("{slug}.toml")), body).unwrap();
}

const ACME: &str = "name = \"Acme\"\nplan = \"standard\"\ntime_zone = \"Europe/Paris\"\n[privacy]\nmin_cohort = 5\n";
const GLOBEX: &str = "name = \"Globex\"\nplan = \"starter\"\nlocale = \"fr\"\n";

async fn snapshot(db: &str) -> Vec<(String, String, String, String)> {
    let mut c = PgConnection::connect(&db_url(db)).await.unwrap();
    sqlx::query_as("SELECT slug, name, status, updated_at::text FROM tenants WHERE managed_by <> 'platform' ORDER BY slug")
        .fetch_all(&mut c)
        .await
        .unwrap()
}

#[tokio::test]
async fn apply_is_idempotent_updates_and_suspends() {
    let db = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "acme", ACME);
    write(dir.path(), "globex", GLOBEX);
    let d = dir.path().to_str().unwrap();

    let (ok, out) = serein(&db, &["tenants", "apply", d]);
    assert!(ok, "{out}");
    assert!(
        out.contains("2 created, 0 updated, 0 suspended, 0 unchanged"),
        "{out}"
    );
    let first = snapshot(&db).await;

    let (ok, out) = serein(&db, &["tenants", "apply", d]);
    assert!(ok, "{out}");
    assert!(
        out.contains("0 created, 0 updated, 0 suspended, 2 unchanged"),
        "{out}"
    );
    assert_eq!(snapshot(&db).await, first, "a second run changed rows");

    write(
        dir.path(),
        "acme",
        &ACME.replace("\"Acme\"", "\"Acme Corp\""),
    );
    std::fs::remove_file(dir.path().join("globex.toml")).unwrap();
    let (ok, out) = serein(&db, &["tenants", "apply", d]);
    assert!(ok, "{out}");
    assert!(
        out.contains("0 created, 1 updated, 1 suspended, 0 unchanged"),
        "{out}"
    );
    let rows = snapshot(&db).await;
    assert_eq!(rows[0].1, "Acme Corp");
    assert_eq!(
        (rows[1].0.as_str(), rows[1].2.as_str()),
        ("globex", "suspended")
    );

    let (ok, out) = serein(&db, &["tenants", "list"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("acme") && out.contains("Acme Corp") && out.contains("suspended"),
        "{out}"
    );
}

#[tokio::test]
async fn an_invalid_file_applies_nothing_and_names_file_and_field() {
    let db = fresh_database().await;
    let (ok, out) = serein(&db, &["migrate"]);
    assert!(ok, "{out}");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "acme", ACME);
    write(
        dir.path(),
        "broken",
        "name = \"Broken\"\nplan = \"standard\"\n[privacy]\nmin_cohort = 2\n",
    );
    let d = dir.path().to_str().unwrap();
    let (ok, out) = serein(&db, &["tenants", "apply", d]);
    assert!(!ok);
    assert!(
        out.contains("broken.toml") && out.contains("privacy.min_cohort"),
        "{out}"
    );
    assert!(snapshot(&db).await.is_empty(), "something was applied");

    // Valid syntax, but a time zone PostgreSQL does not know: refused inside the transaction.
    std::fs::remove_file(dir.path().join("broken.toml")).unwrap();
    write(
        dir.path(),
        "zoned",
        "name = \"Zoned\"\nplan = \"standard\"\ntime_zone = \"Mars/Olympus\"\n",
    );
    let (ok, out) = serein(&db, &["tenants", "apply", d]);
    assert!(!ok);
    assert!(
        out.contains("zoned.toml") && out.contains("time_zone"),
        "{out}"
    );
    assert!(snapshot(&db).await.is_empty(), "something was applied");

    // Unknown keys are refused too (typos must not be silently ignored).
    std::fs::remove_file(dir.path().join("zoned.toml")).unwrap();
    write(
        dir.path(),
        "typo",
        "name = \"Typo\"\nplan = \"standard\"\n[privacy]\nmin_cohrt = 5\n",
    );
    let (ok, out) = serein(&db, &["tenants", "apply", d]);
    assert!(!ok);
    assert!(
        out.contains("typo.toml") && out.contains("min_cohrt"),
        "{out}"
    );
    assert!(snapshot(&db).await.is_empty());
}

#[tokio::test]
async fn shipped_tenant_files_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tenants");
    let specs = serein::tenants::file::load_dir(&dir).unwrap();
    let slugs: Vec<_> = specs.iter().map(|s| s.slug.as_str()).collect();
    assert!(slugs.contains(&"demo"), "{slugs:?}");
    assert!(slugs.len() >= 2);
}

/// Run the binary against a test app's database, feeding `stdin`.
fn serein_stdin(db: &str, args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_serein"))
        .args(args)
        .env("DATABASE_URL", db_url(db))
        .env("SEREIN_CREATE_DATABASE", "false")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn users_add_with_a_password_or_a_set_password_link() {
    use crate::people::{PASSWORD, host, login, post};
    let app = crate::helpers::TestApp::spawn().await;
    let h = host("alpha");
    // Password on stdin: the person can log in at once (the operator vouches for the address).
    let (ok, out) = serein_stdin(
        &app.db_name,
        &[
            "users",
            "add",
            "--tenant",
            "alpha",
            "--email",
            "Ana@Alpha.test",
            "--role",
            "employee",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("created ana@alpha.test on alpha.localhost"),
        "{out}"
    );
    login(&app, &h, "ana@alpha.test").await;
    // Again with another role: idempotent, roles merged, password unchanged.
    let (ok, out) = serein_stdin(
        &app.db_name,
        &[
            "users",
            "add",
            "--tenant",
            "alpha",
            "--email",
            "ana@alpha.test",
            "--role",
            "hr",
        ],
        "",
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("updated") && !out.contains("reset-password"),
        "{out}"
    );
    let t = login(&app, &h, "ana@alpha.test").await;
    let me: serde_json::Value = crate::people::call(
        &app,
        reqwest::Method::GET,
        &h,
        "/api/v1/auth/me",
        t["access_token"].as_str().unwrap(),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(me["roles"], serde_json::json!(["employee", "hr"]));

    // No password: a single-use link to set one.
    let (ok, out) = serein_stdin(
        &app.db_name,
        &[
            "users",
            "add",
            "--tenant",
            "alpha",
            "--email",
            "bob@alpha.test",
            "--role",
            "practitioner",
        ],
        "",
    );
    assert!(ok, "{out}");
    let link = out
        .lines()
        .find(|l| l.contains("/reset-password?token="))
        .unwrap();
    assert!(
        link.starts_with("http://alpha.localhost:8080/reset-password?token="),
        "{link}"
    );
    let token = link.split("token=").nth(1).unwrap().trim();
    let res = post(
        &app,
        &h,
        "/api/v1/auth/password/reset",
        serde_json::json!({"token": token, "password": "another long passphrase"}),
    )
    .await;
    assert_eq!(res.status(), 204);
    let res = post(
        &app,
        &h,
        "/api/v1/auth/password/reset",
        serde_json::json!({"token": token, "password": "yet another passphrase"}),
    )
    .await;
    assert_eq!(res.status(), 410, "a reset token works once");
    let res = post(
        &app,
        &h,
        "/api/v1/auth/login",
        serde_json::json!({"email": "bob@alpha.test", "password": "another long passphrase"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    // The link of alpha means nothing on bravo.
    let (_, out) = serein_stdin(
        &app.db_name,
        &[
            "users",
            "add",
            "--tenant",
            "alpha",
            "--email",
            "cy@alpha.test",
            "--role",
            "employee",
        ],
        "",
    );
    let token = out
        .lines()
        .find(|l| l.contains("token="))
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    let res = post(
        &app,
        &host("bravo"),
        "/api/v1/auth/password/reset",
        serde_json::json!({"token": token, "password": "another long passphrase"}),
    )
    .await;
    assert_eq!(res.status(), 410);

    // Platform admin; bad input is refused with a clear message and changes nothing.
    let (ok, out) = serein_stdin(
        &app.db_name,
        &[
            "users",
            "add",
            "--platform-admin",
            "--email",
            "root@serein.test",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(ok, "{out}");
    assert!(out.contains("on localhost"), "{out}");
    for (args, stdin, needle) in [
        (
            vec![
                "users",
                "add",
                "--tenant",
                "alpha",
                "--email",
                "x@alpha.test",
                "--role",
                "platform_admin",
            ],
            "",
            "--role",
        ),
        (
            vec![
                "users",
                "add",
                "--tenant",
                "nope",
                "--email",
                "x@alpha.test",
                "--role",
                "employee",
            ],
            "",
            "no such tenant",
        ),
        (
            vec![
                "users",
                "add",
                "--tenant",
                "alpha",
                "--email",
                "not-an-email",
                "--role",
                "employee",
            ],
            "",
            "--email",
        ),
        (
            vec![
                "users",
                "add",
                "--tenant",
                "alpha",
                "--email",
                "x@alpha.test",
                "--role",
                "employee",
                "--password-stdin",
            ],
            "password\n",
            "password refused",
        ),
    ] {
        let (ok, out) = serein_stdin(&app.db_name, &args, stdin);
        assert!(!ok, "{args:?}: {out}");
        assert!(out.contains(needle), "{args:?}: {out}");
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = 'x@alpha.test'")
        .fetch_one(&mut app.owner().await)
        .await
        .unwrap();
    assert_eq!(n, 0);
}
