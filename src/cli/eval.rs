//! `segue eval lstm-vae`, `segue eval classifier` and `segue eval report`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use super::corpus::{CacheArgs, eval_corpus, load_corpus, shared_dir};
use super::models::{load_classifier, load_model};
use super::progress::progress_bar;
use super::stop::hold_stop;
use segue::fsutil::shown;
use segue::roll::QuantizeOptions;

#[derive(Subcommand)]
pub(crate) enum EvalCmd {
    /// Reconstruction, latent health and style, and generated-music figures of the LSTM-VAE.
    LstmVae(LstmVaeEvalArgs),
    /// Accuracy and confusion matrix of the composer classifier on held-out pieces.
    Classifier(ClassifierEvalArgs),
    /// Compare every model on the same held-out snippets: writes report.md + PNG charts.
    Report(ReportArgs),
}

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// The corpus the models were trained on (default: ../shared/corpus).
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    /// Output folder.
    #[arg(
        short,
        long,
        visible_alias = "output",
        default_value = "report",
        value_name = "DIR"
    )]
    out: PathBuf,
    /// Held-out snippets per composer.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    per_composer: usize,
    /// Composer pairs for transfers, transitions and blends.
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pairs: usize,
    /// Seed of the sampling.
    #[arg(long, default_value_t = 1, value_name = "S")]
    seed: u64,
    /// Style strength of the VAEs' composer codes, as `segue generate --style-strength`.
    #[arg(long, default_value_t = segue::generate::DEFAULT_STYLE_STRENGTH, value_name = "X", allow_negative_numbers = true)]
    style_strength: f32,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(Args)]
pub(crate) struct EvalArgs {
    /// The model file, its manifest or its training run's folder (default: the shipped weights
    /// of that kind, e.g. weights/lstm-vae-studio.safetensors or weights/classifier.safetensors).
    #[arg(long, value_name = "FILE.safetensors")]
    model: Option<PathBuf>,
    /// The corpus the model was trained on (its held-out pieces are measured; default:
    /// ../shared/corpus, for a model trained on it: one trained on another folder needs it
    /// named).
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    /// Held-out snippets per composer.
    #[arg(long, default_value_t = 10, value_name = "N", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    per_composer: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(Args)]
pub(crate) struct ClassifierEvalArgs {
    #[command(flatten)]
    common: EvalArgs,
    /// Also fit a statistics baseline on the classifier's training pieces and judge it on the
    /// same held-out snippets and pieces: logistic regression on which pitches and pitch
    /// classes sound, where notes start, how long notes are and how dense each window is.
    #[arg(long)]
    baseline: bool,
    /// With --baseline: also cross-validate the baseline over every piece of the corpus, the
    /// pieces dealt into K folds per composer, each fold held out once.
    #[arg(long, value_name = "K", requires = "baseline", value_parser = clap::value_parser!(u64).range(2..))]
    folds: Option<u64>,
    /// Pool classifiers trained on the N folds of one cross-validation (`segue train
    /// classifier --fold K/N` for K = 1..N, the same seed), each judged on its own held-out
    /// fold: every piece is judged once by a classifier that never trained on it.
    #[arg(long, value_name = "FILE", num_args = 2.., conflicts_with = "model")]
    cross_validated: Vec<PathBuf>,
    /// Judge held-out snippets of N 16th-note steps (default: the classifier's window), each as
    /// `segue classify` judges a file that long: a shorter one read at its own length, a longer
    /// one window by window. Whole pieces are judged as always.
    #[arg(long, value_name = "N", conflicts_with = "baseline", value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=segue::train_loop::MAX_SNIPPET_STEPS as u64))]
    snippet_steps: Option<usize>,
}

#[derive(Args)]
pub(crate) struct LstmVaeEvalArgs {
    #[command(flatten)]
    common: EvalArgs,
    /// Seed of the sampling (the priors' draws and the continuations).
    #[arg(long, default_value_t = 1234, value_name = "S")]
    seed: u64,
    /// Sampling temperature of the generated continuations.
    #[arg(long, default_value_t = segue::generate::DEFAULT_TEMPERATURE, value_name = "T")]
    temperature: f32,
    /// Cap on notes per step of the generated continuations.
    #[arg(long, default_value_t = 8, value_name = "N")]
    max_notes: usize,
    /// Snippet length in 16th-note steps (default: the length the model was trained on)
    #[arg(long, value_name = "N")]
    snippet_steps: Option<usize>,
    /// Style strength of the composers' codes decoded, as `segue generate --style-strength`.
    #[arg(long, default_value_t = segue::generate::DEFAULT_STYLE_STRENGTH, value_name = "X", allow_negative_numbers = true)]
    style_strength: f32,
}

/// `segue eval classifier`: accuracy and a confusion matrix on held-out pieces.
pub(crate) fn eval_classifier(args: ClassifierEvalArgs) -> Result<()> {
    let a = &args.common;
    let classifiers = if args.cross_validated.is_empty() {
        vec![load_classifier(a.model.as_deref())?]
    } else {
        (args.cross_validated.iter())
            .map(|p| load_classifier(Some(p)))
            .collect::<Result<Vec<_>>>()?
    };
    let clf = &classifiers[0];
    let dir = eval_corpus(a.corpus.as_deref(), &clf.manifest.corpus)?;
    let corpus = load_corpus(&dir, &a.cache, QuantizeOptions::default())?;
    if corpus.content_hash() != clf.manifest.corpus.content_hash {
        warning!(
            "{} is not the corpus this classifier was trained on (content hash differs); its held-out split is not the model's",
            shown(&dir)
        );
    }
    let bar = progress_bar(1, "classifying");
    let mut progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let window = segue::classify::window_steps(clf);
    let (per, steps) = (a.per_composer, args.snippet_steps);
    let judged = if args.cross_validated.is_empty() {
        segue::classify::judge_held_out(clf, &corpus, per, steps, &mut progress)?
    } else {
        segue::classify::judge_folds(&classifiers, &corpus, per, steps, &mut progress)?
    };
    bar.finish_and_clear();
    // A corpus with no piece held out (one piece per composer), or none of the model's
    // composers, has nothing to measure: an accuracy of 0 would read as a verdict.
    if judged.snippets.is_empty() {
        bail!(
            "{}: no held-out snippets of the classifier's composers in this corpus (a composer \
             needs two pieces or more for one to be held out)",
            shown(&dir)
        );
    }
    let composers = corpus.composers.clone();
    let report = judged.report(composers.clone());
    let fit = segue::stats_baseline::FitOptions::default();
    let (baseline, together) = if args.baseline {
        let spinner = progress_bar(1, "fitting the baseline");
        let b = segue::stats_baseline::judge_beside(&classifiers, &corpus, a.per_composer, &fit)?;
        spinner.finish_and_clear();
        let together = judged.product(&b)?.report(composers.clone());
        (Some(b.report(composers.clone())), Some(together))
    } else {
        (None, None)
    };
    let folds = match args.folds {
        Some(k) => {
            let bar = progress_bar(k, "cross-validating the baseline (folds)");
            let k = usize::try_from(k).context("--folds: too many folds")?;
            let report = segue::stats_baseline::cross_validate(
                &corpus,
                k,
                window,
                segue::classify::training_seed(clf),
                &fit,
                &mut |done, _| bar.set_position(done as u64),
            )?;
            bar.finish_and_clear();
            Some((k, report))
        }
        None => None,
    };
    if a.json {
        let json = if args.baseline {
            serde_json::json!({
                "classifier": report,
                "baseline": baseline,
                "together": together,
                "baseline_cross_validated": folds.as_ref().map(|(k, r)| serde_json::json!({"folds": k, "report": r})),
            })
        } else {
            serde_json::to_value(&report)?
        };
        out!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    if args.cross_validated.is_empty() {
        out!(
            "{} snippets of {} held-out pieces ({} steps each; windows of {window})",
            report.snippets,
            report.pieces,
            steps.unwrap_or(window)
        );
    } else {
        out!(
            "{} snippets of {} pieces ({} steps each; windows of {window}), each judged by the one of {} classifiers that held its fold out",
            report.snippets,
            report.pieces,
            steps.unwrap_or(window),
            classifiers.len()
        );
    }
    print_classifier_report(&report, true)?;
    if let Some(b) = &baseline {
        out!(
            "\nstatistics baseline (logistic regression on pitch, pitch-class, onset-place, note-length and density statistics of each window; fitted on the same training pieces), on the same snippets and pieces:"
        );
        print_classifier_report(b, false)?;
    }
    if let Some(t) = &together {
        out!("\nthe classifier and the baseline together (their probabilities multiplied):");
        print_classifier_report(t, false)?;
    }
    if let Some((k, cv)) = &folds {
        out!(
            "\nstatistics baseline cross-validated over all {} pieces ({k} folds by piece; {} windows of {window} steps, each judged by a baseline fitted without its piece):",
            cv.pieces,
            cv.snippets
        );
        print_classifier_report(cv, false)?;
    }
    Ok(())
}

/// A classifier report's figures, and its confusion matrix when `confusion` is set.
fn print_classifier_report(
    report: &segue::classify::ClassifierReport,
    confusion: bool,
) -> Result<()> {
    out!(
        "accuracy {:.3}, top-3 {:.3}, whole pieces {:.3}, whole pieces by composer {:.3} (chance {:.3})",
        report.accuracy,
        report.top3,
        report.piece_accuracy,
        report.piece_balanced_accuracy,
        1.0 / report.composers.len().max(1) as f64
    );
    let per: Vec<String> = report
        .composers
        .iter()
        .zip(&report.pieces_right)
        .filter(|(_, (n, _))| *n > 0)
        .map(|(name, (n, right))| format!("{name} {right}/{n}"))
        .collect();
    out!("whole pieces right per composer: {}", per.join(", "));
    // Without the composer most pieces come from (Bach's chorales, in the shared corpus).
    let most = (0..report.composers.len()).max_by_key(|&c| report.pieces_right[c].0);
    if let Some(most) = most.filter(|_| report.composers.len() > 1) {
        let (n, right) = (report.pieces_right.iter().enumerate())
            .filter(|&(c, _)| c != most)
            .fold((0, 0), |(n, r), (_, &(pn, pr))| (n + pn, r + pr));
        out!(
            "whole pieces right outside {} (the composer with the most): {right} of {n}",
            report.composers[most]
        );
    }
    if confusion {
        out!("confusion (rows: true composer, columns: predicted, in label order):");
        for (name, row) in report.composers.iter().zip(&report.confusion) {
            let cells: Vec<String> = row.iter().map(|n| format!("{n:>3}")).collect();
            out!("{:<14}{}", name, cells.join(""));
        }
    }
    Ok(())
}

/// `segue eval report`: every model on the same held-out snippets, written as markdown with
/// plots.
pub(crate) fn eval_report(a: ReportArgs) -> Result<()> {
    segue::generate::check_style_strength(a.style_strength)?;
    // The folder is made (or refused) before minutes of evaluation, not after.
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot make the report's folder here", shown(&a.out)))?;
    // A folder that is there but cannot be written to is refused now too, and so is one
    // whose report.md is someone's own page.
    tempfile::tempfile_in(&a.out)
        .with_context(|| format!("{}: cannot write the report's files here", shown(&a.out)))?;
    segue::report::check_report_folder(&a.out)?;
    let device = candle_core::Device::Cpu;
    let optional = |path: Option<PathBuf>, what: &str| {
        if path.is_none() {
            note!("no shipped {what}; the report leaves it out");
        }
        path
    };
    let models = segue::report::Models {
        lstm: load_model(None)?,
        tvae: optional(segue::tvae::default_path(), "Transformer VAE")
            .map(|p| segue::tvae::load(&p, &device))
            .transpose()?,
        classifier: optional(segue::classify::default_path(), "classifier")
            .map(|p| segue::classify::load(&p, &device))
            .transpose()?,
        gan: optional(segue::gan::default_path(), "DCGAN")
            .map(|p| segue::gan::load(&p, &device))
            .transpose()?,
    };
    let dir = a.corpus.clone().unwrap_or_else(|| shared_dir("corpus"));
    let corpus = load_corpus(&dir, &a.cache, QuantizeOptions::default())?;
    let opts = segue::report::ReportOptions {
        per_composer: a.per_composer,
        pairs: a.pairs,
        seed: a.seed,
        style_strength: a.style_strength,
        ..Default::default()
    };
    let bar = progress_bar(1000, "evaluating");
    let report = segue::report::evaluate_all(&models, &corpus, &opts, &mut |f, what| {
        bar.set_position((f * 1000.0) as u64);
        bar.set_message(what.to_string());
    })?;
    bar.finish_and_clear();
    let mut command = format!(
        "segue eval report --per-composer {} --pairs {} --seed {}",
        a.per_composer, a.pairs, a.seed
    );
    if a.style_strength != segue::generate::DEFAULT_STYLE_STRENGTH {
        command += &format!(" --style-strength {}", a.style_strength);
    }
    // The page, its figures and its charts belong together: a stop waits for all of them.
    let _whole = hold_stop();
    segue::report::write_report(&report, &a.out, &command)?;
    out!(
        "wrote {} (its figures in report.json, its plots as PNG beside it)",
        shown(&a.out.join("report.md"))
    );
    Ok(())
}

/// `segue eval lstm-vae`: the LSTM-VAE's held-out figures (reconstruction, frame F1, the
/// latent's figures, generated music next to the corpus).
pub(crate) fn eval_cmd(args: LstmVaeEvalArgs) -> Result<()> {
    segue::generate::check_sampling(args.temperature, args.max_notes)?;
    segue::generate::check_style_strength(args.style_strength)?;
    let a = args.common;
    let model = load_model(a.model.as_deref())?;
    let dir = eval_corpus(a.corpus.as_deref(), &model.manifest.corpus)?;
    let corpus = load_corpus(&dir, &a.cache, QuantizeOptions::default())?;
    if corpus.content_hash() != model.manifest.corpus.content_hash {
        warning!(
            "{} is not the corpus this model was trained on (content hash differs); its held-out split is not the model's",
            shown(&dir)
        );
    }
    let bar = progress_bar(1000, "evaluating");
    let opts = segue::eval::EvalOptions {
        per_composer: a.per_composer,
        seed: args.seed,
        temperature: args.temperature,
        max_notes: args.max_notes,
        snippet_steps: args.snippet_steps,
        style_strength: args.style_strength,
    };
    let r = segue::eval::evaluate_lstm_vae(&model, &corpus, &opts, &mut |f| {
        bar.set_position((f * 1000.0) as u64)
    })?;
    bar.finish_and_clear();
    if !r.composers_left_out.is_empty() {
        warning!(
            "the corpus's composers {} are not the model's; their pieces are left \
             out",
            r.composers_left_out.join(", ")
        );
    }
    if a.json {
        out!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    out!(
        "model {} ({} steps), {} held-out snippets of {} steps",
        shown(&model.path),
        model.manifest.total_steps(),
        r.snippets,
        r.snippet_steps
    );
    if model.manifest.prior.is_some() {
        out!("prior: composer-aware, N(c_composer, I); prior samples below are drawn from it");
    }
    out!("reconstruction BCE per cell (teacher-forced)");
    out!("  z = posterior mean          {:.5}", r.bce_per_cell_mean_z);
    out!(
        "  z = prior sample            {:.5}   (mean is {:.1}% lower)",
        r.bce_per_cell_prior_z,
        100.0 * r.latent_gain_over_prior
    );
    out!(
        "  z = other composer's mean   {:.5}",
        r.bce_per_cell_other_z
    );
    let m = &r.bce_per_cell_by_metre;
    out!(
        "  posterior mean, by metre    {:.5} in 4/4 ({} snippets), {:.5} in other metres ({})",
        m.in_four_four,
        m.four_four_snippets,
        m.in_other_metres,
        m.other_snippets
    );
    let f = |s: &segue::eval::FrameScore| {
        format!("F1 {:.3} (P {:.3} / R {:.3})", s.f1, s.precision, s.recall)
    };
    out!(
        "frame scores (teacher-forced): thresholded {}, sampled {}",
        f(&r.frame_thresholded),
        f(&r.frame_sampled)
    );
    out!(
        "  thresholded at {:.2} (the best F1 on training snippets): {}",
        r.tuned_threshold,
        f(&r.frame_tuned)
    );
    out!(
        "  for scale, repeating the previous step: {}",
        f(&r.frame_copy_previous)
    );
    out!(
        "  for scale, knowing every note's end but no onset: {} ({:.1} % of the on-cells are onsets)",
        f(&r.frame_without_onsets),
        100.0 * r.onset_share
    );
    out!(
        "  recall at 0.5 on onsets {:.3}, on held notes {:.3}",
        r.onset_recall,
        r.held_recall
    );
    out!(
        "KL {:.1} nats per snippet, active units {}/{}",
        r.kl,
        r.active_units,
        r.kl_per_dim.len()
    );
    out!(
        "nearest-composer-centroid accuracy of posterior means (chance {:.3}): {} with held-out centroids (the reference's measure), {} leaving each snippet out of its own centroid ({} snippets of composers with two or more), {:.3} with the stored training centroids",
        1.0 / model.manifest.composers.len() as f64,
        // With no composer of two snippets, each snippet is its own centroid: always right.
        match r.leave_one_out_snippets {
            0 => "n/a".to_string(),
            _ => format!("{:.3}", r.centroid_accuracy),
        },
        match r.leave_one_out_snippets {
            0 => "n/a".to_string(),
            _ => format!("{:.3}", r.centroid_accuracy_leave_one_out),
        },
        r.leave_one_out_snippets,
        r.training_centroid_accuracy
    );
    out!(
        "  leaving each snippet's whole piece out of its composer's centroid (its other snippets are alike): {} ({} snippets of the {} composers whose snippets come from two held-out pieces or more)",
        match r.leave_piece_out_snippets {
            0 => "n/a".to_string(),
            _ => format!("{:.3}", r.centroid_accuracy_leave_piece_out),
        },
        r.leave_piece_out_snippets,
        r.leave_piece_out_composers
    );
    out!(
        "nearest-piece-centroid accuracy (by piece, leave-one-out, {} held-out pieces with two snippets or more among {}, chance {}): {}",
        r.pieces,
        r.piece_candidates,
        // Each snippet is measured against every piece's centroid (its own without it).
        match r.pieces {
            0 => "n/a".to_string(),
            _ => format!("{:.3}", 1.0 / r.piece_candidates.max(1) as f64),
        },
        match r.pieces {
            0 => "n/a".to_string(),
            _ => format!("{:.3}", r.piece_centroid_accuracy),
        }
    );
    out!("one primer decoded twice, same seed (Jaccard distance of the outputs):");
    out!(
        "  own snippet's z vs another composer's snippet z {:.3}, vs a prior z {:.3} (the reference's composer swap)",
        r.swap_other_composer_distance,
        r.swap_prior_distance
    );
    let strength = if r.style_strength == segue::generate::DEFAULT_STYLE_STRENGTH {
        String::new()
    } else {
        format!(" (at style strength {})", r.style_strength)
    };
    out!(
        "  two composers' stored codes{strength} {:.3}, two prior z {:.3}; one z, two seeds {:.3} (noise floor)",
        r.composer_z_distance,
        r.random_z_distance,
        r.seed_only_distance
    );
    out!(
        "one held-out snippet decoded teacher-forced, no sampling (sum over pitches of |p_a - p_b|, notes per step):"
    );
    out!(
        "  own snippet's z vs another composer's snippet z {:.3}, vs a prior z {:.3}",
        r.tf_swap_other_composer,
        r.tf_swap_prior
    );
    out!(
        "  two composers' stored codes{strength} {:.3}, two prior z {:.3}, two draws from the stored composer statistics {:.3}",
        r.tf_composer_codes,
        r.tf_random_codes,
        r.tf_stored_mixture_codes
    );
    out!("{:<26} {:>10} {:>10}", "", "generated", "corpus");
    let (g, c) = (&r.generated, &r.corpus);
    let rows = [
        (
            "notes per sounding step",
            g.notes_per_sounding_step,
            c.notes_per_sounding_step,
        ),
        ("notes per step", Some(g.polyphony), Some(c.polyphony)),
        (
            "onsets per beat (a cell after a silent one)",
            Some(g.onsets_per_beat),
            Some(c.onsets_per_beat),
        ),
        ("pitch range (semitones)", g.pitch_range, c.pitch_range),
        (
            "empty-bar rate (its own metre)",
            g.empty_bar_rate,
            c.empty_bar_rate,
        ),
    ];
    // A mean over nothing (silence has no notes per sounding step) is n/a, not 0.
    let figure = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"));
    for (name, g, c) in rows {
        out!("{name:<26} {:>10} {:>10}", figure(g), figure(c));
    }
    Ok(())
}
