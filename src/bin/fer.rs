//! The `fer` command: argument parsing and wiring only; the work lives in the library.
//!
//! Exit codes: 0 success, 1 a failure while running (GPU error, device lost), 2 bad input
//! (flags, settings, data, output folder), 130 interrupted by Ctrl-C (the run is saved and
//! can be resumed).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Parser, Subcommand};
use fer_wgpu::data::{build_dataset_cached, loaders, Format, LoadOptions, Preprocess, Task};
use fer_wgpu::gpu::{AdapterRequest, GpuContext};
use fer_wgpu::model::Checkpoint;
use fer_wgpu::run::{self, Compute, Experiment, Settings, SplitKind};
use fer_wgpu::train::{EvalReport, TrainConfig};
use fer_wgpu::Error;

#[derive(Parser)]
#[command(
    name = "fer",
    version,
    about = "Facial-expression CNNs trained in WGSL compute shaders"
)]
struct Cli {
    /// Where to compute: auto (the GPU, else the CPU reference with a warning), gpu, cpu, or a
    /// GPU backend (vulkan, metal, dx12, gl, primary, all). FER_BACKEND also sets the GPU
    /// backends.
    #[arg(long, global = true, default_value = "auto")]
    backend: String,
    /// GPU adapter: an index from `fer devices` or part of its name. Overrides FER_ADAPTER.
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// No progress bars; results and errors only.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train and evaluate (on the built-in synthetic faces when no data is given).
    Train(Box<TrainArgs>),
    /// Accuracy, per-class precision/recall/F1 and the confusion matrix of a checkpoint.
    Evaluate {
        checkpoint: PathBuf,
        /// JAFFE folder, folder of class folders, or FER2013 CSV.
        data: PathBuf,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Class probabilities of images, with the checkpoint's preprocessing.
    Predict {
        checkpoint: PathBuf,
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// JSON output instead of a table.
        #[arg(long)]
        json: bool,
        /// Write the image the network sees for each input (crop, alignment, resize and
        /// equalization; before normalization) as PNG into this folder.
        #[arg(long)]
        save_crops: Option<PathBuf>,
    },
    /// List the GPU adapters found, best first, with the limits that matter.
    Devices,
    /// Write the built-in synthetic face set (JAFFE layout) and a contact sheet to a folder.
    Synth {
        /// Folder to write into (created if missing).
        #[arg(long, default_value = "synthetic-faces")]
        out: PathBuf,
        #[arg(long, default_value_t = 2024)]
        seed: u64,
        /// 0 (clean, full-intensity expressions) to 1 (subtle expressions, strong nuisances).
        #[arg(long, default_value_t = 0.5)]
        difficulty: f32,
    },
    /// Per-layer throughput of the built-in nets against the adapter's own roofline.
    Bench {
        /// Built-in models to measure (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "small-vgg,fer-net")]
        model: Vec<String>,
        /// Batch sizes (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        batch: Vec<usize>,
        /// Timed runs per figure; the median is reported.
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Untimed runs before timing.
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Also write the report as JSON to this file (atomically).
        #[arg(long)]
        json: Option<PathBuf>,
        /// A JSON report from an earlier run: print the speed-up of every layer.
        #[arg(long)]
        compare: Option<PathBuf>,
    },
    /// One forward and backward pass of a small CNN, every op compared with the CPU reference.
    Demo {
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=4096))]
        batch: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

#[derive(Args, Clone, Default)]
struct LoadArgs {
    /// Data layout (detected when absent).
    #[arg(long, value_parser = ["jaffe", "folder", "fer2013"])]
    format: Option<String>,
    /// Skip unreadable images (they are listed) instead of stopping at the first.
    #[arg(long)]
    skip_unreadable: bool,
    /// Folder layout: a regex whose first group, matched on the file name, is the subject.
    #[arg(long)]
    subject_pattern: Option<String>,
}

/// `fer train` flags; each overrides the settings file (`--config`), which overrides the
/// defaults.
#[derive(Args, Clone, Default)]
struct TrainArgs {
    /// JAFFE folder, folder of class folders, or FER2013 CSV; none: the synthetic set.
    data: Option<PathBuf>,
    #[command(flatten)]
    load: LoadArgs,
    /// Settings file (TOML, the format of a run's settings.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run folder (default: runs/TIME-MODEL-TASK-SPLIT).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue an interrupted run folder exactly; other settings come from its settings.toml.
    #[arg(long, conflicts_with_all = ["data", "config", "out"])]
    resume: Option<PathBuf>,
    /// small-vgg, fer-net, or a JSON model file.
    #[arg(long)]
    model: Option<String>,
    /// Square input size in pixels (default: the model's).
    #[arg(long)]
    input_size: Option<usize>,
    /// seven, neutral-vs-rest, a list (happy,sad) or groups (pos=happy+surprise,neg=sad+angry).
    #[arg(long)]
    task: Option<String>,
    /// random, kfold, loso (leave one subject out) or official (FER2013's Usage column).
    #[arg(long, value_parser = ["random", "kfold", "loso", "official"])]
    split: Option<String>,
    /// Number of folds (implies --split kfold).
    #[arg(long)]
    folds: Option<usize>,
    /// Validation fraction (also carved from the training part of k-fold and LOSO).
    #[arg(long)]
    val: Option<f64>,
    /// Test fraction of the random split.
    #[arg(long)]
    test: Option<f64>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch: Option<usize>,
    /// sgd, nesterov, adam, adamw, rmsprop.
    #[arg(long)]
    optimizer: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f32>,
    #[arg(long)]
    momentum: Option<f32>,
    #[arg(long)]
    weight_decay: Option<f32>,
    /// constant, step, cosine, plateau.
    #[arg(long)]
    schedule: Option<String>,
    #[arg(long)]
    warmup_steps: Option<usize>,
    /// Clip the global gradient norm to this value.
    #[arg(long)]
    clip_norm: Option<f32>,
    #[arg(long)]
    label_smoothing: Option<f32>,
    /// none or balanced.
    #[arg(long)]
    class_weights: Option<String>,
    /// Train on the exact images, without augmentation.
    #[arg(long)]
    no_augment: bool,
    /// Largest augmentation rotation, degrees.
    #[arg(long)]
    rotate: Option<f32>,
    /// Largest augmentation zoom, fraction.
    #[arg(long)]
    zoom: Option<f32>,
    /// Largest augmentation shift, fraction of the side.
    #[arg(long)]
    shift: Option<f32>,
    /// Epochs without a better validation loss before stopping; 0 never stops early.
    #[arg(long)]
    patience: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// Train this many seeds and report their mean and spread.
    #[arg(long)]
    seeds: Option<usize>,
    /// auto (the crop box if given, or on the synthetic set), none, crop, or face (detect and
    /// align the face; the crop box or the whole image is the fallback when none is found).
    #[arg(long, value_parser = ["auto", "none", "crop", "face"])]
    preprocess: Option<String>,
    /// Face mode: crop the detected face without levelling the eyes.
    #[arg(long)]
    no_align: bool,
    /// Face mode: margin on each side of the detected box, fraction of its side.
    #[arg(long)]
    face_margin: Option<f32>,
    /// Face mode: folder for the crop cache (default $XDG_CACHE_HOME/fer-wgpu).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Face mode: detect every face again, reading and writing no cache.
    #[arg(long, conflicts_with = "cache")]
    no_cache: bool,
    /// Crop box left,top,width,height (fractions or pixels).
    #[arg(long)]
    crop: Option<String>,
    /// Histogram-equalize each image.
    #[arg(long)]
    equalize: bool,
    /// Difficulty of the synthetic set, 0 to 1.
    #[arg(long)]
    difficulty: Option<f32>,
}

impl TrainArgs {
    /// Applies the flags given over `s`.
    fn apply(&self, s: &mut Settings) -> fer_wgpu::Result<()> {
        macro_rules! set {
            ($($flag:ident => $field:ident),*) => {
                $(if let Some(v) = &self.$flag { s.$field = v.clone().into(); })*
            };
        }
        set!(model => model, task => task, epochs => epochs, batch => batch_size,
            optimizer => optimizer, lr => lr, momentum => momentum, weight_decay => weight_decay,
            schedule => schedule, warmup_steps => warmup_steps, label_smoothing => label_smoothing,
            class_weights => class_weights, patience => patience, seed => seed, seeds => seeds,
            val => val_fraction, test => test_fraction, difficulty => synthetic_difficulty);
        if self.data.is_some() {
            s.data = self.data.clone();
        }
        if let Some(f) = &self.load.format {
            s.format = Some(parse_format(f));
        }
        s.skip_unreadable |= self.load.skip_unreadable;
        if self.load.subject_pattern.is_some() {
            s.subject_pattern = self.load.subject_pattern.clone();
        }
        if self.input_size.is_some() {
            s.input_size = self.input_size;
        }
        if self.clip_norm.is_some() {
            s.clip_norm = self.clip_norm;
        }
        if self.crop.is_some() {
            s.crop = self.crop.clone();
        }
        if let Some(p) = &self.preprocess {
            s.preprocess = p.clone();
        }
        if self.no_align {
            s.align = false;
        }
        if let Some(m) = self.face_margin {
            s.face_margin = m;
        }
        if self.cache.is_some() {
            s.cache_dir = self.cache.clone();
        }
        if self.no_cache {
            s.cache = false;
        }
        s.equalize |= self.equalize;
        if self.no_augment {
            s.augment = false;
        }
        if let Some(v) = self.rotate {
            s.augmentation.rotate_degrees = v;
        }
        if let Some(v) = self.zoom {
            s.augmentation.zoom = v;
        }
        if let Some(v) = self.shift {
            s.augmentation.shift = v;
        }
        if let Some(split) = &self.split {
            s.split = match split.as_str() {
                "kfold" => SplitKind::Kfold,
                "loso" => SplitKind::Loso,
                "official" => SplitKind::Official,
                _ => SplitKind::Random,
            };
        }
        if let Some(k) = self.folds {
            s.split = SplitKind::Kfold;
            s.folds = k;
        }
        Ok(())
    }
}

fn parse_format(f: &str) -> Format {
    match f {
        "jaffe" => Format::Jaffe,
        "folder" => Format::Folder,
        _ => Format::Fer2013,
    }
}

/// Opens the compute backend `--backend` asks for.
fn compute(cli: &Cli) -> fer_wgpu::Result<Compute> {
    let mut request = AdapterRequest::from_env()?;
    if let Some(a) = &cli.adapter {
        request.choice = fer_wgpu::gpu::parse_choice(a);
    }
    match cli.backend.as_str() {
        "cpu" => return Ok(Compute::Cpu),
        "auto" | "gpu" => {}
        other => request.backends = fer_wgpu::gpu::parse_backends("--backend", other)?,
    }
    match GpuContext::new(&request) {
        Ok(ctx) => Ok(Compute::Gpu(Box::new(ctx))),
        Err(Error::NoAdapter { hint, .. }) if cli.backend == "auto" => {
            eprintln!(
                "warning: no GPU adapter found, training on the CPU reference (slow). {hint}"
            );
            Ok(Compute::Cpu)
        }
        Err(e) => Err(e),
    }
}

static INTERRUPT: AtomicBool = AtomicBool::new(false);

fn train(cli: &Cli, args: &TrainArgs) -> fer_wgpu::Result<()> {
    let exp = match &args.resume {
        Some(dir) => Experiment::resume(dir.clone())?,
        None => {
            let mut settings = match &args.config {
                Some(path) => Settings::from_toml_file(path)?,
                None => Settings::default(),
            };
            args.apply(&mut settings)?;
            let out = args
                .out
                .clone()
                .unwrap_or_else(|| run::default_out(&settings));
            Experiment::prepare(settings, out)?
        }
    };
    // The adapter before the folder, so a missing GPU leaves no empty run folder behind.
    let compute = compute(cli)?;
    if args.resume.is_none() {
        run::check_out(&exp.out)?;
    }
    let _ = ctrlc::set_handler(|| {
        if INTERRUPT.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after the current step (Ctrl-C again to quit at once)...");
    });
    let n_runs = exp.splits.len() * exp.settings.seeds;
    if let (Some(faces), false) = (&exp.build.faces, cli.quiet) {
        eprintln!("face mode ({}): {faces}", exp.build.cache);
    }
    if !cli.quiet {
        eprintln!(
            "{} images, {} classes {:?}, model {} ({} parameters), {} run(s) on {}; \
            writing {}",
            exp.data.len(),
            exp.task.classes.len(),
            exp.task.class_names(),
            exp.spec.name,
            exp.spec.plan(1)?.trainable_count(),
            n_runs,
            compute.describe(),
            exp.out.display()
        );
    }
    let bar = if cli.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(1)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let result = exp.run(&compute, &INTERRUPT, |name, step, steps, record| {
        bar.set_length(steps as u64);
        bar.set_position(step as u64);
        if let Some(r) = record {
            bar.set_prefix(format!("{name} epoch {}", r.epoch + 1));
            let val = r
                .val_accuracy
                .map_or(String::new(), |v| format!(" val acc {:.3}", v));
            bar.set_message(format!(
                "loss {:.4} acc {:.3}{val} lr {:.1e} {:.1} img/s",
                r.train_loss, r.train_accuracy, r.lr, r.images_per_s
            ));
            if cli.quiet {
                return;
            }
            let line = format!(
                "{name} epoch {}: loss {:.4} acc {:.3}{val} lr {:.1e} {:.1} img/s",
                r.epoch, r.train_loss, r.train_accuracy, r.lr, r.images_per_s
            );
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        } else if step == 1 && bar.prefix().is_empty() {
            bar.set_prefix(format!("{name} epoch 1"));
        }
    });
    bar.finish_and_clear();
    let summary = match result {
        Err(Error::Data { msg, .. }) if msg == run::INTERRUPTED => {
            eprintln!(
                "interrupted: state saved; continue with `fer train --resume {}`",
                exp.out.display()
            );
            std::process::exit(130);
        }
        other => other?,
    };
    let (a, b) = (summary.test_accuracy, summary.test_balanced_accuracy);
    for r in &summary.runs {
        println!(
            "{:<28} test accuracy {:>6.1}%  balanced {:>6.1}%  ({} images, best epoch \
            {})",
            r.name,
            100.0 * r.test_accuracy,
            100.0 * r.test_balanced_accuracy,
            r.test_images,
            r.best_epoch
        );
    }
    println!(
        "test accuracy over {} run(s): mean {:.1}%, std {:.1}, min {:.1}%, max {:.1}%; \
        balanced accuracy mean {:.1}%",
        summary.runs.len(),
        100.0 * a.mean,
        100.0 * a.std,
        100.0 * a.min,
        100.0 * a.max,
        100.0 * b.mean
    );
    println!(
        "run folder: {} (report.md, metrics.csv, learning_curves.png, confusion.png)",
        exp.out.display()
    );
    Ok(())
}

/// A trainer holding a checkpoint's weights, for evaluation and prediction.
fn model_from<'c>(
    ckpt: &Checkpoint,
    data: &fer_wgpu::data::Dataset,
    compute: &'c Compute,
) -> fer_wgpu::Result<Box<dyn fer_wgpu::train::Backend + 'c>> {
    let config = TrainConfig {
        batch_size: data.len().clamp(1, 16),
        ..TrainConfig::default()
    };
    Ok(match compute {
        Compute::Gpu(ctx) => Box::new(fer_wgpu::train::gpu::GpuTrainer::new(
            ctx,
            &ckpt.spec,
            &config,
            data,
            Some(ckpt.params.clone()),
        )?),
        Compute::Cpu => Box::new(fer_wgpu::train::cpu::CpuTrainer::new(
            &ckpt.spec,
            &config,
            data,
            Some(ckpt.params.clone()),
        )?),
    })
}

fn checkpoint_parts(path: &Path) -> fer_wgpu::Result<(Checkpoint, Task, Preprocess)> {
    let ckpt = Checkpoint::load(path)?;
    let bad = |what: &str| Error::Checkpoint {
        path: path.display().to_string(),
        msg: format!("its {what} metadata cannot be read"),
    };
    let task: Task =
        serde_json::from_value(ckpt.training["task"].clone()).map_err(|_| bad("task"))?;
    let pre: Preprocess =
        serde_json::from_value(ckpt.preprocessing.clone()).map_err(|_| bad("preprocessing"))?;
    Ok((ckpt, task, pre))
}

fn print_report(report: &EvalReport, classes: &[String]) {
    println!(
        "accuracy {:.1}% on {} images (loss {:.4}); balanced accuracy {:.1}%",
        100.0 * report.accuracy,
        report.samples,
        report.loss,
        100.0 * run::balanced_accuracy(report)
    );
    println!(
        "{:<12} {:>9} {:>9} {:>9}",
        "class", "precision", "recall", "F1"
    );
    for (i, c) in classes.iter().enumerate() {
        println!(
            "{c:<12} {:>9.3} {:>9.3} {:>9.3}",
            report.precision[i], report.recall[i], report.f1[i]
        );
    }
    println!("confusion (rows: true, columns: predicted)");
    println!(
        "{:<12} {}",
        "",
        classes
            .iter()
            .map(|c| format!("{:>9}", &c[..c.len().min(8)]))
            .collect::<String>()
    );
    for (c, row) in classes.iter().zip(&report.confusion) {
        println!(
            "{c:<12} {}",
            row.iter().map(|v| format!("{v:>9}")).collect::<String>()
        );
    }
}

fn evaluate(cli: &Cli, checkpoint: &Path, data: &Path, load: &LoadArgs) -> fer_wgpu::Result<()> {
    let (ckpt, task, pre) = checkpoint_parts(checkpoint)?;
    let options = LoadOptions {
        skip_unreadable: load.skip_unreadable,
        subject_pattern: load.subject_pattern.clone(),
    };
    let raw = loaders::load(data, load.format.as_deref().map(parse_format), &options)?;
    let cache = fer_wgpu::data::cache::default_dir();
    let (dataset, build) = build_dataset_cached(&raw, &task, &pre, cache.as_deref())?;
    if let Some(faces) = &build.faces {
        eprintln!("face mode ({}): {faces}", build.cache);
    }
    let compute = compute(cli)?;
    let mut model = model_from(&ckpt, &dataset, &compute)?;
    print_report(&model.evaluate(&dataset)?, &ckpt.class_names);
    Ok(())
}

fn predict(
    cli: &Cli,
    checkpoint: &Path,
    images: &[PathBuf],
    json: bool,
    save_crops: Option<&Path>,
) -> fer_wgpu::Result<()> {
    let (ckpt, _, pre) = checkpoint_parts(checkpoint)?;
    let mut inputs = vec![];
    let mut reports = vec![];
    if let Some(dir) = save_crops {
        std::fs::create_dir_all(dir).map_err(|e| Error::Data {
            path: dir.display().to_string(),
            msg: format!("cannot create the folder for --save-crops: {e}"),
        })?;
    }
    for path in images {
        let prepared = pre.prepare(&fer_wgpu::data::decode::read_gray(path)?)?;
        if let Some(fallback) = prepared.face.as_ref().and_then(|f| f.fallback.as_ref()) {
            eprintln!(
                "warning: {}: {fallback}; using the fallback crop",
                path.display()
            );
        }
        if let Some(dir) = save_crops {
            save_crop(dir, path, &prepared.image)?;
        }
        inputs.extend(pre.normalized(&prepared.image));
        reports.push(prepared.face);
    }
    let k = ckpt.class_names.len();
    let data = fer_wgpu::data::Dataset::new(
        inputs,
        vec![0; images.len()],
        ckpt.spec.input,
        ckpt.class_names.clone(),
    )?;
    let compute = compute(cli)?;
    let mut model = model_from(&ckpt, &data, &compute)?;
    let probs = model.predict(&data.images)?;
    let rows: Vec<(&PathBuf, &[f32])> = images.iter().zip(probs.chunks(k)).collect();
    let best = |p: &[f32]| (0..k).fold(0, |b, j| if p[j] > p[b] { j } else { b });
    if json {
        let out: Vec<_> = rows
            .iter()
            .zip(&reports)
            .map(|((path, p), face)| {
                let mut row = serde_json::json!({
                    "image": path.display().to_string(),
                    "predicted": ckpt.class_names[best(p)],
                    "probabilities": ckpt.class_names.iter().zip(p.iter())
                        .map(|(c, v)| (c.clone(), serde_json::json!(v)))
                        .collect::<serde_json::Map<_, _>>(),
                });
                if let Some(face) = face {
                    row["face"] = serde_json::to_value(face).expect("serializes");
                }
                row
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serializes")
        );
        return Ok(());
    }
    println!(
        "{:<20} {:<10} {}",
        "image",
        "predicted",
        ckpt.class_names
            .iter()
            .map(|c| format!("{:>9}", &c[..c.len().min(9)]))
            .collect::<String>()
    );
    for ((path, p), face) in rows.into_iter().zip(&reports) {
        let name = path.file_name().map_or(path.display().to_string(), |n| {
            n.to_string_lossy().into_owned()
        });
        println!(
            "{name:<20} {:<10} {}",
            ckpt.class_names[best(p)],
            p.iter().map(|v| format!("{v:>9.3}")).collect::<String>()
        );
        if let Some(face) = face {
            println!("{:<20} {}", "", describe_face(face));
        }
    }
    Ok(())
}

/// One line on what face mode did with an image.
fn describe_face(r: &fer_wgpu::data::FaceReport) -> String {
    let Some(b) = r.face else {
        return format!(
            "face: none ({}), fallback crop used",
            r.fallback.as_deref().unwrap_or("no face found")
        );
    };
    let mut line = format!(
        "face: box {:.0},{:.0} {:.0}x{:.0} (left,top width x height), score {:.1}",
        b.left, b.top, b.width, b.height, b.score
    );
    if r.faces > 1 {
        line += &format!("; {} faces found, the most confident used", r.faces);
    }
    match (&r.eyes, &r.eyes_missing) {
        (Some(e), _) => line += &format!("; eyes levelled (roll {:.1} degrees)", e.roll_degrees()),
        (None, Some(why)) => line += &format!("; not aligned: {why}"),
        _ => {}
    }
    if r.padded {
        line += "; crop padded at the image edge";
    }
    line
}

/// Writes the crop of `source` as `<dir>/<file stem>.png` (atomically).
fn save_crop(dir: &Path, source: &Path, crop: &image::GrayImage) -> fer_wgpu::Result<()> {
    let stem = source
        .file_stem()
        .map_or("image".into(), |s| s.to_string_lossy().into_owned());
    let path = dir.join(format!("{stem}.png"));
    let mut bytes = vec![];
    crop.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::Data {
        path: path.display().to_string(),
        msg: format!("cannot encode the crop: {e}"),
    })?;
    fer_wgpu::model::checkpoint::write_atomic(&path, &bytes)
}

fn devices(cli: &Cli) -> fer_wgpu::Result<()> {
    let backends = match cli.backend.as_str() {
        "auto" | "gpu" | "cpu" => AdapterRequest::from_env()?.backends,
        other => fer_wgpu::gpu::parse_backends("--backend", other)?,
    };
    let adapters = fer_wgpu::gpu::list_adapters(backends);
    if adapters.is_empty() {
        println!(
            "No adapter found on backends {backends:?}.\n{}",
            fer_wgpu::gpu::INSTALL_HINT
        );
    }
    for (i, a) in adapters.iter().enumerate() {
        println!(
            "[{i}] {} ({:?}, {:?})",
            a.info.name, a.info.backend, a.info.device_type
        );
        println!("    driver: {} {}", a.info.driver, a.info.driver_info);
        println!(
            "    max storage binding {} MiB, max buffer {} MiB, workgroup invocations {}, \
             workgroups per dimension {}, timestamps {}",
            a.limits.max_storage_buffer_binding_size >> 20,
            a.limits.max_buffer_size >> 20,
            a.limits.max_compute_invocations_per_workgroup,
            a.limits.max_compute_workgroups_per_dimension,
            if a.timestamps { "yes" } else { "no" }
        );
    }
    Ok(())
}

/// The GPU `--backend` asks for; `auto` and `cpu` mean any GPU (the command needs one).
fn gpu_only(cli: &Cli) -> fer_wgpu::Result<Box<GpuContext>> {
    let Compute::Gpu(ctx) = compute(&Cli {
        backend: match cli.backend.as_str() {
            "auto" | "cpu" => "gpu".into(),
            other => other.into(),
        },
        adapter: cli.adapter.clone(),
        quiet: cli.quiet,
        command: Command::Devices,
    })?
    else {
        unreachable!("a gpu request never gives the CPU")
    };
    Ok(ctx)
}

fn bench(
    cli: &Cli,
    config: &fer_wgpu::bench::BenchConfig,
    json: Option<&Path>,
    compare: Option<&Path>,
) -> fer_wgpu::Result<()> {
    use fer_wgpu::bench::BenchReport;
    // Read the old report first: a bad path should fail before minutes of measuring.
    let old = compare.map(BenchReport::load).transpose()?;
    for name in &config.models {
        fer_wgpu::model::builtin(name, 7)?;
    }
    let ctx = gpu_only(cli)?;
    let quiet = cli.quiet;
    let report = fer_wgpu::bench::run(&ctx, config, |what| {
        if !quiet {
            eprintln!("measuring: {what}");
        }
    })?;
    print!("{}", report.table());
    if let Some(old) = old {
        println!();
        print!("{}", report.compare(&old));
    }
    if let Some(path) = json {
        report.save(path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn demo(cli: &Cli, batch: usize, seed: u64) -> fer_wgpu::Result<()> {
    let ctx = gpu_only(cli)?;
    let report = fer_wgpu::demo::run(&ctx, batch, seed)?;
    println!("adapter: {}   batch {batch}, seed {seed}", report.adapter);
    println!(
        "{:<28} {:<18} {:>10} {:>12} {:>12}",
        "op", "output shape", "gpu ms", "max abs err", "max rel err"
    );
    for row in &report.rows {
        println!(
            "{:<28} {:<18} {:>10.3} {:>12.2e} {:>12.2e}",
            row.op,
            format!("{:?}", row.shape),
            row.gpu_ms,
            row.err.max_abs,
            row.err.max_rel
        );
    }
    println!("times from {:?}", report.timing);
    println!(
        "loss: gpu {:.6}, cpu reference {:.6}",
        report.loss_gpu, report.loss_cpu
    );
    Ok(())
}

fn synth(out: &Path, seed: u64, difficulty: f32) -> fer_wgpu::Result<()> {
    use fer_wgpu::data::synth;
    if !(0.0..=1.0).contains(&difficulty) {
        return Err(fer_wgpu::Error::BadSetting {
            name: "--difficulty",
            value: difficulty.to_string(),
            expected: "a number from 0 to 1".into(),
        });
    }
    let options = synth::SynthOptions {
        seed,
        difficulty,
        ..Default::default()
    };
    let images = synth::generate(&options);
    synth::write_jaffe(&images, out)?;
    let sheet_path = out.join("contact-sheet.png");
    synth::contact_sheet(&images, 64)
        .save(&sheet_path)
        .map_err(|e| Error::Data {
            path: sheet_path.display().to_string(),
            msg: e.to_string(),
        })?;
    println!(
        "wrote {} images and {} to {}",
        images.len(),
        sheet_path.display(),
        out.display()
    );
    Ok(())
}

/// Bad input (exit 2) as opposed to a failure while running (exit 1).
fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Gpu { .. }
        | Error::DeviceLost(_)
        | Error::Readback { .. }
        | Error::Shader { .. }
        | Error::RequestDevice { .. } => 1,
        _ => 2,
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Train(args) => train(&cli, args),
        Command::Evaluate {
            checkpoint,
            data,
            load,
        } => evaluate(&cli, checkpoint, data, load),
        Command::Predict {
            checkpoint,
            images,
            json,
            save_crops,
        } => predict(&cli, checkpoint, images, *json, save_crops.as_deref()),
        Command::Devices => devices(&cli),
        Command::Synth {
            out,
            seed,
            difficulty,
        } => synth(out, *seed, *difficulty),
        Command::Demo { batch, seed } => demo(&cli, *batch as usize, *seed),
        Command::Bench {
            model,
            batch,
            repeats,
            warmup,
            json,
            compare,
        } => {
            let config = fer_wgpu::bench::BenchConfig {
                models: model.clone(),
                batches: batch.clone(),
                repeats: *repeats,
                warmup: *warmup,
            };
            bench(&cli, &config, json.as_deref(), compare.as_deref())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}
