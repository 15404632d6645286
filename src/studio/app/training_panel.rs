//! The training panel: a run started, followed or stopped, its live loss curves, and the runs
//! trained here.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use egui::Ui;
use egui::accesskit::Live;
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints};

use crate::models::trained;
use crate::studio::engines::{OtherKind, TrainModel};
use crate::studio::plot_words;
use crate::studio::runs::{self, RunSummary};
use crate::studio::workers::catching;
use crate::train::Metrics;

use super::{DialogResult, Studio, say_live, say_plot, say_progress, unused_folder, why_disabled};

impl Studio {
    /// What a run of the chosen model costs on two CPU cores, and how long the shipped one
    /// trained (when it is loaded).
    pub(super) fn training_hint(&self) -> String {
        let shipped = |steps: Option<usize>| {
            steps.map_or(String::new(), |s| {
                format!("; the model in use had {s} steps")
            })
        };
        let o = &self.others;
        if self.train_place().gpu {
            return "On the GPU (CUDA device 0)".into();
        }
        match self.session.train_model {
            TrainModel::LstmVae => format!(
                "About 0.5 s a step of 20 snippets, one per composer or several batches of a \
                 few (studio preset; paper: 5 s) on two CPU cores{}{}",
                shipped(self.model.as_ref().map(|m| m.manifest.total_steps())),
                self.fine_tunes().map_or(String::new(), |m| format!(
                    "; a new run fine-tunes {}",
                    m.path.file_name().unwrap_or_default().to_string_lossy()
                ))
            ),
            TrainModel::Classifier => format!(
                "About 1.2 s a step on two CPU cores{}",
                shipped(o.classifier.as_ref().map(|m| m.manifest.steps))
            ),
            TrainModel::TransformerVae => format!(
                "About 1-9 s a step on two CPU cores{}",
                shipped(o.tvae.as_ref().map(|m| m.manifest.steps))
            ),
            TrainModel::Dcgan => format!(
                "About 1 s a step on two CPU cores; past about 700 steps the discriminator \
                 tends to win and the samples grow dense{}",
                shipped(o.gan.as_ref().map(|m| m.manifest.steps))
            ),
        }
    }

    /// The curves of a model other than the LSTM-VAE: each figure its log holds, on the
    /// training batches and on held-out pieces (the classifier's cross-entropy and accuracy).
    pub(super) fn loop_plots(&self, ui: &mut Ui) {
        let series = |valid: bool, key: &str| -> Vec<[f64; 2]> {
            let name = format!("{} {key}", if valid { "validation" } else { "train" });
            self.training.curve(&name, |from| {
                (self.training.loop_metrics[from.1..].iter())
                    .filter_map(|m| {
                        let figures = if valid { m.valid.as_ref()? } else { &m.train };
                        figures.get(key).map(|v| [m.step as f64, *v])
                    })
                    .collect()
            })
        };
        // Every line of a log holds the same training figures, and every validating line the
        // same validation figures: the first of each names them (no walk over the whole log
        // at every frame).
        let metrics = &self.training.loop_metrics;
        let first_valid = metrics.iter().find_map(|m| m.valid.as_ref());
        let mut keys: Vec<&str> = (metrics.first())
            .map(|m| &m.train)
            .into_iter()
            .chain(first_valid)
            .flat_map(|figures| figures.keys().map(String::as_str))
            .collect();
        if keys.is_empty() {
            keys = vec!["loss", "accuracy"];
        }
        // The losses first, then what explains them; figures of no known name last.
        const ORDER: [&str; 12] = [
            "loss",
            "accuracy",
            "recon_per_cell",
            "kl",
            "beta",
            "loss_d",
            "loss_g",
            "d_real",
            "d_fake",
            "notes_per_step",
            "drawn_notes_per_step",
            "feature_gap",
        ];
        keys.sort_by_key(|k| (ORDER.iter().position(|o| o == k).unwrap_or(ORDER.len()), *k));
        keys.dedup();
        for key in keys {
            let title = match key {
                "loss" if self.training.model == Some(TrainModel::Classifier) => "Cross-entropy",
                "accuracy" => "Accuracy (held-out pieces: validation)",
                "recon_per_cell" => "Reconstruction BCE per cell",
                "kl" => "KL (nats per snippet)",
                "beta" => "KL weight (beta)",
                "loss_d" => "Discriminator loss (BCE)",
                "loss_g" => "Generator loss (BCE)",
                "d_real" => "D(corpus snippet): the discriminator's verdict, 1 = real",
                "d_fake" => "D(generated snippet)",
                "notes_per_step" => "Notes per step of generated snippets",
                "drawn_notes_per_step" => "Expected notes per step (probabilities summed)",
                "feature_gap" => "Feature-matching gap",
                other => other,
            };
            ui.label(title);
            let curves = [
                ("train", series(false, key)),
                ("validation", series(true, key)),
            ];
            let shown = Plot::new(key)
                .height(120.0)
                .legend(Legend::default())
                .show(ui, |p| {
                    p.line(Line::new("train", PlotPoints::from(curves[0].1.clone())));
                    // Dashed: told from the training curve by more than its colour.
                    p.line(
                        Line::new("validation", PlotPoints::from(curves[1].1.clone()))
                            .style(egui_plot::LineStyle::dashed_dense()),
                    );
                });
            say_plot(&shown, title, "step", &curves);
        }
    }

    pub(super) fn training_panel(&mut self, ui: &mut Ui) {
        ui.heading("Train on your MIDI");
        ui.label("A folder with one subfolder of MIDI files per composer.");
        ui.horizontal(|ui| {
            let dir = self
                .session
                .train_dir
                .as_ref()
                .map_or("(none)".to_string(), |d| d.display().to_string());
            ui.label(dir);
            if ui
                .button("Choose...")
                .on_hover_text("Choose the folder to train on")
                .clicked()
            {
                self.dialog(|| {
                    rfd::FileDialog::new()
                        .pick_folder()
                        .map(DialogResult::TrainDir)
                });
            }
        });
        // A run training here: its model, preset and seed stay as they are (following another
        // run's log leaves them free).
        let training = self.training.job.as_ref().is_some_and(|j| !j.following);
        ui.add_enabled_ui(!training, |ui| {
            egui::ComboBox::from_label("Model to train")
                .selected_text(self.session.train_model.label())
                .show_ui(ui, |ui| {
                    for m in TrainModel::ALL {
                        ui.selectable_value(&mut self.session.train_model, m, m.label());
                    }
                });
            if self.session.train_model == TrainModel::LstmVae {
                egui::ComboBox::from_label("Preset")
                    .selected_text(self.session.train_preset.clone())
                    .show_ui(ui, |ui| {
                        ui.selectable_value(
                            &mut self.session.train_preset,
                            "studio".to_string(),
                            "studio",
                        );
                        ui.selectable_value(
                            &mut self.session.train_preset,
                            "paper".to_string(),
                            "paper",
                        );
                    });
            }
            if self.session.train_model == TrainModel::LstmVae {
                let fits = self.fine_tunable().is_some();
                let checkbox = ui
                    .add_enabled(
                        fits,
                        egui::Checkbox::new(
                            &mut self.session.train_from_model,
                            "from the model in use",
                        ),
                    )
                    .on_hover_text(
                        "Fine-tune the LSTM-VAE in use on your folder (fresh optimiser, learning \
                         rate 1e-4, full KL weight from the start): far fewer steps than from \
                         scratch",
                    );
                why_disabled(
                    checkbox,
                    "The model in use has other sizes than this preset (or a composer prior)",
                );
            }
            ui.horizontal(|ui| {
                let label = ui.label("training seed");
                ui.add(egui::DragValue::new(&mut self.session.train_seed))
                    .labelled_by(label.id);
            });
            // Offered in a build with CUDA.
            // Whether a GPU is there shows when a run starts: its device is opened on the
            // training thread, never by the window.
            if crate::models::cuda_built() {
                ui.checkbox(&mut self.session.train_on_gpu, "on the GPU")
                    .on_hover_text("Train on CUDA device 0 (else on the CPU)");
            }
        });
        ui.label(self.training_hint());
        ui.add(
            egui::Slider::new(&mut self.session.train_steps, 10..=20000)
                .text("steps")
                .logarithmic(true),
        );
        let mut stop = false;
        ui.horizontal(|ui| {
            if !training {
                let can = self.session.train_dir.is_some();
                if ui.add_enabled(can, egui::Button::new("Start")).clicked()
                    && let Some(dir) = self.session.train_dir.clone()
                {
                    let name = dir
                        .file_name()
                        .map_or("model".into(), |n| n.to_string_lossy().into_owned());
                    let models = (self.models_dir.clone())
                        .unwrap_or_else(|| trained::weights_dir().join("user"));
                    // Absolute, so that the next start finds the run from any folder.
                    let models = std::path::absolute(&models).unwrap_or(models);
                    let out = unused_folder(&models, &name);
                    self.start_training(dir, out);
                }
                if ui
                    .button("Follow a run...")
                    .on_hover_text(
                        "Show the curves of a run training elsewhere \
                         (segue train lstm-vae --out FOLDER, or another model), live",
                    )
                    .clicked()
                {
                    self.dialog(|| {
                        rfd::FileDialog::new()
                            .pick_folder()
                            .map(DialogResult::FollowDir)
                    });
                }
            }
            if let Some(job) = &self.training.job
                && job.following
            {
                if ui.button("Stop following").clicked() {
                    job.control.stop.store(true, Ordering::Relaxed);
                }
            } else if let Some(job) = &self.training.job {
                let label = if self.training.paused {
                    "Resume"
                } else {
                    "Pause"
                };
                if ui.button(label).clicked() {
                    self.training.paused = !self.training.paused;
                    job.control
                        .pause
                        .store(self.training.paused, Ordering::Relaxed);
                }
                if ui.button("Stop").clicked() {
                    stop = true;
                }
            }
        });
        if stop {
            self.stop_training();
        }
        // The monitor's run (finished, stopped, or followed and not training now) trained on
        // to the slider's steps.
        let idle = match &self.training.job {
            None => !self.training.live,
            Some(job) => job.following && !self.training.live,
        };
        if idle && self.training.checkpoint.is_some() && self.training.model.is_some() {
            let done = self.training_steps_done();
            let steps = self.session.train_steps;
            let can = steps > done && self.session.train_dir.is_some();
            let button = ui
                .add_enabled(can, egui::Button::new(format!("Continue to {steps} steps")))
                .on_hover_text(
                    "Train this run on from its latest checkpoint, with its own options, \
                     on the chosen folder (the one it trained on)",
                );
            let button = why_disabled(
                button,
                format!("Choose the folder it trained on, and more steps than its {done}"),
            );
            if button.clicked()
                && let Some(dir) = self.session.train_dir.clone()
            {
                self.continue_training(dir);
            }
        }
        let status = ui.label(&self.training.status);
        say_live(&status, Live::Polite);
        let step = (self.training.metrics.last().map(|m| m.step)).or(self
            .training
            .loop_metrics
            .last()
            .map(|m| m.step));
        if let Some(step) = step
            && self.training.total > 0
        {
            let bar = ui.add(egui::ProgressBar::new(
                step as f32 / self.training.total.max(1) as f32,
            ));
            say_progress(&bar, "Training");
        }
        let use_button = self.training.model.map(|m| match m {
            TrainModel::LstmVae => ("Use this model", "For the generation panel"),
            TrainModel::Classifier => (
                "Use this classifier",
                "For the style meter and classifier ascent",
            ),
            TrainModel::TransformerVae => (
                "Use this Transformer VAE",
                "For the generation panel's Transformer VAE",
            ),
            TrainModel::Dcgan => ("Use this DCGAN", "For the generation panel's DCGAN"),
        });
        if let Some(path) = self.training.checkpoint.clone()
            && let Some((label, hover)) = use_button
            && ui.button(label).on_hover_text(hover).clicked()
        {
            match self.training.model.and_then(TrainModel::other) {
                Some(kind) => self.load_other(kind, path),
                None => self.load_model(Some(path)),
            }
        }
        self.runs_trained_here(ui);
        if !self.training.loop_metrics.is_empty()
            || self
                .training
                .model
                .is_some_and(|m| m != TrainModel::LstmVae)
        {
            return self.loop_plots(ui);
        }
        let series = |name: &str, f: &dyn Fn(&Metrics) -> Option<f64>| -> Vec<[f64; 2]> {
            self.training.curve(name, |from| {
                (self.training.metrics[from.0..].iter())
                    .filter_map(|m| f(m).map(|v| [m.step as f64, v]))
                    .collect()
            })
        };
        let recon = series("recon", &|m| Some(m.recon_per_cell));
        let valid = series("valid", &|m| m.valid.as_ref().map(|v| v.recon_per_cell));
        let kl = series("kl", &|m| Some(m.kl));
        let beta = series("beta", &|m| Some(m.beta));
        let title = "Reconstruction BCE per cell";
        ui.label(title);
        let curves = [("train", recon), ("validation", valid)];
        let shown = Plot::new("recon")
            .height(120.0)
            .legend(Legend::default())
            .show(ui, |p| {
                p.line(Line::new("train", PlotPoints::from(curves[0].1.clone())));
                p.line(
                    Line::new("validation", PlotPoints::from(curves[1].1.clone()))
                        .style(egui_plot::LineStyle::dashed_dense()),
                );
            });
        say_plot(&shown, title, "step", &curves);
        let title = "KL (nats per snippet)";
        ui.label(title);
        let curves = [("KL", kl)];
        let shown = Plot::new("kl")
            .height(100.0)
            .legend(Legend::default())
            .show(ui, |p| {
                p.line(Line::new("KL", PlotPoints::from(curves[0].1.clone())));
            });
        say_plot(&shown, title, "step", &curves);
        let title = "beta (the KL's weight)";
        ui.label(title);
        let curves = [("beta", beta)];
        let shown = Plot::new("beta").height(60.0).show(ui, |p| {
            p.line(Line::new("beta", PlotPoints::from(curves[0].1.clone())));
        });
        say_plot(&shown, title, "step", &curves);
        if let Some(v) = &self.training.last_valid {
            ui.label(format!(
                "Latent: {} of {} dimensions active, KL {:.1} nats, style accuracy {:.2}",
                v.active_units,
                v.kl_per_dim.len(),
                v.kl,
                v.style_accuracy
            ));
            if v.active_units == 0 || v.kl < 0.5 {
                ui.colored_label(ui.visuals().error_fg_color, "Warning: the latent has collapsed: z carries nothing and the slider will do nothing.");
            }
            let bars: Vec<Bar> = v
                .kl_per_dim
                .iter()
                .enumerate()
                .map(|(d, k)| Bar::new(d as f64, *k))
                .collect();
            let shown = Plot::new("kl_dims").height(80.0).show(ui, |p| {
                p.bar_chart(BarChart::new("KL per dimension", bars));
            });
            shown.response.widget_info(|| {
                let nats: Vec<String> = (v.kl_per_dim.iter())
                    .map(|&k| plot_words::number(k))
                    .collect();
                let text = format!("KL per dimension (plot, nats): {}", nats.join(", "));
                egui::WidgetInfo::labeled(egui::Role::Figure, true, text)
            });
        }
    }

    /// The runs trained here (the models folder), newest first, listed on a worker thread
    /// when the list is opened: each with its model, steps, size and age, to show its curves,
    /// use its model, or remove it (a second press, on a button that names it).
    pub(super) fn runs_trained_here(&mut self, ui: &mut Ui) {
        let Some(models) = self.models_dir.clone() else {
            return;
        };
        let title = match &self.runs.listed {
            Some(runs) => {
                let bytes: u64 = runs.iter().map(|r| r.bytes).sum();
                format!(
                    "Runs trained here ({}, {:.1} MB)",
                    runs.len(),
                    bytes as f64 / 1e6
                )
            }
            None => "Runs trained here".to_string(),
        };
        let shown = egui::CollapsingHeader::new(title)
            .id_salt("runs-trained-here")
            .show(ui, |ui| {
                let Some(runs) = self.runs.listed.clone() else {
                    return ui.label("Looking...");
                };
                if runs.is_empty() {
                    return ui.label(format!("None yet in {}", models.display()));
                }
                let now = std::time::SystemTime::now();
                for run in &runs {
                    // Its words on one line, its buttons on the next (the panel is narrow).
                    ui.label(run.describe(now))
                        .on_hover_text(run.dir.display().to_string());
                    ui.horizontal(|ui| self.run_buttons(ui, &models, run));
                }
                ui.label(format!("In {}", models.display()))
            });
        if shown.body_returned.is_some() && self.runs.listed.is_none() && !self.runs.listing {
            self.runs.listing = true;
            let asked = self.runs.generation;
            self.in_background(move || {
                // A panic lists nothing (the list is asked for again when it next goes stale),
                // rather than leaving the list looking for ever.
                let listed = catching(|| runs::list_runs(&models)).unwrap_or_default();
                DialogResult::Runs(asked, listed)
            });
        }
    }

    /// The buttons of one run of [`Studio::runs_trained_here`].
    pub(super) fn run_buttons(&mut self, ui: &mut Ui, models: &Path, run: &RunSummary) {
        if run.in_use {
            ui.label("(training)");
            return;
        }
        let s = &self.session;
        let here = |p: &Path| std::path::absolute(p).ok();
        let in_use = s.model_files().any(|p| p.starts_with(&run.dir));
        // The studio's own run, while it starts or resumes (its folder is locked only once
        // the corpus is read).
        let training = self.training.job.as_ref().is_some_and(|j| !j.following)
            && s.train_run.as_deref().and_then(here) == here(&run.dir);
        let why = match (training, in_use) {
            (true, _) => "The studio is training it",
            (_, true) => "Its model is in use: use another one first",
            _ => "",
        };
        if self.runs.confirm.as_ref() == Some(&run.dir) && why.is_empty() {
            if ui
                .button(format!("Remove {} for good", run.name()))
                .clicked()
            {
                self.runs.confirm = None;
                let (models, dir) = (models.to_path_buf(), run.dir.clone());
                let in_use: Vec<PathBuf> = self.session.model_files().cloned().collect();
                self.in_background(move || {
                    let removed = runs::remove_run(&models, &dir, &in_use);
                    DialogResult::RunRemoved(dir, removed)
                });
            }
            if ui.button("Keep it").clicked() {
                self.runs.confirm = None;
            }
            return;
        }
        if ui
            .button("Curves")
            .on_hover_text("Show its curves in the monitor")
            .clicked()
        {
            self.follow_run(run.dir.clone());
        }
        if let Some(kind) = run.kind
            && ui
                .button("Use")
                .on_hover_text("Use its model (its latest checkpoint)")
                .clicked()
        {
            let path = crate::train_loop::model_file(&run.dir, kind.name());
            match OtherKind::of_kind(kind) {
                Some(other) => self.load_other(other, path),
                None => self.load_model(Some(path)),
            }
        }
        let remove = ui.add_enabled(why.is_empty(), egui::Button::new("Remove..."));
        if why_disabled(remove, why).clicked() {
            self.runs.confirm = Some(run.dir.clone());
        }
    }
}
