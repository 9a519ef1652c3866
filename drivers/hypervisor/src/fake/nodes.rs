//! The fake xenstore's nodes: an open-addressing table keyed by a hash of
//! the path, looked up with a borrowed path.
//!
//! Why not a map ordered by path: under the fuzzers' instrumentation every
//! string comparison is an expensive call (libFuzzer hooks `memcmp`) and
//! paths share long prefixes, so each lookup in an ordered map cost a
//! dozen of them, and a key had to be allocated to look one up. Here a
//! lookup hashes the path eight bytes a step, compares a `u64` per slot
//! probed (one or two at half load) and the path once. Listing a
//! directory scans for nodes whose parent has the directory's hash.
use alloc::string::String;
use alloc::vec::Vec;

/// A 64-bit hash of a path, eight bytes a step (each step is a compare
/// the fuzzers trace; a byte a step would be eight).
pub(super) fn hash(path: &str) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes = path.as_bytes();
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    // Words as arrays: a slice copy per word would run overlap checks
    // with debug assertions on, as the fuzzers build.
    let (words, rest) = bytes.as_chunks::<8>();
    for w in words {
        h = (h ^ u64::from_le_bytes(*w)).wrapping_mul(K).rotate_left(29);
    }
    let mut a = [0u8; 8];
    a[..rest.len()].copy_from_slice(rest);
    h = (h ^ u64::from_le_bytes(a)).wrapping_mul(K);
    h ^ (h >> 31)
}

pub(super) struct Node {
    pub(super) path: String,
    pub(super) hash: u64,
    pub(super) value: Vec<u8>,
    /// [`hash`] of the parent's path (0 for `/`, which has none).
    pub(super) parent: u64,
}

/// The nodes, in slots probed linearly from `hash % capacity`; at most
/// half the slots are full, so every probe meets an empty slot.
pub(super) struct Nodes {
    slots: Vec<Option<Node>>,
    len: usize,
}

const MIN_SLOTS: usize = 64;

impl Nodes {
    pub(super) fn new() -> Self {
        Self {
            slots: Self::empty(MIN_SLOTS),
            len: 0,
        }
    }

    fn empty(n: usize) -> Vec<Option<Node>> {
        let mut slots = Vec::with_capacity(n);
        slots.resize_with(n, || None);
        slots
    }

    /// The slot holding `path`, or the empty slot where it would go.
    fn find(&self, hash: u64, path: &str) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            match &self.slots[i] {
                None => return Err(i),
                Some(n) if n.hash == hash && n.path == path => return Ok(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    pub(super) fn get(&self, hash: u64, path: &str) -> Option<&Node> {
        let i = self.find(hash, path).ok()?;
        self.slots[i].as_ref()
    }

    pub(super) fn get_mut(&mut self, hash: u64, path: &str) -> Option<&mut Node> {
        let i = self.find(hash, path).ok()?;
        self.slots[i].as_mut()
    }

    pub(super) fn contains(&self, hash: u64, path: &str) -> bool {
        self.find(hash, path).is_ok()
    }

    /// Adds or replaces the node at `node.path`.
    pub(super) fn insert(&mut self, node: Node) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.rebuild(self.slots.len() * 2, |_| true);
        }
        match self.find(node.hash, &node.path) {
            Ok(i) => self.slots[i] = Some(node),
            Err(i) => {
                self.slots[i] = Some(node);
                self.len += 1;
            }
        }
    }

    /// Keeps the nodes `keep` says to.
    pub(super) fn retain(&mut self, keep: impl FnMut(&Node) -> bool) {
        let n = self.slots.len();
        self.rebuild(n, keep);
    }

    /// Every node, in no order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Node> {
        self.slots.iter().flatten()
    }

    /// Moves the nodes `keep` says to into `n` fresh slots.
    fn rebuild(&mut self, n: usize, mut keep: impl FnMut(&Node) -> bool) {
        let old = core::mem::replace(&mut self.slots, Self::empty(n));
        self.len = 0;
        for node in old.into_iter().flatten() {
            if keep(&node) {
                if let Err(i) = self.find(node.hash, &node.path) {
                    self.slots[i] = Some(node);
                    self.len += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    fn node(path: &str) -> Node {
        Node {
            path: path.to_string(),
            hash: hash(path),
            value: path.as_bytes().to_vec(),
            parent: 0,
        }
    }

    /// Many nodes, colliding slots, growth and removal: each is found
    /// exactly while it is there.
    #[test]
    fn finds_what_it_holds() {
        let mut t = Nodes::new();
        let paths: Vec<String> = (0..500).map(|i| format!("/a/{i}/b")).collect();
        for p in &paths {
            t.insert(node(p));
        }
        // The same hash for another path is another node.
        t.insert(Node {
            hash: hash("/a/1/b"),
            ..node("/forged")
        });
        assert_eq!(t.iter().count(), 501);
        for p in &paths {
            assert_eq!(
                t.get(hash(p), p).map(|n| n.value.as_slice()),
                Some(p.as_bytes())
            );
        }
        assert!(t.contains(hash("/a/1/b"), "/forged"));
        assert!(!t.contains(hash("/a/500/b"), "/a/500/b"));
        t.retain(|n| !n.path.ends_with("7/b"));
        assert_eq!(t.iter().count(), 451);
        for p in &paths {
            assert_eq!(t.contains(hash(p), p), !p.ends_with("7/b"), "{p}");
        }
        t.get_mut(hash("/a/1/b"), "/a/1/b").unwrap().value = b"x".to_vec();
        t.insert(node("/a/2/b"));
        assert_eq!(t.get(hash("/a/1/b"), "/a/1/b").unwrap().value, b"x");
        assert_eq!(t.iter().count(), 451);
    }
}
