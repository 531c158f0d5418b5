//! Comparing a GPU result with its CPU reference: error statistics and named tolerances.
//!
//! The rule is `|gpu - ref| <= abs + rel * scale` for every element, where `scale` is the
//! largest `|ref|` of the tensor. Measuring against the tensor's scale, not each element,
//! keeps sums that cancel to near zero from reporting huge relative errors that mean nothing.

/// How far a result is from its reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ErrorStats {
    /// Largest `|gpu - ref|`.
    pub max_abs: f64,
    /// `max_abs / scale`, the figure reported as "max relative error".
    pub max_rel: f64,
    /// Largest `|ref|`.
    pub scale: f64,
    /// Where the largest absolute error is.
    pub worst: usize,
}

/// Error statistics of `got` against `want` (same length; NaN anywhere counts as infinite).
pub fn error_stats(got: &[f32], want: &[f32]) -> ErrorStats {
    assert_eq!(got.len(), want.len(), "compared tensors differ in length");
    let scale = want.iter().fold(0.0f64, |m, &v| m.max((v as f64).abs()));
    let (mut max_abs, mut worst) = (0.0f64, 0usize);
    for (i, (&g, &r)) in got.iter().zip(want).enumerate() {
        let e = (g as f64 - r as f64).abs();
        let e = if e.is_nan() { f64::INFINITY } else { e };
        if e > max_abs {
            (max_abs, worst) = (e, i);
        }
    }
    let max_rel = if scale > 0.0 {
        max_abs / scale
    } else {
        max_abs
    };
    ErrorStats {
        max_abs,
        max_rel,
        scale,
        worst,
    }
}

/// An acceptance bound `abs + rel * scale`, with the reason it is what it is.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    pub abs: f64,
    pub rel: f64,
    pub why: &'static str,
}

impl Tolerance {
    /// Bit-identical: ops that copy or select values and never round (max pooling, ReLU).
    pub const EXACT: Self = Self {
        abs: 0.0,
        rel: 0.0,
        why: "no arithmetic that rounds",
    };
    /// Short f32 sums (tens of terms) or single transcendental calls against f64: a few ulps
    /// of the scale.
    pub const TIGHT: Self = Self {
        abs: 1e-6,
        rel: 2e-6,
        why: "short f32 sums against an f64 reference",
    };
    /// Long f32 sums (hundreds to tens of thousands of terms) against f64: rounding grows
    /// with the number of terms, about sqrt(terms) ulps in practice, bounded here with room.
    pub const REDUCTION: Self = Self {
        abs: 1e-5,
        rel: 2e-5,
        why: "long f32 sums in a different order from f64",
    };
    /// Results that go through a normalization (batch norm's 1/sqrt(var + eps), softmax):
    /// errors in the statistics are amplified by 1/std.
    pub const NORMALIZED: Self = Self {
        abs: 2e-5,
        rel: 5e-5,
        why: "f32 statistics and inverseSqrt, amplified by 1/std",
    };

    /// Whether every element is within `abs + rel * scale`.
    pub fn accepts(&self, stats: &ErrorStats) -> bool {
        stats.max_abs <= self.abs + self.rel * stats.scale
    }
}

/// Panics with both tensors' values around the worst element unless `got` is within `tol`.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: Tolerance) {
    let stats = error_stats(got, want);
    if tol.accepts(&stats) {
        return;
    }
    let lo = stats.worst.saturating_sub(3);
    let hi = (stats.worst + 4).min(got.len());
    let rows: Vec<String> = (lo..hi)
        .map(|i| format!("  [{i}] gpu {:>14.8e}  ref {:>14.8e}", got[i], want[i]))
        .collect();
    panic!(
        "{what}: max abs error {:.3e} at [{}] exceeds {:.1e} + {:.1e} * scale {:.3e} ({})\n{}",
        stats.max_abs,
        stats.worst,
        tol.abs,
        tol.rel,
        stats.scale,
        tol.why,
        rows.join("\n")
    );
}
