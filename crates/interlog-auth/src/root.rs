//! The root key: taken from the operator's `INTERLOG_ACCESS_KEY_ID` /
//! `INTERLOG_SECRET_ACCESS_KEY`, or generated on first start and kept in
//! `<data_dir>/root-credentials` so later starts reuse it.
//!
//! The caller passes the variables' values in rather than this module reading the
//! environment, which keeps it testable. The file is TOML (see the crate README), created
//! with mode 0600 under a temporary name and then linked into place, so a reader never sees
//! a half-written file and two servers starting together agree on one key.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::keyring::{describe_toml_error, Credential, KeyError, DEFAULT_ACCOUNT_ID};

/// The file name of the generated root credentials inside the data directory.
pub const ROOT_CREDENTIALS_FILE: &str = "root-credentials";

const ENV_ACCESS_KEY_ID: &str = "INTERLOG_ACCESS_KEY_ID";
const ENV_SECRET_ACCESS_KEY: &str = "INTERLOG_SECRET_ACCESS_KEY";

/// What the server knows about the root key at start-up.
#[derive(Clone, Default)]
pub struct RootKeyConfig {
    /// The value of `INTERLOG_ACCESS_KEY_ID`; `None` or empty means unset.
    pub access_key_id: Option<String>,
    /// The value of `INTERLOG_SECRET_ACCESS_KEY`; `None` or empty means unset.
    pub secret_access_key: Option<String>,
    /// The root account ID; `None` means the one stored in the root-credentials file, or
    /// [`DEFAULT_ACCOUNT_ID`] (`000000000000`).
    pub account_id: Option<String>,
    /// The server's data directory (created if missing when a key must be generated).
    pub data_dir: PathBuf,
}

impl std::fmt::Debug for RootKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootKeyConfig")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("account_id", &self.account_id)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

/// Where the root key came from, so the server prints the `aws configure` lines only when
/// the operator has not seen the key yet ([`RootKeySource::Generated`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootKeySource {
    /// From `INTERLOG_ACCESS_KEY_ID` / `INTERLOG_SECRET_ACCESS_KEY`.
    Environment,
    /// Generated during this start and written to this file.
    Generated(PathBuf),
    /// Read from this file, written by an earlier start.
    LoadedFromDataDir(PathBuf),
    /// Generated during this start and kept in the shared store (this node made it first).
    GeneratedInStore,
    /// Read from the shared store, where a node stored it earlier.
    LoadedFromStore,
}

/// The resolved root key.
#[derive(Debug, Clone)]
pub struct RootKey {
    /// The key, bound to the root account.
    pub credential: Credential,
    /// Where it came from.
    pub source: RootKeySource,
}

#[derive(Deserialize)]
struct RootFile {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    account_id: Option<String>,
}

/// Resolves the root key: environment first, else the data directory's file, else a new key.
///
/// # Errors
///
/// [`KeyError::IncompleteRootKey`] if only one of the two variables is set,
/// [`KeyError::InvalidRoot`] for an invalid key or account ID, and I/O or syntax errors
/// naming the root-credentials file.
pub fn load_or_create_root_key(config: &RootKeyConfig) -> Result<RootKey, KeyError> {
    let set = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    let account_override = set(&config.account_id);
    match (set(&config.access_key_id), set(&config.secret_access_key)) {
        (Some(id), Some(secret)) => {
            let account = account_override.unwrap_or_else(|| DEFAULT_ACCOUNT_ID.to_owned());
            let credential = Credential::new(id, secret, account).map_err(KeyError::InvalidRoot)?;
            Ok(RootKey { credential, source: RootKeySource::Environment })
        }
        (Some(_), None) => Err(KeyError::IncompleteRootKey { set: ENV_ACCESS_KEY_ID, unset: ENV_SECRET_ACCESS_KEY }),
        (None, Some(_)) => Err(KeyError::IncompleteRootKey { set: ENV_SECRET_ACCESS_KEY, unset: ENV_ACCESS_KEY_ID }),
        (None, None) => {
            if let Some(account) = &account_override {
                // Fail before touching the disk.
                crate::keyring::validate_account_id(account).map_err(KeyError::InvalidRoot)?;
            }
            let path = config.data_dir.join(ROOT_CREDENTIALS_FILE);
            match read_root_file(&path, account_override.as_deref())? {
                Some(credential) => Ok(RootKey { credential, source: RootKeySource::LoadedFromDataDir(path) }),
                None => create_root_file(&config.data_dir, &path, account_override.as_deref()),
            }
        }
    }
}

/// A new random key of `account`: an access key ID like AWS's (`AKIA` + 16) and a 40-character
/// secret, from the OS CSPRNG. For stores that keep the root key themselves.
pub fn generate_credential(account: &str) -> Result<Credential, KeyError> {
    Credential::new(generate_access_key_id()?, generate_secret_access_key()?, account).map_err(KeyError::InvalidRoot)
}

/// Reads the file if it exists. A configured account ID wins over the stored one.
fn read_root_file(path: &Path, account: Option<&str>) -> Result<Option<Credential>, KeyError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KeyError::Io { action: "read root credentials file", path: path.to_owned(), source })
        }
    };
    let file: RootFile = toml::from_str(&text)
        .map_err(|err| KeyError::Syntax { path: path.to_owned(), message: describe_toml_error(&text, &err) })?;
    let account = account.map(str::to_owned).or(file.account_id).unwrap_or_else(|| DEFAULT_ACCOUNT_ID.to_owned());
    Credential::new(file.access_key_id, file.secret_access_key, account)
        .map(Some)
        .map_err(|source| KeyError::InvalidEntry { path: path.to_owned(), entry: "root key".to_owned(), source })
}

fn create_root_file(data_dir: &Path, path: &Path, account: Option<&str>) -> Result<RootKey, KeyError> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| KeyError::Io { action, path, source }
    };
    fs::create_dir_all(data_dir).map_err(io("create data directory", data_dir))?;

    let credential = Credential::new(
        generate_access_key_id()?,
        generate_secret_access_key()?,
        account.unwrap_or(DEFAULT_ACCOUNT_ID),
    )
    .map_err(KeyError::InvalidRoot)?;
    let contents = format!(
        "# interlog root credentials, generated on first start. Keep this file secret.\n\
         # Delete it to get a new key on the next start; set INTERLOG_ACCESS_KEY_ID and\n\
         # INTERLOG_SECRET_ACCESS_KEY to choose the key yourself.\n\
         access_key_id = \"{}\"\n\
         secret_access_key = \"{}\"\n\
         account_id = \"{}\"\n",
        credential.access_key_id(),
        credential.secret_access_key(),
        credential.account_id(),
    );

    let tmp = data_dir.join(format!(".{ROOT_CREDENTIALS_FILE}.tmp-{}", std::process::id()));
    let result = write_private_file(&tmp, contents.as_bytes())
        .map_err(io("write root credentials file", &tmp))
        .and_then(|()| publish(&tmp, path));
    // The temporary name is only a staging area; it must not outlive this call.
    let _ = fs::remove_file(&tmp);
    match result? {
        Published::Ours => Ok(RootKey { credential, source: RootKeySource::Generated(path.to_owned()) }),
        // Another process created the file first: use its key so both agree.
        Published::Theirs => match read_root_file(path, account)? {
            Some(credential) => Ok(RootKey { credential, source: RootKeySource::LoadedFromDataDir(path.to_owned()) }),
            None => Err(KeyError::Io {
                action: "read root credentials file",
                path: path.to_owned(),
                source: std::io::ErrorKind::NotFound.into(),
            }),
        },
    }
}

enum Published {
    Ours,
    Theirs,
}

/// Moves the finished temporary file into place without ever replacing an existing file.
fn publish(tmp: &Path, path: &Path) -> Result<Published, KeyError> {
    match fs::hard_link(tmp, path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => return Ok(Published::Theirs),
        // Some file systems cannot hard-link; a rename is still atomic for readers.
        Err(_) => fs::rename(tmp, path).map_err(|source| KeyError::Io {
            action: "create root credentials file",
            path: path.to_owned(),
            source,
        })?,
    }
    if let Some(dir) = path.parent() {
        // Make the new directory entry durable; failure here only risks a regenerated key.
        if let Ok(dir) = fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(Published::Ours)
}

/// Creates a new file readable and writable by the owner only, and syncs it.
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let _ = fs::remove_file(path);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// `AKIA` followed by 16 upper-case letters and digits, like an AWS long-term key ID.
fn generate_access_key_id() -> Result<String, KeyError> {
    const ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut id = String::from("AKIA");
    id.push_str(&random_string(ALPHABET, 16)?);
    Ok(id)
}

/// 40 characters of the base64 alphabet, like an AWS secret access key (240 bits).
fn generate_secret_access_key() -> Result<String, KeyError> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    random_string(ALPHABET, 40)
}

/// Characters drawn uniformly from `alphabet` with the OS CSPRNG (rejection sampling avoids
/// modulo bias for alphabets whose size does not divide 256).
fn random_string(alphabet: &[u8], len: usize) -> Result<String, KeyError> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|err| KeyError::Random(err.to_string()))?;
        for &b in &buf {
            if out.len() == len {
                break;
            }
            if usize::from(b) < limit {
                out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> RootKeyConfig {
        RootKeyConfig { data_dir: dir.to_owned(), ..RootKeyConfig::default() }
    }

    #[test]
    fn generates_once_then_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_root_key(&config(dir.path())).unwrap();
        let path = dir.path().join(ROOT_CREDENTIALS_FILE);
        assert_eq!(first.source, RootKeySource::Generated(path.clone()));
        let id = first.credential.access_key_id();
        assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");
        assert!(id[4..].bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        assert_eq!(first.credential.secret_access_key().len(), 40);
        assert_eq!(first.credential.account_id(), DEFAULT_ACCOUNT_ID);

        let second = load_or_create_root_key(&config(dir.path())).unwrap();
        assert_eq!(second.source, RootKeySource::LoadedFromDataDir(path));
        assert_eq!(second.credential, first.credential);
        // Nothing but the file itself is left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("nested/data");
        load_or_create_root_key(&config(&data_dir)).unwrap();
        let mode = fs::metadata(data_dir.join(ROOT_CREDENTIALS_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn generated_keys_differ() {
        let a = load_or_create_root_key(&config(tempfile::tempdir().unwrap().path())).unwrap();
        let b = load_or_create_root_key(&config(tempfile::tempdir().unwrap().path())).unwrap();
        assert_ne!(a.credential.access_key_id(), b.credential.access_key_id());
        assert_ne!(a.credential.secret_access_key(), b.credential.secret_access_key());
    }

    #[test]
    fn account_id_is_stored_and_can_be_overridden() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.account_id = Some("111122223333".to_owned());
        let first = load_or_create_root_key(&cfg).unwrap();
        assert_eq!(first.credential.account_id(), "111122223333");
        // Stored: a later start without the option keeps it.
        let again = load_or_create_root_key(&config(dir.path())).unwrap();
        assert_eq!(again.credential.account_id(), "111122223333");
        // Configured: wins over the stored one.
        cfg.account_id = Some("444455556666".to_owned());
        let other = load_or_create_root_key(&cfg).unwrap();
        assert_eq!(other.credential.account_id(), "444455556666");
        assert_eq!(other.credential.access_key_id(), first.credential.access_key_id());
    }

    #[test]
    fn environment_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.access_key_id = Some("AKIDEXAMPLE".to_owned());
        cfg.secret_access_key = Some("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned());
        let root = load_or_create_root_key(&cfg).unwrap();
        assert_eq!(root.source, RootKeySource::Environment);
        assert_eq!(root.credential.access_key_id(), "AKIDEXAMPLE");
        assert_eq!(root.credential.account_id(), DEFAULT_ACCOUNT_ID);
        assert!(!dir.path().join(ROOT_CREDENTIALS_FILE).exists());
        let debug = format!("{cfg:?} {root:?}");
        assert!(!debug.contains("wJalrXUtnFEMI"), "{debug}");
    }

    #[test]
    fn only_one_variable_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.access_key_id = Some("AKIDEXAMPLE".to_owned());
        let err = load_or_create_root_key(&cfg).unwrap_err().to_string();
        assert!(err.contains("INTERLOG_ACCESS_KEY_ID is set but INTERLOG_SECRET_ACCESS_KEY is not"), "{err}");
        let mut cfg = config(dir.path());
        cfg.secret_access_key = Some("supersecretvalue".to_owned());
        let err = load_or_create_root_key(&cfg).unwrap_err().to_string();
        assert!(err.contains("INTERLOG_SECRET_ACCESS_KEY is set but INTERLOG_ACCESS_KEY_ID is not"), "{err}");
        assert!(!err.contains("supersecretvalue"));
        assert!(!dir.path().join(ROOT_CREDENTIALS_FILE).exists());
    }

    #[test]
    fn invalid_account_id_is_rejected_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.account_id = Some("12345".to_owned());
        let err = load_or_create_root_key(&cfg).unwrap_err().to_string();
        assert!(err.contains("exactly 12 digits"), "{err}");
        assert!(!dir.path().join(ROOT_CREDENTIALS_FILE).exists());
    }

    #[test]
    fn corrupt_file_is_reported_without_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ROOT_CREDENTIALS_FILE);
        fs::write(&path, "access_key_id = \"AKIA1\"\nsecret_access_key = oops-secret\n").unwrap();
        let err = load_or_create_root_key(&config(dir.path())).unwrap_err().to_string();
        assert!(err.contains("root-credentials"), "{err}");
        assert!(err.contains("line 2"), "{err}");
        assert!(!err.contains("oops-secret"), "{err}");
    }
}
