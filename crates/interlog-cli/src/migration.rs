//! `--v2-debug` (or `AWS_CLI_UPGRADE_DEBUG_MODE=true`): aws-cli 1.46's warnings about what would
//! break under AWS CLI v2, printed to stderr once the global options have parsed.
//!
//! Only the checks that can fire for personalize-events are reproduced: the output pager, the
//! Python encoding variables and `api_versions` (botocore's `detect_migration_breakage`); the
//! others concern S3, ECR, plugins, blob parameters and `http://` parameter files, none of which
//! these commands have.

use crate::config::{Env, Files};

const PAGER: &str = "\nAWS CLI v2 UPGRADE WARNING: By default, the AWS CLI v2 returns all output through your \
operating system’s default pager program. This is different from v1 behavior, where the system pager is not used by \
default. To retain AWS CLI v1 behavior in AWS CLI v2, set the `cli_pager` configuration setting, or the `AWS_PAGER` \
environment variable, to the empty string. See \
https://docs.aws.amazon.com/cli/latest/userguide/cliv2-migration-changes.html#cliv2-migration-output-pager.\n";

const ENCODING: &str = "\nThe AWS CLI v2 does not support The `PYTHONUTF8` and `PYTHONIOENCODING` environment \
variables, and instead uses the `AWS_CLI_FILE_ENCODING` variable. This is different from v1 behavior, where the former \
two variables are used instead. To retain AWS CLI v1 behavior in AWS CLI v2, set the `AWS_CLI_FILE_ENCODING` \
environment variable instead. See \
https://docs.aws.amazon.com/cli/latest/userguide/cliv2-migration-changes.html#cliv2-migration-encodingenvvar.\n";

const API_VERSIONS: &str = "\nAWS CLI v2 UPGRADE WARNING: AWS CLI v2 UPGRADE WARNING: The AWS CLI v2 does not \
support calling older versions of AWS service APIs via the `api_versions` configuration file setting. This is \
different from v1 behavior, where this configuration setting can be used to pin older API versions. To migrate to v2 \
behavior, remove the `api_versions` configuration setting, and test against the latest service API versions. See \
https://docs.aws.amazon.com/cli/latest/userguide/cliv2-migration-changes.html#cliv2-migration-api-versions.\n";

/// Whether the mode is on: the flag, or the environment variable (any case of `true`).
pub fn enabled(flag: bool, env: &Env) -> bool {
    flag || env.get("AWS_CLI_UPGRADE_DEBUG_MODE").is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The warnings, in aws-cli's order; `files` is `None` when the profile could not be loaded.
pub fn warnings(env: &Env, files: Option<&Files>) -> String {
    let mut out = String::new();
    let setting = |key: &str| files.and_then(|f| f.config.raw(key));
    // `AWS_PAGER` counts when set at all, even empty; `cli_pager` only when it is the empty string.
    if setting("cli_pager") != Some("") && !env.has("AWS_PAGER") {
        out.push_str(PAGER);
    }
    if (env.has("PYTHONUTF8") || env.has("PYTHONIOENCODING")) && !env.has("AWS_CLI_FILE_ENCODING") {
        out.push_str(ENCODING);
    }
    if setting("api_versions").is_some_and(|v| !v.trim().is_empty()) {
        out.push_str(API_VERSIONS);
    }
    out
}
