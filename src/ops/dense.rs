//! Host side of shaders/dense.wgsl: the fully connected layer and its three products.

use bytemuck::{Pod, Zeroable};

use crate::error::{shape_err, Result};
use crate::gpu::{shaders, DType, GpuContext, GpuTensor, Kernel};
use crate::ops::{expect, nonzero, to_u32};

const OP: &str = "dense";

/// Mirrors `DenseParams` in dense.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct DenseParams {
    pub n: u32,
    pub d_in: u32,
    pub d_out: u32,
    pub _pad0: u32,
}

impl DenseParams {
    /// A layer from `d_in` to `d_out` features over a batch of `n`.
    pub fn new(n: usize, d_in: usize, d_out: usize) -> Result<Self> {
        nonzero(OP, &[("n", n), ("d_in", d_in), ("d_out", d_out)])?;
        to_u32(OP, "x elements", n * d_in)?;
        to_u32(OP, "weight elements", d_out * d_in)?;
        to_u32(OP, "y elements", n * d_out)?;
        Ok(Self {
            n: n as u32,
            d_in: d_in as u32,
            d_out: d_out as u32,
            _pad0: 0,
        })
    }
    /// `[d_out, d_in]`
    pub fn weight_shape(&self) -> [usize; 2] {
        [self.d_out as usize, self.d_in as usize]
    }
    /// `[d_out]`
    pub fn bias_shape(&self) -> [usize; 1] {
        [self.d_out as usize]
    }
    /// `[n, d_out]`
    pub fn y_shape(&self) -> [usize; 2] {
        [self.n as usize, self.d_out as usize]
    }
}

/// x may be `[n, d_in]` or any `[n, ...]` whose trailing sizes multiply to d_in (a feature map
/// read as flattened rows).
fn expect_rows(what: &str, t: &GpuTensor, n: u32, d: u32) -> Result<()> {
    let rows_ok = t.shape.first() == Some(&(n as usize));
    if !rows_ok || t.numel() != (n * d) as usize {
        return Err(shape_err(
            OP,
            format!(
                "{what} ({}) has shape {:?}, expected [{n}, {d}] or \
            [{n}, ...] with {d} features per row",
                t.label, t.shape
            ),
        ));
    }
    expect(OP, what, t, &t.shape.clone(), DType::F32)
}

/// `y = x . weight^T + bias`.
pub fn forward(
    ctx: &GpuContext,
    p: &DenseParams,
    name: &str,
    x: &GpuTensor,
    weight: &GpuTensor,
    bias: &GpuTensor,
    y: &GpuTensor,
) -> Result<Kernel> {
    expect_rows("x", x, p.n, p.d_in)?;
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
        shaders::DENSE,
        "dense_forward",
        &format!("{name}.forward"),
        bytemuck::bytes_of(p),
        &bindings,
        p.n * p.d_out,
    )
}

/// `dx = dy . weight`.
pub fn backward_input(
    ctx: &GpuContext,
    p: &DenseParams,
    name: &str,
    dy: &GpuTensor,
    weight: &GpuTensor,
    dx: &GpuTensor,
) -> Result<Kernel> {
    expect(OP, "dy", dy, &p.y_shape(), DType::F32)?;
    expect(OP, "weight", weight, &p.weight_shape(), DType::F32)?;
    expect_rows("dx", dx, p.n, p.d_in)?;
    let bindings = [(2, &weight.buffer), (5, &dy.buffer), (6, &dx.buffer)];
    ctx.kernel(
        shaders::DENSE,
        "dense_backward_input",
        &format!("{name}.backward_input"),
        bytemuck::bytes_of(p),
        &bindings,
        p.n * p.d_in,
    )
}

/// `dweight = dy^T . x`.
pub fn backward_weight(
    ctx: &GpuContext,
    p: &DenseParams,
    name: &str,
    dy: &GpuTensor,
    x: &GpuTensor,
    dweight: &GpuTensor,
) -> Result<Kernel> {
    expect(OP, "dy", dy, &p.y_shape(), DType::F32)?;
    expect_rows("x", x, p.n, p.d_in)?;
    expect(OP, "dweight", dweight, &p.weight_shape(), DType::F32)?;
    let bindings = [(1, &x.buffer), (5, &dy.buffer), (7, &dweight.buffer)];
    ctx.kernel(
        shaders::DENSE,
        "dense_backward_weight",
        &format!("{name}.backward_weight"),
        bytemuck::bytes_of(p),
        &bindings,
        p.d_out * p.d_in,
    )
}

/// `dbias = sum over the batch of dy`.
pub fn backward_bias(
    ctx: &GpuContext,
    p: &DenseParams,
    name: &str,
    dy: &GpuTensor,
    dbias: &GpuTensor,
) -> Result<Kernel> {
    expect(OP, "dy", dy, &p.y_shape(), DType::F32)?;
    expect(OP, "dbias", dbias, &p.bias_shape(), DType::F32)?;
    ctx.kernel(
        shaders::DENSE,
        "dense_backward_bias",
        &format!("{name}.backward_bias"),
        bytemuck::bytes_of(p),
        &[(5, &dy.buffer), (8, &dbias.buffer)],
        p.d_out,
    )
}
