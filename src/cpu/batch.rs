//! CPU twin of shaders/batch.wgsl.

/// The batch at `order[offset..offset + n]` (positions past the end repeat the last) from
/// `images` holding `sample` values per image.
pub fn gather_batch(
    images: &[f32],
    labels: &[u32],
    order: &[u32],
    offset: usize,
    n: usize,
    sample: usize,
) -> (Vec<f32>, Vec<u32>) {
    let mut x = Vec::with_capacity(n * sample);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let src = order[(offset + i).min(order.len() - 1)] as usize;
        x.extend_from_slice(&images[src * sample..(src + 1) * sample]);
        y.push(labels[src]);
    }
    (x, y)
}
