//! `kai init`: data directory (0700), vault (passphrase from `KAI_VAULT_PASSPHRASE`, a prompt,
//! or generated), the node identity sealed in the vault, the audit log with its genesis entry,
//! the owner user (password from `KAI_OWNER_PASSWORD` or generated) and an owner API token for
//! the CLI in `<data>/admin.token` (0600). A data directory made before the vault existed
//! is migrated: its identity key file is imported into the vault and removed.

use std::io::{IsTerminal as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

use anyhow::Context as _;
use base64::Engine as _;
use kai_core::config::Config;
use kai_core::policy::Role;
use kai_crypto::Identity;
use kai_crypto::vault::KdfParams;
use kai_runtime::node::{Credential, NODE_KEY};
use kai_runtime::vault::IDENTITY;
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::node;
use crate::paths::DataDir;

/// What `init` did. Generated secrets appear here once and are never stored in plaintext
/// except the unlock key file the owner asked for (0600).
#[derive(Debug, serde::Serialize)]
pub struct Initialized {
    pub created: bool,
    pub data_dir: String,
    pub did: String,
    pub owner: String,
    /// Present only when generated: shown this once.
    pub owner_password: Option<String>,
    /// Present only when generated: shown this once.
    pub vault_passphrase: Option<String>,
    pub vault_key_file: Option<String>,
    pub admin_token_file: String,
}

fn random_secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>())
}

fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn prompt_new_passphrase() -> anyhow::Result<SecretString> {
    loop {
        let a = rpassword::prompt_password("vault passphrase (12+ characters): ")?;
        if a.chars().count() < 12 {
            eprintln!("too short; try again");
            continue;
        }
        let b = rpassword::prompt_password("again: ")?;
        if a == b {
            return Ok(SecretString::from(a));
        }
        eprintln!("they differ; try again");
    }
}

fn prompt_owner_password() -> anyhow::Result<SecretString> {
    loop {
        let a = rpassword::prompt_password("owner password (10+ characters): ")?;
        if a.chars().count() < kai_runtime::users::MIN_PASSWORD_LEN {
            eprintln!("too short; try again");
            continue;
        }
        if rpassword::prompt_password("again: ")? == a {
            return Ok(SecretString::from(a));
        }
        eprintln!("they differ; try again");
    }
}

/// Initializes `data` unless it already is. `interactive` prompts for the passphrase when
/// `KAI_VAULT_PASSPHRASE` is not set and a terminal is attached.
pub async fn init(
    config: &Config,
    data: &DataDir,
    interactive: bool,
) -> anyhow::Result<Initialized> {
    let token_file = data.admin_token_file();
    let tracker = TaskTracker::new();
    let cancel = CancellationToken::new();
    let (_tx, settings) = watch::channel(node::audit_settings(config));
    let node = node::build(config, data, settings, &tracker, &cancel).await?;
    let store = node.store.clone();
    let vault_exists = store.vault_header().await?.is_some();
    if data.is_initialized() && vault_exists {
        store.close().await;
        let did =
            std::fs::read_to_string(data.genesis_file()).unwrap_or_default().trim().to_owned();
        return Ok(Initialized {
            created: false,
            data_dir: data.root.display().to_string(),
            did,
            owner: String::new(),
            owner_password: None,
            vault_passphrase: None,
            vault_key_file: data
                .vault_key_file()
                .exists()
                .then(|| data.vault_key_file().display().to_string()),
            admin_token_file: token_file.display().to_string(),
        });
    }
    std::fs::set_permissions(&data.root, std::fs::Permissions::from_mode(0o700))?;

    let (passphrase, generated_passphrase, key_file) = match std::env::var("KAI_VAULT_PASSPHRASE") {
        Ok(p) if !p.is_empty() => (SecretString::from(p), None, false),
        _ if interactive && std::io::stdin().is_terminal() => {
            (prompt_new_passphrase()?, None, false)
        }
        _ => {
            let p = random_secret();
            (SecretString::from(p.clone()), Some(p), true)
        }
    };
    let key_file = key_file || std::env::var("KAI_VAULT_KEY_FILE").as_deref() == Ok("1");
    let params = if node::kdf_policy() == kai_crypto::vault::KdfPolicy::Enforce {
        KdfParams::default()
    } else {
        KdfParams::testing_only_fast()
    };

    let unlock_key = node.vault.create(&passphrase, params, key_file).await?;

    // The identity: imported from a pre-vault key file, or new.
    let legacy = data.identity_dir().join("node.key");
    let identity = if legacy.exists() {
        let dir = data.identity_dir();
        let head = store.audit_head().await?;
        let expected = head.as_ref().map(|h| kai_runtime::audit::current_signer(h).to_owned());
        tokio::task::spawn_blocking(move || kai_runtime::identity::load(&dir, expected.as_deref()))
            .await??
    } else {
        Identity::generate()
    };
    let seed = zeroize::Zeroizing::new(identity.seed());
    node.vault.put(IDENTITY, NODE_KEY, seed.as_slice(), None, None, "kai init").await?;
    let credential = match &unlock_key {
        Some(k) => {
            Credential::Key(kai_crypto::vault::UnlockKey::from_text(k.to_text().expose_secret())?)
        }
        None => Credential::Passphrase(passphrase.clone()),
    };
    node.unlock(&credential, "kai init").await?;
    let unsealed = node.unsealed()?;
    let did = unsealed.identity.did();
    let actor = did.clone();

    // The owner and the CLI's token.
    let (owner_password, generated_password) = match std::env::var("KAI_OWNER_PASSWORD") {
        Ok(p) if !p.is_empty() => (SecretString::from(p), None),
        _ if interactive && std::io::stdin().is_terminal() => (prompt_owner_password()?, None),
        _ => {
            let p = random_secret();
            (SecretString::from(p.clone()), Some(p))
        }
    };
    let owner_name = std::env::var("KAI_OWNER_USERNAME").unwrap_or_else(|_| "owner".into());
    let owner = match store.user_by_name(&owner_name).await? {
        Some(u) => u,
        None => {
            unsealed
                .audit
                .record(
                    &actor,
                    "user.create",
                    &format!("username:{owner_name}"),
                    kai_crypto::audit::Outcome::Success,
                    serde_json::json!({"role": "owner"}),
                )
                .await?;
            node.users.create(&owner_name, &owner_password, Role::Owner).await?
        }
    };
    if !token_file.exists() {
        unsealed
            .audit
            .record(
                &actor,
                "token.create",
                "token-name:local CLI",
                kai_crypto::audit::Outcome::Success,
                serde_json::json!({"role": "owner"}),
            )
            .await?;
        let (token, _) = node
            .auth
            .create_api_token(
                "local CLI (admin.token)",
                Role::Owner,
                vec![],
                Some(owner.id.clone()),
                None,
            )
            .await?;
        write_private(&token_file, &token)?;
    }
    if let Some(k) = &unlock_key {
        write_private(&data.vault_key_file(), k.to_text().expose_secret())?;
    }
    std::fs::write(
        data.genesis_file_parent_ok()?,
        format!("{}\n", genesis_did(node.store.as_ref(), &did).await?),
    )?;
    if legacy.exists() {
        std::fs::remove_file(&legacy).context("cannot remove the imported identity key file")?;
    }
    node.seal(&actor).await?;
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    store.close().await;
    Ok(Initialized {
        created: true,
        data_dir: data.root.display().to_string(),
        did,
        owner: owner_name,
        owner_password: generated_password,
        vault_passphrase: generated_passphrase,
        vault_key_file: unlock_key.map(|_| data.vault_key_file().display().to_string()),
        admin_token_file: token_file.display().to_string(),
    })
}

async fn genesis_did(store: &dyn kai_store::Store, fallback: &str) -> anyhow::Result<String> {
    Ok(store
        .audit_range(1, 1)
        .await?
        .into_iter()
        .next()
        .map_or_else(|| fallback.to_owned(), |e| e.signer))
}

impl DataDir {
    /// The genesis file's path, with its directory created.
    fn genesis_file_parent_ok(&self) -> anyhow::Result<std::path::PathBuf> {
        std::fs::create_dir_all(self.identity_dir())?;
        std::fs::set_permissions(self.identity_dir(), std::fs::Permissions::from_mode(0o700))?;
        Ok(self.genesis_file())
    }
}
