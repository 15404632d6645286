//! The metre map of a piece in roll steps, and the bars it lays out.
//!
//! A roll counts sixteenth notes; a bar of `n/d` lasts `n * 16 / d` of them (12 for 3/4 and
//! for 6/8, 20 for 5/4). A metre that MIDI files may hold but a bar of whole sixteenths cannot
//! (3/32) gives bars of fractional length, so bar starts are `f64` steps. A change of metre
//! starts a new bar, wherever it falls.

use crate::midi::Meter;

/// A change of metre at a roll step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StepMeter {
    pub step: usize,
    pub meter: Meter,
}

/// A bar of a piece.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Where it starts, in steps.
    pub start: f64,
    /// Its number, counting from 1.
    pub number: usize,
    /// The metre it is in.
    pub meter: Meter,
}

impl Meter {
    /// Whether a bar of it has a length: at least one beat, of a note value that is a power of
    /// two (what MIDI can write).
    pub fn is_valid(self) -> bool {
        self.numerator > 0 && self.denominator.is_power_of_two()
    }

    /// Steps (sixteenth notes) of one beat: 4 for a quarter-note beat, 2 for an eighth.
    pub fn beat_steps(self) -> f64 {
        16.0 / f64::from(self.denominator.max(1))
    }

    /// Steps of one bar.
    pub fn bar_steps(self) -> f64 {
        f64::from(self.numerator.max(1)) * self.beat_steps()
    }
}

impl std::fmt::Display for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.numerator, self.denominator)
    }
}

/// A metre map in its canonical form: sorted by step, invalid metres dropped, the last of
/// several changes on one step kept, and changes that change nothing dropped (before the first
/// change a piece is in 4/4, as MIDI has it).
pub fn normalize(mut map: Vec<StepMeter>) -> Vec<StepMeter> {
    map.retain(|m| m.meter.is_valid());
    // A stable sort keeps changes on one step in their order, so the last one wins below.
    map.sort_by_key(|m| m.step);
    let mut per_step: Vec<StepMeter> = Vec::with_capacity(map.len());
    for m in map {
        match per_step.last_mut() {
            Some(last) if last.step == m.step => *last = m,
            _ => per_step.push(m),
        }
    }
    let mut current = Meter::COMMON;
    per_step.retain(|m| {
        let changes = m.meter != current;
        current = m.meter;
        changes
    });
    per_step
}

/// The metre in force at `step` of a normalized map.
pub fn meter_at(map: &[StepMeter], step: usize) -> Meter {
    map.iter()
        .take_while(|m| m.step <= step)
        .last()
        .map_or(Meter::COMMON, |m| m.meter)
}

/// The stretches of one metre: (first step, end step, metre), covering `0..end`.
fn segments(map: &[StepMeter], end: usize) -> Vec<(usize, usize, Meter)> {
    let mut out = Vec::with_capacity(map.len() + 1);
    let (mut start, mut meter) = (0, Meter::COMMON);
    for m in map.iter().filter(|m| m.step < end) {
        if m.step > start {
            out.push((start, m.step, meter));
        }
        (start, meter) = (m.step, m.meter);
    }
    if end > start {
        out.push((start, end, meter));
    }
    out
}

/// The bars of a piece of `end` steps under `map` that overlap `from..to` (steps): the bar
/// `from` falls in, then those that start before `to`.
pub fn bars(map: &[StepMeter], end: usize, from: f64, to: f64) -> Vec<Bar> {
    let mut out = Vec::new();
    let mut number = 1usize;
    for (start, stop, meter) in segments(map, end) {
        let len = meter.bar_steps();
        // A bar cut short by the next change still counts as one.
        let count = ((stop - start) as f64 / len).ceil() as usize;
        let start = start as f64;
        if (stop as f64) > from && start < to {
            // Skip the bars before the one `from` falls in without visiting them.
            let first = ((from - start) / len).floor().max(0.0) as usize;
            for k in first..count {
                let at = start + k as f64 * len;
                if at >= to {
                    break;
                }
                out.push(Bar {
                    start: at,
                    number: number + k,
                    meter,
                });
            }
        }
        number += count;
    }
    out
}

/// Where `step` falls, counted in bars from 1 (1.5 is half way through the first bar).
pub fn bar_position(map: &[StepMeter], step: f64) -> f64 {
    let step = step.max(0.0);
    let mut number = 1.0;
    let (mut start, mut meter) = (0, Meter::COMMON);
    for m in map.iter().take_while(|m| m.step as f64 <= step) {
        number += (m.step.saturating_sub(start) as f64 / meter.bar_steps()).ceil();
        (start, meter) = (m.step, m.meter);
    }
    number + (step - start as f64) / meter.bar_steps()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(step: usize, numerator: u8, denominator: u16) -> StepMeter {
        StepMeter {
            step,
            meter: Meter {
                numerator,
                denominator,
            },
        }
    }

    #[test]
    fn normalize_sorts_keeps_the_last_change_of_a_step_and_drops_non_changes() {
        let map = normalize(vec![
            m(24, 4, 4),
            m(0, 4, 4),
            m(12, 3, 4),
            m(12, 6, 8),
            m(36, 6, 8),
            m(40, 0, 4),
            m(44, 3, 3),
        ]);
        assert_eq!(map, vec![m(12, 6, 8), m(24, 4, 4), m(36, 6, 8)]);
    }

    #[test]
    fn bar_lengths_follow_the_metre() {
        let meter = |n, d| Meter {
            numerator: n,
            denominator: d,
        };
        assert_eq!(Meter::COMMON.bar_steps(), 16.0);
        assert_eq!(meter(3, 4).bar_steps(), 12.0);
        assert_eq!(meter(6, 8).bar_steps(), 12.0);
        assert_eq!(meter(5, 4).bar_steps(), 20.0);
        assert_eq!(meter(3, 32).bar_steps(), 1.5);
        assert_eq!(meter(6, 8).beat_steps(), 2.0);
    }

    #[test]
    fn bars_restart_at_a_change_and_number_on() {
        // 3/4 from the start, 4/4 from step 30 (mid-bar: the short bar counts), to step 62.
        let map = normalize(vec![m(0, 3, 4), m(30, 4, 4)]);
        let starts: Vec<(f64, usize)> = bars(&map, 62, 0.0, 1e9)
            .iter()
            .map(|b| (b.start, b.number))
            .collect();
        assert_eq!(
            starts,
            vec![(0.0, 1), (12.0, 2), (24.0, 3), (30.0, 4), (46.0, 5)]
        );
        // A window in the middle gives the same numbers, from the bar it opens in.
        let window: Vec<usize> = bars(&map, 62, 20.0, 47.0)
            .iter()
            .map(|b| b.number)
            .collect();
        assert_eq!(window, vec![2, 3, 4, 5]);
        // The bar a window opens in, however long (12/1 is 192 steps a bar).
        let long = normalize(vec![m(0, 12, 1)]);
        let opened = bars(&long, 1000, 500.0, 510.0);
        assert_eq!((opened[0].start, opened[0].number), (384.0, 3));
        assert_eq!(bars(&[], 40, 0.0, 1e9).len(), 3);
        assert!(bars(&map, 0, 0.0, 1e9).len() <= 1);
    }

    #[test]
    fn bar_position_counts_bars_across_changes() {
        let map = normalize(vec![m(0, 3, 4), m(30, 4, 4)]);
        assert_eq!(bar_position(&map, 0.0), 1.0);
        assert_eq!(bar_position(&map, 6.0), 1.5);
        assert_eq!(bar_position(&map, 30.0), 4.0);
        assert_eq!(bar_position(&map, 38.0), 4.5);
        assert_eq!(bar_position(&[], 32.0), 3.0);
    }

    #[test]
    fn meter_at_reads_the_map() {
        let map = normalize(vec![m(8, 3, 4)]);
        assert_eq!(meter_at(&map, 7), Meter::COMMON);
        assert_eq!(meter_at(&map, 8).numerator, 3);
    }
}
