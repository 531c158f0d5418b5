//! CPU twin of shaders/loss.wgsl.

use crate::cpu::check_len;
use crate::error::{shape_err, Result};
use crate::ops::loss::LossParams;

const OP: &str = "softmax_xent (cpu)";

/// What the forward pass gives: probabilities `[n, k]`, weighted per-sample losses `[n]`, the
/// weighted mean loss and the sum of sample weights.
#[derive(Debug, Clone)]
pub struct LossForward {
    pub prob: Vec<f32>,
    pub sample_loss: Vec<f32>,
    pub loss: f32,
    pub weight_sum: f32,
}

fn target_of(p: &LossParams, label: usize, j: usize) -> f64 {
    let one_hot = if j == label { 1.0 } else { 0.0 };
    (1.0 - p.smoothing as f64) * one_hot + p.smoothing as f64 / p.k as f64
}

fn check(p: &LossParams, logits: &[f32], labels: &[u32], class_weight: &[f32]) -> Result<()> {
    check_len(OP, "logits", logits, (p.n * p.k) as usize)?;
    check_len(OP, "class_weight", class_weight, p.k as usize)?;
    if labels.len() != p.n as usize {
        return Err(shape_err(
            OP,
            format!("{} labels for a batch of {}", labels.len(), p.n),
        ));
    }
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l >= p.k) {
        return Err(shape_err(
            OP,
            format!("label {l} of sample {i} is not below {} classes", p.k),
        ));
    }
    Ok(())
}

/// Softmax and weighted cross-entropy, in f64.
pub fn softmax_xent_forward(
    p: &LossParams,
    logits: &[f32],
    labels: &[u32],
    class_weight: &[f32],
) -> Result<LossForward> {
    check(p, logits, labels, class_weight)?;
    let k = p.k as usize;
    let mut prob = Vec::with_capacity(logits.len());
    let mut sample_loss = Vec::with_capacity(labels.len());
    let (mut total, mut weight_sum) = (0.0f64, 0.0f64);
    for (i, z) in logits.chunks(k).enumerate() {
        let label = labels[i] as usize;
        let zmax = z.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let log_denom = z.iter().map(|&v| (v as f64 - zmax).exp()).sum::<f64>().ln();
        let mut ce = 0.0;
        for (j, &v) in z.iter().enumerate() {
            let log_p = v as f64 - zmax - log_denom;
            prob.push(log_p.exp() as f32);
            ce -= target_of(p, label, j) * log_p;
        }
        let s = class_weight[label] as f64;
        sample_loss.push((s * ce) as f32);
        total += s * ce;
        weight_sum += s;
    }
    Ok(LossForward {
        prob,
        sample_loss,
        loss: (total / weight_sum) as f32,
        weight_sum: weight_sum as f32,
    })
}

/// `dlogits[i, j] = s_i / sum s * (prob[i, j] - target[i, j])`, from the logits directly.
pub fn softmax_xent_backward_input(
    p: &LossParams,
    logits: &[f32],
    labels: &[u32],
    class_weight: &[f32],
) -> Result<Vec<f32>> {
    let fwd = softmax_xent_forward(p, logits, labels, class_weight)?;
    let k = p.k as usize;
    Ok(fwd
        .prob
        .iter()
        .enumerate()
        .map(|(idx, &pr)| {
            let (i, j) = (idx / k, idx % k);
            let label = labels[i] as usize;
            let s = class_weight[label] as f64 / fwd.weight_sum as f64;
            (s * (pr as f64 - target_of(p, label, j))) as f32
        })
        .collect())
}
