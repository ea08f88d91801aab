//! Charts drawn with `plotters`: the run's `curves.png` and what later charts share, namely the
//! font (DejaVu Sans, compiled into the binary, so a machine without font libraries still draws
//! text) and the step from a drawn bitmap to a PNG file written atomically.

pub mod anomaly;
pub mod codebook;
mod curves;

use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::{BitMapBackend, DrawingArea, IntoDrawingArea, WHITE};
use plotters::style::FontStyle;

use crate::image::{ImageError, ImageProblem, check_size, write_png};

pub use curves::{PANEL_COLUMNS, PANEL_PX, curves_size, panels, save_curves};

/// The font family every chart's text is set in.
pub const FONT: &str = "sans-serif";

/// Registers DejaVu Sans with plotters under [`FONT`], once per process.
fn register_font() -> Result<(), ImageProblem> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    match ok {
        true => Ok(()),
        false => Err(ImageProblem::Draw("the bundled font did not load".into())),
    }
}

/// The drawing area a chart is drawn on.
pub type Canvas<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// `root` split into a grid for `panels` panels, [`PANEL_COLUMNS`] a row (the layout of
/// [`curves_size`]), in reading order.
pub(crate) fn panel_grid<'a>(root: &Canvas<'a>, panels: usize) -> Vec<Canvas<'a>> {
    root.split_evenly((
        panels.div_ceil(PANEL_COLUMNS).max(1),
        PANEL_COLUMNS.min(panels).max(1),
    ))
}

/// Draws a `width × height` chart on a white canvas with `draw` and writes it to `path` as an
/// RGB PNG, through a temporary file renamed over `path` (so a viewer never sees half a file).
pub fn save_chart(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&Canvas<'_>) -> Result<(), String>,
) -> Result<(), ImageError> {
    let fail = |problem| ImageError {
        path: path.to_path_buf(),
        problem,
    };
    check_size(width as usize, height as usize, 1).map_err(fail)?;
    register_font().map_err(fail)?;
    let mut pixels = vec![0u8; 3 * width as usize * height as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(|e| e.to_string()))
            .map_err(|e| fail(ImageProblem::Draw(e)))?;
    }
    let tmp = path.with_extension("png.tmp");
    let size = (width as usize, height as usize);
    write_png(&tmp, size, png::ColorType::Rgb, &pixels)?;
    std::fs::rename(&tmp, path).map_err(|e| fail(ImageProblem::Io(e)))
}
