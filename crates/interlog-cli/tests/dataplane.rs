//! The four data-plane commands besides put-events (`put-items`, `put-users`, `put-actions`,
//! `put-action-interactions`) against two corpora of the real aws-cli 1.46.3, both kept in the repo:
//!
//! - `tests/corpus/awscli-dataplane/`: a copy of the reference recordings `conformance/awscli-dataplane/`
//!   (238 cases, see its README);
//! - `tests/corpus/awscli-dataplane-recorded/`: this project's own, recorded by
//!   `scripts/record-cli-corpus` (run it again after changing its case list).
//!
//! Every case must pass: see `support` for what is compared. A minimum case count per corpus and
//! per command keeps an emptied or truncated corpus from passing.

mod support;

use std::path::Path;

const COMMANDS: [&str; 4] = ["put-items", "put-users", "put-actions", "put-action-interactions"];

fn corpus(name: &str) -> Vec<serde_json::Value> {
    support::load_corpus(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(name))
}

fn replay(name: &str, recording: support::Recording, minimum_total: usize, minimum_per_command: usize) {
    let cases = corpus(name);
    assert!(cases.len() >= minimum_total, "{name}: {} cases, expected at least {minimum_total}", cases.len());
    for command in COMMANDS {
        let n = cases.iter().filter(|c| support::command(c) == command).count();
        assert!(n >= minimum_per_command, "{name}: {n} {command} cases, expected at least {minimum_per_command}");
    }
    assert!(
        cases.iter().all(|c| COMMANDS.contains(&support::command(c))),
        "{name}: every case runs one of {COMMANDS:?}"
    );
    let failed = support::replay_all(&cases, name, recording);
    assert!(failed.is_empty(), "{} case(s) of {name} failed:\n{}", failed.len(), failed.join("\n"));
}

#[test]
fn awscli_dataplane_corpus() {
    replay("awscli-dataplane", support::Recording::UniversalNewlines, 238, 50);
}

#[test]
fn recorded_dataplane_corpus() {
    replay("awscli-dataplane-recorded", support::Recording::Exact, 308, 73);
}

#[test]
fn the_commands_are_the_service_model_operations() {
    let commands: Vec<&str> = interlog_cli::commands().collect();
    assert_eq!(commands, ["put-action-interactions", "put-actions", "put-events", "put-items", "put-users"]);
    let inv = interlog_cli::Invocation {
        args: Vec::new(),
        env: Default::default(),
        cwd: std::env::temp_dir(),
        stdin: None,
        fixed_clock: None,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(interlog_cli::run("put-recommendations", inv, &mut out, &mut err), 2);
    let err = String::from_utf8(err).unwrap();
    assert!(err.ends_with("aws: error: argument operation: Invalid choice, valid choices are: put-action-interactions, put-actions, put-events, put-items, put-users\n"), "{err}");
    assert!(out.is_empty());
}
