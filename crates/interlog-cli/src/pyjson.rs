//! Python-flavoured values: the JSON decoder, `json.dumps` encoder and `repr`
//! that aws-cli's messages and request bodies are made of.
//!
//! aws-cli parses JSON with Python's `json` module and echoes its exact error
//! text (`Expecting value: line 1 column 15 (char 14)`), keeps ints and floats
//! apart (`5` stays `5`, shorthand `5` becomes `5.0`), and reports validation
//! failures with Python `repr`s (`OrderedDict([('k', 'v')])`). A generic JSON
//! crate loses all three, so this module models Python's behaviour directly.

use std::fmt::Write as _;

/// Which Python mapping type a dict came from; validation messages print the
/// type name (`<class 'collections.OrderedDict'>` vs `<class 'dict'>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DictKind {
    /// `json.loads(..., object_pairs_hook=OrderedDict)`: `--event-list` JSON.
    Ordered,
    /// A plain dict: shorthand structures and `--cli-input-json`.
    Plain,
}

/// A Python value as aws-cli holds it between parsing and serialization.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `None`.
    Null,
    /// `True` / `False`.
    Bool(bool),
    /// A Python int, kept as its decimal text because it is unbounded.
    Int(String),
    /// A Python float.
    Float(f64),
    /// A Python str.
    Str(String),
    /// Python bytes, as `fileb://` produces them.
    Bytes(Vec<u8>),
    /// A Python list.
    List(Vec<Value>),
    /// A Python dict, in insertion order.
    Dict(Vec<(String, Value)>, DictKind),
}

impl Value {
    /// Looks a key up in a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items, _) => items.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Python's `str(type(value))`.
    pub fn py_type(&self) -> &'static str {
        match self {
            Value::Null => "<class 'NoneType'>",
            Value::Bool(_) => "<class 'bool'>",
            Value::Int(_) => "<class 'int'>",
            Value::Float(_) => "<class 'float'>",
            Value::Str(_) => "<class 'str'>",
            Value::Bytes(_) => "<class 'bytes'>",
            Value::List(_) => "<class 'list'>",
            Value::Dict(_, DictKind::Ordered) => "<class 'collections.OrderedDict'>",
            Value::Dict(_, DictKind::Plain) => "<class 'dict'>",
        }
    }

    /// Python's `str(value)`: strings print bare, everything else as `repr`.
    pub fn py_str(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            other => other.py_repr(),
        }
    }

    /// Python's `repr(value)` (Python 3.11 `OrderedDict` form).
    pub fn py_repr(&self) -> String {
        let mut out = String::new();
        self.write_repr(&mut out);
        out
    }

    fn write_repr(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("None"),
            Value::Bool(true) => out.push_str("True"),
            Value::Bool(false) => out.push_str("False"),
            Value::Int(s) => out.push_str(s),
            Value::Float(f) => out.push_str(&float_repr(*f)),
            Value::Str(s) => out.push_str(&str_repr(s)),
            Value::Bytes(b) => out.push_str(&bytes_repr(b)),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_repr(out);
                }
                out.push(']');
            }
            Value::Dict(items, DictKind::Plain) => {
                out.push('{');
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&str_repr(k));
                    out.push_str(": ");
                    v.write_repr(out);
                }
                out.push('}');
            }
            Value::Dict(items, DictKind::Ordered) => {
                if items.is_empty() {
                    out.push_str("OrderedDict()");
                    return;
                }
                out.push_str("OrderedDict([");
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push('(');
                    out.push_str(&str_repr(k));
                    out.push_str(", ");
                    v.write_repr(out);
                    out.push(')');
                }
                out.push_str("])");
            }
        }
    }
}

/// Inserts or replaces a dict entry the way Python does: a replaced key keeps
/// its original position.
pub fn dict_set(items: &mut Vec<(String, Value)>, key: &str, value: Value) {
    if let Some(slot) = items.iter_mut().find(|(k, _)| k == key) {
        slot.1 = value;
    } else {
        items.push((key.to_owned(), value));
    }
}

/// Python's `repr(float)`: shortest round-trip digits, exponent form outside
/// `1e-4 <= |x| < 1e16`.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // `{:e}` gives the shortest round-trip digits, e.g. `-1.2345e-7`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` always has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if !(-4..16).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exp.abs());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// Python's `str.isspace()` for one character, which `\s`, `str.strip()` and
/// `str.rstrip()` all use.
pub fn py_isspace(c: char) -> bool {
    matches!(c, '\t'..='\r' | '\x1c'..='\x1f' | ' ' | '\u{85}') || (c as u32 > 0x7f && c.is_whitespace())
}

fn is_printable(c: char) -> bool {
    !(c.is_control() || (c != ' ' && py_isspace(c)) || matches!(c, '\u{ad}' | '\u{2028}' | '\u{2029}'))
}

/// Python's `repr(str)`.
pub fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push(quote);
    out
}

/// Python's `repr(bytes)`.
pub fn bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') { '"' } else { '\'' };
    let mut out = String::from("b");
    out.push(quote);
    for &byte in b {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c as char == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(byte as char),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push(quote);
    out
}

/// A decode failure, rendered exactly as Python's `JSONDecodeError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    msg: &'static str,
    line: usize,
    column: usize,
    pos: usize,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: line {} column {} (char {})", self.msg, self.line, self.column, self.pos)
    }
}

/// Python's `json.loads(text)`; `kind` says which dict type objects become.
pub fn loads(text: &str, kind: DictKind) -> Result<Value, DecodeError> {
    let chars: Vec<char> = text.chars().collect();
    let parser = Decoder { s: &chars, kind };
    if chars.first() == Some(&'\u{feff}') {
        return Err(parser.error("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0));
    }
    let start = parser.skip_ws(0);
    let (value, end) = match parser.scan_once(start) {
        Ok(ok) => ok,
        Err(Fail::Stop(pos)) => return Err(parser.error("Expecting value", pos)),
        Err(Fail::Error(e)) => return Err(e),
    };
    let end = parser.skip_ws(end);
    if end != chars.len() {
        return Err(parser.error("Extra data", end));
    }
    Ok(value)
}

enum Fail {
    /// Python's `StopIteration(idx)`: no value starts here.
    Stop(usize),
    Error(DecodeError),
}

struct Decoder<'a> {
    s: &'a [char],
    kind: DictKind,
}

impl Decoder<'_> {
    fn error(&self, msg: &'static str, pos: usize) -> DecodeError {
        let before = &self.s[..pos.min(self.s.len())];
        let line = before.iter().filter(|&&c| c == '\n').count() + 1;
        let column = match before.iter().rposition(|&c| c == '\n') {
            Some(nl) => pos - nl,
            None => pos + 1,
        };
        DecodeError { msg, line, column, pos }
    }

    fn fail(&self, msg: &'static str, pos: usize) -> Fail {
        Fail::Error(self.error(msg, pos))
    }

    fn skip_ws(&self, mut idx: usize) -> usize {
        while idx < self.s.len() && matches!(self.s[idx], ' ' | '\t' | '\n' | '\r') {
            idx += 1;
        }
        idx
    }

    fn starts_with(&self, idx: usize, word: &str) -> bool {
        word.chars().enumerate().all(|(k, c)| self.s.get(idx + k) == Some(&c))
    }

    fn scan_once(&self, idx: usize) -> Result<(Value, usize), Fail> {
        let Some(&c) = self.s.get(idx) else {
            return Err(Fail::Stop(idx));
        };
        match c {
            '"' => {
                let (s, end) = self.scan_string(idx + 1)?;
                Ok((Value::Str(s), end))
            }
            '{' => self.parse_object(idx + 1),
            '[' => self.parse_array(idx + 1),
            'n' if self.starts_with(idx, "null") => Ok((Value::Null, idx + 4)),
            't' if self.starts_with(idx, "true") => Ok((Value::Bool(true), idx + 4)),
            'f' if self.starts_with(idx, "false") => Ok((Value::Bool(false), idx + 5)),
            'N' if self.starts_with(idx, "NaN") => Ok((Value::Float(f64::NAN), idx + 3)),
            'I' if self.starts_with(idx, "Infinity") => Ok((Value::Float(f64::INFINITY), idx + 8)),
            '-' if self.starts_with(idx, "-Infinity") => Ok((Value::Float(f64::NEG_INFINITY), idx + 9)),
            _ => self.scan_number(idx),
        }
    }

    fn scan_number(&self, start: usize) -> Result<(Value, usize), Fail> {
        let s = self.s;
        let digit = |i: usize| s.get(i).is_some_and(|c| c.is_ascii_digit());
        let mut idx = start;
        if s.get(idx) == Some(&'-') {
            idx += 1;
        }
        match s.get(idx) {
            Some('0') => idx += 1,
            Some('1'..='9') => {
                while digit(idx) {
                    idx += 1;
                }
            }
            _ => return Err(Fail::Stop(start)),
        }
        let mut is_float = false;
        if s.get(idx) == Some(&'.') && digit(idx + 1) {
            is_float = true;
            idx += 1;
            while digit(idx) {
                idx += 1;
            }
        }
        if matches!(s.get(idx), Some('e' | 'E')) {
            let mut e = idx + 1;
            if matches!(s.get(e), Some('+' | '-')) {
                e += 1;
            }
            if digit(e) {
                while digit(e) {
                    e += 1;
                }
                is_float = true;
                idx = e;
            }
        }
        let text: String = s[start..idx].iter().collect();
        if is_float {
            Ok((Value::Float(text.parse().unwrap_or(f64::NAN)), idx))
        } else {
            Ok((Value::Int(normalize_int(&text)), idx))
        }
    }

    fn scan_string(&self, begin: usize) -> Result<(String, usize), Fail> {
        let s = self.s;
        let mut out = String::new();
        let mut idx = begin;
        loop {
            let Some(&c) = s.get(idx) else {
                return Err(self.fail("Unterminated string starting at", begin - 1));
            };
            match c {
                '"' => return Ok((out, idx + 1)),
                '\\' => {
                    let Some(&e) = s.get(idx + 1) else {
                        return Err(self.fail("Unterminated string starting at", begin - 1));
                    };
                    if e != 'u' {
                        let decoded = match e {
                            '"' => '"',
                            '\\' => '\\',
                            '/' => '/',
                            'b' => '\u{8}',
                            'f' => '\u{c}',
                            'n' => '\n',
                            'r' => '\r',
                            't' => '\t',
                            _ => return Err(self.fail("Invalid \\escape", idx)),
                        };
                        out.push(decoded);
                        idx += 2;
                        continue;
                    }
                    let first = idx + 2;
                    let Some(high) = self.hex4(first) else {
                        return Err(self.fail("Invalid \\uXXXX escape", idx + 1));
                    };
                    let mut end = first + 4;
                    let mut code = high;
                    if (0xd800..0xdc00).contains(&high) && s.get(end) == Some(&'\\') && s.get(end + 1) == Some(&'u') {
                        match self.hex4(end + 2) {
                            Some(low) if (0xdc00..0xe000).contains(&low) => {
                                code = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
                                end += 6;
                            }
                            Some(_) => {}
                            None => return Err(self.fail("Invalid \\uXXXX escape", end + 1)),
                        }
                    }
                    // A lone surrogate has no Rust `char`; U+FFFD stands in for it.
                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    idx = end;
                }
                c if (c as u32) < 0x20 => {
                    return Err(self.fail("Invalid control character at", idx));
                }
                c => {
                    out.push(c);
                    idx += 1;
                }
            }
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        // Python requires the closing quote to follow too (`end >= len` check).
        if at + 4 >= self.s.len() {
            return None;
        }
        let text: String = self.s[at..at + 4].iter().collect();
        if !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(&text, 16).ok()
    }

    fn parse_object(&self, start: usize) -> Result<(Value, usize), Fail> {
        let s = self.s;
        let mut items: Vec<(String, Value)> = Vec::new();
        let mut idx = self.skip_ws(start);
        if s.get(idx) != Some(&'}') {
            loop {
                if s.get(idx) != Some(&'"') {
                    return Err(self.fail("Expecting property name enclosed in double quotes", idx));
                }
                let (key, next) = self.scan_string(idx + 1)?;
                idx = self.skip_ws(next);
                if s.get(idx) != Some(&':') {
                    return Err(self.fail("Expecting ':' delimiter", idx));
                }
                idx = self.skip_ws(idx + 1);
                let (value, next) = self.scan_once(idx)?;
                dict_set(&mut items, &key, value);
                idx = self.skip_ws(next);
                if s.get(idx) == Some(&'}') {
                    break;
                }
                if s.get(idx) != Some(&',') {
                    return Err(self.fail("Expecting ',' delimiter", idx));
                }
                idx = self.skip_ws(idx + 1);
            }
        }
        Ok((Value::Dict(items, self.kind), idx + 1))
    }

    fn parse_array(&self, start: usize) -> Result<(Value, usize), Fail> {
        let s = self.s;
        let mut items = Vec::new();
        let mut idx = self.skip_ws(start);
        if s.get(idx) != Some(&']') {
            loop {
                let (value, next) = self.scan_once(idx)?;
                items.push(value);
                idx = self.skip_ws(next);
                if s.get(idx) == Some(&']') {
                    break;
                }
                if s.get(idx) != Some(&',') {
                    return Err(self.fail("Expecting ',' delimiter", idx));
                }
                idx = self.skip_ws(idx + 1);
            }
        }
        Ok((Value::List(items), idx + 1))
    }
}

/// Python's `int(text)` printed back: `-0` is `0`.
fn normalize_int(text: &str) -> String {
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// Python's `json.dumps(value)` with default settings (`ensure_ascii`,
/// `", "` / `": "` separators); `indent` selects the pretty form.
pub fn dumps(value: &Value, indent: Option<usize>) -> String {
    let mut out = String::new();
    write_json(value, indent, 0, &mut out);
    out
}

fn write_json(value: &Value, indent: Option<usize>, level: usize, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(s) => out.push_str(s),
        Value::Float(f) => {
            if f.is_nan() {
                out.push_str("NaN");
            } else if f.is_infinite() {
                out.push_str(if *f > 0.0 { "Infinity" } else { "-Infinity" });
            } else {
                out.push_str(&float_repr(*f));
            }
        }
        Value::Str(s) => write_json_str(s, out),
        // json.dumps refuses bytes; the validator stops them long before this.
        Value::Bytes(b) => write_json_str(&String::from_utf8_lossy(b), out),
        Value::List(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                separator(i, indent, level + 1, out);
                write_json(item, indent, level + 1, out);
            }
            closing(indent, level, out);
            out.push(']');
        }
        Value::Dict(items, _) => {
            if items.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, v)) in items.iter().enumerate() {
                separator(i, indent, level + 1, out);
                write_json_str(k, out);
                out.push_str(": ");
                write_json(v, indent, level + 1, out);
            }
            closing(indent, level, out);
            out.push('}');
        }
    }
}

fn separator(i: usize, indent: Option<usize>, level: usize, out: &mut String) {
    match indent {
        Some(width) => {
            if i > 0 {
                out.push(',');
            }
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', width * level));
        }
        None => {
            if i > 0 {
                out.push_str(", ");
            }
        }
    }
}

fn closing(indent: Option<usize>, level: usize, out: &mut String) {
    if let Some(width) = indent {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', width * level));
    }
}

fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases: &[(f64, &str)] = &[
            (5.0, "5.0"),
            (0.1, "0.1"),
            (1e20, "1e+20"),
            (1e-7, "1e-07"),
            (-0.0, "-0.0"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (0.0001, "0.0001"),
            (1.5e-5, "1.5e-05"),
            (4.5, "4.5"),
            (1000.0, "1000.0"),
            (1.7e9, "1700000000.0"),
            (123.456, "123.456"),
        ];
        for (value, expected) in cases {
            assert_eq!(float_repr(*value), *expected, "repr({value})");
        }
    }

    #[test]
    fn decode_errors_match_python() {
        let cases: &[(&str, &str)] = &[
            ("[{\"eventType\":", "Expecting value: line 1 column 15 (char 14)"),
            ("{nope", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
            ("[1 2]", "Expecting ',' delimiter: line 1 column 4 (char 3)"),
            ("{\"a\" 1}", "Expecting ':' delimiter: line 1 column 6 (char 5)"),
            ("\"abc", "Unterminated string starting at: line 1 column 1 (char 0)"),
            ("[1]x", "Extra data: line 1 column 4 (char 3)"),
            ("", "Expecting value: line 1 column 1 (char 0)"),
            ("[\n1,\n]", "Expecting value: line 3 column 1 (char 5)"),
            ("\"a\\qb\"", "Invalid \\escape: line 1 column 3 (char 2)"),
        ];
        for (input, expected) in cases {
            let err = loads(input, DictKind::Ordered).unwrap_err();
            assert_eq!(err.to_string(), *expected, "input {input:?}");
        }
    }

    #[test]
    fn round_trip_keeps_python_shapes() {
        let v = loads(r#"{"b": 5, "a": [1.5, -0.0, 1e400, "é😀"], "c": null}"#, DictKind::Ordered).unwrap();
        assert_eq!(dumps(&v, None), r#"{"b": 5, "a": [1.5, -0.0, Infinity, "\u00e9\ud83d\ude00"], "c": null}"#);
        assert_eq!(v.py_repr(), "OrderedDict([('b', 5), ('a', [1.5, -0.0, inf, 'é😀']), ('c', None)])");
    }
}
