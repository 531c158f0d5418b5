//! CPU twin of shaders/pool.wgsl.

use crate::cpu::check_len;
use crate::error::Result;
use crate::ops::pool::PoolParams;

const OP: &str = "pool (cpu)";

/// The in-bounds input rows (or columns) of window `o`: `[o*stride - pad, o*stride - pad + k)`
/// clipped to `[0, len)`.
fn window(o: usize, k: u32, p: &PoolParams, len: u32) -> std::ops::Range<usize> {
    let start = (o * p.stride as usize) as i64 - p.pad as i64;
    let lo = start.max(0) as usize;
    let hi = (start + k as i64).min(len as i64).max(0) as usize;
    lo..hi
}

/// Window maxima `[n, c, oh, ow]` and their positions `iy * w + ix` (first on ties).
pub fn maxpool_forward(p: &PoolParams, x: &[f32]) -> Result<(Vec<f32>, Vec<u32>)> {
    let [n, c, h, w] = p.x_shape();
    let [_, _, oh, ow] = p.y_shape();
    check_len(OP, "x", x, n * c * h * w)?;
    let mut y = Vec::with_capacity(n * c * oh * ow);
    let mut argmax = Vec::with_capacity(n * c * oh * ow);
    for plane in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best: Option<(f32, usize)> = None;
                for iy in window(oy, p.kh, p, p.h) {
                    for ix in window(ox, p.kw, p, p.w) {
                        let v = x[(plane * h + iy) * w + ix];
                        if best.is_none_or(|(b, _)| v > b) {
                            best = Some((v, iy * w + ix));
                        }
                    }
                }
                let (v, at) = best.expect("PoolParams guarantees a non-empty window");
                y.push(v);
                argmax.push(at as u32);
            }
        }
    }
    Ok((y, argmax))
}

/// `dx`: each `dy` added to the input position its window took the max from.
pub fn maxpool_backward_input(p: &PoolParams, dy: &[f32], argmax: &[u32]) -> Result<Vec<f32>> {
    let [n, c, h, w] = p.x_shape();
    let [_, _, oh, ow] = p.y_shape();
    check_len(OP, "dy", dy, n * c * oh * ow)?;
    if argmax.len() != dy.len() {
        return Err(crate::error::shape_err(
            OP,
            "argmax and dy differ in length",
        ));
    }
    let mut dx = vec![0.0f64; n * c * h * w];
    for plane in 0..n * c {
        for o in 0..oh * ow {
            let at = argmax[plane * oh * ow + o] as usize;
            dx[plane * h * w + at] += dy[plane * oh * ow + o] as f64;
        }
    }
    Ok(dx.into_iter().map(|v| v as f32).collect())
}

/// Window means over in-bounds positions, `[n, c, oh, ow]`.
pub fn avgpool_forward(p: &PoolParams, x: &[f32]) -> Result<Vec<f32>> {
    let [n, c, h, w] = p.x_shape();
    let [_, _, oh, ow] = p.y_shape();
    check_len(OP, "x", x, n * c * h * w)?;
    let mut y = Vec::with_capacity(n * c * oh * ow);
    for plane in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let (rows, cols) = (window(oy, p.kh, p, p.h), window(ox, p.kw, p, p.w));
                let count = rows.len() * cols.len();
                let mut acc = 0.0f64;
                for iy in rows {
                    for ix in cols.clone() {
                        acc += x[(plane * h + iy) * w + ix] as f64;
                    }
                }
                y.push((acc / count as f64) as f32);
            }
        }
    }
    Ok(y)
}

/// `dx`: each `dy / count` added to every in-bounds position of its window.
pub fn avgpool_backward_input(p: &PoolParams, dy: &[f32]) -> Result<Vec<f32>> {
    let [n, c, h, w] = p.x_shape();
    let [_, _, oh, ow] = p.y_shape();
    check_len(OP, "dy", dy, n * c * oh * ow)?;
    let mut dx = vec![0.0f64; n * c * h * w];
    for plane in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let (rows, cols) = (window(oy, p.kh, p, p.h), window(ox, p.kw, p, p.w));
                let share =
                    dy[(plane * oh + oy) * ow + ox] as f64 / (rows.len() * cols.len()) as f64;
                for iy in rows {
                    for ix in cols.clone() {
                        dx[(plane * h + iy) * w + ix] += share;
                    }
                }
            }
        }
    }
    Ok(dx.into_iter().map(|v| v as f32).collect())
}

/// Plane means, `[n, c]`.
pub fn global_avgpool_forward(p: &PoolParams, x: &[f32]) -> Result<Vec<f32>> {
    let [n, c, h, w] = p.x_shape();
    check_len(OP, "x", x, n * c * h * w)?;
    let plane = h * w;
    Ok(x.chunks(plane)
        .map(|v| (v.iter().map(|&e| e as f64).sum::<f64>() / plane as f64) as f32)
        .collect())
}

/// `dx[n, c, :, :] = dy[n, c] / (h * w)`.
pub fn global_avgpool_backward_input(p: &PoolParams, dy: &[f32]) -> Result<Vec<f32>> {
    let [n, c, h, w] = p.x_shape();
    check_len(OP, "dy", dy, n * c)?;
    let plane = h * w;
    Ok(dy
        .iter()
        .flat_map(|&g| std::iter::repeat_n(g / plane as f32, plane))
        .collect())
}
