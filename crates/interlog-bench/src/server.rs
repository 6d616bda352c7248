//! Starting and stopping the servers under test: `interlog serve` from a given binary, and the
//! baselines (this binary's hidden `baseline-server` command, `baseline.rs`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::sign::Credentials;

/// The benchmark's root key (any well-formed key works: the server is started with it).
pub fn bench_credentials() -> Credentials {
    Credentials {
        access_key_id: "AKIAINTERLOGBENCH000".into(),
        secret_access_key: "interlog/bench/secret/key/0000000000000000".into(),
    }
}

/// The account of [`bench_credentials`] on the baselines that verify signatures.
pub const BENCH_ACCOUNT: &str = "000000000000";

pub const TRACKING_ID: &str = "00000000-0000-4000-8000-0000000be9c4";

/// A running server process.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
}

impl Server {
    /// `interlog serve` on a free port with its data in `data_dir`; with a database URL the node
    /// keeps everything in PostgreSQL (several nodes may be given the same URL); `env`: more
    /// environment variables (`INTERLOG_NO_HISTORY_INDEX`, `INTERLOG_AUTH`).
    pub fn interlog_with(
        bin: &Path,
        data_dir: &Path,
        log: &Path,
        database_url: Option<&str>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Server> {
        let creds = bench_credentials();
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_remove("INTERLOG_DATABASE_URL");
        if let Some(url) = database_url {
            cmd.args(["--database-url", url]);
        }
        cmd.args(["--default-tracking-id", TRACKING_ID])
            .env("INTERLOG_ACCESS_KEY_ID", &creds.access_key_id)
            .env("INTERLOG_SECRET_ACCESS_KEY", &creds.secret_access_key)
            .env("INTERLOG_LOG", std::env::var("INTERLOG_LOG").unwrap_or_else(|_| "warn".into()))
            .env_remove("INTERLOG_AUTH")
            .env_remove("INTERLOG_LISTEN")
            .env_remove("INTERLOG_DATA_DIR")
            .env_remove("INTERLOG_NO_HISTORY_INDEX")
            .envs(env.iter().copied());
        Server::spawn(cmd, log).with_context(|| format!("starting {} serve", bin.display()))
    }

    /// A baseline server (this binary, `baseline-server --work WORK`).
    pub fn baseline(log: &Path, work: crate::baseline::Work) -> anyhow::Result<Server> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(["baseline-server", "--listen", "127.0.0.1:0", "--work", work.name()]);
        Server::spawn(cmd, log).with_context(|| format!("starting the {} baseline server", work.name()))
    }

    fn spawn(mut cmd: Command, log: &Path) -> anyhow::Result<Server> {
        let stderr = std::fs::File::create(log)?;
        let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr).spawn()?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the banner for the address, then drains stdout so the server never blocks on it.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(rest.trim().to_owned());
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a.parse::<SocketAddr>().with_context(|| format!("bad address in banner: {a}"))?,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(log).unwrap_or_default();
                anyhow::bail!("the server printed no address within 30 s; its log:\n{log}");
            }
        };
        let server = Server { child, addr, pid };
        server.wait_healthy(Duration::from_secs(30))?;
        Ok(server)
    }

    fn wait_healthy(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if http_get_status(self.addr, "/_interlog/health").is_ok_and(|s| s == 200) {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "{} never answered 200 on /_interlog/health", self.addr);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `Host` header value for requests to it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// SIGTERM, then SIGKILL after 20 s.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        anyhow::bail!("the server ignored SIGTERM for 20 s and was killed")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A plain blocking GET; the status code.
pub fn http_get_status(addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    http_get(addr, path).map(|(status, _)| status)
}

/// A plain blocking GET with `Connection: close`; status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    get(addr, path, "")
}

/// As [`http_get`], signed with `creds` (stats need a signed request of the root account).
pub fn http_get_signed(addr: SocketAddr, path: &str, creds: &Credentials) -> std::io::Result<(u16, Vec<u8>)> {
    let signature = crate::sign::sign_get(creds, &addr.to_string(), path, std::time::SystemTime::now())
        .map_err(std::io::Error::other)?;
    let headers = format!("X-Amz-Date: {}\r\nAuthorization: {}\r\n", signature.amz_date, signature.authorization);
    get(addr, path, &headers)
}

/// A control-plane call signed with `creds`; the answer's JSON, or why it failed.
pub fn control(
    addr: SocketAddr,
    operation: &str,
    body: &serde_json::Value,
    creds: &Credentials,
) -> anyhow::Result<serde_json::Value> {
    let target = format!("AmazonPersonalize.{operation}");
    let body = body.to_string();
    let signature =
        crate::sign::sign_control(creds, &addr.to_string(), &target, body.as_bytes(), std::time::SystemTime::now())?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: {target}\r\n\
         X-Amz-Date: {}\r\nAuthorization: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        signature.amz_date,
        signature.authorization,
        body.len()
    )?;
    let (status, answer) = read_answer(&mut stream)?;
    anyhow::ensure!(status == 200, "{operation} answered {status}: {}", String::from_utf8_lossy(&answer));
    Ok(serde_json::from_slice(&answer)?)
}

/// Creates an Items dataset with [`crate::body::ITEMS_SCHEMA`] in the server's default dataset
/// group; its ARN.
pub fn create_items_dataset(addr: SocketAddr) -> anyhow::Result<String> {
    let creds = bench_credentials();
    let schema = control(
        addr,
        "CreateSchema",
        &serde_json::json!({"name": "bench-items", "schema": crate::body::ITEMS_SCHEMA}),
        &creds,
    )?;
    let schema_arn = schema["schemaArn"].as_str().context("CreateSchema gave no schemaArn")?;
    // The default group of the same account: arn:...:<account>:dataset-group/default.
    let prefix = schema_arn.rsplit_once(":schema/").context("a schema ARN")?.0;
    let group = format!("{prefix}:dataset-group/default");
    let dataset = control(
        addr,
        "CreateDataset",
        &serde_json::json!({"name": "bench-items", "schemaArn": schema_arn, "datasetGroupArn": group, "datasetType": "Items"}),
        &creds,
    )?;
    Ok(dataset["datasetArn"].as_str().context("CreateDataset gave no datasetArn")?.to_owned())
}

/// Creates a dataset group whose Interactions dataset has [`crate::body::TYPED_SCHEMA`], and its
/// event tracker; the tracking ID.
pub fn create_typed_tracker(addr: SocketAddr) -> anyhow::Result<String> {
    let creds = bench_credentials();
    let call = |op: &str, body: serde_json::Value| control(addr, op, &body, &creds);
    let schema = call("CreateSchema", serde_json::json!({"name": "bench-typed", "schema": crate::body::TYPED_SCHEMA}))?;
    let schema_arn = schema["schemaArn"].as_str().context("CreateSchema gave no schemaArn")?;
    let group = call("CreateDatasetGroup", serde_json::json!({"name": "bench-typed"}))?;
    let group_arn = group["datasetGroupArn"].as_str().context("CreateDatasetGroup gave no datasetGroupArn")?;
    call(
        "CreateDataset",
        serde_json::json!({"name": "bench-typed", "schemaArn": schema_arn, "datasetGroupArn": group_arn,
                           "datasetType": "Interactions"}),
    )?;
    let tracker = call("CreateEventTracker", serde_json::json!({"name": "bench-typed", "datasetGroupArn": group_arn}))?;
    Ok(tracker["trackingId"].as_str().context("CreateEventTracker gave no trackingId")?.to_owned())
}

fn get(addr: SocketAddr, path: &str, headers: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n")?;
    read_answer(&mut stream)
}

/// Status and body of an answer on a `Connection: close` stream.
fn read_answer(stream: &mut TcpStream) -> std::io::Result<(u16, Vec<u8>)> {
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let body = match response.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => response[at + 4..].to_vec(),
        None => Vec::new(),
    };
    Ok((status, body))
}

/// A scratch directory for one benchmark (data dirs, logs, exports), removed on drop unless
/// `keep`.
pub fn work_dir(base: Option<&PathBuf>) -> anyhow::Result<tempfile::TempDir> {
    let dir = match base {
        Some(b) => {
            std::fs::create_dir_all(b)?;
            tempfile::Builder::new().prefix("interlog-bench-").tempdir_in(b)?
        }
        None => tempfile::Builder::new().prefix("interlog-bench-").tempdir()?,
    };
    Ok(dir)
}
