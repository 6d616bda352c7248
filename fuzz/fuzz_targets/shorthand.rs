//! The client's shorthand parser (`eventType=click,impression=a,b`) through the public
//! `put-events` entry point: the input is the `--event-list` value. No credentials are
//! configured, so a run ends before any network access; it must end in an exit code, never a
//! panic.
#![no_main]

use std::collections::HashMap;
use std::ffi::OsString;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else { return };
    // `file://` and `@=` values read files (even /dev/zero): input the fuzzer must not steer.
    let lower = value.to_ascii_lowercase();
    if lower.contains("file") || lower.contains("http") {
        return;
    }
    let mut env = HashMap::new();
    env.insert("HOME".to_owned(), "/nonexistent-interlog-fuzz-home".to_owned());
    env.insert("AWS_CONFIG_FILE".to_owned(), "/nonexistent-interlog-fuzz-config".to_owned());
    env.insert("AWS_SHARED_CREDENTIALS_FILE".to_owned(), "/nonexistent-interlog-fuzz-credentials".to_owned());
    let args: Vec<OsString> = [
        "--region",
        "us-east-1",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--tracking-id",
        "t",
        "--session-id",
        "s",
        "--event-list",
        value,
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let inv = interlog_cli::Invocation {
        args,
        env,
        cwd: std::path::PathBuf::from("/nonexistent-interlog-fuzz-cwd"),
        stdin: None,
        fixed_clock: None,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let _exit_code = interlog_cli::run_put_events(inv, &mut out, &mut err);
});
