//! Member validation of the control plane (§4, §6.1): names, ARNs, paths, tags and paging, worded like Coral.
//!
//! Each check takes the member's Coral path (`jobOutput.s3DataDestination.path`, `tags.3.member.tagKey`) and
//! returns every broken constraint, so a handler can gather all of a request's violations into one
//! [`ValidationError::Violations`](crate::ValidationError::Violations). Model patterns are full matches (§10.7) and
//! are implemented by hand: each is simple, and the crate stays free of a regex engine.

use serde::Deserialize;

use crate::schema::{DatasetType, Domain};
use crate::validation::Violation;

pub const NAME_PATTERN: &str = r"^[a-zA-Z0-9][a-zA-Z0-9\-_]*";
pub const ARN_PATTERN: &str = r"arn:([a-z\d-]+):personalize:.*:.*:.+";
pub const ROLE_ARN_PATTERN: &str = r"arn:([a-z\d-]+):iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+";
pub const KMS_KEY_ARN_PATTERN: &str = r"arn:aws.*:kms:.*:[0-9]{12}:key/.*";
pub const S3_LOCATION_PATTERN: &str = r"(s3|http|https)://.+";
pub const TAG_PATTERN: &str = r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$";
pub const NEXT_TOKEN_PATTERN: &str = r"\p{ASCII}{0,1500}";
pub const DATASET_TYPE_PATTERN: &str = r"^[A-Za-z_]+$";

pub const MAX_NAME_CHARS: usize = 63;
pub const MAX_ARN_CHARS: usize = 256;
pub const MAX_KMS_KEY_ARN_CHARS: usize = 2048;
pub const MAX_S3_LOCATION_CHARS: usize = 256;
pub const MAX_TAGS: usize = 200;
pub const MAX_TAG_KEY_CHARS: usize = 128;
pub const MAX_TAG_VALUE_CHARS: usize = 256;
pub const MAX_NEXT_TOKEN_CHARS: usize = 1500;
pub const MAX_RESULTS: i64 = 100;
/// Tag keys and values AWS keeps for itself ("Your tag keys and tag values can't start with `aws:`"); compared
/// without regard to case, as AWS's tagging rules do.
pub const RESERVED_TAG_PREFIX: &str = "aws:";

/// One entry of a `tags` list; both members are required by the model, so both are optional here and reported.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    pub tag_key: Option<String>,
    pub tag_value: Option<String>,
}

/// Where a dataset export job writes (`S3DataConfig.path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathScheme {
    S3,
    Http,
    Https,
    /// `file:///absolute/dir/`: interlog's own extension, a directory on the server's machine.
    File,
}

/// `ingestionMode` of CreateDatasetExportJob.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IngestionMode {
    Bulk,
    /// The documented default: data recorded through PutEvents and the other Put* operations.
    #[default]
    Put,
    All,
}

impl IngestionMode {
    pub fn api_name(self) -> &'static str {
        match self {
            IngestionMode::Bulk => "BULK",
            IngestionMode::Put => "PUT",
            IngestionMode::All => "ALL",
        }
    }
}

/// `importMode` of CreateDatasetImportJob.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ImportMode {
    /// The documented default: the import replaces the dataset's bulk data.
    #[default]
    Full,
    /// The import adds to the dataset's data.
    Incremental,
}

impl ImportMode {
    pub fn api_name(self) -> &'static str {
        match self {
            ImportMode::Full => "FULL",
            ImportMode::Incremental => "INCREMENTAL",
        }
    }
}

/// `importMode`: `FULL` or `INCREMENTAL`.
pub fn import_mode(path: &str, value: &str) -> Result<ImportMode, Vec<Violation>> {
    match value {
        "FULL" => Ok(ImportMode::Full),
        "INCREMENTAL" => Ok(ImportMode::Incremental),
        _ => Err(vec![enum_violation(path, value, "[FULL, INCREMENTAL]")]),
    }
}

/// Resource `name` / `jobName`: 1..63 characters, a letter or digit then letters, digits, `-` and `_`.
pub fn resource_name(path: &str, value: &str) -> Vec<Violation> {
    let mut out = length(path, Some(value), value, 1, MAX_NAME_CHARS);
    let mut chars = value.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        out.push(pattern(path, Some(value), NAME_PATTERN));
    }
    out
}

/// A Personalize ARN (`schemaArn`, `datasetGroupArn`, `datasetArn`...): ≤ 256 characters, `arn:<partition>:personalize:...`.
pub fn arn(path: &str, value: &str) -> Vec<Violation> {
    let mut out = length(path, Some(value), value, 0, MAX_ARN_CHARS);
    if !is_personalize_arn(value) {
        out.push(pattern(path, Some(value), ARN_PATTERN));
    }
    out
}

/// `roleArn`: ≤ 256 characters, an IAM role ARN. Only its syntax matters to interlog.
pub fn role_arn(path: &str, value: &str) -> Vec<Violation> {
    let mut out = length(path, Some(value), value, 0, MAX_ARN_CHARS);
    if !is_role_arn(value) {
        out.push(pattern(path, Some(value), ROLE_ARN_PATTERN));
    }
    out
}

/// `kmsKeyArn`: ≤ 2048 characters, a KMS key ARN. Only its syntax matters to interlog.
pub fn kms_key_arn(path: &str, value: &str) -> Vec<Violation> {
    let mut out = length(path, Some(value), value, 0, MAX_KMS_KEY_ARN_CHARS);
    if !is_kms_key_arn(value) {
        out.push(pattern(path, Some(value), KMS_KEY_ARN_PATTERN));
    }
    out
}

/// `S3DataConfig.path`: ≤ 256 characters, `(s3|http|https)://.+` as in the model, or interlog's
/// `file:///absolute/dir/`; returns the scheme so the caller can decide which destinations it serves.
pub fn data_path(path: &str, value: &str) -> Result<PathScheme, Vec<Violation>> {
    let mut out = length(path, Some(value), value, 0, MAX_S3_LOCATION_CHARS);
    let scheme = if value.chars().any(is_line_terminator) {
        None
    } else if let Some(dir) = value.strip_prefix("file://") {
        // Only absolute local paths: `file://host/...` names another machine, and a relative path would depend on
        // the server's working directory.
        (dir.starts_with('/')).then_some(PathScheme::File)
    } else {
        [("s3://", PathScheme::S3), ("http://", PathScheme::Http), ("https://", PathScheme::Https)]
            .into_iter()
            .find_map(|(prefix, scheme)| value.strip_prefix(prefix).filter(|rest| !rest.is_empty()).map(|_| scheme))
    };
    if scheme.is_none() {
        out.push(pattern(
            path,
            Some(value),
            &format!("{S3_LOCATION_PATTERN} (interlog also accepts file:///absolute/dir/)"),
        ));
    }
    match scheme {
        Some(s) if out.is_empty() => Ok(s),
        _ => Err(out),
    }
}

/// `tags`: 0..200 entries; each `tagKey` 1..128 and `tagValue` 0..256 characters of letters, separators, numbers
/// and `_.:/=+-@`, neither beginning with `aws:` ([`reserved_tag`]). Tags are sensitive in the model, so values are
/// not echoed.
pub fn tags(path: &str, list: &[Tag]) -> Vec<Violation> {
    let mut out = Vec::new();
    if list.len() > MAX_TAGS {
        out.push(Violation::new(path, None, format!("Member must have length less than or equal to {MAX_TAGS}")));
    }
    for (i, tag) in list.iter().enumerate() {
        let member = |name: &str| format!("{path}.{}.member.{name}", i + 1);
        for (name, value, min, max) in
            [("tagKey", &tag.tag_key, 1, MAX_TAG_KEY_CHARS), ("tagValue", &tag.tag_value, 0, MAX_TAG_VALUE_CHARS)]
        {
            let p = member(name);
            match value {
                None => out.push(Violation::missing(p)),
                Some(v) => {
                    out.extend(length(&p, None, v, min, max));
                    if !v.chars().all(is_tag_char) {
                        out.push(pattern(&p, None, TAG_PATTERN));
                    }
                    out.extend(reserved_tag(&p, v));
                }
            }
        }
    }
    out
}

/// A tag key or value beginning with `aws:` (any case): AWS applies such tags itself and no caller may set or
/// remove them, so TagResource, every Create* with `tags` and UntagResource refuse them.
pub fn reserved_tag(path: &str, value: &str) -> Option<Violation> {
    let reserved = value.get(..RESERVED_TAG_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_TAG_PREFIX));
    reserved.then(|| {
        Violation::new(
            path,
            None,
            format!("Member must not begin with '{RESERVED_TAG_PREFIX}', a prefix reserved for AWS use"),
        )
    })
}

/// `maxResults`: 1..100.
pub fn max_results(path: &str, value: i64) -> Vec<Violation> {
    let shown = value.to_string();
    if value < 1 {
        vec![Violation::new(path, Some(&shown), "Member must have value greater than or equal to 1")]
    } else if value > MAX_RESULTS {
        vec![Violation::new(path, Some(&shown), format!("Member must have value less than or equal to {MAX_RESULTS}"))]
    } else {
        Vec::new()
    }
}

/// `nextToken`: at most 1500 ASCII characters. Whether it names a page is the store's question
/// (`InvalidNextTokenException`), not this one.
pub fn next_token(path: &str, value: &str) -> Vec<Violation> {
    let mut out = length(path, Some(value), value, 0, MAX_NEXT_TOKEN_CHARS);
    if !value.is_ascii() {
        out.push(pattern(path, Some(value), NEXT_TOKEN_PATTERN));
    }
    out
}

/// `datasetType`: ≤ 256 characters of `[A-Za-z_]`, and one of the five types, case-insensitive.
pub fn dataset_type(path: &str, value: &str) -> Result<DatasetType, Vec<Violation>> {
    let mut out = length(path, Some(value), value, 0, 256);
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphabetic() || c == '_') {
        out.push(pattern(path, Some(value), DATASET_TYPE_PATTERN));
    }
    match DatasetType::from_api(value) {
        Some(t) if out.is_empty() => Ok(t),
        Some(_) => Err(out),
        None => {
            if out.is_empty() {
                out.push(Violation::new(
                    path,
                    Some(value),
                    "Member must be one of Interactions, Items, Users, Actions, Action_Interactions (case-insensitive)",
                ));
            }
            Err(out)
        }
    }
}

/// `domain`: `ECOMMERCE` or `VIDEO_ON_DEMAND`, case-sensitive like every model enum.
pub fn domain(path: &str, value: &str) -> Result<Domain, Vec<Violation>> {
    Domain::from_api(value).ok_or_else(|| vec![enum_violation(path, value, "[ECOMMERCE, VIDEO_ON_DEMAND]")])
}

/// `ingestionMode`: `BULK`, `PUT` or `ALL`.
pub fn ingestion_mode(path: &str, value: &str) -> Result<IngestionMode, Vec<Violation>> {
    match value {
        "BULK" => Ok(IngestionMode::Bulk),
        "PUT" => Ok(IngestionMode::Put),
        "ALL" => Ok(IngestionMode::All),
        _ => Err(vec![enum_violation(path, value, "[BULK, PUT, ALL]")]),
    }
}

fn enum_violation(path: &str, value: &str, set: &str) -> Violation {
    Violation::new(path, Some(value), format!("Member must satisfy enum value set: {set}"))
}

/// Length in characters (code points), as Coral counts them; `shown` is `None` for sensitive members.
fn length(path: &str, shown: Option<&str>, value: &str, min: usize, max: usize) -> Vec<Violation> {
    let n = value.chars().count();
    if n < min {
        vec![Violation::new(path, shown, format!("Member must have length greater than or equal to {min}"))]
    } else if n > max {
        vec![Violation::new(path, shown, format!("Member must have length less than or equal to {max}"))]
    } else {
        Vec::new()
    }
}

fn pattern(path: &str, shown: Option<&str>, pattern: &str) -> Violation {
    Violation::new(path, shown, format!("Member must satisfy regular expression pattern: {pattern}"))
}

/// Characters Java's `.` does not match: the model's patterns are Java regular expressions.
fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// `[a-z\d-]+` followed by `:`: the partition; returns what follows its colon.
fn after_partition(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    let ok =
        !partition.is_empty() && partition.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ok.then_some(rest)
}

/// `arn:([a-z\d-]+):personalize:.*:.*:.+`
fn is_personalize_arn(s: &str) -> bool {
    if s.chars().any(is_line_terminator) {
        return false;
    }
    let Some(rest) = after_partition(s).and_then(|r| r.strip_prefix("personalize:")) else {
        return false;
    };
    // `.*:.*:.+`: two more colons, and at least one character after the second of them (any later colon works as
    // the second, since `.*` may contain colons).
    let colons: Vec<usize> = rest.match_indices(':').map(|(i, _)| i).collect();
    colons.len() >= 2 && colons[1..].iter().any(|&j| j + 1 < rest.len())
}

/// `arn:([a-z\d-]+):iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+`; the class holds `/`, so the optional slash needs no
/// case of its own.
fn is_role_arn(s: &str) -> bool {
    let Some(rest) = after_partition(s).and_then(|r| r.strip_prefix("iam::")) else {
        return false;
    };
    let digits = rest.bytes().take(12).filter(u8::is_ascii_digit).count();
    if digits != 12 {
        return false;
    }
    let Some(role) = rest[12..].strip_prefix(":role") else {
        return false;
    };
    !role.is_empty() && role.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-/".contains(c))
}

/// `arn:aws.*:kms:.*:[0-9]{12}:key/.*`
fn is_kms_key_arn(s: &str) -> bool {
    if !s.starts_with("arn:aws") || s.chars().any(is_line_terminator) {
        return false;
    }
    // The earliest `:kms:` leaves the most room for the rest, so it is the only one worth trying.
    let Some(kms) = s[7..].find(":kms:").map(|i| i + 7) else {
        return false;
    };
    let bytes = s.as_bytes();
    (kms + 5..bytes.len()).any(|b| {
        bytes[b] == b':'
            && bytes.len() >= b + 18
            && bytes[b + 1..b + 13].iter().all(u8::is_ascii_digit)
            && &bytes[b + 13..b + 18] == b":key/"
    })
}

/// `[\p{L}\p{Z}\p{N}_.:/=+\-@]`. `is_alphabetic` is Unicode's Alphabetic property, slightly wider than `\p{L}`
/// (it also holds some combining vowel signs); accepting those in a tag is harmless. `\p{Z}` is the white space
/// that is not a control character; `is_numeric` is exactly `\p{N}`.
fn is_tag_char(c: char) -> bool {
    c.is_alphabetic() || c.is_numeric() || (c.is_whitespace() && !c.is_control()) || "_.:/=+-@".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Check = fn(&str, &str) -> Vec<Violation>;
    /// A violation's (path, rule).
    type PathRule = (&'static str, &'static str);

    /// The rules of a list of violations, for compact expectations.
    fn rules(list: &[Violation]) -> Vec<&str> {
        list.iter().map(|v| v.rule.as_str()).collect()
    }

    const LEN_MIN_1: &str = "Member must have length greater than or equal to 1";
    const NAME_RULE: &str = r"Member must satisfy regular expression pattern: ^[a-zA-Z0-9][a-zA-Z0-9\-_]*";

    #[test]
    fn resource_names() {
        let long = "a".repeat(64);
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("my-dataset_group1", vec![]),
            ("A", vec![]),
            ("0abc", vec![]),
            (&long[..63], vec![]),
            (&long, vec!["Member must have length less than or equal to 63"]),
            ("", vec![LEN_MIN_1, NAME_RULE]),
            ("-abc", vec![NAME_RULE]),
            ("_abc", vec![NAME_RULE]),
            ("my group", vec![NAME_RULE]),
            ("my.group", vec![NAME_RULE]),
            ("gruppé", vec![NAME_RULE]),
            ("abc\n", vec![NAME_RULE]),
        ];
        for (value, want) in cases {
            let got = resource_name("name", value);
            assert_eq!(rules(&got), want, "{value:?}");
            assert!(got.iter().all(|v| v.path == "name" && v.value.as_deref() == Some(value)));
        }
    }

    #[test]
    fn personalize_arns() {
        let pattern = "Member must satisfy regular expression pattern: arn:([a-z\\d-]+):personalize:.*:.*:.+";
        let long = format!("arn:aws:personalize:us-east-1:123456789012:schema/{}", "s".repeat(256));
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("arn:aws:personalize:us-east-1:123456789012:schema/s", vec![]),
            ("arn:aws-cn:personalize:cn-north-1:123456789012:dataset/g/INTERACTIONS", vec![]),
            ("arn:aws:personalize:::x", vec![]),
            ("arn:aws:personalize:a:b:c:", vec![]),
            ("arn:aws:personalize:a:b:", vec![pattern]),
            ("arn:aws:personalize:a:b", vec![pattern]),
            ("arn:AWS:personalize:a:b:c", vec![pattern]),
            ("arn::personalize:a:b:c", vec![pattern]),
            ("arn:aws:iam:a:b:c", vec![pattern]),
            ("arn:aws:personalize:a:b:c\n", vec![pattern]),
            ("schema/s", vec![pattern]),
            (&long, vec!["Member must have length less than or equal to 256"]),
        ];
        for (value, want) in cases {
            assert_eq!(rules(&arn("schemaArn", value)), want, "{value:?}");
        }
    }

    #[test]
    fn role_and_kms_key_arns() {
        let role = "Member must satisfy regular expression pattern: \
                    arn:([a-z\\d-]+):iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+";
        let kms = "Member must satisfy regular expression pattern: arn:aws.*:kms:.*:[0-9]{12}:key/.*";
        let cases: Vec<(Check, &str, Vec<&str>)> = vec![
            (role_arn, "arn:aws:iam::123456789012:role/PersonalizeRole", vec![]),
            (role_arn, "arn:aws:iam::123456789012:role/service-role/a+b=c,d.e@f_g-h", vec![]),
            (role_arn, "arn:aws:iam::123456789012:role/", vec![]),
            (role_arn, "arn:aws:iam::123456789012:role", vec![role]),
            (role_arn, "arn:aws:iam::12345678901:role/x", vec![role]),
            (role_arn, "arn:aws:iam::1234567890123:role/x", vec![role]),
            (role_arn, "arn:aws:iam:us-east-1:123456789012:role/x", vec![role]),
            (role_arn, "arn:aws:iam::123456789012:user/x", vec![role]),
            (role_arn, "arn:aws:iam::123456789012:role/a b", vec![role]),
            (kms_key_arn, "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab", vec![]),
            (kms_key_arn, "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/", vec![]),
            (kms_key_arn, "arn:aws:kms::123456789012:key/x", vec![]),
            (kms_key_arn, "arn:aws:kms:a:b:123456789012:key/x", vec![]),
            (kms_key_arn, "arn:aws:kms:123456789012:key/x", vec![kms]),
            (kms_key_arn, "arn:aws:kms:us-east-1:12345678901:key/x", vec![kms]),
            (kms_key_arn, "arn:aws:kms:us-east-1:123456789012:alias/x", vec![kms]),
            (kms_key_arn, "arn:aws-cn:s3:::b:123456789012:key/x", vec![kms]),
            (kms_key_arn, "arn:gcp:kms:us-east-1:123456789012:key/x", vec![kms]),
        ];
        for (check, value, want) in cases {
            assert_eq!(rules(&check("roleArn", value)), want, "{value:?}");
        }
        let long_kms = format!("arn:aws:kms:us-east-1:123456789012:key/{}", "k".repeat(2048));
        assert_eq!(rules(&kms_key_arn("kmsKeyArn", &long_kms)), ["Member must have length less than or equal to 2048"]);
    }

    #[test]
    fn data_paths_return_their_scheme() {
        let bad = "Member must satisfy regular expression pattern: (s3|http|https)://.+ \
                   (interlog also accepts file:///absolute/dir/)";
        let long = format!("s3://{}", "b".repeat(252));
        let cases: Vec<(&str, Result<PathScheme, Vec<&str>>)> = vec![
            ("s3://bucket/prefix/", Ok(PathScheme::S3)),
            ("http://minio:9000/bucket", Ok(PathScheme::Http)),
            ("https://example.com/x", Ok(PathScheme::Https)),
            ("file:///var/lib/interlog/exports/", Ok(PathScheme::File)),
            ("file:///", Ok(PathScheme::File)),
            ("file://host/dir", Err(vec![bad])),
            ("file://relative/dir", Err(vec![bad])),
            ("s3://", Err(vec![bad])),
            ("S3://bucket", Err(vec![bad])),
            ("ftp://bucket", Err(vec![bad])),
            ("/var/lib/x", Err(vec![bad])),
            ("s3://bucket/\n", Err(vec![bad])),
            (&long[..256], Ok(PathScheme::S3)),
            (&long, Err(vec!["Member must have length less than or equal to 256"])),
        ];
        for (value, want) in cases {
            let got = data_path("jobOutput.s3DataDestination.path", value);
            assert_eq!(got.as_ref().map_err(|v| rules(v)), want.as_ref().map_err(|v| v.clone()), "{value:?}");
        }
    }

    #[test]
    fn tags_are_checked_entry_by_entry_without_echoing() {
        let tag = |k: Option<&str>, v: Option<&str>| Tag { tag_key: k.map(Into::into), tag_value: v.map(Into::into) };
        let pattern = r"Member must satisfy regular expression pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$";
        const RESERVED: &str = "Member must not begin with 'aws:', a prefix reserved for AWS use";
        let cases: Vec<(Vec<Tag>, Vec<PathRule>)> = vec![
            (vec![], vec![]),
            (vec![tag(Some("team"), Some("recs"))], vec![]),
            (vec![tag(Some("Équipe 2"), Some(""))], vec![]),
            (vec![tag(Some("a_b.c:d/e=f+g-h@i"), Some("日本語\u{3000}١٢٣"))], vec![]),
            (vec![tag(Some("k"), Some("no\u{a0}break\u{2028}sep"))], vec![]),
            (vec![tag(Some(""), Some("v"))], vec![("tags.1.member.tagKey", LEN_MIN_1)]),
            (vec![tag(None, Some("v"))], vec![("tags.1.member.tagKey", "Member must not be null")]),
            (vec![tag(Some("k"), None)], vec![("tags.1.member.tagValue", "Member must not be null")]),
            (vec![tag(Some("k"), Some("v")), tag(Some("a*b"), Some("v"))], vec![("tags.2.member.tagKey", pattern)]),
            (vec![tag(Some("k"), Some("tab\there"))], vec![("tags.1.member.tagValue", pattern)]),
            (vec![tag(Some("k"), Some("semi;colon"))], vec![("tags.1.member.tagValue", pattern)]),
            (
                vec![tag(Some(&"k".repeat(129)), Some(&"v".repeat(257)))],
                vec![
                    ("tags.1.member.tagKey", "Member must have length less than or equal to 128"),
                    ("tags.1.member.tagValue", "Member must have length less than or equal to 256"),
                ],
            ),
            (vec![tag(Some("k"), Some("v")); 201], vec![("tags", "Member must have length less than or equal to 200")]),
            (vec![tag(Some("aws:cloudformation:stack-name"), Some("v"))], vec![("tags.1.member.tagKey", RESERVED)]),
            (
                vec![tag(Some("AWS:x"), Some("v")), tag(Some("k"), Some("Aws:y"))],
                vec![("tags.1.member.tagKey", RESERVED), ("tags.2.member.tagValue", RESERVED)],
            ),
            (vec![tag(Some("aws"), Some("aws-cli")), tag(Some("my:aws:key"), Some(" aws:v"))], vec![]),
        ];
        for (list, want) in cases {
            let got = tags("tags", &list);
            let pairs: Vec<(&str, &str)> = got.iter().map(|v| (v.path.as_str(), v.rule.as_str())).collect();
            assert_eq!(pairs, want, "{list:?}");
            assert!(got.iter().all(|v| v.value.is_none()), "tags are sensitive");
        }
        assert_eq!(tags("tags", &vec![tag(Some("k"), Some("v")); 200]), vec![]);
        let parsed: Vec<Tag> = serde_json::from_str(r#"[{"tagKey":"k","tagValue":"v"}]"#).unwrap();
        assert_eq!(parsed, [tag(Some("k"), Some("v"))]);
    }

    #[test]
    fn paging_members() {
        let cases: Vec<(i64, Vec<&str>)> = vec![
            (1, vec![]),
            (100, vec![]),
            (0, vec!["Member must have value greater than or equal to 1"]),
            (-5, vec!["Member must have value greater than or equal to 1"]),
            (101, vec!["Member must have value less than or equal to 100"]),
        ];
        for (value, want) in cases {
            assert_eq!(rules(&max_results("maxResults", value)), want, "{value}");
        }
        let ascii = "Member must satisfy regular expression pattern: \\p{ASCII}{0,1500}";
        let long = "t".repeat(1501);
        let cases: Vec<(&str, Vec<&str>)> = vec![
            ("", vec![]),
            ("eyJwYWdlIjoyfQ==", vec![]),
            (&long[..1500], vec![]),
            (&long, vec!["Member must have length less than or equal to 1500"]),
            ("tökén", vec![ascii]),
        ];
        for (value, want) in cases {
            assert_eq!(rules(&next_token("nextToken", value)), want, "{value:?}");
        }
    }

    #[test]
    fn enums() {
        let types: Vec<(&str, Result<DatasetType, Vec<&str>>)> = vec![
            ("interactions", Ok(DatasetType::Interactions)),
            ("Action_Interactions", Ok(DatasetType::ActionInteractions)),
            ("USERS", Ok(DatasetType::Users)),
            (
                "Movies",
                Err(vec![
                    "Member must be one of Interactions, Items, Users, Actions, Action_Interactions (case-insensitive)",
                ]),
            ),
            ("Items2", Err(vec!["Member must satisfy regular expression pattern: ^[A-Za-z_]+$"])),
            ("", Err(vec!["Member must satisfy regular expression pattern: ^[A-Za-z_]+$"])),
        ];
        for (value, want) in types {
            let got = dataset_type("datasetType", value);
            assert_eq!(got.as_ref().map_err(|v| rules(v)), want.as_ref().map_err(|v| v.clone()), "{value:?}");
        }
        assert_eq!(domain("domain", "ECOMMERCE"), Ok(Domain::Ecommerce));
        assert_eq!(domain("domain", "VIDEO_ON_DEMAND"), Ok(Domain::VideoOnDemand));
        let e = domain("domain", "ecommerce").unwrap_err();
        assert_eq!(
            e[0].to_string(),
            "Value 'ecommerce' at 'domain' failed to satisfy constraint: Member must satisfy enum value set: \
             [ECOMMERCE, VIDEO_ON_DEMAND]"
        );
        for (value, want) in [("BULK", IngestionMode::Bulk), ("PUT", IngestionMode::Put), ("ALL", IngestionMode::All)] {
            assert_eq!(ingestion_mode("ingestionMode", value), Ok(want));
            assert_eq!(want.api_name(), value);
        }
        assert_eq!(
            rules(&ingestion_mode("ingestionMode", "put").unwrap_err()),
            ["Member must satisfy enum value set: [BULK, PUT, ALL]"]
        );
        assert_eq!(IngestionMode::default(), IngestionMode::Put);
    }
}
