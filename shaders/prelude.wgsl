// Shared helpers, prepended by the host (src/gpu/shaders.rs) to every other shaders/*.wgsl file
// before compilation, because WGSL has no include. Keep it small: index maths and the hash RNG.
//
// Dispatch convention: every kernel runs one invocation per element of some tensor, in
// workgroups of WG invocations, on a 2-D grid of workgroups (the x dimension is capped by the
// adapter's max_compute_workgroups_per_dimension, so large tensors spill into y). flat_id()
// turns the grid position into the element index; the host sizes the grid with
// gpu::grid_for(), and every entry point returns early when the index is past its element
// count.
//
// Every loop must end: it runs over a range computed from uniform parameters or constants,
// with a step of at least one. The host compiles these files without wgpu's loop bounding
// (src/gpu/kernel.rs says why), so an endless loop would be undefined behaviour.

const WG: u32 = 64u;

fn flat_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * (nwg.x * WG) + gid.x;
}

// Counter-based random numbers: a PCG-style integer hash of (seed, index). The same function is
// written in Rust (cpu::rng::hash_uniform), so the CPU reference draws identical masks.
fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// Uniform in [0, 1) with 24 bits of resolution, exactly representable in f32.
fn hash_uniform(seed: u32, index: u32) -> f32 {
    let h = pcg_hash(index ^ pcg_hash(seed));
    return f32(h >> 8u) * (1.0 / 16777216.0);
}
