//! Declarative model descriptions and shape inference.
//!
//! A model is a sequence of layers from the op families, written in code or as JSON:
//!
//! ```json
//! { "name": "tiny", "input": [1, 32, 32], "classes": 7,
//!   "layers": [ {"type": "conv2d", "filters": 8, "kernel": 3, "pad": 1},
//!               {"type": "relu"}, {"type": "max_pool", "size": 2, "stride": 2},
//!               {"type": "flatten"}, {"type": "dense", "units": 7} ] }
//! ```
//!
//! The network ends in a dense layer with one unit per class: its outputs are the logits, and
//! the softmax lives in the fused loss. [`ModelSpec::plan`] infers every shape for a batch
//! size and turns an impossible stack into an error naming the layer.

use serde::{Deserialize, Serialize};

use crate::error::{shape_err, Error, Result};
use crate::ops::activation::{DropoutParams, ReluParams};
use crate::ops::batchnorm::BatchNormParams;
use crate::ops::conv2d::Conv2dParams;
use crate::ops::dense::DenseParams;
use crate::ops::pool::PoolParams;

const OP: &str = "model";

fn default_eps() -> f32 {
    1e-5
}
fn default_momentum() -> f32 {
    0.1
}
fn one() -> usize {
    1
}

/// One layer of a sequential model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Layer {
    /// Per-channel batch normalization (over n, h, w; or over n for flat features).
    BatchNorm {
        #[serde(default = "default_eps")]
        eps: f32,
        #[serde(default = "default_momentum")]
        momentum: f32,
    },
    /// Convolution with `filters` square `kernel`s, with bias.
    Conv2d {
        filters: usize,
        kernel: usize,
        #[serde(default = "one")]
        stride: usize,
        #[serde(default)]
        pad: usize,
    },
    /// Leaky ReLU (`slope` 0, the default, is the plain ReLU).
    Relu {
        #[serde(default)]
        slope: f32,
    },
    /// Max pooling with a square window.
    MaxPool {
        size: usize,
        stride: usize,
        #[serde(default)]
        pad: usize,
        #[serde(default)]
        ceil: bool,
    },
    /// Average pooling with a square window.
    AvgPool {
        size: usize,
        stride: usize,
        #[serde(default)]
        pad: usize,
        #[serde(default)]
        ceil: bool,
    },
    /// Mean of each feature map: `[n, c, h, w]` to `[n, c]`.
    GlobalAvgPool,
    /// Dropout at `rate` in training, the identity in inference.
    Dropout { rate: f32 },
    /// `[n, c, h, w]` to `[n, c*h*w]`, no data movement.
    Flatten,
    /// Fully connected layer to `units` outputs.
    Dense { units: usize },
}

impl Layer {
    /// The prefix of default layer names (`conv` gives conv1, conv2, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BatchNorm { .. } => "bn",
            Self::Conv2d { .. } => "conv",
            Self::Relu { .. } => "relu",
            Self::MaxPool { .. } => "maxpool",
            Self::AvgPool { .. } => "avgpool",
            Self::GlobalAvgPool => "gap",
            Self::Dropout { .. } => "dropout",
            Self::Flatten => "flatten",
            Self::Dense { .. } => "fc",
        }
    }
}

/// A layer and its optional name (default: kind and ordinal, e.g. `conv2`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(flatten)]
    pub layer: Layer,
}

/// A whole model: input `[c, h, w]`, number of classes, layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    pub input: [usize; 3],
    pub classes: usize,
    pub layers: Vec<LayerSpec>,
}

/// The op of a planned layer, with its params for the planned batch size.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerOp {
    BatchNorm(BatchNormParams),
    Conv2d(Conv2dParams),
    Relu(ReluParams),
    MaxPool(PoolParams),
    AvgPool(PoolParams),
    GlobalAvgPool(PoolParams),
    Dropout(DropoutParams),
    Flatten,
    Dense(DenseParams),
}

/// What a parameter tensor is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Weight,
    Bias,
    Gamma,
    Beta,
    /// Batch-norm running statistics: state, not trained by the optimizer.
    RunningMean,
    RunningVar,
}

impl ParamKind {
    /// The suffix of the tensor name (`conv1.weight`).
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Weight => "weight",
            Self::Bias => "bias",
            Self::Gamma => "gamma",
            Self::Beta => "beta",
            Self::RunningMean => "running_mean",
            Self::RunningVar => "running_var",
        }
    }
    /// Whether the optimizer updates it.
    pub fn trainable(self) -> bool {
        !matches!(self, Self::RunningMean | Self::RunningVar)
    }
}

/// One layer with its inferred shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedLayer {
    pub name: String,
    pub layer: Layer,
    pub op: LayerOp,
    pub in_shape: Vec<usize>,
    pub out_shape: Vec<usize>,
}

impl PlannedLayer {
    /// The layer's parameter tensors: kind and shape, in a fixed order.
    pub fn params(&self) -> Vec<(ParamKind, Vec<usize>)> {
        match &self.op {
            LayerOp::Conv2d(p) => vec![
                (ParamKind::Weight, p.weight_shape().to_vec()),
                (ParamKind::Bias, p.bias_shape().to_vec()),
            ],
            LayerOp::Dense(p) => vec![
                (ParamKind::Weight, p.weight_shape().to_vec()),
                (ParamKind::Bias, p.bias_shape().to_vec()),
            ],
            LayerOp::BatchNorm(p) => {
                let c = p.channel_shape().to_vec();
                vec![
                    (ParamKind::Gamma, c.clone()),
                    (ParamKind::Beta, c.clone()),
                    (ParamKind::RunningMean, c.clone()),
                    (ParamKind::RunningVar, c),
                ]
            }
            _ => vec![],
        }
    }

    /// The fan-in of a weight (inputs per output unit), for initialization.
    pub fn fan_in(&self) -> usize {
        match &self.op {
            LayerOp::Conv2d(p) => (p.c_in * p.kh * p.kw) as usize,
            LayerOp::Dense(p) => p.d_in as usize,
            _ => 1,
        }
    }
}

/// A model with every shape inferred for one batch size.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub spec: ModelSpec,
    pub batch: usize,
    pub layers: Vec<PlannedLayer>,
}

impl Plan {
    /// `[batch, c, h, w]`
    pub fn input_shape(&self) -> [usize; 4] {
        let [c, h, w] = self.spec.input;
        [self.batch, c, h, w]
    }

    /// Every parameter tensor: full name, kind, shape, in model order.
    pub fn param_shapes(&self) -> Vec<(String, ParamKind, Vec<usize>)> {
        self.layers
            .iter()
            .flat_map(|l| {
                l.params()
                    .into_iter()
                    .map(|(k, s)| (format!("{}.{}", l.name, k.suffix()), k, s))
            })
            .collect()
    }

    /// Number of trained parameters (running statistics excluded).
    pub fn trainable_count(&self) -> usize {
        self.param_shapes()
            .iter()
            .filter(|(_, k, _)| k.trainable())
            .map(|(_, _, s)| s.iter().product::<usize>())
            .sum()
    }
}

impl ModelSpec {
    /// Parses a JSON model description.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map_err(|e| shape_err(OP, format!("model description is not valid: {e}")))
    }

    /// The JSON form (what checkpoints store).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a model spec always serializes")
    }

    /// The layer names, given or defaulted (`conv1`, `conv2`, `relu1`, ...).
    pub fn layer_names(&self) -> Vec<String> {
        let mut seen = std::collections::HashMap::new();
        self.layers
            .iter()
            .map(|l| {
                let ordinal = seen.entry(l.layer.kind()).or_insert(0);
                *ordinal += 1;
                l.name
                    .clone()
                    .unwrap_or_else(|| format!("{}{}", l.layer.kind(), ordinal))
            })
            .collect()
    }

    /// Infers every shape for `batch` and checks that the stack can work.
    pub fn plan(&self, batch: usize) -> Result<Plan> {
        if batch == 0 {
            return Err(shape_err(OP, "batch size must be at least 1"));
        }
        if self.input.contains(&0) || self.classes < 2 {
            return Err(shape_err(
                OP,
                format!(
                    "{}: input {:?} and {} classes: every input size \
                must be >= 1 and there must be at least 2 classes",
                    self.name, self.input, self.classes
                ),
            ));
        }
        let names = self.layer_names();
        let mut unique = std::collections::HashSet::new();
        if let Some(dup) = names.iter().find(|n| !unique.insert(n.as_str())) {
            return Err(shape_err(
                OP,
                format!("{}: two layers are named {dup:?}", self.name),
            ));
        }
        let [c, h, w] = self.input;
        let mut shape = vec![batch, c, h, w];
        let mut layers = vec![];
        for (i, (spec, name)) in self.layers.iter().zip(names).enumerate() {
            let context = |e: Error| -> Error {
                shape_err(
                    OP,
                    format!(
                        "{}: layer {} ({name}, {:?}) with input {:?}: {e}",
                        self.name,
                        i + 1,
                        spec.layer,
                        shape
                    ),
                )
            };
            let (op, out) = plan_layer(&spec.layer, &shape).map_err(context)?;
            layers.push(PlannedLayer {
                name,
                layer: spec.layer.clone(),
                op,
                in_shape: shape.clone(),
                out_shape: out.clone(),
            });
            shape = out;
        }
        match layers.last() {
            Some(PlannedLayer {
                op: LayerOp::Dense(p),
                ..
            }) if p.d_out as usize == self.classes => {}
            _ => {
                return Err(shape_err(
                    OP,
                    format!(
                        "{}: the last layer must be a dense layer with \
                    one unit per class ({}); its outputs are the logits",
                        self.name, self.classes
                    ),
                ))
            }
        }
        Ok(Plan {
            spec: self.clone(),
            batch,
            layers,
        })
    }
}

fn four(shape: &[usize], what: &str) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(shape).map_err(|_| {
        shape_err(
            OP,
            format!(
                "{what} needs a [n, c, h, w] input; add it before flatten, \
            global_avg_pool or dense"
            ),
        )
    })
}

fn plan_layer(layer: &Layer, shape: &[usize]) -> Result<(LayerOp, Vec<usize>)> {
    let numel: usize = shape.iter().product();
    Ok(match *layer {
        Layer::BatchNorm { eps, momentum } => {
            // Flat features [n, d] normalize per feature, as a [n, d, 1, 1] map.
            let x = match shape.len() {
                2 => [shape[0], shape[1], 1, 1],
                _ => four(shape, "batch_norm")?,
            };
            (
                LayerOp::BatchNorm(BatchNormParams::new(x, eps, momentum)?),
                shape.to_vec(),
            )
        }
        Layer::Conv2d {
            filters,
            kernel,
            stride,
            pad,
        } => {
            let p = Conv2dParams::new(
                four(shape, "conv2d")?,
                filters,
                [kernel, kernel],
                stride,
                pad,
            )?;
            (LayerOp::Conv2d(p), p.y_shape().to_vec())
        }
        Layer::Relu { slope } => (
            LayerOp::Relu(ReluParams::new(numel, slope)?),
            shape.to_vec(),
        ),
        Layer::MaxPool {
            size,
            stride,
            pad,
            ceil,
        } => {
            let p = PoolParams::new(four(shape, "max_pool")?, [size, size], stride, pad, ceil)?;
            (LayerOp::MaxPool(p), p.y_shape().to_vec())
        }
        Layer::AvgPool {
            size,
            stride,
            pad,
            ceil,
        } => {
            let p = PoolParams::new(four(shape, "avg_pool")?, [size, size], stride, pad, ceil)?;
            (LayerOp::AvgPool(p), p.y_shape().to_vec())
        }
        Layer::GlobalAvgPool => {
            let p = PoolParams::global(four(shape, "global_avg_pool")?)?;
            (LayerOp::GlobalAvgPool(p), p.global_y_shape().to_vec())
        }
        Layer::Dropout { rate } => (
            LayerOp::Dropout(DropoutParams::new(numel, rate, 0)?),
            shape.to_vec(),
        ),
        Layer::Flatten => (LayerOp::Flatten, vec![shape[0], numel / shape[0]]),
        Layer::Dense { units } => {
            if shape.len() != 2 {
                return Err(shape_err(
                    OP,
                    format!(
                        "dense needs flat [n, features] input, got \
                    {shape:?}; add a flatten or global_avg_pool layer before it"
                    ),
                ));
            }
            let p = DenseParams::new(shape[0], shape[1], units)?;
            (LayerOp::Dense(p), p.y_shape().to_vec())
        }
    })
}

fn l(layer: Layer) -> LayerSpec {
    LayerSpec { name: None, layer }
}

/// The classic small VGG-like net for tiny facial-expression sets: batch norm on the 1x224x224
/// input, four blocks of conv 3x3 (8, 16, 32, 64 filters, "same" padding) + ReLU + max pool
/// (3x3 stride 3, then 2x2 stride 3), flatten, dense to the classes.
pub fn small_vgg(classes: usize) -> ModelSpec {
    let mut layers = vec![l(Layer::BatchNorm {
        eps: 1e-5,
        momentum: 0.1,
    })];
    for (filters, size) in [(8, 3), (16, 2), (32, 2), (64, 2)] {
        layers.push(l(Layer::Conv2d {
            filters,
            kernel: 3,
            stride: 1,
            pad: 1,
        }));
        layers.push(l(Layer::Relu { slope: 0.0 }));
        layers.push(l(Layer::MaxPool {
            size,
            stride: 3,
            pad: 0,
            ceil: false,
        }));
    }
    layers.push(l(Layer::Flatten));
    layers.push(l(Layer::Dense { units: classes }));
    ModelSpec {
        name: "small-vgg".into(),
        input: [1, 224, 224],
        classes,
        layers,
    }
}

/// A stronger default for small grayscale faces: 48x48 input, three conv 3x3 - batch norm -
/// ReLU - 2x2 max-pool blocks (16, 32, 64 filters), global average pooling, dropout 0.3 and
/// the classifier. Batch norm after each conv steadies training on small batches; global
/// average pooling keeps the classifier tiny (65 weights per class instead of small-vgg's
/// 577), which matters with a few hundred images; 48x48 keeps a training step cheap enough
/// for a software adapter. See the README for how it compares with small-vgg.
pub fn fer_net(classes: usize) -> ModelSpec {
    let mut layers = vec![];
    for filters in [16, 32, 64] {
        layers.push(l(Layer::Conv2d {
            filters,
            kernel: 3,
            stride: 1,
            pad: 1,
        }));
        layers.push(l(Layer::BatchNorm {
            eps: 1e-5,
            momentum: 0.1,
        }));
        layers.push(l(Layer::Relu { slope: 0.0 }));
        layers.push(l(Layer::MaxPool {
            size: 2,
            stride: 2,
            pad: 0,
            ceil: false,
        }));
    }
    layers.push(l(Layer::GlobalAvgPool));
    layers.push(l(Layer::Dropout { rate: 0.3 }));
    layers.push(l(Layer::Dense { units: classes }));
    ModelSpec {
        name: "fer-net".into(),
        input: [1, 48, 48],
        classes,
        layers,
    }
}

/// Names accepted by [`builtin`].
pub const BUILTIN_NAMES: &[&str] = &["small-vgg", "fer-net"];

/// A built-in architecture by name.
pub fn builtin(name: &str, classes: usize) -> Result<ModelSpec> {
    match name {
        "small-vgg" => Ok(small_vgg(classes)),
        "fer-net" => Ok(fer_net(classes)),
        _ => Err(shape_err(
            OP,
            format!(
                "unknown model {name:?}; built-in models are \
            {BUILTIN_NAMES:?}, or give a JSON model file"
            ),
        )),
    }
}
