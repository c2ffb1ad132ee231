//! A small RFC 5545 writer: CRLF line ends, lines folded at 75 octets (never inside a UTF-8
//! character), TEXT values escaped (`\\`, `;`, `,`, newlines).

use time::OffsetDateTime;
use time::macros::format_description;

/// An iCalendar document being written.
#[derive(Debug, Default)]
pub struct Calendar {
    out: String,
}

/// Escape a TEXT value.
pub fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            ';' => s.push_str("\\;"),
            ',' => s.push_str("\\,"),
            '\n' => s.push_str("\\n"),
            '\r' => {}
            c => s.push(c),
        }
    }
    s
}

/// A UTC date-time, `YYYYMMDDTHHMMSSZ`.
pub fn utc(t: OffsetDateTime) -> String {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

impl Calendar {
    /// One content line `NAME:value` (the value already escaped where it is TEXT), folded.
    pub fn line(&mut self, name: &str, value: &str) {
        let line = format!("{name}:{value}");
        let mut width = 0;
        for c in line.chars() {
            let n = c.len_utf8();
            if width + n > 75 {
                self.out.push_str("\r\n ");
                width = 1;
            }
            self.out.push(c);
            width += n;
        }
        self.out.push_str("\r\n");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_escaped_folded_at_75_octets_and_end_in_crlf() {
        assert_eq!(escape("a;b,c\\d\ne"), "a\\;b\\,c\\\\d\\ne");
        let mut cal = Calendar::default();
        let long = "é".repeat(60);
        cal.line("SUMMARY", &long);
        let out = cal.finish();
        assert!(out.ends_with("\r\n"));
        for physical in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(physical.len() <= 75, "{} octets", physical.len());
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded, format!("SUMMARY:{long}\r\n"));
        assert_eq!(
            utc(time::macros::datetime!(2027-03-28 09:00 +02:00)),
            "20270328T070000Z"
        );
    }
}
