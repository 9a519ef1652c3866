//! The fake's xenstore: a tree of nodes, per-domain watch queues and a
//! "write only under your own home" rule.
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::abi::DomId;
use crate::error::XenError;
use crate::xenstore::WatchEvent;

/// `XENSTORE_ABS_PATH_MAX` (io/xs_wire.h).
const PATH_MAX: usize = 3072;
/// C xenstored's `quota_max_entry_size` (2048): an unprivileged domain's
/// node, value plus its permissions and children's names, must stay below
/// it, or the write fails with ENOSPC. The fake counts the value and a
/// permission record's few bytes: aggctl's 2048-byte reply pieces failed
/// on the rig (run k2-1, 2026-12-07) and nowhere in the host tests.
pub const MAX_ENTRY: usize = 2048;
const PERMS_BYTES: usize = 8;

type Tree = BTreeMap<String, Vec<u8>>;

struct Watch {
    dom: DomId,
    path: String,
    token: String,
}

pub(crate) struct Store {
    tree: Tree,
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

impl Store {
    pub(crate) fn new() -> Self {
        let mut tree = Tree::new();
        tree.insert("/".to_string(), Vec::new());
        Self {
            tree,
            watches: Vec::new(),
            queues: BTreeMap::new(),
        }
    }

    /// Absolute, validated form of `path` as `dom` wrote it.
    pub(crate) fn normalize(dom: DomId, path: &str) -> Result<String, XenError> {
        let abs = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{}/{}", home(dom), path)
        };
        let valid_chars = abs
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"/_-@".contains(&c));
        if abs.len() > PATH_MAX
            || !valid_chars
            || abs.contains("//")
            || (abs.len() > 1 && abs.ends_with('/'))
        {
            return Err(XenError::Inval);
        }
        Ok(abs)
    }

    fn may_write(dom: DomId, path: &str) -> bool {
        dom == 0 || is_below(path, &home(dom))
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
        self.tree.get(&p).cloned().ok_or(XenError::NoEnt)
    }

    pub(crate) fn write(&mut self, dom: DomId, path: &str, value: &[u8]) -> Result<(), XenError> {
        let p = Self::normalize(dom, path)?;
        if !Self::may_write(dom, &p) {
            return Err(XenError::Acces);
        }
        if dom != 0 && value.len() + PERMS_BYTES >= MAX_ENTRY {
            return Err(XenError::NoSpc);
        }
        let tree = &mut self.tree;
        let mut a = parent(&p);
        while let Some(anc) = a {
            tree.entry(anc.to_string()).or_default();
            a = parent(anc);
        }
        tree.insert(p.clone(), value.to_vec());
        self.fire(&p, false);
        Ok(())
    }

    pub(crate) fn mkdir(&mut self, dom: DomId, path: &str) -> Result<(), XenError> {
        let p = Self::normalize(dom, path)?;
        if self.tree.contains_key(&p) {
            return Ok(());
        }
        self.write(dom, &p, b"")
    }

    pub(crate) fn rm(&mut self, dom: DomId, path: &str) -> Result<(), XenError> {
        let p = Self::normalize(dom, path)?;
        if !Self::may_write(dom, &p) || p == "/" {
            return Err(XenError::Acces);
        }
        let tree = &mut self.tree;
        if !tree.contains_key(&p) {
            // As xenstored: removing a missing node is fine if its parent exists.
            let parent_exists = parent(&p).is_some_and(|q| tree.contains_key(q));
            return if parent_exists {
                Ok(())
            } else {
                Err(XenError::NoEnt)
            };
        }
        tree.retain(|k, _| !is_below(k, &p));
        self.fire(&p, true);
        Ok(())
    }

    pub(crate) fn directory(&mut self, dom: DomId, path: &str) -> Result<Vec<String>, XenError> {
        let p = Self::normalize(dom, path)?;
        let tree = &mut self.tree;
        if !tree.contains_key(&p) {
            return Err(XenError::NoEnt);
        }
        let prefix = if p == "/" { p.clone() } else { format!("{p}/") };
        Ok(tree
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, _)| {
                let rest = &k[prefix.len()..];
                (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
            })
            .collect())
    }

    pub(crate) fn watch(&mut self, dom: DomId, path: &str, token: &str) -> Result<(), XenError> {
        let p = if path.starts_with('@') {
            path.to_string()
        } else {
            Self::normalize(dom, path)?
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
            Self::normalize(dom, path)?
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
        self.tree.get(path).map(Vec::as_slice)
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

    #[test]
    fn normalize_rejects_bad_paths() {
        assert_eq!(
            Store::normalize(3, "device/vif").unwrap(),
            "/local/domain/3/device/vif"
        );
        for bad in ["/a//b", "/a/", "/a b", "/a\0"] {
            assert_eq!(Store::normalize(3, bad), Err(XenError::Inval), "{bad}");
        }
    }
}
