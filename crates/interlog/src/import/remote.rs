//! Sending import rows through a running server: the Put* call of the dataset's type, ten
//! members at a time, signed like every other `interlog` client request; a refused call is
//! resent member by member so only the rows at fault are rejected.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use interlog_cli::fetch::{FetchOptions, Fetched, Signer};
use interlog_model::schema::DatasetType;
use serde_json::{json, Value};

use super::rows::Member;

/// Members per Put* call: the limit of every data-plane operation (§3).
pub const MAX_PER_CALL: usize = 10;

/// Where rows go, resolved once from the dataset's ARN.
pub struct Remote {
    signer: Signer,
    kind: DatasetType,
    /// The dataset's ARN (PutItems / PutUsers / PutActions) or its group's tracking ID.
    target: String,
}

/// The outcome of one call for its members: `None` stored, `Some(reason)` refused.
pub type Outcome = Vec<Option<String>>;

impl Remote {
    /// Looks the dataset up (`DescribeDataset`) and, for interactions, its group's tracker.
    pub fn connect(options: &FetchOptions, dataset_arn: &str, tracking_id: Option<&str>) -> anyhow::Result<Remote> {
        let env: HashMap<String, String> =
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
        let signer = Signer::new(env, options).map_err(anyhow::Error::msg)?;
        let dataset = control(&signer, "DescribeDataset", json!({ "datasetArn": dataset_arn }))?;
        let kind = dataset["dataset"]["datasetType"]
            .as_str()
            .and_then(DatasetType::from_api)
            .with_context(|| format!("the server described {dataset_arn} without a known datasetType"))?;
        let target = match (kind, tracking_id) {
            (DatasetType::Interactions | DatasetType::ActionInteractions, Some(id)) => id.to_owned(),
            // An Action_Interactions dataset has a tracker of its own, which DescribeDataset shows.
            (DatasetType::ActionInteractions, None) if dataset["dataset"]["trackingId"].is_string() => {
                dataset["dataset"]["trackingId"].as_str().unwrap_or_default().to_owned()
            }
            (DatasetType::Interactions | DatasetType::ActionInteractions, None) => {
                let group = dataset["dataset"]["datasetGroupArn"].as_str().unwrap_or_default().to_owned();
                let trackers = control(&signer, "ListEventTrackers", json!({ "datasetGroupArn": group }))?;
                let Some(tracker) = trackers["eventTrackers"].as_array().and_then(|t| t.first()).cloned() else {
                    bail!(
                        "the dataset group {group} has no event tracker to send {} through: create one \
                         (aws personalize create-event-tracker) or pass --tracking-id",
                        kind.api_name()
                    );
                };
                let arn = tracker["eventTrackerArn"].as_str().unwrap_or_default();
                let described = control(&signer, "DescribeEventTracker", json!({ "eventTrackerArn": arn }))?;
                described["eventTracker"]["trackingId"]
                    .as_str()
                    .with_context(|| format!("the server described the tracker {arn} without a trackingId"))?
                    .to_owned()
            }
            _ => dataset_arn.to_owned(),
        };
        Ok(Remote { signer, kind, target })
    }

    pub fn kind(&self) -> DatasetType {
        self.kind
    }

    /// Sends one call of up to ten members of one key (events of one user's session), retrying
    /// what may pass later (throttling, a server restarting) with backoff; `Err` when the server
    /// stays unreachable or refuses the import as a whole (no such tracker, bad credentials).
    pub fn send(&self, members: &[&Member]) -> anyhow::Result<Outcome> {
        match self.call(members)? {
            Answer::Stored => Ok(vec![None; members.len()]),
            Answer::Refused(reason) if members.len() == 1 => Ok(vec![Some(reason)]),
            // One bad member refuses the whole call: send each alone to find which.
            Answer::Refused(_) => members
                .iter()
                .map(|m| match self.call(std::slice::from_ref(m))? {
                    Answer::Stored => Ok(None),
                    Answer::Refused(reason) => Ok(Some(reason)),
                })
                .collect(),
        }
    }

    fn call(&self, members: &[&Member]) -> anyhow::Result<Answer> {
        let list: Vec<&Value> = members.iter().map(|m| &m.json).collect();
        let (path, body) = match self.kind {
            DatasetType::Interactions => {
                let first = members[0];
                let mut body = json!({ "trackingId": self.target, "sessionId": first.session_id, "eventList": list });
                if let Some(user) = &first.user_id {
                    body["userId"] = user.clone().into();
                }
                ("/events", body)
            }
            DatasetType::ActionInteractions => {
                ("/action-interactions", json!({ "trackingId": self.target, "actionInteractions": list }))
            }
            DatasetType::Items => ("/items", json!({ "datasetArn": self.target, "items": list })),
            DatasetType::Users => ("/users", json!({ "datasetArn": self.target, "users": list })),
            DatasetType::Actions => ("/actions", json!({ "datasetArn": self.target, "actions": list })),
        };
        let body = serde_json::to_vec(&body)?;
        let mut delay = Duration::from_millis(100);
        for attempt in 1.. {
            let answer = self.signer.send("POST", path, &[("content-type", "application/json")], &body);
            let retry = match answer {
                Ok(f) if f.status == 200 => return Ok(Answer::Stored),
                Ok(f) => {
                    let (code, message) = error_of(&f);
                    match (f.status, code.as_str()) {
                        // The row itself: reported, the import goes on.
                        (400, "InvalidInputException" | "ValidationException" | "SerializationException") => {
                            return Ok(Answer::Refused(format!("{code}: {message}")))
                        }
                        // May pass later: throttled, the dataset still being created, a server restarting.
                        (429 | 500..=599, _) | (409, _) | (_, "ThrottlingException") => format!("{code}: {message}"),
                        _ => bail!("the server refused the import ({} {code}): {message}", f.status),
                    }
                }
                Err(e) => e,
            };
            if attempt == 10 {
                bail!("gave up after {attempt} attempts: {retry}");
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(10));
        }
        unreachable!("the loop returns or bails")
    }
}

enum Answer {
    Stored,
    Refused(String),
}

fn error_of(f: &Fetched) -> (String, String) {
    let body: Value = serde_json::from_slice(&f.body).unwrap_or_default();
    let code = body["__type"].as_str().unwrap_or("error").rsplit('#').next().unwrap_or("error").to_owned();
    let message = body["message"]
        .as_str()
        .or_else(|| body["Message"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&f.body).into_owned());
    (code, message)
}

/// One JSON 1.1 control-plane call (`AmazonPersonalize.<op>`).
fn control(signer: &Signer, op: &str, request: Value) -> anyhow::Result<Value> {
    let target = format!("AmazonPersonalize.{op}");
    let headers = [("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target.as_str())];
    let f = signer.send("POST", "/", &headers, request.to_string().as_bytes()).map_err(anyhow::Error::msg)?;
    if f.status != 200 {
        let (code, message) = error_of(&f);
        bail!("{op} failed ({} {code}): {message}", f.status);
    }
    serde_json::from_slice(&f.body).with_context(|| format!("{op} answered no JSON"))
}
