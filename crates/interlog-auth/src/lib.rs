//! AWS Signature Version 4 verification, access keys and accounts for interlog.
//!
//! - [`Verifier`] checks the `Authorization: AWS4-HMAC-SHA256 …` header of every request
//!   (data plane and control plane) and returns the [`Principal`] that signed it, or an
//!   [`AuthError`] whose [`AuthError::code`] is the AWS error code to send back.
//! - [`Keyring`] holds the accepted [`Credential`]s: the root key plus any from a
//!   `--credentials-file` ([`Keyring::load_credentials_file`]).
//! - [`load_or_create_root_key`] picks the root key from the operator's environment values or
//!   from (or newly into) `<data_dir>/root-credentials`.
//!
//! The crate knows no HTTP status codes and reads no environment variables; the server does
//! both. Secrets never appear in `Debug` output or error messages.
#![deny(missing_docs)]

mod amz_date;
mod authorization;
mod canonical;
mod error;
mod keyring;
mod root;
mod verifier;

pub use canonical::PathEncoding;
pub use error::AuthError;
pub use keyring::{validate_account_id, Credential, CredentialError, KeyError, Keyring, DEFAULT_ACCOUNT_ID};
pub use root::{
    generate_credential, load_or_create_root_key, RootKey, RootKeyConfig, RootKeySource, ROOT_CREDENTIALS_FILE,
};
pub use verifier::{valid_region, Principal, Verifier, DEFAULT_SERVICE};
