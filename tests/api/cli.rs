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

/// `serein demo` against database `db`, from the repository's root (so `tenants/` is the
/// shipped directory), with extra variables and `stdin`.
fn serein_demo(db: &str, env: &[(&str, &str)], args: &[&str], stdin: &str) -> (bool, String) {
    use std::io::Write;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_serein"));
    cmd.arg("demo")
        .args(args)
        .current_dir(root)
        .env("DATABASE_URL", db_url(db))
        .env("SEREIN_CREATE_DATABASE", "false")
        .env("SEREIN_TENANTS_DIR", root.join("tenants"))
        .env("SEREIN_DATA_DIR", data.path())
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
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

/// Everything `serein demo` writes, as (table, row) text: a second run must leave it identical.
async fn demo_rows(c: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT 'u ' || u.email || ' ' || u.updated_at || ' ' || coalesce(u.password_hash, '-')
         FROM users u WHERE u.email LIKE '%@demo.serein.test'
         UNION ALL
         SELECT 'm ' || u.email || ' ' || m.roles::text || ' ' || m.status || ' ' || m.updated_at
         FROM memberships m JOIN users u ON u.id = m.user_id JOIN tenants t ON t.id = m.tenant_id
         WHERE t.slug = 'demo'
         UNION ALL
         SELECT 'p ' || p.user_id || ' ' || p.updated_at FROM practitioner_profiles p
         UNION ALL
         SELECT 's ' || s.user_id || ' ' || s.time_zone || ' ' || s.auto_confirm || ' ' || s.updated_at
         FROM practitioner_schedules s
         UNION ALL
         SELECT 'r ' || r.practitioner_id || ' ' || r.weekday || ' ' || r.start_time || '-' || r.end_time
                || ' ' || r.updated_at
         FROM availability_rules r
         UNION ALL
         SELECT 'd ' || d.display_name || ' ' || d.specialties::text FROM practitioner_directory_entries d
         JOIN tenants t ON t.id = d.tenant_id WHERE t.slug = 'demo'
         ORDER BY 1",
    )
    .fetch_all(c)
    .await
    .unwrap()
}

/// Issue 11 item 11: after `serein demo` (twice: the second run changes nothing), the README's
/// walk-through works — the employee logs in with the demo password on `demo.localhost`, finds
/// both practitioners, their slots, books one of each (auto-confirmed, then confirmed by hand),
/// both participants get their call tokens in the window, and the `.ics` feed lists both.
#[tokio::test]
async fn demo_gives_a_company_a_newcomer_can_book_in() {
    use crate::members::send;
    use crate::people::post;
    use reqwest::Method;
    use serde_json::{Value, json};
    use time::format_description::well_known::Rfc3339;

    let app = crate::helpers::TestApp::spawn_with(|s| {
        s.env
            .insert("JITSI_DOMAIN".into(), "meet.example.test".into());
        s.env.insert("JITSI_APP_ID".into(), "serein".into());
        s.env.insert(
            "JITSI_APP_SECRET".into(),
            "a-jitsi-app-secret-of-at-least-32-bytes".into(),
        );
    })
    .await;
    let (ok, out) = serein_demo(&app.db_name, &[], &[], "");
    assert!(ok, "{out}");
    assert!(out.contains("applied") && out.contains("tenants"), "{out}");
    assert!(
        out.contains("demo company: http://demo.localhost:8080"),
        "{out}"
    );
    assert_eq!(out.matches("[created account").count(), 3, "{out}");
    assert!(out.contains("WARNING") && out.contains(serein::cli::demo::DEMO_PASSWORD));
    let mut c = app.owner().await;
    let first = demo_rows(&mut c).await;
    // 3 identities, 3 memberships, 2 profiles, 2 schedules, 2 × 10 weekly rules, 2 entries.
    let count = |p: &str| first.iter().filter(|r| r.starts_with(p)).count();
    assert_eq!(
        [
            count("u "),
            count("m "),
            count("p "),
            count("s "),
            count("r "),
            count("d ")
        ],
        [3, 3, 2, 2, 20, 2],
        "{first:#?}"
    );
    // The tenant files were applied as `serve` applies them: alpha and bravo (API-managed)
    // are untouched.
    let statuses: Vec<(String, String)> = sqlx::query_as(
        "SELECT slug, status FROM tenants WHERE slug IN ('alpha', 'bravo', 'demo') ORDER BY slug",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert!(statuses.iter().all(|(_, s)| s == "active"), "{statuses:?}");

    let (ok, out) = serein_demo(&app.db_name, &[], &[], "");
    assert!(ok, "{out}");
    assert_eq!(out.matches("[unchanged]").count(), 3, "{out}");
    assert!(
        !out.contains("created") && !out.contains("applied"),
        "{out}"
    );
    assert_eq!(
        demo_rows(&mut c).await,
        first,
        "a second run wrote something"
    );

    let d = "demo.localhost";
    let password = serein::cli::demo::DEMO_PASSWORD;
    let login = |email: &'static str| {
        let app = &app;
        async move {
            let res = post(
                app,
                d,
                "/api/v1/auth/login",
                json!({"email": email, "password": password}),
            )
            .await;
            assert_eq!(res.status(), 200, "login of {email}");
            res.json::<Value>().await.unwrap()["access_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let get = |path: String, token: String| {
        let app = &app;
        async move {
            let res = send(app, Method::GET, d, &path, &token, None).await;
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let e = login("ana@demo.serein.test").await;
    let (s, dir) = get("/api/v1/practitioners".into(), e.clone()).await;
    assert_eq!(s, 200, "{dir}");
    let names: Vec<&str> = dir["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["display_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Dr Alice Martin", "Dr Bruno Keller"]);
    let id_of = |i: usize| dir["items"][i]["user_id"].as_str().unwrap().to_owned();
    let (alice, bruno) = (id_of(0), id_of(1));
    assert!(
        out.contains(&format!("ALICE={alice}")) && out.contains(&format!("BRUNO={bruno}")),
        "{out}"
    );

    let now = app.clock.now();
    let q = format!(
        "from={}&to={}&tz=Europe/Paris",
        now.format(&Rfc3339).unwrap(),
        (now + time::Duration::days(14)).format(&Rfc3339).unwrap()
    )
    .replace('+', "%2B");
    let slots = |who: String| {
        let (get, e, q) = (&get, e.clone(), q.clone());
        async move {
            let (s, v) = get(format!("/api/v1/practitioners/{who}/slots?{q}"), e).await;
            assert_eq!(s, 200, "{v}");
            v["slots"].as_array().unwrap().clone()
        }
    };
    let a_slots = slots(alice.clone()).await;
    let b_slots = slots(bruno.clone()).await;
    // Ten working days of 3 + 4 sessions each (fewer on the first, partly past, day).
    assert!(a_slots.len() >= 60, "{}", a_slots.len());
    let first_slot = &a_slots[0];
    assert_eq!(first_slot["length_minutes"], 50);
    assert_eq!(first_slot["kinds"], json!(["video", "audio", "chat"]));
    let at = first_slot["starts_at"].as_str().unwrap().to_owned();
    assert!(
        at.ends_with(":00:00+01:00") || at.ends_with(":00:00+02:00"),
        "{at}"
    );

    let book = |who: String, at: String, key: &'static str| {
        let (app, e) = (&app, e.clone());
        async move {
            let res = app
                .req(Method::POST, d, "/api/v1/consultations")
                .bearer_auth(&e)
                .header("idempotency-key", key)
                .json(&json!({"practitioner_id": who, "starts_at": at, "length_minutes": 50, "kind": "video"}))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (s, with_alice) = book(alice.clone(), at.clone(), "demo-booking-1").await;
    assert_eq!(s, 201, "{with_alice}");
    assert_eq!(
        with_alice["status"], "confirmed",
        "Alice confirms automatically"
    );
    let (s, again) = book(alice.clone(), at.clone(), "demo-booking-1").await;
    assert_eq!((s, &again["id"]), (201, &with_alice["id"]), "{again}");
    let b_at = b_slots
        .iter()
        .map(|s| s["starts_at"].as_str().unwrap())
        .find(|s| *s != at)
        .unwrap()
        .to_owned();
    let (s, with_bruno) = book(bruno.clone(), b_at, "demo-booking-2").await;
    assert_eq!(s, 201, "{with_bruno}");
    assert_eq!(with_bruno["status"], "requested", "Bruno confirms by hand");

    // Each practitioner logs in and sees their consultation; Bruno confirms his.
    let p_alice = login("alice@demo.serein.test").await;
    let (s, mine) = get("/api/v1/consultations".into(), p_alice.clone()).await;
    assert_eq!(s, 200, "{mine}");
    assert_eq!(mine["items"][0]["id"], with_alice["id"], "{mine}");
    assert_eq!(mine["items"][0]["with_name"], "Ana Silva");
    let p_bruno = login("bruno@demo.serein.test").await;
    let b_id = with_bruno["id"].as_str().unwrap();
    let res = send(
        &app,
        Method::POST,
        d,
        &format!("/api/v1/consultations/{b_id}/confirm"),
        &p_bruno,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);

    // The call: not yet (409), then both participants get a token in the window.
    let a_id = with_alice["id"].as_str().unwrap();
    let video = format!("/api/v1/consultations/{a_id}/video");
    let (s, v) = get(video.clone(), e.clone()).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("not_joinable")), "{v}");
    let start = time::OffsetDateTime::parse(&at, &Rfc3339).unwrap();
    app.clock
        .advance(start - time::Duration::minutes(5) - app.clock.now());
    // Sessions made days earlier on the test's clock have expired: log in again.
    let (e, p_alice) = (
        login("ana@demo.serein.test").await,
        login("alice@demo.serein.test").await,
    );
    let (s, ve) = get(video.clone(), e.clone()).await;
    assert_eq!(s, 200, "{ve}");
    let (s, vp) = get(video.clone(), p_alice).await;
    assert_eq!(s, 200, "{vp}");
    assert_eq!(ve["room"], vp["room"]);
    assert_eq!(
        (&ve["moderator"], &vp["moderator"]),
        (&json!(false), &json!(true))
    );
    assert!(
        ve["url"]
            .as_str()
            .unwrap()
            .starts_with("https://meet.example.test/")
    );

    // The employee's calendar feed lists both consultations.
    let res = send(&app, Method::POST, d, "/api/v1/me/calendar-feed", &e, None).await;
    assert_eq!(res.status(), 201);
    let url = res.json::<Value>().await.unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        url.starts_with("http://demo.localhost:8080/api/v1/calendar/"),
        "{url}"
    );
    let path = &url[url.find("/api/v1/").unwrap()..];
    let ics = app.get(d, path).await.text().await.unwrap();
    assert_eq!(ics.matches("BEGIN:VEVENT").count(), 2, "{ics}");
    assert!(
        ics.contains(&format!("UID:{a_id}@serein")) && ics.contains(&format!("UID:{b_id}@serein"))
    );
}

async fn people(c: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM users WHERE email LIKE '%@demo.serein.test'")
        .fetch_one(c)
        .await
        .unwrap()
}

/// The published password is refused in production (`SEREIN_REQUIRE_SECRETS=true`) with
/// nothing written; `--password-stdin` works there. Without the tenant and without a tenants
/// directory, the command says how to make the tenant.
#[tokio::test]
async fn demo_refuses_the_published_password_in_production() {
    let db = fresh_database().await;
    let mut c = PgConnection::connect(&db_url(&db)).await.unwrap();
    let (ok, out) = serein_demo(&db, &[("SEREIN_TENANTS_DIR", "")], &[], "");
    assert!(!ok);
    assert!(
        out.contains("no tenant \"demo\"") && out.contains("tenants apply"),
        "{out}"
    );
    let prod = [("SEREIN_REQUIRE_SECRETS", "true")];
    let (ok, out) = serein_demo(&db, &prod, &[], "");
    assert!(!ok);
    assert!(out.contains("--password-stdin"), "{out}");
    assert_eq!(people(&mut c).await, 0);
    let (ok, out) = serein_demo(&db, &prod, &["--password-stdin"], "password\n");
    assert!(!ok && out.contains("password refused"), "{out}");
    assert_eq!(people(&mut c).await, 0);
    let (ok, out) = serein_demo(
        &db,
        &prod,
        &["--password-stdin"],
        "a private demo passphrase\n",
    );
    assert!(ok, "{out}");
    assert!(!out.contains(serein::cli::demo::DEMO_PASSWORD), "{out}");
    assert_eq!(people(&mut c).await, 3);
}

/// A minimal RFC 4180 reader (quoted fields, doubled quotes, CRLF) for the exports.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(ch) = chars.next() {
        match (quoted, ch) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// What `demo --history` writes and what it must not cause, as text: a second run must leave
/// it identical.
async fn history_rows(c: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT 't ' || t.created_at FROM tenants t WHERE t.slug = 'demo'
         UNION ALL
         SELECT 'u ' || u.email || ' ' || u.created_at || ' ' || coalesce(u.password_hash, '-')
                || ' ' || m.department || ' ' || m.enrolled_since
         FROM users u JOIN memberships m ON m.user_id = u.id
         WHERE u.email LIKE 'member-%@demo.serein.test'
         UNION ALL
         SELECT 'c ' || c.id || ' ' || c.status || ' ' || c.starts_at || ' ' || c.updated_at
         FROM consultations c
         UNION ALL
         SELECT 'e ' || e.consultation_id || ' ' || e.kind || ' ' || e.at FROM consultation_events e
         ORDER BY 1",
    )
    .fetch_all(c)
    .await
    .unwrap()
}

/// Jobs, e-mails and notifications of any kind, anywhere: the history must cause none.
async fn side_effects(c: &mut PgConnection) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM email_outbox),
                (SELECT count(*) FROM notifications)",
    )
    .fetch_one(c)
    .await
    .unwrap()
}

/// Issue 13's "done when": after `serein demo --history` (twice: the second run changes
/// nothing), HR — made as the README makes it — downloads a usage CSV by department in which
/// the three history months have released figures, none below `min_cohort`, Legal's cells are
/// suppressed with their reason, and the history planned no job, e-mail or notification.
#[tokio::test]
async fn demo_history_gives_hr_a_csv_with_released_months() {
    use crate::members::send;
    use crate::people::post;
    use reqwest::Method;
    use serde_json::{Value, json};

    let app = crate::helpers::TestApp::spawn().await;
    let mut c = app.owner().await;
    let before = side_effects(&mut c).await;
    let (ok, out) = serein_demo(&app.db_name, &[], &["--history"], "");
    assert!(ok, "{out}");
    assert_eq!(out.matches("[created account").count(), 3, "{out}");
    assert!(out.contains("[created 41]"), "{out}");
    // The three months the history filled, as printed: "history 2026-09: 33 consultations …".
    let months: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("history "))
        .filter(|l| l.contains("consultations") && l.ends_with("[created]"))
        .map(|l| l[..7].to_owned())
        .collect();
    assert_eq!(months.len(), 3, "{out}");
    assert_eq!(
        side_effects(&mut c).await,
        before,
        "the history planned jobs, e-mails or notifications"
    );
    let first = history_rows(&mut c).await;
    assert!(first.iter().filter(|r| r.starts_with("c ")).count() >= 90);

    // Written as the domain writes it: every session in the past and in its month; no
    // practitioner or employee holds two at once (the exclusion constraints cover only the
    // active statuses, so checked here over all but cancellations); every held one has its
    // start and end events; nobody exceeds the allowance in a year.
    let (future, overlaps, held_without_events, over_allowance, creation): (
        i64,
        i64,
        i64,
        i64,
        String,
    ) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM consultations WHERE ends_at > now()),
                (SELECT count(*) FROM consultations a JOIN consultations b
                   ON a.id < b.id AND a.period && b.period
                  AND (a.practitioner_id = b.practitioner_id OR a.employee_id = b.employee_id)
                  WHERE a.status <> 'cancelled' AND b.status <> 'cancelled'),
                (SELECT count(*) FROM consultations c WHERE c.status = 'ended'
                   AND (SELECT count(*) FROM consultation_events e WHERE e.consultation_id = c.id
                          AND e.kind IN ('started', 'ended')) <> 2),
                (SELECT count(*) FROM (
                   SELECT c.employee_id FROM consultations c JOIN tenants t ON t.id = c.tenant_id
                   WHERE c.counts_against_allowance
                   GROUP BY c.employee_id, t.allowance, date_part('year', c.starts_at AT TIME ZONE t.time_zone)
                   HAVING count(*) > t.allowance) x),
                (SELECT to_char(created_at AT TIME ZONE time_zone, 'YYYY-MM') FROM tenants
                  WHERE slug = 'demo')",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(
        (future, overlaps, held_without_events, over_allowance),
        (0, 0, 0, 0)
    );
    assert_eq!(
        creation, months[0],
        "the company exists from the first month"
    );
    // The synthetic people cannot log in.
    let res = post(
        &app,
        "demo.localhost",
        "/api/v1/auth/login",
        json!({"email": "member-01@demo.serein.test", "password": serein::cli::demo::DEMO_PASSWORD}),
    )
    .await;
    assert_eq!(res.status(), 401);

    let (ok, out) = serein_demo(&app.db_name, &[], &["--history"], "");
    assert!(ok, "{out}");
    assert!(out.contains("history: unchanged"), "{out}");
    assert!(!out.contains("[created"), "{out}");
    assert_eq!(
        history_rows(&mut c).await,
        first,
        "a second run wrote something"
    );

    // HR, as the README makes it.
    let (ok, out) = serein_stdin(
        &app.db_name,
        &[
            "users",
            "add",
            "--tenant",
            "demo",
            "--email",
            "hr@demo.serein.test",
            "--role",
            "hr",
            "--password-stdin",
        ],
        "hr demo passphrase 2026\n",
    );
    assert!(ok, "{out}");
    let res = post(
        &app,
        "demo.localhost",
        "/api/v1/auth/login",
        json!({"email": "hr@demo.serein.test", "password": "hr demo passphrase 2026"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let hr = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let download = || async {
        let res = send(
            &app,
            Method::GET,
            "demo.localhost",
            "/api/v1/exports/usage.csv?group_by=department",
            &hr,
            None,
        )
        .await;
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    };
    let csv = download().await;
    let rows = parse_csv(&csv);
    assert_eq!(
        rows[0],
        [
            "month",
            "department",
            "booked",
            "held",
            "cancelled",
            "minutes",
            "users",
            "suppressed"
        ],
        "{csv}"
    );
    let min_cohort: i32 = sqlx::query_scalar("SELECT min_cohort FROM tenants WHERE slug = 'demo'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let body = &rows[1..];
    let csv_months: std::collections::BTreeSet<&str> = body.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        csv_months.into_iter().collect::<Vec<_>>(),
        months.iter().map(String::as_str).collect::<Vec<_>>(),
        "{csv}"
    );
    for month in &months {
        let of = |dept: &str| {
            body.iter()
                .find(|r| &r[0] == month && r[1] == dept)
                .unwrap_or_else(|| panic!("{month} {dept}: {csv}"))
        };
        for dept in ["Sales", "Engineering", "Operations"] {
            let row = of(dept);
            for col in [2, 3, 6] {
                let n: i32 = row[col]
                    .parse()
                    .unwrap_or_else(|_| panic!("{month} {dept} column {col} hidden: {csv}"));
                assert!(n >= min_cohort, "{row:?}");
            }
        }
        let legal = of("Legal");
        assert!(
            legal[2..7].iter().all(String::is_empty),
            "Legal released: {legal:?}"
        );
        assert!(legal[7].contains("booked: below_min_cohort"), "{legal:?}");
    }
    // No released count anywhere is below the cohort; every hidden figure says why.
    for row in body {
        for (col, name) in [(2, "booked"), (3, "held"), (4, "cancelled"), (6, "users")] {
            match row[col].parse::<i32>() {
                Ok(n) => assert!(n >= min_cohort, "{row:?}"),
                Err(_) => {
                    assert!(row[col].is_empty());
                    assert!(row[7].contains(&format!("{name}: ")), "{row:?}");
                }
            }
        }
    }
    // The release is frozen: a third run and a second download change nothing.
    let (ok, out) = serein_demo(&app.db_name, &[], &["--history"], "");
    assert!(ok && out.contains("history: unchanged"), "{out}");
    assert_eq!(download().await, csv);
    assert_eq!(
        side_effects(&mut c).await,
        before,
        "jobs, e-mails or notifications appeared"
    );
}
