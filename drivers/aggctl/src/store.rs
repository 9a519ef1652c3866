//! Where aggctl reads and writes xenstore nodes: dom0's xenstore through
//! the standard tools (`xenstore-read`, `-write`, `-rm`, `-list`), or a
//! directory standing in for it (`AGGCTL_XENSTORE_DIR`, for tests).
//!
//! The tools, not the xenstored socket protocol: they are on every dom0
//! that has `xl`, they find xenstored however it is reached (socket or
//! `/dev/xen/xenbus`), and a request costs a process start, which no
//! aggctl command notices next to aggdom's answer.
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

pub trait Store {
    /// The node's value; `None` when it does not exist.
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>>;
    fn write(&self, path: &str, value: &[u8]) -> io::Result<()>;
    /// Removes the node and everything below it; absent is fine.
    fn rm(&self, path: &str) -> io::Result<()>;
    /// The children's names; none when the node does not exist.
    fn list(&self, path: &str) -> io::Result<Vec<String>>;
}

/// dom0's xenstore, through the xenstore-* tools.
pub struct XenstoreTools;

fn tool(name: &str, args: &[&str]) -> io::Result<std::process::Output> {
    Command::new(name).args(args).output().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{name}: {e} (is this dom0 with the Xen tools?)"),
        )
    })
}

impl Store for XenstoreTools {
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        // -R: the raw value (replies hold newlines). A xenstore-read
        // without -R escapes them instead; then they are unescaped here.
        let raw = !NO_RAW.load(Ordering::Relaxed);
        let out = if raw {
            tool("xenstore-read", &["-R", path])?
        } else {
            tool("xenstore-read", &[path])?
        };
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if raw && (err.contains("invalid option") || err.contains("Usage")) {
                NO_RAW.store(true, Ordering::Relaxed);
                return self.read(path);
            }
            return Ok(None);
        }
        let mut v = out.stdout;
        if v.last() == Some(&b'\n') {
            v.pop();
        }
        Ok(Some(if raw { v } else { unescape(&v) }))
    }

    fn write(&self, path: &str, value: &[u8]) -> io::Result<()> {
        let value = String::from_utf8_lossy(value);
        let out = tool("xenstore-write", &[path, &value])?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "xenstore-write {path}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    fn rm(&self, path: &str) -> io::Result<()> {
        tool("xenstore-rm", &[path]).map(|_| ())
    }

    fn list(&self, path: &str) -> io::Result<Vec<String>> {
        let out = tool("xenstore-list", &[path])?;
        if !out.status.success() {
            return Ok(Vec::new());
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    }
}

/// Set once xenstore-read turned out not to know `-R`.
static NO_RAW: AtomicBool = AtomicBool::new(false);

/// Undoes xenstore-read's escaping (`\\n`, `\\t`, `\\\\`, `\\xNN`, octal).
fn unescape(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] != b'\\' || i + 1 == v.len() {
            out.push(v[i]);
            i += 1;
            continue;
        }
        let c = v[i + 1];
        i += 2;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'x' if i + 2 <= v.len() => {
                let hex = std::str::from_utf8(&v[i..i + 2]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.extend_from_slice(b"\\x"),
                }
            }
            b'0'..=b'7' => {
                let mut n = u32::from(c - b'0');
                let mut k = 0;
                while k < 2 && i < v.len() && (b'0'..=b'7').contains(&v[i]) {
                    n = n * 8 + u32::from(v[i] - b'0');
                    i += 1;
                    k += 1;
                }
                out.push(n as u8);
            }
            other => out.push(other),
        }
    }
    out
}

/// A directory as xenstore: node `/a/b` is directory `<root>/a/b`, its
/// value the file `.value` in it (written whole, by rename).
pub struct DirStore {
    pub root: PathBuf,
}

impl DirStore {
    fn dir(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

impl Store for DirStore {
    fn read(&self, path: &str) -> io::Result<Option<Vec<u8>>> {
        let dir = self.dir(path);
        match std::fs::read(dir.join(".value")) {
            Ok(v) => Ok(Some(v)),
            Err(_) if dir.is_dir() => Ok(Some(Vec::new())),
            Err(_) => Ok(None),
        }
    }

    fn write(&self, path: &str, value: &[u8]) -> io::Result<()> {
        let dir = self.dir(path);
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".value.{}", std::process::id()));
        std::fs::write(&tmp, value)?;
        std::fs::rename(tmp, dir.join(".value"))
    }

    fn rm(&self, path: &str) -> io::Result<()> {
        match std::fs::remove_dir_all(self.dir(path)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn list(&self, path: &str) -> io::Result<Vec<String>> {
        let Ok(entries) = std::fs::read_dir(self.dir(path)) else {
            return Ok(Vec::new());
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        Ok(names)
    }
}

/// The store aggctl uses: `AGGCTL_XENSTORE_DIR` if set, else dom0's.
pub fn from_env() -> Box<dyn Store> {
    match std::env::var_os("AGGCTL_XENSTORE_DIR") {
        Some(dir) => Box::new(DirStore {
            root: Path::new(&dir).to_path_buf(),
        }),
        None => Box::new(XenstoreTools),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn xenstore_read_escapes_undone() {
        assert_eq!(super::unescape(br"a\nb\tc\\d\x41\101\q"), b"a\nb\tc\\dAAq");
        assert_eq!(super::unescape(b"plain"), b"plain");
        assert_eq!(super::unescape(b"end\\"), b"end\\");
    }
}
