//! An in-process BM25 full-text index over the caller's `u64` ids.
//!
//! Scoring is Okapi BM25 with Lucene's non-negative idf:
//! `idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))` and
//! `score(d) = Σ_t idf(t) · tf·(k1 + 1) / (tf + k1·(1 - b + b·|d| / avgdl))` over the distinct
//! query terms, where `N`, `df` and `avgdl` count live documents only.
//!
//! Deletes are lazy: the document is marked dead and the statistics updated at once, while its
//! postings stay until dead documents outnumber live ones (or [`Bm25Index::compact`]), when
//! postings are rebuilt. An update is a delete plus an insert.

mod file;
pub mod tokenize;

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::hnsw::Hit;
pub use tokenize::tokenize;

/// BM25 parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bm25Params {
    /// Term-frequency saturation (Lucene: 1.2).
    pub k1: f32,
    /// Length normalization, 0 (none) to 1 (full) (Lucene: 0.75).
    pub b: f32,
    /// Drop English stop words when indexing and querying.
    pub stop_words: bool,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Self { k1: 1.2, b: 0.75, stop_words: true }
    }
}

impl Bm25Params {
    fn validate(&self) -> Result<()> {
        if !(self.k1.is_finite() && self.k1 >= 0.0) {
            return Err(Error::param("k1", format!("{} must be finite and ≥ 0", self.k1)));
        }
        if !(0.0..=1.0).contains(&self.b) {
            return Err(Error::param("b", format!("{} must be within 0..=1", self.b)));
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Doc {
    pub(crate) id: u64,
    pub(crate) len: u32,
    /// Distinct terms with their frequencies.
    pub(crate) terms: Vec<(u32, u32)>,
    pub(crate) live: bool,
}

/// The full-text index.
#[derive(Clone, Debug)]
pub struct Bm25Index {
    params: Bm25Params,
    term_ids: HashMap<String, u32>,
    terms: Vec<String>,
    postings: Vec<Vec<(u32, u32)>>,
    df: Vec<u32>,
    docs: Vec<Doc>,
    slot_of: HashMap<u64, u32>,
    total_len: u64,
    dead: usize,
}

impl Bm25Index {
    pub fn new(params: Bm25Params) -> Result<Self> {
        params.validate()?;
        Ok(Self {
            params,
            term_ids: HashMap::new(),
            terms: Vec::new(),
            postings: Vec::new(),
            df: Vec::new(),
            docs: Vec::new(),
            slot_of: HashMap::new(),
            total_len: 0,
            dead: 0,
        })
    }

    /// Builds an index from the source records (after a missing or corrupt file).
    pub fn rebuild_from<S: AsRef<str>>(
        params: Bm25Params,
        docs: impl IntoIterator<Item = (u64, S)>,
    ) -> Result<Self> {
        let mut index = Self::new(params)?;
        for (id, text) in docs {
            index.insert(id, text.as_ref())?;
        }
        Ok(index)
    }

    #[must_use]
    pub fn params(&self) -> Bm25Params {
        self.params
    }

    /// Number of live documents.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slot_of.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.slot_of.is_empty()
    }

    #[must_use]
    pub fn contains(&self, id: u64) -> bool {
        self.slot_of.contains_key(&id)
    }

    /// Indexes `text` under `id`, replacing any earlier text of `id`.
    pub fn insert(&mut self, id: u64, text: &str) -> Result<()> {
        let mut tokens = Vec::new();
        tokenize(text, self.params.stop_words, &mut tokens);
        let mut tf: HashMap<u32, u32> = HashMap::new();
        for token in tokens.iter() {
            let term = self.intern(token);
            *tf.entry(term).or_insert(0) += 1;
        }
        let mut terms: Vec<(u32, u32)> = tf.into_iter().collect();
        terms.sort_unstable();
        let len = u32::try_from(tokens.len())
            .map_err(|_| Error::param("text", "more than 2^32 tokens"))?;
        self.add_doc(Doc { id, len, terms, live: true })
    }

    pub(crate) fn add_doc(&mut self, doc: Doc) -> Result<()> {
        self.delete(doc.id);
        let slot = u32::try_from(self.docs.len()).map_err(|_| Error::Capacity(self.docs.len()))?;
        for &(term, tf) in &doc.terms {
            let t = term as usize;
            self.postings[t].push((slot, tf));
            self.df[t] += 1;
        }
        self.total_len += u64::from(doc.len);
        self.slot_of.insert(doc.id, slot);
        self.docs.push(doc);
        Ok(())
    }

    pub(crate) fn intern(&mut self, token: &str) -> u32 {
        if let Some(&id) = self.term_ids.get(token) {
            return id;
        }
        let id = self.terms.len() as u32;
        self.term_ids.insert(token.to_owned(), id);
        self.terms.push(token.to_owned());
        self.postings.push(Vec::new());
        self.df.push(0);
        id
    }

    /// Removes `id`; returns whether it was present.
    pub fn delete(&mut self, id: u64) -> bool {
        let Some(slot) = self.slot_of.remove(&id) else { return false };
        let doc = &mut self.docs[slot as usize];
        doc.live = false;
        for &(term, _) in &doc.terms {
            self.df[term as usize] -= 1;
        }
        self.total_len -= u64::from(doc.len);
        self.dead += 1;
        if self.dead > 64 && self.dead > self.len() {
            self.compact();
        }
        true
    }

    /// Drops dead documents and unused terms from memory now.
    pub fn compact(&mut self) {
        if self.dead == 0 {
            return;
        }
        let old_terms = std::mem::take(&mut self.terms);
        let docs = std::mem::take(&mut self.docs);
        self.term_ids.clear();
        self.postings.clear();
        self.df.clear();
        self.slot_of.clear();
        self.total_len = 0;
        self.dead = 0;
        for mut doc in docs.into_iter().filter(|d| d.live) {
            for pair in doc.terms.iter_mut() {
                pair.0 = self.intern(&old_terms[pair.0 as usize]);
            }
            // Cannot fail: there are fewer documents than before.
            let _ = self.add_doc(doc);
        }
    }

    /// The `k` best documents for `query` among the ids `filter` accepts, best first (ties by
    /// ascending id). Documents without any query term are not returned.
    #[must_use]
    pub fn search(&self, query: &str, k: usize, filter: Option<&dyn Fn(u64) -> bool>) -> Vec<Hit> {
        let n = self.len();
        if k == 0 || n == 0 {
            return Vec::new();
        }
        let mut tokens = Vec::new();
        tokenize(query, self.params.stop_words, &mut tokens);
        tokens.sort_unstable();
        tokens.dedup();
        let avgdl = (self.total_len as f64 / n as f64).max(f64::MIN_POSITIVE);
        let (k1, b) = (f64::from(self.params.k1), f64::from(self.params.b));
        let mut scores: HashMap<u32, f64> = HashMap::new();
        for token in &tokens {
            let Some(&term) = self.term_ids.get(token.as_str()) else { continue };
            let df = f64::from(self.df[term as usize]);
            if df == 0.0 {
                continue;
            }
            let idf = (1.0 + (n as f64 - df + 0.5) / (df + 0.5)).ln();
            for &(slot, tf) in &self.postings[term as usize] {
                let doc = &self.docs[slot as usize];
                if !doc.live {
                    continue;
                }
                let tf = f64::from(tf);
                let norm = k1 * (1.0 - b + b * f64::from(doc.len) / avgdl);
                *scores.entry(slot).or_insert(0.0) += idf * tf * (k1 + 1.0) / (tf + norm);
            }
        }
        let mut hits: Vec<Hit> = scores
            .into_iter()
            .map(|(slot, score)| Hit { id: self.docs[slot as usize].id, score: score as f32 })
            .filter(|h| filter.is_none_or(|f| f(h.id)))
            .collect();
        if hits.len() > k {
            hits.select_nth_unstable_by(k - 1, hit_order);
            hits.truncate(k);
        }
        hits.sort_unstable_by(hit_order);
        hits
    }

    /// Approximate bytes held in memory.
    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        let terms: usize = self.terms.iter().map(|t| 2 * t.len() + 64).sum();
        let postings: usize = self.postings.iter().map(|p| p.capacity() * 8 + 24).sum();
        let docs: usize = self.docs.iter().map(|d| d.terms.capacity() * 8 + 48).sum();
        terms + postings + docs + self.slot_of.capacity() * 13 + self.df.capacity() * 4
    }
}

/// Orders hits best first, ties by ascending id.
#[must_use]
pub fn hit_order(a: &Hit, b: &Hit) -> Ordering {
    b.score.total_cmp(&a.score).then(a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests;
