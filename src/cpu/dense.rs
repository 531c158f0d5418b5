//! CPU twin of shaders/dense.wgsl.

use crate::cpu::check_len;
use crate::error::Result;
use crate::ops::dense::DenseParams;

const OP: &str = "dense (cpu)";

fn sizes(p: &DenseParams) -> (usize, usize, usize) {
    (p.n as usize, p.d_in as usize, p.d_out as usize)
}

/// `y[n, o] = bias[o] + sum_i x[n, i] * weight[o, i]`.
pub fn dense_forward(p: &DenseParams, x: &[f32], weight: &[f32], bias: &[f32]) -> Result<Vec<f32>> {
    let (n_, d_in, d_out) = sizes(p);
    check_len(OP, "x", x, n_ * d_in)?;
    check_len(OP, "weight", weight, d_out * d_in)?;
    check_len(OP, "bias", bias, d_out)?;
    let mut y = vec![0.0; n_ * d_out];
    for n in 0..n_ {
        for o in 0..d_out {
            let mut acc = 0.0f64;
            for i in 0..d_in {
                acc += x[n * d_in + i] as f64 * weight[o * d_in + i] as f64;
            }
            y[n * d_out + o] = (acc + bias[o] as f64) as f32;
        }
    }
    Ok(y)
}

/// `dx[n, i] = sum_o dy[n, o] * weight[o, i]`.
pub fn dense_backward_input(p: &DenseParams, dy: &[f32], weight: &[f32]) -> Result<Vec<f32>> {
    let (n_, d_in, d_out) = sizes(p);
    check_len(OP, "dy", dy, n_ * d_out)?;
    check_len(OP, "weight", weight, d_out * d_in)?;
    let mut dx = vec![0.0; n_ * d_in];
    for n in 0..n_ {
        for i in 0..d_in {
            let mut acc = 0.0f64;
            for o in 0..d_out {
                acc += dy[n * d_out + o] as f64 * weight[o * d_in + i] as f64;
            }
            dx[n * d_in + i] = acc as f32;
        }
    }
    Ok(dx)
}

/// `dweight[o, i] = sum_n dy[n, o] * x[n, i]`.
pub fn dense_backward_weight(p: &DenseParams, dy: &[f32], x: &[f32]) -> Result<Vec<f32>> {
    let (n_, d_in, d_out) = sizes(p);
    check_len(OP, "dy", dy, n_ * d_out)?;
    check_len(OP, "x", x, n_ * d_in)?;
    let mut dweight = vec![0.0; d_out * d_in];
    for o in 0..d_out {
        for i in 0..d_in {
            let mut acc = 0.0f64;
            for n in 0..n_ {
                acc += dy[n * d_out + o] as f64 * x[n * d_in + i] as f64;
            }
            dweight[o * d_in + i] = acc as f32;
        }
    }
    Ok(dweight)
}

/// `dbias[o] = sum_n dy[n, o]`.
pub fn dense_backward_bias(p: &DenseParams, dy: &[f32]) -> Result<Vec<f32>> {
    let (n_, _, d_out) = sizes(p);
    check_len(OP, "dy", dy, n_ * d_out)?;
    Ok((0..d_out)
        .map(|o| (0..n_).map(|n| dy[n * d_out + o] as f64).sum::<f64>() as f32)
        .collect())
}
