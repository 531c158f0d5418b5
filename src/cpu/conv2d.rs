//! CPU twin of shaders/conv2d.wgsl.

use crate::cpu::check_len;
use crate::error::Result;
use crate::ops::conv2d::Conv2dParams;

const OP: &str = "conv2d (cpu)";

/// Input row `oy * stride + ky - pad`, or None when it falls in the zero padding.
fn input_pos(o: usize, k: usize, p: &Conv2dParams, len: usize) -> Option<usize> {
    (o * p.stride as usize + k)
        .checked_sub(p.pad as usize)
        .filter(|&i| i < len)
}

/// `y = conv(x, weight) + bias`, `[n, c_out, oh, ow]`.
pub fn conv2d_forward(
    p: &Conv2dParams,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
) -> Result<Vec<f32>> {
    let [n_, c_in, h, w] = p.x_shape();
    let [_, c_out, oh, ow] = p.y_shape();
    let (kh, kw) = (p.kh as usize, p.kw as usize);
    check_len(OP, "x", x, n_ * c_in * h * w)?;
    check_len(OP, "weight", weight, c_out * c_in * kh * kw)?;
    check_len(OP, "bias", bias, c_out)?;
    let mut y = vec![0.0; n_ * c_out * oh * ow];
    for n in 0..n_ {
        for co in 0..c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0.0f64;
                    for ci in 0..c_in {
                        for ky in 0..kh {
                            let Some(iy) = input_pos(oy, ky, p, h) else {
                                continue;
                            };
                            for kx in 0..kw {
                                let Some(ix) = input_pos(ox, kx, p, w) else {
                                    continue;
                                };
                                let xv = x[((n * c_in + ci) * h + iy) * w + ix] as f64;
                                acc += xv * weight[((co * c_in + ci) * kh + ky) * kw + kx] as f64;
                            }
                        }
                    }
                    y[((n * c_out + co) * oh + oy) * ow + ox] = (acc + bias[co] as f64) as f32;
                }
            }
        }
    }
    Ok(y)
}

/// `dx[n, ci, iy, ix]`: the sum over every (co, ky, kx) whose output position maps onto it.
/// Written as a scatter from each output position, the simplest correct form; the shader
/// gathers the same terms.
pub fn conv2d_backward_input(p: &Conv2dParams, dy: &[f32], weight: &[f32]) -> Result<Vec<f32>> {
    let [n_, c_in, h, w] = p.x_shape();
    let [_, c_out, oh, ow] = p.y_shape();
    let (kh, kw) = (p.kh as usize, p.kw as usize);
    check_len(OP, "dy", dy, n_ * c_out * oh * ow)?;
    check_len(OP, "weight", weight, c_out * c_in * kh * kw)?;
    let mut dx = vec![0.0f64; n_ * c_in * h * w];
    for n in 0..n_ {
        for co in 0..c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let dyv = dy[((n * c_out + co) * oh + oy) * ow + ox] as f64;
                    for ci in 0..c_in {
                        for ky in 0..kh {
                            let Some(iy) = input_pos(oy, ky, p, h) else {
                                continue;
                            };
                            for kx in 0..kw {
                                let Some(ix) = input_pos(ox, kx, p, w) else {
                                    continue;
                                };
                                dx[((n * c_in + ci) * h + iy) * w + ix] +=
                                    dyv * weight[((co * c_in + ci) * kh + ky) * kw + kx] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(dx.into_iter().map(|v| v as f32).collect())
}

/// `dweight[co, ci, ky, kx] = sum_{n, oy, ox} dy[n, co, oy, ox] * x[n, ci, iy, ix]`.
pub fn conv2d_backward_weight(p: &Conv2dParams, dy: &[f32], x: &[f32]) -> Result<Vec<f32>> {
    let [n_, c_in, h, w] = p.x_shape();
    let [_, c_out, oh, ow] = p.y_shape();
    let (kh, kw) = (p.kh as usize, p.kw as usize);
    check_len(OP, "dy", dy, n_ * c_out * oh * ow)?;
    check_len(OP, "x", x, n_ * c_in * h * w)?;
    let mut dweight = vec![0.0; c_out * c_in * kh * kw];
    for co in 0..c_out {
        for ci in 0..c_in {
            for ky in 0..kh {
                for kx in 0..kw {
                    let mut acc = 0.0f64;
                    for n in 0..n_ {
                        for oy in 0..oh {
                            let Some(iy) = input_pos(oy, ky, p, h) else {
                                continue;
                            };
                            for ox in 0..ow {
                                let Some(ix) = input_pos(ox, kx, p, w) else {
                                    continue;
                                };
                                let dyv = dy[((n * c_out + co) * oh + oy) * ow + ox] as f64;
                                acc += dyv * x[((n * c_in + ci) * h + iy) * w + ix] as f64;
                            }
                        }
                    }
                    dweight[((co * c_in + ci) * kh + ky) * kw + kx] = acc as f32;
                }
            }
        }
    }
    Ok(dweight)
}

/// `dbias[co] = sum_{n, oy, ox} dy[n, co, oy, ox]`.
pub fn conv2d_backward_bias(p: &Conv2dParams, dy: &[f32]) -> Result<Vec<f32>> {
    let [n_, c_out, oh, ow] = p.y_shape();
    check_len(OP, "dy", dy, n_ * c_out * oh * ow)?;
    let plane = oh * ow;
    let dbias = (0..c_out)
        .map(|co| {
            let mut acc = 0.0f64;
            for n in 0..n_ {
                for m in 0..plane {
                    acc += dy[(n * c_out + co) * plane + m] as f64;
                }
            }
            acc as f32
        })
        .collect();
    Ok(dbias)
}
