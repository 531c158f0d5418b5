// Pooling over each (n, c) plane, NCHW layout. Max and average pooling take a kh x kw window
// moved by `stride` (which may exceed the window: the classic small-FER net pools 2x2 with
// stride 3) over the input padded by `pad` on every side. Windows may run past the bottom and
// right edge when the host computes oh/ow in ceil mode; only in-bounds positions count, so a
// max never sees padding and an average divides by the number of in-bounds positions. Global
// average pooling reduces each whole plane to one value. Host side: src/ops/pool.rs; CPU twin:
// src/cpu/pool.rs.

struct PoolParams {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    oh: u32,
    ow: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // [n, c, h, w]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;    // [n, c, oh, ow]
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>; // [n, c, oh, ow], iy*w + ix
@group(0) @binding(4) var<storage, read> dy: array<f32>;         // [n, c, oh, ow]
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;   // [n, c, h, w]
@group(0) @binding(6) var<storage, read> argmax_in: array<u32>;  // [n, c, oh, ow]

// First and one-past-last output index along one axis whose window covers input position i.
// Window o covers [o*stride - pad, o*stride - pad + k).
fn covering(i: u32, k: u32, stride: u32, pad: u32, o_count: u32) -> vec2<u32> {
    let hi = (i + pad) / stride + 1u; // windows starting at or before i
    var lo = 0u;
    if (i + pad + 1u > k) {
        lo = (i + pad + 1u - k + stride - 1u) / stride; // ceil((i + pad - k + 1) / stride)
    }
    return vec2<u32>(lo, min(hi, o_count));
}

// One invocation per output element (n, c, oy, ox): the largest in-bounds input of its window,
// and where it was (the first in row-major order on ties). Overwrites y and argmax.
@compute @workgroup_size(WG)
fn maxpool_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n * p.c * p.oh * p.ow) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh); // n * c + c
    var best = 0.0;
    var best_at = 0xffffffffu;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = oy * p.stride + ky - p.pad; // wraps past h when above the image
        if (iy >= p.h) {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = ox * p.stride + kx - p.pad;
            if (ix >= p.w) {
                continue;
            }
            let v = x[(plane * p.h + iy) * p.w + ix];
            if (best_at == 0xffffffffu || v > best) {
                best = v;
                best_at = iy * p.w + ix;
            }
        }
    }
    y[i] = best;
    argmax[i] = best_at;
}

// One invocation per input element: the sum of dy over the windows whose argmax is this
// element, visited in ascending (oy, ox) order. A gather, so no atomics. Overwrites dx.
@compute @workgroup_size(WG)
fn maxpool_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n * p.c * p.h * p.w) {
        return;
    }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    let ry = covering(iy, p.kh, p.stride, p.pad, p.oh);
    let rx = covering(ix, p.kw, p.stride, p.pad, p.ow);
    var acc = 0.0;
    for (var oy = ry.x; oy < ry.y; oy++) {
        for (var ox = rx.x; ox < rx.y; ox++) {
            let o = (plane * p.oh + oy) * p.ow + ox;
            if (argmax_in[o] == iy * p.w + ix) {
                acc += dy[o];
            }
        }
    }
    dx[i] = acc;
}

// Same result as maxpool_backward_input where windows do not overlap (stride >= kh and kw),
// one invocation per output element instead of per input element. Each output (oy, ox) owns
// the block of inputs whose only possible window is its own: rows iy with
// (iy + pad) / stride == oy, and for the last row of windows every row below as well (inputs
// no window reaches), likewise for columns. The invocation loads its argmax and dy once and
// writes the whole block: dy at the argmax, 0 elsewhere. Every dx element belongs to exactly
// one block, so dx is overwritten whole, without atomics. On lavapipe loads cost far more
// than stores, and the gather loads two values per input element; this loads two per block.
@compute @workgroup_size(WG)
fn maxpool_backward_input_blocks(@builtin(global_invocation_id) gid: vec3<u32>,
                                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = flat_id(gid, nwg);
    if (o >= p.n * p.c * p.oh * p.ow) {
        return;
    }
    let ox = o % p.ow;
    let oy = (o / p.ow) % p.oh;
    let plane = o / (p.ow * p.oh);
    let at = argmax_in[o];
    let g = dy[o];
    let rows = block_span(oy, p.oh, p.h);
    let cols = block_span(ox, p.ow, p.w);
    for (var iy = rows.x; iy < rows.y; iy++) {
        for (var ix = cols.x; ix < cols.y; ix++) {
            dx[(plane * p.h + iy) * p.w + ix] = select(0.0, g, iy * p.w + ix == at);
        }
    }
}

// The inputs [first, end) along one axis of length `len` that output o of `o_count` owns in
// maxpool_backward_input_blocks: [o * stride - pad, (o + 1) * stride - pad), the last block
// running on to the edge, clipped to the image.
fn block_span(o: u32, o_count: u32, len: u32) -> vec2<u32> {
    let first = max(i32(o * p.stride) - i32(p.pad), 0);
    var end = i32(len);
    if (o + 1u < o_count) {
        end = clamp(i32((o + 1u) * p.stride) - i32(p.pad), 0, i32(len));
    }
    return vec2<u32>(u32(min(first, end)), u32(end));
}

// Number of in-bounds input positions in window (oy, ox): the average's divisor.
fn window_count(oy: u32, ox: u32) -> u32 {
    let y0 = max(i32(oy * p.stride) - i32(p.pad), 0);
    let y1 = min(i32(oy * p.stride + p.kh) - i32(p.pad), i32(p.h));
    let x0 = max(i32(ox * p.stride) - i32(p.pad), 0);
    let x1 = min(i32(ox * p.stride + p.kw) - i32(p.pad), i32(p.w));
    return u32(max(y1 - y0, 0) * max(x1 - x0, 0));
}

// One invocation per output element: the mean of the in-bounds inputs of its window.
// Overwrites y.
@compute @workgroup_size(WG)
fn avgpool_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n * p.c * p.oh * p.ow) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let plane = i / (p.ow * p.oh);
    var acc = 0.0;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = oy * p.stride + ky - p.pad;
        if (iy >= p.h) {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = ox * p.stride + kx - p.pad;
            if (ix >= p.w) {
                continue;
            }
            acc += x[(plane * p.h + iy) * p.w + ix];
        }
    }
    y[i] = acc / f32(window_count(oy, ox));
}

// One invocation per input element: the sum of dy / count over the windows covering it, in
// ascending (oy, ox) order. Overwrites dx.
@compute @workgroup_size(WG)
fn avgpool_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n * p.c * p.h * p.w) {
        return;
    }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    let ry = covering(iy, p.kh, p.stride, p.pad, p.oh);
    let rx = covering(ix, p.kw, p.stride, p.pad, p.ow);
    var acc = 0.0;
    for (var oy = ry.x; oy < ry.y; oy++) {
        for (var ox = rx.x; ox < rx.y; ox++) {
            acc += dy[(plane * p.oh + oy) * p.ow + ox] / f32(window_count(oy, ox));
        }
    }
    dx[i] = acc;
}

// Global average pooling, y[n, c] = mean over the plane of x[n, c]. Uses n, c, h, w of the
// params (oh = ow = 1). One invocation per (n, c), summing the plane in row-major order.
// Overwrites y.
@compute @workgroup_size(WG)
fn global_avgpool_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                          @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n * p.c) {
        return;
    }
    let plane = p.h * p.w;
    var acc = 0.0;
    for (var j = 0u; j < plane; j++) {
        acc += x[i * plane + j];
    }
    y[i] = acc / f32(plane);
}

// One invocation per input element: dx[n, c, iy, ix] = dy[n, c] / (h * w). Overwrites dx.
@compute @workgroup_size(WG)
fn global_avgpool_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n * p.c * p.h * p.w) {
        return;
    }
    dx[i] = dy[i / (p.h * p.w)] / f32(p.h * p.w);
}
