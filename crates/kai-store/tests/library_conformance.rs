//! The prompt library and artifact store suite, run against SQLite always and against
//! PostgreSQL when `KAI_TEST_POSTGRES_URL` is set (the project's test command sets it).
//! Kept beside `conformance.rs` (same shape) so the two suites merge independently.

use std::sync::Arc;

use kai_store::{
    ArtifactQuery, ArtifactRow, NoteRow, PromptQuery, PromptRenderRow, PromptRow, PromptVersionRow,
    ShareRow, Store, StoreError,
};

struct Backend {
    store: Arc<dyn Store>,
    cleanup: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("kai.db").display());
        Self { store: kai_store::open(&url, 4).await.unwrap(), cleanup: None, _dir: Some(dir) }
    }

    async fn postgres() -> Option<Self> {
        let url = std::env::var("KAI_TEST_POSTGRES_URL").ok()?;
        let schema = format!("kai_test_{}", uuid::Uuid::now_v7().simple());
        let store = kai_store::open_postgres_schema(&url, &schema, 4).await.unwrap();
        Some(Self { store, cleanup: Some((url, schema)), _dir: None })
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
    prompts_versions_are_immutable_and_ordered,
    prompt_search_tags_ratings_and_usage,
    render_history_pages_newest_first,
    artifact_versions_per_owner_and_name,
    artifact_delete_reports_remaining_refs,
    share_links_by_hash_revocation_and_cascade,
    notes_and_search_documents,
);

fn prompt(id: &str, name: &str, tags: &[&str]) -> (PromptRow, PromptVersionRow) {
    let p = PromptRow {
        id: id.into(),
        name: name.into(),
        description: format!("{name} description"),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        latest_version: 1,
        usage_count: 0,
        rating_sum: 0,
        rating_count: 0,
        created_by: "user:u1".into(),
        created_at_us: 1,
        updated_at_us: 1,
    };
    (p, version(id, 1, &format!("Hello {{{{ who }}}} from {name}")))
}

fn version(prompt_id: &str, v: i64, template: &str) -> PromptVersionRow {
    PromptVersionRow {
        prompt_id: prompt_id.into(),
        version: v,
        template: template.into(),
        variables: r#"[{"name":"who","type":"string"}]"#.into(),
        description: format!("v{v}"),
        message: format!("edit {v}"),
        author: "user:u1".into(),
        created_at_us: v * 10,
    }
}

async fn prompts_versions_are_immutable_and_ordered(b: &Backend) {
    let s = &b.store;
    let (p, v1) = prompt("p1", "greet", &["demo"]);
    s.insert_prompt(&p, &v1).await.unwrap();
    let (dup, dup_v) = prompt("p2", "greet", &[]);
    assert!(matches!(s.insert_prompt(&dup, &dup_v).await, Err(StoreError::Conflict(_))));
    assert!(s.prompt("p2").await.unwrap().is_none(), "a refused insert leaves nothing");

    s.add_prompt_version(&version("p1", 2, "Hi {{ who }}")).await.unwrap();
    // Editing from a stale version is a conflict, not a silent overwrite.
    let stale = s.add_prompt_version(&version("p1", 2, "lost update")).await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");
    assert!(matches!(
        s.add_prompt_version(&version("nope", 2, "x")).await,
        Err(StoreError::NotFound)
    ));
    s.add_prompt_version(&version("p1", 3, "Hey {{ who }}")).await.unwrap();

    let got = s.prompt_by_name("greet").await.unwrap().unwrap();
    assert_eq!((got.latest_version, got.description.as_str()), (3, "v3"));
    let versions = s.prompt_versions("p1").await.unwrap();
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(versions[1].template, "Hi {{ who }}");
    assert_eq!(s.prompt_version("p1", 1).await.unwrap().unwrap(), v1);
    assert!(s.prompt_version("p1", 9).await.unwrap().is_none());

    s.delete_prompt("p1").await.unwrap();
    assert!(s.prompt_versions("p1").await.unwrap().is_empty(), "versions go with the prompt");
    assert!(matches!(s.delete_prompt("p1").await, Err(StoreError::NotFound)));
}

async fn prompt_search_tags_ratings_and_usage(b: &Backend) {
    let s = &b.store;
    for (id, name, tags) in
        [("a", "alpha", &["x_y"][..]), ("b", "beta", &["xzy"]), ("c", "gamma", &[])]
    {
        let (p, v) = prompt(id, name, tags);
        s.insert_prompt(&p, &v).await.unwrap();
    }
    let names = |rows: Vec<PromptRow>| rows.into_iter().map(|p| p.name).collect::<Vec<_>>();
    let all = s.prompts(&PromptQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(names(all), ["alpha", "beta", "gamma"]);
    // `_` in a tag is literal, not a LIKE wildcard.
    let tagged = s
        .prompts(&PromptQuery { tag: Some("x_y"), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(names(tagged), ["alpha"]);
    s.set_prompt_tags("c", &["x_y".into()], 5).await.unwrap();
    assert!(matches!(s.set_prompt_tags("zz", &[], 5).await, Err(StoreError::NotFound)));

    // Text search matches the latest template and orders by use.
    s.add_prompt_version(&version("c", 2, "Summarize {{ text }} briefly")).await.unwrap();
    for _ in 0..2 {
        s.record_render(&render("c", "gamma", "user:u1", true)).await.unwrap();
    }
    s.record_render(&render("a", "alpha", "user:u1", true)).await.unwrap();
    s.record_render(&render("a", "alpha", "user:u1", false)).await.unwrap();
    let found = s
        .prompts(&PromptQuery { text: Some("SUMMARIZE"), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(names(found), ["gamma"]);
    let hello = s
        .prompts(&PromptQuery { text: Some("hello"), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(names(hello), ["alpha", "beta"], "most used first; gamma's latest has no hello");
    assert_eq!(s.prompt("a").await.unwrap().unwrap().usage_count, 1, "failed renders do not count");

    s.rate_prompt("a", "user:u1", 5, 1).await.unwrap();
    s.rate_prompt("a", "user:u2", 2, 1).await.unwrap();
    s.rate_prompt("a", "user:u1", 3, 2).await.unwrap();
    let a = s.prompt("a").await.unwrap().unwrap();
    assert_eq!((a.rating_sum, a.rating_count), (5, 2), "one rating per rater, replaced");
    assert!(matches!(s.rate_prompt("zz", "user:u1", 3, 1).await, Err(StoreError::NotFound)));
}

fn render(prompt_id: &str, name: &str, actor: &str, ok: bool) -> PromptRenderRow {
    PromptRenderRow {
        id: 0,
        prompt_id: prompt_id.into(),
        prompt_name: name.into(),
        version: 1,
        actor: actor.into(),
        ok,
        variables: r#"{"who":7}"#.into(),
        output_bytes: 12,
        error: (!ok).then(|| "variable `who` is required".into()),
        at_us: 100,
    }
}

async fn render_history_pages_newest_first(b: &Backend) {
    let s = &b.store;
    let (p, v) = prompt("p", "p", &[]);
    s.insert_prompt(&p, &v).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let actor = if i % 2 == 0 { "user:a" } else { "user:b" };
        ids.push(s.record_render(&render("p", "p", actor, true)).await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let mine = s.renders(Some("user:a"), None, None, 10).await.unwrap();
    assert_eq!(mine.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[4], ids[2], ids[0]]);
    let page = s.renders(None, Some("p"), Some(ids[3]), 2).await.unwrap();
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[2], ids[1]]);
    assert_eq!(page[0].variables, r#"{"who":7}"#);
    assert!(s.renders(None, Some("other"), None, 10).await.unwrap().is_empty());
}

fn artifact(id: &str, owner: &str, name: &str, digest: &str, at: i64) -> ArtifactRow {
    ArtifactRow {
        id: id.into(),
        owner: owner.into(),
        name: name.into(),
        version: 0,
        digest: digest.into(),
        size: 3,
        content_type: "text/plain".into(),
        tags: vec!["draft".into()],
        task_id: Some("task-1".into()),
        created_at_us: at,
    }
}

async fn artifact_versions_per_owner_and_name(b: &Backend) {
    let s = &b.store;
    let (r1, doc) =
        s.insert_artifact(&artifact("a1", "user:u", "n.txt", "d1", 1), Some("one")).await.unwrap();
    assert_eq!(r1.version, 1);
    assert!(doc.is_some());
    let (r2, none) =
        s.insert_artifact(&artifact("a2", "user:u", "n.txt", "d2", 2), None).await.unwrap();
    assert_eq!((r2.version, none), (2, None));
    let (other, _) =
        s.insert_artifact(&artifact("a3", "user:v", "n.txt", "d1", 3), None).await.unwrap();
    assert_eq!(other.version, 1, "versions count per owner");
    s.insert_artifact(&artifact("a4", "user:u", "m.txt", "d3", 4), None).await.unwrap();

    let versions = s.artifact_versions("user:u", "n.txt").await.unwrap();
    assert_eq!(
        versions.iter().map(|a| (a.id.as_str(), a.version)).collect::<Vec<_>>(),
        [("a1", 1), ("a2", 2)]
    );
    let ids = |rows: Vec<ArtifactRow>| rows.into_iter().map(|a| a.id).collect::<Vec<_>>();
    let latest = s
        .artifacts(&ArtifactQuery {
            owner: Some("user:u"),
            latest_only: true,
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(latest), ["a4", "a2"]);
    let everyone = s.artifacts(&ArtifactQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(ids(everyone), ["a4", "a3", "a2", "a1"]);
    let paged = s
        .artifacts(&ArtifactQuery { before_us: Some(3), limit: 1, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(ids(paged), ["a2"]);
    s.set_artifact_tags("a1", &["final".into()]).await.unwrap();
    let tagged = s
        .artifacts(&ArtifactQuery { tag: Some("final"), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(ids(tagged), ["a1"]);
    let by_task = s
        .artifacts(&ArtifactQuery { task_id: Some("task-1"), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(by_task.len(), 4);
    let got = s.artifact("a2").await.unwrap().unwrap();
    assert_eq!(
        (got.name.as_str(), got.tags.as_slice(), got.task_id.as_deref()),
        ("n.txt", &["draft".to_owned()][..], Some("task-1"))
    );
    assert!(s.artifact("zz").await.unwrap().is_none());
}

async fn artifact_delete_reports_remaining_refs(b: &Backend) {
    let s = &b.store;
    s.insert_artifact(&artifact("a1", "user:u", "x", "same", 1), Some("text of a1")).await.unwrap();
    s.insert_artifact(&artifact("a2", "user:v", "y", "same", 2), None).await.unwrap();
    assert_eq!(s.digest_refs("same").await.unwrap(), 2);
    let gone = s.delete_artifact("a1").await.unwrap();
    assert_eq!((gone.row.id.as_str(), gone.remaining_refs), ("a1", 1));
    assert!(gone.doc_id.is_some(), "its search document went with it");
    assert!(s.search_docs(0, 10).await.unwrap().is_empty());
    let last = s.delete_artifact("a2").await.unwrap();
    assert_eq!((last.remaining_refs, last.doc_id), (0, None));
    assert!(matches!(s.delete_artifact("a2").await, Err(StoreError::NotFound)));
}

async fn share_links_by_hash_revocation_and_cascade(b: &Backend) {
    let s = &b.store;
    s.insert_artifact(&artifact("a1", "user:u", "x", "d", 1), None).await.unwrap();
    let share = ShareRow {
        id: "s1".into(),
        artifact_id: "a1".into(),
        token_hash: [7; 32],
        created_by: "user:u".into(),
        created_at_us: 10,
        expires_at_us: 20,
        revoked_at_us: None,
        uses: 0,
        last_used_at_us: None,
    };
    s.insert_share(&share).await.unwrap();
    assert!(matches!(
        s.insert_share(&ShareRow { id: "s2".into(), ..share.clone() }).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.share_by_hash(&[7; 32]).await.unwrap().unwrap(), share);
    assert!(s.share_by_hash(&[8; 32]).await.unwrap().is_none());
    s.touch_share("s1", 15).await.unwrap();
    s.touch_share("s1", 16).await.unwrap();
    s.revoke_share("s1", 17).await.unwrap();
    s.revoke_share("s1", 18).await.unwrap();
    let got = s.share("s1").await.unwrap().unwrap();
    assert_eq!((got.uses, got.last_used_at_us, got.revoked_at_us), (2, Some(16), Some(17)));
    assert!(matches!(s.revoke_share("zz", 1).await, Err(StoreError::NotFound)));
    assert_eq!(s.shares("a1").await.unwrap().len(), 1);
    s.delete_artifact("a1").await.unwrap();
    assert!(s.share("s1").await.unwrap().is_none(), "links go with their artifact");
}

async fn notes_and_search_documents(b: &Backend) {
    let s = &b.store;
    let note = NoteRow {
        id: "n1".into(),
        owner: "user:u".into(),
        title: "Groceries".into(),
        body: "eggs and milk".into(),
        tags: vec!["home".into()],
        task_id: None,
        created_at_us: 1,
        updated_at_us: 1,
    };
    let d1 = s.insert_note(&note).await.unwrap();
    let (_, d2) = s
        .insert_artifact(&artifact("a1", "user:v", "r.md", "d", 2), Some("# Report"))
        .await
        .unwrap();
    assert!(d2.unwrap() > d1);
    let docs = s.search_docs(0, 10).await.unwrap();
    assert_eq!(
        docs.iter().map(|d| (d.kind.as_str(), d.ref_id.as_str())).collect::<Vec<_>>(),
        [("note", "n1"), ("artifact", "a1")]
    );
    assert_eq!(s.search_docs(d1, 10).await.unwrap().len(), 1);
    let updated = NoteRow { body: "eggs, milk and bread".into(), updated_at_us: 5, ..note.clone() };
    assert_eq!(s.update_note(&updated).await.unwrap(), d1, "the document keeps its id");
    let by_id = s.search_docs_by_id(&[d1, 999]).await.unwrap();
    assert_eq!(by_id.len(), 1);
    assert_eq!(
        (by_id[0].owner.as_str(), by_id[0].body.as_str()),
        ("user:u", "eggs, milk and bread")
    );
    assert_eq!(s.note("n1").await.unwrap().unwrap(), updated);
    assert_eq!(s.notes(Some("user:u"), Some("home"), 10).await.unwrap().len(), 1);
    assert!(s.notes(Some("user:v"), None, 10).await.unwrap().is_empty());
    assert!(matches!(
        s.update_note(&NoteRow { id: "zz".into(), ..note.clone() }).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.delete_note("n1").await.unwrap(), d1);
    assert!(matches!(s.delete_note("n1").await, Err(StoreError::NotFound)));
    assert_eq!(s.search_docs(0, 10).await.unwrap().len(), 1);
}
