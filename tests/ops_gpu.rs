//! Every op, forward and every backward output, on the GPU against the CPU reference on the
//! same seeded inputs, over tables of shapes chosen to break index maths: batch 1, odd sizes,
//! sizes that are not multiples of the workgroup (64), padding, stride larger than the window,
//! windows running past the edge, and reductions long enough to span several partials.
//!
//! Run `cargo test --test ops_gpu -- --nocapture` to see the measured errors per case.

mod common;

use common::{gpu, rand_vec, rng};
use fer_wgpu::check::{assert_close, error_stats, Tolerance};
use fer_wgpu::cpu;
use fer_wgpu::gpu::{DType, GpuContext, GpuTensor, Kernel};
use fer_wgpu::ops::activation::{self, DropoutParams, ReluParams};
use fer_wgpu::ops::batchnorm::{self, BatchNormGrads, BatchNormParams, BatchNormState, BatchStats};
use fer_wgpu::ops::conv2d::{self, Conv2dParams};
use fer_wgpu::ops::dense::{self, DenseParams};
use fer_wgpu::ops::loss::{self, LossInputs, LossOutputs, LossParams};
use fer_wgpu::ops::pool::{self, PoolParams};
use fer_wgpu::ops::Epilogue;

fn upload(ctx: &GpuContext, label: &str, shape: &[usize], data: &[f32]) -> GpuTensor {
    GpuTensor::from_f32(ctx, label, shape, data).unwrap()
}

fn zeros(ctx: &GpuContext, label: &str, shape: &[usize]) -> GpuTensor {
    GpuTensor::zeros(ctx, label, shape, DType::F32).unwrap()
}

fn run(ctx: &GpuContext, kernels: &[Kernel]) {
    ctx.submit(&kernels.iter().collect::<Vec<_>>()).unwrap();
}

/// Compares and prints the measured error, so `--nocapture` shows the figures.
fn compare(what: &str, got: &[f32], want: &[f32], tol: Tolerance) {
    let s = error_stats(got, want);
    println!(
        "{what:<60} max abs {:.2e}  max rel {:.2e}",
        s.max_abs, s.max_rel
    );
    assert_close(what, got, want, tol);
}

// ---------------------------------------------------------------------------------------------
// conv2d

/// (input [n, c_in, h, w], c_out, kernel, stride, pad)
const CONV_CASES: &[([usize; 4], usize, usize, usize, usize)] = &[
    ([1, 1, 5, 5], 1, 3, 1, 0),    // smallest: batch 1, one channel
    ([2, 3, 7, 9], 4, 3, 1, 1),    // odd, non-square, "same" padding
    ([3, 2, 11, 8], 5, 2, 3, 0),   // stride larger than the kernel
    ([1, 4, 13, 13], 3, 5, 2, 2),  // 5x5, stride 2, pad 2
    ([2, 3, 6, 6], 2, 1, 1, 0),    // 1x1 convolution
    ([4, 8, 17, 19], 16, 3, 2, 1), // many channels, odd sizes
    ([1, 1, 3, 3], 2, 5, 1, 1),    // kernel larger than the input but not the padded input
    ([2, 3, 40, 40], 8, 3, 1, 1),  // 3200 positions: 13 partials in the weight reduction
    // Tiled kernels: 20 channels = a full and a partial tile of 16; 32 input channels = three
    // rounds of staged weights; 288 taps = several tap blocks of the weight gradient.
    ([2, 32, 9, 9], 20, 3, 1, 1),
    ([1, 1, 25, 25], 1, 23, 1, 0), // 529 taps do not fit the staged weights: direct fallback
    // One input channel, stride 1: the first layer's row-segment weight gradient. Rows of 13
    // end in a part-empty segment; 20 channels = a full and a partial block of 16; 16 taps
    // with pad 2, and runs of 16 segments that span images.
    ([2, 1, 9, 13], 8, 3, 1, 1),
    ([1, 1, 5, 6], 20, 2, 1, 0),
    ([3, 1, 7, 30], 3, 4, 1, 2),
];

#[test]
fn conv2d_matches_cpu_reference() {
    for variant in [conv2d::Variant::Tiled, conv2d::Variant::Direct] {
        conv2d_variant_matches_cpu_reference(variant);
    }
}

fn conv2d_variant_matches_cpu_reference(variant: conv2d::Variant) {
    let ctx = gpu();
    for (case, &(x_shape, c_out, k, stride, pad)) in CONV_CASES.iter().enumerate() {
        let p = Conv2dParams::new(x_shape, c_out, [k, k], stride, pad).unwrap();
        let mut r = rng(100 + case as u64);
        let x_h = rand_vec(&mut r, x_shape.iter().product());
        let w_h = rand_vec(&mut r, p.weight_shape().iter().product());
        let b_h = rand_vec(&mut r, c_out);
        let dy_h = rand_vec(&mut r, p.y_shape().iter().product());
        let x = upload(ctx, "x", &x_shape, &x_h);
        let w = upload(ctx, "w", &p.weight_shape(), &w_h);
        let b = upload(ctx, "b", &[c_out], &b_h);
        let dy = upload(ctx, "dy", &p.y_shape(), &dy_h);
        let y = zeros(ctx, "y", &p.y_shape());
        let dx = zeros(ctx, "dx", &x_shape);
        let dw = zeros(ctx, "dw", &p.weight_shape());
        let db = zeros(ctx, "db", &[c_out]);
        let mut kernels =
            vec![
                conv2d::forward_with(ctx, &p, variant, Epilogue::None, "c", &x, &w, &b, &y)
                    .unwrap(),
            ];
        kernels.push(conv2d::backward_input_variant(ctx, &p, variant, "c", &dy, &w, &dx).unwrap());
        kernels
            .extend(conv2d::backward_weight_variant(ctx, &p, variant, "c", &dy, &x, &dw).unwrap());
        kernels.extend(conv2d::backward_bias(ctx, &p, "c", &dy, &db).unwrap());
        run(ctx, &kernels);
        let name = format!("conv2d {variant:?} {x_shape:?} c_out {c_out} k {k} s {stride} p {pad}");
        // c_in*kh*kw <= 529 f32 products per output, summed in a different order than f64.
        compare(
            &format!("{name} y"),
            &y.read_f32(ctx).unwrap(),
            &cpu::conv2d::conv2d_forward(&p, &x_h, &w_h, &b_h).unwrap(),
            Tolerance::TIGHT,
        );
        compare(
            &format!("{name} dx"),
            &dx.read_f32(ctx).unwrap(),
            &cpu::conv2d::conv2d_backward_input(&p, &dy_h, &w_h).unwrap(),
            Tolerance::TIGHT,
        );
        // Sums over n*oh*ow (up to 3200 terms) in 256-term partials.
        compare(
            &format!("{name} dweight"),
            &dw.read_f32(ctx).unwrap(),
            &cpu::conv2d::conv2d_backward_weight(&p, &dy_h, &x_h).unwrap(),
            Tolerance::REDUCTION,
        );
        compare(
            &format!("{name} dbias"),
            &db.read_f32(ctx).unwrap(),
            &cpu::conv2d::conv2d_backward_bias(&p, &dy_h).unwrap(),
            Tolerance::REDUCTION,
        );
    }
}

#[test]
fn conv2d_hand_checked() {
    // x = 0..9 as a 3x3 image, a 2x2 kernel of ones, bias 0.5: each output is the sum of a
    // 2x2 block plus 0.5.
    let ctx = gpu();
    let p = Conv2dParams::new([1, 1, 3, 3], 1, [2, 2], 1, 0).unwrap();
    let x_h: Vec<f32> = (0..9).map(|v| v as f32).collect();
    let x = upload(ctx, "x", &[1, 1, 3, 3], &x_h);
    let w = upload(ctx, "w", &[1, 1, 2, 2], &[1.0; 4]);
    let b = upload(ctx, "b", &[1], &[0.5]);
    let y = zeros(ctx, "y", &[1, 1, 2, 2]);
    run(
        ctx,
        &[conv2d::forward(ctx, &p, "c", &x, &w, &b, &y).unwrap()],
    );
    let want = [8.5, 12.5, 20.5, 24.5];
    assert_eq!(y.read_f32(ctx).unwrap(), want);
    assert_eq!(
        cpu::conv2d::conv2d_forward(&p, &x_h, &[1.0; 4], &[0.5]).unwrap(),
        want
    );
}

// ---------------------------------------------------------------------------------------------
// pooling

/// (input, kernel, stride, pad, ceil mode)
const POOL_CASES: &[([usize; 4], usize, usize, usize, bool)] = &[
    ([1, 1, 5, 5], 2, 2, 0, false),
    ([2, 3, 9, 9], 2, 3, 0, false), // stride > kernel, as in the classic small-FER net
    ([2, 3, 10, 10], 2, 3, 0, true), // ceil mode: the last window runs past the edge
    ([1, 2, 7, 8], 3, 2, 1, true),  // padding and ceil mode
    ([3, 4, 13, 11], 3, 3, 1, false), // odd, non-square
    ([1, 1, 4, 4], 4, 4, 0, false), // a single window
    ([1, 8, 74, 74], 2, 3, 0, true), // 8 planes of 25x25 outputs
    ([2, 2, 6, 6], 3, 1, 1, false), // overlapping windows: an input is max of several
    // Inputs no window reaches (the last row and column; with padding, also the gap between
    // windows): the per-window backward kernel must still write their zeros.
    ([1, 2, 12, 12], 2, 3, 0, false),
    ([2, 1, 8, 8], 2, 3, 1, false),
];

#[test]
fn maxpool_matches_cpu_reference() {
    let ctx = gpu();
    for (case, &(x_shape, k, stride, pad, ceil)) in POOL_CASES.iter().enumerate() {
        let p = PoolParams::new(x_shape, [k, k], stride, pad, ceil).unwrap();
        let mut r = rng(200 + case as u64);
        let x_h = rand_vec(&mut r, x_shape.iter().product());
        let dy_h = rand_vec(&mut r, p.y_shape().iter().product());
        let x = upload(ctx, "x", &x_shape, &x_h);
        let dy = upload(ctx, "dy", &p.y_shape(), &dy_h);
        let y = zeros(ctx, "y", &p.y_shape());
        let arg = GpuTensor::zeros(ctx, "argmax", &p.y_shape(), DType::U32).unwrap();
        // Not zeros: the backward pass must overwrite every element, reached by a window or not.
        let dx = upload(ctx, "dx", &x_shape, &vec![7.0; x_h.len()]);
        run(
            ctx,
            &[
                pool::max_forward(ctx, &p, "mp", &x, &y, &arg).unwrap(),
                pool::max_backward_input(ctx, &p, "mp", &dy, &arg, &dx).unwrap(),
            ],
        );
        let (y_ref, arg_ref) = cpu::pool::maxpool_forward(&p, &x_h).unwrap();
        let name = format!("maxpool {x_shape:?} k {k} s {stride} p {pad} ceil {ceil}");
        // A max selects a value: exact.
        compare(
            &format!("{name} y"),
            &y.read_f32(ctx).unwrap(),
            &y_ref,
            Tolerance::EXACT,
        );
        assert_eq!(arg.read_u32(ctx).unwrap(), arg_ref, "{name} argmax");
        // At most a few dy values meet at one input (overlapping windows): short sums.
        compare(
            &format!("{name} dx"),
            &dx.read_f32(ctx).unwrap(),
            &cpu::pool::maxpool_backward_input(&p, &dy_h, &arg_ref).unwrap(),
            Tolerance::TIGHT,
        );
    }
}

#[test]
fn avgpool_matches_cpu_reference() {
    let ctx = gpu();
    for (case, &(x_shape, k, stride, pad, ceil)) in POOL_CASES.iter().enumerate() {
        let p = PoolParams::new(x_shape, [k, k], stride, pad, ceil).unwrap();
        let mut r = rng(300 + case as u64);
        let x_h = rand_vec(&mut r, x_shape.iter().product());
        let dy_h = rand_vec(&mut r, p.y_shape().iter().product());
        let x = upload(ctx, "x", &x_shape, &x_h);
        let dy = upload(ctx, "dy", &p.y_shape(), &dy_h);
        let y = zeros(ctx, "y", &p.y_shape());
        let dx = zeros(ctx, "dx", &x_shape);
        run(
            ctx,
            &[
                pool::avg_forward(ctx, &p, "ap", &x, &y).unwrap(),
                pool::avg_backward_input(ctx, &p, "ap", &dy, &dx).unwrap(),
            ],
        );
        let name = format!("avgpool {x_shape:?} k {k} s {stride} p {pad} ceil {ceil}");
        // Window sums of at most 16 terms and one division.
        compare(
            &format!("{name} y"),
            &y.read_f32(ctx).unwrap(),
            &cpu::pool::avgpool_forward(&p, &x_h).unwrap(),
            Tolerance::TIGHT,
        );
        compare(
            &format!("{name} dx"),
            &dx.read_f32(ctx).unwrap(),
            &cpu::pool::avgpool_backward_input(&p, &dy_h).unwrap(),
            Tolerance::TIGHT,
        );
    }
}

#[test]
fn pool_hand_checked() {
    // x = 0..16 as a 4x4 image, 2x2 windows, stride 2: maxima are the bottom-right corners,
    // means the block centres.
    let ctx = gpu();
    let p = PoolParams::new([1, 1, 4, 4], [2, 2], 2, 0, false).unwrap();
    let x_h: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let x = upload(ctx, "x", &[1, 1, 4, 4], &x_h);
    let (ym, ya) = (
        zeros(ctx, "ym", &[1, 1, 2, 2]),
        zeros(ctx, "ya", &[1, 1, 2, 2]),
    );
    let arg = GpuTensor::zeros(ctx, "arg", &[1, 1, 2, 2], DType::U32).unwrap();
    run(
        ctx,
        &[
            pool::max_forward(ctx, &p, "mp", &x, &ym, &arg).unwrap(),
            pool::avg_forward(ctx, &p, "ap", &x, &ya).unwrap(),
        ],
    );
    assert_eq!(ym.read_f32(ctx).unwrap(), [5.0, 7.0, 13.0, 15.0]);
    assert_eq!(arg.read_u32(ctx).unwrap(), [5, 7, 13, 15]);
    assert_eq!(ya.read_f32(ctx).unwrap(), [2.5, 4.5, 10.5, 12.5]);
    // Ceil mode on a 5x5 input with 2x2 stride 2 keeps a third, 1-wide window per axis.
    let p = PoolParams::new([1, 1, 5, 5], [2, 2], 2, 0, true).unwrap();
    assert_eq!(p.y_shape(), [1, 1, 3, 3]);
    let x_h: Vec<f32> = (0..25).map(|v| v as f32).collect();
    // The corner window holds only x[4, 4] = 24.
    assert_eq!(cpu::pool::avgpool_forward(&p, &x_h).unwrap()[8], 24.0);
}

#[test]
fn global_avgpool_matches_cpu_reference() {
    let ctx = gpu();
    for (case, x_shape) in [[1, 1, 1, 1], [2, 3, 5, 7], [4, 16, 12, 12], [1, 70, 3, 3]]
        .into_iter()
        .enumerate()
    {
        let p = PoolParams::global(x_shape).unwrap();
        let mut r = rng(400 + case as u64);
        let x_h = rand_vec(&mut r, x_shape.iter().product());
        let dy_h = rand_vec(&mut r, x_shape[0] * x_shape[1]);
        let x = upload(ctx, "x", &x_shape, &x_h);
        let dy = upload(ctx, "dy", &p.global_y_shape(), &dy_h);
        let y = zeros(ctx, "y", &p.global_y_shape());
        let dx = zeros(ctx, "dx", &x_shape);
        run(
            ctx,
            &[
                pool::global_avg_forward(ctx, &p, "gap", &x, &y).unwrap(),
                pool::global_avg_backward_input(ctx, &p, "gap", &dy, &dx).unwrap(),
            ],
        );
        // Plane sums of up to 144 terms.
        compare(
            &format!("global avgpool {x_shape:?} y"),
            &y.read_f32(ctx).unwrap(),
            &cpu::pool::global_avgpool_forward(&p, &x_h).unwrap(),
            Tolerance::TIGHT,
        );
        compare(
            &format!("global avgpool {x_shape:?} dx"),
            &dx.read_f32(ctx).unwrap(),
            &cpu::pool::global_avgpool_backward_input(&p, &dy_h).unwrap(),
            Tolerance::TIGHT,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// batch norm

#[test]
fn batchnorm_matches_cpu_reference() {
    let ctx = gpu();
    for (case, x_shape) in [
        [1, 1, 1, 2],
        [2, 3, 5, 5],
        [4, 2, 7, 9],
        [1, 4, 3, 3],
        [16, 3, 20, 20],
        [8, 16, 1, 1],
    ]
    .into_iter()
    .enumerate()
    {
        let c = x_shape[1];
        let p = BatchNormParams::new(x_shape, 1e-5, 0.1).unwrap();
        let mut r = rng(500 + case as u64);
        // An offset and scale per case, so the statistics are not those of [-1, 1).
        let x_h: Vec<f32> = rand_vec(&mut r, x_shape.iter().product())
            .iter()
            .map(|v| 3.0 * v + 0.5)
            .collect();
        let gamma_h = rand_vec(&mut r, c);
        let beta_h = rand_vec(&mut r, c);
        let rm_h = rand_vec(&mut r, c);
        let rv_h: Vec<f32> = rand_vec(&mut r, c).iter().map(|v| v.abs() + 0.5).collect();
        let dy_h = rand_vec(&mut r, x_shape.iter().product());
        let x = upload(ctx, "x", &x_shape, &x_h);
        let (gamma, beta) = (
            upload(ctx, "gamma", &[c], &gamma_h),
            upload(ctx, "beta", &[c], &beta_h),
        );
        let (rm, rv) = (
            upload(ctx, "rm", &[c], &rm_h),
            upload(ctx, "rv", &[c], &rv_h),
        );
        let (mean, var) = (zeros(ctx, "mean", &[c]), zeros(ctx, "var", &[c]));
        let (y, y_inf) = (zeros(ctx, "y", &x_shape), zeros(ctx, "y_inf", &x_shape));
        let dy = upload(ctx, "dy", &x_shape, &dy_h);
        let (dx, dgamma, dbeta) = (
            zeros(ctx, "dx", &x_shape),
            zeros(ctx, "dg", &[c]),
            zeros(ctx, "db", &[c]),
        );
        let state = BatchNormState {
            gamma: &gamma,
            beta: &beta,
            running_mean: &rm,
            running_var: &rv,
        };
        let stats = BatchStats {
            mean: &mean,
            var: &var,
        };
        let grads = BatchNormGrads {
            dx: &dx,
            dgamma: &dgamma,
            dbeta: &dbeta,
        };
        // Inference first: it reads the running statistics before training updates them.
        let mut kernels =
            vec![
                batchnorm::forward_infer(ctx, &p, Epilogue::None, "bn", &x, &state, &y_inf)
                    .unwrap(),
            ];
        kernels.extend(
            batchnorm::forward_train(ctx, &p, Epilogue::None, "bn", &x, &state, &stats, &y)
                .unwrap(),
        );
        if p.count() >= 2 {
            kernels.extend(
                batchnorm::backward(ctx, &p, "bn", &dy, &x, &gamma, &stats, &grads).unwrap(),
            );
        }
        run(ctx, &kernels);

        let name = format!("batchnorm {x_shape:?}");
        let (mean_ref, var_ref) = cpu::batchnorm::batchnorm_stats(&p, &x_h).unwrap();
        // Sums over n*h*w (up to 6400 terms) in 256-term partials.
        compare(
            &format!("{name} mean"),
            &mean.read_f32(ctx).unwrap(),
            &mean_ref,
            Tolerance::REDUCTION,
        );
        compare(
            &format!("{name} var"),
            &var.read_f32(ctx).unwrap(),
            &var_ref,
            Tolerance::REDUCTION,
        );
        let y_ref =
            cpu::batchnorm::batchnorm_forward(&p, &x_h, &gamma_h, &beta_h, &mean_ref, &var_ref)
                .unwrap();
        compare(
            &format!("{name} y (train)"),
            &y.read_f32(ctx).unwrap(),
            &y_ref,
            Tolerance::NORMALIZED,
        );
        let y_inf_ref =
            cpu::batchnorm::batchnorm_forward(&p, &x_h, &gamma_h, &beta_h, &rm_h, &rv_h).unwrap();
        compare(
            &format!("{name} y (inference)"),
            &y_inf.read_f32(ctx).unwrap(),
            &y_inf_ref,
            Tolerance::TIGHT,
        );
        let (rm_ref, rv_ref) =
            cpu::batchnorm::batchnorm_update_running(&p, &mean_ref, &var_ref, &rm_h, &rv_h);
        compare(
            &format!("{name} running mean"),
            &rm.read_f32(ctx).unwrap(),
            &rm_ref,
            Tolerance::REDUCTION,
        );
        compare(
            &format!("{name} running var"),
            &rv.read_f32(ctx).unwrap(),
            &rv_ref,
            Tolerance::REDUCTION,
        );
        let (dx_ref, dg_ref, db_ref) =
            cpu::batchnorm::batchnorm_backward(&p, &dy_h, &x_h, &gamma_h, &mean_ref, &var_ref)
                .unwrap();
        compare(
            &format!("{name} dx"),
            &dx.read_f32(ctx).unwrap(),
            &dx_ref,
            Tolerance::NORMALIZED,
        );
        compare(
            &format!("{name} dgamma"),
            &dgamma.read_f32(ctx).unwrap(),
            &dg_ref,
            Tolerance::NORMALIZED,
        );
        compare(
            &format!("{name} dbeta"),
            &dbeta.read_f32(ctx).unwrap(),
            &db_ref,
            Tolerance::REDUCTION,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// activations

#[test]
fn relu_and_leaky_relu_match_cpu_reference() {
    let ctx = gpu();
    for (case, numel) in [1usize, 63, 65, 1000, 70_001].into_iter().enumerate() {
        for slope in [0.0, 0.1] {
            let p = ReluParams::new(numel, slope).unwrap();
            let mut r = rng(600 + case as u64);
            let mut x_h = rand_vec(&mut r, numel);
            x_h[0] = 0.0; // the kink takes the left slope on both sides
            let dy_h = rand_vec(&mut r, numel);
            let x = upload(ctx, "x", &[numel], &x_h);
            let dy = upload(ctx, "dy", &[numel], &dy_h);
            let (y, dx) = (zeros(ctx, "y", &[numel]), zeros(ctx, "dx", &[numel]));
            run(
                ctx,
                &[
                    activation::relu_forward(ctx, &p, "relu", &x, &y).unwrap(),
                    activation::relu_backward_input(ctx, &p, "relu", &dy, &x, &dx).unwrap(),
                ],
            );
            // One multiply at most, the same on both sides: exact.
            compare(
                &format!("relu {numel} slope {slope} y"),
                &y.read_f32(ctx).unwrap(),
                &cpu::activation::relu_forward(&p, &x_h).unwrap(),
                Tolerance::EXACT,
            );
            compare(
                &format!("relu {numel} slope {slope} dx"),
                &dx.read_f32(ctx).unwrap(),
                &cpu::activation::relu_backward_input(&p, &dy_h, &x_h).unwrap(),
                Tolerance::EXACT,
            );
        }
    }
}

#[test]
fn elementwise_grid_spills_into_y_for_large_tensors() {
    // More than 65535 workgroups of 64: the grid needs a second dimension, and flat_id must
    // cover every element exactly once.
    let ctx = gpu();
    let numel = 65_535 * 64 + 1000;
    assert!(
        ctx.grid_for(numel as u32)[1] > 1,
        "the case must exercise a 2-D grid"
    );
    let x_h: Vec<f32> = (0..numel).map(|i| (i % 1000) as f32 - 500.0).collect();
    let p = ReluParams::new(numel, 0.5).unwrap();
    let x = upload(ctx, "x", &[numel], &x_h);
    let y = zeros(ctx, "y", &[numel]);
    run(
        ctx,
        &[activation::relu_forward(ctx, &p, "relu", &x, &y).unwrap()],
    );
    assert_eq!(
        y.read_f32(ctx).unwrap(),
        cpu::activation::relu_forward(&p, &x_h).unwrap()
    );
}

#[test]
fn dropout_matches_cpu_reference_and_its_rate() {
    let ctx = gpu();
    let numel = 10_000;
    let mut r = rng(700);
    let x_h: Vec<f32> = rand_vec(&mut r, numel).iter().map(|v| v + 2.0).collect(); // never 0
    let dy_h = rand_vec(&mut r, numel);
    let x = upload(ctx, "x", &[numel], &x_h);
    let dy = upload(ctx, "dy", &[numel], &dy_h);
    let mut masks = vec![];
    for (rate, seed) in [(0.0, 1), (0.25, 1), (0.5, 1), (0.5, 2)] {
        let p = DropoutParams::new(numel, rate, seed).unwrap();
        let (y, dx) = (zeros(ctx, "y", &[numel]), zeros(ctx, "dx", &[numel]));
        run(
            ctx,
            &[
                activation::dropout_forward(ctx, &p, "drop", &x, &y).unwrap(),
                activation::dropout_backward_input(ctx, &p, "drop", &dy, &dx).unwrap(),
            ],
        );
        let y_h = y.read_f32(ctx).unwrap();
        // The same hash on both sides and one division: exact.
        compare(
            &format!("dropout rate {rate} seed {seed} y"),
            &y_h,
            &cpu::activation::dropout_forward(&p, &x_h).unwrap(),
            Tolerance::EXACT,
        );
        compare(
            &format!("dropout rate {rate} seed {seed} dx"),
            &dx.read_f32(ctx).unwrap(),
            &cpu::activation::dropout_backward_input(&p, &dy_h).unwrap(),
            Tolerance::EXACT,
        );
        // The dropped fraction is binomial(10000, rate): within 5 standard deviations.
        let dropped = y_h.iter().filter(|&&v| v == 0.0).count() as f64 / numel as f64;
        let sd = (rate as f64 * (1.0 - rate as f64) / numel as f64).sqrt();
        assert!(
            (dropped - rate as f64).abs() <= 5.0 * sd + 1e-12,
            "rate {rate}: dropped {dropped}"
        );
        masks.push(y_h.iter().map(|&v| v == 0.0).collect::<Vec<_>>());
    }
    assert_ne!(masks[2], masks[3], "another seed must draw another mask");
}

// ---------------------------------------------------------------------------------------------
// dense

#[test]
fn dense_matches_cpu_reference() {
    let ctx = gpu();
    for (case, (n, d_in, d_out)) in [
        (1, 1, 1),
        (3, 17, 5),
        (8, 100, 7),
        (65, 33, 70),
        (16, 576, 7),
    ]
    .into_iter()
    .enumerate()
    {
        let p = DenseParams::new(n, d_in, d_out).unwrap();
        let mut r = rng(800 + case as u64);
        let x_h = rand_vec(&mut r, n * d_in);
        let w_h = rand_vec(&mut r, d_out * d_in);
        let b_h = rand_vec(&mut r, d_out);
        let dy_h = rand_vec(&mut r, n * d_out);
        // x as a 4-D feature map [n, d_in, 1, 1]: dense layers read it as flattened rows.
        let x = upload(ctx, "x", &[n, d_in, 1, 1], &x_h);
        let w = upload(ctx, "w", &[d_out, d_in], &w_h);
        let b = upload(ctx, "b", &[d_out], &b_h);
        let dy = upload(ctx, "dy", &[n, d_out], &dy_h);
        let y = zeros(ctx, "y", &[n, d_out]);
        let (dx, dw, db) = (
            zeros(ctx, "dx", &[n, d_in]),
            zeros(ctx, "dw", &[d_out, d_in]),
            zeros(ctx, "db", &[d_out]),
        );
        run(
            ctx,
            &[
                dense::forward(ctx, &p, "fc", &x, &w, &b, &y).unwrap(),
                dense::backward_input(ctx, &p, "fc", &dy, &w, &dx).unwrap(),
                dense::backward_weight(ctx, &p, "fc", &dy, &x, &dw).unwrap(),
                dense::backward_bias(ctx, &p, "fc", &dy, &db).unwrap(),
            ],
        );
        let name = format!("dense n {n} {d_in} -> {d_out}");
        // Dot products of up to 576 terms.
        compare(
            &format!("{name} y"),
            &y.read_f32(ctx).unwrap(),
            &cpu::dense::dense_forward(&p, &x_h, &w_h, &b_h).unwrap(),
            Tolerance::REDUCTION,
        );
        compare(
            &format!("{name} dx"),
            &dx.read_f32(ctx).unwrap(),
            &cpu::dense::dense_backward_input(&p, &dy_h, &w_h).unwrap(),
            Tolerance::TIGHT,
        );
        compare(
            &format!("{name} dweight"),
            &dw.read_f32(ctx).unwrap(),
            &cpu::dense::dense_backward_weight(&p, &dy_h, &x_h).unwrap(),
            Tolerance::TIGHT,
        );
        compare(
            &format!("{name} dbias"),
            &db.read_f32(ctx).unwrap(),
            &cpu::dense::dense_backward_bias(&p, &dy_h).unwrap(),
            Tolerance::TIGHT,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// softmax cross-entropy

struct LossRun {
    prob: Vec<f32>,
    sample_loss: Vec<f32>,
    loss: [f32; 2],
    dlogits: Vec<f32>,
}

fn run_loss(p: &LossParams, logits_h: &[f32], labels_h: &[u32], weights_h: &[f32]) -> LossRun {
    let ctx = gpu();
    let (n, k) = (p.n as usize, p.k as usize);
    let logits = upload(ctx, "logits", &[n, k], logits_h);
    let labels = GpuTensor::from_u32(ctx, "labels", &[n], labels_h).unwrap();
    let class_weight = upload(ctx, "cw", &[k], weights_h);
    let (prob, sample, value, dlogits) = (
        zeros(ctx, "prob", &[n, k]),
        zeros(ctx, "sl", &[n]),
        zeros(ctx, "loss", &[2]),
        zeros(ctx, "dz", &[n, k]),
    );
    let inputs = LossInputs {
        logits: &logits,
        labels: &labels,
        class_weight: &class_weight,
    };
    let outputs = LossOutputs {
        prob: &prob,
        sample_loss: &sample,
        loss: &value,
    };
    let mut kernels = loss::forward(ctx, p, "loss", &inputs, &outputs).unwrap();
    kernels.push(loss::backward_input(ctx, p, "loss", &inputs, &outputs, &dlogits).unwrap());
    run(ctx, &kernels);
    let v = value.read_f32(ctx).unwrap();
    LossRun {
        prob: prob.read_f32(ctx).unwrap(),
        sample_loss: sample.read_f32(ctx).unwrap(),
        loss: [v[0], v[1]],
        dlogits: dlogits.read_f32(ctx).unwrap(),
    }
}

#[test]
fn softmax_xent_matches_cpu_reference() {
    for (case, (n, k, smoothing, weighted)) in [
        (1, 2, 0.0, false),
        (5, 7, 0.1, false),
        (8, 7, 0.0, true),
        (70, 3, 0.2, true),
    ]
    .into_iter()
    .enumerate()
    {
        let p = LossParams::new(n, k, smoothing).unwrap();
        let mut r = rng(900 + case as u64);
        let logits_h: Vec<f32> = rand_vec(&mut r, n * k).iter().map(|v| 4.0 * v).collect();
        let labels_h: Vec<u32> = (0..n).map(|i| ((i * 5 + case) % k) as u32).collect();
        let weights_h: Vec<f32> = if weighted {
            (0..k).map(|j| 0.5 + j as f32).collect()
        } else {
            vec![1.0; k]
        };
        let got = run_loss(&p, &logits_h, &labels_h, &weights_h);
        let want = cpu::loss::softmax_xent_forward(&p, &logits_h, &labels_h, &weights_h).unwrap();
        let name = format!("softmax xent n {n} k {k} smoothing {smoothing} weighted {weighted}");
        // exp and log in f32 against f64, sums of k terms.
        compare(
            &format!("{name} prob"),
            &got.prob,
            &want.prob,
            Tolerance::TIGHT,
        );
        compare(
            &format!("{name} sample loss"),
            &got.sample_loss,
            &want.sample_loss,
            Tolerance::TIGHT,
        );
        compare(
            &format!("{name} loss"),
            &got.loss,
            &[want.loss, want.weight_sum],
            Tolerance::TIGHT,
        );
        let dz_ref =
            cpu::loss::softmax_xent_backward_input(&p, &logits_h, &labels_h, &weights_h).unwrap();
        compare(
            &format!("{name} dlogits"),
            &got.dlogits,
            &dz_ref,
            Tolerance::TIGHT,
        );
        // prob - target sums to zero over each row, so every dlogits row does too.
        for row in got.dlogits.chunks(k) {
            assert!(
                row.iter().sum::<f32>().abs() < 1e-6,
                "{name}: a dlogits row sums to {row:?}"
            );
        }
    }
}

#[test]
fn softmax_xent_hand_checked() {
    // Equal logits: every class has probability 1/k, the loss is ln k whatever the label,
    // and dlogits = (1/k - one_hot) / n.
    let (n, k) = (2, 4);
    let p = LossParams::new(n, k, 0.0).unwrap();
    let got = run_loss(&p, &[0.3; 8], &[1, 3], &[1.0; 4]);
    assert!(got.prob.iter().all(|&v| (v - 0.25).abs() < 1e-7));
    assert!(
        (got.loss[0] - (4.0f32).ln()).abs() < 1e-6,
        "loss {}",
        got.loss[0]
    );
    assert_eq!(got.loss[1], 2.0);
    let want = [0.125, -0.375, 0.125, 0.125, 0.125, 0.125, 0.125, -0.375];
    assert_close("dlogits", &got.dlogits, &want, Tolerance::TIGHT);
}

// ---------------------------------------------------------------------------------------------
// determinism

#[test]
fn reductions_are_bit_identical_run_after_run() {
    // The longest sums (conv weight gradient over 16*48*48 positions, batch-norm statistics)
    // recomputed with fresh buffers and kernels give the same bits.
    let ctx = gpu();
    let x_shape = [16, 4, 48, 48];
    let p = Conv2dParams::new(x_shape, 8, [3, 3], 1, 1).unwrap();
    let bn = BatchNormParams::new(x_shape, 1e-5, 0.1).unwrap();
    let mut r = rng(1000);
    let x_h = rand_vec(&mut r, x_shape.iter().product());
    let dy_h = rand_vec(&mut r, p.y_shape().iter().product());
    let once = || {
        let x = upload(ctx, "x", &x_shape, &x_h);
        let dy = upload(ctx, "dy", &p.y_shape(), &dy_h);
        let dw = zeros(ctx, "dw", &p.weight_shape());
        let db = zeros(ctx, "db", &[8]);
        let (g, b) = (upload(ctx, "g", &[4], &[1.0; 4]), zeros(ctx, "b", &[4]));
        let (rm, rv) = (zeros(ctx, "rm", &[4]), upload(ctx, "rv", &[4], &[1.0; 4]));
        let (mean, var, y) = (
            zeros(ctx, "m", &[4]),
            zeros(ctx, "v", &[4]),
            zeros(ctx, "y", &x_shape),
        );
        let state = BatchNormState {
            gamma: &g,
            beta: &b,
            running_mean: &rm,
            running_var: &rv,
        };
        let stats = BatchStats {
            mean: &mean,
            var: &var,
        };
        let mut k = conv2d::backward_weight(ctx, &p, "c", &dy, &x, &dw).unwrap();
        k.extend(conv2d::backward_bias(ctx, &p, "c", &dy, &db).unwrap());
        k.extend(
            batchnorm::forward_train(ctx, &bn, Epilogue::None, "bn", &x, &state, &stats, &y)
                .unwrap(),
        );
        run(ctx, &k);
        let bits = |t: &GpuTensor| -> Vec<u32> {
            t.read_f32(ctx)
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        (bits(&dw), bits(&db), bits(&mean), bits(&var), bits(&y))
    };
    let first = once();
    for _ in 0..2 {
        assert!(
            once() == first,
            "a reduction changed between identical runs"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// fused epilogues: conv + ReLU and batch norm + ReLU store exactly relu(unfused output)

#[test]
fn fused_relu_equals_relu_of_the_unfused_output() {
    let ctx = gpu();
    let relu = |v: &[f32]| {
        cpu::activation::relu_forward(&ReluParams::new(v.len(), 0.0).unwrap(), v).unwrap()
    };
    let x_shape = [2, 5, 9, 7];
    let mut r = rng(900);
    let x_h = rand_vec(&mut r, x_shape.iter().product());
    let x = upload(ctx, "x", &x_shape, &x_h);
    // Stride 1 runs the row-segment kernel, stride 2 the general tiled one.
    for (variant, stride) in [
        (conv2d::Variant::Tiled, 1),
        (conv2d::Variant::Tiled, 2),
        (conv2d::Variant::Direct, 1),
    ] {
        let p = Conv2dParams::new(x_shape, 6, [3, 3], stride, 1).unwrap();
        let w = upload(ctx, "w", &p.weight_shape(), &rand_vec(&mut r, 6 * 5 * 9));
        let b = upload(ctx, "b", &[6], &rand_vec(&mut r, 6));
        let (y, y_fused) = (
            zeros(ctx, "y", &p.y_shape()),
            zeros(ctx, "yf", &p.y_shape()),
        );
        let plain = conv2d::forward_with(ctx, &p, variant, Epilogue::None, "c", &x, &w, &b, &y);
        let fused =
            conv2d::forward_with(ctx, &p, variant, Epilogue::Relu, "c", &x, &w, &b, &y_fused);
        run(ctx, &[plain.unwrap(), fused.unwrap()]);
        let want = relu(&y.read_f32(ctx).unwrap());
        assert!(want.contains(&0.0) && want.iter().any(|v| *v > 0.0));
        compare(
            &format!("conv2d {variant:?} stride {stride} + relu"),
            &y_fused.read_f32(ctx).unwrap(),
            &want,
            Tolerance::EXACT,
        );
    }

    let p = BatchNormParams::new(x_shape, 1e-5, 0.1).unwrap();
    let c = [x_shape[1]];
    let (g, b) = (
        upload(ctx, "g", &c, &[1.5; 5]),
        upload(ctx, "b", &c, &[0.2; 5]),
    );
    let (rm, rv) = (zeros(ctx, "rm", &c), upload(ctx, "rv", &c, &[1.0; 5]));
    let state = BatchNormState {
        gamma: &g,
        beta: &b,
        running_mean: &rm,
        running_var: &rv,
    };
    let (m, v) = (zeros(ctx, "m", &c), zeros(ctx, "v", &c));
    let stats = BatchStats { mean: &m, var: &v };
    let (y, y_fused) = (zeros(ctx, "y", &x_shape), zeros(ctx, "yf", &x_shape));
    let mut k =
        batchnorm::forward_train(ctx, &p, Epilogue::None, "bn", &x, &state, &stats, &y).unwrap();
    k.extend(
        batchnorm::forward_train(ctx, &p, Epilogue::Relu, "bn", &x, &state, &stats, &y_fused)
            .unwrap(),
    );
    run(ctx, &k);
    let want = relu(&y.read_f32(ctx).unwrap());
    compare(
        "batchnorm + relu",
        &y_fused.read_f32(ctx).unwrap(),
        &want,
        Tolerance::EXACT,
    );
}

// ---------------------------------------------------------------------------------------------
// calibration kernels (the benchmark's roofs): they must really do the work they are timed for

#[test]
fn calibration_kernels_do_the_work_they_claim() {
    use fer_wgpu::ops::calibrate::{self, CalibrateParams};
    let ctx = gpu();
    // 37 trips of the FMA recurrence on every invocation, against the closed form in f64.
    let p = CalibrateParams::new(300, 37).unwrap();
    let out = zeros(ctx, "fma.out", &[300, 4]);
    run(ctx, &[calibrate::fma(ctx, &p, &out).unwrap()]);
    let want: Vec<f32> = (0..300)
        .flat_map(|i| p.fma_expected(i).map(|v| v as f32))
        .collect();
    // Sums of 8 chains each within an ulp or two of f64 (the recurrence contracts errors).
    compare(
        "calibrate_fma",
        &out.read_f32(ctx).unwrap(),
        &want,
        Tolerance::TIGHT,
    );
    assert_eq!(p.fma_flops(), 300 * 37 * 64);

    // The copy is exact.
    let mut r = rng(77);
    let src_h = rand_vec(&mut r, 1000 * 4);
    let p = CalibrateParams::new(1000, 0).unwrap();
    let (src, dst) = (
        upload(ctx, "copy.src", &[1000, 4], &src_h),
        zeros(ctx, "copy.dst", &[1000, 4]),
    );
    run(ctx, &[calibrate::copy(ctx, &p, &src, &dst).unwrap()]);
    assert_eq!(dst.read_f32(ctx).unwrap(), src_h);
    assert_eq!(p.copy_bytes(), 2 * 16 * 1000);
}

// ---------------------------------------------------------------------------------------------
// bad input: clear errors before any dispatch

fn err_text<T: std::fmt::Debug>(r: fer_wgpu::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn bad_shapes_are_errors_that_name_the_op_and_shapes() {
    let ctx = gpu();
    // Kernel larger than the padded input.
    let e = err_text(Conv2dParams::new([1, 1, 3, 3], 1, [5, 5], 1, 0));
    assert!(
        e.contains("conv2d") && e.contains("5x5") && e.contains("3x3"),
        "{e}"
    );
    // Zero-sized dimensions.
    let e = err_text(Conv2dParams::new([0, 1, 3, 3], 1, [1, 1], 1, 0));
    assert!(e.contains("n is 0"), "{e}");
    let e = err_text(PoolParams::new([1, 1, 4, 4], [2, 2], 0, 0, false));
    assert!(e.contains("stride is 0"), "{e}");
    let e = err_text(PoolParams::new([1, 1, 4, 4], [2, 2], 2, 2, false));
    assert!(e.contains("pad 2 is more than half"), "{e}");
    let e = err_text(PoolParams::new([1, 1, 2, 2], [3, 3], 1, 0, false));
    assert!(e.contains("window 3x3 is larger"), "{e}");
    let e = err_text(GpuTensor::zeros(ctx, "empty", &[2, 0, 3], DType::F32));
    assert!(e.contains("empty") && e.contains("zero-sized"), "{e}");
    let e = err_text(GpuTensor::from_f32(ctx, "short", &[2, 3], &[1.0; 5]));
    assert!(e.contains("5 values given for shape [2, 3]"), "{e}");
    assert!(err_text(DenseParams::new(1, 0, 1)).contains("d_in is 0"));
    assert!(err_text(LossParams::new(2, 3, 1.0)).contains("smoothing"));
    assert!(err_text(DropoutParams::new(4, 1.0, 0)).contains("rate"));
    assert!(err_text(BatchNormParams::new([1, 1, 2, 2], 0.0, 0.1)).contains("eps"));

    // Tensors that do not match the params: caught before a kernel is built.
    let p = Conv2dParams::new([2, 3, 8, 8], 4, [3, 3], 1, 1).unwrap();
    let x = zeros(ctx, "x", &[2, 3, 8, 8]);
    let w_bad = zeros(ctx, "conv.weight", &[4, 2, 3, 3]);
    let b = zeros(ctx, "b", &[4]);
    let y = zeros(ctx, "y", &p.y_shape());
    let e = err_text(conv2d::forward(ctx, &p, "c", &x, &w_bad, &b, &y));
    assert!(
        e.contains("conv2d")
            && e.contains("conv.weight")
            && e.contains("[4, 2, 3, 3]")
            && e.contains("[4, 3, 3, 3]"),
        "{e}"
    );
    let labels_f32 = zeros(ctx, "labels", &[2]);
    let lp = LossParams::new(2, 3, 0.0).unwrap();
    let (logits, cw) = (zeros(ctx, "z", &[2, 3]), zeros(ctx, "cw", &[3]));
    let (prob, sl, lv) = (
        zeros(ctx, "p", &[2, 3]),
        zeros(ctx, "s", &[2]),
        zeros(ctx, "l", &[2]),
    );
    let inputs = LossInputs {
        logits: &logits,
        labels: &labels_f32,
        class_weight: &cw,
    };
    let outputs = LossOutputs {
        prob: &prob,
        sample_loss: &sl,
        loss: &lv,
    };
    let e = err_text(loss::forward(ctx, &lp, "loss", &inputs, &outputs));
    assert!(e.contains("labels") && e.contains("U32"), "{e}");
    let bn = BatchNormParams::new([1, 2, 1, 1], 1e-5, 0.1).unwrap();
    let (x1, g1) = (zeros(ctx, "x", &[1, 2, 1, 1]), zeros(ctx, "g", &[2]));
    let (m1, v1) = (zeros(ctx, "m", &[2]), zeros(ctx, "v", &[2]));
    let (dx1, dg1, db1) = (
        zeros(ctx, "dx", &[1, 2, 1, 1]),
        zeros(ctx, "dg", &[2]),
        zeros(ctx, "db", &[2]),
    );
    let e = err_text(batchnorm::backward(
        ctx,
        &bn,
        "bn",
        &x1,
        &x1,
        &g1,
        &BatchStats {
            mean: &m1,
            var: &v1,
        },
        &BatchNormGrads {
            dx: &dx1,
            dgamma: &dg1,
            dbeta: &db1,
        },
    ));
    assert!(e.contains("at least 2 positions"), "{e}");

    // The CPU reference checks too, and rejects a label outside the classes.
    let e = err_text(cpu::loss::softmax_xent_forward(
        &lp,
        &[0.0; 6],
        &[0, 3],
        &[1.0; 3],
    ));
    assert!(e.contains("label 3 of sample 1"), "{e}");
    let e = err_text(cpu::conv2d::conv2d_forward(&p, &[0.0; 5], &[], &[]));
    assert!(e.contains("x holds 5 values, expected 384"), "{e}");
}

#[test]
fn gpu_validation_errors_become_errors_not_panics() {
    // Leaving out a binding the entry point uses is a wgpu validation error; the error scope
    // turns it into Error::Gpu naming what was being done.
    let ctx = gpu();
    let p = DenseParams::new(1, 2, 2).unwrap();
    let x = zeros(ctx, "x", &[1, 2]);
    let e = err_text(ctx.kernel(
        fer_wgpu::gpu::shaders::DENSE,
        "dense_forward",
        "broken",
        bytemuck::bytes_of(&p),
        &[(1, &x.buffer)],
        2,
    ));
    assert!(e.contains("GPU error while binding broken"), "{e}");
    // An entry point that does not exist names the file and the entry point.
    let e = err_text(ctx.pipeline(fer_wgpu::gpu::shaders::DENSE, "dense_sideways", &[]));
    assert!(
        e.contains("dense.wgsl") && e.contains("dense_sideways"),
        "{e}"
    );
    // The context stays usable afterwards.
    let y = upload(ctx, "y", &[2], &[1.0, 2.0]);
    assert_eq!(y.read_f32(ctx).unwrap(), [1.0, 2.0]);
}

// ---------------------------------------------------------------------------------------------
// optimizers and clipping

#[test]
fn optimizer_updates_match_cpu_reference() {
    use fer_wgpu::ops::optim::{self, Optimizer, ParamSlot};
    let ctx = gpu();
    let rules = [
        Optimizer::Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        },
        Optimizer::Sgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-2,
        },
        Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
        },
        Optimizer::AdamW {
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            weight_decay: 0.1,
        },
        Optimizer::RmsProp {
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 1e-3,
        },
    ];
    for (case, rule) in rules.iter().enumerate() {
        let numel = 1000;
        let mut r = rng(1100 + case as u64);
        let mut w_h = rand_vec(&mut r, numel);
        let (mut s1_h, mut s2_h) = (vec![0.0; numel], vec![0.0; numel]);
        let w = upload(ctx, "w", &[numel], &w_h);
        let grad = zeros(ctx, "g", &[numel]);
        let (s1, s2) = (zeros(ctx, "s1", &[numel]), zeros(ctx, "s2", &[numel]));
        let clip = zeros(ctx, "clip", &[2]);
        let partial = zeros(ctx, "partial", &[optim::sumsq_parts(numel)]);
        let hyper = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("hyper"),
            size: 16,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let slot = ParamSlot {
            weight: &w,
            grad: &grad,
            state1: &s1,
            state2: &s2,
        };
        let mut kernels = optim::clip_by_global_norm(ctx, &[&grad], 5.0, &partial, &clip).unwrap();
        kernels.push(optim::update(ctx, rule, "w", &slot, &hyper, &clip).unwrap());
        for t in 1..=3u64 {
            // Large gradients on step 2, so that clipping engages on one step only.
            let scale = if t == 2 { 10.0 } else { 0.1 };
            let g_h: Vec<f32> = rand_vec(&mut r, numel).iter().map(|v| v * scale).collect();
            grad.write_f32(ctx, &g_h).unwrap();
            let hy = rule.hyper(0.01, t);
            ctx.queue.write_buffer(&hyper, 0, bytemuck::bytes_of(&hy));
            run(ctx, &kernels);
            let (clip_ref, norm_ref) = fer_wgpu::cpu::optim::clip_scale(&[&g_h], 5.0);
            let c = clip.read_f32(ctx).unwrap();
            // A 1000-term sum of squares and a square root.
            compare(
                &format!("{rule:?} step {t} clip"),
                &c,
                &[clip_ref, norm_ref],
                Tolerance::REDUCTION,
            );
            assert_eq!(
                t == 2,
                clip_ref < 1.0,
                "clipping engages exactly on the large step"
            );
            // Use the GPU's clip factor so the update comparison checks the update alone.
            fer_wgpu::cpu::optim::update(rule, &hy, c[0], &mut w_h, &g_h, &mut s1_h, &mut s2_h);
            // The same f32 operations in the same order; sqrt and division may differ by an
            // ulp between the shader compiler and Rust.
            compare(
                &format!("{rule:?} step {t} weight"),
                &w.read_f32(ctx).unwrap(),
                &w_h,
                Tolerance::TIGHT,
            );
            compare(
                &format!("{rule:?} step {t} state1"),
                &s1.read_f32(ctx).unwrap(),
                &s1_h,
                Tolerance::TIGHT,
            );
        }
    }
}
