//! A grid of grayscale images (samples, reconstructions, interpolations, the manifold) as one PNG.

use std::path::Path;

use autodiff::Matrix;
use ndarray::{Axis, concatenate, s};

use super::{ImageError, ImageProblem, check_size, write_png};

/// The width in pixels of the bands around and between the images of a grid.
pub const SEPARATOR: usize = 2;

/// The gray level of the separators and of unused cells (mid-gray, distinct from the black
/// background and white strokes of MNIST-like images).
pub const SEPARATOR_GRAY: u8 = 128;

/// Writes the `n` rows of `images` (each an `h × w` image, row-major, values in [0, 1]) to `path`
/// as a grayscale PNG grid: `cols` images per row, `ceil(n / cols)` rows, [`SEPARATOR`]-pixel
/// bands around and between them, filled left to right then top to bottom. Values are clamped
/// to [0, 1] and NaN is drawn as 0 (black).
///
/// The caller lays out the figure through the order of the rows: e.g. for reconstructions, a row
/// of test images followed by the row of their reconstructions.
pub fn save_grid(
    path: &Path,
    images: &Matrix,
    (h, w): (usize, usize),
    cols: usize,
) -> Result<(), ImageError> {
    let fail = |problem| ImageError {
        path: path.to_path_buf(),
        problem,
    };
    let (width, height, pixels) = render_grid(images, (h, w), cols).map_err(fail)?;
    write_png(path, (width, height), png::ColorType::Grayscale, &pixels)
}

/// The grid's (width, height, gray bytes).
fn render_grid(
    images: &Matrix,
    (h, w): (usize, usize),
    cols: usize,
) -> Result<(usize, usize, Vec<u8>), ImageProblem> {
    let n = images.nrows();
    if n == 0 {
        return Err(ImageProblem::NoImages);
    }
    if cols == 0 {
        return Err(ImageProblem::ZeroColumns);
    }
    if h.checked_mul(w) != Some(images.ncols()) || h == 0 || w == 0 {
        return Err(ImageProblem::ShapeMismatch {
            columns: images.ncols(),
            height: h,
            width: w,
        });
    }
    let rows = n.div_ceil(cols);
    let side = |count: usize, cell: usize| {
        count
            .checked_mul(cell + SEPARATOR)
            .and_then(|s| s.checked_add(SEPARATOR))
            .unwrap_or(usize::MAX)
    };
    let (width, height) = (side(cols, w), side(rows, h));
    check_size(width, height, 1)?;

    let mut pixels = vec![SEPARATOR_GRAY; width * height];
    for (k, image) in images.rows().into_iter().enumerate() {
        let top = SEPARATOR + (k / cols) * (h + SEPARATOR);
        let left = SEPARATOR + (k % cols) * (w + SEPARATOR);
        for (i, &v) in image.iter().enumerate() {
            pixels[(top + i / w) * width + left + i % w] = gray(v);
        }
    }
    Ok((width, height, pixels))
}

/// `v` in [0, 1] as a byte: clamped, rounded, NaN as 0.
fn gray(v: f32) -> u8 {
    if v.is_nan() {
        0
    } else {
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// Blocks of `cols` rows: the first `cols` images of each of `sets` one above the other, then
/// the next `cols` of each, and so on (the sets have as many images each).
pub fn above(sets: &[&Matrix], cols: usize) -> Matrix {
    let n = sets[0].nrows();
    let rows: Vec<_> = (0..n.div_ceil(cols))
        .flat_map(|b| {
            let r = b * cols..((b + 1) * cols).min(n);
            sets.iter().map(move |set| set.slice(s![r.clone(), ..]))
        })
        .collect();
    concatenate(Axis(0), &rows).expect("same widths")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testutil::TempDir;
    use crate::image::test_png;
    use ndarray::array;

    #[test]
    fn writes_a_grid_that_reads_back() {
        let tmp = TempDir::new("grid");
        let path = tmp.path().join("grid.png");
        // Three 2×2 images in 2 columns: ceil(3/2) = 2 rows.
        let images = array![
            [0.0, 0.25, 1.0, f32::NAN],
            [1.5, -0.5, 0.5, 1.0],
            [1.0, 1.0, 1.0, 1.0]
        ];
        save_grid(&path, &images, (2, 2), 2).unwrap();
        let (width, height, color, pixels) = test_png::read(&path);
        // Each side: 2 cells of 2 px + 3 separators of 2 px = 10.
        assert_eq!((width, height, color), (10, 10, png::ColorType::Grayscale));
        let at = |y: usize, x: usize| pixels[y * 10 + x];
        // Image 0 at (2, 2): 0 → 0, 0.25 → round(63.75) = 64, 1 → 255, NaN → 0.
        assert_eq!([at(2, 2), at(2, 3), at(3, 2), at(3, 3)], [0, 64, 255, 0]);
        // Image 1 at (2, 2 + 2 + 2 = 6): 1.5 clamps to 255, -0.5 to 0, 0.5 → round(127.5) = 128.
        assert_eq!([at(2, 6), at(2, 7), at(3, 6), at(3, 7)], [255, 0, 128, 255]);
        // Image 2 starts the second row at (6, 2).
        assert_eq!([at(6, 2), at(7, 3)], [255, 255]);
        // Separators: the outer band, the band between columns, the band between rows.
        for (y, x) in [(0, 0), (1, 9), (2, 4), (3, 5), (4, 2), (5, 7), (9, 9)] {
            assert_eq!(at(y, x), SEPARATOR_GRAY, "({y}, {x})");
        }
        // The unused fourth cell at (6, 6) keeps the separator gray.
        assert_eq!(at(6, 6), SEPARATOR_GRAY);
    }

    #[test]
    fn rejects_bad_input_naming_the_file() {
        let path = Path::new("out/grid.png");
        let err = save_grid(path, &Matrix::zeros((2, 5)), (2, 2), 2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "out/grid.png: image rows have 5 values, expected 2×2 = 4"
        );
        let err = save_grid(path, &Matrix::zeros((0, 4)), (2, 2), 2).unwrap_err();
        assert!(matches!(err.problem, ImageProblem::NoImages));
        let err = save_grid(path, &Matrix::zeros((1, 4)), (2, 2), 0).unwrap_err();
        assert!(matches!(err.problem, ImageProblem::ZeroColumns));
    }

    #[test]
    fn an_unwritable_path_is_named() {
        let tmp = TempDir::new("grid-io");
        let path = tmp.path().join("no-such-dir/grid.png");
        let err = save_grid(&path, &Matrix::zeros((1, 4)), (2, 2), 1).unwrap_err();
        assert!(matches!(err.problem, ImageProblem::Io(_)));
        assert!(
            err.to_string()
                .starts_with(&format!("{}: cannot write", path.display()))
        );
    }
}
