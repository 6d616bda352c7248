//! Configuration as aws-cli v1 (botocore) resolves it: the injected
//! environment first, then `~/.aws/config` and `~/.aws/credentials`.
//!
//! Every lookup goes through [`Env`], never `std::env`, so tests can run many
//! invocations side by side with different settings. The files are read with a
//! small `configparser`-compatible reader because botocore's rules differ from
//! the Rust SDK's in ways users notice (`AWS_REGION` is ignored, an explicit
//! `--profile` disables environment credentials, inline `#` is not a comment).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The process environment as handed to the library. `Debug` shows the names only: values
/// include `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Wraps a variable map.
    pub fn new(vars: HashMap<String, String>) -> Self {
        Self { vars }
    }

    /// A variable, treating the empty string as unset like botocore does.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Whether a variable is set at all, even to the empty string (`'X' in os.environ`).
    pub fn has(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    /// `os.path.expanduser` with the injected `HOME`.
    pub fn expand_user(&self, path: &str) -> PathBuf {
        if path == "~" {
            return PathBuf::from(self.get("HOME").unwrap_or("~"));
        }
        match (path.strip_prefix("~/"), self.get("HOME")) {
            (Some(rest), Some(home)) => Path::new(home).join(rest),
            _ => PathBuf::from(path),
        }
    }

    /// `os.path.expandvars`: `$NAME` and `${NAME}`; unknown names stay as typed.
    pub fn expand_vars(&self, text: &str) -> String {
        let chars: Vec<char> = text.chars().collect();
        let mut out = String::with_capacity(text.len());
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '$' {
                let (name, end) = if chars.get(i + 1) == Some(&'{') {
                    match chars[i + 2..].iter().position(|&c| c == '}') {
                        Some(off) => (chars[i + 2..i + 2 + off].iter().collect::<String>(), i + 3 + off),
                        None => (String::new(), i + 1),
                    }
                } else {
                    let len = chars[i + 1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_').count();
                    (chars[i + 1..i + 1 + len].iter().collect(), i + 1 + len)
                };
                if let Some(value) = (!name.is_empty()).then(|| self.vars.get(&name)).flatten() {
                    out.push_str(value);
                    i = end;
                    continue;
                }
            }
            out.push(chars[i]);
            i += 1;
        }
        out
    }
}

/// A parsed INI file: section name to its keys (lower-cased, as configparser does).
pub type Sections = Vec<(String, Vec<(String, String)>)>;

/// Parses a file the way Python's `configparser` does for botocore: `=` or
/// `:` separators, `#`/`;` full-line comments, indented continuation lines.
pub fn parse_ini(text: &str) -> Sections {
    let mut sections: Sections = Vec::new();
    let mut last_key: Option<(usize, usize)> = None;
    for raw in text.lines() {
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let indented = line.len() != trimmed.len();
        if indented {
            if let Some((s, k)) = last_key {
                let value = &mut sections[s].1[k].1;
                value.push('\n');
                value.push_str(trimmed);
                continue;
            }
        }
        if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            sections.push((name.to_owned(), Vec::new()));
            last_key = None;
            continue;
        }
        let Some(section) = sections.len().checked_sub(1) else { continue };
        let split = trimmed.find(['=', ':']);
        let Some(at) = split else { continue };
        let key = trimmed[..at].trim().to_lowercase();
        let value = trimmed[at + 1..].trim().to_owned();
        let entries = &mut sections[section].1;
        if let Some(pos) = entries.iter().position(|(k, _)| *k == key) {
            entries[pos].1 = value;
            last_key = Some((section, pos));
        } else {
            entries.push((key, value));
            last_key = Some((section, entries.len() - 1));
        }
    }
    sections
}

/// The settings of one profile, merged from both files. `Debug` hides the values of secrets.
#[derive(Default, Clone)]
pub struct Profile {
    values: Vec<(String, String)>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Env").field("names", &names).finish()
    }
}

/// Profile keys whose values are secret.
const SECRET_KEYS: [&str; 2] = ["aws_secret_access_key", "aws_session_token"];

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (k, v) in &self.values {
            let shown = if SECRET_KEYS.contains(&k.as_str()) { "<redacted>" } else { v.as_str() };
            map.entry(k, &shown);
        }
        map.finish()
    }
}

impl Profile {
    /// A key of the profile.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.raw(key).filter(|v| !v.is_empty())
    }

    /// A key of the profile, the empty string included (`cli_pager =` means "no pager").
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.values.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// What the profile files say, already narrowed to the chosen profile.
#[derive(Debug, Default, Clone)]
pub struct Files {
    /// The chosen profile's name.
    pub profile_name: String,
    /// Whether `--profile` chose it (which disables environment credentials).
    pub explicit_profile: bool,
    /// Keys from the config file.
    pub config: Profile,
    /// Keys from the credentials file.
    pub credentials: Profile,
}

/// `The config profile (x) could not be found`.
#[derive(Debug)]
pub struct ProfileNotFound(pub String);

/// Loads the profile named by `--profile`, `AWS_DEFAULT_PROFILE`,
/// `AWS_PROFILE` or `default`, in that order.
pub fn load_files(env: &Env, cli_profile: Option<&str>) -> Result<Files, ProfileNotFound> {
    let explicit_profile = cli_profile.is_some();
    let profile_name = cli_profile
        .or_else(|| env.get("AWS_DEFAULT_PROFILE"))
        .or_else(|| env.get("AWS_PROFILE"))
        .unwrap_or("default")
        .to_owned();
    let config_path = env.expand_user(env.get("AWS_CONFIG_FILE").unwrap_or("~/.aws/config"));
    let creds_path = env.expand_user(env.get("AWS_SHARED_CREDENTIALS_FILE").unwrap_or("~/.aws/credentials"));
    let config_sections = std::fs::read_to_string(config_path).map(|t| parse_ini(&t)).unwrap_or_default();
    let creds_sections = std::fs::read_to_string(creds_path).map(|t| parse_ini(&t)).unwrap_or_default();
    let mut found = false;
    let mut config = Profile::default();
    for (name, values) in &config_sections {
        let profile = match name.strip_prefix("profile") {
            Some(rest) if rest.starts_with([' ', '\t']) => rest.trim(),
            _ if name == "default" => "default",
            _ => continue,
        };
        if profile == profile_name {
            found = true;
            config.values.extend(values.iter().cloned());
        }
    }
    let mut credentials = Profile::default();
    for (name, values) in &creds_sections {
        if name.trim() == profile_name {
            found = true;
            credentials.values.extend(values.iter().cloned());
        }
    }
    if !found && profile_name != "default" {
        return Err(ProfileNotFound(profile_name));
    }
    Ok(Files { profile_name, explicit_profile, config, credentials })
}

/// Access key, secret and optional session token. `Debug` leaves the secret and token out.
#[derive(Clone)]
pub struct Credentials {
    /// `aws_access_key_id`.
    pub access_key_id: String,
    /// `aws_secret_access_key`.
    pub secret_access_key: String,
    /// `aws_session_token`.
    pub session_token: Option<String>,
    /// Where they came from, for `--debug`.
    pub method: &'static str,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// Why no credentials could be used.
#[derive(Debug)]
pub enum CredentialsError {
    /// Nothing found: `Unable to locate credentials`.
    None,
    /// One half of a key pair: botocore's `PartialCredentialsError` text.
    Partial(String),
}

/// botocore's default chain, minus the network providers (which the
/// recorded environment disables): environment, shared credentials file,
/// config file.
pub fn resolve_credentials(env: &Env, files: &Files) -> Result<Credentials, CredentialsError> {
    if !files.explicit_profile {
        let key = env.get("AWS_ACCESS_KEY_ID");
        let secret = env.get("AWS_SECRET_ACCESS_KEY");
        match (key, secret) {
            (Some(k), Some(s)) => {
                return Ok(Credentials {
                    access_key_id: k.to_owned(),
                    secret_access_key: s.to_owned(),
                    session_token: env
                        .get("AWS_SESSION_TOKEN")
                        .or_else(|| env.get("AWS_SECURITY_TOKEN"))
                        .map(str::to_owned),
                    method: "env",
                });
            }
            (Some(_), None) => {
                return Err(CredentialsError::Partial(
                    "Partial credentials found in env, missing: AWS_SECRET_ACCESS_KEY".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(CredentialsError::Partial(
                    "Partial credentials found in env, missing: AWS_ACCESS_KEY_ID".into(),
                ))
            }
            (None, None) => {}
        }
    }
    for (profile, method, source) in [
        (&files.credentials, "shared-credentials-file", "shared-credentials-file"),
        (&files.config, "config-file", "config-file"),
    ] {
        let key = profile.get("aws_access_key_id");
        let secret = profile.get("aws_secret_access_key");
        match (key, secret) {
            (Some(k), Some(s)) => {
                return Ok(Credentials {
                    access_key_id: k.to_owned(),
                    secret_access_key: s.to_owned(),
                    session_token: profile
                        .get("aws_session_token")
                        .or_else(|| profile.get("aws_security_token"))
                        .map(str::to_owned),
                    method,
                });
            }
            (Some(_), None) => {
                return Err(CredentialsError::Partial(format!(
                    "Partial credentials found in {source}, missing: aws_secret_access_key"
                )))
            }
            (None, Some(_)) => {
                return Err(CredentialsError::Partial(format!(
                    "Partial credentials found in {source}, missing: aws_access_key_id"
                )))
            }
            (None, None) => {}
        }
    }
    Err(CredentialsError::None)
}

/// A setting from the environment variable or the profile's config key.
pub fn setting(env: &Env, files: &Files, var: &str, key: &str) -> Option<String> {
    env.get(var).or_else(|| files.config.get(key)).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_like_configparser() {
        let sections =
            parse_ini("[default]\nregion = eu-west-1\n# c\n[profile dev]\nregion: us-west-2 # kept\ns3 =\n  max = 1\n");
        assert_eq!(sections[0], ("default".to_owned(), vec![("region".to_owned(), "eu-west-1".to_owned())]));
        assert_eq!(sections[1].1[0].1, "us-west-2 # kept");
        assert_eq!(sections[1].1[1].1, "\nmax = 1");
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let env = Env::new(HashMap::from([
            ("AWS_SECRET_ACCESS_KEY".into(), "env-secret".into()),
            ("AWS_SESSION_TOKEN".into(), "env-token".into()),
        ]));
        let profile = Profile {
            values: vec![
                ("aws_access_key_id".into(), "AKIDSHOWN".into()),
                ("aws_secret_access_key".into(), "file-secret".into()),
                ("aws_session_token".into(), "file-token".into()),
            ],
        };
        let creds = Credentials {
            access_key_id: "AKIDSHOWN".into(),
            secret_access_key: "creds-secret".into(),
            session_token: Some("creds-token".into()),
            method: "env",
        };
        let shown = format!("{env:?} {profile:?} {creds:?}");
        assert!(shown.contains("AKIDSHOWN") && shown.contains("AWS_SECRET_ACCESS_KEY"), "{shown}");
        for secret in ["env-secret", "env-token", "file-secret", "file-token", "creds-secret", "creds-token"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn expands_like_python() {
        let env = Env::new(HashMap::from([("HOME".into(), "/h".into()), ("X".into(), "y".into())]));
        assert_eq!(env.expand_user("~/a"), PathBuf::from("/h/a"));
        assert_eq!(env.expand_vars("$X/${X}/$NOPE"), "y/y/$NOPE");
    }
}
