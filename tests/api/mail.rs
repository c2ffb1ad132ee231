//! Transactional e-mail: the outbox is written in the caller's transaction, the worker delivers
//! to a REAL SMTP server (Python's aiosmtpd, started per test; `.ci/run` installs it), retries
//! with exponential backoff on the injected clock, gives up after the configured attempts,
//! purges bodies, and the request role can only insert rows for its own tenant.
//!
//! Messages are parsed back with Python's `email` package, an independent MIME parser.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use serein::db::{SystemTx, TenantId, TenantTx};
use serein::mail::outbox::{self, ClaimLimits, RetryPolicy};
use serein::mail::{MailWorker, Message, Transport};
use serein::tenants::model::Locale;
use sqlx::{Executor, PgConnection};
use time::{Duration, OffsetDateTime};

use crate::helpers::{TestApp, as_app};

/// Pinned in `.ci/run`.
const AIOSMTPD_HINT: &str = "python3 -m pip install --user aiosmtpd==1.4.6";

/// A free TCP port on loopback (nothing listens on it once this returns).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real SMTP server (aiosmtpd, `Mailbox` handler writing a maildir), killed on drop.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpServer {
    async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    async fn start_on(port: u16) -> Self {
        Self::start_with(port, &[]).await
    }

    /// With extra command-line options (`--tlscert …` for STARTTLS, `--smtpscert …` for TLS).
    async fn start_with(port: u16, options: &[&std::ffi::OsStr]) -> Self {
        let probe = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output();
        match probe {
            Err(e) => panic!(
                "python3 is needed for the SMTP tests (a real SMTP server) but could not run: {e}"
            ),
            Ok(out) if !out.status.success() => panic!(
                "the SMTP tests need Python's aiosmtpd, which is not installed: {AIOSMTPD_HINT} \
                 (.ci/run does this)\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Ok(_) => {}
        }
        let maildir = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(options)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("box"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start aiosmtpd");
        // Poll until it accepts connections (a background process: deadline, no fixed sleep).
        let deadline = Instant::now() + StdDuration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("aiosmtpd exited ({status}) before accepting connections: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on port {port} within 20 s"
            );
            tokio::time::sleep(StdDuration::from_millis(25)).await;
        }
        Self {
            child,
            port,
            maildir,
        }
    }

    /// Files of the delivered messages.
    fn received(&self) -> Vec<PathBuf> {
        let dir = self.maildir.path().join("box").join("new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| rd.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parse a message file with Python's `email` package (policy.default decodes RFC 2047
/// headers and transfer encodings).
fn parse_eml(path: &Path) -> serde_json::Value {
    const SCRIPT: &str = r#"
import sys, json, email
from email import policy
with open(sys.argv[1], 'rb') as f:
    m = email.message_from_binary_file(f, policy=policy.default)
text = m.get_body(preferencelist=('plain',))
html = m.get_body(preferencelist=('html',))
print(json.dumps({
    'from': str(m['From']), 'to': str(m['To']), 'subject': str(m['Subject']),
    'message_id': str(m['Message-ID']), 'date': str(m['Date']),
    'rcpt_to': m.get('X-RcptTo'), 'mail_from': m.get('X-MailFrom'),
    'multipart': m.get_content_type(),
    'text': text.get_content() if text is not None else None,
    'html': html.get_content() if html is not None else None,
    'defects': len(m.defects),
}))
"#;
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python could not parse {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An app whose mailer talks plain SMTP to 127.0.0.1:`port`.
async fn app_with_smtp(port: u16, extra: &[(&str, &str)]) -> TestApp {
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    TestApp::spawn_with(move |s| {
        s.env.insert("SMTP_HOST".into(), "127.0.0.1".into());
        s.env.insert("SMTP_PORT".into(), port.to_string());
        s.env.insert("SMTP_TLS".into(), "none".into());
        s.env.insert("SMTP_TIMEOUT_SECS".into(), "5".into());
        s.env.insert(
            "MAIL_FROM".into(),
            "Serein Test <no-reply@serein.test>".into(),
        );
        for (k, v) in extra {
            s.env.insert(k, v);
        }
    })
    .await
}

/// Enqueue in a tenant transaction and commit it.
async fn enqueue_committed(app: &TestApp, tenant: TenantId, to: &str, locale: Locale, m: &Message) {
    let mut tx = TenantTx::begin(&app.db, tenant, None).await.unwrap();
    serein::mail::enqueue(&mut tx, tenant, to, locale, m, app.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[derive(Debug)]
struct Row {
    id: uuid::Uuid,
    status: String,
    attempts: i32,
    body_text: Option<String>,
    body_html: Option<String>,
    last_error: Option<String>,
    next_attempt_at: OffsetDateTime,
    sent_at: Option<OffsetDateTime>,
    dead_at: Option<OffsetDateTime>,
    lease_id: Option<uuid::Uuid>,
}

/// The outbox rows of a tenant, oldest first (as the owner).
async fn rows(owner: &mut PgConnection, tenant: TenantId) -> Vec<Row> {
    type R = (
        uuid::Uuid,
        String,
        i32,
        Option<String>,
        Option<String>,
        Option<String>,
        OffsetDateTime,
        Option<OffsetDateTime>,
        Option<OffsetDateTime>,
        Option<uuid::Uuid>,
    );
    let rs: Vec<R> = sqlx::query_as(
        "SELECT id, status, attempts, body_text, body_html, last_error, next_attempt_at, sent_at,
                dead_at, lease_id
         FROM email_outbox WHERE tenant_id = $1 ORDER BY id",
    )
    .bind(tenant.as_uuid())
    .fetch_all(owner)
    .await
    .unwrap();
    rs.into_iter()
        .map(|r| Row {
            id: r.0,
            status: r.1,
            attempts: r.2,
            body_text: r.3,
            body_html: r.4,
            last_error: r.5,
            next_attempt_at: r.6,
            sent_at: r.7,
            dead_at: r.8,
            lease_id: r.9,
        })
        .collect()
}

fn assert_close(actual: OffsetDateTime, expected: OffsetDateTime) {
    // The database keeps microseconds.
    assert!(
        (actual - expected).abs() < Duration::milliseconds(1),
        "{actual} is not {expected}"
    );
}

#[tokio::test]
async fn a_committed_message_is_delivered_over_smtp_in_the_recipients_language() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(smtp.port, &[]).await;
    assert!(matches!(app.state.mail.transport(), Transport::Smtp(_)));
    let reset = "https://alpha.localhost/reset-password?token=0190.s3cret-reset";
    let verify = "https://alpha.localhost/verify-email?token=0190.s3cret-verify";
    enqueue_committed(
        &app,
        app.tenant_a,
        "Alice.Martin@acme.test",
        Locale::Fr,
        &Message::PasswordReset {
            link: reset.into(),
            expires_in_minutes: 60,
        },
    )
    .await;
    enqueue_committed(
        &app,
        app.tenant_b,
        "bob@bravo.test",
        Locale::En,
        &Message::VerifyEmail {
            link: verify.into(),
        },
    )
    .await;
    let worker = MailWorker::from_state(&app.state);
    assert_eq!(worker.run_once().await.unwrap(), 2);

    let received = smtp.received();
    assert_eq!(received.len(), 2, "{received:?}");
    let msgs: Vec<serde_json::Value> = received.iter().map(|p| parse_eml(p)).collect();
    let fr = msgs
        .iter()
        .find(|m| m["to"] == "Alice.Martin@acme.test")
        .unwrap_or_else(|| panic!("no message to Alice: {msgs:?}"));
    assert_eq!(fr["subject"], "Réinitialisez votre mot de passe");
    assert_eq!(fr["from"], "Serein Test <no-reply@serein.test>");
    assert_eq!(fr["rcpt_to"], "Alice.Martin@acme.test", "SMTP envelope");
    assert_eq!(fr["mail_from"], "no-reply@serein.test", "SMTP envelope");
    assert_eq!(fr["multipart"], "multipart/alternative");
    assert_eq!(fr["defects"], 0);
    let text = fr["text"].as_str().unwrap();
    assert!(text.contains(reset), "{text}");
    assert!(text.contains("expire dans 60 minutes"), "{text}");
    assert!(
        fr["html"]
            .as_str()
            .unwrap()
            .contains(&format!("href=\"{reset}\""))
    );
    let en = msgs.iter().find(|m| m["to"] == "bob@bravo.test").unwrap();
    assert_eq!(en["subject"], "Confirm your email address");
    assert!(en["text"].as_str().unwrap().contains(verify));

    // Recorded as sent, bodies purged, metadata kept; the Message-ID names the outbox row.
    let mut owner = app.owner().await;
    let a = rows(&mut owner, app.tenant_a).await;
    assert_eq!(a.len(), 1);
    let row = &a[0];
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 1));
    assert!(row.body_text.is_none() && row.body_html.is_none());
    assert!(row.lease_id.is_none() && row.last_error.is_none());
    assert_close(row.sent_at.unwrap(), app.clock.now());
    assert_eq!(
        fr["message_id"],
        format!("<{}@serein.test>", row.id),
        "Message-ID"
    );
    let kept: (String, String, String) =
        sqlx::query_as("SELECT to_address, template, locale FROM email_outbox WHERE id = $1")
            .bind(row.id)
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert_eq!(
        kept,
        (
            "Alice.Martin@acme.test".into(),
            "password_reset".into(),
            "fr".into()
        )
    );
    // Nothing is sent twice.
    assert_eq!(worker.run_once().await.unwrap(), 0);
    assert_eq!(smtp.received().len(), 2);
}

#[tokio::test]
async fn a_rolled_back_transaction_sends_nothing() {
    let smtp = SmtpServer::start().await;
    let app = app_with_smtp(smtp.port, &[]).await;
    let m = Message::VerifyEmail {
        link: "https://alpha.localhost/verify-email?token=x.y".into(),
    };
    {
        let mut tx = TenantTx::begin(&app.db, app.tenant_a, None).await.unwrap();
        serein::mail::enqueue(
            &mut tx,
            app.tenant_a,
            "carol@acme.test",
            Locale::En,
            &m,
            app.clock.now(),
        )
        .await
        .unwrap();
        // Dropped without commit: rolled back.
    }
    // A failure later in the same transaction rolls the mail back with it.
    let mut tx = TenantTx::begin(&app.db, app.tenant_a, None).await.unwrap();
    serein::mail::enqueue(
        &mut tx,
        app.tenant_a,
        "dave@acme.test",
        Locale::En,
        &m,
        app.clock.now(),
    )
    .await
    .unwrap();
    assert!(tx.execute("SELECT 1 / 0").await.is_err());
    // COMMIT of an aborted transaction rolls it back.
    let _ = tx.commit().await;

    let worker = MailWorker::from_state(&app.state);
    assert_eq!(worker.run_once().await.unwrap(), 0);
    assert!(smtp.received().is_empty());
    let mut owner = app.owner().await;
    assert!(rows(&mut owner, app.tenant_a).await.is_empty());
}

#[tokio::test]
async fn smtp_down_retries_with_exponential_backoff_then_dead_after_max_attempts() {
    let port = free_port(); // nothing listens here
    let app = app_with_smtp(
        port,
        &[
            ("SMTP_MAX_ATTEMPTS", "3"),
            ("MAIL_RETRY_BASE_SECS", "60"),
            ("MAIL_RETRY_MAX_SECS", "3600"),
        ],
    )
    .await;
    let link = "https://alpha.localhost/reset-password?token=u.sec";
    enqueue_committed(
        &app,
        app.tenant_a,
        "erin@acme.test",
        Locale::En,
        &Message::PasswordReset {
            link: link.into(),
            expires_in_minutes: 60,
        },
    )
    .await;
    let worker = MailWorker::from_state(&app.state);
    let mut owner = app.owner().await;

    // Attempt 1 fails: retry in base = 60 s; the body is kept for the retry.
    let t1 = app.clock.now();
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let r = &rows(&mut owner, app.tenant_a).await[0];
    assert_eq!((r.status.as_str(), r.attempts), ("pending", 1));
    assert_eq!(r.last_error.as_deref(), Some("connect"));
    assert!(r.body_text.as_deref().unwrap().contains(link));
    assert!(r.lease_id.is_none(), "the lease is released");
    assert_close(r.next_attempt_at, t1 + Duration::seconds(60));

    // Not due before then.
    assert_eq!(worker.run_once().await.unwrap(), 0);
    app.clock.advance(Duration::seconds(59));
    assert_eq!(worker.run_once().await.unwrap(), 0);

    // Attempt 2 fails: retry in 2 × base.
    app.clock.advance(Duration::seconds(1));
    let t2 = app.clock.now();
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let r = &rows(&mut owner, app.tenant_a).await[0];
    assert_eq!((r.status.as_str(), r.attempts), ("pending", 2));
    assert_close(r.next_attempt_at, t2 + Duration::seconds(120));
    app.clock.advance(Duration::seconds(119));
    assert_eq!(worker.run_once().await.unwrap(), 0);

    // Attempt 3 (the last permitted) fails: dead, body purged.
    app.clock.advance(Duration::seconds(1));
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let r = &rows(&mut owner, app.tenant_a).await[0];
    assert_eq!((r.status.as_str(), r.attempts), ("dead", 3));
    assert!(r.body_text.is_none() && r.body_html.is_none());
    assert_close(r.dead_at.unwrap(), app.clock.now());
    assert_eq!(r.last_error.as_deref(), Some("connect"));

    // Never tried again.
    app.clock.advance(Duration::days(2));
    assert_eq!(worker.run_once().await.unwrap(), 0);
    assert_eq!(rows(&mut owner, app.tenant_a).await[0].attempts, 3);
}

#[tokio::test]
async fn a_retry_succeeds_once_the_relay_is_back_and_backoff_is_capped() {
    let port = free_port();
    let app = app_with_smtp(
        port,
        &[
            ("SMTP_MAX_ATTEMPTS", "10"),
            ("MAIL_RETRY_BASE_SECS", "60"),
            ("MAIL_RETRY_MAX_SECS", "200"),
        ],
    )
    .await;
    let link = "https://bravo.localhost/invitations/tok";
    enqueue_committed(
        &app,
        app.tenant_b,
        "frank@bravo.test",
        Locale::En,
        &Message::Invitation {
            link: link.into(),
            tenant_name: "Bravo & Co".into(),
            inviter_name: Some("Grace".into()),
            expires_in_days: 7,
        },
    )
    .await;
    let worker = MailWorker::from_state(&app.state);
    let mut owner = app.owner().await;
    // 60, 120, then capped at 200.
    for expected in [60, 120, 200, 200] {
        let t = app.clock.now();
        assert_eq!(worker.run_once().await.unwrap(), 1);
        let r = &rows(&mut owner, app.tenant_b).await[0];
        assert_eq!(r.status, "pending");
        assert_close(r.next_attempt_at, t + Duration::seconds(expected));
        app.clock.advance(Duration::seconds(expected));
    }
    let smtp = SmtpServer::start_on(port).await;
    assert_eq!(worker.run_once().await.unwrap(), 1);
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    let m = parse_eml(&received[0]);
    assert_eq!(m["subject"], "You are invited to join Bravo & Co on Serein");
    assert!(m["text"].as_str().unwrap().contains(link));
    assert!(m["html"].as_str().unwrap().contains("Bravo &amp; Co"));
    let r = &rows(&mut owner, app.tenant_b).await[0];
    assert_eq!((r.status.as_str(), r.attempts), ("sent", 5));
    assert!(r.body_text.is_none());
}

#[tokio::test]
async fn without_smtp_host_messages_are_written_as_parseable_eml_files() {
    let app = TestApp::spawn().await;
    let dir = app.data_dir.join("mail");
    match app.state.mail.transport() {
        Transport::Files(d) => assert_eq!(d, &dir),
        other => panic!("expected the file transport, got {other:?}"),
    }
    let login = "http://alpha.localhost:8080/login";
    let reset = "http://alpha.localhost:8080/forgot-password";
    enqueue_committed(
        &app,
        app.tenant_a,
        "heidi@acme.test",
        Locale::Fr,
        &Message::AccountExists {
            login_link: login.into(),
            reset_link: reset.into(),
        },
    )
    .await;
    assert_eq!(
        MailWorker::from_state(&app.state).run_once().await.unwrap(),
        1
    );
    let mut owner = app.owner().await;
    let row = &rows(&mut owner, app.tenant_a).await[0];
    assert_eq!(row.status, "sent");
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files, vec![dir.join(format!("{}.eml", row.id))]);
    let m = parse_eml(&files[0]);
    assert_eq!(m["to"], "heidi@acme.test");
    assert_eq!(m["from"], "Serein <no-reply@localhost>");
    assert_eq!(m["subject"], "Vous avez déjà un compte Serein");
    assert_eq!(m["defects"], 0);
    let text = m["text"].as_str().unwrap();
    assert!(text.contains(login) && text.contains(reset), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the mail directory is private: {mode:o}");
    }
}

#[tokio::test]
async fn the_request_role_may_only_insert_fresh_rows_for_its_own_tenant() {
    let app = TestApp::spawn().await;
    let mut owner = app.owner().await;
    crate::helpers::seed_world(&mut owner, app.tenant_a, "a").await;
    crate::helpers::seed_world(&mut owner, app.tenant_b, "b").await;
    let insert = |tenant: TenantId, status: &str, attempts: i32| {
        format!(
            "INSERT INTO email_outbox (id, tenant_id, to_address, locale, template, subject, body_text,
                                       created_at, next_attempt_at, status, attempts, sent_at)
             VALUES (gen_random_uuid(), '{tenant}', 'x@y.test', 'en', 'verify_email', 's', {body},
                     now(), now(), '{status}', {attempts}, {sent})",
            body = if status == "pending" { "'b'" } else { "NULL" },
            sent = if status == "sent" { "now()" } else { "NULL" },
        )
    };
    let sqlstate = |e: sqlx::Error| {
        e.as_database_error()
            .and_then(|d| d.code().map(|c| c.to_string()))
            .unwrap_or_default()
    };
    let mut conn = app.owner().await;
    as_app(&mut conn, Some(app.tenant_a), None).await;
    // Its own tenant, fresh: allowed.
    conn.execute(sqlx::AssertSqlSafe(insert(app.tenant_a, "pending", 0)))
        .await
        .unwrap();
    for (sql, what) in [
        (
            "SELECT count(*) FROM email_outbox".to_owned(),
            "reading (even its own tenant's rows)",
        ),
        (
            "UPDATE email_outbox SET status = 'dead'".to_owned(),
            "updating",
        ),
        ("DELETE FROM email_outbox".to_owned(), "deleting"),
        (insert(app.tenant_b, "pending", 0), "inserting for tenant B"),
        (
            insert(app.tenant_a, "sent", 0),
            "inserting an already sent row",
        ),
        (
            insert(app.tenant_a, "pending", 5),
            "inserting a row with attempts spent",
        ),
    ] {
        conn.execute("SAVEPOINT s").await.unwrap();
        let r = conn.execute(sqlx::AssertSqlSafe(sql.clone())).await;
        assert_eq!(
            r.map_err(sqlstate).map(|_| ()),
            Err("42501".into()),
            "{what}"
        );
        conn.execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
    }
    // The worker's functions refuse a tenant context (a request cannot claim other tenants' mail).
    for sql in [
        "SELECT * FROM app_private.mail_claim(now(), 10, 60, 8)",
        "SELECT app_private.mail_prune(now(), 10)",
        "SELECT app_private.mail_mark_sent(gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), now())",
    ] {
        conn.execute("SAVEPOINT s").await.unwrap();
        let r = conn.execute(sql).await;
        assert_eq!(
            r.map_err(sqlstate).map(|_| ()),
            Err("42501".into()),
            "{sql}"
        );
        conn.execute("ROLLBACK TO SAVEPOINT s").await.unwrap();
    }
    conn.execute("ROLLBACK").await.unwrap();

    // enqueue through a TenantTx of A, naming tenant B: refused by row-level security.
    let mut tx = TenantTx::begin(&app.db, app.tenant_a, None).await.unwrap();
    let r = serein::mail::enqueue(
        &mut tx,
        app.tenant_b,
        "ivan@bravo.test",
        Locale::En,
        &Message::VerifyEmail {
            link: "https://bravo.localhost/v".into(),
        },
        app.clock.now(),
    )
    .await;
    assert!(r.is_err());
    drop(tx);
    let b_rows = rows(&mut owner, app.tenant_b).await;
    assert_eq!(b_rows.len(), 1, "only seed_world's row");
}

#[tokio::test]
async fn a_leased_message_is_not_claimed_twice_and_a_lost_lease_records_nothing() {
    let app = TestApp::spawn().await;
    enqueue_committed(
        &app,
        app.tenant_a,
        "judy@acme.test",
        Locale::En,
        &Message::VerifyEmail {
            link: "https://alpha.localhost/v".into(),
        },
    )
    .await;
    let limits = ClaimLimits {
        batch: 10,
        lease_secs: 300,
        max_attempts: 3,
    };
    let policy = RetryPolicy {
        max_attempts: 3,
        base_secs: 60,
        cap_secs: 3600,
    };
    let claim = |now: OffsetDateTime| {
        let db = app.db.clone();
        async move {
            let mut tx = SystemTx::begin(&db).await.unwrap();
            let c = outbox::claim(&mut tx, now, limits).await.unwrap();
            tx.commit().await.unwrap();
            c
        }
    };
    let t0 = app.clock.now();
    let first = claim(t0).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt, 1);
    // The claimed row's Debug output carries no address or body.
    let dbg = format!("{:?}", first[0]);
    assert!(!dbg.contains("judy") && !dbg.contains("https://"), "{dbg}");
    // Leased: a second worker gets nothing, until the lease expires (the first worker died).
    assert!(claim(t0 + Duration::seconds(299)).await.is_empty());
    let second = claim(t0 + Duration::seconds(300)).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempt, 2);
    assert_ne!(first[0].lease, second[0].lease);
    // The first worker's late outcome is ignored.
    let mut tx = SystemTx::begin(&app.db).await.unwrap();
    assert!(
        !outbox::mark_sent(&mut tx, &first[0], t0 + Duration::seconds(301))
            .await
            .unwrap()
    );
    assert_eq!(
        outbox::mark_failed(&mut tx, &first[0], t0, "connect", false, policy)
            .await
            .unwrap(),
        outbox::AfterFailure::LeaseLost
    );
    assert!(
        outbox::mark_sent(&mut tx, &second[0], t0 + Duration::seconds(301))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let mut owner = app.owner().await;
    assert_eq!(rows(&mut owner, app.tenant_a).await[0].status, "sent");

    // A worker that died on the last permitted attempt: declared dead when the lease expires.
    enqueue_committed(
        &app,
        app.tenant_b,
        "ken@bravo.test",
        Locale::En,
        &Message::VerifyEmail {
            link: "https://bravo.localhost/v".into(),
        },
    )
    .await;
    let t = t0 + Duration::seconds(400);
    for i in 0..3 {
        let c = claim(t + Duration::seconds(300 * i)).await;
        assert_eq!(c.len(), 1, "claim {i}");
    }
    assert!(claim(t + Duration::seconds(900)).await.is_empty());
    let r = &rows(&mut owner, app.tenant_b).await[0];
    assert_eq!((r.status.as_str(), r.attempts), ("dead", 3));
    assert!(r.body_text.is_none());
}

#[tokio::test]
async fn retention_prunes_old_sent_and_dead_rows_only() {
    let app = TestApp::spawn().await;
    let link = Message::VerifyEmail {
        link: "https://alpha.localhost/v".into(),
    };
    enqueue_committed(&app, app.tenant_a, "leo@acme.test", Locale::En, &link).await;
    let worker = MailWorker::from_state(&app.state);
    assert_eq!(worker.run_once().await.unwrap(), 1);
    enqueue_committed(&app, app.tenant_a, "mia@acme.test", Locale::En, &link).await;
    let mut owner = app.owner().await;
    // Make both rows old (created_at comes from the clock at enqueue).
    sqlx::query("UPDATE email_outbox SET created_at = created_at - interval '31 days'")
        .execute(&mut owner)
        .await
        .unwrap();
    assert_eq!(worker.prune().await.unwrap(), 1);
    let left = rows(&mut owner, app.tenant_a).await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].status, "pending",
        "a pending message is never pruned"
    );
}

#[tokio::test]
async fn the_server_runs_the_worker_in_the_background_and_stops_it_on_shutdown() {
    let app = TestApp::spawn_with(|s| {
        s.env.insert("MAIL_WORKER".into(), "true".into());
        s.env.insert("MAIL_POLL_MS".into(), "20".into());
        // Long grace: if the worker ignored shutdown, stop() would take a minute.
        s.env.insert("SHUTDOWN_GRACE_MS".into(), "60000".into());
    })
    .await;
    enqueue_committed(
        &app,
        app.tenant_a,
        "nina@acme.test",
        Locale::En,
        &Message::VerifyEmail {
            link: "https://alpha.localhost/verify-email?token=bg".into(),
        },
    )
    .await;
    // A background task: poll with a deadline.
    let dir = app.data_dir.join("mail");
    let deadline = Instant::now() + StdDuration::from_secs(20);
    let mut owner = app.owner().await;
    loop {
        let sent = rows(&mut owner, app.tenant_a)
            .await
            .first()
            .is_some_and(|r| r.status == "sent");
        if sent {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the background worker did not send within 20 s"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    // Graceful shutdown stops the worker promptly.
    tokio::time::timeout(StdDuration::from_secs(10), app.stop())
        .await
        .expect("the server and its mail worker stop on shutdown");
}

/// A private CA and a server certificate for 127.0.0.1 / localhost signed by it (openssl CLI).
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap_or_else(|e| panic!("the TLS tests need the openssl CLI: {e}"));
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=Serein Test CA"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
        run(&ca);
        let mut csr = vec!["req", "-subj", "/CN=localhost"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
        run(&csr);
        std::fs::write(
            dir.path().join("ext.cnf"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n\
             subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ]);
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// aiosmtpd options serving this certificate with STARTTLS (`--tlscert`) or implicit TLS
    /// (`--smtpscert`).
    fn server_options(&self, implicit: bool) -> Vec<std::ffi::OsString> {
        let (cert, key) = if implicit {
            ("--smtpscert", "--smtpskey")
        } else {
            ("--tlscert", "--tlskey")
        };
        vec![
            cert.into(),
            self.path("server.pem").into(),
            key.into(),
            self.path("server.key").into(),
        ]
    }
}

async fn start_tls_server(pki: &Pki, implicit: bool) -> SmtpServer {
    let options = pki.server_options(implicit);
    let options: Vec<&std::ffi::OsStr> = options.iter().map(|o| o.as_os_str()).collect();
    SmtpServer::start_with(free_port(), &options).await
}

#[tokio::test]
async fn starttls_and_implicit_tls_deliver_to_a_relay_with_a_private_ca() {
    let pki = Pki::new();
    let ca = pki.path("ca.pem").to_string_lossy().into_owned();
    for (mode, implicit) in [("starttls", false), ("tls", true)] {
        let smtp = start_tls_server(&pki, implicit).await;
        let app = app_with_smtp(smtp.port, &[("SMTP_TLS", mode), ("SMTP_TLS_CA_FILE", &ca)]).await;
        let link = format!("https://alpha.localhost/verify-email?token={mode}");
        enqueue_committed(
            &app,
            app.tenant_a,
            "olga@acme.test",
            Locale::En,
            &Message::VerifyEmail { link: link.clone() },
        )
        .await;
        assert_eq!(
            MailWorker::from_state(&app.state).run_once().await.unwrap(),
            1
        );
        let mut owner = app.owner().await;
        let r = &rows(&mut owner, app.tenant_a).await[0];
        assert_eq!(r.status, "sent", "{mode}: {:?}", r.last_error);
        let received = smtp.received();
        assert_eq!(received.len(), 1, "{mode}");
        let m = parse_eml(&received[0]);
        assert_eq!(m["to"], "olga@acme.test");
        assert!(m["text"].as_str().unwrap().contains(&link), "{mode}");
    }
}

#[tokio::test]
async fn a_relay_that_cannot_prove_its_identity_or_offers_no_starttls_gets_nothing() {
    let pki = Pki::new();
    // Its certificate chains to a CA we were not told to trust.
    let untrusted = start_tls_server(&pki, false).await;
    // No STARTTLS offered at all: the message must not go out in clear.
    let plain = SmtpServer::start().await;
    for (smtp, expected) in [(&untrusted, "tls"), (&plain, "client")] {
        let app = app_with_smtp(smtp.port, &[("SMTP_TLS", "starttls")]).await;
        enqueue_committed(
            &app,
            app.tenant_a,
            "pat@acme.test",
            Locale::En,
            &Message::VerifyEmail {
                link: "https://alpha.localhost/verify-email?token=t".into(),
            },
        )
        .await;
        assert_eq!(
            MailWorker::from_state(&app.state).run_once().await.unwrap(),
            1
        );
        let mut owner = app.owner().await;
        let r = &rows(&mut owner, app.tenant_a).await[0];
        assert_eq!(r.status, "pending", "{expected}");
        assert_eq!(r.last_error.as_deref(), Some(expected));
        assert!(
            smtp.received().is_empty(),
            "{expected}: a message was delivered"
        );
    }
}
