//! Load times: the built-in synthetic set (generate, write as TIFF, load, preprocess) and,
//! when FER_BENCH_FER2013 names a FER2013-format CSV (tools/make-fer2013-csv.py writes one),
//! that CSV, with the process's peak resident memory afterwards.
//!
//!   cargo bench --bench load
//!   tools/make-fer2013-csv.py /tmp/fer2013.csv && FER_BENCH_FER2013=/tmp/fer2013.csv \
//!       cargo bench --bench load

use std::time::Instant;

use fer_wgpu::data::synth::{generate, write_jaffe, SynthOptions};
use fer_wgpu::data::{build_dataset, load, LoadOptions, Preprocess, Task};
use fer_wgpu::Result;

/// Peak resident set size of this process in MiB (Linux), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("fer-bench-synth-{}", std::process::id()));
    let start = Instant::now();
    let images = generate(&SynthOptions::default());
    let generated = start.elapsed();
    write_jaffe(&images, &dir)?;
    let start = Instant::now();
    let raw = load(&dir, None, &LoadOptions::default())?;
    let loaded = start.elapsed();
    let data = build_dataset(&raw, &Task::seven(), &Preprocess::new([64, 64]))?;
    let prepared = start.elapsed();
    println!(
        "synthetic set: {} images generated in {:.2} s; loaded (decode 256x256 TIFF) in \
        {:.3} s; loaded and preprocessed to 64x64 in {:.3} s",
        data.len(),
        generated.as_secs_f64(),
        loaded.as_secs_f64(),
        prepared.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);

    if let Ok(path) = std::env::var("FER_BENCH_FER2013") {
        let before = peak_rss_mib();
        let start = Instant::now();
        let raw = load(path.as_ref(), None, &LoadOptions::default())?;
        let loaded = start.elapsed();
        let data = build_dataset(&raw, &Task::seven(), &Preprocess::new([48, 48]))?;
        let prepared = start.elapsed();
        println!(
            "{path}: {} rows parsed in {:.2} s, preprocessed (48x48, per-image \
            normalization) by {:.2} s; peak resident memory {:.0} MiB (before loading: \
            {:.0} MiB)",
            data.len(),
            loaded.as_secs_f64(),
            prepared.as_secs_f64(),
            peak_rss_mib().unwrap_or(f64::NAN),
            before.unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
