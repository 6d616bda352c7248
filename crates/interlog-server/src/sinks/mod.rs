//! The sinks that carry every stored event on (NATS JetStream, forwarding to Personalize): one task per (sink,
//! dataset) that reads the dataset's log after its durable cursor, page by page, delivers the
//! page and moves the cursor only after the destination confirmed it. A keyed dataset (items,
//! users, actions) is read the same way by the positions its records' writes took
//! ([`interlog_store::EventStore::read_changed_records`]): a page is the records written after the
//! cursor, each in its latest version.
//!
//! - **From the store, never from memory, never on the write path.** A sink reads what is
//!   committed ([`interlog_store::EventStore::read`]); appends do not wait for it, and a sink
//!   that fell behind (destination down for hours) catches up from disk.
//! - **Woken at once, polled as a fallback.** A task sleeps on [`interlog_store::SinkState::appended`] (this
//!   process's commits); on a shared store other nodes' commits are found by polling.
//! - **At least once, exactly once where the destination deduplicates.** The cursor moves after
//!   the confirmation, so a crash in between delivers the page again; every message carries an
//!   idempotency key (NATS: `Nats-Msg-Id`) so the destination drops the replay.
//! - **One node per sink.** A sink runs where it holds its lease ([`interlog_store::SinkState::lease_sink`]),
//!   renewed every few seconds; a node that dies stops renewing and another takes the sink over
//!   once the lease expired. The cursor is a compare-and-set, so a node that lost its lease
//!   without knowing it cannot move the cursor under the new holder.

pub mod forward;
pub mod nats;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use interlog_model::RecordKind;
use interlog_store::catalog::resources::{CatalogExt, DatasetSpec, TrackerSpec};
use interlog_store::{Cursor, DeadLetter, Refused, Store, StoreError, StoredEvent, StoredRecord};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The dataset a task delivers from, as its messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Names the dataset's log.
    pub id: i64,
    pub arn: String,
    pub account: String,
    pub dataset_type: String,
    pub group_arn: String,
    /// The last segment of the group's ARN.
    pub group_name: String,
    /// The tracking ID of the group's event tracker (of the dataset's own, for action
    /// interactions); `None` when it has none.
    pub tracking_id: Option<String>,
}

impl Source {
    /// The kind of record a keyed dataset holds; `None` for the two event logs.
    pub fn record_kind(&self) -> Option<RecordKind> {
        self.dataset_type.parse().ok().and_then(RecordKind::of_dataset_type)
    }
}

/// One entry of a page: an event of a dataset's log, or a record of a keyed dataset as its latest write holds
/// it. A dataset's pages hold one kind only.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Event(StoredEvent),
    Record(StoredRecord),
}

impl Entry {
    /// Its position in the dataset's log (a record's: the one its latest write took).
    pub fn position(&self) -> i64 {
        match self {
            Entry::Event(e) => e.seq,
            Entry::Record(r) => r.position,
        }
    }

    /// What names it in a dead letter: the eventId, or the record's ID.
    pub fn key(&self) -> &str {
        match self {
            Entry::Event(e) => &e.interaction.event_id,
            Entry::Record(r) => &r.record.id,
        }
    }
}

/// Reads up to `limit` entries after `after`: the log of an event dataset, the changed records of a keyed one.
async fn read_page(store: &dyn Store, source: &Source, after: i64, limit: usize) -> Result<Vec<Entry>, StoreError> {
    Ok(if source.record_kind().is_some() {
        store.read_changed_records(source.id, after, limit).await?.into_iter().map(Entry::Record).collect()
    } else {
        store.read(source.id, after, limit).await?.into_iter().map(Entry::Event).collect()
    })
}

/// The dataset's newest position, by the kind it holds.
async fn last_position(store: &dyn Store, source: &Source) -> Result<i64, StoreError> {
    if source.record_kind().is_some() {
        store.last_record_position(source.id).await
    } else {
        store.last_position(source.id).await
    }
}

/// What a destination confirmed of one page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delivery {
    /// The leading events of the page the destination is done with: delivered, or refused for
    /// good (in `refused`). All of them on success.
    pub confirmed: usize,
    /// Of the confirmed events, those the destination refused for a reason retrying cannot fix
    /// (index in the page, reason): they become dead letters as the cursor moves past them.
    pub refused: Vec<(usize, String)>,
    /// Calls the destination tried again on the way (throttled, failed transiently).
    pub retried: u64,
    /// Why the rest was not confirmed; the task retries it after a backoff.
    pub error: Option<String>,
}

impl Delivery {
    /// Nothing confirmed, for this reason.
    pub fn failed(error: impl Into<String>) -> Delivery {
        Delivery { error: Some(error.into()), ..Delivery::default() }
    }
}

/// Somewhere events go.
#[async_trait]
pub trait Destination: Send + Sync + 'static {
    /// The sink's name: the key of its cursors and its lease (`nats`).
    fn name(&self) -> &str;
    /// Where it delivers, for `GET /_interlog/sinks` (no secrets).
    fn describe(&self) -> String;
    /// Whether events of this dataset go to this sink (per dataset group, or all).
    fn wants(&self, source: &Source) -> bool;
    /// Delivers `entries` (one page, in position order: events, or records of a keyed dataset)
    /// and says how many of the first ones the destination confirmed durably.
    async fn deliver(&self, source: &Source, entries: &[Entry]) -> Delivery;

    /// How long confirmed pages may wait before the cursor records them, several in one write
    /// (a crash then delivers them again: right for a destination that drops replays by their
    /// idempotency key, and it spares the store's writer a transaction per page). Zero (the
    /// default): after every page, so a crash repeats at most the page being delivered.
    fn save_every(&self) -> Duration {
        Duration::ZERO
    }

    /// How many pages of one dataset may be awaiting their confirmation at once: while they
    /// are, the task reads and sends the next ones. 1 (the default): one page at a time.
    fn in_flight(&self) -> usize {
        1
    }

    /// Sends a page and hands back the wait for its confirmation ([`Destination::in_flight`]
    /// pages may be waiting at once). A page is sent only after the ones before it, so their
    /// confirmations are taken in order; after one that is not complete the task drops those
    /// sent after it and sends them again. `first`: no earlier page of this dataset is still
    /// awaiting its confirmation (a destination that cannot keep order behind a failed page
    /// refuses the others at once). The default delivers the page before returning.
    async fn send(&self, source: &Source, entries: Arc<Vec<Entry>>, _first: bool) -> InFlight {
        let delivery = self.deliver(source, &entries).await;
        Box::pin(std::future::ready(delivery))
    }
}

/// A page on its way ([`Destination::send`]): resolves to what the destination confirmed of it.
pub type InFlight = futures_util::future::BoxFuture<'static, Delivery>;

/// How sinks run.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    /// This node's name in leases (`service::jobs::node_name`).
    pub node: String,
    /// Events read and delivered at once.
    pub page: usize,
    /// How often an idle task looks for other nodes' commits (shared stores only).
    pub poll: Duration,
    /// A lease not renewed for this long goes to another node.
    pub lease_ttl: Duration,
    /// How often the lease is renewed and the datasets looked up.
    pub renew_every: Duration,
    /// The first and the longest wait after a failed delivery (doubling, with jitter).
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for SinkSettings {
    fn default() -> Self {
        SinkSettings {
            node: "node".into(),
            page: 2000,
            poll: Duration::from_millis(500),
            lease_ttl: Duration::from_secs(6),
            renew_every: Duration::from_secs(2),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
        }
    }
}

/// The sinks of this node.
#[derive(Clone)]
pub struct Sinks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    destinations: Vec<Arc<dyn Destination>>,
    settings: SinkSettings,
    /// Sinks whose lease this node holds now.
    running: Mutex<HashMap<String, bool>>,
    stop: watch::Sender<bool>,
    supervisors: Mutex<Vec<JoinHandle<()>>>,
    /// Where the delivery tasks run: a thread of their own (see [`delivery_runtime`]).
    deliveries: tokio::runtime::Handle,
}

/// One sink as `GET /_interlog/sinks` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkStatus {
    pub name: String,
    pub destination: String,
    /// This node holds the sink's lease and runs it (on a shared store another node may).
    pub running_here: bool,
    pub datasets: Vec<DatasetStatus>,
    /// Events refused for good and not replayed yet (the oldest 100; all in
    /// `GET /_interlog/dead-letters`).
    pub dead_letters: Vec<DeadLetterStatus>,
    /// How many dead letters there are.
    pub dead_letter_count: usize,
}

/// One dead letter as the endpoints show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterStatus {
    pub id: i64,
    pub sink: String,
    pub dataset_arn: Option<String>,
    pub dataset_id: i64,
    pub position: i64,
    pub event_id: String,
    pub reason: String,
    pub attempts: u64,
    pub created: f64,
    pub updated: f64,
}

/// What a replay of dead letters did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayReport {
    /// Delivered now, and removed from the dead letters.
    pub delivered: Vec<i64>,
    /// Refused again: kept, with the new reason.
    pub refused: Vec<ReplayFailure>,
    /// Not tried to the end (the destination failed transiently, the event is gone): kept as
    /// they were.
    pub failed: Vec<ReplayFailure>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayFailure {
    pub id: i64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetStatus {
    pub dataset_arn: String,
    pub dataset_id: i64,
    /// The last position delivered and confirmed.
    pub position: i64,
    /// Events stored after the position.
    pub lag_events: u64,
    /// How long the oldest of them has waited; 0 when there is none.
    pub lag_seconds: f64,
    pub delivered: u64,
    pub retried: u64,
    /// Events refused for good and dead-lettered, ever (replays do not lower it).
    pub dead_lettered: u64,
    pub last_error: Option<String>,
}

impl Sinks {
    /// Starts a supervisor per destination: it takes the sink's lease and, while it holds it,
    /// runs one task per wanted dataset.
    pub fn start(store: Arc<dyn Store>, destinations: Vec<Arc<dyn Destination>>, settings: SinkSettings) -> Sinks {
        let (stop, _) = watch::channel(false);
        let deliveries = delivery_runtime(stop.subscribe());
        let inner = Arc::new(Inner {
            store,
            destinations,
            settings,
            running: Mutex::new(HashMap::new()),
            stop,
            supervisors: Mutex::new(Vec::new()),
            deliveries,
        });
        let handles: Vec<_> =
            inner.destinations.iter().map(|d| tokio::spawn(supervise(inner.clone(), d.clone()))).collect();
        *inner.supervisors.lock().unwrap_or_else(|p| p.into_inner()) = handles;
        Sinks { inner }
    }

    /// Every sink with every dataset it delivers from: the durable cursor (whichever node
    /// moved it) and the lag behind it.
    pub async fn status(&self) -> Result<Vec<SinkStatus>, StoreError> {
        let store = &*self.inner.store;
        let sources = sources(store).await?;
        let now = interlog_store::now();
        let mut out = Vec::new();
        for d in &self.inner.destinations {
            let cursors: HashMap<i64, Cursor> =
                store.cursors(d.name()).await?.into_iter().map(|c| (c.dataset_id, c)).collect();
            let mut datasets = Vec::new();
            for source in sources.iter().filter(|s| d.wants(s)) {
                let c = cursors.get(&source.id).cloned().unwrap_or_else(|| Cursor::start(d.name(), source.id));
                let backlog = if source.record_kind().is_some() {
                    store.record_backlog(source.id, c.position).await?
                } else {
                    store.backlog(source.id, c.position).await?
                };
                datasets.push(DatasetStatus {
                    dataset_arn: source.arn.clone(),
                    dataset_id: source.id,
                    position: c.position,
                    lag_events: backlog.events,
                    lag_seconds: backlog
                        .oldest_received_at
                        .map_or(0.0, |t| ((now - t) * 1000.0).round().max(0.0) / 1000.0),
                    delivered: c.delivered,
                    retried: c.retried,
                    dead_lettered: c.dead_lettered,
                    last_error: c.last_error,
                });
            }
            let running_here =
                self.inner.running.lock().unwrap_or_else(|p| p.into_inner()).get(d.name()).copied().unwrap_or(false);
            let letters = store.dead_letters(d.name()).await?;
            let dead_letter_count = letters.len();
            let dead_letters = letters.into_iter().take(100).map(|l| letter_status(&sources, l)).collect();
            out.push(SinkStatus {
                name: d.name().into(),
                destination: d.describe(),
                running_here,
                datasets,
                dead_letters,
                dead_letter_count,
            });
        }
        Ok(out)
    }

    /// The names of the configured sinks.
    pub fn names(&self) -> Vec<String> {
        self.inner.destinations.iter().map(|d| d.name().to_owned()).collect()
    }

    /// Every dead letter of every sink (or of `sink`), oldest first.
    pub async fn dead_letters(&self, sink: Option<&str>) -> Result<Vec<DeadLetterStatus>, StoreError> {
        let store = &*self.inner.store;
        let sources = sources(store).await?;
        let mut out = Vec::new();
        for d in self.inner.destinations.iter().filter(|d| sink.is_none_or(|s| s == d.name())) {
            out.extend(store.dead_letters(d.name()).await?.into_iter().map(|l| letter_status(&sources, l)));
        }
        Ok(out)
    }

    /// Delivers dead letters of `sink` again (those in `ids`, or all), one event per call, from
    /// this node: each delivered one is removed, each refused again keeps its new reason.
    /// `NotFound` when no sink has that name.
    pub async fn replay(&self, sink: &str, ids: Option<&[i64]>) -> Result<ReplayReport, StoreError> {
        let store = &*self.inner.store;
        let dest = self.inner.destinations.iter().find(|d| d.name() == sink).ok_or_else(|| {
            StoreError::NotFound(format!("no sink is named {sink:?} (configured: {:?})", self.names()))
        })?;
        let letters = store.dead_letters(sink).await?;
        if let Some(ids) = ids {
            if let Some(missing) = ids.iter().find(|id| !letters.iter().any(|l| l.id == **id)) {
                return Err(StoreError::NotFound(format!("sink {sink} has no dead letter {missing}")));
            }
        }
        let sources: HashMap<i64, Source> = sources(store).await?.into_iter().map(|s| (s.id, s)).collect();
        let mut report = ReplayReport::default();
        for l in letters.into_iter().filter(|l| ids.is_none_or(|ids| ids.contains(&l.id))) {
            let fail = |reason: String| ReplayFailure { id: l.id, reason };
            let Some(source) = sources.get(&l.dataset_id) else {
                report.failed.push(fail(format!("dataset {} no longer exists", l.dataset_id)));
                continue;
            };
            let entry = read_page(store, source, l.position - 1, 1).await?.into_iter().next();
            let Some(event) = entry.filter(|e| e.position() == l.position && e.key() == l.event_id) else {
                // A record written again since has a new position: the sink delivers that version anyway.
                report.failed.push(fail(format!("the entry at position {} is no longer stored", l.position)));
                continue;
            };
            let delivery = dest.deliver(source, std::slice::from_ref(&event)).await;
            if let Some((_, why)) = delivery.refused.first() {
                store.dead_letter_replayed(sink, l.id, Some(why)).await?;
                report.refused.push(fail(why.clone()));
            } else if delivery.confirmed == 1 {
                store.dead_letter_replayed(sink, l.id, None).await?;
                report.delivered.push(l.id);
            } else {
                report.failed.push(fail(delivery.error.unwrap_or_else(|| "not confirmed".into())));
            }
        }
        Ok(report)
    }

    /// Stops every task and gives the leases up, so another node takes the sinks at once.
    /// A page being delivered is abandoned; its cursor did not move, so it is delivered again.
    pub async fn stop(&self) {
        let _ = self.inner.stop.send(true);
        let handles = std::mem::take(&mut *self.inner.supervisors.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            let _ = tokio::time::timeout(Duration::from_secs(3), h).await;
        }
    }
}

fn letter_status(sources: &[Source], l: DeadLetter) -> DeadLetterStatus {
    DeadLetterStatus {
        id: l.id,
        dataset_arn: sources.iter().find(|s| s.id == l.dataset_id).map(|s| s.arn.clone()),
        sink: l.sink,
        dataset_id: l.dataset_id,
        position: l.position,
        event_id: l.event_id,
        reason: l.reason,
        attempts: l.attempts,
        created: l.created,
        updated: l.updated,
    }
}

/// Every dataset of every account, as sources.
async fn sources(store: &dyn Store) -> Result<Vec<Source>, StoreError> {
    let datasets = store.list_all::<DatasetSpec>(None, None).await?;
    let trackers: HashMap<String, String> = store
        .list_all::<TrackerSpec>(None, None)
        .await?
        .into_iter()
        .filter_map(|t| Some((t.meta.parent?, t.spec.tracking_id)))
        .collect();
    Ok(datasets
        .into_iter()
        .map(|d| {
            let group_arn = d.meta.parent.clone().unwrap_or_default();
            let group_name = group_arn.rsplit('/').next().unwrap_or_default().to_owned();
            let tracking_id = d.spec.tracking_id.clone().or_else(|| trackers.get(&group_arn).cloned());
            Source {
                id: d.meta.id,
                arn: d.meta.arn,
                account: d.meta.account,
                dataset_type: d.spec.dataset_type,
                group_arn,
                group_name,
                tracking_id,
            }
        })
        .collect())
}

/// Holds the sink's lease and runs its dataset tasks while it does.
async fn supervise(inner: Arc<Inner>, dest: Arc<dyn Destination>) {
    let name = dest.name().to_owned();
    let s = &inner.settings;
    let mut stop = inner.stop.subscribe();
    let mut catalog = inner.store.watch();
    let mut tasks: HashMap<i64, (Source, JoinHandle<()>)> = HashMap::new();
    // Until when the lease is surely still ours: the last renewal plus the TTL, less a renewal
    // period of margin so the tasks stop before another node may start.
    let mut held_until: Option<Instant> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let asked = Instant::now();
        match inner.store.lease_sink(&name, &s.node, s.lease_ttl).await {
            Ok(true) => {
                if held_until.is_none() {
                    tracing::info!(sink = %name, node = %s.node, "this node runs the sink");
                }
                held_until = Some(asked + s.lease_ttl.saturating_sub(s.renew_every));
            }
            Ok(false) => {
                if held_until.take().is_some() {
                    tracing::warn!(sink = %name, "another node took the sink's lease over; stopping here");
                }
            }
            Err(e) => tracing::warn!(sink = %name, error = %e, "cannot renew the sink's lease"),
        }
        if held_until.is_some_and(|t| Instant::now() >= t) {
            tracing::warn!(sink = %name, "the sink's lease could not be renewed in time; stopping here");
            held_until = None;
        }
        let holding = held_until.is_some();
        inner.running.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone(), holding);
        if holding {
            match sources(&*inner.store).await {
                Ok(all) => {
                    let wanted: HashMap<i64, Source> =
                        all.into_iter().filter(|src| dest.wants(src)).map(|src| (src.id, src)).collect();
                    tasks.retain(|id, (src, handle)| {
                        let keep = wanted.get(id) == Some(src) && !handle.is_finished();
                        if !keep {
                            handle.abort();
                        }
                        keep
                    });
                    for (id, src) in wanted {
                        if let std::collections::hash_map::Entry::Vacant(slot) = tasks.entry(id) {
                            let handle = inner.deliveries.spawn(deliver(inner.clone(), dest.clone(), src.clone()));
                            slot.insert((src, handle));
                        }
                    }
                }
                Err(e) => tracing::warn!(sink = %name, error = %e, "cannot list the datasets"),
            }
        } else {
            for (_, (_, handle)) in tasks.drain() {
                handle.abort();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(s.renew_every) => {}
            _ = catalog.changed() => {}
            _ = stop.changed() => {}
        }
    }
    for (_, (_, handle)) in tasks.drain() {
        handle.abort();
    }
    inner.running.lock().unwrap_or_else(|p| p.into_inner()).insert(name.clone(), false);
    if held_until.is_some() {
        if let Err(e) = inner.store.release_sink(&name, &s.node).await {
            tracing::warn!(sink = %name, error = %e, "cannot give the sink's lease up; it expires by itself");
        }
    }
}

/// What a task had confirmed and not recorded yet: its durable cursor stands at `saved`.
struct Progress {
    /// The stored cursor's position (where a restart would resume).
    saved: i64,
    /// Confirmed up to here (≥ `saved`).
    confirmed: i64,
    delivered: u64,
    retried: u64,
    refused: Vec<Refused>,
    /// When the cursor was last recorded.
    at: Instant,
}

impl Progress {
    fn new(position: i64) -> Progress {
        Progress {
            saved: position,
            confirmed: position,
            delivered: 0,
            retried: 0,
            refused: Vec::new(),
            at: Instant::now(),
        }
    }

    /// Whether it is time to record: a dead letter is written as the cursor passes it, the
    /// rest at most every `every` ([`Destination::save_every`]). A task that runs out of pages
    /// records at once.
    fn due(&self, every: Duration) -> bool {
        self.confirmed > self.saved && (!self.refused.is_empty() || self.at.elapsed() >= every)
    }

    /// Moves the stored cursor to `confirmed` (with the counts and dead letters since the last
    /// time), compare-and-set from `saved`.
    async fn save(&mut self, store: &dyn Store, name: &str, dataset_id: i64) -> Result<(), StoreError> {
        if self.confirmed <= self.saved {
            return Ok(());
        }
        let moved = if self.refused.is_empty() && self.retried == 0 {
            store.advance(name, dataset_id, self.saved, self.confirmed, self.delivered).await
        } else {
            store
                .settle(name, dataset_id, self.saved, self.confirmed, self.delivered, self.retried, &self.refused)
                .await
        }?;
        *self = Progress::new(moved.position);
        Ok(())
    }
}

/// A runtime on a thread of its own for the delivery tasks, ending when `stop` turns true or
/// its sender is dropped. Why: on the server's runtime a dataset's delivery is one task among a
/// task per connection, so at saturation it got a connection's share of the two workers and fell
/// behind ingest; as a thread of its own it gets the OS scheduler's share, like the store's
/// writer. Falls back to the current runtime if the thread cannot be started.
fn delivery_runtime(mut stop: watch::Receiver<bool>) -> tokio::runtime::Handle {
    let (tx, rx) = std::sync::mpsc::channel();
    let started = std::thread::Builder::new().name("interlog-sinks".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the sinks' runtime; they run on the server's");
                return;
            }
        };
        let _ = tx.send(runtime.handle().clone());
        runtime.block_on(async move {
            while !*stop.borrow_and_update() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
        });
    });
    match started.ok().and_then(|_| rx.recv().ok()) {
        Some(handle) => handle,
        None => tokio::runtime::Handle::current(),
    }
}

/// One (sink, dataset): read after the cursor, send, and advance the cursor as pages are
/// confirmed, forever. Up to [`Destination::in_flight`] pages are on their way at once.
async fn deliver(inner: Arc<Inner>, dest: Arc<dyn Destination>, source: Source) {
    let store = &*inner.store;
    let s = &inner.settings;
    let name = dest.name();
    let depth = dest.in_flight().max(1);
    let save_every = dest.save_every();
    let mut appended = store.appended();
    let mut backoff = Backoff::new(s.backoff_min, s.backoff_max);
    let position = loop {
        match store.cursor(name, source.id).await {
            Ok(c) => break c.position,
            Err(e) => {
                tracing::warn!(sink = %name, dataset = %source.arn, error = %e, "cannot read the sink's cursor");
                backoff.wait().await;
            }
        }
    };
    tracing::debug!(sink = %name, dataset = %source.arn, position, "delivering");
    let mut progress = Progress::new(position);
    // Pages sent and not confirmed yet, oldest first; the next page is read after `sent`.
    let mut in_flight: VecDeque<(Arc<Vec<Entry>>, InFlight)> = VecDeque::with_capacity(depth);
    let mut sent = position;
    // The newest position known to be stored, so a task that is behind reads without asking.
    let mut newest = 0;
    loop {
        let mut read_failed = false;
        while in_flight.len() < depth {
            // Marked seen before looking, so a commit after the look wakes the wait below.
            appended.borrow_and_update();
            // Asked first: nothing new costs a key lookup, not a read (on SQLite a read walks every
            // dataset's events after the cursor).
            if newest <= sent {
                match last_position(store, &source).await {
                    Ok(n) => newest = n,
                    Err(e) => {
                        tracing::warn!(sink = %name, dataset = %source.arn, error = %e, "cannot read the dataset's log");
                        read_failed = true;
                        break;
                    }
                }
                if newest <= sent {
                    break;
                }
            }
            let page = match read_page(store, &source, sent, s.page).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(sink = %name, dataset = %source.arn, error = %e, "cannot read the dataset's log");
                    read_failed = true;
                    break;
                }
            };
            let Some(last) = page.last().map(Entry::position) else {
                // What was newer is not there any more (removed by a deletion): ask again next time.
                newest = sent;
                break;
            };
            sent = last;
            let page = Arc::new(page);
            let mut pending = dest.send(&source, page.clone(), in_flight.is_empty()).await;
            // Already answered (the default `send`, or a destination that failed at once, such as
            // NATS unreachable): no page is sent after it before its answer is taken.
            if let Some(delivery) = futures_util::FutureExt::now_or_never(&mut pending) {
                in_flight.push_back((page, Box::pin(std::future::ready(delivery))));
                break;
            }
            in_flight.push_back((page, pending));
        }
        let Some((page, pending)) = in_flight.pop_front() else {
            // Nothing on its way and nothing new: record what was confirmed, then sleep.
            if let Err(e) = progress.save(store, name, source.id).await {
                if !on_save_error(store, name, &source, e, &mut progress).await {
                    backoff.wait().await;
                }
                sent = progress.confirmed;
                continue;
            }
            if read_failed {
                backoff.wait().await;
                continue;
            }
            if store.shared() {
                tokio::select! {
                    _ = appended.changed() => {}
                    _ = tokio::time::sleep(s.poll) => {}
                }
            } else if appended.changed().await.is_err() {
                // The store is gone: nothing more will be appended.
                return;
            }
            continue;
        };
        let delivery = pending.await;
        let confirmed = delivery.confirmed.min(page.len());
        if confirmed > 0 {
            let refused: Vec<Refused> = delivery
                .refused
                .iter()
                .filter(|(i, _)| *i < confirmed)
                .map(|(i, why)| Refused {
                    position: page[*i].position(),
                    event_id: page[*i].key().to_owned(),
                    reason: why.clone(),
                })
                .collect();
            for r in &refused {
                tracing::warn!(sink = %name, dataset = %source.arn, position = r.position, event_id = %r.event_id,
                    reason = %r.reason, "refused for good; kept as a dead letter");
            }
            progress.confirmed = page[confirmed - 1].position();
            progress.delivered += (confirmed - refused.len()) as u64;
            progress.retried += delivery.retried;
            progress.refused.extend(refused);
        }
        let complete = confirmed == page.len() && delivery.error.is_none();
        if !complete {
            // The pages sent after this one are dropped and sent again from what was confirmed;
            // those of them the destination stored meanwhile come back as duplicates it drops.
            in_flight.clear();
            sent = progress.confirmed;
        }
        if progress.due(save_every) || !complete {
            if let Err(e) = progress.save(store, name, source.id).await {
                in_flight.clear();
                if !on_save_error(store, name, &source, e, &mut progress).await {
                    backoff.wait().await;
                }
                sent = progress.confirmed;
                continue;
            }
        }
        match delivery.error {
            None if complete => backoff.reset(),
            error => {
                let error = error.unwrap_or_else(|| "the destination confirmed only part of the page".into());
                tracing::warn!(sink = %name, dataset = %source.arn, position = progress.confirmed, %error,
                    "delivery failed; retrying");
                if let Err(e) = store.sink_failed(name, source.id, &error).await {
                    tracing::warn!(sink = %name, error = %e, "cannot record the failed delivery");
                }
                backoff.wait().await;
            }
        }
    }
}

/// After a failed cursor write: true when another node moved the cursor (`progress` then
/// starts over from where it stands: that node runs the sink now, or did until our lease came
/// back, and the supervisor stops this task if the lease is not ours); false for any other
/// error, after which what was confirmed is kept and recorded next time (delivering it again
/// would be as right: the destination's idempotency key drops the copies).
async fn on_save_error(store: &dyn Store, name: &str, source: &Source, e: StoreError, progress: &mut Progress) -> bool {
    match e {
        StoreError::Conflict(why) => {
            tracing::warn!(sink = %name, dataset = %source.arn, %why, "the cursor moved under this node");
            if let Ok(c) = store.cursor(name, source.id).await {
                *progress = Progress::new(c.position);
            }
            true
        }
        e => {
            tracing::warn!(sink = %name, dataset = %source.arn, error = %e, "cannot advance the cursor");
            false
        }
    }
}

/// Exponential backoff with jitter: each wait is random in [current/2, current], current
/// doubling from `min` to `max`, so many tasks failing at once do not retry in lockstep.
struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { min, max, current: min }
    }

    fn reset(&mut self) {
        self.current = self.min;
    }

    fn next(&mut self) -> Duration {
        let ceiling = self.current;
        self.current = (self.current * 2).min(self.max);
        // uuid's v4 generator is the random source the server already has.
        let r = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
        ceiling.mul_f64(0.5 + r / 2.0)
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.next()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let waits: Vec<Duration> = (0..8).map(|_| b.next()).collect();
        assert!(waits[0] >= Duration::from_millis(50) && waits[0] <= Duration::from_millis(100));
        assert!(waits[1] >= Duration::from_millis(100) && waits[1] <= Duration::from_millis(200));
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(1)));
        assert!(waits[7] >= Duration::from_millis(500));
        b.reset();
        assert!(b.next() <= Duration::from_millis(100));
    }
}
