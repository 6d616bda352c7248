//! What reaches stdout and stderr: the formatted response (after `--query`),
//! the usage banner, and `--debug` log lines in botocore's layout.
//!
//! No personalize-events operation has an output shape, so a successful call prints nothing unless
//! `--query` turns the empty response into something (`--query foo` prints
//! `null`). Errors always go to stderr whatever `--output` says.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::pyjson::{dumps, DictKind, Value};
use crate::timestamp::civil_from_days;

/// aws-cli v1's usage text, printed before argument errors. It starts with a carriage return
/// (`awscli/argparser.py`), so on a terminal the note overwrites argparse's `usage: `.
pub const USAGE: &str = "\rNote: AWS CLI version 2, the latest major version of the AWS CLI, is now stable and recommended for general use. For more information, see the AWS CLI version 2 installation instructions at: https://docs.aws.amazon.com/cli/latest/userguide/install-cliv2.html\n\nusage: aws [options] <command> <subcommand> [<subcommand> ...] [parameters]\nTo see help text, you can run:\n\n  aws help\n  aws <command> help\n  aws <command> <subcommand> help\n";

/// Writes `--debug` lines (`2024-01-01 00:00:00,000 - MainThread - logger - DEBUG - msg`)
/// when enabled, and nothing otherwise.
pub struct DebugLog<'a> {
    out: &'a mut dyn Write,
    enabled: bool,
}

impl<'a> DebugLog<'a> {
    /// A logger writing to `out` when `enabled`.
    pub fn new(enabled: bool, out: &'a mut dyn Write) -> Self {
        Self { out, enabled }
    }

    /// Whether lines are written at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// One log record.
    pub fn line(&mut self, logger: &str, message: &str) {
        if self.enabled {
            let _ = writeln!(self.out, "{} - MainThread - {logger} - DEBUG - {message}", log_time());
        }
    }

    /// A warning Python would print on stderr whether or not `--debug` is on.
    pub fn warning(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
    }
}

fn log_time() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02},{:03}", rem / 3600, rem % 3600 / 60, rem % 60, now.subsec_millis())
}

/// A compiled `--query`.
pub struct Query {
    expression: jmespath::Expression<'static>,
}

/// Compiles `--query`, reporting errors the way Python's jmespath words them.
pub fn compile_query(text: &str) -> Result<Query, String> {
    match jmespath::compile(text) {
        Ok(expression) => Ok(Query { expression }),
        Err(e) => {
            let len = text.chars().count();
            let detail = if e.offset >= len.saturating_sub(1) && !text.is_empty() || text.is_empty() {
                format!("Invalid jmespath expression: Incomplete expression:\n\"{text}\"\n{}^", " ".repeat(len + 1))
            } else {
                let token: String = text.chars().skip(e.offset).take(1).collect();
                format!(
                    "Invalid jmespath expression: Parse error at column {}, token \"{token}\" ({}), for expression:\n\"{text}\"\n{}^",
                    e.offset,
                    token_type(&token),
                    " ".repeat(e.offset + 1)
                )
            };
            Err(format!("Bad value for --query {text}: {detail}"))
        }
    }
}

fn token_type(token: &str) -> &'static str {
    match token {
        "[" => "LBRACKET",
        "]" => "RBRACKET",
        "{" => "LBRACE",
        "}" => "RBRACE",
        "(" => "LPAREN",
        ")" => "RPAREN",
        "." => "DOT",
        "," => "COMMA",
        ":" => "COLON",
        "|" => "PIPE",
        "*" => "STAR",
        "@" => "CURRENT",
        "&" => "EXPREF",
        _ => "UNQUOTED_IDENTIFIER",
    }
}

impl Query {
    /// Applies the query to the (always empty) response.
    pub fn apply(&self, response: &Value) -> Value {
        let json = dumps(response, None);
        let Ok(data) = jmespath::Variable::from_json(&json) else { return Value::Null };
        match self.expression.search(data) {
            Ok(result) => from_variable(&result),
            Err(_) => Value::Null,
        }
    }
}

fn from_variable(v: &jmespath::Variable) -> Value {
    use jmespath::Variable as V;
    match v {
        V::Null | V::Expref(_) => Value::Null,
        V::String(s) => Value::Str(s.clone()),
        V::Bool(b) => Value::Bool(*b),
        V::Number(n) => {
            let text = n.to_string();
            if text.contains(['.', 'e', 'E']) {
                Value::Float(text.parse().unwrap_or(0.0))
            } else {
                Value::Int(text)
            }
        }
        V::Array(items) => Value::List(items.iter().map(|i| from_variable(i)).collect()),
        V::Object(map) => {
            Value::Dict(map.iter().map(|(k, v)| (k.clone(), from_variable(v))).collect(), DictKind::Plain)
        }
    }
}

/// Prints a successful response in the chosen output format.
pub fn print_response(response: &Value, output: &str, stdout: &mut dyn Write) {
    let empty = matches!(response, Value::Dict(items, _) if items.is_empty());
    if empty {
        return;
    }
    let _ = match output {
        "text" => writeln!(stdout, "{}", text_line(response)),
        "table" => match response {
            Value::Null => Ok(()),
            other => writeln!(stdout, "{}", text_line(other)),
        },
        _ => writeln!(stdout, "{}", pretty_json(response)),
    };
}

fn pretty_json(v: &Value) -> String {
    dumps(v, Some(4))
}

fn text_line(v: &Value) -> String {
    match v {
        Value::List(items) => items.iter().map(text_line).collect::<Vec<_>>().join("\t"),
        Value::Dict(items, _) => {
            let mut sorted: Vec<_> = items.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            sorted.iter().map(|(_, v)| text_line(v)).collect::<Vec<_>>().join("\t")
        }
        other => other.py_str(),
    }
}
