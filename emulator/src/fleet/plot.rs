//! The fleet's plot: PUT/s (total, the busiest prefix, the limit, SlowDown) and freshness over
//! time, as a self-contained SVG.

use super::{FleetReport, Point};

/// One line of a chart: label, colour, (t s, value) points, dashed.
type Series<'a> = (&'a str, &'a str, Vec<(f64, f64)>, bool);

/// The run as an SVG: PUT/s (total, busiest prefix, the limit, SlowDown) and freshness over time.
pub fn svg(r: &FleetReport) -> String {
    use std::fmt::Write;
    let (w, h, pad) = (900.0, 260.0, 50.0);
    let t_max = r.series.last().map_or(1.0, |p| p.t_s).max(1.0);
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}" font-family="sans-serif" font-size="12">"##,
        2.0 * h + 40.0
    );
    let frame = Frame { w, h, pad, t_max };
    let pts = |f: &dyn Fn(&Point) -> Option<f64>| -> Vec<(f64, f64)> {
        r.series
            .iter()
            .filter_map(|p| f(p).map(|v| (p.t_s, v)))
            .collect()
    };
    let mut puts_lines = vec![
        (
            "PUT/s, all prefixes",
            "#1f77b4",
            pts(&|p| Some(p.puts_per_s)),
            false,
        ),
        (
            "PUT/s, busiest prefix",
            "#d62728",
            pts(&|p| Some(p.max_prefix_puts_per_s)),
            false,
        ),
        (
            "SlowDown/s",
            "#ff7f0e",
            pts(&|p| Some(p.slowdowns_per_s)),
            false,
        ),
    ];
    if let Some(limit) = r.prefix_write_rate {
        puts_lines.push((
            "per-prefix limit",
            "#7f7f7f",
            vec![(0.0, limit), (t_max, limit)],
            true,
        ));
    }
    frame.chart(&mut out, 0.0, "S3 PUT requests per second", "", &puts_lines);
    frame.chart(
        &mut out,
        h + 20.0,
        "Freshness: a line's emission to its object's arrival",
        " s",
        &[
            (
                "p50",
                "#2ca02c",
                pts(&|p| p.freshness_p50_ms.map(|v| v / 1000.0)),
                false,
            ),
            (
                "p99",
                "#9467bd",
                pts(&|p| p.freshness_p99_ms.map(|v| v / 1000.0)),
                false,
            ),
        ],
    );
    out.push_str("</svg>\n");
    out
}

/// A chart's geometry: its width and height, the padding, and the time axis's end.
#[derive(Clone, Copy)]
struct Frame {
    w: f64,
    h: f64,
    pad: f64,
    t_max: f64,
}

impl Frame {
    /// One chart at `top`: axes, ticks, and `lines` with their labels.
    fn chart(&self, out: &mut String, top: f64, title: &str, unit: &str, lines: &[Series<'_>]) {
        use std::fmt::Write;
        let y_max = lines
            .iter()
            .flat_map(|(_, _, pts, _)| pts.iter().map(|p| p.1))
            .fold(0.0, f64::max)
            .max(1.0)
            * 1.1;
        let Frame { w, h, pad, t_max } = *self;
        let x = |t: f64| pad + (w - 2.0 * pad) * t / t_max;
        let y = |v: f64| top + h - pad + -(h - 2.0 * pad) * v / y_max;
        let _ = write!(
            out,
            r##"<text x="{pad}" y="{}" font-weight="bold">{title}</text>"##,
            top + 20.0
        );
        let _ = write!(
            out,
            r##"<line x1="{pad}" y1="{b}" x2="{}" y2="{b}" stroke="#000"/><line x1="{pad}" y1="{}" x2="{pad}" y2="{b}" stroke="#000"/>"##,
            w - pad,
            top + pad,
            b = top + h - pad
        );
        for k in 0..=4 {
            let v = y_max * k as f64 / 4.0;
            let _ = write!(
                out,
                r##"<text x="5" y="{:.1}">{v:.0}{unit}</text>"##,
                y(v) + 4.0
            );
            let t = t_max * k as f64 / 4.0;
            let _ = write!(
                out,
                r##"<text x="{:.1}" y="{:.1}">{t:.0} s</text>"##,
                x(t) - 10.0,
                top + h - pad + 16.0
            );
        }
        for (i, (name, color, pts, dashed)) in lines.iter().enumerate() {
            let path: Vec<String> = pts
                .iter()
                .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
                .collect();
            let dash = if *dashed {
                r#" stroke-dasharray="6,4""#
            } else {
                ""
            };
            let _ = write!(
                out,
                r##"<polyline fill="none" stroke="{color}" stroke-width="1.5"{dash} points="{}"/><text x="{:.1}" y="{:.1}" fill="{color}">{name}</text>"##,
                path.join(" "),
                w - pad - 190.0,
                top + 20.0 + 14.0 * i as f64
            );
        }
    }
}
