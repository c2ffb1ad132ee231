//! E-mail templates: subject, plain text and a simple HTML alternative, in English and French.
//!
//! Each message is written once as a list of blocks (paragraphs and links) and rendered twice,
//! so the text and HTML parts can never say different things.
//!
//! Invariants:
//! - Everything interpolated into HTML is escaped ([`escape_html`]), attribute values included.
//! - Free text from people (tenant name, inviter name) is stripped of control characters
//!   (no header or line injection) and shortened before it reaches a subject or a body.
//! - Links are checked to be absolute http(s) URLs by [`super::Message::validate`] before a
//!   message is rendered; the templates put them in verbatim.

use std::fmt::Write as _;

use time::OffsetDateTime;
use time::macros::format_description;

use super::Message;
use crate::tenants::model::Locale;

/// A rendered message, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

pub(super) enum Block {
    Para(String),
    Link(String),
}

/// Longest piece of free text (tenant or inviter name) put into a message.
const MAX_NAME_CHARS: usize = 100;

/// Remove control characters (CR, LF, tabs, bidi controls are not control chars but harmless in
/// a quoted name) and trim to a bounded length.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Escape text for HTML element content and double- or single-quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn minutes(locale: Locale, n: u32) -> String {
    match (locale, n) {
        (Locale::En, 1) => "1 minute".to_owned(),
        (Locale::En, n) => format!("{n} minutes"),
        (Locale::Fr, n) if n <= 1 => format!("{n} minute"),
        (Locale::Fr, n) => format!("{n} minutes"),
    }
}

fn days(locale: Locale, n: u32) -> String {
    match (locale, n) {
        (Locale::En, 1) => "1 day".to_owned(),
        (Locale::En, n) => format!("{n} days"),
        (Locale::Fr, n) if n <= 1 => format!("{n} jour"),
        (Locale::Fr, n) => format!("{n} jours"),
    }
}

pub(super) fn hours(locale: Locale, n: u32) -> String {
    match (locale, n) {
        (Locale::En, 1) => "1 hour".to_owned(),
        (Locale::En, n) => format!("{n} hours"),
        (Locale::Fr, n) if n <= 1 => format!("{n} heure"),
        (Locale::Fr, n) => format!("{n} heures"),
    }
}

fn when(locale: Locale, t: OffsetDateTime) -> String {
    let utc = t.to_offset(time::UtcOffset::UTC);
    let formatted = match locale {
        Locale::En => utc.format(format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        )),
        Locale::Fr => utc.format(format_description!(
            "[day]/[month]/[year] à [hour]:[minute] UTC"
        )),
    };
    formatted.unwrap_or_else(|_| utc.to_string())
}

pub(super) fn signature(locale: Locale) -> Block {
    Block::Para(match locale {
        Locale::En => "— The Serein team".to_owned(),
        Locale::Fr => "— L’équipe Serein".to_owned(),
    })
}

pub(super) fn greeting(locale: Locale) -> Block {
    Block::Para(match locale {
        Locale::En => "Hello,".to_owned(),
        Locale::Fr => "Bonjour,".to_owned(),
    })
}

/// Subject and blocks of a message in a locale.
fn draft(message: &Message, locale: Locale) -> (String, Vec<Block>) {
    use Block::{Link, Para};
    let l = locale;
    match (message, l) {
        (Message::VerifyEmail { link }, Locale::En) => (
            "Confirm your email address".to_owned(),
            vec![
                greeting(l),
                Para("Please confirm your email address to finish setting up your Serein account:".into()),
                Link(link.clone()),
                Para("If you did not sign up, you can ignore this message.".into()),
                signature(l),
            ],
        ),
        (Message::VerifyEmail { link }, Locale::Fr) => (
            "Confirmez votre adresse e-mail".to_owned(),
            vec![
                greeting(l),
                Para("Confirmez votre adresse e-mail pour terminer la création de votre compte Serein :".into()),
                Link(link.clone()),
                Para("Si vous n’êtes pas à l’origine de cette inscription, ignorez ce message.".into()),
                signature(l),
            ],
        ),
        (Message::PasswordReset { link, expires_in_minutes }, Locale::En) => (
            "Reset your password".to_owned(),
            vec![
                greeting(l),
                Para(format!(
                    "We received a request to reset the password of your Serein account. \
                     This link works once and expires in {}:",
                    minutes(l, *expires_in_minutes)
                )),
                Link(link.clone()),
                Para("If you did not ask for this, ignore this message: your password stays unchanged.".into()),
                signature(l),
            ],
        ),
        (Message::PasswordReset { link, expires_in_minutes }, Locale::Fr) => (
            "Réinitialisez votre mot de passe".to_owned(),
            vec![
                greeting(l),
                Para(format!(
                    "Nous avons reçu une demande de réinitialisation du mot de passe de votre \
                     compte Serein. Ce lien ne fonctionne qu’une fois et expire dans {} :",
                    minutes(l, *expires_in_minutes)
                )),
                Link(link.clone()),
                Para("Si vous n’êtes pas à l’origine de cette demande, ignorez ce message : votre mot de passe reste inchangé.".into()),
                signature(l),
            ],
        ),
        (Message::AccountLocked { until, reset_link }, Locale::En) => (
            "Your account is temporarily locked".to_owned(),
            vec![
                greeting(l),
                Para(format!(
                    "After several failed sign-in attempts, signing in to your Serein account \
                     is blocked until {}.",
                    when(l, *until)
                )),
                Para("If this was you, wait until then or reset your password now:".into()),
                Link(reset_link.clone()),
                Para("If it was not you, someone may be trying to guess your password: resetting it is a good idea.".into()),
                signature(l),
            ],
        ),
        (Message::AccountLocked { until, reset_link }, Locale::Fr) => (
            "Votre compte est temporairement bloqué".to_owned(),
            vec![
                greeting(l),
                Para(format!(
                    "Après plusieurs tentatives de connexion échouées, la connexion à votre \
                     compte Serein est bloquée jusqu’au {}.",
                    when(l, *until)
                )),
                Para("Si c’était vous, patientez jusque-là ou réinitialisez votre mot de passe dès maintenant :".into()),
                Link(reset_link.clone()),
                Para("Si ce n’était pas vous, quelqu’un essaie peut-être de deviner votre mot de passe : mieux vaut le réinitialiser.".into()),
                signature(l),
            ],
        ),
        (
            Message::Invitation { link, tenant_name, inviter_name, expires_in_days },
            Locale::En,
        ) => {
            let tenant = clean(tenant_name);
            let who = inviter_name
                .as_deref()
                .map(clean)
                .filter(|n| !n.is_empty())
                .map_or_else(|| "You have been".to_owned(), |n| format!("{n} has"));
            (
                format!("You are invited to join {tenant} on Serein"),
                vec![
                    greeting(l),
                    Para(format!(
                        "{who} invited you to join {tenant} on Serein, the confidential \
                         wellbeing support offered to you. Your employer never sees what you \
                         do on Serein."
                    )),
                    Para(format!(
                        "Accept the invitation within {}:",
                        days(l, *expires_in_days)
                    )),
                    Link(link.clone()),
                    Para("If you were not expecting this invitation, you can ignore this message.".into()),
                    signature(l),
                ],
            )
        }
        (
            Message::Invitation { link, tenant_name, inviter_name, expires_in_days },
            Locale::Fr,
        ) => {
            let tenant = clean(tenant_name);
            let who = inviter_name
                .as_deref()
                .map(clean)
                .filter(|n| !n.is_empty())
                .map_or_else(|| "Vous êtes invité(e)".to_owned(), |n| format!("{n} vous invite"));
            (
                format!("Invitation à rejoindre {tenant} sur Serein"),
                vec![
                    greeting(l),
                    Para(format!(
                        "{who} à rejoindre {tenant} sur Serein, l’accompagnement confidentiel \
                         qui vous est proposé. Votre employeur ne voit jamais ce que vous \
                         faites sur Serein."
                    )),
                    Para(format!(
                        "Acceptez l’invitation dans un délai de {} :",
                        days(l, *expires_in_days)
                    )),
                    Link(link.clone()),
                    Para("Si vous n’attendiez pas cette invitation, ignorez ce message.".into()),
                    signature(l),
                ],
            )
        }
        (Message::AccountExists { login_link, reset_link }, Locale::En) => (
            "You already have a Serein account".to_owned(),
            vec![
                greeting(l),
                Para("Someone tried to create a Serein account with this email address, but you already have one. Sign in here:".into()),
                Link(login_link.clone()),
                Para("Forgot your password? Reset it here:".into()),
                Link(reset_link.clone()),
                Para("If this was not you, you can ignore this message: nothing has changed.".into()),
                signature(l),
            ],
        ),
        (Message::AccountExists { login_link, reset_link }, Locale::Fr) => (
            "Vous avez déjà un compte Serein".to_owned(),
            vec![
                greeting(l),
                Para("Quelqu’un a essayé de créer un compte Serein avec cette adresse e-mail, mais vous en avez déjà un. Connectez-vous ici :".into()),
                Link(login_link.clone()),
                Para("Mot de passe oublié ? Réinitialisez-le ici :".into()),
                Link(reset_link.clone()),
                Para("Si ce n’était pas vous, ignorez ce message : rien n’a changé.".into()),
                signature(l),
            ],
        ),
        (Message::PractitionerWelcome { link, expires_in_hours }, Locale::En) => (
            "Welcome to the Serein practitioner network".to_owned(),
            vec![
                greeting(l),
                Para("You have been added to the Serein practitioner network. Set your password to \
                      sign in; the companies you are assigned to will then show you in their \
                      directory, and you sign in on each of them with this one password.".into()),
                Para(format!(
                    "This link works once and expires in {}:",
                    hours(l, *expires_in_hours)
                )),
                Link(link.clone()),
                Para("If you were not expecting this, you can ignore this message.".into()),
                signature(l),
            ],
        ),
        (Message::PractitionerWelcome { link, expires_in_hours }, Locale::Fr) => (
            "Bienvenue dans le réseau de praticiens Serein".to_owned(),
            vec![
                greeting(l),
                Para("Vous avez été ajouté(e) au réseau de praticiens Serein. Choisissez votre mot \
                      de passe pour vous connecter ; les entreprises auxquelles vous êtes \
                      rattaché(e) vous afficheront alors dans leur annuaire, et vous vous \
                      connectez chez chacune avec ce seul mot de passe.".into()),
                Para(format!(
                    "Ce lien ne fonctionne qu’une fois et expire dans {} :",
                    hours(l, *expires_in_hours)
                )),
                Link(link.clone()),
                Para("Si vous n’attendiez pas ce message, ignorez-le.".into()),
                signature(l),
            ],
        ),
        (Message::PractitionerAddressInUse, Locale::En) => (
            "Your address was proposed for the Serein practitioner network".to_owned(),
            vec![
                greeting(l),
                Para("The Serein platform was asked to add this e-mail address to its practitioner \
                      network, but the address already has a Serein account, so nothing was \
                      created and your account was not changed. A practitioner of the network \
                      needs an address of their own: if you are joining as a practitioner, give \
                      the person who invited you another address.".into()),
                Para("If you were not expecting this, you can ignore this message.".into()),
                signature(l),
            ],
        ),
        (Message::PractitionerAddressInUse, Locale::Fr) => (
            "Votre adresse a été proposée au réseau de praticiens Serein".to_owned(),
            vec![
                greeting(l),
                Para("La plateforme Serein a été invitée à ajouter cette adresse e-mail à son réseau \
                      de praticiens, mais l’adresse a déjà un compte Serein : rien n’a été créé et \
                      votre compte n’a pas changé. Un praticien du réseau a besoin d’une adresse \
                      à lui : si vous rejoignez le réseau comme praticien, donnez une autre \
                      adresse à la personne qui vous a invité(e).".into()),
                Para("Si vous n’attendiez pas ce message, ignorez-le.".into()),
                signature(l),
            ],
        ),
        (Message::Consultation(c), l) => super::consultation_templates::draft(c, l),
        (Message::Digest(d), l) => super::digest_templates::draft(d, l),
    }
}

/// Render a message in a locale.
pub fn render(message: &Message, locale: Locale) -> Rendered {
    let (subject, blocks) = draft(message, locale);
    let text = blocks
        .iter()
        .map(|b| match b {
            Block::Para(p) => p.as_str(),
            Block::Link(u) => u.as_str(),
        })
        .collect::<Vec<_>>()
        .join("\n\n")
        + "\n";
    let mut html = String::with_capacity(text.len() * 2 + 400);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body style=\"font-family: sans-serif; line-height: 1.5; color: #222; max-width: 36em;\">\n",
        locale.as_str(),
        escape_html(&subject)
    );
    for b in &blocks {
        match b {
            Block::Para(p) => {
                let _ = writeln!(html, "<p>{}</p>", escape_html(p));
            }
            Block::Link(u) => {
                let u = escape_html(u);
                let _ = writeln!(html, "<p><a href=\"{u}\">{u}</a></p>");
            }
        }
    }
    html.push_str("</body>\n</html>\n");
    Rendered {
        subject,
        text,
        html,
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;

    fn samples() -> Vec<Message> {
        vec![
            Message::VerifyEmail {
                link: "https://acme.example/verify-email?token=u.s3cret".into(),
            },
            Message::PasswordReset {
                link: "https://acme.example/reset-password?token=u.r3set".into(),
                expires_in_minutes: 60,
            },
            Message::AccountLocked {
                until: time::macros::datetime!(2026-11-21 14:05 UTC),
                reset_link: "https://acme.example/forgot-password".into(),
            },
            Message::Invitation {
                link: "https://acme.example/invitations/abc".into(),
                tenant_name: "Acme".into(),
                inviter_name: Some("Dana".into()),
                expires_in_days: 7,
            },
            Message::AccountExists {
                login_link: "https://acme.example/login".into(),
                reset_link: "https://acme.example/forgot-password".into(),
            },
            Message::PractitionerWelcome {
                link: "https://localhost/set-password?token=u.w3lcome".into(),
                expires_in_hours: 72,
            },
            Message::PractitionerAddressInUse,
        ]
        .into_iter()
        .chain(
            [
                crate::mail::ConsultationEvent::Requested,
                crate::mail::ConsultationEvent::Confirmed,
                crate::mail::ConsultationEvent::Cancelled,
                crate::mail::ConsultationEvent::Rescheduled,
                crate::mail::ConsultationEvent::Reminder { minutes: 1440 },
                crate::mail::ConsultationEvent::Reminder { minutes: 60 },
            ]
            .map(|event| {
                Message::Consultation(crate::mail::ConsultationMail {
                    event,
                    starts_at: OffsetDateTime::UNIX_EPOCH,
                    time_zone: "Europe/Paris".into(),
                    length_minutes: 50,
                    kind: "video".into(),
                    app_link: "https://acme.example/consultations/1".into(),
                    cancel_link: (event == crate::mail::ConsultationEvent::Confirmed)
                        .then(|| "https://acme.example/cancel/abc".into()),
                })
            }),
        )
        .chain(std::iter::once(Message::Digest(crate::mail::DigestMail {
            counts: vec![
                ("message_received".into(), 2),
                ("consultation_reminder".into(), 1),
            ],
            app_link: "https://acme.example/notifications".into(),
        })))
        .collect()
    }

    #[test]
    fn every_template_renders_in_both_locales_with_its_links() {
        for m in samples() {
            let en = render(&m, Locale::En);
            let fr = render(&m, Locale::Fr);
            assert_ne!(
                en.subject, fr.subject,
                "{m:?}: French subject is not translated"
            );
            assert_ne!(en.text, fr.text);
            for r in [&en, &fr] {
                assert!(!r.subject.is_empty());
                for link in m.links() {
                    assert!(r.text.contains(link), "{m:?}: text lacks {link}");
                    assert!(
                        r.html.contains(&format!("href=\"{}\"", escape_html(link))),
                        "{m:?}: html lacks {link}"
                    );
                }
            }
            assert!(en.html.contains("lang=\"en\"") && fr.html.contains("lang=\"fr\""));
            assert!(en.text.starts_with("Hello,") && fr.text.starts_with("Bonjour,"));
        }
    }

    #[test]
    fn details_are_rendered() {
        let r = render(&samples()[1], Locale::Fr);
        assert!(r.text.contains("60 minutes"), "{}", r.text);
        let r = render(&samples()[2], Locale::En);
        assert!(r.text.contains("2026-11-21 14:05 UTC"), "{}", r.text);
        let r = render(&samples()[2], Locale::Fr);
        assert!(r.text.contains("21/11/2026 à 14:05 UTC"), "{}", r.text);
        let r = render(&samples()[3], Locale::En);
        assert_eq!(r.subject, "You are invited to join Acme on Serein");
        assert!(r.text.contains("Dana has invited you") && r.text.contains("7 days"));
        let r = render(&samples()[5], Locale::Fr);
        assert!(r.text.contains("72 heures"), "{}", r.text);
        let anonymous = Message::Invitation {
            link: "https://acme.example/i".into(),
            tenant_name: "Acme".into(),
            inviter_name: None,
            expires_in_days: 1,
        };
        let r = render(&anonymous, Locale::Fr);
        assert!(
            r.text.contains("Vous êtes invité(e) à rejoindre Acme") && r.text.contains("1 jour")
        );
    }

    #[test]
    fn interpolated_text_is_escaped_in_html_and_stripped_of_control_characters() {
        let m = Message::Invitation {
            link: "https://acme.example/i?a=1&b=\"2\"".into(),
            tenant_name: "<script>alert(1)</script>\r\nBcc: evil@example.com".into(),
            inviter_name: Some("O'Brien & <b>Co</b>".into()),
            expires_in_days: 3,
        };
        let r = render(&m, Locale::En);
        assert!(!r.subject.contains('\n') && !r.subject.contains('\r'));
        assert!(!r.html.contains("<script>"), "{}", r.html);
        assert!(!r.html.contains("<b>Co</b>"));
        assert!(r.html.contains("&lt;script&gt;"));
        assert!(r.html.contains("O&#39;Brien &amp; &lt;b&gt;Co&lt;/b&gt;"));
        assert!(
            r.html
                .contains("href=\"https://acme.example/i?a=1&amp;b=&quot;2&quot;\"")
        );
        // The plain text part carries the link verbatim.
        assert!(r.text.contains("https://acme.example/i?a=1&b=\"2\""));
        // Names are bounded.
        let long = Message::Invitation {
            link: "https://acme.example/i".into(),
            tenant_name: "x".repeat(5000),
            inviter_name: None,
            expires_in_days: 3,
        };
        assert!(render(&long, Locale::En).subject.len() < 200);
    }
}
