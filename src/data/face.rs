//! Face mode: find the face with a trained detector, level the eyes, and cut a square crop
//! around it at the model's input size.
//!
//! The steps, for one grayscale image:
//! 1. **Detect.** The SeetaFace frontal detector (the `rustface` crate, a funnel cascade of
//!    boosted LAB and SURF-MLP classifiers; its trained model is embedded at build time by
//!    `build.rs`). Images with a side above [`DETECT_MAX_SIDE`] are shrunk first and the box
//!    is mapped back. When several faces are found the most confident one is used and the
//!    count is reported. Images with a side under [`MIN_SIDE`] cannot hold a face the detector
//!    can see (its smallest window is 20 pixels): they, and images without a face, get the
//!    fallback crop (the fixed crop box, or the whole image) and a reason in the report.
//! 2. **Find the eyes** inside the face box (see [`locate_eyes`]): the box is resampled to a
//!    [`PATCH`]-pixel square, and in each half of its upper part a template search looks for
//!    spots darker than both their left and right neighbours and than one of the boxes above
//!    and below (an iris between the whites of the eye or the skin of the lids). A brow is
//!    dark to its sides and scores low, a dark edge (hair, the face outline) is dark above
//!    and below; nostrils and the mouth lie below the search band. The best few peaks of each
//!    half are paired under limits on distance and roll, preferring pairs whose midpoint sits
//!    where eyes sit in a SeetaFace box; each eye is refined to a fraction of a pixel with a
//!    parabola through the score.
//! 3. **Align.** When both eyes are found with confidence, the crop is rotated about the eye
//!    midpoint so the eyes are level and scaled so their distance is a fixed fraction of the
//!    output width; the eyes then land on the same spot of every crop. Otherwise the crop is
//!    the face box widened by the margin, unrotated, and the report says why.
//!
//! Failure modes of the eye search. Most end in the unrotated face crop, counted: closed or
//! narrowed eyes whose iris hardly shows, dark glasses or glasses frames brighter than the
//! iris, strong shadows across one eye, heads turned more than about 20 degrees (one eye
//! leaves its half of the box) and rolls over about 30 degrees (the detector is frontal and
//! rarely finds such faces anyway). One is not caught: when the head is rolled by 10 degrees
//! or more, the brow above the higher eye can cross the template like an iris and win; the
//! pair passes the limits and the crop is turned wrongly (3 of 70 synthetic faces rolled up to
//! 15 degrees; none of the built-in set, rolled up to 4 degrees; see tests/face.rs).
//! TODO(eye search): score pairs on a patch turned by the first roll estimate, or match an
//! eye template learned from data, to reject those. Low-resolution faces (a box under about
//! 40 pixels) give eyes a couple of pixels wide; their roll estimate is untested.
//!
//! Crops that reach past the image edge are filled by repeating the edge pixels (`padded` in
//! the report). Everything is deterministic: the same image and settings give the same bytes.

use std::cell::RefCell;

use image::imageops::FilterType;
use image::GrayImage;
use serde::{Deserialize, Serialize};

/// The SeetaFace frontal model shipped in the rustface package (see build.rs).
static MODEL_BYTES: &[u8] = include_bytes!(env!("FER_SEETA_MODEL"));

/// Images with a longer side above this are shrunk before detection: the detector's time
/// grows with the pixel count, and faces worth classifying stay well above its 20-pixel
/// window at this size.
pub const DETECT_MAX_SIDE: u32 = 640;
/// The smallest side in which a face can be detected (the detector's window is 20 pixels and
/// a face needs some context around it).
pub const MIN_SIDE: u32 = 24;
/// Side of the square patch the eye search runs on.
pub const PATCH: u32 = 128;

/// Where the eyes sit in a SeetaFace box of a frontal face, as fractions of the box side:
/// their distance and the height of the eye line. Measured over the synthetic set (mean of
/// the found eyes; see tests/face.rs); aligned crops put the eyes there, so an aligned crop
/// frames the face like an unaligned one.
const EYE_DISTANCE_IN_BOX: f32 = 0.42;
const EYE_ROW_IN_BOX: f32 = 0.39;

/// The face-mode recipe; part of [`crate::data::Preprocess`] and so of every checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceSettings {
    /// Added to each side of the detected box, as a fraction of its side, so the crop keeps
    /// the brows, chin and face outline.
    pub margin: f32,
    /// Level the eyes and normalize their distance.
    pub align: bool,
    /// Smallest detector score accepted (typical values are 1 to 5: lower finds more faces
    /// and more false ones). 1.0 found every synthetic face, with no false ones.
    pub min_score: f64,
}

impl Default for FaceSettings {
    fn default() -> Self {
        Self {
            margin: 0.15,
            align: true,
            min_score: 1.0,
        }
    }
}

/// A detected face: left, top, width and height in source pixels, and the detector's score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceBox {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
    pub score: f64,
}

impl FaceBox {
    pub fn centre(&self) -> (f32, f32) {
        (self.left + self.width / 2.0, self.top + self.height / 2.0)
    }
}

/// The two eyes in source pixels (left then right in the image), with the weaker of the two
/// confidences (template contrast over the face's contrast).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Eyes {
    pub left: [f32; 2],
    pub right: [f32; 2],
    pub confidence: f32,
}

impl Eyes {
    /// Angle of the eye line in degrees, positive when the right eye is lower (image y runs
    /// down): the roll that alignment removes.
    pub fn roll_degrees(&self) -> f32 {
        let (dx, dy) = (self.right[0] - self.left[0], self.right[1] - self.left[1]);
        dy.atan2(dx).to_degrees()
    }

    pub fn distance(&self) -> f32 {
        let (dx, dy) = (self.right[0] - self.left[0], self.right[1] - self.left[1]);
        (dx * dx + dy * dy).sqrt()
    }
}

/// The source window a face crop was cut from: its centre and width in source pixels and its
/// turn (the roll removed), so a point of the source can be followed into the crop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CropWindow {
    pub centre: [f32; 2],
    pub width: f32,
    pub angle_degrees: f32,
}

impl CropWindow {
    /// Where source point `p` lands in a crop of `out` = `[height, width]`, in output pixels
    /// (continuous coordinates).
    pub fn to_crop(&self, p: [f32; 2], out: [u32; 2]) -> [f32; 2] {
        let (sin, cos) = self.angle_degrees.to_radians().sin_cos();
        let (dx, dy) = (p[0] - self.centre[0], p[1] - self.centre[1]);
        // The inverse of the turn in `warp`, then source pixels to output pixels.
        let (u, v) = (dx * cos + dy * sin, -dx * sin + dy * cos);
        let per_px = out[1] as f32 / self.width;
        [
            u * per_px + out[1] as f32 / 2.0,
            v * per_px + out[0] as f32 / 2.0,
        ]
    }
}

/// What face mode did with one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceReport {
    /// Faces the detector found (the most confident is used).
    pub faces: usize,
    /// The face used, None when none was found.
    pub face: Option<FaceBox>,
    /// The eyes, when found with confidence; None: the crop is not rotated.
    pub eyes: Option<Eyes>,
    /// Why the eyes were not used (None when aligned, or alignment is off or had no face).
    pub eyes_missing: Option<String>,
    /// The window the face crop was cut from (None for the fallback crop).
    pub crop: Option<CropWindow>,
    /// The crop reached past the image edge and was filled with repeated edge pixels.
    pub padded: bool,
    /// Why the fallback crop was used instead of a face crop (None when a face was used).
    pub fallback: Option<String>,
}

/// Counts over a data set, reported with it: nothing is dropped silently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaceSummary {
    pub images: usize,
    /// Images where a face was found and used.
    pub faces: usize,
    /// Images that got the fallback crop (no face, or too small to search).
    pub fallback: usize,
    /// Images where more than one face was found (the most confident was used).
    pub several: usize,
    /// Face crops left unrotated because the eyes were not found with confidence.
    pub not_aligned: usize,
    /// Crops that reached past the image edge.
    pub padded: usize,
}

impl FaceSummary {
    pub fn add(&mut self, r: &FaceReport, align: bool) {
        self.images += 1;
        self.faces += r.face.is_some() as usize;
        self.fallback += r.fallback.is_some() as usize;
        self.several += (r.faces > 1) as usize;
        self.not_aligned += (align && r.face.is_some() && r.eyes.is_none()) as usize;
        self.padded += r.padded as usize;
    }
}

impl std::fmt::Display for FaceSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "face found in {} of {} images; {} without a face got the fallback crop; {} with \
             several faces (the most confident used); {} face crops not aligned (eyes not \
             found); {} crops padded at the image edge",
            self.faces, self.images, self.fallback, self.several, self.not_aligned, self.padded
        )
    }
}

/// The SeetaFace detector with this project's settings.
pub struct FaceDetector {
    inner: Box<dyn rustface::Detector>,
}

/// Size of the embedded model in bytes: part of the cache key, so a different model misses.
pub fn model_size() -> u64 {
    MODEL_BYTES.len() as u64
}

fn model() -> &'static rustface::Model {
    static MODEL: std::sync::OnceLock<rustface::Model> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| {
        // The bytes are part of the binary; a failure here is a broken build, not bad input.
        rustface::read_model(MODEL_BYTES).expect("the embedded SeetaFace model parses")
    })
}

/// The detector's search grid: (pyramid scale step, window stride in pixels). The coarse grid
/// finds most faces at a quarter of the cost; the fine one is the retry when it finds none.
/// On the synthetic set the coarse grid alone found 200 of 210 faces (28 ms an image), the
/// fine grid all 210 (120 ms an image).
const COARSE: (f32, u32) = (0.8, 4);
const FINE: (f32, u32) = (0.9, 2);

impl FaceDetector {
    pub fn new(min_score: f64) -> Self {
        let mut inner = rustface::create_detector_with_model(model().clone());
        inner.set_score_thresh(min_score.max(1e-3));
        // rustface ignores the smallest face size when building its pyramid (every level down
        // from the full image is searched), so it is left at its least, 20 pixels.
        inner.set_min_face_size(20);
        Self { inner }
    }

    fn run(&mut self, img: &GrayImage, (pyramid, stride): (f32, u32)) -> Vec<rustface::FaceInfo> {
        self.inner.set_pyramid_scale_factor(pyramid);
        self.inner.set_slide_window_step(stride, stride);
        let (w, h) = img.dimensions();
        self.inner
            .detect(&rustface::ImageData::new(img.as_raw(), w, h))
    }

    /// Faces in `image`, most confident first (ties: larger first, then top-left first, so the
    /// order never depends on the detector's internal order). Empty for images under
    /// [`MIN_SIDE`].
    pub fn detect(&mut self, image: &GrayImage) -> Vec<FaceBox> {
        let (w, h) = image.dimensions();
        if w.min(h) < MIN_SIDE {
            return vec![];
        }
        let scale = (DETECT_MAX_SIDE as f32 / w.max(h) as f32).min(1.0);
        let small;
        let img = if scale < 1.0 {
            let (sw, sh) = (
                ((w as f32 * scale).round() as u32).max(1),
                ((h as f32 * scale).round() as u32).max(1),
            );
            small = image::imageops::resize(image, sw, sh, FilterType::Triangle);
            &small
        } else {
            image
        };
        let (iw, ih) = img.dimensions();
        let mut found = self.run(img, COARSE);
        if found.is_empty() {
            found = self.run(img, FINE);
        }
        let (sx, sy) = (w as f32 / iw as f32, h as f32 / ih as f32);
        let mut faces: Vec<FaceBox> = found
            .iter()
            .map(|f| {
                let b = f.bbox();
                FaceBox {
                    left: b.x() as f32 * sx,
                    top: b.y() as f32 * sy,
                    width: b.width() as f32 * sx,
                    height: b.height() as f32 * sy,
                    score: f.score(),
                }
            })
            .collect();
        faces.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(b.width.total_cmp(&a.width))
                .then(a.top.total_cmp(&b.top))
                .then(a.left.total_cmp(&b.left))
        });
        faces
    }
}

thread_local! {
    /// One detector per thread: it keeps scratch buffers between images, and building one
    /// copies the model.
    static DETECTOR: RefCell<Option<(f64, FaceDetector)>> = const { RefCell::new(None) };
}

/// Detects with this thread's detector (made on first use, remade when `min_score` changes).
pub fn detect(image: &GrayImage, min_score: f64) -> Vec<FaceBox> {
    DETECTOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(s, _)| *s != min_score) {
            *slot = Some((min_score, FaceDetector::new(min_score)));
        }
        slot.as_mut().expect("just set").1.detect(image)
    })
}

/// Samples `image` at (x, y) in continuous pixel coordinates (pixel k covers [k, k + 1)),
/// bilinearly, repeating the edge pixels outside.
fn sample(image: &GrayImage, x: f32, y: f32) -> f32 {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let (fx, fy) = (x - 0.5, y - 0.5);
    let (x0, y0) = (fx.floor(), fy.floor());
    let (tx, ty) = (fx - x0, fy - y0);
    let px = |xi: i64, yi: i64| {
        image
            .get_pixel(xi.clamp(0, w - 1) as u32, yi.clamp(0, h - 1) as u32)
            .0[0] as f32
    };
    let (x0, y0) = (x0 as i64, y0 as i64);
    let top = px(x0, y0) * (1.0 - tx) + px(x0 + 1, y0) * tx;
    let bottom = px(x0, y0 + 1) * (1.0 - tx) + px(x0 + 1, y0 + 1) * tx;
    top * (1.0 - ty) + bottom * ty
}

/// A square-pixel window of `image`: centred on `centre`, `width` source pixels wide (the
/// height follows the output's aspect), turned by `angle` radians (the window's x axis runs
/// along (cos, sin) in the image), resampled to `out` = `[height, width]`. Returns the crop
/// and whether it reached past the image edge.
///
/// Sampling is bilinear at up to the source resolution, then a Catmull-Rom resize to the
/// output size, so a large face is filtered over its whole footprint rather than aliased.
pub fn warp(
    image: &GrayImage,
    centre: (f32, f32),
    angle: f32,
    width: f32,
    out: [u32; 2],
) -> (GrayImage, bool) {
    let [oh, ow] = out;
    let height = width * oh as f32 / ow as f32;
    let work_w = (width.round() as u32).clamp(ow, 4 * ow);
    let work_h = ((work_w as f32 * oh as f32 / ow as f32).round() as u32).max(1);
    let (sin, cos) = angle.sin_cos();
    let (iw, ih) = (image.width() as f32, image.height() as f32);
    let mut padded = false;
    let mut work = GrayImage::new(work_w, work_h);
    for (i, j, p) in work.enumerate_pixels_mut() {
        let dx = ((i as f32 + 0.5) / work_w as f32 - 0.5) * width;
        let dy = ((j as f32 + 0.5) / work_h as f32 - 0.5) * height;
        let x = centre.0 + dx * cos - dy * sin;
        let y = centre.1 + dx * sin + dy * cos;
        padded |= x < 0.0 || y < 0.0 || x > iw || y > ih;
        p.0[0] = sample(image, x, y).round().clamp(0.0, 255.0) as u8;
    }
    let crop = if (work_w, work_h) == (ow, oh) {
        work
    } else {
        image::imageops::resize(&work, ow, oh, FilterType::CatmullRom)
    };
    (crop, padded)
}

/// Sums over a rectangle in O(1): the summed-area table of an image.
struct Integral {
    w: usize,
    h: usize,
    sums: Vec<u64>,
}

impl Integral {
    fn new(image: &GrayImage) -> Self {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let mut sums = vec![0u64; (w + 1) * (h + 1)];
        for y in 0..h {
            let mut row = 0u64;
            for x in 0..w {
                row += image.get_pixel(x as u32, y as u32).0[0] as u64;
                sums[(y + 1) * (w + 1) + x + 1] = sums[y * (w + 1) + x + 1] + row;
            }
        }
        Self { w, h, sums }
    }

    /// Mean over columns x0..x1 and rows y0..y1 (half-open), clipped to the image.
    fn mean(&self, x0: i64, y0: i64, x1: i64, y1: i64) -> f32 {
        let cx = |v: i64| v.clamp(0, self.w as i64) as usize;
        let cy = |v: i64| v.clamp(0, self.h as i64) as usize;
        let (x0, x1, y0, y1) = (cx(x0), cx(x1), cy(y0), cy(y1));
        if x1 <= x0 || y1 <= y0 {
            return f32::NAN;
        }
        let at = |x: usize, y: usize| self.sums[y * (self.w + 1) + x];
        let s = at(x1, y1) + at(x0, y0) - at(x0, y1) - at(x1, y0);
        s as f32 / ((x1 - x0) * (y1 - y0)) as f32
    }
}

/// The eye template's score at (x, y) of the patch: how much darker a (2r+1)-square there is
/// than the darker of the two boxes 2r wide beside it, and than the brighter of the two
/// boxes 2r high above and below it. An iris has the whites of the eye or the lids on both
/// sides and skin above or below; a brow is dark beside its centre, and a dark edge (hair
/// against the cheek, the face outline) is dark above and below.
fn eye_score(ii: &Integral, x: i64, y: i64, r: i64) -> f32 {
    let centre = ii.mean(x - r, y - r, x + r + 1, y + r + 1);
    let left = ii.mean(x - 3 * r, y - r, x - r, y + r + 1);
    let right = ii.mean(x + r + 1, y - r, x + 3 * r + 1, y + r + 1);
    let above = ii.mean(x - r, y - 3 * r, x + r + 1, y - r);
    let below = ii.mean(x - r, y + r + 1, x + r + 1, y + 3 * r + 1);
    left.min(right).min(above.max(below)) - centre
}

/// The eye search's tuning, as fractions of the patch side.
const IRIS_RADIUS: f32 = 0.03;
const BAND_TOP: f32 = 0.15;
const BAND_BOTTOM: f32 = 0.62;
const SIDE_INNER: f32 = 0.08;
const SIDE_OUTER: f32 = 0.36;
/// Smallest template contrast accepted, over the patch's standard deviation.
const MIN_CONFIDENCE: f32 = 0.35;

/// Candidate eyes kept per half of the face box.
const CANDIDATES: usize = 5;
/// Plausible eye pairs: distance as a fraction of the box side, and the largest roll.
const EYE_DISTANCE_RANGE: std::ops::RangeInclusive<f32> = 0.25..=0.65;
const MAX_ROLL_DEGREES: f32 = 30.0;
/// Cost of a pair's midpoint straying from its usual place, per box side: a tenth of the box
/// off costs as much as one eye's worth of template contrast.
const MIDPOINT_WEIGHT: f32 = 10.0;

/// A peak of the eye score: (score, x, y) in the patch.
type Peak = (f32, i64, i64);

/// The strongest local peaks of the eye score over columns x0..x1 and rows y0..y1, best
/// first, at least `r` apart.
fn peaks(ii: &Integral, (x0, x1): (i64, i64), (y0, y1): (i64, i64), r: i64) -> Vec<Peak> {
    let (w, h) = ((x1 - x0) as usize, (y1 - y0) as usize);
    let scores: Vec<f32> = (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .map(|(x, y)| eye_score(ii, x, y, r))
        .collect();
    let at = |x: usize, y: usize| scores[y * w + x];
    let mut found = vec![];
    for y in 1..h.saturating_sub(1) {
        for x in 1..w.saturating_sub(1) {
            let s = at(x, y);
            // A peak is at least its 8 neighbours; on a plateau the first (top-left) counts.
            let is_peak = (-1i64..=1).all(|dy| {
                (-1i64..=1).all(|dx| {
                    let v = at((x as i64 + dx) as usize, (y as i64 + dy) as usize);
                    (dx, dy) == (0, 0) || v < s || (v == s && (dy, dx) > (0, 0))
                })
            });
            if is_peak && s.is_finite() {
                found.push((s, x as i64 + x0, y as i64 + y0));
            }
        }
    }
    // Best first; equal scores in scan order, so the choice never varies.
    found.sort_by(|a, b| b.0.total_cmp(&a.0).then((a.2, a.1).cmp(&(b.2, b.1))));
    let mut kept: Vec<Peak> = vec![];
    for p in found {
        if kept
            .iter()
            .all(|k| (k.1 - p.1).abs() > r || (k.2 - p.2).abs() > r)
        {
            kept.push(p);
            if kept.len() == CANDIDATES {
                break;
            }
        }
    }
    kept
}

/// Finds the eyes of the face in `face` (see the module doc), or says why not.
pub fn locate_eyes(image: &GrayImage, face: &FaceBox) -> Result<Eyes, String> {
    let side = face.width.max(face.height);
    let (patch, _) = warp(image, face.centre(), 0.0, side, [PATCH, PATCH]);
    let ii = Integral::new(&patch);
    let n = PATCH as f32;
    let mean = ii.mean(0, 0, PATCH as i64, PATCH as i64);
    let var = patch
        .pixels()
        .map(|p| (p.0[0] as f32 - mean).powi(2))
        .sum::<f32>()
        / (n * n);
    let contrast = var.sqrt().max(1.0);
    let r = ((IRIS_RADIUS * n).round() as i64).max(1);
    let rows = ((BAND_TOP * n) as i64, (BAND_BOTTOM * n) as i64);
    let cols = |a: f32, b: f32| ((a * n) as i64, (b * n) as i64);
    let left = peaks(&ii, cols(0.5 - SIDE_OUTER, 0.5 - SIDE_INNER), rows, r);
    let right = peaks(&ii, cols(0.5 + SIDE_INNER, 0.5 + SIDE_OUTER), rows, r);
    let strong = |c: &[Peak]| -> Vec<Peak> {
        c.iter()
            .copied()
            .filter(|p| p.0 / contrast >= MIN_CONFIDENCE)
            .collect()
    };
    let (left, right) = (strong(&left), strong(&right));
    for (which, c) in [("left", &left), ("right", &right)] {
        if c.is_empty() {
            return Err(format!(
                "no clear {which} eye (no dark spot with template contrast {MIN_CONFIDENCE} \
                 of the face's)"
            ));
        }
    }
    let mut best: Option<(f32, Peak, Peak)> = None;
    for &a in &left {
        for &b in &right {
            let (dx, dy) = ((b.1 - a.1) as f32, (b.2 - a.2) as f32);
            let dist = (dx * dx + dy * dy).sqrt() / n;
            let roll = dy.atan2(dx).to_degrees();
            // Rolling the head turns the eyes about the face centre, so their midpoint stays
            // near its usual place in the box whatever the roll; a pair with a brow end or
            // hair in it does not.
            let mid = (
                (a.1 + b.1) as f32 / 2.0 / n - 0.5,
                (a.2 + b.2) as f32 / 2.0 / n - EYE_ROW_IN_BOX,
            );
            let score = (a.0 + b.0) / contrast - MIDPOINT_WEIGHT * (mid.0.abs() + mid.1.abs());
            if EYE_DISTANCE_RANGE.contains(&dist)
                && roll.abs() <= MAX_ROLL_DEGREES
                && best.is_none_or(|(s, _, _)| score > s)
            {
                best = Some((score, a, b));
            }
        }
    }
    let Some((_, a, b)) = best else {
        return Err(format!(
            "no plausible pair among {} and {} candidate eyes (distance {:.2} to {:.2} of the \
             face box, roll within {MAX_ROLL_DEGREES} degrees)",
            left.len(),
            right.len(),
            EYE_DISTANCE_RANGE.start(),
            EYE_DISTANCE_RANGE.end()
        ));
    };
    let (cx, cy) = face.centre();
    let refine = |(s, x, y): Peak| -> [f32; 2] {
        // A parabola through the peak and its neighbours places it between pixels.
        let offset = |lo: f32, hi: f32| {
            let curve = lo - 2.0 * s + hi;
            if curve < 0.0 {
                (0.5 * (lo - hi) / curve).clamp(-0.5, 0.5)
            } else {
                0.0
            }
        };
        let dx = offset(eye_score(&ii, x - 1, y, r), eye_score(&ii, x + 1, y, r));
        let dy = offset(eye_score(&ii, x, y - 1, r), eye_score(&ii, x, y + 1, r));
        // Patch pixel centres are at i + 0.5; the patch spans `side` source pixels.
        let to_src = |p: f32, c: f32| c + ((p + 0.5) / n - 0.5) * side;
        [to_src(x as f32 + dx, cx), to_src(y as f32 + dy, cy)]
    };
    Ok(Eyes {
        left: refine(a),
        right: refine(b),
        confidence: a.0.min(b.0) / contrast,
    })
}

/// The face-mode crop of `image` at `out` = `[height, width]`, with what was done. No crop
/// when no face was found: the report's `fallback` says why, and the caller applies its
/// fallback crop.
pub fn face_crop(
    image: &GrayImage,
    settings: &FaceSettings,
    out: [u32; 2],
) -> (Option<GrayImage>, FaceReport) {
    let (w, h) = image.dimensions();
    let faces = detect(image, settings.min_score);
    let mut report = FaceReport {
        faces: faces.len(),
        face: faces.first().copied(),
        eyes: None,
        eyes_missing: None,
        crop: None,
        padded: false,
        fallback: None,
    };
    let Some(face) = report.face else {
        report.fallback = Some(if w.min(h) < MIN_SIDE {
            format!("{w}x{h} is too small to search for a face (needs {MIN_SIDE} pixels a side)")
        } else {
            "no face found".to_string()
        });
        return (None, report);
    };
    let side = face.width.max(face.height);
    let crop_side = side * (1.0 + 2.0 * settings.margin);
    if settings.align {
        match locate_eyes(image, &face) {
            Ok(eyes) => {
                // The eyes go where they sit in an unaligned crop of a typical face: at the
                // same distance and height, centred.
                let eye_dist = EYE_DISTANCE_IN_BOX / (1.0 + 2.0 * settings.margin);
                let eye_row = (EYE_ROW_IN_BOX + settings.margin) / (1.0 + 2.0 * settings.margin);
                let width = eyes.distance() / eye_dist;
                let height = width * out[0] as f32 / out[1] as f32;
                let angle = eyes.roll_degrees().to_radians();
                let mid = (
                    (eyes.left[0] + eyes.right[0]) / 2.0,
                    (eyes.left[1] + eyes.right[1]) / 2.0,
                );
                // The crop centre lies (0.5 - eye_row) of its height below the eye midpoint,
                // along the rotated vertical.
                let down = (0.5 - eye_row) * height;
                let (sin, cos) = angle.sin_cos();
                let centre = (mid.0 - down * sin, mid.1 + down * cos);
                let (crop, padded) = warp(image, centre, angle, width, out);
                report.eyes = Some(eyes);
                report.padded = padded;
                report.crop = Some(CropWindow {
                    centre: [centre.0, centre.1],
                    width,
                    angle_degrees: angle.to_degrees(),
                });
                return (Some(crop), report);
            }
            Err(why) => report.eyes_missing = Some(why),
        }
    }
    let (crop, padded) = warp(image, face.centre(), 0.0, crop_side, out);
    report.padded = padded;
    let (cx, cy) = face.centre();
    report.crop = Some(CropWindow {
        centre: [cx, cy],
        width: crop_side,
        angle_degrees: 0.0,
    });
    (Some(crop), report)
}
