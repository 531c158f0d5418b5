//! The training engine: model specs and shape inference, one GPU step against the CPU
//! reference for every optimizer, determinism, overfitting a tiny set, freezing, checkpoints.

mod common;

use common::{blobs, gpu};
use fer_wgpu::check::{assert_close, error_stats, Tolerance};
use fer_wgpu::model::spec::{Layer, LayerSpec};
use fer_wgpu::model::{small_vgg, Checkpoint, ModelSpec, ParamSet};
use fer_wgpu::ops::optim::Optimizer;
use fer_wgpu::train::cpu::CpuTrainer;
use fer_wgpu::train::gpu::GpuTrainer;
use fer_wgpu::train::{fit, Backend, LrSchedule, TrainConfig};

fn layer(layer: Layer) -> LayerSpec {
    LayerSpec { name: None, layer }
}

/// A small net with every layer type: conv, batch norm, ReLU, max and average pooling,
/// dropout, global average pooling, flatten-free dense, and a flat batch norm.
fn every_layer_net(classes: usize) -> ModelSpec {
    ModelSpec {
        name: "every-layer".into(),
        input: [1, 12, 12],
        classes,
        layers: vec![
            layer(Layer::BatchNorm {
                eps: 1e-5,
                momentum: 0.1,
            }),
            layer(Layer::Conv2d {
                filters: 6,
                kernel: 3,
                stride: 1,
                pad: 1,
            }),
            // ReLU before batch norm: a conv bias straight before batch norm has a gradient
            // that is zero in exact arithmetic, and Adam would amplify its rounding noise.
            layer(Layer::Relu { slope: 0.0 }),
            layer(Layer::BatchNorm {
                eps: 1e-5,
                momentum: 0.1,
            }),
            layer(Layer::MaxPool {
                size: 2,
                stride: 2,
                pad: 0,
                ceil: false,
            }),
            layer(Layer::Conv2d {
                filters: 8,
                kernel: 3,
                stride: 1,
                pad: 0,
            }),
            layer(Layer::Relu { slope: 0.1 }),
            layer(Layer::AvgPool {
                size: 2,
                stride: 1,
                pad: 0,
                ceil: true,
            }),
            layer(Layer::Dropout { rate: 0.25 }),
            layer(Layer::GlobalAvgPool),
            layer(Layer::BatchNorm {
                eps: 1e-5,
                momentum: 0.1,
            }),
            layer(Layer::Dense { units: classes }),
        ],
    }
}

/// A small flatten-based net (the small-VGG pattern at 12x12).
fn flat_net(classes: usize) -> ModelSpec {
    ModelSpec {
        name: "flat".into(),
        input: [1, 12, 12],
        classes,
        layers: vec![
            layer(Layer::Conv2d {
                filters: 8,
                kernel: 3,
                stride: 1,
                pad: 1,
            }),
            layer(Layer::Relu { slope: 0.0 }),
            layer(Layer::MaxPool {
                size: 2,
                stride: 3,
                pad: 0,
                ceil: false,
            }),
            layer(Layer::Flatten),
            layer(Layer::Dense { units: classes }),
        ],
    }
}

#[test]
fn small_vgg_parameter_count_matches_the_count_by_hand() {
    let plan = small_vgg(7).plan(1).unwrap();
    // batch norm on 1 channel: gamma, beta = 2
    // conv1 1->8 3x3: 8*1*9 + 8 = 80;     224 -> pool 3/3 -> 74
    // conv2 8->16: 16*8*9 + 16 = 1168;    74 -> pool 2/3 -> 25
    // conv3 16->32: 32*16*9 + 32 = 4640;  25 -> pool 2/3 -> 8
    // conv4 32->64: 64*32*9 + 64 = 18496; 8 -> pool 2/3 -> 3
    // dense 64*3*3 = 576 -> 7: 576*7 + 7 = 4039
    assert_eq!(plan.trainable_count(), 2 + 80 + 1168 + 4640 + 18496 + 4039);
    assert_eq!(plan.layers.last().unwrap().in_shape, [1, 576]);
    let pools: Vec<_> = plan
        .layers
        .iter()
        .filter(|l| l.name.starts_with("maxpool"))
        .map(|l| l.out_shape[2])
        .collect();
    assert_eq!(pools, [74, 25, 8, 3]);
}

#[test]
fn impossible_stacks_are_errors_naming_the_layer() {
    let mut spec = flat_net(3);
    spec.layers[2] = layer(Layer::MaxPool {
        size: 20,
        stride: 2,
        pad: 0,
        ceil: false,
    });
    let e = spec.plan(2).unwrap_err().to_string();
    assert!(
        e.contains("layer 3 (maxpool1") && e.contains("window 20x20 is larger"),
        "{e}"
    );

    let mut spec = flat_net(3);
    spec.layers.remove(3); // no flatten before dense
    let e = spec.plan(2).unwrap_err().to_string();
    assert!(e.contains("fc1") && e.contains("add a flatten"), "{e}");

    let mut spec = flat_net(3);
    spec.layers.push(layer(Layer::Relu { slope: 0.0 }));
    let e = spec.plan(2).unwrap_err().to_string();
    assert!(e.contains("last layer must be a dense layer"), "{e}");

    let e = ModelSpec::from_json(
        r#"{"name":"x","input":[1,8,8],"classes":2,
        "layers":[{"type":"convolution","filters":2}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("convolution"), "{e}");
    let e = fer_wgpu::model::builtin("resnet", 7)
        .unwrap_err()
        .to_string();
    assert!(e.contains("small-vgg") && e.contains("fer-net"), "{e}");
}

#[test]
fn model_spec_round_trips_through_json() {
    for spec in [
        small_vgg(7),
        fer_wgpu::model::fer_net(2),
        every_layer_net(4),
    ] {
        assert_eq!(ModelSpec::from_json(&spec.to_json()).unwrap(), spec);
    }
}

fn config(optimizer: Optimizer, batch: usize) -> TrainConfig {
    TrainConfig {
        batch_size: batch,
        optimizer,
        lr: 0.05,
        seed: 7,
        ..TrainConfig::default()
    }
}

/// Runs `steps` steps on both backends from the same initial parameters and compares every
/// parameter, running statistic and optimizer state afterwards.
fn compare_steps(spec: &ModelSpec, cfg: &TrainConfig, steps: usize) {
    let data = blobs(spec.classes, 6, 12, 3);
    let mut g = GpuTrainer::new(gpu(), spec, cfg, &data, None).unwrap();
    let mut c = CpuTrainer::new(spec, cfg, &data, Some(g.params().unwrap())).unwrap();
    let order = fer_wgpu::seed::shuffled(cfg.seed, 0, data.len());
    g.begin_epoch(&order).unwrap();
    c.begin_epoch(&order).unwrap();
    for s in 0..steps {
        g.step(s, cfg.lr).unwrap();
        c.step(s, cfg.lr).unwrap();
    }
    let (gs, cs) = (g.end_epoch().unwrap(), c.end_epoch().unwrap());
    assert!(
        (gs.loss - cs.loss).abs() < 1e-4 * cs.loss.abs().max(1.0),
        "{gs:?} vs {cs:?}"
    );
    assert_eq!(gs.samples, cs.samples);
    let (gp, cp) = (g.params().unwrap(), c.params().unwrap());
    for (a, b) in gp.tensors.iter().zip(&cp.tensors) {
        assert_eq!(a.name, b.name);
        let s = error_stats(&a.data, &b.data);
        println!(
            "{:?} step {steps}: {:<22} max abs {:.2e} rel {:.2e}",
            cfg.optimizer, a.name, s.max_abs, s.max_rel
        );
        assert_close(&a.name, &a.data, &b.data, param_tolerance(cfg, steps));
    }
    let ((go, gt), (co, ct)) = (g.optimizer_state().unwrap(), c.optimizer_state().unwrap());
    assert_eq!(gt, ct);
    for (a, b) in go.tensors.iter().zip(&co.tensors) {
        assert_eq!(a.name, b.name);
        let tol = match param_tolerance(cfg, steps) {
            t if t.rel > 0.0 => t,
            // After adaptive steps whose weights differ as above, later gradients differ by
            // up to ~1e-3 of their scale, and the state is a sum of gradients.
            _ => Tolerance {
                abs: 2e-5,
                rel: 5e-3,
                why: "state built from gradients of weights that differ after adaptive steps",
            },
        };
        assert_close(&a.name, &a.data, &b.data, tol);
    }
}

/// How close parameters must be after `steps` steps.
fn param_tolerance(cfg: &TrainConfig, steps: usize) -> Tolerance {
    match cfg.optimizer {
        // SGD is linear in the gradients, which agree to ~1e-6 of their scale (see ops_gpu);
        // a step moves a weight by lr * |g| <= 0.05 * a few, so weights agree to ~1e-6.
        Optimizer::Sgd { .. } => Tolerance {
            abs: 2e-5,
            rel: 2e-5,
            why: "SGD steps from gradients that agree to ~1e-6 of their scale",
        },
        // Adaptive rules divide by the gradient's own size, so each step is about lr per
        // element whatever the gradient's scale. A gradient that is a long sum with heavy
        // cancellation (batch norm's dgamma on the input: ~1000 terms summing to 1e-3 of
        // their size) keeps only ~1e-3 relative accuracy in f32, and that fraction of lr
        // shows in the step. The first step is lr * g / |g|, insensitive to it.
        _ if steps == 1 => Tolerance {
            abs: 2e-5,
            rel: 2e-5,
            why: "a first adaptive step is lr * sign(g)",
        },
        _ => Tolerance {
            abs: 0.02 * cfg.lr as f64 * steps as f64,
            rel: 0.0,
            why: "adaptive steps carry the ~1e-3 relative error of cancelling gradient sums",
        },
    }
}

#[test]
fn one_gpu_step_matches_the_cpu_reference_for_sgd() {
    let sgd = Optimizer::Sgd {
        momentum: 0.9,
        nesterov: false,
        weight_decay: 1e-3,
    };
    compare_steps(&every_layer_net(4), &config(sgd, 8), 1);
    compare_steps(&flat_net(3), &config(sgd, 6), 1);
    let nesterov = Optimizer::Sgd {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 0.0,
    };
    compare_steps(&every_layer_net(4), &config(nesterov, 8), 3);
}

#[test]
fn one_gpu_step_matches_the_cpu_reference_for_adam_and_the_rest() {
    // eps 1e-4 rather than 1e-8: Adam's first step is lr * g / |g|, so a gradient element
    // that is rounding noise (~1e-9) could flip sign between the backends with a tiny eps.
    let adam = Optimizer::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-4,
        weight_decay: 1e-3,
    };
    compare_steps(&every_layer_net(4), &config(adam, 8), 1);
    let adamw = Optimizer::AdamW {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-4,
        weight_decay: 0.05,
    };
    compare_steps(&every_layer_net(4), &config(adamw, 8), 3);
    let rms = Optimizer::RmsProp {
        alpha: 0.9,
        eps: 1e-4,
        weight_decay: 0.0,
    };
    let mut cfg = config(rms, 8);
    cfg.lr = 0.005;
    cfg.clip_norm = Some(0.5); // small enough to clip
    cfg.label_smoothing = 0.1;
    cfg.class_weights = Some(vec![1.0, 2.0, 0.5, 1.5]);
    compare_steps(&every_layer_net(4), &cfg, 2);
}

fn train_gpu(spec: &ModelSpec, cfg: &TrainConfig) -> (ParamSet, Vec<fer_wgpu::train::EpochRecord>) {
    let data = blobs(spec.classes, 8, 12, 11);
    let mut g = GpuTrainer::new(gpu(), spec, cfg, &data, None).unwrap();
    let history = fit(&mut g, cfg, data.len(), None, |_| {}).unwrap();
    let steps = (data.len() / cfg.batch_size * cfg.epochs) as u64;
    assert_eq!(
        g.submissions, steps,
        "one queue submission per training step"
    );
    assert_eq!(
        g.readbacks,
        2 * cfg.epochs as u64,
        "two small readbacks per epoch"
    );
    (g.params().unwrap(), history)
}

#[test]
fn same_seed_gives_bit_identical_weights() {
    let mut cfg = config(Optimizer::adam(), 8);
    cfg.epochs = 3;
    cfg.lr = 0.01;
    let spec = every_layer_net(4);
    let (a, _) = train_gpu(&spec, &cfg);
    let (b, _) = train_gpu(&spec, &cfg);
    for (x, y) in a.tensors.iter().zip(&b.tensors) {
        let (xb, yb): (Vec<u32>, Vec<u32>) = (
            x.data.iter().map(|v| v.to_bits()).collect(),
            y.data.iter().map(|v| v.to_bits()).collect(),
        );
        assert!(
            xb == yb,
            "{} differs between two runs with the same seed",
            x.name
        );
    }
    cfg.seed += 1;
    let (c, _) = train_gpu(&spec, &cfg);
    assert_ne!(a, c, "another seed must give other weights");
}

#[test]
fn a_small_net_overfits_a_tiny_set() {
    // 32 images of 4 classes: a net must be able to reach 100% training accuracy. With the
    // seed fixed the run is deterministic; 40 epochs leaves a wide margin.
    let mut cfg = config(Optimizer::adam(), 8);
    cfg.epochs = 40;
    cfg.lr = 0.01;
    let (_, history) = train_gpu(&flat_net(4), &cfg);
    let first = history.iter().position(|r| r.train_accuracy == 1.0);
    println!(
        "loss by epoch: {:?}",
        history
            .iter()
            .map(|r| r.train_loss as f32)
            .collect::<Vec<_>>()
    );
    assert!(first.is_some(), "never reached 100%: {history:?}");
    assert!(history.last().unwrap().train_loss < history[0].train_loss / 4.0);
}

#[test]
fn frozen_layers_keep_their_weights() {
    let mut cfg = config(Optimizer::sgd_momentum(), 8);
    cfg.epochs = 2;
    cfg.frozen = vec!["conv1".into()];
    let spec = flat_net(4);
    let data = blobs(4, 8, 12, 11);
    let mut g = GpuTrainer::new(gpu(), &spec, &cfg, &data, None).unwrap();
    let before = g.params().unwrap();
    fit(&mut g, &cfg, data.len(), None, |_| {}).unwrap();
    let after = g.params().unwrap();
    assert_eq!(before.get("conv1.weight"), after.get("conv1.weight"));
    assert_eq!(before.get("conv1.bias"), after.get("conv1.bias"));
    assert_ne!(before.get("fc1.weight"), after.get("fc1.weight"));
    cfg.frozen = vec!["conv9".into()];
    let e = GpuTrainer::new(gpu(), &spec, &cfg, &data, None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cannot freeze \"conv9\""), "{e}");
}

#[test]
fn evaluation_and_prediction_agree_with_the_cpu_reference() {
    let spec = every_layer_net(4);
    let cfg = config(Optimizer::adam(), 8);
    let data = blobs(4, 5, 12, 21); // 20 images: the last eval batch is partial
    let mut g = GpuTrainer::new(gpu(), &spec, &cfg, &data, None).unwrap();
    fit(
        &mut g,
        &TrainConfig {
            epochs: 2,
            ..cfg.clone()
        },
        data.len(),
        None,
        |_| {},
    )
    .unwrap();
    let mut c = CpuTrainer::new(&spec, &cfg, &data, Some(g.params().unwrap())).unwrap();
    let (ge, ce) = (g.evaluate(&data).unwrap(), c.evaluate(&data).unwrap());
    assert_eq!(ge.samples, 20);
    assert_eq!(ge.confusion, ce.confusion);
    assert!(
        (ge.loss - ce.loss).abs() < 1e-5,
        "{} vs {}",
        ge.loss,
        ce.loss
    );
    let (gp, cp) = (
        g.predict(&data.images).unwrap(),
        c.predict(&data.images).unwrap(),
    );
    assert_eq!(gp.len(), 20 * 4);
    assert_close("predicted probabilities", &gp, &cp, Tolerance::NORMALIZED);
    // Rows of the confusion matrix add up to the class counts.
    let counts = data.class_counts();
    for (row, n) in ge.confusion.iter().zip(counts) {
        assert_eq!(row.iter().sum::<u64>() as usize, n);
    }
}

#[test]
fn learning_rate_schedules() {
    use fer_wgpu::train::Scheduler;
    let s = Scheduler::new(
        0.1,
        LrSchedule::Step {
            every: 2,
            gamma: 0.5,
        },
        6,
        0,
    );
    assert_eq!(
        [0, 1, 2, 3, 4].map(|e| s.lr(e, 100)),
        [0.1, 0.1, 0.05, 0.05, 0.025]
    );
    let s = Scheduler::new(0.1, LrSchedule::Cosine { min_lr: 0.0 }, 5, 0);
    assert!((s.lr(0, 0) - 0.1).abs() < 1e-7 && s.lr(4, 0).abs() < 1e-7);
    assert!(
        (s.lr(2, 0) - 0.05).abs() < 1e-7,
        "half way is half the rate"
    );
    let s = Scheduler::new(0.1, LrSchedule::Constant, 5, 4);
    assert_eq!([0, 1, 3, 4].map(|t| s.lr(0, t)), [0.025, 0.05, 0.1, 0.1]);
    let mut s = Scheduler::new(
        0.1,
        LrSchedule::Plateau {
            factor: 0.5,
            patience: 1,
            min_lr: 0.03,
        },
        9,
        0,
    );
    let reduced: Vec<bool> = [1.0, 0.9, 0.95, 0.95, 0.8, 0.9, 0.9, 0.9, 0.9]
        .iter()
        .map(|&l| s.observe(l))
        .collect();
    assert_eq!(
        reduced,
        [false, false, false, true, false, false, true, false, false]
    );
    assert_eq!(s.lr(8, 0), 0.03, "never below min_lr");
}

#[test]
fn checkpoints_round_trip_and_reject_bad_files() {
    let dir = std::env::temp_dir().join(format!("fer-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = every_layer_net(4);
    let plan = spec.plan(1).unwrap();
    let params = ParamSet::init(&plan, 5);
    let ckpt = Checkpoint {
        spec: spec.clone(),
        class_names: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        preprocessing: serde_json::json!({"size": [12, 12]}),
        training: serde_json::json!({"seed": 5}),
        params: params.clone(),
        optimizer: Some((
            ParamSet {
                tensors: vec![params.tensors[0].clone()],
            },
            17,
        )),
    };
    let path = dir.join("model.safetensors");
    ckpt.save(&path).unwrap();
    assert_eq!(Checkpoint::load(&path).unwrap(), ckpt);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "the temporary file is renamed away: {leftovers:?}"
    );

    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let e = Checkpoint::load(&truncated).unwrap_err().to_string();
    assert!(
        e.contains("truncated.safetensors") && e.contains("truncated"),
        "{e}"
    );
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"this is not a checkpoint at all").unwrap();
    let e = Checkpoint::load(&garbage).unwrap_err().to_string();
    assert!(e.contains("not a safetensors file"), "{e}");
    let e = Checkpoint::load(&dir.join("missing.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing.safetensors") && e.contains("cannot read"),
        "{e}"
    );
    // A plain safetensors file without our metadata.
    let foreign = dir.join("foreign.safetensors");
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &[0u8; 4]).unwrap();
    std::fs::write(
        &foreign,
        safetensors::serialize([("w", view)], None).unwrap(),
    )
    .unwrap();
    let e = Checkpoint::load(&foreign).unwrap_err().to_string();
    assert!(e.contains("not a fer-wgpu checkpoint"), "{e}");
    // Parameters of another architecture.
    let other = flat_net(4).plan(1).unwrap();
    let e = ckpt
        .params
        .check_matches(&other, "model.safetensors")
        .unwrap_err()
        .to_string();
    assert!(e.contains("another architecture"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
