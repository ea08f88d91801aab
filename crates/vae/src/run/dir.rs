//! The run directory: its files' names, making it, writing to it atomically, and
//! `metrics.csv`'s rows.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

use nn::checkpoint::Metadata;

use super::RunError;
use super::config::IMAGE_SIZE;
use crate::error::io_error;
use crate::model::{Columns, Row};

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    /// 1-based.
    pub epoch: usize,
    /// The model's columns ([`RunModel::columns`](crate::model::RunModel::columns)) by name:
    /// training's, then the test set's.
    pub row: Row,
    /// Wall-clock seconds of the epoch's training (evaluation excluded).
    pub seconds: f64,
    /// The model's one-line account of `row`
    /// ([`Report::describe`](crate::model::Report::describe)).
    pub line: String,
}

/// The header of `metrics.csv` for a model's `columns`.
pub(super) fn metrics_header(columns: Columns) -> String {
    let mut names = vec!["epoch"];
    names.extend(columns.names());
    names.push("seconds");
    names.join(",")
}

impl EpochRow {
    /// Its line of `metrics.csv`.
    pub fn csv(&self) -> String {
        let mut csv = self.epoch.to_string();
        for v in self.row.values() {
            let _ = write!(csv, ",{v:.4}");
        }
        let _ = write!(csv, ",{:.3}", self.seconds);
        csv
    }
}

/// Refuses a checkpoint of images of another size than the dataset's in `dir` (a checkpoint
/// written before the key existed is left to the tensor shapes' check).
pub(super) fn check_image_size(
    meta: &Metadata,
    path: &Path,
    (height, width): (usize, usize),
    dir: &Path,
) -> Result<(), RunError> {
    match meta.get(IMAGE_SIZE) {
        Some(size) if *size != format!("{height}x{width}") => Err(RunError::Config(format!(
            "{}: a model of {size} images, but the images in {} are {height}x{width}",
            path.display(),
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// Makes the run directory `out` and checks that a file can be written there, before anything
/// is loaded or trained.
pub(super) fn prepare_out(out: &Path) -> Result<(), RunError> {
    if out.exists() && !out.is_dir() {
        return Err(RunError::Config(format!(
            "--out {}: exists and is not a directory",
            out.display()
        )));
    }
    fs::create_dir_all(out).map_err(io_error(out))?;
    let probe = out.join(".henbun-write-check");
    fs::write(&probe, b"").map_err(io_error(out))?;
    fs::remove_file(&probe).map_err(io_error(&probe))
}
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<(), RunError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).map_err(io_error(&tmp))?;
    fs::rename(&tmp, path).map_err(io_error(path))
}

/// The header and the rows of epochs `1..=keep` of an existing `metrics.csv` (a resumed run
/// continues it; rows written after the checkpoint it resumes from are dropped).
pub(super) fn previous_rows(path: &Path, header: &str, keep: usize) -> Result<String, RunError> {
    let mut csv = format!("{header}\n");
    if keep == 0 {
        return Ok(csv);
    }
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(csv),
        Err(e) => return Err(io_error(path)(e)),
    };
    for line in text.lines().skip(1) {
        let epoch: Option<usize> = line.split(',').next().and_then(|e| e.parse().ok());
        if epoch.is_some_and(|e| e <= keep) {
            csv.push_str(line);
            csv.push('\n');
        }
    }
    Ok(csv)
}
