//! The conformance suite of `interlog-store` against PostgreSQL, multi-node cases included.
//! Runs when `INTERLOG_TEST_DATABASE_URL` is set; otherwise every case prints `SKIPPED`.

mod common;

use common::engine_or_none;

interlog_store::conformance_suite!(engine_or_none());
