//! `codebook.png` of a VQ-VAE: how often each code of its codebook is used, as a bar chart.

use std::path::Path;

use plotters::prelude::*;

use super::{FONT, save_chart};
use crate::image::ImageError;

/// Bars of each code's share of the assignments in `counts`, codes sorted from the most used
/// to the least, with the codes used and the perplexity in the caption; `of` says what was
/// encoded (e.g. `test images`).
pub fn save_usage(path: &Path, counts: &[u64], of: &str) -> Result<(), ImageError> {
    let total: u64 = counts.iter().sum();
    let mut shares: Vec<f64> = (counts.iter())
        .map(|&c| c as f64 / total.max(1) as f64)
        .collect();
    shares.sort_by(|a, b| b.total_cmp(a));
    let used = counts.iter().filter(|&&c| c > 0).count();
    let entropy: f64 = shares
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    let caption = format!(
        "code usage on {of}: {used} of {} codes used, perplexity {:.1}",
        counts.len(),
        entropy.exp()
    );
    let top = shares.first().copied().unwrap_or(0.0).max(1e-3);
    save_chart(path, (900, 420), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&caption, (FONT, 18).into_font())
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..shares.len() as f64, 0.0..1.1 * top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("codes, from the most used")
            .y_desc("share of assignments")
            .label_style((FONT, 12))
            .axis_desc_style((FONT, 13))
            .x_labels(10)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_labels(6)
            .draw()
            .map_err(|e| e.to_string())?;
        let color = RGBColor(31, 119, 180);
        chart
            .draw_series(shares.iter().enumerate().map(|(i, &share)| {
                let x = i as f64;
                Rectangle::new([(x + 0.1, 0.0), (x + 0.9, share)], color.filled())
            }))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::test_png;

    #[test]
    fn the_usage_chart_is_a_png_of_its_size() {
        let dir = std::env::temp_dir().join(format!("henbun-codebook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("codebook.png");
        save_usage(&path, &[5, 0, 3, 9, 1], "test images").unwrap();
        let (w, h, color, pixels) = test_png::read(&path);
        assert_eq!((w, h, color), (900, 420, png::ColorType::Rgb));
        // The bars' blue is there.
        assert!(pixels.chunks_exact(3).any(|p| p == [31, 119, 180]));
        // Nothing counted still draws (an empty chart), never a division by zero.
        save_usage(&path, &[0, 0], "no images").unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
