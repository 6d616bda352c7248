//! Reaching the test database: `INTERLOG_TEST_DATABASE_URL` names it (unset: tests skip), and
//! every location is a fresh schema, dropped when the engine is, so tests never see each
//! other's data and runs may overlap. Schemas left by a crashed run are dropped by the next
//! run once they are an hour old (the creation time is in the name).

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use interlog_store::testing::Engine;
use interlog_store::{Store, WriterOptions};
use interlog_store_postgres::PostgresStore;

pub const ENV: &str = "INTERLOG_TEST_DATABASE_URL";
const PREFIX: &str = "interlog_test_";

pub struct Pg {
    pub url: String,
    schemas: Mutex<Vec<String>>,
}

/// The engine, or `None` (with a printed line) when no test database is configured.
pub fn engine_or_none() -> Option<Pg> {
    match std::env::var(ENV) {
        Ok(url) if !url.trim().is_empty() => Some(Pg { url, schemas: Mutex::new(Vec::new()) }),
        _ => {
            eprintln!("SKIPPED: {ENV} is not set, so the PostgreSQL tests do not run");
            None
        }
    }
}

fn epoch() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("test database");
    tokio::spawn(connection);
    client
}

/// The URL of a store in `schema`.
pub fn url_in(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

impl Pg {
    /// A new empty schema, dropped with the engine.
    pub async fn schema(&self) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        static SWEPT: AtomicBool = AtomicBool::new(false);
        let client = admin(&self.url).await;
        if !SWEPT.swap(true, Ordering::SeqCst) {
            sweep(&client).await;
        }
        let name = format!("{PREFIX}{}_{}_{}", epoch(), std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        client.batch_execute(&format!("CREATE SCHEMA {name}")).await.expect("create the test schema");
        self.schemas.lock().unwrap().push(name.clone());
        name
    }
}

/// Drops schemas of earlier runs older than an hour.
async fn sweep(client: &tokio_postgres::Client) {
    let rows = client
        .query("SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", &[&format!("{PREFIX}%")])
        .await
        .expect("list test schemas");
    let cutoff = epoch().saturating_sub(3600);
    for r in rows {
        let name: String = r.get(0);
        let born: Option<u64> = name[PREFIX.len()..].split('_').next().and_then(|s| s.parse().ok());
        if born.is_some_and(|b| b < cutoff) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE")).await;
        }
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let schemas = std::mem::take(&mut *self.schemas.lock().unwrap());
        if schemas.is_empty() {
            return;
        }
        let url = self.url.clone();
        // Drop runs inside the test's runtime; a thread of its own may block on the database.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let client = admin(&url).await;
                // Stores just dropped may still be closing their connections.
                let _ = client.batch_execute("SET lock_timeout = '10s'").await;
                for s in schemas {
                    if let Err(e) = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {s} CASCADE")).await {
                        eprintln!("could not drop the test schema {s} (a later run will): {e}");
                    }
                }
            });
        })
        .join();
    }
}

#[async_trait]
impl Engine for Pg {
    async fn location(&self) -> String {
        url_in(&self.url, &self.schema().await)
    }

    async fn open(&self, location: &str, options: WriterOptions) -> Arc<dyn Store> {
        PostgresStore::open(location, options).await.expect("open the PostgreSQL store")
    }

    fn shared(&self) -> bool {
        true
    }
}
