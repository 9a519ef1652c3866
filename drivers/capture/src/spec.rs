//! What to capture, read from the console's words (`capture uplink 0 100
//! ip=10.0.0.11`) or from a `GET /capture?uplink=0&count=100&ip=...`
//! query: the same words, `key=value` or positional.
use crate::filter::Filter;
use alloc::format;
use alloc::string::String;
use core::fmt;

/// The most frames one capture may ask for.
pub const MAX_COUNT: u32 = 100_000;
/// The longest a capture may run.
pub const MAX_SECONDS: u32 = 3600;

/// The port whose frames are captured. `Nic` is a NIC's number in
/// `nics`; the kernel turns it into the uplink or guest it serves as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    Uplink(u8),
    Guest(u16),
    Nic(u8),
}

/// When a capture ends by itself (besides `capture stop`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Runs until stopped; once the ring is full, frames are dropped.
    None,
    /// After this many frames kept.
    Count(u32),
    /// This long after it started.
    Seconds(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    pub port: Port,
    pub limit: Limit,
    pub filter: Filter,
}

impl Spec {
    /// Reads `<uplink|guest|nic> <n> [<count>|<seconds>s] [mac=..]
    /// [ip=..] [ethertype=..]`; every word may also be `key=value`
    /// (`uplink=0`, `count=100`, `seconds=5`), as a URL query gives them.
    pub fn parse<'a>(words: impl IntoIterator<Item = &'a str>) -> Result<Spec, String> {
        let mut words = words.into_iter().filter(|w| !w.is_empty());
        let mut port = None;
        let mut limit = Limit::None;
        let mut filter = Filter::default();
        while let Some(word) = words.next() {
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (word, None),
            };
            match (key, value) {
                ("uplink" | "guest" | "nic", _) => {
                    if port.is_some() {
                        return Err("one port per capture".into());
                    }
                    let n = match value {
                        Some(v) => v,
                        None => words
                            .next()
                            .ok_or_else(|| format!("{key} needs a number"))?,
                    };
                    port = Some(port_of(key, n)?);
                }
                ("count" | "seconds", _) => {
                    let v = value.ok_or_else(|| format!("{key}=<number>"))?;
                    limit = limit_of(key, v)?;
                }
                (_, Some(v)) => {
                    filter.set(key, v).map_err(|e| format!("'{word}': {e}"))?;
                }
                _ if port.is_some() && limit == Limit::None => {
                    limit = match word.strip_suffix('s') {
                        Some(secs) => limit_of("seconds", secs)?,
                        None => limit_of("count", word)?,
                    };
                }
                _ => return Err(format!("'{word}' is not a port, a limit or a filter")),
            }
        }
        let port = port.ok_or("which port: uplink <n>, guest <n> or nic <n>")?;
        Ok(Spec {
            port,
            limit,
            filter,
        })
    }

    /// The spec from a URL query (`uplink=0&count=10&ip=10.0.0.11`).
    pub fn parse_query(query: &str) -> Result<Spec, String> {
        Spec::parse(query.split('&'))
    }
}

fn port_of(kind: &str, n: &str) -> Result<Port, String> {
    let bad = || {
        format!(
            "'{n}' is not a{} {kind} number",
            if kind == "uplink" { "n" } else { "" }
        )
    };
    Ok(match kind {
        "uplink" => Port::Uplink(n.parse().map_err(|_| bad())?),
        "guest" => Port::Guest(n.parse().map_err(|_| bad())?),
        _ => Port::Nic(n.parse().map_err(|_| bad())?),
    })
}

fn limit_of(kind: &str, v: &str) -> Result<Limit, String> {
    let (max, make): (u32, fn(u32) -> Limit) = match kind {
        "count" => (MAX_COUNT, Limit::Count),
        _ => (MAX_SECONDS, Limit::Seconds),
    };
    match v.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(make(n)),
        _ => Err(format!("{kind} must be 1..={max}, not '{v}'")),
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Port::Uplink(u) => write!(f, "uplink {u}"),
            Port::Guest(g) => write!(f, "guest {g}"),
            Port::Nic(n) => write!(f, "nic {n}"),
        }
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.port)?;
        match self.limit {
            Limit::None => {}
            Limit::Count(n) => write!(f, " {n}")?,
            Limit::Seconds(s) => write!(f, " {s}s")?,
        }
        if !self.filter.is_empty() {
            write!(f, " {}", self.filter.words())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_and_query_words_read_the_same() {
        let a = Spec::parse("uplink 0 100 ip=10.0.0.11".split(' ')).unwrap();
        let b = Spec::parse_query("uplink=0&count=100&ip=10.0.0.11").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.port, Port::Uplink(0));
        assert_eq!(a.limit, Limit::Count(100));
        assert_eq!(a.to_string(), "uplink 0 100 ip=10.0.0.11");
        let s = Spec::parse("guest 2 5s ethertype=arp".split(' ')).unwrap();
        assert_eq!((s.port, s.limit), (Port::Guest(2), Limit::Seconds(5)));
        assert_eq!(
            Spec::parse_query("nic=3&seconds=9").unwrap().limit,
            Limit::Seconds(9)
        );
        assert_eq!(Spec::parse(["nic", "4"]).unwrap().limit, Limit::None);
    }

    #[test]
    fn bad_specs_say_why() {
        let cases: &[(&str, &str)] = &[
            ("", "which port"),
            ("uplink", "needs a number"),
            ("uplink x", "not an uplink number"),
            ("guest 70000", "not a guest number"),
            ("uplink 0 0", "count must be"),
            ("uplink 0 100001", "count must be"),
            ("uplink 0 3601s", "seconds must be"),
            ("uplink 0 guest 1", "one port"),
            ("uplink 0 port=80", "a filter is"),
            ("uplink 0 mac=1", "MAC"),
            ("10", "not a port"),
            ("uplink 0 5 6", "not a port"),
            ("count", "count=<number>"),
        ];
        for (words, want) in cases {
            let err = Spec::parse(words.split(' ')).unwrap_err();
            assert!(err.contains(want), "{words}: {err}");
        }
    }
}
