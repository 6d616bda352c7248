//! Dataset export jobs: a dataset written out as Personalize's dataset CSV (§4
//! CreateDatasetExportJob, §8), run in the background by the job supervisor.

use std::sync::Arc;

use interlog_model::control::{IngestionMode, PathScheme};
use interlog_model::requests::CreateDatasetExportJob;
use interlog_store::catalog::resources::{CatalogExt, DatasetSpec, ExportJobSpec, New, Resource, SchemaSpec, Spec};
use interlog_store::catalog::{InsertRules, Kind, Quota, Requirement};
use interlog_store::export::{export_dataset, ExportWriter, Format};
use interlog_store::Store;

use super::jobs::{JobWork, RUNNING};
use super::tags::checked_tags;
use super::{scope, Managed, Service};
use crate::api::error::ApiError;
use crate::auth::Caller;

/// Export jobs pending or in progress at once per account (the documented import-job quota,
/// applied to exports too): each one holds a reader and a file open until it ends.
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
        let rules = InsertRules {
            quota: Some(Quota {
                max: MAX_RUNNING_EXPORT_JOBS,
                statuses: RUNNING.iter().map(|s| s.to_string()).collect(),
                message: format!(
                    "Account {account} already has {MAX_RUNNING_EXPORT_JOBS} dataset export jobs pending or in \
                     progress, the quota; wait until one ends"
                ),
            }),
            requires: vec![Requirement { kind: DatasetSpec::KIND, arn: dataset.meta.arn.clone(), active: true }],
            exists_message: format!("A dataset export job named {} already exists ({arn})", cmd.job_name),
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
        let work = export_work(self.store.clone(), job.clone(), dataset, cmd.scheme, cmd.ingestion_mode);
        self.jobs.run_export(job.clone(), work);
        Ok(job)
    }
}

/// What an export job does: `<path>/<jobName>.csv`, written as `.csv.partial`, synced, renamed.
fn export_work(
    store: Arc<dyn Store>,
    job: Resource<ExportJobSpec>,
    dataset: Resource<DatasetSpec>,
    scheme: PathScheme,
    mode: IngestionMode,
) -> JobWork {
    Box::pin(async move {
        if scheme != PathScheme::File {
            return Err(format!(
                "interlog writes dataset exports to local directories only: use a file:///absolute/dir/ path \
                 (object storage such as {} is not supported yet)",
                job.spec.path
            ));
        }
        let schema_arn = dataset.meta.uses.clone().unwrap_or_default();
        let schema = store
            .describe::<SchemaSpec>(&dataset.meta.account, &schema_arn)
            .await
            .map_err(|e| format!("cannot read the dataset's schema: {e}"))?;
        let columns = interlog_model::schema::field_names(&schema.spec.body)?;
        let dir = job.spec.path.trim_start_matches("file://").to_owned();
        let target = std::path::Path::new(&dir).join(format!("{}.csv", job.meta.name));
        let partial = target.with_extension("csv.partial");
        let file = {
            let (dir, partial) = (dir.clone(), partial.clone());
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create the directory {dir}: {e}"))?;
                std::fs::File::create(&partial).map_err(|e| format!("cannot create {}: {e}", partial.display()))
            })
            .await
            .map_err(|e| e.to_string())??
        };
        let writer = ExportWriter::new(Format::Csv, columns, std::io::BufWriter::new(file))
            .map_err(|e| format!("cannot write {}: {e}", partial.display()))?
            .with_schema(interlog_model::schema::parse_schema(&schema.spec.body).ok());
        // interlog records events only through the Put* operations: BULK (imported) data is empty.
        let out = if mode == IngestionMode::Bulk {
            writer.finish().map_err(|e| format!("cannot write {}: {e}", partial.display()))?
        } else {
            let (_, out) = export_dataset(store.clone(), job.spec.dataset_id, writer)
                .await
                .map_err(|e| format!("reading the dataset failed: {e}"))?;
            out
        };
        tokio::task::spawn_blocking(move || {
            let file = out.into_inner().map_err(|e| format!("cannot write {}: {e}", partial.display()))?;
            file.sync_all().map_err(|e| format!("cannot sync {}: {e}", partial.display()))?;
            std::fs::rename(&partial, &target).map_err(|e| format!("cannot rename to {}: {e}", target.display()))
        })
        .await
        .map_err(|e| e.to_string())?
    })
}
