//! CPU twin of shaders/augment.wgsl, in f32 with the same operation order.

use crate::cpu::rng::{hash_uniform, pcg_hash};
use crate::ops::augment::AugmentParams;

fn draw(p: &AugmentParams, id: u32, k: u32) -> f32 {
    2.0 * hash_uniform(
        pcg_hash(p.seed ^ pcg_hash(p.epoch)),
        id.wrapping_mul(8).wrapping_add(k),
    ) - 1.0
}

/// The augmented batch of `x` `[n, c, h, w]`, drawn through `order` at `p.offset`.
pub fn augment_forward(p: &AugmentParams, x: &[f32], order: &[u32]) -> Vec<f32> {
    let (n_, c_, h, w) = (p.n as usize, p.c as usize, p.h as usize, p.w as usize);
    let pixel = |plane: usize, iy: i32, ix: i32| -> f32 {
        if iy < 0 || ix < 0 || iy >= h as i32 || ix >= w as i32 {
            0.0
        } else {
            x[(plane * h + iy as usize) * w + ix as usize]
        }
    };
    let mut y = vec![0.0; x.len()];
    for n in 0..n_ {
        let id = order[(p.offset as usize + n).min(p.count as usize - 1)];
        let flip = p.flip == 1 && draw(p, id, 0) < 0.0;
        let angle = draw(p, id, 1) * p.max_rotate;
        let zoom = 1.0 + draw(p, id, 2) * p.max_zoom;
        let tx = draw(p, id, 3) * p.max_shift * w as f32;
        let ty = draw(p, id, 4) * p.max_shift * h as f32;
        let brightness = draw(p, id, 5) * p.max_brightness;
        let contrast = 1.0 + draw(p, id, 6) * p.max_contrast;
        let (cx, cy) = ((w as f32 - 1.0) * 0.5, (h as f32 - 1.0) * 0.5);
        let (sn, cs) = angle.sin_cos();
        for c in 0..c_ {
            let plane = n * c_ + c;
            for oy in 0..h {
                for ox in 0..w {
                    let dx = ox as f32 - cx - tx;
                    let dy = oy as f32 - cy - ty;
                    let mut sx = (cs * dx + sn * dy) / zoom + cx;
                    let sy = (-sn * dx + cs * dy) / zoom + cy;
                    if flip {
                        sx = w as f32 - 1.0 - sx;
                    }
                    let (x0, y0) = (sx.floor(), sy.floor());
                    let (fx, fy) = (sx - x0, sy - y0);
                    let (ix, iy) = (x0 as i32, y0 as i32);
                    let top = pixel(plane, iy, ix) * (1.0 - fx) + pixel(plane, iy, ix + 1) * fx;
                    let bottom =
                        pixel(plane, iy + 1, ix) * (1.0 - fx) + pixel(plane, iy + 1, ix + 1) * fx;
                    y[(plane * h + oy) * w + ox] =
                        (top * (1.0 - fy) + bottom * fy) * contrast + brightness;
                }
            }
        }
    }
    y
}
