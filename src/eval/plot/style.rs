//! What every figure shares: the font, the arm palette and line styles, and
//! how a latency is printed (three significant digits, unit by magnitude).

use plotters::style::RGBColor;

/// Font family of every label (the viewer picks the face).
pub const FONT: &str = "sans-serif";

/// Distinct line colours of the arms, in arm order: the Okabe–Ito palette
/// (distinguishable with the common colour-vision deficiencies) then darker
/// and muted tones, twelve in all. plotters' `Palette99` starts with red next
/// to green, and a 7-colour cycle gave arm 8 the colour of arm 1.
pub const ARM_COLORS: [RGBColor; 12] = [
    RGBColor(0x00, 0x72, 0xb2),
    RGBColor(0xe6, 0x9f, 0x00),
    RGBColor(0x00, 0x9e, 0x73),
    RGBColor(0xcc, 0x79, 0xa7),
    RGBColor(0x56, 0xb4, 0xe9),
    RGBColor(0xd5, 0x5e, 0x00),
    RGBColor(0x00, 0x00, 0x00),
    RGBColor(0x88, 0x22, 0x55),
    RGBColor(0x11, 0x77, 0x33),
    RGBColor(0x99, 0x99, 0x33),
    RGBColor(0x66, 0x33, 0x99),
    RGBColor(0x88, 0x88, 0x88),
];

/// A line's dash pattern: `None` is solid, else (dash, gap) in pixels.
pub type Dash = Option<(u32, u32)>;

/// The dash patterns arms cycle through alongside the colours.
pub const DASHES: [Dash; 4] = [None, Some((8, 4)), Some((2, 3)), Some((14, 4))];

/// The colour and dash of arm `i`: colours cycle every 12 arms, and the dash
/// index is shifted by one at each cycle, so no two of the first 48 arms look
/// alike (with 12 or fewer, the colours alone differ).
pub fn arm_style(i: usize) -> (RGBColor, Dash) {
    (ARM_COLORS[i % ARM_COLORS.len()], DASHES[(i + i / ARM_COLORS.len()) % DASHES.len()])
}

/// Whether a 95 % interval of a difference excludes zero.
pub fn significant(low: f64, high: f64) -> bool {
    low.is_finite() && high.is_finite() && (low > 0.0 || high < 0.0)
}

/// One line of text: control characters become spaces.
pub fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>().trim().to_string()
}

/// The unit a latency axis is printed in, chosen by the largest value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds, below 1 ms.
    Micros,
    /// Milliseconds, from 1 ms to 1 s.
    Millis,
    /// Seconds, from 1 s.
    Seconds,
}

/// The unit for values up to `max_ms` milliseconds.
pub fn unit_for(max_ms: f64) -> Unit {
    if max_ms < 1.0 {
        Unit::Micros
    } else if max_ms < 1000.0 {
        Unit::Millis
    } else {
        Unit::Seconds
    }
}

impl Unit {
    /// Its symbol.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Micros => "µs",
            Unit::Millis => "ms",
            Unit::Seconds => "s",
        }
    }

    /// `ms` in this unit with three significant digits, without the unit.
    pub fn number(self, ms: f64) -> String {
        let v = match self {
            Unit::Micros => ms * 1000.0,
            Unit::Millis => ms,
            Unit::Seconds => ms / 1000.0,
        };
        three_digits(v)
    }
}

/// Three significant digits without trailing noise: 0.123, 1.23, 12.3, 123, 1230.
fn three_digits(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    let decimals = if a == 0.0 || a >= 100.0 { 0 } else if a >= 10.0 { 1 } else if a >= 1.0 { 2 } else { (2.0 - a.log10().floor()) as usize };
    format!("{v:.decimals$}")
}

/// A latency in milliseconds as people read it: `850 µs`, `12.3 ms`, `1.25 s`.
pub fn latency_label(ms: f64) -> String {
    if !ms.is_finite() {
        return "n/a".into();
    }
    let u = unit_for(ms.abs());
    format!("{} {}", u.number(ms), u.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_of_the_first_48_arms_share_colour_and_dash() {
        let styles: Vec<_> = (0..48).map(arm_style).map(|(c, d)| ((c.0, c.1, c.2), d)).collect();
        for i in 0..styles.len() {
            for j in 0..i {
                assert_ne!(styles[i], styles[j], "arms {j} and {i}");
            }
        }
        // Up to twelve arms, the colour alone tells them apart.
        let colours: std::collections::BTreeSet<_> = styles[..12].iter().map(|s| s.0).collect();
        assert_eq!(colours.len(), 12);
    }

    #[test]
    fn latencies_print_with_three_significant_digits_in_a_unit_by_magnitude() {
        assert_eq!(latency_label(0.85), "850 µs");
        assert_eq!(latency_label(0.0123), "12.3 µs");
        assert_eq!(latency_label(12.345), "12.3 ms");
        assert_eq!(latency_label(1.5), "1.50 ms");
        assert_eq!(latency_label(250.0), "250 ms");
        assert_eq!(latency_label(1250.0), "1.25 s");
        assert_eq!(latency_label(f64::NAN), "n/a");
        assert_eq!(Unit::Millis.number(0.5), "0.500");
    }

    #[test]
    fn significance_is_an_interval_that_excludes_zero() {
        assert!(!significant(-2.2, 7.9));
        assert!(significant(0.1, 7.9) && significant(-9.0, -0.5));
        assert!(!significant(f64::NAN, 1.0));
    }
}
