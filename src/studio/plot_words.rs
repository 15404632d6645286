//! Plots in words. To a screen reader a plot is a blank picture unless it is labelled: each of
//! the studio's plots is labelled (through AccessKit) with what it shows, curve by curve.

/// One curve of a plot: its name and its points (x, y).
pub type Curve<'a> = (&'a str, &'a [[f64; 2]]);

/// What a plot called `title` shows: for each curve, its last value and where it is (`x_name`
/// and the x, "step 1200" or "bar 12.5"), and the range of its values; "no points yet" for a
/// curve without any. Numbers keep three significant digits.
pub fn describe(title: &str, x_name: &str, curves: &[Curve]) -> String {
    let parts: Vec<String> = curves
        .iter()
        .map(|(name, points)| {
            let Some(&[x, y]) = points.last() else {
                return format!("{name}: no points yet");
            };
            let (low, high) = points
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |r, p| {
                    (r.0.min(p[1]), r.1.max(p[1]))
                });
            let (y, x) = (number(y), position(x));
            match points.len() {
                1 => format!("{name} {y} at {x_name} {x}"),
                _ => format!(
                    "{name} {y} at {x_name} {x} (from {} to {})",
                    number(low),
                    number(high)
                ),
            }
        })
        .collect();
    format!("{title} (plot): {}", parts.join("; "))
}

/// A value with three significant digits (0.0431, 12.3; whole above 1000: 1234), as a reader
/// says it.
pub fn number(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let decimals = |v: f64| (2 - v.abs().log10().floor() as i32).clamp(0, 8) as usize;
    let d = decimals(v);
    // Rounding may carry into the next power of ten (0.9996 is 1.00, not 1.000).
    let rounded: f64 = format!("{v:.d$}").parse().unwrap_or(v);
    let d = decimals(rounded).min(d);
    format!("{v:.d$}")
}

/// An x: whole where it is (steps), else to one decimal (bars).
fn position(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plot_is_said_curve_by_curve() {
        let train = [[0.0, 0.68], [600.0, 0.0512], [1200.0, 0.04311]];
        let valid = [[1000.0, 0.0452]];
        let said = describe(
            "Reconstruction BCE per cell",
            "step",
            &[("train", &train), ("validation", &valid), ("KL", &[])],
        );
        assert_eq!(
            said,
            "Reconstruction BCE per cell (plot): train 0.0431 at step 1200 (from 0.0431 to \
             0.680); validation 0.0452 at step 1000; KL: no points yet"
        );
    }

    #[test]
    fn numbers_keep_three_significant_digits() {
        let said: Vec<String> = [
            0.0,
            1234.4,
            12.345,
            0.5,
            -0.00012345,
            f64::NAN,
            0.9996,
            99.97,
        ]
        .into_iter()
        .map(number)
        .collect();
        assert_eq!(
            said,
            [
                "0",
                "1234",
                "12.3",
                "0.500",
                "-0.000123",
                "NaN",
                "1.00",
                "100"
            ]
        );
        assert_eq!(
            (position(12.0), position(12.5)),
            ("12".into(), "12.5".into())
        );
    }
}
