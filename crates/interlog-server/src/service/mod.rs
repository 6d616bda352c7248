//! The control plane as operations on resources, independent of any wire protocol: the AWS
//! JSON 1.1 handlers (`api::control`) call it, and so will the web debugger.
//!
//! One module per resource holds its create operation and the rules that go with it (quotas,
//! what must exist first, what a delete takes along); describe, list and delete are written once
//! here for every kind ([`Managed`]). Inputs arrive validated (`interlog_model::requests`);
//! failures are [`ApiError`]s, which only `api::error` turns into responses.

pub mod dataset_groups;
pub mod datasets;
pub mod deletion_jobs;
pub mod event_trackers;
pub mod export_jobs;
pub mod import_jobs;
pub mod jobs;
pub mod schemas;
pub mod tags;

use std::sync::Arc;

use interlog_model::arn::Scope;
use interlog_store::catalog::resources::{CatalogExt, Resource, Spec};
use interlog_store::catalog::{DeleteRules, Kind, Page};
use interlog_store::{CatalogCache, Store};

use crate::api::error::ApiError;
use crate::auth::Caller;
use crate::file_root::FileRoot;

/// What the control plane needs to run.
#[derive(Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    cache: Arc<CatalogCache>,
    jobs: jobs::Jobs,
    /// The operator's export root (`--export-dir`); `None` refuses `file://` destinations.
    file_root: Option<Arc<FileRoot>>,
    /// The operator's import root (`--import-dir`); `None` refuses `file://` sources.
    import_root: Option<Arc<FileRoot>>,
    /// `s3://` locations of jobs (`crate::objects`).
    objects: crate::objects::Objects,
}

impl Service {
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<CatalogCache>,
        jobs: jobs::Jobs,
        file_root: Option<Arc<FileRoot>>,
    ) -> Self {
        let objects = crate::objects::Objects::new(crate::objects::S3Config::from_env());
        Service { store, cache, jobs, file_root, import_root: None, objects }
    }

    /// Serves `file://` import sources from `root` (`--import-dir`).
    pub fn with_import_root(mut self, root: Option<Arc<FileRoot>>) -> Self {
        self.import_root = root;
        self
    }

    /// Reaches `s3://` locations with these settings instead of the environment's.
    pub fn with_objects(mut self, objects: crate::objects::Objects) -> Self {
        self.objects = objects;
        self
    }

    /// How jobs read and write `s3://` locations.
    pub fn objects(&self) -> &crate::objects::Objects {
        &self.objects
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn cache(&self) -> &Arc<CatalogCache> {
        &self.cache
    }

    /// After a write of this node: the hot path must see it on the very next request.
    async fn changed(&self) {
        if let Err(e) = self.cache.refresh(&*self.store).await {
            // The follower task retries; the write itself succeeded.
            tracing::warn!(error = %e, "cannot refresh the catalog cache after a write");
        }
    }

    /// A resource of the caller's account.
    pub async fn describe<S: Managed>(&self, caller: &Caller, arn: &str) -> Result<Resource<S>, ApiError> {
        Ok(self.store.describe::<S>(&caller.account, arn).await?)
    }

    /// A page of the caller's resources of one kind, of one parent when `parent` is given (which
    /// must then exist: an unknown parent is `ResourceNotFoundException`, not an empty list).
    pub async fn list<S: Managed>(
        &self,
        caller: &Caller,
        parent: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Page<Resource<S>>, ApiError> {
        if let (Some(parent), Some(kind)) = (parent, S::PARENT) {
            if self.store.get(&caller.account, kind, parent).await?.is_none() {
                return Err(interlog_store::catalog::missing(kind, parent).into());
            }
        }
        Ok(self.store.list_page::<S>(Some(&caller.account), parent, after, limit).await?)
    }

    /// A page of the caller's resources of one kind, newest first: those created before the
    /// id `before` (the previous page's last). Read whole and cut, so only for kinds an account
    /// holds few of (jobs).
    pub async fn list_newest_first<S: Managed>(
        &self,
        caller: &Caller,
        parent: Option<&str>,
        before: i64,
        limit: usize,
    ) -> Result<Page<Resource<S>>, ApiError> {
        if let (Some(parent), Some(kind)) = (parent, S::PARENT) {
            if self.store.get(&caller.account, kind, parent).await?.is_none() {
                return Err(interlog_store::catalog::missing(kind, parent).into());
            }
        }
        let mut all = self.store.list_all::<S>(Some(&caller.account), parent).await?;
        all.retain(|r| r.meta.id < before);
        all.sort_unstable_by_key(|r| std::cmp::Reverse(r.meta.id));
        all.truncate(limit + 1);
        Ok(Page::from_rows(all, limit, |r| r.meta.id))
    }

    /// Deletes a resource of the caller's account by its kind's rules.
    pub async fn delete<S: Managed>(&self, caller: &Caller, arn: &str) -> Result<(), ApiError> {
        let deleted = self.store.remove::<S>(&caller.account, arn, S::delete_rules()).await?;
        tracing::info!(kind = S::KIND.as_str(), %arn, cascaded = deleted.len() - 1, "deleted");
        self.changed().await;
        Ok(())
    }
}

/// A kind the control plane manages: where it lists from and what deleting it means.
pub trait Managed: Spec {
    /// The kind a listing of this one is filtered by (`datasetGroupArn`, `datasetArn`).
    const PARENT: Option<Kind>;

    /// What a delete takes with it and what stops it. Default: nothing cascades, and any
    /// resource that belongs to or uses this one blocks the delete.
    fn delete_rules() -> DeleteRules {
        DeleteRules::default()
    }
}

/// The scope new resources of a caller are named in.
pub(crate) fn scope(caller: &Caller) -> Scope {
    Scope { region: caller.region.clone(), account: caller.account.clone() }
}
