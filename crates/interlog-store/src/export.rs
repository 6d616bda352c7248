//! Writing a dataset out, whatever its type: Personalize's dataset CSV (§8 of the spec), JSON
//! lines, or Parquet (`parquet.rs`).
//!
//! `interlog export`, the server's export endpoint and export jobs use this one writer, so the
//! files they produce are identical; [`UniqueEvents`] is the one reader that removes repeated
//! eventIds exactly (first copy wins) over any engine, for Interactions and Action_Interactions
//! datasets; the keyed datasets (Items, Users, Actions) are read one row per ID.

use std::io::{self, Write};

mod first;
mod parquet;

pub use first::DEDUP_BUDGET_KEYS;

use interlog_model::control::IngestionMode;
use interlog_model::properties::{CompiledSchema, PropertyRules, Props, UndeclaredKeys};
use interlog_model::put_events::normalize_key;
use interlog_model::schema::{DatasetType, Schema};
use interlog_model::RecordKind;
use serde_json::{Map, Value};

use crate::catalog::resources::{CatalogExt, DatasetSpec, GroupSpec, Resource, SchemaSpec};
use crate::page::{EventPage, EventRef, PageColumns, Text};
use crate::{action_interaction, EventStore, StoreError, StoredEvent, StoredRecord};

/// What a scan read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Events written out: each eventId once.
    pub events: u64,
    /// Later copies of an eventId that were skipped.
    pub duplicates: u64,
}

/// Events read per page: large enough to amortise a read, small enough to stay short.
pub const PAGE_EVENTS: usize = 5_000;

/// A dataset's events in arrival order, each eventId once (its first copy), read page by page
/// through [`EventStore::read`] so no snapshot is held between pages.
///
/// Memory: one 128-bit keyed hash per distinct eventId (16-43 bytes with the set's free slots),
/// unbounded: the export itself filters within a budget (`export/first.rs`). Two eventIds are taken for one only if their 128-bit hashes collide, with probability about
/// n²/2¹²⁹ for n distinct events (10⁻²⁵ for ten million): exact in practice, and the seed is
/// random per export, so no client can aim for a collision.
pub struct UniqueEvents<'a> {
    store: &'a dyn EventStore,
    dataset_id: i64,
    after: i64,
    page: usize,
    first: first::AllFirstCopies,
    done: bool,
}

impl<'a> UniqueEvents<'a> {
    pub fn new(store: &'a dyn EventStore, dataset_id: i64) -> Self {
        UniqueEvents {
            store,
            dataset_id,
            after: 0,
            page: PAGE_EVENTS,
            first: first::AllFirstCopies::new(IngestionMode::All),
            done: false,
        }
    }

    /// Reads only the rows of `mode` (an export job's `ingestionMode`) instead of all of them.
    pub fn with_ingestion(mut self, mode: IngestionMode) -> Self {
        self.first.mode = mode;
        self
    }

    /// Reads `page` events at a time instead of [`PAGE_EVENTS`].
    pub fn with_page(mut self, page: usize) -> Self {
        self.page = page.max(1);
        self
    }

    /// The next page of first copies, `None` at the end. A page may be empty when every event
    /// read was a repeat.
    pub async fn next_page(&mut self) -> Result<Option<Vec<StoredEvent>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let events = self.store.read(self.dataset_id, self.after, self.page).await?;
        if events.len() < self.page {
            self.done = true;
        }
        let Some(last) = events.last() else { return Ok(None) };
        self.after = last.seq;
        let first = &mut self.first;
        Ok(Some(events.into_iter().filter(|e| first.first(e.interaction.event_id.as_bytes(), e.bulk)).collect()))
    }

    /// Every first copy, handed to `visit` in order.
    pub async fn for_each(
        mut self,
        mut visit: impl FnMut(&StoredEvent) -> io::Result<()>,
    ) -> Result<ScanStats, StoreError> {
        while let Some(page) = self.next_page().await? {
            for e in &page {
                visit(e)?;
            }
        }
        Ok(self.first.stats)
    }

    /// What has been read so far.
    pub fn stats(&self) -> ScanStats {
        self.first.stats
    }
}

/// Writes a dataset's first copies through `writer`, reading pages on the async runtime and
/// formatting on a blocking thread, so neither starves the other; returns what was written and
/// the writer's sink, flushed. The one export path of the server, its jobs and `interlog export`.
///
/// The writer's dataset type ([`ExportWriter::for_dataset`]) chooses the reader: the log's first
/// copies for the event datasets, the latest write of each ID for the keyed ones (`events` then
/// counts the rows written).
pub async fn export_dataset<W: Write + Send + 'static>(
    store: std::sync::Arc<dyn EventStore>,
    dataset_id: i64,
    writer: ExportWriter<W>,
) -> Result<(ScanStats, W), StoreError> {
    export_ingested(store, dataset_id, writer, IngestionMode::All).await
}

/// Whether a row stored by an import (`bulk`) or by a Put* call belongs to an export of `mode`.
pub fn wanted(mode: IngestionMode, bulk: bool) -> bool {
    match mode {
        IngestionMode::All => true,
        IngestionMode::Bulk => bulk,
        IngestionMode::Put => !bulk,
    }
}

/// [`export_dataset`] of the rows of one ingestion mode only (export jobs' `ingestionMode`): BULK the rows import
/// jobs stored, PUT those of the Put* calls, ALL both. For a keyed dataset, a record is in the mode of the write
/// that holds (one row per ID).
pub async fn export_ingested<W: Write + Send + 'static>(
    store: std::sync::Arc<dyn EventStore>,
    dataset_id: i64,
    mut writer: ExportWriter<W>,
    mode: IngestionMode,
) -> Result<(ScanStats, W), StoreError> {
    let keyed = RecordKind::of_dataset_type(writer.dataset_type).is_some();
    if let (false, Some(columns)) = (keyed, writer.page_columns()) {
        return export_pages(store, dataset_id, writer, mode, columns).await;
    }
    let (pages, mut incoming) = tokio::sync::mpsc::channel::<Page>(2);
    let format = tokio::task::spawn_blocking(move || -> io::Result<W> {
        while let Some(page) = incoming.blocking_recv() {
            match page {
                Page::Events(events) => events.iter().try_for_each(|e| writer.write(e))?,
                Page::Records(records) => records.iter().try_for_each(|r| writer.write_record(r))?,
            }
        }
        let mut out = writer.finish()?;
        out.flush()?;
        Ok(out)
    });
    let mut reader = UniqueEvents::new(&*store, dataset_id).with_ingestion(mode);
    let mut rows = 0u64;
    let read = async {
        if keyed {
            let mut after: Option<String> = None;
            loop {
                let page = store.read_records(dataset_id, after.clone(), PAGE_EVENTS).await?;
                let done = page.len() < PAGE_EVENTS;
                after = page.last().map(|r| r.record.id.clone());
                let page: Vec<StoredRecord> = page.into_iter().filter(|r| wanted(mode, r.bulk)).collect();
                rows += page.len() as u64;
                if after.is_none() || pages.send(Page::Records(page)).await.is_err() || done {
                    break;
                }
            }
        } else {
            while let Some(page) = reader.next_page().await? {
                if pages.send(Page::Events(page)).await.is_err() {
                    break; // the writer failed: its error is the one to report
                }
            }
        }
        drop(pages);
        Ok::<_, StoreError>(())
    };
    let read = read.await;
    let out = format.await.map_err(|e| StoreError::internal(format!("the export writer stopped: {e}")))?;
    read?;
    let out = out?;
    let stats = if keyed { ScanStats { events: rows, duplicates: 0 } } else { reader.stats() };
    Ok((stats, out))
}

/// Events read per page by [`export_pages`]: a page is one buffer, so a larger one costs no
/// allocation per row, and fewer pages mean fewer read transactions; 16,384 rows of ~100 bytes
/// read in a few milliseconds.
pub const EXPORT_PAGE_EVENTS: usize = 16_384;

/// Positions in one reader's range of [`export_pages`]: four full pages of a dataset that has the
/// log to itself, so a range costs four reads and the two readers take turns by the range.
pub const EXPORT_RANGE_POSITIONS: i64 = 4 * EXPORT_PAGE_EVENTS as i64;

/// [`export_ingested`] of a writer that formats [`EventRef`]s, in stages that overlap on the
/// machine's cores: **two readers** read pages of only the columns the writer needs
/// ([`EventStore::read_page`]), each its own alternate ranges of [`EXPORT_RANGE_POSITIONS`]
/// positions (the reader of the log is the longest stage: two share it); a filtering thread
/// takes their pages strictly in position order, range after range, and picks each page's first
/// copies (first copy wins, within [`DEDUP_BUDGET_KEYS`]: `export/first.rs`); a formatting
/// thread writes them. Each page is one buffer, handed back to the readers once written, so no
/// row and, after the first few, no page is allocated.
async fn export_pages<W: Write + Send + 'static>(
    store: std::sync::Arc<dyn EventStore>,
    dataset_id: i64,
    writer: ExportWriter<W>,
    mode: IngestionMode,
    columns: PageColumns,
) -> Result<(ScanStats, W), StoreError> {
    let shape = Shape { budget: DEDUP_BUDGET_KEYS, page_events: EXPORT_PAGE_EVENTS, range: EXPORT_RANGE_POSITIONS };
    export_pages_within(store, dataset_id, writer, mode, columns, shape).await
}

/// The sizes [`export_pages`] works with; the conformance suite shrinks them, so that evictions,
/// their scans and the readers' range boundaries all happen on a few hundred events.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Keys the first-copy-wins set holds at most.
    pub budget: usize,
    /// Events per page read.
    pub page_events: usize,
    /// Positions per reader's range.
    pub range: i64,
}

/// What a reader of [`export_pages_within`] hands the filter, in position order.
enum Piece {
    Page(EventPage),
    /// The reader's current range is read: the filter turns to the other reader's next range.
    RangeDone,
    /// Nothing after this range (or the filter's end is passed): the export is complete.
    End,
}

/// [`export_pages`] with its sizes given.
pub(crate) async fn export_pages_within<W: Write + Send + 'static>(
    store: std::sync::Arc<dyn EventStore>,
    dataset_id: i64,
    mut writer: ExportWriter<W>,
    mode: IngestionMode,
    columns: PageColumns,
    shape: Shape,
) -> Result<(ScanStats, W), StoreError> {
    use std::sync::atomic::{AtomicI64, Ordering};
    let limit = shape.page_events.max(1);
    let width = shape.range.max(1);
    let (to_filter_a, filter_a) = tokio::sync::mpsc::channel::<Piece>(1);
    let (to_filter_b, filter_b) = tokio::sync::mpsc::channel::<Piece>(1);
    let (to_format, mut format_in) = tokio::sync::mpsc::channel::<(EventPage, Vec<u32>)>(1);
    let (recycle, recycled) = tokio::sync::mpsc::unbounded_channel::<EventPage>();
    let recycled = std::sync::Mutex::new(recycled);
    // Where the filter will stop (an evicted class's scan read the log up to there): the readers
    // need not read past it.
    let end = std::sync::Arc::new(AtomicI64::new(i64::MAX));

    let format = tokio::task::spawn_blocking(move || -> io::Result<W> {
        while let Some((page, kept)) = format_in.blocking_recv() {
            for &row in &kept {
                writer.write_row(&page.row(row as usize))?;
            }
            let _ = recycle.send(page);
        }
        let mut out = writer.finish()?;
        out.flush()?;
        Ok(out)
    });

    let runtime = tokio::runtime::Handle::current();
    let ids = store.clone();
    let filter_end = end.clone();
    let filter = tokio::task::spawn_blocking(move || -> Result<ScanStats, StoreError> {
        let mut copies = first::FirstCopies::new(mode, shape.budget);
        let mut scan = |after: i64| {
            let page = EventPage::new(PageColumns::EVENT_ID, limit);
            runtime.block_on(ids.read_page(dataset_id, after, i64::MAX, limit, page))
        };
        // Ranges alternate between the readers: the one whose range is next is read from, so
        // pages come in position order whichever reader was quicker.
        let mut inputs = [filter_a, filter_b];
        let mut turn = 0;
        // `None`: a reader failed (its error is the one to report) or stopped.
        while let Some(piece) = inputs[turn].blocking_recv() {
            let page = match piece {
                Piece::Page(page) => page,
                Piece::RangeDone => {
                    turn ^= 1;
                    continue;
                }
                Piece::End => break,
            };
            let mut kept = Vec::with_capacity(page.len());
            let mut past_end = false;
            for (n, row) in page.iter().enumerate() {
                let numbers = row.numbers();
                if numbers.seq > copies.end() {
                    past_end = true;
                    break;
                }
                if copies.first(numbers.seq, row.event_id(), numbers.bulk, &mut scan)? {
                    kept.push(n as u32);
                }
            }
            filter_end.store(copies.end(), Ordering::Release);
            if to_format.blocking_send((page, kept)).is_err() || past_end {
                break; // the writer failed (its error is the one to report), or at the end
            }
        }
        Ok(copies.stats())
    });

    // Reader `k` reads the ranges `k`, `k + 2`, `k + 4`…: range `r` is the positions
    // `r * width < seq <= (r + 1) * width`, read page after page until it is exhausted.
    let read = |k: i64, to_filter: tokio::sync::mpsc::Sender<Piece>| {
        let (store, end, recycled) = (&store, &end, &recycled);
        async move {
            let mut range = k;
            // A page read empty, kept for the next read rather than dropped.
            let mut own: Option<EventPage> = None;
            loop {
                let lo = range.saturating_mul(width);
                if lo >= end.load(Ordering::Acquire) || lo == i64::MAX {
                    let _ = to_filter.send(Piece::End).await;
                    break;
                }
                let hi = lo.saturating_add(width);
                let (mut after, mut rows) = (lo, 0);
                while after < hi {
                    let spare =
                        own.take().or_else(|| recycled.lock().unwrap_or_else(|p| p.into_inner()).try_recv().ok());
                    let page = spare.unwrap_or_else(|| EventPage::new(columns, limit));
                    let page = store.read_page(dataset_id, after, hi, limit, page).await?;
                    let full = page.len() >= limit;
                    let Some(last) = page.last_seq() else {
                        own = Some(page);
                        break;
                    };
                    (after, rows) = (last, rows + page.len());
                    if to_filter.send(Piece::Page(page)).await.is_err() {
                        return Ok(()); // the filter stopped
                    }
                    if !full {
                        break;
                    }
                }
                // An empty range ends the export if nothing comes after it (a gap in the
                // dataset's positions, other datasets' rows, does not).
                if rows == 0 {
                    let probe = EventPage::new(PageColumns::EVENT_ID, 1);
                    if store.read_page(dataset_id, hi, i64::MAX, 1, probe).await?.is_empty() {
                        let _ = to_filter.send(Piece::End).await;
                        break;
                    }
                }
                if to_filter.send(Piece::RangeDone).await.is_err() {
                    break;
                }
                range = range.saturating_add(2);
            }
            Ok::<_, StoreError>(())
        }
    };
    let (a, b) = tokio::join!(read(0, to_filter_a), read(1, to_filter_b));
    let stopped = |e: tokio::task::JoinError| StoreError::internal(format!("the export stopped: {e}"));
    let stats = filter.await.map_err(stopped)?;
    let out = format.await.map_err(stopped)?;
    a?;
    b?;
    let stats = stats?;
    Ok((stats, out?))
}

/// What the reader hands the formatting thread.
enum Page {
    Events(Vec<StoredEvent>),
    Records(Vec<StoredRecord>),
}

/// Any dataset of an account by ARN, with its schema: what `interlog export --dataset-arn` and
/// `GET /_interlog/export?datasetArn=` read. `account: None` looks in every account.
pub async fn dataset_by_arn(
    catalog: &dyn crate::Catalog,
    account: Option<&str>,
    arn: &str,
) -> Result<(Resource<DatasetSpec>, Resource<SchemaSpec>), StoreError> {
    let dataset = match account {
        Some(account) => catalog.find::<DatasetSpec>(account, arn).await?,
        None => catalog.list_all::<DatasetSpec>(None, None).await?.into_iter().find(|d| d.meta.arn == arn),
    };
    let dataset = dataset.ok_or_else(|| StoreError::NotFound(format!("No dataset {arn} exists")))?;
    let schema_arn = dataset.meta.uses.clone().unwrap_or_default();
    let schema = catalog.describe::<SchemaSpec>(&dataset.meta.account, &schema_arn).await?;
    Ok((dataset, schema))
}

/// The Interactions dataset of a dataset group, by name or the default group, with its schema:
/// what `interlog export` and `GET /_interlog/export` read. `account: None` looks in every
/// account (the offline export of a data dir, which has no caller).
pub async fn interactions_of_group(
    catalog: &dyn crate::Catalog,
    account: Option<&str>,
    group: Option<&str>,
) -> Result<(Resource<DatasetSpec>, Resource<SchemaSpec>), StoreError> {
    let groups = catalog.list_all::<GroupSpec>(account, None).await?;
    let found = match group {
        Some(name) => groups.into_iter().find(|g| g.meta.name == name),
        None => groups.into_iter().find(|g| g.spec.is_default),
    };
    let group = found.ok_or_else(|| match group {
        Some(n) => StoreError::NotFound(format!("No dataset group named '{n}' exists")),
        None => StoreError::NotFound(
            "No default dataset group exists (the server was never started, or was started with \
             --no-default-resources): name a dataset group"
                .into(),
        ),
    })?;
    let datasets = catalog.list_all::<DatasetSpec>(Some(&group.meta.account), Some(&group.meta.arn)).await?;
    let dataset = datasets.into_iter().find(|d| d.spec.dataset_type == "INTERACTIONS").ok_or_else(|| {
        StoreError::NotFound(format!("Dataset group {} has no Interactions dataset", group.meta.name))
    })?;
    let schema_arn = dataset.meta.uses.clone().unwrap_or_default();
    let schema = catalog.describe::<SchemaSpec>(&group.meta.account, &schema_arn).await?;
    Ok((dataset, schema))
}

fn rand_seed() -> u64 {
    let id = uuid::Uuid::new_v4();
    let (hi, lo) = id.as_u64_pair();
    hi ^ lo
}

/// The output formats of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Header = the schema's field names; `|`-joined impressions; empty cells for missing values.
    Csv,
    /// One JSON object per event with every stored member, including eventId, sessionId, the
    /// `properties` text exactly as sent (undeclared keys too) and, when it has any, the event's
    /// `flags` (`[{"kind", "message"}]`).
    Jsonl,
    /// The CSV's columns and rows, each column typed from the schema (`parquet.rs`).
    Parquet,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "jsonl" => Ok(Format::Jsonl),
            "parquet" => Ok(Format::Parquet),
            other => Err(format!("unknown export format '{other}' (expected csv, jsonl or parquet)")),
        }
    }
}

/// Formats stored events onto any writer.
pub struct ExportWriter<W: Write> {
    format: Format,
    /// Which rows it writes and how columns map to their members: Interactions unless told.
    dataset_type: DatasetType,
    columns: Vec<String>,
    /// When known, metadata cells are written as the field's type reads them (`"014"` → `14`);
    /// compiled once for the whole export.
    schema: Option<CompiledSchema>,
    /// The schema's `properties`-filled columns, by name.
    property_fields: Vec<String>,
    /// Whether any column's cell comes from `properties`, decided at the first row (which
    /// columns are members depends only on the dataset type); when none does, a row's
    /// `properties` text is never parsed.
    needs_properties: Option<bool>,
    /// Which Interactions member fills each column, by position: decided once, not by comparing
    /// names per row.
    members: Vec<Member>,
    /// One cell at a time is built here and handed to the CSV writer: no `String` per cell.
    cell: Vec<u8>,
    csv: Option<csv::Writer<W>>,
    raw: Option<W>,
    parquet: Option<parquet::Sink<W>>,
}

impl<W: Write> ExportWriter<W> {
    /// `columns` are the dataset schema's field names, in order (used by CSV only).
    pub fn new(format: Format, columns: Vec<String>, out: W) -> io::Result<Self> {
        let members: Vec<Member> = columns.iter().map(|c| Member::of(c)).collect();
        match format {
            Format::Csv => {
                let mut csv = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(out);
                csv.write_record(&columns)?;
                Ok(ExportWriter {
                    format,
                    dataset_type: DatasetType::Interactions,
                    columns,
                    schema: None,
                    property_fields: Vec::new(),
                    needs_properties: None,
                    members: members.clone(),
                    cell: Vec::new(),
                    csv: Some(csv),
                    raw: None,
                    parquet: None,
                })
            }
            Format::Jsonl => Ok(ExportWriter {
                format,
                dataset_type: DatasetType::Interactions,
                columns,
                schema: None,
                property_fields: Vec::new(),
                needs_properties: None,
                members: members.clone(),
                cell: Vec::new(),
                csv: None,
                raw: Some(out),
                parquet: None,
            }),
            Format::Parquet => Ok(ExportWriter {
                format,
                dataset_type: DatasetType::Interactions,
                parquet: Some(parquet::Sink::new(out, &columns)),
                columns,
                schema: None,
                property_fields: Vec::new(),
                needs_properties: None,
                members: members.clone(),
                cell: Vec::new(),
                csv: None,
                raw: None,
            }),
        }
    }

    /// Writes metadata columns coerced to the schema's field types, as PutEvents accepted them.
    pub fn with_schema(mut self, schema: Option<Schema>) -> Self {
        if let (Some(sink), Some(schema)) = (&mut self.parquet, &schema) {
            sink.set_schema(&self.columns, schema);
        }
        self.property_fields = schema.iter().flat_map(|s| s.property_fields().map(|f| f.name.clone())).collect();
        self.schema = schema.map(|s| CompiledSchema::new(&s, ""));
        self.needs_properties = None;
        self
    }

    /// Writes rows of a dataset of this type (the event datasets' [`ExportWriter::write`], the
    /// keyed datasets' [`ExportWriter::write_record`]).
    pub fn for_dataset(mut self, dataset_type: DatasetType) -> Self {
        self.dataset_type = dataset_type;
        self
    }

    /// The dataset type this writer writes.
    pub fn dataset_type(&self) -> DatasetType {
        self.dataset_type
    }

    /// One event of an Interactions or Action_Interactions dataset.
    pub fn write(&mut self, event: &StoredEvent) -> io::Result<()> {
        if self.dataset_type == DatasetType::ActionInteractions {
            let a = action_interaction(&event.interaction);
            return match self.format {
                Format::Csv => self.csv_row(a.properties.as_deref().map(str::as_bytes), |_, c, cell| {
                    owned_cell(a.member_cell(c), cell)
                }),
                Format::Jsonl => self.json_line(&action_jsonl(&a, event.received_at)),
                Format::Parquet => self.parquet_event(event),
            };
        }
        match self.format {
            // One formatting of an Interactions row, the page reader's: the event as a page of one.
            Format::Csv | Format::Parquet => {
                let page = EventPage::from_events(std::slice::from_ref(event), PageColumns::ALL);
                let row = page.iter().next().expect("a page of one event");
                self.write_row(&row)
            }
            Format::Jsonl => self.json_line(&jsonl_object(event)),
        }
    }

    /// The text columns [`ExportWriter::write_row`] needs of a page, when this writer writes
    /// rows of pages at all (the CSV and Parquet of an Interactions dataset): the members its
    /// columns show, and `properties` when some column comes from them. `None`: it needs
    /// whole [`StoredEvent`]s.
    pub fn page_columns(&self) -> Option<PageColumns> {
        if self.dataset_type != DatasetType::Interactions || self.format == Format::Jsonl {
            return None;
        }
        let mut columns = PageColumns::EVENT_ID;
        for (member, name) in self.members.iter().zip(&self.columns) {
            if let Some(text) = member.text() {
                columns = columns.with(text);
            }
            if *member == Member::Impression {
                columns = columns.with(Text::Impression);
            }
            if *member == Member::Other || self.property_fields.contains(name) {
                columns = columns.with(Text::Properties);
            }
        }
        Some(columns)
    }

    /// One event of an Interactions dataset from a page read with [`ExportWriter::page_columns`].
    pub fn write_row(&mut self, row: &EventRef<'_>) -> io::Result<()> {
        match self.format {
            Format::Csv => {
                let members = std::mem::take(&mut self.members);
                let written = self.csv_row(row.text(Text::Properties), |n, _, cell| row_cell(members[n], row, cell));
                self.members = members;
                written
            }
            Format::Parquet => self.parquet_row(row),
            Format::Jsonl => Err(io::Error::other("JSON lines are written from whole events")),
        }
    }

    /// One record of an Items, Users or Actions dataset.
    pub fn write_record(&mut self, stored: &StoredRecord) -> io::Result<()> {
        let kind = RecordKind::of_dataset_type(self.dataset_type).unwrap_or(RecordKind::Item);
        let r = &stored.record;
        match self.format {
            Format::Csv => self.csv_row(r.properties.as_deref().map(str::as_bytes), |_, c, cell| {
                owned_cell(r.member_cell(kind, c), cell)
            }),
            Format::Jsonl => {
                let mut m = Map::new();
                m.insert(kind.id_member().into(), r.id.clone().into());
                if let Some(p) = &r.properties {
                    m.insert("properties".into(), p.clone().into());
                }
                m.insert("receivedAt".into(), stored.received_at.into());
                insert_flags(&mut m, &r.flags);
                self.json_line(&Value::Object(m))
            }
            Format::Parquet => self.parquet_record(stored),
        }
    }

    /// A CSV row: each column from the member that fills it (`member` writes the cell into the
    /// buffer it is given and answers `true`), else from `properties` coerced to the schema's
    /// field type, else from the property's raw value. Cells go to the CSV writer one by one
    /// from one reused buffer.
    fn csv_row(
        &mut self,
        properties: Option<&[u8]>,
        mut member: impl FnMut(usize, &str, &mut Vec<u8>) -> bool,
    ) -> io::Result<()> {
        let needs = match self.needs_properties {
            Some(needs) => needs,
            None => {
                let mut probe = Vec::new();
                let needs = self.columns.iter().enumerate().any(|(n, c)| {
                    probe.clear();
                    self.property_fields.contains(c) || !member(n, c, &mut probe)
                });
                self.needs_properties = Some(needs);
                needs
            }
        };
        let props = properties.filter(|_| needs).and_then(|p| match serde_json::from_slice(p) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        });
        let typed = match (&self.schema, &props) {
            (Some(schema), Some(map)) => {
                schema.check(&"properties", &Props::from_map(map), LENIENT).ok().map(|c| c.metadata)
            }
            _ => None,
        };
        let csv = self.csv.as_mut().expect("csv writer");
        let cell = &mut self.cell;
        for (n, c) in self.columns.iter().enumerate() {
            cell.clear();
            match typed.as_ref().and_then(|t| t.iter().find(|(col, _)| col == c)) {
                Some((_, value)) => cell.extend_from_slice(value.to_csv_cell().as_bytes()),
                None => {
                    if !member(n, c, cell) {
                        cell.clear();
                        cell.extend_from_slice(property_cell(c, props.as_ref()).as_bytes());
                    }
                }
            }
            csv.write_field(&*cell)?;
        }
        csv.write_record(None::<&[u8]>)?;
        Ok(())
    }

    fn json_line(&mut self, v: &Value) -> io::Result<()> {
        let out = self.raw.as_mut().expect("raw writer");
        serde_json::to_writer(&mut *out, &SortedKeys(v))?;
        out.write_all(b"\n")
    }

    pub fn finish(self) -> io::Result<W> {
        if let Some(sink) = self.parquet {
            return sink.finish(&self.columns);
        }
        match (self.csv, self.raw) {
            (Some(csv), _) => csv.into_inner().map_err(|e| io::Error::other(e.to_string())),
            (None, Some(raw)) => Ok(raw),
            (None, None) => unreachable!("an ExportWriter always has a sink"),
        }
    }
}

/// A JSON value written with every object's keys in sorted order, whatever order `serde_json`'s
/// map keeps (insertion order once any crate in the build turns on its `preserve_order` feature,
/// as a test dependency does): a JSON lines export is then byte-identical in every build.
struct SortedKeys<'a>(&'a Value);

impl serde::Serialize for SortedKeys<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut m = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_entry(k, &SortedKeys(v))?;
                }
                m.end()
            }
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&SortedKeys(v))?;
                }
                seq.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// Stored events already passed the schema check; reading them back must never refuse one.
/// Undeclared keys were flagged when the event was accepted; a CSV has no column for them.
const LENIENT: PropertyRules = PropertyRules { undeclared_keys: UndeclaredKeys::Ignore, allow_missing_required: true };

/// The Interactions member a column shows, or `Other` for a column filled from `properties`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    UserId,
    ItemId,
    Timestamp,
    EventType,
    EventValue,
    Impression,
    RecommendationId,
    AttributionSource,
    Other,
}

impl Member {
    fn of(column: &str) -> Member {
        match column {
            "USER_ID" => Member::UserId,
            "ITEM_ID" => Member::ItemId,
            "TIMESTAMP" => Member::Timestamp,
            "EVENT_TYPE" => Member::EventType,
            "EVENT_VALUE" => Member::EventValue,
            "IMPRESSION" => Member::Impression,
            "RECOMMENDATION_ID" => Member::RecommendationId,
            "EVENT_ATTRIBUTION_SOURCE" => Member::AttributionSource,
            _ => Member::Other,
        }
    }

    /// The page's text member this column is copied from as it is.
    fn text(self) -> Option<Text> {
        match self {
            Member::UserId => Some(Text::UserId),
            Member::ItemId => Some(Text::ItemId),
            Member::EventType => Some(Text::EventType),
            Member::RecommendationId => Some(Text::RecommendationId),
            Member::AttributionSource => Some(Text::AttributionSource),
            Member::Timestamp | Member::EventValue | Member::Impression | Member::Other => None,
        }
    }
}

/// Writes the value of one Interactions column that a request member fills into `cell` and
/// answers `true`; `false` for any other column, which comes from the `properties` key that maps
/// to it. Nothing is allocated: the export's hot path.
fn row_cell(member: Member, row: &EventRef<'_>, cell: &mut Vec<u8>) -> bool {
    match member {
        Member::Timestamp => {
            cell.extend_from_slice(itoa::Buffer::new().format(row.numbers().sent_at.floor() as i64).as_bytes());
        }
        Member::EventValue => {
            if let Some(v) = row.numbers().event_value {
                push_float(cell, v);
            }
        }
        Member::Impression => {
            row.impression_joined(cell);
        }
        Member::Other => return false,
        text => cell.extend_from_slice(text.text().and_then(|t| row.text(t)).unwrap_or_default()),
    }
    true
}

/// Appends `v` exactly as `format!("{v}")` prints it (the shortest digits that read back as `v`,
/// never an exponent: 4.5, 4, 0.1, -0, 0.0000001), without `core::fmt`: an integer value through
/// `itoa`, any other through `ryu` when ryu writes it without an exponent in at most 15
/// significant digits (then the same digits), else (NaN, infinities, very large or small
/// magnitudes, 16-17 digits) through `format!` itself.
/// `floats_print_as_display_does` checks this over millions of values.
fn push_float(cell: &mut Vec<u8>, v: f64) {
    use std::io::Write as _;
    if v.fract() == 0.0 && v.abs() < 1e15 && !(v == 0.0 && v.is_sign_negative()) {
        cell.extend_from_slice(itoa::Buffer::new().format(v as i64).as_bytes());
        return;
    }
    if v.is_finite() {
        let mut buffer = ryu::Buffer::new();
        let text = buffer.format_finite(v);
        // Up to 15 significant digits, the shortest digits are the only ones of their length that
        // read back as `v` (15-digit decimals lie further apart than a double's rounding interval
        // is wide), so ryu and Display agree; at 16 or 17 they may pick different last digits.
        let significant = text.bytes().filter(u8::is_ascii_digit).skip_while(|d| *d == b'0').count();
        if significant <= 15 && !text.contains(['e', 'E']) && !text.ends_with(".0") {
            cell.extend_from_slice(text.as_bytes());
            return;
        }
    }
    let _ = write!(cell, "{v}");
}

/// [`ExportWriter::csv_row`]'s `member` for the members that build their cell as a `String`.
fn owned_cell(value: Option<String>, cell: &mut Vec<u8>) -> bool {
    match value {
        Some(v) => {
            cell.extend_from_slice(v.as_bytes());
            true
        }
        None => false,
    }
}

/// A column from the `properties` key that maps to it (camelCase ↔ UPPER_SNAKE), as sent.
fn property_cell(column: &str, props: Option<&Map<String, Value>>) -> String {
    let wanted = normalize_key(column);
    let value = props.and_then(|m| m.iter().find(|(k, _)| normalize_key(k) == wanted).map(|(_, v)| v));
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(v) => v.to_string(),
    }
}

/// An action interaction with every stored member, as JSON lines show it.
fn action_jsonl(a: &interlog_model::ActionInteraction, received_at: f64) -> Value {
    let mut m = Map::new();
    m.insert("eventId".into(), a.event_id.clone().into());
    m.insert("actionId".into(), a.action_id.clone().into());
    if let Some(v) = &a.user_id {
        m.insert("userId".into(), v.clone().into());
    }
    m.insert("sessionId".into(), a.session_id.clone().into());
    m.insert("timestamp".into(), a.timestamp.into());
    m.insert("eventType".into(), a.event_type.clone().into());
    if let Some(v) = &a.recommendation_id {
        m.insert("recommendationId".into(), v.clone().into());
    }
    if let Some(v) = &a.impression {
        m.insert("impression".into(), v.clone().into());
    }
    if let Some(v) = &a.properties {
        m.insert("properties".into(), v.clone().into());
    }
    m.insert("receivedAt".into(), received_at.into());
    insert_flags(&mut m, &a.flags);
    Value::Object(m)
}

fn jsonl_object(e: &StoredEvent) -> Value {
    let i = &e.interaction;
    let mut m = Map::new();
    m.insert("eventId".into(), i.event_id.clone().into());
    m.insert("sessionId".into(), i.session_id.clone().into());
    if let Some(v) = &i.user_id {
        m.insert("userId".into(), v.clone().into());
    }
    m.insert("eventType".into(), i.event_type.clone().into());
    if let Some(v) = i.event_value {
        m.insert("eventValue".into(), v.into());
    }
    if let Some(v) = &i.item_id {
        m.insert("itemId".into(), v.clone().into());
    }
    if let Some(v) = &i.properties {
        m.insert("properties".into(), v.clone().into());
    }
    m.insert("sentAt".into(), i.sent_at.into());
    if let Some(v) = &i.recommendation_id {
        m.insert("recommendationId".into(), v.clone().into());
    }
    if let Some(v) = &i.impression {
        m.insert("impression".into(), v.clone().into());
    }
    if let Some(v) = &i.event_attribution_source {
        let mut ma = Map::new();
        ma.insert("eventAttributionSource".into(), v.clone().into());
        m.insert("metricAttribution".into(), Value::Object(ma));
    }
    m.insert("receivedAt".into(), e.received_at.into());
    insert_flags(&mut m, &i.flags);
    Value::Object(m)
}

/// What the server flagged when it accepted the record, for whoever reads the export to debug it;
/// no member at all for the usual record without flags.
fn insert_flags(m: &mut Map<String, Value>, flags: &[interlog_model::Flag]) {
    if !flags.is_empty() {
        let flags = flags.iter().map(|f| serde_json::json!({ "kind": f.kind.as_str(), "message": &*f.message }));
        m.insert("flags".into(), Value::Array(flags.collect()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use interlog_model::Interaction;

    fn event() -> StoredEvent {
        StoredEvent {
            seq: 1,
            received_at: 1.5,
            bulk: false,
            interaction: Interaction {
                event_id: "e1".into(),
                session_id: "s".into(),
                user_id: Some("u".into()),
                item_id: Some("i, \"quoted\"".into()),
                event_type: "click".into(),
                event_value: Some(4.0),
                sent_at: 1_700_000_000.9,
                properties: Some(r#"{"numberOfRatings": 12, "genre": "a|b"}"#.into()),
                recommendation_id: None,
                impression: Some(vec!["a".into(), "b".into()]),
                event_attribution_source: None,
                flags: vec![],
            },
        }
    }

    #[test]
    fn csv_follows_the_schema_columns() {
        let cols = [
            "USER_ID",
            "ITEM_ID",
            "TIMESTAMP",
            "EVENT_VALUE",
            "IMPRESSION",
            "RECOMMENDATION_ID",
            "NUMBER_OF_RATINGS",
            "GENRE",
        ];
        let mut w = ExportWriter::new(Format::Csv, cols.iter().map(|s| s.to_string()).collect(), Vec::new()).unwrap();
        w.write(&event()).unwrap();
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        assert_eq!(
            out,
            "USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE,IMPRESSION,RECOMMENDATION_ID,NUMBER_OF_RATINGS,GENRE\r\n\
             u,\"i, \"\"quoted\"\"\",1700000000,4,a|b,,12,a|b\r\n"
        );
    }

    /// [`push_float`] prints every value as `format!("{v}")` does: integers, short and long
    /// fractions, tiny and huge magnitudes, negative zero, NaN and the infinities, and a few
    /// million values spread over every bit pattern and every decimal size.
    #[test]
    fn floats_print_as_display_does() {
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            4.5,
            0.1,
            0.3,
            0.1 + 0.2,
            1e-7,
            1e15,
            1e15 - 0.5,
            1e16,
            1e21,
            1e22,
            123_456_789.125,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            5e-324,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            9_007_199_254_740_993.0,
        ];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..1_000_000 {
            values.push(f64::from_bits(next()));
            let scale = 10f64.powi((next() % 40) as i32 - 20);
            values.push((next() % 100_000_000) as f64 * scale);
            values.push((next() % 10_000) as f64 / 100.0);
        }
        let mut cell = Vec::new();
        for v in values {
            cell.clear();
            push_float(&mut cell, v);
            assert_eq!(std::str::from_utf8(&cell).unwrap(), format!("{v}"), "{:#x}", v.to_bits());
        }
    }

    #[test]
    fn jsonl_keeps_every_member() {
        let mut w = ExportWriter::new(Format::Jsonl, vec![], Vec::new()).unwrap();
        w.write(&event()).unwrap();
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["eventId"], "e1");
        assert_eq!(v["sentAt"], 1_700_000_000.9);
        assert_eq!(v["impression"][1], "b");
    }

    /// An undeclared key stays in the JSONL `properties` and the flags show; the CSV has no column for it.
    #[test]
    fn undeclared_properties_are_in_jsonl_only() {
        let mut e = event();
        e.interaction.properties = Some(r#"{"numberOfRatings": "12"}"#.into());
        e.interaction.flags = vec![interlog_model::Flag::new(interlog_model::FlagKind::UndeclaredProperty, "why")];
        let mut w = ExportWriter::new(Format::Jsonl, vec![], Vec::new()).unwrap();
        w.write(&e).unwrap();
        let v: Value = serde_json::from_slice(&w.finish().unwrap()).unwrap();
        assert_eq!(v["properties"], r#"{"numberOfRatings": "12"}"#);
        assert_eq!(v["flags"], serde_json::json!([{"kind": "undeclaredProperty", "message": "why"}]));

        let schema = interlog_model::schema::parse_schema(interlog_model::schema::DEFAULT_INTERACTIONS_SCHEMA).unwrap();
        let columns: Vec<String> = schema.field_names().iter().map(|s| s.to_string()).collect();
        let mut w = ExportWriter::new(Format::Csv, columns, Vec::new()).unwrap().with_schema(Some(schema));
        w.write(&e).unwrap();
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        assert!(!out.contains("12") && !out.to_lowercase().contains("rating"), "{out}");
    }
}
