//! Loaders for the layouts users have: JAFFE's flat folder, a folder per class, and the
//! FER2013 CSV. Each gives a [`RawSet`] of decoded grayscale images with their class name and,
//! where known, their subject. The data on disk is only ever read.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use image::GrayImage;
use regex::Regex;

use crate::data::decode::read_gray;
use crate::data::expression::{from_jaffe_code, EXPRESSIONS, FER2013_LABELS, JAFFE_CODES};
use crate::error::{Error, Result};

/// One decoded image.
#[derive(Debug, Clone)]
pub struct RawSample {
    pub image: GrayImage,
    /// The source class name (an expression, or a folder name).
    pub class: String,
    /// The person shown, when the layout tells it.
    pub subject: Option<String>,
    /// Where it came from (a file name, or `file.csv:row`).
    pub source: String,
    /// FER2013's Usage column (Training, PublicTest, PrivateTest).
    pub usage: Option<String>,
}

/// A loaded data set, before preprocessing.
#[derive(Debug, Clone, Default)]
pub struct RawSet {
    pub samples: Vec<RawSample>,
    /// The source classes present, in a fixed order.
    pub class_names: Vec<String>,
    /// Files skipped as unreadable (with `skip_unreadable`), with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Which layout a path holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Jaffe,
    Folder,
    Fer2013,
}

/// Options shared by the loaders.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Skip files that cannot be decoded (they are listed in [`RawSet::skipped`]) instead of
    /// failing on the first.
    pub skip_unreadable: bool,
    /// For the folder layout: a regular expression whose first capture group, matched
    /// against each file name, is the subject (e.g. `^([a-z]+)_`).
    pub subject_pattern: Option<String>,
}

fn data_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Data {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

const IMAGE_EXTENSIONS: &[&str] = &["tiff", "tif", "png", "jpg", "jpeg", "bmp", "pgm", "pnm"];

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The visible entries of a folder, sorted by name so every load sees one order.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        data_err(
            dir,
            format!(
                "cannot read the \
        folder: {e}"
            ),
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    paths.sort();
    Ok(paths)
}

/// Guesses the layout: a `.csv` file is FER2013, a folder of class folders is the folder
/// layout, a folder of JAFFE-named files is JAFFE.
pub fn detect(path: &Path) -> Result<Format> {
    if path.is_file() {
        return match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Ok(Format::Fer2013),
            _ => Err(data_err(
                path,
                "a data file must be a FER2013 .csv; for images give the \
                folder that holds them",
            )),
        };
    }
    if !path.is_dir() {
        return Err(data_err(
            path,
            "no such file or folder; give the data set's folder or \
            FER2013 .csv, or leave it out to use the built-in synthetic set",
        ));
    }
    let entries = sorted_entries(path)?;
    if entries.iter().any(|p| p.is_dir()) {
        return Ok(Format::Folder);
    }
    if entries.iter().any(|p| is_image(p)) {
        return Ok(Format::Jaffe);
    }
    Err(data_err(
        path,
        "the folder holds no images and no class folders",
    ))
}

/// Loads `path` in `format` (detected when None).
pub fn load(path: &Path, format: Option<Format>, options: &LoadOptions) -> Result<RawSet> {
    let set = match format.map_or_else(|| detect(path), Ok)? {
        Format::Jaffe => load_jaffe(path, options)?,
        Format::Folder => load_folder(path, options)?,
        Format::Fer2013 => load_fer2013(path)?,
    };
    if set.samples.is_empty() {
        return Err(data_err(path, "no images could be loaded"));
    }
    for (file, why) in &set.skipped {
        log::warn!("skipped {file}: {why}");
    }
    Ok(set)
}

/// Decodes one file, or records it as skipped when allowed.
fn decode_or_skip(
    path: &Path,
    options: &LoadOptions,
    set: &mut RawSet,
) -> Result<Option<GrayImage>> {
    match read_gray(path) {
        Ok(image) => Ok(Some(image)),
        Err(e) if options.skip_unreadable => {
            set.skipped
                .push((path.display().to_string(), e.to_string()));
            Ok(None)
        }
        Err(Error::Data { path, msg }) => Err(Error::Data {
            path,
            msg: format!("{msg}; fix or remove the file, or pass --skip-unreadable"),
        }),
        Err(e) => Err(e),
    }
}

/// JAFFE: a flat folder of `KA.AN1.39.tiff` (subject, expression code and pose number,
/// image number).
pub fn load_jaffe(dir: &Path, options: &LoadOptions) -> Result<RawSet> {
    let name_re = Regex::new(r"^([A-Za-z]{2})\.([A-Za-z]{2})(\d*)\.(\d+)\.[A-Za-z]+$")
        .expect("a valid pattern");
    let mut set = RawSet {
        class_names: EXPRESSIONS.iter().map(|s| s.to_string()).collect(),
        ..RawSet::default()
    };
    // Every name is checked before any file is decoded: a wrong folder fails at once.
    let mut named = vec![];
    for path in sorted_entries(dir)?.into_iter().filter(|p| is_image(p)) {
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let Some(caps) = name_re.captures(&file) else {
            // Another image in the folder (a contact sheet, a stray photo) is reported, not
            // read; a folder with no JAFFE names at all is an error below.
            set.skipped.push((
                path.display().to_string(),
                "not a JAFFE file name (expected like KA.AN1.39.tiff: subject, expression \
                 code with pose number, image number)"
                    .into(),
            ));
            continue;
        };
        let code = caps[2].to_ascii_uppercase();
        let Some(class) = from_jaffe_code(&code) else {
            return Err(data_err(
                &path,
                format!(
                    "unknown expression code {code:?}; JAFFE codes \
                are {JAFFE_CODES:?}"
                ),
            ));
        };
        named.push((
            path.clone(),
            file.clone(),
            class,
            caps[1].to_ascii_uppercase(),
        ));
    }
    for (path, file, class, subject) in named {
        if let Some(image) = decode_or_skip(&path, options, &mut set)? {
            set.samples.push(RawSample {
                image,
                class: class.to_string(),
                subject: Some(subject),
                source: file,
                usage: None,
            });
        }
    }
    if set.samples.is_empty() {
        return Err(data_err(
            dir,
            "no images named like JAFFE's (KA.AN1.39.tiff) could be read \
            in this folder; use the folder layout (root/<class>/<image>) for other names",
        ));
    }
    Ok(set)
}

/// The folder layout: `root/<class name>/<image>`, classes in name order.
pub fn load_folder(root: &Path, options: &LoadOptions) -> Result<RawSet> {
    let subject_re = options
        .subject_pattern
        .as_deref()
        .map(|p| Regex::new(p).map_err(|e| data_err(root, format!("subject pattern {p:?}: {e}"))))
        .transpose()?;
    if subject_re.as_ref().is_some_and(|r| r.captures_len() < 2) {
        return Err(data_err(
            root,
            "the subject pattern needs a capture group, like ^([a-z]+)_",
        ));
    }
    let mut set = RawSet::default();
    for class_dir in sorted_entries(root)?.into_iter().filter(|p| p.is_dir()) {
        let class = class_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let images: Vec<PathBuf> = sorted_entries(&class_dir)?
            .into_iter()
            .filter(|p| is_image(p))
            .collect();
        if images.is_empty() {
            return Err(data_err(
                &class_dir,
                "this class folder holds no images (png, jpg, bmp, \
                tiff, pgm); remove it or add images",
            ));
        }
        set.class_names.push(class.clone());
        for path in images {
            let file = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let subject = match &subject_re {
                Some(re) => match re.captures(&file) {
                    Some(c) => Some(c[1].to_string()),
                    None => {
                        return Err(data_err(
                            &path,
                            format!(
                                "the subject pattern {:?} does not \
                        match this file name",
                                re.as_str()
                            ),
                        ))
                    }
                },
                None => None,
            };
            if let Some(image) = decode_or_skip(&path, options, &mut set)? {
                set.samples.push(RawSample {
                    image,
                    class: class.clone(),
                    subject,
                    source: format!("{class}/{file}"),
                    usage: None,
                });
            }
        }
    }
    if set.class_names.is_empty() {
        return Err(data_err(
            root,
            "no class folders here; the layout is root/<class>/<image>",
        ));
    }
    Ok(set)
}

/// FER2013: `emotion,pixels,Usage` with 48x48 = 2304 space-separated pixel values per row.
pub fn load_fer2013(path: &Path) -> Result<RawSet> {
    const SIDE: u32 = 48;
    let file =
        std::fs::File::open(path).map_err(|e| data_err(path, format!("cannot open: {e}")))?;
    let mut lines = std::io::BufReader::with_capacity(1 << 20, file).lines();
    let header = lines
        .next()
        .transpose()
        .map_err(|e| data_err(path, e.to_string()))?
        .ok_or_else(|| data_err(path, "the file is empty"))?;
    let columns: Vec<&str> = header.trim().split(',').map(str::trim).collect();
    if columns.len() < 2 || columns[0] != "emotion" || columns[1] != "pixels" {
        return Err(data_err(
            path,
            format!(
                "header {header:?} is not FER2013's \
            emotion,pixels,Usage"
            ),
        ));
    }
    let mut set = RawSet {
        class_names: EXPRESSIONS.iter().map(|s| s.to_string()).collect(),
        ..RawSet::default()
    };
    for (i, line) in lines.enumerate() {
        let row = i + 2; // 1-based, after the header
        let line = line.map_err(|e| data_err(path, format!("row {row}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let at = |msg: String| data_err(path, format!("row {row}: {msg}"));
        let mut fields = line.splitn(3, ',');
        let emotion = fields.next().unwrap_or_default().trim();
        let pixels = fields
            .next()
            .ok_or_else(|| at("no pixels column".into()))?
            .trim()
            .trim_matches('"');
        let usage = fields.next().map(|u| u.trim().to_string());
        let label: usize = emotion
            .parse()
            .ok()
            .filter(|&l| l < 7)
            .ok_or_else(|| at(format!("emotion {emotion:?} is not a label 0 to 6")))?;
        let mut values = Vec::with_capacity((SIDE * SIDE) as usize);
        for v in pixels.split_ascii_whitespace() {
            values.push(
                v.parse::<u8>()
                    .map_err(|_| at(format!("pixel {v:?} is not 0 to 255")))?,
            );
        }
        if values.len() != (SIDE * SIDE) as usize {
            return Err(at(format!(
                "{} pixels, expected 48x48 = 2304",
                values.len()
            )));
        }
        set.samples.push(RawSample {
            image: GrayImage::from_raw(SIDE, SIDE, values).expect("2304 pixels"),
            class: FER2013_LABELS[label].to_string(),
            subject: None,
            source: format!("{}:{row}", path.display()),
            usage,
        });
    }
    Ok(set)
}
