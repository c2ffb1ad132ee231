//! Delivery of one claimed message: built into a MIME message (plain text + HTML alternative)
//! and handed to SMTP (lettre, rustls) or, in development, written as an `.eml` file.
//!
//! Invariants: errors are reduced to a short classification (`connect`, `tls`, `timeout`,
//! `smtp 451`…) before they leave this module, because SMTP servers quote the recipient address
//! in their replies; a refusal is permanent only when it is about the recipient (550, 551, 553),
//! never for authentication or policy codes that would kill every queued mail at once. The
//! file transport writes through a temporary file and a rename, into a directory only the
//! owner can read (the files hold live links).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::ExposeSecret;
use time::OffsetDateTime;

use super::config::{MailConfig, SmtpConfig, TlsMode};
use super::outbox::Claimed;

/// Where messages go.
#[derive(Clone)]
pub enum Transport {
    /// An SMTP relay.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Development: one `.eml` file per message in this directory.
    Files(PathBuf),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Smtp(_) => f.write_str("Transport::Smtp"),
            Transport::Files(dir) => f.debug_tuple("Transport::Files").field(dir).finish(),
        }
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): vacation responders and list software must not
/// answer a transactional message.
#[derive(Clone)]
struct AutoSubmitted;

// Evaluated at compile time: an invalid name would fail the build, never panic at run time.
const AUTO_SUBMITTED: HeaderName = HeaderName::new_from_ascii_str("Auto-Submitted");

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        AUTO_SUBMITTED
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// Why an attempt failed, without any address or server text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Short classification stored in `email_outbox.last_error` and logged.
    pub kind: String,
    /// Retrying cannot help (the recipient is refused or invalid).
    pub permanent: bool,
}

impl SendError {
    fn transient(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            permanent: false,
        }
    }

    fn permanent(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            permanent: true,
        }
    }
}

/// Reduce a lettre SMTP error to a classification.
fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    if let Some(code) = e.status() {
        return classify_code(u16::from(code));
    }
    if e.is_timeout() {
        SendError::transient("timeout")
    } else if e.is_tls() || tls_failure(e) {
        SendError::transient("tls")
    } else if e.is_client() {
        SendError::transient("client")
    } else {
        SendError::transient("connect")
    }
}

/// A failed TLS handshake (untrusted certificate, wrong name, protocol mismatch) surfaces from
/// tokio-rustls as an I/O error of kind `InvalidData` wrapped in a connection error; a refused
/// or reset TCP connection has other kinds.
fn tls_failure(e: &lettre::transport::smtp::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::InvalidData;
        }
        source = s.source();
    }
    false
}

/// Classify an SMTP reply code. Only refusals of the recipient mailbox are final; 5xx for
/// authentication (530, 535), size or policy would otherwise bury every queued message during a
/// misconfiguration.
fn classify_code(n: u16) -> SendError {
    if matches!(n, 550 | 551 | 553) {
        SendError::permanent(format!("smtp {n}"))
    } else {
        SendError::transient(format!("smtp {n}"))
    }
}

/// The configured transport plus what every message needs (sender, policy).
#[derive(Clone, Debug)]
pub struct Mailer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    transport: Transport,
    config: MailConfig,
}

fn smtp_transport(cfg: &SmtpConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let tls = || -> anyhow::Result<TlsParameters> {
        let mut params = TlsParameters::builder(cfg.host.clone());
        if let Some(pem) = &cfg.ca_pem {
            params = params.add_root_certificate(Certificate::from_pem(pem)?);
        }
        Ok(params.build()?)
    };
    let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host);
    let builder = match cfg.tls {
        TlsMode::None => builder.tls(Tls::None),
        // Required: a relay that does not offer STARTTLS gets nothing, rather than clear text.
        TlsMode::StartTls => builder.tls(Tls::Required(tls()?)),
        TlsMode::Tls => builder.tls(Tls::Wrapper(tls()?)),
    };
    let mut builder = builder.port(cfg.port).timeout(Some(cfg.timeout));
    if let (Some(user), Some(password)) = (&cfg.username, &cfg.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose_secret().to_owned(),
        ));
    }
    Ok(builder.build())
}

/// Create a directory readable by its owner only.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

impl Mailer {
    /// Build the transport from configuration; with no SMTP host, the file transport into
    /// `{data_dir}/mail/`, and a log line saying so.
    pub fn from_config(cfg: &MailConfig, data_dir: &Path) -> anyhow::Result<Self> {
        let transport = match &cfg.smtp {
            Some(smtp) => {
                tracing::info!(
                    host = %smtp.host,
                    port = smtp.port,
                    tls = ?smtp.tls,
                    authenticated = smtp.username.is_some(),
                    "e-mail is sent through SMTP"
                );
                Transport::Smtp(smtp_transport(smtp)?)
            }
            None => {
                let dir = data_dir.join("mail");
                private_dir(&dir).map_err(|e| {
                    anyhow::anyhow!("cannot create the mail directory {}: {e}", dir.display())
                })?;
                tracing::warn!(
                    dir = %dir.display(),
                    "SMTP_HOST is not set: e-mail is NOT sent; each message is written to this \
                     directory as an .eml file (development only)"
                );
                Transport::Files(dir)
            }
        };
        Ok(Self::new(transport, cfg.clone()))
    }

    /// A mailer over an explicit transport.
    pub fn new(transport: Transport, config: MailConfig) -> Self {
        Self {
            inner: Arc::new(Inner { transport, config }),
        }
    }

    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    pub fn config(&self) -> &MailConfig {
        &self.inner.config
    }

    /// The MIME message of a claimed row. `Message-ID` is derived from the outbox id, so a
    /// retry of the same row carries the same id (receivers can de-duplicate).
    pub fn build(&self, mail: &Claimed, now: OffsetDateTime) -> Result<lettre::Message, SendError> {
        let from: &Mailbox = &self.inner.config.from;
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| SendError::permanent("invalid recipient"))?;
        let builder = lettre::Message::builder()
            .from(from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .message_id(Some(format!("<{}@{}>", mail.id, from.email.domain())))
            .date(SystemTime::from(now))
            .header(AutoSubmitted);
        match &mail.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                html.clone(),
            )),
            None => builder
                .header(ContentType::TEXT_PLAIN)
                .body(mail.text.clone()),
        }
        .map_err(|_| SendError::permanent("unbuildable message"))
    }

    /// Send one claimed message.
    pub async fn deliver(&self, mail: &Claimed, now: OffsetDateTime) -> Result<(), SendError> {
        let message = self.build(mail, now)?;
        match &self.inner.transport {
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| classify(&e)),
            Transport::Files(dir) => {
                let bytes = message.formatted();
                let path = dir.join(format!("{}.eml", mail.id));
                let tmp = dir.join(format!(".{}.eml.tmp", mail.id));
                let write = async {
                    private_dir(dir)?;
                    tokio::fs::write(&tmp, &bytes).await?;
                    tokio::fs::rename(&tmp, &path).await
                };
                write
                    .await
                    .map_err(|_| SendError::transient("file write"))?;
                tracing::info!(mail = %mail.id, path = %path.display(), "mail written to file (no SMTP_HOST)");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn only_recipient_refusals_are_permanent() {
        for n in [550, 551, 553] {
            assert_eq!(classify_code(n), SendError::permanent(format!("smtp {n}")));
        }
        for n in [421, 450, 451, 452, 530, 535, 552, 554] {
            assert_eq!(classify_code(n), SendError::transient(format!("smtp {n}")));
        }
    }
}
