//! Training: the settings, the backend interface shared by the GPU path and the CPU
//! reference, the epoch loop, and evaluation reports.
//!
//! A step is one recipe, run by both backends: gather the batch, forward through every layer
//! (training mode), fused softmax cross-entropy, metrics, backward in reverse layer order,
//! optional clipping by global gradient norm, then the optimizer update of every trainable,
//! unfrozen parameter. The GPU backend records all of it into one command buffer and submits
//! it once per step; the CPU backend runs it eagerly with the CPU twins of the same ops.

pub mod cpu;
pub mod gpu;
pub mod report;
pub mod schedule;

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{shape_err, Result};
use crate::model::ParamSet;
use crate::ops::augment::Augment;
use crate::ops::optim::Optimizer;
pub use report::EvalReport;
pub use schedule::{LrSchedule, Scheduler};

/// Everything that decides a training run (with the data and the model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: Optimizer,
    pub lr: f32,
    pub schedule: LrSchedule,
    /// Steps of linear warm-up from lr/warmup_steps to lr.
    pub warmup_steps: usize,
    /// Clip the global gradient norm to this value.
    pub clip_norm: Option<f32>,
    pub label_smoothing: f32,
    /// One weight per class for the loss (None: all 1).
    pub class_weights: Option<Vec<f32>>,
    /// Layers whose parameters the optimizer leaves alone (fine-tuning).
    pub frozen: Vec<String>,
    /// Random augmentation of training batches (None: the exact images).
    #[serde(default)]
    pub augment: Option<Augment>,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 16,
            optimizer: Optimizer::adam(),
            lr: 1e-3,
            schedule: LrSchedule::Constant,
            warmup_steps: 0,
            clip_norm: None,
            label_smoothing: 0.0,
            class_weights: None,
            frozen: vec![],
            augment: None,
            seed: 42,
        }
    }
}

impl TrainConfig {
    /// Checks the settings against the data and the model's layer names.
    pub fn validate(&self, train_len: usize, classes: usize, layer_names: &[String]) -> Result<()> {
        let bad = |msg: String| Err(shape_err("train", msg));
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("learning rate must be > 0, got {}", self.lr));
        }
        if self.batch_size == 0 || self.batch_size > train_len {
            return bad(format!(
                "batch size {} must be between 1 and the {train_len} training \
                images",
                self.batch_size
            ));
        }
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if let Some(w) = &self.class_weights {
            if w.len() != classes || w.iter().any(|v| !(*v > 0.0 && v.is_finite())) {
                return bad(format!(
                    "class weights {w:?}: need {classes} positive numbers"
                ));
            }
        }
        if let Some(n) = self.frozen.iter().find(|n| !layer_names.contains(n)) {
            return bad(format!(
                "cannot freeze {n:?}: the model's layers are {layer_names:?}"
            ));
        }
        if let Some(c) = self.clip_norm {
            if !(c > 0.0 && c.is_finite()) {
                return bad(format!("clip norm must be > 0, got {c}"));
            }
        }
        if let Some(a) = &self.augment {
            a.validate()?;
        }
        self.optimizer.validate()
    }

    /// The 32-bit seed of the augmentation draws.
    pub fn augment_seed(&self) -> u32 {
        (crate::seed::derive(self.seed, "augment") >> 32) as u32
    }
}

/// What one epoch of training measured (over the training batches, in training mode).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    pub loss: f64,
    pub accuracy: f64,
    pub samples: u64,
}

/// One training implementation: the GPU path or the CPU reference. The epoch loop
/// ([`fit`]) drives both through this interface, so they can be compared step by step.
pub trait Backend {
    /// A short description for logs ("gpu: llvmpipe", "cpu reference").
    fn describe(&self) -> String;
    /// Starts an epoch over the training set in `order`, clearing the metrics.
    fn begin_epoch(&mut self, order: &[u32]) -> Result<()>;
    /// Runs training step `batch` of the epoch (images `order[batch*n..(batch+1)*n]`) at `lr`.
    fn step(&mut self, batch: usize, lr: f32) -> Result<()>;
    /// Ends the epoch and reads its metrics.
    fn end_epoch(&mut self) -> Result<EpochStats>;
    /// Loss, accuracy and confusion on `data`, in inference mode.
    fn evaluate(&mut self, data: &Dataset) -> Result<EvalReport>;
    /// Class probabilities `[len, classes]` for `images` `[len, c, h, w]`.
    fn predict(&mut self, images: &[f32]) -> Result<Vec<f32>>;
    /// The current parameters and running statistics.
    fn params(&self) -> Result<ParamSet>;
    /// The optimizer state and the number of steps taken.
    fn optimizer_state(&self) -> Result<(ParamSet, u64)>;
    /// Replaces the parameters (and, when given, the optimizer state and step count), and
    /// sets the number of epochs begun: restoring the best weights, or resuming a run.
    fn restore(
        &mut self,
        params: &ParamSet,
        optimizer: Option<&(ParamSet, u64)>,
        epochs: u32,
    ) -> Result<()>;
}

/// What both trainers do first: plan the model at the batch size, check the settings and the
/// data against it, and take the given parameters (checked) or fresh ones from the seed.
fn prepare(
    spec: &crate::model::ModelSpec,
    config: &TrainConfig,
    train: &Dataset,
    params: Option<ParamSet>,
) -> Result<(crate::model::Plan, ParamSet)> {
    let plan = spec.plan(config.batch_size)?;
    config.validate(train.len(), spec.classes, &spec.layer_names())?;
    check_data(spec, train)?;
    let params = match params {
        Some(p) => {
            p.check_matches(&plan, "the initial parameters")?;
            p
        }
        None => ParamSet::init(&plan, crate::seed::derive(config.seed, "init")),
    };
    Ok((plan, params))
}

/// Fails unless the data fits the model: input shape, class count, not empty.
fn check_data(spec: &crate::model::ModelSpec, data: &Dataset) -> Result<()> {
    if data.shape != spec.input {
        return Err(shape_err(
            "train",
            format!(
                "images are {:?} but model {} takes {:?}; resize \
            them (the input size setting) or pick another model",
                data.shape, spec.name, spec.input
            ),
        ));
    }
    if data.class_names.len() != spec.classes {
        return Err(shape_err(
            "train",
            format!(
                "the data has {} classes but model {} has {}",
                data.class_names.len(),
                spec.name,
                spec.classes
            ),
        ));
    }
    if data.is_empty() {
        return Err(shape_err("train", "the data set is empty"));
    }
    Ok(())
}

/// One epoch of a run's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f32,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub images_per_s: f64,
}

/// Trains for `config.epochs` epochs, evaluating on `val` after each when given. `on_epoch`
/// sees each record as it completes (for progress and logs).
pub fn fit(
    backend: &mut dyn Backend,
    config: &TrainConfig,
    train_len: usize,
    val: Option<&Dataset>,
    mut on_epoch: impl FnMut(&EpochRecord),
) -> Result<Vec<EpochRecord>> {
    let steps = train_len / config.batch_size;
    let mut scheduler = Scheduler::new(
        config.lr,
        config.schedule,
        config.epochs,
        config.warmup_steps,
    );
    let mut history = vec![];
    for epoch in 0..config.epochs {
        let start = std::time::Instant::now();
        backend.begin_epoch(&crate::seed::shuffled(config.seed, epoch, train_len))?;
        let lr = scheduler.lr(epoch, epoch * steps);
        for b in 0..steps {
            backend.step(b, scheduler.lr(epoch, epoch * steps + b))?;
        }
        let stats = backend.end_epoch()?;
        let seconds = start.elapsed().as_secs_f64();
        let eval = val.map(|v| backend.evaluate(v)).transpose()?;
        scheduler.observe(eval.as_ref().map_or(stats.loss, |e| e.loss) as f32);
        let record = EpochRecord {
            epoch: epoch + 1,
            lr,
            train_loss: stats.loss,
            train_accuracy: stats.accuracy,
            val_loss: eval.as_ref().map(|e| e.loss),
            val_accuracy: eval.as_ref().map(|e| e.accuracy),
            images_per_s: (steps * config.batch_size) as f64 / seconds,
        };
        log::info!(
            "epoch {}: loss {:.4} acc {:.3} lr {:.2e} {:.1} img/s",
            record.epoch,
            record.train_loss,
            record.train_accuracy,
            lr,
            record.images_per_s
        );
        on_epoch(&record);
        history.push(record);
    }
    Ok(history)
}
