//! Per-layer throughput against the adapter's own roofline: what `fer bench` and
//! `cargo bench --bench ops` run.
//!
//! 1. Calibration: `calibrate_fma` and `calibrate_copy` (shaders/calibrate.wgsl) measure the
//!    adapter's peak multiply-add rate (FLOP/s) and storage-buffer copy bandwidth (B/s).
//! 2. For each model and batch size, a real [`GpuTrainer`] on random images runs training
//!    steps and inference batches with every kernel timed; each kernel is attributed to a
//!    layer and a pass (forward, backward to the input, backward to the parameters) and the
//!    median over repeats is kept.
//! 3. Each (layer, pass) gets its FLOPs and the bytes it must move at least (every input read
//!    once, every output written once, f32), so its roofline bound is
//!    `max(flops / peak_flops, bytes / peak_bandwidth)` seconds and its fraction of the
//!    roofline is that bound over the measured time. 100% is the adapter's best; a fraction
//!    stays meaningful from a laptop GPU to a software adapter.
//!
//! Times come from GPU timestamp queries when the adapter has them, otherwise from the wall
//! clock around each kernel submitted and waited for alone (which then includes submission
//! overhead); the report says which. The whole training step and inference are also timed on
//! the wall clock as the trainer really runs them: one submission per step.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext, GpuTensor, TimingSource};
use crate::model::spec::{LayerOp, Plan};
use crate::model::{builtin, ModelSpec};
use crate::ops::calibrate::{self, CalibrateParams};
use crate::train::gpu::{GpuTrainer, KernelTime, Pass};
use crate::train::{Backend, TrainConfig};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Built-in model names.
    pub models: Vec<String>,
    pub batches: Vec<usize>,
    /// Timed runs per figure (the median is reported), after `warmup` untimed ones.
    pub repeats: usize,
    pub warmup: usize,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            models: vec!["small-vgg".into(), "fer-net".into()],
            batches: vec![1, 16, 64],
            repeats: 5,
            warmup: 1,
        }
    }
}

/// The adapter's measured roofs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Peaks {
    /// Multiply-add throughput, GFLOP/s (one FMA = 2 FLOPs).
    pub gflops: f64,
    /// Storage-buffer copy bandwidth, GB/s (bytes read + bytes written).
    pub gbps: f64,
}

impl Peaks {
    /// FLOPs per byte above which a kernel is bound by arithmetic rather than memory.
    pub fn ridge(&self) -> f64 {
        self.gflops / self.gbps
    }

    /// The shortest time, in ms, in which the adapter could do `flops` and move `bytes`.
    pub fn bound_ms(&self, flops: f64, bytes: f64) -> f64 {
        (flops / (self.gflops * 1e6)).max(bytes / (self.gbps * 1e6))
    }
}

/// One (layer, pass) of one model at one batch size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRow {
    pub model: String,
    pub batch: usize,
    pub layer: String,
    /// What the layer is, e.g. `conv 3x3 8->16 @112x112`.
    pub op: String,
    pub pass: Pass,
    /// Median GPU time of the pass's kernels, ms.
    pub ms: f64,
    pub flops: f64,
    pub bytes: f64,
    /// `bound_ms / ms`: 1.0 is the adapter's roofline. None when FLOPs and bytes are not
    /// modelled (the input gather, loss and optimizer rows).
    pub roofline_fraction: Option<f64>,
}

impl LayerRow {
    pub fn gflops(&self) -> f64 {
        self.flops / (self.ms * 1e6)
    }
    pub fn gbps(&self) -> f64 {
        self.bytes / (self.ms * 1e6)
    }
}

/// Whole-step figures of one model at one batch size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRow {
    pub model: String,
    pub batch: usize,
    /// Sum of the kernel times of a training step (median per kernel), ms.
    pub step_gpu_ms: f64,
    /// Median wall time of a real training step (one submission, waited for), ms.
    pub step_wall_ms: f64,
    pub train_images_per_s: f64,
    /// Inference (forward, loss, metrics) per image: GPU kernel time and wall time, ms.
    pub infer_gpu_ms_per_image: f64,
    pub infer_wall_ms_per_image: f64,
    pub infer_images_per_s: f64,
    /// Share of the training step's GPU time per layer (all passes), in step order.
    pub share: Vec<(String, f64)>,
}

/// A whole benchmark run, as written to JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchReport {
    pub version: String,
    pub adapter: String,
    pub backend: String,
    /// `gpu_timestamps` or `wall_clock`.
    pub timing: String,
    pub repeats: usize,
    pub peaks: Peaks,
    pub layers: Vec<LayerRow>,
    pub models: Vec<ModelRow>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn timing_name(source: TimingSource) -> &'static str {
    match source {
        TimingSource::GpuTimestamps => "gpu_timestamps",
        TimingSource::WallClock => "wall_clock",
    }
}

/// Measures the adapter's peak FMA rate and copy bandwidth. Each kernel is sized up until
/// one run takes at least 20 ms, then the best of `repeats` runs is kept (a peak is the best
/// the adapter can do, not a typical run).
pub fn calibrate(ctx: &GpuContext, repeats: usize) -> Result<(Peaks, TimingSource)> {
    // FMA: enough invocations to fill a large GPU; trips double until the run is long enough.
    let n = 1 << 18;
    let out = GpuTensor::zeros(ctx, "calibrate.fma.out", &[n, 4], DType::F32)?;
    let mut iters = 16;
    let (gflops, source) = loop {
        let p = CalibrateParams::new(n, iters)?;
        let kernel = calibrate::fma(ctx, &p, &out)?;
        ctx.submit_timed(&[&kernel])?;
        let mut best = f64::INFINITY;
        let mut source = TimingSource::WallClock;
        for _ in 0..repeats.max(1) {
            let t = ctx.submit_timed(&[&kernel])?;
            best = best.min(t.ms[0]);
            source = t.source;
        }
        if best >= 20.0 || iters >= 1 << 16 {
            break (p.fma_flops() as f64 / (best * 1e6), source);
        }
        iters *= 2;
    };

    // Copy: the largest power-of-two buffer up to 64 MiB that one binding can hold.
    let max_binding = ctx.limits.max_storage_buffer_binding_size as usize;
    let mut bytes = 64 << 20;
    while bytes > max_binding {
        bytes /= 2;
    }
    let n = bytes / 16;
    let src = GpuTensor::zeros(ctx, "calibrate.copy.src", &[n, 4], DType::F32)?;
    let dst = GpuTensor::zeros(ctx, "calibrate.copy.dst", &[n, 4], DType::F32)?;
    let p = CalibrateParams::new(n, 0)?;
    let kernel = calibrate::copy(ctx, &p, &src, &dst)?;
    ctx.submit_timed(&[&kernel])?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        best = best.min(ctx.submit_timed(&[&kernel])?.ms[0]);
    }
    let gbps = p.copy_bytes() as f64 / (best * 1e6);
    Ok((Peaks { gflops, gbps }, source))
}

/// FLOPs and minimum bytes moved (every input read once, every output written once) of one
/// pass of one layer. Rough for the element-wise layers, exact for convolution and dense.
pub fn layer_cost(op: &LayerOp, in_shape: &[usize], out_shape: &[usize], pass: Pass) -> (f64, f64) {
    let x = in_shape.iter().product::<usize>() as f64;
    let y = out_shape.iter().product::<usize>() as f64;
    let f = 4.0; // bytes per f32
    match (op, pass) {
        (LayerOp::Conv2d(p), pass) => {
            let macs = p.macs() as f64;
            let w = p.weight_shape().iter().product::<usize>() as f64;
            let b = f64::from(p.c_out);
            match pass {
                Pass::Forward => (2.0 * macs, f * (x + w + b + y)),
                Pass::BackwardInput => (2.0 * macs, f * (y + w + x)),
                Pass::BackwardParams => (2.0 * macs + y, f * (y + x + w + b)),
            }
        }
        (LayerOp::Dense(p), pass) => {
            let (n, d_in, d_out) = (f64::from(p.n), f64::from(p.d_in), f64::from(p.d_out));
            let (macs, w, b) = (n * d_in * d_out, d_in * d_out, d_out);
            match pass {
                Pass::Forward => (2.0 * macs, f * (x + w + b + y)),
                Pass::BackwardInput => (2.0 * macs, f * (y + w + x)),
                Pass::BackwardParams => (2.0 * macs + y, f * (y + x + w + b)),
            }
        }
        // Statistics (2 FLOPs per element for the mean, 3 for the variance), then 2 to
        // normalize; backward: 4 per element for the two parameter sums, 6 for dx.
        (LayerOp::BatchNorm(_), Pass::Forward) => (7.0 * x, f * (x + y)),
        (LayerOp::BatchNorm(_), Pass::BackwardParams) => (4.0 * x, f * 2.0 * x),
        (LayerOp::BatchNorm(_), Pass::BackwardInput) => (6.0 * x, f * 3.0 * x),
        (LayerOp::Relu(_) | LayerOp::Dropout(_), Pass::Forward) => (x, f * (x + y)),
        (LayerOp::Relu(_) | LayerOp::Dropout(_), _) => (x, f * (y + 2.0 * x)),
        // Max pooling compares every window element and writes the value and its argmax.
        (LayerOp::MaxPool(p), Pass::Forward) => (y * f64::from(p.kh * p.kw), f * (x + 2.0 * y)),
        (LayerOp::MaxPool(_), _) => (0.0, f * (2.0 * y + x)),
        (LayerOp::AvgPool(p), Pass::Forward) => (y * f64::from(p.kh * p.kw), f * (x + y)),
        (LayerOp::AvgPool(p), _) => (x * f64::from(p.kh * p.kw), f * (y + x)),
        (LayerOp::GlobalAvgPool(_), Pass::Forward) => (x, f * (x + y)),
        (LayerOp::GlobalAvgPool(_), _) => (x, f * (y + x)),
        (LayerOp::Flatten, _) => (0.0, 0.0),
    }
}

/// A short description of a layer for the table.
fn describe(op: &LayerOp, in_shape: &[usize]) -> String {
    let hw = |s: &[usize]| match s {
        [_, _, h, w] => format!(" @{h}x{w}"),
        _ => String::new(),
    };
    match op {
        LayerOp::Conv2d(p) => format!(
            "conv {}x{} {}->{}{}",
            p.kh,
            p.kw,
            p.c_in,
            p.c_out,
            hw(in_shape)
        ),
        LayerOp::Dense(p) => format!("dense {}->{}", p.d_in, p.d_out),
        LayerOp::BatchNorm(_) => format!("batchnorm{}", hw(in_shape)),
        LayerOp::Relu(_) => format!("relu{}", hw(in_shape)),
        LayerOp::MaxPool(p) => format!("maxpool {}x{}/{}{}", p.kh, p.kw, p.stride, hw(in_shape)),
        LayerOp::AvgPool(p) => format!("avgpool {}x{}/{}{}", p.kh, p.kw, p.stride, hw(in_shape)),
        LayerOp::GlobalAvgPool(_) => format!("global avgpool{}", hw(in_shape)),
        LayerOp::Dropout(_) => "dropout".into(),
        LayerOp::Flatten => "flatten".into(),
    }
}

/// Median time per (layer, pass) over repeated profiles, in first-seen order.
fn median_by_pass(profiles: &[Vec<KernelTime>]) -> Vec<((String, Pass), f64)> {
    let mut order: Vec<(String, Pass)> = vec![];
    let mut samples: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for profile in profiles {
        let mut sums: BTreeMap<usize, f64> = BTreeMap::new();
        for k in profile {
            let key = (k.layer.clone(), k.pass);
            let i = match order.iter().position(|o| *o == key) {
                Some(i) => i,
                None => {
                    order.push(key);
                    order.len() - 1
                }
            };
            *sums.entry(i).or_default() += k.ms;
        }
        for (i, ms) in sums {
            samples.entry(i).or_default().push(ms);
        }
    }
    order
        .into_iter()
        .enumerate()
        .map(|(i, key)| (key, median(samples.remove(&i).unwrap_or_default())))
        .collect()
}

/// Random images and labels for `n` samples of `spec`'s input: timing does not depend on
/// the values, but a seeded set keeps runs identical.
fn random_set(spec: &ModelSpec, n: usize) -> Result<Dataset> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let sample: usize = spec.input.iter().product();
    let images = (0..n * sample)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let labels = (0..n).map(|i| (i % spec.classes) as u32).collect();
    let names = (0..spec.classes).map(|c| format!("class{c}")).collect();
    Dataset::new(images, labels, spec.input, names)
}

/// Profiles one model at one batch size.
fn bench_model(
    ctx: &GpuContext,
    spec: &ModelSpec,
    batch: usize,
    config: &BenchConfig,
    peaks: &Peaks,
) -> Result<(Vec<LayerRow>, ModelRow)> {
    let data = random_set(spec, batch)?;
    let train = TrainConfig {
        batch_size: batch,
        ..TrainConfig::default()
    };
    let plan: Plan = spec.plan(batch)?;
    let mut trainer = GpuTrainer::new(ctx, spec, &train, &data, None)?;
    let order: Vec<u32> = (0..batch as u32).collect();
    trainer.begin_epoch(&order)?;
    let lr = 1e-4;

    let mut step_profiles = vec![];
    let mut infer_profiles = vec![];
    let (mut step_wall, mut infer_wall) = (vec![], vec![]);
    for r in 0..config.warmup + config.repeats {
        let (step, _) = trainer.profile_step(0, lr)?;
        let (infer, _) = trainer.profile_inference()?;
        let start = Instant::now();
        trainer.step(0, lr)?;
        ctx.wait()?;
        let step_s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        trainer.run_inference_batch()?;
        ctx.wait()?;
        let infer_s = start.elapsed().as_secs_f64();
        if r >= config.warmup {
            step_profiles.push(step);
            infer_profiles.push(infer);
            step_wall.push(step_s * 1e3);
            infer_wall.push(infer_s * 1e3);
        }
    }

    let mut rows = vec![];
    let mut share: Vec<(String, f64)> = vec![];
    let step = median_by_pass(&step_profiles);
    let step_gpu_ms: f64 = step.iter().map(|(_, ms)| ms).sum();
    for ((layer, pass), ms) in step {
        match share.iter_mut().find(|(l, _)| *l == layer) {
            Some((_, s)) => *s += ms / step_gpu_ms,
            None => share.push((layer.clone(), ms / step_gpu_ms)),
        }
        let planned = plan.layers.iter().find(|l| l.name == layer);
        let (op, flops, bytes, fraction) = match planned {
            Some(l) => {
                let (flops, bytes) = layer_cost(&l.op, &l.in_shape, &l.out_shape, pass);
                let bound = peaks.bound_ms(flops, bytes);
                let fraction = (bound > 0.0 && ms > 0.0).then(|| bound / ms);
                (describe(&l.op, &l.in_shape), flops, bytes, fraction)
            }
            None => (layer.clone(), 0.0, 0.0, None),
        };
        rows.push(LayerRow {
            model: spec.name.clone(),
            batch,
            layer,
            op,
            pass,
            ms,
            flops,
            bytes,
            roofline_fraction: fraction,
        });
    }
    let infer_gpu_ms: f64 = median_by_pass(&infer_profiles)
        .iter()
        .map(|(_, ms)| ms)
        .sum();
    let step_wall_ms = median(step_wall);
    let infer_wall_ms = median(infer_wall);
    let model = ModelRow {
        model: spec.name.clone(),
        batch,
        step_gpu_ms,
        step_wall_ms,
        train_images_per_s: batch as f64 / (step_wall_ms / 1e3),
        infer_gpu_ms_per_image: infer_gpu_ms / batch as f64,
        infer_wall_ms_per_image: infer_wall_ms / batch as f64,
        infer_images_per_s: batch as f64 / (infer_wall_ms / 1e3),
        share,
    };
    Ok((rows, model))
}

/// Runs the whole benchmark: calibration, then every model at every batch size.
/// `progress` is told what is being measured (for a status line).
pub fn run(
    ctx: &GpuContext,
    config: &BenchConfig,
    mut progress: impl FnMut(&str),
) -> Result<BenchReport> {
    if config.repeats == 0 {
        return Err(Error::BadSetting {
            name: "repeats",
            value: "0".into(),
            expected: "at least 1 timed run".into(),
        });
    }
    if let Some(b) = config.batches.iter().find(|&&b| b == 0) {
        return Err(Error::BadSetting {
            name: "batch",
            value: b.to_string(),
            expected: "batch sizes of at least 1".into(),
        });
    }
    progress("calibrating");
    let (peaks, source) = calibrate(ctx, config.repeats)?;
    let mut layers = vec![];
    let mut models = vec![];
    for name in &config.models {
        let spec = builtin(name, 7)?;
        for &batch in &config.batches {
            progress(&format!("{name}, batch {batch}"));
            let (rows, model) = bench_model(ctx, &spec, batch, config, &peaks)?;
            layers.extend(rows);
            models.push(model);
        }
    }
    Ok(BenchReport {
        version: env!("CARGO_PKG_VERSION").to_string(),
        adapter: ctx.info.name.clone(),
        backend: format!("{:?}", ctx.info.backend),
        timing: timing_name(source).to_string(),
        repeats: config.repeats,
        peaks,
        layers,
        models,
    })
}

fn pass_name(pass: Pass) -> &'static str {
    match pass {
        Pass::Forward => "fwd",
        Pass::BackwardInput => "bwd-in",
        Pass::BackwardParams => "bwd-param",
    }
}

impl BenchReport {
    /// The readable table: peaks, then per model and batch every (layer, pass) and the
    /// step summary.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "adapter: {} ({}); times from {}, median of {}",
            self.adapter, self.backend, self.timing, self.repeats
        );
        let _ = writeln!(
            s,
            "peaks: {:.1} GFLOP/s (FMA), {:.1} GB/s (copy); ridge point {:.1} FLOP/byte",
            self.peaks.gflops,
            self.peaks.gbps,
            self.peaks.ridge()
        );
        for m in &self.models {
            let _ = writeln!(s, "\n{}, batch {}", m.model, m.batch);
            let _ = writeln!(
                s,
                "{:<10} {:<28} {:<9} {:>10} {:>9} {:>9} {:>9} {:>8} {:>7}",
                "layer", "op", "pass", "ms", "MFLOP", "GFLOP/s", "GB/s", "FLOP/B", "roof"
            );
            for r in self
                .layers
                .iter()
                .filter(|r| r.model == m.model && r.batch == m.batch)
            {
                let roof = r
                    .roofline_fraction
                    .map_or("-".into(), |f| format!("{:.1}%", 100.0 * f));
                let (gf, gb, ai) = if r.bytes > 0.0 {
                    (
                        format!("{:.2}", r.gflops()),
                        format!("{:.2}", r.gbps()),
                        format!("{:.1}", r.flops / r.bytes),
                    )
                } else {
                    ("-".into(), "-".into(), "-".into())
                };
                let _ = writeln!(
                    s,
                    "{:<10} {:<28} {:<9} {:>10.3} {:>9.1} {:>9} {:>9} {:>8} {:>7}",
                    r.layer,
                    r.op,
                    pass_name(r.pass),
                    r.ms,
                    r.flops / 1e6,
                    gf,
                    gb,
                    ai,
                    roof
                );
            }
            let _ = writeln!(
                s,
                "training step: {:.2} ms GPU, {:.2} ms wall -> {:.1} images/s; inference: \
                 {:.3} ms/image GPU, {:.3} ms/image wall -> {:.1} images/s",
                m.step_gpu_ms,
                m.step_wall_ms,
                m.train_images_per_s,
                m.infer_gpu_ms_per_image,
                m.infer_wall_ms_per_image,
                m.infer_images_per_s
            );
            let shares: Vec<String> = m
                .share
                .iter()
                .filter(|(_, f)| *f >= 0.01)
                .map(|(l, f)| format!("{l} {:.0}%", 100.0 * f))
                .collect();
            let _ = writeln!(s, "share of the step: {}", shares.join(", "));
        }
        s
    }

    /// Ratios against an older report: per (model, batch, layer, pass) found in both, the
    /// old time over the new one (above 1 = faster now), and the step figures.
    pub fn compare(&self, old: &BenchReport) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "speed-up = old time / new time (above 1: faster now)\nold: {} ({}), new: {} ({})",
            old.adapter, old.timing, self.adapter, self.timing
        );
        if old.adapter != self.adapter {
            let _ = writeln!(
                s,
                "note: the adapters differ; ratios compare machines as well as code"
            );
        }
        let _ = writeln!(
            s,
            "{:<10} {:>5} {:<10} {:<9} {:>10} {:>10} {:>8} {:>7} {:>7}",
            "model", "batch", "layer", "pass", "old ms", "new ms", "speedup", "old", "new"
        );
        let mut matched = 0;
        for r in &self.layers {
            let Some(o) = old.layers.iter().find(|o| {
                o.model == r.model && o.batch == r.batch && o.layer == r.layer && o.pass == r.pass
            }) else {
                continue;
            };
            matched += 1;
            let pct = |f: Option<f64>| f.map_or("-".into(), |f| format!("{:.1}%", 100.0 * f));
            let _ = writeln!(
                s,
                "{:<10} {:>5} {:<10} {:<9} {:>10.3} {:>10.3} {:>7.2}x {:>7} {:>7}",
                r.model,
                r.batch,
                r.layer,
                pass_name(r.pass),
                o.ms,
                r.ms,
                o.ms / r.ms,
                pct(o.roofline_fraction),
                pct(r.roofline_fraction)
            );
        }
        for m in &self.models {
            if let Some(o) = old
                .models
                .iter()
                .find(|o| o.model == m.model && o.batch == m.batch)
            {
                let _ = writeln!(
                    s,
                    "{} batch {}: training {:.1} -> {:.1} images/s ({:.2}x), inference {:.1} -> \
                     {:.1} images/s ({:.2}x)",
                    m.model,
                    m.batch,
                    o.train_images_per_s,
                    m.train_images_per_s,
                    m.train_images_per_s / o.train_images_per_s,
                    o.infer_images_per_s,
                    m.infer_images_per_s,
                    m.infer_images_per_s / o.infer_images_per_s
                );
            }
        }
        if matched == 0 {
            let _ = writeln!(
                s,
                "no (model, batch, layer, pass) in common with the old report"
            );
        }
        s
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }

    /// Reads a report written by [`BenchReport::to_json`].
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |why: String| Error::BadSetting {
            name: "--compare",
            value: path.display().to_string(),
            expected: format!("a report written by `fer bench --json` ({why})"),
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))
    }

    /// Writes the JSON report atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::model::checkpoint::write_atomic(path, self.to_json().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv2d::Conv2dParams;

    #[test]
    fn roofline_bound_takes_the_slower_roof() {
        let peaks = Peaks {
            gflops: 100.0,
            gbps: 10.0,
        };
        assert_eq!(peaks.ridge(), 10.0);
        // 1 GFLOP at 100 GFLOP/s: 10 ms; 1 MB at 10 GB/s: 0.1 ms. Compute-bound.
        assert!((peaks.bound_ms(1e9, 1e6) - 10.0).abs() < 1e-12);
        // 1 MFLOP: 0.01 ms; 100 MB: 10 ms. Memory-bound.
        assert!((peaks.bound_ms(1e6, 1e8) - 10.0).abs() < 1e-12);
    }

    #[test]
    fn conv_cost_counts_every_multiply_add_and_each_tensor_once() {
        // 2 images of 3x8x8, 4 filters of 3x3x3, pad 1: output 2x4x8x8.
        let p = Conv2dParams::new([2, 3, 8, 8], 4, [3, 3], 1, 1).unwrap();
        let op = LayerOp::Conv2d(p);
        let (x, y) = ([2, 3, 8, 8], [2, 4, 8, 8]);
        let macs = 2.0 * 4.0 * 64.0 * 27.0;
        let (flops, bytes) = layer_cost(&op, &x, &y, Pass::Forward);
        assert_eq!(flops, 2.0 * macs);
        assert_eq!(bytes, 4.0 * (384.0 + 108.0 + 4.0 + 512.0));
        let (flops, bytes) = layer_cost(&op, &x, &y, Pass::BackwardInput);
        assert_eq!((flops, bytes), (2.0 * macs, 4.0 * (512.0 + 108.0 + 384.0)));
        let (flops, _) = layer_cost(&op, &x, &y, Pass::BackwardParams);
        assert_eq!(flops, 2.0 * macs + 512.0);
    }

    #[test]
    fn medians_are_taken_per_layer_and_pass_over_runs() {
        let k = |layer: &str, pass, ms| KernelTime {
            label: format!("{layer}.x"),
            layer: layer.into(),
            pass,
            ms,
        };
        // Two kernels of one pass add up within a run; the median is over runs.
        let runs = vec![
            vec![k("a", Pass::Forward, 1.0), k("a", Pass::Forward, 1.0)],
            vec![k("a", Pass::Forward, 5.0), k("a", Pass::Forward, 5.0)],
            vec![k("a", Pass::Forward, 3.0), k("a", Pass::Forward, 0.0)],
        ];
        assert_eq!(
            median_by_pass(&runs),
            vec![(("a".to_string(), Pass::Forward), 3.0)]
        );
    }
}
