//! Data deletion jobs (CreateDataDeletionJob): a CSV of user IDs removes every interaction,
//! action interaction and user record of those users from the datasets of a dataset group,
//! run in the background by the job supervisor (`jobs.rs`) through the store's
//! `delete_users`, which works in chunks so appends go on meanwhile.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;

use interlog_model::control::PathScheme;
use interlog_model::requests::CreateDataDeletionJob;
use interlog_model::schema::DatasetType;
use interlog_store::catalog::resources::{CatalogExt, DatasetSpec, DeletionJobSpec, GroupSpec, New, Resource, Spec};
use interlog_store::catalog::{InsertRules, Kind, Requirement};
use interlog_store::{Store, UserDeletion};

use super::jobs::{admission, JobSpec, Work};
use super::tags::checked_tags;
use super::{scope, Managed, Service};
use crate::api::error::ApiError;
use crate::auth::Caller;
use crate::file_root::{ConfineError, FileRoot, SourceFile};
use crate::objects::{Objects, S3Location};
use interlog_store::csv_records::{CsvError, CsvRecords, Position};

/// Data deletion jobs pending or in progress at once per account, as for export jobs: each one
/// holds its users in memory and a share of the writer until it ends.
pub const MAX_RUNNING_DELETION_JOBS: u64 = 5;

/// Distinct user IDs one job takes (about 100 bytes of memory each while it runs).
pub const MAX_USERS_PER_JOB: usize = 5_000_000;

/// A row of a user-ID file longer than this is no user ID (they have at most 256 characters).
const MAX_RECORD_BYTES: usize = 64 * 1024;

/// The longest user ID a Put* call accepts, so the longest one worth looking for.
const MAX_USER_ID_CHARS: usize = 256;

impl Managed for DeletionJobSpec {
    const PARENT: Option<Kind> = Some(Kind::DatasetGroup);
}

impl Service {
    pub async fn create_deletion_job(
        &self,
        caller: &Caller,
        cmd: CreateDataDeletionJob,
    ) -> Result<Resource<DeletionJobSpec>, ApiError> {
        let account = caller.account.as_str();
        let group = self.store.describe::<GroupSpec>(account, &cmd.dataset_group_arn).await?;
        let arn = scope(caller).arn("data-deletion-job", &cmd.job_name);
        let (exists, quota) = admission::<DeletionJobSpec>(
            &self.store,
            account,
            &arn,
            &cmd.job_name,
            "data deletion job",
            MAX_RUNNING_DELETION_JOBS,
        )
        .await?;
        // A file:// source must lie in the caller's folder of the root: a location outside it
        // is refused before the job exists; one that does not exist (yet) fails the job.
        let source = match cmd.scheme {
            PathScheme::File => {
                match self.sources(account, &cmd.data_location).await {
                    Ok(_) | Err(ConfineError::Missing(_)) => {}
                    Err(e) => return Err(confine_error(e)),
                }
                Source::File(self.import_root.clone())
            }
            // A location that is no `s3://bucket/key` makes no job; what it names is read by the job.
            PathScheme::S3 => Source::S3(
                self.objects().clone(),
                S3Location::parse(&cmd.data_location)
                    .map_err(|e| ApiError::InvalidInput(format!("Invalid dataSource.dataLocation: {e}")))?,
            ),
            PathScheme::Http | PathScheme::Https => Source::Unsupported,
        };
        let rules = InsertRules {
            quota: Some(quota),
            requires: vec![Requirement { kind: GroupSpec::KIND, arn: group.meta.arn.clone(), active: true }],
            exists_message: exists,
        };
        let new = New {
            account: account.to_owned(),
            tags: checked_tags(&arn, cmd.tags)?,
            arn,
            unique_key: Some(cmd.job_name.clone()),
            name: cmd.job_name,
            parent: Some(group.meta.arn.clone()),
            uses: None,
            status: DeletionJobSpec::STATUSES.pending.into(),
            spec: DeletionJobSpec {
                data_location: cmd.data_location,
                role_arn: cmd.role_arn,
                num_deleted: None,
                failure_reason: None,
                lease: None,
            },
        };
        let job = self.store.create(new, rules).await?;
        self.changed().await;
        let work = deletion_work(self.store.clone(), source, job.clone());
        self.jobs.run(job.clone(), work);
        Ok(job)
    }

    /// The files at a `file://` source, confined to the caller's folder.
    async fn sources(&self, account: &str, location: &str) -> Result<Vec<SourceFile>, ConfineError> {
        open_sources(self.import_root.clone(), account, location).await
    }
}

async fn open_sources(
    root: Option<Arc<FileRoot>>,
    account: &str,
    location: &str,
) -> Result<Vec<SourceFile>, ConfineError> {
    let root = root.ok_or(ConfineError::NoRoot)?;
    let (account, location) = (account.to_owned(), location.to_owned());
    tokio::task::spawn_blocking(move || root.resolve_source(&account, &location))
        .await
        .unwrap_or_else(|e| Err(ConfineError::Io { what: "open the source", cause: std::io::Error::other(e) }))
}

fn confine_error(e: ConfineError) -> ApiError {
    if matches!(e, ConfineError::NoRoot) {
        return ApiError::InvalidInput(
            "This server accepts no file:// data deletion sources: its operator has not set an import directory \
             (interlog serve --import-dir DIR)"
                .to_owned(),
        );
    }
    match e.cause() {
        Some(cause) => ApiError::InternalFailure(format!("{e}: {cause}")),
        None => ApiError::InvalidInput(format!("Invalid dataSource.dataLocation: {e}")),
    }
}

/// What a deletion job does: reads the user IDs, then removes their data from the group's
/// Interactions, Action_Interactions and Users datasets (Items and Actions hold nothing of a
/// user). Its outcome is `numDeleted`: events, action interactions and user records removed.
fn deletion_work(store: Arc<dyn Store>, source: Source, job: Resource<DeletionJobSpec>) -> Work<u64> {
    Box::pin(async move {
        let location = job.spec.data_location.clone();
        let users = match source {
            Source::Unsupported => {
                return Err(format!(
                    "interlog reads data deletion files from file:///absolute/path locations inside the server's \
                     import directory and from s3://bucket/key locations ({location} is neither)"
                ))
            }
            Source::File(root) => {
                let files = open_sources(root, &job.meta.account, &location).await.map_err(|e| match e.cause() {
                    Some(cause) => {
                        tracing::warn!(job = %job.meta.arn, "data deletion job: {e}: {cause}");
                        e.to_string()
                    }
                    None => format!("Cannot read {location}: {e}"),
                })?;
                if files.is_empty() {
                    return Err(format!("The folder {location} holds no file of user IDs"));
                }
                tokio::task::spawn_blocking(move || read_user_ids(files))
                    .await
                    .map_err(|e| format!("reading the user IDs failed unexpectedly ({e})"))??
            }
            Source::S3(objects, at) => read_s3_user_ids(&objects, &at).await?,
        };
        let parent = job.meta.parent.clone().unwrap_or_default();
        let datasets = store
            .list_all::<DatasetSpec>(Some(&job.meta.account), Some(&parent))
            .await
            .map_err(|e| format!("cannot list the dataset group's datasets: {e}"))?;
        let mut deletion = UserDeletion { users: Arc::new(users), ..UserDeletion::default() };
        for d in datasets {
            match d.spec.parsed_type() {
                Some(DatasetType::Interactions | DatasetType::ActionInteractions) => deletion.logs.push(d.meta.id),
                Some(DatasetType::Users) => deletion.records.push(d.meta.id),
                _ => {}
            }
        }
        let users = deletion.users.len();
        let deleted =
            store.delete_users(deletion).await.map_err(|e| format!("removing the users' data failed: {e}"))?;
        tracing::info!(job = %job.meta.arn, users, events = deleted.events, records = deleted.records, "users' data deleted");
        Ok(deleted.total())
    })
}

/// Where a job reads its user IDs.
enum Source {
    File(Option<Arc<FileRoot>>),
    S3(Objects, S3Location),
    Unsupported,
}

/// The user IDs of every object a location names (the object, or those under the prefix, in key
/// order), each streamed through the same reader as files; failures name the object.
async fn read_s3_user_ids(objects: &Objects, at: &S3Location) -> Result<HashSet<String>, String> {
    let listed = objects.list(at).await.map_err(|e| e.to_string())?;
    if listed.is_empty() {
        return Err(format!("No object of user IDs is at {at}"));
    }
    let mut users = HashSet::new();
    for object in listed {
        let reader = objects.open(&object.location).await.map_err(|e| e.to_string())?;
        let blocking = reader.into_blocking(tokio::runtime::Handle::current());
        let name = object.location.to_string();
        users = tokio::task::spawn_blocking(move || read_one(&name, blocking, &mut users).map(|()| users))
            .await
            .map_err(|e| format!("reading the user IDs failed unexpectedly ({e})"))??;
    }
    Ok(users)
}

/// The user IDs of the files, in Personalize's format: a header `USER_ID`, then one ID a
/// line (quoted as CSV quotes, blank lines skipped). A failure names the file, the line and
/// the rule.
fn read_user_ids(files: Vec<SourceFile>) -> Result<HashSet<String>, String> {
    let mut users = HashSet::new();
    for f in files {
        read_one(&f.name, f.file, &mut users)?;
    }
    Ok(users)
}

fn read_one(name: &str, file: impl Read, users: &mut HashSet<String>) -> Result<(), String> {
    // Exact line numbers whatever the line ends (the csv crate's positions lag after a CRLF).
    let mut csv = CsvRecords::new(std::io::BufReader::new(file), Position::default(), MAX_RECORD_BYTES);
    let mut header = true;
    loop {
        let next = csv.next_record().map_err(|e| match e {
            CsvError::Io(io) => format!("{name}: cannot be read: {io}"),
            CsvError::TooLong { line, max } => format!("{name}, line {line}: a row of more than {max} bytes"),
        })?;
        let Some((line, record)) = next else { break };
        let record = record.map_err(|e| format!("{name}, line {line}: not valid CSV: {e}"))?;
        let record = record.fields();
        if record.len() != 1 {
            return Err(format!("{name}, line {line}: {} columns; the file has one column, USER_ID", record.len()));
        }
        let value = std::str::from_utf8(record[0]).map_err(|_| format!("{name}, line {line}: not valid UTF-8"))?;
        if header {
            header = false;
            // Spreadsheets often save a byte-order mark before the header.
            let got = value.strip_prefix('\u{feff}').unwrap_or(value);
            if !got.trim().eq_ignore_ascii_case("USER_ID") {
                return Err(format!("{name}, line {line}: the header is '{got}'; it must be USER_ID"));
            }
            continue;
        }
        if value.chars().count() > MAX_USER_ID_CHARS {
            return Err(format!("{name}, line {line}: a user ID longer than {MAX_USER_ID_CHARS} characters"));
        }
        if users.len() >= MAX_USERS_PER_JOB && !users.contains(value) {
            return Err(format!("{name}, line {line}: more than {MAX_USERS_PER_JOB} user IDs; split the job"));
        }
        users.insert(value.to_owned());
    }
    if header {
        return Err(format!("{name}: empty; it must start with the header USER_ID"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Vec<String>, String> {
        let mut users = HashSet::new();
        read_one("users.csv", text.as_bytes(), &mut users)?;
        let mut users: Vec<String> = users.into_iter().collect();
        users.sort();
        Ok(users)
    }

    #[test]
    fn user_ids_are_read_as_personalize_writes_them() {
        assert_eq!(read("USER_ID\nu1\n\n\"u,2\"\nu1\n").unwrap(), ["u,2", "u1"]);
        assert_eq!(read("\u{feff}user_id\r\nu3\r\n").unwrap(), ["u3"]);
        assert_eq!(read("USER_ID\n").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_bad_file_names_its_line_and_rule() {
        assert_eq!(
            read("ITEM_ID\nu1\n").unwrap_err(),
            "users.csv, line 1: the header is 'ITEM_ID'; it must be USER_ID"
        );
        assert_eq!(
            read("USER_ID\nu1\nu2,x\n").unwrap_err(),
            "users.csv, line 3: 2 columns; the file has one column, USER_ID"
        );
        // Lines are counted exactly after CRLF line ends and blank lines, as spreadsheets save them.
        assert_eq!(
            read("USER_ID\r\nu1\r\n\r\nu2,x\r\n").unwrap_err(),
            "users.csv, line 4: 2 columns; the file has one column, USER_ID"
        );
        assert_eq!(read("").unwrap_err(), "users.csv: empty; it must start with the header USER_ID");
        let long = format!("USER_ID\n{}\n", "x".repeat(257));
        assert!(read(&long).unwrap_err().starts_with("users.csv, line 2: a user ID longer than 256"));
        let mut bad = b"USER_ID\n".to_vec();
        bad.extend_from_slice(b"\xff\xfe\n");
        let mut users = HashSet::new();
        assert_eq!(read_one("u.csv", &bad[..], &mut users).unwrap_err(), "u.csv, line 2: not valid UTF-8");
    }
}
