//! The crate's error type.
//!
//! Policy: anything a caller can get wrong (shapes, parameters, a missing adapter, a shader the
//! driver rejects, a lost device, a failed readback) is returned as an [`enum@Error`] whose message
//! names the op or the tensor and what was expected. Shapes are checked on the host before any
//! dispatch is recorded, so wgpu never sees an inconsistent binding. We panic only on internal
//! invariants that no input can break.

use thiserror::Error;

/// Errors from the GPU runtime, the ops and the CPU reference.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// Tensor shapes or op parameters that cannot work together, caught before dispatch.
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },

    /// No adapter matched the request; the message says what to install or set.
    #[error("no GPU adapter found ({request}). {hint}")]
    NoAdapter { request: String, hint: String },

    /// A value of an environment variable or option that cannot be understood.
    #[error("{name} {value:?} is not valid: expected {expected}")]
    BadSetting {
        name: &'static str,
        value: String,
        expected: String,
    },

    /// The adapter refused the device request.
    #[error("the adapter {adapter:?} refused to create a device: {source}")]
    RequestDevice {
        adapter: String,
        source: wgpu::RequestDeviceError,
    },

    /// wgpu rejected a shader module or pipeline (a WGSL error the naga test should catch).
    #[error("shader {file}, entry point {entry}: {msg}")]
    Shader {
        file: &'static str,
        entry: String,
        msg: String,
    },

    /// wgpu reported a validation, out-of-memory or internal error for recorded work.
    #[error("GPU error while {during}: {msg}")]
    Gpu { during: String, msg: String },

    /// The device was lost (driver reset, GPU removed); every later call fails the same way.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),

    /// A checkpoint that cannot be read or written, or does not fit the model.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: String, msg: String },

    /// A data file or folder that cannot be used, named with what is wrong and the fix.
    #[error("{path}: {msg}")]
    Data { path: String, msg: String },

    /// Mapping a buffer for reading back failed.
    #[error("reading back {label} failed: {msg}")]
    Readback { label: String, msg: String },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds an [`Error::Shape`] for `op`.
pub(crate) fn shape_err(op: &'static str, msg: impl Into<String>) -> Error {
    Error::Shape {
        op,
        msg: msg.into(),
    }
}
