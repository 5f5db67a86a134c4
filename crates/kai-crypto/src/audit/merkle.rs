//! Merkle tree heads over the log with RFC 6962 hashing: leaf = SHA-256(0x00 ‖ entry hash),
//! node = SHA-256(0x01 ‖ left ‖ right). The accumulator keeps one root per perfect subtree
//! (O(log n) memory), so appending is O(1) amortized and a root is O(log n).

use sha2::{Digest, Sha256};

use super::Hash;

/// The RFC 6962 leaf hash of an entry hash.
pub fn leaf_hash(entry_hash: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry_hash);
    h.finalize().into()
}

/// The RFC 6962 interior node hash.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Incrementally computes the Merkle tree head of a growing log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerkleAccumulator {
    /// Roots of perfect subtrees, largest first, with their sizes.
    stack: Vec<(u64, Hash)>,
    size: u64,
}

impl MerkleAccumulator {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends the entry with this hash.
    pub fn push(&mut self, entry_hash: &Hash) {
        let mut node = (1u64, leaf_hash(entry_hash));
        while let Some(&(size, left)) = self.stack.last() {
            if size != node.0 {
                break;
            }
            self.stack.pop();
            node = (size * 2, node_hash(&left, &node.1));
        }
        self.stack.push(node);
        self.size += 1;
    }

    /// The tree head (SHA-256 of the empty string for an empty tree, as RFC 6962 says).
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, mut acc)) = iter.next() else {
            return Sha256::digest([]).into();
        };
        for (_, left) in iter {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

impl MerkleAccumulator {
    /// A compact text form of the frontier (`size:hash` per perfect subtree), small enough to
    /// store beside every batch so start-up never rescans the log.
    pub fn to_text(&self) -> String {
        self.stack
            .iter()
            .map(|(n, h)| format!("{n}:{}", hex::encode(h)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses [`Self::to_text`]; `None` if the text is not a well-formed frontier.
    pub fn from_text(text: &str) -> Option<Self> {
        let mut acc = Self::default();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (n, h) = part.split_once(':')?;
            let n: u64 = n.parse().ok()?;
            let h: Hash = hex::decode(h).ok()?.try_into().ok()?;
            if !n.is_power_of_two() || acc.stack.last().is_some_and(|&(prev, _)| prev <= n) {
                return None;
            }
            acc.stack.push((n, h));
            acc.size += n;
        }
        Some(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straight from the RFC's recursive definition.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => Sha256::digest([]).into(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    #[test]
    fn matches_recursive_definition_for_all_sizes_up_to_300() {
        let leaves: Vec<Hash> =
            (0..300u32).map(|i| Sha256::digest(i.to_be_bytes()).into()).collect();
        let mut acc = MerkleAccumulator::new();
        assert_eq!(acc.root(), reference_root(&[]));
        for (i, l) in leaves.iter().enumerate() {
            acc.push(l);
            assert_eq!(acc.root(), reference_root(&leaves[..=i]), "size {}", i + 1);
        }
    }

    #[test]
    fn frontier_text_round_trip() {
        let mut acc = MerkleAccumulator::new();
        for i in 0..77u32 {
            acc.push(&Sha256::digest(i.to_be_bytes()).into());
            let back = MerkleAccumulator::from_text(&acc.to_text()).unwrap();
            assert_eq!(back, acc);
        }
        assert!(MerkleAccumulator::from_text("3:00").is_none());
        assert!(MerkleAccumulator::from_text("1:00,2:00").is_none());
    }

    #[test]
    fn any_change_changes_the_root() {
        let leaves: Vec<Hash> =
            (0..17u32).map(|i| Sha256::digest(i.to_be_bytes()).into()).collect();
        let root = reference_root(&leaves);
        for i in 0..leaves.len() {
            let mut l = leaves.clone();
            l[i][0] ^= 1;
            assert_ne!(reference_root(&l), root);
        }
        let mut swapped = leaves.clone();
        swapped.swap(3, 4);
        assert_ne!(reference_root(&swapped), root);
    }
}
