//! Schemas: Avro descriptions of a dataset's columns (§4 CreateSchema, §7).

use interlog_model::requests::CreateSchema;
use interlog_store::catalog::resources::{CatalogExt, New, Resource, SchemaSpec};
use interlog_store::catalog::{InsertRules, Kind, Quota};

use super::{scope, Managed, Service};
use crate::api::error::ApiError;
use crate::auth::Caller;

/// Active schemas per account (Personalize "endpoints and quotas").
pub const MAX_SCHEMAS: u64 = 500;

impl Managed for SchemaSpec {
    const PARENT: Option<Kind> = None;
    // A schema used by a dataset cannot be deleted: the default rules say so.
}

impl Service {
    pub async fn create_schema(&self, caller: &Caller, cmd: CreateSchema) -> Result<Resource<SchemaSpec>, ApiError> {
        let arn = scope(caller).arn("schema", &cmd.name);
        let rules = InsertRules {
            quota: Some(Quota {
                max: MAX_SCHEMAS,
                statuses: vec![],
                message: format!(
                    "Account {} already has {MAX_SCHEMAS} schemas, the quota; delete one with DeleteSchema",
                    caller.account
                ),
            }),
            requires: vec![],
            exists_message: format!("A schema named {} already exists ({{arn}})", cmd.name),
        };
        let new = New {
            account: caller.account.clone(),
            arn,
            unique_key: Some(cmd.name.clone()),
            name: cmd.name,
            parent: None,
            uses: None,
            status: "ACTIVE".into(),
            tags: vec![],
            spec: SchemaSpec { body: cmd.schema, domain: cmd.domain.map(|d| d.api_name().to_owned()) },
        };
        let schema = self.store.create(new, rules).await?;
        self.changed().await;
        Ok(schema)
    }
}
