//! Shared by the integration tests: one GPU context per test binary, seeded data.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::OnceLock;

use fer_wgpu::gpu::{GpuContext, INSTALL_HINT};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The GPU context of this test binary, opened once (FER_BACKEND / FER_ADAPTER apply).
/// A machine without an adapter fails every GPU test with the install hint, never skips.
pub fn gpu() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::from_env() {
        Ok(ctx) => ctx,
        Err(e) => panic!("this test needs a GPU adapter and found none: {e}\n{INSTALL_HINT}"),
    })
}

pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Seeded values uniform in [-1, 1).
pub fn rand_vec(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// A small seeded classification set that a tiny CNN can learn: class c is a bright 3x3 blob
/// at a class-specific place on a noisy `size` x `size` image.
pub fn blobs(classes: usize, per_class: usize, size: usize, seed: u64) -> fer_wgpu::data::Dataset {
    let mut r = rng(seed);
    let mut images = vec![];
    let mut labels = vec![];
    for i in 0..classes * per_class {
        let c = i % classes;
        let (cy, cx) = (1 + (c * 5) % (size - 3), 1 + (c * 3 + c / 2) % (size - 3));
        for y in 0..size {
            for x in 0..size {
                let blob = y.abs_diff(cy + 1) <= 1 && x.abs_diff(cx + 1) <= 1;
                images.push(if blob { 1.5 } else { 0.0 } + 0.3 * r.random_range(-1.0f32..1.0));
            }
        }
        labels.push(c as u32);
    }
    let names = (0..classes).map(|c| format!("class{c}")).collect();
    fer_wgpu::data::Dataset::new(images, labels, [1, size, size], names).unwrap()
}
