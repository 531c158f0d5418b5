//! CPU twin of shaders/activation.wgsl.

use crate::cpu::{check_len, rng::hash_uniform};
use crate::error::Result;
use crate::ops::activation::{DropoutParams, ReluParams};

/// `y = x if x > 0 else slope * x`.
pub fn relu_forward(p: &ReluParams, x: &[f32]) -> Result<Vec<f32>> {
    check_len("relu (cpu)", "x", x, p.numel as usize)?;
    Ok(x.iter()
        .map(|&v| if v > 0.0 { v } else { p.slope * v })
        .collect())
}

/// `dx = dy where x > 0, slope * dy elsewhere`.
pub fn relu_backward_input(p: &ReluParams, dy: &[f32], x: &[f32]) -> Result<Vec<f32>> {
    check_len("relu (cpu)", "dy", dy, p.numel as usize)?;
    check_len("relu (cpu)", "x", x, p.numel as usize)?;
    Ok(dy
        .iter()
        .zip(x)
        .map(|(&g, &v)| if v > 0.0 { g } else { p.slope * g })
        .collect())
}

/// Whether element `i` survives dropout with these params (the shader's `kept`).
pub fn dropout_kept(p: &DropoutParams, i: usize) -> bool {
    hash_uniform(p.seed, i as u32) < p.keep
}

/// `y = x / keep` where kept, 0 elsewhere.
pub fn dropout_forward(p: &DropoutParams, x: &[f32]) -> Result<Vec<f32>> {
    check_len("dropout (cpu)", "x", x, p.numel as usize)?;
    Ok(x.iter()
        .enumerate()
        .map(|(i, &v)| if dropout_kept(p, i) { v / p.keep } else { 0.0 })
        .collect())
}

/// `dx = dy / keep` where kept, 0 elsewhere.
pub fn dropout_backward_input(p: &DropoutParams, dy: &[f32]) -> Result<Vec<f32>> {
    check_len("dropout (cpu)", "dy", dy, p.numel as usize)?;
    Ok(dy
        .iter()
        .enumerate()
        .map(|(i, &g)| if dropout_kept(p, i) { g / p.keep } else { 0.0 })
        .collect())
}
