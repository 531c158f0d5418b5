// 2-D convolution (cross-correlation, as in every deep-learning framework), NCHW layout, square
// stride and symmetric zero padding:
//   y[n, co, oy, ox] = bias[co] + sum_{ci, ky, kx} weight[co, ci, ky, kx]
//                                   * x[n, ci, oy*stride + ky - pad, ox*stride + kx - pad]
// with out-of-range input positions reading as zero. Host side: src/ops/conv2d.rs; CPU twin:
// src/cpu/conv2d.rs.
//
// Two sets of kernels with the same contracts: the direct ones (one invocation per output
// element), the plain statement of each pass and the fallback for kernels too large to stage;
// and the tiled ones further down (register-blocked implicit GEMMs), which the host uses by
// default (src/ops/conv2d.rs; FER_CONV_KERNELS=direct selects the direct ones).

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

// Fused activation (ops::Epilogue): when true, the forward kernels store relu(y) instead of
// y, exactly as relu_forward with slope 0 computes it.
override RELU: bool = false;

fn epilogue(v: f32) -> f32 {
    if (RELU) {
        return select(0.0 * v, v, v > 0.0);
    }
    return v;
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
    y[i] = epilogue(acc + bias[co]);
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

// ---------------------------------------------------------------------------------------------
// Tiled kernels: the convolution as an implicit GEMM, y[co, m] = sum_k weight[co, k] *
// x_col[k, m] over positions m = (n, oy, ox) and taps k = (ci, ky, kx). x_col is never built:
// each invocation reads the elements of x it needs in place.
//
// Register blocking: an invocation owns a block of TM = 4 * CO_GROUPS channels by TN = 8
// positions, so per tap it loads TN input values and TM weights and does TM * TN
// multiply-adds (the direct kernels load two values per multiply-add). A workgroup owns TM
// channels by WG * TN positions, and stages its weights through workgroup memory in rounds of
// whole input channels, read by all invocations alike. Each output's sum runs over k in
// ascending order, as in the direct kernels above.
//
// CO_GROUPS (1, 2 or 4) is a pipeline-overridable constant the host picks from the channel
// count, so a layer with 8 channels does not compute 16. Every loop over a block runs a
// constant number of times, so compilers unroll it and keep the block in registers. W_SLOTS
// vec4 slots (8 KiB) fit the 16 KiB of workgroup memory every WebGPU adapter offers.

override CO_GROUPS: u32 = 2u;
const TN: u32 = 8u;
const W_SLOTS: u32 = 512u;
var<workgroup> w_tile: array<vec4<f32>, W_SLOTS>;

// weight[index] when channel < count, else 0: the padding of a partial tile.
fn weight_or_zero(channel: u32, count: u32, index: u32) -> f32 {
    if (channel < count) {
        return weight[index];
    }
    return 0.0;
}

// bias[co0 + i] for an invocation's 4 * CO_GROUPS output channels (0 past c_out), loaded once
// before its outputs are stored rather than once per stored output: the driver's compiler
// cannot move a load of bias across stores to y, which it must assume may alias it.
fn tile_bias(co0: u32) -> array<f32, 16> {
    var b: array<f32, 16>;
    for (var i = 0u; i < 4u * CO_GROUPS; i++) {
        b[i] = select(0.0, bias[min(co0 + i, p.c_out - 1u)], co0 + i < p.c_out);
    }
    return b;
}

// The workgroup's tile: (first channel, first position, 1), or z = 0 for a spare workgroup
// past the last tile. `channels` is the dimension split into 4 * CO_GROUPS blocks.
fn tile_origin(wid: vec3<u32>, nwg: vec3<u32>, channels: u32, positions: u32) -> vec3<u32> {
    let tile = wid.y * nwg.x + wid.x;
    let per_tile = 4u * CO_GROUPS;
    let blocks = (channels + per_tile - 1u) / per_tile;
    let span = WG * TN;
    let tiles = blocks * ((positions + span - 1u) / span);
    return vec3<u32>((tile % blocks) * per_tile, (tile / blocks) * span, u32(tile < tiles));
}

// Same result as conv2d_forward: y = conv(x, weight) + bias (then the epilogue), overwriting y.
// One workgroup per
// (4 * CO_GROUPS channels, WG * TN positions) tile; the host dispatches exactly that many.
@compute @workgroup_size(WG)
fn conv2d_forward_tiled(@builtin(local_invocation_index) lid: u32,
                        @builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
    let positions = p.n * p.oh * p.ow;
    let origin = tile_origin(wid, nwg, p.c_out, positions);
    if (origin.z == 0u) {
        return; // the whole workgroup: a spare tile of the 2-D grid
    }
    let co0 = origin.x;
    let m0 = origin.y + lid * TN;
    // Each position's offset of image n in x and the top-left corner of its window (which
    // wraps around below zero in the padding). Positions past the end repeat the last one
    // and are not stored, so the loops below run without divergent branches.
    var base: array<u32, TN>;
    var top: array<u32, TN>;
    var left: array<u32, TN>;
    for (var j = 0u; j < TN; j++) {
        let m = min(m0 + j, positions - 1u);
        let ox = m % p.ow;
        let oy = (m / p.ow) % p.oh;
        base[j] = (m / (p.ow * p.oh)) * p.c_in * p.h * p.w;
        top[j] = oy * p.stride - p.pad;
        left[j] = ox * p.stride - p.pad;
    }
    let taps = p.kh * p.kw;
    let k_all = p.c_in * taps;
    // Input channels per round of staging: as many as fit W_SLOTS (at least one).
    let ci_step = max(1u, W_SLOTS / (CO_GROUPS * taps));
    var acc: array<vec4<f32>, 32>; // [TN, CO_GROUPS] used of [TN, 4]
    for (var ci0 = 0u; ci0 < p.c_in; ci0 += ci_step) {
        let ci1 = min(ci0 + ci_step, p.c_in);
        // Stage weight[co0 + 4g + c, k] for the round's taps in slot (k - k0) * CO_GROUPS + g.
        workgroupBarrier();
        for (var s = lid; s < (ci1 - ci0) * taps * CO_GROUPS; s += WG) {
            let co = co0 + 4u * (s % CO_GROUPS);
            let k = ci0 * taps + s / CO_GROUPS;
            w_tile[s] = vec4<f32>(
                weight_or_zero(co, p.c_out, co * k_all + k),
                weight_or_zero(co + 1u, p.c_out, (co + 1u) * k_all + k),
                weight_or_zero(co + 2u, p.c_out, (co + 2u) * k_all + k),
                weight_or_zero(co + 3u, p.c_out, (co + 3u) * k_all + k),
            );
        }
        workgroupBarrier();
        var slot = 0u;
        for (var ci = ci0; ci < ci1; ci++) {
            let plane = ci * p.h * p.w;
            for (var ky = 0u; ky < p.kh; ky++) {
                for (var kx = 0u; kx < p.kw; kx++) {
                    var xv: array<f32, TN>;
                    for (var j = 0u; j < TN; j++) {
                        // Padding: load an in-range element and zero it.
                        let iy = top[j] + ky;
                        let ix = left[j] + kx;
                        let v = x[base[j] + plane + min(iy, p.h - 1u) * p.w + min(ix, p.w - 1u)];
                        xv[j] = select(0.0, v, iy < p.h && ix < p.w);
                    }
                    for (var g = 0u; g < CO_GROUPS; g++) {
                        let wv = w_tile[slot + g];
                        for (var j = 0u; j < TN; j++) {
                            acc[j * 4u + g] += xv[j] * wv;
                        }
                    }
                    slot += CO_GROUPS;
                }
            }
        }
    }
    let b = tile_bias(co0);
    for (var j = 0u; j < TN; j++) {
        let m = m0 + j;
        if (m >= positions) {
            break;
        }
        let ox = m % p.ow;
        let oy = (m / p.ow) % p.oh;
        let n = m / (p.ow * p.oh);
        for (var g = 0u; g < CO_GROUPS; g++) {
            for (var c = 0u; c < 4u; c++) {
                let co = co0 + 4u * g + c;
                if (co < p.c_out) {
                    let v = acc[j * 4u + g][c] + b[4u * g + c];
                    y[((n * p.c_out + co) * p.oh + oy) * p.ow + ox] = epilogue(v);
                }
            }
        }
    }
}

// Same result as conv2d_backward_input: dx from dy and the weights, overwriting dx. The same
// GEMM the other way round: an invocation owns TN input positions (n, iy, ix) and
// 4 * CO_GROUPS input channels, and sums over (co, ky, kx) in ascending order; rounds stage
// whole output channels of weight[co, ci, ky, kx].
@compute @workgroup_size(WG)
fn conv2d_backward_input_tiled(@builtin(local_invocation_index) lid: u32,
                               @builtin(workgroup_id) wid: vec3<u32>,
                               @builtin(num_workgroups) nwg: vec3<u32>) {
    let positions = p.n * p.h * p.w;
    let origin = tile_origin(wid, nwg, p.c_in, positions);
    if (origin.z == 0u) {
        return;
    }
    let ci0 = origin.x;
    let m0 = origin.y + lid * TN;
    // Each position's offset of image n in dy and its coordinates shifted by the padding.
    var base: array<u32, TN>;
    var py: array<i32, TN>;
    var px: array<i32, TN>;
    for (var j = 0u; j < TN; j++) {
        let m = min(m0 + j, positions - 1u);
        base[j] = (m / (p.w * p.h)) * p.c_out * p.oh * p.ow;
        py[j] = i32((m / p.w) % p.h + p.pad);
        px[j] = i32(m % p.w + p.pad);
    }
    let taps = p.kh * p.kw;
    let co_step = max(1u, W_SLOTS / (CO_GROUPS * taps));
    var acc: array<vec4<f32>, 32>; // [TN, CO_GROUPS] used of [TN, 4]
    for (var co0 = 0u; co0 < p.c_out; co0 += co_step) {
        let co1 = min(co0 + co_step, p.c_out);
        // Stage weight[co, ci0 + 4g + c, tap] in slot ((co - co0) * taps + tap) * CO_GROUPS + g.
        workgroupBarrier();
        for (var s = lid; s < (co1 - co0) * taps * CO_GROUPS; s += WG) {
            let ci = ci0 + 4u * (s % CO_GROUPS);
            let t = s / CO_GROUPS;
            let at = (co0 + t / taps) * p.c_in * taps + t % taps; // weight[co, 0, tap]
            w_tile[s] = vec4<f32>(
                weight_or_zero(ci, p.c_in, at + ci * taps),
                weight_or_zero(ci + 1u, p.c_in, at + (ci + 1u) * taps),
                weight_or_zero(ci + 2u, p.c_in, at + (ci + 2u) * taps),
                weight_or_zero(ci + 3u, p.c_in, at + (ci + 3u) * taps),
            );
        }
        workgroupBarrier();
        var slot = 0u;
        for (var co = co0; co < co1; co++) {
            let plane = co * p.oh * p.ow;
            for (var ky = 0u; ky < p.kh; ky++) {
                for (var kx = 0u; kx < p.kw; kx++) {
                    var dyv: array<f32, TN>;
                    for (var j = 0u; j < TN; j++) {
                        // The output position whose window puts tap (ky, kx) on this input,
                        // if the stride lands on it; otherwise the term is zero.
                        let ty = py[j] - i32(ky);
                        let tx = px[j] - i32(kx);
                        let oy = u32(ty) / p.stride;
                        let ox = u32(tx) / p.stride;
                        let hit = ty >= 0 && tx >= 0 && u32(ty) % p.stride == 0u
                            && u32(tx) % p.stride == 0u && oy < p.oh && ox < p.ow;
                        let at = plane + min(oy, p.oh - 1u) * p.ow + min(ox, p.ow - 1u);
                        dyv[j] = select(0.0, dy[base[j] + at], hit);
                    }
                    for (var g = 0u; g < CO_GROUPS; g++) {
                        let wv = w_tile[slot + g];
                        for (var j = 0u; j < TN; j++) {
                            acc[j * 4u + g] += dyv[j] * wv;
                        }
                    }
                    slot += CO_GROUPS;
                }
            }
        }
    }
    for (var j = 0u; j < TN; j++) {
        let m = m0 + j;
        if (m >= positions) {
            break;
        }
        let ix = m % p.w;
        let iy = (m / p.w) % p.h;
        let n = m / (p.w * p.h);
        for (var g = 0u; g < CO_GROUPS; g++) {
            for (var c = 0u; c < 4u; c++) {
                let ci = ci0 + 4u * g + c;
                if (ci < p.c_in) {
                    dx[((n * p.c_in + ci) * p.h + iy) * p.w + ix] = acc[j * 4u + g][c];
                }
            }
        }
    }
}

// Kernel width of the `_rows` kernels, fixed per pipeline so that their window loops have
// constant trip counts and the window stays in registers.
override KW: u32 = 3u;
const WINDOW_MAX: u32 = 32u;

// The TN + KW - 1 values of x that a row segment's windows cover in input row iy of the plane
// whose first row is `plane` (an index in rows of x), from column `start` on. iy and columns
// left of x arrive wrapped past the edge; values outside x are 0, the zero padding.
fn x_window(plane: u32, iy: u32, start: u32) -> array<f32, WINDOW_MAX> {
    let row = (plane + min(iy, p.h - 1u)) * p.w;
    var window: array<f32, WINDOW_MAX>;
    for (var t = 0u; t < TN + KW - 1u; t++) {
        let ix = start + t;
        let v = x[row + min(ix, p.w - 1u)];
        window[t] = select(0.0, v, iy < p.h && ix < p.w);
    }
    return window;
}

// Same result as conv2d_forward_tiled for stride 1 (the host checks, and that
// TN + KW - 1 <= WINDOW_MAX). An invocation owns TN consecutive outputs of one row (a segment;
// the last segment of a row may be part empty) and 4 * CO_GROUPS channels. Per input row it
// loads the TN + KW - 1 values the segment's windows cover once and reuses each for every tap
// that reads it: KW times fewer loads of x than one load per tap and output.
@compute @workgroup_size(WG)
fn conv2d_forward_rows(@builtin(local_invocation_index) lid: u32,
                       @builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let per_row = (p.ow + TN - 1u) / TN;
    let segments = p.n * p.oh * per_row;
    // tile_origin counts positions; a segment is TN of them.
    let origin = tile_origin(wid, nwg, p.c_out, segments * TN);
    if (origin.z == 0u) {
        return;
    }
    let co0 = origin.x;
    let live = origin.y / TN + lid < segments;
    let seg = min(origin.y / TN + lid, segments - 1u);
    let ox0 = (seg % per_row) * TN;
    let oy = (seg / per_row) % p.oh;
    let n = seg / (per_row * p.oh);
    let start = ox0 - p.pad; // x column of window slot 0; wraps left of x: >= w
    let taps = p.kh * KW;
    let k_all = p.c_in * taps;
    let ci_step = max(1u, W_SLOTS / (CO_GROUPS * taps));
    var acc: array<vec4<f32>, 32>; // [TN, CO_GROUPS] used of [TN, 4]
    for (var ci0 = 0u; ci0 < p.c_in; ci0 += ci_step) {
        let ci1 = min(ci0 + ci_step, p.c_in);
        // Stage weight[co0 + 4g + c, k] for the round's taps in slot (k - k0) * CO_GROUPS + g.
        workgroupBarrier();
        for (var s = lid; s < (ci1 - ci0) * taps * CO_GROUPS; s += WG) {
            let co = co0 + 4u * (s % CO_GROUPS);
            let k = ci0 * taps + s / CO_GROUPS;
            w_tile[s] = vec4<f32>(
                weight_or_zero(co, p.c_out, co * k_all + k),
                weight_or_zero(co + 1u, p.c_out, (co + 1u) * k_all + k),
                weight_or_zero(co + 2u, p.c_out, (co + 2u) * k_all + k),
                weight_or_zero(co + 3u, p.c_out, (co + 3u) * k_all + k),
            );
        }
        workgroupBarrier();
        var slot = 0u;
        for (var ci = ci0; ci < ci1; ci++) {
            let plane = (n * p.c_in + ci) * p.h;
            for (var ky = 0u; ky < p.kh; ky++) {
                var window = x_window(plane, oy + ky - p.pad, start);
                for (var kx = 0u; kx < KW; kx++) {
                    for (var g = 0u; g < CO_GROUPS; g++) {
                        let wv = w_tile[slot + g];
                        for (var j = 0u; j < TN; j++) {
                            acc[j * 4u + g] += window[j + kx] * wv;
                        }
                    }
                    slot += CO_GROUPS;
                }
            }
        }
    }
    if (!live) {
        return;
    }
    let b = tile_bias(co0);
    for (var j = 0u; j < TN; j++) {
        let ox = ox0 + j;
        if (ox >= p.ow) {
            break;
        }
        for (var g = 0u; g < CO_GROUPS; g++) {
            for (var c = 0u; c < 4u; c++) {
                let co = co0 + 4u * g + c;
                if (co < p.c_out) {
                    let v = acc[j * 4u + g][c] + b[4u * g + c];
                    y[((n * p.c_out + co) * p.oh + oy) * p.ow + ox] = epilogue(v);
                }
            }
        }
    }
}

// Same result as conv2d_backward_input_tiled for stride 1 (the host checks, and that
// TN + KW - 1 <= WINDOW_MAX). An invocation owns TN consecutive inputs of one row (a segment;
// the last segment of a row may be part empty) and 4 * CO_GROUPS input channels. Per row of
// dy it loads the TN + KW - 1 values the segment's taps reach once and reuses each for every
// tap: layers with few input channels (the first convolution has one) are bound by these
// loads, not by the multiply-adds. Sums run over (co, ky, kx) in ascending order.
@compute @workgroup_size(WG)
fn conv2d_backward_input_rows(@builtin(local_invocation_index) lid: u32,
                              @builtin(workgroup_id) wid: vec3<u32>,
                              @builtin(num_workgroups) nwg: vec3<u32>) {
    let per_row = (p.w + TN - 1u) / TN;
    let segments = p.n * p.h * per_row;
    // tile_origin counts positions; a segment is TN of them.
    let origin = tile_origin(wid, nwg, p.c_in, segments * TN);
    if (origin.z == 0u) {
        return;
    }
    let ci0 = origin.x;
    let live = origin.y / TN + lid < segments;
    let seg = min(origin.y / TN + lid, segments - 1u);
    let ix0 = (seg % per_row) * TN;
    let iy = (seg / per_row) % p.h;
    let n = seg / (per_row * p.h);
    // dy column of window slot 0: input ix0 + j takes tap kx from slot j + KW - 1 - kx.
    // Unsigned wrap-around makes columns left of dy compare >= ow.
    let start = ix0 + p.pad - (KW - 1u);
    let taps = p.kh * KW;
    let co_step = max(1u, W_SLOTS / (CO_GROUPS * taps));
    var acc: array<vec4<f32>, 32>; // [TN, CO_GROUPS] used of [TN, 4]
    for (var co0 = 0u; co0 < p.c_out; co0 += co_step) {
        let co1 = min(co0 + co_step, p.c_out);
        // Stage weight[co, ci0 + 4g + c, tap] in slot ((co - co0) * taps + tap) * CO_GROUPS + g.
        workgroupBarrier();
        for (var s = lid; s < (co1 - co0) * taps * CO_GROUPS; s += WG) {
            let ci = ci0 + 4u * (s % CO_GROUPS);
            let t = s / CO_GROUPS;
            let at = (co0 + t / taps) * p.c_in * taps + t % taps; // weight[co, 0, tap]
            w_tile[s] = vec4<f32>(
                weight_or_zero(ci, p.c_in, at + ci * taps),
                weight_or_zero(ci + 1u, p.c_in, at + (ci + 1u) * taps),
                weight_or_zero(ci + 2u, p.c_in, at + (ci + 2u) * taps),
                weight_or_zero(ci + 3u, p.c_in, at + (ci + 3u) * taps),
            );
        }
        workgroupBarrier();
        var slot = 0u;
        for (var co = co0; co < co1; co++) {
            let plane = (n * p.c_out + co) * p.oh;
            for (var ky = 0u; ky < p.kh; ky++) {
                let oy = iy + p.pad - ky; // wraps above dy: >= oh
                let row = (plane + min(oy, p.oh - 1u)) * p.ow;
                var window: array<f32, WINDOW_MAX>;
                for (var t = 0u; t < TN + KW - 1u; t++) {
                    let ox = start + t;
                    let v = dy[row + min(ox, p.ow - 1u)];
                    window[t] = select(0.0, v, oy < p.oh && ox < p.ow);
                }
                for (var kx = 0u; kx < KW; kx++) {
                    for (var g = 0u; g < CO_GROUPS; g++) {
                        let wv = w_tile[slot + g];
                        for (var j = 0u; j < TN; j++) {
                            acc[j * 4u + g] += window[j + KW - 1u - kx] * wv;
                        }
                    }
                    slot += CO_GROUPS;
                }
            }
        }
    }
    if (!live) {
        return;
    }
    for (var j = 0u; j < TN; j++) {
        let ix = ix0 + j;
        if (ix >= p.w) {
            break;
        }
        for (var g = 0u; g < CO_GROUPS; g++) {
            for (var c = 0u; c < 4u; c++) {
                let ci = ci0 + 4u * g + c;
                if (ci < p.c_in) {
                    dx[((n * p.c_in + ci) * p.h + iy) * p.w + ix] = acc[j * 4u + g][c];
                }
            }
        }
    }
}

// Kernel height of conv2d_backward_weight_partial_rows, fixed per pipeline like KW so that its
// tap loops have constant trip counts and its accumulators stay in registers.
override KH: u32 = 3u;
// Most taps (kh * kw) of conv2d_backward_weight_partial_rows, and the row segments each of its
// invocations sums (one column of partial sums each).
const TAPS_MAX: u32 = 16u;
const SEG_RUN: u32 = 16u;

// Partial sums of the weight gradient for stride 1 and one input channel (the first layer of a
// net: the host checks, and that kh * kw <= TAPS_MAX), on row segments. The tiled kernel's tap
// blocks fit such a layer badly (9 taps fill 2 blocks of 8), and it loads each x value once per
// tap. Here an invocation owns 4 * CO_GROUPS output channels, every tap, and a run of SEG_RUN
// consecutive row segments of TN positions. Per segment it loads dy at the TN positions once,
// and per kernel row the TN + KW - 1 values of x the segment's windows cover, each used for
// every tap and channel. Sums run over the run's positions in order (segment, then position);
// positions past the row's end have dy = 0. Overwrites partial[c_out * kh * kw, runs], runs =
// ceil(segments / SEG_RUN); reduce_rows sums each row in order.
@compute @workgroup_size(WG)
fn conv2d_backward_weight_partial_rows(@builtin(global_invocation_id) gid: vec3<u32>,
                                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let per_row = (p.ow + TN - 1u) / TN;
    let segments = p.n * p.oh * per_row;
    let runs = (segments + SEG_RUN - 1u) / SEG_RUN;
    let per_tile = 4u * CO_GROUPS;
    let co_blocks = (p.c_out + per_tile - 1u) / per_tile;
    let i = flat_id(gid, nwg);
    if (i >= runs * co_blocks) {
        return;
    }
    let co0 = (i % co_blocks) * per_tile;
    let run = i / co_blocks;
    var acc: array<vec4<f32>, TAPS_MAX * 4u>; // [tap * 4 + g]
    let s1 = min((run + 1u) * SEG_RUN, segments);
    for (var s = run * SEG_RUN; s < s1; s++) {
        let ox0 = (s % per_row) * TN;
        let oy = (s / per_row) % p.oh;
        let n = s / (per_row * p.oh);
        var d: array<vec4<f32>, 32>; // [j * 4 + g]: dy at position ox0 + j, channels co0 + 4g..
        for (var j = 0u; j < TN; j++) {
            let ox = min(ox0 + j, p.ow - 1u);
            let live = ox0 + j < p.ow;
            for (var g = 0u; g < CO_GROUPS; g++) {
                var v = vec4<f32>(0.0);
                for (var c = 0u; c < 4u; c++) {
                    let co = co0 + 4u * g + c;
                    let at = ((n * p.c_out + min(co, p.c_out - 1u)) * p.oh + oy) * p.ow + ox;
                    v[c] = select(0.0, dy[at], live && co < p.c_out);
                }
                d[j * 4u + g] = v;
            }
        }
        let start = ox0 - p.pad; // x column of window slot 0; wraps left of x: >= w
        for (var ky = 0u; ky < KH; ky++) {
            var window = x_window(n * p.h, oy + ky - p.pad, start);
            for (var kx = 0u; kx < KW; kx++) {
                for (var g = 0u; g < CO_GROUPS; g++) {
                    for (var j = 0u; j < TN; j++) {
                        acc[(ky * KW + kx) * 4u + g] += window[j + kx] * d[j * 4u + g];
                    }
                }
            }
        }
    }
    for (var tap = 0u; tap < KH * KW; tap++) {
        for (var g = 0u; g < CO_GROUPS; g++) {
            for (var c = 0u; c < 4u; c++) {
                let co = co0 + 4u * g + c;
                if (co < p.c_out) {
                    partial[(co * KH * KW + tap) * runs + run] = acc[tap * 4u + g][c];
                }
            }
        }
    }
}

// Positions per round of conv2d_backward_weight_partial_tiled, and their staged offsets.
const M_SLOTS: u32 = 256u;
var<workgroup> m_tile: array<vec4<i32>, M_SLOTS>;

// Invocations that share one block of TN taps in conv2d_backward_weight_partial_tiled (each
// takes every SUBS-th position), so layers with few taps (a 1-channel 3x3 layer has 9) still
// fill a workgroup. The host picks it from the number of tap blocks.
override SUBS: u32 = 1u;

// Partial sums of the weight gradient, like conv2d_backward_weight_partial but as a GEMM
// whose reduction runs over positions: dweight[co, k] = sum_m dy[co, m] * x_col[k, m]. An
// invocation owns 4 * CO_GROUPS channels by TN consecutive taps k = (ci, ky, kx); a workgroup
// owns WG / SUBS such blocks and one chunk of positions. Rounds stage dy of the tile's channels
// at up to M_SLOTS positions, with each position's offsets into x. Invocation (block, sub)
// sums positions r0 + sub, r0 + sub + SUBS, ... of each round, in order.
// Overwrites partial[c_out * c_in * kh * kw, parts * SUBS]; reduce_rows sums each row.
@compute @workgroup_size(WG)
fn conv2d_backward_weight_partial_tiled(@builtin(local_invocation_index) lid: u32,
                                        @builtin(workgroup_id) wid: vec3<u32>,
                                        @builtin(num_workgroups) nwg: vec3<u32>) {
    let taps = p.kh * p.kw;
    let k_all = p.c_in * taps;
    let blocks_per_tile = WG / SUBS;
    let per_tile = 4u * CO_GROUPS;
    let co_blocks = (p.c_out + per_tile - 1u) / per_tile;
    let k_tiles = (k_all + TN * blocks_per_tile - 1u) / (TN * blocks_per_tile);
    let tile = wid.y * nwg.x + wid.x;
    if (tile >= co_blocks * k_tiles * p.parts) {
        return; // the whole workgroup: a spare tile of the 2-D grid
    }
    let co0 = (tile % co_blocks) * per_tile;
    let k0 = (((tile / co_blocks) % k_tiles) * blocks_per_tile + lid % blocks_per_tile) * TN;
    let part = tile / (co_blocks * k_tiles);
    let sub = lid / blocks_per_tile;
    // Each tap's offset into one image of x and its shift of the window. Taps past the end
    // repeat the last one and are not stored.
    var x_tap: array<u32, TN>;
    var ky: array<i32, TN>;
    var kx: array<i32, TN>;
    for (var t = 0u; t < TN; t++) {
        let k = min(k0 + t, k_all - 1u);
        x_tap[t] = (k / taps) * p.h * p.w;
        ky[t] = i32((k % taps) / p.kw);
        kx[t] = i32(k % p.kw);
    }
    let positions = p.n * p.oh * p.ow;
    let m0 = part * p.chunk;
    let m1 = min(m0 + p.chunk, positions);
    let round = min(M_SLOTS, W_SLOTS / CO_GROUPS);
    var acc: array<vec4<f32>, 32>; // [TN, CO_GROUPS] used of [TN, 4]
    for (var r0 = m0; r0 < m1; r0 += round) {
        let r1 = min(r0 + round, m1);
        workgroupBarrier();
        for (var s = lid; s < r1 - r0; s += WG) {
            let m = r0 + s;
            let ox = m % p.ow;
            let oy = (m / p.ow) % p.oh;
            let n = m / (p.ow * p.oh);
            // Image offset and top-left corner of the window (negative in the padding).
            m_tile[s] = vec4<i32>(
                i32(n * p.c_in * p.h * p.w),
                i32(oy * p.stride) - i32(p.pad),
                i32(ox * p.stride) - i32(p.pad),
                0,
            );
            let at = (n * p.c_out * p.oh + oy) * p.ow + ox; // dy[n, 0, oy, ox]
            let plane = p.oh * p.ow;
            for (var g = 0u; g < CO_GROUPS; g++) {
                let co = co0 + 4u * g;
                var v = vec4<f32>(0.0);
                if (co < p.c_out) {
                    v.x = dy[at + co * plane];
                }
                if (co + 1u < p.c_out) {
                    v.y = dy[at + (co + 1u) * plane];
                }
                if (co + 2u < p.c_out) {
                    v.z = dy[at + (co + 2u) * plane];
                }
                if (co + 3u < p.c_out) {
                    v.w = dy[at + (co + 3u) * plane];
                }
                w_tile[s * CO_GROUPS + g] = v;
            }
        }
        workgroupBarrier();
        if (sub < SUBS) {
            for (var m = r0 + sub; m < r1; m += SUBS) {
                let s = m - r0;
                let at = m_tile[s];
                var xv: array<f32, TN>;
                for (var t = 0u; t < TN; t++) {
                    let iy = u32(at.y + ky[t]);
                    let ix = u32(at.z + kx[t]);
                    let v = x[u32(at.x) + x_tap[t] + min(iy, p.h - 1u) * p.w + min(ix, p.w - 1u)];
                    xv[t] = select(0.0, v, iy < p.h && ix < p.w);
                }
                for (var g = 0u; g < CO_GROUPS; g++) {
                    let dv = w_tile[s * CO_GROUPS + g];
                    for (var t = 0u; t < TN; t++) {
                        acc[t * 4u + g] += xv[t] * dv;
                    }
                }
            }
        }
    }
    if (sub >= SUBS) {
        return;
    }
    let cols = p.parts * SUBS;
    for (var t = 0u; t < TN; t++) {
        let k = k0 + t;
        if (k >= k_all) {
            break;
        }
        for (var g = 0u; g < CO_GROUPS; g++) {
            for (var c = 0u; c < 4u; c++) {
                let co = co0 + 4u * g + c;
                if (co < p.c_out) {
                    partial[(co * k_all + k) * cols + part * SUBS + sub] = acc[t * 4u + g][c];
                }
            }
        }
    }
}
