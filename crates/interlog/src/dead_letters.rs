//! `interlog dead-letters list|replay`: the events a sink's destination refused for good (the
//! forwarding sink's 4xx that retrying cannot fix), read and replayed through a running server
//! (`GET /_interlog/dead-letters`, `POST /_interlog/dead-letters/replay`, root account only).

use clap::{Args, Subcommand};

#[derive(Args)]
pub(crate) struct DeadLettersArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Print every dead letter (id, sink, dataset, position, eventId, reason, attempts) as JSON.
    List(Target),
    /// Deliver dead letters again (those given with --id, or all of the sink's) once the cause is
    /// fixed (the upstream's tracker created, the schema changed): each delivered one is removed,
    /// each refused again keeps its new reason. Exits 1 when any is left.
    Replay {
        #[command(flatten)]
        target: Target,
        /// A dead letter's id (repeat for more); all of the sink's when omitted.
        #[arg(long = "id", value_name = "ID")]
        ids: Vec<i64>,
    },
}

#[derive(Args)]
struct Target {
    /// The server, e.g. http://127.0.0.1:8787; requests are signed with your usual AWS credentials.
    #[arg(long)]
    endpoint_url: String,
    /// The sink (`forward`, `nats`).
    #[arg(long, default_value = "forward")]
    sink: String,
    /// AWS CLI profile for the credentials.
    #[arg(long)]
    profile: Option<String>,
    /// Region for the signature; default from the profile or AWS_DEFAULT_REGION.
    #[arg(long)]
    region: Option<String>,
    /// Send the request unsigned (for a server started with --no-auth).
    #[arg(long)]
    no_sign_request: bool,
}

impl Target {
    fn send(&self, method: &str, path: &str, body: &[u8]) -> anyhow::Result<serde_json::Value> {
        let options = interlog_cli::fetch::FetchOptions {
            endpoint: self.endpoint_url.clone(),
            profile: self.profile.clone(),
            region: self.region.clone(),
            no_sign: self.no_sign_request,
        };
        let env =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
        let fetched =
            interlog_cli::fetch::signed_request(env, &options, method, path, body).map_err(anyhow::Error::msg)?;
        let parsed: serde_json::Value = serde_json::from_slice(&fetched.body).unwrap_or_default();
        if fetched.status != 200 {
            let code = parsed["__type"].as_str().unwrap_or("error");
            let message = parsed["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| String::from_utf8_lossy(&fetched.body).into_owned());
            anyhow::bail!("the server answered {} ({code}): {message}", fetched.status);
        }
        Ok(parsed)
    }
}

pub(crate) fn run(args: DeadLettersArgs) -> anyhow::Result<()> {
    match args.action {
        Action::List(target) => {
            let path = format!("/_interlog/dead-letters?sink={}", target.sink);
            let answer = target.send("GET", &path, &[])?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(())
        }
        Action::Replay { target, ids } => {
            let mut body = serde_json::json!({ "sink": target.sink });
            if !ids.is_empty() {
                body["ids"] = serde_json::json!(ids);
            }
            let answer = target.send("POST", "/_interlog/dead-letters/replay", body.to_string().as_bytes())?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            let left = ["refused", "failed"].iter().map(|k| answer[*k].as_array().map_or(0, Vec::len)).sum::<usize>();
            anyhow::ensure!(left == 0, "{left} dead letters are left (see refused and failed above)");
            Ok(())
        }
    }
}
