//! The supervisor of background jobs (dataset exports and imports, data deletions): a
//! bound on how many run at once, a claim on each job so one node runs it, lease renewals while
//! it runs, and recovery of the jobs a stopped process or node left behind. It also turns
//! datasets created `CREATE PENDING` (`--activation-delay`) `ACTIVE` once their delay passed.
//!
//! A job's life: pending (created) → in progress (claimed by one node, its lease renewed every
//! few seconds) → done or failed with a reason, in each kind's own words ([`JobSpec::STATUSES`]:
//! CREATE PENDING → CREATE IN_PROGRESS → ACTIVE / CREATE FAILED for exports, PENDING →
//! IN_PROGRESS → COMPLETED / FAILED for deletions, as the model has them). Claims are
//! compare-and-set on the status, so two nodes never run one job.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use interlog_store::catalog::resources::{
    CatalogExt, DatasetSpec, DeletionJobSpec, ExportJobSpec, ImportJobSpec, Lease, Resource, Spec,
};
use interlog_store::catalog::Quota;
use interlog_store::{BulkRemoval, Store, StoreError};
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

/// The work of one job: its outcome is the job's end (done with what it did, or failed with the reason).
pub type Work<T> = std::pin::Pin<Box<dyn Future<Output = Result<T, String>> + Send>>;
/// An export job's work.
pub type JobWork = Work<()>;

/// The statuses of a kind of job.
#[derive(Debug, Clone, Copy)]
pub struct JobStatuses {
    pub pending: &'static str,
    pub in_progress: &'static str,
    pub done: &'static str,
    pub failed: &'static str,
}

impl JobStatuses {
    pub fn running(&self) -> [&'static str; 2] {
        [self.pending, self.in_progress]
    }
}

/// What every job's creation checks first, before any side effect, for a job of kind `S` named
/// `name` at `arn` (`what`: the kind as messages name it, "dataset export job"): the name not
/// taken (the insert checks it again, atomically); and the account's quota of running jobs of the
/// kind, to pass to the insert, which enforces it atomically on every node.
pub(super) async fn admission<S: JobSpec>(
    store: &Arc<dyn Store>,
    account: &str,
    arn: &str,
    name: &str,
    what: &str,
    max: u64,
) -> Result<(String, Quota), crate::api::error::ApiError> {
    // `{arn}`: the job that has the name (another region's, when the name was taken there).
    let exists = format!("A {what} named {name} already exists ({{arn}})");
    if store.find::<S>(account, arn).await?.is_some() {
        return Err(crate::api::error::ApiError::ResourceAlreadyExists(exists.replace("{arn}", arn)));
    }
    let quota = Quota {
        max,
        statuses: S::STATUSES.running().iter().map(|s| s.to_string()).collect(),
        message: format!(
            "Account {account} already has {max} {what}s pending or in progress, the quota; wait until one ends"
        ),
    };
    Ok((exists, quota))
}

/// The account's jobs of kind `S`, refused with the quota's message when as many are running as
/// it allows: spares a caller at the limit any side effect (folders made, files opened) before the
/// insert enforces the quota atomically.
pub(super) async fn unless_full<S: JobSpec>(
    store: &Arc<dyn Store>,
    account: &str,
    quota: &Quota,
) -> Result<Vec<Resource<S>>, crate::api::error::ApiError> {
    let jobs = store.list_all::<S>(Some(account), None).await?;
    let running = jobs.iter().filter(|j| quota.statuses.contains(&j.meta.status)).count();
    if running as u64 >= quota.max {
        return Err(crate::api::error::ApiError::LimitExceeded(quota.message.clone()));
    }
    Ok(jobs)
}

/// A kind of job the supervisor runs.
pub trait JobSpec: Spec {
    const STATUSES: JobStatuses;
    /// What a finished job reports.
    type Outcome: Send + 'static;
    fn lease(&self) -> Option<&Lease>;
    fn set_lease(&mut self, lease: Option<Lease>);
    fn succeeded(&mut self, outcome: Self::Outcome);
    fn failed(&mut self, reason: String);
}

impl JobSpec for ExportJobSpec {
    const STATUSES: JobStatuses =
        JobStatuses { pending: PENDING, in_progress: IN_PROGRESS, done: "ACTIVE", failed: "CREATE FAILED" };
    type Outcome = ();
    fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }
    fn set_lease(&mut self, lease: Option<Lease>) {
        self.lease = lease;
    }
    fn succeeded(&mut self, (): ()) {}
    fn failed(&mut self, reason: String) {
        self.failure_reason = Some(reason);
    }
}

impl JobSpec for ImportJobSpec {
    const STATUSES: JobStatuses =
        JobStatuses { pending: PENDING, in_progress: IN_PROGRESS, done: "ACTIVE", failed: "CREATE FAILED" };
    type Outcome = ();
    fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }
    fn set_lease(&mut self, lease: Option<Lease>) {
        self.lease = lease;
    }
    fn succeeded(&mut self, (): ()) {}
    fn failed(&mut self, reason: String) {
        self.failure_reason = Some(reason);
    }
}

/// Rows removed per call when an import's rows go (a failed job's, or what a FULL import replaces): one short
/// transaction each, so live appends between them never wait long.
pub const REMOVE_CHUNK_ROWS: usize = 2_000;

/// Removes a dataset's imported rows that `what` names, a chunk at a time.
pub async fn remove_bulk(store: &dyn Store, dataset_id: i64, what: BulkRemoval) -> Result<u64, StoreError> {
    let mut removed = 0;
    loop {
        match store.remove_bulk(dataset_id, what, REMOVE_CHUNK_ROWS).await? {
            0 => return Ok(removed),
            n => removed += n as u64,
        }
    }
}

impl JobSpec for DeletionJobSpec {
    const STATUSES: JobStatuses =
        JobStatuses { pending: "PENDING", in_progress: "IN_PROGRESS", done: "COMPLETED", failed: "FAILED" };
    /// `numDeleted`.
    type Outcome = u64;
    fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }
    fn set_lease(&mut self, lease: Option<Lease>) {
        self.lease = lease;
    }
    fn succeeded(&mut self, deleted: u64) {
        self.num_deleted = Some(deleted);
    }
    fn failed(&mut self, reason: String) {
        self.failure_reason = Some(reason);
    }
}

impl Jobs {
    pub fn new(store: Arc<dyn Store>, settings: JobSettings) -> Self {
        let slots = Arc::new(Semaphore::new(settings.max_running.max(1)));
        Jobs { inner: Arc::new(Inner { store, slots, settings }) }
    }

    /// Fails the jobs a stop interrupted: on a store of its own, every job not ended (no
    /// one else can be running it); on a shared store, those this node ran before its restart
    /// and those whose node stopped renewing. Call it once at start-up, before this node runs
    /// any job.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        self.fail_interrupted(true).await
    }

    /// `own`: whether jobs leased to this node count as interrupted (true only at start-up).
    async fn fail_interrupted(&self, own: bool) -> Result<usize, StoreError> {
        let imports = self.fail_interrupted_of::<ImportJobSpec>(own).await?;
        // An interrupted import leaves nothing behind: its rows go (docs/api.md "Dataset import jobs").
        for job in &imports {
            let removed = remove_bulk(&*self.inner.store, job.spec.dataset_id, BulkRemoval::Job(job.meta.id)).await?;
            tracing::info!(job = %job.meta.arn, rows = removed, "removed the rows of an interrupted import job");
        }
        Ok(self.fail_interrupted_of::<ExportJobSpec>(own).await?.len()
            + self.fail_interrupted_of::<DeletionJobSpec>(own).await?.len()
            + imports.len())
    }

    /// Fails the interrupted jobs of one kind; returns those it failed.
    async fn fail_interrupted_of<S: JobSpec>(&self, own: bool) -> Result<Vec<Resource<S>>, StoreError> {
        let store = &self.inner.store;
        let node = &self.inner.settings.node;
        let stale_before = interlog_store::now() - self.inner.settings.stale_after.as_secs_f64();
        let st = S::STATUSES;
        let mut failed = Vec::new();
        for job in store.list_all::<S>(None, None).await? {
            let status = job.meta.status.as_str();
            let interrupted = if !store.shared() {
                st.running().contains(&status)
            } else if status == st.pending {
                job.meta.updated < stale_before
            } else if status == st.in_progress {
                job.spec.lease().is_none_or(|l| (own && l.node == *node) || l.renewed < stale_before)
            } else {
                false
            };
            if !interrupted {
                continue;
            }
            let mut spec = job.spec.clone();
            spec.failed("The server stopped while the job was running; create the job again".to_owned());
            spec.set_lease(None);
            // Compare-and-set: a job that moved on meanwhile is left alone.
            match store.change(&job.meta.account, &job.meta.arn, Some(status), Some(st.failed), Some(&spec)).await {
                Ok(_) => failed.push(job),
                Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if !failed.is_empty() {
            let kind = S::KIND.noun();
            tracing::warn!(jobs = failed.len(), "{kind}s interrupted by a stop were marked {}", st.failed);
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

    /// Runs an export job in the background ([`Jobs::run`]).
    pub fn run_export(&self, job: Resource<ExportJobSpec>, work: JobWork) {
        self.run(job, work);
    }

    /// Runs a job in the background: claims it, renews its lease while `work` runs, then
    /// records the outcome. A panic in `work` fails the job with a reason instead of leaving it
    /// running for ever.
    pub fn run<S: JobSpec>(&self, job: Resource<S>, work: Work<S::Outcome>) {
        let inner = self.inner.clone();
        let st = S::STATUSES;
        let kind = S::KIND.noun();
        tokio::spawn(async move {
            let _slot = inner.slots.clone().acquire_owned().await;
            let (account, arn) = (job.meta.account.clone(), job.meta.arn.clone());
            let mut spec = job.spec.clone();
            spec.set_lease(Some(Lease { node: inner.settings.node.clone(), renewed: interlog_store::now() }));
            if let Err(e) =
                inner.store.change(&account, &arn, Some(st.pending), Some(st.in_progress), Some(&spec)).await
            {
                tracing::warn!(job = %arn, error = %e, "cannot claim the {kind}; another node has it or it is gone");
                return;
            }
            let renew = {
                let (inner, account, arn, mut spec) = (inner.clone(), account.clone(), arn.clone(), spec.clone());
                async move {
                    loop {
                        tokio::time::sleep(inner.settings.renew_every).await;
                        spec.set_lease(Some(Lease {
                            node: inner.settings.node.clone(),
                            renewed: interlog_store::now(),
                        }));
                        if let Err(e) =
                            inner.store.change(&account, &arn, Some(st.in_progress), None, Some(&spec)).await
                        {
                            tracing::warn!(job = %arn, error = %e, "cannot renew the {kind}'s lease");
                        }
                    }
                }
            };
            let outcome = tokio::select! {
                outcome = tokio::spawn(work) => outcome.unwrap_or_else(|e| Err(format!("the job failed unexpectedly ({e})"))),
                () = renew => unreachable!("renewing never ends"),
            };
            spec.set_lease(None);
            let status = match outcome {
                Ok(outcome) => {
                    tracing::info!(job = %arn, "{kind} done");
                    spec.succeeded(outcome);
                    st.done
                }
                Err(reason) => {
                    tracing::warn!(job = %arn, %reason, "{kind} failed");
                    spec.failed(reason);
                    st.failed
                }
            };
            if let Err(e) = inner.store.change(&account, &arn, Some(st.in_progress), Some(status), Some(&spec)).await {
                tracing::error!(job = %arn, error = %e, "cannot record the {kind}'s outcome");
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
