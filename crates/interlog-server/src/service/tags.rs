//! Tags of any resource (TagResource, UntagResource, ListTagsForResource).

use std::collections::BTreeMap;

use interlog_store::catalog::{too_many_tags, MAX_TAGS_PER_RESOURCE};

use super::Service;
use crate::api::error::ApiError;
use crate::auth::Caller;

impl Service {
    pub async fn tag_resource(&self, caller: &Caller, arn: &str, tags: Vec<(String, String)>) -> Result<(), ApiError> {
        self.store.tag(&caller.account, arn, &tags, MAX_TAGS_PER_RESOURCE).await?;
        Ok(())
    }

    pub async fn untag_resource(&self, caller: &Caller, arn: &str, keys: &[String]) -> Result<(), ApiError> {
        self.store.untag(&caller.account, arn, keys).await?;
        Ok(())
    }

    pub async fn list_tags(&self, caller: &Caller, arn: &str) -> Result<Vec<(String, String)>, ApiError> {
        Ok(self.store.tags(&caller.account, arn).await?)
    }
}

/// The tags a new resource is created with: a later duplicate key replaces an earlier one (as
/// TagResource does), and at most [`MAX_TAGS_PER_RESOURCE`] keys.
pub(crate) fn checked_tags(arn: &str, tags: Vec<(String, String)>) -> Result<Vec<(String, String)>, ApiError> {
    let unique: BTreeMap<String, String> = tags.into_iter().collect();
    if unique.len() > MAX_TAGS_PER_RESOURCE {
        return Err(too_many_tags(arn, unique.len(), MAX_TAGS_PER_RESOURCE).into());
    }
    Ok(unique.into_iter().collect())
}
