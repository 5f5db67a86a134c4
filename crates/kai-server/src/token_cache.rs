//! API tokens recently found in the store, so that a request does not wait for a database
//! read to learn who is calling.
//!
//! A lookup is a read on one of the store's connections: with SQLite that is a hand-off to the
//! connection's thread and back, ≈0.5–0.6 ms on the dev VM before the request can do anything
//! else — half the time-to-first-token budget of `/v1/chat/completions`. Entries are kept for
//! [`TTL`]; revoking a token through this node empties the cache at once, and a token revoked
//! by another node that shares the database (PostgreSQL) stops working within [`TTL`].
//! Expiry is checked on every request against the cached record. Unknown tokens are never
//! cached (a guessed token always costs a lookup and stays unknown).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kai_store::TokenRecord;

/// How long a looked-up token is trusted without asking the store again.
pub const TTL: Duration = Duration::from_secs(5);

/// Most tokens kept; when full the cache starts over (a node has a handful of live tokens).
const CAPACITY: usize = 4096;

/// Tokens by hash, with the time each was read.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], (TokenRecord, Instant)>>,
}

impl TokenCache {
    /// The token with this hash, if it was read from the store less than [`TTL`] ago.
    pub fn get(&self, hash: &[u8; 32]) -> Option<TokenRecord> {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match entries.get(hash) {
            Some((record, at)) if at.elapsed() < TTL => Some(record.clone()),
            Some(_) => {
                entries.remove(hash);
                None
            }
            None => None,
        }
    }

    /// Remembers a token just read from the store.
    pub fn put(&self, record: TokenRecord) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(record.token_hash, (record, Instant::now()));
    }

    /// Forgets every token (called when one is revoked).
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hash: u8) -> TokenRecord {
        TokenRecord {
            id: format!("t{hash}"),
            name: "ci".into(),
            role: "user".into(),
            token_hash: [hash; 32],
            created_at_us: 0,
            expires_at_us: None,
            revoked_at_us: None,
            scopes: vec![],
            user_id: None,
        }
    }

    #[test]
    fn a_stored_token_is_found_until_cleared() {
        let cache = TokenCache::default();
        assert_eq!(cache.get(&[1; 32]), None);
        cache.put(record(1));
        assert_eq!(cache.get(&[1; 32]).map(|r| r.id), Some("t1".into()));
        assert_eq!(cache.get(&[2; 32]), None);
        cache.clear();
        assert_eq!(cache.get(&[1; 32]), None);
    }

    #[test]
    fn an_old_entry_is_dropped() {
        let cache = TokenCache::default();
        let old = Instant::now().checked_sub(TTL + Duration::from_millis(1)).expect("clock");
        cache.entries.lock().unwrap().insert([3; 32], (record(3), old));
        assert_eq!(cache.get(&[3; 32]), None);
        assert!(cache.entries.lock().unwrap().is_empty());
    }

    #[test]
    fn a_full_cache_starts_over() {
        let cache = TokenCache::default();
        for i in 0..CAPACITY {
            let mut r = record(0);
            r.token_hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            cache.put(r);
        }
        cache.put(record(9));
        assert_eq!(cache.entries.lock().unwrap().len(), 1);
        assert!(cache.get(&[9; 32]).is_some());
    }
}
