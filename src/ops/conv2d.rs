//! Host side of shaders/conv2d.wgsl: 2-D convolution with bias, square stride, zero padding.
//!
//! The forward pass and the gradient to the input run as tiled implicit GEMMs (the `_tiled`
//! entry points): one workgroup per tile of `4 * CO_GROUPS` channels by [`WORKGROUP_SIZE`]
//! positions, `CO_GROUPS` chosen here from the layer's channel count. The direct kernels
//! (one invocation per output element) stay as the plain statement of each pass and as the
//! fallback for kernels too large to stage in workgroup memory.

use bytemuck::{Pod, Zeroable};

use crate::error::{shape_err, Result};
use crate::gpu::shaders::{self, WORKGROUP_SIZE};
use crate::gpu::{DType, GpuContext, GpuTensor, Kernel};
use crate::ops::{expect, nonzero, parts_for, reduce, to_u32, Epilogue, REDUCE_CHUNK};

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

/// vec4 slots of staged weights in the tiled kernels (`W_SLOTS` in conv2d.wgsl).
const W_SLOTS: u32 = 512;
/// Positions per invocation in the tiled kernels (`TN` in conv2d.wgsl).
const TN: u32 = 8;
/// Largest window of the `_rows` kernels (`WINDOW_MAX` in conv2d.wgsl).
const WINDOW_MAX: u32 = 32;
/// Most taps, and row segments per invocation, of the first layer's weight-gradient kernel
/// (`TAPS_MAX`, `SEG_RUN` in conv2d.wgsl).
const TAPS_MAX: u32 = 16;
const SEG_RUN: u32 = 16;

/// Which kernels compute the forward pass and the input and weight gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// One invocation per output element: the plain statement of each pass.
    Direct,
    /// Tiled implicit GEMMs; falls back to the direct kernel for kernels too large to stage.
    Tiled,
}

impl Variant {
    /// `FER_CONV_KERNELS=direct` selects the direct kernels (to compare them with the tiled
    /// ones, `fer bench --compare`); anything else, or nothing, the tiled ones.
    pub fn from_env() -> Self {
        match std::env::var("FER_CONV_KERNELS").as_deref() {
            Ok("direct") => Variant::Direct,
            _ => Variant::Tiled,
        }
    }
}

/// The tiling of a tiled kernel whose tile splits `channels` and covers `positions`: the
/// `CO_GROUPS` constant (vec4 groups of channels per invocation: as few as cover the
/// channels, at most 4) and the number of invocations to dispatch (one workgroup per tile).
/// None when one channel's taps do not fit the staged weights or the adapter offers less
/// workgroup memory than the kernels use (WebGPU guarantees 16 KiB; they use 12): use the
/// direct kernel.
fn tiling(
    ctx: &GpuContext,
    variant: Variant,
    p: &Conv2dParams,
    channels: u32,
    positions: u32,
) -> Option<(u32, u32)> {
    // Staged weights and, in the weight gradient, staged position offsets (M_SLOTS vec4s).
    const WORKGROUP_BYTES: u32 = (W_SLOTS + 256) * 16;
    if variant == Variant::Direct || ctx.limits.max_compute_workgroup_storage_size < WORKGROUP_BYTES
    {
        return None;
    }
    // 1, 2 or 4 groups (the shader's accumulators come in those counts).
    let groups = channels.div_ceil(4).clamp(1, 4).next_power_of_two();
    if groups * p.kh * p.kw > W_SLOTS {
        return None;
    }
    let tiles = channels.div_ceil(4 * groups) * positions.div_ceil(WORKGROUP_SIZE * TN);
    Some((groups, tiles.checked_mul(WORKGROUP_SIZE)?))
}

/// `y = conv(x, weight) + bias`, with the [`Variant::from_env`] kernels.
pub fn forward(
    ctx: &GpuContext,
    p: &Conv2dParams,
    name: &str,
    x: &GpuTensor,
    weight: &GpuTensor,
    bias: &GpuTensor,
    y: &GpuTensor,
) -> Result<Kernel> {
    forward_with(
        ctx,
        p,
        Variant::from_env(),
        Epilogue::None,
        name,
        x,
        weight,
        bias,
        y,
    )
}

/// [`forward`] with the given kernels, applying `epilogue` (a fused ReLU) before the store.
#[allow(clippy::too_many_arguments)]
pub fn forward_with(
    ctx: &GpuContext,
    p: &Conv2dParams,
    variant: Variant,
    epilogue: Epilogue,
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
    let label = format!("{name}.forward");
    let params = bytemuck::bytes_of(p);
    // Stride 1: row segments that load each x value once for all the taps that read it.
    let segments = p.n * p.oh * p.ow.div_ceil(TN);
    if p.stride == 1 && TN + p.kw - 1 <= WINDOW_MAX {
        if let Some((groups, invocations)) = tiling(ctx, variant, p, p.c_out, segments * TN) {
            return ctx.kernel_with(
                shaders::CONV2D,
                "conv2d_forward_rows",
                &[
                    ("CO_GROUPS", f64::from(groups)),
                    ("KW", f64::from(p.kw)),
                    epilogue.constant(),
                ],
                &label,
                params,
                &bindings,
                invocations,
            );
        }
    }
    match tiling(ctx, variant, p, p.c_out, p.n * p.oh * p.ow) {
        Some((groups, invocations)) => ctx.kernel_with(
            shaders::CONV2D,
            "conv2d_forward_tiled",
            &[("CO_GROUPS", f64::from(groups)), epilogue.constant()],
            &label,
            params,
            &bindings,
            invocations,
        ),
        None => ctx.kernel_with(
            shaders::CONV2D,
            "conv2d_forward",
            &[epilogue.constant()],
            &label,
            params,
            &bindings,
            y.numel() as u32,
        ),
    }
}

/// `dx` from `dy` and the weights, with the [`Variant::from_env`] kernels.
pub fn backward_input(
    ctx: &GpuContext,
    p: &Conv2dParams,
    name: &str,
    dy: &GpuTensor,
    weight: &GpuTensor,
    dx: &GpuTensor,
) -> Result<Kernel> {
    backward_input_variant(ctx, p, Variant::from_env(), name, dy, weight, dx)
}

/// [`backward_input`] with the given kernels.
pub fn backward_input_variant(
    ctx: &GpuContext,
    p: &Conv2dParams,
    variant: Variant,
    name: &str,
    dy: &GpuTensor,
    weight: &GpuTensor,
    dx: &GpuTensor,
) -> Result<Kernel> {
    expect(OP, "dy", dy, &p.y_shape(), DType::F32)?;
    expect(OP, "weight", weight, &p.weight_shape(), DType::F32)?;
    expect(OP, "dx", dx, &p.x_shape(), DType::F32)?;
    let bindings = [(2, &weight.buffer), (5, &dy.buffer), (6, &dx.buffer)];
    let label = format!("{name}.backward_input");
    let params = bytemuck::bytes_of(p);
    // Stride 1: row segments that load each dy value once for all the taps that read it.
    let segments = p.n * p.h * p.w.div_ceil(TN);
    if p.stride == 1 && TN + p.kw - 1 <= WINDOW_MAX {
        if let Some((groups, invocations)) = tiling(ctx, variant, p, p.c_in, segments * TN) {
            return ctx.kernel_with(
                shaders::CONV2D,
                "conv2d_backward_input_rows",
                &[("CO_GROUPS", f64::from(groups)), ("KW", f64::from(p.kw))],
                &label,
                params,
                &bindings,
                invocations,
            );
        }
    }
    match tiling(ctx, variant, p, p.c_in, p.n * p.h * p.w) {
        Some((groups, invocations)) => ctx.kernel_with(
            shaders::CONV2D,
            "conv2d_backward_input_tiled",
            &[("CO_GROUPS", f64::from(groups))],
            &label,
            params,
            &bindings,
            invocations,
        ),
        None => ctx.kernel(
            shaders::CONV2D,
            "conv2d_backward_input",
            &label,
            params,
            &bindings,
            dx.numel() as u32,
        ),
    }
}

/// `dweight` from `dy` and `x`: per-chunk partials, then ordered row sums (two kernels),
/// with the [`Variant::from_env`] kernels.
pub fn backward_weight(
    ctx: &GpuContext,
    p: &Conv2dParams,
    name: &str,
    dy: &GpuTensor,
    x: &GpuTensor,
    dweight: &GpuTensor,
) -> Result<Vec<Kernel>> {
    backward_weight_variant(ctx, p, Variant::from_env(), name, dy, x, dweight)
}

/// [`backward_weight`] with the given kernels.
pub fn backward_weight_variant(
    ctx: &GpuContext,
    p: &Conv2dParams,
    variant: Variant,
    name: &str,
    dy: &GpuTensor,
    x: &GpuTensor,
    dweight: &GpuTensor,
) -> Result<Vec<Kernel>> {
    expect(OP, "dy", dy, &p.y_shape(), DType::F32)?;
    expect(OP, "x", x, &p.x_shape(), DType::F32)?;
    expect(OP, "dweight", dweight, &p.weight_shape(), DType::F32)?;
    let inputs = [(1, &x.buffer), (5, &dy.buffer)];
    let taps = p.kh * p.kw;
    let Some((groups, _)) = tiling(ctx, variant, p, p.c_out, 1) else {
        let kernel = Partials::direct(p, "conv2d_backward_weight_partial", dweight);
        return partials_then_sum(ctx, p, name, "weight", kernel, &inputs, dweight);
    };
    // The first layer (one input channel, stride 1): row segments with every tap at once.
    if p.c_in == 1 && p.stride == 1 && taps <= TAPS_MAX && TN + p.kw - 1 <= WINDOW_MAX {
        let segments = p.n * p.oh * p.ow.div_ceil(TN);
        let runs = segments.div_ceil(SEG_RUN);
        let blocks = p.c_out.div_ceil(4 * groups) as usize;
        let invocations = to_u32(OP, "invocations", runs as usize * blocks)?;
        let constants = [
            ("CO_GROUPS", f64::from(groups)),
            ("KH", f64::from(p.kh)),
            ("KW", f64::from(p.kw)),
        ];
        let kernel = Partials {
            entry: "conv2d_backward_weight_partial_rows",
            constants: &constants,
            cols: runs,
            invocations,
        };
        return partials_then_sum(ctx, p, name, "weight", kernel, &inputs, dweight);
    }
    // Invocations per block of TN taps: enough to fill a workgroup when there are few.
    let k_all = p.c_in * taps;
    let subs = (WORKGROUP_SIZE / k_all.div_ceil(TN)).max(1);
    let blocks_per_tile = WORKGROUP_SIZE / subs;
    let tiles = p.c_out.div_ceil(4 * groups) * k_all.div_ceil(TN * blocks_per_tile) * p.parts;
    let invocations = to_u32(OP, "invocations", tiles as usize * WORKGROUP_SIZE as usize)?;
    let constants = [("CO_GROUPS", f64::from(groups)), ("SUBS", f64::from(subs))];
    let kernel = Partials {
        entry: "conv2d_backward_weight_partial_tiled",
        constants: &constants,
        cols: p.parts * subs,
        invocations,
    };
    partials_then_sum(ctx, p, name, "weight", kernel, &inputs, dweight)
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
    let kernel = Partials::direct(p, "conv2d_backward_bias_partial", dbias);
    partials_then_sum(ctx, p, name, "bias", kernel, &[(5, &dy.buffer)], dbias)
}

/// The kernel that writes a parameter gradient's partial sums: its entry point and override
/// constants, the partials per gradient element (`cols`) and the invocations to dispatch.
struct Partials<'a> {
    entry: &'a str,
    constants: &'a [(&'a str, f64)],
    cols: u32,
    invocations: u32,
}

impl<'a> Partials<'a> {
    /// A direct partial kernel: one invocation per (element of `out`, chunk of positions).
    fn direct(p: &Conv2dParams, entry: &'a str, out: &GpuTensor) -> Self {
        Self {
            entry,
            constants: &[],
            cols: p.parts,
            invocations: out.numel() as u32 * p.parts,
        }
    }
}

/// The two kernels of a parameter gradient: `kernel` writes `[out elements, kernel.cols]`
/// partial sums (binding 7) into a scratch buffer, then `reduce_rows` sums each row in order
/// into `out`.
fn partials_then_sum(
    ctx: &GpuContext,
    p: &Conv2dParams,
    name: &str,
    what: &str,
    kernel: Partials,
    inputs: &[(u32, &wgpu::Buffer)],
    out: &GpuTensor,
) -> Result<Vec<Kernel>> {
    let rows = out.numel();
    let len = to_u32(OP, "partial sums", rows * kernel.cols as usize)?;
    let partial = reduce::scratch(ctx, &format!("{name}.d{what}.partial"), len as usize)?;
    let mut bindings = inputs.to_vec();
    bindings.push((7, &partial.buffer));
    let partials = ctx.kernel_with(
        shaders::CONV2D,
        kernel.entry,
        kernel.constants,
        &format!("{name}.backward_{what}"),
        bytemuck::bytes_of(p),
        &bindings,
        kernel.invocations,
    )?;
    let sum = reduce::rows(
        ctx,
        &format!("{name}.backward_{what}.reduce"),
        &partial.buffer,
        (rows as u32, kernel.cols),
        1.0,
        &out.buffer,
    )?;
    Ok(vec![partials, sum])
}
