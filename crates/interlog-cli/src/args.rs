//! Low-level arguments: the command line as aws-cli's argparse sees it.
//!
//! Nothing here touches the file system, the environment or the network.
//! aws-cli parses in two passes: the main parser takes the global options
//! (anywhere on the line, abbreviations allowed) and hands the rest to the
//! operation parser. Both are Python `argparse` parsers, and their quirks are
//! part of the interface: unique prefixes work (`--tracking`), the last
//! repetition wins, `--opt=value` accepts values starting with `-`, a stray
//! word lands in the hidden `help` positional and is reported as an unknown
//! option. This module reproduces that algorithm rather than using a modern
//! parser that would disagree on those edges.

use crate::model::{Member, Operation, Shape};

/// How many values an option takes (argparse's `nargs`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Nargs {
    /// `store_true`.
    Flag,
    /// Exactly one value.
    One,
    /// `nargs='?'` with this constant when given bare.
    Optional(&'static str),
    /// `nargs='*'`.
    Many,
    /// `action='version'`: handled by the caller as soon as it is seen.
    Version,
}

/// One option of a parser.
#[derive(Clone, Copy)]
struct OptSpec<'a> {
    name: &'a str,
    nargs: Nargs,
    choices: Option<&'static [&'static str]>,
    required: bool,
}

const fn opt(name: &str, nargs: Nargs) -> OptSpec<'_> {
    OptSpec { name, nargs, choices: None, required: false }
}

/// aws-cli's global options, in its parser's order.
const GLOBAL_OPTIONS: &[OptSpec<'static>] = &[
    opt("--debug", Nargs::Flag),
    opt("--endpoint-url", Nargs::One),
    opt("--no-verify-ssl", Nargs::Flag),
    opt("--no-paginate", Nargs::Flag),
    OptSpec { choices: Some(&["json", "text", "table"]), ..opt("--output", Nargs::One) },
    opt("--query", Nargs::One),
    opt("--profile", Nargs::One),
    opt("--region", Nargs::One),
    OptSpec { choices: Some(&["on", "off", "auto"]), ..opt("--color", Nargs::One) },
    opt("--no-sign-request", Nargs::Flag),
    opt("--ca-bundle", Nargs::One),
    // Typed `int` in aws-cli's table, but converted after parsing (`main_pass`), not by argparse.
    opt("--cli-read-timeout", Nargs::One),
    opt("--cli-connect-timeout", Nargs::One),
    opt("--v2-debug", Nargs::Flag),
    // aws-cli adds `--version` after its argument table, so ambiguity messages list it last.
    opt("--version", Nargs::Version),
];

/// The options aws-cli adds to every operation, after the input members'.
const COMMON_OPTIONS: &[OptSpec<'static>] = &[
    opt("--cli-input-json", Nargs::One),
    OptSpec { choices: Some(&["input", "output"]), ..opt("--generate-cli-skeleton", Nargs::Optional("input")) },
];

/// An operation's argument table, in aws-cli's order: one option per input member (a list takes
/// `nargs='*'`, anything else one value), then the common ones.
fn operation_options<'a>(members: &'a [Member<'a>]) -> Vec<OptSpec<'a>> {
    let mut specs: Vec<OptSpec<'a>> = members
        .iter()
        .map(|m| {
            let nargs = if matches!(m.shape, Shape::List { .. }) { Nargs::Many } else { Nargs::One };
            OptSpec { required: m.required, ..opt(&m.option, nargs) }
        })
        .collect();
    specs.extend(COMMON_OPTIONS.iter().copied());
    specs
}

/// The global options after the main parser's pass.
#[derive(Debug, Default, Clone)]
pub struct GlobalArgs {
    /// `--debug`.
    pub debug: bool,
    /// `--endpoint-url`.
    pub endpoint_url: Option<String>,
    /// `--no-verify-ssl`.
    pub no_verify_ssl: bool,
    /// `--no-paginate` (accepted; PutEvents does not paginate).
    pub no_paginate: bool,
    /// `--output`.
    pub output: Option<String>,
    /// `--query`.
    pub query: Option<String>,
    /// `--profile`.
    pub profile: Option<String>,
    /// `--region`.
    pub region: Option<String>,
    /// `--color` (accepted; PutEvents prints nothing to colour).
    pub color: Option<String>,
    /// `--no-sign-request`.
    pub no_sign_request: bool,
    /// `--ca-bundle`.
    pub ca_bundle: Option<String>,
    /// `--cli-read-timeout` in seconds (0 means none).
    pub cli_read_timeout: Option<i64>,
    /// `--cli-connect-timeout` in seconds (0 means none).
    pub cli_connect_timeout: Option<i64>,
    /// `--v2-debug`.
    pub v2_debug: bool,
}

/// The operation's own options, still as typed.
#[derive(Debug, Default, Clone)]
pub struct OperationArgs {
    /// The input members given as options (`datasetArn` for `--dataset-arn`), each with every value
    /// given to its last occurrence.
    pub members: Vec<(String, Vec<String>)>,
    /// `--cli-input-json`.
    pub cli_input_json: Option<String>,
    /// `--generate-cli-skeleton` (`input` when given bare).
    pub generate_cli_skeleton: Option<String>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    /// Run (or skeleton) the operation.
    Run(Box<GlobalArgs>, Box<OperationArgs>),
    /// `--version`.
    Version,
    /// `help`, `--help` or `-h`.
    Help,
}

/// A command-line error and the way aws-cli reports it.
#[derive(Debug, PartialEq, Eq)]
pub enum ArgError {
    /// argparse's own error (exit 2): usage, then `aws: error: <message>`.
    Usage(String),
    /// Leftover words (exit 255): usage, then `Unknown options: a, b`.
    Unknown(Vec<String>),
}

impl OperationArgs {
    /// The values given for an input member, if its option was given.
    pub fn member(&self, name: &str) -> Option<&[String]> {
        self.members.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

/// The global options aws-cli checks as soon as the main parser's pass is done (its
/// `top-level-args-parsed` handlers), before the operation's own options are parsed.
pub struct MainPass {
    /// `--query`, compiled first.
    pub query: Option<String>,
    /// `--endpoint-url`, whose scheme is checked next.
    pub endpoint_url: Option<String>,
    /// `--cli-read-timeout` and `--cli-connect-timeout` as typed, then converted with `int()`.
    pub timeouts: Vec<String>,
    /// `--v2-debug` was given.
    pub v2_debug: bool,
    /// `--profile`.
    pub profile: Option<String>,
}

/// The main parser's pass alone, when it succeeds without `--version`.
pub fn main_pass(args: &[String]) -> Option<MainPass> {
    let main = parse_known(args, GLOBAL_OPTIONS, false).ok()?;
    let value = |name: &str| main.values.iter().find(|(n, _)| *n == name).and_then(|(_, v)| v.last().cloned());
    (!main.version).then(|| MainPass {
        query: value("--query"),
        endpoint_url: value("--endpoint-url"),
        timeouts: ["--cli-read-timeout", "--cli-connect-timeout"].iter().filter_map(|n| value(n)).collect(),
        v2_debug: main.values.iter().any(|(n, _)| *n == "--v2-debug"),
        profile: value("--profile"),
    })
}

/// Python's `int(text)`: surrounding whitespace, a sign, digits with single underscores between them.
pub fn python_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    let well_formed = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
    well_formed.then(|| t.replace('_', "").parse().ok()).flatten()
}

/// Parses the arguments that follow the command (`put-events`).
pub fn parse(args: &[String], operation: &Operation) -> Result<Parsed, ArgError> {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        return Ok(Parsed::Help);
    }
    let main = parse_known(args, GLOBAL_OPTIONS, false)?;
    if main.version {
        return Ok(Parsed::Version);
    }
    let mut globals = GlobalArgs::default();
    for (name, values) in &main.values {
        let one = || values.last().cloned();
        match *name {
            "--debug" => globals.debug = true,
            "--endpoint-url" => globals.endpoint_url = one(),
            "--no-verify-ssl" => globals.no_verify_ssl = true,
            "--no-paginate" => globals.no_paginate = true,
            "--output" => globals.output = one(),
            "--query" => globals.query = one(),
            "--profile" => globals.profile = one(),
            "--region" => globals.region = one(),
            "--color" => globals.color = one(),
            "--no-sign-request" => globals.no_sign_request = true,
            "--ca-bundle" => globals.ca_bundle = one(),
            "--cli-read-timeout" => globals.cli_read_timeout = one().and_then(|v| python_int(&v)),
            "--cli-connect-timeout" => globals.cli_connect_timeout = one().and_then(|v| python_int(&v)),
            "--v2-debug" => globals.v2_debug = true,
            _ => {}
        }
    }
    // aws-cli waives the required options when `--cli-input-json` or a
    // skeleton other than `output` is asked for; it looks for the literal word.
    let rest = &main.extras;
    // aws-cli's ArgTableArgParser short-circuits a lone `help` before argparse
    // can complain about required options.
    if rest.len() == 1 && rest[0] == "help" {
        return Ok(Parsed::Help);
    }
    let cli_input_json_present = rest.iter().any(|a| a == "--cli-input-json");
    let skeleton_waives = rest
        .iter()
        .position(|a| a == "--generate-cli-skeleton")
        .is_some_and(|i| rest.get(i + 1).map(String::as_str) != Some("output"));
    let waive_required = cli_input_json_present || skeleton_waives;
    let members: Vec<Member<'_>> = operation.members().collect();
    let specs = operation_options(&members);
    let op = parse_known_with(rest, &specs, true, waive_required)?;
    let mut unknown = op.extras.clone();
    if let Some(help) = &op.help_positional {
        if help == "help" {
            return Ok(Parsed::Help);
        }
        unknown.push(help.clone());
    }
    if !unknown.is_empty() {
        return Err(ArgError::Unknown(unknown));
    }
    let mut parsed = OperationArgs::default();
    for (name, values) in op.values {
        match name {
            "--cli-input-json" => parsed.cli_input_json = values.last().cloned(),
            "--generate-cli-skeleton" => parsed.generate_cli_skeleton = values.last().cloned(),
            option => {
                if let Some(m) = members.iter().find(|m| m.option == option) {
                    parsed.members.push((m.name.to_owned(), values));
                }
            }
        }
    }
    Ok(Parsed::Run(Box::new(globals), Box::new(parsed)))
}

struct Outcome<'a> {
    /// Option name and its values, in the order last set; a later occurrence
    /// replaces an earlier one (argparse's `store`).
    values: Vec<(&'a str, Vec<String>)>,
    extras: Vec<String>,
    help_positional: Option<String>,
    version: bool,
}

fn parse_known<'a>(args: &[String], specs: &'a [OptSpec<'a>], help_positional: bool) -> Result<Outcome<'a>, ArgError> {
    parse_known_with(args, specs, help_positional, true)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Opt,
    Arg,
}

struct Classified<'a> {
    kind: Kind,
    /// For options: the matched spec (None = unknown) and an `=value` part.
    spec: Option<&'a OptSpec<'a>>,
    explicit: Option<String>,
}

fn classify<'a>(arg: &str, specs: &'a [OptSpec<'a>], after_dashdash: bool) -> Result<Classified<'a>, ArgError> {
    let positional = Classified { kind: Kind::Arg, spec: None, explicit: None };
    if after_dashdash || arg.is_empty() || !arg.starts_with('-') {
        return Ok(positional);
    }
    if let Some(spec) = specs.iter().find(|s| s.name == arg) {
        return Ok(Classified { kind: Kind::Opt, spec: Some(spec), explicit: None });
    }
    if arg.len() == 1 {
        return Ok(positional);
    }
    if let Some((name, value)) = arg.split_once('=') {
        if let Some(spec) = specs.iter().find(|s| s.name == name) {
            return Ok(Classified { kind: Kind::Opt, spec: Some(spec), explicit: Some(value.to_owned()) });
        }
    }
    if arg.starts_with("--") {
        let (prefix, explicit) = match arg.split_once('=') {
            Some((p, v)) => (p, Some(v.to_owned())),
            None => (arg, None),
        };
        let matches: Vec<&'a OptSpec<'a>> = specs.iter().filter(|s| s.name.starts_with(prefix)).collect();
        if matches.len() > 1 {
            let names: Vec<&str> = matches.iter().map(|s| s.name).collect();
            return Err(ArgError::Usage(format!("ambiguous option: {arg} could match {}", names.join(", "))));
        }
        if let Some(spec) = matches.first() {
            return Ok(Classified { kind: Kind::Opt, spec: Some(spec), explicit });
        }
    }
    let looks_negative = {
        let rest = &arg[1..];
        !rest.is_empty()
            && rest.chars().all(|c| c.is_ascii_digit() || c == '.')
            && rest.chars().next().is_some_and(|c| c.is_ascii_digit())
    };
    if looks_negative || arg.contains(' ') {
        return Ok(positional);
    }
    Ok(Classified { kind: Kind::Opt, spec: None, explicit: None })
}

fn parse_known_with<'a>(
    raw: &[String],
    specs: &'a [OptSpec<'a>],
    help_positional: bool,
    waive_required: bool,
) -> Result<Outcome<'a>, ArgError> {
    // `--` ends option parsing; it is dropped and everything after it is a value.
    let mut args: Vec<String> = Vec::with_capacity(raw.len());
    let mut classes = Vec::with_capacity(raw.len());
    let mut dashdash = false;
    for arg in raw {
        if arg == "--" && !dashdash {
            dashdash = true;
            continue;
        }
        classes.push(classify(arg, specs, dashdash)?);
        args.push(arg.clone());
    }
    let mut out = Outcome { values: Vec::new(), extras: Vec::new(), help_positional: None, version: false };
    let mut positional_pending = help_positional;
    let option_indices: Vec<usize> = (0..args.len()).filter(|&i| classes[i].kind == Kind::Opt).collect();
    let mut start = 0;
    let mut seen: Vec<&'a str> = Vec::new();
    while let Some(&next_opt) = option_indices.iter().find(|&&i| i >= start) {
        if start != next_opt {
            if positional_pending && classes[start].kind == Kind::Arg {
                out.help_positional = Some(args[start].clone());
                positional_pending = false;
                start += 1;
                continue;
            }
            // argparse matches a `?` positional against nothing here too.
            positional_pending = false;
            out.extras.extend(args[start..next_opt].iter().cloned());
            start = next_opt;
        }
        let class = &classes[start];
        let Some(spec) = class.spec else {
            out.extras.push(args[start].clone());
            start += 1;
            continue;
        };
        let following =
            args[start + 1..].iter().zip(&classes[start + 1..]).take_while(|(_, c)| c.kind == Kind::Arg).count();
        let (values, consumed): (Vec<String>, usize) = match (spec.nargs, &class.explicit) {
            (Nargs::Flag | Nargs::Version, Some(value)) => {
                return Err(ArgError::Usage(format!("argument {}: ignored explicit argument '{value}'", spec.name)));
            }
            (Nargs::Flag, None) => (Vec::new(), 0),
            (Nargs::Version, None) => {
                out.version = true;
                return Ok(out);
            }
            (_, Some(value)) => (vec![value.clone()], 0),
            (Nargs::One, None) => {
                if following == 0 {
                    return Err(ArgError::Usage(format!("argument {}: expected one argument", spec.name)));
                }
                (vec![args[start + 1].clone()], 1)
            }
            (Nargs::Optional(constant), None) => {
                if following == 0 {
                    (vec![constant.to_owned()], 0)
                } else {
                    (vec![args[start + 1].clone()], 1)
                }
            }
            (Nargs::Many, None) => (args[start + 1..start + 1 + following].to_vec(), following),
        };
        for value in &values {
            if let Some(choices) = spec.choices {
                if !choices.contains(&value.as_str()) {
                    return Err(ArgError::Usage(format!("argument {}: {}", spec.name, invalid_choice(value, choices))));
                }
            }
        }
        out.values.retain(|(n, _)| *n != spec.name);
        out.values.push((spec.name, values));
        seen.push(spec.name);
        start += 1 + consumed;
    }
    if start < args.len() {
        if positional_pending && classes[start].kind == Kind::Arg {
            out.help_positional = Some(args[start].clone());
            start += 1;
        }
        out.extras.extend(args[start..].iter().cloned());
    }
    if !waive_required {
        let missing: Vec<&str> =
            specs.iter().filter(|s| s.required && !seen.contains(&s.name)).map(|s| s.name).collect();
        if !missing.is_empty() {
            return Err(ArgError::Usage(format!("the following arguments are required: {}", missing.join(", "))));
        }
    }
    Ok(out)
}

/// aws-cli's replacement for argparse's invalid-choice text: two padded
/// columns, then difflib suggestions.
fn invalid_choice(value: &str, choices: &[&str]) -> String {
    let mut lines = vec!["Invalid choice, valid choices are:\n".to_owned()];
    for pair in choices.chunks(2) {
        let cells: Vec<String> = pair.iter().map(|c| format!("{c:<40}")).collect();
        lines.push(cells.join(" | "));
    }
    let mut close: Vec<(f64, &str)> =
        choices.iter().map(|c| (similarity(value, c), *c)).filter(|(r, _)| *r >= 0.8).collect();
    close.sort_by(|a, b| b.0.total_cmp(&a.0));
    if !close.is_empty() {
        lines.push(format!("\n\nInvalid choice: {}, maybe you meant:\n", crate::pyjson::str_repr(value)));
        for (_, word) in close.iter().take(3) {
            lines.push(format!("  * {word}"));
        }
    }
    lines.join("\n")
}

/// difflib's `SequenceMatcher(None, a, b).ratio()` (no junk heuristics,
/// which only start at 200 characters).
fn similarity(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let total = a.len() + b.len();
    if total == 0 {
        return 1.0;
    }
    2.0 * matching(&a, &b) as f64 / total as f64
}

fn matching(a: &[char], b: &[char]) -> usize {
    // Longest common substring, earliest in `a` then `b`, then recurse on both sides.
    let (mut best_i, mut best_j, mut best_len) = (0, 0, 0);
    for i in 0..a.len() {
        for j in 0..b.len() {
            let mut k = 0;
            while i + k < a.len() && j + k < b.len() && a[i + k] == b[j + k] {
                k += 1;
            }
            if k > best_len {
                (best_i, best_j, best_len) = (i, j, k);
            }
        }
    }
    if best_len == 0 {
        return 0;
    }
    best_len + matching(&a[..best_i], &b[..best_j]) + matching(&a[best_i + best_len..], &b[best_j + best_len..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    fn put_events() -> &'static Operation {
        crate::model::operation("put-events").unwrap()
    }

    fn parse(args: &[String]) -> Result<Parsed, ArgError> {
        super::parse(args, put_events())
    }

    fn run(args: &[&str]) -> (GlobalArgs, OperationArgs) {
        match parse(&v(args)).unwrap() {
            Parsed::Run(g, o) => (*g, *o),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn argparse_quirks() {
        let (g, o) = run(&["--tracking", "t", "--session-id", "s", "--event-list", "a=b", "c=d", "--output", "text"]);
        assert_eq!(o.member("trackingId"), Some(&v(&["t"])[..]));
        assert_eq!(o.member("eventList"), Some(&v(&["a=b", "c=d"])[..]));
        assert_eq!(g.output.as_deref(), Some("text"));
        let (_, o) = run(&["--tracking-id=-abc", "--session-id", "s", "--event-list", "x", "--event-list", "y"]);
        assert_eq!(o.member("trackingId"), Some(&v(&["-abc"])[..]));
        assert_eq!(o.member("eventList"), Some(&v(&["y"])[..]));
        assert_eq!(o.member("userId"), None);
    }

    #[test]
    fn errors_like_aws_cli() {
        let cases: &[(&[&str], ArgError)] = &[
            (
                &["--session-id", "s", "--event-list", "x"],
                ArgError::Usage("the following arguments are required: --tracking-id".into()),
            ),
            (
                &["--tracking-id", "--session-id", "s"],
                ArgError::Usage("argument --tracking-id: expected one argument".into()),
            ),
            (
                &["--tracking-id", "t", "extra", "--session-id", "s", "--event-list", "x"],
                ArgError::Unknown(v(&["extra"])),
            ),
            (
                &["--tracking-id", "t", "--session-id", "s", "--event-list", "x", "--foo", "bar"],
                ArgError::Unknown(v(&["--foo", "bar"])),
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(&parse(&v(args)).unwrap_err(), expected, "args {args:?}");
        }
        let ArgError::Usage(msg) = parse(&v(&["--output", "xml"])).unwrap_err() else { panic!() };
        assert_eq!(msg, "argument --output: Invalid choice, valid choices are:\n\njson                                     | text                                    \ntable                                   ");
        let ArgError::Usage(msg) = parse(&v(&["--output", "jsn"])).unwrap_err() else { panic!() };
        assert!(msg.ends_with("\n\n\nInvalid choice: 'jsn', maybe you meant:\n\n  * json"), "{msg}");
    }

    #[test]
    fn every_command_takes_its_own_members() {
        let op = crate::model::operation("put-action-interactions").unwrap();
        let Parsed::Run(_, o) = super::parse(&v(&["--action", "a", "b", "--tracking-id", "t"]), op).unwrap() else {
            panic!()
        };
        assert_eq!(
            o.members,
            [("actionInteractions".to_owned(), v(&["a", "b"])), ("trackingId".to_owned(), v(&["t"]))]
        );
        let items = crate::model::operation("put-items").unwrap();
        assert_eq!(
            super::parse(&v(&["--items", "itemId=i"]), items).unwrap_err(),
            ArgError::Usage("the following arguments are required: --dataset-arn".into())
        );
        assert_eq!(
            super::parse(&v(&["--dataset-arn", "a", "--items", "x", "--tracking-id", "t"]), items).unwrap_err(),
            ArgError::Unknown(v(&["--tracking-id", "t"]))
        );
    }

    #[test]
    fn python_int_accepts_what_int_accepts() {
        for (text, expected) in [
            ("12", Some(12)),
            (" +7 ", Some(7)),
            ("-3", Some(-3)),
            ("1_000", Some(1000)),
            ("1__0", None),
            ("_1", None),
            ("1.5", None),
            ("", None),
            ("abc", None),
        ] {
            assert_eq!(python_int(text), expected, "{text:?}");
        }
    }

    #[test]
    fn cli_input_json_waives_required() {
        let (_, o) = run(&["--cli-input-json", "{}"]);
        assert_eq!(o.cli_input_json.as_deref(), Some("{}"));
        let (_, o) = run(&["--generate-cli-skeleton"]);
        assert_eq!(o.generate_cli_skeleton.as_deref(), Some("input"));
        assert!(parse(&v(&["--generate-cli-skeleton", "output"])).is_err());
    }
}
