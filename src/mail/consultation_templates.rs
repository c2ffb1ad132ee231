//! The consultation e-mails (confirmation, request, cancellation, reschedule, reminders), in
//! English and French.
//!
//! Invariants:
//! - Discreet by construction: the subject and body state a time, a length, a way to meet and
//!   links, nothing else. No name of the other party, no specialty, no reason, nothing about
//!   care: an employee's address is often a work mailbox that others can read.
//! - Subjects say nothing but "Serein" and whether it is a reminder: a subject is what a
//!   delegate, a shared inbox or a mail gateway's log shows of a message without opening it.
//! - Times are written in the company's time zone, with its name (a person reading the mail in
//!   another zone can tell); an unknown zone falls back to UTC.

use jiff::tz::TimeZone;
use time::OffsetDateTime;

use super::templates::{Block, greeting, hours, minutes, signature};
use super::{ConsultationEvent, ConsultationMail};
use crate::tenants::model::Locale;

/// `2026-12-10 14:00 (Europe/Paris)` / `10/12/2026 à 14:00 (Europe/Paris)`.
pub(super) fn local_time(locale: Locale, t: OffsetDateTime, zone: &str) -> String {
    let (tz, name) = match TimeZone::get(zone) {
        Ok(tz) => (tz, zone),
        Err(_) => (TimeZone::UTC, "UTC"),
    };
    let Ok(ts) = jiff::Timestamp::from_second(t.unix_timestamp()) else {
        return t.to_string();
    };
    let z = ts.to_zoned_datetime(tz);
    let pattern = match locale {
        Locale::En => "%Y-%m-%d %H:%M",
        Locale::Fr => "%d/%m/%Y à %H:%M",
    };
    format!("{} ({name})", z.strftime(pattern))
}

/// "in 24 hours", "in 50 minutes": hours (rounded) from 90 minutes on.
fn within(l: Locale, m: u32) -> String {
    if m >= 90 {
        hours(l, (m + 30) / 60)
    } else {
        minutes(l, m)
    }
}

fn way(locale: Locale, kind: &str) -> &'static str {
    match (locale, kind) {
        (Locale::En, "video") => "by video",
        (Locale::En, "audio") => "by phone (audio)",
        (Locale::En, "chat") => "by chat",
        (Locale::En, _) => "in person",
        (Locale::Fr, "video") => "en visio",
        (Locale::Fr, "audio") => "par téléphone (audio)",
        (Locale::Fr, "chat") => "par messagerie",
        (Locale::Fr, _) => "en présentiel",
    }
}

pub(super) fn draft(c: &ConsultationMail, l: Locale) -> (String, Vec<Block>) {
    use Block::{Link, Para};
    let when = local_time(l, c.starts_at, &c.time_zone);
    let how = way(l, &c.kind);
    let length = minutes(l, c.length_minutes);
    let subject = match (c.event, l) {
        (ConsultationEvent::Reminder { .. }, Locale::En) => "Serein: a reminder",
        (ConsultationEvent::Reminder { .. }, Locale::Fr) => "Serein : un rappel",
        (_, Locale::En) => "Serein: an update for you",
        (_, Locale::Fr) => "Serein : du nouveau pour vous",
    }
    .to_owned();
    let lead = match (c.event, l) {
        (ConsultationEvent::Requested, Locale::En) => format!(
            "A session was booked with you for {when}, {length} {how}. Please confirm it or \
             suggest another time in Serein."
        ),
        (ConsultationEvent::Requested, Locale::Fr) => format!(
            "Une séance a été réservée avec vous le {when}, {length} {how}. Confirmez-la ou \
             proposez un autre horaire dans Serein."
        ),
        (ConsultationEvent::Confirmed, Locale::En) => {
            format!("Your session on {when} is confirmed: {length} {how}.")
        }
        (ConsultationEvent::Confirmed, Locale::Fr) => {
            format!("Votre séance du {when} est confirmée : {length} {how}.")
        }
        (ConsultationEvent::Cancelled, Locale::En) => {
            format!("The session planned for {when} was cancelled.")
        }
        (ConsultationEvent::Cancelled, Locale::Fr) => {
            format!("La séance prévue le {when} a été annulée.")
        }
        (ConsultationEvent::Rescheduled, Locale::En) => {
            format!("A session was moved to {when}: {length} {how}.")
        }
        (ConsultationEvent::Rescheduled, Locale::Fr) => {
            format!("Une séance a été déplacée au {when} : {length} {how}.")
        }
        (ConsultationEvent::Reminder { minutes: m }, Locale::En) => format!(
            "Your session starts in {}, on {when}: {length} {how}.",
            within(l, m)
        ),
        (ConsultationEvent::Reminder { minutes: m }, Locale::Fr) => format!(
            "Votre séance commence dans {}, le {when} : {length} {how}.",
            within(l, m)
        ),
    };
    let mut blocks = vec![greeting(l), Para(lead)];
    blocks.push(Para(
        match l {
            Locale::En => "Details in Serein:",
            Locale::Fr => "Les détails dans Serein :",
        }
        .to_owned(),
    ));
    blocks.push(Link(c.app_link.clone()));
    if let Some(cancel) = &c.cancel_link {
        blocks.push(Para(
            match l {
                Locale::En => {
                    "Can no longer make it? This link cancels the session (once, until it starts; \
                     a late cancellation may count as a used session):"
                }
                Locale::Fr => {
                    "Vous ne pouvez plus venir ? Ce lien annule la séance (une seule fois, jusqu’à \
                     son début ; une annulation tardive peut compter comme une séance utilisée) :"
                }
            }
            .to_owned(),
        ));
        blocks.push(Link(cancel.clone()));
    }
    blocks.push(signature(l));
    (subject, blocks)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_are_written_in_the_company_zone_across_dst() {
        // 13:00 UTC is 14:00 in Paris in winter and 15:00 in summer.
        assert_eq!(
            local_time(Locale::En, datetime!(2026-12-10 13:00 UTC), "Europe/Paris"),
            "2026-12-10 14:00 (Europe/Paris)"
        );
        assert_eq!(
            local_time(Locale::Fr, datetime!(2026-07-10 13:00 UTC), "Europe/Paris"),
            "10/07/2026 à 15:00 (Europe/Paris)"
        );
        assert_eq!(
            local_time(Locale::En, datetime!(2026-07-10 13:00 UTC), "Not/AZone"),
            "2026-07-10 13:00 (UTC)"
        );
    }
}
