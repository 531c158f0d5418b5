//! The GPU backend: every tensor and kernel of a training step built once, one command
//! buffer per step, metrics read once per epoch.

use std::collections::HashMap;

use crate::data::Dataset;
use crate::error::{shape_err, Result};
use crate::gpu::{DType, GpuContext, GpuTensor, Kernel, TimingSource};
use crate::model::spec::{LayerOp, ParamKind, Plan};
use crate::model::{HostTensor, ModelSpec, ParamSet};
use crate::ops::activation::{self, DropoutParams};
use crate::ops::augment::{self, AugmentParams};
use crate::ops::batch::{self, GatherParams};
use crate::ops::batchnorm::{self, BatchNormGrads, BatchNormState, BatchStats};
use crate::ops::loss::{self, LossInputs, LossOutputs, LossParams};
use crate::ops::metrics::{self, Accumulators, MetricsParams};
use crate::ops::optim::{self, ParamSlot};
use crate::ops::{conv2d, dense, pool, Epilogue};
use crate::train::{Backend, EpochStats, EvalReport, TrainConfig};

/// One parameter tensor on the GPU, with its gradient and optimizer state when trainable.
struct GpuParam {
    name: String,
    kind: ParamKind,
    value: GpuTensor,
    grad: Option<GpuTensor>,
    state1: Option<GpuTensor>,
    state2: Option<GpuTensor>,
}

/// A data set resident on the GPU, with the order its batches are drawn in.
struct Resident {
    images: GpuTensor,
    labels: GpuTensor,
    order: GpuTensor,
    len: usize,
}

impl Resident {
    // TODO(large sets): the whole set must fit one storage binding (lavapipe: 128 MiB);
    // FER2013 at 48x48 (330 MB) needs batches streamed from the host instead.
    fn upload(ctx: &GpuContext, name: &str, data: &Dataset) -> Result<Self> {
        let [c, h, w] = data.shape;
        let images = GpuTensor::from_f32(
            ctx,
            &format!("{name}.images"),
            &[data.len(), c, h, w],
            &data.images,
        )?;
        let labels =
            GpuTensor::from_u32(ctx, &format!("{name}.labels"), &[data.len()], &data.labels)?;
        let identity: Vec<u32> = (0..data.len() as u32).collect();
        let order = GpuTensor::from_u32(ctx, &format!("{name}.order"), &[data.len()], &identity)?;
        Ok(Self {
            images,
            labels,
            order,
            len: data.len(),
        })
    }
}

/// The part of a step a kernel belongs to, for per-layer profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pass {
    Forward,
    /// The gradient with respect to the layer's input.
    BackwardInput,
    /// The gradients with respect to the layer's parameters.
    BackwardParams,
}

/// The GPU time of one kernel of a profiled step.
#[derive(Debug, Clone)]
pub struct KernelTime {
    pub label: String,
    /// A layer name from the plan, or `input` (gather, augmentation), `loss` (loss and
    /// metrics) or `optimizer` (clipping and updates).
    pub layer: String,
    pub pass: Pass,
    pub ms: f64,
}

/// The kernels of one batch size and mode, in submission order, and the handles to the
/// values that change between submissions.
struct Graph {
    kernels: Vec<Kernel>,
    /// (layer, pass) of each kernel, for profiles.
    tags: Vec<(String, Pass)>,
    gather: usize,
    gather_params: GatherParams,
    /// (kernel index, params, layer index) of every dropout kernel, forward and backward.
    dropout: Vec<(usize, DropoutParams, usize)>,
    metrics: usize,
    metrics_params: MetricsParams,
    /// (kernel index, params) of the augmentation kernel, when augmenting.
    augment: Option<(usize, AugmentParams)>,
    prob: GpuTensor,
    loss_sum: GpuTensor,
    counts: GpuTensor,
    batch: usize,
}

/// Per-layer values the backward pass needs from the forward pass.
enum Saved {
    None,
    Argmax(GpuTensor),
    Stats(GpuTensor, GpuTensor),
}

/// Training on one GPU; see the module docs.
pub struct GpuTrainer<'c> {
    ctx: &'c GpuContext,
    plan: Plan,
    config: TrainConfig,
    params: Vec<GpuParam>,
    train_data: Resident,
    graph: Graph,
    hyper: wgpu::Buffer,
    eval: HashMap<usize, (Resident, Graph)>,
    /// The inference graph over the training set that profiles use, built on first use.
    profile_eval: Option<Graph>,
    t: u64,
    /// Epochs begun so far (the augmentation draws change with the epoch).
    epochs: u32,
    /// Queue submissions and readbacks so far (one submission per step, reads per epoch).
    pub submissions: u64,
    pub readbacks: u64,
}

fn zeros(ctx: &GpuContext, label: &str, shape: &[usize]) -> Result<GpuTensor> {
    GpuTensor::zeros(ctx, label, shape, DType::F32)
}

impl<'c> GpuTrainer<'c> {
    /// Uploads `params` (or fresh ones from the seed) and the training set, and builds the
    /// training step.
    pub fn new(
        ctx: &'c GpuContext,
        spec: &ModelSpec,
        config: &TrainConfig,
        train: &Dataset,
        params: Option<ParamSet>,
    ) -> Result<Self> {
        let (plan, host) = super::prepare(spec, config, train, params)?;
        let mut params = vec![];
        for ((name, kind, shape), t) in plan.param_shapes().into_iter().zip(&host.tensors) {
            let value = GpuTensor::from_f32(ctx, &name, &shape, &t.data)?;
            let trainable = kind.trainable();
            let second = trainable && config.optimizer.has_second_state();
            params.push(GpuParam {
                kind,
                value,
                grad: trainable
                    .then(|| zeros(ctx, &format!("{name}.grad"), &shape))
                    .transpose()?,
                state1: trainable
                    .then(|| zeros(ctx, &format!("{name}.state1"), &shape))
                    .transpose()?,
                state2: second
                    .then(|| zeros(ctx, &format!("{name}.state2"), &shape))
                    .transpose()?,
                name,
            });
        }
        let hyper = ctx.scoped("allocating optimizer hyper", || {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("optim.hyper"),
                size: std::mem::size_of::<optim::Hyper>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let train_data = Resident::upload(ctx, "train", train)?;
        let mut trainer = Self {
            ctx,
            plan,
            config: config.clone(),
            params,
            train_data,
            graph: placeholder_graph(ctx)?,
            hyper,
            eval: HashMap::new(),
            profile_eval: None,
            t: 0,
            epochs: 0,
            submissions: 0,
            readbacks: 0,
        };
        trainer.graph = trainer.build(&trainer.plan.clone(), &trainer.train_data, true)?;
        log::info!(
            "{}: {} trainable parameters, {} kernels per step",
            spec.name,
            trainer.plan.trainable_count(),
            trainer.graph.kernels.len()
        );
        Ok(trainer)
    }

    /// Restores optimizer state and step count (resuming a run).
    pub fn load_optimizer_state(&mut self, state: &ParamSet, t: u64) -> Result<()> {
        for p in &self.params {
            for (slot, which) in [(&p.state1, "state1"), (&p.state2, "state2")] {
                if let Some(tensor) = slot {
                    let name = format!("{which}.{}", p.name);
                    let host = state.get(&name).ok_or_else(|| {
                        shape_err("train", format!("optimizer state has no {name}"))
                    })?;
                    tensor.write_f32(self.ctx, &host.data)?;
                }
            }
        }
        self.t = t;
        Ok(())
    }

    fn param(&self, layer: &str, kind: ParamKind) -> &GpuParam {
        let name = format!("{layer}.{}", kind.suffix());
        self.params
            .iter()
            .find(|p| p.name == name)
            .expect("plan and params agree")
    }

    /// Builds the kernels of a step (`train`) or an inference pass over `data` at the plan's
    /// batch size.
    fn build(&self, plan: &Plan, data: &Resident, train: bool) -> Result<Graph> {
        let ctx = self.ctx;
        let n = plan.batch;
        let k = plan.spec.classes;
        let mode = if train { "train" } else { "eval" };
        let mut kernels = vec![];
        let mut tags = vec![];
        let mut dropout = vec![];

        // Gather the batch, and augment it when training with augmentation.
        let x0 = zeros(ctx, &format!("{mode}.input"), &plan.input_shape())?;
        let labels = GpuTensor::zeros(ctx, &format!("{mode}.labels"), &[n], DType::U32)?;
        let augment = self.config.augment.filter(|_| train);
        let gathered = match augment {
            Some(_) => zeros(ctx, &format!("{mode}.gathered"), &plan.input_shape())?,
            None => x0.reshaped(&x0.shape, &x0.label)?,
        };
        let (gather, gather_params) = batch::gather(
            ctx,
            &data.images,
            &data.labels,
            &data.order,
            &gathered,
            &labels,
        )?;
        kernels.push(gather);
        let mut augment_kernel = None;
        if let Some(a) = augment {
            let p = a.params(plan.input_shape(), data.len, self.config.augment_seed());
            augment_kernel = Some((kernels.len(), p));
            kernels.push(augment::forward(ctx, &p, &gathered, &data.order, &x0)?);
        }
        tag(&mut tags, &kernels, "input", Pass::Forward);

        // Forward, layer by layer. A convolution or batch norm followed by a ReLU (slope 0)
        // applies it in its own store (one pass over memory less); the ReLU layer then has no
        // forward kernel and its output is the same tensor. Its backward pass reads that
        // tensor, which is positive exactly where the pre-activation is.
        let fuses = |i: usize| {
            matches!(
                plan.layers.get(i + 1).map(|l| &l.op),
                Some(LayerOp::Relu(r)) if r.slope == 0.0
            ) && matches!(
                plan.layers[i].op,
                LayerOp::Conv2d(_) | LayerOp::BatchNorm(_)
            )
        };
        let mut acts = vec![x0];
        let mut saved = vec![];
        for (i, layer) in plan.layers.iter().enumerate() {
            let (x, name) = (&acts[i], layer.name.as_str());
            if i > 0 && fuses(i - 1) {
                saved.push(Saved::None);
                acts.push(x.reshaped(&layer.out_shape, &format!("{name}.y"))?);
                continue;
            }
            let epilogue = if fuses(i) {
                Epilogue::Relu
            } else {
                Epilogue::None
            };
            let y = zeros(ctx, &format!("{mode}.{name}.y"), &layer.out_shape)?;
            let mut keep = Saved::None;
            match &layer.op {
                LayerOp::Conv2d(p) => kernels.push(conv2d::forward_with(
                    ctx,
                    p,
                    conv2d::Variant::from_env(),
                    epilogue,
                    name,
                    x,
                    &self.param(name, ParamKind::Weight).value,
                    &self.param(name, ParamKind::Bias).value,
                    &y,
                )?),
                LayerOp::Dense(p) => kernels.push(dense::forward(
                    ctx,
                    p,
                    name,
                    x,
                    &self.param(name, ParamKind::Weight).value,
                    &self.param(name, ParamKind::Bias).value,
                    &y,
                )?),
                LayerOp::BatchNorm(p) => {
                    let (xv, yv) = (
                        x.reshaped(&p.x_shape(), &x.label)?,
                        y.reshaped(&p.x_shape(), &y.label)?,
                    );
                    let state = BatchNormState {
                        gamma: &self.param(name, ParamKind::Gamma).value,
                        beta: &self.param(name, ParamKind::Beta).value,
                        running_mean: &self.param(name, ParamKind::RunningMean).value,
                        running_var: &self.param(name, ParamKind::RunningVar).value,
                    };
                    if train {
                        let c = p.channel_shape();
                        let (mean, var) = (
                            zeros(ctx, &format!("{name}.mean"), &c)?,
                            zeros(ctx, &format!("{name}.var"), &c)?,
                        );
                        kernels.extend(batchnorm::forward_train(
                            ctx,
                            p,
                            epilogue,
                            name,
                            &xv,
                            &state,
                            &BatchStats {
                                mean: &mean,
                                var: &var,
                            },
                            &yv,
                        )?);
                        keep = Saved::Stats(mean, var);
                    } else {
                        kernels.push(batchnorm::forward_infer(
                            ctx, p, epilogue, name, &xv, &state, &yv,
                        )?);
                    }
                }
                LayerOp::Relu(p) => kernels.push(activation::relu_forward(ctx, p, name, x, &y)?),
                LayerOp::MaxPool(p) => {
                    let arg = GpuTensor::zeros(
                        ctx,
                        &format!("{name}.argmax"),
                        &layer.out_shape,
                        DType::U32,
                    )?;
                    kernels.push(pool::max_forward(ctx, p, name, x, &y, &arg)?);
                    keep = Saved::Argmax(arg);
                }
                LayerOp::AvgPool(p) => kernels.push(pool::avg_forward(ctx, p, name, x, &y)?),
                LayerOp::GlobalAvgPool(p) => {
                    kernels.push(pool::global_avg_forward(ctx, p, name, x, &y)?)
                }
                LayerOp::Dropout(p) => {
                    // Inference: keep probability 1 makes the kernel an exact copy.
                    let p = if train {
                        *p
                    } else {
                        DropoutParams::new(x.numel(), 0.0, 0)?
                    };
                    if train {
                        dropout.push((kernels.len(), p, i));
                    }
                    kernels.push(activation::dropout_forward(ctx, &p, name, x, &y)?);
                }
                LayerOp::Flatten => {
                    saved.push(Saved::None);
                    acts.push(x.reshaped(&layer.out_shape, &format!("{name}.y"))?);
                    continue;
                }
            }
            tag(&mut tags, &kernels, name, Pass::Forward);
            saved.push(keep);
            acts.push(y);
        }

        // Loss and metrics.
        let logits = acts.last().expect("a plan has layers");
        let weights = self
            .config
            .class_weights
            .clone()
            .unwrap_or_else(|| vec![1.0; k]);
        let class_weight = GpuTensor::from_f32(ctx, "loss.class_weight", &[k], &weights)?;
        let lp = LossParams::new(n, k, self.config.label_smoothing)?;
        let (prob, sample_loss, value) = (
            zeros(ctx, "loss.prob", &[n, k])?,
            zeros(ctx, "loss.sample", &[n])?,
            zeros(ctx, "loss.value", &[2])?,
        );
        let inputs = LossInputs {
            logits,
            labels: &labels,
            class_weight: &class_weight,
        };
        let outputs = LossOutputs {
            prob: &prob,
            sample_loss: &sample_loss,
            loss: &value,
        };
        kernels.extend(loss::forward(ctx, &lp, "loss", &inputs, &outputs)?);
        let loss_sum = zeros(ctx, &format!("{mode}.metrics.loss_sum"), &[1])?;
        let counts = GpuTensor::zeros(
            ctx,
            &format!("{mode}.metrics.counts"),
            &[2 + k * k],
            DType::U32,
        )?;
        let metrics_params = MetricsParams {
            n: n as u32,
            k: k as u32,
            valid: n as u32,
            _pad0: 0,
        };
        let metrics = kernels.len();
        kernels.push(metrics::accumulate(
            ctx,
            &metrics_params,
            &sample_loss,
            &prob,
            &labels,
            &Accumulators {
                loss_sum: &loss_sum,
                counts: &counts,
            },
        )?);
        tag(&mut tags, &kernels, "loss", Pass::Forward);

        if train {
            // Backward, in reverse layer order.
            let dlogits = zeros(ctx, "loss.dlogits", &[n, k])?;
            kernels.push(loss::backward_input(
                ctx, &lp, "loss", &inputs, &outputs, &dlogits,
            )?);
            tag(&mut tags, &kernels, "loss", Pass::BackwardInput);
            let mut dy = dlogits;
            for (i, layer) in plan.layers.iter().enumerate().rev() {
                let (x, name) = (&acts[i], layer.name.as_str());
                if let LayerOp::Flatten = layer.op {
                    dy = dy.reshaped(&layer.in_shape, &format!("{name}.dx"))?;
                    continue;
                }
                // The first layer's input gradient is not needed, but batch norm computes it
                // with its parameter gradients.
                let need_dx = i > 0;
                // TODO(fine-tuning): a frozen batch-norm layer keeps gamma and beta but still
                // normalizes with batch statistics and updates its running ones.
                let frozen = self.config.frozen.iter().any(|f| f == name);
                let dx_shape = if need_dx || matches!(layer.op, LayerOp::BatchNorm(_)) {
                    layer.in_shape.clone()
                } else {
                    vec![1]
                };
                let dx = zeros(ctx, &format!("{name}.dx"), &dx_shape)?;
                let grad = |kind| self.param(name, kind).grad.as_ref().expect("trainable");
                match (&layer.op, &saved[i]) {
                    (LayerOp::Conv2d(p), _) => {
                        let w = &self.param(name, ParamKind::Weight).value;
                        if need_dx {
                            kernels.push(conv2d::backward_input(ctx, p, name, &dy, w, &dx)?);
                        }
                        if !frozen {
                            kernels.extend(conv2d::backward_weight(
                                ctx,
                                p,
                                name,
                                &dy,
                                x,
                                grad(ParamKind::Weight),
                            )?);
                            kernels.extend(conv2d::backward_bias(
                                ctx,
                                p,
                                name,
                                &dy,
                                grad(ParamKind::Bias),
                            )?);
                        }
                    }
                    (LayerOp::Dense(p), _) => {
                        let w = &self.param(name, ParamKind::Weight).value;
                        if need_dx {
                            kernels.push(dense::backward_input(ctx, p, name, &dy, w, &dx)?);
                        }
                        if !frozen {
                            kernels.push(dense::backward_weight(
                                ctx,
                                p,
                                name,
                                &dy,
                                x,
                                grad(ParamKind::Weight),
                            )?);
                            kernels.push(dense::backward_bias(
                                ctx,
                                p,
                                name,
                                &dy,
                                grad(ParamKind::Bias),
                            )?);
                        }
                    }
                    (LayerOp::BatchNorm(p), Saved::Stats(mean, var)) => {
                        let shape = p.x_shape();
                        let grads = BatchNormGrads {
                            dx: &dx.reshaped(&shape, &dx.label)?,
                            dgamma: grad(ParamKind::Gamma),
                            dbeta: grad(ParamKind::Beta),
                        };
                        kernels.extend(batchnorm::backward(
                            ctx,
                            p,
                            name,
                            &dy.reshaped(&shape, &dy.label)?,
                            &x.reshaped(&shape, &x.label)?,
                            &self.param(name, ParamKind::Gamma).value,
                            &BatchStats { mean, var },
                            &grads,
                        )?);
                    }
                    (LayerOp::Relu(p), _) if need_dx => {
                        kernels.push(activation::relu_backward_input(ctx, p, name, &dy, x, &dx)?)
                    }
                    (LayerOp::MaxPool(p), Saved::Argmax(arg)) if need_dx => {
                        kernels.push(pool::max_backward_input(ctx, p, name, &dy, arg, &dx)?)
                    }
                    (LayerOp::AvgPool(p), _) if need_dx => {
                        kernels.push(pool::avg_backward_input(ctx, p, name, &dy, &dx)?)
                    }
                    (LayerOp::GlobalAvgPool(p), _) if need_dx => {
                        kernels.push(pool::global_avg_backward_input(ctx, p, name, &dy, &dx)?)
                    }
                    (LayerOp::Dropout(p), _) if need_dx => {
                        dropout.push((kernels.len(), *p, i));
                        kernels.push(activation::dropout_backward_input(ctx, p, name, &dy, &dx)?);
                    }
                    _ => {}
                }
                // Every op labels its input-gradient kernel `<layer>.backward_input`; the
                // others of a layer's backward pass produce its parameter gradients.
                while tags.len() < kernels.len() {
                    let pass = if kernels[tags.len()].label.ends_with(".backward_input") {
                        Pass::BackwardInput
                    } else {
                        Pass::BackwardParams
                    };
                    tags.push((name.to_string(), pass));
                }
                dy = dx;
            }

            // Clip, then update every trainable parameter of an unfrozen layer.
            let updated: Vec<&GpuParam> = self
                .params
                .iter()
                .filter(|p| p.kind.trainable())
                .filter(|p| {
                    !self
                        .config
                        .frozen
                        .iter()
                        .any(|f| p.name.starts_with(&format!("{f}.")))
                })
                .collect();
            let clip = GpuTensor::from_f32(ctx, "optim.clip", &[2], &[1.0, 0.0])?;
            if let Some(max_norm) = self.config.clip_norm {
                let grads: Vec<&GpuTensor> = updated
                    .iter()
                    .map(|p| p.grad.as_ref().expect("trainable"))
                    .collect();
                let parts: usize = grads.iter().map(|g| optim::sumsq_parts(g.numel())).sum();
                let partial = zeros(ctx, "optim.norm_partials", &[parts])?;
                kernels.extend(optim::clip_by_global_norm(
                    ctx, &grads, max_norm, &partial, &clip,
                )?);
            }
            let placeholder = zeros(ctx, "optim.no_state2", &[1])?;
            for p in updated {
                let slot = ParamSlot {
                    weight: &p.value,
                    grad: p.grad.as_ref().expect("trainable"),
                    state1: p.state1.as_ref().expect("trainable"),
                    state2: p.state2.as_ref().unwrap_or(&placeholder),
                };
                kernels.push(optim::update(
                    ctx,
                    &self.config.optimizer,
                    &p.name,
                    &slot,
                    &self.hyper,
                    &clip,
                )?);
            }
            tag(&mut tags, &kernels, "optimizer", Pass::BackwardParams);
        }
        debug_assert_eq!(tags.len(), kernels.len());
        Ok(Graph {
            kernels,
            tags,
            gather: 0,
            gather_params,
            dropout,
            metrics,
            metrics_params,
            augment: augment_kernel,
            prob,
            loss_sum,
            counts,
            batch: n,
        })
    }

    fn clear_metrics(&self, graph: &Graph) -> Result<()> {
        graph.loss_sum.write_f32(self.ctx, &[0.0])?;
        graph
            .counts
            .write_u32(self.ctx, &vec![0; graph.counts.numel()])
    }

    fn read_metrics(&mut self, graph_is_train: bool, key: usize) -> Result<EvalReport> {
        let graph = if graph_is_train {
            &self.graph
        } else {
            &self.eval[&key].1
        };
        let loss_sum = graph.loss_sum.read_f32(self.ctx)?[0];
        let counts = graph.counts.read_u32(self.ctx)?;
        self.readbacks += 2;
        let k = self.plan.spec.classes;
        let confusion: Vec<u64> = counts[2..].iter().map(|&c| c as u64).collect();
        Ok(EvalReport::from_counts(
            loss_sum as f64,
            counts[0] as u64,
            counts[1] as u64,
            &confusion,
            k,
        ))
    }

    /// Builds (once per data set size) and runs an inference pass over `data`.
    fn run_eval(&mut self, data: &Dataset, want_prob: bool) -> Result<(EvalReport, Vec<f32>)> {
        super::check_data(&self.plan.spec, data)?;
        let batch = self.config.batch_size.min(data.len());
        // One graph per data set size, built on first use; later sets of that size are
        // uploaded into it (a host-to-GPU copy per evaluation, small next to the pass itself).
        let key = data.len();
        if let Some((resident, _)) = self.eval.get(&key) {
            resident.images.write_f32(self.ctx, &data.images)?;
            resident.labels.write_u32(self.ctx, &data.labels)?;
        } else {
            let resident = Resident::upload(self.ctx, "eval", data)?;
            let plan = self.plan.spec.plan(batch)?;
            let graph = self.build(&plan, &resident, false)?;
            self.eval.insert(key, (resident, graph));
        }
        let (resident, graph) = &self.eval[&key];
        self.clear_metrics(graph)?;
        let k = self.plan.spec.classes;
        let mut probs = Vec::with_capacity(if want_prob { data.len() * k } else { 0 });
        let refs: Vec<&Kernel> = graph.kernels.iter().collect();
        for b in 0..resident.len.div_ceil(batch) {
            let offset = b * batch;
            let gp = GatherParams {
                offset: offset as u32,
                ..graph.gather_params
            };
            graph.kernels[graph.gather].write_params(self.ctx, bytemuck::bytes_of(&gp));
            let valid = batch.min(resident.len - offset) as u32;
            let mp = MetricsParams {
                valid,
                ..graph.metrics_params
            };
            graph.kernels[graph.metrics].write_params(self.ctx, bytemuck::bytes_of(&mp));
            self.ctx.submit(&refs)?;
            self.submissions += 1;
            if want_prob {
                let p = graph.prob.read_f32(self.ctx)?;
                self.readbacks += 1;
                probs.extend_from_slice(&p[..valid as usize * k]);
            }
        }
        Ok((self.read_metrics(false, key)?, probs))
    }

    /// Writes what changes from step to step (batch offset, augmentation epoch, dropout
    /// seeds, learning rate) into the training graph's parameter buffers.
    fn write_step_params(&mut self, batch: usize, lr: f32) {
        self.t += 1;
        let g = &self.graph;
        let gp = GatherParams {
            offset: (batch * g.batch) as u32,
            ..g.gather_params
        };
        g.kernels[g.gather].write_params(self.ctx, bytemuck::bytes_of(&gp));
        if let Some((index, params)) = g.augment {
            let p = AugmentParams {
                offset: gp.offset,
                epoch: self.epochs - 1,
                ..params
            };
            g.kernels[index].write_params(self.ctx, bytemuck::bytes_of(&p));
        }
        for &(index, params, layer) in &g.dropout {
            let seed = crate::seed::dropout_seed(self.config.seed, self.t, layer);
            let p = DropoutParams { seed, ..params };
            g.kernels[index].write_params(self.ctx, bytemuck::bytes_of(&p));
        }
        let hyper = self.config.optimizer.hyper(lr, self.t);
        self.ctx
            .queue
            .write_buffer(&self.hyper, 0, bytemuck::bytes_of(&hyper));
    }

    /// Runs training step `batch` of the current epoch like [`Backend::step`], with every
    /// kernel timed (GPU timestamps where the adapter has them). Needs a begun epoch.
    pub fn profile_step(
        &mut self,
        batch: usize,
        lr: f32,
    ) -> Result<(Vec<KernelTime>, TimingSource)> {
        self.write_step_params(batch, lr);
        let refs: Vec<&Kernel> = self.graph.kernels.iter().collect();
        let timings = self.ctx.submit_timed(&refs)?;
        self.submissions += 1;
        Ok((kernel_times(&self.graph, &timings.ms), timings.source))
    }

    /// Runs one inference batch (forward, loss and metrics, no backward) over the first
    /// images of the training set with every kernel timed. The graph is built on first use.
    pub fn profile_inference(&mut self) -> Result<(Vec<KernelTime>, TimingSource)> {
        if self.profile_eval.is_none() {
            let plan = self.plan.clone();
            self.profile_eval = Some(self.build(&plan, &self.train_data, false)?);
        }
        let graph = self.profile_eval.as_ref().expect("built above");
        let refs: Vec<&Kernel> = graph.kernels.iter().collect();
        let timings = self.ctx.submit_timed(&refs)?;
        self.submissions += 1;
        Ok((kernel_times(graph, &timings.ms), timings.source))
    }

    /// Runs one inference batch without timing; with [`GpuContext::wait`], a wall-clock
    /// measure of what inference costs including submission.
    pub fn run_inference_batch(&mut self) -> Result<()> {
        if self.profile_eval.is_none() {
            let plan = self.plan.clone();
            self.profile_eval = Some(self.build(&plan, &self.train_data, false)?);
        }
        let graph = self.profile_eval.as_ref().expect("built above");
        let refs: Vec<&Kernel> = graph.kernels.iter().collect();
        self.ctx.submit(&refs)?;
        self.submissions += 1;
        Ok(())
    }
}

fn kernel_times(graph: &Graph, ms: &[f64]) -> Vec<KernelTime> {
    graph
        .kernels
        .iter()
        .zip(&graph.tags)
        .zip(ms)
        .map(|((k, (layer, pass)), &ms)| KernelTime {
            label: k.label.clone(),
            layer: layer.clone(),
            pass: *pass,
            ms,
        })
        .collect()
}

/// Tags every kernel added since the last tag with `layer` and `pass`.
fn tag(tags: &mut Vec<(String, Pass)>, kernels: &[Kernel], layer: &str, pass: Pass) {
    tags.resize(kernels.len(), (layer.to_string(), pass));
}

/// An empty graph to hold the place while the real one is built from the trainer itself.
fn placeholder_graph(ctx: &GpuContext) -> Result<Graph> {
    Ok(Graph {
        kernels: vec![],
        tags: vec![],
        gather: 0,
        gather_params: GatherParams {
            n: 0,
            sample: 0,
            offset: 0,
            count: 0,
        },
        dropout: vec![],
        augment: None,
        metrics: 0,
        metrics_params: MetricsParams {
            n: 0,
            k: 0,
            valid: 0,
            _pad0: 0,
        },
        prob: zeros(ctx, "placeholder", &[1])?,
        loss_sum: zeros(ctx, "placeholder", &[1])?,
        counts: zeros(ctx, "placeholder", &[1])?,
        batch: 0,
    })
}

impl Backend for GpuTrainer<'_> {
    fn restore(
        &mut self,
        params: &ParamSet,
        optimizer: Option<&(ParamSet, u64)>,
        epochs: u32,
    ) -> Result<()> {
        params.check_matches(&self.plan, "the restored parameters")?;
        for p in &self.params {
            let host = params.get(&p.name).expect("checked above");
            p.value.write_f32(self.ctx, &host.data)?;
        }
        if let Some((state, t)) = optimizer {
            self.load_optimizer_state(state, *t)?;
        }
        self.epochs = epochs;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("gpu: {} ({:?})", self.ctx.info.name, self.ctx.info.backend)
    }

    fn begin_epoch(&mut self, order: &[u32]) -> Result<()> {
        self.epochs += 1;
        self.train_data.order.write_u32(self.ctx, order)?;
        self.clear_metrics(&self.graph)
    }

    fn step(&mut self, batch: usize, lr: f32) -> Result<()> {
        self.write_step_params(batch, lr);
        let refs: Vec<&Kernel> = self.graph.kernels.iter().collect();
        self.ctx.submit(&refs)?;
        self.submissions += 1;
        Ok(())
    }

    fn end_epoch(&mut self) -> Result<EpochStats> {
        let r = self.read_metrics(true, 0)?;
        Ok(EpochStats {
            loss: r.loss,
            accuracy: r.accuracy,
            samples: r.samples,
        })
    }

    fn evaluate(&mut self, data: &Dataset) -> Result<EvalReport> {
        Ok(self.run_eval(data, false)?.0)
    }

    fn predict(&mut self, images: &[f32]) -> Result<Vec<f32>> {
        let spec = &self.plan.spec;
        let sample: usize = spec.input.iter().product();
        let len = images.len() / sample;
        let data = Dataset::new(
            images.to_vec(),
            vec![0; len],
            spec.input,
            (0..spec.classes).map(|c| c.to_string()).collect(),
        )?;
        Ok(self.run_eval(&data, true)?.1)
    }

    fn params(&self) -> Result<ParamSet> {
        let tensors = self
            .params
            .iter()
            .map(|p| {
                Ok(HostTensor {
                    name: p.name.clone(),
                    shape: p.value.shape.clone(),
                    data: p.value.read_f32(self.ctx)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(ParamSet { tensors })
    }

    fn optimizer_state(&self) -> Result<(ParamSet, u64)> {
        let mut tensors = vec![];
        for p in &self.params {
            for (slot, which) in [(&p.state1, "state1"), (&p.state2, "state2")] {
                if let Some(t) = slot {
                    tensors.push(HostTensor {
                        name: format!("{which}.{}", p.name),
                        shape: t.shape.clone(),
                        data: t.read_f32(self.ctx)?,
                    });
                }
            }
        }
        Ok((ParamSet { tensors }, self.t))
    }
}
