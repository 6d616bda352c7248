//! The AWS SDK for Rust against the real server: PutEvents round trips and SigV4 failures as
//! the SDK reports them; PutItems, PutUsers, PutActions and PutActionInteractions read back
//! through `interlog export --dataset-arn`, with their error types.

mod common;

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_personalizeevents::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_personalizeevents::config::retry::RetryConfig;
use aws_sdk_personalizeevents::config::{BehaviorVersion, ConfigBag, Intercept, Region, RuntimeComponents};
use aws_sdk_personalizeevents::error::{BoxError, ProvideErrorMetadata};
use aws_sdk_personalizeevents::primitives::DateTime;
use aws_sdk_personalizeevents::types::{Action, ActionInteraction, Event, Item, MetricAttribution, User};
use aws_sdk_personalizeevents::Client;
use aws_smithy_async::time::StaticTimeSource;
use common::{control, export_jsonl, Key, Server, ROOT_KEY, ROOT_SECRET};
use serde_json::json;

fn client(server: &Server, key: &str, secret: &str, token: Option<&str>) -> aws_sdk_personalizeevents::config::Builder {
    aws_sdk_personalizeevents::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&server.endpoint)
        .credentials_provider(Credentials::new(key, secret, token.map(str::to_owned), None, "test"))
}

fn root(server: &Server) -> Client {
    Client::from_conf(client(server, ROOT_KEY, ROOT_SECRET, None).build())
}

fn click(id: &str) -> Event {
    Event::builder().event_id(id).event_type("click").sent_at(DateTime::from_secs(1_700_000_000)).build().unwrap()
}

/// Rewrites the request after the SDK signed it.
#[derive(Debug)]
struct Tamper(fn(&mut aws_sdk_personalizeevents::config::http::HttpRequest));

impl Intercept for Tamper {
    fn name(&self) -> &'static str {
        "Tamper"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        (self.0)(context.request_mut());
        Ok(())
    }
}

async fn put(client: &Client, server: &Server, id: &str) -> Result<(), String> {
    client
        .put_events()
        .tracking_id(&server.tracking_id)
        .session_id("s1")
        .event_list(click(id))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{}: {}", e.code().unwrap_or("?"), e.message().unwrap_or("")))
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_put_events_round_trips_every_field() {
    let dir = tempfile::tempdir().unwrap();
    // The default schema declares no metadata field: the properties are kept as sent and flagged.
    let server = Server::start(dir.path(), &[]);
    let full = Event::builder()
        .event_id("e-full")
        .event_type("rate")
        .event_value(4.5)
        .item_id("item-1")
        .properties(r#"{"numberOfRatings": "12"}"#)
        .sent_at(DateTime::from_secs_f64(1_700_000_000.25))
        .recommendation_id("RID-1")
        .impression("item-1")
        .impression("item-2")
        .metric_attribution(MetricAttribution::builder().event_attribution_source("email").build().unwrap())
        .build()
        .unwrap();
    let anonymous = Event::builder().event_type("view").sent_at(DateTime::from_secs(1_700_000_001)).build().unwrap();
    root(&server)
        .put_events()
        .tracking_id(&server.tracking_id)
        .user_id("user-1")
        .session_id("session-1")
        .event_list(full)
        .event_list(anonymous)
        .send()
        .await
        .expect("PutEvents succeeds");

    let rows = export_jsonl(dir.path());
    assert_eq!(rows.len(), 2);
    let e = &rows[0];
    assert_eq!(e["eventId"], "e-full");
    assert_eq!(e["eventType"], "rate");
    assert_eq!(e["eventValue"], 4.5);
    assert_eq!(e["itemId"], "item-1");
    assert_eq!(e["properties"], r#"{"numberOfRatings": "12"}"#);
    assert_eq!(e["flags"][0]["kind"], "undeclaredProperty");
    assert!(rows[1].get("flags").is_none(), "an event without properties has no flags");
    assert_eq!(e["sentAt"], 1_700_000_000.25);
    assert_eq!(e["recommendationId"], "RID-1");
    assert_eq!(e["impression"], serde_json::json!(["item-1", "item-2"]));
    assert_eq!(e["metricAttribution"]["eventAttributionSource"], "email");
    assert_eq!(e["userId"], "user-1");
    assert_eq!(e["sessionId"], "session-1");
    let generated = rows[1]["eventId"].as_str().unwrap();
    assert_eq!(generated.len(), 36, "a generated UUID: {generated}");
    assert_eq!(rows[1]["eventType"], "view");
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_sees_each_signature_failure_with_its_aws_code_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("keys.toml");
    std::fs::write(
        &creds,
        r#"
[[key]]
access_key_id = "AKIDSESSIONKEY000001"
secret_access_key = "sessionSecret"
account_id = "000000000000"
session_token = "the-session-token"
"#,
    )
    .unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--credentials-file", creds.to_str().unwrap()]);

    put(&root(&server), &server, "ok-1").await.expect("the right key succeeds");

    let wrong_secret = Client::from_conf(client(&server, ROOT_KEY, "not-the-secret", None).build());
    let err = put(&wrong_secret, &server, "bad-1").await.unwrap_err();
    assert!(err.starts_with("InvalidSignatureException: The request signature we calculated does not match"), "{err}");

    let unknown = Client::from_conf(client(&server, "AKIDUNKNOWN000000000", ROOT_SECRET, None).build());
    let err = put(&unknown, &server, "bad-2").await.unwrap_err();
    assert!(err.starts_with("UnrecognizedClientException"), "{err}");

    // Retries off: on "Signature expired" the SDK would correct its clock from our Date header
    // and succeed on the second attempt, as it does against AWS.
    let twenty_minutes_ago = SystemTime::now() - Duration::from_secs(20 * 60);
    let stale = Client::from_conf(
        client(&server, ROOT_KEY, ROOT_SECRET, None)
            .time_source(StaticTimeSource::new(twenty_minutes_ago))
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    let err = put(&stale, &server, "bad-3").await.unwrap_err();
    assert!(err.starts_with("InvalidSignatureException: Signature expired"), "{err}");

    let changed_body = Client::from_conf(
        client(&server, ROOT_KEY, ROOT_SECRET, None)
            .interceptor(Tamper(|req| {
                let body = String::from_utf8(req.body().bytes().unwrap().to_vec()).unwrap();
                *req.body_mut() = body.replace("\"click\"", "\"cl1ck\"").into();
            }))
            .build(),
    );
    let err = put(&changed_body, &server, "bad-4").await.unwrap_err();
    assert!(err.starts_with("InvalidSignatureException"), "{err}");

    let unsigned = Client::from_conf(
        client(&server, ROOT_KEY, ROOT_SECRET, None)
            .interceptor(Tamper(|req| {
                req.headers_mut().remove("authorization");
            }))
            .build(),
    );
    let err = put(&unsigned, &server, "bad-5").await.unwrap_err();
    assert!(err.starts_with("MissingAuthenticationTokenException"), "{err}");

    let malformed = Client::from_conf(
        client(&server, ROOT_KEY, ROOT_SECRET, None)
            .interceptor(Tamper(|req| {
                req.headers_mut().insert("authorization", "AWS4-HMAC-SHA256 Credential=garbage");
            }))
            .build(),
    );
    let err = put(&malformed, &server, "bad-6").await.unwrap_err();
    assert!(err.starts_with("IncompleteSignatureException"), "{err}");

    // Session credentials: accepted for the key configured with that token, refused otherwise.
    let session =
        Client::from_conf(client(&server, "AKIDSESSIONKEY000001", "sessionSecret", Some("the-session-token")).build());
    put(&session, &server, "ok-2").await.expect("the configured session token is accepted");
    let no_token = Client::from_conf(client(&server, "AKIDSESSIONKEY000001", "sessionSecret", None).build());
    assert!(put(&no_token, &server, "bad-7").await.unwrap_err().starts_with("UnrecognizedClientException"));
    let wrong_token =
        Client::from_conf(client(&server, "AKIDSESSIONKEY000001", "sessionSecret", Some("other")).build());
    assert!(put(&wrong_token, &server, "bad-8").await.unwrap_err().starts_with("UnrecognizedClientException"));
    let root_with_token = Client::from_conf(client(&server, ROOT_KEY, ROOT_SECRET, Some("a-token")).build());
    assert!(put(&root_with_token, &server, "bad-9").await.unwrap_err().starts_with("UnrecognizedClientException"));

    let ids: Vec<String> = export_jsonl(&data).iter().map(|e| e["eventId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["ok-1", "ok-2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_accounts_key_cannot_use_the_tracker() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("keys.toml");
    std::fs::write(
        &creds,
        "[[key]]\naccess_key_id = \"AKIDOTHERACCOUNT0001\"\nsecret_access_key = \"otherSecret\"\naccount_id = \"111111111111\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--credentials-file", creds.to_str().unwrap()]);
    let other = Client::from_conf(client(&server, "AKIDOTHERACCOUNT0001", "otherSecret", None).build());
    let err = put(&other, &server, "x").await.unwrap_err();
    assert!(err.starts_with("InvalidInputException: The trackingId"), "{err}");
    let unknown_tracker = root(&server)
        .put_events()
        .tracking_id("no-such-tracker")
        .session_id("s")
        .event_list(click("y"))
        .send()
        .await
        .unwrap_err();
    // The same answer as for a tracking ID that exists nowhere: nothing leaks across accounts.
    assert_eq!(unknown_tracker.code(), Some("InvalidInputException"));
    assert!(export_jsonl(&data).is_empty());
}

/// `interlog export --data-dir DIR --dataset-arn ARN --format FORMAT`.
fn export_dataset(data_dir: &std::path::Path, arn: &str, format: &str) -> String {
    let out = std::process::Command::new(common::bin())
        .args(["export", "--format", format, "--output", "-", "--dataset-arn", arn, "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run interlog export");
    assert!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A dataset of `api_type` in `group`, with a schema of `fields`; its ARN.
fn dataset(addr: &str, group: &str, api_type: &str, schema_name: &str, fields: serde_json::Value) -> String {
    let schema = json!({"type": "record", "name": schema_name, "namespace": "com.amazonaws.personalize.schema",
                        "fields": fields, "version": "1.0"});
    let name = format!("sdk-{}", api_type.to_ascii_lowercase().replace('_', "-"));
    let r =
        control("127.0.0.1", addr, "CreateSchema", &json!({"name": name, "schema": schema.to_string()}), &Key::root());
    assert_eq!(r.status, 200, "{}", r.body);
    let schema_arn =
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["schemaArn"].as_str().unwrap().to_owned();
    let body = json!({"name": name, "schemaArn": schema_arn, "datasetGroupArn": group, "datasetType": api_type});
    let r = control("127.0.0.1", addr, "CreateDataset", &body, &Key::root());
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["datasetArn"].as_str().unwrap().to_owned()
}

fn code<E: ProvideErrorMetadata, R>(e: aws_sdk_personalizeevents::error::SdkError<E, R>) -> String {
    format!("{}: {}", e.code().unwrap_or("?"), e.message().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk_puts_items_users_actions_and_action_interactions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let addr = server.addr();
    let r = control("127.0.0.1", &addr, "CreateDatasetGroup", &json!({"name": "sdk"}), &Key::root());
    assert_eq!(r.status, 200, "{}", r.body);
    let group =
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["datasetGroupArn"].as_str().unwrap().to_owned();
    let items = dataset(
        &addr,
        &group,
        "Items",
        "Items",
        json!([
        {"name": "ITEM_ID", "type": "string"},
        {"name": "GENRES", "type": ["null", "string"], "categorical": true},
        {"name": "PRICE", "type": "double"}]),
    );
    let users = dataset(
        &addr,
        &group,
        "Users",
        "Users",
        json!([
        {"name": "USER_ID", "type": "string"}, {"name": "AGE", "type": ["null", "int"]}]),
    );
    let actions = dataset(
        &addr,
        &group,
        "Actions",
        "Actions",
        json!([
        {"name": "ACTION_ID", "type": "string"}, {"name": "VALUE", "type": ["null", "long"]}]),
    );
    let action_interactions = dataset(
        &addr,
        &group,
        "Action_Interactions",
        "ActionInteractions",
        json!([
        {"name": "USER_ID", "type": "string"}, {"name": "ACTION_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"},
        {"name": "IMPRESSION", "type": ["null", "string"]}]),
    );
    let described =
        control("127.0.0.1", &addr, "DescribeDataset", &json!({"datasetArn": action_interactions}), &Key::root());
    let tracking_id = serde_json::from_str::<serde_json::Value>(&described.body).unwrap()["dataset"]["trackingId"]
        .as_str()
        .expect("an Action_Interactions dataset has its trackingId")
        .to_owned();

    let client = root(&server);
    let item = |id: &str, props: &str| Item::builder().item_id(id).properties(props).build().unwrap();
    client
        .put_items()
        .dataset_arn(&items)
        .items(item("i1", r#"{"genres": "a|b", "price": 1.5}"#))
        .items(item("i2", r#"{"price": "2"}"#))
        .send()
        .await
        .unwrap();
    client.put_items().dataset_arn(&items).items(item("i1", r#"{"price": 3.25}"#)).send().await.unwrap();
    client
        .put_users()
        .dataset_arn(&users)
        .users(User::builder().user_id("u1").properties(r#"{"age": 33}"#).build().unwrap())
        .users(User::builder().user_id("u2").build().unwrap())
        .send()
        .await
        .unwrap();
    client
        .put_actions()
        .dataset_arn(&actions)
        .actions(Action::builder().action_id("a1").properties(r#"{"value": "100"}"#).build().unwrap())
        .send()
        .await
        .unwrap();
    let interaction = |id: &str, action: &str| {
        ActionInteraction::builder()
            .event_id(id)
            .action_id(action)
            .user_id("u1")
            .session_id("s1")
            .timestamp(DateTime::from_secs_f64(1_700_000_000.5))
            .event_type("Taken")
            .impression(action)
            .impression("a2")
            .build()
            .unwrap()
    };
    client
        .put_action_interactions()
        .tracking_id(&tracking_id)
        .action_interactions(interaction("e1", "a1"))
        .action_interactions(interaction("e1", "changed"))
        .send()
        .await
        .unwrap();

    assert_eq!(export_dataset(dir.path(), &items, "csv"), "ITEM_ID,GENRES,PRICE\r\ni1,,3.25\r\ni2,,2\r\n");
    assert_eq!(export_dataset(dir.path(), &users, "csv"), "USER_ID,AGE\r\nu1,33\r\nu2,\r\n");
    assert_eq!(export_dataset(dir.path(), &actions, "csv"), "ACTION_ID,VALUE\r\na1,100\r\n");
    assert_eq!(
        export_dataset(dir.path(), &action_interactions, "csv"),
        "USER_ID,ACTION_ID,TIMESTAMP,EVENT_TYPE,IMPRESSION\r\nu1,a1,1700000000,Taken,a1|a2\r\n",
        "the first copy of e1 wins"
    );

    // Each error type as the SDK reports it; nothing is stored.
    let wrong_type = client.put_users().dataset_arn(&items).users(User::builder().user_id("x").build().unwrap());
    let e = code(wrong_type.send().await.unwrap_err());
    assert!(e.starts_with("InvalidInputException: ") && e.contains("PutUsers needs a Users dataset"), "{e}");
    let unknown = format!("{group}-nope").replace("dataset-group/", "dataset/");
    let e = code(client.put_items().dataset_arn(&unknown).items(item("x", "{}")).send().await.unwrap_err());
    assert!(e.starts_with("ResourceNotFoundException: "), "{e}");
    let e = code(
        client
            .put_action_interactions()
            .tracking_id(&server.tracking_id)
            .action_interactions(interaction("e9", "a9"))
            .send()
            .await
            .unwrap_err(),
    );
    assert!(e.starts_with("InvalidInputException: ") && e.contains("PutEvents"), "{e}");
    let e = code(
        client.put_events().tracking_id(&tracking_id).session_id("s").event_list(click("x")).send().await.unwrap_err(),
    );
    assert!(e.starts_with("InvalidInputException: "), "{e}");
    assert_eq!(export_dataset(dir.path(), &users, "csv"), "USER_ID,AGE\r\nu1,33\r\nu2,\r\n");
    assert!(export_jsonl(dir.path()).is_empty(), "PutEvents stored nothing");
    server.stop();
}
