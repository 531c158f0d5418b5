//! CPU twin of shaders/optim.wgsl. Element-wise in f32 with the shader's operation order, so
//! a step agrees with the GPU to a few ulps; the norm sums in f64.

use crate::ops::optim::{Hyper, Optimizer};

/// One update of `weight` and its state from `grad` scaled by `clip` (the shader's `clip[0]`).
pub fn update(
    rule: &Optimizer,
    hyper: &Hyper,
    clip: f32,
    weight: &mut [f32],
    grad: &[f32],
    state1: &mut [f32],
    state2: &mut [f32],
) {
    let p = rule.params(weight.len());
    for i in 0..weight.len() {
        match rule {
            Optimizer::Sgd { .. } => {
                let g = grad[i] * clip + p.weight_decay * weight[i];
                let v = p.momentum * state1[i] + g;
                state1[i] = v;
                let step = if p.nesterov == 1 {
                    g + p.momentum * v
                } else {
                    v
                };
                weight[i] -= hyper.lr * step;
            }
            Optimizer::Adam { .. } | Optimizer::AdamW { .. } => {
                let mut w = weight[i];
                let mut g = grad[i] * clip;
                if p.decoupled == 1 {
                    w -= hyper.lr * p.weight_decay * w;
                } else {
                    g += p.weight_decay * w;
                }
                let m = p.beta1 * state1[i] + (1.0 - p.beta1) * g;
                let v = p.beta2 * state2[i] + (1.0 - p.beta2) * g * g;
                state1[i] = m;
                state2[i] = v;
                let m_hat = m / hyper.bias_correction1;
                let v_hat = v / hyper.bias_correction2;
                weight[i] = w - hyper.lr * m_hat / (v_hat.sqrt() + p.eps);
            }
            Optimizer::RmsProp { .. } => {
                let g = grad[i] * clip + p.weight_decay * weight[i];
                let s = p.momentum * state1[i] + (1.0 - p.momentum) * g * g;
                state1[i] = s;
                weight[i] -= hyper.lr * g / (s.sqrt() + p.eps);
            }
        }
    }
}

/// `(scale, norm)`: the global L2 norm of all gradients and the factor bringing it down to
/// `max_norm` (1 when already below), as clip_scale computes them.
pub fn clip_scale(grads: &[&[f32]], max_norm: f32) -> (f32, f32) {
    let sumsq: f64 = grads
        .iter()
        .flat_map(|g| g.iter())
        .map(|&v| v as f64 * v as f64)
        .sum();
    let norm = sumsq.sqrt() as f32;
    let scale = if norm > max_norm {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    };
    (scale, norm)
}
