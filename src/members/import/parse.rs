//! Streaming CSV reading for the member import (RFC 4180 through `csv-core`).
//!
//! The body arrives in chunks of any size; [`CsvStream::feed`] hands each complete record to a
//! callback and keeps only the record being read (bounded by [`MAX_RECORD_BYTES`]), so a file
//! of any length is read in constant memory.
//!
//! Invariants and decisions:
//! - A UTF-8 byte-order mark at the start is skipped. Fields are bytes here; the caller decodes
//!   them (invalid UTF-8 is a row error there, never a panic or a 500).
//! - The separator is `,` or `;`, whichever occurs more often in the header line outside
//!   quotes (`,` when neither does). The header line is read whole before anything else, up to
//!   [`MAX_HEADER_BYTES`].
//! - Quoted fields may hold separators, doubled quotes and line breaks; records end with LF,
//!   CRLF or CR. Empty lines are skipped.
//! - A record's row number is the line of the file where it starts, counting line feeds, with
//!   the header as row 1: what a text editor shows. A quoted line break inside a record moves
//!   the following rows down one line.
//! - `csv-core` never fails: a stray quote is read as text. A record longer than
//!   [`MAX_RECORD_BYTES`] (typically an unclosed quote swallowing the rest of the file) or with
//!   more than [`MAX_FIELDS`] fields refuses the whole file.

use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

use crate::error::{AppError, FieldError};

/// The columns of the file, in the order this module names them.
pub const COLUMNS: [&str; 5] = ["email", "first_name", "last_name", "department", "role"];

/// Longest header line accepted.
pub const MAX_HEADER_BYTES: usize = 4 * 1024;
/// Longest record accepted (the fields of a valid row take a few hundred bytes).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Most fields a record may have.
pub const MAX_FIELDS: usize = 64;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One record, borrowed from the reader's buffer.
pub struct Record<'a> {
    /// The line where the record starts (the header is 1).
    pub line: u64,
    buf: &'a [u8],
    ends: &'a [usize],
}

impl<'a> Record<'a> {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The raw bytes of field `i`.
    pub fn field(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { *self.ends.get(i - 1)? };
        self.buf.get(start..end)
    }

    /// Every field empty or blank (a spreadsheet's trailing `,,,,` line).
    pub fn is_blank(&self) -> bool {
        (0..self.len()).all(|i| {
            self.field(i)
                .is_none_or(|f| f.iter().all(u8::is_ascii_whitespace))
        })
    }
}

/// Where the header's columns are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Index in the record of each of [`COLUMNS`].
    pub index: [usize; 5],
    /// How many fields every row must have.
    pub width: usize,
}

impl Header {
    /// Read the header record: exactly the five columns, in any order, case-insensitive,
    /// trimmed. Every problem is named (422 on the `header` field).
    pub fn parse(record: &Record<'_>) -> Result<Self, AppError> {
        let mut index: [Option<usize>; 5] = [None; 5];
        let mut errors = Vec::new();
        for i in 0..record.len() {
            let raw = record.field(i).unwrap_or_default();
            let name = String::from_utf8_lossy(raw).trim().to_lowercase();
            match COLUMNS.iter().position(|c| *c == name) {
                Some(c) => match index.get_mut(c) {
                    Some(slot @ None) => *slot = Some(i),
                    _ => errors.push(header_error(format!("column \"{name}\" appears twice"))),
                },
                None if name.is_empty() => {
                    errors.push(header_error(format!("column {} has no name", i + 1)));
                }
                None => errors.push(header_error(format!(
                    "unknown column \"{}\" (expected {})",
                    printable(&name),
                    COLUMNS.join(", ")
                ))),
            }
        }
        for (c, slot) in COLUMNS.iter().zip(index.iter()) {
            if slot.is_none() {
                errors.push(header_error(format!("missing column \"{c}\"")));
            }
        }
        match index {
            [Some(a), Some(b), Some(c), Some(d), Some(e)] if errors.is_empty() => Ok(Self {
                index: [a, b, c, d, e],
                width: record.len(),
            }),
            _ => Err(AppError::Validation(errors)),
        }
    }
}

fn header_error(reason: String) -> FieldError {
    FieldError {
        field: "header".into(),
        reason,
    }
}

/// A refusal of the whole file (not of one row).
pub fn file_error(reason: impl Into<String>) -> AppError {
    AppError::invalid("file", reason)
}

/// A bounded, control-free rendering of text taken from the file, for error messages.
pub fn printable(s: &str) -> String {
    let short: String = s.chars().filter(|c| !c.is_control()).take(40).collect();
    if s.chars().count() > 40 {
        format!("{short}…")
    } else {
        short
    }
}

/// The separator of a header line, if `prefix` holds the whole line (or `eof`).
fn header_separator(prefix: &[u8], eof: bool) -> Option<u8> {
    let (mut quoted, mut commas, mut semicolons) = (false, 0usize, 0usize);
    let mut complete = eof;
    // Blank lines before the header are skipped by the reader too.
    let start = prefix
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    for &b in prefix.get(start..).unwrap_or_default() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => {
                complete = true;
                break;
            }
            b',' if !quoted => commas += 1,
            b';' if !quoted => semicolons += 1,
            _ => {}
        }
    }
    complete.then_some(if semicolons > commas { b';' } else { b',' })
}

/// The incremental reader (see the module header).
pub struct CsvStream {
    /// Bytes held until the header line is complete (then the reader is built).
    prefix: Vec<u8>,
    reader: Option<Reader>,
    /// The separator chosen from the header line.
    separator: u8,
    out: Vec<u8>,
    out_len: usize,
    ends: [usize; MAX_FIELDS],
    ends_len: usize,
    /// Line feeds consumed so far.
    newlines: u64,
    /// Between records (blank lines are skipped here, so `record_line` is exact).
    at_boundary: bool,
    record_line: u64,
}

impl Default for CsvStream {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvStream {
    pub fn new() -> Self {
        Self {
            prefix: Vec::new(),
            reader: None,
            separator: b',',
            out: vec![0; 1024],
            out_len: 0,
            ends: [0; MAX_FIELDS],
            ends_len: 0,
            newlines: 0,
            at_boundary: true,
            record_line: 1,
        }
    }

    /// The separator detected from the header (`,` until then).
    #[cfg(test)]
    pub fn separator(&self) -> u8 {
        self.separator
    }

    /// Read a chunk of the body, calling `sink` for every complete record.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        sink: &mut impl FnMut(&Record<'_>) -> Result<(), AppError>,
    ) -> Result<(), AppError> {
        if chunk.is_empty() {
            return Ok(());
        }
        if self.reader.is_some() {
            return self.run(chunk, false, sink);
        }
        self.prefix.extend_from_slice(chunk);
        self.start(false, sink)
    }

    /// End of the body: read what is left and the last record.
    pub fn finish(
        &mut self,
        sink: &mut impl FnMut(&Record<'_>) -> Result<(), AppError>,
    ) -> Result<(), AppError> {
        if self.reader.is_none() {
            self.start(true, sink)?;
        }
        if self.reader.is_none() {
            return Err(file_error("the file is empty (expected a header row)"));
        }
        self.run(&[], true, sink)
    }

    /// Build the reader once the header line is complete, and read what was held back.
    fn start(
        &mut self,
        eof: bool,
        sink: &mut impl FnMut(&Record<'_>) -> Result<(), AppError>,
    ) -> Result<(), AppError> {
        if !eof && self.prefix.len() < BOM.len() && BOM.starts_with(&self.prefix) {
            return Ok(());
        }
        if self.prefix.starts_with(BOM) {
            self.prefix.drain(..BOM.len());
        }
        if eof && self.prefix.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            return Ok(());
        }
        let Some(separator) = header_separator(&self.prefix, eof) else {
            if self.prefix.len() > MAX_HEADER_BYTES {
                return Err(file_error(format!(
                    "the header line is longer than {MAX_HEADER_BYTES} bytes"
                )));
            }
            return Ok(());
        };
        self.separator = separator;
        self.reader = Some(ReaderBuilder::new().delimiter(separator).build());
        let held = std::mem::take(&mut self.prefix);
        self.run(&held, false, sink)
    }

    fn run(
        &mut self,
        mut input: &[u8],
        eof: bool,
        sink: &mut impl FnMut(&Record<'_>) -> Result<(), AppError>,
    ) -> Result<(), AppError> {
        loop {
            if self.at_boundary {
                let skip = input
                    .iter()
                    .take_while(|b| matches!(b, b'\r' | b'\n'))
                    .count();
                let (blank, rest) = input.split_at(skip);
                self.newlines += count_lf(blank);
                input = rest;
                self.record_line = self.newlines + 1;
            }
            // An empty input tells csv-core the data has ended: only at the real end.
            if input.is_empty() && !eof {
                return Ok(());
            }
            let Some(reader) = self.reader.as_mut() else {
                return Ok(());
            };
            let (res, nin, nout, nend) = reader.read_record(
                input,
                self.out.get_mut(self.out_len..).unwrap_or_default(),
                self.ends.get_mut(self.ends_len..).unwrap_or_default(),
            );
            let (consumed, rest) = input.split_at(nin.min(input.len()));
            self.newlines += count_lf(consumed);
            input = rest;
            self.out_len += nout;
            self.ends_len += nend;
            if nin > 0 {
                self.at_boundary = false;
            }
            match res {
                ReadRecordResult::InputEmpty => {
                    if eof {
                        // csv-core answers `End` (or the last record) to an empty input;
                        // this is not reached, but never loop.
                        return Ok(());
                    }
                }
                ReadRecordResult::OutputFull => {
                    if self.out.len() >= MAX_RECORD_BYTES {
                        return Err(file_error(format!(
                            "row {} is longer than {} KiB (is a quoted field left open?)",
                            self.record_line,
                            MAX_RECORD_BYTES / 1024
                        )));
                    }
                    let len = (self.out.len() * 2).min(MAX_RECORD_BYTES);
                    self.out.resize(len, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    return Err(file_error(format!(
                        "row {} has more than {MAX_FIELDS} fields",
                        self.record_line
                    )));
                }
                ReadRecordResult::Record => {
                    let record = Record {
                        line: self.record_line,
                        buf: self.out.get(..self.out_len).unwrap_or_default(),
                        ends: self.ends.get(..self.ends_len).unwrap_or_default(),
                    };
                    let result = sink(&record);
                    self.out_len = 0;
                    self.ends_len = 0;
                    self.at_boundary = true;
                    result?;
                }
                ReadRecordResult::End => return Ok(()),
            }
        }
    }
}

fn count_lf(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|b| **b == b'\n').count() as u64
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    /// Every record as (line, fields), feeding `input` in chunks of `chunk` bytes.
    fn read(input: &[u8], chunk: usize) -> Result<Vec<(u64, Vec<String>)>, AppError> {
        let mut out = Vec::new();
        let mut s = CsvStream::new();
        let mut sink = |r: &Record<'_>| {
            out.push((
                r.line,
                (0..r.len())
                    .map(|i| String::from_utf8(r.field(i).unwrap().to_vec()).unwrap())
                    .collect(),
            ));
            Ok(())
        };
        for c in input.chunks(chunk) {
            s.feed(c, &mut sink)?;
        }
        s.finish(&mut sink)?;
        Ok(out)
    }

    #[test]
    fn same_records_whatever_the_chunk_size() {
        let input = "\u{feff}email;first_name;role\r\n\
                     a@x.test;\"Ann; \"\"the\"\"\nfirst\";hr\r\n\
                     \r\n\
                     b@x.test;Bob;employee"
            .as_bytes();
        let want = vec![
            (1, vec!["email".into(), "first_name".into(), "role".into()]),
            (
                2,
                vec!["a@x.test".into(), "Ann; \"the\"\nfirst".into(), "hr".into()],
            ),
            (5, vec!["b@x.test".into(), "Bob".into(), "employee".into()]),
        ];
        for chunk in [1, 2, 3, 5, 7, 64, 4096] {
            assert_eq!(read(input, chunk).unwrap(), want, "chunk {chunk}");
        }
    }

    #[test]
    fn separator_is_detected_outside_quotes() {
        let mut s = CsvStream::new();
        s.feed(b"\"a,b,c\";x;y\n", &mut |_| Ok(())).unwrap();
        assert_eq!(s.separator(), b';');
        let mut s = CsvStream::new();
        s.feed(b"\"a;b;c\",x,y\n", &mut |_| Ok(())).unwrap();
        assert_eq!(s.separator(), b',');
    }

    #[test]
    fn empty_files_and_runaway_records_are_refused() {
        assert!(read(b"", 8).is_err());
        assert!(read(b"\xEF\xBB\xBF\r\n", 8).is_err());
        let mut open = b"email\n\"".to_vec();
        open.extend(std::iter::repeat_n(b'a', MAX_RECORD_BYTES + 10));
        let e = read(&open, 4096).err().unwrap();
        assert!(format!("{:?}", e.problem().errors).contains("row 2"));
    }

    #[test]
    fn header_names_every_problem() {
        let mut s = CsvStream::new();
        let mut got = None;
        s.feed(b"Email , ROLE,role,nick\n", &mut |r| {
            got = Some(Header::parse(r));
            Ok(())
        })
        .unwrap();
        let AppError::Validation(errors) = got.unwrap().unwrap_err() else {
            panic!("not a validation error")
        };
        let reasons: Vec<_> = errors.iter().map(|e| e.reason.as_str()).collect();
        assert!(reasons.contains(&"column \"role\" appears twice"));
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("unknown column \"nick\""))
        );
        assert!(reasons.contains(&"missing column \"first_name\""));
        assert!(reasons.contains(&"missing column \"department\""));
    }
}
