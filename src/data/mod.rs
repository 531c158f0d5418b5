//! Data: loaders for the layouts users have (JAFFE, a folder per class, FER2013), image
//! decoding, preprocessing (a fixed crop, or face detection and eye alignment with a cache),
//! label mappings (tasks), seeded splits, and the built-in synthetic face set. A [`Dataset`]
//! is the end of that road: normalized images with labels, ready to go to the GPU.

pub mod cache;
pub mod decode;
pub mod expression;
pub mod face;
pub mod loaders;
pub mod preprocess;
pub mod splits;
pub mod synth;

pub use expression::{Task, EXPRESSIONS};
pub use face::{FaceReport, FaceSettings, FaceSummary};
pub use loaders::{load, Format, LoadOptions, RawSet};
pub use preprocess::{build_dataset, build_dataset_cached, BuildReport, Preprocess};

use crate::error::{shape_err, Result};

/// Images `[len, c, h, w]` (already preprocessed) with labels and class names.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    /// `[c, h, w]` of each image.
    pub shape: [usize; 3],
    pub class_names: Vec<String>,
    /// The person in each image ("" when unknown).
    pub subjects: Vec<String>,
    /// Where each image came from (file name or CSV row), for reports.
    pub sources: Vec<String>,
    /// FER2013's Usage column per image ("" elsewhere).
    pub usage: Vec<String>,
}

impl Dataset {
    /// Checks that images and labels agree and every label names a class.
    pub fn new(
        images: Vec<f32>,
        labels: Vec<u32>,
        shape: [usize; 3],
        class_names: Vec<String>,
    ) -> Result<Self> {
        let sample: usize = shape.iter().product();
        if sample == 0 || images.len() != labels.len() * sample {
            return Err(shape_err(
                "dataset",
                format!(
                    "{} values for {} labels of shape {shape:?}",
                    images.len(),
                    labels.len()
                ),
            ));
        }
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= class_names.len())
        {
            return Err(shape_err(
                "dataset",
                format!(
                    "label {l} of image {i} is outside the {} \
                classes {:?}",
                    class_names.len(),
                    class_names
                ),
            ));
        }
        let n = labels.len();
        Ok(Self {
            images,
            labels,
            shape,
            class_names,
            subjects: vec![String::new(); n],
            sources: (0..n).map(|i| format!("#{i}")).collect(),
            usage: vec![String::new(); n],
        })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image.
    pub fn sample_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Self {
        let s = self.sample_len();
        Self {
            images: indices
                .iter()
                .flat_map(|&i| self.images[i * s..(i + 1) * s].iter().copied())
                .collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            shape: self.shape,
            class_names: self.class_names.clone(),
            subjects: indices.iter().map(|&i| self.subjects[i].clone()).collect(),
            sources: indices.iter().map(|&i| self.sources[i].clone()).collect(),
            usage: indices.iter().map(|&i| self.usage[i].clone()).collect(),
        }
    }

    /// Images per class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }
}
