//! Learning-rate schedules. All are functions of the epoch (plus a linear warm-up over the
//! first steps), except reduce-on-plateau, which also watches the validation loss.

use serde::{Deserialize, Serialize};

/// How the learning rate moves between epochs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        every: usize,
        gamma: f32,
    },
    /// Half a cosine from the base rate at epoch 0 to `min_lr` at the last epoch.
    Cosine {
        min_lr: f32,
    },
    /// Multiply by `factor` when the watched loss has not improved for `patience` epochs.
    Plateau {
        factor: f32,
        patience: usize,
        min_lr: f32,
    },
}

/// The schedule's state over a run (serializable, so a resumed run continues it exactly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scheduler {
    pub base_lr: f32,
    pub schedule: LrSchedule,
    pub epochs: usize,
    pub warmup_steps: usize,
    plateau_lr: f32,
    /// The best watched loss so far (None before the first).
    best: Option<f32>,
    bad_epochs: usize,
}

impl Scheduler {
    pub fn new(base_lr: f32, schedule: LrSchedule, epochs: usize, warmup_steps: usize) -> Self {
        Self {
            base_lr,
            schedule,
            epochs,
            warmup_steps,
            plateau_lr: base_lr,
            best: None,
            bad_epochs: 0,
        }
    }

    /// The rate for `epoch` (0-based) at global step `t` (0-based).
    pub fn lr(&self, epoch: usize, t: usize) -> f32 {
        let base = match self.schedule {
            LrSchedule::Constant => self.base_lr,
            LrSchedule::Step { every, gamma } => {
                self.base_lr * gamma.powi((epoch / every.max(1)) as i32)
            }
            LrSchedule::Cosine { min_lr } => {
                let progress = epoch as f64 / (self.epochs.max(2) - 1) as f64;
                let cos = (1.0 + (std::f64::consts::PI * progress).cos()) / 2.0;
                (min_lr as f64 + (self.base_lr - min_lr) as f64 * cos) as f32
            }
            LrSchedule::Plateau { .. } => self.plateau_lr,
        };
        if t < self.warmup_steps {
            base * (t + 1) as f32 / self.warmup_steps as f32
        } else {
            base
        }
    }

    /// Reports an epoch's watched loss (reduce-on-plateau only); returns true when the rate
    /// was just reduced.
    pub fn observe(&mut self, loss: f32) -> bool {
        let LrSchedule::Plateau {
            factor,
            patience,
            min_lr,
        } = self.schedule
        else {
            return false;
        };
        if self.best.is_none_or(|best| loss < best) {
            self.best = Some(loss);
            self.bad_epochs = 0;
            return false;
        }
        self.bad_epochs += 1;
        if self.bad_epochs > patience && self.plateau_lr > min_lr {
            self.plateau_lr = (self.plateau_lr * factor).max(min_lr);
            self.bad_epochs = 0;
            return true;
        }
        false
    }
}
