// Deterministic reductions. Long sums (over the batch and the image plane) are split by the op
// that needs them into a [rows, cols] table of partial sums, each partial summed sequentially
// by one invocation; this file then sums each row in index order. Fixed chunking (a function of
// the shapes only) and fixed order give bit-identical results run after run, with no atomics.

struct ReduceParams {
    rows: u32,
    cols: u32,
    scale: f32, // applied to each row sum (1.0 for a plain sum, 1/count for a mean)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: ReduceParams;
@group(0) @binding(1) var<storage, read> partial: array<f32>; // [rows, cols]
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // [rows]

// One invocation per row r: out[r] = scale * sum_k partial[r, k], k ascending. Overwrites out.
@compute @workgroup_size(WG)
fn reduce_rows(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = flat_id(gid, nwg);
    if (r >= p.rows) {
        return;
    }
    var acc = 0.0;
    for (var k = 0u; k < p.cols; k++) {
        acc += partial[r * p.cols + k];
    }
    out[r] = acc * p.scale;
}
