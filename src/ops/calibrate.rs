//! Host side of shaders/calibrate.wgsl: kernels that measure the adapter's own peak
//! multiply-add rate and copy bandwidth, the roofs the benchmark compares each layer with.

use bytemuck::{Pod, Zeroable};

use crate::error::Result;
use crate::gpu::{shaders, DType, GpuContext, GpuTensor, Kernel};
use crate::ops::{expect, to_u32};

const OP: &str = "calibrate";

/// FLOPs one `calibrate_fma` invocation does per loop trip (8 vec4 chains of one FMA).
pub const FMA_FLOPS_PER_ITER: u64 = 64;

/// Mirrors `CalibrateParams` in calibrate.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct CalibrateParams {
    pub n: u32,
    pub iters: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub mul: f32,
    pub add: f32,
    pub _pad2: u32,
    pub _pad3: u32,
}

impl CalibrateParams {
    /// `n` invocations (FMA) or vec4 elements (copy), `iters` trips of the FMA loop.
    pub fn new(n: usize, iters: usize) -> Result<Self> {
        Ok(Self {
            n: to_u32(OP, "n", n)?,
            iters: to_u32(OP, "iters", iters)?,
            _pad0: 0,
            _pad1: 0,
            // A contraction towards add / (1 - mul) = 1: values stay near 1 for any iters.
            mul: 0.5,
            add: 0.5,
            _pad2: 0,
            _pad3: 0,
        })
    }

    /// FLOPs of one `calibrate_fma` dispatch.
    pub fn fma_flops(&self) -> u64 {
        u64::from(self.n) * u64::from(self.iters) * FMA_FLOPS_PER_ITER
    }

    /// Bytes read plus bytes written by one `calibrate_copy` dispatch.
    pub fn copy_bytes(&self) -> u64 {
        2 * 16 * u64::from(self.n)
    }

    /// What `calibrate_fma` writes for invocation `i`, computed on the CPU in f64 (the f32
    /// recurrence contracts towards 1, so f32 rounding stays within a few ulps of this).
    pub fn fma_expected(&self, i: usize) -> [f64; 4] {
        let (m, c) = (f64::from(self.mul), f64::from(self.add));
        let s = (i % 4) as f64;
        let mut out = [0.0; 4];
        for (lane, o) in out.iter_mut().enumerate() {
            for chain in 0..8 {
                let mut a = s + lane as f64 + chain as f64;
                for _ in 0..self.iters {
                    a = a * m + c;
                }
                *o += a;
            }
        }
        out
    }
}

/// `out[i]` = the sum of 8 vec4 FMA chains run `iters` times; `out` is `[n, 4]`.
pub fn fma(ctx: &GpuContext, p: &CalibrateParams, out: &GpuTensor) -> Result<Kernel> {
    expect(OP, "out", out, &[p.n as usize, 4], DType::F32)?;
    ctx.kernel(
        shaders::CALIBRATE,
        "calibrate_fma",
        "calibrate.fma",
        bytemuck::bytes_of(p),
        &[(2, &out.buffer)],
        p.n,
    )
}

/// `dst = src`, both `[n, 4]`.
pub fn copy(
    ctx: &GpuContext,
    p: &CalibrateParams,
    src: &GpuTensor,
    dst: &GpuTensor,
) -> Result<Kernel> {
    expect(OP, "src", src, &[p.n as usize, 4], DType::F32)?;
    expect(OP, "dst", dst, &[p.n as usize, 4], DType::F32)?;
    ctx.kernel(
        shaders::CALIBRATE,
        "calibrate_copy",
        "calibrate.copy",
        bytemuck::bytes_of(p),
        &[(1, &src.buffer), (2, &dst.buffer)],
        p.n,
    )
}
