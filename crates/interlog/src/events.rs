//! `interlog events`: one user's or one session's newest events through a running server
//! (`GET /_interlog/v1/events`, signed with your usual AWS credentials), printed as the
//! server's JSON, newest first.

use clap::Args;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["user_id", "session_id"])))]
pub(crate) struct EventsArgs {
    /// The server, as for aws-cli: http(s)://host:port.
    #[arg(long)]
    endpoint_url: String,
    /// The event tracker the events were put through.
    #[arg(long)]
    tracking_id: String,
    /// Whose history: a user...
    #[arg(long)]
    user_id: Option<String>,
    /// ...or a session.
    #[arg(long)]
    session_id: Option<String>,
    /// Most events to print (the newest), 1 to 1000; the server's default is 100.
    #[arg(long)]
    limit: Option<usize>,
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

pub(crate) fn run(args: EventsArgs) -> anyhow::Result<()> {
    let options = interlog_cli::fetch::FetchOptions {
        endpoint: args.endpoint_url.clone(),
        profile: args.profile.clone(),
        region: args.region.clone(),
        no_sign: args.no_sign_request,
    };
    let mut query = format!("/_interlog/v1/events?trackingId={}", crate::export::percent_encode(&args.tracking_id));
    if let Some(user) = &args.user_id {
        query.push_str(&format!("&userId={}", crate::export::percent_encode(user)));
    }
    if let Some(session) = &args.session_id {
        query.push_str(&format!("&sessionId={}", crate::export::percent_encode(session)));
    }
    if let Some(limit) = args.limit {
        query.push_str(&format!("&limit={limit}"));
    }
    let env = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    let fetched = interlog_cli::fetch::signed_get(env, &options, &query).map_err(anyhow::Error::msg)?;
    let body: serde_json::Value = serde_json::from_slice(&fetched.body).unwrap_or_default();
    if fetched.status != 200 {
        let code = body["__type"].as_str().unwrap_or("error");
        let message = body["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&fetched.body).into_owned());
        anyhow::bail!("the server answered {} ({code}): {message}", fetched.status);
    }
    println!("{}", serde_json::to_string_pretty(&body)?);
    Ok(())
}
