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

/// Run the binary with a fixed master key and a private data directory (commands that need
/// the keyring).
fn serein_keyed(db: &str, data: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_serein"))
        .args(args)
        .env("DATABASE_URL", db_url(db))
        .env("SEREIN_CREATE_DATABASE", "false")
        .env("SEREIN_MASTER_KEY", crate::helpers::TEST_MASTER_KEY_HEX)
        .env("SEREIN_DATA_DIR", data)
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

#[tokio::test]
async fn export_round_trips_and_apply_needs_adopt_for_api_tenants() {
    let db = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "acme", ACME);
    write(dir.path(), "globex", GLOBEX);
    let (ok, out) = serein(&db, &["tenants", "apply", dir.path().to_str().unwrap()]);
    assert!(ok, "{out}");
    // An API-managed tenant with explicit seats and branding, and two the export leaves out.
    let mut c = PgConnection::connect(&db_url(&db)).await.unwrap();
    sqlx::query(
        "INSERT INTO tenants (id, slug, name, plan, seats, min_cohort, allowed_email_domains, web_origins, branding, managed_by)
         VALUES (gen_random_uuid(), 'initech', 'Initech', 'enterprise', 77, 9, '{initech.example}',
                 '{https://app.initech.example}', '{\"primary_color\": \"#abcdef\"}', 'api'),
                (gen_random_uuid(), 'gone', 'Gone', 'starter', 50, 5, '{}', '{}', '{}', 'api')",
    )
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE tenants SET status = 'offboarded', offboarded_at = now() WHERE slug = 'gone'",
    )
    .execute(&mut c)
    .await
    .unwrap();

    let out_dir = tempfile::tempdir().unwrap();
    let (ok, out) = serein(
        &db,
        &["tenants", "export", out_dir.path().to_str().unwrap()],
    );
    assert!(ok, "{out}");
    assert!(out.contains("3 tenant file(s) written"), "{out}");
    let mut names: Vec<String> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["acme.toml", "globex.toml", "initech.toml"]);

    // Each file parses (with the files' own validation) to exactly the database's state.
    let stored = serein::tenants::repo::export(&mut c).await.unwrap();
    assert_eq!(stored.len(), 3);
    for t in &stored {
        let path = out_dir.path().join(format!("{}.toml", t.spec.slug));
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = serein::tenants::file::parse_file(&path, &text).unwrap();
        assert_eq!(parsed, t.spec, "{text}");
    }
    // ...checked against the raw columns too (not only through the code that wrote them).
    let text = std::fs::read_to_string(out_dir.path().join("initech.toml")).unwrap();
    let spec = serein::tenants::file::parse_file(Path::new("initech.toml"), &text).unwrap();
    let (seats, cohort, plan, branding): (i32, i32, String, serde_json::Value) = sqlx::query_as(
        "SELECT seats, min_cohort, plan, branding FROM tenants WHERE slug = 'initech'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(
        (spec.seats, spec.min_cohort, spec.plan.as_str()),
        (seats, cohort, plan.as_str())
    );
    assert_eq!(serde_json::to_value(&spec.branding).unwrap(), branding);
    assert_eq!(spec.web_origins, ["https://app.initech.example"]);
    assert!(text.contains("--adopt"), "{text}");

    // The file-managed tenants' exported files apply as unchanged.
    let file_dir = tempfile::tempdir().unwrap();
    for slug in ["acme", "globex"] {
        std::fs::copy(
            out_dir.path().join(format!("{slug}.toml")),
            file_dir.path().join(format!("{slug}.toml")),
        )
        .unwrap();
    }
    let before = snapshot(&db).await;
    let (ok, out) = serein(
        &db,
        &["tenants", "apply", file_dir.path().to_str().unwrap()],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("0 created, 0 updated, 0 suspended, 2 unchanged"),
        "{out}"
    );
    assert_eq!(snapshot(&db).await, before);

    // The API-managed tenant's file is refused (nothing applied) unless adopted.
    let all = out_dir.path().to_str().unwrap();
    let (ok, out) = serein(&db, &["tenants", "apply", all]);
    assert!(!ok);
    assert!(
        out.contains("initech.toml") && out.contains("--adopt"),
        "{out}"
    );
    assert_eq!(snapshot(&db).await, before);
    let (ok, out) = serein(&db, &["tenants", "apply", "--adopt", all]);
    assert!(ok, "{out}");
    assert!(
        out.contains("0 created, 1 updated, 0 suspended, 2 unchanged"),
        "{out}"
    );
    let by: String = sqlx::query_scalar("SELECT managed_by FROM tenants WHERE slug = 'initech'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(by, "file");
    let (ok, out) = serein(&db, &["tenants", "apply", all]);
    assert!(ok, "{out}");
    assert!(out.contains("3 unchanged"), "{out}");
    // The offboarded tombstone was neither exported nor revived.
    let gone: String = sqlx::query_scalar("SELECT status FROM tenants WHERE slug = 'gone'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(gone, "offboarded");
}

#[tokio::test]
async fn purge_command_purges_due_tenants_only() {
    let db = fresh_database().await;
    let data = tempfile::tempdir().unwrap();
    let mut c = PgConnection::connect(&db_url(&db)).await.unwrap();
    let due = serein::db::TenantId::new();
    let later = serein::db::TenantId::new();
    for (id, slug, days) in [(due, "due", -1), (later, "later", 10)] {
        sqlx::query(
            "INSERT INTO tenants (id, slug, name, plan, status, offboard_requested_at, purge_after)
             VALUES ($1, $2, $2, 'starter', 'offboarding', now(), now() + make_interval(days => $3))",
        )
        .bind(id.as_uuid())
        .bind(slug)
        .bind(days)
        .execute(&mut c)
        .await
        .unwrap();
        crate::helpers::seed_world(&mut c, id, slug).await;
    }
    let (ok, out) = serein_keyed(&db, data.path(), &["tenants", "purge"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("purged    due") && out.contains("1 tenant(s) purged"),
        "{out}"
    );
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT t.slug, t.status, (SELECT count(*) FROM memberships m WHERE m.tenant_id = t.id)
         FROM tenants t WHERE t.slug IN ('due', 'later') ORDER BY t.slug",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            ("due".to_owned(), "offboarded".to_owned(), 0),
            // seed_world: a member and a practitioner.
            ("later".to_owned(), "offboarding".to_owned(), 2)
        ]
    );
    let (ok, out) = serein_keyed(&db, data.path(), &["tenants", "purge"]);
    assert!(ok && out.contains("0 tenant(s) purged"), "{out}");
}
