//! GPU tensors: a storage buffer with a shape, upload and readback.

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::GpuContext;

/// Element type of a tensor. Everything is f32 except labels and max-pool argmax indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
}

/// A storage buffer plus its shape, dense row-major: `[n, c, h, w]` for images and feature
/// maps, `[rows, cols]` for matrices, `[len]` for vectors.
#[derive(Debug)]
pub struct GpuTensor {
    pub buffer: wgpu::Buffer,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub label: String,
}

/// Both element types are 4 bytes wide.
const ELEM_BYTES: u64 = 4;

fn checked_size(ctx: &GpuContext, label: &str, shape: &[usize]) -> Result<u64> {
    let numel = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let shape_err = |msg: String| Error::Shape {
        op: "tensor",
        msg: format!("{label}: {msg}"),
    };
    let numel = numel.ok_or_else(|| shape_err(format!("shape {shape:?} overflows")))?;
    if numel == 0 {
        return Err(shape_err(format!(
            "shape {shape:?} has a zero-sized dimension"
        )));
    }
    let bytes = numel as u64 * ELEM_BYTES;
    let max = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size);
    // Shaders index with u32, so element counts stay below 2^32 whatever the adapter allows.
    if bytes > max || numel > u32::MAX as usize {
        return Err(shape_err(format!(
            "shape {shape:?} needs {bytes} bytes, more than this adapter's largest storage \
             binding ({max} bytes)"
        )));
    }
    Ok(bytes)
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl GpuTensor {
    /// Uploads f32 data; `data.len()` must equal the product of `shape`.
    pub fn from_f32(ctx: &GpuContext, label: &str, shape: &[usize], data: &[f32]) -> Result<Self> {
        Self::upload(
            ctx,
            label,
            shape,
            DType::F32,
            bytemuck::cast_slice(data),
            data.len(),
        )
    }

    /// Uploads u32 data (labels, indices).
    pub fn from_u32(ctx: &GpuContext, label: &str, shape: &[usize], data: &[u32]) -> Result<Self> {
        Self::upload(
            ctx,
            label,
            shape,
            DType::U32,
            bytemuck::cast_slice(data),
            data.len(),
        )
    }

    fn upload(
        ctx: &GpuContext,
        label: &str,
        shape: &[usize],
        dtype: DType,
        bytes: &[u8],
        len: usize,
    ) -> Result<Self> {
        let size = checked_size(ctx, label, shape)?;
        if len as u64 * ELEM_BYTES != size {
            return Err(Error::Shape {
                op: "tensor",
                msg: format!("{label}: {len} values given for shape {shape:?}"),
            });
        }
        let buffer = ctx.scoped(&format!("uploading {label}"), || {
            ctx.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents: bytes,
                    usage: USAGE,
                })
        })?;
        Ok(Self {
            buffer,
            shape: shape.to_vec(),
            dtype,
            label: label.to_string(),
        })
    }

    /// A zero-filled tensor (wgpu zero-initializes new buffers).
    pub fn zeros(ctx: &GpuContext, label: &str, shape: &[usize], dtype: DType) -> Result<Self> {
        let size = checked_size(ctx, label, shape)?;
        let buffer = ctx.scoped(&format!("allocating {label}"), || {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: USAGE,
                mapped_at_creation: false,
            })
        })?;
        Ok(Self {
            buffer,
            shape: shape.to_vec(),
            dtype,
            label: label.to_string(),
        })
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Another view of the same buffer with a shape of the same element count (a flatten);
    /// writes through either are seen by both.
    pub fn reshaped(&self, shape: &[usize], label: &str) -> Result<Self> {
        if shape.iter().product::<usize>() != self.numel() {
            return Err(Error::Shape {
                op: "tensor",
                msg: format!("cannot view {} {:?} as {shape:?}", self.label, self.shape),
            });
        }
        Ok(Self {
            buffer: self.buffer.clone(),
            shape: shape.to_vec(),
            dtype: self.dtype,
            label: label.to_string(),
        })
    }

    /// Overwrites the contents with u32 `data` (same length), through the queue.
    pub fn write_u32(&self, ctx: &GpuContext, data: &[u32]) -> Result<()> {
        self.write(ctx, DType::U32, bytemuck::cast_slice(data), data.len())
    }

    /// Overwrites the contents with `data` (same length), through the queue.
    pub fn write_f32(&self, ctx: &GpuContext, data: &[f32]) -> Result<()> {
        self.write(ctx, DType::F32, bytemuck::cast_slice(data), data.len())
    }

    fn write(&self, ctx: &GpuContext, dtype: DType, bytes: &[u8], len: usize) -> Result<()> {
        if len != self.numel() || self.dtype != dtype {
            return Err(Error::Shape {
                op: "tensor",
                msg: format!(
                    "{}: writing {len} {dtype:?} values into {:?} {:?}",
                    self.label, self.dtype, self.shape
                ),
            });
        }
        ctx.scoped(&format!("writing {}", self.label), || {
            ctx.queue.write_buffer(&self.buffer, 0, bytes)
        })
    }

    /// Copies the tensor back to the host, waiting for all work submitted before.
    pub fn read_f32(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        self.expect_dtype(DType::F32)?;
        Ok(bytemuck::cast_slice(&pollster::block_on(self.read_bytes(ctx))?).to_vec())
    }

    /// As [`read_f32`](Self::read_f32), for u32 tensors.
    pub fn read_u32(&self, ctx: &GpuContext) -> Result<Vec<u32>> {
        self.expect_dtype(DType::U32)?;
        Ok(bytemuck::cast_slice(&pollster::block_on(self.read_bytes(ctx))?).to_vec())
    }

    fn expect_dtype(&self, dtype: DType) -> Result<()> {
        if self.dtype == dtype {
            return Ok(());
        }
        Err(Error::Readback {
            label: self.label.clone(),
            msg: format!("it holds {:?}, not {dtype:?}", self.dtype),
        })
    }

    /// Copies into a mappable staging buffer, maps it and waits on a oneshot channel that the
    /// map callback fires, polling the device so the callback runs.
    pub async fn read_bytes(&self, ctx: &GpuContext) -> Result<Vec<u8>> {
        let size = self.buffer.size();
        let staging_label = format!("{}.staging", self.label);
        let staging = ctx.scoped(&format!("reading back {}", self.label), || {
            let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&staging_label),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some(&staging_label),
                });
            encoder.copy_buffer_to_buffer(&self.buffer, 0, &staging, 0, size);
            ctx.queue.submit([encoder.finish()]);
            staging
        })?;
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        staging
            .slice(..)
            .map_async(wgpu::MapMode::Read, move |result| {
                // The receiver only goes away if this future was dropped; nothing to tell then.
                let _ = sender.send(result);
            });
        ctx.wait()?;
        let readback_err = |msg: String| Error::Readback {
            label: self.label.clone(),
            msg,
        };
        match receiver.receive().await {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(readback_err(e.to_string())),
            None => return Err(readback_err("the map callback never ran".into())),
        }
        let bytes = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| readback_err(e.to_string()))?;
            view.to_vec()
        };
        staging.unmap();
        Ok(bytes)
    }
}
