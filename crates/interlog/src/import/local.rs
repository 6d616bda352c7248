//! Importing straight into a store (`--data-dir`, `--database-url`): CSV rows checked by the same
//! importer as import jobs (`interlog_model::import`) and stored as imported (BULK) data in
//! chunks through the store's writer, with no server running.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use interlog_model::import::{Imported, Importer};
use interlog_model::schema::parse_schema;
use interlog_store::csv_records::{CsvError, CsvRecords, Position};
use interlog_store::export::dataset_by_arn;
use interlog_store::{log_entry, Entries, Store, IMPORT_CHUNK_ROWS};

/// The import-job ID rows of `interlog import --data-dir` carry: bulk data of no job, replaced by
/// a later FULL import job like any other bulk data.
pub const CLI_IMPORT: i64 = 0;

/// A dataset of an opened store.
pub struct Local {
    pub runtime: tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    dataset_id: i64,
    schema: interlog_model::schema::Schema,
}

impl Local {
    pub fn open(data_dir: Option<&Path>, database_url: Option<&str>, dataset_arn: &str) -> anyhow::Result<Local> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let (store, dataset_id, schema) = runtime.block_on(async {
            let store: Arc<dyn Store> = match (data_dir, database_url) {
                (Some(dir), _) => interlog_store_sqlite::SqliteStore::open(dir, Default::default())
                    .with_context(|| format!("cannot open the store in {}", dir.display()))?,
                (None, Some(url)) => interlog_store_postgres::PostgresStore::open(url, Default::default())
                    .await
                    .with_context(|| format!("cannot open {}", interlog_server::engine::redact_url(url)))?,
                (None, None) => anyhow::bail!("give --endpoint-url, --data-dir or --database-url"),
            };
            let (dataset, schema) = dataset_by_arn(&*store, None, dataset_arn).await?;
            let schema = parse_schema(&schema.spec.body).map_err(|e| anyhow::anyhow!("the dataset's schema: {e}"))?;
            anyhow::Ok((store, dataset.meta.id, schema))
        })?;
        Ok(Local { runtime, store, dataset_id, schema })
    }

    /// The header of a CSV file compiled against the schema (read from the file's start).
    pub fn importer(&self, path: &Path) -> anyhow::Result<Importer> {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut records = CsvRecords::new(BufReader::new(file), Position::default(), MAX_ROW_BYTES);
        let header = records.next_record().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let Some((_, header)) = header else {
            anyhow::bail!(
                "{}: the file is empty; it must start with a header of the schema's field names",
                path.display()
            )
        };
        let header = header.map_err(|e| anyhow::anyhow!("{}:1: {e}", path.display()))?;
        Importer::new(&self.schema, &header.fields()).map_err(|v| anyhow::anyhow!("{}: {v}", path.display()))
    }

    /// Records of `path` from `at` (the default: after its header).
    pub fn records(&self, path: &Path, at: Position) -> anyhow::Result<CsvRecords<BufReader<File>>> {
        let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut records = if at == Position::default() {
            let mut r = CsvRecords::new(BufReader::with_capacity(1 << 16, file), at, MAX_ROW_BYTES);
            r.next_record().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?; // the header
            r
        } else {
            file.seek(SeekFrom::Start(at.offset))?;
            CsvRecords::new(BufReader::with_capacity(1 << 16, file), at, MAX_ROW_BYTES)
        };
        let _ = &mut records;
        Ok(records)
    }

    /// Stores checked rows durably, as imported data, in chunks the writer takes without
    /// holding up anyone else for long.
    pub fn store(&self, rows: Vec<Imported>) -> anyhow::Result<u64> {
        let mut events = Vec::new();
        let mut records = Vec::new();
        let n = rows.len() as u64;
        for row in rows {
            match row {
                Imported::Interaction(e) => events.push(e),
                Imported::ActionInteraction(a) => events.push(log_entry(a)),
                Imported::Record(r) => records.push(r),
            }
        }
        self.runtime.block_on(async {
            while !events.is_empty() {
                let rest = events.split_off(events.len().min(IMPORT_CHUNK_ROWS));
                let chunk = std::mem::replace(&mut events, rest);
                self.store.import(self.dataset_id, CLI_IMPORT, Entries::Events(chunk)).await?;
            }
            while !records.is_empty() {
                let rest = records.split_off(records.len().min(IMPORT_CHUNK_ROWS));
                let chunk = std::mem::replace(&mut records, rest);
                self.store.import(self.dataset_id, CLI_IMPORT, Entries::Records(chunk)).await?;
            }
            anyhow::Ok(())
        })?;
        Ok(n)
    }

    pub fn close(self) {
        self.runtime.block_on(self.store.close());
    }
}

/// The longest row read (Personalize's largest fields many times over).
const MAX_ROW_BYTES: usize = 1 << 20;

/// A read failure as the report and the error show it.
pub fn read_error(path: &Path, e: CsvError) -> anyhow::Error {
    anyhow::anyhow!("{}: {e}", path.display())
}
