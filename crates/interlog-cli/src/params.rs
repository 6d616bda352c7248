//! From typed options to call parameters: `file://` loading, the
//! JSON-or-shorthand decision, and `--cli-input-json` merging.
//!
//! This mirrors aws-cli v1's `paramfile.py`, `argprocess.py` and
//! `customizations/cliinputjson.py`, in their order, so that the first error
//! a user sees is the one aws-cli would show.

use std::cell::RefCell;
use std::io::Read;
use std::path::Path;

use crate::args::OperationArgs;
use crate::config::Env;
use crate::model::{back_compat, BareError, Operation, Shape};
use crate::pyjson::{loads, py_isspace, DictKind, Value};
use crate::shorthand::{self, ParseFailure};

/// A failure while building parameters. Both kinds print as `\n<msg>\n` and
/// exit 255; they differ only in the `Error parsing parameter` prefix.
#[derive(Debug)]
pub enum ParamFailure {
    /// `Error parsing parameter '<name>': <msg>`.
    Param(String, String),
    /// Any other exception, printed bare.
    Bare(String),
}

impl std::fmt::Display for ParamFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamFailure::Param(name, msg) => write!(f, "Error parsing parameter '{name}': {msg}"),
            ParamFailure::Bare(msg) => f.write_str(msg),
        }
    }
}

impl From<BareError> for ParamFailure {
    fn from(e: BareError) -> Self {
        ParamFailure::Bare(e.0)
    }
}

/// Where `file://` paths are resolved, and what `/dev/stdin` reads.
pub struct FileContext<'a> {
    /// The working directory relative paths are joined to.
    pub cwd: &'a Path,
    /// For `~` and `$VAR` expansion.
    pub env: &'a Env,
    /// Standard input, read once on first use.
    pub stdin: RefCell<Option<Box<dyn Read + 'a>>>,
}

impl FileContext<'_> {
    /// aws-cli's `get_paramfile`: `Ok(None)` when the value has no prefix.
    pub fn load(&self, value: &str) -> Result<Option<Value>, String> {
        let (prefix, binary) = if value.starts_with("file://") {
            ("file://", false)
        } else if value.starts_with("fileb://") {
            ("fileb://", true)
        } else {
            return Ok(None);
        };
        let typed = self.env.expand_vars(&self.env.expand_user(&value[prefix.len()..]).to_string_lossy());
        let bytes = self
            .read(&typed)
            .map_err(|e| format!("Unable to load paramfile {value}: {}", python_os_error(&e, &typed)))?;
        if binary {
            return Ok(Some(Value::Bytes(bytes)));
        }
        let text = String::from_utf8(bytes).map_err(|_| {
            format!(
                "Unable to load paramfile ({typed}), text contents could not be decoded.  If this is a binary file, please use the fileb:// prefix instead of the file:// prefix."
            )
        })?;
        // Python's text mode translates every newline convention to `\n`.
        Ok(Some(Value::Str(text.replace("\r\n", "\n").replace('\r', "\n"))))
    }

    fn read(&self, path: &str) -> std::io::Result<Vec<u8>> {
        if matches!(path, "/dev/stdin" | "/dev/fd/0" | "/proc/self/fd/0") {
            if let Some(stdin) = self.stdin.borrow_mut().as_mut() {
                let mut buf = Vec::new();
                stdin.read_to_end(&mut buf)?;
                return Ok(buf);
            }
        }
        std::fs::read(self.cwd.join(path))
    }
}

/// Python's `str(OSError)`: `[Errno 2] No such file or directory: 'nope.json'`.
fn python_os_error(e: &std::io::Error, path: &str) -> String {
    let text = e.to_string();
    let strerror = text.split(" (os error").next().unwrap_or(&text);
    match e.raw_os_error() {
        Some(code) => format!("[Errno {code}] {strerror}: {}", crate::pyjson::str_repr(path)),
        None => text,
    }
}

/// Builds the call parameters from the operation options, in aws-cli's
/// argument-table order (the input shape's), then merges `--cli-input-json`
/// under them.
pub fn build(operation: &Operation, op: &OperationArgs, files: &FileContext<'_>) -> Result<Value, ParamFailure> {
    let mut params: Vec<(String, Value)> = Vec::new();
    for member in operation.members() {
        let Some(values) = op.member(member.name) else { continue };
        let value = match member.shape {
            Shape::List { .. } => unpack_list(&member.option, member.shape, values, files)?,
            _ => {
                let Some(value) = values.last() else { continue };
                let loaded = files.load(value).map_err(|m| ParamFailure::Param(member.option.clone(), m))?;
                loaded.unwrap_or_else(|| Value::Str(value.clone()))
            }
        };
        params.push((member.name.to_owned(), value));
    }
    if let Some(input) = &op.cli_input_json {
        let retrieved = match files.load(input).map_err(ParamFailure::Bare)? {
            Some(Value::Bytes(b)) => String::from_utf8_lossy(&b).into_owned(),
            Some(Value::Str(s)) => s,
            _ => input.clone(),
        };
        let data = loads(&retrieved, DictKind::Plain).map_err(|e| {
            ParamFailure::Param("cli-input-json".into(), format!("Invalid JSON: {e}\nJSON received: {retrieved}"))
        })?;
        let Value::Dict(items, _) = data else {
            let type_name = data.py_type().trim_start_matches("<class '").trim_end_matches("'>").to_owned();
            return Err(ParamFailure::Bare(format!("'{type_name}' object has no attribute 'keys'")));
        };
        for (key, value) in items {
            if !params.iter().any(|(k, _)| *k == key) {
                params.push((key, value));
            }
        }
    }
    Ok(Value::Dict(params, DictKind::Plain))
}

/// The value after `load-cli-arg`: one loaded file, or the raw words.
enum Raw {
    Loaded(Value),
    Words(Vec<String>),
}

/// `unpack_cli_arg` for a list of structures (`--event-list`, `--items`, ...): JSON or shorthand.
fn unpack_list(option: &str, shape: &Shape, values: &[String], files: &FileContext<'_>) -> Result<Value, ParamFailure> {
    let param = |m: String| ParamFailure::Param(option.into(), m);
    let raw = if values.len() == 1 {
        match files.load(&values[0]).map_err(param)? {
            Some(loaded) => Raw::Loaded(loaded),
            None => Raw::Words(values.to_vec()),
        }
    } else {
        Raw::Words(values.to_vec())
    };
    let check = match &raw {
        Raw::Loaded(Value::Str(s)) => Some(s.as_str()),
        Raw::Words(words) => words.first().map(String::as_str),
        Raw::Loaded(_) => None,
    };
    let looks_like_json = check.is_some_and(|s| s.trim_matches(py_isspace).starts_with(['[', '{']));
    if looks_like_json {
        return unpack_json_list(option, &raw);
    }
    let loader = |v: &str| files.load(v);
    let shorthand_error = |f: ParseFailure| match f {
        ParseFailure::Syntax(e) => param(e.0),
        ParseFailure::File(m) => ParamFailure::Bare(m),
    };
    let mut parsed = match &raw {
        Raw::Words(words) => {
            let mut list = Vec::with_capacity(words.len());
            for word in words {
                list.push(shorthand::parse(word, &loader).map_err(shorthand_error)?);
            }
            Value::List(list)
        }
        Raw::Loaded(Value::Str(s)) => shorthand::parse(s, &loader).map_err(shorthand_error)?,
        Raw::Loaded(Value::Bytes(b)) if b.is_empty() => {
            return Err(ParamFailure::Bare("a bytes-like object is required, not 'str'".into()))
        }
        Raw::Loaded(_) => {
            return Err(ParamFailure::Bare("'in <string>' requires string as left operand, not int".into()))
        }
    };
    back_compat(&mut parsed, shape)?;
    Ok(parsed)
}

fn json_param(option: &str, text: &str) -> Result<Value, ParamFailure> {
    loads(text, DictKind::Ordered)
        .map_err(|e| ParamFailure::Param(option.into(), format!("Invalid JSON: {e}\nJSON received: {text}")))
}

/// `unpack_complex_cli_arg` for a list of structures.
fn unpack_json_list(option: &str, raw: &Raw) -> Result<Value, ParamFailure> {
    let first_char = |s: &str| s.trim_start_matches(py_isspace).chars().next();
    let items: Vec<String> = match raw {
        Raw::Loaded(Value::Str(s)) => {
            if first_char(s) == Some('[') {
                return json_param(option, s);
            }
            // Python iterates over the characters of the string here.
            s.chars().map(String::from).collect()
        }
        Raw::Words(words) => {
            if words.len() == 1 && words[0].trim_matches(py_isspace).starts_with('[') {
                return json_param(option, &words[0]);
            }
            words.clone()
        }
        Raw::Loaded(_) => Vec::new(),
    };
    let mut list = Vec::with_capacity(items.len());
    for item in &items {
        match first_char(item) {
            None => return Err(ParamFailure::Bare("string index out of range".into())),
            Some('{') => list.push(json_param(option, item)?),
            Some(_) => return Err(ParamFailure::Param(option.into(), format!("Invalid JSON:\n{item}"))),
        }
    }
    Ok(Value::List(list))
}
