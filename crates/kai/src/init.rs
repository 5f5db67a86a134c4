//! `kai init`: data directory (0700), node identity, audit log with its genesis entry, and an
//! owner API token for the CLI kept in `<data>/admin.token` (0600).

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

use anyhow::Context as _;
use kai_core::config::Config;
use kai_crypto::audit::Outcome;
use kai_store::TokenRecord;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::node;
use crate::paths::DataDir;

/// What `init` did.
#[derive(Debug, serde::Serialize)]
pub struct Initialized {
    pub created: bool,
    pub data_dir: String,
    pub did: String,
    pub admin_token_file: String,
}

/// Initializes `data` unless it already is.
pub async fn init(config: &Config, data: &DataDir) -> anyhow::Result<Initialized> {
    let token_file = data.admin_token_file();
    if data.is_initialized() {
        let did =
            std::fs::read_to_string(data.genesis_file()).unwrap_or_default().trim().to_owned();
        return Ok(Initialized {
            created: false,
            data_dir: data.root.display().to_string(),
            did,
            admin_token_file: token_file.display().to_string(),
        });
    }
    std::fs::create_dir_all(&data.root)
        .with_context(|| format!("cannot create {}", data.root.display()))?;
    std::fs::set_permissions(&data.root, std::fs::Permissions::from_mode(0o700))?;
    let dir = data.identity_dir();
    let identity =
        tokio::task::spawn_blocking(move || kai_runtime::identity::create(&dir)).await??;
    std::fs::write(data.genesis_file(), format!("{}\n", identity.did()))?;

    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (_tx, settings) = watch::channel(node::audit_settings(config));
    let core = node::open_core(config, data, settings, &tracker, cancel.clone()).await?;
    let (token, hash) = kai_crypto::token::generate();
    let record = TokenRecord {
        id: uuid_like(),
        name: "local CLI (admin.token)".into(),
        role: "owner".into(),
        token_hash: hash,
        created_at_us: chrono::Utc::now().timestamp_micros(),
        expires_at_us: None,
        revoked_at_us: None,
    };
    let actor = identity_actor(&core.identity);
    core.audit
        .record(
            &actor,
            "token.create",
            &format!("token:{}", record.id),
            Outcome::Success,
            serde_json::json!({"role": "owner", "name": record.name}),
        )
        .await?;
    core.store.insert_token(&record).await?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&token_file)
        .with_context(|| format!("cannot create {}", token_file.display()))?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    core.store.close().await;
    Ok(Initialized {
        created: true,
        data_dir: data.root.display().to_string(),
        did: core.identity.did().to_string(),
        admin_token_file: token_file.display().to_string(),
    })
}

fn identity_actor(identity: &kai_crypto::Identity) -> String {
    identity.did().to_string()
}

fn uuid_like() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}
