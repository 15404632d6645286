//! The LSTM-VAE model: shapes, teacher forcing against the step-by-step path, the loss, and
//! that training lowers it.

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use segue::meter::StepMeter;
use segue::midi::Meter;
use segue::models::lstm_vae::{BarPositions, Config, LstmVae, loss};
use segue::models::vae::{DiagonalGaussian, bce_with_logits};

fn tiny() -> Config {
    Config {
        input: 128,
        hidden: 24,
        layers: 2,
        latent: 6,
        output_skip: false,
        metre: 0,
        metre_map: false,
    }
}

/// The tiny model with or without the output skip and the metre input.
fn tiny_variants() -> Vec<Config> {
    [(false, 0), (true, 0), (false, 4)]
        .into_iter()
        .map(|(output_skip, metre)| Config {
            output_skip,
            metre,
            ..tiny()
        })
        .collect()
}

/// A batch of simple rolls: a held chord per item, changing every 4 steps.
fn batch(b: usize, t: usize) -> Tensor {
    let mut data = vec![0f32; b * t * 128];
    for i in 0..b {
        for s in 0..t {
            for k in [0, 4, 7] {
                let pitch = 48 + i * 2 + k + (s / 4 % 2) * 5;
                data[(i * t + s) * 128 + pitch] = 1.0;
            }
        }
    }
    Tensor::from_vec(data, (b, t, 128), &Device::Cpu).unwrap()
}

#[test]
fn shapes_and_teacher_forcing_match_the_step_path() {
    for cfg in tiny_variants() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let model = LstmVae::new(&cfg, vb).unwrap();
        segue::train_loop::seeded_init(&varmap, 1).unwrap();
        let x = batch(3, 10);
        let q = model.encode(&x).unwrap();
        assert_eq!(q.mean.dims(), &[3, 6]);
        assert_eq!(q.logvar.dims(), &[3, 6]);
        let z = q.sample(&mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let z_again = q.sample(&mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        assert_eq!(
            z.to_vec2::<f32>().unwrap(),
            z_again.to_vec2::<f32>().unwrap()
        );
        let logits = model
            .decode(&x, &z, &BarPositions::from_bar_line(&cfg, 3, 10))
            .unwrap();
        assert_eq!(logits.dims(), &[3, 10, 128]);

        // Stepping the decoder with the true previous steps gives the teacher-forced logits.
        let bars: Vec<usize> = (0..10).collect();
        assert_steps_match(&model, &x, &z, &bars, &logits);
    }
}

/// Steps the decoder from the codes `z` through the steps of `x` `[B, T, P]`, step t at bar
/// position `bars[t]`, and checks each step's logits against the teacher-forced `forced`.
fn assert_steps_match(model: &LstmVae, x: &Tensor, z: &Tensor, bars: &[usize], forced: &Tensor) {
    let b = x.dim(0).unwrap();
    let mut state = model.initial_state(z).unwrap();
    let mut previous = Tensor::zeros((b, 128), DType::F32, &Device::Cpu).unwrap();
    for (t, &bar) in bars.iter().enumerate() {
        let step = model.decode_step(&previous, z, bar, &mut state).unwrap();
        let expected = forced.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
        let diff = (step - expected)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-4, "step {t}: {diff}");
        previous = x.narrow(1, t, 1).unwrap().squeeze(1).unwrap();
    }
}

#[test]
fn presets_are_named_by_their_sizes() {
    assert_eq!(Config::studio().preset_name(), Some("studio"));
    assert_eq!(Config::paper().preset_name(), Some("paper"));
    assert_eq!(tiny().preset_name(), None);
    let unmetred = Config {
        metre: 0,
        ..Config::studio()
    };
    assert_eq!(unmetred.preset_name(), None);
    // How the metre input counts bars is no size.
    let counted = Config {
        metre_map: false,
        ..Config::studio()
    };
    assert_eq!(counted.preset_name(), Some("studio"));
}

#[test]
fn the_metre_input_counts_bars_from_the_start_or_by_the_metre_map() {
    let waltz = [StepMeter {
        step: 0,
        meter: Meter {
            numerator: 3,
            denominator: 4,
        },
    }];
    let mapped = Config::studio();
    assert!(mapped.metre_map);
    let counted = Config {
        metre_map: false,
        ..mapped
    };
    // Counted from the piece's start, 16 steps a bar whatever the metre: a window 5 steps in
    // starts 5 steps into a bar (training snippets start on those bar lines).
    let from_start: Vec<u16> = (5..25).map(|s| s % 16).collect();
    assert_eq!(counted.bar_positions(&waltz, 5, 20), from_start);
    assert_eq!(counted.bar_positions(&waltz, 37, 3), vec![5, 6, 7]);
    // By the map: bars of 12 steps, a window starting 5 steps into one.
    let in_three: Vec<u16> = (5..25).map(|s| s % 12).collect();
    assert_eq!(mapped.bar_positions(&waltz, 5, 20), in_three);
    // A piece without a map is in 4/4, counted from its own start.
    let in_four: Vec<u16> = (5..25).map(|s| s % 16).collect();
    assert_eq!(mapped.bar_positions(&[], 5, 20), in_four);
    // A batch of windows, item by item.
    let bars = BarPositions::new(&mapped, 20, [(&waltz[..], 5), (&[][..], 5)]);
    assert_eq!((bars.at(0, 7), bars.at(1, 7)), (0, 12));
    // Without the metre input, every position is 0.
    let plain = Config { metre: 0, ..mapped };
    assert!(plain.bar_positions(&waltz, 3, 8).iter().all(|&p| p == 0));
    // How bars are counted is no size: weights of one fit the other.
    assert!(counted.same_sizes(&mapped) && !counted.same_sizes(&plain));
}

/// A batch whose items sit at different places in their bars: each item's teacher-forced
/// logits are those of stepping the decoder through its own positions.
#[test]
fn each_item_of_a_batch_is_decoded_at_its_own_place_in_the_bar() {
    let cfg = Config {
        metre: 16,
        metre_map: true,
        ..tiny()
    };
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = LstmVae::new(&cfg, vb).unwrap();
    segue::train_loop::seeded_init(&varmap, 1).unwrap();
    let waltz = [StepMeter {
        step: 0,
        meter: Meter {
            numerator: 3,
            denominator: 4,
        },
    }];
    let windows = [(&waltz[..], 5), (&[][..], 0), (&[][..], 9)];
    let bars = BarPositions::new(&cfg, 10, windows);
    let x = batch(3, 10);
    let z = model.encode(&x).unwrap().mean;
    let logits = model.decode(&x, &z, &bars).unwrap();
    for (item, (meters, start)) in windows.into_iter().enumerate() {
        let bars: Vec<usize> = (cfg.bar_positions(meters, start, 10).into_iter())
            .map(usize::from)
            .collect();
        let one = |t: &Tensor| t.narrow(0, item, 1).unwrap();
        assert_steps_match(&model, &one(&x), &one(&z), &bars, &one(&logits));
    }
    // Positions for another batch or length are refused, not read past their end.
    let short = BarPositions::from_bar_line(&cfg, 2, 10);
    assert!(model.decode(&x, &z, &short).is_err());
}

#[test]
fn bce_with_logits_matches_the_definition() {
    let logits = Tensor::new(&[[-3.0f32, 0.0, 2.5], [40.0, -40.0, 0.3]], &Device::Cpu).unwrap();
    let targets = Tensor::new(&[[0.0f32, 1.0, 1.0], [1.0, 0.0, 0.0]], &Device::Cpu).unwrap();
    let got = bce_with_logits(&logits, &targets)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let l = logits.to_vec2::<f32>().unwrap();
    let y = targets.to_vec2::<f32>().unwrap();
    let mut want = 0f64;
    for (lr, yr) in l.iter().zip(&y) {
        for (&l, &y) in lr.iter().zip(yr) {
            let p = 1.0 / (1.0 + (-f64::from(l)).exp());
            let p = p.clamp(1e-12, 1.0 - 1e-12);
            want -= f64::from(y) * p.ln() + (1.0 - f64::from(y)) * (1.0 - p).ln();
        }
    }
    want /= 2.0;
    assert!(
        (f64::from(got) - want).abs() < 1e-3 * want.max(1.0),
        "{got} vs {want}"
    );
}

#[test]
fn training_lowers_the_loss() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = LstmVae::new(&tiny(), vb).unwrap();
    segue::train_loop::seeded_init(&varmap, 1).unwrap();
    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: 1e-2,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let x = batch(4, 16);
    let bars = BarPositions::from_bar_line(model.config(), 4, 16);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let first = loss(&model, &x, &bars, 0.1, &mut rng).unwrap();
    let first_recon = first.recon.to_scalar::<f32>().unwrap();
    let mut last_recon = first_recon;
    for _ in 0..60 {
        let l = loss(&model, &x, &bars, 0.1, &mut rng).unwrap();
        opt.backward_step(&l.total).unwrap();
        last_recon = l.recon.to_scalar::<f32>().unwrap();
    }
    assert!(
        last_recon < first_recon * 0.5,
        "recon {first_recon} -> {last_recon}"
    );
}

#[test]
fn the_kl_to_a_shifted_prior_matches_the_closed_form() {
    let q = DiagonalGaussian {
        mean: Tensor::new(&[[1.0f32, -2.0], [0.5, 0.0]], &Device::Cpu).unwrap(),
        logvar: Tensor::new(&[[0.0f32, -1.0], [0.7, 0.2]], &Device::Cpu).unwrap(),
    };
    let prior = Tensor::new(&[[1.0f32, 1.0], [-0.5, 0.0]], &Device::Cpu).unwrap();
    let got = q.kl_to_per_dim(&prior).unwrap().to_vec1::<f32>().unwrap();
    let (m, lv, p) = (
        q.mean.to_vec2::<f32>().unwrap(),
        q.logvar.to_vec2::<f32>().unwrap(),
        prior.to_vec2::<f32>().unwrap(),
    );
    for d in 0..2 {
        let want: f32 = (0..2)
            .map(|b| 0.5 * ((m[b][d] - p[b][d]).powi(2) + lv[b][d].exp() - 1.0 - lv[b][d]))
            .sum::<f32>()
            / 2.0;
        assert!(
            (got[d] - want).abs() < 1e-5,
            "dim {d}: {} vs {want}",
            got[d]
        );
    }
    // Against a zero prior it is the standard KL.
    let zero = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(
        q.kl_to_per_dim(&zero).unwrap().to_vec1::<f32>().unwrap(),
        q.kl_per_dim().unwrap().to_vec1::<f32>().unwrap()
    );
}

/// How each generation mode picks its code: Blend at 0 is Continue (A), at 1 Transfer (B); a
/// transition from A to A is Continue; the transition's length matters; the primer is kept.
#[test]
fn generation_modes_pick_their_codes() {
    use segue::generate::{GenerateOptions, Interpolation, Mode, generate};
    use segue::roll::Roll;
    use std::sync::atomic::AtomicBool;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = LstmVae::new(&tiny(), vb).unwrap();
    segue::train_loop::seeded_init(&varmap, 1).unwrap();
    let mut cells = vec![0u8; 16 * 128];
    for s in 0..16 {
        for p in [60, 64, 67] {
            cells[s * 128 + p] = 1;
        }
    }
    let primer = Roll::from_binary(16, &cells).unwrap();
    let a = [1.5f32, -0.5, 0.8, 0.0, -1.2, 0.3];
    let b = [-1.0f32, 1.4, -0.6, 0.9, 0.7, -1.5];
    let run = |mode, alpha, transition_steps, a: &[f32], b: &[f32], how| {
        let opts = GenerateOptions {
            mode,
            alpha,
            transition_steps,
            interpolation: how,
            steps: 48,
            primer_steps: 8,
            temperature: 1.0,
            seed: 5,
            ..GenerateOptions::default()
        };
        let g = generate(
            &model,
            &primer,
            a,
            b,
            &opts,
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(g.primer_steps, 8);
        assert_eq!(g.roll.steps(), 8 + 48);
        assert_eq!(g.roll.slice(0, 8).cells(), primer.slice(0, 8).cells());
        g.roll.cells().to_vec()
    };
    for how in [Interpolation::Linear, Interpolation::Spherical] {
        let cont = run(Mode::Continue, 0.5, 0, &a, &b, how);
        let transfer = run(Mode::Transfer, 0.5, 0, &a, &b, how);
        assert_ne!(cont, transfer, "A's and B's codes give the same music");
        assert_eq!(run(Mode::Blend, 0.0, 0, &a, &b, how), cont);
        assert_eq!(run(Mode::Blend, 1.0, 0, &a, &b, how), transfer);
        let half = run(Mode::Blend, 0.5, 0, &a, &b, how);
        assert!(half != cont && half != transfer);
        assert_eq!(run(Mode::Transition, 0.5, 0, &a, &a, how), cont);
        let whole = run(Mode::Transition, 0.5, 0, &a, &b, how);
        let quick = run(Mode::Transition, 0.5, 4, &a, &b, how);
        assert!(whole != cont && whole != transfer);
        assert_ne!(whole, quick, "the transition's length is ignored");
        // A one-step transition is B from its first step (it stayed on A for ever).
        assert_eq!(run(Mode::Transition, 0.5, 1, &a, &b, how), transfer);
    }
}

/// What a library caller may pass that the command line never does gives an error, not a
/// panic or an allocation past all sense: a roll of no steps to encode or decode, a length past
/// the longest piece Segue reads.
#[test]
fn empty_rolls_and_endless_lengths_are_refused() {
    use segue::generate::{GenerateOptions, generate};
    use segue::roll::{MAX_STEPS, Roll};
    use std::sync::atomic::AtomicBool;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let cfg = tiny();
    let model = LstmVae::new(&cfg, vb).unwrap();
    assert_eq!(model.device().location(), Device::Cpu.location());
    let empty = Tensor::zeros((1, 0, 128), DType::F32, &Device::Cpu).unwrap();
    let err = model.encode(&empty).unwrap_err().to_string();
    assert!(err.contains("no steps"), "{err}");
    let z = Tensor::zeros((1, cfg.latent), DType::F32, &Device::Cpu).unwrap();
    let bars = BarPositions::from_bar_line(&cfg, 1, 0);
    let err = model.decode(&empty, &z, &bars).unwrap_err().to_string();
    assert!(err.contains("no steps"), "{err}");
    let primer = Roll::from_binary(16, &vec![0u8; 16 * 128]).unwrap();
    let code = vec![0f32; cfg.latent];
    let opts = GenerateOptions {
        steps: MAX_STEPS - 7,
        primer_steps: 8,
        ..GenerateOptions::default()
    };
    let run = |opts: &GenerateOptions| {
        let stop = AtomicBool::new(true);
        generate(&model, &primer, &code, &code, opts, &mut |_| {}, &stop)
    };
    let err = run(&opts).unwrap_err().to_string();
    assert!(err.contains("more than the longest piece"), "{err}");
    // At the limit, it starts (and stops at once, as asked).
    let at_limit = GenerateOptions {
        steps: MAX_STEPS - 8,
        ..opts
    };
    assert!(matches!(run(&at_limit), Err(segue::Error::Cancelled)));
}

/// Generation shares each step's products among rayon's threads: the music is the same
/// whether it is asked for from outside the pool or inside pools of 1 and 3 threads, and the
/// progress comes back to the caller's own thread.
#[test]
fn generation_is_the_same_on_any_threads_and_reports_to_the_caller() {
    use segue::generate::{GenerateOptions, generate};
    use segue::roll::Roll;
    use std::sync::atomic::AtomicBool;
    // Wide enough (192 x 768 recurrent weights) for the products to be shared.
    let cfg = Config {
        hidden: 192,
        layers: 1,
        ..tiny()
    };
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = LstmVae::new(&cfg, vb).unwrap();
    segue::train_loop::seeded_init(&varmap, 1).unwrap();
    let mut cells = vec![0u8; 8 * 128];
    for s in 0..8 {
        cells[s * 128 + 60 + s % 3] = 1;
    }
    let primer = Roll::from_binary(8, &cells).unwrap();
    let z = [0.9f32, -0.4, 0.2, 1.1, -0.7, 0.5];
    let opts = GenerateOptions {
        steps: 64,
        primer_steps: 8,
        seed: 3,
        ..GenerateOptions::default()
    };
    let caller = std::thread::current().id();
    let mut shares = Vec::new();
    let outside = generate(
        &model,
        &primer,
        &z,
        &z,
        &opts,
        &mut |share| {
            assert_eq!(std::thread::current().id(), caller);
            shares.push(share);
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(shares.windows(2).all(|w| w[0] <= w[1]), "{shares:?}");
    assert_eq!(shares.last(), Some(&1.0));
    assert!(!outside.roll.slice(8, 64).notes().is_empty());
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let inside = pool
            .install(|| {
                generate(
                    &model,
                    &primer,
                    &z,
                    &z,
                    &opts,
                    &mut |_| {},
                    &AtomicBool::new(false),
                )
            })
            .unwrap();
        assert_eq!(
            inside.roll.cells(),
            outside.roll.cells(),
            "{threads} threads"
        );
    }
}

/// The parameter count from the sizes alone (what the memory check before training counts)
/// is the count the model has, for every variant and for one and several layers.
#[test]
fn the_parameter_count_from_the_sizes_is_the_models() {
    let mut configs = tiny_variants();
    configs.push(Config {
        layers: 1,
        ..tiny()
    });
    configs.push(Config {
        layers: 3,
        metre: 16,
        ..tiny()
    });
    for cfg in configs {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        LstmVae::new(&cfg, vb).unwrap();
        let built: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(cfg.parameters(), built as u128, "{cfg:?}");
    }
}

/// A run that needs more memory than any machine has is refused saying how much it needs.
#[test]
fn a_run_larger_than_the_machine_is_refused_before_it_starts() {
    use segue::train_loop::{check_training_memory, physical_memory};
    if physical_memory().is_none() {
        return; // not said by this system
    }
    let err = check_training_memory(&Device::Cpu, 1 << 60, 20, 1 << 20, "ask for less")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("GB of memory") && err.contains("this machine's"),
        "{err}"
    );
    assert!(
        err.contains("million weights") && err.ends_with("ask for less"),
        "{err}"
    );
    check_training_memory(&Device::Cpu, 1_000_000, 20, 1 << 20, "").unwrap();
}
