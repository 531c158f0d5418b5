//! Host side of shaders/metrics.wgsl: loss, accuracy and confusion accumulated on the GPU.

use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::{shaders, DType, GpuContext, GpuTensor, Kernel};
use crate::ops::expect;

const OP: &str = "metrics";

/// Mirrors `MetricsParams` in metrics.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct MetricsParams {
    pub n: u32,
    pub k: u32,
    pub valid: u32,
    pub _pad0: u32,
}

/// The accumulators: `loss_sum` `[1]` f32 and `counts` `[2 + k*k]` u32 (samples, correct,
/// confusion by [true, predicted]). Clear both at the start of an epoch.
pub struct Accumulators<'a> {
    pub loss_sum: &'a GpuTensor,
    pub counts: &'a GpuTensor,
}

/// Adds a batch's per-sample losses and predictions to the accumulators.
pub fn accumulate(
    ctx: &GpuContext,
    p: &MetricsParams,
    sample_loss: &GpuTensor,
    prob: &GpuTensor,
    labels: &GpuTensor,
    acc: &Accumulators,
) -> Result<Kernel> {
    let (n, k) = (p.n as usize, p.k as usize);
    expect(OP, "sample_loss", sample_loss, &[n], DType::F32)?;
    expect(OP, "prob", prob, &[n, k], DType::F32)?;
    expect(OP, "labels", labels, &[n], DType::U32)?;
    expect(OP, "loss_sum", acc.loss_sum, &[1], DType::F32)?;
    expect(OP, "counts", acc.counts, &[2 + k * k], DType::U32)?;
    let bindings = [
        (1, &sample_loss.buffer),
        (2, &prob.buffer),
        (3, &labels.buffer),
        (4, &acc.loss_sum.buffer),
        (5, &acc.counts.buffer),
    ];
    ctx.kernel(
        shaders::METRICS,
        "metrics_accumulate",
        "metrics",
        bytemuck::bytes_of(p),
        &bindings,
        1,
    )
}
