//! Chat history survives upgrades (peers lose it): a database is migrated only up to the
//! version that introduced chat threads, a thread is written with that version's SQL, then the
//! current store opens it (applying every later migration) and must return the thread intact.
//! Runs on SQLite, and on PostgreSQL when `KAI_TEST_POSTGRES_URL` is set.

use std::path::Path;
use std::str::FromStr as _;

use kai_store::Store;
use sqlx::migrate::Migrator;

/// The migration that created the chat tables.
const CHAT_VERSION: i64 = 4;

async fn migrator_up_to(dir: &str, version: i64) -> Migrator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dir);
    let mut m = Migrator::new(path).await.unwrap();
    let kept: Vec<_> = m.migrations.iter().filter(|x| x.version <= version).cloned().collect();
    assert!(kept.iter().any(|x| x.version == version), "migration {version} exists");
    m.migrations = kept.into();
    m
}

/// A thread as the chat-introducing version wrote it: two branches and a summary.
const FIXTURE: &[&str] = &[
    "INSERT INTO chat_threads (id, owner, title, persona, head_id, message_count, created_at_us, updated_at_us) \
     VALUES ('t-old', 'user:owner', 'Kept across upgrades', 'assistant', 'm3', 3, 10, 30)",
    "INSERT INTO chat_messages (id, thread_id, parent_id, seq, role, content, tool_calls, tool_call_id, persona, meta, created_at_us) \
     VALUES ('m1', 't-old', NULL, 1, 'user', 'What is kOS?', NULL, NULL, NULL, '{}', 10)",
    "INSERT INTO chat_messages (id, thread_id, parent_id, seq, role, content, tool_calls, tool_call_id, persona, meta, created_at_us) \
     VALUES ('m2', 't-old', 'm1', 2, 'assistant', 'A protocol.', NULL, NULL, 'assistant', '{\"usage\":{\"prompt_tokens\":3}}', 20)",
    "INSERT INTO chat_messages (id, thread_id, parent_id, seq, role, content, tool_calls, tool_call_id, persona, meta, created_at_us) \
     VALUES ('m3', 't-old', 'm1', 3, 'assistant', 'The protocol kai nodes speak.', NULL, NULL, 'assistant', '{}', 30)",
    "INSERT INTO chat_summaries (id, thread_id, upto_id, covered, content, created_at_us) \
     VALUES ('s1', 't-old', 'm1', '[\"m1\"]', 'Asked about kOS.', 25)",
];

async fn assert_kept(store: &dyn Store) {
    let t = store.thread("t-old").await.unwrap().expect("thread kept");
    assert_eq!(
        (t.title.as_str(), t.head_id.as_deref(), t.message_count),
        ("Kept across upgrades", Some("m3"), 3)
    );
    let messages = store.thread_messages("t-old").await.unwrap();
    let got: Vec<_> =
        messages.iter().map(|m| (m.id.as_str(), m.parent_id.as_deref(), m.seq)).collect();
    assert_eq!(got, [("m1", None, 1), ("m2", Some("m1"), 2), ("m3", Some("m1"), 3)]);
    assert_eq!(messages[1].meta, r#"{"usage":{"prompt_tokens":3}}"#);
    assert_eq!(store.summaries("t-old").await.unwrap()[0].content, "Asked about kOS.");
    assert_eq!(store.threads("user:owner", Some("protocol"), 10).await.unwrap().len(), 1);
    // And the upgraded database keeps taking new messages after the old ones.
    let next = kai_store::ChatMessageRow {
        id: "m4".into(),
        thread_id: "t-old".into(),
        parent_id: Some("m3".into()),
        seq: 0,
        role: "user".into(),
        content: "Thanks".into(),
        tool_calls: None,
        tool_call_id: None,
        persona: None,
        meta: "{}".into(),
        created_at_us: 40,
    };
    assert_eq!(store.append_message(&next).await.unwrap(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_chat_history_survives_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kai.db").display());
    let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&url).unwrap().create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    migrator_up_to("sqlite", CHAT_VERSION).await.run(&pool).await.unwrap();
    for sql in FIXTURE {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = kai_store::open(&url, 2).await.unwrap();
    assert_kept(store.as_ref()).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_chat_history_survives_upgrade() {
    let Ok(url) = std::env::var("KAI_TEST_POSTGRES_URL") else {
        eprintln!("KAI_TEST_POSTGRES_URL not set: PostgreSQL run of this test not performed");
        return;
    };
    let schema = format!("kai_test_{}", uuid::Uuid::now_v7().simple());
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&admin).await.unwrap();
    let opts = sqlx::postgres::PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let pool = sqlx::PgPool::connect_with(opts).await.unwrap();
    migrator_up_to("postgres", CHAT_VERSION).await.run(&pool).await.unwrap();
    for sql in FIXTURE {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    pool.close().await;

    let store = kai_store::open_postgres_schema(&url, &schema, 2).await.unwrap();
    assert_kept(store.as_ref()).await;
    store.close().await;
    kai_store::drop_postgres_schema(&url, &schema).await.unwrap();
    admin.close().await;
}
