//! The anomaly protocols' charts: `roc.png`, ROC curves (one panel per score, a curve per
//! experiment), and `scores.png`, histograms of a score on normal and anomalous images (one
//! panel per experiment).

use std::path::Path;

use plotters::prelude::{
    BLACK, ChartBuilder, Color, IntoFont, LineSeries, PathElement, Rectangle, SeriesLabelPosition,
    WHITE,
};
use plotters::style::{Palette, Palette99, RGBColor};

use super::{FONT, curves_size, panel_grid, save_chart};
use crate::image::ImageError;

/// Normal images in blue, anomalous ones in red.
const NORMAL: RGBColor = RGBColor(31, 119, 180);
const ANOMALOUS: RGBColor = RGBColor(214, 39, 40);

/// Bins of a histogram panel.
const BINS: usize = 40;

/// A panel of ROC curves: its title and its curves, each named (with its AUROC, say) with the
/// (false-positive rate, true-positive rate) corners of [`crate::eval::roc::roc_curve`].
pub struct RocPanel {
    /// The panel's title, e.g. the score.
    pub title: String,
    /// The named curves.
    pub curves: Vec<(String, Vec<(f64, f64)>)>,
}

/// Draws `panels` into `path`, two panels a row, each with the chance diagonal and a legend.
pub fn save_roc(path: &Path, panels: &[RocPanel]) -> Result<(), ImageError> {
    save_chart(path, curves_size(panels.len()), |root| {
        let areas = panel_grid(root, panels.len());
        for (panel, area) in panels.iter().zip(&areas) {
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, (FONT, 16).into_font())
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(48)
                .build_cartesian_2d(0.0..1.0, 0.0..1.0)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("false-positive rate")
                .y_desc("true-positive rate")
                .label_style((FONT, 11))
                .axis_desc_style((FONT, 12))
                .x_labels(6)
                .y_labels(6)
                .draw()
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(LineSeries::new(
                    [(0.0, 0.0), (1.0, 1.0)],
                    BLACK.mix(0.3).stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
            for (i, (name, curve)) in panel.curves.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(
                        curve.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .label_font((FONT, 10))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

/// A panel of two histograms: a score's values on normal and on anomalous images.
pub struct HistogramPanel {
    /// The panel's title, e.g. `digit 3 normal`.
    pub title: String,
    /// The score's name, the x axis.
    pub score: String,
    /// The normal images' scores.
    pub normal: Vec<f64>,
    /// The anomalous images' scores.
    pub anomalous: Vec<f64>,
}

/// The 1st and 99th percentiles of the finite `values`, if there are any.
fn percentiles(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let mut all: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    all.sort_by(f64::total_cmp);
    let at = |q: f64| all.get(((all.len() as f64 - 1.0) * q) as usize).copied();
    Some((at(0.01)?, at(0.99)?))
}

/// The share of `values` in each of `BINS` bins over `lo..hi` (values outside clamp to the end
/// bins), so that sets of different sizes compare.
fn shares(values: &[f64], lo: f64, hi: f64) -> Vec<f64> {
    let mut counts = vec![0usize; BINS];
    let width = (hi - lo) / BINS as f64;
    for &v in values {
        let bin = ((v - lo) / width).floor().clamp(0.0, (BINS - 1) as f64) as usize;
        counts[bin] += 1;
    }
    let n = values.len().max(1) as f64;
    counts.iter().map(|&c| c as f64 / n).collect()
}

/// The panel's two sets of scores and the x axis' label: as they are, or as `log₁₀` of them when
/// every score is positive and the sets span more than a factor of 10 between their 1st and
/// 99th percentiles (a model's −log p(x) of another dataset's images reaches thousands of nats,
/// which would squeeze its own images' into one bin).
fn on_readable_axis(panel: &HistogramPanel) -> (Vec<f64>, Vec<f64>, String) {
    let both = || panel.normal.iter().chain(&panel.anomalous).copied();
    let min = both().fold(f64::INFINITY, f64::min);
    let wide = match percentiles(both()) {
        Some((lo, hi)) => min > 0.0 && hi > 10.0 * lo,
        None => false,
    };
    if wide {
        let log = |v: &Vec<f64>| v.iter().map(|x| x.log10()).collect();
        let label = format!("log10 {}", panel.score);
        (log(&panel.normal), log(&panel.anomalous), label)
    } else {
        (
            panel.normal.clone(),
            panel.anomalous.clone(),
            panel.score.clone(),
        )
    }
}

/// Draws `panels` into `path`, two panels a row: each the normal and anomalous images' shares
/// per bin of the score, over the 1st to 99th percentile of both, with a legend.
pub fn save_histograms(path: &Path, panels: &[HistogramPanel]) -> Result<(), ImageError> {
    save_chart(path, curves_size(panels.len()), |root| {
        let areas = panel_grid(root, panels.len());
        for (panel, area) in panels.iter().zip(&areas) {
            let (normal, anomalous, x_desc) = on_readable_axis(panel);
            let (lo, hi) = match percentiles(normal.iter().chain(&anomalous).copied()) {
                Some((lo, hi)) if hi > lo => (lo, hi),
                Some((v, _)) => (v - 1.0, v + 1.0),
                None => (0.0, 1.0),
            };
            let sets = [
                ("normal", NORMAL, shares(&normal, lo, hi)),
                ("anomalous", ANOMALOUS, shares(&anomalous, lo, hi)),
            ];
            let top = sets
                .iter()
                .flat_map(|s| s.2.iter().copied())
                .fold(0.0, f64::max);
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, (FONT, 16).into_font())
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(52)
                .build_cartesian_2d(lo..hi, 0.0..(1.1 * top).max(1e-3))
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc(x_desc.as_str())
                .y_desc("share of images")
                .label_style((FONT, 11))
                .axis_desc_style((FONT, 12))
                .x_labels(6)
                .y_labels(5)
                .draw()
                .map_err(|e| e.to_string())?;
            let width = (hi - lo) / BINS as f64;
            for (name, color, shares) in sets {
                chart
                    .draw_series(shares.iter().enumerate().map(|(b, &share)| {
                        let x = lo + b as f64 * width;
                        Rectangle::new([(x, 0.0), (x + width, share)], color.mix(0.45).filled())
                    }))
                    .map_err(|e| e.to_string())?
                    .label(name)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.mix(0.45).filled())
                    });
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font((FONT, 11))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::test_png;

    #[test]
    fn shares_sum_to_one_and_clamp_the_tails() {
        let s = shares(&[0.0, 0.5, 1.0, -5.0, 7.0], 0.0, 1.0);
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // −5 and 0 in the first bin, 1 and 7 in the last.
        assert!((s[0] - 0.4).abs() < 1e-12 && (s[BINS - 1] - 0.4).abs() < 1e-12);
    }

    #[test]
    fn scores_spanning_decades_are_drawn_on_a_log_axis() {
        let panel = |normal: Vec<f64>, anomalous: Vec<f64>| HistogramPanel {
            title: String::new(),
            score: "neg_log_px".into(),
            normal,
            anomalous,
        };
        let (n, a, label) = on_readable_axis(&panel(vec![100.0; 50], vec![3000.0; 50]));
        assert_eq!(label, "log10 neg_log_px");
        assert!((n[0] - 2.0).abs() < 1e-12 && (a[0] - 3000f64.log10()).abs() < 1e-12);
        // Within a factor of 10, or with a score ≤ 0, the scores stay as they are.
        let (n, _, label) = on_readable_axis(&panel(vec![100.0; 50], vec![300.0; 50]));
        assert_eq!((n[0], label.as_str()), (100.0, "neg_log_px"));
        let (_, _, label) = on_readable_axis(&panel(vec![-1.0; 50], vec![3000.0; 50]));
        assert_eq!(label, "neg_log_px");
    }

    #[test]
    fn both_charts_are_drawn_at_their_size_with_both_colours() {
        let dir = std::env::temp_dir().join(format!("henbun-anomaly-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let roc = dir.join("roc.png");
        let curve = vec![(0.0, 0.0), (0.1, 0.8), (1.0, 1.0)];
        let panels: Vec<RocPanel> = (0..3)
            .map(|i| RocPanel {
                title: format!("score {i}"),
                curves: vec![("a (0.95)".into(), curve.clone())],
            })
            .collect();
        save_roc(&roc, &panels).unwrap();
        let (w, h, _, _) = test_png::read(&roc);
        assert_eq!((w, h), curves_size(3));
        let hist = dir.join("scores.png");
        let panel = HistogramPanel {
            title: "digit 0".into(),
            score: "neg_log_px".into(),
            normal: (0..100).map(|i| f64::from(i) * 0.1).collect(),
            anomalous: (0..100).map(|i| 5.0 + f64::from(i) * 0.1).collect(),
        };
        save_histograms(&hist, &[panel]).unwrap();
        let (w, h, color, pixels) = test_png::read(&hist);
        assert_eq!((w, h), super::super::PANEL_PX);
        assert_eq!(color, png::ColorType::Rgb);
        // Both translucent bar colours are on the canvas.
        let has = |c: RGBColor| {
            let mixed = |v: u8| (0.45 * f64::from(v) + 0.55 * 255.0).round() as i32;
            let want = [mixed(c.0), mixed(c.1), mixed(c.2)];
            pixels
                .chunks(3)
                .any(|p| (0..3).all(|k| (i32::from(p[k]) - want[k]).abs() <= 2))
        };
        assert!(has(NORMAL) && has(ANOMALOUS));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
