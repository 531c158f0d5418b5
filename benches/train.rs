//! Training throughput: images per second of whole training steps (gather, forward, loss,
//! metrics, backward, optimizer) of a built-in net on the selected adapter, one queue
//! submission per step, timed on the wall clock around steps that are waited for.
//!
//!   cargo bench --bench train                         small-vgg, batch 16, 5 steps
//!   FER_BENCH_MODEL=fer-net FER_BENCH_BATCH=64 cargo bench --bench train
//!   FER_BENCH_QUICK=1 cargo bench --bench train       2 steps: a smoke run, not a figure

use std::time::Instant;

use fer_wgpu::data::Dataset;
use fer_wgpu::gpu::GpuContext;
use fer_wgpu::model::builtin;
use fer_wgpu::train::gpu::GpuTrainer;
use fer_wgpu::train::{Backend, TrainConfig};
use fer_wgpu::Result;

fn main() -> Result<()> {
    let quick = std::env::var_os("FER_BENCH_QUICK").is_some();
    let model = std::env::var("FER_BENCH_MODEL").unwrap_or_else(|_| "small-vgg".into());
    let batch: usize = std::env::var("FER_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let steps = if quick { 2 } else { 5 };
    let ctx = GpuContext::from_env()?;
    let spec = builtin(&model, 7)?;
    let [c, h, w] = spec.input;
    let len = batch * (steps + 1);
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
    trainer.begin_epoch(&(0..len as u32).collect::<Vec<_>>())?;
    // Warm-up: the first step pays for pipeline creation inside the driver.
    trainer.step(0, 1e-3)?;
    ctx.wait()?;
    let start = Instant::now();
    for s in 1..=steps {
        trainer.step(s, 1e-3)?;
    }
    ctx.wait()?;
    let seconds = start.elapsed().as_secs_f64();
    let stats = trainer.end_epoch()?;
    println!("adapter: {} ({:?})", ctx.info.name, ctx.info.backend);
    println!(
        "{model}, batch {batch}: {:.2} s per step, {:.1} images/s (wall clock, {steps} steps \
         after warm-up); loss {:.3}",
        seconds / steps as f64,
        (steps * batch) as f64 / seconds,
        stats.loss
    );
    println!(
        "queue submissions: {} for {} steps; readbacks: {} (the epoch's metrics)",
        trainer.submissions,
        steps + 1,
        trainer.readbacks
    );
    Ok(())
}
