//! `fer train` as a library: load the data, split it, train every seed on every split with
//! early stopping, evaluate on the held-out images, and leave a run folder a person can read:
//! the settings, metrics.csv, plots, checkpoints, summary.json and report.md.
//!
//! A run can be interrupted (a flag checked after every step); it then saves its exact state,
//! and [`Experiment::resume`] continues it with the same seed streams: the final weights are
//! bit-identical to an uninterrupted run's. (The training loss and accuracy of the one
//! interrupted epoch cover only the steps after the resume.)

pub mod files;
pub mod plots;
pub mod settings;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::data::splits::{self, Split};
use crate::data::synth::{generate, SynthOptions};
use crate::data::{
    build_dataset_cached, loaders, BuildReport, Dataset, FaceSettings, LoadOptions, Preprocess,
    RawSet, Task,
};
use crate::error::{shape_err, Error, Result};
use crate::gpu::GpuContext;
use crate::model::{builtin, Checkpoint, ModelSpec, ParamSet};
use crate::train::cpu::CpuTrainer;
use crate::train::gpu::GpuTrainer;
use crate::train::{Backend, EpochRecord, EvalReport, Scheduler, TrainConfig};
pub use settings::{Settings, SplitKind};

/// The crop applied to the built-in synthetic set when no crop is given.
pub const SYNTHETIC_FACE_CROP: &str = "0.15,0.12,0.7,0.78";

/// Raised by the epoch loop when the interrupt flag was set; the state is saved.
pub const INTERRUPTED: &str = "interrupted";

/// What one seed on one split gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub name: String,
    pub seed: u64,
    pub split: String,
    pub epochs_trained: usize,
    pub best_epoch: usize,
    pub test_images: u64,
    pub test_accuracy: f64,
    pub test_balanced_accuracy: f64,
    pub test_loss: f64,
    pub confusion: Vec<Vec<u64>>,
    pub history: Vec<EpochRecord>,
}

/// Mean, spread and range of one figure over runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// Sample standard deviation (n - 1); 0 for a single value.
    pub fn of(values: &[f64]) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n.max(1.0);
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Self {
            mean,
            std: var.sqrt(),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// The whole experiment's outcome (summary.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub model: String,
    pub task: String,
    pub split: SplitKind,
    pub classes: Vec<String>,
    pub images: usize,
    pub backend: String,
    pub runs: Vec<RunResult>,
    pub test_accuracy: Spread,
    pub test_balanced_accuracy: Spread,
    /// Summed over runs, `[true][predicted]`.
    pub confusion: Vec<Vec<u64>>,
    /// Face mode's counts over the data set (absent without face mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faces: Option<crate::data::FaceSummary>,
}

/// Where an interrupted run stands (state.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Progress {
    done: Vec<RunResult>,
    current: Option<CurrentRun>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CurrentRun {
    name: String,
    epoch: usize,
    step: usize,
    scheduler: Scheduler,
    /// The best validation loss so far (None before the first epoch).
    best_val: Option<f64>,
    best_epoch: usize,
    bad_epochs: usize,
    history: Vec<EpochRecord>,
}

/// Balanced accuracy: the mean of the per-class recalls (classes present in the test set).
pub fn balanced_accuracy(report: &EvalReport) -> f64 {
    let recalls: Vec<f64> = report
        .confusion
        .iter()
        .zip(&report.recall)
        .filter(|(row, _)| row.iter().sum::<u64>() > 0)
        .map(|(_, r)| *r)
        .collect();
    recalls.iter().sum::<f64>() / recalls.len().max(1) as f64
}

/// The compute backend: the GPU, or the CPU reference.
pub enum Compute {
    Gpu(Box<GpuContext>),
    Cpu,
}

impl Compute {
    pub fn describe(&self) -> String {
        match self {
            Self::Gpu(ctx) => format!("gpu: {} ({:?})", ctx.info.name, ctx.info.backend),
            Self::Cpu => "cpu reference (slow)".into(),
        }
    }

    fn trainer<'c>(
        &'c self,
        spec: &ModelSpec,
        config: &TrainConfig,
        train: &Dataset,
        params: Option<ParamSet>,
    ) -> Result<Box<dyn Backend + 'c>> {
        Ok(match self {
            Self::Gpu(ctx) => Box::new(GpuTrainer::new(ctx, spec, config, train, params)?),
            Self::Cpu => Box::new(CpuTrainer::new(spec, config, train, params)?),
        })
    }
}

/// The model named by the settings, sized for `classes` and the input size.
pub fn resolve_model(settings: &Settings, classes: usize) -> Result<ModelSpec> {
    let mut spec = if settings.model.ends_with(".json") {
        let text = std::fs::read_to_string(&settings.model).map_err(|e| Error::Data {
            path: settings.model.clone(),
            msg: format!("cannot read the model file: {e}"),
        })?;
        ModelSpec::from_json(&text)?
    } else {
        builtin(&settings.model, classes)?
    };
    if spec.classes != classes {
        return Err(shape_err(
            "model",
            format!(
                "model {} has {} classes but the task has {}",
                spec.name, spec.classes, classes
            ),
        ));
    }
    if let Some(size) = settings.input_size {
        spec.input = [spec.input[0], size, size];
    }
    // Check the stack at this size now, with an error that says what to change.
    spec.plan(1).map_err(|e| {
        shape_err(
            "model",
            format!(
                "{e}. The input size {}x{} may be \
        too small for {}; try a larger --input-size",
                spec.input[1], spec.input[2], spec.name
            ),
        )
    })?;
    Ok(spec)
}

/// Loads the data the settings name, or makes the synthetic set.
pub fn load_raw(settings: &Settings) -> Result<RawSet> {
    match &settings.data {
        Some(path) => {
            let options = LoadOptions {
                skip_unreadable: settings.skip_unreadable,
                subject_pattern: settings.subject_pattern.clone(),
            };
            loaders::load(path, settings.format, &options)
        }
        None => {
            let options = SynthOptions {
                difficulty: settings.synthetic_difficulty,
                ..SynthOptions::default()
            };
            let images = generate(&options);
            let mut set = RawSet {
                class_names: crate::data::EXPRESSIONS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                ..RawSet::default()
            };
            for s in images {
                set.samples.push(loaders::RawSample {
                    image: s.image,
                    class: s.expression,
                    subject: Some(s.subject),
                    source: s.file_name,
                    usage: None,
                });
            }
            Ok(set)
        }
    }
}

/// The preprocessing the settings ask for, at the model's input size.
pub fn preprocessing(settings: &Settings, spec: &ModelSpec) -> Result<Preprocess> {
    let mut pre = Preprocess::new([spec.input[1] as u32, spec.input[2] as u32]);
    pre.crop = settings
        .crop
        .as_deref()
        .map(Preprocess::parse_crop)
        .transpose()?;
    if settings.data.is_none() && pre.crop.is_none() && settings.preprocess != "none" {
        // The synthetic faces are framed like JAFFE's (face, hair and neck in about the
        // central 70%); cropping to the face box, as users crop JAFFE, gives the expression
        // cues more pixels at the model's small input size. In face mode it is the fallback.
        pre.crop = Some(Preprocess::parse_crop(SYNTHETIC_FACE_CROP)?);
    }
    match settings.preprocess.as_str() {
        "crop" if pre.crop.is_none() => {
            return Err(shape_err(
                "settings",
                "preprocess crop needs a crop box: --crop left,top,width,height",
            ))
        }
        "face" => {
            pre.face = Some(FaceSettings {
                margin: settings.face_margin,
                align: settings.align,
                ..FaceSettings::default()
            })
        }
        _ => {}
    }
    pre.equalize = settings.equalize;
    if settings.normalize == "none" {
        pre.normalize = crate::data::preprocess::Normalize::UnitRange;
    }
    Ok(pre)
}

/// The face-crop cache folder the settings ask for (None: no cache).
pub fn cache_dir(settings: &Settings) -> Option<PathBuf> {
    if !settings.cache {
        return None;
    }
    settings
        .cache_dir
        .clone()
        .or_else(crate::data::cache::default_dir)
}

/// The splits of `data` the settings ask for.
pub fn make_splits(settings: &Settings, data: &Dataset) -> Result<Vec<Split>> {
    let (val, test, seed) = (settings.val_fraction, settings.test_fraction, settings.seed);
    let with_val = |mut s: Split| -> Result<Split> {
        // k-fold and LOSO: carve a stratified validation set out of the training images.
        if val > 0.0 && s.val.is_empty() {
            let labels: Vec<u32> = s.train.iter().map(|&i| data.labels[i]).collect();
            let inner = splits::stratified(&labels, val, 0.0, seed)?;
            let pick = |idx: &[usize]| idx.iter().map(|&j| s.train[j]).collect::<Vec<_>>();
            s.val = pick(&inner.val);
            s.train = pick(&inner.train);
        }
        Ok(s)
    };
    match settings.split {
        SplitKind::Random => Ok(vec![splits::stratified(&data.labels, val, test, seed)?]),
        SplitKind::Kfold => splits::kfold(&data.labels, settings.folds, seed)?
            .into_iter()
            .map(with_val)
            .collect(),
        SplitKind::Loso => splits::leave_one_subject_out(&data.subjects)?
            .into_iter()
            .map(with_val)
            .collect(),
        SplitKind::Official => {
            let pick = |u: &str| (0..data.len()).filter(|&i| data.usage[i] == u).collect();
            let s = Split {
                name: "official".into(),
                train: pick("Training"),
                val: pick("PublicTest"),
                test: pick("PrivateTest"),
            };
            if s.train.is_empty() || s.test.is_empty() {
                return Err(shape_err(
                    "split",
                    "the official split needs FER2013's Usage column \
                    with Training and PrivateTest rows",
                ));
            }
            Ok(vec![s])
        }
    }
}

/// One experiment: data, model and splits resolved, ready to train into a run folder.
pub struct Experiment {
    pub settings: Settings,
    pub spec: ModelSpec,
    pub preprocess: Preprocess,
    pub task: Task,
    pub data: Dataset,
    /// What preprocessing found (face-mode counts) and whether the cache was used.
    pub build: BuildReport,
    pub splits: Vec<Split>,
    pub out: PathBuf,
}

impl Experiment {
    /// Resolves everything and checks it before anything is written.
    pub fn prepare(settings: Settings, out: PathBuf) -> Result<Self> {
        settings.validate()?;
        let task = Task::parse(&settings.task)?;
        let spec = resolve_model(&settings, task.classes.len())?;
        let preprocess = preprocessing(&settings, &spec)?;
        let raw = load_raw(&settings)?;
        let cache = cache_dir(&settings);
        let (data, build) = build_dataset_cached(&raw, &task, &preprocess, cache.as_deref())?;
        if let Some(faces) = &build.faces {
            log::info!("face mode ({}): {faces}", build.cache);
        }
        let splits = make_splits(&settings, &data)?;
        for s in &splits {
            if settings.batch_size > s.train.len() {
                return Err(shape_err(
                    "settings",
                    format!(
                        "batch size {} is larger than the {} \
                    training images of {}; use --batch {} or less",
                        settings.batch_size,
                        s.train.len(),
                        s.name,
                        s.train.len()
                    ),
                ));
            }
        }
        Ok(Self {
            settings,
            spec,
            preprocess,
            task,
            data,
            build,
            splits,
            out,
        })
    }

    /// Reopens an interrupted run folder with its saved settings.
    pub fn resume(out: PathBuf) -> Result<Self> {
        let settings = Settings::from_toml_file(&out.join("settings.toml"))?;
        if !out.join("state.json").exists() {
            return Err(Error::Data {
                path: out.display().to_string(),
                msg: "no state.json: \
                this run finished or was never interrupted"
                    .into(),
            });
        }
        Self::prepare(settings, out)
    }

    fn config(&self, seed: u64, train: &Dataset) -> Result<TrainConfig> {
        let s = &self.settings;
        let class_weights = match s.class_weights.as_str() {
            "balanced" => Some(splits::class_weights(&train.class_counts())?),
            _ => None,
        };
        Ok(TrainConfig {
            epochs: s.epochs,
            batch_size: s.batch_size,
            optimizer: s.optimizer_rule()?,
            lr: s.lr,
            schedule: s.schedule_rule()?,
            warmup_steps: s.warmup_steps,
            clip_norm: s.clip_norm,
            label_smoothing: s.label_smoothing,
            class_weights,
            frozen: vec![],
            augment: s.augment.then_some(s.augmentation),
            seed,
        })
    }

    /// The checkpoint of `params` with everything needed to predict with it.
    pub fn checkpoint(
        &self,
        params: ParamSet,
        optimizer: Option<(ParamSet, u64)>,
        seed: u64,
    ) -> Checkpoint {
        Checkpoint {
            spec: self.spec.clone(),
            class_names: self.task.class_names(),
            preprocessing: serde_json::to_value(&self.preprocess).expect("serializes"),
            training: serde_json::json!({
                "task": self.task,
                "seed": seed,
                "settings": self.settings,
            }),
            params,
            optimizer,
        }
    }

    /// Trains every seed on every split. `interrupt` is polled after each step; `on_epoch`
    /// sees (run name, step, steps per epoch, record when an epoch ends) for progress.
    pub fn run(
        &self,
        compute: &Compute,
        interrupt: &AtomicBool,
        mut progress: impl FnMut(&str, usize, usize, Option<&EpochRecord>),
    ) -> Result<Summary> {
        let files = files::RunFolder::new(&self.out);
        let mut state: Progress = files.read_state()?.unwrap_or(Progress {
            done: vec![],
            current: None,
        });
        files.write_settings(&self.settings)?;
        for seed in self.settings.seed..self.settings.seed + self.settings.seeds as u64 {
            for split in &self.splits {
                let name = format!("seed{seed}-{}", split.name.replace([' ', '/'], "-"));
                if state.done.iter().any(|r| r.name == name) {
                    continue;
                }
                let resume = state.current.take().filter(|c| c.name == name);
                let result = self.run_one(
                    compute,
                    &name,
                    seed,
                    split,
                    resume,
                    interrupt,
                    &files,
                    &state,
                    &mut progress,
                )?;
                state.done.push(result);
                files.write_state(&state)?;
                files.write_reports(self, &state.done, compute)?;
            }
        }
        files.remove_state()?;
        files.write_reports(self, &state.done, compute)
    }

    #[allow(clippy::too_many_arguments)] // the loop's context, passed once per run
    fn run_one(
        &self,
        compute: &Compute,
        name: &str,
        seed: u64,
        split: &Split,
        resume: Option<CurrentRun>,
        interrupt: &AtomicBool,
        files: &files::RunFolder,
        state: &Progress,
        progress: &mut impl FnMut(&str, usize, usize, Option<&EpochRecord>),
    ) -> Result<RunResult> {
        let train = self.data.subset(&split.train);
        let val = (!split.val.is_empty()).then(|| self.data.subset(&split.val));
        let test = self.data.subset(&split.test);
        let config = self.config(seed, &train)?;
        let run_dir = files.run_dir(name)?;
        let mut backend = compute.trainer(&self.spec, &config, &train, None)?;
        let steps = train.len() / config.batch_size;
        let mut cur = match resume {
            Some(c) => {
                let ckpt = Checkpoint::load(&run_dir.join("resume.safetensors"))?;
                backend.restore(&ckpt.params, ckpt.optimizer.as_ref(), c.epoch as u32)?;
                log::info!("{name}: resuming at epoch {} step {}", c.epoch + 1, c.step);
                c
            }
            None => CurrentRun {
                name: name.to_string(),
                epoch: 0,
                step: 0,
                scheduler: Scheduler::new(
                    config.lr,
                    config.schedule,
                    config.epochs,
                    config.warmup_steps,
                ),
                best_val: None,
                best_epoch: 0,
                bad_epochs: 0,
                history: vec![],
            },
        };
        let mut best: Option<ParamSet> = None;
        if cur.best_epoch > 0 {
            best = Some(Checkpoint::load(&run_dir.join("best.safetensors"))?.params);
        }
        while cur.epoch < config.epochs {
            let epoch = cur.epoch;
            let start = std::time::Instant::now();
            // TODO(resume metrics): after a resume mid-epoch, that epoch's training loss and
            // accuracy cover only the steps run since; the weights are exact either way.
            let first_step = cur.step;
            // (A resumed backend had its epoch counter restored to `epoch`; this advances it
            // to epoch + 1, as in an uninterrupted run.)
            backend.begin_epoch(&crate::seed::shuffled(seed, epoch, train.len()))?;
            for b in first_step..steps {
                backend.step(b, cur.scheduler.lr(epoch, epoch * steps + b))?;
                cur.step = b + 1;
                progress(name, b + 1, steps, None);
                if interrupt.load(Ordering::SeqCst) && b + 1 < steps {
                    return Err(self
                        .save_interrupted(&*backend, &cur, seed, &run_dir, files, state, compute));
                }
            }
            let stats = backend.end_epoch()?;
            let seconds = start.elapsed().as_secs_f64();
            let eval = val.as_ref().map(|v| backend.evaluate(v)).transpose()?;
            let watched = eval.as_ref().map_or(stats.loss, |e| e.loss);
            let record = EpochRecord {
                epoch: epoch + 1,
                lr: cur.scheduler.lr(epoch, epoch * steps),
                train_loss: stats.loss,
                train_accuracy: stats.accuracy,
                val_loss: eval.as_ref().map(|e| e.loss),
                val_accuracy: eval.as_ref().map(|e| e.accuracy),
                images_per_s: ((steps - first_step) * config.batch_size) as f64 / seconds,
            };
            cur.scheduler.observe(watched as f32);
            if cur.best_val.is_none_or(|best| watched < best) {
                cur.best_val = Some(watched);
                cur.best_epoch = epoch + 1;
                cur.bad_epochs = 0;
                let params = backend.params()?;
                self.checkpoint(params.clone(), None, seed)
                    .save(&run_dir.join("best.safetensors"))?;
                best = Some(params);
            } else {
                cur.bad_epochs += 1;
            }
            progress(name, steps, steps, Some(&record));
            files.append_metrics(name, &record)?;
            cur.history.push(record);
            cur.epoch += 1;
            cur.step = 0;
            let stop_early = self.settings.patience > 0 && cur.bad_epochs >= self.settings.patience;
            let interrupted = interrupt.load(Ordering::SeqCst);
            if interrupted && !stop_early && cur.epoch < config.epochs {
                return Err(
                    self.save_interrupted(&*backend, &cur, seed, &run_dir, files, state, compute)
                );
            }
            if stop_early {
                log::info!(
                    "{name}: no better validation loss for {} epochs, stopping at epoch \
                    {}",
                    self.settings.patience,
                    cur.epoch
                );
                break;
            }
        }
        let last = backend.params()?;
        self.checkpoint(last.clone(), Some(backend.optimizer_state()?), seed)
            .save(&run_dir.join("last.safetensors"))?;
        let _ = std::fs::remove_file(run_dir.join("resume.safetensors"));
        backend.restore(best.as_ref().unwrap_or(&last), None, cur.epoch as u32)?;
        let report = backend.evaluate(&test)?;
        Ok(RunResult {
            name: name.to_string(),
            seed,
            split: split.name.clone(),
            epochs_trained: cur.epoch,
            best_epoch: cur.best_epoch,
            test_images: report.samples,
            test_accuracy: report.accuracy,
            test_balanced_accuracy: balanced_accuracy(&report),
            test_loss: report.loss,
            confusion: report.confusion,
            history: cur.history,
        })
    }
}

impl Experiment {
    /// Saves what a resume needs (weights, optimizer state, progress) and the reports so
    /// far; returns the error that tells the caller the run was interrupted (or why saving
    /// failed).
    #[allow(clippy::too_many_arguments)] // the run's context, as run_one holds it
    fn save_interrupted(
        &self,
        backend: &dyn Backend,
        cur: &CurrentRun,
        seed: u64,
        run_dir: &Path,
        files: &files::RunFolder,
        state: &Progress,
        compute: &Compute,
    ) -> Error {
        let save = || -> Result<()> {
            let ckpt = self.checkpoint(backend.params()?, Some(backend.optimizer_state()?), seed);
            ckpt.save(&run_dir.join("resume.safetensors"))?;
            let mut saved = state.clone();
            saved.current = Some(cur.clone());
            files.write_state(&saved)?;
            files.write_reports(self, &state.done, compute)?;
            Ok(())
        };
        match save() {
            Ok(()) => Error::Data {
                path: self.out.display().to_string(),
                msg: INTERRUPTED.into(),
            },
            Err(e) => e,
        }
    }
}

/// A default run folder name: time and the main settings.
pub fn default_out(settings: &Settings) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    let task = settings.task.replace([',', '=', '+', ' '], "_");
    let split = format!("{:?}", settings.split).to_lowercase();
    PathBuf::from("runs").join(format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}-{}-{task}-{split}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        settings
            .model
            .trim_end_matches(".json")
            .rsplit('/')
            .next()
            .unwrap_or("model")
    ))
}

/// Fails unless `out` can hold a new run: absent, or an empty folder.
pub fn check_out(out: &Path) -> Result<()> {
    let bad = |msg: &str| Error::Data {
        path: out.display().to_string(),
        msg: msg.into(),
    };
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .map_err(|_| bad("exists but cannot be read; choose another --out"))?
            .next()
            .is_none();
        if !empty {
            return Err(bad(
                "already holds files; choose another --out, or --resume it if it \
                was interrupted",
            ));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| {
        bad(&format!(
            "cannot create the folder ({e}); choose another --out"
        ))
    })?;
    let probe = out.join(".write-test");
    std::fs::write(&probe, b"").map_err(|e| {
        bad(&format!(
            "cannot write here ({e}); choose \
        another --out"
        ))
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}
