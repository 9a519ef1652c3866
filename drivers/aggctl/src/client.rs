//! One request through xenstore: the command line to `request/<id>`,
//! the reply's pieces back once `reply/<id>/status` is there (see the
//! protocol in `aggdom_ctl`).
use crate::store::Store;
use aggdom_ctl::{join, parse_status, valid_line, Outcome};
use std::io;
use std::time::{Duration, Instant};

/// How a request failed.
#[derive(Debug)]
pub enum CallError {
    /// aggdom answered with an error line.
    Refused(String),
    /// No answer, or xenstore failed.
    Transport(String),
}

pub trait Transport {
    /// Runs one console command in aggdom: its output, or its error.
    fn call(&mut self, line: &str) -> Result<String, CallError>;
}

pub struct XsClient {
    pub store: Box<dyn Store>,
    /// aggdom's `data/aggctl`.
    pub dir: String,
    pub timeout: Duration,
}

fn fresh_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // Distinct per process and per call, not sequential across clients.
    (std::process::id().wrapping_mul(2_654_435_761) ^ nanos) & 0x7fff_ffff
}

impl Transport for XsClient {
    fn call(&mut self, line: &str) -> Result<String, CallError> {
        if !valid_line(line) {
            return Err(CallError::Transport(format!(
                "'{line}' is too long or holds control characters"
            )));
        }
        let io = |e: io::Error| CallError::Transport(e.to_string());
        let id = fresh_id();
        let request = format!("{}/request/{id}", self.dir);
        let reply = format!("{}/reply/{id}", self.dir);
        self.store.write(&request, line.as_bytes()).map_err(io)?;
        let deadline = Instant::now() + self.timeout;
        let mut wait = Duration::from_millis(5);
        let (outcome, n) = loop {
            if let Some(v) = self.store.read(&format!("{reply}/status")).map_err(io)? {
                if let Some(s) = parse_status(&v) {
                    break s;
                }
            }
            if Instant::now() >= deadline {
                let _ = self.store.rm(&request);
                return Err(CallError::Transport(format!(
                    "no answer from aggdom within {} s (is it running, and serving {}?)",
                    self.timeout.as_secs(),
                    self.dir
                )));
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(100));
        };
        let mut pieces = Vec::with_capacity(n);
        for k in 0..n {
            match self.store.read(&format!("{reply}/{k}")).map_err(io)? {
                Some(p) => pieces.push(p),
                None => {
                    return Err(CallError::Transport(format!(
                        "reply {id} lost its piece {k} (removed before it was read)"
                    )))
                }
            }
        }
        let _ = self.store.rm(&reply);
        let text = join(&pieces);
        match outcome {
            Outcome::Ok => Ok(text),
            Outcome::Error => Err(CallError::Refused(text.trim_end().to_string())),
        }
    }
}

/// aggdom's console on a socket (QEMU's `-serial tcp:...` or
/// `unix:...`): the same commands, framed by the prompt.
pub struct ConsoleClient {
    pub stream: Box<dyn ReadWrite>,
    pub timeout: Duration,
}

pub trait ReadWrite: io::Read + io::Write {}
impl<T: io::Read + io::Write> ReadWrite for T {}

const PROMPT: &str = "aggdom> ";

impl ConsoleClient {
    pub fn connect(addr: &str, timeout: Duration) -> io::Result<ConsoleClient> {
        let stream: Box<dyn ReadWrite> = match addr.strip_prefix("unix:") {
            Some(path) => {
                let s = std::os::unix::net::UnixStream::connect(path)?;
                s.set_read_timeout(Some(Duration::from_millis(200)))?;
                Box::new(s)
            }
            None => {
                let s = std::net::TcpStream::connect(addr.strip_prefix("tcp:").unwrap_or(addr))?;
                s.set_read_timeout(Some(Duration::from_millis(200)))?;
                Box::new(s)
            }
        };
        Ok(ConsoleClient { stream, timeout })
    }

    /// Reads until the text ends with the prompt; returns what came before.
    fn until_prompt(&mut self) -> Result<String, CallError> {
        let deadline = Instant::now() + self.timeout;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if got.ends_with(PROMPT.as_bytes()) {
                got.truncate(got.len() - PROMPT.len());
                return Ok(String::from_utf8_lossy(&got).replace("\r\n", "\n"));
            }
            if Instant::now() >= deadline {
                return Err(CallError::Transport(
                    "no prompt from aggdom's console".into(),
                ));
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(CallError::Transport("the console closed".into())),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(CallError::Transport(e.to_string())),
            }
        }
    }
}

impl Transport for ConsoleClient {
    fn call(&mut self, line: &str) -> Result<String, CallError> {
        if !valid_line(line) {
            return Err(CallError::Transport(format!("'{line}' is not one line")));
        }
        let io = |e: io::Error| CallError::Transport(e.to_string());
        // A fresh prompt first: whatever was typed or printed before goes.
        self.stream.write_all(b"\x03").map_err(io)?;
        self.until_prompt()?;
        self.stream
            .write_all(format!("{line}\r").as_bytes())
            .map_err(io)?;
        let text = self.until_prompt()?;
        // The echo of the line comes first.
        let body = text
            .split_once('\n')
            .map_or("", |(_, rest)| rest)
            .to_string();
        match body.lines().find_map(|l| l.strip_prefix("error: ")) {
            Some(e) => Err(CallError::Refused(e.to_string())),
            None => Ok(body),
        }
    }
}
