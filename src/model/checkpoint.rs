//! Checkpoints in the safetensors format.
//!
//! A checkpoint holds every parameter and running statistic, optionally the optimizer state
//! (`optim.state1.<param>`, `optim.state2.<param>`), and as metadata everything needed to use
//! it alone: the model description, the class names, the input preprocessing and the training
//! settings (both as JSON). Writes are atomic: a temporary file in the same folder, flushed to
//! disk, then renamed over the target, so a crash never leaves a half-written checkpoint.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::model::params::{HostTensor, ParamSet};
use crate::model::spec::ModelSpec;

/// Metadata key marking a fer-wgpu checkpoint, and the format version it holds.
const FORMAT_KEY: &str = "fer_wgpu.format";
const FORMAT: &str = "1";

/// A model with its parameters and what is needed to use it.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub spec: ModelSpec,
    pub class_names: Vec<String>,
    /// How images are turned into input tensors (JSON; see the data module).
    pub preprocessing: serde_json::Value,
    /// The settings it was trained with (JSON).
    pub training: serde_json::Value,
    pub params: ParamSet,
    /// Optimizer state tensors and the step count, for resuming.
    pub optimizer: Option<(ParamSet, u64)>,
}

fn ckpt_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

impl Checkpoint {
    /// Writes the checkpoint atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, &HostTensor)> = self
            .params
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        if let Some((state, _)) = &self.optimizer {
            named.extend(
                state
                    .tensors
                    .iter()
                    .map(|t| (format!("optim.{}", t.name), t)),
            );
        }
        let mut views = vec![];
        for (name, t) in named {
            let view = TensorView::new(Dtype::F32, t.shape.clone(), bytemuck::cast_slice(&t.data))
                .map_err(|e| ckpt_err(path, format!("tensor {name}: {e}")))?;
            views.push((name, view));
        }
        let mut meta = HashMap::from([
            (FORMAT_KEY.to_string(), FORMAT.to_string()),
            ("model".to_string(), self.spec.to_json()),
            (
                "classes".to_string(),
                serde_json::to_string(&self.class_names).unwrap(),
            ),
            ("preprocessing".to_string(), self.preprocessing.to_string()),
            ("training".to_string(), self.training.to_string()),
        ]);
        if let Some((_, step)) = &self.optimizer {
            meta.insert("optim.step".to_string(), step.to_string());
        }
        let bytes = safetensors::serialize(views, Some(meta))
            .map_err(|e| ckpt_err(path, format!("serializing: {e}")))?;
        write_atomic(path, &bytes)
    }

    /// Reads a checkpoint, with a clear error for a missing file, a file that is not
    /// safetensors (or is truncated), and a safetensors file that is not ours.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).map_err(|e| ckpt_err(path, format!("cannot read it: {e}")))?;
        let not_ours = |what: &str| {
            ckpt_err(
                path,
                format!("not a fer-wgpu checkpoint: {what}; make one with `fer train`"),
            )
        };
        let (_, metadata) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| ckpt_err(path, format!("not a safetensors file, or truncated ({e})")))?;
        let tensors = SafeTensors::deserialize(&bytes)
            .map_err(|e| ckpt_err(path, format!("not a safetensors file, or truncated ({e})")))?;
        let meta = metadata.metadata().clone().unwrap_or_default();
        if meta.get(FORMAT_KEY).map(String::as_str) != Some(FORMAT) {
            return Err(not_ours("no fer_wgpu.format 1 metadata"));
        }
        let field = |key: &str| {
            meta.get(key)
                .ok_or_else(|| not_ours(&format!("no {key:?} metadata")))
        };
        let spec = ModelSpec::from_json(field("model")?)
            .map_err(|e| ckpt_err(path, format!("model metadata: {e}")))?;
        let json = |key: &str| -> Result<serde_json::Value> {
            serde_json::from_str(field(key)?)
                .map_err(|e| ckpt_err(path, format!("{key} metadata is not JSON: {e}")))
        };
        let class_names: Vec<String> = serde_json::from_value(json("classes")?)
            .map_err(|e| ckpt_err(path, format!("classes metadata: {e}")))?;
        let (preprocessing, training) = (json("preprocessing")?, json("training")?);

        let mut params = ParamSet::default();
        let mut optim = ParamSet::default();
        // Model order, not the file's (safetensors sorts names).
        let plan = spec
            .plan(1)
            .map_err(|e| ckpt_err(path, format!("model metadata: {e}")))?;
        let mut by_name: HashMap<String, TensorView> = tensors.tensors().into_iter().collect();
        for (name, _, _) in plan.param_shapes() {
            if let Some(view) = by_name.remove(&name) {
                params.tensors.push(to_host(path, &name, &view)?);
            }
        }
        let mut rest: Vec<_> = by_name.into_iter().collect();
        rest.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, view) in rest {
            match name.strip_prefix("optim.") {
                Some(inner) => optim.tensors.push(to_host(path, inner, &view)?),
                None => params.tensors.push(to_host(path, &name, &view)?),
            }
        }
        params.check_matches(&plan, &path.display().to_string())?;
        let optimizer = match meta.get("optim.step") {
            Some(step) => Some((optim, step.parse().map_err(|_| not_ours("bad optim.step"))?)),
            None => None,
        };
        Ok(Self {
            spec,
            class_names,
            preprocessing,
            training,
            params,
            optimizer,
        })
    }
}

fn to_host(path: &Path, name: &str, view: &TensorView) -> Result<HostTensor> {
    if view.dtype() != Dtype::F32 {
        return Err(ckpt_err(
            path,
            format!("tensor {name} is {:?}, expected F32", view.dtype()),
        ));
    }
    // The data may not be 4-byte aligned inside the file buffer: copy through bytes.
    let data = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(HostTensor {
        name: name.to_string(),
        shape: view.shape().to_vec(),
        data,
    })
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .ok_or_else(|| ckpt_err(path, "not a file path"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ckpt_err(path, format!("cannot write it: {e}"))
    })
}
