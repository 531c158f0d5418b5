//! From a decoded grayscale image to the model's input: a fixed crop box or a face crop (see
//! [`crate::data::face`]), resize, optional histogram equalization, normalization. The
//! settings are stored in checkpoints, so prediction repeats them exactly.
//!
//! Face mode costs a detection per image, so [`build_dataset_cached`] keeps its crops in a
//! cache file per data set and settings (see [`crate::data::cache`]).

use image::imageops::FilterType;
use image::GrayImage;
use serde::{Deserialize, Serialize};

use crate::data::cache::{self, CacheStatus};
use crate::data::face::{face_crop, FaceReport, FaceSettings, FaceSummary};
use crate::data::loaders::RawSet;
use crate::data::{Dataset, Task};
use crate::error::{shape_err, Result};

/// A crop box, as fractions of the image or in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "unit", rename_all = "snake_case")]
pub enum Crop {
    /// Left, top, width and height as fractions of the image's width and height.
    Fraction {
        left: f32,
        top: f32,
        width: f32,
        height: f32,
    },
    /// Left, top, width and height in pixels.
    Pixels {
        left: u32,
        top: u32,
        width: u32,
        height: u32,
    },
}

/// How pixel values are scaled after resizing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Normalize {
    /// Each image to zero mean and unit variance.
    PerImage,
    /// `(v - mean) / std` with the training set's statistics (of values in [0, 1]).
    Dataset { mean: f32, std: f32 },
    /// Values in [0, 1], nothing else.
    UnitRange,
}

/// The whole preprocessing recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Output `[height, width]`: the model's input size.
    pub size: [u32; 2],
    pub crop: Option<Crop>,
    pub equalize: bool,
    pub normalize: Normalize,
    /// Face mode: detect, align and crop the face; `crop` (or the whole image) is the
    /// fallback when no face is found. Absent in checkpoints made before face mode, which
    /// therefore load as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face: Option<FaceSettings>,
}

/// One image prepared for the model: the 8-bit crop at the input size (what the network
/// sees, before normalization) and, in face mode, what was found.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub image: GrayImage,
    pub face: Option<FaceReport>,
}

impl Preprocess {
    /// Resize to `size` and normalize per image: the default.
    pub fn new(size: [u32; 2]) -> Self {
        Self {
            size,
            crop: None,
            equalize: false,
            normalize: Normalize::PerImage,
            face: None,
        }
    }

    /// Parses a crop given as `left,top,width,height`: all at most 1 means fractions,
    /// otherwise pixels.
    pub fn parse_crop(text: &str) -> Result<Crop> {
        let v: Vec<f32> = text
            .split(',')
            .map(|s| s.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|_| shape_err("crop", format!("{text:?}: expected left,top,width,height")))?;
        let [left, top, width, height] = v[..] else {
            return Err(shape_err("crop", format!("{text:?}: expected 4 numbers")));
        };
        if v.iter().any(|x| *x < 0.0) || width == 0.0 || height == 0.0 {
            return Err(shape_err(
                "crop",
                format!("{text:?}: sizes must be positive"),
            ));
        }
        if v.iter().all(|x| *x <= 1.0) {
            if left + width > 1.0 + 1e-6 || top + height > 1.0 + 1e-6 {
                return Err(shape_err("crop", format!("{text:?} runs past the image")));
            }
            Ok(Crop::Fraction {
                left,
                top,
                width,
                height,
            })
        } else {
            Ok(Crop::Pixels {
                left: left as u32,
                top: top as u32,
                width: width as u32,
                height: height as u32,
            })
        }
    }

    /// The crop box of a `w` x `h` image in pixels, or an error when it falls outside.
    fn crop_box(&self, w: u32, h: u32) -> Result<Option<(u32, u32, u32, u32)>> {
        let Some(crop) = self.crop else {
            return Ok(None);
        };
        let (l, t, cw, ch) = match crop {
            Crop::Fraction {
                left,
                top,
                width,
                height,
            } => (
                (left * w as f32).round() as u32,
                (top * h as f32).round() as u32,
                ((width * w as f32).round() as u32).max(1),
                ((height * h as f32).round() as u32).max(1),
            ),
            Crop::Pixels {
                left,
                top,
                width,
                height,
            } => (left, top, width, height),
        };
        if l + cw > w || t + ch > h {
            return Err(shape_err(
                "crop",
                format!(
                    "box {cw}x{ch} at ({l}, {t}) does not fit a \
                {w}x{h} image"
                ),
            ));
        }
        Ok(Some((l, t, cw, ch)))
    }

    /// Crops (the fixed box, or the face), resizes (Catmull-Rom, which filters over the source
    /// footprint when shrinking) and equalizes: the 8-bit image the network sees.
    pub fn prepare(&self, image: &GrayImage) -> Result<Prepared> {
        let (face_image, face) = match &self.face {
            Some(settings) => {
                let (crop, report) = face_crop(image, settings, self.size);
                (crop, Some(report))
            }
            None => (None, None),
        };
        // Without face mode, or without a face: the fixed crop box, or the whole image.
        let resized = match face_image {
            Some(crop) => crop,
            None => self.fixed_crop(image)?,
        };
        let image = if self.equalize {
            equalize(&resized)
        } else {
            resized
        };
        Ok(Prepared { image, face })
    }

    fn fixed_crop(&self, image: &GrayImage) -> Result<GrayImage> {
        let [oh, ow] = self.size;
        let cropped;
        let mut img = image;
        if let Some((l, t, w, h)) = self.crop_box(image.width(), image.height())? {
            cropped = image::imageops::crop_imm(image, l, t, w, h).to_image();
            img = &cropped;
        }
        Ok(if img.dimensions() == (ow, oh) {
            img.clone()
        } else {
            image::imageops::resize(img, ow, oh, FilterType::CatmullRom)
        })
    }

    /// The prepared image as values in [0, 1], before normalization.
    pub fn to_unit(&self, image: &GrayImage) -> Result<Vec<f32>> {
        Ok(unit(&self.prepare(image)?.image))
    }

    /// The model input for one image, `[1, h, w]` flattened.
    pub fn apply(&self, image: &GrayImage) -> Result<Vec<f32>> {
        Ok(self.normalized(&self.prepare(image)?.image))
    }

    /// The model input for an already prepared image.
    pub fn normalized(&self, prepared: &GrayImage) -> Vec<f32> {
        let mut v = unit(prepared);
        normalize(&mut v, self.normalize);
        v
    }
}

fn unit(image: &GrayImage) -> Vec<f32> {
    image.pixels().map(|p| p.0[0] as f32 / 255.0).collect()
}

fn normalize(v: &mut [f32], how: Normalize) {
    match how {
        Normalize::PerImage => {
            let n = v.len() as f64;
            let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
            let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
            // A flat image has no variance: leave it at zero rather than divide by zero.
            let inv = if var > 1e-12 { 1.0 / var.sqrt() } else { 0.0 };
            v.iter_mut()
                .for_each(|x| *x = ((*x as f64 - mean) * inv) as f32);
        }
        Normalize::Dataset { mean, std } => {
            v.iter_mut().for_each(|x| *x = (*x - mean) / std.max(1e-6));
        }
        Normalize::UnitRange => {}
    }
}

/// Histogram equalization: each gray level to its cumulative share of the pixels.
pub fn equalize(image: &GrayImage) -> GrayImage {
    let mut hist = [0u64; 256];
    image.pixels().for_each(|p| hist[p.0[0] as usize] += 1);
    let total = image.width() as u64 * image.height() as u64;
    let first = hist.iter().find(|&&c| c > 0).copied().unwrap_or(0);
    let mut lut = [0u8; 256];
    let mut cum = 0u64;
    for (level, &count) in hist.iter().enumerate() {
        cum += count;
        lut[level] = if total == first {
            level as u8 // a single gray level: nothing to spread
        } else {
            ((cum.saturating_sub(first) as f64 / (total - first) as f64) * 255.0).round() as u8
        };
    }
    let mut out = image.clone();
    out.pixels_mut().for_each(|p| p.0[0] = lut[p.0[0] as usize]);
    out
}

/// Turns a loaded set into model inputs for `task`: samples of classes outside the task are
/// left out; with [`Normalize::Dataset`] the statistics must already be set (see
/// [`dataset_stats`]). No cache; see [`build_dataset_cached`].
pub fn build_dataset(raw: &RawSet, task: &Task, pre: &Preprocess) -> Result<Dataset> {
    Ok(build_dataset_cached(raw, task, pre, None)?.0)
}

/// What building a data set found, beside the data: the face-mode counts (None without face
/// mode) and whether the crops came from the cache.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildReport {
    pub faces: Option<FaceSummary>,
    pub cache: CacheStatus,
}

/// [`build_dataset`], keeping face-mode crops in `cache_dir` (when given) so a second build of
/// the same images with the same settings detects nothing. Images without a face are kept
/// (with the fallback crop), warned about and counted in the report.
pub fn build_dataset_cached(
    raw: &RawSet,
    task: &Task,
    pre: &Preprocess,
    cache_dir: Option<&std::path::Path>,
) -> Result<(Dataset, BuildReport)> {
    task.check_sources(&raw.class_names)?;
    let [h, w] = pre.size;
    let mut report = BuildReport {
        faces: None,
        cache: CacheStatus::Off,
    };
    // Face mode prepares every sample of the set (cached as a whole), other modes only those
    // the task keeps: cropping is cheap.
    let prepared: Vec<Option<Prepared>> = if let Some(face) = &pre.face {
        let (all, status) = cache::prepare_all(raw, pre, cache_dir)?;
        report.cache = status;
        let mut summary = FaceSummary::default();
        let mut warned = 0;
        for (s, p) in raw.samples.iter().zip(&all) {
            let r = p.face.as_ref().expect("face mode reports every image");
            summary.add(r, face.align);
            if let Some(why) = &r.fallback {
                warned += 1;
                if warned <= 10 {
                    log::warn!("{}: {why}; using the fallback crop", s.source);
                }
            }
        }
        if warned > 10 {
            log::warn!("... and {} more images without a face", warned - 10);
        }
        report.faces = Some(summary);
        all.into_iter().map(Some).collect()
    } else {
        raw.samples
            .iter()
            .map(|s| {
                task.class_of(&s.class)
                    .map(|_| pre.prepare(&s.image))
                    .transpose()
                    .map_err(|e| shape_err("preprocess", format!("{}: {e}", s.source)))
            })
            .collect::<Result<_>>()?
    };
    let mut images = Vec::new();
    let (mut labels, mut subjects, mut sources, mut usage) = (vec![], vec![], vec![], vec![]);
    for (s, p) in raw.samples.iter().zip(prepared) {
        let (Some(label), Some(p)) = (task.class_of(&s.class), p) else {
            continue;
        };
        images.extend(pre.normalized(&p.image));
        labels.push(label);
        subjects.push(s.subject.clone().unwrap_or_default());
        sources.push(s.source.clone());
        usage.push(s.usage.clone().unwrap_or_default());
    }
    let mut data = Dataset::new(
        images,
        labels,
        [1, h as usize, w as usize],
        task.class_names(),
    )?;
    data.subjects = subjects;
    data.sources = sources;
    data.usage = usage;
    Ok((data, report))
}

/// Mean and standard deviation of the [0, 1] pixel values of `indices` (a training set), for
/// [`Normalize::Dataset`].
pub fn dataset_stats(raw: &RawSet, indices: &[usize], pre: &Preprocess) -> Result<(f32, f32)> {
    let (mut sum, mut sumsq, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for &i in indices {
        for v in pre.to_unit(&raw.samples[i].image)? {
            sum += v as f64;
            sumsq += (v as f64).powi(2);
            n += 1.0;
        }
    }
    let mean = sum / n.max(1.0);
    Ok((
        mean as f32,
        (sumsq / n.max(1.0) - mean * mean).max(0.0).sqrt() as f32,
    ))
}
