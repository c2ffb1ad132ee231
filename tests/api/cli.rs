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
