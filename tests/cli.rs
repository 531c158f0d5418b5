//! The real `fer` binary, end to end.

use std::process::Command;

fn fer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fer"))
        .args(args)
        .output()
        .expect("run fer")
}

#[test]
fn demo_runs_every_op_on_the_gpu_and_agrees_with_the_cpu() {
    let out = fer(&["demo", "--batch", "4", "--seed", "7"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fer demo failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("forward") || l.contains("backward"))
        .collect();
    assert!(
        rows.len() >= 25,
        "expected a row per op direction:\n{stdout}"
    );
    for op in [
        "conv2d",
        "maxpool",
        "avgpool",
        "global avgpool",
        "batchnorm",
        "relu",
        "dropout",
        "dense",
        "softmax xent",
    ] {
        assert!(
            rows.iter().any(|r| r.starts_with(op)),
            "no {op} row:\n{stdout}"
        );
    }
    for row in rows {
        // The last column is the max relative error against the CPU reference.
        let rel: f64 = row.split_whitespace().last().unwrap().parse().unwrap();
        assert!(rel < 1e-5, "row exceeds 1e-5 relative error: {row}");
    }
    let loss_line = stdout
        .lines()
        .find(|l| l.starts_with("loss:"))
        .expect("a loss line");
    let nums: Vec<f64> = loss_line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!((nums[0] - nums[1]).abs() < 1e-5, "{loss_line}");
}

#[test]
fn devices_lists_the_adapter() {
    let out = fer(&["devices"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.starts_with("[0] "),
        "expected a numbered adapter list:\n{stdout}"
    );
    assert!(stdout.contains("max storage binding"), "{stdout}");
}

#[test]
fn bad_arguments_fail_with_a_clear_message() {
    let out = fer(&["demo", "--batch", "0"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "clap's usage errors exit with 2"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--batch"));
    let out = fer(&["demo", "--backend", "vulkano"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--backend \"vulkano\" is not valid"),
        "{stderr}"
    );
    let out = fer(&["demo", "--adapter", "no-such-gpu"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no GPU adapter found") && stderr.contains("Adapters found"),
        "{stderr}"
    );
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fer-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Small, quick training settings on the synthetic set.
const QUICK: &[&str] = &[
    "--input-size",
    "24",
    "--epochs",
    "2",
    "--batch",
    "16",
    "--quiet",
];

#[test]
fn train_then_evaluate_and_predict_with_its_checkpoint() {
    let out = temp_dir("train");
    let mut args = vec!["train", "--out", out.to_str().unwrap(), "--folds", "2"];
    args.extend(QUICK);
    let run = fer(&args);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("test accuracy over 2 run(s)"), "{stdout}");
    for file in [
        "settings.toml",
        "metrics.csv",
        "summary.json",
        "report.md",
        "learning_curves.png",
        "confusion.png",
        "runs/seed42-fold-1-2/best.safetensors",
        "runs/seed42-fold-2-2/last.safetensors",
    ] {
        assert!(out.join(file).is_file(), "missing {file}");
    }
    assert!(
        !out.join("state.json").exists(),
        "a finished run leaves no resume state"
    );
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(
        metrics.lines().count(),
        1 + 2 * 2,
        "a header and a line per run and epoch"
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let runs = summary["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let test_images: u64 = runs
        .iter()
        .map(|r| r["test_images"].as_u64().unwrap())
        .sum();
    assert_eq!(
        test_images, 210,
        "2-fold cross-validation tests every image once"
    );
    let total: u64 = summary["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()))
        .sum();
    assert_eq!(total, 210, "the summed confusion counts every test image");
    let settings = std::fs::read_to_string(out.join("settings.toml")).unwrap();
    assert!(
        settings.contains("folds = 2") && settings.contains("epochs = 2"),
        "{settings}"
    );
    let png = std::fs::read(out.join("learning_curves.png")).unwrap();
    assert_eq!(&png[..4], b"\x89PNG");

    // The synthetic set on disk, then evaluate and predict with the checkpoint.
    let faces = temp_dir("faces");
    let synth = fer(&["synth", "--out", faces.to_str().unwrap()]);
    assert!(synth.status.success());
    assert!(faces.join("contact-sheet.png").is_file());
    let ckpt = out.join("runs/seed42-fold-1-2/best.safetensors");
    let eval = fer(&["evaluate", ckpt.to_str().unwrap(), faces.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&eval.stdout);
    assert!(
        eval.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    assert!(
        text.contains("on 210 images") && text.contains("precision") && text.contains("confusion"),
        "{text}"
    );
    let images: Vec<String> = ["XA.HA1.4.tiff", "XB.SU2.32.tiff"]
        .iter()
        .map(|f| faces.join(f).display().to_string())
        .collect();
    let pred = fer(&[
        "predict",
        ckpt.to_str().unwrap(),
        &images[0],
        &images[1],
        "--json",
    ]);
    assert!(
        pred.status.success(),
        "{}",
        String::from_utf8_lossy(&pred.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&pred.stdout).unwrap();
    for row in rows.as_array().unwrap() {
        let probs = row["probabilities"].as_object().unwrap();
        assert_eq!(probs.len(), 7);
        let sum: f64 = probs.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-4, "probabilities sum to {sum}");
    }
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&faces).unwrap();
}

/// The weights of a checkpoint, as bits.
fn weight_bits(path: &std::path::Path) -> Vec<(String, Vec<u32>)> {
    let ckpt = fer_wgpu::model::Checkpoint::load(path).unwrap();
    ckpt.params
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.data.iter().map(|v| v.to_bits()).collect()))
        .collect()
}

#[test]
fn ctrl_c_saves_the_run_and_resume_continues_it_exactly() {
    use std::io::{BufRead, BufReader};
    let settings = [
        "--input-size",
        "24",
        "--epochs",
        "4",
        "--batch",
        "8",
        "--patience",
        "0",
    ];
    let whole = temp_dir("whole");
    let mut args = vec!["train", "--out", whole.to_str().unwrap(), "--quiet"];
    args.extend(settings);
    assert!(fer(&args).status.success());

    let parted = temp_dir("parted");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fer"))
        .args(["train", "--out", parted.to_str().unwrap()])
        .args(settings)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    // Interrupt once the first epoch has ended: the stop then lands inside the second.
    for line in lines.by_ref() {
        if line.unwrap().contains("epoch 1:") {
            break;
        }
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(rest.iter().any(|l| l.contains("--resume")), "{rest:?}");
    assert!(parted.join("state.json").is_file());
    let resumed = fer(&["train", "--resume", parted.to_str().unwrap(), "--quiet"]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let last = "runs/seed42-random/last.safetensors";
    assert!(
        weight_bits(&whole.join(last)) == weight_bits(&parted.join(last)),
        "an interrupted and resumed run ends with the same weights as an uninterrupted one"
    );
    std::fs::remove_dir_all(&whole).unwrap();
    std::fs::remove_dir_all(&parted).unwrap();
}

#[test]
fn bad_training_input_exits_2_with_a_clear_message() {
    let out = temp_dir("bad");
    let o = out.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["train", "--lr", "0", "--out", o],
            "learning rate must be > 0",
        ),
        (
            &["train", "--lr", "-1", "--out", o],
            "learning rate must be > 0",
        ),
        (
            &["train", "--batch", "1000", "--out", o],
            "batch size 1000 is larger than the",
        ),
        (
            &[
                "train",
                "--model",
                "small-vgg",
                "--input-size",
                "8",
                "--out",
                o,
            ],
            "try a larger --input-size",
        ),
        (
            &["train", "/no/such/data", "--out", o],
            "no such file or folder",
        ),
        (
            &["train", "--out", "/proc/fer-cannot-write"],
            "choose another --out",
        ),
        (
            &["train", "--optimizer", "adagrad", "--out", o],
            "unknown optimizer",
        ),
        (&["train", "--frobnicate"], "unexpected argument"),
        (
            &[
                "train",
                "--backend",
                "cpu",
                "--split",
                "loso",
                "--task",
                "happy",
                "--out",
                o,
            ],
            "fewer than 2 classes",
        ),
    ];
    for (args, want) in cases {
        let r = fer(args);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(want),
            "{args:?}: expected {want:?} in {stderr}"
        );
        assert!(
            !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
            "{args:?} wrote into the run folder"
        );
    }
}

#[test]
fn without_an_adapter_auto_falls_back_to_the_cpu_and_gpu_is_an_error() {
    // No Metal adapter exists on Linux: a stand-in for a machine without any GPU.
    let out = temp_dir("cpu-fallback");
    let o = out.to_str().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_fer"))
        .env("FER_BACKEND", "metal")
        .args([
            "train",
            "--out",
            o,
            "--input-size",
            "16",
            "--epochs",
            "1",
            "--batch",
            "32",
            "--quiet",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: no GPU adapter found, training on the CPU reference"),
        "{stderr}"
    );
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(summary.contains("cpu reference"), "{summary}");
    std::fs::remove_dir_all(&out).unwrap();

    let run = Command::new(env!("CARGO_BIN_EXE_fer"))
        .args(["train", "--backend", "metal", "--out", o, "--epochs", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no GPU adapter found") && stderr.contains("mesa-vulkan-drivers"),
        "{stderr}"
    );
    assert!(
        !out.exists(),
        "nothing is written when the run cannot start"
    );
}

#[test]
fn settings_come_from_a_toml_file_and_flags_override_it() {
    let dir = temp_dir("config");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("settings.toml");
    std::fs::write(
        &config,
        "epochs = 1\nbatch_size = 32\ninput_size = 16\noptimizer = \
        \"sgd\"\nlr = 0.02\n\n[augmentation]\nflip = false\nrotate_degrees = 5.0\nzoom = 0.0\n\
        shift = 0.0\nbrightness = 0.0\ncontrast = 0.0\n",
    )
    .unwrap();
    let out = dir.join("run");
    let run = fer(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--lr",
        "0.03",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let used = std::fs::read_to_string(out.join("settings.toml")).unwrap();
    for line in [
        "epochs = 1",
        "batch_size = 32",
        "optimizer = \"sgd\"",
        "lr = 0.03",
        "rotate_degrees = 5.0",
    ] {
        assert!(
            used.contains(line),
            "{line:?} missing from the recorded settings:\n{used}"
        );
    }
    std::fs::write(&config, "epochs = 1\nlearning_rate = 0.1\n").unwrap();
    let bad = fer(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--out",
        dir.join("run2").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("learning_rate") && stderr.contains("not valid settings"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn face_mode_trains_and_predict_finds_aligns_and_saves_the_face_of_a_photo() {
    let dir = temp_dir("face");
    let (out, cache) = (dir.join("run"), dir.join("cache"));
    let mut args = vec![
        "train",
        "--preprocess",
        "face",
        "--cache",
        cache.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--input-size",
        "24",
        "--quiet",
    ];
    let run = fer(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["faces"]["images"], 210, "{}", summary["faces"]);
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("Preprocessing: face mode; face found in"),
        "{report}"
    );
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        1,
        "one cache file"
    );
    let settings = std::fs::read_to_string(out.join("settings.toml")).unwrap();
    assert!(settings.contains("preprocess = \"face\""), "{settings}");

    // An ordinary photo: a face off-centre on a larger plain background, as PNG.
    let face = fer_wgpu::data::synth::generate(&fer_wgpu::data::synth::SynthOptions {
        people: 1,
        per_expression: 1,
        ..Default::default()
    })
    .swap_remove(0);
    let mut photo = image::GrayImage::from_pixel(480, 360, image::Luma([70]));
    image::imageops::replace(&mut photo, &face.image, 200, 60);
    let photo_path = dir.join("photo.png");
    photo.save(&photo_path).unwrap();
    let crops = dir.join("crops");
    let ckpt = out.join("runs/seed42-random/best.safetensors");
    let pred = fer(&[
        "predict",
        ckpt.to_str().unwrap(),
        photo_path.to_str().unwrap(),
        "--json",
        "--save-crops",
        crops.to_str().unwrap(),
    ]);
    assert!(
        pred.status.success(),
        "{}",
        String::from_utf8_lossy(&pred.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&pred.stdout).unwrap();
    let found = &rows[0]["face"];
    let [l, t, w, h] = face.face_box;
    let (cx, cy) = (l + w / 2.0 + 200.0, t + h / 2.0 + 60.0);
    let b = &found["face"];
    let bx = b["left"].as_f64().unwrap() + b["width"].as_f64().unwrap() / 2.0;
    let by = b["top"].as_f64().unwrap() + b["height"].as_f64().unwrap() / 2.0;
    assert!(
        (bx - cx as f64).abs() < 0.2 * w as f64 && (by - cy as f64).abs() < 0.2 * h as f64,
        "reported box {b} for a face centred at ({cx}, {cy})"
    );
    assert!(found["eyes"].is_object(), "aligned: {found}");
    let crop = image::open(crops.join("photo.png")).unwrap();
    assert_eq!(
        (crop.width(), crop.height()),
        (24, 24),
        "the network's input size"
    );

    // The table names the face box too; a photo with no face says it used the fallback.
    let blank = dir.join("blank.png");
    image::GrayImage::from_pixel(300, 200, image::Luma([128]))
        .save(&blank)
        .unwrap();
    args = vec![
        "predict",
        ckpt.to_str().unwrap(),
        photo_path.to_str().unwrap(),
        blank.to_str().unwrap(),
    ];
    let table = fer(&args);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success());
    assert!(
        text.contains("face: box") && text.contains("eyes levelled"),
        "{text}"
    );
    assert!(text.contains("face: none (no face found)"), "{text}");
    assert!(
        String::from_utf8_lossy(&table.stderr).contains("blank.png: no face found"),
        "a warning names the image"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_writes_a_roofline_report_and_compares_two() {
    let dir = temp_dir("bench");
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let args = [
        "bench",
        "--model",
        "fer-net",
        "--batch",
        "1",
        "--repeats",
        "1",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
    ];
    let out = fer(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fer bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in ["peaks:", "GFLOP/s", "conv1", "bwd-param", "training step:"] {
        assert!(stdout.contains(want), "no {want:?} in:\n{stdout}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report["peaks"]["gflops"].as_f64().unwrap() > 0.0);
    assert!(report["peaks"]["gbps"].as_f64().unwrap() > 0.0);
    let layers = report["layers"].as_array().unwrap();
    // conv1 of fer-net at batch 1: 48x48 positions, 16 filters of 1x3x3, 2 FLOPs each.
    let conv1 = layers
        .iter()
        .find(|l| l["layer"] == "conv1" && l["pass"] == "forward")
        .expect("a conv1 forward row");
    assert_eq!(
        conv1["flops"].as_f64().unwrap(),
        (2 * 48 * 48 * 16 * 9) as f64
    );
    for l in layers.iter().filter(|l| !l["roofline_fraction"].is_null()) {
        let f = l["roofline_fraction"].as_f64().unwrap();
        assert!(f > 0.0 && f.is_finite(), "fraction {f} in {l}");
        assert!(l["ms"].as_f64().unwrap() > 0.0, "time in {l}");
    }

    // A second run against the first: a speed-up per layer.
    let mut compare = args.to_vec();
    compare.truncate(compare.len() - 2);
    compare.extend(["--compare", json.to_str().unwrap()]);
    let out = fer(&compare);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("speedup"), "{stdout}");

    // A file that is not a report fails before measuring, naming the flag.
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{}").unwrap();
    let out = fer(&["bench", "--compare", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--compare") && stderr.contains("fer bench --json"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
