//! The baseline servers interlog is measured against (this binary's hidden `baseline-server`
//! command, started by the benchmark itself): axum 0.8 on hyper 1 on a multi-thread tokio
//! runtime, as `interlog serve`, doing a chosen share of the work a PutEvents server cannot avoid
//! and storing nothing. `noop` reads the body; `parse` also parses it as a PutEvents request
//! (issue 17's "parse-only server"); `sigv4-parse` also verifies the SigV4 signature first with
//! interlog's own verifier (issue 17's "the cheapest server that does the unavoidable work").

use std::borrow::Cow;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use clap::ValueEnum;
use serde::Deserialize;

use crate::server::{bench_credentials, BENCH_ACCOUNT};

/// How much of a PutEvents server's unavoidable work a baseline does.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Work {
    /// Read the body, answer 200.
    Noop,
    /// Read the body and parse it as a PutEvents request (every member, the `properties` JSON
    /// inside its string too); 400 if it does not parse.
    Parse,
    /// Verify the SigV4 signature over the body (403 if it does not match), then parse.
    Sigv4Parse,
}

impl Work {
    pub fn name(self) -> &'static str {
        match self {
            Work::Noop => "noop",
            Work::Parse => "parse",
            Work::Sigv4Parse => "sigv4-parse",
        }
    }
}

/// The PutEvents request, every member the API defines, borrowed from the body where it has no
/// escapes: what any implementation has to read before it can check and store the events.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PutEvents<'a> {
    #[serde(borrow)]
    tracking_id: Cow<'a, str>,
    #[serde(borrow, default)]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    session_id: Cow<'a, str>,
    #[serde(borrow)]
    event_list: Vec<Event<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Event<'a> {
    #[serde(borrow, default)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(default)]
    event_value: Option<f64>,
    #[serde(borrow, default)]
    item_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    properties: Option<Cow<'a, str>>,
    sent_at: f64,
    #[serde(borrow, default)]
    recommendation_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    impression: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    metric_attribution: Option<MetricAttribution<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MetricAttribution<'a> {
    #[serde(borrow)]
    event_attribution_source: Cow<'a, str>,
}

/// Parses `body` as a PutEvents request; the number of events, or why not.
fn parse(body: &[u8]) -> Result<usize, serde_json::Error> {
    let request: PutEvents<'_> = serde_json::from_slice(body)?;
    let mut members = request.tracking_id.len() + request.session_id.len() + request.user_id.map_or(0, |u| u.len());
    for e in &request.event_list {
        // `properties` is a JSON object inside a string: parsed like the rest.
        if let Some(p) = &e.properties {
            let _: serde::de::IgnoredAny = serde_json::from_str(p)?;
        }
        members += e.event_id.as_ref().map_or(0, |s| s.len())
            + e.event_type.len()
            + e.item_id.as_ref().map_or(0, |s| s.len())
            + e.recommendation_id.as_ref().map_or(0, |s| s.len())
            + e.impression.as_ref().map_or(0, Vec::len)
            + e.metric_attribution.as_ref().map_or(0, |m| m.event_attribution_source.len())
            + usize::from(e.event_value.is_some())
            + usize::from(e.sent_at > 0.0);
    }
    std::hint::black_box(members);
    Ok(request.event_list.len())
}

/// Runs a baseline server on `listen` until killed; prints `... listening on http://ADDR`.
pub fn run(listen: SocketAddr, work: Work) -> anyhow::Result<()> {
    let verifier = match work {
        Work::Sigv4Parse => {
            let creds = bench_credentials();
            let root = interlog_auth::Credential::new(creds.access_key_id, creds.secret_access_key, BENCH_ACCOUNT)?;
            Some(Arc::new(interlog_auth::Verifier::new(Arc::new(interlog_auth::Keyring::with_root(root)))))
        }
        Work::Noop | Work::Parse => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        println!("interlog-bench {} listening on http://{addr}", work.name());
        std::io::stdout().flush()?;
        let app = axum::Router::new().fallback(move |request: Request<Body>| {
            let verifier = verifier.clone();
            async move { answer(work, verifier.as_deref(), request).await }
        });
        axum::serve(listener, app).await?;
        Ok(())
    })
}

async fn answer(work: Work, verifier: Option<&interlog_auth::Verifier>, request: Request<Body>) -> StatusCode {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE;
    };
    // The benchmark's health probe: answered like interlog's, unsigned.
    if parts.uri.path() == "/_interlog/health" || work == Work::Noop {
        std::hint::black_box(body.len());
        return StatusCode::OK;
    }
    if let Some(v) = verifier {
        if v.verify(&parts, &body, SystemTime::now()).is_err() {
            return StatusCode::FORBIDDEN;
        }
    }
    match parse(&body) {
        Ok(_) => StatusCode::OK,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{BodyFactory, DOCUMENTED_PROPERTIES};

    #[test]
    fn the_benchmark_s_bodies_parse_and_broken_ones_do_not() {
        for properties in [None, Some(DOCUMENTED_PROPERTIES)] {
            let factory = BodyFactory::new(crate::server::TRACKING_ID, 10, "0badc0de", 1_700_000_000, properties);
            assert_eq!(parse(&factory.body(3)).unwrap(), 10);
        }
        assert!(parse(br#"{"trackingId":"t","sessionId":"s","eventList":[{"eventType":"x"}]}"#).is_err());
        assert!(parse(br#"{"trackingId":"t","sessionId":"s","eventList":[],"extra":1}"#).is_err());
        let bad_properties =
            br#"{"trackingId":"t","sessionId":"s","eventList":[{"eventType":"x","sentAt":1,"properties":"{nope"}]}"#;
        assert!(parse(bad_properties).is_err());
    }
}
