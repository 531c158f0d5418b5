//! One forward and backward pass of a small CNN on the GPU, each op checked against its CPU
//! twin on the same inputs (read back from the GPU, so each row measures that op alone).
//!
//! The net: batch norm on the `[n, 1, 48, 48]` input, conv 3x3 (8, pad 1), ReLU, max-pool 2x2
//! stride 3, conv 3x3 (16), leaky ReLU, average pool 3x3 stride 2 pad 1 (ceil mode), global
//! average pool, dropout 0.25, dense to 7 classes, softmax cross-entropy with label
//! smoothing 0.1. It exercises every op family; the training engine builds real models.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::check::{error_stats, ErrorStats};
use crate::cpu;
use crate::error::Result;
use crate::gpu::{DType, GpuContext, GpuTensor, Kernel, TimingSource};
use crate::ops::{activation, batchnorm, conv2d, dense, loss, pool, Epilogue};

/// One op direction of the demo.
#[derive(Debug, Clone)]
pub struct OpReport {
    pub op: String,
    pub shape: Vec<usize>,
    pub gpu_ms: f64,
    pub err: ErrorStats,
}

/// Everything the demo measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub adapter: String,
    pub timing: TimingSource,
    pub rows: Vec<OpReport>,
    pub loss_gpu: f32,
    pub loss_cpu: f32,
}

/// Seeded values uniform in [-1, 1).
pub fn random_vec(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

struct Runner<'a> {
    ctx: &'a GpuContext,
    rows: Vec<OpReport>,
    timing: TimingSource,
}

impl Runner<'_> {
    fn zeros(&self, label: &str, shape: &[usize]) -> Result<GpuTensor> {
        GpuTensor::zeros(self.ctx, label, shape, DType::F32)
    }

    /// Runs `kernels`, then compares `out` with `reference` computed from the GPU inputs.
    fn check(
        &mut self,
        op: &str,
        kernels: &[Kernel],
        out: &GpuTensor,
        reference: impl FnOnce() -> Result<Vec<f32>>,
    ) -> Result<Vec<f32>> {
        let refs: Vec<&Kernel> = kernels.iter().collect();
        let timings = self.ctx.submit_timed(&refs)?;
        self.timing = timings.source;
        let got = out.read_f32(self.ctx)?;
        let want = reference()?;
        self.rows.push(OpReport {
            op: op.to_string(),
            shape: out.shape.clone(),
            gpu_ms: timings.ms.iter().sum(),
            err: error_stats(&got, &want),
        });
        Ok(got)
    }
}

/// Runs the demo net on `ctx` with a batch of `n` seeded images.
pub fn run(ctx: &GpuContext, n: usize, seed: u64) -> Result<DemoReport> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut r = Runner {
        ctx,
        rows: vec![],
        timing: TimingSource::WallClock,
    };
    let classes = 7;
    let x_shape = [n, 1, 48, 48];
    let x_host = random_vec(&mut rng, x_shape.iter().product());
    let labels_host: Vec<u32> = (0..n)
        .map(|_| rng.random_range(0..classes as u32))
        .collect();
    let x = GpuTensor::from_f32(ctx, "input", &x_shape, &x_host)?;
    let labels = GpuTensor::from_u32(ctx, "labels", &[n], &labels_host)?;

    // Batch norm on the input, training mode.
    let bn_p = batchnorm::BatchNormParams::new(x_shape, 1e-5, 0.1)?;
    let gamma = GpuTensor::from_f32(ctx, "bn0.gamma", &[1], &[1.5])?;
    let beta = GpuTensor::from_f32(ctx, "bn0.beta", &[1], &[0.25])?;
    let run_mean = r.zeros("bn0.running_mean", &[1])?;
    let run_var = GpuTensor::from_f32(ctx, "bn0.running_var", &[1], &[1.0])?;
    let (mean, var) = (r.zeros("bn0.mean", &[1])?, r.zeros("bn0.var", &[1])?);
    let bn_y = r.zeros("bn0.y", &x_shape)?;
    let state = batchnorm::BatchNormState {
        gamma: &gamma,
        beta: &beta,
        running_mean: &run_mean,
        running_var: &run_var,
    };
    let stats = batchnorm::BatchStats {
        mean: &mean,
        var: &var,
    };
    let k = batchnorm::forward_train(ctx, &bn_p, Epilogue::None, "bn0", &x, &state, &stats, &bn_y)?;
    r.check("batchnorm forward (train)", &k, &bn_y, || {
        let (m, v) = cpu::batchnorm::batchnorm_stats(&bn_p, &x_host)?;
        cpu::batchnorm::batchnorm_forward(&bn_p, &x_host, &[1.5], &[0.25], &m, &v)
    })?;

    // conv1 + ReLU + max pool.
    let c1_p = conv2d::Conv2dParams::new(x_shape, 8, [3, 3], 1, 1)?;
    let c1_w_host: Vec<f32> = random_vec(&mut rng, 8 * 9)
        .iter()
        .map(|v| v * 0.47)
        .collect();
    let c1_b_host = random_vec(&mut rng, 8);
    let c1_w = GpuTensor::from_f32(ctx, "conv1.weight", &c1_p.weight_shape(), &c1_w_host)?;
    let c1_b = GpuTensor::from_f32(ctx, "conv1.bias", &[8], &c1_b_host)?;
    let c1_y = r.zeros("conv1.y", &c1_p.y_shape())?;
    let bn_y_host = bn_y.read_f32(ctx)?;
    let k = conv2d::forward(ctx, &c1_p, "conv1", &bn_y, &c1_w, &c1_b, &c1_y)?;
    let c1_y_host = r.check("conv2d forward", &[k], &c1_y, || {
        cpu::conv2d::conv2d_forward(&c1_p, &bn_y_host, &c1_w_host, &c1_b_host)
    })?;
    let relu_p = activation::ReluParams::new(c1_y.numel(), 0.0)?;
    let a1 = r.zeros("relu1.y", &c1_p.y_shape())?;
    let k = activation::relu_forward(ctx, &relu_p, "relu1", &c1_y, &a1)?;
    let a1_host = r.check("relu forward", &[k], &a1, || {
        cpu::activation::relu_forward(&relu_p, &c1_y_host)
    })?;
    let mp_p = pool::PoolParams::new(c1_p.y_shape(), [2, 2], 3, 0, false)?;
    let (p1, p1_arg) = (
        r.zeros("pool1.y", &mp_p.y_shape())?,
        GpuTensor::zeros(ctx, "pool1.argmax", &mp_p.y_shape(), DType::U32)?,
    );
    let k = pool::max_forward(ctx, &mp_p, "pool1", &a1, &p1, &p1_arg)?;
    let p1_host = r.check("maxpool forward", &[k], &p1, || {
        Ok(cpu::pool::maxpool_forward(&mp_p, &a1_host)?.0)
    })?;

    // conv2 + leaky ReLU + average pool (ceil mode) + global average pool.
    let c2_p = conv2d::Conv2dParams::new(mp_p.y_shape(), 16, [3, 3], 1, 0)?;
    let c2_w_host: Vec<f32> = random_vec(&mut rng, 16 * 8 * 9)
        .iter()
        .map(|v| v * 0.17)
        .collect();
    let c2_b_host = random_vec(&mut rng, 16);
    let c2_w = GpuTensor::from_f32(ctx, "conv2.weight", &c2_p.weight_shape(), &c2_w_host)?;
    let c2_b = GpuTensor::from_f32(ctx, "conv2.bias", &[16], &c2_b_host)?;
    let c2_y = r.zeros("conv2.y", &c2_p.y_shape())?;
    let k = conv2d::forward(ctx, &c2_p, "conv2", &p1, &c2_w, &c2_b, &c2_y)?;
    let c2_y_host = r.check("conv2d forward", &[k], &c2_y, || {
        cpu::conv2d::conv2d_forward(&c2_p, &p1_host, &c2_w_host, &c2_b_host)
    })?;
    let leaky_p = activation::ReluParams::new(c2_y.numel(), 0.01)?;
    let a2 = r.zeros("relu2.y", &c2_p.y_shape())?;
    let k = activation::relu_forward(ctx, &leaky_p, "relu2", &c2_y, &a2)?;
    let a2_host = r.check("leaky relu forward", &[k], &a2, || {
        cpu::activation::relu_forward(&leaky_p, &c2_y_host)
    })?;
    let ap_p = pool::PoolParams::new(c2_p.y_shape(), [3, 3], 2, 1, true)?;
    let p2 = r.zeros("pool2.y", &ap_p.y_shape())?;
    let k = pool::avg_forward(ctx, &ap_p, "pool2", &a2, &p2)?;
    let p2_host = r.check("avgpool forward", &[k], &p2, || {
        cpu::pool::avgpool_forward(&ap_p, &a2_host)
    })?;
    let gap_p = pool::PoolParams::global(ap_p.y_shape())?;
    let g = r.zeros("gap.y", &gap_p.global_y_shape())?;
    let k = pool::global_avg_forward(ctx, &gap_p, "gap", &p2, &g)?;
    let g_host = r.check("global avgpool forward", &[k], &g, || {
        cpu::pool::global_avgpool_forward(&gap_p, &p2_host)
    })?;

    // Dropout + dense + loss.
    let drop_p = activation::DropoutParams::new(g.numel(), 0.25, seed as u32)?;
    let d = r.zeros("dropout.y", &g.shape)?;
    let k = activation::dropout_forward(ctx, &drop_p, "dropout", &g, &d)?;
    let d_host = r.check("dropout forward", &[k], &d, || {
        cpu::activation::dropout_forward(&drop_p, &g_host)
    })?;
    let fc_p = dense::DenseParams::new(n, 16, classes)?;
    let fc_w_host: Vec<f32> = random_vec(&mut rng, classes * 16)
        .iter()
        .map(|v| v * 0.6)
        .collect();
    let fc_b_host = random_vec(&mut rng, classes);
    let fc_w = GpuTensor::from_f32(ctx, "fc.weight", &fc_p.weight_shape(), &fc_w_host)?;
    let fc_b = GpuTensor::from_f32(ctx, "fc.bias", &[classes], &fc_b_host)?;
    let logits = r.zeros("fc.y", &fc_p.y_shape())?;
    let k = dense::forward(ctx, &fc_p, "fc", &d, &fc_w, &fc_b, &logits)?;
    let logits_host = r.check("dense forward", &[k], &logits, || {
        cpu::dense::dense_forward(&fc_p, &d_host, &fc_w_host, &fc_b_host)
    })?;
    let loss_p = loss::LossParams::new(n, classes, 0.1)?;
    let class_weight = GpuTensor::from_f32(ctx, "class_weight", &[classes], &vec![1.0; classes])?;
    let (prob, sample_loss, loss_t) = (
        r.zeros("loss.prob", &[n, classes])?,
        r.zeros("loss.sample", &[n])?,
        r.zeros("loss.value", &[2])?,
    );
    let inputs = loss::LossInputs {
        logits: &logits,
        labels: &labels,
        class_weight: &class_weight,
    };
    let outputs = loss::LossOutputs {
        prob: &prob,
        sample_loss: &sample_loss,
        loss: &loss_t,
    };
    let k = loss::forward(ctx, &loss_p, "loss", &inputs, &outputs)?;
    let ones = vec![1.0; classes];
    let cpu_loss = cpu::loss::softmax_xent_forward(&loss_p, &logits_host, &labels_host, &ones)?;
    r.check("softmax xent forward", &k, &sample_loss, || {
        Ok(cpu_loss.sample_loss.clone())
    })?;
    let loss_gpu = loss_t.read_f32(ctx)?[0];

    // Backward, in reverse.
    let dlogits = r.zeros("loss.dlogits", &[n, classes])?;
    let k = loss::backward_input(ctx, &loss_p, "loss", &inputs, &outputs, &dlogits)?;
    let dlogits_host = r.check("softmax xent backward", &[k], &dlogits, || {
        cpu::loss::softmax_xent_backward_input(&loss_p, &logits_host, &labels_host, &ones)
    })?;
    let (dd, dfc_w, dfc_b) = (
        r.zeros("fc.dx", &g.shape)?,
        r.zeros("fc.dweight", &fc_p.weight_shape())?,
        r.zeros("fc.dbias", &[classes])?,
    );
    let k = dense::backward_input(ctx, &fc_p, "fc", &dlogits, &fc_w, &dd)?;
    let dd_host = r.check("dense backward input", &[k], &dd, || {
        cpu::dense::dense_backward_input(&fc_p, &dlogits_host, &fc_w_host)
    })?;
    let k = dense::backward_weight(ctx, &fc_p, "fc", &dlogits, &d, &dfc_w)?;
    r.check("dense backward weight", &[k], &dfc_w, || {
        cpu::dense::dense_backward_weight(&fc_p, &dlogits_host, &d_host)
    })?;
    let k = dense::backward_bias(ctx, &fc_p, "fc", &dlogits, &dfc_b)?;
    r.check("dense backward bias", &[k], &dfc_b, || {
        cpu::dense::dense_backward_bias(&fc_p, &dlogits_host)
    })?;
    let dg = r.zeros("dropout.dx", &g.shape)?;
    let k = activation::dropout_backward_input(ctx, &drop_p, "dropout", &dd, &dg)?;
    let dg_host = r.check("dropout backward", &[k], &dg, || {
        cpu::activation::dropout_backward_input(&drop_p, &dd_host)
    })?;
    let dp2 = r.zeros("gap.dx", &ap_p.y_shape())?;
    let k = pool::global_avg_backward_input(ctx, &gap_p, "gap", &dg, &dp2)?;
    let dp2_host = r.check("global avgpool backward", &[k], &dp2, || {
        cpu::pool::global_avgpool_backward_input(&gap_p, &dg_host)
    })?;
    let da2 = r.zeros("pool2.dx", &c2_p.y_shape())?;
    let k = pool::avg_backward_input(ctx, &ap_p, "pool2", &dp2, &da2)?;
    let da2_host = r.check("avgpool backward", &[k], &da2, || {
        cpu::pool::avgpool_backward_input(&ap_p, &dp2_host)
    })?;
    let dc2 = r.zeros("relu2.dx", &c2_p.y_shape())?;
    let k = activation::relu_backward_input(ctx, &leaky_p, "relu2", &da2, &c2_y, &dc2)?;
    let dc2_host = r.check("leaky relu backward", &[k], &dc2, || {
        cpu::activation::relu_backward_input(&leaky_p, &da2_host, &c2_y_host)
    })?;
    let (dp1, dc2_w, dc2_b) = (
        r.zeros("conv2.dx", &mp_p.y_shape())?,
        r.zeros("conv2.dweight", &c2_p.weight_shape())?,
        r.zeros("conv2.dbias", &[16])?,
    );
    let k = conv2d::backward_input(ctx, &c2_p, "conv2", &dc2, &c2_w, &dp1)?;
    let dp1_host = r.check("conv2d backward input", &[k], &dp1, || {
        cpu::conv2d::conv2d_backward_input(&c2_p, &dc2_host, &c2_w_host)
    })?;
    let k = conv2d::backward_weight(ctx, &c2_p, "conv2", &dc2, &p1, &dc2_w)?;
    r.check("conv2d backward weight", &k, &dc2_w, || {
        cpu::conv2d::conv2d_backward_weight(&c2_p, &dc2_host, &p1_host)
    })?;
    let k = conv2d::backward_bias(ctx, &c2_p, "conv2", &dc2, &dc2_b)?;
    r.check("conv2d backward bias", &k, &dc2_b, || {
        cpu::conv2d::conv2d_backward_bias(&c2_p, &dc2_host)
    })?;
    let da1 = r.zeros("pool1.dx", &c1_p.y_shape())?;
    let k = pool::max_backward_input(ctx, &mp_p, "pool1", &dp1, &p1_arg, &da1)?;
    let arg_host = p1_arg.read_u32(ctx)?;
    let da1_host = r.check("maxpool backward", &[k], &da1, || {
        cpu::pool::maxpool_backward_input(&mp_p, &dp1_host, &arg_host)
    })?;
    let dc1 = r.zeros("relu1.dx", &c1_p.y_shape())?;
    let k = activation::relu_backward_input(ctx, &relu_p, "relu1", &da1, &c1_y, &dc1)?;
    let dc1_host = r.check("relu backward", &[k], &dc1, || {
        cpu::activation::relu_backward_input(&relu_p, &da1_host, &c1_y_host)
    })?;
    let (dbn, dc1_w) = (
        r.zeros("conv1.dx", &x_shape)?,
        r.zeros("conv1.dweight", &c1_p.weight_shape())?,
    );
    let k = conv2d::backward_input(ctx, &c1_p, "conv1", &dc1, &c1_w, &dbn)?;
    let dbn_host = r.check("conv2d backward input", &[k], &dbn, || {
        cpu::conv2d::conv2d_backward_input(&c1_p, &dc1_host, &c1_w_host)
    })?;
    let k = conv2d::backward_weight(ctx, &c1_p, "conv1", &dc1, &bn_y, &dc1_w)?;
    r.check("conv2d backward weight", &k, &dc1_w, || {
        cpu::conv2d::conv2d_backward_weight(&c1_p, &dc1_host, &bn_y_host)
    })?;
    let (dx, dgamma, dbeta) = (
        r.zeros("bn0.dx", &x_shape)?,
        r.zeros("bn0.dgamma", &[1])?,
        r.zeros("bn0.dbeta", &[1])?,
    );
    let grads = batchnorm::BatchNormGrads {
        dx: &dx,
        dgamma: &dgamma,
        dbeta: &dbeta,
    };
    let k = batchnorm::backward(ctx, &bn_p, "bn0", &dbn, &x, &gamma, &stats, &grads)?;
    let mean_host = mean.read_f32(ctx)?;
    let var_host = var.read_f32(ctx)?;
    r.check("batchnorm backward input", &k, &dx, || {
        Ok(cpu::batchnorm::batchnorm_backward(
            &bn_p,
            &dbn_host,
            &x_host,
            &[1.5],
            &mean_host,
            &var_host,
        )?
        .0)
    })?;

    Ok(DemoReport {
        adapter: format!("{} ({:?})", ctx.info.name, ctx.info.backend),
        timing: r.timing,
        rows: r.rows,
        loss_gpu,
        loss_cpu: cpu_loss.loss,
    })
}
