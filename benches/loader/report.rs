//! Medians, ratios to Roster, the terminal table, `benches/RESULTS.md` and
//! the SVG chart of the ratios.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::{
    BLACK, ChartBuilder, Color, IntoDrawingArea, IntoFont, PathElement, RGBColor, Rectangle,
    SVGBackend, SeriesLabelPosition, WHITE,
};

use crate::contenders::{self, Contender};
use crate::dataset::{Backend, PoolCheck};
use crate::workloads::{Sample, Workload};

/// Everything measured on one backend.
pub struct BackendReport {
    pub backend: Backend,
    pub server_version: String,
    /// Per workload and contender, one sample per run.
    pub samples: Vec<(Workload, Contender, Vec<Sample>)>,
    /// Peak heap growth per loaded row, burst of 1,000.
    pub memory: Vec<(Contender, f64)>,
    /// PostgreSQL only: pool checkout settings.
    pub pool: Vec<PoolRow>,
    /// The GraphQL fan-out through Roster's schema, one sample per run.
    pub fan_out: Vec<Sample>,
    /// The same fan-out through cursor connections, one sample per run.
    pub fan_out_connections: Vec<Sample>,
}

/// One pool setting's figures for one contender (medians).
pub struct PoolRow {
    pub check: PoolCheck,
    pub contender: Contender,
    pub burst: f64,
    pub sequential_p50: f64,
    pub sequential_p99: f64,
}

/// Where and with what the benchmark ran.
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub ram_gib: f64,
    pub rustc: String,
    pub crates: Vec<(String, String)>,
    pub runs: usize,
    pub requests: usize,
    pub command: String,
}

pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The median sample of a contender on a workload.
pub struct Summary {
    pub value: f64,
    pub p99: Option<f64>,
    pub statements: f64,
}

impl BackendReport {
    pub fn summary(&self, workload: Workload, contender: Contender) -> Option<Summary> {
        self.samples
            .iter()
            .find(|(w, c, _)| *w == workload && *c == contender)
            .map(|(_, _, samples)| Summary {
                value: median(samples.iter().map(|s| s.value)),
                p99: samples
                    .iter()
                    .any(|s| s.p99.is_some())
                    .then(|| median(samples.iter().filter_map(|s| s.p99))),
                statements: median(samples.iter().map(|s| s.statements)),
            })
    }

    /// The contender's speed relative to Roster's: above 1, the contender
    /// is faster (more rows/s, or a lower p50).
    pub fn ratio(&self, workload: Workload, contender: Contender) -> Option<f64> {
        let roster = self.summary(workload, Contender::Roster)?.value;
        let other = self.summary(workload, contender)?.value;
        Some(if workload.higher_is_better() {
            other / roster
        } else {
            roster / other
        })
    }

    fn memory_of(&self, contender: Contender) -> Option<f64> {
        self.memory
            .iter()
            .find(|(c, _)| *c == contender)
            .map(|(_, b)| *b)
    }
}

fn fmt_value(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The results as Markdown (also printed on the terminal).
pub fn markdown(machine: &Machine, reports: &[BackendReport]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Loader benchmark results\n");
    let _ = writeln!(
        out,
        "Produced by `{}`; do not edit by hand. The \"Loader\" section of \
         docs/performance.md reads these figures.\n",
        machine.command
    );
    let _ = writeln!(out, "## Machine\n");
    let _ = writeln!(
        out,
        "- CPU: {} ({} cores available to the benchmark; the database servers share them)",
        machine.cpu, machine.cores
    );
    let _ = writeln!(out, "- RAM: {:.1} GiB", machine.ram_gib);
    let _ = writeln!(out, "- {}", machine.rustc);
    let crates: Vec<String> = machine
        .crates
        .iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect();
    let _ = writeln!(out, "- crates: {}", crates.join(", "));
    for r in reports {
        let _ = writeln!(out, "- {}: {}", r.backend.name(), r.server_version);
    }
    let _ = writeln!(
        out,
        "- medians of {} runs; burst and duplicates: {} requests per run, the figure is the median request's rate; sequential: one \
         request of 5,000 loads per run; tokio multi-thread runtime, 2 workers; sea-orm's \
         default pool (10 connections, ping on checkout) unless said otherwise\n",
        machine.runs, machine.requests
    );
    let _ = writeln!(
        out,
        "**× Roster** is the contender's speed relative to Roster's: rows/s ÷ Roster's \
         rows/s, or for sequential Roster's p50 ÷ the contender's p50. Below 1.00 the \
         contender is slower than Roster, above 1.00 faster. Every contender builds a fresh \
         loader (and cache) per request; raw sqlx and sea-orm batched issue one statement per \
         request over the exact distinct id set.\n"
    );
    for r in reports {
        let _ = writeln!(out, "## {}\n", r.backend.name());
        let _ = writeln!(
            out,
            "| workload | contender | figure | p99 µs | statements/request | × Roster |"
        );
        let _ = writeln!(out, "|---|---|--:|--:|--:|--:|");
        for workload in Workload::ALL {
            for contender in contenders::ALL {
                let Some(s) = r.summary(workload, contender) else {
                    continue;
                };
                let ratio = r.ratio(workload, contender).unwrap_or(f64::NAN);
                let _ = writeln!(
                    out,
                    "| {} | {} | {} {} | {} | {} | {:.2} |",
                    workload.name(),
                    contender.name(),
                    fmt_value(s.value),
                    workload.unit(),
                    s.p99.map_or("".into(), fmt_value),
                    fmt_value(s.statements),
                    ratio
                );
            }
        }
        if !r.fan_out.is_empty() {
            let _ = writeln!(
                out,
                "\nGraphQL fan-out through Roster's schema, in-process, fresh loaders per request, \
                 as offset lists: `{}`; and as cursor connections: `{}`\n",
                crate::workloads::FAN_OUT_QUERY,
                crate::workloads::FAN_OUT_CONNECTION_QUERY
            );
            let _ = writeln!(
                out,
                "| query | requests/s | statements/request | loader levels |"
            );
            let _ = writeln!(out, "|---|--:|--:|--:|");
            for (kind, samples) in [
                ("lists", &r.fan_out),
                ("connections", &r.fan_out_connections),
            ] {
                if samples.is_empty() {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "| {kind} | {} | {} | {} |",
                    fmt_value(median(samples.iter().map(|s| s.value))),
                    fmt_value(median(samples.iter().map(|s| s.statements))),
                    crate::workloads::FAN_OUT_LEVELS
                );
            }
        }
        if !r.memory.is_empty() {
            let _ = writeln!(
                out,
                "\nPeak heap growth during one burst request of 1,000 loads, per loaded row:\n"
            );
            let _ = writeln!(out, "| contender | bytes/row | × Roster |");
            let _ = writeln!(out, "|---|--:|--:|");
            let roster = r.memory_of(Contender::Roster).unwrap_or(f64::NAN);
            for (c, bytes) in &r.memory {
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {:.2} |",
                    c.name(),
                    bytes,
                    bytes / roster
                );
            }
        }
        if !r.pool.is_empty() {
            let _ = writeln!(
                out,
                "\nPool checkout settings (burst of 1,000 and sequential, medians):\n"
            );
            let _ = writeln!(
                out,
                "| pool | contender | burst rows/s | sequential p50 µs | p99 µs |"
            );
            let _ = writeln!(out, "|---|---|--:|--:|--:|");
            for p in &r.pool {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    p.check.label(),
                    p.contender.name(),
                    fmt_value(p.burst),
                    fmt_value(p.sequential_p50),
                    fmt_value(p.sequential_p99)
                );
            }
        }
        let _ = writeln!(out, "\n### Targets\n");
        for line in targets(r) {
            let _ = writeln!(out, "- {line}");
        }
        let _ = writeln!(out);
    }
    out
}

/// The loader's targets, checked on one backend's medians.
pub fn targets(r: &BackendReport) -> Vec<String> {
    let mut lines = Vec::new();
    let met = |ok: bool| if ok { "met" } else { "**missed**" };
    for workload in [Workload::Burst1000, Workload::Burst999] {
        let (Some(raw), Some(batched)) = (
            r.ratio(workload, Contender::RawSqlx),
            r.ratio(workload, Contender::SeaOrmBatched),
        ) else {
            continue;
        };
        let vs_batched = 1.0 / batched;
        let best_peer = contenders::ALL
            .iter()
            .filter(|c| c.is_loader_peer())
            .filter_map(|&c| r.ratio(workload, c).map(|x| (c, x)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let lead = best_peer.map_or(f64::INFINITY, |(_, x)| 1.0 / x);
        lines.push(format!(
            "{}: Roster = {:.2}× sea-orm's single batched query (target ≥ 0.95: {}); {:.2}× the \
             fastest loader peer, {} (target ≥ 1.30: {}); {:.2}× the raw floor (stretch ≥ 0.90: {})",
            workload.name(),
            vs_batched,
            met(vs_batched >= 0.95),
            lead,
            best_peer.map_or("-", |(c, _)| c.name()),
            met(lead >= 1.3),
            1.0 / raw,
            met(1.0 / raw >= 0.9),
        ));
    }
    if let (Some(roster), Some(batched)) = (
        r.summary(Workload::Duplicates, Contender::Roster),
        r.summary(Workload::Duplicates, Contender::SeaOrmBatched),
    ) {
        let x = roster.value / batched.value;
        lines.push(format!(
            "duplicates: Roster {} statement(s)/request (target 1: {}), {:.2}× sea-orm's single \
             batched query (target ≥ 0.80: {})",
            fmt_value(roster.statements),
            met(roster.statements <= 1.0),
            x,
            met(x >= 0.8)
        ));
    }
    if let (Some(roster), Some(raw)) = (
        r.summary(Workload::Sequential, Contender::Roster),
        r.summary(Workload::Sequential, Contender::RawSqlx),
    ) {
        let x = roster.value / raw.value;
        lines.push(format!(
            "sequential: Roster p50 {:.0} µs = {:.2}× one raw query's {:.0} µs (target ≤ 1.10: {})",
            roster.value,
            x,
            raw.value,
            met(x <= 1.1)
        ));
    }
    let heap = |c: Contender| r.memory.iter().find(|(m, _)| *m == c).map(|(_, b)| *b);
    if let (Some(roster), Some(batched)) = (heap(Contender::Roster), heap(Contender::SeaOrmBatched))
    {
        let x = roster / batched;
        lines.push(format!(
            "peak heap per row in a burst: Roster {roster:.0} B = {x:.2}× sea-orm's single batched \
             query's {batched:.0} B (target ≤ 1.20: {})",
            met(x <= 1.2)
        ));
    }
    for (kind, samples) in [
        ("fan-out", &r.fan_out),
        ("fan-out (connections)", &r.fan_out_connections),
    ] {
        if samples.is_empty() {
            continue;
        }
        let statements = median(samples.iter().map(|s| s.statements));
        lines.push(format!(
            "{kind}: {} statements/request for {} loader levels (target: equal: {})",
            fmt_value(statements),
            crate::workloads::FAN_OUT_LEVELS,
            met(statements <= crate::workloads::FAN_OUT_LEVELS)
        ));
    }
    lines
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(255, 187, 120),
    RGBColor(214, 39, 40),
    RGBColor(255, 152, 150),
    RGBColor(127, 127, 127),
];

/// A bar chart of every contender's ratio to Roster, one panel per backend.
pub fn chart(path: &Path, reports: &[BackendReport]) -> Result<()> {
    let panels = reports.len().max(1);
    let root = SVGBackend::new(path, (1100, 330 * panels as u32)).into_drawing_area();
    root.fill(&WHITE).context("chart background")?;
    let areas = root.split_evenly((panels, 1));
    let workloads = Workload::ALL;
    let n = contenders::ALL.len() as f64;
    for (area, r) in areas.iter().zip(reports) {
        let max = workloads
            .iter()
            .flat_map(|&w| contenders::ALL.iter().filter_map(move |&c| r.ratio(w, c)))
            .filter(|x| x.is_finite())
            .fold(1.0_f64, f64::max);
        // Headroom above the tallest bar for the legend (upper right).
        let top = (max * 1.8).max(1.5);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "{}: speed relative to Roster (1.0 = Roster; higher = faster)",
                    r.backend.name()
                ),
                ("sans-serif", 18).into_font(),
            )
            .margin(10)
            .x_label_area_size(25)
            .y_label_area_size(45)
            .build_cartesian_2d(0.0..workloads.len() as f64, 0.0..top)
            .context("chart axes")?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(workloads.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - x.floor() - 0.5).abs() < 0.01 && i < workloads.len() {
                    workloads[i].name().to_owned()
                } else {
                    String::new()
                }
            })
            .y_desc("× Roster")
            .draw()
            .context("chart mesh")?;
        for (ci, &contender) in contenders::ALL.iter().enumerate() {
            let color = PALETTE[ci % PALETTE.len()];
            let bars: Vec<_> = workloads
                .iter()
                .enumerate()
                .filter_map(|(wi, &w)| {
                    let x = r.ratio(w, contender)?;
                    let left = wi as f64 + 0.08 + ci as f64 * (0.84 / n);
                    let right = left + 0.84 / n * 0.9;
                    Some(Rectangle::new(
                        [(left, 0.0), (right, x.min(top))],
                        color.filled(),
                    ))
                })
                .collect();
            chart
                .draw_series(bars)
                .context("chart bars")?
                .label(contender.name())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 1.0), (workloads.len() as f64, 1.0)],
                BLACK.stroke_width(1),
            )))
            .context("chart reference line")?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 11).into_font())
            .draw()
            .context("chart legend")?;
    }
    root.present().context("write the chart")?;
    Ok(())
}
