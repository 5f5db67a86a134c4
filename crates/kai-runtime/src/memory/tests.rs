//! The memory service on a real SQLite store, a real vault and the in-repo fake OpenAI server
//! (deterministic hashed embeddings): hybrid search, isolation, TTL, private memories,
//! persistence and rebuild, background embedding, the graph and extraction, Qdrant.

use std::sync::Arc;
use std::time::Duration;

use kai_core::config::{PersonaEntry, ProviderEntry};
use kai_crypto::vault::{KdfParams, KdfPolicy};
use kai_llm::ProviderKind;
use kai_llm::fake::{FakeServer, Reply};
use kai_store::Store;
use serde_json::{Map, json};

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    vault: Arc<Vault>,
    llm: Arc<Llm>,
    fake: FakeServer,
}

async fn fixture(persona: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("kai.db").display());
    let store = kai_store::open(&url, 4).await.unwrap();
    let vault = Arc::new(Vault::new(store.clone(), KdfPolicy::AllowWeakForTests));
    vault
        .create(
            &secrecy::SecretString::from("pass".to_owned()),
            KdfParams::testing_only_fast(),
            false,
        )
        .await
        .unwrap();
    let fake = FakeServer::start(ProviderKind::OpenAi).await.unwrap();
    fake.set_embedding_dims(16);
    let provider: ProviderEntry = serde_json::from_value(json!({
        "name": "fake", "kind": "openai", "base_url": fake.base_url(),
        "chat_model": "fake-chat", "embedding_model": "fake-embed", "max_retries": 0,
    }))
    .unwrap();
    let personas: Vec<PersonaEntry> = if persona {
        vec![serde_json::from_value(json!({"name": "extractor", "providers": ["fake"]})).unwrap()]
    } else {
        Vec::new()
    };
    let llm = Arc::new(Llm::new(&[provider], &personas, None, vault.clone()));
    Fixture { dir, store, vault, llm, fake }
}

impl Fixture {
    fn settings(&self) -> MemorySettings {
        let mut s = MemorySettings::new(self.dir.path().join("memory"));
        s.embedding_provider = Some("fake".into());
        s.embedding_model = Some("fake-embed".into());
        s.sweep_interval = Duration::from_secs(3600);
        s
    }
    fn memory(&self, settings: MemorySettings) -> Arc<Memory> {
        Memory::new(self.store.clone(), self.vault.clone(), self.llm.clone(), settings)
    }
}

fn alice() -> Caller {
    Caller::user("alice", "user:alice")
}

fn note(text: &str) -> NewMemory {
    NewMemory::new(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_search_get_update_forget() {
    let f = fixture(false).await;
    let m = f.memory(f.settings());
    let a = alice();
    let mut tagged = note("the kai node keeps memories in an HNSW index");
    tagged.metadata.insert("topic".into(), json!("kai"));
    tagged.tier = Tier::Working;
    let added = m
        .add(
            &a,
            vec![tagged, note("rust borrow checker notes"), note("grocery list: eggs, milk")],
            true,
        )
        .await
        .unwrap();
    assert_eq!(added.len(), 3);
    assert!(added.iter().all(|v| v.embedded && v.namespace.key() == "user:alice"));
    let r = m.search(&a, SearchQuery::text("memories index", 5)).await.unwrap();
    assert!(r.vector_search && r.notice.is_none());
    assert_eq!(r.hits[0].memory.id, added[0].id, "BM25 and vector agree on the first");
    // The fake embedder hashes whole texts: the exact text is the nearest vector.
    let exact = m.search(&a, SearchQuery::text("grocery list: eggs, milk", 3)).await.unwrap();
    assert_eq!(exact.hits[0].memory.id, added[2].id);
    assert_eq!(exact.hits[0].vector.map(|v| v.0), Some(1));
    assert!(exact.hits[0].vector.unwrap().1 > 0.999);
    // Filters: tier, metadata, time, namespace.
    let mut q = SearchQuery::text("notes index list", 10);
    q.tiers = vec![Tier::Working];
    assert_eq!(ids(&m.search(&a, q.clone()).await.unwrap()), [added[0].id.clone()]);
    q.tiers.clear();
    q.metadata.insert("topic".into(), json!("kai"));
    assert_eq!(ids(&m.search(&a, q.clone()).await.unwrap()), [added[0].id.clone()]);
    q.metadata.clear();
    q.created_after_us = Some(now_us() + 1_000_000);
    assert!(m.search(&a, q.clone()).await.unwrap().hits.is_empty());
    q.created_after_us = None;
    q.namespaces = vec![Namespace { kind: NamespaceKind::Thread, id: "t1".into() }];
    assert!(m.search(&a, q).await.unwrap().hits.is_empty());

    let got = m.get(&a, &added[1].id).await.unwrap();
    assert_eq!(got.text, "rust borrow checker notes");
    let patch = MemoryPatch { text: Some("rust lifetimes notes".into()), ..MemoryPatch::default() };
    let changed = m.update(&a, &added[1].id, patch, true).await.unwrap();
    assert!(changed.embedded && changed.updated_at_us > got.updated_at_us);
    let r = m.search(&a, SearchQuery::text("lifetimes", 3)).await.unwrap();
    assert_eq!(r.hits[0].memory.id, added[1].id);
    // The old words no longer match its text (the vector half always returns neighbours).
    let r = m.search(&a, SearchQuery::text("borrow", 3)).await.unwrap();
    assert!(r.hits.iter().filter(|h| h.memory.id == added[1].id).all(|h| h.text.is_none()));
    m.forget(&a, &added[1].id).await.unwrap();
    assert!(matches!(m.get(&a, &added[1].id).await, Err(MemoryError::NotFound(_))));
    assert!(matches!(m.forget(&a, &added[1].id).await, Err(MemoryError::NotFound(_))));
    let r = m.search(&a, SearchQuery::text("lifetimes", 3)).await.unwrap();
    assert!(r.hits.iter().all(|h| h.memory.id != added[1].id && h.text.is_none()));
    // Bounds.
    assert!(m.add(&a, vec![], false).await.is_err());
    assert!(m.search(&a, SearchQuery::text("x", 0)).await.is_err());
    assert!(m.add(&a, vec![note(" ")], false).await.is_err());
}

fn ids(r: &SearchResult) -> Vec<String> {
    r.hits.iter().map(|h| h.memory.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_never_see_each_other() {
    let f = fixture(false).await;
    let m = f.memory(f.settings());
    let a = Caller::agent("kBridge:a");
    let b = Caller::agent("kBridge:b");
    let mut secret = note("agent a's plan: launch at dawn");
    secret.private = true;
    let ma = m.add(&a, vec![secret, note("agent a public note about dawn")], true).await.unwrap();
    m.add(&b, vec![note("agent b note about dawn")], true).await.unwrap();
    let rb = m.search(&b, SearchQuery::text("launch at dawn plan", 10)).await.unwrap();
    assert_eq!(rb.hits.len(), 1, "b sees only its own");
    assert!(rb.hits.iter().all(|h| !h.memory.text.contains("agent a")));
    for id in ma.iter().map(|v| &v.id) {
        assert!(matches!(m.get(&b, id).await, Err(MemoryError::NotFound(_))));
        assert!(matches!(m.forget(&b, id).await, Err(MemoryError::NotFound(_))));
    }
    // An exact vector of a's private text finds nothing for b.
    let v = m.embed_texts(&["agent a's plan: launch at dawn".into()]).await.unwrap().pop().unwrap();
    let mut q = SearchQuery::text("", 10);
    q.text = None;
    q.vector = Some(v.clone());
    assert!(
        m.search(&b, q.clone())
            .await
            .unwrap()
            .hits
            .iter()
            .all(|h| !h.memory.id.starts_with(&ma[0].id))
    );
    assert_eq!(m.search(&a, q).await.unwrap().hits[0].memory.id, ma[0].id);
    // b may not name a's namespace, or a user namespace.
    let mut q = SearchQuery::text("dawn", 5);
    q.namespaces = vec![Namespace { kind: NamespaceKind::Agent, id: "kBridge:a".into() }];
    assert!(matches!(m.search(&b, q).await, Err(MemoryError::BadRequest(_))));
    let mut into_a = note("sneaky");
    into_a.namespace = Some(Namespace { kind: NamespaceKind::Agent, id: "kBridge:a".into() });
    assert!(m.add(&b, vec![into_a], false).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_memories_are_never_returned_and_then_swept() {
    let f = fixture(false).await;
    let m = f.memory(f.settings());
    let a = alice();
    let mut short = note("ephemeral reminder about the dentist");
    short.ttl_secs = Some(1);
    let kept =
        m.add(&a, vec![short, note("permanent reminder about the dentist")], true).await.unwrap();
    assert_eq!(m.search(&a, SearchQuery::text("dentist reminder", 5)).await.unwrap().hits.len(), 2);
    // Wait for the TTL to pass (the condition itself, polled): the sweeper has not run.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = m.search(&a, SearchQuery::text("dentist reminder", 5)).await.unwrap();
        if r.hits.len() == 1 {
            assert_eq!(r.hits[0].memory.id, kept[1].id);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the TTL never took effect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(f.store.memory(&kept[0].id).await.unwrap().is_some(), "not swept yet, still hidden");
    assert!(matches!(m.get(&a, &kept[0].id).await, Err(MemoryError::NotFound(_))));
    assert_eq!(m.sweep().await.unwrap(), 1);
    assert!(f.store.memory(&kept[0].id).await.unwrap().is_none());
    assert_eq!(m.indexed().await.unwrap(), 1);
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_memories_are_ciphertext_in_the_store_and_searchable_after_reload() {
    let f = fixture(false).await;
    let m = f.memory(f.settings());
    let a = alice();
    let mut p = note("CANARYprivatephrase kept under lock");
    p.private = true;
    p.metadata.insert("label".into(), json!("CANARYmeta"));
    let added = m.add(&a, vec![p], true).await.unwrap();
    let row = f.store.memory(&added[0].id).await.unwrap().unwrap();
    assert!(row.encrypted);
    for field in [row.text.as_bytes(), row.metadata.as_bytes(), row.embedding.as_deref().unwrap()] {
        assert!(!contains(field, b"CANARY"), "plaintext in the row");
    }
    let plain_vector = m
        .embed_texts(&["CANARYprivatephrase kept under lock".into()])
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert!(
        !contains(row.embedding.as_deref().unwrap(), &plain_vector[0].to_le_bytes()),
        "vector stored in the clear"
    );
    assert_eq!(m.get(&a, &added[0].id).await.unwrap().metadata["label"], "CANARYmeta");
    let r = m.search(&a, SearchQuery::text("CANARYprivatephrase", 3)).await.unwrap();
    assert_eq!(r.hits[0].memory.id, added[0].id);
    assert!(r.hits[0].text.is_some() && r.hits[0].vector.is_some(), "found by BM25 and by vector");
    m.save().await.unwrap();
    for entry in std::fs::read_dir(f.dir.path().join("memory")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!contains(&bytes, b"CANARY"));
        assert!(
            !contains(&bytes, &plain_vector[0].to_le_bytes()),
            "private vector in the index file"
        );
    }
    // A new service over the same store decrypts at load.
    let again = f.memory(f.settings());
    let r = again.search(&a, SearchQuery::text("CANARYprivatephrase", 3)).await.unwrap();
    assert_eq!(r.hits[0].memory.id, added[0].id);
    assert!(r.hits[0].vector.is_some());
    // Sealed: nothing answers.
    f.vault.seal();
    assert!(matches!(
        again.search(&a, SearchQuery::text("x", 1)).await,
        Err(MemoryError::Vault(VaultError::Sealed))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_is_persisted_reconciled_and_rebuilt_when_corrupt() {
    let f = fixture(false).await;
    let m = f.memory(f.settings());
    let a = alice();
    let batch: Vec<NewMemory> =
        (0..40).map(|i| note(&format!("note number {i} about topic {}", i % 5))).collect();
    let first = m.add(&a, batch, true).await.unwrap();
    m.save().await.unwrap();
    // Written after the save and never saved (as if the node died): reconciled at load.
    let late = m.add(&a, vec![note("added after the save")], true).await.unwrap();
    let forgotten = f.store.memory(&first[0].id).await.unwrap().unwrap().num as u64;
    m.forget(&a, &first[0].id).await.unwrap();
    let path = f.dir.path().join("memory").join("vectors.hnsw");
    assert!(path.exists());
    let reloaded = f.memory(f.settings());
    let r = reloaded.search(&a, SearchQuery::text("added after the save", 3)).await.unwrap();
    assert_eq!(r.hits[0].memory.id, late[0].id);
    assert_eq!(r.hits[0].vector.map(|v| v.0), Some(1), "its vector was re-applied");
    {
        let shelf = reloaded.shelf().await.unwrap();
        let public = blocking(move || shelf.read().public_vector_ids()).await.unwrap();
        assert_eq!(public.len(), 40, "40 saved - 1 forgotten + 1 late");
        assert!(!public.contains(&forgotten));
    }
    // Corrupt the file: the next load rebuilds from the store.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let rebuilt = f.memory(f.settings());
    let r = rebuilt.search(&a, SearchQuery::text("note number 7 about topic 2", 3)).await.unwrap();
    assert_eq!(r.hits[0].memory.text, "note number 7 about topic 2");
    assert_eq!(r.hits[0].vector.map(|v| v.0), Some(1));
    let shelf = rebuilt.shelf().await.unwrap();
    let public = blocking(move || shelf.read().public_vector_ids()).await.unwrap();
    assert_eq!(public.len(), 40);
    // A missing file rebuilds too.
    std::fs::remove_file(&path).unwrap();
    let fresh = f.memory(f.settings());
    assert_eq!(fresh.indexed().await.unwrap(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_embedded_in_the_background_and_the_api_says_when_it_cannot() {
    let f = fixture(false).await;
    let m = f.memory(f.settings());
    let a = alice();
    let added =
        m.add(&a, vec![note("embedded later"), note("and this one too")], false).await.unwrap();
    assert!(added.iter().all(|v| !v.embedded));
    // Searchable by full text at once.
    assert_eq!(m.search(&a, SearchQuery::text("later", 3)).await.unwrap().hits.len(), 1);
    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    m.start(&tracker, cancel.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !m.get(&a, &added[1].id).await.unwrap().embedded {
        assert!(std::time::Instant::now() < deadline, "never embedded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = m.search(&a, SearchQuery::text("and this one too", 3)).await.unwrap();
    assert_eq!(r.hits[0].vector.map(|v| v.0), Some(1));
    let embed_calls = f.fake.requests().iter().filter(|r| r.path.contains("embeddings")).count();
    assert!(embed_calls >= 2, "one batch for both records, one per query: {embed_calls}");
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    assert!(f.dir.path().join("memory").join("vectors.json").exists(), "saved at shutdown");

    // Without an embedding provider: stored, found by full text, and the answer says why.
    let mut plain = f.settings();
    plain.embedding_provider = None;
    plain.dir = f.dir.path().join("memory2");
    let n = f.memory(plain);
    n.add(&a, vec![note("no vectors here")], true).await.unwrap();
    let r = n.search(&a, SearchQuery::text("vectors", 3)).await.unwrap();
    assert!(!r.vector_search);
    assert!(r.notice.unwrap().contains("embedding_provider"));
    assert_eq!(r.hits.len(), 1);
    assert!(matches!(n.embed_texts(&["x".into()]).await, Err(MemoryError::NoEmbedder)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_entities_relations_traversal_merge_and_expansion() {
    let f = fixture(false).await;
    let m = f.memory(f.settings());
    let a = alice();
    let mems = m
        .add(
            &a,
            vec![
                note("Ada works at the Analytical Engine project"),
                note("Charles designed the engine"),
                note("unrelated cooking notes"),
            ],
            true,
        )
        .await
        .unwrap();
    let ada = m
        .add_entity(
            &a,
            EntityInput {
                name: "Ada".into(),
                kind: "person".into(),
                properties: Map::new(),
                memory_ids: vec![mems[0].id.clone()],
            },
        )
        .await
        .unwrap();
    let end = |name: &str, kind: &str| EndRef::Name { name: name.into(), kind: kind.into() };
    let rel = |s, t, ty: &str, mem: Option<&str>| RelationInput {
        source: s,
        target: t,
        rel_type: ty.into(),
        properties: Map::new(),
        memory_id: mem.map(str::to_owned),
    };
    m.add_relation(
        &a,
        rel(
            EndRef::Id(ada.id.clone()),
            end("Analytical Engine", "project"),
            "works_on",
            Some(&mems[0].id),
        ),
    )
    .await
    .unwrap();
    m.add_relation(
        &a,
        rel(
            end("Charles", "person"),
            end("analytical  ENGINE", "project"),
            "designed",
            Some(&mems[1].id),
        ),
    )
    .await
    .unwrap();
    m.add_relation(&a, rel(end("Charles", "person"), end("London", "place"), "lived_in", None))
        .await
        .unwrap();
    let g1 = m.graph(&a, Some("Ada"), 1, None, 100).await.unwrap();
    assert_eq!(names(&g1), ["Ada", "Analytical Engine"]);
    let g2 = m.graph(&a, Some(&ada.id), 2, None, 100).await.unwrap();
    assert_eq!(names(&g2), ["Ada", "Analytical Engine", "Charles"]);
    let g3 = m.graph(&a, Some(&ada.id), 3, None, 100).await.unwrap();
    assert_eq!(names(&g3), ["Ada", "Analytical Engine", "Charles", "London"]);
    let typed = m.graph(&a, Some(&ada.id), 3, Some("works_on"), 100).await.unwrap();
    assert_eq!(names(&typed), ["Ada", "Analytical Engine"]);
    assert_eq!(m.graph(&a, None, 0, None, 100).await.unwrap().entities.len(), 4);
    // Another owner sees none of it.
    let bob = Caller::user("bob", "user:bob");
    assert!(m.graph(&bob, None, 0, None, 100).await.unwrap().entities.is_empty());
    assert!(matches!(
        m.graph(&bob, Some(&ada.id), 1, None, 10).await,
        Err(MemoryError::NotFound(_))
    ));
    assert!(matches!(m.entity(&bob, &ada.id).await, Err(MemoryError::NotFound(_))));
    // Expansion: a search hitting Ada's memory brings Charles's through the shared project.
    let mut q = SearchQuery::text("Ada works", 1);
    q.expand_graph = true;
    let r = m.search(&a, q).await.unwrap();
    assert_eq!(r.hits[0].memory.id, mems[0].id);
    assert!(
        r.hits.iter().any(|h| h.memory.id == mems[1].id && h.via == Via::Graph),
        "{:?}",
        ids(&r)
    );
    assert!(r.hits.iter().all(|h| h.memory.id != mems[2].id));
    // Merge a duplicate spelled differently.
    let dup = m
        .add_entity(
            &a,
            EntityInput {
                name: "Ada Lovelace".into(),
                kind: "person".into(),
                properties: Map::new(),
                memory_ids: vec![],
            },
        )
        .await
        .unwrap();
    m.add_relation(&a, rel(EndRef::Id(dup.id.clone()), end("London", "place"), "visited", None))
        .await
        .unwrap();
    let merged = m.merge_entities(&a, &ada.id, std::slice::from_ref(&dup.id)).await.unwrap();
    assert_eq!(merged.id, ada.id);
    assert!(matches!(m.entity(&a, &dup.id).await, Err(MemoryError::NotFound(_))));
    let g = m.graph(&a, Some(&ada.id), 1, None, 100).await.unwrap();
    assert_eq!(names(&g), ["Ada", "Analytical Engine", "London"]);
    assert!(m.merge_entities(&bob, &ada.id, std::slice::from_ref(&dup.id)).await.is_err());
}

fn names(g: &Graph) -> Vec<String> {
    g.entities.iter().map(|e| e.name.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extraction_persona_builds_the_graph_and_bad_answers_are_refused() {
    let f = fixture(true).await;
    let mut s = f.settings();
    s.extraction_persona = Some("extractor".into());
    let m = f.memory(s);
    let a = alice();
    f.fake.push_chat(Reply::text(
        r#"{"entities":[{"name":"Grace Hopper","kind":"person"},{"name":"COBOL","kind":"project"}],"relations":[{"source":"Grace Hopper","target":"COBOL","type":"created"}]}"#,
    ));
    f.fake.push_chat(Reply::text("Sure! Grace Hopper is a person."));
    let mut secret = note("private: Grace's diary");
    secret.private = true;
    m.add(&a, vec![note("Grace Hopper created COBOL"), note("Some other note"), secret], true)
        .await
        .unwrap();
    m.extract_pending().await.unwrap();
    let g = m.graph(&a, Some("grace hopper"), 1, None, 10).await.unwrap();
    assert_eq!(names(&g), ["COBOL", "Grace Hopper"]);
    assert_eq!(g.relations[0].rel_type, "created");
    assert!(g.relations[0].memory_id.is_some());
    assert_eq!(
        m.graph(&a, None, 0, None, 100).await.unwrap().entities.len(),
        2,
        "the refused answer added nothing"
    );
    assert!(f.store.memories_needing_extraction(0, 10).await.unwrap().is_empty());
    let chats: Vec<_> = f.fake.requests().into_iter().filter(|r| r.path.contains("chat")).collect();
    assert_eq!(chats.len(), 2, "the private memory was never sent to the model");
    assert!(chats.iter().all(|r| !r.body.to_string().contains("diary")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qdrant_backend_over_the_fake_server() {
    let f = fixture(false).await;
    let qdrant = kai_memory::qdrant::fake::FakeQdrant::start().await.unwrap();
    let mut s = f.settings();
    s.backend = VectorBackend::Qdrant {
        url: qdrant.url(),
        collection: "kai_memory".into(),
        key_secret: None,
    };
    let m = f.memory(s.clone());
    let a = alice();
    let mut p = note("private thing stays local");
    p.private = true;
    let added = m
        .add(&a, vec![note("vectors live in qdrant"), note("another public one"), p], true)
        .await
        .unwrap();
    assert_eq!(qdrant.point_ids("kai_memory").len(), 2, "private vectors never leave the node");
    let r = m.search(&a, SearchQuery::text("vectors live in qdrant", 3)).await.unwrap();
    assert_eq!(r.hits[0].memory.id, added[0].id);
    assert_eq!(r.hits[0].vector.map(|v| v.0), Some(1));
    m.forget(&a, &added[1].id).await.unwrap();
    assert_eq!(qdrant.point_ids("kai_memory").len(), 1);
    m.save().await.unwrap();
    // A reload reconciles with the collection (a point the store no longer has is removed).
    let reloaded = f.memory(s);
    let r = reloaded.search(&a, SearchQuery::text("private thing stays local", 3)).await.unwrap();
    assert_eq!(r.hits[0].memory.id, added[2].id);
    assert!(qdrant.requests().iter().any(|r| r.contains("/points/search")));
}

#[test]
fn model_labels_name_provider_and_model() {
    let mut s = MemorySettings::new("/x".into());
    assert_eq!(s.model_label(), None);
    s.embedding_provider = Some("local".into());
    assert_eq!(s.model_label().as_deref(), Some("local/default"));
    s.embedding_model = Some("minilm".into());
    assert_eq!(s.model_label().as_deref(), Some("local/minilm"));
}
