//! The latency distribution of several arms as empirical CDFs, one line
//! style per arm and the legend beside the data, never over it.

use super::style::{self, FONT, arm_style, latency_label};
use crate::eval::stats::percentile;
use anyhow::Result;
use plotters::backend::SVGBackend;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Largest number of points per curve in [`render_distributions_svg`].
const MAX_CURVE_POINTS: usize = 1000;

/// Marked percentiles of each arm in [`render_distributions_svg`].
const MARKED: [f64; 3] = [50.0, 95.0, 99.0];

/// Width of the plot (axes and curves), in pixels; the legend is to its right.
const CHART_WIDTH: u32 = 680;
/// Width of the legend column, in pixels.
const LEGEND_WIDTH: u32 = 440;
/// Height of the figure, and of one legend row, in pixels.
const HEIGHT: u32 = 520;
const LEGEND_ROW: i32 = 34;

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

/// The x range shown: the smallest to the largest sample over all arms with
/// a little padding, never below 0 for latencies.
fn x_range(arms: &[(String, Vec<f64>)]) -> std::ops::Range<f64> {
    let all = arms.iter().flat_map(|(_, v)| v.iter().copied());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (lo, hi) = match (lo.is_finite(), hi.is_finite()) {
        (true, true) if hi > lo => (lo, hi),
        (true, true) => (lo - 0.5, hi + 0.5),
        _ => (0.0, 1.0),
    };
    let pad = (hi - lo) * 0.03;
    (lo - pad).max(if lo >= 0.0 { 0.0 } else { f64::NEG_INFINITY })..hi + pad
}

/// An arm's legend text: its name, sample count and marked percentiles.
fn legend_text(name: &str, samples: &[f64]) -> String {
    if samples.is_empty() {
        return format!("{name}: no samples");
    }
    let p = |q| latency_label(percentile(samples, q));
    format!("{name} (n={}): p50 {}, p95 {}, p99 {}", samples.len(), p(MARKED[0]), p(MARKED[1]), p(MARKED[2]))
}

/// Renders each arm's latency distribution as an empirical CDF (x: latency,
/// y: fraction of requests at most that slow), one colour and dash pattern
/// per arm, with the arm's p50, p95 and p99 marked on its curve and printed
/// in the legend, which sits in its own column right of the plot.
///
/// `arms` are `(name, latency samples in ms)`; an arm with no samples is
/// listed in the legend as such and not drawn. Non-finite samples are
/// assumed absent (they are measurements). The x axis spans the smallest to
/// the largest sample over all arms, so the full tail is shown, in a unit
/// chosen by its magnitude.
pub fn render_distributions_svg(arms: &[(String, Vec<f64>)], title: &str) -> Result<String> {
    let range = x_range(arms);
    let unit = style::unit_for(range.end);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (CHART_WIDTH + LEGEND_WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let body = root.titled(title, (FONT, 20))?;
        let (plot, legend) = body.split_horizontally(CHART_WIDTH);
        let mut chart = ChartBuilder::on(&plot).margin(12).x_label_area_size(40).y_label_area_size(56).build_cartesian_2d(range, 0f64..1.0f64)?;
        chart
            .configure_mesh()
            .x_label_formatter(&|x| unit.number(*x))
            .x_desc(format!("latency ({})", unit.name()))
            .y_desc("fraction of requests ≤ latency")
            .draw()?;
        for (i, (_, samples)) in arms.iter().enumerate() {
            let (color, dash) = arm_style(i);
            if samples.is_empty() {
                continue;
            }
            let line = color.stroke_width(2);
            match dash {
                None => chart.draw_series(LineSeries::new(ecdf_points(samples), line))?,
                Some((on, off)) => chart.draw_series(DashedLineSeries::new(ecdf_points(samples), on, off, line))?,
            };
            let marks = MARKED.iter().map(|&p| Circle::new((percentile(samples, p), p / 100.0), 4, color.filled()));
            chart.draw_series(marks)?;
        }
        draw_legend(&legend, arms)?;
        root.present()?;
    }
    Ok(svg)
}

/// One row per arm in the legend column: a sample of its line, then its text.
fn draw_legend(area: &DrawingArea<SVGBackend<'_>, Shift>, arms: &[(String, Vec<f64>)]) -> Result<()> {
    let text = TextStyle::from((FONT, 12)).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (name, samples)) in arms.iter().enumerate() {
        let (color, dash) = arm_style(i);
        let y = 24 + LEGEND_ROW * i as i32;
        let line = color.stroke_width(2);
        let sample = [(8, y), (44, y)];
        match dash {
            None => area.draw(&PathElement::new(sample, line))?,
            Some((on, off)) => area.draw(&DashedPathElement::new(sample, on, off, line))?,
        }
        area.draw(&Text::new(legend_text(name, samples), (52, y), text.clone()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nine_arms() -> Vec<(String, Vec<f64>)> {
        let names = ["start", "start (A/A)", "semantos", "tuned:network-latency", "tuned:network-throughput", "grid x=8M", "grid x=16M", "grid x=32M", "grid x=64M"];
        names.iter().enumerate().map(|(i, n)| (n.to_string(), (1..=200).map(|k| f64::from(k) * 0.01 * (i + 1) as f64).collect())).collect()
    }

    /// (stroke colour, dash array) of every polyline/path drawn for a curve.
    fn curve_styles(svg: &str) -> Vec<String> {
        svg.split("<polyline").skip(1).filter(|p| p.contains("stroke-width=\"2\"")).map(|p| p.split("/>").next().unwrap_or("").split("points").next().unwrap_or("").to_string()).collect()
    }

    #[test]
    fn nine_arms_get_nine_different_colours() {
        // Before: a 7-colour cycle gave `grid …=32M` the blue of `start`
        // and `grid …=64M` the orange of `start (A/A)`.
        let arms = nine_arms();
        let svg = render_distributions_svg(&arms, "t").unwrap();
        let colours: std::collections::BTreeSet<String> =
            curve_styles(&svg).iter().filter_map(|s| s.split("stroke=\"").nth(1).map(|c| c[..7].to_string())).collect();
        assert_eq!(colours.len(), arms.len(), "{colours:?}");
    }

    #[test]
    fn the_legend_sits_right_of_the_plot_area() {
        // Before: the legend box was drawn inside the plot, over the curves.
        let svg = render_distributions_svg(&nine_arms(), "t").unwrap();
        let labels: Vec<f64> = svg
            .split("<text")
            .skip(1)
            .filter(|t| t.contains("(n="))
            .map(|t| t.split("x=\"").nth(1).and_then(|x| x.split('"').next()).and_then(|x| x.parse().ok()).expect("x attribute"))
            .collect();
        assert_eq!(labels.len(), 9);
        assert!(labels.iter().all(|x| *x > CHART_WIDTH as f64), "{labels:?}");
    }

    #[test]
    fn distributions_svg_has_each_arm_and_its_percentiles_in_readable_units() {
        let arms = vec![
            ("baseline".to_string(), (1..=100).map(f64::from).collect::<Vec<_>>()),
            ("tuned".to_string(), (1..=3000).map(|i| f64::from(i) / 40.0).collect()),
            ("idle".to_string(), Vec::new()),
        ];
        let svg = render_distributions_svg(&arms, "latency CDF").unwrap();
        assert!(svg.starts_with("<svg"));
        for needle in ["baseline (n=100)", "p95 95.0 ms", "tuned (n=3000)", "idle: no samples", "latency (ms)", "latency CDF"] {
            assert!(svg.contains(needle), "missing {needle:?}");
        }
        // Before: "p95 95.050" — three decimals of a millisecond.
        assert!(!svg.contains("95.050"));
        assert_eq!(svg, render_distributions_svg(&arms, "latency CDF").unwrap());
        assert!(render_distributions_svg(&[], "nothing").unwrap().starts_with("<svg"));
        let fast = vec![("a".to_string(), vec![0.2, 0.3, 0.4])];
        assert!(render_distributions_svg(&fast, "t").unwrap().contains("latency (µs)"));
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
