//! Host side of shaders/loss.wgsl: softmax cross-entropy with class weights and smoothing.

use bytemuck::{Pod, Zeroable};

use crate::error::{shape_err, Result};
use crate::gpu::{shaders, DType, GpuContext, GpuTensor, Kernel};
use crate::ops::{expect, nonzero, to_u32};

const OP: &str = "softmax_xent";

/// Mirrors `LossParams` in loss.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct LossParams {
    pub n: u32,
    pub k: u32,
    pub smoothing: f32,
    pub _pad0: u32,
}

impl LossParams {
    /// The loss of `n` samples over `k` classes with label smoothing in [0, 1).
    pub fn new(n: usize, k: usize, smoothing: f32) -> Result<Self> {
        nonzero(OP, &[("n", n), ("k", k)])?;
        if !(0.0..1.0).contains(&smoothing) {
            return Err(shape_err(
                OP,
                format!("smoothing must be in [0, 1), got {smoothing}"),
            ));
        }
        to_u32(OP, "logits elements", n * k)?;
        Ok(Self {
            n: n as u32,
            k: k as u32,
            smoothing,
            _pad0: 0,
        })
    }
    /// `[n, k]`
    pub fn logits_shape(&self) -> [usize; 2] {
        [self.n as usize, self.k as usize]
    }
}

/// The loss op's inputs: logits `[n, k]`, labels `[n]` (u32), class weights `[k]` (all
/// ones for an unweighted loss).
pub struct LossInputs<'a> {
    pub logits: &'a GpuTensor,
    pub labels: &'a GpuTensor,
    pub class_weight: &'a GpuTensor,
}

/// What the forward pass leaves: probabilities `[n, k]`, weighted per-sample losses `[n]` and
/// `loss` `[2]` = (the weighted mean loss, the sum of sample weights).
pub struct LossOutputs<'a> {
    pub prob: &'a GpuTensor,
    pub sample_loss: &'a GpuTensor,
    pub loss: &'a GpuTensor,
}

fn check_inputs(p: &LossParams, i: &LossInputs) -> Result<()> {
    expect(OP, "logits", i.logits, &p.logits_shape(), DType::F32)?;
    expect(OP, "labels", i.labels, &[p.n as usize], DType::U32)?;
    expect(
        OP,
        "class_weight",
        i.class_weight,
        &[p.k as usize],
        DType::F32,
    )
}

fn check_outputs(p: &LossParams, o: &LossOutputs) -> Result<()> {
    expect(OP, "prob", o.prob, &p.logits_shape(), DType::F32)?;
    expect(
        OP,
        "sample_loss",
        o.sample_loss,
        &[p.n as usize],
        DType::F32,
    )?;
    expect(OP, "loss", o.loss, &[2], DType::F32)
}

/// Softmax, per-sample losses and their weighted mean (two kernels).
pub fn forward(
    ctx: &GpuContext,
    p: &LossParams,
    name: &str,
    inputs: &LossInputs,
    outputs: &LossOutputs,
) -> Result<Vec<Kernel>> {
    check_inputs(p, inputs)?;
    check_outputs(p, outputs)?;
    let params = bytemuck::bytes_of(p);
    Ok(vec![
        ctx.kernel(
            shaders::LOSS,
            "softmax_xent_forward",
            &format!("{name}.forward"),
            params,
            &[
                (1, &inputs.logits.buffer),
                (2, &inputs.labels.buffer),
                (3, &inputs.class_weight.buffer),
                (4, &outputs.prob.buffer),
                (5, &outputs.sample_loss.buffer),
            ],
            p.n,
        )?,
        ctx.kernel(
            shaders::LOSS,
            "softmax_xent_reduce",
            &format!("{name}.reduce"),
            params,
            &[
                (2, &inputs.labels.buffer),
                (3, &inputs.class_weight.buffer),
                (5, &outputs.sample_loss.buffer),
                (6, &outputs.loss.buffer),
            ],
            1,
        )?,
    ])
}

/// `dlogits` of the mean loss, from the forward pass's `prob` and `loss`.
pub fn backward_input(
    ctx: &GpuContext,
    p: &LossParams,
    name: &str,
    inputs: &LossInputs,
    outputs: &LossOutputs,
    dlogits: &GpuTensor,
) -> Result<Kernel> {
    check_inputs(p, inputs)?;
    check_outputs(p, outputs)?;
    expect(OP, "dlogits", dlogits, &p.logits_shape(), DType::F32)?;
    ctx.kernel(
        shaders::LOSS,
        "softmax_xent_backward_input",
        &format!("{name}.backward_input"),
        bytemuck::bytes_of(p),
        &[
            (2, &inputs.labels.buffer),
            (3, &inputs.class_weight.buffer),
            (7, &outputs.loss.buffer),
            (8, &outputs.prob.buffer),
            (9, &dlogits.buffer),
        ],
        p.n * p.k,
    )
}
