//! Host side of shaders/pool.wgsl: max, average and global average pooling.

use bytemuck::{Pod, Zeroable};

use crate::error::{shape_err, Result};
use crate::gpu::{shaders, DType, GpuContext, GpuTensor, Kernel};
use crate::ops::{expect, nonzero, to_u32};

const OP: &str = "pool";

/// Mirrors `PoolParams` in pool.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct PoolParams {
    pub n: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad: u32,
    pub oh: u32,
    pub ow: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

impl PoolParams {
    /// A `[kh, kw]` window moved by `stride` over an `[n, c, h, w]` input padded by `pad`.
    /// In floor mode (`ceil_mode = false`) only windows that fit are kept:
    /// `oh = (h + 2*pad - kh) / stride + 1`. In ceil mode a last, partial window is kept when
    /// it still starts inside the input or its left padding, so windows run past the edge.
    /// `pad` may be at most half the window, so that every window holds an input position.
    pub fn new(
        [n, c, h, w]: [usize; 4],
        [kh, kw]: [usize; 2],
        stride: usize,
        pad: usize,
        ceil_mode: bool,
    ) -> Result<Self> {
        nonzero(OP, &[("n", n), ("c", c), ("h", h), ("w", w)])?;
        nonzero(OP, &[("kh", kh), ("kw", kw), ("stride", stride)])?;
        if 2 * pad > kh || 2 * pad > kw {
            return Err(shape_err(
                OP,
                format!("pad {pad} is more than half the {kh}x{kw} window"),
            ));
        }
        if kh > h + 2 * pad || kw > w + 2 * pad {
            return Err(shape_err(
                OP,
                format!(
                    "window {kh}x{kw} is larger than the padded input {}x{} ({h}x{w} with pad \
                     {pad}); use a smaller window or a larger input",
                    h + 2 * pad,
                    w + 2 * pad
                ),
            ));
        }
        let out = |len: usize, k: usize| {
            let span = len + 2 * pad - k;
            if !ceil_mode {
                return span / stride + 1;
            }
            let o = span.div_ceil(stride) + 1;
            // The last window must start inside the input or its left padding.
            if (o - 1) * stride >= len + pad {
                o - 1
            } else {
                o
            }
        };
        let (oh, ow) = (out(h, kh), out(w, kw));
        to_u32(OP, "x elements", n * c * h * w)?;
        Ok(Self::from_sizes(
            [n, c, h, w],
            [kh, kw],
            stride,
            pad,
            [oh, ow],
        ))
    }

    /// Global average pooling: one window covering each whole `h x w` plane.
    pub fn global([n, c, h, w]: [usize; 4]) -> Result<Self> {
        nonzero(OP, &[("n", n), ("c", c), ("h", h), ("w", w)])?;
        to_u32(OP, "x elements", n * c * h * w)?;
        Ok(Self::from_sizes([n, c, h, w], [h, w], 1, 0, [1, 1]))
    }

    fn from_sizes(
        x: [usize; 4],
        k: [usize; 2],
        stride: usize,
        pad: usize,
        [oh, ow]: [usize; 2],
    ) -> Self {
        let [n, c, h, w] = x.map(|v| v as u32);
        let [kh, kw] = k.map(|v| v as u32);
        Self {
            n,
            c,
            h,
            w,
            kh,
            kw,
            stride: stride as u32,
            pad: pad as u32,
            oh: oh as u32,
            ow: ow as u32,
            _pad0: 0,
            _pad1: 0,
        }
    }

    /// `[n, c, h, w]`
    pub fn x_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w].map(|v| v as usize)
    }
    /// `[n, c, oh, ow]`
    pub fn y_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.oh, self.ow].map(|v| v as usize)
    }
    /// `[n, c]`, the output of global average pooling.
    pub fn global_y_shape(&self) -> [usize; 2] {
        [self.n as usize, self.c as usize]
    }
}

fn kernel(
    ctx: &GpuContext,
    p: &PoolParams,
    entry: &str,
    label: String,
    bindings: &[(u32, &wgpu::Buffer)],
    elements: usize,
) -> Result<Kernel> {
    ctx.kernel(
        shaders::POOL,
        entry,
        &label,
        bytemuck::bytes_of(p),
        bindings,
        elements as u32,
    )
}

/// `y` = window maxima of `x`, `argmax` = their positions (`iy * w + ix` in the plane).
pub fn max_forward(
    ctx: &GpuContext,
    p: &PoolParams,
    name: &str,
    x: &GpuTensor,
    y: &GpuTensor,
    argmax: &GpuTensor,
) -> Result<Kernel> {
    expect(OP, "x", x, &p.x_shape(), DType::F32)?;
    expect(OP, "y", y, &p.y_shape(), DType::F32)?;
    expect(OP, "argmax", argmax, &p.y_shape(), DType::U32)?;
    let bindings = [(1, &x.buffer), (2, &y.buffer), (3, &argmax.buffer)];
    kernel(
        ctx,
        p,
        "maxpool_forward",
        format!("{name}.forward"),
        &bindings,
        y.numel(),
    )
}

/// `dx`: each `dy` routed to its window's argmax.
pub fn max_backward_input(
    ctx: &GpuContext,
    p: &PoolParams,
    name: &str,
    dy: &GpuTensor,
    argmax: &GpuTensor,
    dx: &GpuTensor,
) -> Result<Kernel> {
    expect(OP, "dy", dy, &p.y_shape(), DType::F32)?;
    expect(OP, "argmax", argmax, &p.y_shape(), DType::U32)?;
    expect(OP, "dx", dx, &p.x_shape(), DType::F32)?;
    let bindings = [(4, &dy.buffer), (5, &dx.buffer), (6, &argmax.buffer)];
    let label = format!("{name}.backward_input");
    // Windows that do not overlap (the built-in nets pool 2x2 and 3x3 with stride 2 or 3):
    // one invocation per window writes its block of dx.
    if p.stride >= p.kh && p.stride >= p.kw {
        return kernel(
            ctx,
            p,
            "maxpool_backward_input_blocks",
            label,
            &bindings,
            dy.numel(),
        );
    }
    kernel(
        ctx,
        p,
        "maxpool_backward_input",
        label,
        &bindings,
        dx.numel(),
    )
}

/// `y` = window means of `x` over in-bounds positions.
pub fn avg_forward(
    ctx: &GpuContext,
    p: &PoolParams,
    name: &str,
    x: &GpuTensor,
    y: &GpuTensor,
) -> Result<Kernel> {
    expect(OP, "x", x, &p.x_shape(), DType::F32)?;
    expect(OP, "y", y, &p.y_shape(), DType::F32)?;
    let bindings = [(1, &x.buffer), (2, &y.buffer)];
    kernel(
        ctx,
        p,
        "avgpool_forward",
        format!("{name}.forward"),
        &bindings,
        y.numel(),
    )
}

/// `dx`: each `dy` spread evenly over its window's in-bounds positions.
pub fn avg_backward_input(
    ctx: &GpuContext,
    p: &PoolParams,
    name: &str,
    dy: &GpuTensor,
    dx: &GpuTensor,
) -> Result<Kernel> {
    expect(OP, "dy", dy, &p.y_shape(), DType::F32)?;
    expect(OP, "dx", dx, &p.x_shape(), DType::F32)?;
    let bindings = [(4, &dy.buffer), (5, &dx.buffer)];
    kernel(
        ctx,
        p,
        "avgpool_backward_input",
        format!("{name}.backward_input"),
        &bindings,
        dx.numel(),
    )
}

/// `y[n, c]` = mean of each plane; `p` from [`PoolParams::global`].
pub fn global_avg_forward(
    ctx: &GpuContext,
    p: &PoolParams,
    name: &str,
    x: &GpuTensor,
    y: &GpuTensor,
) -> Result<Kernel> {
    expect(OP, "x", x, &p.x_shape(), DType::F32)?;
    expect(OP, "y", y, &p.global_y_shape(), DType::F32)?;
    let bindings = [(1, &x.buffer), (2, &y.buffer)];
    kernel(
        ctx,
        p,
        "global_avgpool_forward",
        format!("{name}.forward"),
        &bindings,
        y.numel(),
    )
}

/// `dx[n, c, :, :] = dy[n, c] / (h * w)`.
pub fn global_avg_backward_input(
    ctx: &GpuContext,
    p: &PoolParams,
    name: &str,
    dy: &GpuTensor,
    dx: &GpuTensor,
) -> Result<Kernel> {
    expect(OP, "dy", dy, &p.global_y_shape(), DType::F32)?;
    expect(OP, "dx", dx, &p.x_shape(), DType::F32)?;
    let bindings = [(4, &dy.buffer), (5, &dx.buffer)];
    kernel(
        ctx,
        p,
        "global_avgpool_backward_input",
        format!("{name}.backward_input"),
        &bindings,
        dx.numel(),
    )
}
