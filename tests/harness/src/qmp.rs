//! A QMP client: connect to QEMU's monitor socket, negotiate capabilities,
//! run commands; asynchronous events are kept for the test to read.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::json::Json;

/// One QMP session.
pub(crate) struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Events (`{"event": ...}`) seen while waiting for replies.
    pub(crate) events: Vec<Json>,
}

impl Qmp {
    /// Connects to `path` (retrying until QEMU has created it), reads the
    /// greeting and leaves capabilities negotiation mode.
    pub(crate) fn connect(path: &Path, timeout: Duration) -> Result<Qmp> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => {
                    return Err(Error::Qmp(format!(
                        "cannot connect to {}: {e}",
                        path.display()
                    )))
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        };
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            events: Vec::new(),
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(Error::Qmp(format!("unexpected greeting {greeting}")));
        }
        qmp.execute(&Json::object([("execute", Json::from("qmp_capabilities"))]))?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<Json> {
        let mut line = String::new();
        loop {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err(Error::Qmp("connection closed".into())),
                Ok(_) if line.trim().is_empty() => continue,
                Ok(_) => {
                    return Json::parse(&line).map_err(|e| Error::Qmp(format!("{e} in {line:?}")))
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Error::Qmp("no reply (timeout)".into()))
                }
                Err(e) => return Err(Error::Io(e)),
            }
        }
    }

    /// Runs one command (`{"execute": ..., "arguments": ...}`) and returns
    /// its `return` value; a QMP `error` becomes [`Error::Qmp`].
    pub(crate) fn execute(&mut self, cmd: &Json) -> Result<Json> {
        let mut text = cmd.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes())?;
        loop {
            let msg = self.read_message()?;
            if let Some(ret) = msg.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = msg.get("error") {
                let desc = err.get("desc").and_then(Json::as_str).unwrap_or("?");
                return Err(Error::Qmp(format!("{cmd} failed: {desc}")));
            }
            if msg.get("event").is_some() {
                self.events.push(msg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn negotiates_and_runs_commands_against_a_fake_monitor() {
        let dir = std::env::temp_dir().join(format!("aggdom-qmp-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("qmp.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let server = thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            let mut line = String::new();
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
                .unwrap();
            r.read_line(&mut line).unwrap();
            assert!(line.contains("qmp_capabilities"));
            w.write_all(b"{\"return\": {}}\r\n").unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            assert_eq!(
                line,
                "{\"arguments\":{\"name\":\"n0\",\"up\":false},\"execute\":\"set_link\"}\n"
            );
            w.write_all(b"{\"timestamp\": {}, \"event\": \"NIC_RX_FILTER_CHANGED\"}\r\n{\"return\": {}}\r\n").unwrap();
            line.clear();
            r.read_line(&mut line).unwrap();
            w.write_all(
                b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"no such thing\"}}\r\n",
            )
            .unwrap();
        });
        let mut q = Qmp::connect(&path, Duration::from_secs(5)).unwrap();
        let set_link = Json::object([
            ("execute", Json::from("set_link")),
            (
                "arguments",
                Json::object([("name", Json::from("n0")), ("up", Json::from(false))]),
            ),
        ]);
        assert_eq!(q.execute(&set_link).unwrap(), Json::object::<String>([]));
        assert_eq!(q.events.len(), 1);
        let e = q
            .execute(&Json::object([("execute", Json::from("bogus"))]))
            .unwrap_err();
        assert!(e.to_string().contains("no such thing"), "{e}");
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
