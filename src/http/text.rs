//! The text rules every input obeys, whichever door it comes through (query string, path,
//! JSON body at any depth, jsonb included).
//!
//! Invariants: no NUL and no C0/C1 control character other than tab, line feed and carriage
//! return reaches a handler (PostgreSQL refuses NUL in `text` and `jsonb`, and control
//! characters served back on public pages confuse terminals, logs and readers). Fields that are
//! one line on screen (names, branding, search terms) additionally refuse tab and line breaks and
//! the Unicode bidirectional overrides that make a name display as something else.

/// Refused in every input: NUL and the control characters except `\t`, `\n`, `\r`.
pub fn is_refused(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Does `s` hold a character refused in every input?
pub fn has_refused(s: &str) -> bool {
    s.chars().any(is_refused)
}

/// Refused in a single-line field: every control character (tab and line breaks included),
/// the Unicode line and paragraph separators, and the bidirectional embedding, override and
/// isolate controls (U+202A–U+202E, U+2066–U+2069).
pub fn is_refused_in_line(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// Is `s` fit for a single-line field (see [`is_refused_in_line`])?
pub fn is_single_line(s: &str) -> bool {
    !s.chars().any(is_refused_in_line)
}

/// A single-line text field: trimmed, 1..=`max_chars` characters, see [`is_single_line`].
/// The reason, if refused, names the rule.
pub fn single_line(raw: &str, max_chars: usize) -> Result<String, String> {
    let s = raw.trim();
    if s.is_empty() || s.chars().count() > max_chars {
        return Err(format!("must be 1-{max_chars} characters"));
    }
    if !is_single_line(s) {
        return Err("must not contain control characters or line breaks".to_owned());
    }
    Ok(s.to_owned())
}

/// Percent-decode `s` (as a URI path or query component; `+` is left alone) to check it; bytes
/// that are not UTF-8 become U+FFFD.
pub fn percent_decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|h| (*h as char).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn refused_characters() {
        assert!(has_refused("a\u{0}b"));
        assert!(has_refused("a\u{1b}[31m"));
        assert!(has_refused("\u{7f}"));
        assert!(has_refused("\u{85}"));
        assert!(!has_refused("two\nlines\tand\r\n"));
        assert!(!has_refused("Zoë 🌿"));
        assert!(!is_single_line("a\tb"));
        assert!(!is_single_line("evil\u{202E}gpj.exe"));
        assert!(is_single_line("Zoë O'Brien-Łukasz"));
        assert_eq!(single_line("  Ana  ", 10).unwrap(), "Ana");
        assert!(single_line("   ", 10).is_err());
        assert!(single_line("abcdefghijk", 10).is_err());
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decoded("a%00b"), "a\u{0}b");
        assert_eq!(percent_decoded("%41%4a%zz%"), "AJ%zz%");
        assert_eq!(percent_decoded("caf%C3%A9+x"), "café+x");
        assert_eq!(percent_decoded("%ff"), "\u{fffd}");
    }
}
