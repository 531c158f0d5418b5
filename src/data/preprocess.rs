//! From a decoded grayscale image to the model's input: optional crop, resize, optional
//! histogram equalization, normalization. The settings are stored in checkpoints, so
//! prediction repeats them exactly.

use image::imageops::FilterType;
use image::GrayImage;
use serde::{Deserialize, Serialize};

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
}

impl Preprocess {
    /// Resize to `size` and normalize per image: the default.
    pub fn new(size: [u32; 2]) -> Self {
        Self {
            size,
            crop: None,
            equalize: false,
            normalize: Normalize::PerImage,
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

    /// Crops, resizes (Catmull-Rom, which filters over the source footprint when shrinking)
    /// and equalizes, giving values in [0, 1] before normalization.
    pub fn to_unit(&self, image: &GrayImage) -> Result<Vec<f32>> {
        let cropped;
        let mut img = image;
        if let Some((l, t, w, h)) = self.crop_box(image.width(), image.height())? {
            cropped = image::imageops::crop_imm(image, l, t, w, h).to_image();
            img = &cropped;
        }
        let [oh, ow] = self.size;
        let resized = if img.dimensions() == (ow, oh) {
            img.clone()
        } else {
            image::imageops::resize(img, ow, oh, FilterType::CatmullRom)
        };
        let resized = if self.equalize {
            equalize(&resized)
        } else {
            resized
        };
        Ok(resized.pixels().map(|p| p.0[0] as f32 / 255.0).collect())
    }

    /// The model input for one image, `[1, h, w]` flattened.
    pub fn apply(&self, image: &GrayImage) -> Result<Vec<f32>> {
        let mut v = self.to_unit(image)?;
        normalize(&mut v, self.normalize);
        Ok(v)
    }
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
/// [`dataset_stats`]).
pub fn build_dataset(raw: &RawSet, task: &Task, pre: &Preprocess) -> Result<Dataset> {
    task.check_sources(&raw.class_names)?;
    let [h, w] = pre.size;
    let mut images = Vec::new();
    let (mut labels, mut subjects, mut sources, mut usage) = (vec![], vec![], vec![], vec![]);
    for s in &raw.samples {
        let Some(label) = task.class_of(&s.class) else {
            continue;
        };
        images.extend(
            pre.apply(&s.image)
                .map_err(|e| shape_err("preprocess", format!("{}: {e}", s.source)))?,
        );
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
    Ok(data)
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
