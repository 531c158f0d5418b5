//! Host side of shaders/augment.wgsl: seeded geometric and photometric augmentation.

use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};

use crate::error::{shape_err, Result};
use crate::gpu::{shaders, DType, GpuContext, GpuTensor, Kernel};
use crate::ops::expect;

const OP: &str = "augment";

/// The ranges of the random transforms; all zero (and no flip) is the identity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    pub flip: bool,
    /// Largest rotation, in degrees.
    pub rotate_degrees: f32,
    /// Largest zoom, as a fraction (0.1: scale in [0.9, 1.1]).
    pub zoom: f32,
    /// Largest shift, as a fraction of the side.
    pub shift: f32,
    /// Largest brightness offset, in normalized units.
    pub brightness: f32,
    /// Largest contrast change, as a fraction.
    pub contrast: f32,
}

impl Default for Augment {
    /// Mild settings suited to roughly aligned frontal faces.
    fn default() -> Self {
        Self {
            flip: true,
            rotate_degrees: 10.0,
            zoom: 0.1,
            shift: 0.08,
            brightness: 0.2,
            contrast: 0.2,
        }
    }
}

impl Augment {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        let ok = |v: f32, max: f32| (0.0..=max).contains(&v);
        if !(ok(self.rotate_degrees, 180.0)
            && ok(self.zoom, 0.9)
            && ok(self.shift, 0.5)
            && ok(self.brightness, 10.0)
            && ok(self.contrast, 0.9))
        {
            return Err(shape_err(
                OP,
                format!(
                    "{self:?}: rotation must be 0 to 180 degrees, \
                zoom 0 to 0.9, shift 0 to 0.5, brightness 0 to 10, contrast 0 to 0.9"
                ),
            ));
        }
        Ok(())
    }

    /// The uniform params for a batch `[n, c, h, w]` drawn through an order of `count`.
    pub fn params(&self, x_shape: [usize; 4], count: usize, seed: u32) -> AugmentParams {
        let [n, c, h, w] = x_shape.map(|v| v as u32);
        AugmentParams {
            n,
            c,
            h,
            w,
            seed,
            epoch: 0,
            offset: 0,
            count: count as u32,
            flip: self.flip as u32,
            max_rotate: self.rotate_degrees.to_radians(),
            max_zoom: self.zoom,
            max_shift: self.shift,
            max_brightness: self.brightness,
            max_contrast: self.contrast,
            _pad0: 0,
            _pad1: 0,
        }
    }
}

/// Mirrors `AugmentParams` in augment.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct AugmentParams {
    pub n: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub seed: u32,
    pub epoch: u32,
    pub offset: u32,
    pub count: u32,
    pub flip: u32,
    pub max_rotate: f32,
    pub max_zoom: f32,
    pub max_shift: f32,
    pub max_brightness: f32,
    pub max_contrast: f32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// `y` = the augmented `x`; rewrite `epoch` and `offset` in the params as they change.
pub fn forward(
    ctx: &GpuContext,
    p: &AugmentParams,
    x: &GpuTensor,
    order: &GpuTensor,
    y: &GpuTensor,
) -> Result<Kernel> {
    let shape = [p.n, p.c, p.h, p.w].map(|v| v as usize);
    expect(OP, "x", x, &shape, DType::F32)?;
    expect(OP, "y", y, &shape, DType::F32)?;
    expect(OP, "order", order, &[p.count as usize], DType::U32)?;
    ctx.kernel(
        shaders::AUGMENT,
        "augment_forward",
        "augment",
        bytemuck::bytes_of(p),
        &[(1, &x.buffer), (2, &order.buffer), (3, &y.buffer)],
        x.numel() as u32,
    )
}
