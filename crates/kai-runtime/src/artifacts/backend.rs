//! Choosing the blob backend from `[artifacts]`: the local filesystem under the data
//! directory, or an S3-compatible store whose secret key is read from the vault when first
//! needed (so the node starts sealed and a key stored later is picked up).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kai_blob::s3::{S3BlobStore, S3Settings, SecretKeySource};
use kai_blob::{BlobStore, Staging, fs::FsBlobStore};
use kai_core::config::{ArtifactBackend, ArtifactsConfig};
use kai_store::Store;
use secrecy::SecretString;

use super::{ArtifactSettings, Artifacts};
use crate::vault::items::SECRET;
use crate::{Vault, VaultError};

/// The S3 secret key, from a vault secret.
struct VaultSecret {
    vault: Arc<Vault>,
    name: String,
}

#[async_trait]
impl SecretKeySource for VaultSecret {
    async fn secret_key(&self) -> Result<SecretString, String> {
        match self.vault.read_internal(SECRET, &self.name).await {
            Ok(bytes) => Ok(SecretString::from(String::from_utf8_lossy(&bytes).trim().to_owned())),
            Err(VaultError::NotFound(_)) => Err(format!(
                "the vault has no secret {:?}; store the S3 secret key with `kai vault set {}`",
                self.name, self.name
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Artifacts {
    /// The artifact service for `config`, keeping staging files (and, on `fs`, objects) under
    /// `dir` (`<data dir>/artifacts`).
    pub fn from_config(
        store: Arc<dyn Store>,
        config: &ArtifactsConfig,
        dir: &Path,
        vault: Arc<Vault>,
    ) -> std::io::Result<Self> {
        let staging = Staging::new(dir.join("tmp"))?;
        let blobs: Arc<dyn BlobStore> = match config.backend {
            ArtifactBackend::Fs => Arc::new(FsBlobStore::new(dir.join("objects"))?),
            ArtifactBackend::S3 => {
                let s3 = &config.s3;
                let settings = S3Settings {
                    endpoint: s3.endpoint.trim_end_matches('/').to_owned(),
                    bucket: s3.bucket.clone(),
                    region: s3.region.clone(),
                    prefix: s3.prefix.clone(),
                    access_key_id: s3.access_key_id.clone(),
                    path_style: s3.path_style,
                    timeout: Duration::from_secs(s3.timeout_secs),
                };
                let secret = Arc::new(VaultSecret { vault, name: s3.secret_key_secret.clone() });
                Arc::new(
                    S3BlobStore::new(settings, secret)
                        .map_err(|e| std::io::Error::other(e.to_string()))?,
                )
            }
        };
        let settings = ArtifactSettings {
            share_default_secs: config.share_default_secs,
            share_max_secs: config.share_max_secs,
            index_text_bytes: config.index_text_bytes,
        };
        Ok(Self::new(store, blobs, staging, settings))
    }
}
