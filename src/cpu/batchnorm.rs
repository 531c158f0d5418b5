//! CPU twin of shaders/batchnorm.wgsl. Statistics in f64; the per-element maps mirror the
//! shader's formulas.

use crate::cpu::check_len;
use crate::error::Result;
use crate::ops::batchnorm::BatchNormParams;

const OP: &str = "batchnorm (cpu)";

/// Index of the m-th (n, y, x) position of channel c, as `at()` in the shader.
fn at(p: &BatchNormParams, c: usize, m: usize) -> usize {
    let plane = (p.h * p.w) as usize;
    ((m / plane) * p.c as usize + c) * plane + m % plane
}

/// Batch mean and biased variance per channel (two passes, as the shader).
pub fn batchnorm_stats(p: &BatchNormParams, x: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
    check_len(OP, "x", x, p.x_shape().iter().product())?;
    let count = p.count();
    let (mut mean, mut var) = (vec![], vec![]);
    for c in 0..p.c as usize {
        let mu = (0..count).map(|m| x[at(p, c, m)] as f64).sum::<f64>() / count as f64;
        // The shader subtracts the f32 mean, so the twin does too.
        let mu32 = mu as f32;
        let v = (0..count)
            .map(|m| ((x[at(p, c, m)] - mu32) as f64).powi(2))
            .sum::<f64>()
            / count as f64;
        mean.push(mu32);
        var.push(v as f32);
    }
    Ok((mean, var))
}

/// `y = (x - mean) / sqrt(var + eps) * gamma + beta`, with whichever statistics are given.
pub fn batchnorm_forward(
    p: &BatchNormParams,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
) -> Result<Vec<f32>> {
    check_len(OP, "x", x, p.x_shape().iter().product())?;
    for (what, v) in [
        ("gamma", gamma),
        ("beta", beta),
        ("mean", mean),
        ("var", var),
    ] {
        check_len(OP, what, v, p.c as usize)?;
    }
    let plane = (p.h * p.w) as usize;
    Ok(x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / plane) % p.c as usize;
            let inv_std = 1.0 / (var[c] as f64 + p.eps as f64).sqrt();
            ((v as f64 - mean[c] as f64) * inv_std * gamma[c] as f64 + beta[c] as f64) as f32
        })
        .collect())
}

/// Running statistics after one training step: `(1 - momentum) * running + momentum *
/// batch`, with the unbiased batch variance.
pub fn batchnorm_update_running(
    p: &BatchNormParams,
    mean: &[f32],
    var: &[f32],
    running_mean: &[f32],
    running_var: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let m = p.count() as f64;
    let k = p.momentum as f64;
    let unbias = if m > 1.0 { m / (m - 1.0) } else { 1.0 };
    let rm = (0..p.c as usize)
        .map(|c| ((1.0 - k) * running_mean[c] as f64 + k * mean[c] as f64) as f32)
        .collect();
    let rv = (0..p.c as usize)
        .map(|c| ((1.0 - k) * running_var[c] as f64 + k * var[c] as f64 * unbias) as f32)
        .collect();
    (rm, rv)
}

/// Training-mode gradients `(dx, dgamma, dbeta)` through the batch statistics.
pub fn batchnorm_backward(
    p: &BatchNormParams,
    dy: &[f32],
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
    let numel: usize = p.x_shape().iter().product();
    check_len(OP, "dy", dy, numel)?;
    check_len(OP, "x", x, numel)?;
    for (what, v) in [("gamma", gamma), ("mean", mean), ("var", var)] {
        check_len(OP, what, v, p.c as usize)?;
    }
    let count = p.count();
    let m = count as f64;
    let mut dx = vec![0.0; numel];
    let (mut dgamma, mut dbeta) = (vec![], vec![]);
    for c in 0..p.c as usize {
        let inv_std = 1.0 / (var[c] as f64 + p.eps as f64).sqrt();
        let xhat = |j: usize| (x[j] as f64 - mean[c] as f64) * inv_std;
        let db: f64 = (0..count).map(|m| dy[at(p, c, m)] as f64).sum();
        let dg: f64 = (0..count)
            .map(|m| dy[at(p, c, m)] as f64 * xhat(at(p, c, m)))
            .sum();
        for mi in 0..count {
            let j = at(p, c, mi);
            dx[j] = (gamma[c] as f64 * inv_std / m * (m * dy[j] as f64 - db - xhat(j) * dg)) as f32;
        }
        dgamma.push(dg as f32);
        dbeta.push(db as f32);
    }
    Ok((dx, dgamma, dbeta))
}
