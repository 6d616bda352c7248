//! Signed GETs to an interlog server, with the aws-cli's profile, credential and region
//! resolution: how `interlog export --endpoint-url` reads through a running server.

use std::collections::HashMap;
use std::time::SystemTime;

use crate::config::{load_files, resolve_credentials, setting, CredentialsError, Env};
use crate::http::{self, Url};
use crate::request::{amz_date, sign_v4};

/// Where and as whom to fetch.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    /// `http(s)://host:port[/prefix]` of the server.
    pub endpoint: String,
    /// `--profile`; otherwise `AWS_PROFILE` / `AWS_DEFAULT_PROFILE` / `default`.
    pub profile: Option<String>,
    /// `--region`; otherwise `AWS_DEFAULT_REGION` or the profile's, else `us-east-1`.
    pub region: Option<String>,
    /// Send no signature (for servers started with `--no-auth`).
    pub no_sign: bool,
}

/// A complete response.
#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// Access keys found by the aws-cli's chain, for a program that signs its own requests (the
/// forwarding sink). `Debug` leaves the secret out.
#[derive(Clone)]
pub struct ChainCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// `env`, `shared-credentials-file` or `config-file`.
    pub method: &'static str,
    /// The profile's region (or `AWS_DEFAULT_REGION` / `AWS_REGION`), if any.
    pub region: Option<String>,
}

impl std::fmt::Debug for ChainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// The credentials the aws-cli would use with `profile` (`AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, else the profile in the shared credentials
/// and config files; `AWS_PROFILE` when `profile` is None).
pub fn chain_credentials(env: HashMap<String, String>, profile: Option<&str>) -> Result<ChainCredentials, String> {
    let env = Env::new(env);
    let files = load_files(&env, profile).map_err(|e| format!("The config profile ({}) could not be found", e.0))?;
    let region =
        setting(&env, &files, "AWS_DEFAULT_REGION", "region").or_else(|| env.get("AWS_REGION").map(str::to_owned));
    let c = resolve_credentials(&env, &files).map_err(|e| match e {
        CredentialsError::None => "Unable to locate credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
            or a profile in ~/.aws/credentials"
            .to_owned(),
        CredentialsError::Partial(m) => m,
    })?;
    Ok(ChainCredentials {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        session_token: c.session_token,
        method: c.method,
        region,
    })
}

/// GETs `path_and_query` (starting with `/`) under the endpoint, signed as `personalize`.
pub fn signed_get(
    env: HashMap<String, String>,
    options: &FetchOptions,
    path_and_query: &str,
) -> Result<Fetched, String> {
    signed_request(env, options, "GET", path_and_query, &[])
}

/// Sends `method path_and_query` with a JSON `body` under the endpoint, signed as `personalize`.
pub fn signed_request(
    env: HashMap<String, String>,
    options: &FetchOptions,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<Fetched, String> {
    let json: &[(&str, &str)] = if body.is_empty() { &[] } else { &[("content-type", "application/json")] };
    Signer::new(env, options)?.send(method, path_and_query, json, body)
}

/// The endpoint, region and credentials resolved once, for a program that sends many requests
/// (`interlog import`): the config files are read and the credentials found only here.
pub struct Signer {
    url: Url,
    region: String,
    /// `None` with `--no-sign-request`.
    creds: Option<crate::config::Credentials>,
    settings: http::Settings,
}

impl Signer {
    pub fn new(env: HashMap<String, String>, options: &FetchOptions) -> Result<Signer, String> {
        let env = Env::new(env);
        let url = Url::parse(&options.endpoint)
            .ok_or_else(|| format!("Invalid endpoint: {} (expected http://host:port)", options.endpoint))?;
        let files = load_files(&env, options.profile.as_deref())
            .map_err(|e| format!("The config profile ({}) could not be found", e.0))?;
        let region = options
            .region
            .clone()
            .or_else(|| setting(&env, &files, "AWS_DEFAULT_REGION", "region"))
            .unwrap_or_else(|| "us-east-1".into());
        let creds = if options.no_sign {
            None
        } else {
            Some(resolve_credentials(&env, &files).map_err(|e| {
                match e {
                    CredentialsError::None => {
                        "Unable to locate credentials. You can configure credentials by running \"aws configure\"."
                            .to_owned()
                    }
                    CredentialsError::Partial(m) => m,
                }
            })?)
        };
        // An https endpoint is verified against AWS_CA_BUNDLE / the profile's ca_bundle, as aws-cli does.
        let ca_bundle = setting(&env, &files, "AWS_CA_BUNDLE", "ca_bundle").map(|p| env.expand_user(&p));
        let settings = http::Settings { verify: true, ca_bundle, ..Default::default() };
        Ok(Signer { url, region, creds, settings })
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Sends `method path_and_query` with `headers` (lower-case names, all signed) and `body`.
    pub fn send(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Fetched, String> {
        let url = &self.url;
        let target = format!("{}{path_and_query}", url.path);
        let host = url.host_header();
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: identity\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(creds) = &self.creds {
            let time = SystemTime::now();
            let url_text = format!("{}{target}", url.origin());
            let (signed, _) = sign_v4(method, &url_text, headers, body, creds, &self.region, time)?;
            let mut has_date = false;
            for (name, value) in &signed {
                has_date |= name.eq_ignore_ascii_case("x-amz-date");
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            if !has_date {
                head.push_str(&format!("X-Amz-Date: {}\r\n", amz_date(time)));
            }
        }
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        let response = http::send(url, &head, body, &self.settings).map_err(|e| match e {
            http::Failure::Connect => format!("Could not connect to the endpoint URL: \"{}{target}\"", url.origin()),
            other => format!("Request to {}{target} failed: {other:?}", url.origin()),
        })?;
        Ok(Fetched {
            status: response.status,
            content_type: response.header("content-type").map(str::to_owned),
            body: response.body,
        })
    }
}
