//! The fake's xenstore: a tree of nodes, per-domain watch queues and a
//! "write only under your own home" rule.
use alloc::borrow::Cow;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::abi::DomId;
use crate::error::XenError;
use crate::xenstore::WatchEvent;

use super::nodes::{hash, Node, Nodes};

/// `XENSTORE_ABS_PATH_MAX` (io/xs_wire.h).
const PATH_MAX: usize = 3072;
/// C xenstored's `quota_max_entry_size` (2048): an unprivileged domain's
/// node, value plus its permissions and children's names, must stay below
/// it, or the write fails with ENOSPC. The fake counts the value and a
/// permission record's few bytes: aggctl's 2048-byte reply pieces failed
/// on the rig (run k2-1, 2026-12-07) and nowhere in the host tests.
pub const MAX_ENTRY: usize = 2048;
const PERMS_BYTES: usize = 8;

struct Watch {
    dom: DomId,
    path: String,
    token: String,
}

pub(crate) struct Store {
    nodes: Nodes,
    watches: Vec<Watch>,
    queues: BTreeMap<DomId, VecDeque<WatchEvent>>,
}

fn home(dom: DomId) -> String {
    format!("/local/domain/{dom}")
}

fn is_below(path: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return path.starts_with('/');
    }
    path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) if path.len() > 1 => Some("/"),
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

/// `0x01` in every byte of a word.
const ONES: u64 = u64::MAX / 255;
/// `0x80` in every byte of a word.
const HIGH: u64 = ONES * 0x80;

/// `0x80` in every byte of `x` that is zero, nothing elsewhere.
fn zero_bytes(x: u64) -> u64 {
    !(((x & !HIGH) + !HIGH) | x | !HIGH)
}

/// `0x80` in every byte of `x` equal to `c`.
fn bytes_equal(x: u64, c: u8) -> u64 {
    zero_bytes(x ^ (ONES * u64::from(c)))
}

/// `0x80` in every byte of `x` from `lo` to `hi` (`0 < lo <= hi < 127`),
/// nothing elsewhere: "determine if a word has a byte between m and n"
/// from Sean Anderson's Bit Twiddling Hacks, which is exact per byte.
fn bytes_between(x: u64, lo: u8, hi: u8) -> u64 {
    let (m, n) = (u64::from(lo) - 1, u64::from(hi) + 1);
    let low7 = x & (ONES * 0x7f);
    (ONES * (127 + n)).wrapping_sub(low7) & !x & (low7 + ONES * (127 - m)) & HIGH
}

/// Whether every byte of `path` is one xenstored takes in a path (ASCII
/// letters, digits, `/_-@`) and no two slashes follow each other. Eight
/// bytes a step with no compare per byte: this runs on every byte of every
/// path, and under the fuzzers each compare is a traced call.
fn valid_path_bytes(path: &[u8]) -> bool {
    let mut bad = 0u64;
    // The previous word's last byte was a slash (as 0x80 in byte 0).
    let mut carry = 0u64;
    let mut word = |x: u64, len: usize| {
        let slash = bytes_equal(x, b'/');
        let ok = bytes_between(x, b'a', b'z')
            | bytes_between(x, b'A', b'Z')
            | bytes_between(x, b'0', b'9')
            | slash
            | bytes_equal(x, b'_')
            | bytes_equal(x, b'-')
            | bytes_equal(x, b'@');
        // Only the word's first `len` bytes are the path's.
        let mask = HIGH & (u64::MAX >> (8 * (8 - len)));
        bad |= (!ok & mask) | (slash & (slash << 8 | carry));
        carry = (slash >> 56) & mask;
    };
    // Words as arrays: a slice copy per word would run overlap checks
    // with debug assertions on, as the fuzzers build.
    let (words, rest) = path.as_chunks::<8>();
    for w in words {
        word(u64::from_le_bytes(*w), 8);
    }
    if !rest.is_empty() {
        let mut a = [0u8; 8];
        a[..rest.len()].copy_from_slice(rest);
        word(u64::from_le_bytes(a), rest.len());
    }
    bad == 0
}

impl Store {
    pub(crate) fn new() -> Self {
        let mut nodes = Nodes::new();
        nodes.insert(Node {
            path: "/".to_string(),
            hash: hash("/"),
            value: Vec::new(),
            parent: 0,
        });
        Self {
            nodes,
            watches: Vec::new(),
            queues: BTreeMap::new(),
        }
    }

    /// Absolute, validated form of `path` as `dom` wrote it (borrowed if
    /// it was absolute: most are, and this runs on every request).
    pub(crate) fn normalize(dom: DomId, path: &str) -> Result<Cow<'_, str>, XenError> {
        let abs = if path.starts_with('/') {
            Cow::Borrowed(path)
        } else {
            Cow::Owned(format!("{}/{}", home(dom), path))
        };
        if abs.len() > PATH_MAX
            || !valid_path_bytes(abs.as_bytes())
            || (abs.len() > 1 && abs.ends_with('/'))
        {
            return Err(XenError::Inval);
        }
        Ok(abs)
    }

    /// Domain 0 writes anywhere, others under their home (`path` is
    /// absolute and valid). Reads `<id>` in place of formatting the home:
    /// every write asks.
    fn may_write(dom: DomId, path: &str) -> bool {
        let Some(rest) = path.strip_prefix("/local/domain/") else {
            return dom == 0;
        };
        let id = rest.split_once('/').map_or(rest, |(id, _)| id);
        // `<id>` as `home` writes it: decimal digits, no leading zero.
        let canonical =
            id.bytes().all(|c| c.is_ascii_digit()) && (id.len() == 1 || !id.starts_with('0'));
        dom == 0 || (canonical && id.parse::<DomId>() == Ok(dom))
    }

    fn fire(&mut self, path: &str, removed: bool) {
        for w in &self.watches {
            let event_path = if is_below(path, &w.path) {
                path
            } else if removed && is_below(&w.path, path) {
                // A watch below a removed subtree fires with its own path.
                w.path.as_str()
            } else {
                continue;
            };
            self.queues.entry(w.dom).or_default().push_back(WatchEvent {
                path: event_path.to_string(),
                token: w.token.clone(),
            });
        }
    }

    pub(crate) fn read(&mut self, dom: DomId, path: &str) -> Result<Vec<u8>, XenError> {
        let p = Self::normalize(dom, path)?;
        self.nodes
            .get(hash(&p), &p)
            .map(|n| n.value.clone())
            .ok_or(XenError::NoEnt)
    }

    pub(crate) fn write(&mut self, dom: DomId, path: &str, value: &[u8]) -> Result<(), XenError> {
        let p = Self::normalize(dom, path)?;
        if !Self::may_write(dom, &p) {
            return Err(XenError::Acces);
        }
        if dom != 0 && value.len() + PERMS_BYTES >= MAX_ENTRY {
            return Err(XenError::NoSpc);
        }
        self.fire(&p, false);
        let h = hash(&p);
        if let Some(node) = self.nodes.get_mut(h, &p) {
            node.value = value.to_vec();
            return Ok(());
        }
        let parent = self.create_ancestors(&p);
        self.nodes.insert(Node {
            path: p.into_owned(),
            hash: h,
            value: value.to_vec(),
            parent,
        });
        Ok(())
    }

    /// Creates the missing ancestors of a node that does not exist yet,
    /// empty, nearest first, stopping at the first that exists (every
    /// node's ancestors exist, so the ones above it do too). Returns the
    /// hash of the node's parent.
    fn create_ancestors(&mut self, path: &str) -> u64 {
        let Some(first) = parent(path) else {
            return 0;
        };
        let first_hash = hash(first);
        let (mut anc, mut anc_hash) = (first, first_hash);
        while !self.nodes.contains(anc_hash, anc) {
            let up = parent(anc);
            let up_hash = up.map_or(0, hash);
            self.nodes.insert(Node {
                path: anc.to_string(),
                hash: anc_hash,
                value: Vec::new(),
                parent: up_hash,
            });
            match up {
                Some(u) => (anc, anc_hash) = (u, up_hash),
                None => break,
            }
        }
        first_hash
    }

    pub(crate) fn mkdir(&mut self, dom: DomId, path: &str) -> Result<(), XenError> {
        let p = Self::normalize(dom, path)?;
        if self.nodes.contains(hash(&p), &p) {
            return Ok(());
        }
        self.write(dom, &p, b"")
    }

    pub(crate) fn rm(&mut self, dom: DomId, path: &str) -> Result<(), XenError> {
        let p = Self::normalize(dom, path)?;
        if !Self::may_write(dom, &p) || p == "/" {
            return Err(XenError::Acces);
        }
        let nodes = &mut self.nodes;
        if !nodes.contains(hash(&p), &p) {
            // As xenstored: removing a missing node is fine if its parent exists.
            let parent_exists = parent(&p).is_some_and(|q| nodes.contains(hash(q), q));
            return if parent_exists {
                Ok(())
            } else {
                Err(XenError::NoEnt)
            };
        }
        nodes.retain(|n| !is_below(&n.path, &p));
        self.fire(&p, true);
        Ok(())
    }

    /// The names of a node's children, sorted as xenstored lists them.
    pub(crate) fn directory(&mut self, dom: DomId, path: &str) -> Result<Vec<String>, XenError> {
        let p = Self::normalize(dom, path)?;
        let h = hash(&p);
        if !self.nodes.contains(h, &p) {
            return Err(XenError::NoEnt);
        }
        let mut names: Vec<String> = self
            .nodes
            .iter()
            .filter(|n| n.parent == h && parent(&n.path) == Some(&p))
            .map(|n| {
                let start = n.path.rfind('/').map_or(0, |i| i + 1);
                n.path[start..].to_string()
            })
            .collect();
        names.sort_unstable();
        Ok(names)
    }

    pub(crate) fn watch(&mut self, dom: DomId, path: &str, token: &str) -> Result<(), XenError> {
        let p = if path.starts_with('@') {
            path.to_string()
        } else {
            Self::normalize(dom, path)?.into_owned()
        };
        if self
            .watches
            .iter()
            .any(|w| w.dom == dom && w.path == p && w.token == token)
        {
            return Err(XenError::Exist);
        }
        self.watches.push(Watch {
            dom,
            path: p.clone(),
            token: token.to_string(),
        });
        self.queues.entry(dom).or_default().push_back(WatchEvent {
            path: p,
            token: token.to_string(),
        });
        Ok(())
    }

    pub(crate) fn unwatch(&mut self, dom: DomId, path: &str, token: &str) -> Result<(), XenError> {
        let p = if path.starts_with('@') {
            path.to_string()
        } else {
            Self::normalize(dom, path)?.into_owned()
        };
        let before = self.watches.len();
        self.watches
            .retain(|w| !(w.dom == dom && w.path == p && w.token == token));
        if self.watches.len() == before {
            return Err(XenError::NoEnt);
        }
        Ok(())
    }

    pub(crate) fn poll_watch(&mut self, dom: DomId) -> Option<WatchEvent> {
        self.queues.get_mut(&dom)?.pop_front()
    }

    /// Forgets `dom`'s watches and queued events.
    pub(crate) fn drop_connection(&mut self, dom: DomId) {
        self.watches.retain(|w| w.dom != dom);
        self.queues.remove(&dom);
    }

    /// Reads without permission checks, for test assertions.
    pub(crate) fn peek(&self, path: &str) -> Option<&[u8]> {
        self.nodes.get(hash(path), path).map(|n| n.value.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_and_parent() {
        assert!(is_below("/a/b", "/a"));
        assert!(is_below("/a", "/a"));
        assert!(!is_below("/ab", "/a"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
    }

    /// Every byte at every place of a word and of the last piece, and
    /// slash pairs across word edges, as a byte-by-byte check says.
    #[test]
    fn path_bytes_as_xenstored_takes_them() {
        let naive = |p: &[u8]| {
            p.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"/_-@".contains(c))
                && !p.windows(2).any(|w| w == b"//")
        };
        for len in 1..=19 {
            for at in 0..len {
                for c in 0..=255u8 {
                    let mut p = alloc::vec![b'a'; len];
                    p[at] = c;
                    assert_eq!(valid_path_bytes(&p), naive(&p), "{c} at {at} of {len}");
                }
                let mut p = alloc::vec![b'/'; len];
                p[at] = b'x';
                assert_eq!(valid_path_bytes(&p), naive(&p), "x at {at} of {len}");
                if at + 1 < len {
                    let mut p = alloc::vec![b'a'; len];
                    p[at] = b'/';
                    p[at + 1] = b'/';
                    assert!(!valid_path_bytes(&p), "// at {at} of {len}");
                }
            }
        }
        assert!(valid_path_bytes(b""));
        assert!(valid_path_bytes(
            b"/local/domain/3/device/vif/0/queue-1/tx-ring-ref"
        ));
        assert!(!valid_path_bytes(b"/local/domain/3//device"));
    }

    #[test]
    fn guests_write_only_at_home() {
        for (dom, path, ok) in [
            (3, "/local/domain/3", true),
            (3, "/local/domain/3/device/vif/0/state", true),
            (3, "/local/domain/30/x", false),
            (3, "/local/domain/03/x", false),
            (3, "/local/domain/+3/x", false),
            (3, "/local/domain", false),
            (3, "/local/domain/", false),
            (3, "/local/domain/4/x", false),
            (3, "/tool/x", false),
            (0, "/tool/x", true),
            (0, "/local/domain/7/x", true),
            (10, "/local/domain/10/x", true),
        ] {
            assert_eq!(Store::may_write(dom, path), ok, "{dom} {path}");
            assert_eq!(is_below(path, &home(dom)) || dom == 0, ok, "{dom} {path}");
        }
    }

    #[test]
    fn directory_lists_children_sorted() {
        let mut s = Store::new();
        for p in ["/a/c", "/a/b/x", "/a/bb", "/a/b", "/ab/z", "/a/c/d/e"] {
            s.write(0, p, b"v").unwrap();
        }
        assert_eq!(s.directory(0, "/a").unwrap(), ["b", "bb", "c"]);
        assert_eq!(s.directory(0, "/a/c/d").unwrap(), ["e"]);
        assert_eq!(s.directory(0, "/").unwrap(), ["a", "ab"]);
        assert_eq!(s.peek("/a/c/d"), Some(&b""[..]));
        s.rm(0, "/a/b").unwrap();
        assert_eq!(s.directory(0, "/a").unwrap(), ["bb", "c"]);
        assert_eq!(s.peek("/a/b/x"), None);
        assert_eq!(s.directory(0, "/a/b"), Err(XenError::NoEnt));
    }

    #[test]
    fn normalize_rejects_bad_paths() {
        assert_eq!(
            Store::normalize(3, "device/vif").unwrap(),
            "/local/domain/3/device/vif"
        );
        for bad in ["/a//b", "/a/", "/a b", "/a\0", "/a\u{e9}", "//", "/a/b//c"] {
            assert_eq!(Store::normalize(3, bad), Err(XenError::Inval), "{bad}");
        }
    }
}
