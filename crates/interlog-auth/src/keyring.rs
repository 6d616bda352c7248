//! Access keys, the accounts they belong to, and the `--credentials-file` that adds keys
//! beyond the root key.
//!
//! A [`Credential`] is validated when built (parse, don't validate), so the verifier can trust
//! every key it finds in the [`Keyring`]. Secrets never appear in `Debug` output or in any
//! error message.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The account ID used for the root key when none is configured.
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

/// A rule a credential broke. Messages never contain the secret or session token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The access key ID is empty.
    #[error("access_key_id must not be empty")]
    EmptyAccessKeyId,
    /// The access key ID has characters that cannot appear in a SigV4 credential scope.
    #[error("access_key_id '{0}' must be 1 to 128 ASCII letters, digits, '_' or '-'")]
    InvalidAccessKeyId(String),
    /// The secret access key is empty.
    #[error("secret_access_key must not be empty")]
    EmptySecretAccessKey,
    /// The account ID is not exactly 12 ASCII digits.
    #[error("account_id '{0}' must be exactly 12 digits")]
    InvalidAccountId(String),
    /// A session token was given but is empty.
    #[error("session_token must not be empty when present")]
    EmptySessionToken,
}

/// One access key: its secret, the account it acts for, and an optional session token.
///
/// `Debug` redacts the secret and the session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    access_key_id: String,
    secret_access_key: String,
    account_id: String,
    session_token: Option<String>,
}

impl Credential {
    /// Builds a credential after checking every field.
    ///
    /// # Errors
    ///
    /// [`CredentialError`] naming the rule broken: access key ID 1–128 characters of
    /// `[A-Za-z0-9_-]`, non-empty secret, account ID exactly 12 digits.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        account_id: impl Into<String>,
    ) -> Result<Self, CredentialError> {
        let access_key_id = access_key_id.into();
        let secret_access_key = secret_access_key.into();
        let account_id = account_id.into();
        validate_access_key_id(&access_key_id)?;
        if secret_access_key.is_empty() {
            return Err(CredentialError::EmptySecretAccessKey);
        }
        validate_account_id(&account_id)?;
        Ok(Self { access_key_id, secret_access_key, account_id, session_token: None })
    }

    /// Binds a session token: requests must then carry it in `X-Amz-Security-Token`.
    ///
    /// # Errors
    ///
    /// [`CredentialError::EmptySessionToken`] if the token is empty.
    pub fn with_session_token(mut self, session_token: impl Into<String>) -> Result<Self, CredentialError> {
        let token = session_token.into();
        if token.is_empty() {
            return Err(CredentialError::EmptySessionToken);
        }
        self.session_token = Some(token);
        Ok(self)
    }

    /// The access key ID (not secret).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret access key. Only for printing the `aws configure` lines once at first start
    /// and for signing keys; never log it.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// The 12-digit account ID the key acts for.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The session token requests must carry, if the key has one.
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref()
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("account_id", &self.account_id)
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

fn validate_access_key_id(id: &str) -> Result<(), CredentialError> {
    if id.is_empty() {
        return Err(CredentialError::EmptyAccessKeyId);
    }
    // `/` would break the credential scope and `,`/`=`/space the Authorization header, so
    // keep to the characters real and test access key IDs use.
    let valid = id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(CredentialError::InvalidAccessKeyId(id.to_owned()));
    }
    Ok(())
}

/// Checks that an account ID is exactly 12 ASCII digits.
///
/// # Errors
///
/// [`CredentialError::InvalidAccountId`] otherwise.
pub fn validate_account_id(id: &str) -> Result<(), CredentialError> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(CredentialError::InvalidAccountId(id.to_owned()))
    }
}

/// Loading keys or the root credentials failed. Messages name the file, the entry and the
/// rule, and never contain a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A file could not be read, created or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read`, `create`, …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not valid TOML or does not have the expected shape.
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Where and what, without the offending text (it could be a secret).
        message: String,
    },
    /// An entry breaks a rule.
    #[error("{}: {entry}: {source}", path.display())]
    InvalidEntry {
        /// The file.
        path: PathBuf,
        /// Which entry, e.g. `[[key]] #2 (access_key_id = "AKIA…")`.
        entry: String,
        /// The rule broken.
        source: CredentialError,
    },
    /// An access key ID is defined twice.
    #[error("{entry}: access key id '{access_key_id}' is already defined by {previous}")]
    DuplicateAccessKeyId {
        /// Which entry, with its file.
        entry: String,
        /// The duplicated key.
        access_key_id: String,
        /// Where it was first defined.
        previous: String,
    },
    /// A credentials file has no keys, which is almost certainly a mistake.
    #[error("{}: defines no keys; add at least one [[key]] table", path.display())]
    NoKeys {
        /// The file.
        path: PathBuf,
    },
    /// Only one of `INTERLOG_ACCESS_KEY_ID` / `INTERLOG_SECRET_ACCESS_KEY` is set.
    #[error("{set} is set but {unset} is not; set both to choose the root key, or neither to use a generated one")]
    IncompleteRootKey {
        /// The variable that is set.
        set: &'static str,
        /// The variable that is missing.
        unset: &'static str,
    },
    /// The operating system's random number generator failed.
    #[error("cannot generate a root key: the OS random number generator failed: {0}")]
    Random(String),
    /// The root key or account ID given by the operator is invalid.
    #[error("invalid root credentials: {0}")]
    InvalidRoot(#[source] CredentialError),
}

/// Every key the server accepts, by access key ID. Build it at start-up and share it as
/// `Arc<Keyring>`; it is not changed afterwards.
#[derive(Debug, Default)]
pub struct Keyring {
    keys: HashMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    credential: Credential,
    /// Where the key came from, for duplicate-key messages.
    origin: String,
}

/// One `[[key]]` table of a credentials file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyTable {
    access_key_id: String,
    secret_access_key: String,
    account_id: String,
    #[serde(default)]
    session_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    #[serde(default)]
    key: Vec<KeyTable>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// A keyring holding only the root key.
    pub fn with_root(root: Credential) -> Self {
        let mut keyring = Self::new();
        keyring
            .keys
            .insert(root.access_key_id.clone(), Entry { credential: root, origin: "the root credentials".to_owned() });
        keyring
    }

    /// Adds one key; `origin` says where it came from in later duplicate-key messages.
    ///
    /// # Errors
    ///
    /// [`KeyError::DuplicateAccessKeyId`] if the access key ID is already present.
    pub fn insert(&mut self, credential: Credential, origin: impl Into<String>) -> Result<(), KeyError> {
        let origin = origin.into();
        if let Some(previous) = self.keys.get(credential.access_key_id()) {
            return Err(KeyError::DuplicateAccessKeyId {
                entry: origin,
                access_key_id: credential.access_key_id.clone(),
                previous: previous.origin.clone(),
            });
        }
        self.keys.insert(credential.access_key_id.clone(), Entry { credential, origin });
        Ok(())
    }

    /// Adds every key of a credentials file (format in the crate README):
    ///
    /// ```toml
    /// [[key]]
    /// access_key_id = "AKIAEXAMPLEALICE0001"
    /// secret_access_key = "…"
    /// account_id = "123456789012"
    /// session_token = "…"   # optional
    /// ```
    ///
    /// All-or-nothing: on error no key of the file is added. Returns how many were added.
    ///
    /// # Errors
    ///
    /// [`KeyError`] naming the file, the entry and the rule: unreadable file, invalid TOML or
    /// unknown field, account ID not 12 digits, empty key or secret, duplicate access key ID
    /// (within the file or with a key already present, e.g. the root key), no keys at all.
    pub fn load_credentials_file(&mut self, path: impl AsRef<Path>) -> Result<usize, KeyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            action: "read credentials file",
            path: path.to_owned(),
            source,
        })?;
        self.load_credentials_toml(&text, path)
    }

    /// Like [`Keyring::load_credentials_file`], from text already read; `path` only names
    /// the source in messages.
    ///
    /// # Errors
    ///
    /// As [`Keyring::load_credentials_file`].
    pub fn load_credentials_toml(&mut self, text: &str, path: &Path) -> Result<usize, KeyError> {
        let file: CredentialsFile = toml::from_str(text)
            .map_err(|err| KeyError::Syntax { path: path.to_owned(), message: describe_toml_error(text, &err) })?;
        if file.key.is_empty() {
            return Err(KeyError::NoKeys { path: path.to_owned() });
        }
        let mut staged: Vec<(Credential, String)> = Vec::with_capacity(file.key.len());
        for (index, table) in file.key.into_iter().enumerate() {
            let entry = format!("[[key]] #{} (access_key_id = \"{}\")", index + 1, table.access_key_id);
            let invalid = |source| KeyError::InvalidEntry { path: path.to_owned(), entry: entry.clone(), source };
            let mut credential =
                Credential::new(table.access_key_id, table.secret_access_key, table.account_id).map_err(invalid)?;
            if let Some(token) = table.session_token {
                credential = credential.with_session_token(token).map_err(invalid)?;
            }
            let previous = self.keys.get(credential.access_key_id()).map(|e| e.origin.clone()).or_else(|| {
                staged
                    .iter()
                    .find(|(c, _)| c.access_key_id == credential.access_key_id)
                    .map(|(_, origin)| origin.clone())
            });
            let origin = format!("{} {entry}", path.display());
            if let Some(previous) = previous {
                return Err(KeyError::DuplicateAccessKeyId {
                    entry: origin,
                    access_key_id: credential.access_key_id.clone(),
                    previous,
                });
            }
            staged.push((credential, origin));
        }
        let added = staged.len();
        for (credential, origin) in staged {
            self.keys.insert(credential.access_key_id.clone(), Entry { credential, origin });
        }
        Ok(added)
    }

    /// The key with this access key ID.
    pub fn get(&self, access_key_id: &str) -> Option<&Credential> {
        self.keys.get(access_key_id).map(|e| &e.credential)
    }

    /// The credential of `access_key_id` if `secret` is its secret (compared in constant time):
    /// the sign-in of the web debugger, which has no request to sign.
    pub fn check_secret(&self, access_key_id: &str, secret: &str) -> Option<&Credential> {
        use subtle::ConstantTimeEq;
        let credential = self.get(access_key_id)?;
        bool::from(credential.secret_access_key().as_bytes().ct_eq(secret.as_bytes())).then_some(credential)
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The access key IDs, in no particular order.
    pub fn access_key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

/// Turns a TOML error into `line N, column M: what`, leaving out the source excerpt the
/// error's `Display` would print, since the offending line may hold a secret.
pub(crate) fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let what = err.message().trim_end();
    match err.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {what}")
        }
        None => what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn load(text: &str) -> Result<Keyring, KeyError> {
        let mut keyring = Keyring::with_root(Credential::new("AKIAROOT", "rootsecret", DEFAULT_ACCOUNT_ID).unwrap());
        keyring.load_credentials_toml(text, Path::new("creds.toml"))?;
        Ok(keyring)
    }

    fn load_err(text: &str) -> String {
        let err = load(text).unwrap_err().to_string();
        assert!(!err.contains(SECRET), "secret leaked: {err}");
        assert!(err.starts_with("creds.toml"), "file not named: {err}");
        err
    }

    #[test]
    fn loads_keys_with_optional_session_token() {
        let keyring = load(&format!(
            r#"
            [[key]]
            access_key_id = "AKIDEXAMPLE"
            secret_access_key = "{SECRET}"
            account_id = "123456789012"

            [[key]]
            access_key_id = "ASIATEMP"
            secret_access_key = "other"
            account_id = "210987654321"
            session_token = "FwoGZXIvYXdzEXAMPLETOKEN"
            "#
        ))
        .unwrap();
        assert_eq!(keyring.len(), 3);
        let alice = keyring.get("AKIDEXAMPLE").unwrap();
        assert_eq!(alice.account_id(), "123456789012");
        assert_eq!(alice.secret_access_key(), SECRET);
        assert_eq!(alice.session_token(), None);
        let temp = keyring.get("ASIATEMP").unwrap();
        assert_eq!(temp.session_token(), Some("FwoGZXIvYXdzEXAMPLETOKEN"));
    }

    #[test]
    fn rejects_bad_account_ids() {
        for account in ["12345678901", "1234567890123", "12345678901a", ""] {
            let err = load_err(&format!(
                "[[key]]\naccess_key_id = \"AKID1\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"{account}\"\n"
            ));
            assert!(err.contains("[[key]] #1 (access_key_id = \"AKID1\")"), "{err}");
            assert!(err.contains("exactly 12 digits"), "{err}");
        }
    }

    #[test]
    fn rejects_empty_key_secret_or_token() {
        let err = load_err("[[key]]\naccess_key_id = \"\"\nsecret_access_key = \"s\"\naccount_id = \"123456789012\"\n");
        assert!(err.contains("access_key_id must not be empty"), "{err}");
        let err =
            load_err("[[key]]\naccess_key_id = \"AKID1\"\nsecret_access_key = \"\"\naccount_id = \"123456789012\"\n");
        assert!(err.contains("secret_access_key must not be empty"), "{err}");
        let err = load_err(
            "[[key]]\naccess_key_id = \"AKID1\"\nsecret_access_key = \"s\"\naccount_id = \"123456789012\"\nsession_token = \"\"\n",
        );
        assert!(err.contains("session_token must not be empty"), "{err}");
        let err =
            load_err("[[key]]\naccess_key_id = \"AK/ID\"\nsecret_access_key = \"s\"\naccount_id = \"123456789012\"\n");
        assert!(err.contains("ASCII letters"), "{err}");
    }

    #[test]
    fn rejects_duplicates_in_file_and_with_root() {
        let entry = |id: &str| {
            format!(
                "[[key]]\naccess_key_id = \"{id}\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"123456789012\"\n"
            )
        };
        let err = load_err(&format!("{}{}", entry("AKID1"), entry("AKID1")));
        assert!(err.contains("#2"), "{err}");
        assert!(err.contains("already defined by creds.toml [[key]] #1"), "{err}");
        let err = load_err(&entry("AKIAROOT"));
        assert!(err.contains("already defined by the root credentials"), "{err}");
    }

    #[test]
    fn failed_load_adds_nothing() {
        let mut keyring = Keyring::new();
        let text = format!(
            "[[key]]\naccess_key_id = \"AKID1\"\nsecret_access_key = \"{SECRET}\"\naccount_id = \"123456789012\"\n[[key]]\naccess_key_id = \"AKID2\"\nsecret_access_key = \"x\"\naccount_id = \"1\"\n"
        );
        assert!(keyring.load_credentials_toml(&text, Path::new("creds.toml")).is_err());
        assert!(keyring.is_empty());
    }

    #[test]
    fn rejects_syntax_errors_unknown_fields_and_empty_files() {
        let err = load_err(&format!("[[key]]\naccess_key_id = \"AKID1\"\nsecret_access_key = {SECRET}\n"));
        assert!(err.contains("line 3"), "{err}");
        let err = load_err(
            "[[key]]\naccess_key_id = \"AKID1\"\nsecret_access_key = \"s\"\naccount_id = \"123456789012\"\nacount = 1\n",
        );
        assert!(err.contains("acount"), "{err}");
        let err = load_err("[[key]]\naccess_key_id = \"AKID1\"\n");
        assert!(err.contains("secret_access_key"), "{err}");
        let err = load_err("# nothing here\n");
        assert!(err.contains("defines no keys"), "{err}");
    }

    #[test]
    fn missing_file_is_named() {
        let err = Keyring::new().load_credentials_file("/nonexistent/creds.toml").unwrap_err().to_string();
        assert!(err.contains("/nonexistent/creds.toml"), "{err}");
    }

    #[test]
    fn debug_redacts_secret_and_token() {
        let credential =
            Credential::new("AKID1", SECRET, "123456789012").unwrap().with_session_token("TOKENVALUE").unwrap();
        let debug = format!("{credential:?} {:?}", Keyring::with_root(credential.clone()));
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(!debug.contains("TOKENVALUE"), "{debug}");
        assert!(debug.contains("AKID1"), "{debug}");
    }
}
