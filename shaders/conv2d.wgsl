// 2-D convolution (cross-correlation, as in every deep-learning framework), NCHW layout, square
// stride and symmetric zero padding:
//   y[n, co, oy, ox] = bias[co] + sum_{ci, ky, kx} weight[co, ci, ky, kx]
//                                   * x[n, ci, oy*stride + ky - pad, ox*stride + kx - pad]
// with out-of-range input positions reading as zero. Host side: src/ops/conv2d.rs; CPU twin:
// src/cpu/conv2d.rs.
// TODO(perf): direct kernels, one invocation per output element with no shared-memory tiling;
// about 0.3-0.5 GFLOP/s on lavapipe. Tiled kernels come with the roofline benchmark.

struct Conv2dParams {
    n: u32,
    c_in: u32,
    h: u32,
    w: u32,
    c_out: u32,
    kh: u32,
    kw: u32,
    stride: u32,
    pad: u32,
    oh: u32,
    ow: u32,
    chunk: u32, // (n, oy, ox) positions summed by one partial of the weight and bias gradients
    parts: u32, // ceil(n * oh * ow / chunk): partials per weight or bias element
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Conv2dParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [n, c_in, h, w]
@group(0) @binding(2) var<storage, read> weight: array<f32>;       // [c_out, c_in, kh, kw]
@group(0) @binding(3) var<storage, read> bias: array<f32>;         // [c_out]
@group(0) @binding(4) var<storage, read_write> y: array<f32>;      // [n, c_out, oh, ow]
@group(0) @binding(5) var<storage, read> dy: array<f32>;           // [n, c_out, oh, ow]
@group(0) @binding(6) var<storage, read_write> dx: array<f32>;     // [n, c_in, h, w]
@group(0) @binding(7) var<storage, read_write> partial: array<f32>; // [rows, parts]

// One invocation per output element (n, co, oy, ox). Overwrites y.
@compute @workgroup_size(WG)
fn conv2d_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n * p.c_out * p.oh * p.ow) {
        return;
    }
    let ox = i % p.ow;
    let oy = (i / p.ow) % p.oh;
    let co = (i / (p.ow * p.oh)) % p.c_out;
    let n = i / (p.ow * p.oh * p.c_out);
    var acc = 0.0;
    for (var ci = 0u; ci < p.c_in; ci++) {
        for (var ky = 0u; ky < p.kh; ky++) {
            // Unsigned wrap-around makes a position above or left of the image compare >= h.
            let iy = oy * p.stride + ky - p.pad;
            if (iy >= p.h) {
                continue;
            }
            for (var kx = 0u; kx < p.kw; kx++) {
                let ix = ox * p.stride + kx - p.pad;
                if (ix >= p.w) {
                    continue;
                }
                let xv = x[((n * p.c_in + ci) * p.h + iy) * p.w + ix];
                acc += xv * weight[((co * p.c_in + ci) * p.kh + ky) * p.kw + kx];
            }
        }
    }
    y[i] = acc + bias[co];
}

// One invocation per input element (n, ci, iy, ix), gathering from every output position whose
// window covers it, so no two invocations write the same element and no atomics are needed:
//   dx[n, ci, iy, ix] = sum_{co, ky, kx} dy[n, co, oy, ox] * weight[co, ci, ky, kx]
//   where oy*stride + ky - pad = iy and ox*stride + kx - pad = ix. Overwrites dx.
@compute @workgroup_size(WG)
fn conv2d_backward_input(@builtin(global_invocation_id) gid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n * p.c_in * p.h * p.w) {
        return;
    }
    let ix = i % p.w;
    let iy = (i / p.w) % p.h;
    let ci = (i / (p.w * p.h)) % p.c_in;
    let n = i / (p.w * p.h * p.c_in);
    var acc = 0.0;
    for (var co = 0u; co < p.c_out; co++) {
        for (var ky = 0u; ky < p.kh; ky++) {
            let ty = i32(iy + p.pad) - i32(ky);
            if (ty < 0 || u32(ty) % p.stride != 0u || u32(ty) / p.stride >= p.oh) {
                continue;
            }
            let oy = u32(ty) / p.stride;
            for (var kx = 0u; kx < p.kw; kx++) {
                let tx = i32(ix + p.pad) - i32(kx);
                if (tx < 0 || u32(tx) % p.stride != 0u || u32(tx) / p.stride >= p.ow) {
                    continue;
                }
                let ox = u32(tx) / p.stride;
                let dyv = dy[((n * p.c_out + co) * p.oh + oy) * p.ow + ox];
                acc += dyv * weight[((co * p.c_in + ci) * p.kh + ky) * p.kw + kx];
            }
        }
    }
    dx[i] = acc;
}

// One invocation per (weight element, part): the sum over positions m = (n, oy, ox) in
// [part*chunk, (part+1)*chunk) of dy[n, co, oy, ox] * x[n, ci, iy, ix]. Overwrites
// partial[c_out*c_in*kh*kw, parts]; reduce_rows then sums each row in order into dweight.
@compute @workgroup_size(WG)
fn conv2d_backward_weight_partial(@builtin(global_invocation_id) gid: vec3<u32>,
                                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.c_out * p.c_in * p.kh * p.kw * p.parts) {
        return;
    }
    let part = i % p.parts;
    let widx = i / p.parts;
    let kx = widx % p.kw;
    let ky = (widx / p.kw) % p.kh;
    let ci = (widx / (p.kw * p.kh)) % p.c_in;
    let co = widx / (p.kw * p.kh * p.c_in);
    let m_end = min((part + 1u) * p.chunk, p.n * p.oh * p.ow);
    var acc = 0.0;
    for (var m = part * p.chunk; m < m_end; m++) {
        let ox = m % p.ow;
        let oy = (m / p.ow) % p.oh;
        let n = m / (p.ow * p.oh);
        let iy = oy * p.stride + ky - p.pad;
        let ix = ox * p.stride + kx - p.pad;
        if (iy >= p.h || ix >= p.w) {
            continue;
        }
        let dyv = dy[((n * p.c_out + co) * p.oh + oy) * p.ow + ox];
        acc += dyv * x[((n * p.c_in + ci) * p.h + iy) * p.w + ix];
    }
    partial[i] = acc;
}

// One invocation per (co, part): the sum of dy[n, co, oy, ox] over the part's positions.
// Overwrites partial[c_out, parts]; reduce_rows then sums each row into dbias.
@compute @workgroup_size(WG)
fn conv2d_backward_bias_partial(@builtin(global_invocation_id) gid: vec3<u32>,
                                @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.c_out * p.parts) {
        return;
    }
    let part = i % p.parts;
    let co = i / p.parts;
    let plane = p.oh * p.ow;
    let m_end = min((part + 1u) * p.chunk, p.n * plane);
    var acc = 0.0;
    for (var m = part * p.chunk; m < m_end; m++) {
        let n = m / plane;
        acc += dy[(n * p.c_out + co) * plane + m % plane];
    }
    partial[i] = acc;
}
