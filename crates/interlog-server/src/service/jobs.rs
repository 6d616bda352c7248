//! The supervisor of background jobs (dataset exports today; imports and deletions later): a
//! bound on how many run at once, a claim on each job so one node runs it, lease renewals while
//! it runs, and recovery of the jobs a stopped process or node left behind. It also turns
//! datasets created `CREATE PENDING` (`--activation-delay`) `ACTIVE` once their delay passed.
//!
//! A job's life: CREATE PENDING (created) → CREATE IN_PROGRESS (claimed by one node, its lease
//! renewed every few seconds) → ACTIVE or CREATE FAILED with a reason. Claims are compare-and-set
//! on the status, so two nodes never run one job.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use interlog_store::catalog::resources::{CatalogExt, DatasetSpec, ExportJobSpec, Lease, Resource};
use interlog_store::{Store, StoreError};
use tokio::sync::Semaphore;

/// Statuses of a job not yet ended.
pub const RUNNING: [&str; 2] = ["CREATE PENDING", "CREATE IN_PROGRESS"];
pub const PENDING: &str = "CREATE PENDING";
pub const IN_PROGRESS: &str = "CREATE IN_PROGRESS";

/// How jobs run.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Jobs running at once on this node; more wait for a slot.
    pub max_running: usize,
    /// How often a running job's lease is renewed.
    pub renew_every: Duration,
    /// A lease not renewed for this long means its node stopped (shared stores only).
    pub stale_after: Duration,
    /// This node's name in leases, the same across its restarts (so a restarted node knows the
    /// jobs it was running were interrupted); see [`node_name`].
    pub node: String,
    /// How long a new dataset stays `CREATE PENDING` (`--activation-delay`); zero: created ACTIVE.
    pub activation_delay: Duration,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            max_running: 2,
            renew_every: Duration::from_secs(5),
            stale_after: Duration::from_secs(30),
            node: node_name(std::path::Path::new(".")),
            activation_delay: Duration::ZERO,
        }
    }
}

/// The job supervisor of this node.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    slots: Arc<Semaphore>,
    settings: JobSettings,
}

/// The work of one job: its outcome is the job's end (ACTIVE, or CREATE FAILED with the reason).
pub type JobWork = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

impl Jobs {
    pub fn new(store: Arc<dyn Store>, settings: JobSettings) -> Self {
        let slots = Arc::new(Semaphore::new(settings.max_running.max(1)));
        Jobs { inner: Arc::new(Inner { store, slots, settings }) }
    }

    /// Fails the export jobs a stop interrupted: on a store of its own, every job not ended (no
    /// one else can be running it); on a shared store, those this node ran before its restart
    /// and those whose node stopped renewing. Call it once at start-up, before this node runs
    /// any job.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        self.fail_interrupted(true).await
    }

    /// `own`: whether jobs leased to this node count as interrupted (true only at start-up).
    async fn fail_interrupted(&self, own: bool) -> Result<usize, StoreError> {
        let store = &self.inner.store;
        let node = &self.inner.settings.node;
        let stale_before = interlog_store::now() - self.inner.settings.stale_after.as_secs_f64();
        let mut failed = 0;
        for job in store.list_all::<ExportJobSpec>(None, None).await? {
            let interrupted = match job.meta.status.as_str() {
                _ if !store.shared() => RUNNING.contains(&job.meta.status.as_str()),
                PENDING => job.meta.updated < stale_before,
                IN_PROGRESS => {
                    job.spec.lease.as_ref().is_none_or(|l| (own && l.node == *node) || l.renewed < stale_before)
                }
                _ => false,
            };
            if !interrupted {
                continue;
            }
            let mut spec = job.spec.clone();
            spec.failure_reason = Some("The server stopped while the job was running; create the job again".to_owned());
            spec.lease = None;
            // Compare-and-set: a job that moved on meanwhile is left alone.
            match store
                .change(&job.meta.account, &job.meta.arn, Some(&job.meta.status), Some("CREATE FAILED"), Some(&spec))
                .await
            {
                Ok(_) => failed += 1,
                Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if failed > 0 {
            tracing::warn!(jobs = failed, "dataset export jobs interrupted by a stop were marked CREATE FAILED");
        }
        Ok(failed)
    }

    /// On a shared store, keeps failing the jobs of nodes that died, for as long as it runs.
    pub fn spawn_sweeper(&self) -> Option<tokio::task::JoinHandle<()>> {
        if !self.inner.store.shared() {
            return None;
        }
        let jobs = self.clone();
        Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(jobs.inner.settings.stale_after / 2).await;
                if let Err(e) = jobs.fail_interrupted(false).await {
                    tracing::warn!(error = %e, "cannot check for interrupted jobs; retrying");
                }
            }
        }))
    }

    /// The status a new dataset is created with: `CREATE PENDING` while an activation delay is
    /// set, which [`Jobs::spawn_activator`] ends.
    pub fn new_dataset_status(&self) -> &'static str {
        if self.inner.settings.activation_delay.is_zero() {
            "ACTIVE"
        } else {
            PENDING
        }
    }

    /// Turns every dataset that has been `CREATE PENDING` for the activation delay `ACTIVE`
    /// (compare-and-set, so on a shared store any node may do it, once); returns how many.
    pub async fn activate_due(&self) -> Result<usize, StoreError> {
        let store = &self.inner.store;
        let due_before = interlog_store::now() - self.inner.settings.activation_delay.as_secs_f64();
        let mut activated = 0;
        for d in store.list_all::<DatasetSpec>(None, None).await? {
            if d.meta.status != PENDING || d.meta.created > due_before {
                continue;
            }
            match store.change::<DatasetSpec>(&d.meta.account, &d.meta.arn, Some(PENDING), Some("ACTIVE"), None).await {
                Ok(_) => activated += 1,
                Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(activated)
    }

    /// Activates pending datasets as their delay passes, on every node for as long as it runs
    /// (a node that stops mid-delay leaves nothing pending for ever: any node, or the next
    /// start, activates it). Without a delay it runs once, for datasets a previous run with a
    /// delay left pending.
    pub fn spawn_activator(&self) -> tokio::task::JoinHandle<()> {
        let jobs = self.clone();
        tokio::spawn(async move {
            let delay = jobs.inner.settings.activation_delay;
            // A tenth of the delay late at most, and no busier than 20 checks a second.
            let every = (delay / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
            loop {
                match jobs.activate_due().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(datasets = n, "datasets turned ACTIVE"),
                    Err(e) => tracing::warn!(error = %e, "cannot activate pending datasets; retrying"),
                }
                if delay.is_zero() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        })
    }

    /// Runs an export job in the background: claims it, renews its lease while `work` runs, then
    /// records the outcome. A panic in `work` fails the job with a reason instead of leaving it
    /// running for ever.
    pub fn run_export(&self, job: Resource<ExportJobSpec>, work: JobWork) {
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let _slot = inner.slots.clone().acquire_owned().await;
            let (account, arn) = (job.meta.account.clone(), job.meta.arn.clone());
            let mut spec = job.spec.clone();
            spec.lease = Some(Lease { node: inner.settings.node.clone(), renewed: interlog_store::now() });
            if let Err(e) = inner.store.change(&account, &arn, Some(PENDING), Some(IN_PROGRESS), Some(&spec)).await {
                tracing::warn!(job = %arn, error = %e, "cannot claim the export job; another node has it or it is gone");
                return;
            }
            let renew = {
                let (inner, account, arn, mut spec) = (inner.clone(), account.clone(), arn.clone(), spec.clone());
                async move {
                    loop {
                        tokio::time::sleep(inner.settings.renew_every).await;
                        spec.lease = Some(Lease { node: inner.settings.node.clone(), renewed: interlog_store::now() });
                        if let Err(e) = inner.store.change(&account, &arn, Some(IN_PROGRESS), None, Some(&spec)).await {
                            tracing::warn!(job = %arn, error = %e, "cannot renew the export job's lease");
                        }
                    }
                }
            };
            let outcome = tokio::select! {
                outcome = tokio::spawn(work) => outcome.unwrap_or_else(|e| Err(format!("the job failed unexpectedly ({e})"))),
                () = renew => unreachable!("renewing never ends"),
            };
            spec.lease = None;
            let status = match outcome {
                Ok(()) => {
                    tracing::info!(job = %arn, "dataset export job done");
                    "ACTIVE"
                }
                Err(reason) => {
                    tracing::warn!(job = %arn, %reason, "dataset export job failed");
                    spec.failure_reason = Some(reason);
                    "CREATE FAILED"
                }
            };
            if let Err(e) = inner.store.change(&account, &arn, Some(IN_PROGRESS), Some(status), Some(&spec)).await {
                tracing::error!(job = %arn, error = %e, "cannot record the export job's outcome");
            }
        });
    }
}

/// A node's name in leases: its host and data dir, so two nodes on one host differ and a node
/// keeps its name across restarts.
pub fn node_name(data_dir: &std::path::Path) -> String {
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let digest = fnv1a(dir.to_string_lossy().as_bytes());
    format!("{}-{digest:08x}", hostname())
}

fn fnv1a(bytes: &[u8]) -> u32 {
    // FNV-1a: a stable, dependency-free digest of a path (not a security boundary).
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    h
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "node".into())
}
