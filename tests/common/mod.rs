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
