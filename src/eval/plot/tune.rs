//! The figure of a closed-loop tune: each trial's objective statistic with
//! the interval its paired repeats allow, marked kept or not, and the
//! best-so-far line (the incumbent after each trial). Pure: points in, SVG
//! text out; the caller writes the file.

use super::style::FONT;
use anyhow::Result;
use plotters::backend::SVGBackend;
use plotters::prelude::*;

/// One trial as the figure shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TunePoint {
    /// 1-based trial number.
    pub trial: usize,
    /// The candidate's statistic (median over its repeats); NaN when it was never measured.
    pub value: f64,
    /// The candidate's statistic at the ends of the improvement's 95 % interval, low to high; NaN when none.
    pub interval: (f64, f64),
    /// The incumbent's statistic after the trial (best so far).
    pub best: f64,
    /// Whether the candidate became the incumbent.
    pub kept: bool,
}

const KEPT: RGBColor = RGBColor(0x00, 0x9e, 0x73);
const NOT_KEPT: RGBColor = RGBColor(0xd5, 0x5e, 0x00);
const BEST: RGBColor = RGBColor(0x00, 0x72, 0xb2);

/// The y range over every finite figure, padded; (0, 1) when there is none.
fn y_range(points: &[TunePoint]) -> (f64, f64) {
    let all = points.iter().flat_map(|p| [p.value, p.interval.0, p.interval.1, p.best]).filter(|v| v.is_finite());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.02).max(1e-9);
    (lo - pad, hi + pad)
}

/// The SVG of a tune: `title` on top, `y_label` (the statistic and its unit) on the y axis.
pub fn render_tune_svg(points: &[TunePoint], title: &str, y_label: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let (lo, hi) = y_range(points);
        let n = points.iter().map(|p| p.trial).max().unwrap_or(1);
        let mut chart = ChartBuilder::on(&root).caption(title, (FONT, 20)).margin(14).x_label_area_size(40).y_label_area_size(70).build_cartesian_2d(0.5f64..(n as f64 + 0.5), lo..hi)?;
        chart.configure_mesh().x_desc("trial").y_desc(y_label).x_labels(n.min(20)).x_label_formatter(&|x| format!("{x:.0}")).label_style((FONT, 13)).draw()?;
        let measured: Vec<&TunePoint> = points.iter().filter(|p| p.value.is_finite()).collect();
        for p in measured.iter().filter(|p| p.interval.0.is_finite() && p.interval.1.is_finite()) {
            let c = if p.kept { KEPT } else { NOT_KEPT };
            chart.draw_series(std::iter::once(PathElement::new(vec![(p.trial as f64, p.interval.0), (p.trial as f64, p.interval.1)], c.stroke_width(2))))?;
        }
        chart
            .draw_series(measured.iter().filter(|p| p.kept).map(|p| Circle::new((p.trial as f64, p.value), 5, KEPT.filled())))?
            .label("candidate kept (95 % CI)")
            .legend(|(x, y)| Circle::new((x + 8, y), 5, KEPT.filled()));
        chart
            .draw_series(measured.iter().filter(|p| !p.kept).map(|p| Circle::new((p.trial as f64, p.value), 5, NOT_KEPT.stroke_width(2))))?
            .label("candidate rolled back (95 % CI)")
            .legend(|(x, y)| Circle::new((x + 8, y), 5, NOT_KEPT.stroke_width(2)));
        let best: Vec<(f64, f64)> = points.iter().filter(|p| p.best.is_finite()).map(|p| (p.trial as f64, p.best)).collect();
        chart.draw_series(LineSeries::new(best, BEST.stroke_width(2)))?.label("best so far (incumbent)").legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BEST.stroke_width(2)));
        chart.configure_series_labels().background_style(WHITE.mix(0.9)).border_style(BLACK).label_font((FONT, 13)).draw()?;
        root.present()?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tune_figure_draws_every_measured_trial_and_the_best_so_far() {
        let pts = vec![
            TunePoint { trial: 1, value: 12.0, interval: (11.0, 13.5), best: 10.0, kept: false },
            TunePoint { trial: 2, value: f64::NAN, interval: (f64::NAN, f64::NAN), best: 10.0, kept: false },
            TunePoint { trial: 3, value: 7.0, interval: (6.5, 7.6), best: 7.0, kept: true },
        ];
        let svg = render_tune_svg(&pts, "tune: p99 of ./probe", "p99 (ms)").unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for s in ["tune: p99 of ./probe", "p99 (ms)", "best so far", "rolled back", "kept"] {
            assert!(svg.contains(s), "missing {s:?}");
        }
        assert_eq!(svg.matches("<circle").count(), 2 + 2, "two measured trials and two legend marks");
        assert_eq!(y_range(&[]), (0.0, 1.0));
    }
}
