//! CSV records with their exact line numbers and byte offsets, for everything that reads a CSV a
//! person wrote (import files, deletion jobs' user IDs) and must name the line of a bad row, or
//! resume after one: the `csv` crate's record positions count lines lazily (a record after a CRLF
//! or a blank line reports an earlier line), so records are cut here at whole lines (a line ending
//! inside an open quoted field continues the record) and only then parsed by `csv-core`.

use std::io::BufRead;

/// How far reading has come: bytes and lines consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub offset: u64,
    pub lines: u64,
}

/// One record: the unescaped bytes of its fields.
#[derive(Debug, Clone, Default)]
pub struct CsvRecord {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl CsvRecord {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The fields, in order.
    pub fn fields(&self) -> Vec<&[u8]> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let field = &self.bytes[start..end];
                start = end;
                field
            })
            .collect()
    }
}

/// A record, or why it is not valid CSV.
pub type Parsed = Result<CsvRecord, String>;

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("cannot be read: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line} starts a record of more than {max} bytes")]
    TooLong { line: u64, max: usize },
}

/// The records of a CSV text, from where `input` stands (`Position` says what came before it).
pub struct CsvRecords<R> {
    input: R,
    parser: Box<csv_core::Reader>,
    at: Position,
    max_record_bytes: usize,
}

impl<R: BufRead> CsvRecords<R> {
    /// Records of `input`, which starts at `at` of its file (the default: its beginning).
    pub fn new(input: R, at: Position, max_record_bytes: usize) -> Self {
        CsvRecords { input, parser: Box::new(csv_core::Reader::new()), at, max_record_bytes }
    }

    /// What has been consumed: where a reader resumes after the last record returned.
    pub fn position(&self) -> Position {
        self.at
    }

    /// The next record and the line it starts on, skipping blank lines; the inner `Err` is a
    /// record that is not valid CSV (its reason), after which reading may go on.
    pub fn next_record(&mut self) -> Result<Option<(u64, Parsed)>, CsvError> {
        loop {
            let mut buf = Vec::new();
            let line = self.at.lines + 1;
            loop {
                let room = (self.max_record_bytes + 1).saturating_sub(buf.len()) as u64;
                let read = std::io::Read::take(&mut self.input, room).read_until(b'\n', &mut buf)?;
                if read == 0 {
                    break;
                }
                self.at.offset += read as u64;
                if buf.last() == Some(&b'\n') {
                    self.at.lines += 1;
                }
                if buf.len() > self.max_record_bytes {
                    return Err(CsvError::TooLong { line, max: self.max_record_bytes });
                }
                if quotes(&buf).is_multiple_of(2) && buf.last() == Some(&b'\n') {
                    break;
                }
            }
            if buf.is_empty() {
                return Ok(None);
            }
            if buf.last() != Some(&b'\n') {
                self.at.lines += 1; // the last line, without its newline
            }
            if buf.iter().all(|b| matches!(b, b'\r' | b'\n')) {
                continue;
            }
            if !quotes(&buf).is_multiple_of(2) {
                return Ok(Some((line, Err("a quoted field is still open at the end of the file".into()))));
            }
            return Ok(Some((line, self.split(&buf))));
        }
    }

    /// The fields of one whole record (RFC 4180: `,` separated, `"` quoted with `""` escapes).
    fn split(&mut self, buf: &[u8]) -> Result<CsvRecord, String> {
        use csv_core::ReadRecordResult as R;
        // Unescaped output is never longer than the input, nor are there more fields than commas + 1.
        let mut bytes = vec![0; buf.len()];
        let mut ends = vec![0; buf.iter().filter(|b| **b == b',').count() + 1];
        let (mut input, mut written, mut fields) = (buf, 0, 0);
        loop {
            let (result, nin, nout, nend) = self.parser.read_record(input, &mut bytes[written..], &mut ends[fields..]);
            input = &input[nin..];
            written += nout;
            fields += nend;
            match result {
                R::Record | R::End => break,
                R::InputEmpty if !input.is_empty() => {}
                // Every byte given: an empty input tells the parser the record ended.
                R::InputEmpty => {
                    let (result, _, nout, nend) =
                        self.parser.read_record(&[], &mut bytes[written..], &mut ends[fields..]);
                    written += nout;
                    fields += nend;
                    if !matches!(result, R::Record | R::End) {
                        return Err("not valid CSV".into());
                    }
                    break;
                }
                R::OutputFull | R::OutputEndsFull => return Err("not valid CSV".into()),
            }
        }
        if !input.iter().all(|b| matches!(b, b'\r' | b'\n')) {
            // Cannot happen (a record is cut where its quotes balance at a line's end); if it
            // did, the parser would be mid-record: start it afresh.
            *self.parser = csv_core::Reader::new();
            return Err("not valid CSV".into());
        }
        bytes.truncate(written);
        ends.truncate(fields);
        Ok(CsvRecord { bytes, ends })
    }
}

fn quotes(buf: &[u8]) -> usize {
    buf.iter().filter(|b| **b == b'"').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &[u8], at: Position) -> Vec<(u64, Result<Vec<String>, String>, Position)> {
        let mut r = CsvRecords::new(&text[at.offset as usize..], at, 1 << 20);
        let mut out = Vec::new();
        while let Some((line, rec)) = r.next_record().unwrap() {
            let rec = rec.map(|r| r.fields().iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect());
            out.push((line, rec, r.position()));
        }
        out
    }

    #[test]
    fn lines_are_exact_with_crlf_blank_lines_and_quoted_newlines() {
        for nl in ["\n", "\r\n"] {
            let text = format!("H,I{nl}a,b{nl}{nl}\"x{nl}y\",\"q\"\"\"{nl}c,d{nl}e,\"open");
            let rows = all(text.as_bytes(), Position::default());
            let lines: Vec<u64> = rows.iter().map(|r| r.0).collect();
            assert_eq!(lines, [1, 2, 4, 6, 7], "{nl:?}");
            assert_eq!(rows[2].1.as_ref().unwrap(), &[format!("x{nl}y"), "q\"".to_owned()]);
            assert!(rows[4].1.as_ref().unwrap_err().contains("still open"));
            // Resuming after a record reads what followed it, with the same line numbers.
            let rest = all(text.as_bytes(), rows[1].2);
            assert_eq!(rest.iter().map(|r| r.0).collect::<Vec<_>>(), [4, 6, 7]);
        }
    }

    #[test]
    fn quoting_is_read_as_the_csv_crate_reads_it() {
        // Lenient where RFC 4180 is silent, as the csv crate (and Python's csv) are.
        let rows = all(b"\"a\"b,c\nd,\"\"\n", Position::default());
        assert_eq!(rows[0].1.as_ref().unwrap(), &["ab", "c"]);
        assert_eq!(rows[1].1.as_ref().unwrap(), &["d", ""]);
    }

    #[test]
    fn an_oversized_record_stops_reading() {
        let mut r = CsvRecords::new(&b"a,b\nccccccccccc\n"[..], Position::default(), 8);
        assert!(r.next_record().unwrap().is_some());
        assert!(matches!(r.next_record(), Err(CsvError::TooLong { line: 2, max: 8 })));
    }
}
