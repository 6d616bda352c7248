//! Dataset import jobs (§4 CreateDatasetImportJob): CSV files of any dataset type loaded into a dataset as BULK
//! data, run in the background by the job supervisor (`jobs.rs`) like export jobs.
//!
//! A job reads its source twice. The first pass checks every row of every file with the rules of the Put* calls
//! (`interlog_model::import`) and stores nothing, so a malformed file fails the job with a reason naming the file,
//! the line and the rule, and leaves the dataset as it was. The second pass parses again (the files may have
//! changed meanwhile, so it checks again) and hands the rows to the store in chunks of
//! [`IMPORT_CHUNK_ROWS`] through the same writer as the Put* calls, marked with the job's id; live appends are
//! committed between the chunks. Only once every row is stored does a FULL import remove the bulk rows of earlier
//! imports ("Specify FULL to overwrite all existing bulk data in your dataset. Data you imported individually is
//! not replaced", the model's `importMode`); Put* data is never touched. A job that fails in the second pass, or
//! that a stop interrupts, has its rows removed (docs/api.md "Dataset import jobs").

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use interlog_model::control::{ImportMode, PathScheme};
use interlog_model::import::{Imported, Importer};
use interlog_model::requests::CreateDatasetImportJob;
use interlog_model::schema::Schema;
use interlog_store::catalog::resources::{CatalogExt, DatasetSpec, ImportJobSpec, New, Resource, SchemaSpec, Spec};
use interlog_store::catalog::{InsertRules, Kind, Requirement};
use interlog_store::csv_records::{CsvError, CsvRecords, Position};
use interlog_store::{log_entry, BulkRemoval, Entries, Store, StoreError, IMPORT_CHUNK_ROWS};

use super::jobs::{admission, remove_bulk, unless_full, JobWork};
use super::tags::checked_tags;
use super::{scope, Managed, Service};
use crate::api::error::ApiError;
use crate::auth::Caller;
use crate::file_root::SourceFile;
use crate::objects::{Objects, S3Location};

/// Import jobs pending or in progress at once per account: the documented quota ("pending/in-progress dataset
/// import jobs 5"). The sixth is `LimitExceededException`, enforced by the catalog in the insert's transaction.
pub const MAX_RUNNING_IMPORT_JOBS: u64 = 5;

/// How long a chunk waits for room in a full write queue before the job gives up.
const QUEUE_PATIENCE: Duration = Duration::from_secs(60);

impl Managed for ImportJobSpec {
    const PARENT: Option<Kind> = Some(Kind::Dataset);
}

impl Service {
    pub async fn create_import_job(
        &self,
        caller: &Caller,
        cmd: CreateDatasetImportJob,
    ) -> Result<Resource<ImportJobSpec>, ApiError> {
        let account = caller.account.as_str();
        let dataset = self.store.describe::<DatasetSpec>(account, &cmd.dataset_arn).await?;
        let arn = scope(caller).arn("dataset-import-job", &cmd.job_name);
        let (exists, quota) = admission::<ImportJobSpec>(
            &self.store,
            account,
            &arn,
            &cmd.job_name,
            "dataset import job",
            MAX_RUNNING_IMPORT_JOBS,
        )
        .await?;
        let jobs = unless_full::<ImportJobSpec>(&self.store, account, &quota).await?;
        // One import at a time per dataset: two would each replace (FULL) or interleave with the other's rows.
        let of_dataset = |j: &&Resource<ImportJobSpec>| j.meta.parent.as_deref() == Some(dataset.meta.arn.as_str());
        if let Some(busy) = jobs.iter().filter(of_dataset).find(|j| quota.statuses.contains(&j.meta.status)) {
            return Err(ApiError::ResourceInUse(format!(
                "The dataset {} has the dataset import job {} {}; wait until it ends",
                dataset.meta.arn, busy.meta.arn, busy.meta.status
            )));
        }
        if cmd.import_mode == ImportMode::Incremental
            && !jobs.iter().filter(of_dataset).any(|j| j.meta.status == "ACTIVE")
        {
            return Err(ApiError::InvalidInput(format!(
                "The dataset {} has no bulk records yet: its first import must be FULL (importMode INCREMENTAL \
                 adds to records imported before)",
                dataset.meta.arn
            )));
        }
        // A file:// source must lie in the caller's folder of the import root: checked (and opened) before the
        // job exists, so a refused one never becomes a job.
        let source = match cmd.scheme {
            PathScheme::S3 => Some(Files::S3 {
                objects: self.objects.clone(),
                location: S3Location::parse(&cmd.location)
                    .map_err(|e| ApiError::InvalidInput(format!("Invalid dataSource.dataLocation: {e}")))?,
            }),
            scheme => self.open_source(account, &cmd.location, scheme).await?.map(Files::Local),
        };
        let rules = InsertRules {
            quota: Some(quota),
            requires: vec![Requirement { kind: DatasetSpec::KIND, arn: dataset.meta.arn.clone(), active: true }],
            exists_message: exists,
        };
        let new = New {
            account: account.to_owned(),
            tags: checked_tags(&arn, cmd.tags)?,
            arn,
            unique_key: Some(cmd.job_name.clone()),
            name: cmd.job_name,
            parent: Some(dataset.meta.arn.clone()),
            uses: None,
            status: "CREATE PENDING".into(),
            spec: ImportJobSpec {
                dataset_id: dataset.meta.id,
                data_location: cmd.location,
                import_mode: cmd.import_mode.api_name().to_owned(),
                role_arn: cmd.role_arn,
                publish_attribution_metrics_to_s3: cmd.publish_attribution_metrics_to_s3,
                failure_reason: None,
                lease: None,
            },
        };
        let job = self.store.create(new, rules).await?;
        self.changed().await;
        let work = import_work(self.store.clone(), job.clone(), dataset, source, cmd.import_mode);
        self.jobs.run(job.clone(), work);
        Ok(job)
    }

    /// The opened files of a `file://` source (`None` for other schemes, whose jobs fail with a reason);
    /// `InvalidInputException` when it is not inside the caller's folder, does not exist or holds no file.
    async fn open_source(
        &self,
        account: &str,
        location: &str,
        scheme: PathScheme,
    ) -> Result<Option<Vec<SourceFile>>, ApiError> {
        if scheme != PathScheme::File {
            return Ok(None);
        }
        let root = self.import_root.clone().ok_or_else(|| {
            ApiError::InvalidInput(
                "This server accepts no file:// import sources: its operator has not set an import directory \
                 (interlog serve --import-dir DIR)"
                    .to_owned(),
            )
        })?;
        let (account, location) = (account.to_owned(), location.to_owned());
        let resolved = tokio::task::spawn_blocking(move || root.resolve_source(&account, &location))
            .await
            .map_err(|e| ApiError::InternalFailure(format!("opening the import source failed: {e}")))?;
        match resolved {
            Ok(files) => {
                // A folder stands for the `.csv` files in it (not those of its subfolders), in name order.
                let files: Vec<SourceFile> =
                    files.into_iter().filter(|f| f.name.ends_with(".csv") && !f.name.contains('/')).collect();
                if files.is_empty() {
                    return Err(ApiError::InvalidInput(
                        "Invalid dataSource.dataLocation: the folder holds no .csv file".to_owned(),
                    ));
                }
                Ok(Some(files))
            }
            Err(e) => match e.cause() {
                Some(cause) => Err(ApiError::InternalFailure(format!("{e}: {cause}"))),
                None => Err(ApiError::InvalidInput(format!("Invalid dataSource.dataLocation: {e}"))),
            },
        }
    }
}

/// What an import job does: check every row, then store them in chunks, then (FULL) replace the earlier bulk
/// rows. Failure reasons name the file, the line and the rule, never a server path.
fn import_work(
    store: Arc<dyn Store>,
    job: Resource<ImportJobSpec>,
    dataset: Resource<DatasetSpec>,
    source: Option<Files>,
    mode: ImportMode,
) -> JobWork {
    Box::pin(async move {
        let Some(source) = source else {
            return Err(format!(
                "interlog imports from file:// and s3:// locations only: {} is neither",
                job.spec.data_location
            ));
        };
        let source = source.listed().await?;
        tokio::task::spawn_blocking(wait_for_test_gate).await.map_err(|e| e.to_string())?;
        let schema_arn = dataset.meta.uses.clone().unwrap_or_default();
        let schema = store
            .describe::<SchemaSpec>(&dataset.meta.account, &schema_arn)
            .await
            .map_err(|e| format!("cannot read the dataset's schema: {e}"))?;
        let schema = Arc::new(
            interlog_model::schema::parse_schema(&schema.spec.body)
                .map_err(|e| format!("the dataset's schema does not parse: {e}"))?,
        );
        let source = Arc::new(source);
        // Pass 1: every row checked, nothing stored.
        let rows = {
            let (schema, source) = (schema.clone(), source.clone());
            tokio::task::spawn_blocking(move || scan(&schema, &source, &mut |_| Ok(())))
                .await
                .map_err(|e| e.to_string())??
        };
        // Pass 2: stored in chunks; on any failure the job's rows go.
        let (dataset_id, job_id) = (job.spec.dataset_id, job.meta.id);
        match load(store.clone(), schema, source, dataset_id, job_id).await {
            Ok(stored) => {
                let replaced = if mode == ImportMode::Full {
                    remove_bulk(&*store, dataset_id, BulkRemoval::AllBut(job_id))
                        .await
                        .map_err(|e| format!("the earlier bulk data could not be replaced: {e}"))?
                } else {
                    0
                };
                tracing::info!(job = %job.meta.arn, rows, stored, replaced, "dataset import job stored its rows");
                Ok(())
            }
            Err(reason) => {
                if let Err(e) = remove_bulk(&*store, dataset_id, BulkRemoval::Job(job_id)).await {
                    tracing::warn!(job = %job.meta.arn, error = %e, "cannot remove a failed import's rows");
                }
                Err(reason)
            }
        }
    })
}

/// Longest row read: Personalize's largest fields (textual, 20,000 characters) many times over.
const MAX_ROW_BYTES: usize = 1 << 20;

/// Reads every file of `source` from its start, hands each checked row to `row` and returns how many there were,
/// or the reason naming the file, the line and the rule broken.
fn scan(schema: &Schema, source: &Listed, row: &mut dyn FnMut(Imported) -> Result<(), String>) -> Result<u64, String> {
    let mut rows = 0;
    for i in 0..source.len() {
        let (name, file) = source.open(i)?;
        let name = name.as_str();
        let io = |e: std::io::Error| {
            tracing::warn!(file = %name, error = %e, "import job: reading failed");
            format!("{name}: the file could not be read ({e})")
        };
        // Exact line numbers whatever the line ends (the csv crate's positions lag after a CRLF).
        let mut reader =
            CsvRecords::new(std::io::BufReader::with_capacity(1 << 16, file), Position::default(), MAX_ROW_BYTES);
        let mut importer: Option<Importer> = None;
        loop {
            let next = reader.next_record().map_err(|e| match e {
                CsvError::Io(e) => io(e),
                CsvError::TooLong { line, max } => {
                    format!("{name}: line {line}: a row of more than {max} bytes (is the file CSV?)")
                }
            })?;
            let Some((line, record)) = next else { break };
            let record = record.map_err(|e| format!("{name}: line {line}: {e}"))?;
            let fields = record.fields();
            match &importer {
                None => {
                    importer = Some(Importer::new(schema, &fields).map_err(|v| format!("{name}: {v}"))?);
                }
                Some(imp) => {
                    let imported = imp.row(line, &fields).map_err(|v| format!("{name}: {v}"))?;
                    row(imported)?;
                    rows += 1;
                }
            }
        }
        if importer.is_none() {
            return Err(format!("{name}: the file is empty; it must start with a header of the schema's field names"));
        }
    }
    Ok(rows)
}

/// Pass 2: parses on a blocking thread and stores chunk after chunk on the async side, each through the writer.
async fn load(
    store: Arc<dyn Store>,
    schema: Arc<Schema>,
    source: Arc<Listed>,
    dataset_id: i64,
    job_id: i64,
) -> Result<u64, String> {
    let (chunks, mut incoming) = tokio::sync::mpsc::channel::<Entries>(2);
    let parse = tokio::task::spawn_blocking(move || {
        let mut pending = Pending::default();
        let send = |entries: Entries| chunks.blocking_send(entries).map_err(|_| "the import stopped".to_owned());
        scan(&schema, &source, &mut |row| {
            if let Some(full) = pending.add(row) {
                send(full)?;
            }
            Ok(())
        })?;
        if let Some(rest) = pending.take() {
            send(rest)?;
        }
        Ok::<_, String>(())
    });
    let mut stored = 0u64;
    let mut failed = None;
    while let Some(entries) = incoming.recv().await {
        match store_chunk(&*store, dataset_id, job_id, entries).await {
            Ok(n) => stored += n as u64,
            Err(e) => {
                tracing::warn!(dataset_id, job_id, error = %e, "import job: storing a chunk failed");
                failed = Some(format!("the rows could not be stored: {e}"));
                break;
            }
        }
    }
    drop(incoming);
    let parsed = parse.await.map_err(|e| e.to_string())?;
    match failed {
        Some(reason) => Err(reason),
        None => parsed.map(|()| stored),
    }
}

/// Stores one chunk, waiting for room while the write queue is full (live requests come first).
async fn store_chunk(store: &dyn Store, dataset_id: i64, job_id: i64, entries: Entries) -> Result<usize, StoreError> {
    let started = tokio::time::Instant::now();
    loop {
        match store.import(dataset_id, job_id, entries.clone()).await {
            Err(StoreError::Overloaded) if started.elapsed() < QUEUE_PATIENCE => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other.map(|o| o.stored),
        }
    }
}

/// Rows waiting to make a chunk: events (interactions and action interactions, as log rows) or records.
#[derive(Default)]
struct Pending {
    events: Vec<interlog_model::Interaction>,
    records: Vec<interlog_model::Record>,
}

impl Pending {
    /// Adds a row; a full chunk when there is one.
    fn add(&mut self, row: Imported) -> Option<Entries> {
        match row {
            Imported::Interaction(e) => self.events.push(e),
            Imported::ActionInteraction(a) => self.events.push(log_entry(a)),
            Imported::Record(r) => self.records.push(r),
        }
        (self.events.len() + self.records.len() >= IMPORT_CHUNK_ROWS).then(|| self.take()).flatten()
    }

    fn take(&mut self) -> Option<Entries> {
        if !self.events.is_empty() {
            Some(Entries::Events(std::mem::take(&mut self.events)))
        } else if !self.records.is_empty() {
            Some(Entries::Records(std::mem::take(&mut self.records)))
        } else {
            None
        }
    }
}

/// Test machinery: while the file named by `INTERLOG_TEST_IMPORT_JOB_GATE` exists, import jobs wait in CREATE
/// IN_PROGRESS, so a test can stop the server under a running job. Unset in production: one lookup per job.
fn wait_for_test_gate() {
    if let Some(gate) = std::env::var_os("INTERLOG_TEST_IMPORT_JOB_GATE") {
        while std::path::Path::new(&gate).exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Where a job's rows come from: files of the import root, opened when the job was created, or an `s3://`
/// location (`crate::objects`), listed when the job runs.
enum Files {
    Local(Vec<SourceFile>),
    S3 { objects: Objects, location: S3Location },
}

impl Files {
    /// The files to read, each opened anew by each pass.
    async fn listed(self) -> Result<Listed, String> {
        match self {
            Files::Local(files) => Ok(Listed::Local(files)),
            Files::S3 { objects, location } => {
                let listed = objects.list(&location).await.map_err(|e| e.to_string())?;
                let prefix = if location.is_prefix() { location.key.clone() } else { format!("{}/", location.key) };
                // An object the location names is read whatever its name; under a prefix, the `.csv` objects
                // directly under it, in key order (as a folder of the import root).
                let files: Vec<(String, S3Location)> = listed
                    .into_iter()
                    .filter_map(|o| {
                        if o.location == location {
                            let name = o.location.key.rsplit('/').next().unwrap_or_default().to_owned();
                            return Some((name, o.location));
                        }
                        let name = o.location.key.strip_prefix(&prefix)?.to_owned();
                        (name.ends_with(".csv") && !name.contains('/')).then_some((name, o.location))
                    })
                    .collect();
                if files.is_empty() {
                    return Err(format!("{location}: no .csv object is there"));
                }
                Ok(Listed::S3 { objects, files, runtime: tokio::runtime::Handle::current() })
            }
        }
    }
}

/// The files of a running job.
enum Listed {
    Local(Vec<SourceFile>),
    S3 { objects: Objects, files: Vec<(String, S3Location)>, runtime: tokio::runtime::Handle },
}

impl Listed {
    fn len(&self) -> usize {
        match self {
            Listed::Local(files) => files.len(),
            Listed::S3 { files, .. } => files.len(),
        }
    }

    /// File `i` from its start, with its name; on a blocking thread (an object is streamed from S3).
    fn open(&self, i: usize) -> Result<(String, Box<dyn Read + '_>), String> {
        match self {
            Listed::Local(files) => {
                let f = &files[i];
                let mut file = &f.file;
                file.seek(SeekFrom::Start(0)).map_err(|e| {
                    tracing::warn!(file = %f.name, error = %e, "import job: reading failed");
                    format!("{}: the file could not be read (see the server log)", f.name)
                })?;
                Ok((f.name.clone(), Box::new(file)))
            }
            Listed::S3 { objects, files, runtime } => {
                let (name, location) = &files[i];
                let reader = runtime.block_on(objects.open(location)).map_err(|e| format!("{name}: {e}"))?;
                Ok((name.clone(), Box::new(reader.into_blocking(runtime.clone()))))
            }
        }
    }
}
