//! Compiled pipelines and recorded kernels.
//!
//! A [`Kernel`] is one dispatch ready to record: pipeline, bind group (with its own uniform
//! parameter buffer) and grid. Ops build kernels once for fixed tensors; recording them again
//! allocates nothing, which is what a training step needs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::shaders::Shader;
use crate::gpu::GpuContext;

/// File, entry point and override constants (as text): what makes two pipelines differ.
type PipelineKey = (&'static str, String, String);

/// Each (file, entry point, constants) is compiled once per device and shared.
#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<&'static str, Arc<wgpu::ShaderModule>>>,
    /// Keyed by file, entry point and override constants (as text).
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
}

impl GpuContext {
    /// The compute pipeline of `entry` in `shader` with the given values of its `override`
    /// constants (tile sizes), compiled on first use. Its bind group layout is derived from
    /// the bindings that entry point uses.
    pub fn pipeline(
        &self,
        shader: Shader,
        entry: &str,
        constants: &[(&str, f64)],
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        let key = (shader.file, entry.to_string(), format!("{constants:?}"));
        if let Some(found) = self.pipelines.pipelines.lock().unwrap().get(&key) {
            return Ok(Arc::clone(found));
        }
        let module = self.module(shader)?;
        log::trace!("compiling pipeline {}::{entry} {constants:?}", shader.file);
        let label = format!("{}::{entry}", shader.file);
        let pipeline = self
            .scoped(&label, || {
                self.device
                    .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(&label),
                        layout: None,
                        module: &module,
                        entry_point: Some(entry),
                        compilation_options: wgpu::PipelineCompilationOptions {
                            constants,
                            // Every kernel writes workgroup memory before reading it, so the
                            // zeroing WebGPU would add to each workgroup is wasted work.
                            zero_initialize_workgroup_memory: false,
                        },
                        cache: None,
                    })
            })
            .map_err(|e| shader_error(shader, entry, e))?;
        let pipeline = Arc::new(pipeline);
        self.pipelines
            .pipelines
            .lock()
            .unwrap()
            .insert(key, Arc::clone(&pipeline));
        Ok(pipeline)
    }

    fn module(&self, shader: Shader) -> Result<Arc<wgpu::ShaderModule>> {
        if let Some(found) = self.pipelines.modules.lock().unwrap().get(shader.file) {
            return Ok(Arc::clone(found));
        }
        let source = shader.source();
        let module = self
            .scoped(shader.file, || {
                let desc = wgpu::ShaderModuleDescriptor {
                    label: Some(shader.file),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                };
                // Bounds checks stay on. Loop bounding (an extra counter and exit in every
                // loop, against infinite loops) goes: it hides every trip count from the
                // driver's compiler, which then unrolls nothing, and on lavapipe a register
                // array indexed by a loop counter becomes per-lane memory traffic. Measured
                // on lavapipe (`fer bench`, batch 16): training steps 1.2x faster without it
                // for small-vgg, 1.15x for fer-net.
                let mut checks = wgpu::ShaderRuntimeChecks::checked();
                checks.force_loop_bounding = false;
                // SAFETY: the one property loop bounding guards is that every loop ends. In
                // every shaders/*.wgsl file each loop runs over a range computed from its
                // uniform parameters (tensor sizes) or a constant, with a step of at least
                // one, so each ends; that is the rule for new kernels too (prelude.wgsl).
                unsafe { self.device.create_shader_module_trusted(desc, checks) }
            })
            .map_err(|e| shader_error(shader, "(module)", e))?;
        let module = Arc::new(module);
        self.pipelines
            .modules
            .lock()
            .unwrap()
            .insert(shader.file, Arc::clone(&module));
        Ok(module)
    }

    /// Builds a kernel for `entry` of `shader` running `elements` invocations: binding 0 gets
    /// a uniform buffer holding `params` (unless empty), the others the given buffers.
    /// `bindings` must list exactly the storage bindings the entry point uses.
    pub fn kernel(
        &self,
        shader: Shader,
        entry: &str,
        label: &str,
        params: &[u8],
        bindings: &[(u32, &wgpu::Buffer)],
        elements: u32,
    ) -> Result<Kernel> {
        self.kernel_with(shader, entry, &[], label, params, bindings, elements)
    }

    /// [`GpuContext::kernel`] with values for the entry point's `override` constants.
    #[allow(clippy::too_many_arguments)]
    pub fn kernel_with(
        &self,
        shader: Shader,
        entry: &str,
        constants: &[(&str, f64)],
        label: &str,
        params: &[u8],
        bindings: &[(u32, &wgpu::Buffer)],
        elements: u32,
    ) -> Result<Kernel> {
        let pipeline = self.pipeline(shader, entry, constants)?;
        let bind_group = self.scoped(&format!("binding {label}"), || {
            let uniform = (!params.is_empty()).then(|| {
                self.device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some(&format!("{label}.params")),
                        contents: params,
                        // COPY_DST: values that change per step are rewritten in place.
                        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    })
            });
            let mut entries: Vec<wgpu::BindGroupEntry> = bindings
                .iter()
                .map(|&(binding, buffer)| wgpu::BindGroupEntry {
                    binding,
                    resource: buffer.as_entire_binding(),
                })
                .collect();
            if let Some(uniform) = &uniform {
                entries.push(wgpu::BindGroupEntry {
                    binding: 0,
                    resource: uniform.as_entire_binding(),
                });
            }
            let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            (bind_group, uniform)
        })?;
        let (bind_group, params) = bind_group;
        Ok(Kernel {
            label: label.to_string(),
            pipeline,
            bind_group,
            params,
            workgroups: self.grid_for(elements),
        })
    }

    /// Records `kernels` in order into one compute pass of one command buffer and submits it.
    /// wgpu orders the dispatches (a kernel sees every earlier kernel's writes).
    pub fn submit(&self, kernels: &[&Kernel]) -> Result<()> {
        let label = kernels.first().map_or("empty", |k| k.label.as_str());
        self.scoped(
            &format!("submitting {} kernels from {label}", kernels.len()),
            || {
                let mut encoder = self
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(label),
                        timestamp_writes: None,
                    });
                    for kernel in kernels {
                        kernel.record(&mut pass);
                    }
                }
                self.queue.submit([encoder.finish()]);
            },
        )
    }

    /// Runs `kernels` once and reports the GPU time of each. With timestamp queries each
    /// kernel gets its own pass with begin/end timestamps, all in one submission; without,
    /// each kernel is submitted and waited for alone under a wall clock (which then includes
    /// submission overhead; [`Timings::source`] says which).
    pub fn submit_timed(&self, kernels: &[&Kernel]) -> Result<Timings> {
        if kernels.is_empty() {
            return Ok(Timings {
                ms: vec![],
                source: TimingSource::WallClock,
            });
        }
        if !self.timestamps {
            let mut ms = Vec::with_capacity(kernels.len());
            for kernel in kernels {
                let start = Instant::now();
                self.submit(&[kernel])?;
                self.wait()?;
                ms.push(start.elapsed().as_secs_f64() * 1e3);
            }
            return Ok(Timings {
                ms,
                source: TimingSource::WallClock,
            });
        }
        let count = 2 * kernels.len() as u32;
        let bytes = u64::from(count) * wgpu::QUERY_SIZE as u64;
        let resolved = crate::gpu::GpuTensor::zeros(
            self,
            "timestamps",
            &[2 * count as usize],
            crate::gpu::DType::U32,
        )?;
        self.scoped("recording timed kernels", || {
            let query_set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            });
            let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps.resolve"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let mut encoder = self
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("timed"),
                });
            for (i, kernel) in kernels.iter().enumerate() {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&kernel.label),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: &query_set,
                        beginning_of_pass_write_index: Some(2 * i as u32),
                        end_of_pass_write_index: Some(2 * i as u32 + 1),
                    }),
                });
                kernel.record(&mut pass);
            }
            encoder.resolve_query_set(&query_set, 0..count, &resolve, 0);
            encoder.copy_buffer_to_buffer(&resolve, 0, &resolved.buffer, 0, bytes);
            self.queue.submit([encoder.finish()]);
        })?;
        let words = resolved.read_u32(self)?;
        let period_ns = f64::from(self.queue.get_timestamp_period());
        let ticks: Vec<u64> = words
            .chunks(2)
            .map(|w| u64::from(w[0]) | (u64::from(w[1]) << 32))
            .collect();
        let ms = ticks
            .chunks(2)
            .map(|t| t[1].saturating_sub(t[0]) as f64 * period_ns * 1e-6)
            .collect();
        Ok(Timings {
            ms,
            source: TimingSource::GpuTimestamps,
        })
    }
}

fn shader_error(shader: Shader, entry: &str, error: Error) -> Error {
    let msg = match error {
        Error::Gpu { msg, .. } => msg,
        other => other.to_string(),
    };
    log::error!("shader {} entry {entry} rejected: {msg}", shader.file);
    Error::Shader {
        file: shader.file,
        entry: entry.to_string(),
        msg,
    }
}

/// One dispatch ready to record any number of times.
#[derive(Debug)]
pub struct Kernel {
    pub label: String,
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    params: Option<wgpu::Buffer>,
    pub workgroups: [u32; 3],
}

impl Kernel {
    /// Rewrites the kernel's uniform parameters (same size as at creation) through the queue,
    /// for values that change between submissions (a dropout seed, a batch offset). The write
    /// lands before the next submission, after the ones already made.
    pub fn write_params(&self, ctx: &GpuContext, params: &[u8]) {
        let buffer = self
            .params
            .as_ref()
            .expect("write_params on a kernel without params");
        debug_assert_eq!(
            buffer.size(),
            params.len() as u64,
            "{}: params size",
            self.label
        );
        ctx.queue.write_buffer(buffer, 0, params);
    }

    /// Records the dispatch into `pass`, inside a debug group named after the kernel.
    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.push_debug_group(&self.label);
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
        pass.pop_debug_group();
    }
}

/// Where kernel times come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimingSource {
    /// Timestamps written by the GPU at the start and end of each pass.
    GpuTimestamps,
    /// Host wall clock around a synchronized submission of each kernel alone.
    WallClock,
}

/// Per-kernel times in milliseconds, in submission order.
#[derive(Debug, Clone)]
pub struct Timings {
    pub ms: Vec<f64>,
    pub source: TimingSource,
}
