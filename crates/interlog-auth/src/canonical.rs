//! The SigV4 canonical request, rebuilt from the request exactly as the client's
//! `SignedHeaders` describes it.
//!
//! See <https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html>.
//! The canonical request is streamed into a [`Sink`]: on the hot path that sink is the
//! SHA-256 hasher itself, so no canonical-request string is ever built unless verification
//! fails and the server wants it for its debug log.

use http::HeaderMap;
use sha2::{Digest, Sha256};

/// Where canonical-request bytes go: a hasher (hot path) or a buffer (error detail).
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Sha256 {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// How the request path becomes the canonical URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathEncoding {
    /// What every AWS service except S3 does, and what botocore and the AWS SDKs sign:
    /// normalise the path as received (remove `.`/`..` segments and empty segments), then
    /// URI-encode it again, so an on-the-wire `%3D` is signed as `%253D`.
    NormalizedDoubleEncoded,
    /// Normalise, but use the received (already encoded) path as is.
    NormalizedSingleEncoded,
    /// S3 style: the received path exactly as it is.
    Raw,
}

/// The pieces of a request that enter the canonical request.
pub(crate) struct CanonicalInput<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
    pub(crate) headers: &'a HeaderMap,
    /// Used for a signed `host` when the request has no `Host` header (HTTP/2 `:authority`).
    pub(crate) authority: Option<&'a str>,
    pub(crate) signed_headers: &'a str,
    pub(crate) payload_hash: &'a [u8],
    pub(crate) path_encoding: PathEncoding,
}

/// Writes the canonical request (method, URI, query, headers, signed headers, payload hash).
///
/// Callers must have checked that every signed header is present; a missing one is written
/// with an empty value, which then simply fails to match.
pub(crate) fn write_canonical_request(sink: &mut impl Sink, input: &CanonicalInput<'_>) {
    sink.put(input.method.as_bytes());
    sink.put(b"\n");
    write_canonical_uri(sink, input.path, input.path_encoding);
    sink.put(b"\n");
    write_canonical_query(sink, input.query);
    sink.put(b"\n");
    for name in input.signed_headers.split(';') {
        sink.put(name.as_bytes());
        sink.put(b":");
        write_header_values(sink, input.headers, input.authority, name);
        sink.put(b"\n");
    }
    sink.put(b"\n");
    sink.put(input.signed_headers.as_bytes());
    sink.put(b"\n");
    sink.put(input.payload_hash);
}

/// True when the request carries the named header (or, for `host`, an authority).
pub(crate) fn has_header(headers: &HeaderMap, authority: Option<&str>, name: &str) -> bool {
    headers.contains_key(name) || (name.eq_ignore_ascii_case("host") && authority.is_some())
}

fn write_header_values(sink: &mut impl Sink, headers: &HeaderMap, authority: Option<&str>, name: &str) {
    let mut values = headers.get_all(name).iter().peekable();
    if values.peek().is_none() {
        if name.eq_ignore_ascii_case("host") {
            if let Some(authority) = authority {
                write_trimmed(sink, authority.as_bytes());
            }
        }
        return;
    }
    let mut first = true;
    for value in values {
        if !first {
            sink.put(b",");
        }
        first = false;
        write_trimmed(sink, value.as_bytes());
    }
}

/// Trims the value and collapses internal runs of whitespace to one space, as botocore's
/// `' '.join(value.split())` and the SigV4 "Trimall" rule do.
fn write_trimmed(sink: &mut impl Sink, value: &[u8]) {
    let mut first = true;
    for word in value.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()) {
        if !first {
            sink.put(b" ");
        }
        first = false;
        sink.put(word);
    }
}

fn write_canonical_uri(sink: &mut impl Sink, path: &str, encoding: PathEncoding) {
    if path.is_empty() {
        sink.put(b"/");
        return;
    }
    match encoding {
        PathEncoding::Raw => sink.put(path.as_bytes()),
        PathEncoding::NormalizedSingleEncoded | PathEncoding::NormalizedDoubleEncoded => {
            let double = encoding == PathEncoding::NormalizedDoubleEncoded;
            let put = |sink: &mut _, s: &str| {
                if double {
                    write_uri_encoded(sink, s.as_bytes(), false);
                } else {
                    Sink::put(sink, s.as_bytes());
                }
            };
            if needs_normalization(path) {
                put(sink, &remove_dot_segments(path));
            } else {
                put(sink, path);
            }
        }
    }
}

/// Fast check so the common `/events` or `/` path skips the allocating normaliser.
fn needs_normalization(path: &str) -> bool {
    let mut segments = path.split('/').skip(usize::from(path.starts_with('/')));
    let mut previous_empty = false;
    segments.any(|segment| {
        // An empty segment is only harmless as the last one (a trailing slash).
        let bad = previous_empty || segment == "." || segment == "..";
        previous_empty = segment.is_empty();
        bad
    })
}

/// RFC 3986 §5.2.4 plus the removal of empty segments, mirroring botocore's
/// `remove_dot_segments` so paths normalise exactly as the most common client signs them.
fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                output.pop();
            }
            other => output.push(other),
        }
    }
    let mut normalized = String::with_capacity(path.len());
    if path.starts_with('/') {
        normalized.push('/');
    }
    normalized.push_str(&output.join("/"));
    if path.ends_with('/') && !output.is_empty() {
        normalized.push('/');
    }
    normalized
}

/// Canonical query: every `name=value` pair percent-decoded, re-encoded with the strict
/// SigV4 rules (only unreserved characters are left alone), and sorted by name then value.
fn write_canonical_query(sink: &mut impl Sink, query: &str) {
    if query.is_empty() {
        return;
    }
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (reencode(name), reencode(value))
        })
        .collect();
    pairs.sort_unstable();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            sink.put(b"&");
        }
        sink.put(name);
        sink.put(b"=");
        sink.put(value);
    }
}

fn reencode(component: &str) -> Vec<u8> {
    let decoded = percent_decode(component.as_bytes());
    let mut out = Vec::with_capacity(decoded.len() + 8);
    write_uri_encoded(&mut out, &decoded, true);
    out
}

/// Decodes `%XY` escapes; a `%` not followed by two hex digits stays literal. `+` is not a
/// space here: SigV4 clients encode spaces as `%20`.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(hi), Some(lo)) = (hex_value(input[i + 1]), hex_value(input[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// SigV4 `UriEncode`: unreserved bytes as they are, everything else `%XY` (upper-case hex);
/// `/` is kept unless `encode_slash` (query components encode it, paths do not).
fn write_uri_encoded(sink: &mut impl Sink, input: &[u8], encode_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut start = 0;
    for (i, &b) in input.iter().enumerate() {
        if is_unreserved(b) || (b == b'/' && !encode_slash) {
            continue;
        }
        sink.put(&input[start..i]);
        sink.put(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        start = i + 1;
    }
    sink.put(&input[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(path: &str, encoding: PathEncoding) -> String {
        let mut out = Vec::new();
        write_canonical_uri(&mut out, path, encoding);
        String::from_utf8(out).unwrap()
    }

    fn query(q: &str) -> String {
        let mut out = Vec::new();
        write_canonical_query(&mut out, q);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn normalizes_like_botocore() {
        use PathEncoding::NormalizedDoubleEncoded as D;
        assert_eq!(uri("", D), "/");
        assert_eq!(uri("/", D), "/");
        assert_eq!(uri("/events", D), "/events");
        assert_eq!(uri("/base/events/", D), "/base/events/");
        assert_eq!(uri("//", D), "/");
        assert_eq!(uri("//example//", D), "/example/");
        assert_eq!(uri("/./", D), "/");
        assert_eq!(uri("/./example", D), "/example");
        assert_eq!(uri("/example/..", D), "/");
        assert_eq!(uri("/example1/example2/../..", D), "/");
        assert_eq!(uri("/a/./b/../c", D), "/a/c");
    }

    #[test]
    fn double_encodes_the_received_path() {
        use PathEncoding::*;
        let path = "/test/@connections/JBDvjfGEIAMCERw%3D";
        assert_eq!(uri(path, NormalizedDoubleEncoded), "/test/%40connections/JBDvjfGEIAMCERw%253D");
        assert_eq!(uri(path, NormalizedSingleEncoded), path);
        assert_eq!(uri("//a", Raw), "//a");
    }

    #[test]
    fn needs_normalization_fast_path() {
        for p in ["/", "/events", "/a/b/", "a/b"] {
            assert!(!needs_normalization(p), "{p}");
        }
        for p in ["//", "/a//b", "/./", "/a/..", "/a/./b", "//a"] {
            assert!(needs_normalization(p), "{p}");
        }
    }

    #[test]
    fn canonical_query_sorts_and_reencodes() {
        assert_eq!(query(""), "");
        assert_eq!(query("Param2=value2&Param1=value1"), "Param1=value1&Param2=value2");
        assert_eq!(query("b=2&a=1&a=0"), "a=0&a=1&b=2");
        assert_eq!(query("flag"), "flag=");
        assert_eq!(query("k=a%2fb"), "k=a%2Fb");
        assert_eq!(query("k=a b"), "k=a%20b");
        assert_eq!(query("%E1%88%B4=bar"), "%E1%88%B4=bar");
        assert_eq!(query("k=100%"), "k=100%25");
        assert_eq!(query("k=-_.~"), "k=-_.~");
    }

    #[test]
    fn trims_header_values() {
        let mut out = Vec::new();
        write_trimmed(&mut out, b"  \"a   b\t c\"  ");
        assert_eq!(out, b"\"a b c\"");
    }
}
