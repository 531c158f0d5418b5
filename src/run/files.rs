//! The run folder: every file written atomically (a temporary file renamed into place), so
//! an interrupted or failed run never leaves a half-written file.
//!
//! ```text
//! settings.toml           the settings used, in full
//! metrics.csv             per run and epoch: lr, train/val loss and accuracy, images/s
//! learning_curves.png     loss and accuracy per epoch, every run
//! confusion.png           the test confusion matrix summed over runs
//! summary.json            per-run results and mean/std/min/max of test accuracy
//! report.md               the same, for people
//! runs/<run>/best.safetensors, last.safetensors   checkpoints (resume.safetensors while
//!                         interrupted)
//! state.json              only while a run is interrupted: where to resume
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::checkpoint::write_atomic;
use crate::run::{plots, Compute, Experiment, Progress, RunResult, Settings, Spread, Summary};
use crate::train::EpochRecord;

/// The files of one run folder.
pub struct RunFolder {
    root: PathBuf,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Data {
        path: path.display().to_string(),
        msg: e.to_string(),
    }
}

impl RunFolder {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The folder of one seed-and-split run, created if missing.
    pub fn run_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.root.join("runs").join(name);
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        Ok(dir)
    }

    pub(crate) fn write_settings(&self, settings: &Settings) -> Result<()> {
        write_atomic(
            &self.root.join("settings.toml"),
            settings.to_toml().as_bytes(),
        )
    }

    pub(crate) fn read_state(&self) -> Result<Option<Progress>> {
        let path = self.root.join("state.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| io_err(&path, e)),
            Err(_) => Ok(None),
        }
    }

    pub(crate) fn write_state(&self, state: &Progress) -> Result<()> {
        let text = serde_json::to_string_pretty(state).expect("state serializes");
        write_atomic(&self.root.join("state.json"), text.as_bytes())
    }

    pub(crate) fn remove_state(&self) -> Result<()> {
        let path = self.root.join("state.json");
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(&path, e)),
            _ => Ok(()),
        }
    }

    /// Adds one epoch's line to metrics.csv (rewritten whole, atomically).
    pub fn append_metrics(&self, run: &str, r: &EpochRecord) -> Result<()> {
        let path = self.root.join("metrics.csv");
        let mut text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            "run,epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,images_per_s\n".into()
        });
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        let _ = writeln!(
            text,
            "{run},{},{:.6e},{:.6},{:.6},{},{},{:.2}",
            r.epoch,
            r.lr,
            r.train_loss,
            r.train_accuracy,
            opt(r.val_loss),
            opt(r.val_accuracy),
            r.images_per_s
        );
        write_atomic(&path, text.as_bytes())
    }

    /// summary.json, report.md and the plots, from the runs finished so far.
    pub(crate) fn write_reports(
        &self,
        exp: &Experiment,
        done: &[RunResult],
        compute: &Compute,
    ) -> Result<Summary> {
        let k = exp.task.classes.len();
        let mut confusion = vec![vec![0u64; k]; k];
        for r in done {
            for (t, row) in r.confusion.iter().enumerate() {
                for (p, c) in row.iter().enumerate() {
                    confusion[t][p] += c;
                }
            }
        }
        let acc: Vec<f64> = done.iter().map(|r| r.test_accuracy).collect();
        let bal: Vec<f64> = done.iter().map(|r| r.test_balanced_accuracy).collect();
        let summary = Summary {
            model: exp.spec.name.clone(),
            task: exp.task.name.clone(),
            split: exp.settings.split,
            classes: exp.task.class_names(),
            images: exp.data.len(),
            backend: compute.describe(),
            runs: done.to_vec(),
            test_accuracy: Spread::of(&acc),
            test_balanced_accuracy: Spread::of(&bal),
            confusion,
            faces: exp.build.faces,
        };
        let json = serde_json::to_string_pretty(&summary).expect("summary serializes");
        write_atomic(&self.root.join("summary.json"), json.as_bytes())?;
        write_atomic(
            &self.root.join("report.md"),
            markdown(exp, &summary).as_bytes(),
        )?;
        if !done.is_empty() {
            let curves: Vec<(String, Vec<EpochRecord>)> = done
                .iter()
                .map(|r| (r.name.clone(), r.history.clone()))
                .collect();
            plots::learning_curves(&self.root.join("learning_curves.png"), &curves)?;
            plots::confusion_matrix(
                &self.root.join("confusion.png"),
                &summary.classes,
                &summary.confusion,
            )?;
        }
        Ok(summary)
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

/// The short report a person reads first.
pub fn markdown(exp: &Experiment, s: &Summary) -> String {
    let mut m = String::new();
    let data = exp
        .settings
        .data
        .as_ref()
        .map_or("the built-in synthetic face set".into(), |p| {
            p.display().to_string()
        });
    let _ = writeln!(m, "# {} on {} ({} task)\n", s.model, data, s.task);
    let _ = writeln!(
        m,
        "{} images, classes {:?}; split: {:?}; backend: {}.\n",
        s.images, s.classes, s.split, s.backend
    );
    if let Some(faces) = &s.faces {
        let _ = writeln!(m, "Preprocessing: face mode; {faces}.\n");
    }
    if s.runs.is_empty() {
        let _ = writeln!(m, "No run has finished yet.");
        return m;
    }
    let a = s.test_accuracy;
    let b = s.test_balanced_accuracy;
    let _ = writeln!(
        m,
        "**Test accuracy over {} runs: mean {} (std {}), min {}, max {}.**  ",
        s.runs.len(),
        pct(a.mean),
        pct(a.std),
        pct(a.min),
        pct(a.max)
    );
    let _ = writeln!(
        m,
        "Balanced accuracy (mean of per-class recalls): mean {} (std {}).\n",
        pct(b.mean),
        pct(b.std)
    );
    if matches!(
        s.split,
        crate::run::SplitKind::Random | crate::run::SplitKind::Kfold
    ) {
        let _ = writeln!(
            m,
            "This split is person-dependent: the same people can appear in \
            training and test, which overstates accuracy on new people. Use `--split loso` for a \
            person-independent figure.\n"
        );
    }
    let _ = writeln!(
        m,
        "| run | test images | accuracy | balanced | best epoch | epochs |"
    );
    let _ = writeln!(m, "|---|---|---|---|---|---|");
    for r in &s.runs {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} |",
            r.name,
            r.test_images,
            pct(r.test_accuracy),
            pct(r.test_balanced_accuracy),
            r.best_epoch,
            r.epochs_trained
        );
    }
    let _ = writeln!(
        m,
        "\nSummed test confusion (rows: true, columns: predicted):\n"
    );
    let _ = writeln!(m, "| | {} |", s.classes.join(" | "));
    let _ = writeln!(m, "|---|{}", "---|".repeat(s.classes.len()));
    for (name, row) in s.classes.iter().zip(&s.confusion) {
        let cells: Vec<String> = row.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(m, "| {name} | {} |", cells.join(" | "));
    }
    let _ = writeln!(
        m,
        "\n![learning curves](learning_curves.png)\n\n![confusion](confusion.png)"
    );
    m
}
