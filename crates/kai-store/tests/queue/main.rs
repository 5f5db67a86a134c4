//! The durable queue's suite: conformance (`conformance.rs`) and property tests (`props.rs`),
//! run against SQLite always and against PostgreSQL when `KAI_TEST_POSTGRES_URL` is set (the
//! project's test command sets it; CI runs both). Time is simulated: every call takes `now_us`,
//! so leases expire and backoffs elapse without sleeping.

mod conformance;
mod props;

use std::sync::Arc;
use std::time::Duration;

use kai_core::queue::QueueName;
use kai_store::Store;
use kai_store::queue::ClaimRequest;

/// A store on one backend plus whatever must be cleaned up after.
pub struct Backend {
    pub store: Arc<dyn Store>,
    cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("kai.db").display());
        let store = kai_store::open(&url, 4).await.unwrap();
        Self { store, cleanup: None, _dir: Some(dir) }
    }

    pub async fn postgres() -> Option<Self> {
        let url = std::env::var("KAI_TEST_POSTGRES_URL").ok()?;
        let schema = format!("kai_test_{}", uuid::Uuid::now_v7().simple());
        let store = kai_store::open_postgres_schema(&url, &schema, 8).await.unwrap();
        Some(Self { store, cleanup: Some((url, schema)), _dir: None })
    }

    pub async fn finish(self) {
        self.store.close().await;
        if let Some((url, schema)) = self.cleanup {
            kai_store::drop_postgres_schema(&url, &schema).await.unwrap();
        }
    }
}

/// A fixed start time for the simulated clock (µs).
pub const T0: i64 = 1_800_000_000_000_000;

pub fn ms(n: i64) -> i64 {
    n * 1000
}

pub fn secs(n: i64) -> i64 {
    n * 1_000_000
}

pub fn queue(name: &str) -> QueueName {
    name.parse().unwrap()
}

pub fn claim(queue_name: &str, max: u32, lease: Duration) -> ClaimRequest {
    ClaimRequest { queues: vec![queue(queue_name)], worker: "test-worker".into(), max, lease }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let b = crate::Backend::sqlite().await;
                super::$name(&b).await;
                b.finish().await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(b) = crate::Backend::postgres().await else {
                    eprintln!("KAI_TEST_POSTGRES_URL not set: PostgreSQL run of this test not performed");
                    return;
                };
                super::$name(&b).await;
                b.finish().await;
            })*
        }
    };
}

pub(crate) use on_both_backends;
