//! One seed drives every random choice. Each use draws from its own stream, derived from the
//! run's seed and a fixed name, so adding a draw in one place never shifts another.

/// SplitMix64's finalizer: a bijective mix of 64 bits.
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of stream `name` (e.g. "init", "shuffle") under `seed`.
pub fn derive(seed: u64, name: &str) -> u64 {
    // FNV-1a of the name, then mixed with the seed.
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    mix64(seed ^ mix64(h))
}

/// A 32-bit seed for the dropout mask of layer `layer` at global step `t`.
pub fn dropout_seed(seed: u64, t: u64, layer: usize) -> u32 {
    let s = derive(seed, "dropout");
    (mix64(s ^ mix64(t.wrapping_mul(0x1000) ^ layer as u64)) >> 32) as u32
}

/// The seeded permutation of 0..n for `epoch` (Fisher-Yates on a ChaCha8 stream).
pub fn shuffled(seed: u64, epoch: usize, n: usize) -> Vec<u32> {
    use rand::{Rng, SeedableRng};
    let mut rng =
        rand_chacha::ChaCha8Rng::seed_from_u64(mix64(derive(seed, "shuffle") ^ epoch as u64));
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    order
}
