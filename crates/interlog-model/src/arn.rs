//! Amazon Resource Names of Personalize resources, in AWS's format (§4.3 of the spec).

/// Where a resource lives: the partition-region-account triple every ARN carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub region: String,
    pub account: String,
}

impl Scope {
    /// `arn:aws:personalize:<region>:<account>:<kind>/<path>`; China regions use `aws-cn`.
    pub fn arn(&self, kind: &str, path: &str) -> String {
        let partition = if self.region.starts_with("cn-") { "aws-cn" } else { "aws" };
        format!("arn:{partition}:personalize:{}:{}:{kind}/{path}", self.region, self.account)
    }
}

/// The upper-case segment that names a dataset inside its group's ARN.
pub fn dataset_type_segment(dataset_type: &str) -> String {
    dataset_type.to_ascii_uppercase()
}
