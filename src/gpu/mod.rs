//! The GPU runtime: adapter and device selection, tensors, the pipeline cache, recorded
//! kernels, submission with error scopes, readback and timestamp timing.
//!
//! Nothing here knows about faces or layers; `ops` builds on it.

mod context;
mod kernel;
pub mod shaders;
mod tensor;

pub use context::{
    list_adapters, parse_backends, parse_choice, AdapterChoice, AdapterRequest, AdapterSummary,
    GpuContext,
};
pub use kernel::{Kernel, TimingSource, Timings};
pub use tensor::{DType, GpuTensor};

/// Install hint shown whenever no adapter is found.
pub const INSTALL_HINT: &str = "Install a GPU driver with Vulkan, Metal or DX12 support; on a \
     machine without a GPU, Mesa's software Vulkan driver works: `apt-get install -y \
     mesa-vulkan-drivers` (Debian/Ubuntu), then check with `vulkaninfo --summary`.";
