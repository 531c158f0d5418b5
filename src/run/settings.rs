//! The settings of a training run: every choice in one serializable struct, read from a TOML
//! file and overridden by flags, and written out in full with the run.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::Format;
use crate::error::{shape_err, Result};
use crate::ops::augment::Augment;
use crate::ops::optim::Optimizer;
use crate::train::LrSchedule;

/// How the data is split into training, validation and test images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitKind {
    /// Stratified random train/validation/test by fractions (person-dependent).
    Random,
    /// Stratified k-fold over images (person-dependent).
    Kfold,
    /// Leave one subject out: each person is the test set once (person-independent).
    Loso,
    /// FER2013's own Usage column: Training, PublicTest (validation), PrivateTest (test).
    Official,
}

/// Everything a `fer train` run depends on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The data set: a JAFFE folder, a folder of class folders, or a FER2013 CSV. None: the
    /// built-in synthetic face set.
    pub data: Option<PathBuf>,
    pub format: Option<Format>,
    /// Built-in model name (small-vgg, fer-net) or a JSON model file.
    pub model: String,
    /// Square input side; None: the model's own.
    pub input_size: Option<usize>,
    /// seven, neutral-vs-rest, or a custom list or grouping (see `Task::parse`).
    pub task: String,
    pub split: SplitKind,
    pub folds: usize,
    pub val_fraction: f64,
    pub test_fraction: f64,
    pub epochs: usize,
    pub batch_size: usize,
    /// sgd, nesterov, adam, adamw, rmsprop.
    pub optimizer: String,
    pub lr: f32,
    pub momentum: f32,
    pub weight_decay: f32,
    /// constant, step, cosine, plateau.
    pub schedule: String,
    pub warmup_steps: usize,
    pub clip_norm: Option<f32>,
    pub label_smoothing: f32,
    /// none or balanced (inverse class frequency of the training images).
    pub class_weights: String,
    pub augment: bool,
    pub augmentation: Augment,
    /// Epochs without a better validation loss before stopping (0: never stop early).
    pub patience: usize,
    pub seed: u64,
    /// Train this many seeds (seed, seed + 1, ...) on every split.
    pub seeds: usize,
    /// auto (the crop box when one is given or the data is synthetic, else none), none
    /// (the whole image), crop (the crop box), or face (detect, align and crop the face;
    /// the crop box, or the whole image, is the fallback when no face is found).
    pub preprocess: String,
    /// Face mode: level the eyes and normalize their distance.
    pub align: bool,
    /// Face mode: margin added to each side of the detected box, fraction of its side.
    pub face_margin: f32,
    /// Face mode: keep the crops in a cache folder, so later runs on the same images and
    /// settings detect nothing.
    pub cache: bool,
    /// The cache folder; None: `$XDG_CACHE_HOME/fer-wgpu` or `~/.cache/fer-wgpu`.
    pub cache_dir: Option<PathBuf>,
    /// Crop box `left,top,width,height`, fractions or pixels.
    pub crop: Option<String>,
    pub equalize: bool,
    /// per-image (zero mean, unit variance) or none (values in [0, 1]).
    pub normalize: String,
    pub skip_unreadable: bool,
    pub subject_pattern: Option<String>,
    /// Difficulty of the synthetic set, 0 to 1.
    pub synthetic_difficulty: f32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data: None,
            format: None,
            model: "fer-net".into(),
            input_size: None,
            task: "seven".into(),
            split: SplitKind::Random,
            folds: 5,
            val_fraction: 0.15,
            test_fraction: 0.15,
            epochs: 30,
            batch_size: 16,
            optimizer: "adam".into(),
            lr: 5e-3,
            momentum: 0.9,
            weight_decay: 0.0,
            schedule: "cosine".into(),
            warmup_steps: 0,
            clip_norm: None,
            label_smoothing: 0.0,
            class_weights: "none".into(),
            augment: true,
            augmentation: Augment::default(),
            patience: 10,
            seed: 42,
            seeds: 1,
            preprocess: "auto".into(),
            align: true,
            face_margin: 0.15,
            cache: true,
            cache_dir: None,
            crop: None,
            equalize: false,
            normalize: "per-image".into(),
            skip_unreadable: false,
            subject_pattern: None,
            synthetic_difficulty: 0.5,
        }
    }
}

fn bad(msg: String) -> crate::Error {
    shape_err("settings", msg)
}

impl Settings {
    /// Reads a TOML settings file; unknown keys are errors, so typos do not pass silently.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::Error::Data {
            path: path.display().to_string(),
            msg: format!("cannot read the settings file: {e}"),
        })?;
        toml::from_str(&text).map_err(|e| crate::Error::Data {
            path: path.display().to_string(),
            msg: format!("not valid settings: {e}"),
        })
    }

    /// The settings as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("settings always serialize")
    }

    /// The optimizer rule.
    pub fn optimizer_rule(&self) -> Result<Optimizer> {
        let wd = self.weight_decay;
        let rule = match self.optimizer.as_str() {
            "sgd" => Optimizer::Sgd {
                momentum: self.momentum,
                nesterov: false,
                weight_decay: wd,
            },
            "nesterov" => Optimizer::Sgd {
                momentum: self.momentum,
                nesterov: true,
                weight_decay: wd,
            },
            "adam" => Optimizer::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: wd,
            },
            "adamw" => Optimizer::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: wd,
            },
            "rmsprop" => Optimizer::RmsProp {
                alpha: 0.99,
                eps: 1e-8,
                weight_decay: wd,
            },
            other => {
                return Err(bad(format!(
                    "unknown optimizer {other:?}; use sgd, nesterov, \
                adam, adamw or rmsprop"
                )))
            }
        };
        rule.validate()?;
        Ok(rule)
    }

    /// The learning-rate schedule.
    pub fn schedule_rule(&self) -> Result<LrSchedule> {
        Ok(match self.schedule.as_str() {
            "constant" => LrSchedule::Constant,
            "step" => LrSchedule::Step {
                every: (self.epochs / 3).max(1),
                gamma: 0.1,
            },
            "cosine" => LrSchedule::Cosine {
                min_lr: self.lr * 0.01,
            },
            "plateau" => LrSchedule::Plateau {
                factor: 0.5,
                patience: 3,
                min_lr: self.lr * 1e-3,
            },
            other => {
                return Err(bad(format!(
                    "unknown schedule {other:?}; use constant, step, \
                cosine or plateau"
                )))
            }
        })
    }

    /// Checks what can be checked before any data is read.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(bad(format!(
                "learning rate must be > 0, got {}; try --lr 0.001",
                self.lr
            )));
        }
        if self.epochs == 0 || self.batch_size == 0 || self.seeds == 0 {
            return Err(bad("epochs, batch size and seeds must be at least 1".into()));
        }
        if self.split == SplitKind::Kfold && self.folds < 2 {
            return Err(bad(format!(
                "k-fold needs at least 2 folds, got {}",
                self.folds
            )));
        }
        if !["none", "balanced"].contains(&self.class_weights.as_str()) {
            return Err(bad(format!(
                "class weights {:?}: use none or balanced",
                self.class_weights
            )));
        }
        if !["auto", "none", "crop", "face"].contains(&self.preprocess.as_str()) {
            return Err(bad(format!(
                "preprocess {:?}: use auto, none, crop or face",
                self.preprocess
            )));
        }
        if !(0.0..=1.0).contains(&self.face_margin) {
            return Err(bad(format!(
                "face margin {} is outside 0 to 1 (a fraction of the face box's side)",
                self.face_margin
            )));
        }
        if self.preprocess == "none" && self.crop.is_some() {
            return Err(bad(
                "a crop box was given with preprocess none; drop one of them".into(),
            ));
        }
        if !["per-image", "none"].contains(&self.normalize.as_str()) {
            return Err(bad(format!(
                "normalize {:?}: use per-image or none",
                self.normalize
            )));
        }
        if !(0.0..=1.0).contains(&self.synthetic_difficulty) {
            return Err(bad("synthetic difficulty must be between 0 and 1".into()));
        }
        if self.input_size == Some(0) {
            return Err(bad("input size must be at least 1".into()));
        }
        self.optimizer_rule()?;
        self.schedule_rule()?;
        self.augmentation.validate()
    }
}
