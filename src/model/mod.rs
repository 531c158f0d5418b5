//! Models: declarative specs and shape inference, the built-in nets, parameters and their
//! seeded initialization, and safetensors checkpoints.

pub mod checkpoint;
pub mod params;
pub mod spec;

pub use checkpoint::Checkpoint;
pub use params::{HostTensor, ParamSet};
pub use spec::{builtin, fer_net, small_vgg, Layer, LayerOp, LayerSpec, ModelSpec, Plan};
