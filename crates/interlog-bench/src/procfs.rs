//! What Linux tells about a process and the machine: CPU time and peak RSS from /proc, disk
//! flushes from /sys/class/block, fdatasync calls from a perf tracepoint, machine facts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde::{Deserialize, Serialize};

/// Clock ticks per second of /proc's utime/stime (USER_HZ; 100 on every x86 Linux).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// utime + stime of a process (all its threads), in seconds.
pub fn cpu_seconds(pid: u32, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// utime + stime of every process whose command name is `comm` (e.g. `postgres`: the server's
/// backends, WAL writer and checkpointer), in seconds. A process that exits between two calls
/// takes its time with it, so use this over windows where the processes stay.
pub fn cpu_seconds_of_command(comm: &str, ticks: f64) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return f64::NAN };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == comm))
        .filter_map(|pid| cpu_seconds(pid, ticks))
        .sum()
}

/// A `kB` line of /proc/PID/status (`VmHWM`, `VmRSS`), in MiB.
pub fn status_mib(pid: u32, key: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))?;
    let kb: f64 = line[key.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024.0)
}

/// Busy CPU seconds of the whole machine (all cores: user, nice, system, irq, softirq, steal).
pub fn machine_busy_seconds(ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<f64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7).unwrap_or(&0.0);
    Some(busy / ticks)
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(f64::NAN));
    [it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN)]
}

/// The filesystem a path lives on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Filesystem {
    pub path: String,
    pub mount_point: String,
    pub device: String,
    pub fs_type: String,
    pub options: String,
}

pub fn filesystem_of(path: &Path) -> Filesystem {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, Filesystem)> = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let mount_point = f[1].replace("\\040", " ");
        if path.starts_with(&mount_point) && best.as_ref().is_none_or(|(len, _)| mount_point.len() >= *len) {
            best = Some((
                mount_point.len(),
                Filesystem {
                    path: path.display().to_string(),
                    mount_point,
                    device: f[0].to_owned(),
                    fs_type: f[2].to_owned(),
                    options: f[3].to_owned(),
                },
            ));
        }
    }
    best.map(|(_, fs)| fs).unwrap_or(Filesystem {
        path: path.display().to_string(),
        mount_point: String::new(),
        device: String::new(),
        fs_type: String::new(),
        options: String::new(),
    })
}

/// Flush requests completed by a block device (field 16 of its stat; whole machine, every
/// process). An fdatasync on ext4 with a write-back cache sends one or two.
pub fn disk_flushes(device: &str) -> Option<u64> {
    let name = device.strip_prefix("/dev/")?;
    let stat = std::fs::read_to_string(PathBuf::from("/sys/class/block").join(name).join("stat")).ok()?;
    stat.split_whitespace().nth(15)?.parse().ok()
}

/// Counts fdatasync + fsync calls of one process with perf's syscall tracepoints (near-zero
/// overhead, needs perf and tracefs; `None` without them).
pub struct SyncCounter {
    child: Child,
    out: tempfile::NamedTempFile,
}

impl SyncCounter {
    pub fn start(pid: u32, seconds: f64) -> Option<SyncCounter> {
        let out = tempfile::NamedTempFile::new().ok()?;
        let child = Command::new("perf")
            .args(["stat", "-x", ",", "-e", "syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync", "-p"])
            .arg(pid.to_string())
            .arg("-o")
            .arg(out.path())
            .args(["--", "sleep"])
            .arg(format!("{seconds:.3}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(SyncCounter { child, out })
    }

    /// Total fdatasync + fsync calls counted, once perf has exited.
    pub fn finish(mut self) -> Option<u64> {
        let status = self.child.wait().ok()?;
        if !status.success() {
            return None;
        }
        let text = std::fs::read_to_string(self.out.path()).ok()?;
        let mut total = 0;
        let mut seen = 0;
        for line in text.lines().filter(|l| l.contains("syscalls:sys_enter_f")) {
            let value = line.split(',').next()?;
            total += value.trim().parse::<u64>().ok()?;
            seen += 1;
        }
        (seen == 2).then_some(total)
    }
}

/// Where and on what the benchmark ran.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    pub os: String,
    pub memory_mib: u64,
    pub filesystem: Filesystem,
    pub perf_available: bool,
}

pub fn machine(data_path: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_mib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024);
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_default();
    let perf_available = Command::new("perf")
        .args(["stat", "-x", ",", "-e", "syscalls:sys_enter_fdatasync", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    Machine {
        cpu_model,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
        os,
        memory_mib,
        filesystem: filesystem_of(data_path),
        perf_available,
    }
}

/// The git revision of the working tree the benchmark runs from, `+dirty` when it has changes.
pub fn git_revision(dir: &Path) -> String {
    let rev = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let dirty = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .is_some_and(|o| !o.stdout.is_empty());
    if dirty {
        format!("{rev}+dirty")
    } else {
        rev
    }
}
