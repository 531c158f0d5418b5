//! The `fer` command: argument parsing and wiring only; the work lives in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fer_wgpu::gpu::{AdapterRequest, GpuContext};

#[derive(Parser)]
#[command(
    name = "fer",
    version,
    about = "Facial-expression CNNs in WGSL compute shaders"
)]
struct Cli {
    /// Backends to probe: primary (Vulkan, Metal, DX12), vulkan, metal, dx12, gl, all.
    /// Overrides FER_BACKEND.
    #[arg(long, global = true)]
    backend: Option<String>,
    /// Adapter to use: an index from `fer devices` or part of its name. Overrides FER_ADAPTER.
    #[arg(long, global = true)]
    adapter: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the built-in synthetic face set (JAFFE layout) and a contact sheet to a folder.
    Synth {
        /// Folder to write into (created if missing).
        #[arg(long, default_value = "synthetic-faces")]
        out: std::path::PathBuf,
        #[arg(long, default_value_t = 2024)]
        seed: u64,
        /// 0 (clean, full-intensity expressions) to 1 (subtle expressions, strong nuisances).
        #[arg(long, default_value_t = 0.5)]
        difficulty: f32,
    },
    /// List the GPU adapters found, best first, with the limits that matter.
    Devices,
    /// Run one forward and backward pass of a small CNN on the GPU and compare every op with
    /// the CPU reference.
    Demo {
        /// Batch size.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=4096))]
        batch: u64,
        /// Seed of the random inputs, weights and dropout mask.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

fn request(cli: &Cli) -> fer_wgpu::Result<AdapterRequest> {
    let mut request = AdapterRequest::from_env()?;
    if let Some(b) = &cli.backend {
        request.backends = fer_wgpu::gpu::parse_backends("--backend", b)?;
    }
    if let Some(a) = &cli.adapter {
        request.choice = fer_wgpu::gpu::parse_choice(a);
    }
    Ok(request)
}

fn devices(request: &AdapterRequest) {
    let adapters = fer_wgpu::gpu::list_adapters(request.backends);
    if adapters.is_empty() {
        println!(
            "No adapter found on backends {:?}.\n{}",
            request.backends,
            fer_wgpu::gpu::INSTALL_HINT
        );
        return;
    }
    for (i, a) in adapters.iter().enumerate() {
        println!(
            "[{i}] {} ({:?}, {:?})",
            a.info.name, a.info.backend, a.info.device_type
        );
        println!("    driver: {} {}", a.info.driver, a.info.driver_info);
        println!(
            "    max storage binding {} MiB, max buffer {} MiB, workgroup invocations {}, \
             workgroups per dimension {}, timestamps {}",
            a.limits.max_storage_buffer_binding_size >> 20,
            a.limits.max_buffer_size >> 20,
            a.limits.max_compute_invocations_per_workgroup,
            a.limits.max_compute_workgroups_per_dimension,
            if a.timestamps { "yes" } else { "no" }
        );
    }
}

fn demo(request: &AdapterRequest, batch: usize, seed: u64) -> fer_wgpu::Result<()> {
    let ctx = GpuContext::new(request)?;
    let report = fer_wgpu::demo::run(&ctx, batch, seed)?;
    println!("adapter: {}   batch {batch}, seed {seed}", report.adapter);
    println!(
        "{:<28} {:<18} {:>10} {:>12} {:>12}",
        "op", "output shape", "gpu ms", "max abs err", "max rel err"
    );
    for row in &report.rows {
        println!(
            "{:<28} {:<18} {:>10.3} {:>12.2e} {:>12.2e}",
            row.op,
            format!("{:?}", row.shape),
            row.gpu_ms,
            row.err.max_abs,
            row.err.max_rel
        );
    }
    println!("times from {:?}", report.timing);
    println!(
        "loss: gpu {:.6}, cpu reference {:.6}",
        report.loss_gpu, report.loss_cpu
    );
    Ok(())
}

fn synth(out: &std::path::Path, seed: u64, difficulty: f32) -> fer_wgpu::Result<()> {
    use fer_wgpu::data::synth;
    let options = synth::SynthOptions {
        seed,
        difficulty,
        ..Default::default()
    };
    let images = synth::generate(&options);
    synth::write_jaffe(&images, out)?;
    let sheet_path = out.join("contact-sheet.png");
    synth::contact_sheet(&images, 64)
        .save(&sheet_path)
        .map_err(|e| fer_wgpu::Error::Data {
            path: sheet_path.display().to_string(),
            msg: e.to_string(),
        })?;
    println!(
        "wrote {} images and {} to {}",
        images.len(),
        sheet_path.display(),
        out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = request(&cli).and_then(|request| match cli.command {
        Command::Devices => {
            devices(&request);
            Ok(())
        }
        Command::Demo { batch, seed } => demo(&request, batch as usize, seed),
        Command::Synth {
            out,
            seed,
            difficulty,
        } => synth(&out, seed, difficulty),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
