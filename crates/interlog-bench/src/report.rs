//! The JSON report (every figure of a run), medians, goals, the human table, and the check
//! that a report has every field (what CI asserts after the smoke run).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::procfs::Machine;

pub const SCHEMA: &str = "interlog-bench/1";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    /// The command line that produced the report.
    pub command: String,
    pub smoke: bool,
    pub started_at_unix: u64,
    pub total_seconds: f64,
    pub git_revision: String,
    /// `interlog --version` of the server binary measured.
    pub server_version: String,
    pub server_bin: String,
    pub machine: Machine,
    pub load_average_start: [f64; 3],
    pub load_average_end: [f64; 3],
    pub settings: Settings,
    pub scenarios: Vec<ScenarioReport>,
    pub clients: ClientReport,
    pub export: ExportReport,
    /// The same store exported to Parquet (absent in reports from before it was measured).
    #[serde(default)]
    pub export_parquet: Option<ExportReport>,
    pub goals: Vec<Goal>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    pub runs: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub connections: usize,
    pub generator_threads: usize,
}

fn no_properties() -> String {
    "none".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub name: String,
    pub description: String,
    pub events_per_request: usize,
    pub connections: usize,
    /// `unique` (every eventId new, signed on the fly) or `repeated` (a pre-signed pool of
    /// requests sent round-robin: after the first pass every event is a duplicate).
    pub ids: String,
    /// Open-loop offered load in requests/s; `null` for closed loop (saturation).
    pub rate_requests_per_s: Option<f64>,
    /// `sigv4` (interlog verifies every signature) or `off` (`INTERLOG_AUTH=off`). Reports from
    /// before the option read as `sigv4`.
    #[serde(default = "sigv4")]
    pub auth: String,
    /// What `properties` each event carried: `documented` (the PutEvents example, flagged by the
    /// default schema) or `none`. Reports from before the option read as `none`.
    #[serde(default = "no_properties")]
    pub properties: String,
    pub body_bytes: usize,
    /// Every run, in the order run (baseline and interlog alternate).
    pub runs: Vec<RunReport>,
    /// Medians over the runs of each target, figure by figure.
    pub noop: Figures,
    /// The SigV4-and-parse baseline (verifies the signature, parses PutEvents, stores nothing),
    /// where the scenario ran it.
    #[serde(default)]
    pub sigv4_parse: Option<Figures>,
    /// The parse-only baseline, where the scenario ran it (beside interlog with auth off).
    #[serde(default)]
    pub parse: Option<Figures>,
    pub interlog: Figures,
    /// interlog's requests/s over the no-op's (same events per request, so also events/s).
    pub ratio_requests_per_s: f64,
    /// interlog's server CPU per request over the no-op's.
    pub ratio_server_cpu_per_request: f64,
    /// interlog's requests/s over the SigV4-and-parse baseline's, where it ran.
    #[serde(default)]
    pub ratio_sigv4_parse_requests_per_s: Option<f64>,
    /// interlog's requests/s over the parse-only baseline's, where it ran.
    #[serde(default)]
    pub ratio_parse_requests_per_s: Option<f64>,
}

fn sigv4() -> String {
    "sigv4".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    /// `noop` or `interlog`.
    pub target: String,
    pub index: usize,
    pub figures: Figures,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Figures {
    pub window_s: f64,
    pub ok_requests: f64,
    pub requests_per_s: f64,
    pub events_per_s: f64,
    /// Requests in the window that got no 200 (any reason).
    pub errors: f64,
    /// By kind (`HTTP 400 ThrottlingException`, `timeout`, `connection: closed`, ...); in a
    /// median row, summed over the runs.
    pub error_kinds: BTreeMap<String, u64>,
    /// From the due time (open loop) / the write (closed loop), microseconds.
    pub latency_us: Percentiles,
    /// From the write, microseconds.
    pub service_time_us: Percentiles,
    pub server_cpu_s: f64,
    /// Cores busy on average (CPU seconds / window seconds).
    pub server_cores_used: f64,
    pub server_cpu_us_per_request: f64,
    pub server_cpu_s_per_million_events: f64,
    /// VmHWM of the server at the end of the window.
    pub server_peak_rss_mib: f64,
    pub generator_cpu_us_per_request: f64,
    pub generator_cores_used: f64,
    /// fdatasync + fsync calls of the server per second (perf tracepoints); null without perf.
    pub server_fsyncs_per_s: Option<f64>,
    /// Flush requests the data dir's block device completed per second (whole machine).
    pub disk_flushes_per_s: Option<f64>,
    /// Accepted events per server fsync; null without perf.
    pub events_per_fsync: Option<f64>,
    /// From `GET /_interlog/stats` over the window (null for the no-op, or a server without it):
    /// commits/s, events (stored + dropped) per commit, events stored/s, duplicates dropped/s,
    /// requests throttled.
    pub store_commits_per_s: Option<f64>,
    pub store_events_per_commit: Option<f64>,
    pub store_events_stored_per_s: Option<f64>,
    pub store_duplicates_dropped_per_s: Option<f64>,
    pub store_throttled: Option<f64>,
    /// CPU the rest of the machine used in the window (all busy time minus server and
    /// generator, in cores): the noise of a shared machine.
    pub others_cores_used: f64,
    pub load_average_1m: f64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50) as f64,
            p90: h.value_at_quantile(0.90) as f64,
            p99: h.value_at_quantile(0.99) as f64,
            p999: h.value_at_quantile(0.999) as f64,
            max: h.max() as f64,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClientReport {
    pub calls_per_client: usize,
    pub events_per_call: usize,
    pub interlog_command: String,
    /// Path and `--version` of aws-cli; null when none was found.
    pub aws_cli: Option<String>,
    pub interlog_ms: Vec<f64>,
    pub aws_ms: Option<Vec<f64>>,
    pub interlog_median_ms: f64,
    pub aws_median_ms: Option<f64>,
    /// aws-cli median over interlog median.
    pub speedup: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ExportReport {
    pub format: String,
    /// Events in the exported file (rows after the header).
    pub events: u64,
    pub fill_events_per_s: f64,
    pub store_bytes: u64,
    pub output_bytes: u64,
    pub seconds: Vec<f64>,
    pub median_seconds: f64,
    pub events_per_s: f64,
    /// Peak RSS of the exporting process (last VmHWM seen while it ran).
    pub peak_rss_mib: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Goal {
    pub name: String,
    pub target: String,
    pub measured: Option<f64>,
    pub unit: String,
    /// measured / target for "at least" goals, target / measured for "at most" goals: >= 1 is met.
    pub score: Option<f64>,
    pub met: Option<bool>,
}

impl Goal {
    pub fn at_least(name: &str, unit: &str, threshold: f64, measured: Option<f64>) -> Goal {
        let score = measured.map(|m| m / threshold);
        Goal {
            name: name.into(),
            target: format!(">= {} {unit}", fmt_num(threshold)),
            measured,
            unit: unit.into(),
            score,
            met: score.map(|s| s >= 1.0),
        }
    }

    pub fn at_most(name: &str, unit: &str, threshold: f64, measured: Option<f64>) -> Goal {
        let score = measured.map(|m| if m > 0.0 { threshold / m } else { f64::INFINITY });
        Goal {
            name: name.into(),
            target: format!("<= {} {unit}", fmt_num(threshold)),
            measured,
            unit: unit.into(),
            score,
            met: score.map(|s| s >= 1.0),
        }
    }
}

pub fn median(values: &mut [f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn med(runs: &[&Figures], f: impl Fn(&Figures) -> f64) -> f64 {
    median(&mut runs.iter().map(|r| f(r)).collect::<Vec<_>>())
}

fn med_opt(runs: &[&Figures], f: impl Fn(&Figures) -> Option<f64>) -> Option<f64> {
    let mut v: Vec<f64> = runs.iter().filter_map(|r| f(r)).collect();
    (!v.is_empty()).then(|| median(&mut v))
}

fn med_pct(runs: &[&Figures], f: impl Fn(&Figures) -> &Percentiles) -> Percentiles {
    Percentiles {
        count: med(runs, |r| f(r).count as f64) as u64,
        mean: med(runs, |r| f(r).mean),
        p50: med(runs, |r| f(r).p50),
        p90: med(runs, |r| f(r).p90),
        p99: med(runs, |r| f(r).p99),
        p999: med(runs, |r| f(r).p999),
        max: med(runs, |r| f(r).max),
    }
}

/// Figure-by-figure medians of some runs (error kinds are summed).
pub fn median_figures(runs: &[&Figures]) -> Figures {
    let mut error_kinds = BTreeMap::new();
    for r in runs {
        for (k, v) in &r.error_kinds {
            *error_kinds.entry(k.clone()).or_default() += v;
        }
    }
    Figures {
        window_s: med(runs, |r| r.window_s),
        ok_requests: med(runs, |r| r.ok_requests),
        requests_per_s: med(runs, |r| r.requests_per_s),
        events_per_s: med(runs, |r| r.events_per_s),
        errors: med(runs, |r| r.errors),
        error_kinds,
        latency_us: med_pct(runs, |r| &r.latency_us),
        service_time_us: med_pct(runs, |r| &r.service_time_us),
        server_cpu_s: med(runs, |r| r.server_cpu_s),
        server_cores_used: med(runs, |r| r.server_cores_used),
        server_cpu_us_per_request: med(runs, |r| r.server_cpu_us_per_request),
        server_cpu_s_per_million_events: med(runs, |r| r.server_cpu_s_per_million_events),
        server_peak_rss_mib: med(runs, |r| r.server_peak_rss_mib),
        generator_cpu_us_per_request: med(runs, |r| r.generator_cpu_us_per_request),
        generator_cores_used: med(runs, |r| r.generator_cores_used),
        server_fsyncs_per_s: med_opt(runs, |r| r.server_fsyncs_per_s),
        disk_flushes_per_s: med_opt(runs, |r| r.disk_flushes_per_s),
        events_per_fsync: med_opt(runs, |r| r.events_per_fsync),
        store_commits_per_s: med_opt(runs, |r| r.store_commits_per_s),
        store_events_per_commit: med_opt(runs, |r| r.store_events_per_commit),
        store_events_stored_per_s: med_opt(runs, |r| r.store_events_stored_per_s),
        store_duplicates_dropped_per_s: med_opt(runs, |r| r.store_duplicates_dropped_per_s),
        store_throttled: med_opt(runs, |r| r.store_throttled),
        others_cores_used: med(runs, |r| r.others_cores_used),
        load_average_1m: med(runs, |r| r.load_average_1m),
    }
}

pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let a = x.abs();
    if a >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn ms(us: f64) -> String {
    if !us.is_finite() {
        return "-".into();
    }
    if us >= 10_000.0 {
        format!("{:.0}", us / 1000.0)
    } else {
        format!("{:.2}", us / 1000.0)
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or("-".into(), fmt_num)
}

/// One scenario as a table: a row per target (medians), then the ratio.
pub fn scenario_table(s: &ScenarioReport, runs: usize) -> String {
    let mut out = String::new();
    let rate = s.rate_requests_per_s.map_or("closed loop (saturation)".to_owned(), |r| {
        format!("open loop at {} req/s = {} events/s", fmt_num(r), fmt_num(r * s.events_per_request as f64))
    });
    writeln!(
        out,
        "\n== {}: {} ({} ev/req, {} B body, properties {}, {} connections, {} ids, {rate}; medians of {runs})",
        s.name, s.description, s.events_per_request, s.body_bytes, s.properties, s.connections, s.ids
    )
    .unwrap();
    writeln!(
        out,
        "{:<11} {:>8} {:>9} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>6} {:>7} {:>7} {:>7} {:>6}",
        "target",
        "req/s",
        "events/s",
        "errors",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9",
        "max ms",
        "srv µs/r",
        "cpu s/Mev",
        "cores",
        "RSS MiB",
        "fsync/s",
        "gen µs/r",
        "others"
    )
    .unwrap();
    let ran = |t: &str| s.runs.iter().any(|r| r.target == t);
    let rows = [
        ("noop", ran("noop").then_some(&s.noop)),
        ("sigv4-parse", s.sigv4_parse.as_ref()),
        ("parse", s.parse.as_ref()),
        ("interlog", Some(&s.interlog)),
    ];
    for (name, f) in rows.into_iter().filter_map(|(n, f)| Some((n, f?))) {
        writeln!(
            out,
            "{:<11} {:>8} {:>9} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>9} {:>6.2} {:>7.1} {:>7} {:>8} {:>6.2}",
            name,
            fmt_num(f.requests_per_s),
            fmt_num(f.events_per_s),
            fmt_num(f.errors),
            ms(f.latency_us.p50),
            ms(f.latency_us.p90),
            ms(f.latency_us.p99),
            ms(f.latency_us.p999),
            ms(f.latency_us.max),
            fmt_num(f.server_cpu_us_per_request),
            fmt_num(f.server_cpu_s_per_million_events),
            f.server_cores_used,
            f.server_peak_rss_mib,
            opt(f.server_fsyncs_per_s),
            fmt_num(f.generator_cpu_us_per_request),
            f.others_cores_used,
        )
        .unwrap();
    }
    if ran("noop") {
        writeln!(
            out,
            "interlog / noop: {:.1} % of the requests/s, {:.2}x the server CPU per request",
            s.ratio_requests_per_s * 100.0,
            s.ratio_server_cpu_per_request
        )
        .unwrap();
    }
    if let Some(r) = s.ratio_sigv4_parse_requests_per_s {
        writeln!(out, "interlog / sigv4-parse: {:.1} % of the requests/s", r * 100.0).unwrap();
    }
    if let Some(r) = s.ratio_parse_requests_per_s {
        writeln!(out, "interlog (auth {}) / parse: {:.1} % of the requests/s", s.auth, r * 100.0).unwrap();
    }
    if !s.interlog.error_kinds.is_empty() || !s.noop.error_kinds.is_empty() {
        writeln!(out, "errors (all runs): noop {:?}, interlog {:?}", s.noop.error_kinds, s.interlog.error_kinds)
            .unwrap();
    }
    out
}

pub fn full_table(r: &Report) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "interlog-bench on {} ({} cores, kernel {}, {} on {}), revision {}",
        r.machine.cpu_model,
        r.machine.cores,
        r.machine.kernel,
        r.machine.filesystem.fs_type,
        r.machine.filesystem.device,
        r.git_revision
    )
    .unwrap();
    writeln!(
        out,
        "load average at start {:?}, at end {:?}; {:.0} s in all",
        r.load_average_start, r.load_average_end, r.total_seconds
    )
    .unwrap();
    for s in &r.scenarios {
        out.push_str(&scenario_table(s, r.settings.runs));
    }
    let c = &r.clients;
    writeln!(
        out,
        "\n== client: one put-events call ({} events), wall time, median of {}",
        c.events_per_call, c.calls_per_client
    )
    .unwrap();
    writeln!(out, "interlog put-events: {:.1} ms", c.interlog_median_ms).unwrap();
    match (c.aws_median_ms, c.speedup) {
        (Some(aws), Some(x)) => {
            writeln!(out, "aws personalize-events put-events: {aws:.1} ms  => interlog is {x:.1}x faster").unwrap()
        }
        _ => writeln!(out, "aws-cli: not measured (not found)").unwrap(),
    }
    let e = &r.export;
    writeln!(
        out,
        "\n== export: {} events to {} ({:.1} MB, store {:.1} MB), median of {} runs: {:.2} s = {} events/s, peak RSS {:.0} MiB (filled at {} events/s)",
        e.events,
        e.format,
        e.output_bytes as f64 / 1e6,
        e.store_bytes as f64 / 1e6,
        e.seconds.len(),
        e.median_seconds,
        fmt_num(e.events_per_s),
        e.peak_rss_mib,
        fmt_num(e.fill_events_per_s)
    )
    .unwrap();
    if let Some(e) = &r.export_parquet {
        writeln!(
            out,
            "== export: {} events to {} ({:.1} MB), median of {} runs: {:.2} s = {} events/s, peak RSS {:.0} MiB",
            e.events,
            e.format,
            e.output_bytes as f64 / 1e6,
            e.seconds.len(),
            e.median_seconds,
            fmt_num(e.events_per_s),
            e.peak_rss_mib,
        )
        .unwrap();
    }
    writeln!(out, "\n== goals").unwrap();
    for g in &r.goals {
        let verdict = match g.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        };
        writeln!(
            out,
            "{:<40} {:>18}  measured {:>10} {:<8} {:>7}  {verdict}",
            g.name,
            g.target,
            opt(g.measured),
            g.unit,
            g.score.map_or("-".into(), |s| format!("{s:.2}x")),
        )
        .unwrap();
    }
    out
}

/// Fields that may be null: what needs perf, aws-cli or a stats endpoint.
const NULLABLE: &[&str] = &[
    // A baseline a scenario did not run (`check` requires each where the suite runs it).
    "sigv4_parse",
    "parse",
    "ratio_sigv4_parse_requests_per_s",
    "ratio_parse_requests_per_s",
    "server_fsyncs_per_s",
    "events_per_fsync",
    "disk_flushes_per_s",
    "store_commits_per_s",
    "store_events_per_commit",
    "store_events_stored_per_s",
    "store_duplicates_dropped_per_s",
    "store_throttled",
    "aws_cli",
    "aws_ms",
    "aws_median_ms",
    "speedup",
    "rate_requests_per_s",
    "measured",
    "score",
    "met",
];

/// Checks that a report file has every field with a value of the right type, that every
/// scenario ran both targets, and that figures that must be positive are. Returns the warnings
/// (fields that are null where that is allowed).
pub fn check(text: &str) -> anyhow::Result<Vec<String>> {
    let raw: serde_json::Value = serde_json::from_str(text)?;
    let report: Report = serde_json::from_value(raw.clone())?;
    anyhow::ensure!(report.schema == SCHEMA, "schema is {:?}, expected {SCHEMA:?}", report.schema);
    let full = serde_json::to_value(&report)?;
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    same_keys(&full, &raw, "$", &mut problems, &mut warnings);
    let names: Vec<&str> = report.scenarios.iter().map(|s| s.name.as_str()).collect();
    for want in ["sat-10ev", "sat-1ev", "noauth-10ev", "dup-10ev", "half-10ev"] {
        if !names.contains(&want) {
            problems.push(format!("scenario {want} is missing"));
        }
    }
    for s in &report.scenarios {
        // Which baseline each scenario of the suite runs beside interlog (suite.rs).
        let targets: &[&str] = match s.name.as_str() {
            "sat-10ev" | "sat-1ev" => &["noop", "sigv4-parse", "interlog"],
            "noauth-10ev" => &["parse", "interlog"],
            _ => &["noop", "interlog"],
        };
        for &target in targets {
            let runs: Vec<&RunReport> = s.runs.iter().filter(|r| r.target == target).collect();
            if runs.is_empty() {
                problems.push(format!("{}: no {target} run", s.name));
            }
            for r in runs {
                let f = &r.figures;
                if f.ok_requests <= 0.0
                    || f.requests_per_s.is_nan()
                    || f.requests_per_s <= 0.0
                    || f.latency_us.count == 0
                {
                    problems.push(format!("{}: {target} run {} accepted no request", s.name, r.index));
                }
                if !f.server_cpu_s.is_finite() || f.server_peak_rss_mib.is_nan() || f.server_peak_rss_mib <= 0.0 {
                    problems.push(format!("{}: {target} run {} has no server CPU or RSS", s.name, r.index));
                }
            }
        }
        let ratio = if s.name == "noauth-10ev" { s.ratio_parse_requests_per_s } else { Some(s.ratio_requests_per_s) };
        if ratio.is_none_or(|r| r.is_nan() || r <= 0.0) {
            problems.push(format!("{}: no ratio to the baseline", s.name));
        }
        if targets.contains(&"sigv4-parse") && s.ratio_sigv4_parse_requests_per_s.is_none_or(|r| r.is_nan() || r <= 0.0)
        {
            problems.push(format!("{}: no ratio to the SigV4-and-parse baseline", s.name));
        }
    }
    if report.clients.interlog_median_ms.is_nan() || report.clients.interlog_median_ms <= 0.0 {
        problems.push("clients: interlog put-events was not timed".into());
    }
    if report.export.events == 0 || report.export.events_per_s.is_nan() || report.export.events_per_s <= 0.0 {
        problems.push("export: nothing exported".into());
    }
    // The suite's goals (suite.rs): six of issue 1 (two raised by issue 17), the Parquet export
    // of issue 16, and issue 17's three shares of the baselines and CPU per request.
    if report.goals.len() != 11 {
        problems.push(format!("{} goals, expected 11", report.goals.len()));
    }
    if report.git_revision.is_empty() || report.machine.cores == 0 || report.machine.kernel.is_empty() {
        problems.push("machine or revision missing".into());
    }
    anyhow::ensure!(problems.is_empty(), "the report is incomplete:\n  {}", problems.join("\n  "));
    Ok(warnings)
}

fn same_keys(
    full: &serde_json::Value,
    raw: &serde_json::Value,
    path: &str,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    match (full, raw) {
        (serde_json::Value::Object(f), serde_json::Value::Object(r)) => {
            for (k, fv) in f {
                let p = format!("{path}.{k}");
                match r.get(k) {
                    None => problems.push(format!("{p} is missing")),
                    Some(serde_json::Value::Null) => {
                        if NULLABLE.contains(&k.as_str()) {
                            warnings.push(format!("{p} is null"));
                        } else {
                            problems.push(format!("{p} is null"));
                        }
                    }
                    Some(rv) => same_keys(fv, rv, &p, problems, warnings),
                }
            }
        }
        (serde_json::Value::Array(f), serde_json::Value::Array(r)) => {
            for (i, (fv, rv)) in f.iter().zip(r).enumerate() {
                same_keys(fv, rv, &format!("{path}[{i}]"), problems, warnings);
            }
        }
        _ => {}
    }
}
