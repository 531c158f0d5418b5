//! Time per forward and backward pass of each layer of the classic small-VGG facial-expression
//! net (1x224x224 input, four conv-ReLU-maxpool blocks, dense to 7 classes), on the adapter
//! that FER_BACKEND / FER_ADAPTER select.
//!
//! Each layer's kernels are submitted alone and waited for, after warm-up; the figure is the
//! median over repeats. Times come from GPU timestamp queries when the adapter has them,
//! otherwise from the wall clock around a synchronized submission (the header says which).
//!
//!   cargo bench --bench ops                  batch 16, 7 repeats
//!   FER_BENCH_BATCH=64 cargo bench --bench ops
//!   FER_BENCH_QUICK=1 cargo bench --bench ops  batch 2, 2 repeats: a smoke run, not a figure

use fer_wgpu::gpu::{DType, GpuContext, GpuTensor, Kernel, TimingSource};
use fer_wgpu::ops::activation::{self, ReluParams};
use fer_wgpu::ops::batchnorm::{self, BatchNormGrads, BatchNormParams, BatchNormState, BatchStats};
use fer_wgpu::ops::conv2d::{self, Conv2dParams};
use fer_wgpu::ops::dense::{self, DenseParams};
use fer_wgpu::ops::loss::{self, LossInputs, LossOutputs, LossParams};
use fer_wgpu::ops::pool::{self, PoolParams};
use fer_wgpu::Result;

struct Layer {
    name: String,
    /// Multiply-adds of the forward pass, for GFLOP/s (0 where it means little).
    macs: u64,
    forward: Vec<Kernel>,
    backward: Vec<Kernel>,
}

fn t(ctx: &GpuContext, label: &str, shape: &[usize]) -> Result<GpuTensor> {
    GpuTensor::zeros(ctx, label, shape, DType::F32)
}

/// Seeded-looking but cheap data: a fixed ramp is enough for timing.
fn filled(ctx: &GpuContext, label: &str, shape: &[usize]) -> Result<GpuTensor> {
    let len: usize = shape.iter().product();
    let data: Vec<f32> = (0..len)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    GpuTensor::from_f32(ctx, label, shape, &data)
}

/// Builds the small-VGG layers at batch `n`, with every tensor their kernels need.
fn small_vgg(ctx: &GpuContext, n: usize, keep: &mut Vec<GpuTensor>) -> Result<Vec<Layer>> {
    let mut layers = vec![];
    let mut shape = [n, 1, 224, 224];
    let mut x = filled(ctx, "input", &shape)?;

    let bn = BatchNormParams::new(shape, 1e-5, 0.1)?;
    let (g, b, rm, rv) = (
        filled(ctx, "bn.g", &[1])?,
        t(ctx, "bn.b", &[1])?,
        t(ctx, "bn.rm", &[1])?,
        filled(ctx, "bn.rv", &[1])?,
    );
    let (m, v, y) = (
        t(ctx, "bn.m", &[1])?,
        t(ctx, "bn.v", &[1])?,
        t(ctx, "bn.y", &shape)?,
    );
    let (dx, dg, db) = (
        t(ctx, "bn.dx", &shape)?,
        t(ctx, "bn.dg", &[1])?,
        t(ctx, "bn.db", &[1])?,
    );
    let state = BatchNormState {
        gamma: &g,
        beta: &b,
        running_mean: &rm,
        running_var: &rv,
    };
    let stats = BatchStats { mean: &m, var: &v };
    let forward = batchnorm::forward_train(ctx, &bn, "bn", &x, &state, &stats, &y)?;
    let backward = batchnorm::backward(
        ctx,
        &bn,
        "bn",
        &y,
        &x,
        &g,
        &stats,
        &BatchNormGrads {
            dx: &dx,
            dgamma: &dg,
            dbeta: &db,
        },
    )?;
    layers.push(Layer {
        name: "batchnorm 1".into(),
        macs: 0,
        forward,
        backward,
    });
    keep.extend([x, g, b, rm, rv, m, v, dx, dg, db]);
    x = y;

    for (i, (c_out, pool_k)) in [(8, 3), (16, 2), (32, 2), (64, 2)].into_iter().enumerate() {
        let name = format!("conv{}", i + 1);
        let p = Conv2dParams::new(shape, c_out, [3, 3], 1, 1)?;
        let (w, bias) = (
            filled(ctx, &format!("{name}.w"), &p.weight_shape())?,
            filled(ctx, &format!("{name}.b"), &[c_out])?,
        );
        let y = t(ctx, &format!("{name}.y"), &p.y_shape())?;
        let (dx, dw, db) = (
            t(ctx, "dx", &shape)?,
            t(ctx, "dw", &p.weight_shape())?,
            t(ctx, "db", &[c_out])?,
        );
        let forward = vec![conv2d::forward(ctx, &p, &name, &x, &w, &bias, &y)?];
        let mut backward = vec![conv2d::backward_input(ctx, &p, &name, &y, &w, &dx)?];
        backward.extend(conv2d::backward_weight(ctx, &p, &name, &y, &x, &dw)?);
        backward.extend(conv2d::backward_bias(ctx, &p, &name, &y, &db)?);
        layers.push(Layer {
            name: format!("{name} 3x3 {}->{c_out}", shape[1]),
            macs: p.macs(),
            forward,
            backward,
        });

        let rp = ReluParams::new(y.numel(), 0.0)?;
        let (a, da) = (
            t(ctx, "relu.y", &p.y_shape())?,
            t(ctx, "relu.dx", &p.y_shape())?,
        );
        let forward = vec![activation::relu_forward(ctx, &rp, "relu", &y, &a)?];
        let backward = vec![activation::relu_backward_input(
            ctx, &rp, "relu", &a, &y, &da,
        )?];
        layers.push(Layer {
            name: format!("relu{}", i + 1),
            macs: 0,
            forward,
            backward,
        });

        let pp = PoolParams::new(p.y_shape(), [pool_k, pool_k], 3, 0, false)?;
        let (py, arg, pdx) = (
            t(ctx, "pool.y", &pp.y_shape())?,
            GpuTensor::zeros(ctx, "pool.arg", &pp.y_shape(), DType::U32)?,
            t(ctx, "pool.dx", &p.y_shape())?,
        );
        let forward = vec![pool::max_forward(ctx, &pp, "pool", &a, &py, &arg)?];
        let backward = vec![pool::max_backward_input(ctx, &pp, "pool", &py, &arg, &pdx)?];
        layers.push(Layer {
            name: format!("maxpool{} {pool_k}x{pool_k}/3", i + 1),
            macs: 0,
            forward,
            backward,
        });
        keep.extend([x, w, bias, y, dx, dw, db, a, da, arg, pdx]);
        shape = pp.y_shape();
        x = py;
    }

    let d_in = shape[1] * shape[2] * shape[3];
    let fp = DenseParams::new(n, d_in, 7)?;
    let (w, b, logits) = (
        filled(ctx, "fc.w", &[7, d_in])?,
        t(ctx, "fc.b", &[7])?,
        t(ctx, "fc.y", &[n, 7])?,
    );
    let (dx, dw, db) = (
        t(ctx, "fc.dx", &[n, d_in])?,
        t(ctx, "fc.dw", &[7, d_in])?,
        t(ctx, "fc.db", &[7])?,
    );
    let forward = vec![dense::forward(ctx, &fp, "fc", &x, &w, &b, &logits)?];
    let backward = vec![
        dense::backward_input(ctx, &fp, "fc", &logits, &w, &dx)?,
        dense::backward_weight(ctx, &fp, "fc", &logits, &x, &dw)?,
        dense::backward_bias(ctx, &fp, "fc", &logits, &db)?,
    ];
    layers.push(Layer {
        name: format!("dense {d_in}->7"),
        macs: (n * d_in * 7) as u64,
        forward,
        backward,
    });

    let lp = LossParams::new(n, 7, 0.0)?;
    let labels = GpuTensor::from_u32(ctx, "labels", &[n], &vec![3; n])?;
    let cw = GpuTensor::from_f32(ctx, "cw", &[7], &[1.0; 7])?;
    let (prob, sl, lv, dz) = (
        t(ctx, "prob", &[n, 7])?,
        t(ctx, "sl", &[n])?,
        t(ctx, "lv", &[2])?,
        t(ctx, "dz", &[n, 7])?,
    );
    let inputs = LossInputs {
        logits: &logits,
        labels: &labels,
        class_weight: &cw,
    };
    let outputs = LossOutputs {
        prob: &prob,
        sample_loss: &sl,
        loss: &lv,
    };
    let forward = loss::forward(ctx, &lp, "loss", &inputs, &outputs)?;
    let backward = vec![loss::backward_input(
        ctx, &lp, "loss", &inputs, &outputs, &dz,
    )?];
    layers.push(Layer {
        name: "softmax xent".into(),
        macs: 0,
        forward,
        backward,
    });
    keep.extend([x, w, b, dx, dw, db, labels, cw, prob, sl, lv, dz, logits]);
    Ok(layers)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median milliseconds of running `kernels` once, over `repeats` after one warm-up run.
fn time(ctx: &GpuContext, kernels: &[Kernel], repeats: usize) -> Result<(f64, TimingSource)> {
    let refs: Vec<&Kernel> = kernels.iter().collect();
    ctx.submit_timed(&refs)?;
    let mut source = TimingSource::WallClock;
    let mut samples = vec![];
    for _ in 0..repeats {
        let timings = ctx.submit_timed(&refs)?;
        source = timings.source;
        samples.push(timings.ms.iter().sum());
    }
    Ok((median(samples), source))
}

fn main() -> Result<()> {
    let quick = std::env::var_os("FER_BENCH_QUICK").is_some();
    let batch: usize = std::env::var("FER_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2 } else { 16 });
    let repeats = if quick { 2 } else { 7 };
    let ctx = GpuContext::from_env()?;
    let mut keep = vec![];
    let layers = small_vgg(&ctx, batch, &mut keep)?;
    let (mut total_fwd, mut total_bwd) = (0.0, 0.0);
    let mut source = TimingSource::WallClock;
    println!(
        "adapter: {} ({:?}); small-vgg, batch {batch}, median of {repeats}",
        ctx.info.name, ctx.info.backend
    );
    println!(
        "{:<24} {:>12} {:>12} {:>14}",
        "layer", "forward ms", "backward ms", "fwd GFLOP/s"
    );
    for layer in &layers {
        let (fwd, s) = time(&ctx, &layer.forward, repeats)?;
        let (bwd, _) = time(&ctx, &layer.backward, repeats)?;
        source = s;
        let gflops = if layer.macs > 0 {
            format!("{:.2}", 2.0 * layer.macs as f64 / fwd / 1e6)
        } else {
            "-".into()
        };
        println!("{:<24} {fwd:>12.3} {bwd:>12.3} {gflops:>14}", layer.name);
        total_fwd += fwd;
        total_bwd += bwd;
    }
    println!("{:<24} {total_fwd:>12.3} {total_bwd:>12.3}", "total");
    println!(
        "forward + backward: {:.1} images/s; times from {source:?}",
        batch as f64 / ((total_fwd + total_bwd) / 1e3)
    );
    Ok(())
}
