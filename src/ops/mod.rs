//! Host side of each shader file, one module per file with the same name: the parameter
//! struct mirrored from WGSL, its shape checks, and functions that bind tensors into
//! [`Kernel`](crate::gpu::Kernel)s.
//!
//! Every function checks all tensor shapes against its params before building anything, so a
//! mismatch is an [`Error::Shape`](crate::Error::Shape) naming the op and both shapes, never a
//! wgpu validation failure. Kernels overwrite their outputs (`=`); none accumulates (`+=`),
//! so nothing needs zeroing between steps.
//!
//! Argument order throughout: context, params, layer name (the prefix of every label), then
//! inputs, then outputs, as the shader's contract comment lists them.

pub mod activation;
pub mod augment;
pub mod batch;
pub mod batchnorm;
pub mod calibrate;
pub mod conv2d;
pub mod dense;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod pool;
pub mod reduce;

use crate::error::{shape_err, Result};
use crate::gpu::{DType, GpuTensor};

/// What a producing kernel applies to each value before storing it. A fused ReLU saves the
/// separate activation pass over memory; the ReLU layer's backward pass still runs, reading
/// the fused output (positive exactly where the pre-activation is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Epilogue {
    #[default]
    None,
    /// `max(v, 0)`, written as the ReLU kernel computes it with slope 0.
    Relu,
}

impl Epilogue {
    /// The `RELU` override constant of the shaders that take an epilogue.
    pub(crate) fn constant(self) -> (&'static str, f64) {
        ("RELU", if self == Epilogue::Relu { 1.0 } else { 0.0 })
    }
}

/// Positions summed by one partial in the chunked reductions (conv weight and bias
/// gradients, batch-norm statistics). A fixed number, so partial boundaries depend only on
/// the shapes and results are bit-identical run after run.
pub const REDUCE_CHUNK: usize = 256;

/// Fails unless `t` has exactly `shape` and element type `dtype`.
pub(crate) fn expect(
    op: &'static str,
    what: &str,
    t: &GpuTensor,
    shape: &[usize],
    dtype: DType,
) -> Result<()> {
    if t.shape != shape {
        return Err(shape_err(
            op,
            format!(
                "{what} ({}) has shape {:?}, expected {shape:?}",
                t.label, t.shape
            ),
        ));
    }
    if t.dtype != dtype {
        return Err(shape_err(
            op,
            format!(
                "{what} ({}) holds {:?}, expected {dtype:?}",
                t.label, t.dtype
            ),
        ));
    }
    Ok(())
}

/// Fails unless every size is at least 1.
pub(crate) fn nonzero(op: &'static str, sizes: &[(&str, usize)]) -> Result<()> {
    match sizes.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(shape_err(
            op,
            format!("{name} is 0; every size must be >= 1"),
        )),
        None => Ok(()),
    }
}

/// Converts a size to the u32 the shaders index with.
pub(crate) fn to_u32(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| shape_err(op, format!("{what} = {v} does not fit in u32")))
}

/// Number of partials when `total` positions are split into chunks of [`REDUCE_CHUNK`].
pub(crate) fn parts_for(total: usize) -> usize {
    total.div_ceil(REDUCE_CHUNK)
}
