//! PNG figures: grids of images and the latent scatter plot, with errors that name the file.

mod grid;
mod scatter;

use std::io;
use std::path::{Path, PathBuf};

pub use grid::{SEPARATOR, SEPARATOR_GRAY, above, save_grid};
pub use scatter::{MIN_SCATTER_PX, PALETTE, save_scatter};

/// The largest width or height written, in pixels.
pub const MAX_SIDE_PX: usize = 1 << 14;

/// A figure that could not be written, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct ImageError {
    /// The PNG file that was to be written.
    pub path: PathBuf,
    /// What went wrong.
    pub problem: ImageProblem,
}

/// What went wrong writing a figure.
#[derive(Debug, thiserror::Error)]
pub enum ImageProblem {
    /// The file could not be written.
    #[error("cannot write: {0}")]
    Io(io::Error),
    /// The PNG encoder failed.
    #[error("cannot encode PNG: {0}")]
    Encode(png::EncodingError),
    /// There is nothing to draw.
    #[error("no images to draw")]
    NoImages,
    /// A grid of zero columns was asked for.
    #[error("a grid needs at least one column")]
    ZeroColumns,
    /// The matrix rows are not images of the stated size.
    #[error("image rows have {columns} values, expected {height}×{width} = {}", .height * .width)]
    ShapeMismatch {
        /// Values per row of the matrix.
        columns: usize,
        /// Stated image height.
        height: usize,
        /// Stated image width.
        width: usize,
    },
    /// The figure would exceed [`MAX_SIDE_PX`] on a side, or is below the minimum size.
    #[error(
        "a {width}×{height} figure is outside the {min}..={MAX_SIDE_PX} pixels allowed per side"
    )]
    BadSize {
        /// Width in pixels.
        width: usize,
        /// Height in pixels.
        height: usize,
        /// The smallest side allowed.
        min: usize,
    },
    /// Points and labels differ in number.
    #[error("{points} points but {labels} labels")]
    LabelCount {
        /// Number of points.
        points: usize,
        /// Number of labels.
        labels: usize,
    },
    /// The chart library failed to draw.
    #[error("cannot draw the chart: {0}")]
    Draw(String),
    /// A label has no colour in the 10-colour palette.
    #[error("label {0} has no colour in the 10-colour palette")]
    LabelOutOfPalette(u8),
}

/// Encodes 8-bit `pixels` (`width × height`, `color` channels each) as PNG and writes `path`.
pub(crate) fn write_png(
    path: &Path,
    (width, height): (usize, usize),
    color: png::ColorType,
    pixels: &[u8],
) -> Result<(), ImageError> {
    let fail = |problem| ImageError {
        path: path.to_path_buf(),
        problem,
    };
    let mut bytes = Vec::new();
    encode(&mut bytes, (width as u32, height as u32), color, pixels)
        .map_err(|e| fail(ImageProblem::Encode(e)))?;
    std::fs::write(path, bytes).map_err(|e| fail(ImageProblem::Io(e)))
}

fn encode(
    out: &mut Vec<u8>,
    (width, height): (u32, u32),
    color: png::ColorType,
    pixels: &[u8],
) -> Result<(), png::EncodingError> {
    let mut encoder = png::Encoder::new(out, width, height);
    encoder.set_color(color);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels)?;
    writer.finish()
}

/// The size in bits of the grayscale image `pixels` (row-major, `height × width` bytes) as a
/// PNG at the png crate's strongest compression, headers included: Serrà et al.'s (2020) input
/// complexity `L(x)`.
///
/// # Panics
/// If `pixels` does not hold `height × width` bytes.
#[track_caller]
pub fn png_bits(pixels: &[u8], (height, width): (usize, usize)) -> usize {
    assert_eq!(
        pixels.len(),
        height * width,
        "png_bits: {height}×{width} image"
    );
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width as u32, height as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::High);
    // Writing to memory fails only on sizes png refuses, which an image of a split never has.
    let mut writer = encoder.write_header().expect("a valid PNG header");
    writer.write_image_data(pixels).expect("the image's bytes");
    writer.finish().expect("the PNG's end");
    8 * bytes.len()
}

/// Checks a figure's sides against `min..=MAX_SIDE_PX`.
pub(crate) fn check_size(width: usize, height: usize, min: usize) -> Result<(), ImageProblem> {
    let ok = |side| (min..=MAX_SIDE_PX).contains(&side);
    if ok(width) && ok(height) {
        Ok(())
    } else {
        Err(ImageProblem::BadSize { width, height, min })
    }
}

#[cfg(test)]
pub(crate) mod test_png {
    //! Reading written PNGs back, for the tests.

    /// Decodes `path`: (width, height, colour type, pixel bytes).
    pub fn read(path: &std::path::Path) -> (u32, u32, png::ColorType, Vec<u8>) {
        let bytes = std::fs::read(path).unwrap();
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, info.height, info.color_type, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_bits_grow_with_the_image_complexity() {
        let blank = vec![0u8; 28 * 28];
        use rand::{Rng, SeedableRng};
        let rng = &mut rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let noise: Vec<u8> = (0..28 * 28).map(|_| rng.random()).collect();
        let (flat, busy) = (png_bits(&blank, (28, 28)), png_bits(&noise, (28, 28)));
        assert_eq!(flat % 8, 0);
        // Noise cannot be compressed below its 784 bytes; a blank image compresses to little.
        assert!(busy > 8 * 784 && flat < busy / 4, "{flat} vs {busy}");
    }
}
