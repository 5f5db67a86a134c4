//! Share links: a token of 256 random bits (`kais_` + base64url) that lets anyone holding it
//! download one artifact, without logging in, until it expires (default 1 h, at most 7 days) or
//! is revoked. Only the token's SHA-256 is stored; a lookup goes by hash and the stored hash is
//! compared in constant time. A token never serves any artifact but its own.

use base64::Engine as _;
use kai_store::{ArtifactRow, ShareRow};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use super::{ArtifactError, Artifacts, Result, Viewer, new_id, now_us};

/// Prefix of share tokens (distinct from API tokens `kai_`).
pub const TOKEN_PREFIX: &str = "kais_";

/// Why a share link does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// Unknown, malformed or tampered token.
    #[error("this share link is not valid")]
    Invalid,
    #[error("this share link expired; ask its owner for a new one")]
    Expired,
    #[error("this share link was revoked")]
    Revoked,
    #[error("{0}")]
    BadLifetime(String),
}

impl ShareError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid => "share_invalid",
            Self::Expired => "expired",
            Self::Revoked => "share_revoked",
            Self::BadLifetime(_) => "bad_request",
        }
    }
}

/// A fresh token and its hash.
pub fn new_token() -> (Zeroizing<String>, [u8; 32]) {
    let bytes: [u8; 32] = rand::random();
    let token = Zeroizing::new(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ));
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// True when `text` has the shape of a share token.
pub fn well_formed(text: &str) -> bool {
    text.len() == TOKEN_PREFIX.len() + 43
        && text.starts_with(TOKEN_PREFIX)
        && text[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new share link: the row and the token (shown once).
pub struct NewShare {
    pub share: ShareRow,
    pub token: Zeroizing<String>,
    pub artifact: ArtifactRow,
}

impl Artifacts {
    /// Creates a link to artifact `id` living `ttl_secs` (default and maximum from settings).
    pub async fn create_share(
        &self,
        viewer: &Viewer,
        id: &str,
        ttl_secs: Option<u64>,
    ) -> Result<NewShare> {
        let artifact = self.get(viewer, id).await?;
        let max = self.settings().share_max_secs;
        let ttl = ttl_secs.unwrap_or(self.settings().share_default_secs);
        if ttl == 0 || ttl > max {
            return Err(ShareError::BadLifetime(format!(
                "ttl_secs is 1 to {max} ({} days at most)",
                max / 86_400
            ))
            .into());
        }
        let (token, token_hash) = new_token();
        let now = now_us();
        let share = ShareRow {
            id: new_id("shr"),
            artifact_id: artifact.id.clone(),
            token_hash,
            created_by: viewer.owner.clone(),
            created_at_us: now,
            expires_at_us: now + (ttl as i64) * 1_000_000,
            revoked_at_us: None,
            uses: 0,
            last_used_at_us: None,
        };
        self.store().insert_share(&share).await?;
        Ok(NewShare { share, token, artifact })
    }

    /// The links of artifact `id`, newest first.
    pub async fn shares(&self, viewer: &Viewer, id: &str) -> Result<Vec<ShareRow>> {
        let artifact = self.get(viewer, id).await?;
        Ok(self.store().shares(&artifact.id).await?)
    }

    /// The link `share_id`, when `viewer` may see its artifact.
    pub async fn share(&self, viewer: &Viewer, share_id: &str) -> Result<(ShareRow, ArtifactRow)> {
        let missing = || ArtifactError::NotFound(format!("no share link {share_id}"));
        let share = self.store().share(share_id).await?.ok_or_else(missing)?;
        let artifact = self.get(viewer, &share.artifact_id).await.map_err(|_| missing())?;
        Ok((share, artifact))
    }

    /// Revokes a link at once.
    pub async fn revoke_share(&self, viewer: &Viewer, share_id: &str) -> Result<ShareRow> {
        let (share, _) = self.share(viewer, share_id).await?;
        let at = now_us();
        self.store().revoke_share(&share.id, at).await?;
        Ok(ShareRow { revoked_at_us: share.revoked_at_us.or(Some(at)), ..share })
    }

    /// The artifact a token opens, counting the use.
    pub async fn open_share(&self, token: &str) -> Result<(ShareRow, ArtifactRow)> {
        use subtle::ConstantTimeEq as _;
        if !well_formed(token) {
            return Err(ShareError::Invalid.into());
        }
        let hash = token_hash(token);
        let share = self.store().share_by_hash(&hash).await?.ok_or(ShareError::Invalid)?;
        if !bool::from(share.token_hash.ct_eq(&hash)) {
            return Err(ShareError::Invalid.into());
        }
        if share.revoked_at_us.is_some() {
            return Err(ShareError::Revoked.into());
        }
        let now = now_us();
        if now >= share.expires_at_us {
            return Err(ShareError::Expired.into());
        }
        let artifact =
            self.store().artifact(&share.artifact_id).await?.ok_or(ShareError::Invalid)?;
        self.store().touch_share(&share.id, now).await?;
        Ok((share, artifact))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_and_well_formed() {
        let (a, ha) = new_token();
        let (b, hb) = new_token();
        assert!(well_formed(&a) && well_formed(&b));
        assert_ne!(ha, hb);
        assert_eq!(token_hash(&a), ha);
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&a[TOKEN_PREFIX.len()..])
            .unwrap();
        assert_eq!(raw.len() * 8, 256);
        assert!(!well_formed("kais_short") && !well_formed(&format!("kai_x{}", &a[5..])));
        // One flipped bit is another token with another hash.
        let mut flipped = a.as_bytes().to_vec();
        flipped[10] ^= 0b10;
        let flipped = String::from_utf8(flipped).unwrap();
        assert_ne!(token_hash(&flipped), ha);
    }
}
