// Fully connected layer, y = x . weight^T + bias, with the weight stored [d_out, d_in] (one row
// per output unit) and x [n, d_in] (a 4-D activation is read as flattened rows). Its backward
// pass is the three products below; the sums over the batch run in ascending n, so they are
// deterministic. Host side: src/ops/dense.rs; CPU twin: src/cpu/dense.rs.

struct DenseParams {
    n: u32,
    d_in: u32,
    d_out: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: DenseParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;         // [n, d_in]
@group(0) @binding(2) var<storage, read> weight: array<f32>;    // [d_out, d_in]
@group(0) @binding(3) var<storage, read> bias: array<f32>;      // [d_out]
@group(0) @binding(4) var<storage, read_write> y: array<f32>;   // [n, d_out]
@group(0) @binding(5) var<storage, read> dy: array<f32>;        // [n, d_out]
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;  // [n, d_in]
@group(0) @binding(7) var<storage, read_write> dweight: array<f32>; // [d_out, d_in]
@group(0) @binding(8) var<storage, read_write> dbias: array<f32>;   // [d_out]

// One invocation per (n, o): y[n, o] = bias[o] + sum_i x[n, i] * weight[o, i]. Overwrites y.
@compute @workgroup_size(WG)
fn dense_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_id(gid, nwg);
    if (idx >= p.n * p.d_out) {
        return;
    }
    let o = idx % p.d_out;
    let n = idx / p.d_out;
    var acc = 0.0;
    for (var i = 0u; i < p.d_in; i++) {
        acc += x[n * p.d_in + i] * weight[o * p.d_in + i];
    }
    y[idx] = acc + bias[o];
}

// One invocation per (n, i): dx[n, i] = sum_o dy[n, o] * weight[o, i]. Overwrites dx.
@compute @workgroup_size(WG)
fn dense_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_id(gid, nwg);
    if (idx >= p.n * p.d_in) {
        return;
    }
    let i = idx % p.d_in;
    let n = idx / p.d_in;
    var acc = 0.0;
    for (var o = 0u; o < p.d_out; o++) {
        acc += dy[n * p.d_out + o] * weight[o * p.d_in + i];
    }
    dx[idx] = acc;
}

// One invocation per (o, i): dweight[o, i] = sum_n dy[n, o] * x[n, i]. Overwrites dweight.
@compute @workgroup_size(WG)
fn dense_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_id(gid, nwg);
    if (idx >= p.d_out * p.d_in) {
        return;
    }
    let i = idx % p.d_in;
    let o = idx / p.d_in;
    var acc = 0.0;
    for (var n = 0u; n < p.n; n++) {
        acc += dy[n * p.d_out + o] * x[n * p.d_in + i];
    }
    dweight[idx] = acc;
}

// One invocation per o: dbias[o] = sum_n dy[n, o]. Overwrites dbias.
@compute @workgroup_size(WG)
fn dense_backward_bias(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = flat_id(gid, nwg);
    if (o >= p.d_out) {
        return;
    }
    var acc = 0.0;
    for (var n = 0u; n < p.n; n++) {
        acc += dy[n * p.d_out + o];
    }
    dbias[o] = acc;
}
