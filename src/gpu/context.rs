//! Instance, adapter and device: which GPU we run on, and how its errors reach us.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::kernel::PipelineCache;
use crate::gpu::INSTALL_HINT;

/// Which backends to probe and which of their adapters to take.
///
/// The default probes the primary backends (Vulkan, Metal, DX12) and takes the most
/// high-performance adapter (discrete, then integrated, virtual, CPU). The GL backend is only
/// probed when asked for, because its probing prints noise on headless machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterRequest {
    pub backends: wgpu::Backends,
    pub choice: AdapterChoice,
}

/// How to pick one adapter among those found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterChoice {
    /// The most high-performance adapter.
    Best,
    /// The adapter at this position in the ranked list that `fer devices` prints.
    Index(usize),
    /// The first ranked adapter whose name contains this text (case-insensitive).
    Name(String),
}

impl Default for AdapterRequest {
    fn default() -> Self {
        Self {
            backends: wgpu::Backends::PRIMARY,
            choice: AdapterChoice::Best,
        }
    }
}

impl AdapterRequest {
    /// Reads `FER_BACKEND` (primary, vulkan, metal, dx12, gl, all; comma-separated) and
    /// `FER_ADAPTER` (an index or part of a name). Unset variables keep the defaults.
    pub fn from_env() -> Result<Self> {
        let mut request = Self::default();
        if let Ok(value) = std::env::var("FER_BACKEND") {
            request.backends = parse_backends("FER_BACKEND", &value)?;
        }
        if let Ok(value) = std::env::var("FER_ADAPTER") {
            request.choice = parse_choice(&value);
        }
        Ok(request)
    }
}

/// Parses a comma-separated backend list such as `vulkan` or `vulkan,gl`; `setting` names
/// where the value came from (`FER_BACKEND`, `--backend`) for the error message.
pub fn parse_backends(setting: &'static str, value: &str) -> Result<wgpu::Backends> {
    let mut backends = wgpu::Backends::empty();
    for word in value.split(',').map(|w| w.trim().to_ascii_lowercase()) {
        backends |= match word.as_str() {
            "primary" | "" => wgpu::Backends::PRIMARY,
            "vulkan" | "vk" => wgpu::Backends::VULKAN,
            "metal" | "mtl" => wgpu::Backends::METAL,
            "dx12" | "d3d12" => wgpu::Backends::DX12,
            "gl" | "gles" | "opengl" => wgpu::Backends::GL,
            "all" => wgpu::Backends::PRIMARY | wgpu::Backends::GL,
            _ => {
                return Err(Error::BadSetting {
                    name: setting,
                    value: value.to_string(),
                    expected: "a comma-separated list of primary, vulkan, metal, dx12, gl, all"
                        .into(),
                })
            }
        };
    }
    Ok(backends)
}

/// Parses an adapter choice: a number is an index, anything else a name fragment.
pub fn parse_choice(value: &str) -> AdapterChoice {
    let value = value.trim();
    match value.parse::<usize>() {
        Ok(index) => AdapterChoice::Index(index),
        Err(_) if value.is_empty() => AdapterChoice::Best,
        Err(_) => AdapterChoice::Name(value.to_string()),
    }
}

/// What `fer devices` shows of one adapter.
#[derive(Debug, Clone)]
pub struct AdapterSummary {
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub timestamps: bool,
}

fn instance_for(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    // Debug builds would otherwise ask for the Vulkan validation layers, which most machines
    // lack; WGPU_VALIDATION=1 still turns them on (read by with_env above).
    if std::env::var_os("WGPU_VALIDATION").is_none() {
        desc.flags.remove(wgpu::InstanceFlags::VALIDATION);
    }
    wgpu::Instance::new(desc)
}

fn rank(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// The adapters of `backends`, most high-performance first (a stable sort, so adapters of one
/// kind keep the order the backends report them in).
fn ranked_adapters(instance: &wgpu::Instance, backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(backends));
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    adapters
}

/// Lists the adapters a request would choose from, in the order `AdapterChoice::Index` uses.
pub fn list_adapters(backends: wgpu::Backends) -> Vec<AdapterSummary> {
    let instance = instance_for(backends);
    ranked_adapters(&instance, backends)
        .iter()
        .map(|a| AdapterSummary {
            info: a.get_info(),
            limits: a.limits(),
            timestamps: a.features().contains(wgpu::Features::TIMESTAMP_QUERY),
        })
        .collect()
}

/// A device and queue on one adapter, with the pipeline cache and the error plumbing.
///
/// Shareable across threads: wgpu's error scopes are per thread, so concurrent submissions
/// from different threads each see only their own errors.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// The adapter's own limits, requested in full rather than the WebGPU defaults.
    pub limits: wgpu::Limits,
    /// Whether compute passes can write GPU timestamps (TIMESTAMP_QUERY).
    pub timestamps: bool,
    pub(crate) pipelines: PipelineCache,
    lost: Arc<Mutex<Option<String>>>,
}

impl GpuContext {
    /// Opens the adapter that `FER_BACKEND` / `FER_ADAPTER` select (see [`AdapterRequest`]).
    pub fn from_env() -> Result<Self> {
        Self::new(&AdapterRequest::from_env()?)
    }

    /// Opens the adapter the request selects, with its own limits and, where it has them,
    /// timestamp queries.
    pub fn new(request: &AdapterRequest) -> Result<Self> {
        let instance = instance_for(request.backends);
        let adapters = ranked_adapters(&instance, request.backends);
        let described = format!(
            "backends {:?}, choice {:?}",
            request.backends, request.choice
        );
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        let adapter = match &request.choice {
            AdapterChoice::Best => adapters.into_iter().next(),
            AdapterChoice::Index(i) => adapters.into_iter().nth(*i),
            AdapterChoice::Name(fragment) => {
                let fragment = fragment.to_lowercase();
                adapters
                    .into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&fragment))
            }
        };
        let Some(adapter) = adapter else {
            let hint = if names.is_empty() {
                INSTALL_HINT.to_string()
            } else {
                format!("Adapters found: {names:?}; FER_ADAPTER takes an index or part of a name.")
            };
            return Err(Error::NoAdapter {
                request: described,
                hint,
            });
        };
        let info = adapter.get_info();
        let limits = adapter.limits();
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let required_features = if timestamps {
            wgpu::Features::TIMESTAMP_QUERY
        } else {
            wgpu::Features::empty()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("fer-wgpu device"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|source| Error::RequestDevice {
            adapter: info.name.clone(),
            source,
        })?;

        let lost = Arc::new(Mutex::new(None));
        let lost_slot = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, msg| {
            log::error!("GPU device lost ({reason:?}): {msg}");
            *lost_slot.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(format!("{reason:?}: {msg}"));
        });
        // Errors outside our error scopes would otherwise panic inside wgpu's default handler.
        // Every recording path pushes a scope, so reaching this is a bug: log it loudly.
        device.on_uncaptured_error(Arc::new(|error| {
            log::error!("uncaptured GPU error (a missing error scope in fer-wgpu): {error}");
        }));
        log::info!(
            "adapter: {} ({:?}, {:?}, driver {} {}), timestamps: {timestamps}, \
             max storage binding: {} MiB",
            info.name,
            info.backend,
            info.device_type,
            info.driver,
            info.driver_info,
            limits.max_storage_buffer_binding_size >> 20
        );
        Ok(Self {
            device,
            queue,
            info,
            limits,
            timestamps,
            pipelines: PipelineCache::default(),
            lost,
        })
    }

    /// Fails with [`Error::DeviceLost`] once the device has been lost.
    pub fn check_alive(&self) -> Result<()> {
        match &*self.lost.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(msg) => Err(Error::DeviceLost(msg.clone())),
            None => Ok(()),
        }
    }

    /// Runs `f` inside validation, out-of-memory and internal error scopes and turns any
    /// error they catch into [`Error::Gpu`] naming `during`.
    pub fn scoped<T>(&self, during: &str, f: impl FnOnce() -> T) -> Result<T> {
        self.check_alive()?;
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let errors = [validation.pop(), oom.pop(), internal.pop()];
        for pending in errors {
            if let Some(error) = pollster::block_on(pending) {
                return Err(Error::Gpu {
                    during: during.to_string(),
                    msg: error.to_string(),
                });
            }
        }
        Ok(value)
    }

    /// Blocks until all submitted work has finished.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu {
                during: "waiting for the queue".into(),
                msg: e.to_string(),
            })?;
        self.check_alive()
    }

    /// Workgroup grid for one invocation per element, `WORKGROUP_SIZE` per group, spilling
    /// into y when x would pass the adapter's per-dimension limit. Must match `flat_id` in
    /// shaders/prelude.wgsl.
    pub fn grid_for(&self, elements: u32) -> [u32; 3] {
        let groups = elements
            .div_ceil(crate::gpu::shaders::WORKGROUP_SIZE)
            .max(1);
        let max = self.limits.max_compute_workgroups_per_dimension.max(1);
        if groups <= max {
            [groups, 1, 1]
        } else {
            [max, groups.div_ceil(max), 1]
        }
    }
}
