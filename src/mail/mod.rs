//! Transactional e-mail: an outbox in PostgreSQL, written in the caller's transaction, and a
//! worker that sends it over SMTP (or, in development, into `.eml` files).
//!
//! Invariants:
//! - [`enqueue`] only inserts a row through the caller's connection: the mail exists if and
//!   only if the caller's transaction commits. Nothing is sent from a request.
//! - The request role can insert outbox rows for its own tenant and do nothing else with them
//!   (migration `…07_email_outbox.sql`); the worker claims, and records outcomes, through
//!   `app_private` definer functions from a `WorkerTx` (role `serein_worker`), never a privileged connection.
//! - Delivery is at least once: a worker that dies after sending and before recording retries
//!   when the lease expires. Retries back off exponentially; after `SMTP_MAX_ATTEMPTS` (or a
//!   permanent refusal of the recipient) the row is `dead`.
//! - Rendered bodies (they hold single-use links) are purged once a row is sent or dead.
//! - Logs carry the outbox id, template, tenant and attempt, never an address's local part, a
//!   body, a subject line with a name in it, or a link.

pub mod config;
mod consultation_templates;
mod digest_templates;
pub mod outbox;
pub mod templates;
pub mod transport;
pub mod worker;

use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::db::TenantId;
use crate::error::AppError;
use crate::tenants::model::Locale;

pub use config::MailConfig;
pub use transport::{Mailer, Transport};
pub use worker::MailWorker;

/// What to send; rendered by templates in the recipient's locale.
#[derive(Debug, Clone)]
pub enum Message {
    VerifyEmail {
        link: String,
    },
    PasswordReset {
        link: String,
        expires_in_minutes: u32,
    },
    AccountLocked {
        until: OffsetDateTime,
        reset_link: String,
    },
    Invitation {
        link: String,
        tenant_name: String,
        inviter_name: Option<String>,
        expires_in_days: u32,
    },
    AccountExists {
        login_link: String,
        reset_link: String,
    },
    /// A new practitioner of the network: set your password (single-use link).
    PractitionerWelcome {
        link: String,
        expires_in_hours: u32,
    },
    /// The platform asked to add this address to the practitioner network, but it already has
    /// an account (nothing was created; the platform was not told).
    PractitionerAddressInUse,
    /// News of a consultation, told discreetly: a time, a length and a way to meet; never the
    /// other party's name, a specialty or anything about care (a work mailbox is not private).
    Consultation(ConsultationMail),
    /// The weekly summary of unread notifications for a person who has not signed in: counts
    /// per kind and a link, nothing else (no name, no time, no content).
    Digest(DigestMail),
}

/// What the digest may state: how many unread notifications of each kind, and where to read
/// them.
#[derive(Debug, Clone)]
pub struct DigestMail {
    /// (notification kind, unread count), in a stable order.
    pub counts: Vec<(String, u32)>,
    /// The notifications in the web app, on the company's host.
    pub app_link: String,
}

/// What happened to a consultation (the e-mail's template).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsultationEvent {
    /// A booking awaits the practitioner's confirmation (to the practitioner).
    Requested,
    Confirmed,
    Cancelled,
    Rescheduled,
    /// It starts in this many minutes (written in hours from 90 minutes on).
    Reminder {
        minutes: u32,
    },
}

/// The facts a consultation e-mail may state.
#[derive(Debug, Clone)]
pub struct ConsultationMail {
    pub event: ConsultationEvent,
    pub starts_at: OffsetDateTime,
    /// IANA name the time is written in (the company's time zone); UTC when unknown.
    pub time_zone: String,
    pub length_minutes: u32,
    /// `video`, `audio`, `chat` or `in_person`.
    pub kind: String,
    /// The consultation in the web app.
    pub app_link: String,
    /// The single-use public cancel link (the employee's confirmation and reschedule notices).
    pub cancel_link: Option<String>,
}

impl Message {
    /// The template's name, as stored in `email_outbox.template`.
    pub fn template(&self) -> &'static str {
        match self {
            Message::VerifyEmail { .. } => "verify_email",
            Message::PasswordReset { .. } => "password_reset",
            Message::AccountLocked { .. } => "account_locked",
            Message::Invitation { .. } => "invitation",
            Message::AccountExists { .. } => "account_exists",
            Message::PractitionerWelcome { .. } => "practitioner_welcome",
            Message::PractitionerAddressInUse => "practitioner_address_in_use",
            Message::Consultation(c) => match c.event {
                ConsultationEvent::Requested => "consultation_requested",
                ConsultationEvent::Confirmed => "consultation_confirmed",
                ConsultationEvent::Cancelled => "consultation_cancelled",
                ConsultationEvent::Rescheduled => "consultation_rescheduled",
                ConsultationEvent::Reminder { .. } => "consultation_reminder",
            },
            Message::Digest(_) => "notification_digest",
        }
    }

    /// Every link the message carries.
    pub fn links(&self) -> Vec<&str> {
        match self {
            Message::VerifyEmail { link }
            | Message::PasswordReset { link, .. }
            | Message::Invitation { link, .. }
            | Message::PractitionerWelcome { link, .. } => vec![link.as_str()],
            Message::AccountLocked { reset_link, .. } => vec![reset_link.as_str()],
            Message::AccountExists {
                login_link,
                reset_link,
            } => vec![login_link.as_str(), reset_link.as_str()],
            Message::PractitionerAddressInUse => vec![],
            Message::Digest(d) => vec![d.app_link.as_str()],
            Message::Consultation(c) => std::iter::once(c.app_link.as_str())
                .chain(c.cancel_link.as_deref())
                .collect(),
        }
    }

    /// Every link is an absolute http(s) URL (a `javascript:` or relative link would be a bug
    /// in the caller; refuse it rather than mail it).
    pub fn validate(&self) -> Result<(), AppError> {
        for link in self.links() {
            match url::Url::parse(link) {
                Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.has_host() => {}
                _ => {
                    return Err(AppError::Internal(format!(
                        "{}: a link is not an absolute http(s) URL",
                        self.template()
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Queue a message in the caller's transaction (sent only if it commits).
///
/// `conn` must be a [`crate::db::TenantTx`] of `tenant` (row-level security refuses a row for
/// any other tenant). `to` must be a valid address (the callers pass a parsed `Email`).
pub async fn enqueue(
    conn: &mut PgConnection,
    tenant: TenantId,
    to: &str,
    locale: Locale,
    message: &Message,
    now: OffsetDateTime,
) -> Result<(), AppError> {
    message.validate()?;
    let to = deliverable(to)?;
    let rendered = templates::render(message, locale);
    let id = outbox::insert(
        conn,
        &outbox::NewMail {
            tenant,
            to,
            locale,
            template: message.template(),
            rendered: &rendered,
            now,
        },
    )
    .await?;
    tracing::debug!(mail = %id, %tenant, template = message.template(), "mail queued");
    Ok(())
}

/// The recipient, if the SMTP layer can address it. An address the caller's own validation let
/// through but that cannot be put in an envelope is the client's input, so this is a 422 on the
/// `email` field (not a 500, and the same answer whether or not an account exists).
pub fn deliverable(to: &str) -> Result<&str, AppError> {
    let to = to.trim();
    if to.len() <= 254 && to.parse::<lettre::Address>().is_ok() {
        Ok(to)
    } else {
        Err(AppError::invalid(
            "email",
            "is not a deliverable e-mail address",
        ))
    }
}

/// The domain of an address, for logs (the local part identifies a person).
pub fn address_domain(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn links_must_be_absolute_http_urls() {
        for bad in [
            "javascript:alert(1)",
            "/reset?token=x",
            "ftp://acme.example/x",
            "",
        ] {
            let m = Message::VerifyEmail { link: bad.into() };
            assert!(m.validate().is_err(), "{bad}");
        }
        let ok = Message::AccountExists {
            login_link: "https://acme.example/login".into(),
            reset_link: "http://acme.localhost:8080/forgot-password".into(),
        };
        ok.validate().unwrap();
        let half = Message::AccountExists {
            login_link: "https://acme.example/login".into(),
            reset_link: "data:text/html,hi".into(),
        };
        assert!(half.validate().is_err());
    }

    #[test]
    fn undeliverable_recipients_are_a_validation_error() {
        assert_eq!(
            deliverable(" a.b+c@acme.example ").unwrap(),
            "a.b+c@acme.example"
        );
        for bad in [
            "a,b@acme.example",
            "a b@acme.example",
            "<a@acme.example>",
            "a@acme.example\r\nBcc: x@evil.example",
            "no-at-sign",
            "",
        ] {
            assert!(
                matches!(deliverable(bad), Err(AppError::Validation(_))),
                "{bad:?}"
            );
        }
        let long = format!("{}@acme.example", "a".repeat(250));
        assert!(deliverable(&long).is_err());
    }

    #[test]
    fn only_the_domain_of_an_address_is_logged() {
        assert_eq!(address_domain("alice@acme.example"), "acme.example");
        assert_eq!(address_domain("nonsense"), "");
    }
}
