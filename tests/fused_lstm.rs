//! The fused LSTM: outputs equal PyTorch's `nn.LSTM` on fixed weights, gradients equal candle's
//! autograd through the composed step-by-step LSTM.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use segue::models::fused_lstm::LstmWeights;

/// sin(0.37 (i + 1) + k) / 2, the formula `scripts/torch_lstm_fixture.py` fills tensors with.
fn fill(dims: &[usize], k: f32) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| (0.37 * (i as f32 + 1.0) + k).sin() * 0.5)
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
}

fn fixture(name: &str) -> Vec<f32> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/torch_lstm.json"
    ))
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json[name]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

fn assert_close(got: &[f32], want: &[f32], rel: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * scale,
            "{what}[{i}]: {g} vs {w} (scale {scale})"
        );
    }
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn matches_pytorch_nn_lstm_outputs_and_gradients() {
    let (t, b, i, h) = (4, 2, 3, 5);
    let var = |dims: &[usize], k| Var::from_tensor(&fill(dims, k)).unwrap();
    let w = LstmWeights {
        w_ih: var(&[4 * h, i], 1.0).as_tensor().clone(),
        w_hh: var(&[4 * h, h], 2.0).as_tensor().clone(),
        b_ih: var(&[4 * h], 3.0).as_tensor().clone(),
        b_hh: var(&[4 * h], 4.0).as_tensor().clone(),
    };
    let x = var(&[t, b, i], 5.0);
    let h0 = var(&[b, h], 6.0);
    let c0 = var(&[b, h], 7.0);
    let out = w.sequence_fused(&x, &h0, &c0).unwrap();
    assert_close(&flat(&out), &fixture("out"), 1e-5, "out");
    let loss = (out * fill(&[t, b, h], 8.0)).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    assert_close(
        &flat(grads.get(&x).unwrap()),
        &fixture("grad_x"),
        1e-5,
        "dx",
    );
    assert_close(
        &flat(grads.get(&w.w_hh).unwrap()),
        &fixture("grad_w_hh"),
        1e-5,
        "dW_hh",
    );
    assert_close(
        &flat(grads.get(&c0).unwrap()),
        &fixture("grad_c0"),
        1e-5,
        "dc0",
    );
}

#[test]
fn gradients_equal_autograd_through_the_composed_lstm() {
    let (t, b, i, h) = (7, 3, 6, 8);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    // Two stacked layers, the second fed by the first, like the model's stacks.
    let l0 = LstmWeights::new(i, h, 0, &vb).unwrap();
    let l1 = LstmWeights::new(h, h, 1, &vb).unwrap();
    segue::train_loop::seeded_init(&varmap, 1).unwrap();
    let x = Var::from_tensor(&fill(&[t, b, i], 0.3)).unwrap();
    let h0 = Var::from_tensor(&fill(&[b, h], 0.9)).unwrap();
    let c0 = Var::from_tensor(&fill(&[b, h], 1.7)).unwrap();
    let target = fill(&[t, b, h], 2.2);

    let run = |fused: bool| {
        let seq = |l: &LstmWeights, x: &Tensor| {
            if fused {
                l.sequence_fused(x, &h0, &c0).unwrap()
            } else {
                l.sequence_composed(x, &h0, &c0).unwrap()
            }
        };
        let out = seq(&l1, &seq(&l0, &x));
        let loss = (&out - &target).unwrap().sqr().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let mut all = vec![flat(&out)];
        for v in varmap.all_vars() {
            all.push(flat(grads.get(&v).unwrap()));
        }
        for v in [&x, &h0, &c0] {
            all.push(flat(grads.get(v).unwrap()));
        }
        all
    };
    let fused = run(true);
    let composed = run(false);
    assert_eq!(fused.len(), 1 + 8 + 3, "outputs, 8 weights, x, h0, c0");
    for (n, (f, c)) in fused.iter().zip(&composed).enumerate() {
        assert_close(f, c, 1e-4, &format!("tensor {n}"));
    }
}

/// A batch of one (a primer being encoded) shares each step's product among rayon's threads
/// once the layer is wide enough: the outputs match the composed LSTM and do not depend on
/// the number of threads.
#[test]
fn one_wide_sequence_matches_on_any_threads() {
    // 256 x 1024 recurrent weights: above the size from which products are shared (2^17).
    let (t, b, i, h) = (5, 1, 10, 256);
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let l = LstmWeights::new(i, h, 0, &vb).unwrap();
    segue::train_loop::seeded_init(&varmap, 1).unwrap();
    let x = fill(&[t, b, i], 0.3);
    let h0 = fill(&[b, h], 0.9);
    let c0 = fill(&[b, h], 1.7);
    let composed = flat(&l.sequence_composed(&x, &h0, &c0).unwrap());
    let mut runs = Vec::new();
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        runs.push(pool.install(|| flat(&l.sequence_fused(&x, &h0, &c0).unwrap())));
    }
    assert_close(&runs[0], &composed, 1e-4, "fused vs composed");
    assert_eq!(runs[0], runs[1], "1 vs 2 threads");
    assert_eq!(runs[0], runs[2], "1 vs 3 threads");
}
