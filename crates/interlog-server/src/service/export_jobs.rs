//! Dataset export jobs: a dataset written out as Personalize's dataset CSV (§4
//! CreateDatasetExportJob, §8) to an `s3://` prefix or a confined local folder, run in the
//! background by the job supervisor.

use std::sync::Arc;

use interlog_model::control::{IngestionMode, PathScheme};
use interlog_model::requests::CreateDatasetExportJob;
use interlog_model::schema::DatasetType;
use interlog_store::catalog::resources::{CatalogExt, DatasetSpec, ExportJobSpec, New, Resource, SchemaSpec, Spec};
use interlog_store::catalog::{InsertRules, Kind, Requirement};
use interlog_store::export::{export_ingested, ExportWriter, Format};
use interlog_store::{Store, StoreError};

use super::jobs::{admission, unless_full, JobWork};
use super::tags::checked_tags;
use super::{scope, Managed, Service};
use crate::api::error::ApiError;
use crate::auth::Caller;
use crate::file_root::{ConfineError, ConfinedDir};
use crate::objects::{Objects, S3Location};

/// Export jobs pending or in progress at once per account (the documented import-job quota,
/// applied to exports too): each one holds a reader and a file open until it ends. The sixth is
/// `LimitExceededException`, enforced by the catalog in the insert's transaction, so it holds
/// under concurrent creates on every node of a shared store.
pub const MAX_RUNNING_EXPORT_JOBS: u64 = 5;

impl Managed for ExportJobSpec {
    const PARENT: Option<Kind> = Some(Kind::Dataset);
}

impl Service {
    pub async fn create_export_job(
        &self,
        caller: &Caller,
        cmd: CreateDatasetExportJob,
    ) -> Result<Resource<ExportJobSpec>, ApiError> {
        let account = caller.account.as_str();
        let dataset = self.store.describe::<DatasetSpec>(account, &cmd.dataset_arn).await?;
        let arn = scope(caller).arn("dataset-export-job", &cmd.job_name);
        let (exists, quota) = admission::<ExportJobSpec>(
            &self.store,
            account,
            &arn,
            &cmd.job_name,
            "dataset export job",
            MAX_RUNNING_EXPORT_JOBS,
        )
        .await?;
        // A full quota is refused before the destination's folders are made.
        unless_full::<ExportJobSpec>(&self.store, account, &quota).await?;
        // A file:// destination must lie in the caller's folder of the export root: checked
        // (and its folders made) before the job exists, so a refused one never becomes a job.
        let destination = self.confine(account, &cmd.path, cmd.scheme).await?;
        let format = job_format(&cmd.tags)?;
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
            spec: ExportJobSpec {
                dataset_id: dataset.meta.id,
                ingestion_mode: cmd.ingestion_mode.api_name().to_owned(),
                role_arn: cmd.role_arn,
                path: cmd.path,
                kms_key_arn: cmd.kms_key_arn,
                failure_reason: None,
                lease: None,
            },
        };
        let job = self.store.create(new, rules).await?;
        self.changed().await;
        let work = export_work(self.store.clone(), job.clone(), dataset, destination, cmd.ingestion_mode, format);
        self.jobs.run_export(job.clone(), work);
        Ok(job)
    }
}

impl Service {
    /// Where a destination is written: the confined folder of a `file://` path (checked, and
    /// its folders made, before the job exists), or an `s3://` location (checked for form; the
    /// bucket and the credentials are the job's to meet); `None` for http(s), whose jobs fail
    /// with a reason. `InvalidInputException` for a path that cannot be one.
    async fn confine(&self, account: &str, path: &str, scheme: PathScheme) -> Result<Option<Destination>, ApiError> {
        match scheme {
            PathScheme::S3 => {
                let location = S3Location::parse(path)
                    .map_err(|e| ApiError::InvalidInput(format!("Invalid jobOutput.s3DataDestination.path: {e}")))?;
                return Ok(Some(Destination::S3(self.objects().clone(), location)));
            }
            PathScheme::Http | PathScheme::Https => return Ok(None),
            PathScheme::File => {}
        }
        let root = self.file_root.clone().ok_or_else(|| ApiError::InvalidInput(ConfineError::NoRoot.to_string()))?;
        let (account, path) = (account.to_owned(), path.to_owned());
        let resolved = tokio::task::spawn_blocking(move || root.resolve_dir(&account, &path))
            .await
            .map_err(|e| ApiError::InternalFailure(format!("confining the destination failed: {e}")))?;
        match resolved {
            Ok(dir) => Ok(Some(Destination::Dir(dir))),
            Err(e) => match e.cause() {
                Some(cause) => Err(ApiError::InternalFailure(format!("{e}: {cause}"))),
                None => Err(ApiError::InvalidInput(format!("Invalid jobOutput.s3DataDestination.path: {e}"))),
            },
        }
    }
}

/// Where an export job writes.
enum Destination {
    Dir(ConfinedDir),
    /// A prefix (or key taken as one): `<jobName>.csv` is written under it.
    S3(Objects, S3Location),
}

/// What an export job does: `<jobName>.csv` under the destination. In a confined folder it is
/// written under a temporary name (new, mode 0600), synced, then published under its final
/// name, which never replaces an existing file; in S3 it is uploaded (multipart when large) and
/// becomes visible only when the upload completes, never replacing an object. Failure reasons
/// name no server path; OS causes go to the log.
fn export_work(
    store: Arc<dyn Store>,
    job: Resource<ExportJobSpec>,
    dataset: Resource<DatasetSpec>,
    destination: Option<Destination>,
    mode: IngestionMode,
    format: Format,
) -> JobWork {
    Box::pin(async move {
        let destination = destination.ok_or_else(|| {
            format!(
                "interlog writes dataset exports to s3:// locations and local directories only: use                  s3://bucket/prefix/ or a file:///absolute/dir/ path, not {}",
                job.spec.path
            )
        })?;
        tokio::task::spawn_blocking(wait_for_test_gate).await.map_err(|e| e.to_string())?;
        let schema_arn = dataset.meta.uses.clone().unwrap_or_default();
        let schema = store
            .describe::<SchemaSpec>(&dataset.meta.account, &schema_arn)
            .await
            .map_err(|e| format!("cannot read the dataset's schema: {e}"))?;
        let columns = interlog_model::schema::field_names(&schema.spec.body)?;
        let export = Export {
            store,
            dataset_id: job.spec.dataset_id,
            columns,
            schema: interlog_model::schema::parse_schema(&schema.spec.body).ok(),
            dataset_type: dataset.spec.parsed_type().unwrap_or(DatasetType::Interactions),
            mode,
            format,
        };
        match destination {
            Destination::Dir(dir) => export_to_dir(&job, dir, export).await,
            Destination::S3(objects, location) => export_to_s3(&job, &objects, &location, export).await,
        }
    })
}

/// What is written, wherever it goes.
struct Export {
    store: Arc<dyn Store>,
    dataset_id: i64,
    columns: Vec<String>,
    schema: Option<interlog_model::schema::Schema>,
    dataset_type: DatasetType,
    mode: IngestionMode,
    format: Format,
}

impl Export {
    /// `<jobName>.csv` or `<jobName>.parquet`.
    fn file_name(&self, job: &str) -> String {
        match self.format {
            Format::Parquet => format!("{job}.parquet"),
            _ => format!("{job}.csv"),
        }
    }

    /// Writes the dataset onto `out`, returning it flushed.
    async fn write<W: std::io::Write + Send + 'static>(self, out: W) -> Result<W, StoreError> {
        let writer =
            ExportWriter::new(self.format, self.columns, out)?.with_schema(self.schema).for_dataset(self.dataset_type);
        // BULK: the rows dataset import jobs stored; PUT: the Put* calls'; ALL: both.
        Ok(export_ingested(self.store, self.dataset_id, writer, self.mode).await?.1)
    }
}

async fn export_to_dir(job: &Resource<ExportJobSpec>, dir: ConfinedDir, export: Export) -> Result<(), String> {
    let failed = {
        let arn = job.meta.arn.clone();
        move |what: &str, e: &dyn std::fmt::Display| {
            tracing::warn!(job = %arn, "export job: {what}: {e}");
            format!("The export file could not be {what} (see the server log)")
        }
    };
    let target = export.file_name(&job.meta.name);
    let partial = format!("{target}.{}.partial", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let dir = Arc::new(dir);
    let file = dir.create_new(&partial).map_err(|e| match e.cause() {
        Some(cause) => failed("created", cause),
        None => e.to_string(),
    })?;
    let written = async {
        let out = export.write(std::io::BufWriter::new(file)).await.map_err(|e| failed("written", &e))?;
        tokio::task::spawn_blocking(move || {
            out.into_inner().map_err(|e| e.to_string())?.sync_all().map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| failed("synced", &e))
    }
    .await;
    let publish = move || match written {
        Ok(()) => dir.publish(&partial, &target).map_err(|e| match e.cause() {
            Some(cause) => failed("published", cause),
            None => e.to_string(),
        }),
        Err(reason) => {
            dir.remove(&partial);
            Err(reason)
        }
    };
    tokio::task::spawn_blocking(publish).await.map_err(|e| e.to_string())?
}

/// `<jobName>.csv` under the S3 prefix; the reason of a failure is S3's, classified
/// (`crate::objects::ObjectErrorKind`): the bucket does not exist, access denied, the upload
/// was interrupted.
async fn export_to_s3(
    job: &Resource<ExportJobSpec>,
    objects: &Objects,
    prefix: &S3Location,
    export: Export,
) -> Result<(), String> {
    let target = prefix.join(&export.file_name(&job.meta.name));
    let upload = objects.create(&target).await.map_err(|e| e.to_string())?;
    let out = upload.into_blocking(tokio::runtime::Handle::current());
    let failure = out.failure();
    let out = export.write(out).await.map_err(|e| {
        let reason = failure.get().map(|o| o.to_string());
        tracing::warn!(job = %job.meta.arn, "export job to {target}: {e}");
        reason.unwrap_or_else(|| format!("The export to {target} failed (see the server log); nothing was published"))
    })?;
    let size = tokio::task::spawn_blocking(move || out.finish())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    tracing::info!(job = %job.meta.arn, "export job wrote {size} bytes to {target}");
    Ok(())
}

/// The tag that chooses an export job's format (an interlog extension, docs/api.md): the
/// CreateDatasetExportJob shape has no member for it and the SDKs refuse unknown members, but
/// every client can send tags.
pub const FORMAT_TAG: &str = "interlog:format";

/// `csv` (the default, Personalize's) or `parquet`, from the job's `interlog:format` tag.
fn job_format(tags: &[(String, String)]) -> Result<Format, ApiError> {
    let Some((_, value)) = tags.iter().find(|(k, _)| k == FORMAT_TAG) else { return Ok(Format::Csv) };
    match value.as_str() {
        "csv" => Ok(Format::Csv),
        "parquet" => Ok(Format::Parquet),
        other => Err(ApiError::InvalidInput(format!(
            "The tag {FORMAT_TAG} chooses the export's format: csv or parquet, not '{other}'"
        ))),
    }
}

/// Test machinery: while the file named by `INTERLOG_TEST_EXPORT_JOB_GATE` exists, export jobs
/// wait in CREATE IN_PROGRESS, so a test can observe a running job (in-use refusals, a stop
/// interrupting it) deterministically. Unset in production: one environment lookup per job.
fn wait_for_test_gate() {
    if let Some(gate) = std::env::var_os("INTERLOG_TEST_EXPORT_JOB_GATE") {
        while std::path::Path::new(&gate).exists() {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
