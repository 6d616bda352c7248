//! The aws-cli shorthand grammar (`eventType=click,impression=a,b,c`).
//!
//! This follows aws-cli v1's `awscli/shorthand.py` step for step, including
//! its backtracking csv lists, the `key@=file://…` form, and the exact error
//! text with its caret line, because users see those messages verbatim.
//! Indexes count Unicode code points, as Python's do, so carets line up.

use crate::pyjson::{py_isspace, DictKind, Value};

/// A shorthand syntax error; `Display` is aws-cli's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShorthandError(pub String);

/// Why parsing stopped: a grammar error, or a file that `@=` could not load
/// (which aws-cli reports without the `Error parsing parameter` prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseFailure {
    /// A syntax error (`Expected: '=', received: …`).
    Syntax(ShorthandError),
    /// `key@=file://…` failed to load; the text is the loader's message.
    File(String),
}

/// Loads `file://` / `fileb://` values for `key@=` pairs; `None` means the
/// value has no file prefix and stays literal.
pub type FileLoader<'a> = &'a dyn Fn(&str) -> Result<Option<Value>, String>;

/// Parses one shorthand structure into a plain dict.
pub fn parse(input: &str, loader: FileLoader<'_>) -> Result<Value, ParseFailure> {
    let mut parser = Parser { s: input.chars().collect(), i: 0, resolve_paramfiles: false, loader };
    parser.parameter()
}

enum Err {
    /// `ShorthandParseSyntaxError`: the only kind `_csv_value` backtracks on.
    Syntax(String),
    Duplicate(String),
    File(String),
}

struct Parser<'a> {
    s: Vec<char>,
    i: usize,
    resolve_paramfiles: bool,
    loader: FileLoader<'a>,
}

/// Characters a bare value may start with (`_START_WORD`).
fn start_word(c: char) -> bool {
    matches!(c as u32, 0x21 | 0x23..=0x26 | 0x28..=0x2b | 0x2d..=0x3c | 0x3e..=0x5a | 0x5c..=0x7a | 0x7c..=0xffff)
}

/// Characters that may follow in a first value (`_FIRST_FOLLOW_CHARS`).
fn first_follow(c: char) -> bool {
    py_isspace(c) || matches!(c as u32, 0x21 | 0x23..=0x26 | 0x28..=0x2b | 0x2d..=0x5c | 0x5e..=0x7c | 0x7e..=0xffff)
}

/// Characters that may follow in a csv continuation (`_SECOND_FOLLOW_CHARS`).
fn second_follow(c: char) -> bool {
    py_isspace(c) || matches!(c as u32, 0x21 | 0x23..=0x26 | 0x28..=0x2b | 0x2d..=0x3c | 0x3e..=0xffff)
}

fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '#' | '/' | ':')
}

fn string_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn rstrip(s: &str) -> String {
    s.trim_end_matches(py_isspace).to_owned()
}

impl Parser<'_> {
    fn parameter(&mut self) -> Result<Value, ParseFailure> {
        self.parameter_inner().map_err(|e| match e {
            Err::Syntax(m) | Err::Duplicate(m) => ParseFailure::Syntax(ShorthandError(m)),
            Err::File(m) => ParseFailure::File(m),
        })
    }

    fn parameter_inner(&mut self) -> Result<Value, Err> {
        let mut params: Vec<(String, Value)> = Vec::new();
        let (key, value) = self.keyval()?;
        params.push((key, value));
        let mut last_index = self.i;
        while self.i < self.s.len() {
            self.expect(',', true)?;
            let (key, value) = self.keyval()?;
            if params.iter().any(|(k, _)| *k == key) {
                return Err(Err::Duplicate(format!(
                    "Second instance of key \"{key}\" encountered for input:\n{}\nThis is often because there is a preceding \",\" instead of a space.",
                    self.error_location(last_index + 1)
                )));
            }
            params.push((key, value));
            last_index = self.i;
        }
        Ok(Value::Dict(params, DictKind::Plain))
    }

    fn keyval(&mut self) -> Result<(String, Value), Err> {
        let key = self.key();
        self.resolve_paramfiles = false;
        if self.expect('@', true).is_ok() {
            self.resolve_paramfiles = true;
        }
        self.expect('=', true)?;
        let values = self.values()?;
        Ok((key, values))
    }

    fn key(&mut self) -> String {
        let start = self.i;
        while self.i < self.s.len() && key_char(self.s[self.i]) {
            self.i += 1;
        }
        self.s[start..self.i].iter().collect()
    }

    fn values(&mut self) -> Result<Value, Err> {
        match self.current() {
            None => Ok(Value::Str(String::new())),
            Some('[') => self.explicit_list(),
            Some('{') => self.hash_literal(),
            Some(_) => self.csv_value(),
        }
    }

    fn csv_value(&mut self) -> Result<Value, Err> {
        let first_value = self.first_value()?;
        self.consume_whitespace();
        if self.at_eof() || self.s[self.i] != ',' {
            return Ok(first_value);
        }
        self.expect(',', true)?;
        let mut csv_list = vec![first_value.clone()];
        loop {
            let attempt = (|| {
                let current = self.second_value()?;
                self.consume_whitespace();
                if self.at_eof() {
                    return Ok((current, true));
                }
                self.expect(',', true)?;
                Ok((current, false))
            })();
            match attempt {
                Ok((current, done)) => {
                    csv_list.push(current);
                    if done {
                        break;
                    }
                }
                Err(Err::Syntax(msg)) => {
                    if self.at_eof() {
                        return Err(Err::Syntax(msg));
                    }
                    self.backtrack_to(',');
                    break;
                }
                Err(other) => return Err(other),
            }
        }
        if csv_list.len() == 1 {
            return Ok(first_value);
        }
        Ok(Value::List(csv_list))
    }

    fn explicit_list(&mut self) -> Result<Value, Err> {
        self.expect('[', true)?;
        let mut values = Vec::new();
        while self.current() != Some(']') {
            values.push(self.explicit_values()?);
            self.consume_whitespace();
            if self.current() != Some(']') {
                self.expect(',', false)?;
                self.consume_whitespace();
            }
        }
        self.expect(']', false)?;
        Ok(Value::List(values))
    }

    fn explicit_values(&mut self) -> Result<Value, Err> {
        match self.current() {
            Some('[') => self.explicit_list(),
            Some('{') => self.hash_literal(),
            _ => self.first_value(),
        }
    }

    fn hash_literal(&mut self) -> Result<Value, Err> {
        self.expect('{', true)?;
        let mut keyvals: Vec<(String, Value)> = Vec::new();
        while self.current() != Some('}') {
            let key = self.key();
            self.resolve_paramfiles = false;
            if self.expect('@', true).is_ok() {
                self.resolve_paramfiles = true;
            }
            self.expect('=', true)?;
            let value = self.explicit_values()?;
            self.consume_whitespace();
            if self.current() != Some('}') {
                self.expect(',', false)?;
                self.consume_whitespace();
            }
            crate::pyjson::dict_set(&mut keyvals, &key, value);
        }
        self.expect('}', false)?;
        Ok(Value::Dict(keyvals, DictKind::Plain))
    }

    fn first_value(&mut self) -> Result<Value, Err> {
        match self.current() {
            Some('\'') => self.quoted('\'', "singled quoted"),
            Some('"') => self.quoted('"', "double quoted"),
            _ => {
                let consumed = self.match_word(first_follow);
                match consumed {
                    Some(word) => self.resolve(rstrip(&word.replace("\\,", ","))),
                    None => Ok(Value::Str(String::new())),
                }
            }
        }
    }

    fn second_value(&mut self) -> Result<Value, Err> {
        match self.current() {
            Some('\'') => self.quoted('\'', "singled quoted"),
            Some('"') => self.quoted('"', "double quoted"),
            _ => match self.match_word(second_follow) {
                Some(word) => self.resolve(rstrip(&word.replace("\\,", ","))),
                None => Err(self.syntax("<second>", "<none>".into(), self.i)),
            },
        }
    }

    /// Matches `((\\,)|[start])((\\,)|[follow])*` at the cursor.
    fn match_word(&mut self, follow: fn(char) -> bool) -> Option<String> {
        let s = &self.s;
        let mut j = self.i;
        let escaped_comma = |j: usize| s.get(j) == Some(&'\\') && s.get(j + 1) == Some(&',');
        if escaped_comma(j) {
            j += 2;
        } else if s.get(j).is_some_and(|&c| start_word(c)) {
            j += 1;
        } else {
            return None;
        }
        loop {
            if escaped_comma(j) {
                j += 2;
            } else if s.get(j).is_some_and(|&c| follow(c)) {
                j += 1;
            } else {
                break;
            }
        }
        let word: String = s[self.i..j].iter().collect();
        self.i = j;
        Some(word)
    }

    /// Matches a quoted value: `'(?:\\\\|\\'|[^'])*'` and its `"` twin.
    fn quoted(&mut self, quote: char, name: &str) -> Result<Value, Err> {
        let s = &self.s;
        // Python's regex backtracks, so the match ends at the last position
        // where a closing quote can end it; scanning greedily and keeping the
        // furthest unescaped-or-escaped quote reproduces that.
        let mut j = self.i + 1;
        let mut last_end = None;
        while j < s.len() {
            if s[j] == '\\' && j + 1 < s.len() && (s[j + 1] == '\\' || s[j + 1] == quote) {
                // An escaped quote can also serve as `\` + closing quote.
                if s[j + 1] == quote {
                    last_end = Some(j + 2);
                }
                j += 2;
                continue;
            }
            if s[j] == quote {
                last_end = Some(j + 1);
                break;
            }
            j += 1;
        }
        let Some(end) = last_end else {
            return Err(self.syntax(&format!("<{name}>"), "<none>".into(), self.i));
        };
        let body: String = s[self.i + 1..end - 1].iter().collect();
        self.i = end;
        let body = body.replace(&format!("\\{quote}"), &quote.to_string()).replace("\\\\", "\\");
        self.resolve(body)
    }

    fn resolve(&mut self, value: String) -> Result<Value, Err> {
        if !self.resolve_paramfiles {
            return Ok(Value::Str(value));
        }
        match (self.loader)(&value) {
            Ok(Some(loaded)) => Ok(loaded),
            Ok(None) => Ok(Value::Str(value)),
            Err(msg) => Err(Err::File(msg)),
        }
    }

    fn expect(&mut self, c: char, consume_whitespace: bool) -> Result<(), Err> {
        if consume_whitespace {
            self.consume_whitespace();
        }
        let Some(&actual) = self.s.get(self.i) else {
            return Err(self.syntax(&c.to_string(), "EOF".into(), self.i));
        };
        if actual != c {
            return Err(self.syntax(&c.to_string(), actual.to_string(), self.i));
        }
        self.i += 1;
        if consume_whitespace {
            self.consume_whitespace();
        }
        Ok(())
    }

    fn syntax(&self, expected: &str, actual: String, index: usize) -> Err {
        Err::Syntax(format!("Expected: '{expected}', received: '{actual}' for input:\n{}", self.error_location(index)))
    }

    fn error_location(&self, index: usize) -> String {
        let s = &self.s;
        let index = index.min(s.len());
        let mut consumed: String = s.iter().collect();
        let mut remaining = String::new();
        let mut num_spaces = index;
        if let Some(nl) = s[..index].iter().rposition(|&c| c == '\n') {
            num_spaces = index - nl - 1;
        }
        if let Some(off) = s[index..].iter().position(|&c| c == '\n') {
            let next_newline = index + off;
            consumed = s[..next_newline].iter().collect();
            remaining = s[next_newline..].iter().collect();
        }
        format!("{consumed}\n{}^{remaining}", " ".repeat(num_spaces))
    }

    fn current(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn at_eof(&self) -> bool {
        self.i >= self.s.len()
    }

    fn backtrack_to(&mut self, c: char) {
        // Python's loop stops at index -1 reading s[-1]; the callers always
        // have a comma behind them, so the cursor never underflows here.
        while self.i > 0 && self.s.get(self.i) != Some(&c) {
            self.i -= 1;
        }
    }

    fn consume_whitespace(&mut self) {
        while self.current().is_some_and(string_whitespace) {
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyjson::dumps;

    fn no_files(_: &str) -> Result<Option<Value>, String> {
        Ok(None)
    }

    fn ok(input: &str) -> String {
        dumps(&parse(input, &no_files).unwrap(), None)
    }

    fn err(input: &str) -> String {
        match parse(input, &no_files).unwrap_err() {
            ParseFailure::Syntax(ShorthandError(m)) | ParseFailure::File(m) => m,
        }
    }

    #[test]
    fn parses_like_aws_cli() {
        let cases: &[(&str, &str)] = &[
            ("eventType=click,sentAt=1700000000", r#"{"eventType": "click", "sentAt": "1700000000"}"#),
            ("eventType=add to cart", r#"{"eventType": "add to cart"}"#),
            ("eventType=click  ,sentAt=1", r#"{"eventType": "click", "sentAt": "1"}"#),
            ("eventId=a=b", r#"{"eventId": "a=b"}"#),
            (r"eventType=a\,b", r#"{"eventType": "a,b"}"#),
            (r"eventType=a\b", r#"{"eventType": "a\\b"}"#),
            ("eventType='a,b'", r#"{"eventType": "a,b"}"#),
            (r#"p="{\"k\": \"v\"}""#, r#"{"p": "{\"k\": \"v\"}"}"#),
            ("impression=a,b,c", r#"{"impression": ["a", "b", "c"]}"#),
            ("e=click,impression=a,b,c,sentAt=1", r#"{"e": "click", "impression": ["a", "b", "c"], "sentAt": "1"}"#),
            ("impression=[a,b]", r#"{"impression": ["a", "b"]}"#),
            (r#"impression=["a b",'c,d',e]"#, r#"{"impression": ["a b", "c,d", "e"]}"#),
            ("m={eventAttributionSource=src}", r#"{"m": {"eventAttributionSource": "src"}}"#),
            ("eventType = click , sentAt = 1", r#"{"eventType": "click", "sentAt": "1"}"#),
            ("a=", r#"{"a": ""}"#),
        ];
        for (input, expected) in cases {
            assert_eq!(ok(input), *expected, "input {input:?}");
        }
    }

    #[test]
    fn errors_like_aws_cli() {
        let cases: &[(&str, &str)] = &[
            ("", "Expected: '=', received: 'EOF' for input:\n\n^"),
            (" eventType = click", "Expected: '=', received: 'e' for input:\n eventType = click\n ^"),
            ("a=1,", "Expected: '<second>', received: '<none>' for input:\na=1,\n    ^"),
            (
                "eventType=a,eventType=b,sentAt=1",
                "Second instance of key \"eventType\" encountered for input:\neventType=a,eventType=b,sentAt=1\n            ^\nThis is often because there is a preceding \",\" instead of a space.",
            ),
            ("{\"eventType\":\"v\"}", "Expected: '=', received: '{' for input:\n{\"eventType\":\"v\"}\n^"),
            ("a=it's", "Expected: ',', received: ''' for input:\na=it's\n    ^"),
        ];
        for (input, expected) in cases {
            assert_eq!(err(input), *expected, "input {input:?}");
        }
    }
}
