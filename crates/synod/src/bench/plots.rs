//! The comparison's plots, drawn as PNG files in pure Rust (plotters' bitmap backend).
//!
//! Text goes through ab_glyph from a TrueType file read at run time (Debian's DejaVu Sans by
//! default; `bench/compare.sh` installs `fonts-dejavu-core` if it is missing), so no system
//! font library is linked.

use std::path::Path;

use anyhow::{Context, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::results::{BASELINE, CANDIDATE, Results, WORKLOADS};
use super::targets::{FAILOVER_P99_MS_MAX, failover_ms};

/// Where Debian's fonts-dejavu-core puts DejaVu Sans.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// The font family every text on the plots uses.
const FAMILY: &str = "sans-serif";

const BASELINE_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const CANDIDATE_COLOR: RGBColor = RGBColor(0xd6, 0x27, 0x28);
const TARGET_COLOR: RGBColor = RGBColor(0x70, 0x70, 0x70);

/// The file names of the plots, relative to the plots directory.
pub const THROUGHPUT_PNG: &str = "throughput.png";
/// The failover plot.
pub const FAILOVER_PNG: &str = "failover.png";

/// The latency distribution plot of `workload`.
pub fn latency_png(workload: &str) -> String {
    format!("latency-cdf-{workload}.png")
}

/// Registers the TrueType or OpenType font at `path` for every text on the plots.
pub fn load_font(path: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "reading the font {} (install fonts-dejavu-core or pass --font)",
            path.display()
        )
    })?;
    // plotters keeps fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{} is not a TrueType or OpenType font", path.display()))
}

/// Draws every plot into `dir` and returns the file names written.
pub fn draw_all(results: &Results, dir: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    if !results.runs.is_empty() {
        throughput(results, &dir.join(THROUGHPUT_PNG))?;
        written.push(THROUGHPUT_PNG.to_string());
        for workload in WORKLOADS {
            let name = latency_png(workload);
            if latency_cdf(results, workload, &dir.join(&name))? {
                written.push(name);
            }
        }
    }
    if failover_ms(results, BASELINE).is_some() || failover_ms(results, CANDIDATE).is_some() {
        failover(results, &dir.join(FAILOVER_PNG))?;
        written.push(FAILOVER_PNG.to_string());
    }
    Ok(written)
}

/// One line on a plot: the system, its colour, and its points.
type Series = (&'static str, RGBColor, Vec<(f64, f64)>);

fn systems() -> [(&'static str, RGBColor); 2] {
    [(BASELINE, BASELINE_COLOR), (CANDIDATE, CANDIDATE_COLOR)]
}

/// Throughput against clients, one panel per workload.
fn throughput(results: &Results, path: &Path) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (1500, 950)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let root = root
        .titled(
            "Throughput against closed-loop clients (log scale), 3 members on loopback",
            (FAMILY, 26),
        )
        .map_err(draw_error)?;
    let panels = root.split_evenly((2, 3));
    for (panel, workload) in panels.iter().zip(WORKLOADS) {
        throughput_panel(results, workload, panel)?;
    }
    if let Some(last) = panels.get(WORKLOADS.len()) {
        legend_panel(last, results)?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))
}

fn throughput_panel(
    results: &Results,
    workload: &str,
    panel: &DrawingArea<BitMapBackend<'_>, Shift>,
) -> anyhow::Result<()> {
    let clients = results.client_counts();
    let series: Vec<Series> = systems()
        .into_iter()
        .map(|(system, color)| {
            let points = clients
                .iter()
                .filter_map(|&c| {
                    let run = results.chosen(system, workload, c)?;
                    Some(((c as f64).log2(), run.report.throughput_per_second))
                })
                .collect();
            (system, color, points)
        })
        .collect();
    let y_max = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.15;
    let x_max = clients
        .last()
        .map_or(8.0, |&c| (c as f64).log2().ceil().max(1.0));
    let mut chart = ChartBuilder::on(panel)
        .caption(workload, (FAMILY, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.3f64..x_max + 0.3, 0f64..y_max)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("clients")
        .y_desc("requests/s")
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&|x| format!("{:.0}", 2f64.powf(x.round())))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style((FAMILY, 14))
        .draw()
        .map_err(draw_error)?;
    for (system, color, points) in series {
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(draw_error)?
            .label(system)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(draw_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FAMILY, 16))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_error)?;
    Ok(())
}

/// The sixth panel of the throughput plot: what the lines are.
fn legend_panel(
    panel: &DrawingArea<BitMapBackend<'_>, Shift>,
    results: &Results,
) -> anyhow::Result<()> {
    let lines = [
        format!("{BASELINE} (blue) and {CANDIDATE} (red)"),
        "each point: the run with the median".into(),
        "throughput over the rounds".into(),
        format!(
            "rounds per system: {}",
            results.setting("rounds").unwrap_or("?")
        ),
        format!(
            "measured for {} s per run",
            results.setting("duration_seconds").unwrap_or("?")
        ),
    ];
    for (i, line) in lines.iter().enumerate() {
        panel
            .draw(&Text::new(
                line.clone(),
                (30, 60 + 30 * i as i32),
                (FAMILY, 18).into_font(),
            ))
            .map_err(draw_error)?;
    }
    Ok(())
}

/// Latency distributions of `workload`, one panel per client count. Returns false (and draws
/// nothing) if no run has a latency ladder.
fn latency_cdf(results: &Results, workload: &str, path: &Path) -> anyhow::Result<bool> {
    let clients = results.client_counts();
    let ladders: Vec<(usize, Vec<Series>)> = clients
        .iter()
        .map(|&c| {
            let series = systems()
                .into_iter()
                .filter_map(|(system, color)| {
                    let run = results.chosen(system, workload, c)?;
                    let points: Vec<(f64, f64)> = run
                        .report
                        .latency_us_by_quantile
                        .iter()
                        .map(|&(q, us)| (us.max(1) as f64 / 1e3, q))
                        .collect();
                    (!points.is_empty()).then_some((system, color, points))
                })
                .collect();
            (c, series)
        })
        .collect();
    if ladders.iter().all(|(_, series)| series.is_empty()) {
        return Ok(false);
    }
    let root = BitMapBackend::new(path, (1400, 950)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let root = root
        .titled(
            &format!("{workload}: latency distribution (fraction of requests ≤ x)"),
            (FAMILY, 26),
        )
        .map_err(draw_error)?;
    let columns = 2;
    let rows = ladders.len().div_ceil(columns).max(1);
    let panels = root.split_evenly((rows, columns));
    for (panel, (clients, series)) in panels.iter().zip(&ladders) {
        let (lo, hi) = series
            .iter()
            .flat_map(|(_, _, points)| points.iter().map(|p| p.0))
            .fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
        if lo > hi {
            continue;
        }
        let (lo, hi) = (lo / 1.3, (hi * 1.3).max(lo * 2.0));
        let title = if *clients == 1 {
            "1 client".to_string()
        } else {
            format!("{clients} clients")
        };
        let mut chart = ChartBuilder::on(panel)
            .caption(title, (FAMILY, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d((lo..hi).log_scale(), 0f64..1.0)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_desc("latency (ms, log scale)")
            .y_desc("fraction ≤ x")
            .x_labels(8)
            .light_line_style(WHITE)
            .x_label_formatter(&|x| format_ms(*x))
            .label_style((FAMILY, 14))
            .draw()
            .map_err(draw_error)?;
        for (system, color, points) in series {
            let color = *color;
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(draw_error)?
                .label(*system)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FAMILY, 16))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(draw_error)?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// The failover times of each system as a distribution, with the target drawn in.
fn failover(results: &Results, path: &Path) -> anyhow::Result<()> {
    let series: Vec<Series> = systems()
        .into_iter()
        .filter_map(|(system, color)| {
            let mut times = failover_ms(results, system)?;
            times.sort_by(f64::total_cmp);
            let n = times.len() as f64;
            let points = times
                .iter()
                .enumerate()
                .map(|(i, &ms)| (ms, (i + 1) as f64 / n))
                .collect();
            Some((system, color, points))
        })
        .collect();
    let x_max = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|p| p.0))
        .fold(FAILOVER_P99_MS_MAX, f64::max)
        * 1.1;
    let root = BitMapBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Failover: kill -9 of the leader to the first successful write",
            (FAMILY, 24),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_max, 0f64..1.05)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("milliseconds")
        .y_desc("fraction of trials ≤ x")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style((FAMILY, 14))
        .draw()
        .map_err(draw_error)?;
    chart
        .draw_series(LineSeries::new(
            vec![(FAILOVER_P99_MS_MAX, 0.0), (FAILOVER_P99_MS_MAX, 1.05)],
            TARGET_COLOR.stroke_width(1),
        ))
        .map_err(draw_error)?
        .label(format!("target: p99 ≤ {FAILOVER_P99_MS_MAX:.0} ms"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], TARGET_COLOR));
    for (system, color, points) in series {
        // An empirical distribution is a staircase: each trial lifts it by 1/n.
        let mut steps = Vec::with_capacity(points.len() * 2 + 1);
        let mut below = 0.0;
        for &(ms, fraction) in &points {
            steps.push((ms, below));
            steps.push((ms, fraction));
            below = fraction;
        }
        chart
            .draw_series(LineSeries::new(steps, color.stroke_width(2)))
            .map_err(draw_error)?
            .label(format!("{system} ({} trials)", points.len()))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(draw_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FAMILY, 16))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_error)?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))
}

/// A tick label in milliseconds: 0.25, 1, 2.5, 12, 300.
fn format_ms(ms: f64) -> String {
    if ms >= 10.0 || (ms >= 1.0 && (ms - ms.round()).abs() < 1e-9) {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// plotters' errors borrow nothing but are generic over the backend; keep their message.
fn draw_error<E: std::error::Error + Send + Sync>(
    e: plotters::drawing::DrawingAreaErrorKind<E>,
) -> anyhow::Error {
    anyhow!("drawing a plot: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels() {
        assert_eq!(format_ms(0.254), "0.25");
        assert_eq!(format_ms(1.0), "1");
        assert_eq!(format_ms(2.5), "2.5");
        assert_eq!(format_ms(12.4), "12");
        assert_eq!(latency_png("get"), "latency-cdf-get.png");
    }
}
