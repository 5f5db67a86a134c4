//! The prompt library and artifact services on a real SQLite store with the filesystem blob
//! backend: `Prompts::resolve` as agents and personas use it, and artifact dedup, versions,
//! search and blob reference counting.

use std::sync::Arc;

use kai_blob::Staging;
use kai_blob::fs::FsBlobStore;
use kai_runtime::artifacts::{ArtifactSettings, Artifacts, UploadMeta, Viewer};
use kai_runtime::prompts::{Edit, NewPrompt, PromptError, Prompts, VarKind, VariableSpec};
use serde_json::{Map, Value, json};

async fn store(dir: &tempfile::TempDir) -> Arc<dyn kai_store::Store> {
    kai_store::open(&format!("sqlite://{}", dir.path().join("kai.db").display()), 2).await.unwrap()
}

#[tokio::test]
async fn resolve_names_versions_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let prompts = Prompts::new(store(&dir).await);
    let var = |name: &str| VariableSpec {
        name: name.into(),
        kind: VarKind::String,
        required: true,
        default: None,
        description: String::new(),
    };
    let created = prompts
        .create(
            "user:u",
            NewPrompt {
                name: "persona.system".into(),
                template: "You are {{ role }}.".into(),
                variables: vec![var("role")],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    prompts
        .edit(
            "persona.system",
            "user:u",
            Edit {
                template: Some("You are {{ role }}. Be brief.".into()),
                message: "brief".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let latest = prompts.resolve("persona.system").await.unwrap();
    assert_eq!(
        (latest.reference(), latest.version.template.as_str()),
        ("persona.system@2".into(), "You are {{ role }}. Be brief.")
    );
    assert_eq!(prompts.resolve("persona.system@latest").await.unwrap().version.version, 2);
    let pinned = prompts.resolve("persona.system@1").await.unwrap();
    assert_eq!(pinned.version.template, "You are {{ role }}.");
    assert_eq!(prompts.resolve(&format!("{}@1", created.row.id)).await.unwrap().version.version, 1);
    let values: Map<String, Value> = json!({"role": "kai"}).as_object().cloned().unwrap();
    assert_eq!(pinned.render(&values).unwrap(), "You are kai.");
    assert!(matches!(prompts.resolve("persona.system@9").await, Err(PromptError::NotFound(_))));
    assert!(matches!(prompts.resolve("nobody").await, Err(PromptError::NotFound(_))));
    assert!(matches!(prompts.resolve("Bad Name").await, Err(PromptError::Invalid(_))));
    let nothing = prompts
        .edit("persona.system", "user:u", Edit { message: "noop".into(), ..Default::default() })
        .await;
    assert!(
        matches!(nothing, Err(PromptError::Invalid(_))),
        "an edit that changes nothing adds no version"
    );
}

#[tokio::test]
async fn artifacts_dedup_version_search_and_count_references() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir).await;
    let blobs = Arc::new(FsBlobStore::new(dir.path().join("objects")).unwrap());
    let staging = Staging::new(dir.path().join("tmp")).unwrap();
    let settings = ArtifactSettings {
        share_default_secs: 3600,
        share_max_secs: 7 * 86_400,
        index_text_bytes: 1 << 20,
    };
    let artifacts = Artifacts::new(store, blobs.clone(), staging.clone(), settings);
    let me = Viewer { owner: "user:a".into(), admin: false };
    let you = Viewer { owner: "user:b".into(), admin: false };
    let put = |name: &str, bytes: &'static [u8], owner: &'static str| {
        let staging = staging.clone();
        let artifacts = &artifacts;
        let name = name.to_owned();
        async move {
            let staged = staging.stage_bytes(bytes).await.unwrap();
            artifacts
                .commit_upload(owner, UploadMeta::parse(&name, &[], None).unwrap(), staged)
                .await
                .unwrap()
        }
    };
    let a1 = put("plan.md", b"# Plan\nship the artifact store", "user:a").await;
    let a2 = put("plan.md", b"# Plan\nship it twice", "user:a").await;
    let b1 = put("copy.md", b"# Plan\nship the artifact store", "user:b").await;
    assert_eq!((a1.row.version, a2.row.version, b1.row.version), (1, 2, 1));
    assert!(b1.deduplicated && !a1.deduplicated);
    assert_eq!(a1.row.content_type, "text/markdown");
    assert_eq!(artifacts.versions(&me, &a2.row.id).await.unwrap().len(), 2);
    assert!(
        artifacts.get(&you, &a1.row.id).await.is_err(),
        "another owner's artifact is not found"
    );

    let hits = artifacts.search(&me, false, "artifact store", None, 10).await.unwrap();
    assert_eq!(
        hits.iter().map(|h| h.doc.ref_id.as_str()).collect::<Vec<_>>(),
        [a1.row.id.as_str()]
    );
    assert_eq!(artifacts.search(&you, false, "artifact", None, 10).await.unwrap().len(), 1);

    let (_, blob_gone) = artifacts.delete(&me, &a1.row.id).await.unwrap();
    assert!(!blob_gone, "user:b still uses those bytes");
    assert_eq!(
        kai_blob::fs::read_all(
            blobs.as_ref(),
            &kai_blob::Digest::parse(&b1.row.digest).unwrap(),
            1 << 20
        )
        .await
        .unwrap(),
        b"# Plan\nship the artifact store"
    );
    let (_, blob_gone) = artifacts.delete(&you, &b1.row.id).await.unwrap();
    assert!(blob_gone);
    assert!(artifacts.search(&me, false, "artifact store", None, 10).await.unwrap().is_empty());
}
