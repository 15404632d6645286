//! The generation panel: the model, composers A and B, the mode, the slider and the
//! sampling controls.

use egui::{RichText, Ui};

use crate::generate::{self, Interpolation, Mode};
use crate::models::dcgan::Cells;
use crate::studio::engines::EngineKind;
use crate::studio::piano_roll::origin_color;
use crate::studio::score::Origin;

use super::{
    DialogResult, MAX_STUDIO_SEED, OPEN_MODEL_HINT, Studio, THE_PIECE, describe, mode_name,
    model_about, say_progress, slider_ends, why_disabled,
};

impl Studio {
    /// Whether the chosen model draws its notes (so the temperature counts): the VAEs and a
    /// DCGAN that is not thresholded.
    pub(super) fn engine_samples(&self) -> bool {
        match self.session.engine {
            EngineKind::LstmVae | EngineKind::TransformerVae => true,
            EngineKind::ClassifierAscent => false,
            EngineKind::Dcgan => (self.others.gan.as_ref())
                .is_none_or(|g| g.model.config().cells != Cells::Thresholded),
        }
    }

    pub(super) fn generation_panel(&mut self, ui: &mut Ui) {
        ui.heading("Generation");
        // The LSTM-VAE: which one, or why there is none (the other engines work without it).
        let pick_model = match &self.model {
            Some(model) => {
                // The preset the sizes match today (a run can predate a preset's change).
                let preset = model
                    .manifest
                    .config
                    .preset_name()
                    .unwrap_or(&model.manifest.preset);
                let shown = ui.label(format!(
                    "LSTM-VAE: {preset} ({} steps)",
                    model.manifest.total_steps()
                ));
                // Where it came from and what its licence asks (CC BY-SA: the credits go
                // with the weights), on hover and for screen readers.
                let about = || {
                    let m = &model.manifest;
                    model_about(&model.path, &m.licence, &m.credits)
                };
                describe(&shown, about);
                shown.on_hover_ui(|ui| {
                    ui.label(about());
                });
                let (open, shipped) = ui
                    .horizontal(|ui| {
                        let open = ui
                            .small_button("Open a model file...")
                            .on_hover_text(OPEN_MODEL_HINT)
                            .clicked();
                        let shipped = ui
                            .small_button("Shipped models")
                            .on_hover_text(
                                "Go back to the four models shipped in the weights folder \
                                 (the LSTM-VAE, Transformer VAE, classifier and DCGAN)",
                            )
                            .clicked();
                        (open, shipped)
                    })
                    .inner;
                if shipped {
                    self.use_shipped_models();
                }
                open
            }
            None if self.loading => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Loading the models...");
                });
                false
            }
            None => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    self.model_error.clone().unwrap_or_default(),
                );
                ui.button("Open a model file...")
                    .on_hover_text(OPEN_MODEL_HINT)
                    .clicked()
            }
        };
        if pick_model {
            // Where the training panel's runs are (a hidden folder a file dialog would hide).
            let runs = self.models_dir.clone().filter(|dir| dir.is_dir());
            self.dialog(|| {
                let dialog = rfd::FileDialog::new().add_filter("model", &["safetensors"]);
                let dialog = match runs {
                    Some(dir) => dialog.set_directory(dir),
                    None => dialog,
                };
                dialog.pick_file().map(DialogResult::Model)
            });
        }
        let mut engine = self.session.engine;
        // Switching before the models are there would lose the composers' names.
        ui.add_enabled_ui(!self.loading, |ui| {
            egui::ComboBox::from_label("Model")
                .selected_text(engine.label())
                .show_ui(ui, |ui| {
                    for e in [
                        EngineKind::LstmVae,
                        EngineKind::TransformerVae,
                        EngineKind::ClassifierAscent,
                        EngineKind::Dcgan,
                    ] {
                        ui.selectable_value(&mut engine, e, e.label());
                    }
                });
        });
        if engine != self.session.engine {
            self.set_engine(engine);
        }
        // Controls that do not apply to the chosen engine are greyed out: only the VAEs have
        // a style A, modes and the slider; ascent aims at B; the DCGAN knows no composers;
        // ascent and a thresholding DCGAN do not sample.
        let composers = self.composers();
        // A model of one composer (a musician's own folder, say) has no second style: B, the
        // slider and the modes that move between A and B have nothing to move between.
        // With the piece itself as style A, B is the second style.
        let one_composer = composers.len() == 1 && !self.session.a_is_the_piece;
        let s = &mut self.session;
        let is_vae = s.engine.is_vae();
        let blends = is_vae && !one_composer;
        let uses_b = blends || s.engine == EngineKind::ClassifierAscent;
        let s = &mut self.session;
        if let Some(last) = composers.len().checked_sub(1) {
            s.composer_a = s.composer_a.min(last);
            s.composer_b = s.composer_b.min(last);
        }
        let (mut a, mut b) = (s.composer_a, s.composer_b);
        let mut a_is_the_piece = s.a_is_the_piece;
        let mut picked = false;
        ui.add_enabled_ui(is_vae, |ui| {
            let shown = match a_is_the_piece {
                true => THE_PIECE.to_string(),
                false => composers.get(a).cloned().unwrap_or_default(),
            };
            egui::ComboBox::from_label("Style A")
                .selected_text(shown)
                .show_ui(ui, |ui| {
                    picked |= ui
                        .selectable_value(&mut a_is_the_piece, true, THE_PIECE)
                        .on_hover_text(
                            "The style of the opened file (or the roll) itself, read from its \
                             first bars: a continuation keeps it, a transition leaves it for B",
                        )
                        .clicked();
                    for (i, c) in composers.iter().enumerate() {
                        if ui.selectable_label(!a_is_the_piece && a == i, c).clicked() {
                            (a, a_is_the_piece, picked) = (i, false, true);
                        }
                    }
                });
        });
        ui.add_enabled_ui(uses_b, |ui| {
            egui::ComboBox::from_label("Composer B")
                .selected_text(composers.get(b).cloned().unwrap_or_default())
                .show_ui(ui, |ui| {
                    for (i, c) in composers.iter().enumerate() {
                        picked |= ui.selectable_value(&mut b, i, c).clicked();
                    }
                });
        });
        if picked {
            self.pick_styles(a_is_the_piece, a, b);
        }
        let s = &mut self.session;
        let mut alpha = s.alpha;
        // Said only when asked for (a hover, a screen reader), not made every frame.
        let ends = || slider_ends(s, &composers);
        let slider = ui
            .add_enabled(
                blends,
                egui::Slider::new(&mut alpha, 0.0..=1.0).text("A <-> B"),
            )
            .on_hover_ui(|ui| {
                ui.label(format!(
                    "The blend of A's and B's styles ({}); moving it blends and regenerates",
                    ends()
                ));
            });
        if slider.enabled() {
            // What the ends are, in words a screen reader reads with the value.
            describe(&slider, ends);
        }
        let slider = why_disabled(
            slider,
            if one_composer {
                "This model knows one composer: there is no second style to blend with (pick \
                 the piece itself as style A, or train it on a folder of two or more \
                 composers' folders)"
            } else {
                "The blend of two styles: a VAE's"
            },
        );
        if slider.changed() {
            self.set_alpha(alpha);
        }
        ui.add_enabled(
            is_vae && self.player.is_some(),
            egui::Checkbox::new(&mut self.session.play_blends, "Play each blend"),
        )
        .on_hover_text(
            "When a blend the slider asked for arrives and nothing is playing, play it from \
             the start (or the loop)",
        );
        let samples = self.engine_samples();
        let s = &mut self.session;
        let mut strength = s.style_strength;
        ui.add_enabled_ui(blends, |ui| {
            egui::ComboBox::from_label("Mode")
                .selected_text(mode_name(s.mode))
                .show_ui(ui, |ui| {
                    for m in [
                        Mode::Continue,
                        Mode::Transfer,
                        Mode::Transition,
                        Mode::Blend,
                    ] {
                        ui.selectable_value(&mut s.mode, m, mode_name(m));
                    }
                });
        });
        ui.add(
            egui::Slider::new(&mut s.length, 16..=2048)
                .text("length (steps)")
                .logarithmic(true),
        );
        let temperature = ui.add_enabled(
            samples,
            egui::Slider::new(&mut s.temperature, 0.2..=2.0).text("temperature"),
        );
        why_disabled(
            temperature,
            "This model does not sample: it keeps its strongest notes",
        );
        egui::CollapsingHeader::new("More controls")
            .id_salt("more-controls")
            .show(ui, |ui| {
                // Only the VAEs hear a primer and mix two codes (ascent and the DCGAN start
                // from noise); mixing matters where both codes are used.
                ui.add_enabled(
                    is_vae,
                    egui::Slider::new(&mut s.primer_steps, 1..=512)
                        .text("primer (steps)")
                        .logarithmic(true),
                )
                .on_hover_text(if s.engine == EngineKind::TransformerVae {
                    "How much of the opened file (or the roll) comes first, kept before the \
                     model's part (the Transformer VAE decodes from the codes of styles A and \
                     B; in Style transfer it reads the piece's code)"
                } else {
                    "How much of the opened file (or the roll) the model hears first and \
                     continues (from the bar of its first note, to the bar line nearest this \
                     many steps: 64 are four bars of 4/4, five of 3/4)"
                });
                let notes = ui.add(
                    egui::Slider::new(&mut s.max_notes, 1..=16).text("notes per step, at most"),
                );
                if s.engine == EngineKind::ClassifierAscent {
                    notes.on_hover_text("Classifier ascent keeps at most 3, as the paper did");
                }
                // Within the piece: a longer transition would never reach B.
                s.transition_steps = s.transition_steps.min(s.length);
                ui.add_enabled(
                    is_vae && s.mode == Mode::Transition,
                    egui::Slider::new(&mut s.transition_steps, 0..=s.length)
                        .text("transition (steps)")
                        .logarithmic(true),
                )
                .on_hover_text("Steps over which A turns into B; 0 = the whole length");
                ui.add_enabled(
                    is_vae,
                    egui::Slider::new(&mut strength, 0.0..=generate::MAX_STYLE_STRENGTH)
                        .text("style strength"),
                )
                .on_hover_text(
                    "How strongly the composers' styles count: 1 = as learned, above 1 \
                     exaggerated (what sets a composer apart from the others counts more), \
                     0 = no composer in particular; in Blend mode a change blends again",
                );
                let mixes = is_vae && matches!(s.mode, Mode::Blend | Mode::Transition);
                ui.add_enabled_ui(mixes, |ui| {
                    egui::ComboBox::from_label("mixing")
                        .selected_text(match s.interpolation {
                            Interpolation::Linear => "Linear",
                            Interpolation::Spherical => "Spherical",
                        })
                        .show_ui(ui, |ui| {
                            ui.selectable_value(
                                &mut s.interpolation,
                                Interpolation::Spherical,
                                "Spherical",
                            );
                            ui.selectable_value(
                                &mut s.interpolation,
                                Interpolation::Linear,
                                "Linear",
                            );
                        });
                });
            });
        ui.horizontal(|ui| {
            let label = ui.label("seed");
            // The box edits through an f64: beyond 2^53 it could not hold every seed exactly.
            ui.add(egui::DragValue::new(&mut s.seed).range(0..=MAX_STUDIO_SEED))
                .labelled_by(label.id);
            if ui
                .button("Dice")
                .on_hover_text("A new random seed")
                .clicked()
            {
                s.seed = rand::random::<u32>() as u64;
            }
        });
        ui.add(egui::Slider::new(&mut s.variations, 1..=8).text("variations"));
        if strength != self.session.style_strength {
            self.set_style_strength(strength);
        }
        ui.horizontal(|ui| {
            let ready = !self.loading;
            if ui
                .add_enabled(ready, egui::Button::new(RichText::new("Generate").strong()))
                .clicked()
            {
                self.generate();
            }
            if self.job_progress.is_some() && ui.button("Cancel").clicked() {
                self.cancel_generation();
            }
        });
        if let Some(p) = self.job_progress {
            let bar = ui.add(egui::ProgressBar::new(p).show_percentage());
            say_progress(&bar, "Generating");
        }
        if self.variations.len() > 1 || self.variations_held {
            ui.label("Variations (click to audition):");
            ui.horizontal_wrapped(|ui| {
                for k in 0..self.variations.len() {
                    let seed = self.variations_seed.wrapping_add(k as u64);
                    if ui
                        .selectable_label(
                            self.chosen_variation == k && !self.variations_held,
                            format!("#{} (seed {seed})", k + 1),
                        )
                        .clicked()
                    {
                        self.choose_variation(k);
                    }
                }
            });
        }
        ui.separator();
        ui.label("Colours:");
        for (o, name) in [
            (Origin::Primer, "primer"),
            (Origin::Generated, "generated"),
            (Origin::Edited, "edited by hand"),
        ] {
            // A swatch of the colour, the name in the text colour (legible on any theme).
            ui.horizontal(|ui| {
                let (swatch, _) =
                    ui.allocate_exact_size(egui::vec2(14.0, 10.0), egui::Sense::hover());
                ui.painter().rect_filled(swatch, 2.0, origin_color(o));
                ui.label(name);
            });
        }
    }
}
