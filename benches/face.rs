//! Face-mode speed on 256x256 images (the synthetic set, JAFFE's size): images per second for
//! detection alone and for the whole face crop (detection, eye search, aligned warp to 64x64),
//! one thread, and a cached rebuild of the same set.
//!
//!   cargo bench --bench face
//!
//! FER_BENCH_QUICK=1 times 21 images instead of 210 (a smoke run).

use std::time::Instant;

use fer_wgpu::data::face::{detect, face_crop, FaceSettings};
use fer_wgpu::data::loaders::{RawSample, RawSet};
use fer_wgpu::data::synth::{generate, SynthOptions};
use fer_wgpu::data::{build_dataset_cached, Preprocess, Task, EXPRESSIONS};
use fer_wgpu::Result;

fn main() -> Result<()> {
    let quick = std::env::var_os("FER_BENCH_QUICK").is_some();
    let mut set = generate(&SynthOptions::default());
    if quick {
        set.truncate(21);
    }
    let settings = FaceSettings::default();
    // Warm up: the first call parses the embedded model.
    detect(&set[0].image, settings.min_score);

    let start = Instant::now();
    let found: usize = set
        .iter()
        .map(|s| detect(&s.image, settings.min_score).len().min(1))
        .sum();
    let detect_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let aligned: usize = set
        .iter()
        .map(|s| face_crop(&s.image, &settings, [64, 64]).1.eyes.is_some() as usize)
        .sum();
    let crop_s = start.elapsed().as_secs_f64();
    let n = set.len() as f64;
    println!(
        "{} images 256x256, one thread: detection {:.0} images/s ({:.1} ms each, face in {}); \
         detection + eyes + aligned crop {:.0} images/s ({:.1} ms each, aligned {})",
        set.len(),
        n / detect_s,
        1e3 * detect_s / n,
        found,
        n / crop_s,
        1e3 * crop_s / n,
        aligned
    );

    let raw = RawSet {
        samples: set
            .into_iter()
            .map(|s| RawSample {
                image: s.image,
                class: s.expression,
                subject: Some(s.subject),
                source: s.file_name,
                usage: None,
            })
            .collect(),
        class_names: EXPRESSIONS.iter().map(|c| c.to_string()).collect(),
        skipped: vec![],
    };
    let dir = std::env::temp_dir().join(format!("fer-bench-face-{}", std::process::id()));
    let mut pre = Preprocess::new([64, 64]);
    pre.face = Some(settings);
    let mut times = vec![];
    for _ in 0..2 {
        let start = Instant::now();
        let (_, report) = build_dataset_cached(&raw, &Task::seven(), &pre, Some(&dir))?;
        times.push((start.elapsed().as_secs_f64(), report.cache));
    }
    println!(
        "data set build in face mode: first {:.2} s ({:?}), second {:.3} s ({:?})",
        times[0].0, times[0].1, times[1].0, times[1].1
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
