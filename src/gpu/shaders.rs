//! The WGSL sources, embedded in the binary so that it needs no files at run time.
//!
//! WGSL has no `#include`, so every op file is compiled with `shaders/prelude.wgsl` (the
//! workgroup size, the flat-index helper and the hash RNG) pasted in front of it. This module
//! is the only place that does the pasting; the naga test compiles exactly [`Shader::source`].

/// One shaders/*.wgsl op file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shader {
    /// The file name under shaders/, used as the module label so errors name the file.
    pub file: &'static str,
    body: &'static str,
}

const PRELUDE: &str = include_str!("../../shaders/prelude.wgsl");

/// Invocations per workgroup of every element-wise kernel; must match `WG` in prelude.wgsl.
pub const WORKGROUP_SIZE: u32 = 64;

macro_rules! shader {
    ($name:ident, $file:literal) => {
        #[doc = concat!("shaders/", $file)]
        pub const $name: Shader = Shader {
            file: $file,
            body: include_str!(concat!("../../shaders/", $file)),
        };
    };
}

shader!(ACTIVATION, "activation.wgsl");
shader!(AUGMENT, "augment.wgsl");
shader!(CALIBRATE, "calibrate.wgsl");
shader!(BATCH, "batch.wgsl");
shader!(BATCHNORM, "batchnorm.wgsl");
shader!(CONV2D, "conv2d.wgsl");
shader!(DENSE, "dense.wgsl");
shader!(LOSS, "loss.wgsl");
shader!(METRICS, "metrics.wgsl");
shader!(OPTIM, "optim.wgsl");
shader!(POOL, "pool.wgsl");
shader!(REDUCE, "reduce.wgsl");

/// Every op file, for the validation test and for warming the pipeline cache.
pub const ALL: &[Shader] = &[
    ACTIVATION, AUGMENT, BATCH, BATCHNORM, CALIBRATE, CONV2D, DENSE, LOSS, METRICS, OPTIM, POOL,
    REDUCE,
];

impl Shader {
    /// The full WGSL text handed to the compiler: prelude, then the op file.
    pub fn source(&self) -> String {
        format!("{PRELUDE}\n{}", self.body)
    }
}
