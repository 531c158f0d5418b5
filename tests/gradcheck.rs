//! The CPU reference's backward passes against central finite differences of its forward
//! passes. No GPU: this checks the oracle itself.
//!
//! For an op y = f(x) and a fixed random projection r, L(x) = sum(r * f(x)) has gradient
//! backward(dy = r). Each input element is moved by +-EPS and the slope of L compared with the
//! analytic gradient. Shapes are tiny, so every element is checked.

mod common;

use common::{rand_vec, rng};
use fer_wgpu::cpu;
use fer_wgpu::ops::activation::{DropoutParams, ReluParams};
use fer_wgpu::ops::batchnorm::BatchNormParams;
use fer_wgpu::ops::conv2d::Conv2dParams;
use fer_wgpu::ops::dense::DenseParams;
use fer_wgpu::ops::loss::LossParams;
use fer_wgpu::ops::pool::PoolParams;

/// Step of the central difference. The forward passes round their outputs to f32, so the
/// numeric slope carries about 1e-7 * |L| / EPS of rounding; 1e-2 keeps that near 1e-5 while
/// the O(EPS^2) truncation error of smooth ops stays below 1e-4 of the scale.
const EPS: f32 = 1e-2;
/// Accepted error relative to the largest gradient element, for the reasons above.
const REL_TOL: f64 = 1e-3;

fn project(y: &[f32], r: &[f32]) -> f64 {
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Checks `analytic` against the central differences of `loss` around `x`.
fn check(what: &str, x: &[f32], analytic: &[f32], loss: impl Fn(&[f32]) -> f64) {
    assert_eq!(x.len(), analytic.len(), "{what}: gradient length");
    let scale = analytic
        .iter()
        .fold(1e-3f64, |m, &g| m.max((g as f64).abs()));
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        xp[i] = x[i] + EPS;
        let up = loss(&xp);
        xp[i] = x[i] - EPS;
        let down = loss(&xp);
        xp[i] = x[i];
        let numeric = (up - down) / (2.0 * EPS as f64);
        let err = (numeric - analytic[i] as f64).abs();
        assert!(
            err <= REL_TOL * scale,
            "{what}[{i}]: numeric {numeric:.6e}, analytic {:.6e}, scale {scale:.3e}",
            analytic[i]
        );
    }
}

#[test]
fn conv2d_gradients() {
    for (case, (x_shape, c_out, k, stride, pad)) in [
        ([2, 2, 5, 5], 3, 3, 1, 1),
        ([1, 3, 7, 6], 2, 2, 3, 0),
        ([2, 1, 4, 4], 2, 3, 2, 2),
    ]
    .into_iter()
    .enumerate()
    {
        let p = Conv2dParams::new(x_shape, c_out, [k, k], stride, pad).unwrap();
        let mut g = rng(case as u64);
        let x = rand_vec(&mut g, x_shape.iter().product());
        let w = rand_vec(&mut g, p.weight_shape().iter().product());
        let b = rand_vec(&mut g, c_out);
        let r = rand_vec(&mut g, p.y_shape().iter().product());
        let f = |x: &[f32], w: &[f32], b: &[f32]| {
            project(&cpu::conv2d::conv2d_forward(&p, x, w, b).unwrap(), &r)
        };
        let name = format!("conv2d {x_shape:?} k {k} s {stride} p {pad}");
        check(
            &format!("{name} dx"),
            &x,
            &cpu::conv2d::conv2d_backward_input(&p, &r, &w).unwrap(),
            |v| f(v, &w, &b),
        );
        check(
            &format!("{name} dweight"),
            &w,
            &cpu::conv2d::conv2d_backward_weight(&p, &r, &x).unwrap(),
            |v| f(&x, v, &b),
        );
        check(
            &format!("{name} dbias"),
            &b,
            &cpu::conv2d::conv2d_backward_bias(&p, &r).unwrap(),
            |v| f(&x, &w, v),
        );
    }
}

#[test]
fn pooling_gradients() {
    for (x_shape, k, stride, pad, ceil) in [
        ([1, 2, 6, 6], 2, 3, 0, true),
        ([2, 1, 5, 5], 3, 2, 1, false),
        ([1, 1, 4, 5], 2, 1, 0, true),
    ] {
        let p = PoolParams::new(x_shape, [k, k], stride, pad, ceil).unwrap();
        let len: usize = x_shape.iter().product();
        // Distinct values 0.1 apart (a shuffled ramp): a step of EPS never changes an argmax.
        let mut g = rng(7);
        let mut x: Vec<f32> = (0..len).map(|i| i as f32 * 0.1).collect();
        for i in (1..len).rev() {
            x.swap(i, rand::Rng::random_range(&mut g, 0..=i));
        }
        let r = rand_vec(&mut g, p.y_shape().iter().product());
        let name = format!("pool {x_shape:?} k {k} s {stride} p {pad} ceil {ceil}");
        let (_, arg) = cpu::pool::maxpool_forward(&p, &x).unwrap();
        check(
            &format!("max{name} dx"),
            &x,
            &cpu::pool::maxpool_backward_input(&p, &r, &arg).unwrap(),
            |v| project(&cpu::pool::maxpool_forward(&p, v).unwrap().0, &r),
        );
        check(
            &format!("avg{name} dx"),
            &x,
            &cpu::pool::avgpool_backward_input(&p, &r).unwrap(),
            |v| project(&cpu::pool::avgpool_forward(&p, v).unwrap(), &r),
        );
    }
    let p = PoolParams::global([2, 3, 3, 4]).unwrap();
    let mut g = rng(8);
    let x = rand_vec(&mut g, 72);
    let r = rand_vec(&mut g, 6);
    check(
        "global avgpool dx",
        &x,
        &cpu::pool::global_avgpool_backward_input(&p, &r).unwrap(),
        |v| project(&cpu::pool::global_avgpool_forward(&p, v).unwrap(), &r),
    );
}

#[test]
fn batchnorm_gradients() {
    for x_shape in [[3, 2, 2, 3], [4, 3, 1, 1]] {
        let p = BatchNormParams::new(x_shape, 1e-5, 0.1).unwrap();
        let c = x_shape[1];
        let mut g = rng(9);
        let x: Vec<f32> = rand_vec(&mut g, x_shape.iter().product())
            .iter()
            .map(|v| 2.0 * v + 1.0)
            .collect();
        let gamma: Vec<f32> = rand_vec(&mut g, c).iter().map(|v| v + 1.5).collect();
        let beta = rand_vec(&mut g, c);
        let r = rand_vec(&mut g, x.len());
        // Training mode: the statistics move with x, and the gradient goes through them.
        let f = |x: &[f32], gamma: &[f32], beta: &[f32]| {
            let (m, v) = cpu::batchnorm::batchnorm_stats(&p, x).unwrap();
            project(
                &cpu::batchnorm::batchnorm_forward(&p, x, gamma, beta, &m, &v).unwrap(),
                &r,
            )
        };
        let (m, v) = cpu::batchnorm::batchnorm_stats(&p, &x).unwrap();
        let (dx, dgamma, dbeta) =
            cpu::batchnorm::batchnorm_backward(&p, &r, &x, &gamma, &m, &v).unwrap();
        let name = format!("batchnorm {x_shape:?}");
        check(&format!("{name} dx"), &x, &dx, |v| f(v, &gamma, &beta));
        check(&format!("{name} dgamma"), &gamma, &dgamma, |v| {
            f(&x, v, &beta)
        });
        check(&format!("{name} dbeta"), &beta, &dbeta, |v| {
            f(&x, &gamma, v)
        });
    }
}

#[test]
fn activation_gradients() {
    let mut g = rng(10);
    // Values at least 0.05 from the kink, so a step of EPS never crosses it.
    let x: Vec<f32> = rand_vec(&mut g, 50)
        .iter()
        .map(|&v| {
            if v.abs() < 0.05 {
                v.signum() * 0.05 + v
            } else {
                v
            }
        })
        .collect();
    let r = rand_vec(&mut g, 50);
    for slope in [0.0, 0.2] {
        let p = ReluParams::new(50, slope).unwrap();
        check(
            &format!("relu slope {slope} dx"),
            &x,
            &cpu::activation::relu_backward_input(&p, &r, &x).unwrap(),
            |v| project(&cpu::activation::relu_forward(&p, v).unwrap(), &r),
        );
    }
    let p = DropoutParams::new(50, 0.3, 11).unwrap();
    check(
        "dropout dx",
        &x,
        &cpu::activation::dropout_backward_input(&p, &r).unwrap(),
        |v| project(&cpu::activation::dropout_forward(&p, v).unwrap(), &r),
    );
}

#[test]
fn dense_gradients() {
    let p = DenseParams::new(3, 5, 4).unwrap();
    let mut g = rng(12);
    let (x, w, b, r) = (
        rand_vec(&mut g, 15),
        rand_vec(&mut g, 20),
        rand_vec(&mut g, 4),
        rand_vec(&mut g, 12),
    );
    let f = |x: &[f32], w: &[f32], b: &[f32]| {
        project(&cpu::dense::dense_forward(&p, x, w, b).unwrap(), &r)
    };
    check(
        "dense dx",
        &x,
        &cpu::dense::dense_backward_input(&p, &r, &w).unwrap(),
        |v| f(v, &w, &b),
    );
    check(
        "dense dweight",
        &w,
        &cpu::dense::dense_backward_weight(&p, &r, &x).unwrap(),
        |v| f(&x, v, &b),
    );
    check(
        "dense dbias",
        &b,
        &cpu::dense::dense_backward_bias(&p, &r).unwrap(),
        |v| f(&x, &w, v),
    );
}

#[test]
fn softmax_xent_gradients() {
    for (smoothing, weights) in [(0.0, vec![1.0; 5]), (0.15, vec![0.5, 2.0, 1.0, 3.0, 1.5])] {
        let p = LossParams::new(4, 5, smoothing).unwrap();
        let mut g = rng(13);
        let logits: Vec<f32> = rand_vec(&mut g, 20).iter().map(|v| 3.0 * v).collect();
        let labels = [0, 4, 2, 4];
        let analytic =
            cpu::loss::softmax_xent_backward_input(&p, &logits, &labels, &weights).unwrap();
        check(
            &format!("softmax xent smoothing {smoothing} dlogits"),
            &logits,
            &analytic,
            |v| {
                cpu::loss::softmax_xent_forward(&p, v, &labels, &weights)
                    .unwrap()
                    .loss as f64
            },
        );
    }
}
