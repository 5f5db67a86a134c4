//! The memory storage suite (records, expiry, embeddings, the graph and entity merges), run
//! against SQLite always and against PostgreSQL when `KAI_TEST_POSTGRES_URL` is set.

use std::sync::Arc;

use kai_store::{EntityRow, MemoryRow, RelationRow, Store, StoreError};

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
        Self {
            store,
            reopen: Box::new(move || {
                let u = url.clone();
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
    memories_insert_read_update_delete,
    embeddings_expiry_and_pending_work,
    graph_entities_relations_and_dedupe,
    merging_entities_moves_relations_and_mentions,
);

fn memory(id: &str, owner: &str, text: &str) -> MemoryRow {
    MemoryRow {
        id: id.into(),
        num: 0,
        owner: owner.into(),
        ns_kind: "user".into(),
        ns_id: "u1".into(),
        tier: "long_term".into(),
        text: text.into(),
        metadata: r#"{"topic":"test"}"#.into(),
        embedding: None,
        embedding_model: None,
        encrypted: false,
        needs_extraction: false,
        created_at_us: 100,
        updated_at_us: 100,
        expires_at_us: None,
    }
}

async fn memories_insert_read_update_delete(b: &Backend) {
    let s = &b.store;
    let rows = [memory("m1", "user:a", "first"), memory("m2", "user:a", "second"), {
        let mut m = memory("m3", "user:b", "kve1:ciphertext");
        m.encrypted = true;
        m.embedding = Some(vec![1, 2, 3, 4]);
        m
    }];
    let nums = s.insert_memories(&rows).await.unwrap();
    assert_eq!(nums.len(), 3);
    assert!(nums[0] < nums[1] && nums[1] < nums[2], "nums increase: {nums:?}");
    let m3 = s.memory("m3").await.unwrap().unwrap();
    assert_eq!(m3.num, nums[2]);
    assert!(m3.encrypted);
    assert_eq!(m3.embedding.as_deref(), Some(&[1u8, 2, 3, 4][..]));
    assert_eq!(m3, MemoryRow { num: nums[2], ..rows[2].clone() });
    // A duplicate id is a conflict and the whole batch is rolled back.
    let dup = s.insert_memories(&[memory("m4", "user:a", "x"), memory("m1", "user:a", "y")]).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    assert!(s.memory("m4").await.unwrap().is_none());

    let mut by_num = s.memories_by_num(&[nums[2], nums[0], 999_999]).await.unwrap();
    by_num.sort_by_key(|m| m.num);
    assert_eq!(by_num.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["m1", "m3"]);

    let mut changed = s.memory("m1").await.unwrap().unwrap();
    changed.text = "first, edited".into();
    changed.tier = "working".into();
    changed.updated_at_us = 200;
    changed.expires_at_us = Some(5_000);
    s.update_memory(&changed).await.unwrap();
    assert_eq!(s.memory("m1").await.unwrap().unwrap(), changed);
    let ghost = memory("nope", "user:a", "x");
    assert!(matches!(s.update_memory(&ghost).await, Err(StoreError::NotFound)));

    let page = s.memories_after(0, 2).await.unwrap();
    assert_eq!(page.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["m1", "m2"]);
    let rest = s.memories_after(page[1].num, 10).await.unwrap();
    assert_eq!(rest.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["m3"]);
    let of_a = s.owner_memories_after("user:a", 0, 10).await.unwrap();
    assert_eq!(of_a.len(), 2);
    assert!(s.owner_memories_after("user:b", 0, 10).await.unwrap().iter().all(|m| m.id == "m3"));

    assert_eq!(s.delete_memory("m2").await.unwrap(), Some(nums[1]));
    assert_eq!(s.delete_memory("m2").await.unwrap(), None);
    let reopened = (b.reopen)().await;
    assert_eq!(reopened.memory("m1").await.unwrap().unwrap().text, "first, edited");
    assert!(reopened.memory("m2").await.unwrap().is_none());
    reopened.close().await;
}

async fn embeddings_expiry_and_pending_work(b: &Backend) {
    let s = &b.store;
    let mut rows = vec![
        memory("e1", "user:a", "one"),
        memory("e2", "user:a", "two"),
        memory("e3", "user:a", "three"),
    ];
    rows[0].expires_at_us = Some(1_000);
    rows[1].expires_at_us = Some(3_000);
    rows[2].needs_extraction = true;
    let nums = s.insert_memories(&rows).await.unwrap();
    let pending = s.memories_without_embedding(0, 10).await.unwrap();
    assert_eq!(pending.len(), 3);
    // An embedding computed for an older version of the record is not stored.
    assert!(!s.set_memory_embedding("e1", 99, &[9; 8], "m").await.unwrap());
    assert!(s.set_memory_embedding("e1", 100, &[7; 8], "model-x").await.unwrap());
    assert!(!s.set_memory_embedding("missing", 100, &[7; 8], "m").await.unwrap());
    let e1 = s.memory("e1").await.unwrap().unwrap();
    assert_eq!(
        (e1.embedding.as_deref(), e1.embedding_model.as_deref()),
        (Some(&[7u8; 8][..]), Some("model-x"))
    );
    let pending: Vec<_> =
        s.memories_without_embedding(0, 10).await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(pending, ["e2", "e3"]);
    let later = s.memories_without_embedding(nums[1], 10).await.unwrap();
    assert_eq!(later.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["e3"]);

    let todo = s.memories_needing_extraction(0, 10).await.unwrap();
    assert_eq!(todo.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["e3"]);
    s.mark_memory_extracted("e3").await.unwrap();
    assert!(s.memories_needing_extraction(0, 10).await.unwrap().is_empty());

    assert!(s.delete_expired_memories(999, 10).await.unwrap().is_empty());
    assert_eq!(s.delete_expired_memories(1_000, 10).await.unwrap(), [nums[0]]);
    assert_eq!(s.delete_expired_memories(10_000, 10).await.unwrap(), [nums[1]]);
    assert!(s.memory("e1").await.unwrap().is_none() && s.memory("e2").await.unwrap().is_none());
    assert!(s.memory("e3").await.unwrap().is_some(), "no expiry: kept");
}

fn entity(id: &str, owner: &str, name: &str, kind: &str, props: &str) -> EntityRow {
    EntityRow {
        id: id.into(),
        owner: owner.into(),
        name: name.into(),
        norm: name.to_lowercase(),
        kind: kind.into(),
        properties: props.into(),
        created_at_us: 10,
        updated_at_us: 10,
    }
}

fn relation(id: &str, owner: &str, source: &str, target: &str, ty: &str) -> RelationRow {
    RelationRow {
        id: id.into(),
        owner: owner.into(),
        source_id: source.into(),
        target_id: target.into(),
        rel_type: ty.into(),
        memory_id: None,
        properties: "{}".into(),
        created_at_us: 10,
    }
}

async fn graph_entities_relations_and_dedupe(b: &Backend) {
    let s = &b.store;
    let ada = s.upsert_entity(&entity("ent1", "user:a", "Ada", "person", r#"{"a":1}"#)).await;
    let ada = ada.unwrap();
    assert_eq!(ada.id, "ent1");
    // The same normalized name and kind lands on the existing entity; properties merge.
    let again = s
        .upsert_entity(&entity("ent9", "user:a", "ADA", "person", r#"{"b":2,"a":3}"#))
        .await
        .unwrap();
    assert_eq!(again.id, "ent1");
    let props: serde_json::Value = serde_json::from_str(&again.properties).unwrap();
    assert_eq!(props, serde_json::json!({"a": 3, "b": 2}));
    assert!(s.entity("ent9").await.unwrap().is_none());
    // Another owner, or another kind, is another entity.
    let other = s.upsert_entity(&entity("ent2", "user:b", "Ada", "person", "{}")).await.unwrap();
    assert_eq!(other.id, "ent2");
    s.upsert_entity(&entity("ent3", "user:a", "Ada", "language", "{}")).await.unwrap();
    s.upsert_entity(&entity("ent4", "user:a", "London", "place", "{}")).await.unwrap();

    let mine = s.entities("user:a", None, 10).await.unwrap();
    assert_eq!(mine.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["ent3", "ent1", "ent4"]);
    assert_eq!(s.entities("user:a", Some("lond"), 10).await.unwrap().len(), 1);
    assert_eq!(s.entities("user:b", None, 10).await.unwrap().len(), 1);

    let r1 = s.insert_relation(&relation("rel1", "user:a", "ent1", "ent4", "lives_in")).await;
    assert_eq!(r1.unwrap().id, "rel1");
    let same = s.insert_relation(&relation("rel2", "user:a", "ent1", "ent4", "lives_in")).await;
    assert_eq!(same.unwrap().id, "rel1", "a repeated relation is the same edge");
    s.insert_relation(&relation("rel3", "user:a", "ent3", "ent1", "named_after")).await.unwrap();
    let touching = s.relations_touching("user:a", &["ent1".into()], None, 10).await.unwrap();
    assert_eq!(touching.len(), 2);
    let typed = s.relations_touching("user:a", &["ent1".into()], Some("lives_in"), 10).await;
    assert_eq!(typed.unwrap().iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["rel1"]);
    assert!(s.relations_touching("user:b", &["ent1".into()], None, 10).await.unwrap().is_empty());

    s.insert_memories(&[memory("mm1", "user:a", "Ada lives in London")]).await.unwrap();
    s.add_mentions("mm1", &["ent1".into(), "ent4".into(), "ent1".into()]).await.unwrap();
    assert_eq!(
        s.mentions_of(&["mm1".into()]).await.unwrap(),
        [("mm1".to_owned(), "ent1".to_owned()), ("mm1".to_owned(), "ent4".to_owned())]
    );
    let num = s.memory("mm1").await.unwrap().unwrap().num;
    assert_eq!(s.memories_mentioning(&["ent4".into()], 10).await.unwrap(), [num]);

    assert_eq!(s.relation("rel3").await.unwrap().unwrap().rel_type, "named_after");
    s.delete_relation("rel3").await.unwrap();
    assert!(s.relation("rel3").await.unwrap().is_none());
    assert!(matches!(s.delete_relation("rel3").await, Err(StoreError::NotFound)));
    s.delete_entity("ent4").await.unwrap();
    assert!(s.relations_touching("user:a", &["ent1".into()], None, 10).await.unwrap().is_empty());
    assert_eq!(s.mentions_of(&["mm1".into()]).await.unwrap().len(), 1);
    // Deleting the memory removes its mentions.
    s.delete_memory("mm1").await.unwrap();
    assert!(s.memories_mentioning(&["ent1".into()], 10).await.unwrap().is_empty());
    let got = s.entities_by_id(&["ent1".into(), "ent2".into(), "zzz".into()]).await.unwrap();
    assert_eq!(got.len(), 2);
}

async fn merging_entities_moves_relations_and_mentions(b: &Backend) {
    let s = &b.store;
    for (id, name, props) in [
        ("a", "Grace Hopper", r#"{"born":1906}"#),
        ("b", "G. Hopper", r#"{"born":0,"navy":true}"#),
        ("c", "COBOL", "{}"),
        ("d", "Yale", "{}"),
    ] {
        s.upsert_entity(&entity(id, "user:a", name, "thing", props)).await.unwrap();
    }
    s.insert_relation(&relation("r1", "user:a", "a", "c", "created")).await.unwrap();
    s.insert_relation(&relation("r2", "user:a", "b", "c", "created")).await.unwrap();
    s.insert_relation(&relation("r3", "user:a", "b", "d", "studied_at")).await.unwrap();
    s.insert_relation(&relation("r4", "user:a", "a", "b", "same_as")).await.unwrap();
    s.insert_memories(&[memory("x1", "user:a", "m"), memory("x2", "user:a", "n")]).await.unwrap();
    s.add_mentions("x1", &["a".into(), "b".into()]).await.unwrap();
    s.add_mentions("x2", &["b".into()]).await.unwrap();

    s.merge_entities("a", &["b".into()], 99).await.unwrap();
    assert!(s.entity("b").await.unwrap().is_none());
    let a = s.entity("a").await.unwrap().unwrap();
    let props: serde_json::Value = serde_json::from_str(&a.properties).unwrap();
    assert_eq!(props, serde_json::json!({"born": 1906, "navy": true}), "the kept entity wins");
    assert_eq!(a.updated_at_us, 99);
    let mut edges: Vec<(String, String, String)> = s
        .relations_touching("user:a", &["a".into()], None, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.source_id, r.target_id, r.rel_type))
        .collect();
    edges.sort();
    assert_eq!(
        edges,
        [("a".into(), "c".into(), "created".into()), ("a".into(), "d".into(), "studied_at".into())],
        "duplicate edge and self-loop dropped"
    );
    let mentions = s.mentions_of(&["x1".into(), "x2".into()]).await.unwrap();
    assert_eq!(mentions, [("x1".into(), "a".into()), ("x2".into(), "a".into())]);
    assert!(matches!(s.merge_entities("zz", &["a".into()], 1).await, Err(StoreError::NotFound)));
    assert!(matches!(s.merge_entities("a", &["zz".into()], 1).await, Err(StoreError::NotFound)));
    s.upsert_entity(&entity("o", "user:other", "Other", "thing", "{}")).await.unwrap();
    assert!(matches!(s.merge_entities("a", &["o".into()], 1).await, Err(StoreError::Conflict(_))));
    assert!(s.entity("o").await.unwrap().is_some(), "a refused merge changes nothing");
}
