//! The piano-roll editor widget: a keyboard on the left, a bar ruler on top, notes on the
//! 16th-note grid, a playhead; drawing, erasing, selecting, moving and resizing notes.

use egui::{Align2, Color32, FontId, Rect, Sense, Stroke, StrokeKind, Ui, pos2, vec2};

use crate::roll::{DEFAULT_VELOCITY, PITCHES, pitch_name};
use crate::studio::score::{History, Origin, Score};

/// Width of the keyboard, points.
const KEYS_W: f32 = 52.0;
/// Height of the ruler, points.
const RULER_H: f32 = 18.0;
/// Grab zone at the right end of a note for resizing, points.
const EDGE: f32 = 6.0;
/// Zoomed in this far (points per step) the grid shows every step, and notes snap to steps.
const STEP_LINES_PX: f32 = 6.0;
/// Beats at least this wide (points) are drawn, and notes snap to them when steps are not.
const BEAT_LINES_PX: f64 = 3.0;

/// What a press in the grid does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Tool {
    /// Pressing on empty space draws a note; dragging sets its length.
    Draw,
    /// Pressing on empty space starts a box selection.
    Select,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Drag {
    /// `edited`: the score has changed since the press (and the undo step is recorded).
    Move {
        step: i64,
        pitch: i32,
        edited: bool,
    },
    Resize {
        step: i64,
        edited: bool,
    },
    /// A note just drawn at `start`: it keeps the drawing length until the pointer leaves
    /// the pressed cell (`moved`), then ends at the pointer's cell.
    Draw {
        start: i64,
        moved: bool,
    },
    /// Box selection from where it started, in steps and pitches (it stays on those notes
    /// while the view scrolls or zooms).
    Box {
        step: f32,
        pitch: f32,
    },
}

/// Narrowest and widest time zoom, points per step.
pub const MIN_STEP_PX: f32 = 1.0;
/// See [`MIN_STEP_PX`].
pub const MAX_STEP_PX: f32 = 60.0;
/// Lowest and tallest pitch row, points.
pub const MIN_KEY_PX: f32 = 3.0;
/// See [`MIN_KEY_PX`].
pub const MAX_KEY_PX: f32 = 30.0;

/// Zoom, scroll, selection and the gesture in progress.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RollView {
    /// Points per step.
    pub step_px: f32,
    /// Points per pitch row.
    pub key_px: f32,
    /// First visible step (fractional).
    pub scroll_step: f32,
    /// Highest visible pitch (fractional).
    pub top_pitch: f32,
    /// The tool.
    pub tool: Tool,
    /// Selected note indices.
    #[serde(skip)]
    pub selection: Vec<usize>,
    #[serde(skip)]
    drag: Option<Drag>,
    /// What a box selection started with Shift adds to.
    #[serde(skip)]
    box_base: Vec<usize>,
    /// The press has moved beyond a click's wobble: the drag edits.
    #[serde(skip)]
    past_click: bool,
    /// The arrow whose press recorded the undo step its repeats belong to.
    #[serde(skip)]
    held: Option<egui::Key>,
    /// The selection was moved, stretched or drawn and may overlap notes of its pitches:
    /// settled ([`Score::settle`]) once the gesture or the held arrow ends.
    #[serde(skip)]
    unsettled: bool,
    /// Length of the next drawn note, steps (and of a note entered by step input).
    pub draw_len: usize,
    /// Step input: the computer keyboard enters notes ([`STEP_KEYS`]).
    #[serde(default)]
    pub step_input: bool,
    /// The octave step input enters in (4: the A key is middle C, C4).
    #[serde(default = "middle_octave")]
    pub entry_octave: i8,
    /// Where step input enters its next note (None: at the playhead, or the start).
    #[serde(skip)]
    pub entry: Option<usize>,
    /// Where the note grid was drawn last frame (screen points).
    #[serde(skip)]
    pub grid_rect: Option<Rect>,
    /// The roll's widget id last frame (for F6, which gives it the keyboard focus).
    #[serde(skip)]
    pub roll_id: Option<egui::Id>,
}

impl RollView {
    /// Where step input enters its next note: its cursor, else the playhead's step (the start
    /// without a player).
    pub fn entry_step(&self, playhead: Option<f64>) -> usize {
        (self.entry)
            .unwrap_or_else(|| playhead.map_or(0, |p| p.max(0.0).floor() as usize))
            .min(Score::MAX_STEPS - 1)
    }

    /// Forgets the selection and any drag in progress: their note indices belong to a score
    /// that was just replaced (a generation, an opened file, undo or redo).
    pub fn forget_notes(&mut self) {
        self.selection.clear();
        self.box_base.clear();
        self.drag = None;
        self.held = None;
        self.unsettled = false;
    }

    /// Settles ([`Score::settle`]) the notes moved, stretched or drawn since the last time,
    /// now: when their gesture or held arrow ends, and before the selection changes or the
    /// score is recorded, undone or replaced (the overlap must not outlive the gesture).
    /// Returns whether the score changed.
    pub fn settle_now(&mut self, score: &mut Score) -> bool {
        if !std::mem::take(&mut self.unsettled) {
            return false;
        }
        let (selection, changed) = score.settle(&self.selection);
        self.selection = selection;
        changed
    }

    /// Whether a note or a box is being dragged.
    pub fn dragging(&self) -> bool {
        self.drag.is_some()
    }

    /// Whether a gesture is under way: a drag, or an arrow held down.
    pub fn in_gesture(&self) -> bool {
        self.drag.is_some() || self.held.is_some()
    }
}

impl Default for RollView {
    fn default() -> Self {
        RollView {
            step_px: 10.0,
            key_px: 8.0,
            scroll_step: 0.0,
            top_pitch: 96.0,
            tool: Tool::Draw,
            selection: Vec::new(),
            drag: None,
            box_base: Vec::new(),
            past_click: false,
            held: None,
            unsettled: false,
            draw_len: 4,
            step_input: false,
            entry_octave: middle_octave(),
            entry: None,
            grid_rect: None,
            roll_id: None,
        }
    }
}

fn middle_octave() -> i8 {
    4
}

/// The lowest and highest octave of step input (C-1, MIDI note 0, to C9, 120).
pub const ENTRY_OCTAVES: std::ops::RangeInclusive<i8> = -1..=9;

/// The computer keyboard as a piano, for step input: the home row plays the white keys of an
/// octave from C (A S D F G H J, K the C above) and the row above it the black keys (W E, T Y
/// U), each with its semitones above the octave's C.
pub const STEP_KEYS: [(egui::Key, u8); 13] = {
    use egui::Key::*;
    [
        (A, 0),
        (W, 1),
        (S, 2),
        (E, 3),
        (D, 4),
        (F, 5),
        (T, 6),
        (G, 7),
        (Y, 8),
        (H, 9),
        (U, 10),
        (J, 11),
        (K, 12),
    ]
};

/// What happened in the widget this frame.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RollResponse {
    /// A key or note to sound briefly.
    pub preview: Option<u8>,
    /// The score changed.
    pub changed: bool,
    /// The user clicked the ruler here.
    pub seek: Option<usize>,
}

/// Colours of notes by origin.
pub fn origin_color(origin: Origin) -> Color32 {
    match origin {
        Origin::Primer => Color32::from_rgb(90, 140, 220),
        Origin::Generated => Color32::from_rgb(235, 150, 60),
        Origin::Edited => Color32::from_rgb(110, 200, 120),
    }
}

/// A note's colour: its origin's, brighter the harder it is struck and darker the softer
/// (a note at the default velocity, 80, has its origin's colour exactly).
pub fn note_color(origin: Origin, velocity: u8) -> Color32 {
    let base = origin_color(origin);
    let factor = 1.0 + 0.5 * (f32::from(velocity) - f32::from(DEFAULT_VELOCITY)) / 127.0;
    let scale = |c: u8| (f32::from(c) * factor).round().clamp(0.0, 255.0) as u8;
    Color32::from_rgb(scale(base.r()), scale(base.g()), scale(base.b()))
}

fn is_black(pitch: usize) -> bool {
    matches!(pitch % 12, 1 | 3 | 6 | 8 | 10)
}

/// Draws and edits `score`. `playhead` (steps) is drawn when given; `looped` shades a range.
pub fn piano_roll(
    ui: &mut Ui,
    score: &mut Score,
    view: &mut RollView,
    history: &mut History,
    playhead: Option<f64>,
    looped: Option<(usize, usize)>,
) -> RollResponse {
    let mut out = RollResponse::default();
    view.selection.retain(|&i| i < score.notes.len());
    let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
    // What a screen reader says of it (made only when asked for, not every frame).
    response.widget_info(|| {
        let mut described = format!(
            "Piano roll: {} notes, {} selected",
            score.notes.len(),
            view.selection.len()
        );
        // One note selected (Alt+arrows step through them): which.
        if let [i] = view.selection[..]
            && let Some(n) = score.notes.get(i)
        {
            let bars = score.bar_map();
            let bar = bars.position(n.start as f64).floor();
            let step = bars.steps_into_bar(n.start) + 1;
            // A pickup is no numbered bar: its notes are said to be in it.
            let place = if bar < 1.0 {
                format!("in the pickup, step {step} of it")
            } else {
                format!("at bar {bar}, step {step} of the bar")
            };
            described += &format!(" ({} {place}, {} steps long)", pitch_name(n.pitch), n.len);
        }
        if view.step_input {
            let at = view
                .entry
                .map_or_else(|| "the playhead".into(), |e| format!("step {e}"));
            let c = pitch_name(12 * (view.entry_octave + 1).max(0) as u8);
            described += &format!("; step input at {at}, the A key is {c}");
        }
        egui::WidgetInfo::labeled(egui::Role::Canvas, true, described)
    });
    let painter = ui.painter_at(rect);
    let grid = Rect::from_min_max(pos2(rect.left() + KEYS_W, rect.top() + RULER_H), rect.max);
    let keys = Rect::from_min_max(
        pos2(rect.left(), grid.top()),
        pos2(grid.left(), rect.bottom()),
    );
    let ruler = Rect::from_min_max(
        pos2(grid.left(), rect.top()),
        pos2(rect.right(), grid.top()),
    );
    view.grid_rect = Some(grid);
    view.roll_id = Some(response.id);
    // Step input's switch, in the corner above the keyboard (on top of the roll, so it takes
    // its own clicks).
    let corner = Rect::from_min_max(rect.min, pos2(grid.left(), grid.top()));
    let switch = ui
        .put(
            corner.shrink(1.0),
            egui::Button::selectable(view.step_input, "Keys").small(),
        )
        .on_hover_text(
            "Step input: enter notes from the computer keyboard at the cursor (blue; it starts \
             at the playhead, a click on the ruler moves it): A S D F G H J K are the white keys \
             from C, W E T Y U the black keys; each note has the drawing length and moves the \
             cursor on (with Shift it stays, for a chord); . is a rest; Z and X take the octave \
             down and up, [ and ] halve and double the length; after Escape the arrows move the \
             cursor",
        );
    if switch.clicked() {
        view.step_input = !view.step_input;
        // It starts at the playhead; the keys go to the roll (not to the switch).
        view.entry = None;
        if view.step_input {
            response.request_focus();
        }
    }

    // Zoom and scroll with the wheel: plain = pitch, Shift = time, Ctrl = zoom time,
    // Ctrl+Shift = zoom pitch.
    if response.hovered() {
        // egui turns a wheel turned with Ctrl (the zoom modifier) into a zoom factor, not a
        // scroll, so the two zooms read `zoom_delta` (a pinch gesture zooms time too).
        let (scroll, zoom, modifiers) =
            ui.input(|i| (i.smooth_scroll_delta, i.zoom_delta(), i.modifiers));
        // A zoom keeps the step (the pitch) under the pointer where it is.
        let at = (response.hover_pos().unwrap_or(grid.min) - grid.min).max(egui::Vec2::ZERO);
        if modifiers.command && modifiers.shift {
            let pitch = view.top_pitch - at.y / view.key_px;
            view.key_px = (view.key_px * zoom).clamp(MIN_KEY_PX, MAX_KEY_PX);
            view.top_pitch = pitch + at.y / view.key_px;
        } else if zoom != 1.0 {
            let step = view.scroll_step + at.x / view.step_px;
            view.step_px = (view.step_px * zoom).clamp(MIN_STEP_PX, MAX_STEP_PX);
            view.scroll_step = step - at.x / view.step_px;
        } else if modifiers.shift {
            view.scroll_step -= (scroll.y + scroll.x) / view.step_px;
        } else {
            view.top_pitch += scroll.y / view.key_px;
            view.scroll_step -= scroll.x / view.step_px;
        }
    }
    let visible_rows = grid.height() / view.key_px;
    view.top_pitch = view.top_pitch.clamp(visible_rows.min(127.0), 127.0 + 1.0);
    view.scroll_step = view.scroll_step.clamp(0.0, Score::MAX_STEPS as f32);

    // The view as it stands this frame (copied: the closures leave `view` free to change).
    let (scroll_step, step_px, top_pitch, key_px) =
        (view.scroll_step, view.step_px, view.top_pitch, view.key_px);
    let step_x = move |s: f32| grid.left() + (s - scroll_step) * step_px;
    let pitch_y = move |p: f32| grid.top() + (top_pitch - p) * key_px;
    let to_step = move |x: f32| (x - grid.left()) / step_px + scroll_step;
    let to_pitch = move |y: f32| top_pitch - (y - grid.top()) / key_px;

    // Background rows and the keyboard.
    painter.rect_filled(grid, 0.0, Color32::from_gray(30));
    let lo = (to_pitch(grid.bottom()).floor().max(0.0)) as usize;
    let hi = (view.top_pitch.ceil() as usize).min(PITCHES - 1);
    for p in lo..=hi {
        let y0 = pitch_y(p as f32 + 1.0);
        let row = Rect::from_min_max(pos2(grid.left(), y0), pos2(grid.right(), y0 + view.key_px));
        if is_black(p) {
            painter.rect_filled(row.intersect(grid), 0.0, Color32::from_gray(24));
        }
        let key = Rect::from_min_max(pos2(keys.left(), y0), pos2(keys.right(), y0 + view.key_px))
            .intersect(keys);
        let fill = if is_black(p) {
            Color32::from_gray(20)
        } else {
            Color32::from_gray(220)
        };
        painter.rect_filled(key, 0.0, fill);
        painter.hline(
            keys.x_range(),
            y0 + view.key_px,
            Stroke::new(0.5, Color32::from_gray(90)),
        );
        if p % 12 == 0 {
            painter.hline(
                grid.x_range(),
                y0 + view.key_px,
                Stroke::new(0.5, Color32::from_gray(60)),
            );
            if view.key_px >= 7.0 {
                painter.text(
                    pos2(keys.right() - 3.0, y0 + view.key_px / 2.0),
                    Align2::RIGHT_CENTER,
                    pitch_name(p as u8),
                    FontId::proportional(view.key_px.min(11.0)),
                    Color32::from_gray(40),
                );
            }
        }
    }
    // Grid lines: steps (when wide enough), beats and bars along the piece's metre map; bar
    // numbers on the ruler where they fit (every bar, else every 2nd, 4th, ...). The bar the
    // view opens in starts left of it: what is drawn is clipped to the grid and the ruler.
    painter.rect_filled(ruler, 0.0, Color32::from_gray(45));
    let first = view.scroll_step.floor() as usize;
    let last = to_step(grid.right()).ceil() as usize;
    let grid_painter = painter.with_clip_rect(grid.union(ruler));
    let line = |step: f64, width: f32, gray: u8| {
        grid_painter.vline(
            step_x(step as f32),
            grid.y_range(),
            Stroke::new(width, Color32::from_gray(gray)),
        );
    };
    if view.step_px >= STEP_LINES_PX {
        for s in first..=last {
            line(s as f64, 0.5, 42);
        }
    }
    let bars = score.bars(first as f64, last as f64 + 1.0);
    for (k, bar) in bars.iter().enumerate() {
        let end = bars.get(k + 1).map_or(f64::INFINITY, |b| b.start);
        let beat = bar.meter.beat_steps();
        let beats = (1..bar.meter.numerator)
            .map(|b| bar.start + f64::from(b) * beat)
            .take_while(|&at| at < end);
        // Beats shorter than a step would fill the grid: only the bars then.
        if beat * f64::from(view.step_px) >= BEAT_LINES_PX {
            for at in beats {
                line(at, 0.5, 65);
            }
        }
        // Bars narrower than a few pixels (3/32 zoomed out) are thinned, their numbers more;
        // a numbered bar always has its line.
        let bar_px = (f64::from(view.step_px) * bar.meter.bar_steps()).max(1e-3);
        let every = |px: f64| ((px / bar_px).ceil().max(1.0) as usize).next_power_of_two();
        // A pickup (bar 0) has its line but no number, as in a score.
        let Some(counted) = bar.number.checked_sub(1) else {
            line(bar.start, 1.0, 95);
            continue;
        };
        if counted % every(4.0) == 0 {
            line(bar.start, 1.0, 95);
        }
        if counted % every(28.0) == 0 {
            grid_painter.text(
                pos2(step_x(bar.start as f32) + 2.0, ruler.center().y),
                Align2::LEFT_CENTER,
                format!("{}", bar.number),
                FontId::proportional(11.0),
                Color32::from_gray(200),
            );
        }
    }
    if let Some((a, b)) = looped {
        let r = Rect::from_min_max(
            pos2(step_x(a as f32), grid.top()),
            pos2(step_x(b as f32), grid.bottom()),
        );
        painter.rect_filled(
            r.intersect(grid),
            0.0,
            Color32::from_rgba_unmultiplied(255, 255, 255, 14),
        );
        painter.rect_filled(
            Rect::from_min_max(pos2(r.left(), ruler.top()), pos2(r.right(), ruler.bottom()))
                .intersect(ruler),
            0.0,
            Color32::from_rgba_unmultiplied(120, 200, 255, 60),
        );
    }
    let primer_x = step_x(score.primer_steps as f32);
    if score.primer_steps > 0 && grid.x_range().contains(primer_x) {
        let x = primer_x;
        painter.vline(
            x,
            grid.y_range(),
            Stroke::new(1.5, Color32::from_rgb(90, 140, 220)),
        );
    }

    // Notes (only the visible ones are drawn).
    let note_rect = |n: &crate::studio::score::ScoreNote| {
        Rect::from_min_max(
            pos2(step_x(n.start as f32), pitch_y(f32::from(n.pitch) + 1.0)),
            pos2(step_x(n.end() as f32), pitch_y(f32::from(n.pitch))),
        )
    };
    // Which notes are selected, looked up once per note (a whole piece may be selected).
    let mut selected = vec![false; score.notes.len()];
    for &i in &view.selection {
        if let Some(s) = selected.get_mut(i) {
            *s = true;
        }
    }
    for (i, n) in score.notes.iter().enumerate() {
        let r = note_rect(n);
        if !r.intersects(grid) {
            continue;
        }
        let r = r.shrink2(vec2(0.5, 0.5)).intersect(grid);
        painter.rect_filled(r, 1.5, note_color(n.origin, n.velocity));
        if selected[i] {
            painter.rect_stroke(r, 1.5, Stroke::new(1.5, Color32::WHITE), StrokeKind::Inside);
        }
    }
    // Step input's cursor: where its next note goes, its octave's C marked on the keyboard.
    if view.step_input {
        let x = step_x(view.entry_step(playhead) as f32);
        let colour = Color32::from_rgb(120, 220, 255);
        if grid.x_range().contains(x) {
            painter.vline(x, grid.y_range(), Stroke::new(1.0, colour));
        }
        let c = 12.0 * (f32::from(view.entry_octave) + 1.0);
        let (y0, y1) = (pitch_y(c + 13.0), pitch_y(c));
        let band = Rect::from_min_max(pos2(keys.right() - 4.0, y0), pos2(keys.right(), y1));
        painter.rect_filled(band.intersect(keys), 0.0, colour);
    }
    if let Some(p) = playhead {
        let x = step_x(p as f32);
        if grid.x_range().contains(x) {
            painter.vline(
                x,
                rect.y_range(),
                Stroke::new(1.5, Color32::from_rgb(255, 80, 80)),
            );
        }
    }

    // Interaction.
    let pointer = response.interact_pointer_pos().or(response.hover_pos());
    // The step under the pointer (what it points at), and where a note it places goes: the
    // finest grid drawn (steps zoomed in, else beats, else bars), as a DAW snaps.
    let cell = |x: f32| to_step(x).max(0.0).floor() as i64;
    let bar_map = score.bar_map();
    // The grid cell under the pointer: its first step and the step after it.
    let unit = |x: f32| -> (i64, i64) {
        let at = f64::from(to_step(x).max(0.0));
        let step = at.floor() as i64;
        if step_px >= STEP_LINES_PX {
            return (step, step + 1);
        }
        let bars = bar_map.bars(at as usize + 2, at, at + 1.0);
        let Some(bar) = bars.into_iter().rfind(|b| b.start <= at) else {
            return (step, step + 1);
        };
        let beat = bar.meter.beat_steps();
        let (start, len) = match beat * f64::from(step_px) >= BEAT_LINES_PX && beat > 0.0 {
            true => (bar.start + ((at - bar.start) / beat).floor() * beat, beat),
            false => (bar.start, bar.meter.bar_steps()),
        };
        let start = start.floor() as i64;
        (start, ((start as f64 + len).floor() as i64).max(start + 1))
    };
    let snap = |x: f32| unit(x).0;
    let pitch_at = |y: f32| to_pitch(y).floor().clamp(0.0, 127.0) as i32;
    // A key sounds as it is pressed (not when the click ends); the ruler seeks on a click.
    if ui.input(|i| i.pointer.primary_pressed())
        && let Some(pos) = pointer.filter(|p| keys.contains(*p))
    {
        out.preview = Some(pitch_at(pos.y) as u8);
    }
    if (response.clicked() || response.drag_started())
        && let Some(pos) = pointer.filter(|p| ruler.contains(*p))
    {
        out.seek = Some(cell(pos.x) as usize);
        // Step input goes on from where the playhead is put.
        view.entry = out.seek;
    }
    let erase = response.secondary_clicked();
    if erase || ui.input(|i| i.pointer.primary_pressed()) {
        // What a drag or held arrow moved is settled before the selection changes hands.
        out.changed |= view.settle_now(score);
    }
    if erase
        && let Some(pos) = pointer.filter(|p| grid.contains(*p))
        && let Some(i) = score.note_at(cell(pos.x) as usize, pitch_at(pos.y) as u8)
    {
        history.record(score);
        score.delete(&[i]);
        // The rest of the selection stays selected (the notes after it move down one); a box
        // being dragged meanwhile ends (its indices were of the notes before).
        view.drag = None;
        view.box_base.clear();
        view.selection.retain(|&s| s != i);
        for s in &mut view.selection {
            if *s > i {
                *s -= 1;
            }
        }
        out.changed = true;
    }
    // The pointer shows what a press would do: resize at a note's end, move elsewhere on it.
    if let Some(pos) = response.hover_pos().filter(|p| grid.contains(*p))
        && view.drag.is_none()
        && let Some(i) = score.note_at(cell(pos.x) as usize, pitch_at(pos.y) as u8)
    {
        let r = note_rect(&score.notes[i]);
        ui.ctx()
            .set_cursor_icon(if r.right() - pos.x <= EDGE.min(r.width() / 3.0) {
                egui::CursorIcon::ResizeHorizontal
            } else {
                egui::CursorIcon::Grab
            });
    }
    let pressed = ui.input(|i| i.pointer.primary_pressed());
    if pressed {
        view.past_click = false;
    }
    if pressed
        && view.drag.is_none()
        && let Some(pos) = pointer.filter(|p| grid.contains(*p))
    {
        let (step, pitch) = (snap(pos.x), pitch_at(pos.y));
        let shift = ui.input(|i| i.modifiers.shift);
        match score.note_at(cell(pos.x) as usize, pitch as u8) {
            // Shift on a selected note takes it out of the selection: nothing to drag.
            Some(i) if shift && view.selection.contains(&i) => {
                view.selection.retain(|&s| s != i);
            }
            Some(i) => {
                if shift {
                    view.selection.push(i);
                } else if !view.selection.contains(&i) {
                    view.selection = vec![i];
                }
                out.preview = Some(score.notes[i].pitch);
                // The undo step is recorded when the note first moves or changes length:
                // clicking a note to hear it leaves the history (and its redo steps) alone.
                // The grab zone is at most a third of the note, so a short note can be moved.
                let r = note_rect(&score.notes[i]);
                let near_end = r.right() - pos.x <= EDGE.min(r.width() / 3.0);
                view.drag = Some(if near_end {
                    Drag::Resize {
                        step,
                        edited: false,
                    }
                } else {
                    Drag::Move {
                        step,
                        pitch,
                        edited: false,
                    }
                });
            }
            None if view.tool == Tool::Draw && !shift => {
                history.record(score);
                let i = score.draw(pitch as u8, step as usize, view.draw_len);
                view.selection = vec![i];
                view.unsettled = true;
                out.preview = Some(pitch as u8);
                out.changed = true;
                view.drag = Some(Drag::Draw {
                    start: step,
                    moved: false,
                });
            }
            None => {
                // With Shift the box adds to the selection there is.
                view.box_base = if shift {
                    std::mem::take(&mut view.selection)
                } else {
                    Vec::new()
                };
                view.selection.clear();
                view.drag = Some(Drag::Box {
                    step: to_step(pos.x),
                    pitch: to_pitch(pos.y),
                });
            }
        }
    }
    // A press only moves, resizes or stretches once the pointer has moved beyond a click's
    // wobble (egui's own threshold): a click selects a note, or draws one of the drawing length.
    let wobble = ui.ctx().options(|o| o.input_options.max_click_dist);
    view.past_click |= ui.input(|i| {
        (i.pointer.press_origin().zip(i.pointer.latest_pos()))
            .is_some_and(|(from, now)| from.distance(now) > wobble)
    });
    if let (Some(drag), Some(pos)) = (view.drag, pointer)
        && (view.past_click || matches!(drag, Drag::Box { .. }))
    {
        let (step, pitch) = (snap(pos.x), pitch_at(pos.y));
        match drag {
            Drag::Move {
                step: s0,
                pitch: p0,
                edited,
            } => {
                // The selection moves as one: a note pressed against an edge holds the
                // others where they are relative to it (as the arrow keys move them).
                let (ds, dp) = match (step - s0, pitch - p0) {
                    (0, 0) => (0, 0),
                    (ds, dp) => score.group_move(&view.selection, ds, dp),
                };
                if ds != 0 || dp != 0 {
                    if !edited {
                        history.record(score);
                    }
                    score.shift(&view.selection, ds, dp);
                    view.unsettled = true;
                    view.drag = Some(Drag::Move {
                        step: s0 + ds,
                        pitch: p0 + dp,
                        edited: true,
                    });
                    out.changed = true;
                }
            }
            Drag::Resize { step: s0, edited } => {
                let ds = match step - s0 {
                    0 => 0,
                    ds => score.group_stretch(&view.selection, ds),
                };
                if ds != 0 {
                    if !edited {
                        history.record(score);
                    }
                    score.stretch(&view.selection, ds);
                    view.unsettled = true;
                    if let Some(n) = view.selection.first().and_then(|&i| score.notes.get(i)) {
                        view.draw_len = n.len;
                    }
                    view.drag = Some(Drag::Resize {
                        step: s0 + ds,
                        edited: true,
                    });
                    out.changed = true;
                }
            }
            Drag::Draw { start, moved } => {
                let moved = moved || step != start;
                view.drag = Some(Drag::Draw { start, moved });
                let note = view.selection.first().and_then(|&i| score.notes.get(i));
                if let (true, Some(n)) = (moved, note) {
                    // From the note's own start (a note drawn at the grid's end starts before
                    // the pressed cell).
                    let want = (unit(pos.x).1 - n.start as i64).max(1);
                    let ds = match want - n.len as i64 {
                        0 => 0,
                        ds => score.group_stretch(&view.selection, ds),
                    };
                    if ds != 0 {
                        score.stretch(&view.selection, ds);
                        if let Some(n) = view.selection.first().and_then(|&i| score.notes.get(i)) {
                            view.draw_len = n.len;
                        }
                        out.changed = true;
                    }
                }
            }
            Drag::Box {
                step: from_step,
                pitch: from_pitch,
            } => {
                let r = Rect::from_two_pos(pos2(step_x(from_step), pitch_y(from_pitch)), pos);
                painter.rect_stroke(
                    r,
                    0.0,
                    Stroke::new(1.0, Color32::LIGHT_BLUE),
                    StrokeKind::Inside,
                );
                let (s0, s1) = (cell(r.left()) as usize, cell(r.right()) as usize + 1);
                let (p0, p1) = (pitch_at(r.bottom()) as u8, pitch_at(r.top()) as u8);
                let mut selection = view.box_base.clone();
                selection.extend(score.in_box(s0, s1, p0, p1));
                selection.sort_unstable();
                selection.dedup();
                view.selection = selection;
            }
        }
    }
    if ui.input(|i| i.pointer.primary_released()) {
        view.drag = None;
    }
    // Keys typed into a text field (the seed, the tempo) are not edits of the roll; with a
    // button or slider focused (after Tab) they still are, but for the arrows, which move that
    // widget or the focus, unless the roll itself has the focus.
    let typing = ui.ctx().text_edit_focused();
    let arrows = !ui.ctx().egui_wants_keyboard_input() || response.has_focus();
    if response.has_focus() {
        // The arrows stay with the roll (they would move the focus on otherwise).
        // Escape too: it lets go of the selection, not of the roll.
        let keep = egui::EventFilter {
            horizontal_arrows: true,
            vertical_arrows: true,
            escape: true,
            ..Default::default()
        };
        ui.memory_mut(|m| m.set_focus_lock_filter(response.id, keep));
        painter.rect_stroke(
            grid.shrink(1.0),
            0.0,
            ui.visuals().selection.stroke,
            egui::StrokeKind::Inside,
        );
    }
    if !view.selection.is_empty()
        && !typing
        && ui.input(|i| i.key_pressed(egui::Key::Delete) || i.key_pressed(egui::Key::Backspace))
    {
        view.settle_now(score);
        // Step input goes back to where the notes taken back were entered.
        if view.step_input {
            view.entry = (view.selection.iter())
                .filter_map(|&i| score.notes.get(i))
                .map(|n| n.start)
                .min();
        }
        history.record(score);
        score.delete(&view.selection);
        view.selection.clear();
        view.drag = None;
        view.box_base.clear();
        out.changed = true;
    }
    if !typing {
        // An edit by other means ends what a held arrow's repeats belong to.
        if out.changed {
            view.held = None;
        }
        // A paste lands at step input's cursor, else where the pointer is over the grid.
        let paste_at = match view.step_input {
            true => Some(view.entry_step(playhead)),
            false => (pointer.filter(|p| grid.contains(*p))).map(|p| snap(p.x) as usize),
        };
        let preview = &mut out.preview;
        out.changed |= keyboard_edits(ui, score, view, history, paste_at, arrows, preview);
        if view.step_input {
            let shown = (grid.height() / view.key_px, grid.width() / view.step_px);
            let entered = step_input(ui, score, view, history, playhead, shown, arrows);
            out.changed |= entered.is_some();
            out.preview = entered.or(out.preview);
        }
    }
    // A gesture or a held arrow over: the notes moved, stretched or drawn no longer overlap
    // notes of their pitch (part of the same undo step).
    if view.drag.is_none() && view.held.is_none() {
        out.changed |= view.settle_now(score);
    }
    view.selection.retain(|&i| i < score.notes.len());
    out
}

/// What Copy puts on the system clipboard before the notes (as JSON), so that Paste knows
/// notes from text.
const CLIPBOARD_TAG: &str = "segue-notes:";

/// Editing from the keyboard: the arrows move the selection a step or a semitone (with Shift
/// a beat or an octave; with Ctrl, Left and Right shorten and lengthen it), Ctrl+A selects every note, Ctrl+D repeats the selection right after
/// itself (whole beats after its start), Ctrl+C, Ctrl+X and Ctrl+V copy, cut and paste through the system clipboard (so
/// between two studios too); a paste lands at `paste_at`, else after the piece's end. Returns
/// whether the score changed.
fn keyboard_edits(
    ui: &Ui,
    score: &mut Score,
    view: &mut RollView,
    history: &mut History,
    paste_at: Option<usize>,
    arrows: bool,
    preview: &mut Option<u8>,
) -> bool {
    use egui::{Event, Key};
    let (shift, command) = ui.input(|i| (i.modifiers.shift, i.modifiers.command));
    let pressed = |key: Key| ui.input(|i| i.key_pressed(key));
    let event = |matches: fn(&Event) -> bool| ui.input(|i| i.events.iter().any(matches));
    let mut changed = false;

    if (command && pressed(Key::A)) || pressed(Key::Escape) {
        changed |= view.settle_now(score);
    }
    if command && pressed(Key::A) {
        view.selection = (0..score.notes.len()).collect();
    }
    // Escape lets go of the selection.
    if pressed(Key::Escape) && !view.selection.is_empty() && view.drag.is_none() {
        view.selection.clear();
        view.box_base.clear();
    }
    // Alt+Left / Alt+Right: the previous or next note (by start, then pitch) selected, and
    // sounded; with Shift added to the selection.
    let alt = ui.input(|i| i.modifiers.alt);
    if alt && !command && arrows {
        for (key, forward) in [(Key::ArrowRight, true), (Key::ArrowLeft, false)] {
            if !pressed(key) {
                continue;
            }
            changed |= view.settle_now(score);
            if let Some(i) = neighbour(score, &view.selection, forward) {
                if !shift {
                    view.selection.clear();
                }
                if !view.selection.contains(&i) {
                    view.selection.push(i);
                }
                *preview = Some(score.notes[i].pitch);
            }
        }
    }
    let selected = !view.selection.is_empty();
    // With Ctrl, Left and Right shorten and lengthen the selection (as dragging an end does).
    if selected && !alt && arrows {
        let first = score.span(&view.selection).map_or(0, |s| s.0);
        let beat = beat_at(score, first) as i64;
        let (step, semitones) = if shift { (beat, 12) } else { (1, 1) };
        let keys = [
            (Key::ArrowLeft, -step, 0),
            (Key::ArrowRight, step, 0),
            (Key::ArrowUp, 0, semitones),
            (Key::ArrowDown, 0, -semitones),
        ];
        let stretch = command;
        for (key, steps, semitones) in keys.into_iter().take(if stretch { 2 } else { 4 }) {
            if !pressed(key) {
                continue;
            }
            // The selection moves (or stretches) as one, as far as its outermost (shortest)
            // note can; at the edge the key does nothing (and records nothing). A beat or an
            // octave moves whole or not at all: part of an octave would put the passage in
            // another key.
            let wanted = (steps, semitones);
            let (steps, semitones) = match stretch {
                true => (score.group_stretch(&view.selection, steps), 0),
                false => score.group_move(&view.selection, steps, semitones),
            };
            if (steps, semitones) == (0, 0) || (shift && (steps, semitones) != wanted) {
                continue;
            }
            // A held key moves on with its repeats as one undo step: the one its press
            // recorded (a repeat whose press recorded nothing records its own).
            let repeat = ui.input(|i| {
                i.events.iter().any(|e| {
                    matches!(e, Event::Key { key: k, pressed: true, repeat: true, .. } if *k == key)
                })
            });
            if !repeat || view.held != Some(key) {
                history.record(score);
                view.held = Some(key);
            }
            match stretch {
                true => score.stretch(&view.selection, steps),
                false => score.shift(&view.selection, steps, semitones),
            }
            view.unsettled = true;
            changed = true;
            // A move in pitch sounds the moved note (the first selected), as a click on it does.
            if semitones != 0 {
                *preview = view.selection.first().map(|&i| score.notes[i].pitch);
            }
        }
    }
    // Let go of: its repeats are over (checked after them, so that a last repeat and the
    // release in one frame do not make a step of their own).
    if let Some(key) = view.held
        && !ui.input(|i| i.key_down(key))
    {
        view.held = None;
    }
    let copy = event(|e| matches!(e, Event::Copy));
    let cut = event(|e| matches!(e, Event::Cut));
    if selected && (copy || cut) {
        let notes = score.copy(&view.selection);
        if let Ok(json) = serde_json::to_string(&notes) {
            ui.ctx().copy_text(format!("{CLIPBOARD_TAG}{json}"));
        }
        if cut {
            view.settle_now(score);
            history.record(score);
            score.delete(&view.selection);
            view.selection.clear();
            view.drag = None;
            view.box_base.clear();
            view.held = None;
            changed = true;
        }
    }
    let pasted = ui.input(|i| {
        i.events.iter().find_map(|e| match e {
            Event::Paste(text) => text.strip_prefix(CLIPBOARD_TAG).and_then(|json| {
                serde_json::from_str::<Vec<crate::studio::score::ScoreNote>>(json).ok()
            }),
            _ => None,
        })
    });
    if let Some(notes) = pasted.filter(|n| !n.is_empty()) {
        let at = paste_at.unwrap_or_else(|| score.steps());
        changed |= paste_recorded(score, view, history, &notes, at);
    }
    if selected
        && command
        && pressed(Key::D)
        && let Some((start, end)) = score.span(&view.selection)
    {
        // Whole beats after its start, so the repeat keeps the rhythm's place in the beat
        // (a motif ending mid-beat is not pulled off the beat).
        let beat = beat_at(score, start);
        let length = (end - start).div_ceil(beat) * beat;
        let notes = score.copy(&view.selection);
        changed |= paste_recorded(score, view, history, &notes, start + length);
    }
    changed
}

/// Step input: each key of [`STEP_KEYS`] enters a note of the drawing length at the entry
/// cursor (`view.entry`, else the playhead's step) in `view.entry_octave` and moves the cursor
/// on by that length; with Shift the cursor stays, to build a chord (the key without Shift
/// adds its last note and moves on). `.` moves on by a rest; Z and X take the octave down and
/// up; `[` and `]` halve and double the length (1 to 64 steps); without a selection, Left and
/// Right move the cursor a step (with Shift a beat). Keys are read where they lie on the
/// keyboard (their physical place), so the piano keeps its shape on AZERTY or QWERTZ
/// keyboards. The notes entered at the cursor are selected (the arrows adjust them, Delete
/// takes them back), each key one undo step; held keys do not repeat; a note above G9 is not
/// entered. The view follows the cursor and the octave (`shown`: pitch rows and steps in
/// view). Returns the last pitch entered, to sound.
fn step_input(
    ui: &Ui,
    score: &mut Score,
    view: &mut RollView,
    history: &mut History,
    playhead: Option<f64>,
    shown: (f32, f32),
    arrows: bool,
) -> Option<u8> {
    use egui::{Event, Key};
    let presses: Vec<(Key, bool)> = ui.input(|i| {
        (i.events.iter())
            .filter_map(|e| match e {
                Event::Key {
                    key,
                    physical_key,
                    pressed: true,
                    repeat: false,
                    modifiers,
                } if !modifiers.command && !modifiers.alt => {
                    Some((physical_key.unwrap_or(*key), modifiers.shift))
                }
                _ => None,
            })
            .collect()
    });
    let mut entered = None;
    let mut handled = false;
    for (key, shift) in presses {
        let at = view.entry_step(playhead);
        let len = view.draw_len.clamp(1, Score::MAX_STEPS);
        let last = Score::MAX_STEPS - 1;
        let beat = || beat_at(score, at);
        match key {
            Key::Z => view.entry_octave = (view.entry_octave - 1).max(*ENTRY_OCTAVES.start()),
            Key::X => view.entry_octave = (view.entry_octave + 1).min(*ENTRY_OCTAVES.end()),
            Key::Period => view.entry = Some((at + len).min(last)),
            Key::OpenBracket => view.draw_len = (len / 2).max(1),
            Key::CloseBracket => view.draw_len = (len * 2).min(MAX_ENTRY_LEN),
            Key::ArrowLeft | Key::ArrowRight if arrows && view.selection.is_empty() => {
                let by = if shift { beat() } else { 1 };
                view.entry = Some(match key {
                    Key::ArrowLeft => at.saturating_sub(by),
                    _ => (at + by).min(last),
                });
            }
            _ => {
                let Some(&(_, semitones)) = STEP_KEYS.iter().find(|(k, _)| *k == key) else {
                    continue;
                };
                let pitch = 12 * (i32::from(view.entry_octave) + 1) + i32::from(semitones);
                let Some(pitch) = u8::try_from(pitch)
                    .ok()
                    .filter(|&p| usize::from(p) < PITCHES)
                else {
                    continue;
                };
                view.settle_now(score);
                history.record(score);
                // The notes entered before at this cursor stay selected with it (a chord).
                let chord = view.selection.iter().all(|&i| score.notes[i].start == at);
                if !chord {
                    view.selection.clear();
                }
                let i = score.draw(pitch, at, len);
                view.selection.push(i);
                view.unsettled = true;
                view.entry = Some(if shift { at } else { (at + len).min(last) });
                entered = Some(pitch);
            }
        }
        // (A key of no use here went on to the next before this.)
        handled = true;
    }
    if !handled {
        return entered;
    }
    // The view follows: the cursor in sight (a tenth of the view before it), and the octave's
    // keys, or the note entered.
    let (rows, steps) = shown;
    let cursor = view.entry_step(playhead) as f32;
    if cursor < view.scroll_step || cursor >= view.scroll_step + steps * 0.95 {
        view.scroll_step = (cursor - steps * 0.1).max(0.0);
    }
    let c = 12.0 * (f32::from(view.entry_octave) + 1.0);
    let (low, high) = match entered {
        Some(p) => (f32::from(p), f32::from(p) + 1.0),
        None => (c, (c + 13.0).min(PITCHES as f32)),
    };
    if high > view.top_pitch || low < view.top_pitch - rows {
        view.top_pitch = ((low + high) / 2.0 + rows / 2.0).clamp(rows.min(127.0), 128.0);
    }
    entered
}

/// The longest note step input enters (`]` doubles the length up to it): four bars of 4/4.
pub const MAX_ENTRY_LEN: usize = 64;

/// The counted beat at `step` in whole steps (a dotted quarter in 6/8), at least one: what
/// Shift+arrows move by, and what a repeat is aligned to.
fn beat_at(score: &Score, step: usize) -> usize {
    let pulse = crate::meter::meter_at(&score.meters, step).pulse_steps();
    pulse.round().max(1.0) as usize
}

/// The note after the selection (`forward`) or before it, in the order of starts and then
/// pitches: after its last note or before its first; without a selection, the piece's first
/// or last note. `None` at the end (or without notes).
fn neighbour(score: &Score, selection: &[usize], forward: bool) -> Option<usize> {
    let key = |i: usize| (score.notes[i].start, score.notes[i].pitch, i);
    let mut order: Vec<usize> = (0..score.notes.len()).collect();
    order.sort_by_key(|&i| key(i));
    let place = |i: usize| order.iter().position(|&o| o == i);
    let chosen = selection.iter().filter_map(|&i| place(i));
    match (forward, selection.is_empty()) {
        (true, true) => order.first().copied(),
        (false, true) => order.last().copied(),
        (true, false) => chosen.max().and_then(|p| order.get(p + 1)).copied(),
        (false, false) => chosen
            .min()
            .and_then(|p| p.checked_sub(1))
            .map(|p| order[p]),
    }
}

/// Pastes `notes` at `at`, selecting them, as one undo step where it added any (a paste that
/// lands wholly on identical notes only selects them). Returns whether the score changed.
fn paste_recorded(
    score: &mut Score,
    view: &mut RollView,
    history: &mut History,
    notes: &[crate::studio::score::ScoreNote],
    at: usize,
) -> bool {
    let before = score.clone();
    view.selection = score.paste(notes, at);
    view.selection = score.settle(&view.selection).0;
    view.held = None;
    // A pasted note may take the place of one it covers: the count alone would not tell.
    if score.notes == before.notes {
        return false;
    }
    history.record(&before);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn louder_notes_are_brighter() {
        for origin in [Origin::Primer, Origin::Generated, Origin::Edited] {
            let (soft, plain, loud) = (
                note_color(origin, 1),
                note_color(origin, DEFAULT_VELOCITY),
                note_color(origin, 127),
            );
            assert_eq!(plain, origin_color(origin));
            let sum = |c: Color32| u32::from(c.r()) + u32::from(c.g()) + u32::from(c.b());
            assert!(sum(soft) < sum(plain) && sum(plain) < sum(loud));
        }
    }
}
