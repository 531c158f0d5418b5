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
    assert!(!out.status.success());
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
