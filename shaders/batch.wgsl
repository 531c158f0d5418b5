// Assembling a batch on the GPU from a data set that lives there: one epoch's shuffled order is
// uploaded once, and each step gathers its slice of it, so nothing crosses the bus per step
// but a few bytes of parameters. Host side: src/ops/batch.rs; CPU twin: src/cpu/batch.rs.

struct GatherParams {
    n: u32,           // batch size
    sample: u32,      // values per image, c * h * w
    offset: u32,      // position in `order` of the batch's first sample (written per step)
    count: u32,       // samples in the order; positions past it repeat the last (eval padding)
}

@group(0) @binding(0) var<uniform> p: GatherParams;
@group(0) @binding(1) var<storage, read> images: array<f32>;     // [count_all, c, h, w]
@group(0) @binding(2) var<storage, read> labels: array<u32>;     // [count_all]
@group(0) @binding(3) var<storage, read> order: array<u32>;      // [count]
@group(0) @binding(4) var<storage, read_write> x: array<f32>;    // [n, c, h, w]
@group(0) @binding(5) var<storage, read_write> y: array<u32>;    // [n]

// One invocation per batch value (n, c, iy, ix): x = images[order[offset + n]]; the first
// value of each image also copies its label. Overwrites x and y.
@compute @workgroup_size(WG)
fn gather_batch(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n * p.sample) {
        return;
    }
    let n = i / p.sample;
    let src = order[min(p.offset + n, p.count - 1u)];
    x[i] = images[src * p.sample + i % p.sample];
    if (i % p.sample == 0u) {
        y[n] = labels[src];
    }
}
