//! The snapshot as JSON (`stats --json`, `aggctl stats --json`): who is
//! who (uplinks, guests, identities), then every sample exactly as
//! `GET /metrics` gives it, so scripts and Prometheus read the same
//! numbers.
use crate::prometheus::render_prometheus;
use crate::snapshot::Snapshot;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// A JSON string literal.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    format!("[{}]", items.join(","))
}

/// One Prometheus sample line as a JSON object; `None` for comments.
fn sample(line: &str) -> Option<String> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value: u64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => (name, rest.strip_suffix('}')?),
        None => (series, ""),
    };
    let labels = labels.split(',').filter(|l| !l.is_empty()).filter_map(|l| {
        let (k, v) = l.split_once('=')?;
        Some(format!("{}:{}", string(k), string(v.trim_matches('"'))))
    });
    Some(format!(
        "{{\"name\":{},\"labels\":{{{}}},\"value\":{value}}}",
        string(name),
        labels.collect::<Vec<_>>().join(",")
    ))
}

pub fn render_json(s: &Snapshot) -> String {
    let uplinks = list(s.uplinks.iter().map(|u| {
        format!(
            "{{\"index\":{},\"kind\":{},\"mac\":\"{}\",\"link_up\":{},\"exclusive\":{},\"identities\":{}}}",
            u.index,
            string(u.nic_kind),
            u.mac,
            u.link_up,
            u.exclusive,
            list(u.identities.iter().map(|i| format!("{i}")))
        )
    }));
    let guests = list(s.guests.iter().map(|g| {
        format!(
            "{{\"index\":{},\"name\":{},\"mac\":\"{}\",\"ips\":{}}}",
            g.index,
            string(&g.name),
            g.mac,
            list(g.ips.iter().map(|ip| string(&format!("{ip}"))))
        )
    }));
    let identities = list(s.identities.iter().map(|i| {
        format!(
            "{{\"index\":{},\"mac\":\"{}\",\"holder\":{},\"pinned\":{},\"moves\":{},\"tx_bytes\":{},\"rx_bytes\":{}}}",
            i.index,
            i.mac,
            i.holder.map_or(String::from("null"), |h| format!("{h}")),
            i.pinned,
            i.moves,
            i.tx_bytes,
            i.rx_bytes
        )
    }));
    let prom = render_prometheus(s);
    let samples = list(prom.lines().filter_map(sample));
    format!(
        "{{\"mode\":{},\"uptime_ms\":{},\"uplinks\":{uplinks},\"guests\":{guests},\"identities\":{identities},\"samples\":{samples}}}",
        string(s.mode.name()),
        s.uptime_ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_and_strings() {
        assert_eq!(
            sample("aggdom_x_total{uplink=\"0\",reason=\"denied\"} 7").unwrap(),
            "{\"name\":\"aggdom_x_total\",\"labels\":{\"uplink\":\"0\",\"reason\":\"denied\"},\"value\":7}"
        );
        assert_eq!(
            sample("aggdom_up 1").unwrap(),
            "{\"name\":\"aggdom_up\",\"labels\":{},\"value\":1}"
        );
        assert_eq!(sample("# HELP x y"), None);
        assert_eq!(string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    /// Every Prometheus sample is in the JSON, with the same value.
    #[test]
    fn the_json_holds_every_sample_of_a_scrape() {
        use alloc::boxed::Box;
        use nic::{FakeNic, MacAddr};
        let mut dp = datapath::Datapath::new(aggregation::Config::DEFAULT, 4);
        dp.add_uplink(
            Box::new(FakeNic::new(MacAddr([2, 0, 0, 0, 0, 1]))),
            1000,
            false,
        )
        .unwrap();
        let mut snap = Snapshot::take(&mut dp, 1234);
        snap.extra.push(("aggdom_capture_dropped_total", "help", 5));
        let json = render_json(&snap);
        assert!(
            json.starts_with(
                "{\"mode\":\"identity\",\"uptime_ms\":1234,\"uplinks\":[{\"index\":0,"
            ),
            "{json}"
        );
        let prom = render_prometheus(&snap);
        let samples = prom.lines().filter(|l| !l.starts_with('#')).count();
        assert!(samples > 10);
        assert_eq!(json.matches("\"name\":").count(), samples, "{json}");
        assert!(
            json.contains("{\"name\":\"aggdom_capture_dropped_total\",\"labels\":{},\"value\":5}")
        );
    }
}
