//! The latent scatter plot: 2-D points coloured by label, with axes through 0 and a colour legend.

use std::path::Path;

use super::{ImageError, ImageProblem, check_size, write_png};

/// Colours of labels 0–9: matplotlib's `tab10` qualitative palette, as RGB.
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// The smallest side accepted by [`save_scatter`] (the legend needs 72 pixels of height).
pub const MIN_SCATTER_PX: usize = 128;

const BACKGROUND: [u8; 3] = [255, 255, 255];
const AXIS: [u8; 3] = [200, 200, 200];
const BORDER: [u8; 3] = [160, 160, 160];
const INK: [u8; 3] = [40, 40, 40];

/// The share of points cut off at each end of an axis, so a few outliers do not squash the rest.
const TAIL: f64 = 0.005;

/// Digits 0–9 in a 3×5 bitmap font: five rows, bit 2 the left column.
const DIGITS: [[u8; 5]; 10] = [
    [0b111, 0b101, 0b101, 0b101, 0b111],
    [0b010, 0b110, 0b010, 0b010, 0b111],
    [0b111, 0b001, 0b111, 0b100, 0b111],
    [0b111, 0b001, 0b111, 0b001, 0b111],
    [0b101, 0b101, 0b111, 0b001, 0b001],
    [0b111, 0b100, 0b111, 0b001, 0b111],
    [0b111, 0b100, 0b111, 0b101, 0b111],
    [0b111, 0b001, 0b001, 0b001, 0b001],
    [0b111, 0b101, 0b111, 0b101, 0b111],
    [0b111, 0b101, 0b111, 0b001, 0b111],
];

/// Writes a `size_px × size_px` RGB PNG of `points` coloured by `labels` (through [`PALETTE`]) to
/// `path`: white background, each axis spanning the 0.5%–99.5% quantiles of the finite
/// coordinates plus 5% (points beyond are left out, as are non-finite ones), thin gray axis
/// lines through 0 when in range, points as small discs (radius `size_px / 256`, at least 1),
/// and a legend in the top-right corner: a coloured square and the digit for each label 0–9.
pub fn save_scatter(
    path: &Path,
    points: &[(f32, f32)],
    labels: &[u8],
    size_px: usize,
) -> Result<(), ImageError> {
    let fail = |problem| ImageError {
        path: path.to_path_buf(),
        problem,
    };
    let rgb = render_scatter(points, labels, size_px).map_err(fail)?;
    write_png(path, (size_px, size_px), png::ColorType::Rgb, &rgb)
}

/// A square RGB canvas.
struct Canvas {
    size: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    fn set(&mut self, x: usize, y: usize, color: [u8; 3]) {
        let at = 3 * (y * self.size + x);
        self.rgb[at..at + 3].copy_from_slice(&color);
    }

    fn fill(&mut self, (x, y): (usize, usize), (w, h): (usize, usize), color: [u8; 3]) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, color);
            }
        }
    }
}

fn render_scatter(
    points: &[(f32, f32)],
    labels: &[u8],
    size: usize,
) -> Result<Vec<u8>, ImageProblem> {
    if points.len() != labels.len() {
        return Err(ImageProblem::LabelCount {
            points: points.len(),
            labels: labels.len(),
        });
    }
    if let Some(&label) = labels.iter().find(|&&l| usize::from(l) >= PALETTE.len()) {
        return Err(ImageProblem::LabelOutOfPalette(label));
    }
    check_size(size, size, MIN_SCATTER_PX)?;

    let mut canvas = Canvas {
        size,
        rgb: BACKGROUND.repeat(size * size),
    };
    // Everything scales with the unit `s`; the legend is (14·s) × (72·s) at the top right.
    let s = (size / 256).max(1);
    let margin = 4 * s;
    let (square, pitch, pad) = (5 * s, 7 * s, 2 * s);
    let legend = (
        pad + square + pad + 3 * s + pad,
        2 * pad + 9 * pitch + square,
    );
    let legend_x = size - margin - legend.0;

    // The plot area, in pixels (inclusive), left of the legend.
    let (left, right, top, bottom) = (margin, legend_x - margin - 1, margin, size - 1 - margin);
    let (xlo, xhi) = robust_range(points.iter().map(|p| p.0));
    let (ylo, yhi) = robust_range(points.iter().map(|p| p.1));
    let to_px = |v: f32, lo: f32, hi: f32, from: usize, to: usize| -> Option<usize> {
        let t = (v - lo) / (hi - lo);
        (0.0..=1.0)
            .contains(&t)
            .then(|| from + (t * (to - from) as f32).round() as usize)
    };
    let px = |x| to_px(x, xlo, xhi, left, right);
    let py = |y| to_px(y, ylo, yhi, top, bottom).map(|p| top + bottom - p);

    if let Some(x0) = px(0.0) {
        (top..=bottom).for_each(|y| canvas.set(x0, y, AXIS));
    }
    if let Some(y0) = py(0.0) {
        (left..=right).for_each(|x| canvas.set(x, y0, AXIS));
    }

    let r = s as isize;
    for (&(x, y), &label) in points.iter().zip(labels) {
        let (Some(cx), Some(cy)) = (px(x), py(y)) else {
            continue;
        };
        for dy in -r..=r {
            for dx in -r..=r {
                let (x, y) = (cx as isize + dx, cy as isize + dy);
                let inside = (left as isize..=right as isize).contains(&x)
                    && (top as isize..=bottom as isize).contains(&y);
                if dx * dx + dy * dy <= r * r && inside {
                    canvas.set(x as usize, y as usize, PALETTE[usize::from(label)]);
                }
            }
        }
    }

    canvas.fill((legend_x, margin), legend, BORDER);
    canvas.fill(
        (legend_x + 1, margin + 1),
        (legend.0 - 2, legend.1 - 2),
        BACKGROUND,
    );
    for (digit, color) in PALETTE.iter().enumerate() {
        let y = margin + pad + digit * pitch;
        canvas.fill((legend_x + pad, y), (square, square), *color);
        let glyph_x = legend_x + pad + square + pad;
        for (row, bits) in DIGITS[digit].iter().enumerate() {
            for col in 0..3 {
                if bits & (0b100 >> col) != 0 {
                    canvas.fill((glyph_x + col * s, y + row * s), (s, s), INK);
                }
            }
        }
    }
    Ok(canvas.rgb)
}

/// The [`TAIL`]–(1 − [`TAIL`]) quantile range of the finite `values`, widened by 5% on each side;
/// ±1 around a single value, and [-1, 1] when there is none.
fn robust_range(values: impl Iterator<Item = f32>) -> (f32, f32) {
    let mut sorted: Vec<f32> = values.filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return (-1.0, 1.0);
    }
    sorted.sort_by(f32::total_cmp);
    let last = (sorted.len() - 1) as f64;
    let quantile = |q: f64| sorted[(last * q).round() as usize];
    let (lo, hi) = (quantile(TAIL), quantile(1.0 - TAIL));
    if hi - lo <= f32::EPSILON * lo.abs().max(hi.abs()).max(1.0) {
        let mid = (lo + hi) / 2.0;
        return (mid - 1.0, mid + 1.0);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testutil::TempDir;
    use crate::image::test_png;

    fn count(rgb: &[u8], color: [u8; 3]) -> usize {
        rgb.chunks_exact(3).filter(|p| *p == color).count()
    }

    #[test]
    fn writes_the_requested_size_with_the_colours_of_the_labels_present() {
        let tmp = TempDir::new("scatter");
        let path = tmp.path().join("latent.png");
        // Labels 1 and 3 only, on a circle of 40 points around (0.5, -0.5).
        let points: Vec<(f32, f32)> = (0..40)
            .map(|i| {
                let a = i as f32 * std::f32::consts::TAU / 40.0;
                (0.5 + a.cos(), -0.5 + a.sin())
            })
            .collect();
        let labels: Vec<u8> = (0..40).map(|i| if i % 2 == 0 { 1 } else { 3 }).collect();
        save_scatter(&path, &points, &labels, 200).unwrap();
        let (width, height, color, rgb) = test_png::read(&path);
        assert_eq!((width, height, color), (200, 200, png::ColorType::Rgb));
        // At 200 px the unit is 1: each legend square is 5×5 = 25 pixels of its colour, so the
        // labels drawn have more, the others exactly that.
        for (label, &c) in PALETTE.iter().enumerate() {
            let n = count(&rgb, c);
            if label == 1 || label == 3 {
                assert!(n > 25, "label {label}: {n} pixels");
            } else {
                assert_eq!(n, 25, "label {label}");
            }
        }
        // The corner is background; both axes cross the circle's range, so axis pixels show.
        assert_eq!(&rgb[..3], &BACKGROUND);
        assert!(count(&rgb, AXIS) > 100);
    }

    #[test]
    fn rejects_bad_input_naming_the_file() {
        let path = Path::new("out/latent.png");
        let err = save_scatter(path, &[(0.0, 0.0)], &[], 200).unwrap_err();
        assert_eq!(err.to_string(), "out/latent.png: 1 points but 0 labels");
        let err = save_scatter(path, &[(0.0, 0.0)], &[10], 200).unwrap_err();
        assert!(matches!(err.problem, ImageProblem::LabelOutOfPalette(10)));
        let err = save_scatter(path, &[], &[], 64).unwrap_err();
        assert!(matches!(
            err.problem,
            ImageProblem::BadSize { min: 128, .. }
        ));
    }

    #[test]
    fn robust_range_ignores_outliers_and_non_finite_values() {
        let values = (0..1000)
            .map(|v| v as f32)
            .chain([1e9, f32::NAN, f32::INFINITY]);
        // 1001 finite values 0..999 and 1e9: quantile indices round(1000·0.005) = 5 and
        // round(1000·0.995) = 995 pick 5 and 995; 5% of 990 = 49.5 widens them.
        assert_eq!(robust_range(values), (5.0 - 49.5, 995.0 + 49.5));
        // A single value v spans v ± 1; no finite value at all spans [-1, 1].
        assert_eq!(robust_range([3.0; 7].into_iter()), (2.0, 4.0));
        assert_eq!(robust_range([f32::NAN].into_iter()), (-1.0, 1.0));
    }

    #[test]
    fn empty_scatter_still_draws_axes_and_legend() {
        let rgb = render_scatter(&[], &[], 128).unwrap();
        assert_eq!(rgb.len(), 128 * 128 * 3);
        assert!(PALETTE.iter().all(|&c| count(&rgb, c) == 25));
        assert!(count(&rgb, INK) > 0);
        // With no points each axis spans [-1, 1], so both axis lines are drawn.
        assert!(count(&rgb, AXIS) > 0);
    }
}
