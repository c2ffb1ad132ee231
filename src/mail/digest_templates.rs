//! The digest of unread notifications (issue 13, item 4), in English and French.
//!
//! Invariants:
//! - Counts per kind and one link, nothing else: no name (of a practitioner, an employee or a
//!   company), no time, no specialty, no message content. The subject is as bland as the
//!   consultation mails' (a shared inbox shows it unopened).
//! - Every kind of the preferences matrix has a label in both languages (tested); a kind this
//!   file does not know is counted under "other updates", never dropped or printed raw.

use super::DigestMail;
use super::templates::{Block, greeting, signature};
use crate::tenants::model::Locale;

/// A kind's label, `None` when unknown.
fn label(l: Locale, kind: &str) -> Option<&'static str> {
    Some(match (l, kind) {
        (Locale::En, "consultation_requested") => "sessions awaiting your confirmation",
        (Locale::Fr, "consultation_requested") => "séances en attente de votre confirmation",
        (Locale::En, "consultation_confirmed") => "confirmed sessions",
        (Locale::Fr, "consultation_confirmed") => "séances confirmées",
        (Locale::En, "consultation_cancelled") => "cancelled sessions",
        (Locale::Fr, "consultation_cancelled") => "séances annulées",
        (Locale::En, "consultation_rescheduled") => "moved sessions",
        (Locale::Fr, "consultation_rescheduled") => "séances déplacées",
        (Locale::En, "consultation_reminder") => "session reminders",
        (Locale::Fr, "consultation_reminder") => "rappels de séance",
        (Locale::En, "message_received") => "conversations with new messages",
        (Locale::Fr, "message_received") => "conversations avec de nouveaux messages",
        _ => return None,
    })
}

fn other(l: Locale) -> &'static str {
    match l {
        Locale::En => "other updates",
        Locale::Fr => "autres nouvelles",
    }
}

pub(super) fn draft(d: &DigestMail, l: Locale) -> (String, Vec<Block>) {
    use Block::{Link, Para};
    let subject = match l {
        Locale::En => "Serein: unread notifications",
        Locale::Fr => "Serein : notifications non lues",
    }
    .to_owned();
    let total: u32 = d.counts.iter().map(|(_, n)| *n).sum();
    let mut lines: Vec<(&'static str, u32)> = Vec::new();
    let mut others = 0u32;
    for (kind, n) in &d.counts {
        match label(l, kind) {
            Some(text) => lines.push((text, *n)),
            None => others = others.saturating_add(*n),
        }
    }
    if others > 0 {
        lines.push((other(l), others));
    }
    let lead = match l {
        Locale::En => format!("You have {total} unread notification(s) in Serein:"),
        Locale::Fr => format!("Vous avez {total} notification(s) non lue(s) dans Serein :"),
    };
    let mut blocks = vec![greeting(l), Para(lead)];
    blocks.extend(
        lines
            .into_iter()
            .map(|(text, n)| Para(format!("• {text}{}{n}", colon(l)))),
    );
    blocks.push(Para(
        match l {
            Locale::En => "Read them in Serein:",
            Locale::Fr => "Lisez-les dans Serein :",
        }
        .to_owned(),
    ));
    blocks.push(Link(d.app_link.clone()));
    blocks.push(Para(
        match l {
            Locale::En => {
                "You receive this summary because you have not signed in for a while. You can \
                 turn it off in your notification preferences."
            }
            Locale::Fr => {
                "Vous recevez ce résumé parce que vous ne vous êtes pas connecté(e) depuis un \
                 moment. Vous pouvez le désactiver dans vos préférences de notification."
            }
        }
        .to_owned(),
    ));
    blocks.push(signature(l));
    (subject, blocks)
}

/// English has no space before a colon; French has one.
fn colon(l: Locale) -> &'static str {
    match l {
        Locale::En => ": ",
        Locale::Fr => " : ",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::mail::{Message, templates::render};

    /// Every notification kind (the `notifications_kind_check` list, also the preferences
    /// matrix's kinds but `digest`).
    const KINDS: &[&str] = &[
        "consultation_requested",
        "consultation_confirmed",
        "consultation_cancelled",
        "consultation_rescheduled",
        "consultation_reminder",
        "message_received",
    ];

    fn digest(counts: &[(&str, u32)]) -> Message {
        Message::Digest(DigestMail {
            counts: counts.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
            app_link: "https://acme.example/notifications".into(),
        })
    }

    #[test]
    fn every_kind_has_a_label_in_both_languages() {
        for kind in KINDS {
            let en = label(Locale::En, kind).unwrap();
            let fr = label(Locale::Fr, kind).unwrap();
            assert_ne!(en, fr, "{kind}");
            let counts: Vec<(&str, u32)> = vec![(kind, 3)];
            let r = render(&digest(&counts), Locale::Fr);
            assert!(r.text.contains(&format!("• {fr} : 3")), "{}", r.text);
            let r = render(&digest(&counts), Locale::En);
            assert!(r.text.contains(&format!("• {en}: 3")), "{}", r.text);
        }
    }

    #[test]
    fn counts_add_up_and_unknown_kinds_are_other_updates() {
        let m = digest(&[("message_received", 2), ("brand_new_kind", 4), ("x<b>", 1)]);
        let r = render(&m, Locale::En);
        assert!(r.text.contains("You have 7 unread"), "{}", r.text);
        assert!(r.text.contains("• other updates: 5"), "{}", r.text);
        assert!(!r.text.contains("brand_new_kind") && !r.html.contains("<b>"));
        let r = render(&m, Locale::Fr);
        assert!(r.text.contains("Vous avez 7 notification(s) non lue(s)"));
        assert_eq!(r.subject, "Serein : notifications non lues");
        assert!(r.html.contains("lang=\"fr\""));
    }
}
