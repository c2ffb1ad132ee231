//! Test support for the mail tests: a real SMTP server (aiosmtpd) per test, a private PKI made
//! with the openssl CLI, an independent MIME parser (Python's `email`), and outbox inspection.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration as StdDuration, Instant};

use serein::db::{TenantId, TenantTx};
use serein::mail::Message;
use serein::tenants::model::Locale;
use sqlx::PgConnection;
use time::{Duration, OffsetDateTime};

use crate::helpers::TestApp;

/// Pinned in `.ci/run`.
pub const AIOSMTPD_HINT: &str = "python3 -m pip install --user aiosmtpd==1.4.6";

/// A free TCP port on loopback (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real SMTP server (aiosmtpd, `Mailbox` handler writing a maildir), killed on drop.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    maildir: tempfile::TempDir,
}

impl SmtpServer {
    pub async fn start() -> Self {
        Self::start_on(free_port()).await
    }

    pub async fn start_on(port: u16) -> Self {
        Self::start_with(port, &[]).await
    }

    /// With extra command-line options (`--tlscert …` for STARTTLS, `--smtpscert …` for TLS).
    pub async fn start_with(port: u16, options: &[&std::ffi::OsStr]) -> Self {
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
    pub fn received(&self) -> Vec<PathBuf> {
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
pub fn parse_eml(path: &Path) -> serde_json::Value {
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
    'auto_submitted': m.get('Auto-Submitted'),
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
pub async fn app_with_smtp(port: u16, extra: &[(&str, &str)]) -> TestApp {
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
pub async fn enqueue_committed(
    app: &TestApp,
    tenant: TenantId,
    to: &str,
    locale: Locale,
    m: &Message,
) {
    let mut tx = TenantTx::begin(&app.db, tenant, None).await.unwrap();
    serein::mail::enqueue(&mut tx, tenant, to, locale, m, app.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[derive(Debug)]
pub struct Row {
    pub id: uuid::Uuid,
    pub status: String,
    pub attempts: i32,
    pub body_text: Option<String>,
    pub body_html: Option<String>,
    pub last_error: Option<String>,
    pub next_attempt_at: OffsetDateTime,
    pub sent_at: Option<OffsetDateTime>,
    pub dead_at: Option<OffsetDateTime>,
    pub lease_id: Option<uuid::Uuid>,
}

/// The outbox rows of a tenant, oldest first (as the owner).
pub async fn rows(owner: &mut PgConnection, tenant: TenantId) -> Vec<Row> {
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

pub fn assert_close(actual: OffsetDateTime, expected: OffsetDateTime) {
    // The database keeps microseconds.
    assert!(
        (actual - expected).abs() < Duration::milliseconds(1),
        "{actual} is not {expected}"
    );
}

/// A private CA and a server certificate for 127.0.0.1 / localhost signed by it (openssl CLI).
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Self {
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

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// aiosmtpd options serving this certificate with STARTTLS (`--tlscert`) or implicit TLS
    /// (`--smtpscert`).
    pub fn server_options(&self, implicit: bool) -> Vec<std::ffi::OsString> {
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

pub async fn start_tls_server(pki: &Pki, implicit: bool) -> SmtpServer {
    let options = pki.server_options(implicit);
    let options: Vec<&std::ffi::OsStr> = options.iter().map(|o| o.as_os_str()).collect();
    SmtpServer::start_with(free_port(), &options).await
}
