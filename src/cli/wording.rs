//! Counts, durations and lists in words, as the commands print them.

/// How many bars `len` steps from the bar line `from` fill: "5 bars of 3/4", "4.5 bars of
/// 4/4", "6 bars" across a change of metre, or "a pickup and 5 bars of 3/4" from a pickup.
pub(crate) fn bars_of(meters: &[segue::meter::StepMeter], from: usize, len: usize) -> String {
    let map = segue::meter::BarMap::new(meters);
    // From a pickup: it, then the whole bars counted from the first (a pickup of one beat is
    // no whole bar of its own).
    if let Some(end) = (map.pickup_end()).filter(|&end| from < end && from + len > end) {
        return format!("a pickup and {}", bars_of(meters, end, from + len - end));
    }
    let bars = map.position((from + len) as f64) - map.position(from as f64);
    let bars = (bars * 100.0).round() / 100.0;
    let bars = format!("{bars} bar{}", if bars == 1.0 { "" } else { "s" });
    let meter = segue::meter::meter_at(meters, from);
    if meters
        .iter()
        .any(|m| m.step > from && m.step < from + len && m.meter != meter)
    {
        bars
    } else {
        format!("{bars} of {meter}")
    }
}

/// A duration as minutes and seconds, with the seconds exactly: "1:05 (65.20 s)".
pub(crate) fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02} ({seconds:.2} s)", s / 60, s % 60)
}

/// The pieces a run trains on and holds out, and what holding out none means.
pub(crate) fn pieces_said(pieces: usize, held_out: usize) -> String {
    let pieces = counted(pieces, "piece");
    if held_out == 0 {
        format!(
            "{pieces}, none held out (a composer needs two pieces for one to be held out): no \
             validation figures"
        )
    } else {
        format!("{pieces} and {held_out} held out for validation")
    }
}

/// `n` and the noun, plural but for one ("1 composer", "3 composers").
pub(crate) fn counted(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// `first`, then the `changes` after it: all of them up to four, else the first three and how
/// many more.
pub(crate) fn first_then(first: String, changes: &[String]) -> String {
    let shown = if changes.len() > 4 { 3 } else { changes.len() };
    match changes.len() - shown {
        _ if shown == 0 => first,
        0 => format!("{first}, then {}", changes.join(", ")),
        more => format!(
            "{first}, then {} and {more} more changes",
            changes[..shown].join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    /// "1 composer", "3 composers": what a training run says it trains on reads right for a
    /// folder of one composer.
    /// A span from a pickup says it apart from the whole bars that follow.
    #[test]
    fn bars_from_a_pickup_are_counted_after_it() {
        let meter = |step, numerator| segue::meter::StepMeter {
            step,
            meter: segue::midi::Meter {
                numerator,
                denominator: 4,
            },
        };
        let pickup = [meter(0, 1), meter(4, 3)];
        assert_eq!(super::bars_of(&pickup, 0, 64), "a pickup and 5 bars of 3/4");
        assert_eq!(super::bars_of(&pickup, 4, 60), "5 bars of 3/4");
        assert_eq!(super::bars_of(&[meter(0, 3)], 0, 60), "5 bars of 3/4");
    }

    #[test]
    fn counts_read_as_english() {
        assert_eq!(super::counted(1, "composer"), "1 composer");
        assert_eq!(super::counted(0, "composer"), "0 composers");
        assert_eq!(
            super::pieces_said(3, 1),
            "3 pieces and 1 held out for validation"
        );
        assert!(super::pieces_said(1, 0).starts_with("1 piece, none held out"));
    }
}
