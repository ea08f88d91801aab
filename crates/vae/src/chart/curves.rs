//! `curves.png`: a run's `metrics.csv` columns against the epoch, one panel per quantity, with
//! the training and test columns of a quantity (`train_neg_elbo`, `test_neg_elbo`) on shared
//! axes.

use std::ops::Range;
use std::path::Path;

use plotters::prelude::{
    BLACK, ChartBuilder, Circle, Color, IntoFont, LineSeries, PathElement, RGBColor,
    SeriesLabelPosition, WHITE,
};

use super::{Canvas, FONT, panel_grid, save_chart};
use crate::image::ImageError;

/// The size of one panel in pixels (width, height).
pub const PANEL_PX: (u32, u32) = (480, 320);

/// Panels side by side in a row of the figure.
pub const PANEL_COLUMNS: usize = 2;

/// Training columns in blue, test columns in red, any other in black.
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const TEST: RGBColor = RGBColor(214, 39, 40);

/// The size of a figure of `panels` panels.
pub fn curves_size(panels: usize) -> (u32, u32) {
    let cols = panels.clamp(1, PANEL_COLUMNS);
    let rows = panels.div_ceil(PANEL_COLUMNS).max(1);
    (PANEL_PX.0 * cols as u32, PANEL_PX.1 * rows as u32)
}

/// The panels of a `metrics.csv` header: each quantity (a column's name without its `train_` or
/// `test_` prefix) with the indices of its columns, in the order the quantities first appear.
/// `epoch` (the x axis) and `seconds` (not a metric) get none.
pub fn panels(header: &[&str]) -> Vec<(String, Vec<usize>)> {
    let mut panels: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, name) in header.iter().enumerate() {
        if matches!(*name, "epoch" | "seconds") {
            continue;
        }
        let quantity = name
            .strip_prefix("train_")
            .or_else(|| name.strip_prefix("test_"))
            .unwrap_or(name);
        match panels.iter_mut().find(|(q, _)| q == quantity) {
            Some((_, columns)) => columns.push(i),
            None => panels.push((quantity.to_string(), vec![i])),
        }
    }
    panels
}

/// A quantity's title and its y axis' label.
fn title(quantity: &str) -> (&str, &str) {
    match quantity {
        "neg_elbo" => ("-ELBO", "nats per image"),
        "recon" => ("reconstruction", "nats per image"),
        "kl" => ("KL", "nats per image"),
        "loss" => ("training objective", "per image"),
        "error" => ("classification error", "fraction"),
        other => (other, "value"),
    }
}

/// Draws the columns of the CSV text `csv` (a header, then a row per epoch, as `metrics.csv`
/// holds them) against its `epoch` column into `path`, [`curves_size`] pixels. Non-finite values
/// are left out of the lines.
pub fn save_curves(path: &Path, csv: &str) -> Result<(), ImageError> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .filter(|r: &Vec<f64>| r.len() == header.len())
        .collect();
    let epoch = header.iter().position(|&h| h == "epoch");
    let panels = panels(&header);
    save_chart(path, curves_size(panels.len()), |root| {
        let areas = panel_grid(root, panels.len());
        for ((quantity, columns), area) in panels.iter().zip(&areas) {
            let series: Vec<(&str, Vec<(f64, f64)>)> = columns
                .iter()
                .map(|&c| {
                    let points = rows
                        .iter()
                        .enumerate()
                        .map(|(i, r)| (epoch.map_or(i as f64 + 1.0, |e| r[e]), r[c]))
                        .filter(|(x, y)| x.is_finite() && y.is_finite())
                        .collect();
                    (header[c], points)
                })
                .collect();
            panel(area, title(quantity), &series)?;
        }
        Ok(())
    })
}

/// `lo..hi` of `values` padded by 5% on each side (by 1 when they are all equal; `0..1` when
/// there are none).
fn padded_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return 0.0..1.0;
    }
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 1.0 };
    lo - pad..hi + pad
}

/// One panel: the named series on shared axes with a legend.
fn panel(
    area: &Canvas<'_>,
    (title, unit): (&str, &str),
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), String> {
    let points = || series.iter().flat_map(|(_, p)| p.iter());
    let x_max = points().map(|p| p.0).fold(1.0, f64::max);
    let x = 1.0..x_max.max(2.0);
    // Whole epochs only: no more ticks than epochs.
    let x_ticks = ((x.end - x.start) as usize + 1).min(8);
    let y = padded_range(points().map(|p| p.1));
    // The legend goes in the right-hand corner the curves leave free at the last epoch.
    let last = series.iter().filter_map(|(_, p)| p.last().map(|p| p.1));
    let legend = if last.fold(f64::NEG_INFINITY, f64::max) > 0.5 * (y.start + y.end) {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperRight
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 18).into_font())
        .margin(10)
        .x_label_area_size(38)
        .y_label_area_size(62)
        .build_cartesian_2d(x, y)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(unit)
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .x_labels(x_ticks)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_labels(6)
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, points) in series {
        let color = if name.starts_with("train_") {
            TRAIN
        } else if name.starts_with("test_") {
            TEST
        } else {
            BLACK
        };
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 2, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .label_font((FONT, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::test_png;

    #[test]
    fn columns_group_by_quantity_train_and_test_together() {
        let header = [
            "epoch",
            "train_neg_elbo",
            "test_neg_elbo",
            "test_recon",
            "test_kl",
            "seconds",
        ];
        let p = panels(&header);
        let names: Vec<&str> = p.iter().map(|(q, _)| q.as_str()).collect();
        assert_eq!(names, ["neg_elbo", "recon", "kl"]);
        assert_eq!(p[0].1, [1, 2]);
        // M2's columns: the objective and the error each get a panel of their own.
        let m2 = [
            "epoch",
            "train_loss",
            "test_neg_elbo",
            "test_error",
            "seconds",
        ];
        let names: Vec<String> = panels(&m2).into_iter().map(|(q, _)| q).collect();
        assert_eq!(names, ["loss", "neg_elbo", "error"]);
    }

    #[test]
    fn sizes_follow_the_panel_grid() {
        // 3 panels: 2 to a row, 2 rows.
        assert_eq!(curves_size(3), (2 * PANEL_PX.0, 2 * PANEL_PX.1));
        assert_eq!(curves_size(1), PANEL_PX);
        assert_eq!(curves_size(4), (2 * PANEL_PX.0, 2 * PANEL_PX.1));
    }

    #[test]
    fn ranges_pad_and_survive_one_value() {
        assert_eq!(padded_range([0.0, 10.0].into_iter()), -0.5..10.5);
        assert_eq!(padded_range([3.0].into_iter()), 2.0..4.0);
        assert_eq!(padded_range(std::iter::empty()), 0.0..1.0);
    }

    #[test]
    fn draws_a_png_with_text_and_both_colours() {
        let dir = std::env::temp_dir().join(format!("henbun-curves-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("curves.png");
        let csv = "epoch,train_neg_elbo,test_neg_elbo,test_recon,test_kl,seconds\n\
                   1,160.0,130.0,105.0,25.0,4.0\n\
                   2,120.0,NaN,90.0,26.0,4.0\n\
                   3,110.0,108.0,80.0,28.0,4.0\n";
        save_curves(&path, csv).unwrap();
        let (width, height, color, pixels) = test_png::read(&path);
        assert_eq!((width, height), curves_size(3));
        assert_eq!(color, png::ColorType::Rgb);
        let has = |c: RGBColor| pixels.chunks(3).any(|p| p == [c.0, c.1, c.2]);
        assert!(has(TRAIN) && has(TEST), "both series drawn");
        // Text (the captions, the ticks) leaves dark pixels outside the white background.
        assert!(
            pixels
                .chunks(3)
                .filter(|p| p.iter().all(|&v| v < 60))
                .count()
                > 500
        );
        // One epoch draws too (the x axis does not collapse).
        save_curves(&path, "epoch,train_loss,seconds\n1,3.5,1.0\n").unwrap();
        assert_eq!(test_png::read(&path).0, PANEL_PX.0);
        assert!(!path.with_extension("png.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
