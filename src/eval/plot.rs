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

mod ecdf;
mod style;
mod tune;

pub use ecdf::render_distributions_svg;
pub use style::latency_label;
pub use tune::{TunePoint, render_tune_svg};

use super::summary::{OVERALL, SummaryRow};
use anyhow::Result;
use plotters::backend::SVGBackend;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use style::{FONT, significant};

/// Colour of the baseline arm (neutral grey).
const BASELINE_COLOR: RGBColor = RGBColor(0x99, 0x99, 0x99);
/// Colour of a tuned bar whose improvement is significant (blue).
const TUNED_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
/// Colour of a tuned bar whose interval includes 0 (pale blue): the
/// difference may be noise, so it must not look like the significant ones.
const NOT_SIGNIFICANT_COLOR: RGBColor = RGBColor(0xc6, 0xdb, 0xef);
/// Colour of the interval whiskers (dark grey: apart from the black axes).
const WHISKER_COLOR: RGBColor = RGBColor(0x33, 0x33, 0x33);

/// Width of one workload's panel in [`render_svg`], in pixels.
const PANEL_WIDTH: u32 = 240;

/// Renders baseline vs tuned p95 latency for each row (workloads and the
/// `overall` row) as an SVG document; `source` says where the numbers come
/// from (for the reproduction: a simulated host) and is printed under the
/// figure, with what `overall` and the whiskers mean.
///
/// One panel per row, each with its own y axis, because workloads can
/// differ by orders of magnitude and a shared axis would flatten the fast
/// ones. In each panel: a grey baseline bar and a tuned bar (the median p95
/// across trials, value above it). The tuned bar carries an error bar: the
/// tuned p95 the 95 % paired-bootstrap interval of the improvement allows,
/// relative to the baseline. A tuned bar whose interval includes 0 is pale
/// and marked "not significant". Values that are not finite are left out
/// rather than drawn as zero.
pub fn render_svg(rows: &[SummaryRow], title: &str, source: &str) -> Result<String> {
    let width = (PANEL_WIDTH * rows.len().max(1) as u32).max(640);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let body = root.titled(title, (FONT, 22))?;
        let (legend, body) = body.split_vertically(28);
        let (body, notes) = body.split_vertically(body.dim_in_pixel().1 - 40);
        draw_legend(
            &legend,
            &[("baseline p95", BASELINE_COLOR), ("tuned p95", TUNED_COLOR), ("tuned p95, CI includes 0: not significant", NOT_SIGNIFICANT_COLOR)],
        )?;
        if rows.is_empty() {
            body.draw(&Text::new("no results", (20, 20), (FONT, 16)))?;
        }
        for (row, panel) in rows.iter().zip(body.split_evenly((1, rows.len().max(1)))) {
            draw_row_panel(&panel, row)?;
        }
        draw_notes(&notes, &footnotes(rows, source))?;
        root.present()?;
    }
    Ok(svg)
}

/// The lines under the summary figure: the data's source, what `overall`
/// is (when present) and what the whiskers show.
fn footnotes(rows: &[SummaryRow], source: &str) -> Vec<String> {
    let mut first = style::one_line(source);
    if rows.iter().any(|r| r.workload == OVERALL) {
        first.push_str(if first.is_empty() { "" } else { " · " });
        first.push_str("overall: geometric mean over the workloads of each trial's p95");
    }
    vec![first, "whiskers: 95 % paired-bootstrap CI of the p95 improvement, drawn on the tuned bar".into()]
}

/// Draws colour swatches with labels, left to right, in a strip.
fn draw_legend(area: &DrawingArea<SVGBackend<'_>, Shift>, entries: &[(&str, RGBColor)]) -> Result<()> {
    let mut x = 60;
    for (label, color) in entries {
        area.draw(&Rectangle::new([(x, 8), (x + 14, 22)], color.filled()))?;
        area.draw(&Rectangle::new([(x, 8), (x + 14, 22)], BASELINE_COLOR.stroke_width(1)))?;
        area.draw(&Text::new(label.to_string(), (x + 20, 15), TextStyle::from((FONT, 14)).pos(Pos::new(HPos::Left, VPos::Center))))?;
        x += 30 + 8 * label.len() as i32;
    }
    Ok(())
}

/// Draws one small line of text per note, left-aligned.
fn draw_notes(area: &DrawingArea<SVGBackend<'_>, Shift>, notes: &[String]) -> Result<()> {
    for (i, n) in notes.iter().enumerate() {
        area.draw(&Text::new(n.clone(), (12, 4 + 16 * i as i32), TextStyle::from((FONT, 12)).pos(Pos::new(HPos::Left, VPos::Top))))?;
    }
    Ok(())
}

/// `+12.3 %`, with an explicit sign; `n/a` for an undefined value.
fn signed_pct(v: f64) -> String {
    if v.is_finite() { format!("{v:+.1} %") } else { "n/a".to_string() }
}

/// The tuned p95 range the improvement's interval allows, relative to the
/// baseline (`improvement = (baseline − tuned) / baseline`), low to high.
fn tuned_interval(row: &SummaryRow) -> Option<(f64, f64)> {
    let ok = row.baseline_p95_ms.is_finite() && row.ci95_low_pct.is_finite() && row.ci95_high_pct.is_finite();
    ok.then(|| (row.baseline_p95_ms * (1.0 - row.ci95_high_pct / 100.0), row.baseline_p95_ms * (1.0 - row.ci95_low_pct / 100.0)))
}

/// One workload's panel: two bars at x = 0 (baseline) and x = 1 (tuned).
fn draw_row_panel(area: &DrawingArea<SVGBackend<'_>, Shift>, row: &SummaryRow) -> Result<()> {
    let sig = significant(row.ci95_low_pct, row.ci95_high_pct);
    let tuned_color = if sig { TUNED_COLOR } else { NOT_SIGNIFICANT_COLOR };
    let bars = [(0.0, row.baseline_p95_ms, BASELINE_COLOR), (1.0, row.tuned_p95_ms, tuned_color)];
    let whisker = tuned_interval(row);
    let tallest = bars.iter().map(|b| b.1).chain(whisker.map(|w| w.1)).filter(|v| v.is_finite() && *v > 0.0).fold(0.0, f64::max);
    let top = if tallest > 0.0 { tallest } else { 1.0 };
    // Head-room above the bars for the value labels and the improvement note.
    let y_max = top * 1.3;
    let unit = style::unit_for(top);

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
        .y_label_formatter(&|y| unit.number(*y))
        .y_desc(format!("p95 latency ({})", unit.name()))
        .draw()?;

    let drawn = bars.iter().filter(|b| b.1.is_finite() && b.1 >= 0.0);
    chart.draw_series(drawn.clone().map(|&(x, v, color)| Rectangle::new([(x - 0.3, 0.0), (x + 0.3, v)], color.filled())))?;
    if let Some((lo, hi)) = whisker {
        let (lo, hi) = (lo.max(0.0), hi.max(0.0));
        let ink = WHISKER_COLOR.stroke_width(1);
        chart.draw_series([
            PathElement::new(vec![(1.0, lo), (1.0, hi)], ink),
            PathElement::new(vec![(0.9, lo), (1.1, lo)], ink),
            PathElement::new(vec![(0.9, hi), (1.1, hi)], ink),
        ])?;
    }
    let value_style = TextStyle::from((FONT, 12)).pos(Pos::new(HPos::Right, VPos::Bottom));
    chart.draw_series(drawn.map(|&(x, v, _)| Text::new(latency_label(v), (x + 0.3, v), value_style.clone())))?;

    let note_style = TextStyle::from((FONT, 13)).pos(Pos::new(HPos::Center, VPos::Top));
    let verdict = if sig { String::new() } else { " (not significant)".to_string() };
    chart.draw_series([
        Text::new(format!("p95 improvement {}{verdict}", signed_pct(row.improvement_pct)), (0.5, y_max), note_style.clone()),
        Text::new(format!("{} trials", row.trials), (0.5, y_max * 0.93), note_style),
    ])?;
    Ok(())
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

    /// The `fill` colours of the rectangles in an SVG, in document order.
    fn fills(svg: &str) -> Vec<String> {
        svg.split("<rect").skip(1).filter_map(|r| r.split("fill=\"").nth(1).map(|f| f[..7].to_string())).collect()
    }

    #[test]
    fn summary_svg_names_every_workload_the_source_and_what_overall_is() {
        let svg = render_svg(&rows(), "p95 latency: baseline vs tuned", "simulated host (sandbox reproduction)").unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.trim_end().ends_with("</svg>"));
        for name in ["web-keepalive", "db-fsync", "overall", "baseline", "tuned", "p95 latency (", "simulated host", "geometric mean", "95 % paired-bootstrap CI"] {
            assert!(svg.contains(name), "missing {name:?}");
        }
        assert!(svg.contains("p95 latency: baseline vs tuned"));
        // Before: the interval was printed as "95% CI [..]" text instead of drawn.
        assert!(!svg.contains("95% CI ["), "the CI is drawn as whiskers, not printed");
    }

    #[test]
    fn the_ci_is_drawn_as_an_error_bar_on_every_tuned_bar() {
        let r = rows();
        let svg = render_svg(&r, "t", "s").unwrap();
        // Each panel with an interval draws one vertical whisker and two caps.
        let whiskers = svg.split("<polyline").skip(1).filter(|p| p.split("/>").next().unwrap_or("").contains("stroke=\"#333333\"")).count();
        assert_eq!(whiskers, 3 * r.len(), "whisker paths for {} panels", r.len());
        let (lo, hi) = tuned_interval(&r[0]).unwrap();
        assert!(lo <= r[0].tuned_p95_ms && r[0].tuned_p95_ms <= hi, "{lo} {} {hi}", r[0].tuned_p95_ms);
    }

    #[test]
    fn a_non_significant_result_is_drawn_unlike_a_significant_one() {
        // Before: batch +2.1 %, CI [−2.2, +7.9] had the same blue bar as a real improvement.
        let mut r = rows();
        r.truncate(1);
        r[0].improvement_pct = 2.1;
        r[0].ci95_low_pct = -2.2;
        r[0].ci95_high_pct = 7.9;
        let ns = render_svg(&r, "t", "s").unwrap();
        assert!(ns.contains("(not significant)"));
        r[0].ci95_low_pct = 1.0;
        let sig = render_svg(&r, "t", "s").unwrap();
        assert!(!sig.contains("(not significant)"));
        let pale = format!("#{:02X}{:02X}{:02X}", NOT_SIGNIFICANT_COLOR.0, NOT_SIGNIFICANT_COLOR.1, NOT_SIGNIFICANT_COLOR.2);
        let blue = format!("#{:02X}{:02X}{:02X}", TUNED_COLOR.0, TUNED_COLOR.1, TUNED_COLOR.2);
        // The legend shows both swatches; the bars differ.
        assert_eq!(fills(&ns).iter().filter(|f| **f == pale).count(), 2, "{:?}", fills(&ns));
        assert_eq!(fills(&sig).iter().filter(|f| **f == blue).count(), 2, "{:?}", fills(&sig));
    }

    #[test]
    fn summary_svg_is_deterministic() {
        let a = render_svg(&rows(), "t", "s").unwrap();
        let b = render_svg(&rows(), "t", "s").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn summary_svg_escapes_names_and_survives_nan() {
        let mut r = rows();
        r[0].workload = "a<b&c".into();
        r[1].tuned_p95_ms = f64::NAN;
        r[1].ci95_low_pct = f64::NAN;
        let svg = render_svg(&r, "t", "s").unwrap();
        assert!(svg.contains("a&lt;b&amp;c"));
        assert!(render_svg(&[], "empty", "s").unwrap().contains("no results"));
        assert!(!render_svg(&[], "empty", "s").unwrap().contains("geometric mean"), "no overall row, no overall note");
    }
}
