//! CSV responses, for every export (one writer): RFC 4180, UTF-8, streamed.
//!
//! Invariants:
//! - Records end with CRLF; a field is quoted when it holds the delimiter, a double quote, CR or
//!   LF (quotes doubled inside), or when it was neutralised (below).
//! - Formula injection is neutralised (OWASP "CSV injection"): a field that starts with `=`,
//!   `+`, `-`, `@`, tab, CR or LF — what a spreadsheet would run as a formula — gets a leading
//!   `'` and is quoted, so it reads as text. Department names, practitioner and company names
//!   are typed by people; numbers we write never start with one of these.
//! - Options for spreadsheet users: `?bom=true` starts the body with a UTF-8 byte order mark
//!   (Excel then reads UTF-8), `?delimiter=semicolon` separates with `;` (locales whose decimal
//!   separator is a comma).
//! - The body is streamed: the producer writes records into a [`CsvSink`] (a bounded channel,
//!   flushed in chunks of about 16 KiB) while the client reads. A producer that fails after the
//!   answer started aborts the body, so the client sees a broken transfer, never a short file
//!   that looks complete.
//! - `Content-Disposition: attachment` with a file name of `[A-Za-z0-9._-]` only.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use crate::error::AppError;

/// The field separator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delimiter {
    #[default]
    Comma,
    Semicolon,
}

impl Delimiter {
    /// `comma` (default) or `semicolon`; anything else is 422.
    pub fn parse(field: &str, raw: Option<&str>) -> Result<Self, AppError> {
        match raw {
            None | Some("comma") => Ok(Self::Comma),
            Some("semicolon") => Ok(Self::Semicolon),
            Some(_) => Err(AppError::invalid(field, "must be comma or semicolon")),
        }
    }

    fn byte(self) -> u8 {
        match self {
            Self::Comma => b',',
            Self::Semicolon => b';',
        }
    }
}

/// How to write a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CsvFormat {
    pub delimiter: Delimiter,
    /// Start with a UTF-8 byte order mark.
    pub bom: bool,
}

/// The UTF-8 byte order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Characters a spreadsheet reads as the start of a formula.
fn starts_formula(field: &str) -> bool {
    field.starts_with(['=', '+', '-', '@', '\t', '\r', '\n'])
}

/// Append one record (CRLF-terminated) to `out`.
pub fn write_record<S: AsRef<str>>(out: &mut Vec<u8>, fields: &[S], delimiter: Delimiter) {
    let sep = delimiter.byte();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        let field = field.as_ref();
        let neutralise = starts_formula(field);
        let quote = neutralise
            || field
                .bytes()
                .any(|b| b == sep || b == b'"' || b == b'\r' || b == b'\n');
        if quote {
            out.push(b'"');
        }
        if neutralise {
            out.push(b'\'');
        }
        for b in field.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        if quote {
            out.push(b'"');
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// A file name safe in a quoted `Content-Disposition` parameter: `[A-Za-z0-9._-]`, others
/// replaced by `_`.
fn safe_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Chunks the body is sent in.
const CHUNK: usize = 16 * 1024;

/// The producer's end of a streamed CSV body.
pub struct CsvSink {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
    delimiter: Delimiter,
}

/// The client went away: stop producing.
#[derive(Debug)]
pub struct Closed;

impl CsvSink {
    /// Write one record; sends a chunk when enough is buffered.
    pub async fn record<S: AsRef<str>>(&mut self, fields: &[S]) -> Result<(), Closed> {
        write_record(&mut self.buf, fields, self.delimiter);
        if self.buf.len() >= CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Closed> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.send(Ok(chunk)).await.map_err(|_| Closed)
    }

    /// Send what is left: the file is complete.
    pub async fn finish(mut self) -> Result<(), Closed> {
        self.flush().await
    }

    /// The producer failed: abort the body (the client sees a broken transfer).
    pub async fn fail(self, why: &str) {
        tracing::warn!(why, "CSV export aborted");
        let _ = self
            .tx
            .send(Err(std::io::Error::other("export aborted")))
            .await;
    }
}

/// A `200 text/csv` attachment named `file_name`, and the sink its body is read from. The
/// caller spawns the producer; the body ends when the sink is finished or dropped.
pub fn attachment(file_name: &str, format: CsvFormat) -> (Response, CsvSink) {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let mut res = (StatusCode::OK, body).into_response();
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}\"",
        safe_file_name(file_name)
    )) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    let buf = if format.bom { BOM.to_vec() } else { Vec::new() };
    (
        res,
        CsvSink {
            tx,
            buf,
            delimiter: format.delimiter,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(fields: &[&str], d: Delimiter) -> String {
        let mut out = Vec::new();
        write_record(&mut out, fields, d);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn quotes_only_what_needs_it_and_doubles_quotes() {
        assert_eq!(line(&["a", "b c", "12"], Delimiter::Comma), "a,b c,12\r\n");
        assert_eq!(
            line(&["a,b", "say \"hi\"", "x\ny"], Delimiter::Comma),
            "\"a,b\",\"say \"\"hi\"\"\",\"x\ny\"\r\n"
        );
        assert_eq!(
            line(&["a,b", "c;d"], Delimiter::Semicolon),
            "a,b;\"c;d\"\r\n"
        );
        assert_eq!(line(&["", ""], Delimiter::Comma), ",\r\n");
    }

    #[test]
    fn formula_starts_are_neutralised_and_quoted() {
        for f in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "\nx"] {
            let out = line(&[f], Delimiter::Comma);
            assert!(out.starts_with("\"'"), "{f:?} → {out:?}");
        }
        assert_eq!(line(&["a=b"], Delimiter::Comma), "a=b\r\n");
    }

    #[test]
    fn file_names_are_confined() {
        assert_eq!(
            safe_file_name("usage-acme-2026-01.csv"),
            "usage-acme-2026-01.csv"
        );
        assert_eq!(safe_file_name("a\"b/c d.csv"), "a_b_c_d.csv");
    }
}
