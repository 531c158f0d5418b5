// Batch normalization per channel over (n, h, w), NCHW layout:
//   y = (x - mean[c]) / sqrt(var[c] + eps) * gamma[c] + beta[c]
// In training mode mean and var are the batch's (var biased, divided by M = n*h*w), and the
// running statistics move toward them by `momentum` (the running var takes the unbiased batch
// var, M/(M-1) times the biased one). In inference mode the running statistics are used.
// The per-channel sums are split into [c, parts] partials of `chunk` positions each and summed
// in order by reduce_rows (reduce.wgsl), so the statistics are deterministic.
// Host side: src/ops/batchnorm.rs; CPU twin: src/cpu/batchnorm.rs.
//
// Training forward: batchnorm_sum_partial, reduce_rows(scale 1/M) -> mean,
//   batchnorm_sqdev_partial, reduce_rows(scale 1/M) -> var, batchnorm_forward_train,
//   batchnorm_update_running.
// Backward: batchnorm_backward_partial, reduce_rows -> dbeta and dgamma,
//   batchnorm_backward_input.

struct BatchNormParams {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    chunk: u32, // (n, y, x) positions summed by one partial
    parts: u32, // ceil(n * h * w / chunk)
    eps: f32,
    momentum: f32,
}

// Fused activation (ops::Epilogue): when true, batchnorm_forward stores relu(y).
override RELU: bool = false;

@group(0) @binding(0) var<uniform> p: BatchNormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;                // [n, c, h, w]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;          // [n, c, h, w]
@group(0) @binding(3) var<storage, read> gamma: array<f32>;            // [c]
@group(0) @binding(4) var<storage, read> beta: array<f32>;             // [c]
@group(0) @binding(5) var<storage, read> mean: array<f32>;             // [c] batch or running
@group(0) @binding(6) var<storage, read> var_: array<f32>;             // [c] batch or running
@group(0) @binding(7) var<storage, read_write> partial: array<f32>;    // [c, parts]
@group(0) @binding(8) var<storage, read_write> partial2: array<f32>;   // [c, parts]
@group(0) @binding(9) var<storage, read_write> running_mean: array<f32>; // [c]
@group(0) @binding(10) var<storage, read_write> running_var: array<f32>; // [c]
@group(0) @binding(11) var<storage, read> dy: array<f32>;              // [n, c, h, w]
@group(0) @binding(12) var<storage, read_write> dx: array<f32>;        // [n, c, h, w]
@group(0) @binding(13) var<storage, read> dgamma: array<f32>;          // [c]
@group(0) @binding(14) var<storage, read> dbeta: array<f32>;           // [c]

// Flat NCHW index of the m-th (n, y, x) position of channel c.
fn at(c: u32, m: u32) -> u32 {
    let plane = p.h * p.w;
    return ((m / plane) * p.c + c) * plane + m % plane;
}

// One invocation per (c, part): partial[c, part] = sum of x over the part. Overwrites partial.
@compute @workgroup_size(WG)
fn batchnorm_sum_partial(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.c * p.parts) {
        return;
    }
    let c = i / p.parts;
    let part = i % p.parts;
    let m_end = min((part + 1u) * p.chunk, p.n * p.h * p.w);
    var acc = 0.0;
    for (var m = part * p.chunk; m < m_end; m++) {
        acc += x[at(c, m)];
    }
    partial[i] = acc;
}

// One invocation per (c, part): partial[c, part] = sum of (x - mean[c])^2 over the part.
// Two passes (mean first) rather than E[x^2] - E[x]^2, which cancels badly. Overwrites partial.
@compute @workgroup_size(WG)
fn batchnorm_sqdev_partial(@builtin(global_invocation_id) gid: vec3<u32>,
                           @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.c * p.parts) {
        return;
    }
    let c = i / p.parts;
    let part = i % p.parts;
    let m_end = min((part + 1u) * p.chunk, p.n * p.h * p.w);
    var acc = 0.0;
    for (var m = part * p.chunk; m < m_end; m++) {
        let d = x[at(c, m)] - mean[c];
        acc += d * d;
    }
    partial[i] = acc;
}

// One invocation per element: normalize with the statistics bound as mean and var_ (the
// batch's in training, the running ones in inference), then the epilogue. Overwrites y.
@compute @workgroup_size(WG)
fn batchnorm_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n * p.c * p.h * p.w) {
        return;
    }
    let c = (i / (p.h * p.w)) % p.c;
    let v = (x[i] - mean[c]) * inverseSqrt(var_[c] + p.eps) * gamma[c] + beta[c];
    if (RELU) {
        y[i] = select(0.0 * v, v, v > 0.0); // as relu_forward with slope 0
    } else {
        y[i] = v;
    }
}

// One invocation per channel: running = (1 - momentum) * running + momentum * batch, with the
// unbiased batch variance. Updates running_mean and running_var in place.
@compute @workgroup_size(WG)
fn batchnorm_update_running(@builtin(global_invocation_id) gid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = flat_id(gid, nwg);
    if (c >= p.c) {
        return;
    }
    let m = f32(p.n * p.h * p.w);
    var unbiased = var_[c];
    if (m > 1.0) {
        unbiased = var_[c] * m / (m - 1.0);
    }
    running_mean[c] = (1.0 - p.momentum) * running_mean[c] + p.momentum * mean[c];
    running_var[c] = (1.0 - p.momentum) * running_var[c] + p.momentum * unbiased;
}

// One invocation per (c, part): partial = sum dy (for dbeta), partial2 = sum dy * xhat (for
// dgamma), xhat = (x - mean) / sqrt(var + eps) with the batch statistics. Overwrites both.
@compute @workgroup_size(WG)
fn batchnorm_backward_partial(@builtin(global_invocation_id) gid: vec3<u32>,
                              @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.c * p.parts) {
        return;
    }
    let c = i / p.parts;
    let part = i % p.parts;
    let inv_std = inverseSqrt(var_[c] + p.eps);
    let m_end = min((part + 1u) * p.chunk, p.n * p.h * p.w);
    var acc_dy = 0.0;
    var acc_dy_xhat = 0.0;
    for (var m = part * p.chunk; m < m_end; m++) {
        let j = at(c, m);
        acc_dy += dy[j];
        acc_dy_xhat += dy[j] * (x[j] - mean[c]) * inv_std;
    }
    partial[i] = acc_dy;
    partial2[i] = acc_dy_xhat;
}

// One invocation per element, training-mode gradient through the batch statistics:
//   dx = gamma * inv_std / M * (M * dy - dbeta - xhat * dgamma). Overwrites dx.
@compute @workgroup_size(WG)
fn batchnorm_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n * p.c * p.h * p.w) {
        return;
    }
    let c = (i / (p.h * p.w)) % p.c;
    let m = f32(p.n * p.h * p.w);
    let inv_std = inverseSqrt(var_[c] + p.eps);
    let xhat = (x[i] - mean[c]) * inv_std;
    dx[i] = gamma[c] * inv_std / m * (m * dy[i] - dbeta[c] - xhat * dgamma[c]);
}
