//! PNG plots of a run: learning curves and a confusion matrix. Text is drawn with the DejaVu
//! Sans font embedded in the binary, so plotting works on a machine without fonts.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::train::EpochRecord;

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a valid TTF compiled into the binary; failing here is a build defect.
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| ())
            .expect("the embedded DejaVu Sans font loads");
    });
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Data {
        path: path.display().to_string(),
        msg: format!("cannot draw the plot: {e}"),
    }
}

/// Loss (left) and accuracy (right) per epoch, training and validation, for each run in
/// `runs` (label, history); written to `path` through a temporary file.
pub fn learning_curves(path: &Path, runs: &[(String, Vec<EpochRecord>)]) -> Result<()> {
    register_font();
    let tmp = path.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (1200, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let (left, right) = root.split_horizontally(600);
        let epochs = runs.iter().map(|(_, h)| h.len()).max().unwrap_or(1).max(2) as f64;
        let max_loss = runs
            .iter()
            .flat_map(|(_, h)| h.iter().flat_map(|r| [Some(r.train_loss), r.val_loss]))
            .flatten()
            .filter(|v| v.is_finite())
            .fold(0.1f64, f64::max);
        let panels: [(&DrawingArea<_, _>, &str, f64); 2] =
            [(&left, "loss", max_loss * 1.05), (&right, "accuracy", 1.0)];
        for (area, what, top) in panels {
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{what} per epoch"), ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(1f64..epochs, 0f64..top)
                .map_err(|e| plot_err(path, e))?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .x_label_formatter(&|x| format!("{}", x.round() as i64))
                .y_desc(what)
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| plot_err(path, e))?;
            for (i, (label, history)) in runs.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                let pick = |r: &EpochRecord, val: bool| match (what, val) {
                    ("loss", false) => Some(r.train_loss),
                    ("loss", true) => r.val_loss,
                    (_, false) => Some(r.train_accuracy),
                    (_, true) => r.val_accuracy,
                };
                for val in [false, true] {
                    let points: Vec<(f64, f64)> = history
                        .iter()
                        .filter_map(|r| pick(r, val).map(|v| (r.epoch as f64, v)))
                        .collect();
                    if points.is_empty() {
                        continue;
                    }
                    // Training: a thick line; validation: a thin, lighter one.
                    let style = if val {
                        color.mix(0.55).stroke_width(1)
                    } else {
                        color.stroke_width(2)
                    };
                    let name = format!("{label} {}", if val { "val" } else { "train" });
                    chart
                        .draw_series(LineSeries::new(points, style))
                        .map_err(|e| plot_err(path, e))?
                        .label(name)
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
                }
            }
            if runs.len() <= 4 {
                chart
                    .configure_series_labels()
                    .label_font(("sans-serif", 13))
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| plot_err(path, e))?;
            }
        }
        root.present().map_err(|e| plot_err(path, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| plot_err(path, e))
}

/// The confusion matrix (rows: true class, columns: predicted), shaded by each row's share,
/// with the counts written in the cells.
pub fn confusion_matrix(path: &Path, classes: &[String], confusion: &[Vec<u64>]) -> Result<()> {
    register_font();
    let k = classes.len();
    let cell = 64i32;
    let margin = 110i32;
    let size = (margin + cell * k as i32 + 20) as u32;
    let tmp = path.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (size, size + 30)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let text = |s: &str, x: i32, y: i32, size: i32| {
            Text::new(s.to_string(), (x, y), ("sans-serif", size).into_font())
        };
        root.draw(&text(
            "true class (rows) by predicted class (columns)",
            10,
            6,
            16,
        ))
        .map_err(|e| plot_err(path, e))?;
        for (t, row) in confusion.iter().enumerate() {
            let total: u64 = row.iter().sum::<u64>().max(1);
            let y = margin + cell * t as i32;
            root.draw(&text(&classes[t], 8, y + cell / 2 - 8, 14))
                .map_err(|e| plot_err(path, e))?;
            for (p, &count) in row.iter().enumerate() {
                let x = margin + cell * p as i32;
                let share = count as f64 / total as f64;
                let shade = (255.0 * (1.0 - 0.85 * share)) as u8;
                let fill = RGBColor(shade, shade, 255);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    fill.filled(),
                ))
                .map_err(|e| plot_err(path, e))?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    BLACK.mix(0.3),
                ))
                .map_err(|e| plot_err(path, e))?;
                root.draw(&text(
                    &count.to_string(),
                    x + cell / 2 - 8,
                    y + cell / 2 - 8,
                    16,
                ))
                .map_err(|e| plot_err(path, e))?;
            }
        }
        for (p, name) in classes.iter().enumerate() {
            let x = margin + cell * p as i32 + 4;
            root.draw(&text(
                &name.chars().take(8).collect::<String>(),
                x,
                margin - 22,
                13,
            ))
            .map_err(|e| plot_err(path, e))?;
        }
        root.present().map_err(|e| plot_err(path, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| plot_err(path, e))
}
