//! Shared harness: the real `interlog` binary on a free port with its own data dir.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const ROOT_KEY: &str = "AKIDINTERLOGROOT0001";
pub const ROOT_SECRET: &str = "rootSecretKeyForTheIntegrationTests00001";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_interlog")
}

/// A running `interlog serve`; killed when dropped.
pub struct Server {
    child: Child,
    pub endpoint: String,
    pub tracking_id: String,
    pub data_dir: PathBuf,
    pub banner: Vec<String>,
}

impl Server {
    /// Starts a server with the test root key on `data_dir` and waits until it prints its banner.
    pub fn start(data_dir: &Path, args: &[&str]) -> Server {
        Self::start_with_env(
            data_dir,
            args,
            &[("INTERLOG_ACCESS_KEY_ID", ROOT_KEY), ("INTERLOG_SECRET_ACCESS_KEY", ROOT_SECRET)],
        )
    }

    pub fn start_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(bin());
        cmd.arg("serve").arg("--listen").arg("127.0.0.1:0").arg("--data-dir").arg(data_dir).args(args);
        cmd.env_remove("INTERLOG_ACCESS_KEY_ID").env_remove("INTERLOG_SECRET_ACCESS_KEY").env_remove("INTERLOG_AUTH");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn interlog");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        let (mut endpoint, mut tracking_id) = (None, None);
        while endpoint.is_none()
            || tracking_id.is_none()
            || banner.last().map(|l: &String| !l.contains("export")).unwrap_or(true)
        {
            let line = rx.recv_timeout(Duration::from_secs(30)).expect("server printed its banner in time");
            if let Some(rest) = line.split(" listening on ").nth(1) {
                endpoint = Some(rest.trim().to_owned());
            }
            if let Some(rest) = line.strip_prefix("tracking ID:") {
                tracking_id = Some(rest.trim().to_owned());
            }
            banner.push(line);
        }
        Server {
            child,
            endpoint: endpoint.unwrap(),
            tracking_id: tracking_id.unwrap(),
            data_dir: data_dir.to_owned(),
            banner,
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "interlog exited with {status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `interlog export --data-dir DIR --format jsonl`, parsed.
pub fn export_jsonl(data_dir: &Path) -> Vec<serde_json::Value> {
    let out = export(data_dir, "jsonl");
    out.lines().map(|l| serde_json::from_str(l).expect("jsonl line")).collect()
}

pub fn export(data_dir: &Path, format: &str) -> String {
    let out = Command::new(bin())
        .args(["export", "--format", format, "--output", "-", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run interlog export");
    assert!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}
