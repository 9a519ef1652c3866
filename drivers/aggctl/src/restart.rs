//! `aggctl restart`: what the toolstack must do so guests keep their
//! network across a new aggdom. Linux netfront reconnects only from
//! Initialising, so each vif is detached and attached again once the new
//! aggdom runs, with the settings it had (backend keys `mac`, `ip`,
//! `rate`, `mtu`). The plan is pure (tested here); `run` carries it out.
use std::fmt;

/// One vif served by aggdom, as its backend directory says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vif {
    /// The guest's name (`/local/domain/<frontend>/name`).
    pub guest: String,
    pub frontend: u32,
    /// The vif's devid (its handle).
    pub handle: u32,
    pub mac: Option<String>,
    /// libxl's `ip` key: space-separated.
    pub ip: Option<String>,
    /// libxl's `rate` key: `<bytes per interval>,<interval in us>`.
    pub rate: Option<String>,
    pub mtu: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A command to run (the program and its arguments).
    Run(Vec<String>),
    /// Write aggdom's config node (kept across the restart) before it runs.
    WriteConfig(String),
    /// Wait until the new aggdom serves aggctl requests.
    WaitReady,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Run(argv) => {
                let words: Vec<String> = argv
                    .iter()
                    .map(|w| {
                        if w.contains(' ') {
                            format!("'{w}'")
                        } else {
                            w.clone()
                        }
                    })
                    .collect();
                f.write_str(&words.join(" "))
            }
            Step::WriteConfig(text) => write!(
                f,
                "xenstore-write /local/domain/$(xl domid <aggdom>)/aggdom/config '{text}'"
            ),
            Step::WaitReady => f.write_str("(wait until the new aggdom answers aggctl status)"),
        }
    }
}

/// libxl's `rate` (`125000,50000`) as xl's vif syntax
/// (`2500000B/s@50000us`); `None` for anything else.
pub fn xl_rate(key: &str) -> Option<String> {
    let (bytes, us) = key.trim().split_once(',')?;
    let bytes: u64 = bytes.parse().ok()?;
    let us: u64 = us.parse().ok().filter(|u| *u > 0)?;
    let per_second = bytes.checked_mul(1_000_000)? / us;
    Some(format!("{per_second}B/s@{us}us"))
}

/// The vif's `xl network-attach` settings.
pub fn attach_settings(aggdom: &str, v: &Vif) -> Vec<String> {
    let mut s = vec![format!("backend={aggdom}")];
    if let Some(mac) = &v.mac {
        s.push(format!("mac={mac}"));
    }
    if let Some(ip) = v.ip.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
        s.push(format!("ip={ip}"));
    }
    if let Some(rate) = v.rate.as_deref().and_then(xl_rate) {
        s.push(format!("rate={rate}"));
    }
    if let Some(mtu) = v.mtu.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        s.push(format!("mtu={mtu}"));
    }
    s
}

/// The restart: destroy aggdom, create it paused from `cfg`, give it back
/// its config node, unpause, wait until it answers, then detach and
/// attach every vif (the guest's netfront starts over, from
/// Initialising, against the new backend).
pub fn plan(aggdom: &str, cfg: &str, config_node: Option<&str>, vifs: &[Vif]) -> Vec<Step> {
    let run = |words: &[&str]| Step::Run(words.iter().map(|w| w.to_string()).collect());
    let mut steps = vec![
        run(&["xl", "destroy", aggdom]),
        run(&["xl", "create", "-p", cfg]),
    ];
    if let Some(text) = config_node.filter(|t| !t.trim().is_empty()) {
        steps.push(Step::WriteConfig(text.to_string()));
    }
    steps.push(run(&["xl", "unpause", aggdom]));
    steps.push(Step::WaitReady);
    for v in vifs {
        let devid = v.handle.to_string();
        steps.push(run(&["xl", "network-detach", &v.guest, &devid]));
        let mut attach = vec!["xl".to_string(), "network-attach".into(), v.guest.clone()];
        attach.extend(attach_settings(aggdom, v));
        steps.push(Step::Run(attach));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vif(guest: &str, fe: u32, handle: u32) -> Vif {
        Vif {
            guest: guest.into(),
            frontend: fe,
            handle,
            mac: Some(format!("00:16:3e:00:00:{fe:02x}")),
            ip: Some(format!("10.0.0.{fe}")),
            rate: None,
            mtu: Some("1500".into()),
        }
    }

    #[test]
    fn rates_read_as_xl_writes_them() {
        assert_eq!(
            xl_rate("125000,50000").as_deref(),
            Some("2500000B/s@50000us")
        );
        assert_eq!(
            xl_rate("1250000,1000000").as_deref(),
            Some("1250000B/s@1000000us")
        );
        for junk in ["", "12", "a,b", "1,0", "18446744073709551615,1"] {
            assert_eq!(xl_rate(junk), None, "{junk}");
        }
    }

    #[test]
    fn the_plan_recreates_aggdom_then_reattaches_every_vif_as_it_was() {
        let mut two = vif("guest2", 12, 1);
        two.rate = Some("125000,50000".into());
        two.ip = Some("10.0.0.12 fd00::12".into());
        two.mtu = None;
        let steps = plan(
            "aggdom",
            "/etc/xen/aggdom.cfg",
            Some("bind=10.0.0.11:0"),
            &[vif("guest1", 11, 0), two],
        );
        let text: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            text,
            [
                "xl destroy aggdom",
                "xl create -p /etc/xen/aggdom.cfg",
                "xenstore-write /local/domain/$(xl domid <aggdom>)/aggdom/config 'bind=10.0.0.11:0'",
                "xl unpause aggdom",
                "(wait until the new aggdom answers aggctl status)",
                "xl network-detach guest1 0",
                "xl network-attach guest1 backend=aggdom mac=00:16:3e:00:00:0b ip=10.0.0.11 mtu=1500",
                "xl network-detach guest2 1",
                "xl network-attach guest2 backend=aggdom mac=00:16:3e:00:00:0c 'ip=10.0.0.12 fd00::12' rate=2500000B/s@50000us",
            ]
        );
        // The ip with a space is one argument.
        assert_eq!(
            steps[8],
            Step::Run(
                [
                    "xl",
                    "network-attach",
                    "guest2",
                    "backend=aggdom",
                    "mac=00:16:3e:00:00:0c",
                    "ip=10.0.0.12 fd00::12",
                    "rate=2500000B/s@50000us"
                ]
                .map(String::from)
                .to_vec()
            )
        );
    }

    #[test]
    fn no_vifs_and_no_config_node_is_just_the_restart() {
        let steps = plan("agg", "a.cfg", Some("  "), &[]);
        assert_eq!(steps.len(), 4);
        assert!(!steps.iter().any(|s| matches!(s, Step::WriteConfig(_))));
    }
}
