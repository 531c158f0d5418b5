//! The face-crop cache: face mode detects and aligns every image, which costs far more than
//! training one epoch on a small set, so its crops are kept on disk, one file per data set and
//! settings. Cross-validation, several seeds and repeated runs then detect each face once.
//!
//! The key is a hash of a format tag, the embedded detector model's size, the preprocessing
//! settings that shape the crop (normalization is applied after the cache and left out) and
//! every image's size and pixels, in order. The file (`faces-<key>.bin`) holds a JSON header
//! (the key, the settings, the image count and size, and each image's [`FaceReport`]) and then
//! the 8-bit crops. It is written atomically; a file that does not match its header is
//! ignored and rebuilt. A failed write only costs the next run the detection, so it is a
//! warning, not an error.
//!
//! The default folder is `$XDG_CACHE_HOME/fer-wgpu` (or `~/.cache/fer-wgpu`); `fer train
//! --cache DIR` chooses another and `--no-cache` turns it off. Old files are never removed:
//! each is about (input pixels + 300 bytes) per image, 0.9 MiB for a 210-image set at 64x64.

use std::path::{Path, PathBuf};

use image::GrayImage;
use serde::{Deserialize, Serialize};

use crate::data::face::FaceReport;
use crate::data::loaders::RawSet;
use crate::data::preprocess::{Normalize, Prepared, Preprocess};
use crate::error::{shape_err, Result};
use crate::model::checkpoint::write_atomic;

/// Changes whenever the crops for the same settings would change (detector use, eye search,
/// warp): old cache files then miss instead of giving stale crops.
const FORMAT: &str = "fer-wgpu face cache 1";
const MAGIC: &[u8; 8] = b"FERFACE1";

/// Whether a build used the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheStatus {
    /// No cache folder, or not face mode.
    Off,
    /// The crops were read from the cache.
    Hit,
    /// The crops were computed (and written to the cache).
    Miss,
}

impl std::fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Off => "no cache",
            Self::Hit => "crops from the cache",
            Self::Miss => "crops computed and cached",
        })
    }
}

/// The default cache folder: `$XDG_CACHE_HOME/fer-wgpu`, else `$HOME/.cache/fer-wgpu`.
pub fn default_dir() -> Option<PathBuf> {
    let nonempty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    nonempty("XDG_CACHE_HOME")
        .or_else(|| nonempty("HOME").map(|h| h.join(".cache")))
        .map(|d| d.join("fer-wgpu"))
}

/// Two 64-bit FNV-1a hashes from different starting states: small, stable across Rust
/// versions (unlike `DefaultHasher`), and 128 bits, so two data sets of the same size and
/// settings (which the header check cannot tell apart) practically never share a key.
struct Fnv([u64; 2]);

impl Fnv {
    fn new() -> Self {
        // The standard offset basis, and the hash of "fer-wgpu" from it.
        Self([0xcbf2_9ce4_8422_2325, 0xea35_ac01_d81a_585c])
    }

    fn write(&mut self, bytes: &[u8]) {
        for h in &mut self.0 {
            for &b in bytes {
                *h = (*h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }
}

/// The settings that shape a crop, as stored in the header.
fn crop_settings(pre: &Preprocess) -> serde_json::Value {
    let mut shape = pre.clone();
    shape.normalize = Normalize::UnitRange;
    serde_json::to_value(&shape).expect("settings serialize")
}

/// The cache key of `raw` under `pre`.
pub fn key(raw: &RawSet, pre: &Preprocess) -> String {
    let mut h = Fnv::new();
    h.write(FORMAT.as_bytes());
    h.write(&crate::data::face::model_size().to_le_bytes());
    h.write(crop_settings(pre).to_string().as_bytes());
    for s in &raw.samples {
        h.write(&s.image.width().to_le_bytes());
        h.write(&s.image.height().to_le_bytes());
        h.write(s.image.as_raw());
    }
    format!("{:016x}{:016x}", h.0[0], h.0[1])
}

#[derive(Serialize, Deserialize)]
struct Header {
    key: String,
    settings: serde_json::Value,
    images: usize,
    /// `[height, width]` of each crop.
    size: [u32; 2],
    reports: Vec<FaceReport>,
}

/// Every sample of `raw` prepared with `pre` (which must be face mode), from the cache in
/// `dir` when it holds them, else computed and stored there.
pub fn prepare_all(
    raw: &RawSet,
    pre: &Preprocess,
    dir: Option<&Path>,
) -> Result<(Vec<Prepared>, CacheStatus)> {
    let compute = || -> Result<Vec<Prepared>> {
        raw.samples
            .iter()
            .map(|s| {
                pre.prepare(&s.image)
                    .map_err(|e| shape_err("preprocess", format!("{}: {e}", s.source)))
            })
            .collect()
    };
    let Some(dir) = dir else {
        return Ok((compute()?, CacheStatus::Off));
    };
    let key = key(raw, pre);
    let path = dir.join(format!("faces-{key}.bin"));
    if let Some(hit) = read(&path, &key, pre, raw.samples.len()) {
        log::info!("face crops from the cache {}", path.display());
        return Ok((hit, CacheStatus::Hit));
    }
    let prepared = compute()?;
    if let Err(e) = write(&path, &key, pre, &prepared) {
        log::warn!("could not write the face cache {}: {e}", path.display());
    }
    Ok((prepared, CacheStatus::Miss))
}

fn read(path: &Path, key: &str, pre: &Preprocess, n: usize) -> Option<Vec<Prepared>> {
    let bytes = std::fs::read(path).ok()?;
    let rest = bytes.strip_prefix(MAGIC)?;
    let len = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?) as usize;
    let header: Header = serde_json::from_slice(rest.get(8..8 + len)?).ok()?;
    let pixels = &rest[8 + len..];
    let [h, w] = pre.size;
    let per = (h * w) as usize;
    let matches = header.key == key
        && header.settings == crop_settings(pre)
        && header.images == n
        && header.reports.len() == n
        && header.size == pre.size
        && pixels.len() == n * per;
    if !matches {
        log::warn!(
            "ignoring the face cache {}: it does not match",
            path.display()
        );
        return None;
    }
    Some(
        header
            .reports
            .into_iter()
            .zip(pixels.chunks_exact(per))
            .map(|(report, px)| Prepared {
                image: GrayImage::from_raw(w, h, px.to_vec()).expect("size checked"),
                face: Some(report),
            })
            .collect(),
    )
}

fn write(path: &Path, key: &str, pre: &Preprocess, prepared: &[Prepared]) -> Result<()> {
    let dir = path.parent().expect("a file in the cache folder");
    std::fs::create_dir_all(dir).map_err(|e| shape_err("cache", e.to_string()))?;
    let header = Header {
        key: key.to_string(),
        settings: crop_settings(pre),
        images: prepared.len(),
        size: pre.size,
        reports: prepared
            .iter()
            .map(|p| p.face.clone().expect("face mode reports every image"))
            .collect(),
    };
    let json = serde_json::to_vec(&header).expect("header serializes");
    let mut bytes = MAGIC.to_vec();
    bytes.extend((json.len() as u64).to_le_bytes());
    bytes.extend(json);
    for p in prepared {
        bytes.extend(p.image.as_raw());
    }
    write_atomic(path, &bytes)
}
