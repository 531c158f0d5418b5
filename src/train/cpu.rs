//! The CPU backend: the training step of `gpu.rs` run eagerly with the CPU twins of every op,
//! in the same order. It is the reference a GPU step is compared with, and the fallback for
//! machines without an adapter (slow: plain loops).

use crate::cpu;
use crate::cpu::metrics::MetricsAcc;
use crate::data::Dataset;
use crate::error::Result;
use crate::model::spec::{LayerOp, ParamKind, Plan};
use crate::model::{HostTensor, ModelSpec, ParamSet};
use crate::ops::activation::DropoutParams;
use crate::ops::augment::AugmentParams;
use crate::ops::loss::LossParams;
use crate::train::{Backend, EpochStats, EvalReport, TrainConfig};

/// Training on the CPU with the reference ops.
pub struct CpuTrainer {
    plan: Plan,
    config: TrainConfig,
    params: ParamSet,
    /// Optimizer state per trainable tensor, by name: (state1, state2).
    state: Vec<(String, Vec<f32>, Vec<f32>)>,
    train: Dataset,
    order: Vec<u32>,
    acc: MetricsAcc,
    t: u64,
    /// Epochs begun so far (the augmentation draws change with the epoch).
    epochs: u32,
}

/// Per-layer values the backward pass needs.
enum Saved {
    None,
    Argmax(Vec<u32>),
    Stats(Vec<f32>, Vec<f32>),
}

fn data(params: &ParamSet, layer: &str, kind: ParamKind) -> Vec<f32> {
    params
        .get(&format!("{layer}.{}", kind.suffix()))
        .expect("plan and params agree")
        .data
        .clone()
}

impl CpuTrainer {
    pub fn new(
        spec: &ModelSpec,
        config: &TrainConfig,
        train: &Dataset,
        params: Option<ParamSet>,
    ) -> Result<Self> {
        let (plan, params) = super::prepare(spec, config, train, params)?;
        let state = plan
            .param_shapes()
            .into_iter()
            .filter(|(_, k, _)| k.trainable())
            .map(|(name, _, shape)| {
                let len = shape.iter().product();
                (name, vec![0.0; len], vec![0.0; len])
            })
            .collect();
        Ok(Self {
            acc: MetricsAcc::new(spec.classes),
            plan,
            config: config.clone(),
            params,
            state,
            train: train.clone(),
            order: (0..train.len() as u32).collect(),
            t: 0,
            epochs: 0,
        })
    }

    /// Forward through every layer: activations (input first) and saved values.
    fn forward(
        &mut self,
        plan: &Plan,
        x0: Vec<f32>,
        train: bool,
    ) -> Result<(Vec<Vec<f32>>, Vec<Saved>)> {
        let mut acts = vec![x0];
        let mut saved = vec![];
        for (i, layer) in plan.layers.iter().enumerate() {
            let (x, name) = (&acts[i], layer.name.as_str());
            let p = &self.params;
            let (y, keep) = match &layer.op {
                LayerOp::Conv2d(op) => (
                    cpu::conv2d::conv2d_forward(
                        op,
                        x,
                        &data(p, name, ParamKind::Weight),
                        &data(p, name, ParamKind::Bias),
                    )?,
                    Saved::None,
                ),
                LayerOp::Dense(op) => (
                    cpu::dense::dense_forward(
                        op,
                        x,
                        &data(p, name, ParamKind::Weight),
                        &data(p, name, ParamKind::Bias),
                    )?,
                    Saved::None,
                ),
                LayerOp::BatchNorm(op) => {
                    let (gamma, beta) = (
                        data(p, name, ParamKind::Gamma),
                        data(p, name, ParamKind::Beta),
                    );
                    if train {
                        let (mean, var) = cpu::batchnorm::batchnorm_stats(op, x)?;
                        let y =
                            cpu::batchnorm::batchnorm_forward(op, x, &gamma, &beta, &mean, &var)?;
                        let (rm, rv) = cpu::batchnorm::batchnorm_update_running(
                            op,
                            &mean,
                            &var,
                            &data(p, name, ParamKind::RunningMean),
                            &data(p, name, ParamKind::RunningVar),
                        );
                        self.set(name, ParamKind::RunningMean, rm);
                        self.set(name, ParamKind::RunningVar, rv);
                        (y, Saved::Stats(mean, var))
                    } else {
                        (
                            cpu::batchnorm::batchnorm_forward(
                                op,
                                x,
                                &gamma,
                                &beta,
                                &data(p, name, ParamKind::RunningMean),
                                &data(p, name, ParamKind::RunningVar),
                            )?,
                            Saved::None,
                        )
                    }
                }
                LayerOp::Relu(op) => (cpu::activation::relu_forward(op, x)?, Saved::None),
                LayerOp::MaxPool(op) => {
                    let (y, arg) = cpu::pool::maxpool_forward(op, x)?;
                    (y, Saved::Argmax(arg))
                }
                LayerOp::AvgPool(op) => (cpu::pool::avgpool_forward(op, x)?, Saved::None),
                LayerOp::GlobalAvgPool(op) => {
                    (cpu::pool::global_avgpool_forward(op, x)?, Saved::None)
                }
                LayerOp::Dropout(op) if train => (
                    cpu::activation::dropout_forward(&self.dropout(op, i), x)?,
                    Saved::None,
                ),
                LayerOp::Dropout(_) | LayerOp::Flatten => (x.clone(), Saved::None),
            };
            acts.push(y);
            saved.push(keep);
        }
        Ok((acts, saved))
    }

    fn dropout(&self, p: &DropoutParams, layer: usize) -> DropoutParams {
        DropoutParams {
            seed: crate::seed::dropout_seed(self.config.seed, self.t, layer),
            ..*p
        }
    }

    fn set(&mut self, layer: &str, kind: ParamKind, values: Vec<f32>) {
        let name = format!("{layer}.{}", kind.suffix());
        self.params
            .get_mut(&name)
            .expect("plan and params agree")
            .data = values;
    }

    fn loss_params(&self, n: usize) -> Result<(LossParams, Vec<f32>)> {
        let k = self.plan.spec.classes;
        let weights = self
            .config
            .class_weights
            .clone()
            .unwrap_or_else(|| vec![1.0; k]);
        Ok((LossParams::new(n, k, self.config.label_smoothing)?, weights))
    }
}

impl Backend for CpuTrainer {
    fn restore(
        &mut self,
        params: &ParamSet,
        optimizer: Option<&(ParamSet, u64)>,
        epochs: u32,
    ) -> Result<()> {
        params.check_matches(&self.plan, "the restored parameters")?;
        self.params = params.clone();
        if let Some((state, t)) = optimizer {
            for (name, s1, s2) in &mut self.state {
                if let Some(h) = state.get(&format!("state1.{name}")) {
                    s1.clone_from(&h.data);
                }
                if let Some(h) = state.get(&format!("state2.{name}")) {
                    s2.clone_from(&h.data);
                }
            }
            self.t = *t;
        }
        self.epochs = epochs;
        Ok(())
    }

    fn describe(&self) -> String {
        "cpu reference".into()
    }

    fn begin_epoch(&mut self, order: &[u32]) -> Result<()> {
        self.epochs += 1;
        self.order = order.to_vec();
        self.acc = MetricsAcc::new(self.plan.spec.classes);
        Ok(())
    }

    fn step(&mut self, batch: usize, lr: f32) -> Result<()> {
        self.t += 1;
        let plan = self.plan.clone();
        let n = plan.batch;
        let (mut x0, labels) = cpu::batch::gather_batch(
            &self.train.images,
            &self.train.labels,
            &self.order,
            batch * n,
            n,
            self.train.sample_len(),
        );
        if let Some(a) = self.config.augment {
            let p = a.params(
                plan.input_shape(),
                self.order.len(),
                self.config.augment_seed(),
            );
            let p = AugmentParams {
                offset: (batch * n) as u32,
                epoch: self.epochs - 1,
                ..p
            };
            x0 = cpu::augment::augment_forward(&p, &x0, &self.order);
        }

        // Forward, loss, metrics.
        let (acts, saved) = self.forward(&plan, x0, true)?;
        let logits = acts.last().expect("a plan has layers");
        let (lp, weights) = self.loss_params(n)?;
        let fwd = cpu::loss::softmax_xent_forward(&lp, logits, &labels, &weights)?;
        self.acc
            .metrics_accumulate(&fwd.sample_loss, &fwd.prob, &labels, n);

        // Backward, in reverse layer order.
        let mut grads: Vec<(String, Vec<f32>)> = vec![];
        let mut dy = cpu::loss::softmax_xent_backward_input(&lp, logits, &labels, &weights)?;
        for (i, layer) in plan.layers.iter().enumerate().rev() {
            let (x, name) = (&acts[i], layer.name.as_str());
            let frozen = self.config.frozen.iter().any(|f| f == name);
            let p = &self.params;
            let key = |kind: ParamKind| format!("{name}.{}", kind.suffix());
            dy = match (&layer.op, &saved[i]) {
                (LayerOp::Conv2d(op), _) => {
                    if !frozen {
                        grads.push((
                            key(ParamKind::Weight),
                            cpu::conv2d::conv2d_backward_weight(op, &dy, x)?,
                        ));
                        grads.push((
                            key(ParamKind::Bias),
                            cpu::conv2d::conv2d_backward_bias(op, &dy)?,
                        ));
                    }
                    cpu::conv2d::conv2d_backward_input(op, &dy, &data(p, name, ParamKind::Weight))?
                }
                (LayerOp::Dense(op), _) => {
                    if !frozen {
                        grads.push((
                            key(ParamKind::Weight),
                            cpu::dense::dense_backward_weight(op, &dy, x)?,
                        ));
                        grads.push((
                            key(ParamKind::Bias),
                            cpu::dense::dense_backward_bias(op, &dy)?,
                        ));
                    }
                    cpu::dense::dense_backward_input(op, &dy, &data(p, name, ParamKind::Weight))?
                }
                (LayerOp::BatchNorm(op), Saved::Stats(mean, var)) => {
                    let (dx, dgamma, dbeta) = cpu::batchnorm::batchnorm_backward(
                        op,
                        &dy,
                        x,
                        &data(p, name, ParamKind::Gamma),
                        mean,
                        var,
                    )?;
                    if !frozen {
                        grads.push((key(ParamKind::Gamma), dgamma));
                        grads.push((key(ParamKind::Beta), dbeta));
                    }
                    dx
                }
                (LayerOp::Relu(op), _) => cpu::activation::relu_backward_input(op, &dy, x)?,
                (LayerOp::MaxPool(op), Saved::Argmax(arg)) => {
                    cpu::pool::maxpool_backward_input(op, &dy, arg)?
                }
                (LayerOp::AvgPool(op), _) => cpu::pool::avgpool_backward_input(op, &dy)?,
                (LayerOp::GlobalAvgPool(op), _) => {
                    cpu::pool::global_avgpool_backward_input(op, &dy)?
                }
                (LayerOp::Dropout(op), _) => {
                    cpu::activation::dropout_backward_input(&self.dropout(op, i), &dy)?
                }
                _ => dy,
            };
        }

        // Clip, then update, in model order (as the GPU records them).
        let order = |name: &str| plan.param_shapes().iter().position(|(n, _, _)| n == name);
        grads.sort_by_key(|(name, _)| order(name));
        let clip = match self.config.clip_norm {
            Some(max_norm) => {
                let all: Vec<&[f32]> = grads.iter().map(|(_, g)| g.as_slice()).collect();
                cpu::optim::clip_scale(&all, max_norm).0
            }
            None => 1.0,
        };
        let hyper = self.config.optimizer.hyper(lr, self.t);
        for (name, grad) in grads {
            let (_, s1, s2) = self
                .state
                .iter_mut()
                .find(|(n, _, _)| *n == name)
                .expect("trainable");
            let weight = &mut self.params.get_mut(&name).expect("param").data;
            cpu::optim::update(&self.config.optimizer, &hyper, clip, weight, &grad, s1, s2);
        }
        Ok(())
    }

    fn end_epoch(&mut self) -> Result<EpochStats> {
        let a = &self.acc;
        Ok(EpochStats {
            loss: a.loss_sum / a.samples.max(1) as f64,
            accuracy: a.correct as f64 / a.samples.max(1) as f64,
            samples: a.samples,
        })
    }

    fn evaluate(&mut self, data: &Dataset) -> Result<EvalReport> {
        let probs = self.predict(&data.images)?;
        let k = self.plan.spec.classes;
        let (lp, weights) = self.loss_params(data.len())?;
        let logits: Vec<f32> = probs
            .iter()
            .map(|p| p.max(f32::MIN_POSITIVE).ln())
            .collect();
        // Loss from the probabilities (log-softmax of log-probabilities is the identity).
        let fwd = cpu::loss::softmax_xent_forward(&lp, &logits, &data.labels, &weights)?;
        let mut acc = MetricsAcc::new(k);
        acc.metrics_accumulate(&fwd.sample_loss, &probs, &data.labels, data.len());
        Ok(EvalReport::from_counts(
            acc.loss_sum,
            acc.samples,
            acc.correct,
            &acc.confusion,
            k,
        ))
    }

    fn predict(&mut self, images: &[f32]) -> Result<Vec<f32>> {
        let spec = self.plan.spec.clone();
        let sample: usize = spec.input.iter().product();
        let len = images.len() / sample;
        let plan = spec.plan(len.max(1))?;
        let (acts, _) = self.forward(&plan, images.to_vec(), false)?;
        let (lp, weights) = self.loss_params(len)?;
        let fwd = cpu::loss::softmax_xent_forward(
            &lp,
            acts.last().expect("layers"),
            &vec![0; len],
            &weights,
        )?;
        Ok(fwd.prob)
    }

    fn params(&self) -> Result<ParamSet> {
        Ok(self.params.clone())
    }

    fn optimizer_state(&self) -> Result<(ParamSet, u64)> {
        let mut tensors = vec![];
        for (name, s1, s2) in &self.state {
            let shape = self.params.get(name).expect("param").shape.clone();
            tensors.push(HostTensor {
                name: format!("state1.{name}"),
                shape: shape.clone(),
                data: s1.clone(),
            });
            if self.config.optimizer.has_second_state() {
                tensors.push(HostTensor {
                    name: format!("state2.{name}"),
                    shape,
                    data: s2.clone(),
                });
            }
        }
        Ok((ParamSet { tensors }, self.t))
    }
}
