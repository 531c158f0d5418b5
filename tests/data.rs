//! Data: the loaders on real files of each format (written here, never shipped), palette
//! TIFFs, bad input, preprocessing, tasks, splits, the synthetic set and GPU augmentation.

mod common;

use std::path::{Path, PathBuf};

use common::{gpu, rand_vec, rng};
use fer_wgpu::check::{assert_close, Tolerance};
use fer_wgpu::data::loaders::{load_fer2013, load_folder, load_jaffe};
use fer_wgpu::data::preprocess::{dataset_stats, equalize, Crop, Normalize};
use fer_wgpu::data::splits::{
    class_counts, class_weights, kfold, leave_one_subject_out, stratified,
};
use fer_wgpu::data::synth::{generate, write_jaffe, SynthOptions};
use fer_wgpu::data::{build_dataset, load, Format, LoadOptions, Preprocess, Task};
use image::GrayImage;

/// A fresh temporary folder for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fer-data-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ramp(w: u32, h: u32, seed: u32) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| {
        image::Luma([((x * 7 + y * 13 + seed * 31) % 256) as u8])
    })
}

/// An uncompressed 8-bit palette-colour TIFF (PhotometricInterpretation 3) with an inverted
/// gray palette, written by hand: the `image` crate cannot write (or read) these.
fn write_palette_tiff(path: &Path, indices: &[u8], w: u32, h: u32) {
    let mut entries: Vec<(u16, u16, u32, u32)> = vec![];
    let colormap_at = 8 + 2 + 10 * 12 + 4;
    let pixels_at = colormap_at + 768 * 2;
    entries.push((256, 4, 1, w)); // ImageWidth
    entries.push((257, 4, 1, h)); // ImageLength
    entries.push((258, 3, 1, 8)); // BitsPerSample
    entries.push((259, 3, 1, 1)); // Compression: none
    entries.push((262, 3, 1, 3)); // PhotometricInterpretation: palette
    entries.push((273, 4, 1, pixels_at)); // StripOffsets
    entries.push((277, 3, 1, 1)); // SamplesPerPixel
    entries.push((278, 4, 1, h)); // RowsPerStrip
    entries.push((279, 4, 1, w * h)); // StripByteCounts
    entries.push((320, 3, 768, colormap_at)); // ColorMap
    let mut b: Vec<u8> = b"II".to_vec();
    b.extend(42u16.to_le_bytes());
    b.extend(8u32.to_le_bytes());
    b.extend((entries.len() as u16).to_le_bytes());
    for (tag, ty, count, value) in entries {
        b.extend(tag.to_le_bytes());
        b.extend(ty.to_le_bytes());
        b.extend(count.to_le_bytes());
        b.extend(value.to_le_bytes());
    }
    b.extend(0u32.to_le_bytes());
    for _channel in 0..3 {
        for i in 0..256u32 {
            b.extend((((255 - i) * 257) as u16).to_le_bytes());
        }
    }
    b.extend_from_slice(indices);
    std::fs::write(path, b).unwrap();
}

#[test]
fn palette_tiffs_decode_through_their_colour_map() {
    let dir = temp_dir("palette");
    let (w, h) = (16, 8);
    let indices: Vec<u8> = (0..w * h).map(|i| (i * 5 % 256) as u8).collect();
    let path = dir.join("KA.HA1.1.tiff");
    write_palette_tiff(&path, &indices, w, h);
    assert!(
        image::open(&path).is_err(),
        "the image crate rejects palette TIFFs (the reason \
        for the fallback); if it learns them, the fallback can go"
    );
    let img = fer_wgpu::data::decode::read_gray(&path).unwrap();
    assert_eq!(img.dimensions(), (w, h));
    let want: Vec<u8> = indices.iter().map(|&i| 255 - i).collect();
    assert_eq!(
        img.into_raw(),
        want,
        "index i maps to the palette's gray 255 - i"
    );
    // And through the JAFFE loader, as a real set stores some files.
    let set = load_jaffe(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(set.samples[0].class, "happy");
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = vec![];
    for e in walk(dir) {
        out.push((e.clone(), std::fs::read(&e).unwrap()));
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = vec![];
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}

#[test]
fn synthetic_set_is_deterministic_and_reads_back_through_the_jaffe_loader() {
    let options = SynthOptions {
        size: 64,
        ..SynthOptions::default()
    };
    let a = generate(&options);
    let b = generate(&options);
    assert_eq!(a.len(), 210);
    assert!(a
        .iter()
        .zip(&b)
        .all(|(x, y)| x.image == y.image && x.file_name == y.file_name));
    let other = generate(&SynthOptions { seed: 7, ..options });
    assert!(
        a.iter().zip(&other).any(|(x, y)| x.image != y.image),
        "another seed differs"
    );

    let dir = temp_dir("synth");
    write_jaffe(&a, &dir).unwrap();
    let before = snapshot(&dir);
    let set = load(&dir, None, &LoadOptions::default()).unwrap();
    assert_eq!(
        snapshot(&dir),
        before,
        "loading never modifies the data set"
    );
    assert_eq!(set.samples.len(), 210);
    let mut subjects: Vec<_> = set
        .samples
        .iter()
        .filter_map(|s| s.subject.clone())
        .collect();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 10);
    for s in &set.samples {
        let generated = a.iter().find(|g| s.source == g.file_name).unwrap();
        assert_eq!(s.class, generated.expression);
        assert_eq!(s.image, generated.image, "TIFF round trip is lossless");
    }
    let data = build_dataset(&set, &Task::seven(), &Preprocess::new([32, 32])).unwrap();
    assert_eq!(data.class_counts(), vec![30; 7]);
}

#[test]
fn folder_layout_reads_every_format_and_subjects_from_a_pattern() {
    let dir = temp_dir("folder");
    for (class, files) in [
        ("happy", ["anna_1.png", "bob_1.jpg", "cara_1.bmp"]),
        ("sad", ["anna_2.pgm", "bob_2.tiff", "cara_2.png"]),
    ] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for (i, f) in files.iter().enumerate() {
            ramp(20 + i as u32, 18, i as u32)
                .save(dir.join(class).join(f))
                .unwrap();
        }
    }
    std::fs::write(dir.join("happy").join("notes.txt"), "not an image").unwrap();
    let options = LoadOptions {
        subject_pattern: Some("^([a-z]+)_".into()),
        ..Default::default()
    };
    assert_eq!(
        fer_wgpu::data::loaders::detect(&dir).unwrap(),
        Format::Folder
    );
    let set = load_folder(&dir, &options).unwrap();
    assert_eq!(set.class_names, ["happy", "sad"]);
    assert_eq!(set.samples.len(), 6);
    let subjects: Vec<_> = set
        .samples
        .iter()
        .map(|s| s.subject.clone().unwrap())
        .collect();
    assert_eq!(subjects, ["anna", "bob", "cara", "anna", "bob", "cara"]);
    // Lossless formats give the exact pixels back.
    assert_eq!(set.samples[0].image, ramp(20, 18, 0));
    assert_eq!(set.samples[3].image, ramp(20, 18, 0));
    // A pattern that does not match a file is an error naming it.
    let bad = LoadOptions {
        subject_pattern: Some("^(x+)_".into()),
        ..Default::default()
    };
    let e = load_folder(&dir, &bad).unwrap_err().to_string();
    assert!(
        e.contains("anna_1.png") && e.contains("does not match"),
        "{e}"
    );
    let e = load_folder(
        &dir,
        &LoadOptions {
            subject_pattern: Some("[".into()),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("subject pattern"), "{e}");
}

/// A CSV row of FER2013 with a constant image.
fn fer_row(label: u32, value: u8, usage: &str) -> String {
    let pixels = vec![value.to_string(); 2304].join(" ");
    format!("{label},{pixels},{usage}\n")
}

#[test]
fn fer2013_csv_loads_labels_pixels_and_usage() {
    let dir = temp_dir("fer");
    let path = dir.join("fer2013.csv");
    let mut text = "emotion,pixels,Usage\n".to_string();
    for i in 0..14u32 {
        let usage = ["Training", "PublicTest", "PrivateTest"][i as usize % 3];
        text += &fer_row(i % 7, (i * 10) as u8, usage);
    }
    std::fs::write(&path, &text).unwrap();
    let set = load(&path, None, &LoadOptions::default()).unwrap();
    assert_eq!(set.samples.len(), 14);
    // FER2013's 0 is angry, 3 happy, 6 neutral.
    assert_eq!(set.samples[0].class, "angry");
    assert_eq!(set.samples[3].class, "happy");
    assert_eq!(set.samples[6].class, "neutral");
    assert_eq!(set.samples[4].image.get_pixel(10, 10).0[0], 40);
    assert_eq!(set.samples[1].usage.as_deref(), Some("PublicTest"));

    let short = dir.join("short.csv");
    std::fs::write(
        &short,
        format!(
            "emotion,pixels,Usage\n{}3,1 2 3,Training\n",
            fer_row(0, 1, "Training")
        ),
    )
    .unwrap();
    let e = load_fer2013(&short).unwrap_err().to_string();
    assert!(
        e.contains("row 3") && e.contains("3 pixels, expected 48x48"),
        "{e}"
    );
    let bad_label = dir.join("label.csv");
    std::fs::write(
        &bad_label,
        format!("emotion,pixels,Usage\n{}", fer_row(9, 1, "Training")),
    )
    .unwrap();
    let e = load_fer2013(&bad_label).unwrap_err().to_string();
    assert!(e.contains("row 2") && e.contains("emotion \"9\""), "{e}");
    let bad_header = dir.join("header.csv");
    std::fs::write(&bad_header, "label,image\n").unwrap();
    assert!(load_fer2013(&bad_header)
        .unwrap_err()
        .to_string()
        .contains("not FER2013"));
}

/// The bytes of a PNG whose header claims `w` x `h` pixels, with valid chunk CRCs but no
/// image data: enough for a decoder to read the size and refuse it.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // 8-bit grayscale
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    png
}

#[test]
fn bad_input_is_a_clear_error_and_skipping_is_reported() {
    let dir = temp_dir("bad");
    let e = load(&dir, None, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds no images"), "{e}");
    let e = load(&dir.join("nope"), None, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such file or folder"), "{e}");

    ramp(8, 8, 1).save(dir.join("KA.ZZ1.1.png")).unwrap();
    let e = load_jaffe(&dir, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("KA.ZZ1.1.png") && e.contains("unknown expression code \"ZZ\""),
        "{e}"
    );
    std::fs::remove_file(dir.join("KA.ZZ1.1.png")).unwrap();

    ramp(8, 8, 1).save(dir.join("KA.NE1.1.png")).unwrap();
    std::fs::write(dir.join("KA.HA1.2.png"), b"not really a png").unwrap();
    std::fs::write(dir.join("KA.SA1.3.png"), png_claiming(100_000, 100_000)).unwrap();
    let e = load_jaffe(&dir, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("KA.HA1.2.png") && e.contains("--skip-unreadable"),
        "{e}"
    );
    let e = fer_wgpu::data::decode::read_gray(&dir.join("KA.SA1.3.png"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("too large"),
        "a header claiming 10^10 pixels is refused: {e}"
    );
    let skipping = LoadOptions {
        skip_unreadable: true,
        ..Default::default()
    };
    let set = load_jaffe(&dir, &skipping).unwrap();
    assert_eq!(set.samples.len(), 1);
    assert_eq!(set.skipped.len(), 2);
    assert!(set.skipped.iter().any(|(f, _)| f.ends_with("KA.HA1.2.png")));

    // Other files: text is ignored; an image with another name is reported as skipped.
    std::fs::write(dir.join("README.a.b"), "x").unwrap();
    ramp(8, 8, 2).save(dir.join("contact-sheet.png")).unwrap();
    let set = load_jaffe(&dir, &skipping).unwrap();
    assert!(set
        .skipped
        .iter()
        .any(|(f, why)| f.ends_with("contact-sheet.png") && why.contains("not a JAFFE file name")));
    let other = temp_dir("not-jaffe");
    ramp(8, 8, 2).save(other.join("photo.png")).unwrap();
    let e = load_jaffe(&other, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no images named like JAFFE's"), "{e}");
}

#[test]
fn preprocessing_crops_resizes_equalizes_and_normalizes() {
    let img = GrayImage::from_fn(40, 20, |x, _| image::Luma([(x * 6) as u8]));
    let fraction = Preprocess::parse_crop("0.25,0,0.5,1").unwrap();
    let pixels = Preprocess::parse_crop("10,0,20,20").unwrap();
    assert!(matches!(fraction, Crop::Fraction { .. }) && matches!(pixels, Crop::Pixels { .. }));
    let mut pre = Preprocess::new([20, 20]);
    pre.normalize = Normalize::UnitRange;
    pre.crop = Some(fraction);
    let a = pre.apply(&img).unwrap();
    pre.crop = Some(pixels);
    let b = pre.apply(&img).unwrap();
    assert_eq!(a, b, "the same box as fractions and as pixels");
    assert_eq!(a.len(), 400);
    assert_eq!(a[0], 60.0 / 255.0, "the crop starts at column 10");
    assert!(
        Preprocess::parse_crop("0.5,0,0.6,1").is_err(),
        "runs past the edge"
    );
    pre.crop = Some(Preprocess::parse_crop("30,0,20,20").unwrap());
    assert!(pre
        .apply(&img)
        .unwrap_err()
        .to_string()
        .contains("does not fit"));

    // Per-image normalization: mean 0, variance 1.
    let v = Preprocess::new([10, 10]).apply(&ramp(30, 30, 3)).unwrap();
    let mean = v.iter().sum::<f32>() / 100.0;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / 100.0;
    assert!(
        mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
        "{mean} {var}"
    );

    // Equalization spreads a narrow histogram over the whole range, keeping the order.
    let narrow = GrayImage::from_fn(16, 16, |x, y| image::Luma([100 + ((x + y) % 8) as u8]));
    let eq = equalize(&narrow);
    let (lo, hi) = eq
        .pixels()
        .fold((255u8, 0u8), |(l, h), p| (l.min(p.0[0]), h.max(p.0[0])));
    assert_eq!((lo, hi), (0, 255));
    // Monotone: a darker input pixel never comes out brighter.
    let pairs: Vec<(u8, u8)> = narrow
        .pixels()
        .zip(eq.pixels())
        .map(|(p, q)| (p.0[0], q.0[0]))
        .collect();
    assert!(pairs
        .iter()
        .all(|a| pairs.iter().all(|b| a.0 >= b.0 || a.1 <= b.1)));
}

#[test]
fn tasks_map_classes() {
    let options = SynthOptions {
        size: 32,
        per_expression: 1,
        ..SynthOptions::default()
    };
    let dir = temp_dir("tasks");
    write_jaffe(&generate(&options), &dir).unwrap();
    let set = load(&dir, Some(Format::Jaffe), &LoadOptions::default()).unwrap();
    let pre = Preprocess::new([16, 16]);
    let nvr = build_dataset(&set, &Task::neutral_vs_rest(), &pre).unwrap();
    assert_eq!(nvr.class_names, ["neutral", "rest"]);
    assert_eq!(nvr.class_counts(), [10, 60]);
    let groups = Task::parse("positive=happy+surprise,negative=sad+angry+disgust+fear").unwrap();
    let g = build_dataset(&set, &groups, &pre).unwrap();
    assert_eq!(g.class_counts(), [20, 40], "neutral is left out");
    let subset = build_dataset(&set, &Task::parse("happy,sad").unwrap(), &pre).unwrap();
    assert_eq!(subset.len(), 20);
    let e = build_dataset(&set, &Task::parse("happy,joy").unwrap(), &pre).unwrap_err();
    assert!(e.to_string().contains("\"joy\" is not in the data"), "{e}");
    assert!(Task::parse("happy").is_err(), "a task needs two classes");
    assert!(
        Task::parse("a=happy,b=happy+sad").is_err(),
        "a class in two groups"
    );

    // Data-set statistics for normalization come from the given (training) images only.
    let (mean, std) = dataset_stats(&set, &[0, 1, 2], &pre).unwrap();
    assert!(mean > 0.0 && mean < 1.0 && std > 0.0);
}

#[test]
fn splits_are_stratified_disjoint_and_seeded() {
    // 7 classes of 30, 10 subjects: as the synthetic set.
    let labels: Vec<u32> = (0..210).map(|i| (i / 3 % 7) as u32).collect();
    let subjects: Vec<String> = (0..210).map(|i| format!("S{}", i / 21)).collect();
    let s = stratified(&labels, 0.15, 0.15, 1).unwrap();
    assert_eq!(s, stratified(&labels, 0.15, 0.15, 1).unwrap(), "seeded");
    assert_ne!(s, stratified(&labels, 0.15, 0.15, 2).unwrap());
    let mut all: Vec<usize> = [&s.train[..], &s.val, &s.test].concat();
    all.sort_unstable();
    assert_eq!(all, (0..210).collect::<Vec<_>>(), "disjoint and complete");
    assert_eq!(
        class_counts(&labels, &s.test, 7),
        vec![5; 7],
        "15% of 30 per class, rounded"
    );
    assert_eq!(class_counts(&labels, &s.val, 7), vec![5; 7]);

    let folds = kfold(&labels, 5, 3).unwrap();
    let mut seen = vec![0; 210];
    for f in &folds {
        f.test.iter().for_each(|&i| seen[i] += 1);
        assert_eq!(f.train.len() + f.test.len(), 210);
        let counts = class_counts(&labels, &f.test, 7);
        assert!(
            counts.iter().all(|&c| c == 6),
            "stratified folds: {counts:?}"
        );
    }
    assert!(
        seen.iter().all(|&c| c == 1),
        "each image is tested exactly once"
    );

    let loso = leave_one_subject_out(&subjects).unwrap();
    assert_eq!(loso.len(), 10);
    for split in &loso {
        let name = split.name.trim_start_matches("subject ");
        assert!(split.test.iter().all(|&i| subjects[i] == name));
        assert!(
            split.train.iter().all(|&i| subjects[i] != name),
            "no person in both"
        );
        assert_eq!(split.test.len(), 21);
    }
    let e = leave_one_subject_out(&["a".into(), String::new()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no subject"), "{e}");
    assert_eq!(
        class_weights(&[10, 20, 10]).unwrap(),
        [4.0 / 3.0, 2.0 / 3.0, 4.0 / 3.0]
    );
    assert!(class_weights(&[3, 0]).is_err());
}

#[test]
fn augmentation_matches_cpu_reference_and_is_exact_when_off() {
    use fer_wgpu::gpu::{DType, GpuTensor};
    use fer_wgpu::ops::augment::{self, Augment};
    let ctx = gpu();
    let shape = [6, 1, 17, 23];
    let mut r = rng(77);
    let x_h = rand_vec(&mut r, shape.iter().product());
    let order_h: Vec<u32> = vec![4, 9, 0, 2, 7, 5, 1, 3, 8, 6];
    let x = GpuTensor::from_f32(ctx, "x", &shape, &x_h).unwrap();
    let order = GpuTensor::from_u32(ctx, "order", &[10], &order_h).unwrap();
    let y = GpuTensor::zeros(ctx, "y", &shape, DType::F32).unwrap();
    let settings = [
        (Augment::default(), 3u32, 2u32),
        (
            Augment {
                flip: true,
                rotate_degrees: 30.0,
                zoom: 0.3,
                shift: 0.2,
                brightness: 0.5,
                contrast: 0.5,
            },
            1,
            4,
        ),
    ];
    for (a, epoch, offset) in settings {
        let p = augment::AugmentParams {
            epoch,
            offset,
            ..a.params(shape, 10, 99)
        };
        ctx.submit(&[&augment::forward(ctx, &p, &x, &order, &y).unwrap()])
            .unwrap();
        let want = fer_wgpu::cpu::augment::augment_forward(&p, &x_h, &order_h);
        // Bilinear weights from f32 sin/cos, which may differ by an ulp between the shader
        // and Rust, times pixel values of about 1: a few 1e-6.
        assert_close(
            &format!("{a:?} epoch {epoch}"),
            &y.read_f32(ctx).unwrap(),
            &want,
            Tolerance {
                abs: 2e-5,
                rel: 2e-5,
                why: "f32 trigonometry in bilinear weights",
            },
        );
        let other = augment::AugmentParams {
            epoch: epoch + 1,
            ..p
        };
        assert_ne!(
            fer_wgpu::cpu::augment::augment_forward(&other, &x_h, &order_h),
            want,
            "a new epoch draws new transforms"
        );
    }
    // All ranges zero and no flip: the exact input.
    let off = Augment {
        flip: false,
        rotate_degrees: 0.0,
        zoom: 0.0,
        shift: 0.0,
        brightness: 0.0,
        contrast: 0.0,
    };
    let p = off.params(shape, 10, 5);
    ctx.submit(&[&augment::forward(ctx, &p, &x, &order, &y).unwrap()])
        .unwrap();
    assert_eq!(y.read_f32(ctx).unwrap(), x_h);
    // Flip only: each image is itself or its exact mirror.
    let flip = Augment { flip: true, ..off };
    let p = flip.params(shape, 10, 5);
    ctx.submit(&[&augment::forward(ctx, &p, &x, &order, &y).unwrap()])
        .unwrap();
    let got = y.read_f32(ctx).unwrap();
    let (h, w) = (17, 23);
    let mut flipped = 0;
    for n in 0..6 {
        let img = &x_h[n * h * w..(n + 1) * h * w];
        let out = &got[n * h * w..(n + 1) * h * w];
        let mirror: Vec<f32> = (0..h * w)
            .map(|i| img[(i / w) * w + (w - 1 - i % w)])
            .collect();
        assert!(out == img || out == mirror.as_slice(), "image {n}");
        flipped += (out == mirror.as_slice()) as usize;
    }
    assert!(
        flipped > 0 && flipped < 6,
        "some but not all flipped: {flipped}"
    );
}
