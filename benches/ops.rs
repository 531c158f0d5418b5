//! Per-layer throughput of the built-in nets against the adapter's own roofline: the same
//! measurement as `fer bench` (see src/bench.rs), on the adapter FER_BACKEND / FER_ADAPTER
//! select. Settings come from the environment because `cargo bench` passes no flags through:
//!
//!   cargo bench --bench ops                              all models, batches 1, 16, 64
//!   FER_BENCH_MODELS=small-vgg FER_BENCH_BATCH=16 cargo bench --bench ops
//!   FER_BENCH_REPEATS=3                                  timed runs per figure (default 5)
//!   FER_BENCH_JSON=target/bench/ops.json                 where the JSON report goes (default)
//!   FER_BENCH_COMPARE=old.json                           print speed-ups against a report
//!   FER_BENCH_QUICK=1                                    fer-net, batch 2, 1 repeat: a smoke
//!                                                        run, not a figure

use std::path::PathBuf;

use fer_wgpu::bench::{self, BenchConfig, BenchReport};
use fer_wgpu::gpu::GpuContext;
use fer_wgpu::Result;

fn list<T: std::str::FromStr>(var: &str) -> Option<Vec<T>> {
    let value = std::env::var(var).ok()?;
    let items: Vec<T> = value
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<std::result::Result<_, _>>()
        .unwrap_or_else(|_| panic!("{var}={value:?}: expected a comma-separated list"));
    Some(items)
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; any other argument is a filter we do not support.
    let mut config = BenchConfig::default();
    if std::env::var_os("FER_BENCH_QUICK").is_some() {
        config = BenchConfig {
            models: vec!["fer-net".into()],
            batches: vec![2],
            repeats: 1,
            warmup: 1,
        };
    }
    if let Some(models) = list("FER_BENCH_MODELS") {
        config.models = models;
    }
    if let Some(batches) = list("FER_BENCH_BATCH") {
        config.batches = batches;
    }
    if let Some([repeats]) = list::<usize>("FER_BENCH_REPEATS").as_deref() {
        config.repeats = *repeats;
    }
    let old = std::env::var_os("FER_BENCH_COMPARE")
        .map(|p| BenchReport::load(&PathBuf::from(p)))
        .transpose()?;
    let ctx = GpuContext::from_env()?;
    let report = bench::run(&ctx, &config, |what| eprintln!("measuring: {what}"))?;
    print!("{}", report.table());
    if let Some(old) = old {
        println!();
        print!("{}", report.compare(&old));
    }
    let json = std::env::var_os("FER_BENCH_JSON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench/ops.json"));
    if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fer_wgpu::Error::BadSetting {
            name: "FER_BENCH_JSON",
            value: json.display().to_string(),
            expected: format!("a writable path ({e})"),
        })?;
    }
    report.save(&json)?;
    println!("wrote {}", json.display());
    Ok(())
}
