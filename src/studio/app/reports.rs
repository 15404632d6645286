//! What the other threads report, applied to the window's state once a frame: the style
//! meter's verdicts, generation, file dialogs and background work (models and files loaded,
//! exports, audio), training, and files dropped on the window.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::studio::engines::{EngineKind, OtherKind, TrainModel};
use crate::studio::workers::{GenerationEvent, TrainingReport};
use crate::train::{self, TrainEvent};
use crate::train_loop::{self, LoopEvent};

use super::{Curves, DialogResult, LoadPlace, NO_RUN_YET, STYLE_METER_ERROR, Studio, TrainingView};

impl Studio {
    /// Takes in everything reported since the last frame (see the module's doc), starts a
    /// regeneration whose debounce is over and opens a file dropped on the window.
    pub(super) fn poll(&mut self, ctx: &egui::Context) {
        let verdicts: Vec<_> = (self.style.iter())
            .flat_map(|meter| meter.events.try_iter())
            .filter(|(id, _)| *id == self.style_id)
            .collect();
        for (id, verdict) in verdicts {
            match verdict {
                Ok(v) => {
                    self.verdict = Some(v);
                    self.verdict_id = id;
                    // A meter that judges again is no longer in error.
                    if (self.standing_error.as_deref())
                        .is_some_and(|e| e.starts_with(STYLE_METER_ERROR))
                    {
                        self.dismiss_error();
                    }
                }
                Err(e) => {
                    // The last verdict was of another piece.
                    self.verdict = None;
                    self.say(format!("{STYLE_METER_ERROR}{e}"), true);
                }
            }
        }
        while let Ok(event) = self.generator.events.try_recv() {
            match event {
                GenerationEvent::Progress { id, fraction } if id == self.job_id => {
                    self.job_progress = Some(fraction);
                }
                GenerationEvent::Done {
                    id,
                    pieces,
                    first_seed,
                } if id == self.job_id => {
                    self.job_progress = None;
                    self.variations = pieces;
                    self.variations_seed = first_seed;
                    let made = format!(
                        "Generated {} variation(s) {}, seed {}.{}",
                        self.variations.len(),
                        self.job_engine.made_by(),
                        self.variations_seed,
                        self.job_note
                    );
                    // Undone while it ran: the piece stays as the undo left it, and Redo
                    // keeps what it holds; the result waits to be picked.
                    if std::mem::take(&mut self.undone_during_job) && self.history.can_redo() {
                        self.job_from_scratch = false;
                        self.edited_during_job = false;
                        self.play_when_done = false;
                        self.variations_held = true;
                        self.say(
                            format!(
                                "{made} Not put in the piece, which was undone while it ran (Redo \
                                 still holds what was undone): pick it under Variations."
                            ),
                            false,
                        );
                        continue;
                    }
                    if std::mem::take(&mut self.job_from_scratch) {
                        // The new piece replaces the opened file as what comes next primes.
                        self.primer = None;
                        self.session.primer_path = None;
                    }
                    let k = self
                        .chosen_variation
                        .min(self.variations.len().saturating_sub(1));
                    // A new batch is a step of its own.
                    self.shown_variation = None;
                    self.choose_variation(k);
                    let replaced = self.job_replaces_edits.take().map_or(String::new(), |at| {
                        format!(
                            " It heard the first {at} steps and replaced the piece's notes after \
                             them (Ctrl+Z brings them back; \"primer (steps)\" hears more)."
                        )
                    });
                    let replaced = if std::mem::take(&mut self.job_replaces_piece) {
                        format!(
                            "{replaced} It replaced the whole piece: this model starts from \
                             nothing, not from the piece (Ctrl+Z brings it back)."
                        )
                    } else {
                        replaced
                    };
                    let edited = if std::mem::take(&mut self.edited_during_job) {
                        " It replaced the edits made while it ran (Ctrl+Z brings them back)."
                    } else {
                        ""
                    };
                    let (silent, sparse) = self.variations.get(k).map_or((false, false), |g| {
                        (g.generated_part_is_silent(), g.generated_part_is_sparse())
                    });
                    let what = if silent { "silent" } else { "nearly silent" };
                    let silent = if !sparse {
                        String::new()
                    } else if self.engine_samples() && self.session.temperature < 2.0 {
                        format!(
                            " Its generated part is {what} (a higher temperature gives the \
                             model's notes more chance)."
                        )
                    } else {
                        format!(" Its generated part is {what}.")
                    };
                    self.say(format!("{made}{replaced}{edited}{silent}"), false);
                    // A blend the slider asked for is heard at once (playing, it already is:
                    // the new piece plays on from the playhead).
                    if std::mem::take(&mut self.play_when_done) && !self.playing() {
                        self.start_playback(true);
                    } else {
                        self.rewind_if_stopped();
                    }
                }
                GenerationEvent::Failed { id, message } if id == self.job_id => {
                    self.job_progress = None;
                    self.play_when_done = false;
                    if message != "cancelled" {
                        self.say(message, true);
                    }
                }
                _ => {} // a stale job: dropped
            }
        }
        let mut finished = Vec::new();
        for (k, rx) in self.dialogs.iter().enumerate() {
            match rx.try_recv() {
                Ok(result) => finished.push((k, Some(result))),
                // A cancelled dialog sends nothing; its thread has ended.
                Err(std::sync::mpsc::TryRecvError::Disconnected) => finished.push((k, None)),
                Err(std::sync::mpsc::TryRecvError::Empty) => {}
            }
        }
        for (k, result) in finished.into_iter().rev() {
            self.dialogs.remove(k);
            let Some(result) = result else {
                continue;
            };
            let result = match result {
                DialogResult::Ordered(number, result) => match *result {
                    // Place by place: a model a newer load put in stays.
                    DialogResult::ShippedOthers(others, problems) => {
                        let kinds: Vec<OtherKind> = (OtherKind::ALL.into_iter())
                            .filter(|&kind| self.loads.admit(number, LoadPlace::Other(kind)))
                            .collect();
                        self.use_shipped_others(others, problems, &kinds);
                        continue;
                    }
                    result => {
                        let place = match &result {
                            DialogResult::Opened(..) => Some(LoadPlace::Primer),
                            DialogResult::ModelLoaded(..) => Some(LoadPlace::LstmVae),
                            DialogResult::OtherLoaded(kind, ..) => Some(LoadPlace::Other(*kind)),
                            _ => None,
                        };
                        if place.is_some_and(|p| !self.loads.admit(number, p)) {
                            continue;
                        }
                        result
                    }
                },
                result => result,
            };
            match result {
                // Both arrive only as ordered loads, taken apart above.
                DialogResult::Ordered(..) | DialogResult::ShippedOthers(..) => {}
                DialogResult::Open(p) => self.open_file(&p),
                DialogResult::ExportMidi(p) => self.export_midi(&p),
                DialogResult::ExportWav(p) => self.export_wav(&p),
                DialogResult::TrainDir(p) => self.session.train_dir = Some(p),
                DialogResult::FollowDir(p) => self.follow_run(p),
                DialogResult::Runs(asked, runs) => {
                    if asked == self.runs.generation {
                        self.runs.listed = Some(runs);
                    }
                    self.runs.listing = false;
                }
                DialogResult::RunRemoved(dir, removed) => {
                    self.runs.went_stale();
                    match removed {
                        Ok(()) => {
                            // The monitor no longer shows (nor follows) a run that is gone.
                            if self.session.train_run.as_ref() == Some(&dir) {
                                match &self.training.job {
                                    None => self.training = TrainingView::default(),
                                    Some(job) if job.following => {
                                        job.control.stop.store(true, Ordering::Relaxed);
                                    }
                                    Some(_) => {}
                                }
                                self.session.train_run = None;
                            }
                            self.say(format!("Removed the run {}", dir.display()), false);
                        }
                        Err(e) => self.say(e, true),
                    }
                }
                DialogResult::Model(p) => self.open_model_file(p),
                DialogResult::Opened(p, read) => self.use_opened(p, read),
                DialogResult::Written(Ok((p, what)), _exporting) => {
                    let what = what.map_or(String::new(), |what| format!(" ({what})"));
                    self.say(format!("Wrote {}{what}", p.display()), false)
                }
                DialogResult::Written(Err(e), _exporting) => self.failed_while_closing(e),
                DialogResult::ModelLoaded(p, loaded, chosen) => {
                    // Chosen: the start's own model, if it comes later, gives way to it.
                    self.model_chosen = true;
                    let ok = loaded.is_ok();
                    // One the user chose is what Generate uses next, as for the other models
                    // (turned to first, so that composers A and B are kept by name).
                    if ok && chosen {
                        self.session.engine = EngineKind::LstmVae;
                    }
                    self.use_model(p.clone(), loaded);
                    if ok && chosen {
                        let n = self.composers().len();
                        self.say(
                            format!(
                                "Generating with the LSTM-VAE {} ({n} composers)",
                                p.display()
                            ),
                            false,
                        );
                    }
                }
                DialogResult::OtherLoaded(kind, p, loaded) => self.use_other(kind, p, loaded),
                DialogResult::Started(s) => self.use_startup(*s),
                DialogResult::Audio(opened) => self.use_audio(opened),
                DialogResult::Failed(e) => {
                    self.failed_while_closing(format!("A background task failed: {e}"))
                }
            }
        }
        self.poll_training();
        if let Some(at) = self.regenerate_at {
            if Instant::now() >= at {
                self.regenerate_at = None;
                self.generate();
            } else {
                ctx.request_repaint_after(at - Instant::now());
            }
        }
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if let Some(p) = dropped.first() {
            self.open_file(p);
        }
    }

    /// Takes in the training run's reports: its curves, checkpoints, and how it ended.
    pub(super) fn poll_training(&mut self) {
        let Some(job) = &self.training.job else {
            return;
        };
        let mut ended = None;
        let mut layout = None;
        while let Ok(report) = job.events.try_recv() {
            match report {
                TrainingReport::Loading(done, total) => {
                    self.training.status = format!("Loading {done}/{total} files...");
                }
                TrainingReport::Loaded {
                    composers,
                    pieces,
                    failures,
                    notes,
                } => {
                    self.training.status = format!(
                        "{pieces} pieces by {} composers ({failures} unreadable)",
                        composers.len()
                    );
                    // A layout that may not be what was meant stays in view while it trains.
                    if !notes.is_empty() {
                        layout = Some(format!("Training folder: {}", notes.join("; ")));
                    }
                }
                TrainingReport::Event(TrainEvent::Started {
                    step,
                    total,
                    parameters,
                    pieces,
                    held_out,
                })
                | TrainingReport::Loop(LoopEvent::Started {
                    step,
                    total,
                    parameters,
                    pieces,
                    held_out,
                }) => {
                    self.training.total = total;
                    let held = match held_out {
                        0 => "none held out for validation".to_string(),
                        n => format!("{n} held out"),
                    };
                    self.training.status = format!(
                        "Training {parameters} parameters on {pieces} pieces ({held}), step \
                         {step} of {total}"
                    );
                    // A continued run goes on from its checkpoint: lines logged after it
                    // (a run that crashed between checkpoints) are trained again.
                    self.training.metrics.retain(|m| m.step <= step);
                    self.training.loop_metrics.retain(|m| m.step <= step);
                    // The lines trained again may come to the same count and last step.
                    *self.training.curves.get_mut() = Curves::default();
                    self.training.last_valid =
                        (self.training.metrics.iter().rev()).find_map(|m| m.valid.clone());
                }
                TrainingReport::Event(TrainEvent::Metrics(m)) => {
                    if let Some(v) = &m.valid {
                        self.training.last_valid = Some(v.clone());
                    }
                    self.training.status = self.training.step_status(m.step);
                    self.training.metrics.push(m);
                }
                TrainingReport::Loop(LoopEvent::Metrics(m)) => {
                    self.training.status = self.training.step_status(m.step);
                    self.training.loop_metrics.push(m);
                }
                TrainingReport::Following { dir, model, total } => {
                    self.training.total = total.unwrap_or(0);
                    self.training.status = format!("Following {}", dir.display());
                    self.training.model = model.as_deref().and_then(|m| {
                        TrainModel::ALL.into_iter().find(|t| match t.other() {
                            None => m == train::model_path(&dir),
                            Some(kind) => m == train_loop::model_file(&dir, kind.file_kind()),
                        })
                    });
                    self.training.checkpoint = model;
                }
                TrainingReport::Live(live) => {
                    self.training.live = live;
                    if live && self.training.status.starts_with(NO_RUN_YET) {
                        self.training.status = "A run has started there".into();
                    }
                }
                TrainingReport::NoRunYet => {
                    let dir = self.session.train_run.as_deref().unwrap_or(Path::new(""));
                    self.training.status = format!(
                        "{NO_RUN_YET} {}: waiting for one to start there (pick the folder a run \
                         trains in, or Stop following)",
                        dir.display()
                    );
                }
                TrainingReport::Restarted => {
                    // Another run in the folder: nothing of the one before is kept (its model
                    // comes back with the next look at the folder).
                    self.training.metrics.clear();
                    self.training.loop_metrics.clear();
                    *self.training.curves.get_mut() = Curves::default();
                    self.training.last_valid = None;
                    self.training.model = None;
                    self.training.checkpoint = None;
                }
                TrainingReport::Event(TrainEvent::Checkpoint { path, step })
                | TrainingReport::Loop(LoopEvent::Checkpoint { path, step }) => {
                    self.training.checkpoint = Some(path);
                    self.training.status = format!("Checkpoint at step {step}");
                    self.runs.went_stale();
                }
                TrainingReport::Finished(result) => ended = Some(result),
            }
        }
        if let Some(result) = ended {
            let following = job.following;
            self.training.job = None;
            self.runs.went_stale();
            match result {
                // A followed run keeps its curves and its model; the message says why it ended.
                Err(e) if following && self.training.live => {
                    self.training.status = format!("{e} (it is still training there)");
                }
                Err(e) if following => self.training.status = e,
                Ok(end) => {
                    self.training.status = match end.stopped_early {
                        true => format!(
                            "Stopped at step {}: {} (Continue goes on from there)",
                            end.steps,
                            end.model.display()
                        ),
                        false => format!("Finished, {} steps: {}", end.steps, end.model.display()),
                    };
                    self.training.checkpoint = Some(end.model);
                }
                // Stopped before training began: not a failure.
                Err(e) if e.starts_with("stopped") => {
                    let mut said = e.clone();
                    said[..1].make_ascii_uppercase();
                    self.training.status = said;
                }
                Err(e) => {
                    self.training.status = format!("Failed: {e}");
                    if self.closing {
                        self.failed_while_closing(format!("The training run failed: {e}"));
                    }
                }
            }
            // No longer followed, the run's liveness is not known: Continue is offered, and
            // refused saying so while another run still holds the folder.
            if following {
                self.training.live = false;
            }
        }
        if let Some(note) = layout {
            self.say(note, false);
        }
    }
}
