//! Host side of shaders/batchnorm.wgsl: per-channel batch normalization.

use bytemuck::{Pod, Zeroable};

use crate::error::{shape_err, Result};
use crate::gpu::{shaders, DType, GpuContext, GpuTensor, Kernel};
use crate::ops::{expect, nonzero, parts_for, reduce, to_u32, Epilogue, REDUCE_CHUNK};

const OP: &str = "batchnorm";

/// Mirrors `BatchNormParams` in batchnorm.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct BatchNormParams {
    pub n: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub chunk: u32,
    pub parts: u32,
    pub eps: f32,
    pub momentum: f32,
}

impl BatchNormParams {
    /// Normalization of an `[n, c, h, w]` tensor (use h = w = 1 for `[n, c]` features).
    /// `eps` > 0 keeps the division finite; `momentum` in [0, 1] is the weight of the batch in
    /// the running statistics.
    pub fn new([n, c, h, w]: [usize; 4], eps: f32, momentum: f32) -> Result<Self> {
        nonzero(OP, &[("n", n), ("c", c), ("h", h), ("w", w)])?;
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(shape_err(
                OP,
                format!("eps must be a positive number, got {eps}"),
            ));
        }
        if !(0.0..=1.0).contains(&momentum) {
            return Err(shape_err(
                OP,
                format!("momentum must be in [0, 1], got {momentum}"),
            ));
        }
        to_u32(OP, "x elements", n * c * h * w)?;
        Ok(Self {
            n: n as u32,
            c: c as u32,
            h: h as u32,
            w: w as u32,
            chunk: REDUCE_CHUNK as u32,
            parts: parts_for(n * h * w) as u32,
            eps,
            momentum,
        })
    }

    /// `[n, c, h, w]`
    pub fn x_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w].map(|v| v as usize)
    }
    /// `[c]`
    pub fn channel_shape(&self) -> [usize; 1] {
        [self.c as usize]
    }
    /// Positions per channel, M = n * h * w.
    pub fn count(&self) -> usize {
        (self.n * self.h * self.w) as usize
    }
}

/// The learned parameters and running statistics of one layer, all `[c]`.
pub struct BatchNormState<'a> {
    pub gamma: &'a GpuTensor,
    pub beta: &'a GpuTensor,
    pub running_mean: &'a GpuTensor,
    pub running_var: &'a GpuTensor,
}

/// The batch statistics saved by the training forward pass for the backward pass, `[c]`.
pub struct BatchStats<'a> {
    pub mean: &'a GpuTensor,
    pub var: &'a GpuTensor,
}

fn check_state(p: &BatchNormParams, s: &BatchNormState) -> Result<()> {
    let c = p.channel_shape();
    expect(OP, "gamma", s.gamma, &c, DType::F32)?;
    expect(OP, "beta", s.beta, &c, DType::F32)?;
    expect(OP, "running_mean", s.running_mean, &c, DType::F32)?;
    expect(OP, "running_var", s.running_var, &c, DType::F32)
}

fn check_stats(p: &BatchNormParams, stats: &BatchStats) -> Result<()> {
    expect(OP, "mean", stats.mean, &p.channel_shape(), DType::F32)?;
    expect(OP, "var", stats.var, &p.channel_shape(), DType::F32)
}

/// Training mode: batch statistics into `stats`, normalized `y` (then `epilogue`), running
/// statistics moved toward the batch's (six kernels).
#[allow(clippy::too_many_arguments)]
pub fn forward_train(
    ctx: &GpuContext,
    p: &BatchNormParams,
    epilogue: Epilogue,
    name: &str,
    x: &GpuTensor,
    state: &BatchNormState,
    stats: &BatchStats,
    y: &GpuTensor,
) -> Result<Vec<Kernel>> {
    expect(OP, "x", x, &p.x_shape(), DType::F32)?;
    expect(OP, "y", y, &p.x_shape(), DType::F32)?;
    check_state(p, state)?;
    check_stats(p, stats)?;
    let params = bytemuck::bytes_of(p);
    let partial = reduce::scratch(
        ctx,
        &format!("{name}.stats.partial"),
        (p.c * p.parts) as usize,
    )?;
    let rows = (p.c, p.parts);
    let inv_m = 1.0 / p.count() as f32;
    let label = |s: &str| format!("{name}.{s}");
    let bn = shaders::BATCHNORM;
    let (c_count, numel) = (p.c, x.numel() as u32);
    Ok(vec![
        ctx.kernel(
            bn,
            "batchnorm_sum_partial",
            &label("sum"),
            params,
            &[(1, &x.buffer), (7, &partial.buffer)],
            c_count * p.parts,
        )?,
        reduce::rows(
            ctx,
            &label("mean"),
            &partial.buffer,
            rows,
            inv_m,
            &stats.mean.buffer,
        )?,
        ctx.kernel(
            bn,
            "batchnorm_sqdev_partial",
            &label("sqdev"),
            params,
            &[
                (1, &x.buffer),
                (5, &stats.mean.buffer),
                (7, &partial.buffer),
            ],
            c_count * p.parts,
        )?,
        reduce::rows(
            ctx,
            &label("var"),
            &partial.buffer,
            rows,
            inv_m,
            &stats.var.buffer,
        )?,
        normalize(
            ctx, p, epilogue, name, x, state, stats.mean, stats.var, y, numel,
        )?,
        ctx.kernel(
            bn,
            "batchnorm_update_running",
            &label("update_running"),
            params,
            &[
                (5, &stats.mean.buffer),
                (6, &stats.var.buffer),
                (9, &state.running_mean.buffer),
                (10, &state.running_var.buffer),
            ],
            c_count,
        )?,
    ])
}

/// Inference mode: `y` normalized with the running statistics, then `epilogue` (one kernel).
pub fn forward_infer(
    ctx: &GpuContext,
    p: &BatchNormParams,
    epilogue: Epilogue,
    name: &str,
    x: &GpuTensor,
    state: &BatchNormState,
    y: &GpuTensor,
) -> Result<Kernel> {
    expect(OP, "x", x, &p.x_shape(), DType::F32)?;
    expect(OP, "y", y, &p.x_shape(), DType::F32)?;
    check_state(p, state)?;
    normalize(
        ctx,
        p,
        epilogue,
        name,
        x,
        state,
        state.running_mean,
        state.running_var,
        y,
        x.numel() as u32,
    )
}

#[allow(clippy::too_many_arguments)] // one private helper binding the normalize entry point
fn normalize(
    ctx: &GpuContext,
    p: &BatchNormParams,
    epilogue: Epilogue,
    name: &str,
    x: &GpuTensor,
    state: &BatchNormState,
    mean: &GpuTensor,
    var: &GpuTensor,
    y: &GpuTensor,
    numel: u32,
) -> Result<Kernel> {
    let bindings = [
        (1, &x.buffer),
        (2, &y.buffer),
        (3, &state.gamma.buffer),
        (4, &state.beta.buffer),
        (5, &mean.buffer),
        (6, &var.buffer),
    ];
    ctx.kernel_with(
        shaders::BATCHNORM,
        "batchnorm_forward",
        &[epilogue.constant()],
        &format!("{name}.forward"),
        bytemuck::bytes_of(p),
        &bindings,
        numel,
    )
}

/// The gradients of a training-mode forward pass.
pub struct BatchNormGrads<'a> {
    pub dx: &'a GpuTensor,
    pub dgamma: &'a GpuTensor,
    pub dbeta: &'a GpuTensor,
}

/// Training-mode backward: `dgamma`, `dbeta` and `dx` through the batch statistics
/// (four kernels).
// The inputs are the shader's bindings, listed as its contract lists them.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    ctx: &GpuContext,
    p: &BatchNormParams,
    name: &str,
    dy: &GpuTensor,
    x: &GpuTensor,
    gamma: &GpuTensor,
    stats: &BatchStats,
    grads: &BatchNormGrads,
) -> Result<Vec<Kernel>> {
    expect(OP, "dy", dy, &p.x_shape(), DType::F32)?;
    expect(OP, "x", x, &p.x_shape(), DType::F32)?;
    expect(OP, "gamma", gamma, &p.channel_shape(), DType::F32)?;
    check_stats(p, stats)?;
    expect(OP, "dx", grads.dx, &p.x_shape(), DType::F32)?;
    expect(OP, "dgamma", grads.dgamma, &p.channel_shape(), DType::F32)?;
    expect(OP, "dbeta", grads.dbeta, &p.channel_shape(), DType::F32)?;
    if p.count() < 2 {
        return Err(shape_err(
            OP,
            "training mode needs at least 2 positions per channel \
            (n * h * w >= 2); a single value has no batch variance",
        ));
    }
    let params = bytemuck::bytes_of(p);
    let len = (p.c * p.parts) as usize;
    let partial_dbeta = reduce::scratch(ctx, &format!("{name}.dbeta.partial"), len)?;
    let partial_dgamma = reduce::scratch(ctx, &format!("{name}.dgamma.partial"), len)?;
    let rows = (p.c, p.parts);
    let bn = shaders::BATCHNORM;
    Ok(vec![
        ctx.kernel(
            bn,
            "batchnorm_backward_partial",
            &format!("{name}.backward_partial"),
            params,
            &[
                (1, &x.buffer),
                (5, &stats.mean.buffer),
                (6, &stats.var.buffer),
                (7, &partial_dbeta.buffer),
                (8, &partial_dgamma.buffer),
                (11, &dy.buffer),
            ],
            p.c * p.parts,
        )?,
        reduce::rows(
            ctx,
            &format!("{name}.dbeta"),
            &partial_dbeta.buffer,
            rows,
            1.0,
            &grads.dbeta.buffer,
        )?,
        reduce::rows(
            ctx,
            &format!("{name}.dgamma"),
            &partial_dgamma.buffer,
            rows,
            1.0,
            &grads.dgamma.buffer,
        )?,
        ctx.kernel(
            bn,
            "batchnorm_backward_input",
            &format!("{name}.backward_input"),
            params,
            &[
                (1, &x.buffer),
                (3, &gamma.buffer),
                (5, &stats.mean.buffer),
                (6, &stats.var.buffer),
                (11, &dy.buffer),
                (12, &grads.dx.buffer),
                (13, &grads.dgamma.buffer),
                (14, &grads.dbeta.buffer),
            ],
            dy.numel() as u32,
        )?,
    ])
}
