// Training and evaluation metrics accumulated on the GPU across the steps of an epoch, so the
// host reads them once per epoch instead of once per step. Host side: src/ops/metrics.rs;
// CPU twin: src/cpu/metrics.rs.

struct MetricsParams {
    n: u32,      // batch size
    k: u32,      // classes
    valid: u32,  // leading samples of the batch that count (the rest pad the last eval batch)
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: MetricsParams;
@group(0) @binding(1) var<storage, read> sample_loss: array<f32>; // [n] weighted per-sample
@group(0) @binding(2) var<storage, read> prob: array<f32>;        // [n, k]
@group(0) @binding(3) var<storage, read> labels: array<u32>;      // [n]
@group(0) @binding(4) var<storage, read_write> loss_sum: array<f32>; // [1] += over the epoch
@group(0) @binding(5) var<storage, read_write> counts: array<u32>;   // [2 + k*k] +=: samples,
                                                                      // correct, confusion
                                                                      // [true, predicted]

// A single invocation, samples in order: adds each valid sample's loss, counts it, and counts
// it in the confusion matrix under its argmax prediction (the first class on ties).
// Accumulates (+=): the host clears the buffers at the start of an epoch.
@compute @workgroup_size(1)
fn metrics_accumulate() {
    var loss = 0.0;
    for (var i = 0u; i < min(p.valid, p.n); i++) {
        var best = 0u;
        for (var j = 1u; j < p.k; j++) {
            if (prob[i * p.k + j] > prob[i * p.k + best]) {
                best = j;
            }
        }
        let label = labels[i];
        loss += sample_loss[i];
        counts[0] += 1u;
        if (best == label) {
            counts[1] += 1u;
        }
        if (label < p.k) {
            counts[2u + label * p.k + best] += 1u;
        }
    }
    loss_sum[0] += loss;
}
