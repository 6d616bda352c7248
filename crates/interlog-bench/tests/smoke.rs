//! The benchmark's smoke run, so it never rots: `interlog-bench suite --smoke` against the
//! `interlog` binary of the same target dir (or `$INTERLOG_BIN`), then `interlog-bench check`
//! on the JSON it wrote. Asserts only that it ran and that every field is there; the figures of
//! a debug build on a shared machine mean nothing.

use std::path::PathBuf;
use std::process::Command;

fn interlog_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("INTERLOG_BIN") {
        return PathBuf::from(bin);
    }
    // target/<profile>/interlog-bench → target/<profile>/interlog
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_interlog-bench"));
    bench.with_file_name(format!("interlog{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn smoke_run_writes_a_complete_report() {
    let bench = env!("CARGO_BIN_EXE_interlog-bench");
    let server = interlog_bin();
    assert!(
        server.is_file(),
        "{} is missing: build the server first (cargo build -p interlog), or set INTERLOG_BIN",
        server.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let out = Command::new(bench)
        .args(["suite", "--smoke", "--server-bin"])
        .arg(&server)
        .arg("--json")
        .arg(&json)
        .arg("--work-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "smoke run failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("== goals"), "no table on stdout:\n{stdout}");

    let check = Command::new(bench).arg("check").arg(&json).output().unwrap();
    assert!(
        check.status.success(),
        "report incomplete:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // An independent look at the top-level shape, in case `check` itself drifts.
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for key in [
        "schema",
        "git_revision",
        "machine",
        "load_average_start",
        "settings",
        "scenarios",
        "clients",
        "export",
        "goals",
    ] {
        assert!(report.get(key).is_some(), "{key} missing");
    }
    let sat = &report["scenarios"][0];
    for key in
        ["requests_per_s", "events_per_s", "latency_us", "server_peak_rss_mib", "server_cpu_s_per_million_events"]
    {
        assert!(sat["interlog"].get(key).is_some(), "scenarios[0].interlog.{key} missing");
    }
    assert!(sat["ratio_requests_per_s"].as_f64().unwrap() > 0.0);
    // The store's counters come from GET /_interlog/stats, which only a signed root request reads.
    assert!(sat["interlog"]["store_commits_per_s"].is_number(), "no store counters: {}", sat["interlog"]);
}

/// `interlog-bench postgres --smoke` against the test database: every scenario ran, every
/// figure is in the report and nothing failed. Skipped (with a printed line) without one.
#[test]
fn postgres_smoke_run_writes_every_scenario() {
    let Some(url) = std::env::var("INTERLOG_TEST_DATABASE_URL").ok().filter(|u| !u.trim().is_empty()) else {
        eprintln!("SKIPPED postgres_smoke_run: INTERLOG_TEST_DATABASE_URL is not set");
        return;
    };
    let server = interlog_bin();
    assert!(server.is_file(), "{} is missing: build the server first (cargo build -p interlog)", server.display());
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench-pg.json");
    let out = Command::new(env!("CARGO_BIN_EXE_interlog-bench"))
        .args(["postgres", "--smoke", "--database-url", &url, "--server-bin"])
        .arg(&server)
        .arg("--json")
        .arg(&json)
        .arg("--work-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "postgres smoke run failed\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1 node / store alone"), "no table on stdout:\n{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let names: Vec<&str> =
        report["scenarios"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["pg-store-1", "pg-1node", "pg-store-2", "pg-2nodes", "pg-half-1node"]);
    for sc in report["scenarios"].as_array().unwrap() {
        let run = &sc["runs"][0];
        assert!(run["events_per_s"].as_f64().unwrap() > 0.0, "{} stored nothing: {run}", sc["name"]);
        assert_eq!(run["errors"], 0, "{}: {}", sc["name"], run["error_kinds"]);
        assert!(run["events_per_commit"].is_number(), "{}: no commit sizes", sc["name"]);
    }
    assert_eq!(report["goals"].as_array().unwrap().len(), 3);
}

/// `interlog-bench history` in miniature: one short run with the indexer on and off, a store of
/// a few thousand events, the queries; the report has every part.
#[test]
fn history_smoke_run_reports_both_indexer_settings_and_query_latencies() {
    let server = interlog_bin();
    assert!(server.is_file(), "{} is missing: build the server first (cargo build -p interlog)", server.display());
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("history.json");
    let out = Command::new(env!("CARGO_BIN_EXE_interlog-bench"))
        .args(["history", "--runs", "1", "--warmup", "0.2", "--duration", "0.6", "--events", "5000", "--queries", "5"])
        .args(["--catch-up-limit", "10", "--connections", "8", "--server-bin"])
        .arg(&server)
        .arg("--json")
        .arg(&json)
        .arg("--work-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "history run failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("on/off") && stdout.contains("history on 5000 events"), "no figures on stdout:\n{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["put_events_index_on"].as_array().map(Vec::len), Some(1));
    assert_eq!(report["put_events_index_off"].as_array().map(Vec::len), Some(1));
    let first = &report["queries"][0];
    assert!(first["busy_user_us"]["count"].as_u64() == Some(5), "{report}");
    assert!(first["absent_user_us"]["p50"].as_f64().is_some_and(|p| p > 0.0), "{report}");
}
