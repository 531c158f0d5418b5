//! The built-in synthetic face set: a JAFFE-like set made from a seed, so the main job runs
//! on a fresh machine with no data and tests have faces to load.
//!
//! Ten synthetic people show the seven expressions, three images each (210 images, 256x256,
//! 8-bit grayscale TIFF named like JAFFE's `XA.HA1.12.tiff`). Faces are drawn from shapes
//! (face oval, hair, eyes, brows, nose, mouth) whose parameters carry the identity, and the
//! expression moves them as the facial action units of FACS do (see shared notes): brows
//! raised, lowered or drawn together, lids widened or tightened, cheeks raised, lip corners
//! pulled up, down or sideways, lips pressed, jaw dropped, nose wrinkled.
//!
//! It is not meant to be easy: identity (face shape, eye spacing, brows, hair, skin tone)
//! varies more than expression; fear and surprise, anger and disgust, sadness and neutral
//! share movements; each image has its own intensity, lighting gradient, small rotation,
//! scale and shift, background and noise. `difficulty` in [0, 1] scales the nuisances up and
//! the intensities down.

use std::path::Path;

use image::GrayImage;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::expression::{EXPRESSIONS, JAFFE_CODES};
use crate::error::{Error, Result};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthOptions {
    pub seed: u64,
    pub people: usize,
    /// Images per person and expression.
    pub per_expression: usize,
    /// Side of the square images in pixels.
    pub size: u32,
    /// 0 (clean, full intensity) to 1 (subtle expressions, strong nuisances).
    pub difficulty: f32,
    /// The largest head roll in degrees; None: set by the difficulty (2 to 7 degrees). The
    /// random draws are the same either way, so only the angles change.
    pub max_roll_degrees: Option<f32>,
}

impl Default for SynthOptions {
    fn default() -> Self {
        Self {
            seed: 2024,
            people: 10,
            per_expression: 3,
            size: 256,
            difficulty: 0.5,
            max_roll_degrees: None,
        }
    }
}

/// The identity of one synthetic person.
#[derive(Debug, Clone)]
struct Person {
    code: String,
    face_w: f32,
    face_h: f32,
    skin: f32,
    hair: f32,
    hairline: f32,
    eye_dx: f32,
    eye_y: f32,
    eye_w: f32,
    eye_h: f32,
    brow_gap: f32,
    brow_thick: f32,
    brow_dark: f32,
    nose_len: f32,
    mouth_y: f32,
    mouth_w: f32,
    lip: f32,
}

fn person(rng: &mut ChaCha8Rng, index: usize) -> Person {
    let mut u = |lo: f32, hi: f32| rng.random_range(lo..hi);
    Person {
        code: format!("X{}", (b'A' + (index % 26) as u8) as char),
        face_w: u(0.50, 0.64),
        face_h: u(0.66, 0.80),
        skin: u(0.50, 0.85),
        hair: u(0.04, 0.40),
        hairline: u(-0.62, -0.42),
        eye_dx: u(0.19, 0.28),
        eye_y: u(-0.14, -0.02),
        eye_w: u(0.075, 0.11),
        eye_h: u(0.032, 0.05),
        brow_gap: u(0.08, 0.13),
        brow_thick: u(0.018, 0.04),
        brow_dark: u(0.08, 0.35),
        nose_len: u(0.14, 0.22),
        mouth_y: u(0.30, 0.42),
        mouth_w: u(0.13, 0.21),
        lip: u(0.018, 0.032),
    }
}

/// Action-unit strengths of an expression (0 to 1 each), the prototypes of EMFACS.
#[derive(Debug, Clone, Copy, Default)]
struct Aus {
    inner_brow_raise: f32, // AU1
    outer_brow_raise: f32, // AU2
    brow_lower: f32,       // AU4
    upper_lid_raise: f32,  // AU5
    cheek_raise: f32,      // AU6
    lid_tighten: f32,      // AU7
    nose_wrinkle: f32,     // AU9
    upper_lip_raise: f32,  // AU10 / AU16
    lip_corner_up: f32,    // AU12
    lip_corner_down: f32,  // AU15
    lip_stretch: f32,      // AU20
    lip_press: f32,        // AU23
    jaw_drop: f32,         // AU26
}

fn action_units(expression: &str) -> Aus {
    let a = Aus::default();
    match expression {
        "happy" => Aus {
            cheek_raise: 1.0,
            lip_corner_up: 1.0,
            ..a
        },
        "sad" => Aus {
            inner_brow_raise: 1.0,
            brow_lower: 0.5,
            lip_corner_down: 1.0,
            ..a
        },
        "surprise" => Aus {
            inner_brow_raise: 1.0,
            outer_brow_raise: 1.0,
            upper_lid_raise: 1.0,
            jaw_drop: 1.0,
            ..a
        },
        "fear" => Aus {
            inner_brow_raise: 0.9,
            outer_brow_raise: 0.6,
            brow_lower: 0.7,
            upper_lid_raise: 0.8,
            lid_tighten: 0.4,
            lip_stretch: 1.0,
            jaw_drop: 0.6,
            ..a
        },
        "angry" => Aus {
            brow_lower: 1.0,
            upper_lid_raise: 0.3,
            lid_tighten: 1.0,
            lip_press: 1.0,
            ..a
        },
        "disgust" => Aus {
            brow_lower: 0.4,
            nose_wrinkle: 1.0,
            upper_lip_raise: 1.0,
            lip_corner_down: 0.7,
            ..a
        },
        _ => a,
    }
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Coverage of a shape whose signed distance is `d` (negative inside), anti-aliased over
/// about `px` (one pixel in face units).
fn inside(d: f32, px: f32) -> f32 {
    1.0 - smoothstep(-px, px, d)
}

fn mix(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

/// Distance from (x, y) to the segment (ax, ay)-(bx, by).
fn segment_dist(x: f32, y: f32, (ax, ay): (f32, f32), (bx, by): (f32, f32)) -> f32 {
    let (dx, dy) = (bx - ax, by - ay);
    let t = (((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
    ((x - ax - t * dx).powi(2) + (y - ay - t * dy).powi(2)).sqrt()
}

/// Per-image nuisances.
struct Shot {
    angle: f32,
    scale: f32,
    shift: (f32, f32),
    light: (f32, f32),
    background: f32,
    noise: f32,
    intensity: f32,
}

/// The gray level of face coordinates (x, y) in [-1, 1]^2.
fn shade(p: &Person, a: &Aus, s: f32, x: f32, y: f32, px: f32) -> f32 {
    let au = |v: f32| v * s;
    // Face oval and hair.
    let face_d = ((x / p.face_w).powi(2) + ((y - 0.05) / p.face_h).powi(2)).sqrt() - 1.0;
    let head_d =
        ((x / (p.face_w * 1.12)).powi(2) + ((y + 0.02) / (p.face_h * 1.1)).powi(2)).sqrt() - 1.0;
    let mut v = f32::NAN;
    let hair_cov = inside(head_d, px * 1.5)
        * (1.0
            - smoothstep(p.hairline - 0.03, p.hairline + 0.03, y).max(
                inside(face_d, px * 1.5) * smoothstep(p.hairline - 0.05, p.hairline + 0.05, y),
            ));
    let face_cov = inside(face_d, px * 1.5);
    let skin = p.skin * (0.9 + 0.1 * (1.0 - face_d.abs()).clamp(0.0, 1.0));
    v = if v.is_nan() { 0.0 } else { v };
    let mut out = mix(v, skin, face_cov);
    out = mix(out, p.hair, hair_cov.max(0.0));

    // Eyes, per side: lids widened by AU5, narrowed by AU7 and by raised cheeks (AU6).
    let openness =
        (1.0 + 0.9 * au(a.upper_lid_raise) - 0.45 * au(a.lid_tighten) - 0.4 * au(a.cheek_raise))
            .max(0.2);
    for side in [-1.0f32, 1.0] {
        let (ex, ey) = (side * p.eye_dx, p.eye_y);
        let eh = p.eye_h * openness;
        let eye_d = ((x - ex) / p.eye_w).powi(2) + ((y - ey) / eh).powi(2) - 1.0;
        let sclera = inside(eye_d * p.eye_h, px);
        out = mix(out, 0.92 * p.skin + 0.08, sclera * face_cov);
        let iris_r = p.eye_h * 0.95;
        let iris = inside(((x - ex).powi(2) + (y - ey).powi(2)).sqrt() - iris_r, px) * sclera;
        out = mix(out, 0.12, iris);
        // Lower-lid bulge of raised cheeks.
        let bulge = au(a.cheek_raise)
            * inside(
                ((x - ex) / (p.eye_w * 1.1)).powi(2) + ((y - ey - eh - 0.035) / 0.02).powi(2) - 1.0,
                0.05,
            );
        out = mix(out, (p.skin * 1.15).min(1.0), 0.5 * bulge * face_cov);

        // Brows: inner end raised by AU1, outer by AU2, both lowered and drawn in by AU4.
        let base = ey - p.brow_gap - p.eye_h * (openness - 1.0) * 0.5;
        let inner = (
            side * (p.eye_dx - p.eye_w * 1.05 - 0.035 * au(a.brow_lower)),
            base - 0.07 * au(a.inner_brow_raise) + 0.05 * au(a.brow_lower),
        );
        let outer = (
            side * (p.eye_dx + p.eye_w * 1.25),
            base - 0.07 * au(a.outer_brow_raise) + 0.015 * au(a.brow_lower) - 0.01,
        );
        let brow = inside(segment_dist(x, y, inner, outer) - p.brow_thick, px);
        out = mix(out, p.brow_dark, brow * face_cov);
        // Vertical furrows between lowered brows.
        let furrow = au(a.brow_lower)
            * inside(((x.abs() - 0.03) / 0.006).abs() - 1.0, 0.5)
            * inside(((y - base) / 0.05).abs() - 1.0, 0.2);
        out = mix(out, p.skin * 0.6, 0.6 * furrow * face_cov);
    }

    // Nose: a shaded ridge and nostrils; AU9 wrinkles its bridge.
    let nose_top = p.eye_y + 0.02;
    let nose_bottom = nose_top + p.nose_len;
    let ridge = inside((x - 0.025).abs() - 0.008, px)
        * inside(
            ((y - (nose_top + nose_bottom) / 2.0) / (p.nose_len / 2.0)).abs() - 1.0,
            0.1,
        );
    out = mix(out, p.skin * 0.8, 0.5 * ridge * face_cov);
    for side in [-1.0f32, 1.0] {
        let nostril = inside(
            ((x - side * 0.04) / 0.022).powi(2) + ((y - nose_bottom) / 0.012).powi(2) - 1.0,
            0.3,
        );
        out = mix(out, p.skin * 0.45, nostril * face_cov);
    }
    for k in 0..3 {
        let wy = nose_top + 0.03 + 0.022 * k as f32;
        let wrinkle = inside((y - wy).abs() - 0.004, px) * inside(x.abs() - 0.05, px);
        out = mix(out, p.skin * 0.55, au(a.nose_wrinkle) * wrinkle * face_cov);
    }

    // Mouth: corners up (AU12) or down (AU15), stretched (AU20), pressed thin (AU23), upper
    // lip raised (AU10), jaw dropped open (AU26).
    let mw = p.mouth_w
        * (1.0 + 0.35 * au(a.lip_stretch) + 0.15 * au(a.lip_corner_up) - 0.1 * au(a.lip_press));
    let corner = -0.07 * au(a.lip_corner_up) + 0.05 * au(a.lip_corner_down);
    let t = (x / mw).clamp(-1.0, 1.0);
    let mid_y = p.mouth_y + corner * t * t - 0.02 * au(a.upper_lip_raise) * (1.0 - t * t);
    let open = (0.11 * au(a.jaw_drop)) * (1.0 - t * t).max(0.0).sqrt();
    let lip = p.lip * (1.0 - 0.65 * au(a.lip_press));
    let within = inside(x.abs() - mw, px);
    let upper = inside((y - (mid_y - open / 2.0 - lip / 2.0)).abs() - lip / 2.0, px);
    let lower = inside((y - (mid_y + open / 2.0 + lip / 2.0)).abs() - lip / 2.0, px);
    let gap = inside((y - mid_y).abs() - open / 2.0, px) * (open > 0.002) as u8 as f32;
    out = mix(out, p.skin * 0.62, upper.max(lower) * within * face_cov);
    out = mix(out, 0.08, gap * within * face_cov);
    out
}

fn render(p: &Person, a: &Aus, shot: &Shot, size: u32, rng: &mut ChaCha8Rng) -> GrayImage {
    let (sin, cos) = shot.angle.sin_cos();
    let px = 2.0 / size as f32 / shot.scale;
    let mut img = GrayImage::new(size, size);
    for (ix, iy, pixel) in img.enumerate_pixels_mut() {
        // Pixel centre in [-1, 1], then into face coordinates (inverse pose).
        let u = (ix as f32 + 0.5) / size as f32 * 2.0 - 1.0;
        let v = (iy as f32 + 0.5) / size as f32 * 2.0 - 1.0;
        let (u, v) = (
            (u - shot.shift.0) / shot.scale,
            (v - shot.shift.1) / shot.scale,
        );
        let (x, y) = (cos * u + sin * v, -sin * u + cos * v);
        let face = shade(p, a, shot.intensity, x, y, px);
        let light = 1.0 + shot.light.0 * u + shot.light.1 * v;
        let bg = shot.background * (1.0 + 0.5 * shot.light.0 * u);
        let face_mask = inside(
            ((x / (p.face_w * 1.12)).powi(2) + ((y + 0.02) / (p.face_h * 1.1)).powi(2)).sqrt()
                - 1.0,
            px * 1.5,
        );
        // Neck below the face.
        let neck = inside((x.abs() - p.face_w * 0.45).max(0.55 - y), px);
        let base = mix(bg, p.skin * 0.85, neck);
        let value = mix(base, face, face_mask) * light + shot.noise * normal(rng);
        pixel.0[0] = (value.clamp(0.0, 1.0) * 255.0).round() as u8;
    }
    img
}

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1 = 1.0 - rng.random::<f32>();
    let u2 = rng.random::<f32>();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// One generated image: its JAFFE-style file name, subject, expression and pixels, and the
/// true geometry of its face (the oracle for face detection and alignment).
#[derive(Debug, Clone)]
pub struct SynthImage {
    pub file_name: String,
    pub subject: String,
    pub expression: String,
    pub image: GrayImage,
    /// Centres of the left and right eye (as seen in the image) in pixels, continuous
    /// coordinates (pixel k spans [k, k + 1)).
    pub eyes: [[f32; 2]; 2],
    /// Bounding box of the face oval (without hair): left, top, width, height in pixels.
    pub face_box: [f32; 4],
    /// Head roll in degrees: the angle of the eye line, positive when the right eye is lower.
    pub roll_degrees: f32,
}

/// Face coordinates (x, y) of `shot` to pixel coordinates of a `size` image: the inverse of
/// the mapping in [`render`].
fn to_pixels(shot: &Shot, size: u32, x: f32, y: f32) -> [f32; 2] {
    let (sin, cos) = shot.angle.sin_cos();
    let (u, v) = (cos * x - sin * y, sin * x + cos * y);
    let (u, v) = (u * shot.scale + shot.shift.0, v * shot.scale + shot.shift.1);
    [(u + 1.0) / 2.0 * size as f32, (v + 1.0) / 2.0 * size as f32]
}

/// The eyes, face box and roll of `p` in `shot`.
fn geometry(p: &Person, shot: &Shot, size: u32) -> ([[f32; 2]; 2], [f32; 4]) {
    let eyes = [
        to_pixels(shot, size, -p.eye_dx, p.eye_y),
        to_pixels(shot, size, p.eye_dx, p.eye_y),
    ];
    // The oval (semi-axes face_w, face_h about (0, 0.05)) turned by the roll: its half extents
    // along the image axes.
    let (sin, cos) = shot.angle.sin_cos();
    let half_x = ((p.face_w * cos).powi(2) + (p.face_h * sin).powi(2)).sqrt();
    let half_y = ((p.face_w * sin).powi(2) + (p.face_h * cos).powi(2)).sqrt();
    let [cx, cy] = to_pixels(shot, size, 0.0, 0.05);
    let px = size as f32 / 2.0 * shot.scale;
    let (hw, hh) = (half_x * px, half_y * px);
    (eyes, [cx - hw, cy - hh, 2.0 * hw, 2.0 * hh])
}

/// Generates the set; the same options always give the same pixels.
pub fn generate(options: &SynthOptions) -> Vec<SynthImage> {
    let d = options.difficulty.clamp(0.0, 1.0);
    let mut rng = ChaCha8Rng::seed_from_u64(crate::seed::derive(options.seed, "synth"));
    let people: Vec<Person> = (0..options.people).map(|i| person(&mut rng, i)).collect();
    let mut out = vec![];
    let mut number = 1;
    for p in &people {
        for (e, expression) in EXPRESSIONS.iter().enumerate() {
            let aus = action_units(expression);
            for pose in 1..=options.per_expression {
                let max_roll = options
                    .max_roll_degrees
                    .map_or(0.03 + 0.09 * d, f32::to_radians);
                let shot = Shot {
                    angle: rng.random_range(-1.0..1.0) * max_roll,
                    scale: 1.25 + rng.random_range(-1.0..1.0) * (0.04 + 0.08 * d),
                    shift: (
                        rng.random_range(-1.0..1.0) * (0.02 + 0.06 * d),
                        rng.random_range(-1.0..1.0) * (0.02 + 0.05 * d),
                    ),
                    light: (
                        rng.random_range(-1.0..1.0) * (0.05 + 0.25 * d),
                        rng.random_range(-1.0..1.0) * (0.05 + 0.15 * d),
                    ),
                    background: rng.random_range(0.15..0.9),
                    noise: 0.01 + 0.05 * d,
                    intensity: rng.random_range((1.0 - 0.75 * d).min(0.95)..1.0),
                };
                let image = render(p, &aus, &shot, options.size, &mut rng);
                let (eyes, face_box) = geometry(p, &shot, options.size);
                out.push(SynthImage {
                    file_name: format!("{}.{}{pose}.{number}.tiff", p.code, JAFFE_CODES[e]),
                    subject: p.code.clone(),
                    expression: expression.to_string(),
                    image,
                    eyes,
                    face_box,
                    roll_degrees: shot.angle.to_degrees(),
                });
                number += 1;
            }
        }
    }
    out
}

/// Writes the set into `dir` as JAFFE-named 8-bit grayscale TIFFs (creating `dir`).
pub fn write_jaffe(images: &[SynthImage], dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Data {
        path: dir.display().to_string(),
        msg: format!("cannot create the folder: {e}"),
    })?;
    for s in images {
        let path = dir.join(&s.file_name);
        s.image.save(&path).map_err(|e| Error::Data {
            path: path.display().to_string(),
            msg: format!("cannot write: {e}"),
        })?;
    }
    Ok(())
}

/// A contact sheet: one row per person, one column per image of that person, thumbnails of
/// `thumb` pixels.
pub fn contact_sheet(images: &[SynthImage], thumb: u32) -> GrayImage {
    let mut subjects: Vec<&str> = images.iter().map(|s| s.subject.as_str()).collect();
    subjects.dedup();
    let cols = images.iter().filter(|s| s.subject == subjects[0]).count() as u32;
    let mut sheet = GrayImage::from_pixel(
        cols * thumb,
        subjects.len() as u32 * thumb,
        image::Luma([255]),
    );
    for (row, subject) in subjects.iter().enumerate() {
        for (col, s) in images.iter().filter(|s| s.subject == *subject).enumerate() {
            let small = image::imageops::resize(
                &s.image,
                thumb,
                thumb,
                image::imageops::FilterType::Triangle,
            );
            image::imageops::replace(
                &mut sheet,
                &small,
                (col as u32 * thumb) as i64,
                (row as u32 * thumb) as i64,
            );
        }
    }
    sheet
}
