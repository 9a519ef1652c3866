//! A small hand-written SVG: one panel per policy, uplink utilisation (%)
//! over time, one line per uplink.

use std::fmt::Write;

use crate::model::{Outcome, Scenario};

const COLORS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

pub fn render(sc: &Scenario, outs: &[Outcome]) -> String {
    let (pw, ph) = (560.0, 170.0);
    let (ml, mt, gap) = (50.0, 40.0, 40.0);
    let cols = 2;
    let rows = outs.len().div_ceil(cols);
    let width = ml + cols as f64 * (pw + gap) + 20.0;
    let height = mt + rows as f64 * (ph + gap) + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{ml}" y="22" font-size="15">uplink load over time (% of capacity, mean of tx and rx), scenario {}</text>"#,
        sc.name
    );
    for (i, o) in outs.iter().enumerate() {
        let x0 = ml + (i % cols) as f64 * (pw + gap);
        let y0 = mt + (i / cols) as f64 * (ph + gap);
        let _ = writeln!(
            s,
            r##"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" font-size="12">{} (Jain {:.3})</text>"#,
            x0,
            y0 - 5.0,
            o.policy,
            o.jain
        );
        for pctl in [0, 50, 100] {
            let y = y0 + ph - ph * pctl as f64 / 100.0;
            let _ = writeln!(
                s,
                r##"<line x1="{x0}" y1="{y}" x2="{}" y2="{y}" stroke="#eee"/><text x="{}" y="{}" text-anchor="end">{pctl}%</text>"##,
                x0 + pw,
                x0 - 4.0,
                y + 4.0
            );
        }
        if let Some(f) = sc.failure {
            let n = o.series.first().map_or(1, |v| v.len()).max(1) as f64;
            for (t, label) in [(f.down_ms, "down"), (f.up_ms, "up")] {
                let x = x0 + pw * (t as f64 / 100.0) / n;
                let _ = writeln!(
                    s,
                    r##"<line x1="{x}" y1="{y0}" x2="{x}" y2="{}" stroke="#c00" stroke-dasharray="4 3"/><text x="{}" y="{}" fill="#c00">uplink {} {label}</text>"##,
                    y0 + ph,
                    x + 3.0,
                    y0 + 12.0,
                    f.uplink
                );
            }
        }
        for (u, series) in o.series.iter().enumerate() {
            let n = series.len().max(2) as f64 - 1.0;
            let mut pts = String::new();
            for (k, v) in series.iter().enumerate() {
                let x = x0 + pw * k as f64 / n;
                let y = y0 + ph - ph * v.min(100.0) / 100.0;
                let _ = write!(pts, "{x:.1},{y:.1} ");
            }
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{}" stroke-width="1" points="{pts}"/>"#,
                COLORS[u % COLORS.len()]
            );
        }
        if i == 0 {
            for u in 0..o.series.len() {
                let _ = writeln!(
                    s,
                    r#"<text x="{}" y="{}" fill="{}">uplink {u}</text>"#,
                    x0 + pw - 60.0 * (o.series.len() - u) as f64,
                    y0 + ph + 14.0,
                    COLORS[u % COLORS.len()]
                );
            }
        }
    }
    let secs = sc.seconds;
    let _ = writeln!(
        s,
        r#"<text x="{ml}" y="{}">time axis: 0 to {secs} s per panel</text>"#,
        height - 8.0
    );
    s.push_str("</svg>\n");
    s
}
