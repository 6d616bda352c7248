//! Several `interlog serve` processes on one PostgreSQL database (docs/scale-out.md): signed
//! load spread over three nodes with one SIGKILLed and restarted mid-load, then an export
//! through a surviving node; and what must hold across nodes: catalog changes honoured
//! everywhere within a second, one first-start bootstrap and one root key however many nodes
//! start at once, quotas under concurrent creates on different nodes, and the same eventId sent
//! to two nodes exported once.
//!
//! Runs when `INTERLOG_TEST_DATABASE_URL` is set (every test in a schema of its own, dropped at
//! the end); otherwise each test prints `SKIPPED` and passes.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{control, put_events_body, put_events_signed, try_start_keyed, Key, Reply, Server, ROOT_KEY, ROOT_SECRET};
use serde_json::{json, Value};

const ENV: &str = "INTERLOG_TEST_DATABASE_URL";
/// How long a catalog change may take to reach another node (the bound).
const PROPAGATION: Duration = Duration::from_secs(1);

/// A schema of the test database of its own, dropped (with everything in it) when dropped.
/// Declare it before the servers so they are gone when it drops.
struct PgSchema {
    admin_url: String,
    name: String,
}

impl PgSchema {
    /// A new empty schema, or `None` with a printed line when no test database is configured.
    fn create(test: &str) -> Option<PgSchema> {
        let Ok(admin_url) = std::env::var(ENV).map(|u| u.trim().to_owned()) else {
            eprintln!("SKIPPED {test}: {ENV} is not set, so the multi-node PostgreSQL tests do not run");
            return None;
        };
        if admin_url.is_empty() {
            eprintln!("SKIPPED {test}: {ENV} is empty, so the multi-node PostgreSQL tests do not run");
            return None;
        }
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        // The same prefix as the engine's own tests, so a crashed run's schema is swept by them.
        let name = format!("interlog_test_{epoch}_{}_mn{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        psql(&admin_url, &format!("CREATE SCHEMA {name}"));
        Some(PgSchema { admin_url, name })
    }

    /// The URL every node of this deployment gets.
    fn url(&self) -> String {
        let sep = if self.admin_url.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.admin_url, self.name)
    }

    /// One value of a query in this schema.
    fn query(&self, sql: &str) -> String {
        psql(&self.url(), sql).trim().to_owned()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let out = Command::new("psql")
            .args(["-q", "-v", "ON_ERROR_STOP=1", &self.admin_url, "-c"])
            .arg(format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .output();
        if !out.is_ok_and(|o| o.status.success()) {
            eprintln!("could not drop the test schema {} (a later run will)", self.name);
        }
    }
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .output()
        .expect("run psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A loopback port nothing listens on now, so a restarted node can take its old port again.
fn free_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("127.0.0.1:{}", listener.local_addr().unwrap().port())
}

/// One node of the deployment: `interlog serve --database-url` with a data dir of its own.
fn node(dir: &Path, n: usize, listen: &str, db: &PgSchema, root_key_from_env: bool) -> Server {
    node_with_env(dir, n, listen, db, root_key_from_env, &[])
}

fn node_with_env(
    dir: &Path,
    n: usize,
    listen: &str,
    db: &PgSchema,
    root_key_from_env: bool,
    env: &[(&str, &str)],
) -> Server {
    let data = dir.join(format!("node{n}"));
    let log = dir.join(format!("node{n}.log"));
    let url = db.url();
    try_start_keyed(&data, listen, &["--database-url", &url], env, Some(&log), root_key_from_env)
        .unwrap_or_else(|why| panic!("node {n} did not start: {why}; log: {}", read_log(&log)))
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `count` nodes started at the same moment, each on a port of its own.
fn nodes_at_once(dir: &Path, count: usize, db: &PgSchema, root_key_from_env: bool) -> Vec<Server> {
    let barrier = Barrier::new(count);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..count)
            .map(|n| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    // Port 0: the node takes one itself and prints it. A port picked beforehand
                    // can be taken by a parallel test before the node binds it.
                    node(dir, n, "127.0.0.1:0", db, root_key_from_env)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a node started")).collect()
    })
}

fn banner_value(server: &Server, prefix: &str) -> String {
    let line = server.banner.iter().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} line"));
    line[prefix.len()..].trim().to_owned()
}

fn ok(reply: &Reply, what: &str) -> Value {
    assert_eq!(reply.status, 200, "{what}: {} {}", reply.error_type, reply.body);
    serde_json::from_str(&reply.body).unwrap_or(Value::Null)
}

fn call(server: &Server, op: &str, body: Value) -> Reply {
    control("127.0.0.1", &server.addr(), op, &body, &Key::root())
}

/// A PutEvents of one click per eventId, signed with the root key, through `server`.
fn put(server: &Server, tracking_id: &str, ids: &[String]) -> Reply {
    let body = put_events_body(tracking_id, ids);
    put_events_signed("127.0.0.1", &server.addr(), body.as_bytes(), &Key::root()).expect("PutEvents answered")
}

/// `interlog export --endpoint-url` through `server`: every exported row of the default group.
fn export_through(server: &Server, key: &Key, group: Option<&str>) -> Vec<Value> {
    let mut cmd = Command::new(common::bin());
    cmd.args(["export", "--format", "jsonl", "--output", "-", "--endpoint-url", &server.endpoint]);
    if let Some(group) = group {
        cmd.args(["--dataset-group", group]);
    }
    let out = cmd
        .env_remove("INTERLOG_DATABASE_URL")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .output()
        .expect("run interlog export");
    assert!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).expect("a jsonl row")).collect()
}

/// eventId → how many exported rows carry it.
fn id_counts(rows: &[Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for row in rows {
        *counts.entry(row["eventId"].as_str().expect("an eventId").to_owned()).or_insert(0) += 1;
    }
    counts
}

/// Polls `f` every 20 ms until it holds, at most `limit`; how long it took, `None` if never.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if f() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What one load client saw of one request: its eventIds and how it ended.
#[derive(Default)]
struct Ledger {
    /// Answered 200 by some node (perhaps after retries elsewhere).
    acknowledged: HashSet<String>,
    /// Answered with an error by a node and never acknowledged afterwards: must not be stored.
    refused: HashSet<String>,
    /// 200s per node index.
    per_node: [u64; 3],
    /// Attempts that got no answer (the killed node's connections).
    unanswered: u64,
}

#[test]
fn three_nodes_one_killed_mid_load_every_acknowledged_event_is_exported_once() {
    let Some(db) = PgSchema::create("three_nodes_one_killed_mid_load") else { return };
    let dir = tempfile::tempdir().unwrap();
    // Port 0: each node takes one itself (a port picked beforehand can be taken by a parallel
    // test before the node binds it); the killed node is restarted on the one it had.
    let first = node(dir.path(), 0, "127.0.0.1:0", &db, true);
    let tracking_id = first.tracking_id.clone();
    let mut nodes: Vec<Option<Server>> =
        std::iter::once(first).chain((1..3).map(|n| node(dir.path(), n, "127.0.0.1:0", &db, true))).map(Some).collect();
    let ports: Vec<String> =
        nodes.iter().map(|n| n.as_ref().unwrap().endpoint.trim_start_matches("http://").to_owned()).collect();
    let addrs: Vec<String> = ports.clone();

    // Six clients, each sending 10-event requests round-robin over the three nodes; a request
    // that gets no answer is retried with the same eventIds on the next node, as an SDK would
    // after a connection reset, so it may be stored twice (by the dying node and by the next).
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let (stop, addrs, tracking_id) = (stop.clone(), addrs.clone(), tracking_id.clone());
            std::thread::spawn(move || {
                let mut ledger = Ledger::default();
                let mut request = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let ids: Vec<String> = (0..10).map(|e| format!("c{c}-r{request}-e{e}")).collect();
                    let body = put_events_body(&tracking_id, &ids);
                    let mut target = (c + request as usize) % 3;
                    let mut answered_error = None;
                    let mut acknowledged = false;
                    for _attempt in 0..200 {
                        match put_events_signed("127.0.0.1", &addrs[target], body.as_bytes(), &Key::root()) {
                            Ok(reply) if reply.status == 200 => {
                                ledger.per_node[target] += 1;
                                acknowledged = true;
                                break;
                            }
                            Ok(reply) => {
                                answered_error = Some(format!("{} {} {}", reply.status, reply.error_type, reply.body));
                                break;
                            }
                            Err(_) => {
                                ledger.unanswered += 1;
                                target = (target + 1) % 3;
                                std::thread::sleep(Duration::from_millis(5));
                            }
                        }
                    }
                    if acknowledged {
                        ledger.acknowledged.extend(ids);
                    } else {
                        eprintln!("client {c} request {request} not acknowledged: {answered_error:?}");
                        ledger.refused.extend(ids);
                    }
                    request += 1;
                }
                ledger
            })
        })
        .collect();

    // Load on all three, then node 1 is SIGKILLed mid-load and restarted on its port and data
    // dir after a while, and serves again while the load goes on.
    std::thread::sleep(Duration::from_millis(1500));
    let killed = nodes[1].take().unwrap();
    killed.kill9();
    let killed_at = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    let restarted = node(dir.path(), 1, &ports[1], &db, true);
    assert_eq!(restarted.tracking_id, tracking_id, "the restarted node serves the same deployment");
    nodes[1] = Some(restarted);
    let restarted_at = Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    let ledgers: Vec<Ledger> = clients.into_iter().map(|c| c.join().expect("a load client")).collect();
    eprintln!(
        "node 1 down for {:.1} s; load for {:.1} s after its restart",
        (restarted_at - killed_at).as_secs_f64(),
        restarted_at.elapsed().as_secs_f64()
    );

    let mut acknowledged = HashSet::new();
    let mut refused = HashSet::new();
    let (mut per_node, mut unanswered) = ([0u64; 3], 0);
    for l in ledgers {
        acknowledged.extend(l.acknowledged);
        refused.extend(l.refused);
        for (total, n) in per_node.iter_mut().zip(l.per_node) {
            *total += n;
        }
        unanswered += l.unanswered;
    }
    eprintln!(
        "acknowledged {} events ({per_node:?} requests per node), {unanswered} attempts unanswered, {} refused",
        acknowledged.len(),
        refused.len()
    );
    assert!(per_node.iter().all(|&n| n > 0), "every node served load: {per_node:?}");
    assert!(acknowledged.len() >= 300, "enough load to mean something: {}", acknowledged.len());
    assert!(refused.is_empty(), "no request was refused while the database was up");

    // Through a surviving node (0, never killed): every acknowledged event exactly once, and
    // nothing that no client sent.
    let surviving = nodes[0].take().unwrap();
    let rows = export_through(&surviving, &Key::root(), None);
    let counts = id_counts(&rows);
    let twice: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).map(|(id, _)| id.clone()).collect();
    assert!(twice.is_empty(), "exported more than once: {:?}", &twice[..twice.len().min(10)]);
    let missing: Vec<_> = acknowledged.iter().filter(|id| !counts.contains_key(*id)).cloned().collect();
    assert!(missing.is_empty(), "acknowledged but not exported: {:?}", &missing[..missing.len().min(10)]);
    let unknown: Vec<_> = counts.keys().filter(|id| !acknowledged.contains(*id)).cloned().collect();
    assert!(unknown.is_empty(), "exported but never acknowledged: {:?}", &unknown[..unknown.len().min(10)]);
    assert_eq!(rows.len(), acknowledged.len());
    // The restarted node reads the same log: its export agrees row for row.
    let restarted = nodes[1].take().unwrap();
    assert_eq!(export_through(&restarted, &Key::root(), None), rows);
    eprintln!("stored rows (copies included): {}; exported {}", db.query("SELECT count(*) FROM events"), rows.len());
}

/// Creates schema, group, dataset (when `with_dataset`) and tracker through `server`.
struct Group {
    arn: String,
    dataset_arn: Option<String>,
}

fn interactions_schema(server: &Server, name: &str) -> String {
    let schema = json!({
        "type": "record", "name": "Interactions", "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "USER_ID", "type": "string"}, {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"}, {"name": "EVENT_TYPE", "type": "string"}
        ],
        "version": "1.0"
    });
    let reply = call(server, "CreateSchema", json!({"name": name, "schema": schema.to_string()}));
    ok(&reply, "CreateSchema")["schemaArn"].as_str().unwrap().to_owned()
}

fn group(server: &Server, name: &str, schema_arn: Option<&str>) -> Group {
    let arn = ok(&call(server, "CreateDatasetGroup", json!({"name": name})), "CreateDatasetGroup")["datasetGroupArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let dataset_arn = schema_arn.map(|schema| dataset(server, &format!("{name}-interactions"), &arn, schema));
    Group { arn, dataset_arn }
}

fn dataset(server: &Server, name: &str, group_arn: &str, schema_arn: &str) -> String {
    let body =
        json!({"name": name, "schemaArn": schema_arn, "datasetGroupArn": group_arn, "datasetType": "Interactions"});
    ok(&call(server, "CreateDataset", body), "CreateDataset")["datasetArn"].as_str().unwrap().to_owned()
}

fn tracker(server: &Server, name: &str, group_arn: &str) -> (String, String) {
    let v = ok(&call(server, "CreateEventTracker", json!({"name": name, "datasetGroupArn": group_arn})), name);
    (v["eventTrackerArn"].as_str().unwrap().to_owned(), v["trackingId"].as_str().unwrap().to_owned())
}

/// How long until PutEvents of one probe event through `server` answers as `want` says
/// (`None`: not within [`PROPAGATION`]); the probes answered 200 on the way are added to `acked`.
fn put_until(
    server: &Server,
    tracking_id: &str,
    probe: &str,
    acked: &mut Vec<String>,
    want: impl Fn(&Reply) -> bool,
) -> Option<Duration> {
    let mut n = 0;
    within(PROPAGATION, || {
        n += 1;
        let id = format!("{probe}-{n}");
        let reply = put(server, tracking_id, std::slice::from_ref(&id));
        if reply.status == 200 {
            acked.push(id);
        }
        want(&reply)
    })
}

#[test]
fn a_resource_created_or_deleted_through_one_node_is_honoured_by_another_within_a_second() {
    let Some(db) = PgSchema::create("catalog_changes_cross_nodes") else { return };
    let dir = tempfile::tempdir().unwrap();
    let a = node(dir.path(), 0, "127.0.0.1:0", &db, true);
    let b = node(dir.path(), 1, "127.0.0.1:0", &db, true);
    let schema = interactions_schema(&a, "mn-schema");
    let refused = |r: &Reply| r.status == 400 && r.error_type == "InvalidInputException";
    let mut acked = Vec::new();

    // A tracker created through A records through B within a second.
    let g1 = group(&a, "mn-group-1", Some(&schema));
    let (t1_arn, t1) = tracker(&a, "mn-tracker-1", &g1.arn);
    let took =
        put_until(&b, &t1, "t1-new", &mut acked, |r| r.status == 200).expect("B accepts A's new tracker within 1 s");
    eprintln!("tracker created on A, usable on B after {:.0} ms", took.as_secs_f64() * 1000.0);
    // B's control plane sees it too, and both nodes' exports of the group agree.
    ok(&call(&b, "DescribeEventTracker", json!({"eventTrackerArn": t1_arn})), "DescribeEventTracker through B");

    // A dataset created through A (for a group whose tracker B already knows) is recorded
    // into through B within a second.
    let g2 = group(&a, "mn-group-2", None);
    let (_, t2) = tracker(&a, "mn-tracker-2", &g2.arn);
    let no_dataset = |r: &Reply| refused(r) && r.body.contains("no Interactions dataset");
    put_until(&b, &t2, "t2-early", &mut acked, no_dataset).expect("B knows the tracker without a dataset within 1 s");
    let d2 = dataset(&a, "mn-group-2-interactions", &g2.arn, &schema);
    let took = put_until(&b, &t2, "t2-new", &mut acked, |r| r.status == 200)
        .expect("B records into A's new dataset within 1 s");
    eprintln!("dataset created on A, usable on B after {:.0} ms", took.as_secs_f64() * 1000.0);

    // A tracker deleted through A is refused by B within a second, and stays refused.
    ok(&call(&a, "DeleteEventTracker", json!({"eventTrackerArn": t1_arn})), "DeleteEventTracker");
    let took = put_until(&b, &t1, "t1-deleted", &mut acked, refused).expect("B refuses A's deleted tracker within 1 s");
    eprintln!("tracker deleted on A, refused on B after {:.0} ms", took.as_secs_f64() * 1000.0);
    for n in 0..5 {
        assert!(refused(&put(&b, &t1, &[format!("t1-after-{n}")])), "a deleted tracker stays refused");
    }

    // A dataset deleted through A is refused by B within a second, and stays refused.
    ok(&call(&a, "DeleteDataset", json!({"datasetArn": d2})), "DeleteDataset");
    let took = put_until(&b, &t2, "t2-deleted", &mut acked, refused).expect("B refuses the deleted dataset within 1 s");
    eprintln!("dataset deleted on A, refused on B after {:.0} ms", took.as_secs_f64() * 1000.0);
    for n in 0..5 {
        assert!(refused(&put(&b, &t2, &[format!("t2-after-{n}")])), "a deleted dataset stays refused");
    }

    // Nothing refused was stored: g1's dataset holds exactly the probes answered 200 through its
    // tracker (the first "t1-new" one, and any "t1-deleted" ones answered before B heard of the
    // delete); the deleted dataset's events go with it.
    let rows = export_through(&a, &Key::root(), Some("mn-group-1"));
    let mut ids: Vec<String> = rows.iter().map(|r| r["eventId"].as_str().unwrap().to_owned()).collect();
    let mut want: Vec<String> = acked.iter().filter(|id| id.starts_with("t1-")).cloned().collect();
    ids.sort();
    want.sort();
    assert_eq!(ids, want, "exactly the acknowledged probes are stored");
    assert!(g1.dataset_arn.is_some());
}

#[test]
fn three_nodes_starting_together_bootstrap_once_and_share_one_root_key() {
    let Some(db) = PgSchema::create("bootstrap_once") else { return };
    let dir = tempfile::tempdir().unwrap();
    // No root key in the environment: the nodes must agree on the one the database keeps.
    let nodes = nodes_at_once(dir.path(), 3, &db, false);

    let created: Vec<_> = nodes.iter().filter(|n| banner_value(n, "dataset group:").ends_with("(created)")).collect();
    assert_eq!(created.len(), 1, "exactly one node created the defaults: {:?}", banners(&nodes));
    let group_arn = banner_value(&nodes[0], "dataset group:").split(' ').next().unwrap().to_owned();
    for n in &nodes {
        assert_eq!(banner_value(n, "dataset group:").split(' ').next().unwrap(), group_arn);
        assert_eq!(n.tracking_id, nodes[0].tracking_id, "one default tracker");
    }

    // One root key, printed (with its secret) only by the node whose insert won.
    let makers: Vec<_> = nodes.iter().filter(|n| banner_value(n, "auth:").contains("new root key")).collect();
    assert_eq!(makers.len(), 1, "exactly one node generated the root key: {:?}", banners(&nodes));
    // "SigV4, new root key ID kept in ..." / "SigV4, root key ID (kept in the database)"
    let key_id = |n: &Server| {
        let auth = banner_value(n, "auth:");
        let words: Vec<&str> = auth.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "key").expect("a root key in the banner");
        words[at + 1].to_owned()
    };
    let id = key_id(makers[0]);
    for n in &nodes {
        assert_eq!(key_id(n), id, "every node uses the stored root key: {:?}", n.banner);
    }
    let secret_line =
        makers[0].banner.iter().find(|l| l.contains("aws_secret_access_key")).expect("the secret is printed once");
    let secret = secret_line.split_whitespace().nth(4).unwrap().to_owned();
    let key = Key { id: id.clone(), secret, region: "us-east-1".into() };
    assert_ne!(key.id, ROOT_KEY);
    assert_eq!(nodes.iter().filter(|n| n.banner.iter().any(|l| l.contains("aws_secret_access_key"))).count(), 1);

    // Every node accepts the key, and every node lists exactly one of each default resource.
    for n in &nodes {
        for (op, plural) in [
            ("ListDatasetGroups", "datasetGroups"),
            ("ListSchemas", "schemas"),
            ("ListDatasets", "datasets"),
            ("ListEventTrackers", "eventTrackers"),
        ] {
            let v = ok(&control("127.0.0.1", &n.addr(), op, &json!({}), &key), op);
            assert_eq!(v[plural].as_array().map(Vec::len), Some(1), "{op} through {}: {v}", n.endpoint);
        }
    }
    // A wrong secret is refused by all of them alike.
    let wrong = Key { secret: ROOT_SECRET.into(), ..key.clone() };
    for n in &nodes {
        let r = control("127.0.0.1", &n.addr(), "ListDatasetGroups", &json!({}), &wrong);
        assert_eq!(r.error_type, "InvalidSignatureException", "{}", r.body);
    }
    // Events sent with it through one node export through another.
    let body = put_events_body(&nodes[0].tracking_id, &["k-1".to_owned()]);
    let r = put_events_signed("127.0.0.1", &nodes[1].addr(), body.as_bytes(), &key).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let rows = export_through(&nodes[2], &key, None);
    assert_eq!(id_counts(&rows).get("k-1"), Some(&1));
    assert_eq!(db.query("SELECT count(*) FROM access_keys"), "1", "one key row in the database");
}

fn banners(nodes: &[Server]) -> Vec<&Vec<String>> {
    nodes.iter().map(|n| &n.banner).collect()
}

#[test]
fn the_dataset_group_quota_holds_under_concurrent_creates_on_different_nodes() {
    let Some(db) = PgSchema::create("quota_across_nodes") else { return };
    let dir = tempfile::tempdir().unwrap();
    let nodes = nodes_at_once(dir.path(), 3, &db, true);
    // The default group is one of the account's five: four more fit. Twelve creates race, four
    // through each node, all released at once.
    let barrier = Barrier::new(12);
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let (barrier, node) = (&barrier, &nodes[i % 3]);
                s.spawn(move || {
                    barrier.wait();
                    call(node, "CreateDatasetGroup", json!({"name": format!("race-{i}")}))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = replies.iter().filter(|r| r.status == 200).count();
    let limited = replies.iter().filter(|r| r.error_type == "LimitExceededException").count();
    assert_eq!(
        (created, limited),
        (4, 8),
        "{:?}",
        replies.iter().map(|r| (r.status, &r.error_type)).collect::<Vec<_>>()
    );
    for n in &nodes {
        let v = ok(&call(n, "ListDatasetGroups", json!({})), "ListDatasetGroups");
        assert_eq!(v["datasetGroups"].as_array().unwrap().len(), 5, "through {}", n.endpoint);
    }
    // Names are unique across nodes as well: the same name at once through two nodes, one wins
    // (two places freed first, so the quota is not what refuses the loser).
    for _ in 0..2 {
        let free = call(&nodes[0], "DeleteDatasetGroup", json!({"datasetGroupArn": first_race_group(&nodes[0])}));
        ok(&free, "DeleteDatasetGroup");
    }
    let barrier = Barrier::new(2);
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = [&nodes[1], &nodes[2]]
            .into_iter()
            .map(|node| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    call(node, "CreateDatasetGroup", json!({"name": "same-name"}))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut outcomes: Vec<_> = replies.iter().map(|r| r.error_type.clone()).collect();
    outcomes.sort();
    assert_eq!(outcomes, ["", "ResourceAlreadyExistsException"], "{replies:?}");
}

fn first_race_group(node: &Server) -> String {
    let v = ok(&call(node, "ListDatasetGroups", json!({})), "ListDatasetGroups");
    v["datasetGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"].as_str().is_some_and(|n| n.starts_with("race-")))
        .expect("a race group")["datasetGroupArn"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_same_event_id_sent_to_two_nodes_is_exported_once_first_copy_wins() {
    let Some(db) = PgSchema::create("same_event_two_nodes") else { return };
    let dir = tempfile::tempdir().unwrap();
    let nodes = nodes_at_once(dir.path(), 3, &db, true);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let tracking_id = a.tracking_id.clone();
    let send = |server: &Server, ids: &[String], item: &str| {
        let events: Vec<Value> = ids
            .iter()
            .map(|id| json!({"eventId": id, "eventType": "click", "itemId": item, "sentAt": 1_700_000_000}))
            .collect();
        let body = json!({"trackingId": tracking_id, "sessionId": "s1", "eventList": events}).to_string();
        let r = put_events_signed("127.0.0.1", &server.addr(), body.as_bytes(), &Key::root()).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    };

    // One after the other: A first, then B with other content; the first copy wins.
    let later: Vec<String> = (0..10).map(|i| format!("seq-{i}")).collect();
    send(a, &later, "from-a");
    send(b, &later, "from-b");
    // At once: A and B race with the same eventIds, twenty times.
    let raced: Vec<Vec<String>> = (0..20).map(|r| (0..10).map(|i| format!("race-{r}-{i}")).collect()).collect();
    for ids in &raced {
        let barrier = Barrier::new(2);
        std::thread::scope(|s| {
            for (server, item) in [(a, "from-a"), (b, "from-b")] {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    send(server, ids, item);
                });
            }
        });
    }
    // Both copies were stored (each node's window knows only its own writes)...
    let stored: u64 = db.query("SELECT count(*) FROM events").parse().unwrap();
    assert_eq!(stored, 2 * (10 + 20 * 10), "both nodes stored their copy");
    // ...and the export through a third node holds each eventId once, the sequential ones with
    // A's content (the first committed copy).
    let rows = export_through(c, &Key::root(), None);
    let counts = id_counts(&rows);
    assert_eq!(rows.len(), 10 + 20 * 10);
    assert!(counts.values().all(|&n| n == 1), "each eventId once");
    for row in &rows {
        let id = row["eventId"].as_str().unwrap();
        if id.starts_with("seq-") {
            assert_eq!(row["itemId"], "from-a", "the first copy wins: {row}");
        }
    }
    // Raced copies: one of the two, never a mix within an event.
    assert!(rows.iter().all(|r| r["itemId"] == "from-a" || r["itemId"] == "from-b"));
    // A retry to the same node is dropped at its door.
    send(a, &later, "again-a");
    assert_eq!(db.query("SELECT count(*) FROM events").parse::<u64>().unwrap(), stored);
}

/// A running `haproxy -db` (foreground); killed when dropped.
struct Haproxy(std::process::Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn haproxy_binary() -> Option<String> {
    let found = Command::new("haproxy").arg("-v").output().is_ok_and(|o| o.status.success());
    found.then(|| "haproxy".to_owned())
}

/// `eventsStored` of a node's `/_interlog/stats` (signed by the root key).
fn events_stored(server: &Server) -> u64 {
    let call = common::Call { method: "GET", path: "/_interlog/stats", headers: &[], body: b"" };
    let reply = common::signed_exchange("127.0.0.1", &server.addr(), call, &Key::root(), common::Signing::default())
        .expect("stats answered");
    ok(&reply, "stats")["eventsStored"].as_u64().expect("eventsStored in the stats")
}

#[test]
fn behind_the_example_haproxy_config_every_node_serves_and_a_dead_one_is_routed_around() {
    let Some(db) = PgSchema::create("behind_haproxy") else { return };
    let Some(haproxy) = haproxy_binary() else {
        eprintln!("SKIPPED behind_haproxy: no haproxy binary on PATH (apt-get install haproxy)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Every request comes from HAProxy's address: each node lets one address hold everything,
    // as docs/scale-out.md says to.
    let share = [("INTERLOG_PER_PEER_SHARE", "1")];
    let ports: Vec<String> = (0..3).map(|_| free_port()).collect();
    let mut nodes: Vec<Option<Server>> =
        (0..3).map(|n| Some(node_with_env(dir.path(), n, &ports[n], &db, true, &share))).collect();
    let tracking_id = nodes[0].as_ref().unwrap().tracking_id.clone();

    // The example config as shipped, with this test's ports.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/haproxy.cfg");
    let mut config = std::fs::read_to_string(&example).expect("examples/haproxy.cfg");
    let lb = free_port();
    assert!(config.contains("bind 127.0.0.1:8787"), "the example's frontend moved");
    config = config.replace("bind 127.0.0.1:8787", &format!("bind {lb}"));
    for (n, port) in ports.iter().enumerate() {
        let shipped = format!("127.0.0.1:880{}", n + 1);
        assert!(config.contains(&shipped), "the example's node {} moved", n + 1);
        config = config.replace(&shipped, port);
    }
    let config_path = dir.path().join("haproxy.cfg");
    std::fs::write(&config_path, config).unwrap();
    let check = Command::new(&haproxy).arg("-c").arg("-f").arg(&config_path).output().unwrap();
    assert!(check.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&check.stderr));
    let log = std::fs::File::create(dir.path().join("haproxy.log")).unwrap();
    let _proxy = Haproxy(
        Command::new(&haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&config_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start haproxy"),
    );
    let send = |ids: &[String]| {
        let body = put_events_body(&tracking_id, ids);
        put_events_signed("127.0.0.1", &lb, body.as_bytes(), &Key::root())
    };
    let mut acknowledged = HashSet::new();
    let mut request = 0;
    let mut next_ids = || {
        request += 1;
        (0..10).map(|e| format!("lb-r{request}-e{e}")).collect::<Vec<String>>()
    };
    // Up once its health checks passed (a few seconds at `inter 1s`).
    let up = within(Duration::from_secs(15), || {
        let ids = next_ids();
        let answered = send(&ids).is_ok_and(|r| r.status == 200);
        if answered {
            acknowledged.extend(ids);
        }
        answered
    });
    assert!(up.is_some(), "HAProxy forwarded a signed PutEvents: log {}", read_log(&dir.path().join("haproxy.log")));
    // Round robin: every node gets requests, signed for the balancer's address.
    for _ in 0..30 {
        let ids = next_ids();
        let r = send(&ids).expect("answered through HAProxy");
        assert_eq!(r.status, 200, "{} {}", r.error_type, r.body);
        acknowledged.extend(ids);
    }
    for server in nodes.iter().flatten() {
        assert!(events_stored(server) >= 50, "node {} served its share", server.endpoint);
    }

    // A node dies: the next requests are retried on the others (connect fails, `retries` and
    // `redispatch`) until the health check takes it out; no client sees an error.
    nodes[2].take().unwrap().kill9();
    for _ in 0..30 {
        let ids = next_ids();
        let r = send(&ids).expect("answered through HAProxy");
        assert_eq!(r.status, 200, "with a node down: {} {}", r.error_type, r.body);
        acknowledged.extend(ids);
    }

    // An export through the balancer (a streamed GET, whichever node gets it) holds every
    // acknowledged event once.
    let lb_server_endpoint = format!("http://{lb}");
    let rows = {
        let out = Command::new(common::bin())
            .args(["export", "--format", "jsonl", "--output", "-", "--endpoint-url", &lb_server_endpoint])
            .env_remove("INTERLOG_DATABASE_URL")
            .env_remove("AWS_PROFILE")
            .env("AWS_ACCESS_KEY_ID", ROOT_KEY)
            .env("AWS_SECRET_ACCESS_KEY", ROOT_SECRET)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/nonexistent/config")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
            .output()
            .unwrap();
        assert!(out.status.success(), "export through HAProxy: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect::<Vec<Value>>()
    };
    let counts = id_counts(&rows);
    assert!(counts.values().all(|&n| n == 1));
    let exported: HashSet<String> = counts.into_keys().collect();
    assert_eq!(exported, acknowledged);
}
