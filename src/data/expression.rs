//! The seven basic expressions, their JAFFE codes and FER2013 labels, and the tasks (label
//! mappings) built from them.

use crate::error::{shape_err, Result};

/// The seven classes in the order fer-wgpu uses everywhere (class index = position).
pub const EXPRESSIONS: [&str; 7] = [
    "neutral", "happy", "sad", "surprise", "angry", "disgust", "fear",
];

/// JAFFE's two-letter codes, in [`EXPRESSIONS`] order.
pub const JAFFE_CODES: [&str; 7] = ["NE", "HA", "SA", "SU", "AN", "DI", "FE"];

/// FER2013's `emotion` column (0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise,
/// 6 Neutral) to the expression name.
pub const FER2013_LABELS: [&str; 7] = [
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
];

/// The expression of a JAFFE code, if it is one.
pub fn from_jaffe_code(code: &str) -> Option<&'static str> {
    JAFFE_CODES
        .iter()
        .position(|c| *c == code)
        .map(|i| EXPRESSIONS[i])
}

/// Which classes a model learns, and which source classes feed each.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    pub name: String,
    /// (class name, source class names it gathers), in class-index order.
    pub classes: Vec<(String, Vec<String>)>,
}

impl Task {
    /// The seven expressions as they are.
    pub fn seven() -> Self {
        Self {
            name: "seven".into(),
            classes: EXPRESSIONS
                .iter()
                .map(|e| (e.to_string(), vec![e.to_string()]))
                .collect(),
        }
    }

    /// Neutral against the six others, as practitioners often start.
    pub fn neutral_vs_rest() -> Self {
        let rest = EXPRESSIONS[1..].iter().map(|e| e.to_string()).collect();
        Self {
            name: "neutral-vs-rest".into(),
            classes: vec![
                ("neutral".into(), vec!["neutral".into()]),
                ("rest".into(), rest),
            ],
        }
    }

    /// Parses `seven`, `neutral-vs-rest`, a subset (`happy,sad,neutral`) or a grouping
    /// (`positive=happy+surprise,negative=sad+angry+disgust+fear`). Source names are the
    /// data set's class names (the expressions, or a folder layout's folder names).
    pub fn parse(text: &str) -> Result<Self> {
        match text.trim() {
            "seven" | "7" | "" => return Ok(Self::seven()),
            "neutral-vs-rest" => return Ok(Self::neutral_vs_rest()),
            _ => {}
        }
        let mut classes = vec![];
        for part in text.split(',').map(str::trim) {
            let (name, sources) = match part.split_once('=') {
                Some((name, list)) => (
                    name.trim(),
                    list.split('+')
                        .map(|s| s.trim().to_string())
                        .collect::<Vec<_>>(),
                ),
                None => (part, vec![part.to_string()]),
            };
            if name.is_empty() || sources.iter().any(|s| s.is_empty()) {
                return Err(shape_err(
                    "task",
                    format!(
                        "cannot read {text:?}: use seven, \
                    neutral-vs-rest, a list like happy,sad or groups like pos=happy+surprise,\
                    neg=sad+angry"
                    ),
                ));
            }
            classes.push((name.to_string(), sources));
        }
        if classes.len() < 2 {
            return Err(shape_err(
                "task",
                format!("{text:?} names fewer than 2 classes"),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for s in classes.iter().flat_map(|(_, s)| s) {
            if !seen.insert(s.clone()) {
                return Err(shape_err(
                    "task",
                    format!("{s:?} is in two classes of {text:?}"),
                ));
            }
        }
        Ok(Self {
            name: text.to_string(),
            classes,
        })
    }

    /// The class names, in index order.
    pub fn class_names(&self) -> Vec<String> {
        self.classes.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The class index of a source class, or None when the task leaves it out.
    pub fn class_of(&self, source: &str) -> Option<u32> {
        self.classes
            .iter()
            .position(|(_, s)| s.iter().any(|x| x == source))
            .map(|i| i as u32)
    }

    /// Fails when a source class of the task is absent from `available`.
    pub fn check_sources(&self, available: &[String]) -> Result<()> {
        for s in self.classes.iter().flat_map(|(_, s)| s) {
            if !available.contains(s) {
                return Err(shape_err(
                    "task",
                    format!(
                        "class {s:?} is not in the data, whose \
                    classes are {available:?}"
                    ),
                ));
            }
        }
        Ok(())
    }
}
