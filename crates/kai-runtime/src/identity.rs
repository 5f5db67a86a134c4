//! Node identities. Since the vault exists the node key lives there (`NodeIdentity`); the
//! key file functions below remain for data directories made before it (imported at unlock)
//! and for tests: `<dir>/node.key`, JSON, mode 0600, written atomically.
//!
//! Rotation is crash-safe in three steps: stage the new key as `node.next.key`, commit the
//! rotation entry to the audit log, then promote the staged key. If the node dies between the
//! second and third step, [`load`] sees that the log expects the staged key and promotes it.
//! (Once the vault exists the key moves into it; this file is the pre-vault home.)

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use kai_crypto::Identity;
use kai_crypto::identity::IdentityFile;

const CURRENT: &str = "node.key";
const NEXT: &str = "node.next.key";

/// Identity file problems, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no node identity at {0}; run `kai init` first")]
    Missing(PathBuf),
    #[error("a node identity already exists at {0}; refusing to overwrite it")]
    Exists(PathBuf),
    #[error("{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`", path = .0.display(), mode = .1)]
    Permissions(PathBuf, u32),
    #[error("{0} is not a valid identity file: {1}")]
    Corrupt(PathBuf, String),
    #[error(
        "the audit log expects identity {expected}, which is neither {current} nor a staged rotation"
    )]
    Mismatch { expected: String, current: String },
    #[error("identity file I/O at {0}: {1}")]
    Io(PathBuf, std::io::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |e| IdentityError::Io(path.to_owned(), e)
}

fn write_private(path: &Path, identity: &Identity) -> Result<(), IdentityError> {
    let body = serde_json::to_vec_pretty(&identity.to_file(chrono::Utc::now()))
        .map_err(|e| IdentityError::Corrupt(path.to_owned(), e.to_string()))?;
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(&body).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    }
    Ok(())
}

fn read_private(path: &Path) -> Result<Identity, IdentityError> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => IdentityError::Missing(path.to_owned()),
        _ => IdentityError::Io(path.to_owned(), e),
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(IdentityError::Permissions(path.to_owned(), mode));
    }
    let body = fs::read(path).map_err(io(path))?;
    let file: IdentityFile = serde_json::from_slice(&body)
        .map_err(|e| IdentityError::Corrupt(path.to_owned(), e.to_string()))?;
    Identity::from_file(&file).map_err(|e| IdentityError::Corrupt(path.to_owned(), e.to_owned()))
}

/// Creates a new identity in `dir` (which is created with mode 0700).
pub fn create(dir: &Path) -> Result<Identity, IdentityError> {
    fs::create_dir_all(dir).map_err(io(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    let path = dir.join(CURRENT);
    if path.exists() {
        return Err(IdentityError::Exists(path));
    }
    let identity = Identity::generate();
    write_private(&path, &identity)?;
    Ok(identity)
}

/// Loads the identity. If `expected` (the DID the audit log will verify next) differs from the
/// current file but matches a staged rotation, the staged key is promoted first.
pub fn load(dir: &Path, expected: Option<&str>) -> Result<Identity, IdentityError> {
    let current = read_private(&dir.join(CURRENT))?;
    match expected {
        Some(did) if did != current.did().as_str() => {
            let next_path = dir.join(NEXT);
            match read_private(&next_path) {
                Ok(next) if next.did().as_str() == did => {
                    promote(dir)?;
                    Ok(next)
                }
                _ => Err(IdentityError::Mismatch {
                    expected: did.to_owned(),
                    current: current.did().to_string(),
                }),
            }
        }
        _ => Ok(current),
    }
}

/// Stages a fresh key as the rotation target.
pub fn stage_next(dir: &Path) -> Result<Identity, IdentityError> {
    let identity = Identity::generate();
    write_private(&dir.join(NEXT), &identity)?;
    Ok(identity)
}

/// Makes the staged key current (after the rotation entry is committed). The old private key
/// is removed: its signatures stay verifiable from the DID recorded in the log.
pub fn promote(dir: &Path) -> Result<(), IdentityError> {
    let next = dir.join(NEXT);
    fs::rename(&next, dir.join(CURRENT)).map_err(io(&next))?;
    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_load_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let id = create(dir.path()).unwrap();
        let mode = fs::metadata(dir.path().join(CURRENT)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(dir.path(), None).unwrap().did(), id.did());
        assert!(matches!(create(dir.path()), Err(IdentityError::Exists(_))));
        fs::set_permissions(dir.path().join(CURRENT), fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(dir.path(), None).unwrap_err();
        assert!(matches!(err, IdentityError::Permissions(_, 0o644)), "{err}");
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn staged_rotation_is_promoted_when_the_log_expects_it() {
        let dir = tempfile::tempdir().unwrap();
        let old = create(dir.path()).unwrap();
        let next = stage_next(dir.path()).unwrap();
        // Crash before the rotation committed: the log still expects the old key.
        assert_eq!(load(dir.path(), Some(old.did().as_str())).unwrap().did(), old.did());
        // Crash after it committed: the staged key is promoted.
        assert_eq!(load(dir.path(), Some(next.did().as_str())).unwrap().did(), next.did());
        assert!(!dir.path().join(NEXT).exists());
        assert_eq!(load(dir.path(), None).unwrap().did(), next.did());
        let stranger = Identity::generate();
        assert!(matches!(
            load(dir.path(), Some(stranger.did().as_str())),
            Err(IdentityError::Mismatch { .. })
        ));
    }

    #[test]
    fn missing_identity_says_run_init() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(dir.path(), None).unwrap_err();
        assert!(err.to_string().contains("kai init"), "{err}");
    }
}

/// The node's signing identity as a service: its current DID, and rotation that keeps the
/// vault and the audit log in step (stage the new key in the vault, commit the rotation entry,
/// then promote it; `node::load_identity` finishes a rotation interrupted between the last two).
pub struct NodeIdentity {
    vault: std::sync::Arc<crate::Vault>,
    did: std::sync::RwLock<String>,
    rotating: tokio::sync::Mutex<()>,
}

impl NodeIdentity {
    /// Wraps the identity loaded from the vault.
    pub fn new(vault: std::sync::Arc<crate::Vault>, current: &Identity) -> Self {
        Self {
            vault,
            did: std::sync::RwLock::new(current.did().to_string()),
            rotating: tokio::sync::Mutex::new(()),
        }
    }

    /// The DID that signs new entries.
    pub fn did(&self) -> String {
        self.did.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Rotates to a fresh key and returns the new DID.
    pub async fn rotate(
        &self,
        audit: &crate::AuditLog,
        actor: &str,
    ) -> Result<String, RotateError> {
        let _one_at_a_time = self.rotating.lock().await;
        let new = Identity::generate();
        let seed = zeroize::Zeroizing::new(new.seed());
        self.vault
            .put(
                crate::vault::IDENTITY,
                crate::node::NODE_KEY_NEXT,
                seed.as_slice(),
                None,
                None,
                actor,
            )
            .await?;
        let old = self.did();
        let proof = new.sign(&kai_crypto::audit::rotation_proof_message(&old));
        audit.rotate(actor, new.clone(), proof).await?;
        promote_in_vault(&self.vault, &new).await?;
        let did = new.did().to_string();
        *self.did.write().unwrap_or_else(|p| p.into_inner()) = did.clone();
        Ok(did)
    }
}

/// Makes a staged key the node key.
pub async fn promote_in_vault(
    vault: &crate::Vault,
    next: &Identity,
) -> Result<(), crate::VaultError> {
    let seed = zeroize::Zeroizing::new(next.seed());
    vault
        .put(crate::vault::IDENTITY, crate::node::NODE_KEY, seed.as_slice(), None, None, "node")
        .await?;
    match vault.delete(crate::vault::IDENTITY, crate::node::NODE_KEY_NEXT).await {
        Ok(()) | Err(crate::VaultError::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Why a rotation failed (the old key stays in force).
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Vault(#[from] crate::VaultError),
    #[error(transparent)]
    Audit(#[from] crate::AuditError),
}
