//! Training throughput: images per second of a whole training epoch (gather, forward, loss,
//! metrics, backward, optimizer; one queue submission per step, the metrics read once at the
//! end) of a built-in net on the selected adapter, timed on the wall clock. The default is the
//! JAFFE-sized case: 213 images, small-vgg, batch 16 (13 full steps; like `fer train`, the
//! last partial batch waits for the next epoch's shuffle).
//!
//!   cargo bench --bench train                               small-vgg, 213 images, batch 16
//!   FER_BENCH_MODEL=fer-net FER_BENCH_BATCH=64 cargo bench --bench train
//!   FER_BENCH_IMAGES=1000                                   a larger epoch
//!   FER_BENCH_QUICK=1 cargo bench --bench train             32 images: a smoke run
//!
//! `fer bench` gives the per-layer breakdown of the same steps (share of the step per layer).

use std::time::Instant;

use fer_wgpu::data::Dataset;
use fer_wgpu::gpu::GpuContext;
use fer_wgpu::model::builtin;
use fer_wgpu::train::gpu::GpuTrainer;
use fer_wgpu::train::{Backend, TrainConfig};
use fer_wgpu::Result;

fn env_or(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<()> {
    let quick = std::env::var_os("FER_BENCH_QUICK").is_some();
    let model = std::env::var("FER_BENCH_MODEL").unwrap_or_else(|_| "small-vgg".into());
    let batch = env_or("FER_BENCH_BATCH", 16);
    let len = env_or("FER_BENCH_IMAGES", if quick { 32 } else { 213 });
    let ctx = GpuContext::from_env()?;
    let spec = builtin(&model, 7)?;
    let [c, h, w] = spec.input;
    let images: Vec<f32> = (0..len * c * h * w)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let labels: Vec<u32> = (0..len as u32).map(|i| i % 7).collect();
    let names = (0..7).map(|i| format!("c{i}")).collect();
    let data = Dataset::new(images, labels, spec.input, names)?;
    let config = TrainConfig {
        batch_size: batch,
        ..TrainConfig::default()
    };
    let mut trainer = GpuTrainer::new(&ctx, &spec, &config, &data, None)?;
    let order: Vec<u32> = (0..len as u32).collect();
    let steps = len / batch;

    // Warm-up: the first step pays for pipeline creation inside the driver.
    trainer.begin_epoch(&order)?;
    trainer.step(0, 1e-3)?;
    trainer.end_epoch()?;
    let before = trainer.submissions;

    let start = Instant::now();
    trainer.begin_epoch(&order)?;
    for s in 0..steps {
        trainer.step(s, 1e-3)?;
    }
    let stats = trainer.end_epoch()?;
    let seconds = start.elapsed().as_secs_f64();
    println!("adapter: {} ({:?})", ctx.info.name, ctx.info.backend);
    println!(
        "{model}, {len} images, batch {batch}: one epoch of {steps} steps in {seconds:.2} s, \
         {:.2} s per step, {:.1} images/s (wall clock, after a warm-up step); loss {:.3}",
        seconds / steps as f64,
        (steps * batch) as f64 / seconds,
        stats.loss
    );
    println!(
        "queue submissions: {} for {steps} steps; readbacks: {} in all (metrics, per epoch)",
        trainer.submissions - before,
        trainer.readbacks
    );
    Ok(())
}
