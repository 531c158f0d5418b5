// Image augmentation on the batch already on the GPU: per sample and per epoch, a random
// horizontal flip, rotation, zoom, shift and brightness/contrast jitter, with bilinear
// sampling and zero (the normalized mean) outside the image. The draws come from the hash RNG
// keyed by (seed, epoch, the sample's index in the data set), so a sample gets the same
// transform wherever it lands in the batch, and a new one each epoch. Host side:
// src/ops/augment.rs; CPU twin: src/cpu/augment.rs.

struct AugmentParams {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    seed: u32,
    epoch: u32,         // written at the start of each epoch
    offset: u32,        // position in `order` of the batch's first sample, written per step
    count: u32,         // entries of `order`
    flip: u32,          // 1: flip half of the samples horizontally
    max_rotate: f32,    // radians, uniform in [-max, max]
    max_zoom: f32,      // scale uniform in [1 - max, 1 + max]
    max_shift: f32,     // fraction of the side, uniform in [-max, max]
    max_brightness: f32, // added, uniform in [-max, max]
    max_contrast: f32,  // factor uniform in [1 - max, 1 + max]
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: AugmentParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;        // [n, c, h, w] gathered batch
@group(0) @binding(2) var<storage, read> order: array<u32>;    // [count]
@group(0) @binding(3) var<storage, read_write> y: array<f32>;  // [n, c, h, w]

// Draw k (0..7) of a sample: uniform in [-1, 1).
fn draw(id: u32, k: u32) -> f32 {
    return 2.0 * hash_uniform(pcg_hash(p.seed ^ pcg_hash(p.epoch)), id * 8u + k) - 1.0;
}

fn pixel(plane: u32, iy: i32, ix: i32) -> f32 {
    if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) {
        return 0.0;
    }
    return x[(plane * p.h + u32(iy)) * p.w + u32(ix)];
}

// One invocation per output value (n, c, oy, ox): the inverse transform of its position,
// sampled bilinearly from the sample's image, then brightness and contrast. Overwrites y.
@compute @workgroup_size(WG)
fn augment_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_id(gid, nwg);
    if (i >= p.n * p.c * p.h * p.w) {
        return;
    }
    let ox = i % p.w;
    let oy = (i / p.w) % p.h;
    let plane = i / (p.w * p.h);
    let n = plane / p.c;
    let id = order[min(p.offset + n, p.count - 1u)];
    let flip = p.flip == 1u && draw(id, 0u) < 0.0;
    let angle = draw(id, 1u) * p.max_rotate;
    let zoom = 1.0 + draw(id, 2u) * p.max_zoom;
    let tx = draw(id, 3u) * p.max_shift * f32(p.w);
    let ty = draw(id, 4u) * p.max_shift * f32(p.h);
    let brightness = draw(id, 5u) * p.max_brightness;
    let contrast = 1.0 + draw(id, 6u) * p.max_contrast;

    // Output position relative to the centre, shifted back, rotated back, unzoomed.
    let cx = (f32(p.w) - 1.0) * 0.5;
    let cy = (f32(p.h) - 1.0) * 0.5;
    let dx = f32(ox) - cx - tx;
    let dy = f32(oy) - cy - ty;
    let cs = cos(angle);
    let sn = sin(angle);
    var sx = (cs * dx + sn * dy) / zoom + cx;
    let sy = (-sn * dx + cs * dy) / zoom + cy;
    if (flip) {
        sx = f32(p.w) - 1.0 - sx;
    }
    let x0 = floor(sx);
    let y0 = floor(sy);
    let fx = sx - x0;
    let fy = sy - y0;
    let ix = i32(x0);
    let iy = i32(y0);
    let top = pixel(plane, iy, ix) * (1.0 - fx) + pixel(plane, iy, ix + 1) * fx;
    let bottom = pixel(plane, iy + 1, ix) * (1.0 - fx) + pixel(plane, iy + 1, ix + 1) * fx;
    y[i] = (top * (1.0 - fy) + bottom * fy) * contrast + brightness;
}
