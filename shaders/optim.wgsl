// Optimizer updates and gradient clipping by global norm. One invocation per parameter
// element; every update overwrites the weight and its state in place. Values that change every
// step (learning rate, Adam's bias corrections) live in the small `hyper` buffer the host
// writes before each submission, so kernels are built once. Host side: src/ops/optim.rs; CPU
// twin: src/cpu/optim.rs.
//
// Gradients are first scaled by clip[0] (1 when clipping is off), then weight decay is added
// as in PyTorch: coupled (g += wd * w) for SGD, Adam and RMSProp; decoupled for AdamW
// (w -= lr * wd * w before the Adam step).

struct OptimParams {
    numel: u32,
    nesterov: u32,  // SGD: 1 for Nesterov momentum
    decoupled: u32, // Adam: 1 for AdamW's decoupled weight decay
    _pad0: u32,
    momentum: f32,  // SGD momentum; RMSProp smoothing constant alpha
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    _pad1: u32,
    _pad2: u32,
    _pad3: u32,
}

// Written by the host every step: lr, 1 - beta1^t, 1 - beta2^t.
struct Hyper {
    lr: f32,
    bias_correction1: f32,
    bias_correction2: f32,
    _pad0: f32,
}

struct SumSqParams {
    numel: u32,
    chunk: u32,
    offset: u32,    // where this tensor's partials start in `partial`
    max_norm: f32,  // clip_scale only
    total_parts: u32, // clip_scale only: partials of all tensors
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: OptimParams;
@group(0) @binding(0) var<uniform> sq: SumSqParams;
@group(0) @binding(1) var<storage, read_write> weight: array<f32>;  // [numel]
@group(0) @binding(2) var<storage, read> grad: array<f32>;          // [numel]
@group(0) @binding(3) var<storage, read_write> state1: array<f32>;  // [numel] momentum / m / sq avg
@group(0) @binding(4) var<storage, read_write> state2: array<f32>;  // [numel] Adam's v
@group(0) @binding(5) var<storage, read> clip: array<f32>;          // [2]: scale, norm
@group(0) @binding(6) var<uniform> hyper: Hyper;
@group(0) @binding(7) var<storage, read_write> partial: array<f32>; // [total_parts]
@group(0) @binding(8) var<storage, read_write> clip_out: array<f32>; // [2]: scale, norm

fn decayed_grad(i: u32) -> f32 {
    return grad[i] * clip[0] + p.weight_decay * weight[i];
}

// SGD: v = momentum * v + g; step = g + momentum * v (Nesterov) or v; w -= lr * step.
// With momentum 0 this is plain SGD (state1 then holds g).
@compute @workgroup_size(WG)
fn sgd_update(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.numel) {
        return;
    }
    let g = decayed_grad(i);
    let v = p.momentum * state1[i] + g;
    state1[i] = v;
    let step = select(v, g + p.momentum * v, p.nesterov == 1u);
    weight[i] -= hyper.lr * step;
}

// Adam / AdamW: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
// w -= lr * (m / bc1) / (sqrt(v / bc2) + eps).
@compute @workgroup_size(WG)
fn adam_update(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.numel) {
        return;
    }
    var w = weight[i];
    var g = grad[i] * clip[0];
    if (p.decoupled == 1u) {
        w -= hyper.lr * p.weight_decay * w;
    } else {
        g += p.weight_decay * w;
    }
    let m = p.beta1 * state1[i] + (1.0 - p.beta1) * g;
    let v = p.beta2 * state2[i] + (1.0 - p.beta2) * g * g;
    state1[i] = m;
    state2[i] = v;
    let m_hat = m / hyper.bias_correction1;
    let v_hat = v / hyper.bias_correction2;
    weight[i] = w - hyper.lr * m_hat / (sqrt(v_hat) + p.eps);
}

// RMSProp: s = alpha s + (1 - alpha) g^2; w -= lr * g / (sqrt(s) + eps).
@compute @workgroup_size(WG)
fn rmsprop_update(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.numel) {
        return;
    }
    let g = decayed_grad(i);
    let s = p.momentum * state1[i] + (1.0 - p.momentum) * g * g;
    state1[i] = s;
    weight[i] -= hyper.lr * g / (sqrt(s) + p.eps);
}

// One invocation per chunk of one gradient tensor: partial[offset + part] = sum of grad^2
// over the chunk. Overwrites its slots of partial.
@compute @workgroup_size(WG)
fn grad_sumsq_partial(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let part = flat_id(gid, nwg);
    let parts = (sq.numel + sq.chunk - 1u) / sq.chunk;
    if (part >= parts) {
        return;
    }
    let end = min((part + 1u) * sq.chunk, sq.numel);
    var acc = 0.0;
    for (var i = part * sq.chunk; i < end; i++) {
        acc += grad[i] * grad[i];
    }
    partial[sq.offset + part] = acc;
}

// A single invocation: the global norm over all partials, summed in order, and the factor
// that scales it down to max_norm (1 when it is already below). Overwrites clip_out.
@compute @workgroup_size(1)
fn clip_scale() {
    var acc = 0.0;
    for (var i = 0u; i < sq.total_parts; i++) {
        acc += partial[i];
    }
    let norm = sqrt(acc);
    clip_out[0] = select(1.0, sq.max_norm / (norm + 1e-6), norm > sq.max_norm);
    clip_out[1] = norm;
}
