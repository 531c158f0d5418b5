// Softmax cross-entropy fused into one loss, with optional per-class weights and label
// smoothing. For sample i with logits z[i, :] over k classes and label y_i:
//   prob[i, j]   = exp(z[i, j] - max_j z) / sum_j exp(z[i, j] - max_j z)
//   target[i, j] = (1 - smoothing) * (j == y_i) + smoothing / k
//   ce_i         = -sum_j target[i, j] * log prob[i, j]
//   s_i          = class_weight[y_i]            (all ones for an unweighted loss)
//   loss         = sum_i s_i * ce_i / sum_i s_i (a weighted mean over the batch)
//   dz[i, j]     = s_i / sum_i s_i * (prob[i, j] - target[i, j])
// A label >= k gives a NaN loss rather than a silent read past the class weights; the host
// checks labels before they reach the GPU. Host side: src/ops/loss.rs; CPU twin: src/cpu/loss.rs.

struct LossParams {
    n: u32,
    k: u32,
    smoothing: f32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: LossParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;           // [n, k]
@group(0) @binding(2) var<storage, read> labels: array<u32>;           // [n]
@group(0) @binding(3) var<storage, read> class_weight: array<f32>;     // [k]
@group(0) @binding(4) var<storage, read_write> prob: array<f32>;       // [n, k]
@group(0) @binding(5) var<storage, read_write> sample_loss: array<f32>; // [n], s_i * ce_i
@group(0) @binding(6) var<storage, read_write> loss: array<f32>;       // [2]: loss, sum_i s_i
@group(0) @binding(7) var<storage, read> loss_in: array<f32>;          // [2], as written above
@group(0) @binding(8) var<storage, read> prob_in: array<f32>;          // [n, k]
@group(0) @binding(9) var<storage, read_write> dlogits: array<f32>;    // [n, k]

fn target_of(label: u32, j: u32) -> f32 {
    return (1.0 - p.smoothing) * select(0.0, 1.0, j == label) + p.smoothing / f32(p.k);
}

// One invocation per sample: softmax (max subtracted only for numerical stability) and the
// weighted cross-entropy. Overwrites prob[i, :] and sample_loss[i].
@compute @workgroup_size(WG)
fn softmax_xent_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let label = labels[i];
    if (label >= p.k) {
        sample_loss[i] = bitcast<f32>(0x7fc00000u);
        return;
    }
    var zmax = logits[i * p.k];
    for (var j = 1u; j < p.k; j++) {
        zmax = max(zmax, logits[i * p.k + j]);
    }
    var denom = 0.0;
    for (var j = 0u; j < p.k; j++) {
        denom += exp(logits[i * p.k + j] - zmax);
    }
    let log_denom = log(denom);
    var ce = 0.0;
    for (var j = 0u; j < p.k; j++) {
        let shifted = logits[i * p.k + j] - zmax;
        prob[i * p.k + j] = exp(shifted) / denom;
        ce -= target_of(label, j) * (shifted - log_denom);
    }
    sample_loss[i] = class_weight[label] * ce;
}

// A single invocation: loss[0] = sum_i sample_loss[i] / sum_i s_i, loss[1] = sum_i s_i, both
// summed in ascending i. Overwrites loss.
@compute @workgroup_size(1)
fn softmax_xent_reduce() {
    var total = 0.0;
    var weight_sum = 0.0;
    for (var i = 0u; i < p.n; i++) {
        total += sample_loss[i];
        weight_sum += class_weight[min(labels[i], p.k - 1u)];
    }
    loss[0] = total / weight_sum;
    loss[1] = weight_sum;
}

// One invocation per (i, j): the gradient of the mean loss. Overwrites dlogits.
@compute @workgroup_size(WG)
fn softmax_xent_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                               @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_id(gid, nwg);
    if (idx >= p.n * p.k) {
        return;
    }
    let j = idx % p.k;
    let i = idx / p.k;
    let label = min(labels[i], p.k - 1u);
    let s = class_weight[label] / loss_in[1];
    dlogits[idx] = s * (prob_in[idx] - target_of(label, j));
}
