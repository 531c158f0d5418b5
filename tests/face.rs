//! Face mode against ground truth: the synthetic faces know where their face and eyes are and
//! how far the head is rolled, so detection, the eye search and alignment are checked against
//! numbers that do not come from the code under test. Bad input (no face, several faces, a
//! face at the border, tiny and huge images) and the crop cache are checked too.
//!
//! The figures each test measures are printed; `cargo test --test face -- --nocapture` shows
//! them.

use std::path::PathBuf;
use std::time::Instant;

use fer_wgpu::data::cache::CacheStatus;
use fer_wgpu::data::face::{detect, face_crop, locate_eyes, FaceBox, FaceSettings};
use fer_wgpu::data::loaders::{RawSample, RawSet};
use fer_wgpu::data::preprocess::Normalize;
use fer_wgpu::data::synth::{generate, SynthImage, SynthOptions};
use fer_wgpu::data::{build_dataset, build_dataset_cached, Preprocess, Task, EXPRESSIONS};
use image::{GrayImage, Luma};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fer-face-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Whether the detected box holds the true face: its centre within a fifth of the true face
/// width of the true centre, and its side between half and 1.5 times the true width.
fn matches_truth(b: &FaceBox, s: &SynthImage) -> bool {
    let [l, t, w, h] = s.face_box;
    let (cx, cy) = b.centre();
    let off = ((cx - (l + w / 2.0)).powi(2) + (cy - (t + h / 2.0)).powi(2)).sqrt();
    off < 0.2 * w && b.width > 0.5 * w && b.width < 1.5 * w
}

struct RollStats {
    images: usize,
    detected: usize,
    eyes: usize,
    errors: Vec<f32>,
    eye_px: Vec<f32>,
}

impl RollStats {
    fn mean(&self) -> f32 {
        self.errors.iter().sum::<f32>() / self.errors.len().max(1) as f32
    }

    fn max(&self) -> f32 {
        self.errors.iter().copied().fold(0.0, f32::max)
    }

    /// The error that a fraction `q` of the images stay within.
    fn quantile(&self, q: f32) -> f32 {
        let mut e = self.errors.clone();
        e.sort_by(f32::total_cmp);
        e[((e.len() - 1) as f32 * q).round() as usize]
    }
}

/// Detects and finds the eyes in every image, comparing with the truth.
fn measure(set: &[SynthImage]) -> RollStats {
    let settings = FaceSettings::default();
    let mut st = RollStats {
        images: set.len(),
        detected: 0,
        eyes: 0,
        errors: vec![],
        eye_px: vec![],
    };
    // Where the eyes sit in the box, for the constants of face.rs.
    let (mut dist, mut row) = (0.0, 0.0);
    for s in set {
        let faces = detect(&s.image, settings.min_score);
        let Some(face) = faces.first().filter(|f| matches_truth(f, s)) else {
            eprintln!("{}: no face matching the truth in {faces:?}", s.file_name);
            continue;
        };
        st.detected += 1;
        match locate_eyes(&s.image, face) {
            Ok(eyes) => {
                st.eyes += 1;
                st.errors.push((eyes.roll_degrees() - s.roll_degrees).abs());
                for (found, truth) in [(eyes.left, s.eyes[0]), (eyes.right, s.eyes[1])] {
                    st.eye_px.push(
                        ((found[0] - truth[0]).powi(2) + (found[1] - truth[1]).powi(2)).sqrt(),
                    );
                }
                let side = face.width.max(face.height);
                dist += eyes.distance() / side;
                row += ((eyes.left[1] + eyes.right[1]) / 2.0 - face.top) / side;
            }
            Err(why) => eprintln!("{}: {why}", s.file_name),
        }
    }
    eprintln!(
        "{} images: face found {} ({:.1}%), eyes found {}; roll error mean {:.2} median {:.2} \
         90th percentile {:.2} max {:.2} degrees; eye position error mean {:.2} px max {:.2} \
         px; eyes in the box: distance {:.3}, row {:.3} of its side",
        st.images,
        st.detected,
        100.0 * st.detected as f32 / st.images as f32,
        st.eyes,
        st.mean(),
        st.quantile(0.5),
        st.quantile(0.9),
        st.max(),
        st.eye_px.iter().sum::<f32>() / st.eye_px.len().max(1) as f32,
        st.eye_px.iter().copied().fold(0.0, f32::max),
        dist / st.eyes.max(1) as f32,
        row / st.eyes.max(1) as f32,
    );
    st
}

#[test]
fn the_whole_synthetic_set_is_detected_and_its_roll_recovered() {
    let start = Instant::now();
    let set = generate(&SynthOptions::default());
    let generated = start.elapsed().as_secs_f32();
    let st = measure(&set);
    eprintln!(
        "generated in {generated:.1} s, measured in {:.1} s",
        start.elapsed().as_secs_f32() - generated
    );
    assert_eq!(st.images, 210);
    assert!(st.detected >= 208, "face found in {} of 210", st.detected);
    assert!(st.eyes >= 200, "eyes found in {} of 210", st.eyes);
    assert!(st.mean() < 1.0, "mean roll error {:.2} degrees", st.mean());
    assert!(st.max() < 3.0, "max roll error {:.2} degrees", st.max());
}

#[test]
fn larger_rolls_are_recovered_and_levelled_in_the_crop() {
    // Up to 15 degrees: a roll estimate of zero would be off by 7.5 degrees on average here.
    let set = generate(&SynthOptions {
        per_expression: 1,
        max_roll_degrees: Some(15.0),
        seed: 7,
        ..SynthOptions::default()
    });
    let mean_roll = set.iter().map(|s| s.roll_degrees.abs()).sum::<f32>() / set.len() as f32;
    let st = measure(&set);
    assert!(
        mean_roll > 5.0,
        "the set is rolled: mean {mean_roll:.1} degrees"
    );
    assert!(st.detected >= 66, "face found in {} of 70", st.detected);
    assert!(st.eyes >= 63, "eyes found in {} of 70", st.eyes);
    // A few faces lose an eye to the brow above it once the head is rolled this far (see
    // the module doc of face.rs): the bulk is held tight, the outliers are counted.
    assert!(
        st.quantile(0.5) < 1.0,
        "median roll error {:.2}",
        st.quantile(0.5)
    );
    assert!(
        st.quantile(0.9) < 3.0,
        "90% within {:.2} degrees",
        st.quantile(0.9)
    );
    let outliers = st.errors.iter().filter(|&&e| e > 5.0).count();
    assert!(outliers <= 4, "{outliers} roll errors over 5 degrees");

    // In the aligned crops, the true eyes are level, centred, and a fixed distance apart.
    let settings = FaceSettings::default();
    let out = [64, 64];
    let mut spreads = vec![];
    for s in set.iter().take(20) {
        let (crop, report) = face_crop(&s.image, &settings, out);
        let (Some(crop), Some(window), Some(_)) = (crop, report.crop, report.eyes) else {
            continue;
        };
        assert_eq!(crop.dimensions(), (64, 64));
        let [l, r] = s.eyes.map(|e| window.to_crop(e, out));
        let tilt = (r[1] - l[1]).atan2(r[0] - l[0]).to_degrees();
        assert!(
            tilt.abs() < 3.0,
            "{}: eyes tilted {tilt:.1} degrees",
            s.file_name
        );
        assert!(
            ((l[0] + r[0]) / 2.0 - 32.0).abs() < 2.0,
            "{}: {l:?} {r:?}",
            s.file_name
        );
        spreads.push(r[0] - l[0]);
    }
    assert!(spreads.len() >= 18, "{} aligned crops of 20", spreads.len());
    let (lo, hi) = spreads
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    // Unaligned, the eye distance varies with the person and the zoom by about +-30%.
    assert!(
        hi - lo < 3.0,
        "eye distance in the crops spans {lo:.1} to {hi:.1} pixels"
    );
}

fn one_face() -> SynthImage {
    generate(&SynthOptions {
        people: 1,
        per_expression: 1,
        ..SynthOptions::default()
    })
    .swap_remove(0)
}

/// `image` pasted on a `w` x `h` canvas of gray `fill` at (x, y).
fn canvas(image: &GrayImage, w: u32, h: u32, fill: u8, x: i64, y: i64) -> GrayImage {
    let mut c = GrayImage::from_pixel(w, h, Luma([fill]));
    image::imageops::replace(&mut c, image, x, y);
    c
}

#[test]
fn no_face_and_tiny_images_get_the_fallback_crop_and_say_why() {
    // Smooth noise: texture, no face.
    let mut noise = GrayImage::new(200, 160);
    for (x, y, p) in noise.enumerate_pixels_mut() {
        p.0[0] = ((x * 7919 + y * 104_729) % 97 + 80) as u8;
    }
    let mut pre = Preprocess::new([32, 32]);
    pre.crop = Some(Preprocess::parse_crop("0.1,0.1,0.8,0.8").unwrap());
    let mut face_pre = pre.clone();
    face_pre.face = Some(FaceSettings::default());
    let got = face_pre.prepare(&noise).unwrap();
    let report = got.face.unwrap();
    assert_eq!(report.faces, 0);
    assert_eq!(report.fallback.as_deref(), Some("no face found"));
    assert_eq!(
        got.image,
        pre.prepare(&noise).unwrap().image,
        "the fallback is the fixed crop"
    );

    let tiny = GrayImage::from_pixel(16, 12, Luma([128]));
    let got = face_pre.prepare(&tiny).unwrap();
    let why = got.face.unwrap().fallback.unwrap();
    assert!(why.contains("16x12 is too small"), "{why}");
    assert_eq!(got.image.dimensions(), (32, 32));

    // Counted per data set, never dropped.
    let s = one_face();
    let raw = RawSet {
        samples: [s.image.clone(), noise, tiny]
            .into_iter()
            .enumerate()
            .map(|(i, image)| RawSample {
                image,
                class: "happy".into(),
                subject: None,
                source: format!("image{i}"),
                usage: None,
            })
            .collect(),
        class_names: EXPRESSIONS.iter().map(|c| c.to_string()).collect(),
        skipped: vec![],
    };
    face_pre.crop = None;
    let (data, build) = build_dataset_cached(&raw, &Task::seven(), &face_pre, None).unwrap();
    assert_eq!(data.len(), 3);
    let faces = build.faces.unwrap();
    assert_eq!(
        (faces.images, faces.faces, faces.fallback),
        (3, 1, 2),
        "{faces}"
    );
    assert_eq!(build.cache, CacheStatus::Off);
}

#[test]
fn several_faces_use_the_most_confident_and_count_them() {
    let two_people = generate(&SynthOptions {
        people: 2,
        per_expression: 1,
        ..SynthOptions::default()
    });
    let (a, b) = (one_face(), two_people[10].clone());
    let mut two = canvas(&a.image, 560, 300, 128, 10, 20);
    image::imageops::replace(&mut two, &b.image, 290, 30);
    let faces = detect(&two, 2.0);
    assert!(faces.len() >= 2, "{faces:?}");
    for (truth, dx, dy) in [(&a, 10.0, 20.0), (&b, 290.0, 30.0)] {
        let [l, t, w, h] = truth.face_box;
        let (cx, cy) = (l + w / 2.0 + dx, t + h / 2.0 + dy);
        assert!(
            faces.iter().any(|f| (f.centre().0 - cx).abs() < 0.2 * w
                && (f.centre().1 - cy).abs() < 0.2 * h),
            "face at ({cx}, {cy}) not found in {faces:?}"
        );
    }
    let (crop, report) = face_crop(&two, &FaceSettings::default(), [48, 48]);
    assert!(crop.is_some());
    assert_eq!(report.faces, faces.len());
    let best = faces.iter().map(|f| f.score).fold(f64::MIN, f64::max);
    assert_eq!(
        report.face.unwrap().score,
        best,
        "the most confident face is used"
    );
}

#[test]
fn a_face_at_the_border_is_padded_and_a_huge_image_is_searched_shrunk() {
    // The left 50 columns cut off: the face box plus margin reaches past the left edge.
    let s = one_face();
    let cut = image::imageops::crop_imm(&s.image, 50, 0, 206, 256).to_image();
    let (crop, report) = face_crop(&cut, &FaceSettings::default(), [64, 64]);
    assert!(report.face.is_some(), "{report:?}");
    assert!(report.padded, "{report:?}");
    assert_eq!(crop.unwrap().dimensions(), (64, 64));

    // 4x the size on a 2400x1800 canvas: the box maps back onto the face.
    let big = image::imageops::resize(&s.image, 1024, 1024, image::imageops::FilterType::Triangle);
    let big = canvas(&big, 2400, 1800, 90, 900, 500);
    let faces = detect(&big, 2.0);
    let face = faces.first().expect("the face on the big canvas");
    let [l, t, w, h] = s.face_box.map(|v| v * 4.0);
    let (cx, cy) = (l + w / 2.0 + 900.0, t + h / 2.0 + 500.0);
    let (fx, fy) = face.centre();
    assert!(
        (fx - cx).abs() < 0.15 * w && (fy - cy).abs() < 0.15 * h,
        "box centre ({fx}, {fy}), face centre ({cx}, {cy})"
    );
    assert!(
        face.width > 0.5 * w && face.width < 1.5 * w,
        "{face:?} vs {w}"
    );
    let eyes = locate_eyes(&big, face).expect("eyes at full resolution");
    let truth = s.eyes[0].map(|v| v * 4.0);
    let err = ((eyes.left[0] - truth[0] - 900.0).powi(2)
        + (eyes.left[1] - truth[1] - 500.0).powi(2))
    .sqrt();
    assert!(err < 12.0, "left eye {err:.1} px from the truth (4x scale)");
}

#[test]
fn face_crops_are_deterministic_across_threads() {
    let set = generate(&SynthOptions {
        people: 2,
        per_expression: 1,
        ..SynthOptions::default()
    });
    let mut pre = Preprocess::new([48, 48]);
    pre.face = Some(FaceSettings::default());
    let run = |set: Vec<SynthImage>, pre: Preprocess| {
        std::thread::spawn(move || {
            set.iter()
                .map(|s| pre.prepare(&s.image).unwrap())
                .collect::<Vec<_>>()
        })
    };
    let a = run(set.clone(), pre.clone()).join().unwrap();
    let b = run(set, pre).join().unwrap();
    assert_eq!(a, b);
}

fn synth_raw(n: usize) -> RawSet {
    let set = generate(&SynthOptions {
        per_expression: 1,
        ..SynthOptions::default()
    });
    RawSet {
        samples: set
            .into_iter()
            .take(n)
            .map(|s| RawSample {
                image: s.image,
                class: s.expression,
                subject: Some(s.subject),
                source: s.file_name,
                usage: None,
            })
            .collect(),
        class_names: EXPRESSIONS.iter().map(|c| c.to_string()).collect(),
        skipped: vec![],
    }
}

#[test]
fn the_second_build_reads_the_cache_and_a_change_misses_it() {
    let dir = temp_dir("cache");
    let mut raw = synth_raw(12);
    let mut pre = Preprocess::new([32, 32]);
    pre.face = Some(FaceSettings::default());
    let task = Task::seven();
    let build = |raw: &RawSet, pre: &Preprocess| {
        let start = Instant::now();
        let (data, report) = build_dataset_cached(raw, &task, pre, Some(&dir)).unwrap();
        (data, report.cache, start.elapsed().as_secs_f64())
    };
    let (first, status, t1) = build(&raw, &pre);
    assert_eq!(status, CacheStatus::Miss);
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1, "one cache file, no temporary left");
    let (second, status, t2) = build(&raw, &pre);
    eprintln!("12 images: first build {t1:.3} s, second (cached) {t2:.3} s");
    assert_eq!(status, CacheStatus::Hit);
    assert_eq!(first, second, "the cache gives the same data");
    assert_eq!(first, build_dataset(&raw, &task, &pre).unwrap());

    // Normalization is applied after the cache: still a hit.
    let mut unit = pre.clone();
    unit.normalize = Normalize::UnitRange;
    assert_eq!(build(&raw, &unit).1, CacheStatus::Hit);
    // A setting that shapes the crop misses, and so does one changed pixel.
    let mut wider = pre.clone();
    wider.face = Some(FaceSettings {
        margin: 0.3,
        ..FaceSettings::default()
    });
    assert_eq!(build(&raw, &wider).1, CacheStatus::Miss);
    let p = raw.samples[5].image.get_pixel_mut(3, 3);
    p.0[0] = p.0[0].wrapping_add(1);
    assert_eq!(build(&raw, &pre).1, CacheStatus::Miss);
    // A damaged file is rebuilt, not trusted.
    for f in std::fs::read_dir(&dir).unwrap() {
        std::fs::write(f.unwrap().path(), b"FERFACE1 truncated").unwrap();
    }
    assert_eq!(build(&raw, &pre).1, CacheStatus::Miss);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn checkpoints_without_face_settings_still_load() {
    // The preprocessing metadata of a checkpoint written before face mode existed.
    let old = r#"{"size":[48,48],"crop":null,"equalize":false,"normalize":{"kind":"per_image"}}"#;
    let pre: Preprocess = serde_json::from_str(old).unwrap();
    assert_eq!(pre, Preprocess::new([48, 48]));
    let mut face = pre.clone();
    face.face = Some(FaceSettings::default());
    let json = serde_json::to_string(&face).unwrap();
    assert_eq!(serde_json::from_str::<Preprocess>(&json).unwrap(), face);
    assert_eq!(
        serde_json::to_string(&pre).unwrap(),
        old,
        "without face mode the metadata is as before"
    );
}
