//! Finds the SeetaFace frontal face model that the `rustface` crate ships in its package
//! (`model/seeta_fd_frontal_v1.0.bin`, BSD-2-Clause like the crate) and hands its path to the
//! compiler as `FER_SEETA_MODEL`, so `src/data/face.rs` can `include_bytes!` it: the binary
//! carries its detector and needs no download or model file at run time.
//!
//! Where the file is: `cargo metadata` lists every dependency's manifest path, whatever the
//! registry, vendor folder or git checkout it came from; the model sits beside rustface's
//! Cargo.toml. It runs offline, and offline it fails when packages of other platforms were
//! never downloaded; then the crates.io sources under `$CARGO_HOME/registry/src` are searched
//! for the version Cargo.lock names. `FER_SEETA_MODEL=/path/to/seeta_fd_frontal_v1.0.bin`
//! overrides both.

use std::path::{Path, PathBuf};
use std::process::Command;

const MODEL_FILE: &str = "seeta_fd_frontal_v1.0.bin";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-env-changed=FER_SEETA_MODEL");
    let path = match std::env::var_os("FER_SEETA_MODEL") {
        Some(p) => PathBuf::from(p),
        None => find_in_metadata()
            .or_else(|meta| find_in_registry().map_err(|reg| format!("{meta}; {reg}")))
            .unwrap_or_else(|why| {
                panic!(
                    "cannot find rustface's {MODEL_FILE}: {why}. Run `cargo fetch`, or set \
                     FER_SEETA_MODEL to the file's path"
                )
            }),
    };
    if !path.is_file() {
        panic!(
            "{} is not a file; FER_SEETA_MODEL must name rustface's {MODEL_FILE}",
            path.display()
        );
    }
    println!("cargo:rerun-if-changed={}", path.display());
    println!("cargo:rustc-env=FER_SEETA_MODEL={}", path.display());
}

/// rustface's model file, through the manifest path `cargo metadata` gives for the package.
fn find_in_metadata() -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?;
    // --offline: the build already has every package; metadata must not touch the network.
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(Path::new(&manifest_dir).join("Cargo.toml"))
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("cargo metadata printed no JSON: {e}"))?;
    let packages = json["packages"]
        .as_array()
        .ok_or("no packages in metadata")?;
    let manifest = packages
        .iter()
        .find(|p| p["name"] == "rustface")
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("rustface is not among the dependencies")?;
    let dir = Path::new(manifest).parent().ok_or("bad manifest path")?;
    Ok(dir.join("model").join(MODEL_FILE))
}

/// rustface's model file in the crates.io sources, for the version Cargo.lock names.
fn find_in_registry() -> Result<PathBuf, String> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").map_err(|e| e.to_string())?;
    let lock = std::fs::read_to_string(Path::new(&manifest_dir).join("Cargo.lock"))
        .map_err(|e| format!("cannot read Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    lines
        .by_ref()
        .find(|l| l.trim() == "name = \"rustface\"")
        .ok_or("rustface is not in Cargo.lock")?;
    let version = lines
        .next()
        .and_then(|l| l.trim().strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .ok_or("no version for rustface in Cargo.lock")?;
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .ok_or("neither CARGO_HOME nor HOME is set")?;
    let src = home.join("registry").join("src");
    let registries =
        std::fs::read_dir(&src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
    let mut found: Vec<PathBuf> = registries
        .filter_map(|r| r.ok())
        .map(|r| {
            r.path()
                .join(format!("rustface-{version}"))
                .join("model")
                .join(MODEL_FILE)
        })
        .filter(|p| p.is_file())
        .collect();
    // Several registry mirrors can hold the same version: any of them, in a fixed order.
    found.sort();
    found
        .into_iter()
        .next()
        .ok_or_else(|| format!("no rustface-{version} under {}", src.display()))
}
