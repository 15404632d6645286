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
    /// The step (16th note) it takes effect at.
    pub step: usize,
    /// The metre from there on.
    pub meter: Meter,
}

/// A bar of a piece.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Where it starts, in steps.
    pub start: f64,
    /// Its number, counting from 1; 0 for a pickup ([`BarMap::new`]).
    pub number: usize,
    /// The metre it is in.
    pub meter: Meter,
}

impl Meter {
    /// Whether a bar of it has a length: at least one beat, of a note value that is a power of
    /// two (what MIDI can write) no shorter than a 128th note (what a musician writes; MIDI
    /// allows 1/32768, whose bars would be a 2048th of a step).
    pub fn is_valid(self) -> bool {
        self.numerator > 0 && self.denominator.is_power_of_two() && self.denominator <= 128
    }

    /// Steps (sixteenth notes) of one beat: 4 for a quarter-note beat, 2 for an eighth.
    pub fn beat_steps(self) -> f64 {
        16.0 / f64::from(self.denominator.max(1))
    }

    /// Steps of the beat a musician counts: in a compound metre (6/8, 9/8, 12/8, 12/16...) three
    /// of the denominator's notes, a dotted beat; otherwise [`Meter::beat_steps`].
    pub fn pulse_steps(self) -> f64 {
        let compound =
            self.numerator > 3 && self.numerator.is_multiple_of(3) && self.denominator >= 8;
        self.beat_steps() * if compound { 3.0 } else { 1.0 }
    }

    /// Steps of one bar.
    pub fn bar_steps(self) -> f64 {
        f64::from(self.numerator.max(1)) * self.beat_steps()
    }

    /// Bars in a stretch of `steps` steps of this metre: a bar cut short by the next change
    /// counts as one, unless what is left is half a step or less (a change on a bar line that
    /// falls between two steps, 3/32 say, is rounded to a step).
    fn bars_in(self, steps: usize) -> usize {
        let len = self.bar_steps();
        let whole = (steps as f64 / len).floor();
        let rest = steps as f64 - whole * len;
        (whole as usize + usize::from(rest > 0.5)).max(usize::from(steps > 0))
    }
}

impl std::fmt::Display for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.numerator, self.denominator)
    }
}

/// A metre map in its canonical form: sorted by step, invalid metres dropped, the last of
/// several changes on one step kept, and changes that change nothing dropped (before the first
/// change a piece is in 4/4, as MIDI has it). A restatement of the metre in force off its bar
/// lines changes where the bars start (a bar cut short, as three of the Bach chorales have):
/// it stays.
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
    let (mut current, mut since) = (Meter::COMMON, 0);
    per_step.retain(|m| {
        let bars = (m.step - since) as f64 / current.bar_steps();
        let changes = m.meter != current || (bars - bars.round()).abs() > 1e-9;
        if changes {
            (current, since) = (m.meter, m.step);
        }
        changes
    });
    per_step
}

/// The first step of the bar `step` falls in, by a normalized metre map.
pub fn bar_start(map: &[StepMeter], step: usize) -> usize {
    step - BarMap::new(map).steps_into_bar(step)
}

/// The metre in force at `step` of a normalized map.
pub fn meter_at(map: &[StepMeter], step: usize) -> Meter {
    map.iter()
        .take_while(|m| m.step <= step)
        .last()
        .map_or(Meter::COMMON, |m| m.meter)
}

/// A metre map laid out in bars: each stretch of one metre with the number of the bar it
/// starts, so that finding a step's bar is a binary search (a file may hold 100 000 changes).
#[derive(Debug, Clone, PartialEq)]
pub struct BarMap {
    /// (first step, bar number there, metre), from step 0 on, sorted by step.
    stretches: Vec<(usize, f64, Meter)>,
}

impl BarMap {
    /// Lays out a normalized metre map. A piece that opens with a pickup (its first metre
    /// lasts one bar, at most half a bar of the metre that follows or cut short by that same
    /// metre stated again, and the metre after it holds for two bars at least: a 1/4 bar
    /// before 3/4, as notation programs write an anacrusis) numbers it 0, as a score does, so
    /// that bar 1 is the first whole bar. Longer first bars are counted as bars: in music of
    /// changing metres (6/4 before 8/4, 2/4 before 5/8, as in two of Liszt's études of the
    /// corpus) they are.
    pub fn new(map: &[StepMeter]) -> Self {
        let mut stretches: Vec<(usize, f64, Meter)> = Vec::with_capacity(map.len() + 1);
        stretches.push((0, 1.0, Meter::COMMON));
        for m in map {
            let &(start, number, meter) = stretches.last().expect("never empty");
            if m.step <= start {
                // A change at the same step (only at step 0 in a normalized map) replaces it.
                *stretches.last_mut().expect("never empty") = (start, number, m.meter);
                continue;
            }
            let bars = meter.bars_in(m.step - start) as f64;
            stretches.push((m.step, number + bars, m.meter));
        }
        // The metre after it holds for two bars at least (or to the end): alternating
        // metres from the start (3/16, 4/16, ...) are bars of their own. A first bar cut short
        // by its own metre stated again is a pickup however long it is.
        if let [(0, _, first), (second, 2.0, after), ref rest @ ..] = stretches[..]
            && ((second as f64) <= after.bar_steps() / 2.0 || first == after)
            && rest.first().is_none_or(|third| third.1 >= 4.0)
        {
            for stretch in &mut stretches {
                stretch.1 -= 1.0;
            }
        }
        BarMap { stretches }
    }

    /// Where the pickup ends (the first whole bar's first step), if the piece opens with one.
    pub fn pickup_end(&self) -> Option<usize> {
        (self.stretches.first()?.1 == 0.0).then(|| self.stretches[1].0)
    }

    /// The stretch `step` falls in.
    fn stretch_at(&self, step: f64) -> usize {
        self.stretches
            .partition_point(|s| s.0 as f64 <= step)
            .saturating_sub(1)
    }

    /// Where `step` falls, counted in bars from 1 (1.5 is half way through the first bar; a
    /// pickup counts from 0).
    pub fn position(&self, step: f64) -> f64 {
        let step = step.max(0.0);
        let k = self.stretch_at(step);
        let (start, number, meter) = self.stretches[k];
        let at = number + (step - start as f64) / meter.bar_steps();
        // A bar that the next change cut short by half a step or less is no bar of its own:
        // the count never runs past the number the change starts with.
        self.stretches.get(k + 1).map_or(at, |next| at.min(next.1))
    }

    /// How many whole steps `step` lies past the bar line before it (0 on a bar line; 0..12
    /// in 3/4). A bar of fractional length (3/32) counts from its own start, rounded down.
    pub fn steps_into_bar(&self, step: usize) -> usize {
        let (start, _, meter) = self.stretches[self.stretch_at(step as f64)];
        let len = meter.bar_steps();
        let offset = (step - start) as f64;
        (offset - (offset / len).floor() * len).floor() as usize
    }

    /// The first bar line at or after `step` that falls on a whole step (`step` itself on a
    /// bar line), counting in the metre in force at `step` (past the map's end it goes on), a
    /// metre change being a bar line too: in 5/32 (bars of two and a half steps) every other
    /// bar line. Where none of the next eight does (bars of a 128th), the step after the first.
    pub fn next_bar_line(&self, step: usize) -> usize {
        let k = self.stretch_at(step as f64);
        let (start, _, meter) = self.stretches[k];
        let len = meter.bar_steps();
        let first = ((step - start) as f64 / len).ceil();
        let line = |n: f64| start as f64 + (first + n) * len;
        let whole = (0..8)
            .map(|n| line(f64::from(n)))
            .find(|at| at.fract() == 0.0);
        let line = (whole.unwrap_or_else(|| line(0.0).ceil()) as usize).max(step);
        self.stretches
            .get(k + 1)
            .map_or(line, |next| line.min(next.0))
    }

    /// The bars of a piece of `end` steps that overlap `from..to` (steps): the bar `from`
    /// falls in, then those that start before `to`.
    pub fn bars(&self, end: usize, from: f64, to: f64) -> Vec<Bar> {
        let mut out = Vec::new();
        for (k, &(start, number, meter)) in self
            .stretches
            .iter()
            .enumerate()
            .skip(self.stretch_at(from))
        {
            let stop = self.stretches.get(k + 1).map_or(end, |s| s.0).min(end);
            if start as f64 >= to || stop <= start {
                break;
            }
            let len = meter.bar_steps();
            let count = meter.bars_in(stop - start);
            let start = start as f64;
            // Skip the bars before the one `from` falls in without visiting them.
            let first = ((from - start) / len).floor().max(0.0) as usize;
            for b in first..count {
                let at = start + b as f64 * len;
                if at >= to {
                    break;
                }
                out.push(Bar {
                    start: at,
                    number: number as usize + b,
                    meter,
                });
            }
        }
        out
    }

    /// The metre in force at `step`.
    pub fn meter_at(&self, step: usize) -> Meter {
        self.stretches[self.stretch_at(step as f64)].2
    }
}

/// Where each step of a batch of windows falls in its bar, read from each window's metre map:
/// `[B][T]` pairs of (whole steps past the bar line, the bar's length in whole steps). What a
/// model that is told the metre reads beside the notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowBars {
    steps: usize,
    at: Vec<(u16, u16)>,
}

impl WindowBars {
    /// The bars of windows of `steps` steps, one per `(metre map, first step)` (windows of one
    /// map in a row share its layout: a roll's many windows lay it out once).
    pub fn new<'a>(
        steps: usize,
        windows: impl IntoIterator<Item = (&'a [StepMeter], usize)>,
    ) -> Self {
        let mut at = Vec::new();
        // The same map (the same slice: address and length) as the window before is laid out
        // once; a miss only lays it out again.
        let mut laid_out: Option<(&[StepMeter], BarMap)> = None;
        for (meters, start) in windows {
            let bars = match laid_out.take() {
                Some((map, bars)) if std::ptr::eq(map, meters) => (map, bars),
                _ => (meters, BarMap::new(meters)),
            };
            let bars = &laid_out.insert(bars).1;
            at.extend((0..steps).map(|t| {
                let s = start.saturating_add(t);
                let len = bars.meter_at(s).bar_steps().round().clamp(1.0, 65535.0) as u16;
                let into = bars.steps_into_bar(s).min(usize::from(u16::MAX)) as u16;
                (into, len)
            }));
        }
        WindowBars { steps, at }
    }

    /// `items` windows of `steps` steps that each start on a bar line of 4/4 (what a roll with
    /// no metre map is in).
    pub fn common(items: usize, steps: usize) -> Self {
        Self::new(steps, std::iter::repeat_n((&[][..], 0), items))
    }

    /// Steps per window.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// How many windows.
    pub fn items(&self) -> usize {
        self.at.len().checked_div(self.steps).unwrap_or(0)
    }

    /// Step `t` of window `item`: (steps past its bar line, its bar's length in steps).
    pub fn at(&self, item: usize, t: usize) -> (usize, usize) {
        let (into, len) = self.at[item * self.steps + t];
        (usize::from(into), usize::from(len))
    }

    /// Every window cut to its first `steps` steps (all of them if it is shorter).
    pub fn first_steps(&self, steps: usize) -> Self {
        let steps = steps.min(self.steps);
        let at = (self.at.chunks(self.steps.max(1)))
            .flat_map(|window| window[..steps].iter().copied())
            .collect();
        WindowBars { steps, at }
    }

    /// Windows `start..start + len`, as many of them as there are.
    pub fn narrow(&self, start: usize, len: usize) -> Self {
        let items = self.items();
        let (from, to) = (start.min(items), start.saturating_add(len).min(items));
        WindowBars {
            steps: self.steps,
            at: self.at[from * self.steps..to * self.steps].to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(map: &[StepMeter], end: usize, from: f64, to: f64) -> Vec<Bar> {
        BarMap::new(map).bars(end, from, to)
    }

    fn bar_position(map: &[StepMeter], step: f64) -> f64 {
        BarMap::new(map).position(step)
    }

    fn m(step: usize, numerator: u8, denominator: u16) -> StepMeter {
        StepMeter {
            step,
            meter: Meter {
                numerator,
                denominator,
            },
        }
    }

    /// A pickup is bar 0, as a score numbers it: a short metre for one bar before the piece's
    /// own (1/4 before 3/4), or the metre stated again a beat or three in (4/4 cut short); bar
    /// 1 is then the first whole bar. A first bar longer than half the next metre's is bar 1.
    #[test]
    fn a_pickup_is_bar_0() {
        // The metre stated again cuts a bar short: a pickup however long (three beats of 4/4).
        for map in [
            vec![m(0, 1, 4), m(4, 3, 4)],
            vec![m(0, 4, 4), m(4, 4, 4)],
            vec![m(0, 4, 4), m(12, 4, 4)],
        ] {
            let map = normalize(map);
            let pickup = map.last().unwrap().step;
            assert_eq!(BarMap::new(&map).pickup_end(), Some(pickup), "{map:?}");
            assert_eq!(bar_position(&map, pickup as f64), 1.0, "{map:?}");
            let numbers: Vec<usize> = bars(&map, 40, 0.0, 40.0).iter().map(|b| b.number).collect();
            assert_eq!(&numbers[..3], [0, 1, 2], "{map:?}");
            assert_eq!(bar_position(&map, 0.0), 0.0);
        }
        // Not pickups: a whole 4/4 bar before 3/4, first bars longer than half the next
        // metre's (Liszt's changing metres), a piece in one metre, a late change, metres
        // alternating bar by bar from the start.
        for map in [
            vec![m(0, 4, 4), m(16, 3, 4)],
            vec![m(0, 6, 4), m(24, 8, 4), m(88, 7, 4)],
            vec![m(0, 2, 4), m(8, 5, 8), m(138, 4, 8)],
            vec![m(0, 3, 4)],
            vec![m(0, 1, 4), m(8, 3, 4)],
            vec![m(0, 3, 16), m(3, 4, 16), m(7, 3, 16), m(10, 4, 16)],
        ] {
            let map = normalize(map);
            assert_eq!(bars(&map, 40, 0.0, 40.0)[0].number, 1, "{map:?}");
            assert_eq!(bar_position(&map, 0.0), 1.0, "{map:?}");
            assert_eq!(BarMap::new(&map).pickup_end(), None, "{map:?}");
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
        // A restatement off the bar lines starts bars afresh: kept; on them, dropped.
        let map = normalize(vec![m(0, 3, 4), m(24, 3, 4), m(30, 3, 4), m(42, 3, 4)]);
        assert_eq!(map, vec![m(0, 3, 4), m(30, 3, 4)]);
        assert_eq!(normalize(vec![m(20, 4, 4), m(36, 4, 4)]), vec![m(20, 4, 4)]);
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
        assert!(bars(&map, 0, 0.0, 1e9).is_empty());
        // Five bars of 3/32 end between two steps (7.5); the change is rounded to step 8, and
        // the half step left is no bar of its own.
        let map = normalize(vec![m(0, 3, 32), m(8, 4, 4)]);
        assert_eq!(bar_position(&map, 8.0), 6.0);
        // Within that half step the count does not run past the change and back.
        assert!(bar_position(&map, 7.6) <= bar_position(&map, 8.0));
        let last = *bars(&map, 24, 0.0, 24.0).last().unwrap();
        assert_eq!((last.start, last.number), (8.0, 6));
        // Note values shorter than a 128th are no metre.
        assert!(
            !normalize(vec![m(0, 3, 256)])
                .iter()
                .any(|x| x.meter.denominator == 256)
        );
    }

    #[test]
    fn bar_position_counts_bars_across_changes() {
        let map = normalize(vec![m(0, 3, 4), m(30, 4, 4)]);
        assert_eq!(bar_position(&map, 0.0), 1.0);
        assert_eq!(bar_position(&map, 6.0), 1.5);
        assert_eq!(bar_position(&map, 30.0), 4.0);
        assert_eq!(bar_position(&map, 38.0), 4.5);
        assert_eq!(bar_position(&[], 32.0), 3.0);
        // Many changes: laid out once, each step found by a binary search.
        let many: Vec<StepMeter> = (0..100_000)
            .map(|i| m(i * 3, 3 + (i % 2) as u8, 16))
            .collect();
        let layout = BarMap::new(&normalize(many));
        assert_eq!(layout.position(3.0 * 99_999.0), 100_000.0);
        assert_eq!(layout.bars(300_000, 150_000.0, 150_004.0).len(), 2);
    }

    #[test]
    fn window_bars_give_each_step_its_place_in_its_bar_and_the_bar_length() {
        // 3/4 from the start, 6/8 from step 24 (two bars of 12), 5/4 from step 36.
        let map = [m(0, 3, 4), m(24, 6, 8), m(36, 5, 4)];
        let w = WindowBars::new(4, [(&map[..], 10), (&map[..], 34), (&[][..], 15)]);
        assert_eq!((w.items(), w.steps()), (3, 4));
        let row = |i: usize| (0..4).map(|t| w.at(i, t)).collect::<Vec<_>>();
        assert_eq!(row(0), [(10, 12), (11, 12), (0, 12), (1, 12)]);
        assert_eq!(row(1), [(10, 12), (11, 12), (0, 20), (1, 20)]);
        // No map: 4/4.
        assert_eq!(row(2), [(15, 16), (0, 16), (1, 16), (2, 16)]);
        assert_eq!(w.narrow(1, 2).at(0, 2), (0, 20));
        assert_eq!(w.narrow(1, 2).items(), 2);
        assert_eq!(w.narrow(2, 5).items(), 1, "no more than there are");
        assert_eq!(w.narrow(7, 1).items(), 0);
        // Each window cut to its first steps: as many windows, shorter.
        let first = w.first_steps(3);
        assert_eq!((first.items(), first.steps()), (3, 3));
        assert_eq!(first.at(1, 2), (0, 20));
        assert_eq!(first.at(2, 0), (15, 16));
        assert_eq!(w.first_steps(9), w, "no longer than they are");
        assert_eq!(WindowBars::common(2, 3).at(1, 2), (2, 16));
    }

    #[test]
    fn steps_into_bar_follow_the_metre_and_restart_at_a_change() {
        // 3/4 from the start, 4/4 from step 30 (mid-bar), then 6/8 from step 62.
        let map = BarMap::new(&normalize(vec![m(0, 3, 4), m(30, 4, 4), m(62, 6, 8)]));
        let into: Vec<usize> = [0, 5, 11, 12, 29, 30, 45, 46, 61, 62, 73, 74]
            .iter()
            .map(|&s| map.steps_into_bar(s))
            .collect();
        assert_eq!(into, vec![0, 5, 11, 0, 5, 0, 15, 0, 15, 0, 11, 0]);
        // No map: 4/4 throughout.
        assert_eq!(BarMap::new(&[]).steps_into_bar(37), 5);
        // Bars of a step and a half (3/32): 0, 1.5, 3.0 ... so step 2 is half a step into one.
        let short = BarMap::new(&normalize(vec![m(0, 3, 32)]));
        let into: Vec<usize> = (0..5).map(|s| short.steps_into_bar(s)).collect();
        assert_eq!(into, vec![0, 1, 0, 0, 1]);
    }

    #[test]
    fn the_next_bar_line_is_found_in_the_metre_in_force_on_a_whole_step() {
        // 3/4 from the start, 4/4 from step 30 (mid-bar), then 6/8 from step 62.
        let map = BarMap::new(&normalize(vec![m(0, 3, 4), m(30, 4, 4), m(62, 6, 8)]));
        let next: Vec<usize> = [0, 1, 12, 13, 29, 31, 46, 47, 62, 63, 100]
            .iter()
            .map(|&s| map.next_bar_line(s))
            .collect();
        assert_eq!(next, vec![0, 12, 12, 24, 30, 46, 46, 62, 62, 74, 110]);
        // Bars of two and a half steps (5/32): lines at 0, 2.5, 5, 7.5 ... the whole ones.
        let short = BarMap::new(&normalize(vec![m(0, 5, 32)]));
        let next: Vec<usize> = [1, 3, 5, 6]
            .iter()
            .map(|&s| short.next_bar_line(s))
            .collect();
        assert_eq!(next, vec![5, 5, 5, 10]);
    }

    #[test]
    fn meter_at_reads_the_map() {
        let map = normalize(vec![m(8, 3, 4)]);
        assert_eq!(meter_at(&map, 7), Meter::COMMON);
        assert_eq!(meter_at(&map, 8).numerator, 3);
    }
}
