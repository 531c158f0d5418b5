//! CPU twin of shaders/metrics.wgsl.

/// Epoch accumulators: the loss sum and (samples, correct, confusion [true, predicted]).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsAcc {
    pub k: usize,
    pub loss_sum: f64,
    pub samples: u64,
    pub correct: u64,
    pub confusion: Vec<u64>,
}

impl MetricsAcc {
    pub fn new(k: usize) -> Self {
        Self {
            k,
            loss_sum: 0.0,
            samples: 0,
            correct: 0,
            confusion: vec![0; k * k],
        }
    }

    /// Adds the first `valid` samples of a batch (argmax prediction, first class on ties).
    pub fn metrics_accumulate(
        &mut self,
        sample_loss: &[f32],
        prob: &[f32],
        labels: &[u32],
        valid: usize,
    ) {
        let k = self.k;
        for i in 0..valid.min(labels.len()) {
            let row = &prob[i * k..(i + 1) * k];
            let best = (1..k).fold(0, |b, j| if row[j] > row[b] { j } else { b });
            let label = labels[i] as usize;
            self.loss_sum += sample_loss[i] as f64;
            self.samples += 1;
            self.correct += (best == label) as u64;
            if label < k {
                self.confusion[label * k + best] += 1;
            }
        }
    }
}
