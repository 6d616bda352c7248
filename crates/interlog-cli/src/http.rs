//! A minimal blocking HTTP/1.1 client: one request per connection, headers
//! written in exactly the order given, TLS through rustls, CONNECT proxies.
//!
//! A general-purpose client would add or reorder headers (`accept`, its own
//! `user-agent`, `accept-encoding: gzip`) and read proxy settings from the real
//! process environment. botocore's wire format is small and fixed, and every
//! setting here comes from the injected environment, so writing the request
//! by hand is both simpler and more faithful.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A parsed `http(s)://host[:port][/path]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// The port, defaulted from the scheme.
    pub port: u16,
    /// Whether the port was written explicitly (it then appears in `Host`).
    pub explicit_port: bool,
    /// The path, without a trailing `/` (may be empty).
    pub path: String,
}

impl Url {
    /// Parses a URL; `None` when there is no scheme or host.
    pub fn parse(text: &str) -> Option<Url> {
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
            let (h, after) = stripped.split_once(']')?;
            (h.to_owned(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() {
            return None;
        }
        let default_port = if scheme == "https" { 443 } else { 80 };
        let (port, explicit_port) = match port {
            Some(p) if !p.is_empty() => (p.parse().ok()?, true),
            _ => (default_port, false),
        };
        let path = path.split(['?', '#']).next().unwrap_or("").trim_end_matches('/').to_owned();
        Some(Url { scheme, host, port, explicit_port: explicit_port && port != default_port, path })
    }

    /// The `Host` header value: the port only when it is not the default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.explicit_port {
            format!("{host}:{}", self.port)
        } else {
            host
        }
    }

    /// `scheme://host[:port]`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme, self.host_header())
    }
}

/// Connection settings.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `--cli-connect-timeout` (None: wait as long as the OS does).
    pub connect_timeout: Option<Duration>,
    /// `--cli-read-timeout` (None: no timeout).
    pub read_timeout: Option<Duration>,
    /// `--no-verify-ssl`.
    pub verify: bool,
    /// `--ca-bundle` / `AWS_CA_BUNDLE`.
    pub ca_bundle: Option<PathBuf>,
    /// The proxy to use for this URL, as configured.
    pub proxy: Option<(String, Url)>,
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers in wire order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A header, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Transport failures, named after botocore's exceptions.
#[derive(Debug)]
pub enum Failure {
    /// `EndpointConnectionError`.
    Connect,
    /// `ConnectTimeoutError`.
    ConnectTimeout,
    /// `ReadTimeoutError`.
    ReadTimeout,
    /// `ConnectionClosedError`.
    Closed,
    /// `ProxyConnectionError`, with the proxy URL as configured.
    Proxy(String),
    /// `SSLError`.
    Tls(String),
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// Sends one request (`head` is the request line and headers, CRLF-terminated,
/// without the blank line) and reads the whole response.
pub fn send(url: &Url, head: &str, body: &[u8], settings: &Settings) -> Result<Response, Failure> {
    let mut stream: Box<dyn Stream> = match &settings.proxy {
        Some((proxy_text, proxy)) => {
            let tcp = connect(proxy, settings).map_err(|_| Failure::Proxy(proxy_text.clone()))?;
            if url.scheme == "https" {
                let mut tcp = tcp;
                let authority = format!("{}:{}", url.host, url.port);
                let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
                tcp.write_all(request.as_bytes()).map_err(|_| Failure::Proxy(proxy_text.clone()))?;
                let mut reader = BufReader::new(tcp);
                let status = read_head(&mut reader).map(|(s, _)| s).map_err(|_| Failure::Proxy(proxy_text.clone()))?;
                if status != 200 {
                    return Err(Failure::Proxy(proxy_text.clone()));
                }
                tls(url, reader.into_inner(), settings)?
            } else {
                Box::new(tcp)
            }
        }
        None => {
            let tcp = connect(url, settings)?;
            if url.scheme == "https" {
                tls(url, tcp, settings)?
            } else {
                Box::new(tcp)
            }
        }
    };
    let mut request = Vec::with_capacity(head.len() + 2 + body.len());
    request.extend_from_slice(head.as_bytes());
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);
    stream.write_all(&request).map_err(|e| classify_io(&e))?;
    stream.flush().map_err(|e| classify_io(&e))?;
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader).map_err(|e| classify_io(&e))?;
    let body = read_body(&mut reader, &headers).map_err(|e| classify_io(&e))?;
    Ok(Response { status, headers, body })
}

fn classify_io(e: &std::io::Error) -> Failure {
    // rustls handshakes on the first write or read, so a refused certificate surfaces here.
    if let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        return Failure::Tls(python_ssl_message(tls));
    }
    match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Failure::ReadTimeout,
        _ => Failure::Closed,
    }
}

/// What Python's `ssl` module says for the same failure, as aws-cli prints it after
/// `SSL validation failed for <url> `.
fn python_ssl_message(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let verify = |why: &str| format!("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {why} (_ssl.c:1006)");
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => verify("unable to get local issuer certificate"),
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => verify("certificate has expired"),
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            verify("Hostname mismatch, certificate is not valid for this host.")
        }
        rustls::Error::InvalidCertificate(other) => verify(&format!("{other:?}")),
        other => format!("[SSL] {other}"),
    }
}

/// A CA bundle that cannot be read, in Python's `[Errno N] message` form.
fn bundle_error(path: &std::path::Path, e: &rustls_pki_types::pem::Error) -> Failure {
    if let rustls_pki_types::pem::Error::Io(io) = e {
        if io.kind() == std::io::ErrorKind::NotFound {
            return Failure::Tls("[Errno 2] No such file or directory".into());
        }
        if let Some(code) = io.raw_os_error() {
            return Failure::Tls(format!("[Errno {code}] {io}"));
        }
    }
    Failure::Tls(format!("could not read the CA bundle {}: {e}", path.display()))
}

fn connect(url: &Url, settings: &Settings) -> Result<TcpStream, Failure> {
    let addrs: Vec<_> = (url.host.as_str(), url.port).to_socket_addrs().map_err(|_| Failure::Connect)?.collect();
    let mut last = Failure::Connect;
    for addr in addrs {
        let attempt = match settings.connect_timeout {
            Some(t) => TcpStream::connect_timeout(&addr, t),
            None => TcpStream::connect(addr),
        };
        match attempt {
            Ok(stream) => {
                stream.set_read_timeout(settings.read_timeout).map_err(|_| Failure::Connect)?;
                stream.set_write_timeout(settings.read_timeout).map_err(|_| Failure::Connect)?;
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) => {
                last = Failure::ConnectTimeout;
            }
            Err(_) => last = Failure::Connect,
        }
    }
    Err(last)
}

fn tls(url: &Url, tcp: TcpStream, settings: &Settings) -> Result<Box<dyn Stream>, Failure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Tls(e.to_string()))?;
    let config = if settings.verify {
        let mut roots = rustls::RootCertStore::empty();
        match &settings.ca_bundle {
            Some(path) => {
                use rustls_pki_types::pem::PemObject;
                let certs =
                    rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(|e| bundle_error(path, &e))?;
                for cert in certs {
                    let cert = cert.map_err(|e| bundle_error(path, &e))?;
                    roots.add(cert).map_err(|e| Failure::Tls(e.to_string()))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider))).with_no_client_auth()
    };
    let name = rustls_pki_types::ServerName::try_from(url.host.clone()).map_err(|e| Failure::Tls(e.to_string()))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| Failure::Tls(e.to_string()))?;
    Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
}

/// `--no-verify-ssl`: accept any certificate, still checking signatures so
/// the handshake itself stays sound.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

type Head = (u16, Vec<(String, String)>);

fn read_head<R: BufRead>(reader: &mut R) -> std::io::Result<Head> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no status line"));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad status line"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    Ok((status, headers))
}

fn read_body<R: BufRead>(reader: &mut R, headers: &[(String, String)]) -> std::io::Result<Vec<u8>> {
    let header = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let size_text = line.trim().split(';').next().unwrap_or("0");
            let size = usize::from_str_radix(size_text, 16).unwrap_or(0);
            if size == 0 {
                let mut trailer = String::new();
                while reader.read_line(&mut trailer)? > 2 {
                    trailer.clear();
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(body)
}

/// Python's `http.client.responses` reason phrases, for generic 5xx errors.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoint_urls() {
        let u = Url::parse("http://127.0.0.1:8080/prefix/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("127.0.0.1", 8080, "/prefix"));
        assert_eq!(u.host_header(), "127.0.0.1:8080");
        let u = Url::parse("https://personalize-events.us-east-1.amazonaws.com").unwrap();
        assert_eq!((u.port, u.host_header()), (443, "personalize-events.us-east-1.amazonaws.com".to_owned()));
        assert!(Url::parse("not a url").is_none());
    }
}
