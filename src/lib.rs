//! fer-wgpu: a facial-expression CNN trained and run in hand-written WGSL compute shaders
//! through wgpu, with a plain-Rust CPU reference for every op.
//!
//! # Layout
//! Dependencies point downward: `run` -> `train`, `data` -> `model` -> `ops`, `cpu` -> `gpu`.
//! - [`gpu`]: adapter and device, tensors, pipeline cache, kernels, submission, timing.
//! - [`ops`]: the host side of each shader file (params, shape checks, kernel building).
//! - [`cpu`]: the CPU twin of every shader entry point, the tests' oracle.
//! - [`check`]: GPU-against-reference error statistics and named tolerances.
//! - [`model`]: model specs and shape inference, built-in nets, init, checkpoints.
//! - [`train`]: the backend interface and its GPU and CPU trainers, schedules, reports.
//! - [`data`]: decoding, loaders, preprocessing, tasks, splits, the synthetic face set.
//! - [`run`]: `fer train` as a library: experiments over seeds and splits, run folders.
//! - [`seed`]: one seed, separate random streams.
//! - [`bench`]: per-layer throughput against the adapter's roofline (`fer bench`).
//! - [`demo`]: one forward and backward pass of a small CNN on both, compared op by op.
//!
//! # Shape vocabulary
//! Used alike in WGSL, Rust and comments. Tensors are dense, row-major, NCHW.
//! - sizes (fields of a params struct, `p.` in shaders): `n` batch, `c` / `c_in` / `c_out`
//!   channels, `h`, `w` input height and width, `oh`, `ow` output height and width, `kh`, `kw`
//!   kernel or window size, `stride`, `pad`, `d_in`, `d_out` dense features, `k` classes,
//!   `numel` element count;
//! - indices: `n, c, ci, co, iy, ix, oy, ox, ky, kx, i, o, j`, with y/x for positions so they
//!   never clash with the h/w extents;
//! - gradients carry a `d` prefix: `dx`, `dy`, `dweight`, `dbias`, `dgamma`, `dbeta`,
//!   `dlogits`.
//!
//! # Determinism
//! No shader uses atomics. Every sum is computed by one invocation in a fixed order, long
//! sums split into fixed chunks whose partials are summed in order ([`ops::REDUCE_CHUNK`]), so
//! the same inputs on the same adapter give bit-identical outputs.

pub mod bench;
pub mod check;
pub mod cpu;
pub mod data;
pub mod demo;
pub mod error;
pub mod gpu;
pub mod model;
pub mod ops;
pub mod run;
pub mod seed;
pub mod train;

pub use error::{Error, Result};
