//! Evaluation reports: accuracy, per-class precision, recall and F1, and the confusion matrix.

use serde::{Deserialize, Serialize};

/// How a model did on a data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub loss: f64,
    pub accuracy: f64,
    pub samples: u64,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<u64>>,
    pub precision: Vec<f64>,
    pub recall: Vec<f64>,
    pub f1: Vec<f64>,
}

impl EvalReport {
    /// The report from summed losses and the confusion counts (row-major, k x k). A class
    /// that is never predicted (or never present) gets precision (recall) 0.
    pub fn from_counts(
        loss_sum: f64,
        samples: u64,
        correct: u64,
        confusion: &[u64],
        k: usize,
    ) -> Self {
        let rows: Vec<Vec<u64>> = confusion.chunks(k).map(|r| r.to_vec()).collect();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let mut precision = vec![];
        let mut recall = vec![];
        let mut f1 = vec![];
        for (c, row) in rows.iter().enumerate() {
            let tp = row[c];
            let predicted: u64 = rows.iter().map(|r| r[c]).sum();
            let actual: u64 = row.iter().sum();
            let (p, r) = (ratio(tp, predicted), ratio(tp, actual));
            precision.push(p);
            recall.push(r);
            f1.push(if p + r == 0.0 {
                0.0
            } else {
                2.0 * p * r / (p + r)
            });
        }
        Self {
            loss: if samples == 0 {
                0.0
            } else {
                loss_sum / samples as f64
            },
            accuracy: ratio(correct, samples),
            samples,
            confusion: rows,
            precision,
            recall,
            f1,
        }
    }
}
