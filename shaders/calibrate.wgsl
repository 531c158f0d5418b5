// Calibration kernels: the adapter's own peak fused-multiply-add rate and storage-buffer copy
// bandwidth, the two roofs of the roofline that the benchmark (src/bench.rs) measures each
// layer against. They do no useful work; they are written so that the compiler can neither
// remove the work nor turn it into something cheaper. Host side: src/ops/calibrate.rs; there
// is no CPU twin (only the timing matters), but the FMA result is checked against a closed form
// in the tests so a miscompiled or skipped loop is caught.

struct CalibrateParams {
    n: u32,     // invocations (fma) or vec4 elements (copy)
    iters: u32, // loop trips per invocation (fma)
    _pad0: u32,
    _pad1: u32,
    mul: f32,   // acc = acc * mul + add, with |mul| < 1 so nothing overflows
    add: f32,
    _pad2: u32,
    _pad3: u32,
}

@group(0) @binding(0) var<uniform> p: CalibrateParams;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;       // [n] (copy)
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>; // [n]

// One invocation runs `iters` trips of 8 independent vec4 multiply-add chains: 64 FLOPs per
// trip (8 chains x 4 lanes x 2). Independent chains hide the FMA latency; the multiplier and
// addend come from the uniform buffer, so nothing folds at compile time. Writes dst[i] = the
// sum of the chains, which the test compares with the closed form of the recurrence.
@compute @workgroup_size(WG)
fn calibrate_fma(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let m = vec4<f32>(p.mul);
    let c = vec4<f32>(p.add);
    let s = f32(i % 4u);
    var a0 = vec4<f32>(s, s + 1.0, s + 2.0, s + 3.0);
    var a1 = a0 + 1.0;
    var a2 = a0 + 2.0;
    var a3 = a0 + 3.0;
    var a4 = a0 + 4.0;
    var a5 = a0 + 5.0;
    var a6 = a0 + 6.0;
    var a7 = a0 + 7.0;
    for (var t = 0u; t < p.iters; t++) {
        a0 = fma(a0, m, c);
        a1 = fma(a1, m, c);
        a2 = fma(a2, m, c);
        a3 = fma(a3, m, c);
        a4 = fma(a4, m, c);
        a5 = fma(a5, m, c);
        a6 = fma(a6, m, c);
        a7 = fma(a7, m, c);
    }
    dst[i] = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
}

// One invocation copies one vec4: dst[i] = src[i]. Reads 16 and writes 16 bytes.
@compute @workgroup_size(WG)
fn calibrate_copy(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n) {
        return;
    }
    dst[i] = src[i];
}
