//! Settings of e-mail: the SMTP relay (host, port, TLS mode, credentials), the sender, and the
//! worker's retry and polling policy. Parsed and validated once, with the rest of
//! [`crate::config::Config`].
//!
//! Invariants: with no `SMTP_HOST`, mail goes to `.eml` files under the data directory (dev);
//! `SMTP_TLS=none` (credentials and bodies in clear) is refused for anything but a loopback
//! relay unless `SMTP_ALLOW_PLAINTEXT=true`; `starttls` is required, not opportunistic; the
//! relay's certificate is always verified (web PKI roots, plus `SMTP_TLS_CA_FILE` for a private
//! CA; there is no switch to accept invalid certificates); the password is a secret, never
//! echoed.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{ConfigError, Settings, config_error};

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain SMTP (loopback relays, tests).
    None,
    /// STARTTLS, required (the connection fails rather than continue in clear).
    StartTls,
    /// Implicit TLS from the first byte (SMTPS, port 465).
    Tls,
}

impl TlsMode {
    fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "starttls" => Ok(Self::StartTls),
            "tls" => Ok(Self::Tls),
            other => Err(format!("expected none, starttls or tls, got {other:?}")),
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Self::None => 25,
            Self::StartTls => 587,
            Self::Tls => 465,
        }
    }
}

/// The SMTP relay.
#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// Extra trusted roots (PEM), for a relay with a private CA; the public web PKI roots are
    /// trusted either way.
    pub ca_pem: Option<Vec<u8>>,
    /// Connect and command timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "[set]"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Validated e-mail settings.
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `None`: development file transport (`{data_dir}/mail/*.eml`).
    pub smtp: Option<SmtpConfig>,
    /// The `From:` mailbox (`Serein <no-reply@{BASE_DOMAIN}>` by default).
    pub from: lettre::message::Mailbox,
    /// Attempts before a message is declared dead.
    pub max_attempts: u32,
    /// First retry delay; doubled on each further failure, up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// Poll interval of the worker.
    pub poll: Duration,
    /// Whether `serve` runs the worker (tests drive it by hand).
    pub worker: bool,
    /// How long sent and dead rows (metadata only) are kept.
    pub retention: Duration,
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn secs(
    s: &Settings<'_>,
    name: &str,
    default: u64,
    lo: u64,
    hi: u64,
) -> Result<Duration, ConfigError> {
    s.int(name, default, lo, hi).map(Duration::from_secs)
}

impl MailConfig {
    pub fn load(s: &Settings<'_>, base_domain: &str) -> Result<Self, ConfigError> {
        let host = s.opt("SMTP_HOST", |v| {
            if v.len() > 253 || v.contains(|c: char| c.is_whitespace() || c == '/') {
                Err("expected a host name or IP address".to_owned())
            } else {
                Ok(v.to_owned())
            }
        })?;
        let tls = s.get("SMTP_TLS", TlsMode::StartTls, TlsMode::parse)?;
        let port = s.int("SMTP_PORT", u64::from(tls.default_port()), 1, 65_535)?;
        let username = s.opt("SMTP_USERNAME", |v| Ok(v.to_owned()))?;
        let mut password = s.secret("SMTP_PASSWORD");
        if let Some(path) = s.opt("SMTP_PASSWORD_FILE", |v| Ok(PathBuf::from(v)))? {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                config_error(
                    "SMTP_PASSWORD_FILE",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            password = Some(SecretString::from(text.trim().to_owned()));
        }
        let ca_pem = match s.opt("SMTP_TLS_CA_FILE", |v| Ok(PathBuf::from(v)))? {
            None => None,
            Some(path) => {
                let pem = std::fs::read(&path).map_err(|e| {
                    config_error(
                        "SMTP_TLS_CA_FILE",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let certs = lettre::transport::smtp::client::Certificate::from_pem(&pem);
                if certs.is_err() || !pem.windows(17).any(|w| w == b"BEGIN CERTIFICATE") {
                    return Err(config_error(
                        "SMTP_TLS_CA_FILE",
                        format!("{} holds no PEM certificate", path.display()),
                    ));
                }
                Some(pem)
            }
        };
        let allow_plaintext = s.flag("SMTP_ALLOW_PLAINTEXT", false)?;
        let timeout = secs(s, "SMTP_TIMEOUT_SECS", 30, 1, 300)?;
        let smtp = match host {
            None => {
                if username.is_some() || password.is_some() {
                    return Err(config_error(
                        "SMTP_HOST",
                        "SMTP credentials are set but SMTP_HOST is not",
                    ));
                }
                None
            }
            Some(host) => {
                if username.is_some() != password.is_some() {
                    return Err(config_error(
                        "SMTP_USERNAME",
                        "SMTP_USERNAME and SMTP_PASSWORD go together",
                    ));
                }
                if tls == TlsMode::None && !is_loopback(&host) && !allow_plaintext {
                    return Err(config_error(
                        "SMTP_TLS",
                        "none (plain text) is only allowed for a loopback relay; use starttls or \
                         tls, or set SMTP_ALLOW_PLAINTEXT=true for a trusted network",
                    ));
                }
                Some(SmtpConfig {
                    host,
                    port: u16::try_from(port).unwrap_or(25),
                    tls,
                    username,
                    password,
                    ca_pem,
                    timeout,
                })
            }
        };
        let default_from = format!("Serein <no-reply@{base_domain}>");
        let from = s.get("MAIL_FROM", None, |v| {
            v.parse::<lettre::message::Mailbox>()
                .map(Some)
                .map_err(|_| {
                    "expected a mailbox such as \"Serein <no-reply@example.com>\"".to_owned()
                })
        })?;
        let from = match from {
            Some(f) => f,
            None => default_from.parse().map_err(|_| {
                config_error(
                    "MAIL_FROM",
                    format!("the default {default_from:?} is not a valid mailbox; set MAIL_FROM"),
                )
            })?,
        };
        let retry_base = secs(s, "MAIL_RETRY_BASE_SECS", 60, 1, 86_400)?;
        let retry_cap = secs(s, "MAIL_RETRY_MAX_SECS", 3_600, 1, 7 * 86_400)?;
        if retry_cap < retry_base {
            return Err(config_error(
                "MAIL_RETRY_MAX_SECS",
                "must not be below MAIL_RETRY_BASE_SECS",
            ));
        }
        Ok(Self {
            smtp,
            from,
            max_attempts: u32::try_from(s.int("SMTP_MAX_ATTEMPTS", 8, 1, 100)?).unwrap_or(8),
            retry_base,
            retry_cap,
            poll: Duration::from_millis(s.int("MAIL_POLL_MS", 2_000, 10, 600_000)?),
            worker: s.flag("MAIL_WORKER", true)?,
            retention: Duration::from_secs(
                s.int("MAIL_RETENTION_DAYS", 30, 1, 3_650)?
                    .saturating_mul(86_400),
            ),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::HashMap;

    use super::MailConfig;
    use crate::config::{ConfigError, Settings};

    fn load(pairs: &[(&str, &str)]) -> Result<MailConfig, ConfigError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let s = Settings::open(&m)?;
        MailConfig::load(&s, &s.base_domain()?)
    }

    #[test]
    fn defaults_use_the_file_transport_and_the_base_domain() {
        let c = load(&[]).unwrap();
        assert!(c.smtp.is_none());
        assert_eq!(c.from.to_string(), "Serein <no-reply@localhost>");
        assert_eq!(c.max_attempts, 8);
        assert!(c.worker);
        let c = load(&[("BASE_DOMAIN", "serein.example")]).unwrap();
        assert_eq!(c.from.email.domain(), "serein.example");
    }

    #[test]
    fn smtp_settings_are_validated() {
        let c = load(&[("SMTP_HOST", "smtp.example.com")]).unwrap();
        let smtp = c.smtp.unwrap();
        assert_eq!((smtp.port, smtp.tls), (587, super::TlsMode::StartTls));
        let c = load(&[("SMTP_HOST", "smtp.example.com"), ("SMTP_TLS", "tls")]).unwrap();
        assert_eq!(c.smtp.unwrap().port, 465);
        // Plain text only to a loopback relay, unless forced.
        let e = load(&[("SMTP_HOST", "smtp.example.com"), ("SMTP_TLS", "none")])
            .err()
            .unwrap();
        assert_eq!(e.name, "SMTP_TLS");
        for host in ["localhost", "127.0.0.1", "::1"] {
            load(&[("SMTP_HOST", host), ("SMTP_TLS", "none")]).unwrap();
        }
        load(&[
            ("SMTP_HOST", "mail.internal"),
            ("SMTP_TLS", "none"),
            ("SMTP_ALLOW_PLAINTEXT", "true"),
        ])
        .unwrap();
        let e = load(&[("SMTP_TLS", "ssl")]).err().unwrap();
        assert_eq!(e.name, "SMTP_TLS");
        let e = load(&[("SMTP_HOST", "smtp.example.com"), ("SMTP_USERNAME", "u")])
            .err()
            .unwrap();
        assert_eq!(e.name, "SMTP_USERNAME");
        let e = load(&[("MAIL_FROM", "not an address")]).err().unwrap();
        assert_eq!(e.name, "MAIL_FROM");
        let e = load(&[("SMTP_MAX_ATTEMPTS", "0")]).err().unwrap();
        assert_eq!(e.name, "SMTP_MAX_ATTEMPTS");
    }

    #[test]
    fn the_password_never_reaches_debug_output() {
        let c = load(&[
            ("SMTP_HOST", "smtp.example.com"),
            ("SMTP_USERNAME", "mailer"),
            ("SMTP_PASSWORD", "hunter2-smtp"),
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
