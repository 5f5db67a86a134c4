//! The node's sealed/unsealed lifecycle. Sealed, the node holds no keys: it serves health,
//! status and unlock only. Unlocking the vault loads the node identity from it, starts the
//! audit writer (whose first act is to record the unlock), installs the JWT signing key and
//! makes every service available; sealing undoes all of that.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use kai_crypto::Identity;
use kai_crypto::audit::Outcome;
use kai_crypto::vault::UnlockKey;
use kai_store::Store;
use secrecy::SecretString;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Auth;
use crate::identity::NodeIdentity;
use crate::users::Users;
use crate::vault::{IDENTITY, SIGNING, Vault, VaultError};
use crate::{AuditError, AuditLog, AuditSettings, EventBus};

/// Vault item names of the node's own keys.
pub const NODE_KEY: &str = "node";
pub const NODE_KEY_NEXT: &str = "node.next";
pub const JWT_KEY: &str = "jwt";

/// How to unlock.
pub enum Credential {
    Passphrase(SecretString),
    Key(UnlockKey),
}

/// What exists only while unsealed.
#[derive(Clone)]
pub struct Unsealed {
    pub audit: AuditLog,
    pub identity: Arc<NodeIdentity>,
    stop: CancellationToken,
}

/// Node lifecycle errors.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("the node identity in the vault is unusable: {0}")]
    Identity(String),
    #[error("auth: {0}")]
    Auth(#[from] crate::auth::AuthError),
}

impl NodeError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Vault(e) => e.code(),
            Self::Audit(e) => e.code(),
            Self::Identity(_) => "identity_mismatch",
            Self::Auth(e) => e.code(),
        }
    }
}

/// The node: always-on services plus the unsealed part.
pub struct Node {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn EventBus>,
    pub vault: Arc<Vault>,
    pub users: Arc<Users>,
    pub auth: Arc<Auth>,
    unsealed: RwLock<Option<Unsealed>>,
    unlocking: tokio::sync::Mutex<()>,
    settings: watch::Receiver<AuditSettings>,
    witness: Option<PathBuf>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Node {
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn EventBus>,
        vault: Arc<Vault>,
        settings: watch::Receiver<AuditSettings>,
        witness: Option<PathBuf>,
        tracker: TaskTracker,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            users: Arc::new(Users::new(store.clone())),
            auth: Arc::new(Auth::new(store.clone())),
            store,
            bus,
            vault,
            unsealed: RwLock::new(None),
            unlocking: tokio::sync::Mutex::new(()),
            settings,
            witness,
            tracker,
            cancel,
        }
    }

    /// The unsealed services, or `Sealed`.
    pub fn unsealed(&self) -> Result<Unsealed, VaultError> {
        self.unsealed.read().unwrap_or_else(|p| p.into_inner()).clone().ok_or(VaultError::Sealed)
    }

    /// Unlocks the vault and starts everything that needs keys. Unlocking an unsealed node is
    /// a no-op.
    pub async fn unlock(&self, credential: &Credential, actor: &str) -> Result<(), NodeError> {
        let _one = self.unlocking.lock().await;
        if self.unsealed.read().unwrap_or_else(|p| p.into_inner()).is_some() {
            return Ok(());
        }
        match credential {
            Credential::Passphrase(p) => self.vault.unlock_passphrase(p).await?,
            Credential::Key(k) => self.vault.unlock_key(k).await?,
        }
        match self.start(actor).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.vault.seal();
                Err(e)
            }
        }
    }

    async fn start(&self, actor: &str) -> Result<(), NodeError> {
        let identity = load_identity(&self.vault, self.store.as_ref()).await?;
        let stop = self.cancel.child_token();
        let audit = AuditLog::open(
            self.store.clone(),
            identity.clone(),
            self.settings.clone(),
            self.witness.clone(),
            &self.tracker,
            stop.clone(),
        )
        .await?;
        audit
            .record(actor, "vault.unlock", "vault", Outcome::Success, serde_json::json!({}))
            .await?;
        let jwt = signing_seed(&self.vault, JWT_KEY, actor).await?;
        self.auth.install_key(&jwt, identity.did().as_str())?;
        let node_identity = Arc::new(NodeIdentity::new(self.vault.clone(), &identity));
        *self.unsealed.write().unwrap_or_else(|p| p.into_inner()) =
            Some(Unsealed { audit, identity: node_identity, stop });
        Ok(())
    }

    /// Records the seal, stops the audit writer and forgets every key.
    pub async fn seal(&self, actor: &str) -> Result<(), NodeError> {
        let _one = self.unlocking.lock().await;
        let Some(unsealed) = self.unsealed.write().unwrap_or_else(|p| p.into_inner()).take() else {
            return Ok(());
        };
        let recorded = unsealed
            .audit
            .record(actor, "vault.seal", "vault", Outcome::Success, serde_json::json!({}))
            .await;
        unsealed.stop.cancel();
        self.auth.remove_key();
        self.vault.seal();
        recorded?;
        Ok(())
    }

    /// True while unsealed.
    pub fn is_unsealed(&self) -> bool {
        self.unsealed.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}

fn seed_of(bytes: &[u8]) -> Result<[u8; 32], NodeError> {
    bytes.try_into().map_err(|_| NodeError::Identity("a stored key is not 32 bytes".into()))
}

/// The node identity the audit log expects next, from the vault; finishes a rotation that
/// was interrupted after its audit entry committed.
pub async fn load_identity(vault: &Vault, store: &dyn Store) -> Result<Identity, NodeError> {
    let current = Identity::from_seed(&seed_of(&vault.read_internal(IDENTITY, NODE_KEY).await?)?);
    let Some(head) = store.audit_head().await.map_err(VaultError::from)? else {
        return Ok(current);
    };
    let expected = crate::audit::current_signer(&head).to_owned();
    if expected == current.did().as_str() {
        return Ok(current);
    }
    let next = match vault.read_internal(IDENTITY, NODE_KEY_NEXT).await {
        Ok(bytes) => Identity::from_seed(&seed_of(&bytes)?),
        Err(_) => {
            return Err(NodeError::Identity(format!(
                "the audit log expects {expected}, the vault holds {}",
                current.did()
            )));
        }
    };
    if next.did().as_str() != expected {
        return Err(NodeError::Identity(format!(
            "the audit log expects {expected}, the vault holds {}",
            current.did()
        )));
    }
    crate::identity::promote_in_vault(vault, &next).await?;
    Ok(next)
}

/// A 32-byte signing seed kept in the vault under `name`, created on first use.
pub async fn signing_seed(vault: &Vault, name: &str, actor: &str) -> Result<[u8; 32], NodeError> {
    match vault.read_internal(SIGNING, name).await {
        Ok(bytes) => seed_of(&bytes),
        Err(VaultError::NotFound(_)) => {
            let seed: [u8; 32] = rand::random();
            vault.put(SIGNING, name, &seed, None, None, actor).await?;
            Ok(seed)
        }
        Err(e) => Err(e.into()),
    }
}
