//! Host side of shaders/conv2d.wgsl: 2-D convolution with bias, square stride, zero padding.

use bytemuck::{Pod, Zeroable};

use crate::error::{shape_err, Result};
use crate::gpu::{shaders, DType, GpuContext, GpuTensor, Kernel};
use crate::ops::{expect, nonzero, parts_for, reduce, to_u32, REDUCE_CHUNK};

const OP: &str = "conv2d";

/// Mirrors `Conv2dParams` in conv2d.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct Conv2dParams {
    pub n: u32,
    pub c_in: u32,
    pub h: u32,
    pub w: u32,
    pub c_out: u32,
    pub kh: u32,
    pub kw: u32,
    pub stride: u32,
    pub pad: u32,
    pub oh: u32,
    pub ow: u32,
    pub chunk: u32,
    pub parts: u32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

impl Conv2dParams {
    /// Checks a convolution of an `[n, c_in, h, w]` input with `c_out` filters of
    /// `[kh, kw]` and computes the output size `oh = (h + 2*pad - kh) / stride + 1`.
    pub fn new(
        [n, c_in, h, w]: [usize; 4],
        c_out: usize,
        [kh, kw]: [usize; 2],
        stride: usize,
        pad: usize,
    ) -> Result<Self> {
        nonzero(
            OP,
            &[
                ("n", n),
                ("c_in", c_in),
                ("h", h),
                ("w", w),
                ("c_out", c_out),
            ],
        )?;
        nonzero(OP, &[("kh", kh), ("kw", kw), ("stride", stride)])?;
        if kh > h + 2 * pad || kw > w + 2 * pad {
            return Err(shape_err(
                OP,
                format!(
                    "kernel {kh}x{kw} is larger than the padded input {}x{} ({h}x{w} with pad \
                     {pad}); use a smaller kernel or more padding",
                    h + 2 * pad,
                    w + 2 * pad
                ),
            ));
        }
        let oh = (h + 2 * pad - kh) / stride + 1;
        let ow = (w + 2 * pad - kw) / stride + 1;
        let parts = parts_for(n * oh * ow);
        let u = |what, v| to_u32(OP, what, v);
        // Every tensor's element count must fit the shaders' u32 indices.
        u("x elements", n * c_in * h * w)?;
        u("y elements", n * c_out * oh * ow)?;
        u("partials", c_out * c_in * kh * kw * parts)?;
        Ok(Self {
            n: u("n", n)?,
            c_in: u("c_in", c_in)?,
            h: u("h", h)?,
            w: u("w", w)?,
            c_out: u("c_out", c_out)?,
            kh: u("kh", kh)?,
            kw: u("kw", kw)?,
            stride: u("stride", stride)?,
            pad: u("pad", pad)?,
            oh: oh as u32,
            ow: ow as u32,
            chunk: REDUCE_CHUNK as u32,
            parts: parts as u32,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        })
    }

    /// `[n, c_in, h, w]`
    pub fn x_shape(&self) -> [usize; 4] {
        [self.n, self.c_in, self.h, self.w].map(|v| v as usize)
    }
    /// `[c_out, c_in, kh, kw]`
    pub fn weight_shape(&self) -> [usize; 4] {
        [self.c_out, self.c_in, self.kh, self.kw].map(|v| v as usize)
    }
    /// `[c_out]`
    pub fn bias_shape(&self) -> [usize; 1] {
        [self.c_out as usize]
    }
    /// `[n, c_out, oh, ow]`
    pub fn y_shape(&self) -> [usize; 4] {
        [self.n, self.c_out, self.oh, self.ow].map(|v| v as usize)
    }
    /// Multiply-adds of the forward pass (each backward pass does as many).
    pub fn macs(&self) -> u64 {
        self.y_shape().iter().product::<usize>() as u64 * u64::from(self.c_in * self.kh * self.kw)
    }
}

/// `y = conv(x, weight) + bias`.
pub fn forward(
    ctx: &GpuContext,
    p: &Conv2dParams,
    name: &str,
    x: &GpuTensor,
    weight: &GpuTensor,
    bias: &GpuTensor,
    y: &GpuTensor,
) -> Result<Kernel> {
    expect(OP, "x", x, &p.x_shape(), DType::F32)?;
    expect(OP, "weight", weight, &p.weight_shape(), DType::F32)?;
    expect(OP, "bias", bias, &p.bias_shape(), DType::F32)?;
    expect(OP, "y", y, &p.y_shape(), DType::F32)?;
    let bindings = [
        (1, &x.buffer),
        (2, &weight.buffer),
        (3, &bias.buffer),
        (4, &y.buffer),
    ];
    ctx.kernel(
        shaders::CONV2D,
        "conv2d_forward",
        &format!("{name}.forward"),
        bytemuck::bytes_of(p),
        &bindings,
        y.numel() as u32,
    )
}

/// `dx` from `dy` and the weights.
pub fn backward_input(
    ctx: &GpuContext,
    p: &Conv2dParams,
    name: &str,
    dy: &GpuTensor,
    weight: &GpuTensor,
    dx: &GpuTensor,
) -> Result<Kernel> {
    expect(OP, "dy", dy, &p.y_shape(), DType::F32)?;
    expect(OP, "weight", weight, &p.weight_shape(), DType::F32)?;
    expect(OP, "dx", dx, &p.x_shape(), DType::F32)?;
    let bindings = [(2, &weight.buffer), (5, &dy.buffer), (6, &dx.buffer)];
    ctx.kernel(
        shaders::CONV2D,
        "conv2d_backward_input",
        &format!("{name}.backward_input"),
        bytemuck::bytes_of(p),
        &bindings,
        dx.numel() as u32,
    )
}

/// `dweight` from `dy` and `x`: per-chunk partials, then ordered row sums (two kernels).
pub fn backward_weight(
    ctx: &GpuContext,
    p: &Conv2dParams,
    name: &str,
    dy: &GpuTensor,
    x: &GpuTensor,
    dweight: &GpuTensor,
) -> Result<Vec<Kernel>> {
    expect(OP, "dy", dy, &p.y_shape(), DType::F32)?;
    expect(OP, "x", x, &p.x_shape(), DType::F32)?;
    expect(OP, "dweight", dweight, &p.weight_shape(), DType::F32)?;
    partials_then_sum(
        ctx,
        p,
        name,
        "weight",
        &[(1, &x.buffer), (5, &dy.buffer)],
        dweight,
    )
}

/// `dbias` from `dy`: per-chunk partials, then ordered row sums (two kernels).
pub fn backward_bias(
    ctx: &GpuContext,
    p: &Conv2dParams,
    name: &str,
    dy: &GpuTensor,
    dbias: &GpuTensor,
) -> Result<Vec<Kernel>> {
    expect(OP, "dy", dy, &p.y_shape(), DType::F32)?;
    expect(OP, "dbias", dbias, &p.bias_shape(), DType::F32)?;
    partials_then_sum(ctx, p, name, "bias", &[(5, &dy.buffer)], dbias)
}

/// The two kernels of a parameter gradient: `conv2d_backward_<what>_partial` writes
/// `[out elements, parts]` partial sums into a scratch buffer, then `reduce_rows` sums each
/// row in order into `out`.
fn partials_then_sum(
    ctx: &GpuContext,
    p: &Conv2dParams,
    name: &str,
    what: &str,
    inputs: &[(u32, &wgpu::Buffer)],
    out: &GpuTensor,
) -> Result<Vec<Kernel>> {
    let rows = out.numel();
    let partial = reduce::scratch(
        ctx,
        &format!("{name}.d{what}.partial"),
        rows * p.parts as usize,
    )?;
    let mut bindings = inputs.to_vec();
    bindings.push((7, &partial.buffer));
    let partials = ctx.kernel(
        shaders::CONV2D,
        &format!("conv2d_backward_{what}_partial"),
        &format!("{name}.backward_{what}"),
        bytemuck::bytes_of(p),
        &bindings,
        partial.numel() as u32,
    )?;
    let sum = reduce::rows(
        ctx,
        &format!("{name}.backward_{what}.reduce"),
        &partial.buffer,
        (rows as u32, p.parts),
        1.0,
        &out.buffer,
    )?;
    Ok(vec![partials, sum])
}
