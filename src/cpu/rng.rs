//! The counter-based hash behind dropout masks; the twin of `pcg_hash` and `hash_uniform` in
//! shaders/prelude.wgsl, bit for bit (u32 wrapping arithmetic, the same shifts).

/// PCG-style integer hash.
pub fn pcg_hash(v: u32) -> u32 {
    let state = v.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// Uniform in [0, 1) from (seed, index), with 24 bits of resolution.
pub fn hash_uniform(seed: u32, index: u32) -> f32 {
    let h = pcg_hash(index ^ pcg_hash(seed));
    (h >> 8) as f32 * (1.0 / 16_777_216.0)
}
