//! Host side of shaders/reduce.wgsl: the ordered row sums that finish every chunked reduction.

use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::{shaders, GpuContext, Kernel};

/// Mirrors `ReduceParams` in reduce.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct ReduceParams {
    pub rows: u32,
    pub cols: u32,
    pub scale: f32,
    pub _pad: u32,
}

/// `out[r] = scale * sum_k partial[r, k]`, summed in ascending k. Internal to the ops, which
/// have already checked that `partial` holds rows*cols values and `out` holds rows.
pub(crate) fn rows(
    ctx: &GpuContext,
    label: &str,
    partial: &wgpu::Buffer,
    (rows, cols): (u32, u32),
    scale: f32,
    out: &wgpu::Buffer,
) -> Result<Kernel> {
    let p = ReduceParams {
        rows,
        cols,
        scale,
        _pad: 0,
    };
    ctx.kernel(
        shaders::REDUCE,
        "reduce_rows",
        label,
        bytemuck::bytes_of(&p),
        &[(1, partial), (2, out)],
        rows,
    )
}

/// A zero-filled scratch buffer for `len` partial sums, labelled after its op.
pub(crate) fn scratch(ctx: &GpuContext, label: &str, len: usize) -> Result<crate::gpu::GpuTensor> {
    crate::gpu::GpuTensor::zeros(ctx, label, &[len], crate::gpu::DType::F32)
}
