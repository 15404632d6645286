//! The top bar: open and export (MIDI, WAV and its level), the pedal, transport (play, loop,
//! follow, tempo), undo and redo, trim, and the piano roll's tools and zoom.

use std::path::PathBuf;
use std::sync::mpsc::channel;

use egui::Ui;

use crate::studio::piano_roll::{MAX_STEP_PX, MIN_STEP_PX, Tool};
use crate::studio::workers::catching;

use super::{DialogResult, Studio, WAV_LEVELS, export_name, with_extension};

impl Studio {
    pub(super) fn top_bar(&mut self, ui: &mut Ui) {
        // Wrapped: a narrow window (or a large UI zoom) puts the rest on a second row rather
        // than cutting it off.
        ui.horizontal_wrapped(|ui| {
            if ui
                .button("Open MIDI...")
                .on_hover_text("Open a MIDI file: its start is the primer the models continue")
                .clicked()
            {
                self.dialog(|| {
                    rfd::FileDialog::new()
                        .add_filter("MIDI", &["mid", "midi"])
                        .pick_file()
                        .map(DialogResult::Open)
                });
            }
            let pedal = ui
                .checkbox(&mut self.session.sustain_pedal, "Pedal")
                .on_hover_text(
                    "Open MIDI files with the sustain pedal applied: a note the pedal holds sounds \
                     until it is lifted, as on a piano (off: notes as long as they are written, \
                     as the models learned them)",
                );
            if pedal.changed() {
                self.pedal_changed();
            }
            for (label, kind, extensions, hint) in [
                (
                    "Export MIDI...",
                    "MIDI",
                    &["mid", "midi"][..],
                    "Write the piece as a MIDI file, for a DAW or notation program",
                ),
                (
                    "Export WAV...",
                    "WAV",
                    &["wav"][..],
                    "Render the piece with the built-in piano to a WAV file",
                ),
            ] {
                if ui.button(label).on_hover_text(hint).clicked() {
                    let opened = self
                        .opened_file
                        .as_ref()
                        .or(self.session.primer_path.as_ref());
                    let name = export_name(opened.map(PathBuf::as_path), extensions[0]);
                    self.dialog(move || {
                        let path = rfd::FileDialog::new()
                            .add_filter(kind, extensions)
                            .set_file_name(name)
                            .save_file()?;
                        let chosen = path.clone();
                        let path = with_extension(path, extensions);
                        // The dialog asked about replacing the name it was given, not this
                        // one: a file already there under it is not overwritten unasked.
                        if path != chosen && path.exists() {
                            return Some(DialogResult::Written(
                                Err(format!(
                                    "{} is there already; export again and pick it to replace it",
                                    path.display()
                                )),
                                None,
                            ));
                        }
                        Some(match kind {
                            "MIDI" => DialogResult::ExportMidi(path),
                            _ => DialogResult::ExportWav(path),
                        })
                    });
                }
            }
            let level = &mut self.session.wav_loudness;
            let shown = (WAV_LEVELS.iter())
                .find(|(l, _)| l == level)
                .map_or("Peak at -1 dBFS", |(_, name)| name);
            egui::ComboBox::from_label("WAV level")
                .selected_text(shown)
                .show_ui(ui, |ui| {
                    for (l, name) in WAV_LEVELS {
                        ui.selectable_value(level, l, name);
                    }
                })
                .response
                .on_hover_text(
                    "The level Export WAV writes at: its peak at -1 dBFS, as a DAW normalises a \
                     bounce, or an integrated loudness (EBU R128) as far as that peak allows",
                );
            ui.separator();
            let label = if self.playing() { "Stop" } else { "Play" };
            if ui
                .add_enabled(self.player.is_some(), egui::Button::new(label))
                .on_hover_text(
                    "Play or stop (Space); Home goes back to the start; Page Up and Page Down \
                     turn the roll a page",
                )
                .clicked()
            {
                self.toggle_play();
            }
            ui.checkbox(&mut self.session.looping, "Loop")
                .on_hover_text(
                    "Loop the range of the notes selected with the Select tool, or the whole piece",
                );
            ui.checkbox(&mut self.session.follow_playhead, "Follow")
                .on_hover_text(
                    "While playing, turn the roll to the playhead as it leaves the view",
                );
            let label = ui.label("Tempo");
            let score = &self.session.score;
            // Once, not once a change: `steps` reads every note.
            let end = score.steps();
            let changes = (score.tempo.iter())
                .filter(|t| t.step > 0 && t.step < end)
                .count();
            let hint = if changes == 0 {
                "The piece's tempo".to_string()
            } else {
                format!(
                    "The tempo at the start; the piece's {changes} changes of tempo follow, \
                     scaled to it"
                )
            };
            let mut bpm = self.session.score.bpm;
            let r = ui
                .add(
                    // A file's tempo outside the range the box drags over stays as it is.
                    egui::DragValue::new(&mut bpm)
                        .range(20.0..=300.0)
                        .clamp_existing_to_range(false)
                        .suffix(" bpm"),
                )
                .labelled_by(label.id)
                .on_hover_text(hint);
            if r.changed() {
                // One undo step per drag or typed value, as for the velocity.
                if self.tempo_recorded != Some(self.history.revision()) {
                    self.record_step();
                    self.tempo_recorded = Some(self.history.revision());
                }
                self.session.score.bpm = bpm;
                self.push_score();
            }
            if !r.dragged() && !r.has_focus() {
                self.tempo_recorded = None;
            }
            ui.separator();
            if ui
                .add_enabled(self.history.can_undo(), egui::Button::new("Undo"))
                .on_hover_text("Undo the last edit (Ctrl+Z)")
                .clicked()
            {
                self.undo_or_redo(false);
            }
            if ui
                .add_enabled(self.history.can_redo(), egui::Button::new("Redo"))
                .on_hover_text("Redo (Ctrl+Shift+Z or Ctrl+Y)")
                .clicked()
            {
                self.undo_or_redo(true);
            }
            let rests = self.session.score.trailing_rests();
            if ui
                .add_enabled(rests > 0, egui::Button::new("Trim"))
                .on_hover_text("End the piece with its last note (drops the rests after it)")
                .clicked()
            {
                self.record_step();
                self.session.score.length = 0;
                self.edited_by_hand();
            }
            self.velocity_box(ui);
            ui.separator();
            ui.selectable_value(&mut self.session.view.tool, Tool::Draw, "Draw")
                .on_hover_text(
                    "Press on empty grid to draw a note (drag for its length); drag a note to \
                     move it, its end to resize it; right-click deletes it",
                );
            ui.selectable_value(&mut self.session.view.tool, Tool::Select, "Select")
                .on_hover_text(
                    "Click a note or drag a box to select (Ctrl+A: all; Escape: none); the \
                     arrows move the selection (Shift: a beat or an octave), Delete removes \
                     it, Ctrl+C, Ctrl+X, Ctrl+V and Ctrl+D copy, cut, paste and repeat it",
                );
            // A short slider, so that the toolbar fits a 1280-point window.
            ui.spacing_mut().slider_width = 64.0;
            ui.add(
                egui::Slider::new(&mut self.session.view.step_px, MIN_STEP_PX..=MAX_STEP_PX)
                    .text("zoom")
                    .logarithmic(true),
            )
            .on_hover_text(
                "Zoom in time (also Ctrl+wheel over the roll; Ctrl+Shift+wheel zooms the \
                 pitches, the wheel scrolls them, Shift+wheel scrolls in time)",
            );
            ui.separator();
            ui.toggle_value(&mut self.show_training, "Train...")
                .on_hover_text("Show the Train panel: train the models on a folder of MIDI files");
        });
    }

    pub(super) fn dialog(&mut self, make: impl FnOnce() -> Option<DialogResult> + Send + 'static) {
        let (tx, rx) = channel();
        let wake = self.wake.clone();
        std::thread::spawn(move || {
            // A panic (in the system's dialog, say) is said, not taken for a cancel.
            match catching(make) {
                Ok(Some(r)) => drop(tx.send(r)),
                Ok(None) => {}
                Err(panic) => drop(tx.send(DialogResult::Failed(panic))),
            }
            wake();
        });
        self.dialogs.push(rx);
    }
}
