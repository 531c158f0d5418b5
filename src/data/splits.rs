//! Seeded splits: stratified train/validation/test by fractions, stratified k-fold, and
//! leave-one-subject-out. Random splits put the same person in training and test and
//! overstate how well a model does on new people; leave-one-subject-out does not.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{shape_err, Result};

/// Indices of one split of a data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// What is held out: "fold 2/5", "subject KA", "random".
    pub name: String,
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

fn shuffle(v: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.random_range(0..=i));
    }
}

/// Indices per class, each shuffled by the seed.
fn by_class(labels: &[u32], seed: u64) -> Vec<Vec<usize>> {
    let k = labels.iter().max().map_or(0, |&m| m as usize + 1);
    let mut rng = ChaCha8Rng::seed_from_u64(crate::seed::derive(seed, "split"));
    let mut groups = vec![vec![]; k];
    for (i, &l) in labels.iter().enumerate() {
        groups[l as usize].push(i);
    }
    groups.iter_mut().for_each(|g| shuffle(g, &mut rng));
    groups
}

/// Train / validation / test by fractions (test = the rest), stratified: each class is split
/// in the same proportions, rounding to whole images per class.
pub fn stratified(labels: &[u32], val: f64, test: f64, seed: u64) -> Result<Split> {
    if !(0.0..1.0).contains(&val) || !(0.0..1.0).contains(&test) || val + test >= 1.0 {
        return Err(shape_err(
            "split",
            format!(
                "validation {val} and test {test} fractions must \
            be in [0, 1) and leave some training data"
            ),
        ));
    }
    let mut split = Split {
        name: "random".into(),
        train: vec![],
        val: vec![],
        test: vec![],
    };
    for group in by_class(labels, seed) {
        let n = group.len() as f64;
        let n_test = (n * test).round() as usize;
        let n_val = (n * val).round() as usize;
        split.test.extend(&group[..n_test]);
        split.val.extend(&group[n_test..n_test + n_val]);
        split.train.extend(&group[n_test + n_val..]);
    }
    for v in [&mut split.train, &mut split.val, &mut split.test] {
        v.sort_unstable();
    }
    if split.train.is_empty() {
        return Err(shape_err("split", "no training images are left"));
    }
    Ok(split)
}

/// Stratified k-fold: each class's images dealt round-robin into k folds; fold i is the test
/// set of split i and the rest trains.
pub fn kfold(labels: &[u32], k: usize, seed: u64) -> Result<Vec<Split>> {
    if k < 2 || k > labels.len() {
        return Err(shape_err(
            "split",
            format!("{k} folds need 2 <= k <= {} images", labels.len()),
        ));
    }
    let mut folds = vec![vec![]; k];
    let mut next = 0;
    for group in by_class(labels, seed) {
        for i in group {
            folds[next % k].push(i);
            next += 1;
        }
    }
    Ok((0..k)
        .map(|f| {
            let mut test = folds[f].clone();
            test.sort_unstable();
            let mut train: Vec<usize> = folds
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != f)
                .flat_map(|(_, v)| v.clone())
                .collect();
            train.sort_unstable();
            Split {
                name: format!("fold {}/{k}", f + 1),
                train,
                val: vec![],
                test,
            }
        })
        .collect())
}

/// Leave-one-subject-out: one split per subject (in name order), testing on that subject.
pub fn leave_one_subject_out(subjects: &[String]) -> Result<Vec<Split>> {
    if let Some(i) = subjects.iter().position(|s| s.is_empty()) {
        return Err(shape_err(
            "split",
            format!(
                "image {i} has no subject; leave-one-subject-out \
            needs the JAFFE layout or a subject pattern for the folder layout"
            ),
        ));
    }
    let mut names: Vec<&String> = subjects.iter().collect();
    names.sort();
    names.dedup();
    if names.len() < 2 {
        return Err(shape_err(
            "split",
            "leave-one-subject-out needs at least 2 subjects",
        ));
    }
    Ok(names
        .into_iter()
        .map(|s| {
            let (test, train): (Vec<usize>, Vec<usize>) =
                (0..subjects.len()).partition(|&i| &subjects[i] == s);
            Split {
                name: format!("subject {s}"),
                train,
                val: vec![],
                test,
            }
        })
        .collect())
}

/// Images per class among `indices`.
pub fn class_counts(labels: &[u32], indices: &[usize], k: usize) -> Vec<usize> {
    let mut counts = vec![0; k];
    indices
        .iter()
        .for_each(|&i| counts[labels[i] as usize] += 1);
    counts
}

/// Inverse-frequency class weights, `total / (k * count)` (1 for a balanced set). A class with
/// no training images has no finite weight: an error naming it.
pub fn class_weights(counts: &[usize]) -> Result<Vec<f32>> {
    let total: usize = counts.iter().sum();
    if let Some(c) = counts.iter().position(|&c| c == 0) {
        return Err(shape_err(
            "class weights",
            format!("class {c} has no training images"),
        ));
    }
    Ok(counts
        .iter()
        .map(|&c| total as f32 / (counts.len() * c) as f32)
        .collect())
}
