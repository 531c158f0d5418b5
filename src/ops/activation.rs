//! Host side of shaders/activation.wgsl: leaky ReLU and seeded dropout.

use bytemuck::{Pod, Zeroable};

use crate::error::{shape_err, Result};
use crate::gpu::{shaders, DType, GpuContext, GpuTensor, Kernel};
use crate::ops::{expect, nonzero, to_u32};

const OP_RELU: &str = "relu";
const OP_DROPOUT: &str = "dropout";

/// Mirrors `ReluParams` in activation.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct ReluParams {
    pub numel: u32,
    pub slope: f32,
    pub _pad0: u32,
    pub _pad1: u32,
}

impl ReluParams {
    /// ReLU over `numel` elements with `slope` for negative inputs (0 for the plain ReLU).
    pub fn new(numel: usize, slope: f32) -> Result<Self> {
        nonzero(OP_RELU, &[("numel", numel)])?;
        if !slope.is_finite() {
            return Err(shape_err(
                OP_RELU,
                format!("slope must be finite, got {slope}"),
            ));
        }
        Ok(Self {
            numel: to_u32(OP_RELU, "numel", numel)?,
            slope,
            _pad0: 0,
            _pad1: 0,
        })
    }
}

/// Mirrors `DropoutParams` in activation.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct DropoutParams {
    pub numel: u32,
    pub keep: f32,
    pub seed: u32,
    pub _pad0: u32,
}

impl DropoutParams {
    /// Dropout of `numel` elements at `rate` (the probability of zeroing one, in [0, 1)),
    /// with the mask drawn from `seed`. A new seed per step gives a new mask.
    pub fn new(numel: usize, rate: f32, seed: u32) -> Result<Self> {
        nonzero(OP_DROPOUT, &[("numel", numel)])?;
        if !(0.0..1.0).contains(&rate) {
            return Err(shape_err(
                OP_DROPOUT,
                format!("rate must be in [0, 1), got {rate}"),
            ));
        }
        let numel = to_u32(OP_DROPOUT, "numel", numel)?;
        Ok(Self {
            numel,
            keep: 1.0 - rate,
            seed,
            _pad0: 0,
        })
    }
}

fn expect_flat(op: &'static str, what: &str, t: &GpuTensor, numel: u32) -> Result<()> {
    if t.numel() != numel as usize {
        return Err(shape_err(
            op,
            format!(
                "{what} ({}) has shape {:?} ({} elements), expected \
            {numel} elements",
                t.label,
                t.shape,
                t.numel()
            ),
        ));
    }
    expect(op, what, t, &t.shape.clone(), DType::F32)
}

/// `y = leaky_relu(x)`; x and y may have any shape with `numel` elements.
pub fn relu_forward(
    ctx: &GpuContext,
    p: &ReluParams,
    name: &str,
    x: &GpuTensor,
    y: &GpuTensor,
) -> Result<Kernel> {
    expect_flat(OP_RELU, "x", x, p.numel)?;
    expect_flat(OP_RELU, "y", y, p.numel)?;
    ctx.kernel(
        shaders::ACTIVATION,
        "relu_forward",
        &format!("{name}.forward"),
        bytemuck::bytes_of(p),
        &[(1, &x.buffer), (2, &y.buffer)],
        p.numel,
    )
}

/// `dx` from `dy` and the forward input `x`.
pub fn relu_backward_input(
    ctx: &GpuContext,
    p: &ReluParams,
    name: &str,
    dy: &GpuTensor,
    x: &GpuTensor,
    dx: &GpuTensor,
) -> Result<Kernel> {
    expect_flat(OP_RELU, "dy", dy, p.numel)?;
    expect_flat(OP_RELU, "x", x, p.numel)?;
    expect_flat(OP_RELU, "dx", dx, p.numel)?;
    ctx.kernel(
        shaders::ACTIVATION,
        "relu_backward_input",
        &format!("{name}.backward_input"),
        bytemuck::bytes_of(p),
        &[(1, &x.buffer), (3, &dy.buffer), (4, &dx.buffer)],
        p.numel,
    )
}

/// `y = dropout(x)` with the mask of `p.seed`.
pub fn dropout_forward(
    ctx: &GpuContext,
    p: &DropoutParams,
    name: &str,
    x: &GpuTensor,
    y: &GpuTensor,
) -> Result<Kernel> {
    expect_flat(OP_DROPOUT, "x", x, p.numel)?;
    expect_flat(OP_DROPOUT, "y", y, p.numel)?;
    ctx.kernel(
        shaders::ACTIVATION,
        "dropout_forward",
        &format!("{name}.forward"),
        bytemuck::bytes_of(p),
        &[(1, &x.buffer), (2, &y.buffer)],
        p.numel,
    )
}

/// `dx` from `dy` through the same mask (same params as the forward pass).
pub fn dropout_backward_input(
    ctx: &GpuContext,
    p: &DropoutParams,
    name: &str,
    dy: &GpuTensor,
    dx: &GpuTensor,
) -> Result<Kernel> {
    expect_flat(OP_DROPOUT, "dy", dy, p.numel)?;
    expect_flat(OP_DROPOUT, "dx", dx, p.numel)?;
    ctx.kernel(
        shaders::ACTIVATION,
        "dropout_backward_input",
        &format!("{name}.backward_input"),
        bytemuck::bytes_of(p),
        &[(3, &dy.buffer), (4, &dx.buffer)],
        p.numel,
    )
}
