//! Host side of shaders/optim.wgsl: optimizer updates and gradient clipping.

use bytemuck::{Pod, Zeroable};

use crate::error::{shape_err, Result};
use crate::gpu::{shaders, DType, GpuContext, GpuTensor, Kernel};
use crate::ops::{expect, REDUCE_CHUNK};

const OP: &str = "optim";

/// The update rule and its constants.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Optimizer {
    /// SGD with optional (Nesterov) momentum and coupled weight decay.
    Sgd {
        momentum: f32,
        nesterov: bool,
        weight_decay: f32,
    },
    /// Adam with coupled (L2) weight decay.
    Adam {
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
    },
    /// AdamW: Adam with decoupled weight decay.
    AdamW {
        beta1: f32,
        beta2: f32,
        eps: f32,
        weight_decay: f32,
    },
    /// RMSProp with smoothing constant `alpha` and coupled weight decay.
    RmsProp {
        alpha: f32,
        eps: f32,
        weight_decay: f32,
    },
}

impl Optimizer {
    /// SGD with momentum 0.9, the usual starting point.
    pub fn sgd_momentum() -> Self {
        Self::Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        }
    }
    /// Adam with the customary constants.
    pub fn adam() -> Self {
        Self::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
    /// AdamW with the customary constants and weight decay 0.01.
    pub fn adamw() -> Self {
        Self::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
    /// RMSProp with alpha 0.99.
    pub fn rmsprop() -> Self {
        Self::RmsProp {
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }

    /// Checks the constants.
    pub fn validate(&self) -> Result<()> {
        let (unit, wd) = match *self {
            Self::Sgd {
                momentum,
                weight_decay,
                ..
            } => (vec![("momentum", momentum)], weight_decay),
            Self::Adam {
                beta1,
                beta2,
                weight_decay,
                ..
            }
            | Self::AdamW {
                beta1,
                beta2,
                weight_decay,
                ..
            } => (vec![("beta1", beta1), ("beta2", beta2)], weight_decay),
            Self::RmsProp {
                alpha,
                weight_decay,
                ..
            } => (vec![("alpha", alpha)], weight_decay),
        };
        for (name, v) in unit {
            if !(0.0..1.0).contains(&v) {
                return Err(shape_err(OP, format!("{name} must be in [0, 1), got {v}")));
            }
        }
        if !(wd >= 0.0 && wd.is_finite()) {
            return Err(shape_err(
                OP,
                format!("weight decay must be >= 0, got {wd}"),
            ));
        }
        Ok(())
    }

    /// Whether the rule keeps a second state tensor (Adam's v).
    pub fn has_second_state(&self) -> bool {
        matches!(self, Self::Adam { .. } | Self::AdamW { .. })
    }

    /// The uniform params of an update over `numel` elements.
    pub fn params(&self, numel: usize) -> OptimParams {
        let mut p = OptimParams {
            numel: numel as u32,
            ..OptimParams::zeroed()
        };
        match *self {
            Self::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => {
                p.momentum = momentum;
                p.nesterov = nesterov as u32;
                p.weight_decay = weight_decay;
            }
            Self::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | Self::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                (p.beta1, p.beta2, p.eps, p.weight_decay) = (beta1, beta2, eps, weight_decay);
                p.decoupled = matches!(self, Self::AdamW { .. }) as u32;
            }
            Self::RmsProp {
                alpha,
                eps,
                weight_decay,
            } => {
                (p.momentum, p.eps, p.weight_decay) = (alpha, eps, weight_decay);
            }
        }
        p
    }

    /// The per-step values for step `t` (1-based) at learning rate `lr`.
    pub fn hyper(&self, lr: f32, t: u64) -> Hyper {
        let (b1, b2) = match *self {
            Self::Adam { beta1, beta2, .. } | Self::AdamW { beta1, beta2, .. } => (beta1, beta2),
            _ => (0.0, 0.0),
        };
        // Computed in f64 so that t in the millions still gives the exact f32.
        let bc = |b: f32| (1.0 - (b as f64).powf(t as f64)) as f32;
        Hyper {
            lr,
            bias_correction1: bc(b1),
            bias_correction2: bc(b2),
            _pad0: 0.0,
        }
    }

    fn entry(&self) -> &'static str {
        match self {
            Self::Sgd { .. } => "sgd_update",
            Self::Adam { .. } | Self::AdamW { .. } => "adam_update",
            Self::RmsProp { .. } => "rmsprop_update",
        }
    }
}

/// Mirrors `OptimParams` in optim.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct OptimParams {
    pub numel: u32,
    pub nesterov: u32,
    pub decoupled: u32,
    pub _pad0: u32,
    pub momentum: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub _pad1: u32,
    pub _pad2: u32,
    pub _pad3: u32,
}

/// Mirrors `Hyper` in optim.wgsl: what changes every step.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct Hyper {
    pub lr: f32,
    pub bias_correction1: f32,
    pub bias_correction2: f32,
    pub _pad0: f32,
}

/// Mirrors `SumSqParams` in optim.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct SumSqParams {
    pub numel: u32,
    pub chunk: u32,
    pub offset: u32,
    pub max_norm: f32,
    pub total_parts: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// Partials of one tensor's sum of squares, with [`REDUCE_CHUNK`] elements each.
pub fn sumsq_parts(numel: usize) -> usize {
    numel.div_ceil(REDUCE_CHUNK)
}

/// One parameter tensor with its gradient and optimizer state (state2 may be a 1-element
/// placeholder for rules without a second state).
pub struct ParamSlot<'a> {
    pub weight: &'a GpuTensor,
    pub grad: &'a GpuTensor,
    pub state1: &'a GpuTensor,
    pub state2: &'a GpuTensor,
}

/// The update of one parameter tensor. `hyper` is the uniform buffer of [`Hyper`] the host
/// rewrites each step; `clip` holds `[scale, norm]` (`[1, 0]` when clipping is off).
pub fn update(
    ctx: &GpuContext,
    rule: &Optimizer,
    name: &str,
    slot: &ParamSlot,
    hyper: &wgpu::Buffer,
    clip: &GpuTensor,
) -> Result<Kernel> {
    let shape = slot.weight.shape.clone();
    expect(OP, "grad", slot.grad, &shape, DType::F32)?;
    expect(OP, "state1", slot.state1, &shape, DType::F32)?;
    if rule.has_second_state() {
        expect(OP, "state2", slot.state2, &shape, DType::F32)?;
    }
    expect(OP, "clip", clip, &[2], DType::F32)?;
    let p = rule.params(slot.weight.numel());
    let mut bindings = vec![
        (1, &slot.weight.buffer),
        (2, &slot.grad.buffer),
        (3, &slot.state1.buffer),
        (5, &clip.buffer),
        (6, hyper),
    ];
    if rule.has_second_state() {
        bindings.push((4, &slot.state2.buffer));
    }
    ctx.kernel(
        shaders::OPTIM,
        rule.entry(),
        &format!("{name}.update"),
        bytemuck::bytes_of(&p),
        &bindings,
        p.numel,
    )
}

/// Kernels that compute the global gradient norm of `grads` and the clip factor toward
/// `max_norm` into `clip` (`[scale, norm]`); the partials go to `partial`, which must hold
/// the sum of [`sumsq_parts`] over the tensors.
pub fn clip_by_global_norm(
    ctx: &GpuContext,
    grads: &[&GpuTensor],
    max_norm: f32,
    partial: &GpuTensor,
    clip: &GpuTensor,
) -> Result<Vec<Kernel>> {
    if !(max_norm > 0.0 && max_norm.is_finite()) {
        return Err(shape_err(
            OP,
            format!("max gradient norm must be > 0, got {max_norm}"),
        ));
    }
    let total: usize = grads.iter().map(|g| sumsq_parts(g.numel())).sum();
    expect(OP, "partial", partial, &[total], DType::F32)?;
    expect(OP, "clip", clip, &[2], DType::F32)?;
    let mut kernels = vec![];
    let mut offset = 0;
    for g in grads {
        let parts = sumsq_parts(g.numel());
        let p = SumSqParams {
            numel: g.numel() as u32,
            chunk: REDUCE_CHUNK as u32,
            offset: offset as u32,
            ..SumSqParams::zeroed()
        };
        kernels.push(ctx.kernel(
            shaders::OPTIM,
            "grad_sumsq_partial",
            &format!("{}.sumsq", g.label),
            bytemuck::bytes_of(&p),
            &[(2, &g.buffer), (7, &partial.buffer)],
            parts as u32,
        )?);
        offset += parts;
    }
    let p = SumSqParams {
        total_parts: total as u32,
        max_norm,
        ..SumSqParams::zeroed()
    };
    kernels.push(ctx.kernel(
        shaders::OPTIM,
        "clip_scale",
        "clip_scale",
        bytemuck::bytes_of(&p),
        &[(7, &partial.buffer), (8, &clip.buffer)],
        1,
    )?);
    Ok(kernels)
}
