//! One storage suite, run against SQLite always and against PostgreSQL when
//! `KAI_TEST_POSTGRES_URL` is set (the project's test command sets it; CI runs both).

use std::sync::Arc;

use chrono::Utc;
use kai_core::Envelope;
use kai_crypto::Identity;
use kai_crypto::audit::{
    Checkpoint, Entry, EntryDraft, GENESIS_ACTION, MerkleAccumulator, Outcome,
};
use kai_store::{ChatMessageRow, ChatSummaryRow, ThreadRow, UsageRow};
use kai_store::{
    RefreshRow, SessionRow, Store, StoreError, TokenRecord, UserRow, VaultItemRow, VaultVersionRow,
};

#[path = "conformance/tasks.rs"]
mod tasks;
use tasks::{
    a_task_is_created_with_its_plan_and_job_or_not_at_all, agents_and_lifecycle_compare_and_set,
    questions_messages_workflows_webhooks_triggers, tasks_plans_and_steps,
};

/// A store on one backend plus whatever must be cleaned up after.
struct Backend {
    store: Arc<dyn Store>,
    reopen: Box<dyn Fn() -> futures::future::BoxFuture<'static, Arc<dyn Store>> + Send + Sync>,
    cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("kai.db").display());
        let store = kai_store::open(&url, 4).await.unwrap();
        let reopen_url = url.clone();
        Self {
            store,
            reopen: Box::new(move || {
                let u = reopen_url.clone();
                Box::pin(async move { kai_store::open(&u, 4).await.unwrap() })
            }),
            cleanup: None,
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Option<Self> {
        let url = std::env::var("KAI_TEST_POSTGRES_URL").ok()?;
        let schema = format!("kai_test_{}", uuid::Uuid::now_v7().simple());
        let store = kai_store::open_postgres_schema(&url, &schema, 4).await.unwrap();
        let (u, s) = (url.clone(), schema.clone());
        Some(Self {
            store,
            reopen: Box::new(move || {
                let (u, s) = (u.clone(), s.clone());
                Box::pin(async move { kai_store::open_postgres_schema(&u, &s, 4).await.unwrap() })
            }),
            cleanup: Some((url, schema)),
            _dir: None,
        })
    }

    async fn finish(self) {
        self.store.close().await;
        if let Some((url, schema)) = self.cleanup {
            kai_store::drop_postgres_schema(&url, &schema).await.unwrap();
        }
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let b = super::Backend::sqlite().await;
                super::$name(&b).await;
                b.finish().await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(b) = super::Backend::postgres().await else {
                    eprintln!("KAI_TEST_POSTGRES_URL not set: PostgreSQL run of this test not performed");
                    return;
                };
                super::$name(&b).await;
                b.finish().await;
            })*
        }
    };
}

on_both_backends!(
    info_and_ping,
    audit_round_trip,
    audit_batch_is_atomic,
    events_get_dense_offsets_and_are_idempotent,
    tokens_by_hash_and_revocation,
    meta_upsert,
    data_survives_reopen,
    vault_items_versions_and_reseal,
    users_crud_and_unique_names,
    sessions_and_single_use_refresh_tokens,
    usage_totals_and_rolling_sums,
    chat_threads_messages_and_search,
    agents_and_lifecycle_compare_and_set,
    tasks_plans_and_steps,
    a_task_is_created_with_its_plan_and_job_or_not_at_all,
    questions_messages_workflows_webhooks_triggers,
);

fn log(n: u64, id: &Identity) -> (Vec<Entry>, Vec<Checkpoint>) {
    let mut entries = Vec::new();
    let mut cps = Vec::new();
    let mut acc = MerkleAccumulator::new();
    let mut prev = [0; 32];
    for seq in 1..=n {
        let draft = EntryDraft {
            timestamp: Utc::now(),
            actor: "user:owner".into(),
            action: if seq == 1 { GENESIS_ACTION.into() } else { "event.publish".into() },
            target: format!("t{seq}"),
            outcome: Outcome::Success,
            details: serde_json::json!({"seq": seq}),
        };
        let e = Entry::seal(draft, seq, prev, id);
        prev = e.hash;
        acc.push(&e.hash);
        entries.push(e);
        if seq % 10 == 0 {
            cps.push(Checkpoint::sign(seq, acc.root(), Utc::now(), id));
        }
    }
    (entries, cps)
}

async fn info_and_ping(b: &Backend) {
    b.store.ping().await.unwrap();
    let info = b.store.info().await.unwrap();
    assert!(info.schema_version >= 1);
    assert!(["sqlite", "postgres"].contains(&info.backend));
}

async fn audit_round_trip(b: &Backend) {
    let id = Identity::generate();
    let (entries, cps) = log(25, &id);
    assert!(b.store.audit_head().await.unwrap().is_none());
    b.store.append_audit(&entries[..10], Some(&cps[0]), Some("f1")).await.unwrap();
    b.store.append_audit(&entries[10..20], Some(&cps[1]), Some("f2")).await.unwrap();
    b.store.append_audit(&entries[20..22], None, None).await.unwrap();
    assert_eq!(
        b.store.get_meta(kai_store::AUDIT_FRONTIER_KEY).await.unwrap().as_deref(),
        Some("f2"),
        "entries alone leave the frontier as it was"
    );
    b.store.append_audit(&entries[22..], None, Some("f3")).await.unwrap();
    assert_eq!(b.store.audit_count().await.unwrap(), 25);
    assert_eq!(b.store.audit_head().await.unwrap().unwrap(), entries[24]);
    assert_eq!(b.store.audit_range(5, 3).await.unwrap(), entries[4..7].to_vec());
    assert_eq!(b.store.audit_range(1, 1000).await.unwrap(), entries);
    assert_eq!(b.store.audit_tail(4).await.unwrap(), entries[21..].to_vec());
    assert_eq!(b.store.audit_checkpoints().await.unwrap(), cps[..2].to_vec());
    assert_eq!(
        b.store.get_meta(kai_store::AUDIT_FRONTIER_KEY).await.unwrap().as_deref(),
        Some("f3")
    );
    // What comes back verifies as a whole.
    let mut v = kai_crypto::audit::Verifier::new(
        b.store.audit_checkpoints().await.unwrap(),
        Some(id.did().clone()),
    );
    v.feed(&b.store.audit_range(1, 1000).await.unwrap()).unwrap();
    assert_eq!(v.finish().unwrap().entries, 25);
}

async fn audit_batch_is_atomic(b: &Backend) {
    let id = Identity::generate();
    let (entries, cps) = log(10, &id);
    b.store.append_audit(&entries[..5], None, Some("f1")).await.unwrap();
    // Entries alone (one statement) are all-or-nothing too.
    let dup: Vec<Entry> = entries[4..6].to_vec();
    let err = b.store.append_audit(&dup, None, None).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(b.store.audit_count().await.unwrap(), 5);
    // Entry 5 again in the middle of a batch: the whole batch, checkpoint included, is refused.
    let retry: Vec<Entry> = entries[4..].to_vec();
    let err = b.store.append_audit(&retry, Some(&cps[0]), Some("f2")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(b.store.audit_count().await.unwrap(), 5);
    assert!(b.store.audit_checkpoints().await.unwrap().is_empty());
    assert_eq!(
        b.store.get_meta(kai_store::AUDIT_FRONTIER_KEY).await.unwrap().as_deref(),
        Some("f1")
    );
}

fn event(n: u64) -> Envelope {
    Envelope::new(
        "TASK_CREATED".parse().unwrap(),
        serde_json::json!({"n": n, "text": "héllo \"quoted\""}),
        Utc::now(),
    )
    .with_agent("kPlanner:main".parse().unwrap())
    .with_task(format!("task-{n}"))
}

async fn events_get_dense_offsets_and_are_idempotent(b: &Backend) {
    assert_eq!(b.store.last_event_offset().await.unwrap(), 0);
    let events: Vec<Envelope> = (0..20).map(event).collect();
    let mut offsets = Vec::new();
    for e in &events {
        offsets.push(b.store.append_event(e).await.unwrap());
    }
    assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "{offsets:?}");
    assert_eq!(b.store.append_event(&events[3]).await.unwrap(), offsets[3], "same id, same offset");
    assert_eq!(b.store.last_event_offset().await.unwrap(), offsets[19]);
    let page = b.store.events_after(offsets[4], 5).await.unwrap();
    assert_eq!(page.len(), 5);
    for (got, want) in page.iter().zip(&events[5..10]) {
        assert_eq!(got.id, want.id);
        assert_eq!(got.payload, want.payload);
        assert_eq!(got.agent, want.agent);
        assert_eq!(got.task_id, want.task_id);
        assert_eq!(got.timestamp.timestamp_micros(), want.timestamp.timestamp_micros());
    }
    assert_eq!(page[0].offset, Some(offsets[5]));
    assert!(b.store.events_after(offsets[19], 10).await.unwrap().is_empty());

    // A batch: dense offsets after the singles, in input order; a repeated id inside or
    // outside the batch gets its first offset.
    let more: Vec<Envelope> = (20..25).map(event).collect();
    let batch = [more.clone(), vec![events[0].clone(), more[1].clone()]].concat();
    let got = b.store.append_events(&batch).await.unwrap();
    // (A refused duplicate may use up an offset: after one, offsets increase with a gap.)
    let first = got[0];
    assert!(first > offsets[19], "{got:?}");
    assert_eq!(got, vec![first, first + 1, first + 2, first + 3, first + 4, offsets[0], first + 1]);
    b.store.sync_events().await.unwrap();
    assert_eq!(b.store.last_event_offset().await.unwrap(), first + 4);
    let stored = b.store.events_after(offsets[19], 10).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.id).collect::<Vec<_>>(),
        more.iter().map(|e| e.id).collect::<Vec<_>>()
    );
    assert!(b.store.append_events(&[]).await.unwrap().is_empty());
}

async fn tokens_by_hash_and_revocation(b: &Backend) {
    let t = TokenRecord {
        id: "tok1".into(),
        name: "cli".into(),
        role: "admin".into(),
        token_hash: [7; 32],
        created_at_us: 1,
        expires_at_us: Some(99),
        revoked_at_us: None,
        scopes: vec!["events:write".into(), "audit:read".into()],
        user_id: Some("u1".into()),
    };
    b.store.insert_token(&t).await.unwrap();
    assert_eq!(b.store.token_by_hash(&[7; 32]).await.unwrap(), Some(t.clone()));
    assert_eq!(b.store.token_by_hash(&[8; 32]).await.unwrap(), None);
    assert!(matches!(b.store.insert_token(&t).await, Err(StoreError::Conflict(_))));
    b.store.revoke_token("tok1", 5).await.unwrap();
    assert_eq!(b.store.token_by_hash(&[7; 32]).await.unwrap(), None);
    assert!(matches!(b.store.revoke_token("tok1", 6).await, Err(StoreError::NotFound)));
    assert_eq!(b.store.list_tokens().await.unwrap()[0].revoked_at_us, Some(5));
}

async fn meta_upsert(b: &Backend) {
    assert_eq!(b.store.get_meta("k").await.unwrap(), None);
    b.store.put_meta("k", "v1").await.unwrap();
    b.store.put_meta("k", "v2").await.unwrap();
    assert_eq!(b.store.get_meta("k").await.unwrap().as_deref(), Some("v2"));
}

async fn data_survives_reopen(b: &Backend) {
    b.store.put_meta("node", "one").await.unwrap();
    b.store.append_event(&event(1)).await.unwrap();
    let again = (b.reopen)().await;
    assert_eq!(again.get_meta("node").await.unwrap().as_deref(), Some("one"));
    assert_eq!(again.last_event_offset().await.unwrap(), 1);
    again.close().await;
}

fn item(id: &str, hmac: &str) -> (VaultItemRow, VaultVersionRow) {
    let item = VaultItemRow {
        id: id.into(),
        kind: "secret".into(),
        name_hmac: hmac.into(),
        sealed_name: vec![1, 2, 3],
        policy: "{}".into(),
        current_version: 1,
        created_at_us: 10,
    };
    let v = VaultVersionRow {
        item_id: id.into(),
        version: 1,
        generation: 1,
        sealed: vec![9; 40],
        created_at_us: 10,
        expires_at_us: Some(1000),
        created_by: "user:owner".into(),
    };
    (item, v)
}

async fn vault_items_versions_and_reseal(b: &Backend) {
    assert_eq!(b.store.vault_header().await.unwrap(), None);
    b.store.put_vault_header("{\"h\":1}", 1).await.unwrap();
    b.store.put_vault_header("{\"h\":2}", 2).await.unwrap();
    assert_eq!(b.store.vault_header().await.unwrap().as_deref(), Some("{\"h\":2}"));
    let (i1, v1) = item("a", "h1");
    b.store.insert_vault_item(&i1, &v1).await.unwrap();
    let (dup, dupv) = item("b", "h1");
    assert!(
        matches!(b.store.insert_vault_item(&dup, &dupv).await, Err(StoreError::Conflict(_))),
        "same name twice"
    );
    assert!(b.store.vault_item("b").await.unwrap().is_none(), "failed insert left nothing");
    let v2 = VaultVersionRow { version: 2, sealed: vec![8; 40], expires_at_us: None, ..v1.clone() };
    b.store.add_vault_version(&v2).await.unwrap();
    assert_eq!(b.store.vault_item("a").await.unwrap().unwrap().current_version, 2);
    assert_eq!(b.store.vault_versions("a").await.unwrap(), vec![v1.clone(), v2.clone()]);
    assert_eq!(b.store.vault_version("a", 1).await.unwrap(), Some(v1.clone()));
    assert_eq!(b.store.vault_items("secret").await.unwrap().len(), 1);
    assert!(b.store.vault_items("key").await.unwrap().is_empty());
    // Rekey: both versions re-sealed under generation 2, the name too.
    assert_eq!(b.store.vault_versions_before(2, 10).await.unwrap().len(), 2);
    let resealed: Vec<_> = [v1, v2]
        .into_iter()
        .map(|v| VaultVersionRow { generation: 2, sealed: vec![7; 40], ..v })
        .collect();
    let renamed = VaultItemRow { name_hmac: "h1-gen2".into(), sealed_name: vec![4], ..i1 };
    b.store.reseal_vault(&resealed, std::slice::from_ref(&renamed)).await.unwrap();
    assert!(b.store.vault_versions_before(2, 10).await.unwrap().is_empty());
    assert_eq!(b.store.vault_item("a").await.unwrap().unwrap().name_hmac, "h1-gen2");
    b.store.set_vault_policy("a", "{\"read\":[]}").await.unwrap();
    assert_eq!(b.store.all_vault_items().await.unwrap()[0].policy, "{\"read\":[]}");
    b.store.delete_vault_item("a").await.unwrap();
    assert!(
        b.store.vault_versions("a").await.unwrap().is_empty(),
        "ciphertext deleted with the item"
    );
    assert!(matches!(b.store.delete_vault_item("a").await, Err(StoreError::NotFound)));
}

fn user(id: &str, name: &str) -> UserRow {
    UserRow {
        id: id.into(),
        username: name.into(),
        password_hash: "$argon2id$...".into(),
        role: "member".into(),
        display_name: name.into(),
        email: String::new(),
        preferences: "{}".into(),
        created_at_us: 1,
        updated_at_us: 1,
        disabled_at_us: None,
    }
}

async fn users_crud_and_unique_names(b: &Backend) {
    b.store.insert_user(&user("u1", "alice")).await.unwrap();
    assert!(matches!(
        b.store.insert_user(&user("u2", "alice")).await,
        Err(StoreError::Conflict(_))
    ));
    b.store.insert_user(&user("u2", "bob")).await.unwrap();
    assert_eq!(b.store.count_users().await.unwrap(), 2);
    let mut alice = b.store.user_by_name("alice").await.unwrap().unwrap();
    alice.role = "admin".into();
    alice.disabled_at_us = Some(5);
    b.store.update_user(&alice).await.unwrap();
    assert_eq!(b.store.user("u1").await.unwrap(), Some(alice));
    assert_eq!(b.store.users().await.unwrap().len(), 2);
    b.store.delete_user("u2").await.unwrap();
    assert!(b.store.user("u2").await.unwrap().is_none());
    assert!(matches!(b.store.update_user(&user("u2", "bob")).await, Err(StoreError::NotFound)));
}

async fn sessions_and_single_use_refresh_tokens(b: &Backend) {
    b.store.insert_user(&user("u1", "carol")).await.unwrap();
    let s =
        SessionRow { id: "s1".into(), user_id: "u1".into(), created_at_us: 1, revoked_at_us: None };
    let r1 = RefreshRow {
        token_hash: [1; 32],
        session_id: "s1".into(),
        issued_at_us: 1,
        expires_at_us: 100,
        used_at_us: None,
    };
    b.store.insert_session(&s, &r1).await.unwrap();
    let used = b.store.use_refresh_token(&[1; 32], 5).await.unwrap().unwrap();
    assert_eq!(used.used_at_us, Some(5));
    assert!(b.store.use_refresh_token(&[1; 32], 6).await.unwrap().is_none(), "single use");
    assert_eq!(
        b.store.refresh_token(&[1; 32]).await.unwrap().unwrap().used_at_us,
        Some(5),
        "reuse is detectable"
    );
    let r2 = RefreshRow { token_hash: [2; 32], issued_at_us: 5, used_at_us: None, ..r1 };
    b.store.insert_refresh_token(&r2).await.unwrap();
    b.store.revoke_user_sessions("u1", 7).await.unwrap();
    assert_eq!(b.store.session("s1").await.unwrap().unwrap().revoked_at_us, Some(7));
    b.store.delete_user("u1").await.unwrap();
    assert!(b.store.session("s1").await.unwrap().is_none());
    assert!(b.store.refresh_token(&[2; 32]).await.unwrap().is_none());
}

async fn usage_totals_and_rolling_sums(b: &Backend) {
    let row = |id: &str, at: i64, who: &str, persona: &str, p: i64, c: i64| UsageRow {
        id: id.into(),
        at_us: at,
        principal: who.into(),
        persona: persona.into(),
        prompt_tokens: p,
        completion_tokens: c,
        cost_micros: p * 10 + c,
    };
    for r in [
        row("1", 10, "user:a", "x", 5, 7),
        row("2", 20, "user:a", "x", 1, 1),
        row("3", 30, "user:a", "y", 2, 0),
        row("4", 30, "user:b", "x", 9, 9),
    ] {
        b.store.record_usage(&r).await.unwrap();
    }
    let spent = |tokens, cost_micros| kai_store::Spent { tokens, cost_micros };
    assert_eq!(b.store.spent_since("user:a", 0).await.unwrap(), spent(16, 88));
    assert_eq!(b.store.spent_since("user:a", 15).await.unwrap(), spent(4, 31));
    assert_eq!(b.store.spent_since("user:z", 0).await.unwrap(), spent(0, 0));
    let all = b.store.usage_totals(None, 0).await.unwrap();
    assert_eq!(all.len(), 3);
    let ax = all.iter().find(|t| t.principal == "user:a" && t.persona == "x").unwrap();
    assert_eq!((ax.calls, ax.prompt_tokens, ax.completion_tokens, ax.cost_micros), (2, 6, 8, 68));
    assert_eq!(b.store.usage_totals(Some("user:b"), 0).await.unwrap().len(), 1);
}

fn message(
    id: &str,
    thread: &str,
    parent: Option<&str>,
    role: &str,
    content: &str,
) -> ChatMessageRow {
    ChatMessageRow {
        id: id.into(),
        thread_id: thread.into(),
        parent_id: parent.map(Into::into),
        seq: 0,
        role: role.into(),
        content: content.into(),
        tool_calls: None,
        tool_call_id: None,
        persona: None,
        meta: "{}".into(),
        created_at_us: 100,
    }
}

async fn chat_threads_messages_and_search(b: &Backend) {
    let thread = |id: &str, owner: &str, title: &str| ThreadRow {
        id: id.into(),
        owner: owner.into(),
        title: title.into(),
        persona: "assistant".into(),
        head_id: None,
        message_count: 0,
        created_at_us: 1,
        updated_at_us: 1,
    };
    b.store.insert_thread(&thread("t1", "user:a", "Trip to Lisbon")).await.unwrap();
    b.store.insert_thread(&thread("t2", "user:a", "Rust questions")).await.unwrap();
    b.store.insert_thread(&thread("t3", "user:b", "Lisbon too")).await.unwrap();
    assert_eq!(b.store.append_message(&message("m1", "t1", None, "user", "hi")).await.unwrap(), 1);
    let mut m2 = message("m2", "t1", Some("m1"), "assistant", "Hello 100%_sure");
    m2.tool_calls = Some("[]".into());
    m2.persona = Some("assistant".into());
    assert_eq!(b.store.append_message(&m2).await.unwrap(), 2);
    // A branch from m1.
    assert_eq!(
        b.store
            .append_message(&message("m3", "t1", Some("m1"), "assistant", "Other"))
            .await
            .unwrap(),
        3
    );
    let t1 = b.store.thread("t1").await.unwrap().unwrap();
    assert_eq!((t1.head_id.as_deref(), t1.message_count), (Some("m3"), 3));
    let all = b.store.thread_messages("t1").await.unwrap();
    assert_eq!(all.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(all[1], ChatMessageRow { seq: 2, ..m2 });
    assert!(matches!(
        b.store.append_message(&message("m9", "nope", None, "user", "x")).await,
        Err(StoreError::NotFound)
    ));

    // Newest activity first, only the owner's; search matches titles and message text,
    // case-insensitively, with LIKE wildcards taken literally.
    let ids = |v: Vec<ThreadRow>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(b.store.threads("user:a", None, 10).await.unwrap()), ["t1", "t2"]);
    assert_eq!(ids(b.store.threads("user:a", Some("LISBON"), 10).await.unwrap()), ["t1"]);
    assert_eq!(ids(b.store.threads("user:a", Some("100%_s"), 10).await.unwrap()), ["t1"]);
    assert!(b.store.threads("user:a", Some("1000"), 10).await.unwrap().is_empty());
    assert!(b.store.threads("user:a", Some("1%0"), 10).await.unwrap().is_empty());
    assert_eq!(b.store.threads("user:a", None, 1).await.unwrap().len(), 1);

    b.store.update_thread("t1", Some("Lisbon"), None, Some("m2"), 50).await.unwrap();
    let t1 = b.store.thread("t1").await.unwrap().unwrap();
    assert_eq!(
        (t1.title.as_str(), t1.persona.as_str(), t1.head_id.as_deref()),
        ("Lisbon", "assistant", Some("m2"))
    );
    assert!(matches!(
        b.store.update_thread("zz", Some("x"), None, None, 1).await,
        Err(StoreError::NotFound)
    ));

    let summary = ChatSummaryRow {
        id: "s1".into(),
        thread_id: "t1".into(),
        upto_id: "m2".into(),
        covered: r#"["m1","m2"]"#.into(),
        content: "They said hi.".into(),
        created_at_us: 60,
    };
    b.store.insert_summary(&summary).await.unwrap();
    assert_eq!(b.store.summaries("t1").await.unwrap(), [summary]);

    b.store.delete_thread("t1").await.unwrap();
    assert!(b.store.thread("t1").await.unwrap().is_none());
    assert!(b.store.thread_messages("t1").await.unwrap().is_empty());
    assert!(b.store.summaries("t1").await.unwrap().is_empty());
    assert!(matches!(b.store.delete_thread("t1").await, Err(StoreError::NotFound)));
}
