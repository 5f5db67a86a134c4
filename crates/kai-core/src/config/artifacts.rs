//! `[artifacts]`: where artifacts are stored, how large an upload may be, and the bounds of
//! share links and the full-text index.

use serde::{Deserialize, Serialize};

use super::schema::FieldError;

/// Largest object one S3 PutObject accepts (the node does not use multipart uploads).
pub const S3_MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// Where artifact contents live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactBackend {
    /// Files under `<data dir>/artifacts/objects` (default).
    Fs,
    /// An S3-compatible object store (`[artifacts.s3]`).
    S3,
}

/// `[artifacts]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArtifactsConfig {
    pub backend: ArtifactBackend,
    /// Largest upload accepted (bytes, 1 KiB–1 TiB; 5 GiB at most on S3); larger ones get 413.
    /// Upload routes use this instead of `server.body_limit_bytes`. Applied live.
    pub max_upload_bytes: u64,
    /// An upload taking longer than this is answered 408 (seconds, 1–86,400). Applied live.
    pub upload_timeout_secs: u64,
    /// Lifetime of a share link when the request names none (seconds, 60 to `share_max_secs`).
    pub share_default_secs: u64,
    /// Longest lifetime of a share link (seconds, at most 604,800 = 7 days).
    pub share_max_secs: u64,
    /// How much of a text artifact goes into the full-text index (bytes, 1 KiB–16 MiB).
    pub index_text_bytes: u64,
    pub s3: S3Config,
}

impl Default for ArtifactsConfig {
    fn default() -> Self {
        Self {
            backend: ArtifactBackend::Fs,
            max_upload_bytes: 100 * 1024 * 1024,
            upload_timeout_secs: 3600,
            share_default_secs: 3600,
            share_max_secs: 7 * 24 * 3600,
            index_text_bytes: 1024 * 1024,
            s3: S3Config::default(),
        }
    }
}

/// `[artifacts.s3]`: an S3-compatible endpoint (AWS, MinIO, Ceph, Garage, …), signed with SigV4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// `https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:9000`, …
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Key prefix inside the bucket (e.g. `kai/`); objects are `<prefix><blake3 hex>`.
    pub prefix: String,
    pub access_key_id: String,
    /// Name of the vault secret holding the secret access key (`kai vault set NAME`).
    pub secret_key_secret: String,
    /// Address the bucket in the path (`endpoint/bucket/key`) rather than the host name.
    pub path_style: bool,
    /// Seconds per request (1–3600).
    pub timeout_secs: u64,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".into(),
            prefix: String::new(),
            access_key_id: String::new(),
            secret_key_secret: String::new(),
            path_style: true,
            timeout_secs: 600,
        }
    }
}

fn range(out: &mut Vec<FieldError>, key: &'static str, value: u64, lo: u64, hi: u64) {
    if value < lo || value > hi {
        out.push(FieldError {
            key,
            message: format!("value {value} is out of range; allowed: {lo} to {hi}"),
        });
    }
}

impl ArtifactsConfig {
    /// Range and format checks.
    pub fn validate(&self, out: &mut Vec<FieldError>) {
        range(out, "artifacts.max_upload_bytes", self.max_upload_bytes, 1024, 1 << 40);
        range(out, "artifacts.upload_timeout_secs", self.upload_timeout_secs, 1, 86_400);
        range(out, "artifacts.share_max_secs", self.share_max_secs, 60, 7 * 24 * 3600);
        range(
            out,
            "artifacts.share_default_secs",
            self.share_default_secs,
            60,
            self.share_max_secs,
        );
        range(out, "artifacts.index_text_bytes", self.index_text_bytes, 1024, 16 << 20);
        if self.backend != ArtifactBackend::S3 {
            return;
        }
        let s3 = &self.s3;
        if !(s3.endpoint.starts_with("http://") || s3.endpoint.starts_with("https://")) {
            out.push(FieldError {
                key: "artifacts.s3.endpoint",
                message: "backend = \"s3\" needs an endpoint: http(s)://HOST[:PORT]".into(),
            });
        }
        let bucket_ok = (3..=63).contains(&s3.bucket.len())
            && s3
                .bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !bucket_ok {
            out.push(FieldError {
                key: "artifacts.s3.bucket",
                message: "3 to 63 characters of a-z, 0-9, - and .".into(),
            });
        }
        if s3.region.is_empty() || !s3.region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            out.push(FieldError { key: "artifacts.s3.region", message: "e.g. us-east-1".into() });
        }
        if s3.access_key_id.is_empty() || s3.secret_key_secret.is_empty() {
            out.push(FieldError {
                key: "artifacts.s3.access_key_id",
                message: "backend = \"s3\" needs access_key_id and secret_key_secret (the vault secret holding the secret key)".into(),
            });
        }
        if s3.prefix.len() > 256 || s3.prefix.starts_with('/') || s3.prefix.contains("..") {
            out.push(FieldError {
                key: "artifacts.s3.prefix",
                message: "at most 256 bytes, not starting with / and without ..".into(),
            });
        }
        range(out, "artifacts.s3.timeout_secs", s3.timeout_secs, 1, 3600);
        range(out, "artifacts.max_upload_bytes", self.max_upload_bytes, 1024, S3_MAX_PUT_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_s3_needs_its_settings() {
        let mut out = Vec::new();
        ArtifactsConfig::default().validate(&mut out);
        assert!(out.is_empty(), "{out:?}");
        let mut c = ArtifactsConfig { backend: ArtifactBackend::S3, ..Default::default() };
        c.validate(&mut out);
        let keys: Vec<_> = out.iter().map(|e| e.key).collect();
        assert!(keys.contains(&"artifacts.s3.endpoint") && keys.contains(&"artifacts.s3.bucket"));
        out.clear();
        c.s3 = S3Config {
            endpoint: "http://127.0.0.1:9000".into(),
            bucket: "kai-artifacts".into(),
            access_key_id: "AKIA".into(),
            secret_key_secret: "s3/secret".into(),
            ..Default::default()
        };
        c.max_upload_bytes = S3_MAX_PUT_BYTES + 1;
        c.validate(&mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].key, "artifacts.max_upload_bytes");
    }

    #[test]
    fn share_lifetimes_are_bounded() {
        let mut out = Vec::new();
        let c = ArtifactsConfig { share_max_secs: 8 * 24 * 3600, ..Default::default() };
        c.validate(&mut out);
        assert_eq!(out[0].key, "artifacts.share_max_secs");
    }
}
