//! SVG figures of evaluation results, as pure functions from numbers to
//! SVG text (the caller writes the file).
//!
//! Drawn with plotters' `SVGBackend::with_string`. plotters is built with
//! default features off, so it has no font engine (no `ttf`/`ab_glyph`); that
//! is fine for SVG: the backend writes every label as an SVG `<text>`
//! element and leaves glyph rendering to the viewer, and plotters lays text
//! out with its built-in estimate of text width (0.7 em a character). Labels
//! may therefore sit a few pixels off where a real font is narrower or wider,
//! but nothing is missing.
//!
//! Output is deterministic: the same rows and title give the same bytes,
//! so rendered figures can be committed and diffed.

use super::stats::percentile;
use super::summary::SummaryRow;
use anyhow::Result;
use plotters::backend::SVGBackend;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Colour of the baseline arm (neutral grey).
const BASELINE_COLOR: RGBColor = RGBColor(0x99, 0x99, 0x99);
/// Colour of the tuned arm (blue).
const TUNED_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const FONT: &str = "sans-serif";

/// Line colours of the arms in [`render_distributions_svg`], cycled: the
/// Okabe–Ito palette, distinguishable with the common colour-vision
/// deficiencies (plotters' `Palette99` starts with red next to green).
const ARM_COLORS: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xb2),
    RGBColor(0xe6, 0x9f, 0x00),
    RGBColor(0x00, 0x9e, 0x73),
    RGBColor(0xcc, 0x79, 0xa7),
    RGBColor(0x56, 0xb4, 0xe9),
    RGBColor(0xd5, 0x5e, 0x00),
    RGBColor(0x00, 0x00, 0x00),
];

/// Width of one workload's panel in [`render_svg`], in pixels.
const PANEL_WIDTH: u32 = 240;

/// Renders baseline vs tuned p95 latency for each row (workloads and the
/// `overall` row) as an SVG document.
///
/// One panel per row, each with its own millisecond y axis, because
/// workloads can differ by orders of magnitude and a shared axis would flatten
/// the fast ones. In each panel: a grey baseline bar and a blue tuned bar
/// (the median p95 across trials, value printed above), and above them the
/// improvement with its 95 % bootstrap interval. A legend sits under the
/// title. Values that are not finite are left out rather than drawn as zero.
pub fn render_svg(rows: &[SummaryRow], title: &str) -> Result<String> {
    let width = (PANEL_WIDTH * rows.len().max(1) as u32).max(640);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, 440)).into_drawing_area();
        root.fill(&WHITE)?;
        let body = root.titled(title, (FONT, 22))?;
        let (legend, body) = body.split_vertically(28);
        draw_legend(&legend, &[("baseline p95", BASELINE_COLOR), ("tuned p95", TUNED_COLOR)])?;
        if rows.is_empty() {
            body.draw(&Text::new("no results", (20, 20), (FONT, 16)))?;
        }
        for (row, panel) in rows.iter().zip(body.split_evenly((1, rows.len().max(1)))) {
            draw_row_panel(&panel, row)?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// Draws colour swatches with labels, left to right, in a strip.
fn draw_legend(area: &DrawingArea<SVGBackend<'_>, Shift>, entries: &[(&str, RGBColor)]) -> Result<()> {
    let mut x = 60;
    for (label, color) in entries {
        area.draw(&Rectangle::new([(x, 8), (x + 14, 22)], color.filled()))?;
        area.draw(&Text::new(
            label.to_string(),
            (x + 20, 15),
            TextStyle::from((FONT, 14)).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        x += 30 + 9 * label.len() as i32;
    }
    Ok(())
}

/// `+12.34 %`, with an explicit sign; `NaN` for an undefined value.
fn signed_pct(v: f64) -> String {
    if v.is_finite() { format!("{v:+.2} %") } else { "NaN".to_string() }
}

/// One workload's panel: two bars at x = 0 (baseline) and x = 1 (tuned).
fn draw_row_panel(area: &DrawingArea<SVGBackend<'_>, Shift>, row: &SummaryRow) -> Result<()> {
    let bars = [(0.0, row.baseline_p95_ms, BASELINE_COLOR), (1.0, row.tuned_p95_ms, TUNED_COLOR)];
    let top = bars.iter().map(|b| b.1).filter(|v| v.is_finite() && *v > 0.0).fold(0.0, f64::max);
    let top = if top > 0.0 { top } else { 1.0 };
    // Head-room above the bars for the value labels and the CI annotation.
    let y_max = top * 1.35;

    let mut chart = ChartBuilder::on(area)
        .caption(&row.workload, (FONT, 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(58)
        .build_cartesian_2d(-0.5f64..1.5f64, 0f64..y_max)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        // On -0.5..1.5 the two key points plotters picks are 0 and 1: the bars.
        .x_labels(2)
        .x_label_formatter(&|x| {
            if x.abs() < 1e-9 {
                "baseline".to_string()
            } else if (x - 1.0).abs() < 1e-9 {
                "tuned".to_string()
            } else {
                String::new()
            }
        })
        .y_desc("p95 latency (ms)")
        .draw()?;

    let drawn = bars.iter().filter(|b| b.1.is_finite() && b.1 >= 0.0);
    chart.draw_series(
        drawn.clone().map(|&(x, v, color)| Rectangle::new([(x - 0.3, 0.0), (x + 0.3, v)], color.filled())),
    )?;
    let value_style = TextStyle::from((FONT, 12)).pos(Pos::new(HPos::Center, VPos::Bottom));
    chart.draw_series(drawn.map(|&(x, v, _)| Text::new(format!("{v:.3}"), (x, v), value_style.clone())))?;

    let note_style = TextStyle::from((FONT, 13)).pos(Pos::new(HPos::Center, VPos::Top));
    let ci = if row.ci95_low_pct.is_finite() && row.ci95_high_pct.is_finite() {
        format!("95% CI [{:+.2}, {:+.2}] %", row.ci95_low_pct, row.ci95_high_pct)
    } else {
        "95% CI: n/a".to_string()
    };
    chart.draw_series([
        Text::new(format!("p95 improvement {}", signed_pct(row.improvement_pct)), (0.5, y_max), note_style.clone()),
        Text::new(ci, (0.5, y_max * 0.93), note_style.clone()),
        Text::new(format!("{} trials", row.trials), (0.5, y_max * 0.86), note_style),
    ])?;
    Ok(())
}

/// Largest number of points per curve in [`render_distributions_svg`].
const MAX_CURVE_POINTS: usize = 1000;

/// Marked percentiles of each arm in [`render_distributions_svg`].
const MARKED: [f64; 3] = [50.0, 95.0, 99.0];

/// The empirical CDF of `samples` as a step line: for the sorted values
/// `x[0..n]`, the fraction of samples `≤ x` jumps from `i/n` to `(i+1)/n` at
/// `x[i]`. Above [`MAX_CURVE_POINTS`] samples the curve is the quantile
/// function at `MAX_CURVE_POINTS` evenly spaced probabilities instead, which
/// looks the same at figure resolution and keeps the SVG small.
fn ecdf_points(samples: &[f64]) -> Vec<(f64, f64)> {
    let n = samples.len();
    if n == 0 {
        return Vec::new();
    }
    if n > MAX_CURVE_POINTS {
        return (0..=MAX_CURVE_POINTS)
            .map(|k| {
                let p = k as f64 / MAX_CURVE_POINTS as f64;
                (percentile(samples, p * 100.0), p)
            })
            .collect();
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut pts = Vec::with_capacity(2 * n);
    for (i, &x) in sorted.iter().enumerate() {
        pts.push((x, i as f64 / n as f64));
        pts.push((x, (i + 1) as f64 / n as f64));
    }
    pts
}

/// Renders each arm's latency distribution as an empirical CDF (x: latency
/// in ms, y: fraction of requests at most that slow), one coloured step line
/// per arm, with the arm's p50, p95 and p99 marked on its curve and printed
/// in the legend.
///
/// `arms` are `(name, latency samples in ms)`; an arm with no samples is
/// listed in the legend as such and not drawn. Non-finite samples are
/// assumed absent (they are measurements). The x axis spans the smallest to
/// the largest sample over all arms, so the full tail is shown.
pub fn render_distributions_svg(arms: &[(String, Vec<f64>)], title: &str) -> Result<String> {
    let all = arms.iter().flat_map(|(_, v)| v.iter().copied());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (lo, hi) = match (lo.is_finite(), hi.is_finite()) {
        (true, true) if hi > lo => (lo, hi),
        (true, true) => (lo - 0.5, hi + 0.5),
        _ => (0.0, 1.0),
    };
    let pad = (hi - lo) * 0.03;
    let x_range = (lo - pad).max(if lo >= 0.0 { 0.0 } else { f64::NEG_INFINITY })..hi + pad;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(x_range, 0f64..1.0f64)?;
        chart.configure_mesh().x_desc("latency (ms)").y_desc("fraction of requests ≤ latency").draw()?;

        for (i, (name, samples)) in arms.iter().enumerate() {
            let color = ARM_COLORS[i % ARM_COLORS.len()];
            if samples.is_empty() {
                chart
                    .draw_series(std::iter::empty::<Circle<(f64, f64), u32>>())?
                    .label(format!("{name}: no samples"))
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
                continue;
            }
            let marks: Vec<(f64, f64)> = MARKED.iter().map(|&p| (percentile(samples, p), p / 100.0)).collect();
            let label = format!(
                "{name} (n={}): p50 {:.3}, p95 {:.3}, p99 {:.3} ms",
                samples.len(),
                marks[0].0,
                marks[1].0,
                marks[2].0
            );
            chart
                .draw_series(LineSeries::new(ecdf_points(samples), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
            chart.draw_series(marks.iter().map(|&(x, y)| Circle::new((x, y), 4, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::summary::{TrialResult, summarize};

    fn rows() -> Vec<SummaryRow> {
        let trials: Vec<TrialResult> = (0..6)
            .flat_map(|i| {
                let j = i as f64 * 0.1;
                [
                    TrialResult {
                        workload: "web-keepalive".into(),
                        trial: i,
                        baseline_p50_ms: 5.0 + j,
                        baseline_p95_ms: 10.0 + j,
                        tuned_p50_ms: 4.0 + j,
                        tuned_p95_ms: 8.0 + j,
                    },
                    TrialResult {
                        workload: "db-fsync".into(),
                        trial: i,
                        baseline_p50_ms: 0.05,
                        baseline_p95_ms: 0.1 + j / 100.0,
                        tuned_p50_ms: 0.05,
                        tuned_p95_ms: 0.1 + j / 90.0,
                    },
                ]
            })
            .collect();
        summarize(&trials, 5)
    }

    #[test]
    fn summary_svg_names_every_workload_and_the_ci() {
        let svg = render_svg(&rows(), "p95 latency: baseline vs tuned").unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.trim_end().ends_with("</svg>"));
        for name in ["web-keepalive", "db-fsync", "overall", "baseline", "tuned", "95% CI", "p95 latency (ms)"] {
            assert!(svg.contains(name), "missing {name:?}");
        }
        assert!(svg.contains("p95 latency: baseline vs tuned"));
    }

    #[test]
    fn summary_svg_is_deterministic() {
        let a = render_svg(&rows(), "t").unwrap();
        let b = render_svg(&rows(), "t").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn summary_svg_escapes_names_and_survives_nan() {
        let mut r = rows();
        r[0].workload = "a<b&c".into();
        r[1].tuned_p95_ms = f64::NAN;
        r[1].ci95_low_pct = f64::NAN;
        let svg = render_svg(&r, "t").unwrap();
        assert!(svg.contains("a&lt;b&amp;c"));
        assert!(svg.contains("95% CI: n/a"));
        assert!(render_svg(&[], "empty").unwrap().contains("no results"));
    }

    #[test]
    fn distributions_svg_has_each_arm_and_its_percentiles() {
        let arms = vec![
            ("baseline".to_string(), (1..=100).map(f64::from).collect::<Vec<_>>()),
            ("tuned".to_string(), (1..=3000).map(|i| f64::from(i) / 40.0).collect()),
            ("idle".to_string(), Vec::new()),
        ];
        let svg = render_distributions_svg(&arms, "latency CDF").unwrap();
        assert!(svg.starts_with("<svg"));
        for needle in
            ["baseline (n=100)", "p95 95.050", "tuned (n=3000)", "idle: no samples", "latency (ms)", "latency CDF"]
        {
            assert!(svg.contains(needle), "missing {needle:?}");
        }
        assert_eq!(svg, render_distributions_svg(&arms, "latency CDF").unwrap());
        assert!(render_distributions_svg(&[], "nothing").unwrap().starts_with("<svg"));
    }

    #[test]
    fn ecdf_steps_and_downsamples() {
        assert_eq!(ecdf_points(&[2.0, 1.0]), [(1.0, 0.0), (1.0, 0.5), (2.0, 0.5), (2.0, 1.0)]);
        let big: Vec<f64> = (0..5000).map(f64::from).collect();
        let pts = ecdf_points(&big);
        assert_eq!(pts.len(), MAX_CURVE_POINTS + 1);
        assert_eq!(pts[0], (0.0, 0.0));
        assert_eq!(pts[MAX_CURVE_POINTS], (4999.0, 1.0));
    }
}
