//! Host side of shaders/batch.wgsl: gathering a batch from a data set resident on the GPU.

use bytemuck::{Pod, Zeroable};

use crate::error::{shape_err, Result};
use crate::gpu::{shaders, DType, GpuContext, GpuTensor, Kernel};
use crate::ops::expect;

const OP: &str = "gather_batch";

/// Mirrors `GatherParams` in batch.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct GatherParams {
    pub n: u32,
    pub sample: u32,
    pub offset: u32,
    pub count: u32,
}

/// The gather of batch `x` `[n, c, h, w]` and `y` `[n]` from `images` `[N, c, h, w]` and
/// `labels` `[N]` through `order` `[count]`. The returned kernel starts at offset 0; rewrite
/// its params with [`GatherParams`] (same n, sample, count) before each step.
pub fn gather(
    ctx: &GpuContext,
    images: &GpuTensor,
    labels: &GpuTensor,
    order: &GpuTensor,
    x: &GpuTensor,
    y: &GpuTensor,
) -> Result<(Kernel, GatherParams)> {
    if images.shape.len() != 4 || x.shape.len() != 4 || images.shape[1..] != x.shape[1..] {
        return Err(shape_err(
            OP,
            format!(
                "images {:?} and batch {:?} differ in image shape",
                images.shape, x.shape
            ),
        ));
    }
    let (count_all, n) = (images.shape[0], x.shape[0]);
    expect(OP, "labels", labels, &[count_all], DType::U32)?;
    expect(OP, "y", y, &[n], DType::U32)?;
    if order.dtype != DType::U32 || order.shape.len() != 1 {
        return Err(shape_err(
            OP,
            format!("order must be a u32 vector, got {:?}", order.shape),
        ));
    }
    let p = GatherParams {
        n: n as u32,
        sample: (x.numel() / n) as u32,
        offset: 0,
        count: order.shape[0] as u32,
    };
    let bindings = [
        (1, &images.buffer),
        (2, &labels.buffer),
        (3, &order.buffer),
        (4, &x.buffer),
        (5, &y.buffer),
    ];
    let kernel = ctx.kernel(
        shaders::BATCH,
        "gather_batch",
        "gather_batch",
        bytemuck::bytes_of(&p),
        &bindings,
        x.numel() as u32,
    )?;
    Ok((kernel, p))
}
