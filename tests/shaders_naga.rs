//! Every shaders/*.wgsl file, exactly as the runtime compiles it (prelude included), parses
//! and validates with naga and translates to SPIR-V (Vulkan), MSL (Metal) and HLSL (DX12), so a
//! shader that would break on a backend this machine lacks fails here. No GPU needed.
//!
//! The uniform params structs are also checked against their Rust mirrors: same field names
//! in the same order and the same size, so the bytes the host uploads land where the shader
//! reads them.

use bytemuck::Zeroable;
use fer_wgpu::gpu::shaders::{self, Shader};
use fer_wgpu::ops;

fn parse_and_validate(shader: &Shader) -> (naga::Module, naga::valid::ModuleInfo) {
    let module = naga::front::wgsl::parse_str(&shader.source())
        .unwrap_or_else(|e| panic!("{}: {}", shader.file, e.emit_to_string(&shader.source())));
    // Default capabilities: only what every backend supports, no optional features.
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{}: {}", shader.file, e.emit_to_string(&shader.source())));
    (module, info)
}

#[test]
fn every_shader_validates_and_translates_to_spirv_msl_and_hlsl() {
    let on_disk: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".wgsl") && name != "prelude.wgsl")
        .collect();
    for name in &on_disk {
        assert!(
            shaders::ALL.iter().any(|s| s.file == name),
            "shaders/{name} is not listed in gpu::shaders::ALL, so nothing compiles it"
        );
    }
    for shader in shaders::ALL {
        let (module, info) = parse_and_validate(shader);
        assert!(
            !module.entry_points.is_empty(),
            "{} has no entry points",
            shader.file
        );
        // Override constants (tile sizes) get their values at pipeline creation, as wgpu
        // does it: translate with the defaults and with each value the host uses.
        let mut settings = vec![naga::back::PipelineConstants::default()];
        for groups in [1.0, 2.0, 4.0] {
            let mut c = naga::back::PipelineConstants::default();
            if module
                .overrides
                .iter()
                .any(|(_, o)| o.name.as_deref() == Some("CO_GROUPS"))
            {
                c.insert("CO_GROUPS".to_string(), groups);
                settings.push(c);
            }
        }
        for constants in &settings {
            let (module, info) =
                naga::back::pipeline_constants::process_overrides(&module, &info, None, constants)
                    .unwrap_or_else(|e| panic!("{} with {constants:?}: {e}", shader.file));
            translate(shader, &module, &info);
        }
    }
}

/// Translates a validated module with no overrides left to SPIR-V, MSL and HLSL.
fn translate(shader: &Shader, module: &naga::Module, info: &naga::valid::ModuleInfo) {
    naga::back::spv::write_vec(module, info, &naga::back::spv::Options::default(), None)
        .unwrap_or_else(|e| panic!("{} to SPIR-V: {e}", shader.file));
    naga::back::msl::write_string(
        module,
        info,
        &naga::back::msl::Options::default(),
        &naga::back::msl::PipelineOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{} to MSL: {e}", shader.file));
    let mut hlsl = String::new();
    naga::back::hlsl::Writer::new(
        &mut hlsl,
        &naga::back::hlsl::Options::default(),
        &naga::back::hlsl::PipelineOptions::default(),
    )
    .write(module, info, None)
    .unwrap_or_else(|e| panic!("{} to HLSL: {e}", shader.file));
}

/// Every entry point follows the naming scheme `<op>_forward`, `<op>_backward_*`, or is one
/// of the documented helper passes: partial sums, reductions, optimizer updates, clipping,
/// batch gathering and metrics.
#[test]
fn entry_points_follow_the_naming_scheme() {
    for shader in shaders::ALL {
        let (module, _) = parse_and_validate(shader);
        for ep in &module.entry_points {
            // A `_tiled`, `_rows` or `_blocks` suffix on an op's pass marks a faster variant of
            // the same contract (reduce_rows is a helper of its own).
            let n = ep.name.strip_suffix("_tiled").unwrap_or(&ep.name);
            let n = n.strip_suffix("_blocks").unwrap_or(n);
            let n = match n.strip_suffix("_rows") {
                Some(pass) if n != "reduce_rows" => pass,
                _ => n,
            };
            let ok = n.ends_with("_forward")
                || n.contains("_backward_")
                || n.ends_with("_partial")
                || n.ends_with("_reduce")
                || n.ends_with("_update")
                || n == "reduce_rows"
                || n == "batchnorm_update_running"
                || n == "clip_scale"
                || n == "gather_batch"
                || n == "metrics_accumulate"
                || n.starts_with("calibrate_");
            assert!(
                ok,
                "{}: entry point {n} does not follow the naming scheme",
                shader.file
            );
        }
    }
}

/// Field names of a params struct, read from its Debug output (`Name { a: 0, b: 0 }`).
fn rust_fields(debug: &str) -> Vec<String> {
    let inner = &debug[debug.find('{').unwrap() + 1..debug.rfind('}').unwrap()];
    inner
        .split(',')
        .map(|f| f.split(':').next().unwrap().trim().to_string())
        .collect()
}

fn check_struct(shader: Shader, name: &str, rust_size: usize, debug: String) {
    let (module, _) = parse_and_validate(&shader);
    let (_, ty) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("{}: no struct {name}", shader.file));
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        panic!("{name} is not a struct");
    };
    let wgsl: Vec<String> = members.iter().map(|m| m.name.clone().unwrap()).collect();
    assert_eq!(
        wgsl,
        rust_fields(&debug),
        "{name}: fields differ between WGSL and Rust"
    );
    assert_eq!(
        *span as usize, rust_size,
        "{name}: size differs between WGSL and Rust"
    );
    for (i, m) in members.iter().enumerate() {
        // Every field is a 4-byte scalar, so repr(C) puts field i at 4 * i.
        assert_eq!(m.offset as usize, 4 * i, "{name}.{}: offset", wgsl[i]);
    }
    assert_eq!(
        rust_size % 16,
        0,
        "{name}: uniform structs are padded to 16 bytes"
    );
}

macro_rules! check_params {
    ($shader:expr, $name:literal, $ty:ty) => {
        check_struct(
            $shader,
            $name,
            std::mem::size_of::<$ty>(),
            format!("{:?}", <$ty>::zeroed()),
        )
    };
}

#[test]
fn params_structs_match_their_wgsl_layout() {
    check_params!(shaders::CONV2D, "Conv2dParams", ops::conv2d::Conv2dParams);
    check_params!(shaders::POOL, "PoolParams", ops::pool::PoolParams);
    check_params!(
        shaders::BATCHNORM,
        "BatchNormParams",
        ops::batchnorm::BatchNormParams
    );
    check_params!(
        shaders::ACTIVATION,
        "ReluParams",
        ops::activation::ReluParams
    );
    check_params!(
        shaders::ACTIVATION,
        "DropoutParams",
        ops::activation::DropoutParams
    );
    check_params!(shaders::DENSE, "DenseParams", ops::dense::DenseParams);
    check_params!(shaders::LOSS, "LossParams", ops::loss::LossParams);
    check_params!(shaders::REDUCE, "ReduceParams", ops::reduce::ReduceParams);
    check_params!(shaders::OPTIM, "OptimParams", ops::optim::OptimParams);
    check_params!(shaders::OPTIM, "Hyper", ops::optim::Hyper);
    check_params!(shaders::OPTIM, "SumSqParams", ops::optim::SumSqParams);
    check_params!(shaders::BATCH, "GatherParams", ops::batch::GatherParams);
    check_params!(
        shaders::CALIBRATE,
        "CalibrateParams",
        ops::calibrate::CalibrateParams
    );
    check_params!(
        shaders::METRICS,
        "MetricsParams",
        ops::metrics::MetricsParams
    );
}
