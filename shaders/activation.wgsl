// Element-wise activations on a flat tensor of any shape. Host side: src/ops/activation.rs;
// CPU twin: src/cpu/activation.rs.
//   leaky ReLU: y = x if x > 0 else slope * x (slope 0 is the plain ReLU)
//   dropout:    y = x / keep if hash_uniform(seed, i) < keep else 0, keep = 1 - drop rate
// Dropout keeps no mask buffer: the backward pass redraws the same mask from (seed, i), and the
// CPU reference draws it with the same hash, so both sides drop the same elements.

struct ReluParams {
    numel: u32,
    slope: f32,
    _pad0: u32,
    _pad1: u32,
}

struct DropoutParams {
    numel: u32,
    keep: f32, // probability of keeping an element, in (0, 1]
    seed: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> relu_p: ReluParams;
@group(0) @binding(0) var<uniform> drop_p: DropoutParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;       // [numel]
@group(0) @binding(2) var<storage, read_write> y: array<f32>; // [numel]
@group(0) @binding(3) var<storage, read> dy: array<f32>;      // [numel]
@group(0) @binding(4) var<storage, read_write> dx: array<f32>; // [numel]

// One invocation per element. Overwrites y.
@compute @workgroup_size(WG)
fn relu_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= relu_p.numel) {
        return;
    }
    let v = x[i];
    y[i] = select(relu_p.slope * v, v, v > 0.0);
}

// One invocation per element, with x the forward input: dx = dy where x > 0, slope * dy
// elsewhere (the kink at 0 takes the left slope). Overwrites dx.
@compute @workgroup_size(WG)
fn relu_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= relu_p.numel) {
        return;
    }
    dx[i] = select(relu_p.slope * dy[i], dy[i], x[i] > 0.0);
}

// One invocation per element. Overwrites y.
@compute @workgroup_size(WG)
fn dropout_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= drop_p.numel) {
        return;
    }
    let kept = hash_uniform(drop_p.seed, i) < drop_p.keep;
    y[i] = select(0.0, x[i] / drop_p.keep, kept);
}

// One invocation per element, redrawing the forward mask from the same seed. Overwrites dx.
@compute @workgroup_size(WG)
fn dropout_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= drop_p.numel) {
        return;
    }
    let kept = hash_uniform(drop_p.seed, i) < drop_p.keep;
    dx[i] = select(0.0, dy[i] / drop_p.keep, kept);
}
