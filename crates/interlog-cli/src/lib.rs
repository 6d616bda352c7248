//! The library behind `interlog put-events`, `put-items`, `put-users`,
//! `put-actions` and `put-action-interactions`: aws-cli v1's
//! `aws personalize-events <command>`, option for option.
//!
//! # Entry point
//!
//! The `interlog` binary calls [`run`] with the command and the words after
//! it, the real environment, working directory and standard input, and exits
//! with the returned code:
//!
//! ```no_run
//! use std::io::Write;
//! let inv = interlog_cli::Invocation::from_process(std::env::args_os().skip(2).collect());
//! let code = interlog_cli::run("put-items", inv, &mut std::io::stdout(), &mut std::io::stderr());
//! std::process::exit(code);
//! ```
//!
//! Every command is data: its options, validation, serialization, path and
//! skeleton come from botocore's service model (vendored in `models/`), its
//! help page from aws-cli's (`help/`).
//!
//! Tests build an [`Invocation`] by hand instead, with their own environment
//! map, directory and stdin; nothing in the library reads `std::env`, so many
//! invocations can run in parallel in one process.
//!
//! # Map
//!
//! * `args` parses the command line the way aws-cli's argparse does (no IO).
//! * `model` loads the operations and their shapes from the service model,
//!   and validates and serializes call parameters as botocore does; `params`
//!   turns option values into call parameters (`file://`, JSON, `shorthand`,
//!   `--cli-input-json`), `timestamp` handles `sentAt` / `timestamp`,
//!   `pyjson` holds Python-compatible JSON.
//! * `config` resolves profile, region and credentials from the injected
//!   environment and the `~/.aws` files; `request` signs (aws-sigv4) and sends
//!   (`http`) with botocore's retry policy; `output` prints.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

mod args;
mod config;
pub mod fetch;
mod help;
mod http;
mod migration;
mod model;
mod output;
mod params;
mod pyjson;
mod request;
mod shorthand;
mod timestamp;

use crate::args::{ArgError, Parsed};
use crate::config::{Env, Files};
use crate::output::{DebugLog, USAGE};
use crate::pyjson::{dumps, DictKind, Value};

/// Everything one run depends on besides its output streams.
pub struct Invocation {
    /// The arguments after the command (`put-events`).
    pub args: Vec<OsString>,
    /// The environment (`HOME`, `AWS_*`, proxies, `TZ`).
    pub env: HashMap<String, String>,
    /// The working directory for relative `file://` paths.
    pub cwd: PathBuf,
    /// What `file:///dev/stdin` reads; `None` reads nothing.
    pub stdin: Option<Box<dyn Read + Send>>,
    /// Pins the SigV4 clock, for reproducible signatures in tests.
    pub fixed_clock: Option<SystemTime>,
}

impl Invocation {
    /// An invocation with the real process environment, directory and stdin.
    pub fn from_process(args: Vec<OsString>) -> Self {
        Self {
            args,
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            stdin: Some(Box::new(std::io::stdin())),
            fixed_clock: None,
        }
    }
}

/// The commands [`run`] knows, in the service model's order: `put-action-interactions`,
/// `put-actions`, `put-events`, `put-items`, `put-users`.
pub fn commands() -> impl Iterator<Item = &'static str> {
    model::operations().iter().map(|op| op.command.as_str())
}

/// Runs `put-events`; see [`run`].
pub fn run_put_events(inv: Invocation, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    run("put-events", inv, stdout, stderr)
}

/// Runs `aws personalize-events <command>` and returns the process exit code:
/// 0 on success, 2 for argparse errors (an unknown command is one), 255 for
/// everything else aws-cli reports as an error.
pub fn run(command: &str, inv: Invocation, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let Some(op) = model::operation(command) else {
        let choices: Vec<&str> = commands().collect();
        let _ = write!(
            stderr,
            "usage: {}\naws: error: argument operation: Invalid choice, valid choices are: {}\n",
            USAGE.trim_end_matches('\n'),
            choices.join(", ")
        );
        return 2;
    };
    let args: Vec<String> = inv.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let env = Env::new(inv.env);
    if let Some(main) = args::main_pass(&args) {
        if let Err(message) = top_level_checks(&main) {
            let _ = write!(stderr, "\n{message}\n");
            return 255;
        }
        if migration::enabled(main.v2_debug, &env) {
            let files = config::load_files(&env, main.profile.as_deref()).ok();
            let _ = stderr.write_all(migration::warnings(&env, files.as_ref()).as_bytes());
        }
    }
    let parsed = match args::parse(&args, op) {
        Ok(parsed) => parsed,
        Err(ArgError::Usage(msg)) => {
            let _ = write!(stderr, "usage: {}\naws: error: {msg}\n", USAGE.trim_end_matches('\n'));
            return 2;
        }
        Err(ArgError::Unknown(words)) => {
            let _ = write!(stderr, "usage: {USAGE}\nUnknown options: {}\n", words.join(", "));
            return 255;
        }
    };
    let (globals, operation) = match parsed {
        Parsed::Help => {
            let _ = stdout.write_all(help::page(command).as_bytes());
            return 0;
        }
        Parsed::Version => {
            let _ = writeln!(
                stdout,
                "interlog-cli/{} (aws-cli/1.46.3 {command} compatible) {}/{}",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::env::consts::ARCH
            );
            return 0;
        }
        Parsed::Run(g, o) => (g, o),
    };
    let mut log = DebugLog::new(globals.debug, stderr);
    log.line(
        "awscli.clidriver",
        &format!("CLI version: interlog-cli/{} (aws-cli/1.46.3 compatible)", env!("CARGO_PKG_VERSION")),
    );
    log.line("awscli.clidriver", &format!("Arguments entered to CLI: {args:?}"));
    let run = Run { operation: op, globals: &globals, env: &env, fixed_clock: inv.fixed_clock };
    let files_ctx = params::FileContext {
        cwd: &inv.cwd,
        env: &env,
        stdin: std::cell::RefCell::new(inv.stdin.map(|s| s as Box<dyn Read>)),
    };
    let result = run.execute(&operation, &files_ctx, &mut log, stdout);
    match result {
        Ok(()) => 0,
        Err(failure) => {
            log.line("awscli.clidriver", "Exiting with rc 255");
            let text = match failure {
                Failure::Plain(msg) => format!("{msg}\n"),
                Failure::Blank(msg) => format!("\n{msg}\n"),
            };
            // The debug log holds stderr; the error text goes there, debug on or off.
            log.warning(&text);
            255
        }
    }
}

/// aws-cli's `top-level-args-parsed` checks, in its order: they fail before the operation's
/// options are even parsed, so they win over a missing required option.
fn top_level_checks(main: &args::MainPass) -> Result<(), String> {
    if let Some(query) = &main.query {
        output::compile_query(query)?;
    }
    if let Some(url) = &main.endpoint_url {
        if http::Url::parse(url).is_none() {
            return Err(bad_endpoint(url));
        }
    }
    for value in &main.timeouts {
        if args::python_int(value).is_none() {
            return Err(format!("invalid literal for int() with base 10: {}", pyjson::str_repr(value)));
        }
    }
    Ok(())
}

fn bad_endpoint(url: &str) -> String {
    format!(
        "Bad value for --endpoint-url \"{url}\": scheme is missing.  Must be of the form http://<hostname>/ or https://<hostname>/"
    )
}

/// An error to print: aws-cli puts a blank line before most messages.
enum Failure {
    /// Printed as is (credentials and region errors).
    Plain(String),
    /// Printed after a blank line.
    Blank(String),
}

struct Run<'a> {
    operation: &'static model::Operation,
    globals: &'a args::GlobalArgs,
    env: &'a Env,
    fixed_clock: Option<SystemTime>,
}

impl Run<'_> {
    fn execute(
        &self,
        operation: &args::OperationArgs,
        files_ctx: &params::FileContext<'_>,
        log: &mut DebugLog<'_>,
        stdout: &mut dyn Write,
    ) -> Result<(), Failure> {
        let g = self.globals;
        let query = match &g.query {
            Some(q) => Some(output::compile_query(q).map_err(Failure::Blank)?),
            None => None,
        };
        let files = config::load_files(self.env, g.profile.as_deref())
            .map_err(|e| Failure::Blank(format!("The config profile ({}) could not be found", e.0)))?;
        let op = self.operation;
        let call = params::build(op, operation, files_ctx).map_err(|e| Failure::Blank(e.to_string()))?;
        log.line("awscli.arguments", &format!("Call parameters: {}", dumps(&call, None)));
        match operation.generate_cli_skeleton.as_deref() {
            Some("output") => {
                validate(&call, op)?;
                return Ok(());
            }
            Some(_) => {
                let skeleton = model::skeleton(&op.input);
                let _ = writeln!(stdout, "{}", dumps(&skeleton, Some(4)));
                return Ok(());
            }
            None => {}
        }
        log.line("botocore.session", &format!("Using profile: {}", files.profile_name));
        let plan = self.plan(&files, log)?;
        validate(&call, op)?;
        let body = dumps(&model::serialize(&call, &op.input), None);
        let plan = self.with_credentials(plan, &files, log)?;
        if !plan.http.verify && plan.endpoint.scheme == "https" {
            // urllib3's warning, which aws-cli v1 prints (through Python's warnings module,
            // once per run) for every unverified HTTPS connection.
            log.warning(&format!(
                "InsecureRequestWarning: Unverified HTTPS request is being made to host '{}'. Adding certificate \
                 verification is strongly advised. See: https://urllib3.readthedocs.io/en/latest/advanced-usage.html#tls-warnings\n",
                plan.endpoint.host
            ));
        }
        match request::execute(&plan, &op.request_uri, body.as_bytes(), log) {
            request::Outcome::Success(response) => {
                if let Some(id) = response.header("x-amzn-RequestId") {
                    log.line("awscli.formatter", &format!("RequestId: {id}"));
                }
                let output = g
                    .output
                    .clone()
                    .or_else(|| config::setting(self.env, &files, "AWS_DEFAULT_OUTPUT", "output"))
                    .unwrap_or_else(|| "json".into());
                let response = Value::Dict(Vec::new(), DictKind::Plain);
                let shown = match &query {
                    Some(q) => q.apply(&response),
                    None => response,
                };
                output::print_response(&shown, &output, stdout);
                Ok(())
            }
            request::Outcome::ServiceError { code, message, retries_exhausted } => {
                let retry = retries_exhausted.map(|n| format!(" (reached max retries: {n})")).unwrap_or_default();
                Err(Failure::Blank(format!(
                    "An error occurred ({code}) when calling the {} operation{retry}: {message}",
                    op.name
                )))
            }
            request::Outcome::Transport(msg) => Err(Failure::Blank(msg)),
        }
    }

    /// Region, endpoint and transport settings: botocore's client creation.
    fn plan(&self, files: &Files, log: &mut DebugLog<'_>) -> Result<request::Plan, Failure> {
        let g = self.globals;
        let env = self.env;
        if let Some(url) = &g.endpoint_url {
            if http::Url::parse(url).is_none() {
                return Err(Failure::Blank(bad_endpoint(url)));
            }
        }
        let region =
            g.region.clone().or_else(|| config::setting(env, files, "AWS_DEFAULT_REGION", "region")).ok_or_else(
                || {
                    Failure::Plain(
                        "You must specify a region. You can also configure your region by running \"aws configure\"."
                            .into(),
                    )
                },
            )?;
        if !valid_region(&region) {
            return Err(Failure::Blank(format!("Provided region_name '{region}' doesn't match a supported format.")));
        }
        let ignore_configured =
            config::setting(env, files, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "ignore_configured_endpoint_urls")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let configured = if ignore_configured {
            None
        } else {
            env.get("AWS_ENDPOINT_URL_PERSONALIZE_EVENTS")
                .or_else(|| env.get("AWS_ENDPOINT_URL"))
                .map(str::to_owned)
                .or_else(|| files.config.get("endpoint_url").map(str::to_owned))
        };
        let endpoint_text = g.endpoint_url.clone().or(configured).unwrap_or_else(|| {
            let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
            format!("https://personalize-events.{region}.{suffix}")
        });
        let endpoint = http::Url::parse(&endpoint_text).ok_or_else(|| Failure::Blank(bad_endpoint(&endpoint_text)))?;
        log.line(
            "botocore.endpoint",
            &format!("Setting personalize timeout as ({:?}, {:?})", g.cli_connect_timeout, g.cli_read_timeout),
        );
        let seconds = |v: Option<i64>| match v {
            Some(0) => None,
            Some(n) => Some(Duration::from_secs(n.max(0) as u64)),
            None => Some(Duration::from_secs(60)),
        };
        let retry_mode = match config::setting(env, files, "AWS_RETRY_MODE", "retry_mode").as_deref() {
            Some("standard") | Some("adaptive") => request::RetryMode::Standard,
            _ => request::RetryMode::Legacy,
        };
        let default_attempts = if retry_mode == request::RetryMode::Legacy { 5 } else { 3 };
        let max_attempts = config::setting(env, files, "AWS_MAX_ATTEMPTS", "max_attempts")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|n| *n >= 1)
            .unwrap_or(default_attempts);
        let ca_bundle = g
            .ca_bundle
            .clone()
            .or_else(|| config::setting(env, files, "AWS_CA_BUNDLE", "ca_bundle"))
            .map(|p| env.expand_user(&p));
        let http = http::Settings {
            connect_timeout: seconds(g.cli_connect_timeout),
            read_timeout: seconds(g.cli_read_timeout),
            verify: !g.no_verify_ssl,
            ca_bundle,
            proxy: proxy_for(env, &endpoint),
        };
        Ok(request::Plan {
            endpoint,
            region,
            credentials: None,
            http,
            retry_mode,
            max_attempts,
            retry_base_ms: env.get("INTERLOG_CLI_RETRY_BASE_MS").and_then(|v| v.parse().ok()).unwrap_or(1000),
            fixed_clock: self.fixed_clock,
        })
    }

    fn with_credentials(
        &self,
        mut plan: request::Plan,
        files: &Files,
        log: &mut DebugLog<'_>,
    ) -> Result<request::Plan, Failure> {
        if self.globals.no_sign_request {
            return Ok(plan);
        }
        match config::resolve_credentials(self.env, files) {
            Ok(creds) => {
                log.line("botocore.credentials", &format!("Found credentials via: {}", creds.method));
                plan.credentials = Some(creds);
                Ok(plan)
            }
            Err(config::CredentialsError::None) => Err(Failure::Plain(
                "Unable to locate credentials. You can configure credentials by running \"aws configure\".".into(),
            )),
            Err(config::CredentialsError::Partial(msg)) => Err(Failure::Blank(msg)),
        }
    }
}

fn validate(call: &Value, op: &model::Operation) -> Result<(), Failure> {
    match model::validate(call, &op.input) {
        Ok(()) => Ok(()),
        Err(model::Invalid::Report(lines)) => {
            Err(Failure::Blank(format!("Parameter validation failed:\n{}", lines.join("\n"))))
        }
        Err(model::Invalid::Bare(e)) => Err(Failure::Blank(e.0)),
    }
}

/// botocore's region check: `^[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?$`.
fn valid_region(region: &str) -> bool {
    let bytes = region.as_bytes();
    let alnum = |b: &u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.len() <= 63
        && alnum(&bytes[0])
        && alnum(&bytes[bytes.len() - 1])
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

/// The proxy for a URL from `https_proxy`/`http_proxy` (lower case wins, as
/// in Python's urllib) unless `no_proxy` matches the host.
fn proxy_for(env: &Env, url: &http::Url) -> Option<(String, http::Url)> {
    let no_proxy = env.get("no_proxy").or_else(|| env.get("NO_PROXY")).unwrap_or("");
    for entry in no_proxy.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if entry == "*" {
            return None;
        }
        let entry = entry.split(':').next().unwrap_or(entry).trim_start_matches('.');
        if url.host == entry || url.host.ends_with(&format!(".{entry}")) {
            return None;
        }
    }
    let (lower, upper) =
        if url.scheme == "https" { ("https_proxy", "HTTPS_PROXY") } else { ("http_proxy", "HTTP_PROXY") };
    let text = env.get(lower).or_else(|| env.get(upper))?.to_owned();
    let with_scheme = if text.contains("://") { text.clone() } else { format!("http://{text}") };
    http::Url::parse(&with_scheme).map(|u| (text, u))
}
