//! The engine-neutral conformance suite against the SQLite engine, one temporary data dir per
//! location.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use interlog_store::testing::Engine;
use interlog_store::{Store, WriterOptions};
use interlog_store_sqlite::SqliteStore;

/// Temporary data dirs, removed when the engine (one per test) goes.
#[derive(Default)]
struct Sqlite {
    dirs: Mutex<Vec<tempfile::TempDir>>,
}

#[async_trait]
impl Engine for Sqlite {
    async fn location(&self) -> String {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("data").display().to_string();
        self.dirs.lock().unwrap().push(dir);
        path
    }

    async fn open(&self, location: &str, options: WriterOptions) -> Arc<dyn Store> {
        let location = std::path::PathBuf::from(location);
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&location, options))
            .await
            .unwrap()
            .expect("open the store");
        store
    }

    fn shared(&self) -> bool {
        false
    }
}

interlog_store::conformance_suite!(Some(Sqlite::default()));
