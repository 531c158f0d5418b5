//! The CPU reference: every op of `ops`, forward and backward, in plain Rust.
//!
//! Written for clarity, not speed: one function per shader entry point with the same name,
//! the same loop order and the same index names, so a shader and its twin can be read side by
//! side. Long sums accumulate in f64, so the reference is more accurate than the f32 shaders
//! it checks. It is the oracle of the GPU tests and the fallback for machines with no adapter;
//! its own backward passes are checked against central finite differences.
//!
//! Each function takes the op's params struct (the same one the GPU side uploads) and slices
//! in the op's layout, checks their lengths, and returns new vectors.

pub mod activation;
pub mod augment;
pub mod batch;
pub mod batchnorm;
pub mod conv2d;
pub mod dense;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod pool;
pub mod rng;

use crate::error::{shape_err, Result};

/// Fails unless `data` holds `expected` values.
pub(crate) fn check_len(op: &'static str, what: &str, data: &[f32], expected: usize) -> Result<()> {
    if data.len() == expected {
        Ok(())
    } else {
        Err(shape_err(
            op,
            format!("{what} holds {} values, expected {expected}", data.len()),
        ))
    }
}
