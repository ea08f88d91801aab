//! What stops a run or a command: [`RunError`], with the file, flag or op it concerns, and the signals that
//! ask a run to stop at a step boundary ([`Interrupt`]).

use std::io;
use std::path::{Path, PathBuf};

use nn::checkpoint::CheckpointError;

use crate::data::DataError;
use crate::image::ImageError;

/// A run that could not go on, with what and where.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The data set is missing or malformed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A picture could not be written.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Another file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A configuration or checkpoint that does not make sense.
    #[error("{0}")]
    Config(String),
    /// Training stopped at a step boundary on a signal; nothing of the unfinished epoch (or of
    /// the fit after the last one) was written.
    #[error(
        "interrupted by {signal} {}; nothing of it was written. {}",
        match after_training {
            true => format!("after epoch {epoch}, in the fit that follows training"),
            false => format!("in epoch {epoch}"),
        },
        continue_with(checkpoint.as_deref(), *epochs, data_dir.as_deref())
    )]
    Interrupted {
        /// Which signal.
        signal: Interrupt,
        /// The epoch it stopped (1-based), or after which it stopped.
        epoch: usize,
        /// Whether it stopped in [`RunModel::after_training`](crate::model::RunModel::after_training), every epoch done.
        after_training: bool,
        /// The run's `--epochs`.
        epochs: usize,
        /// The checkpoint of the last finished epoch, if any.
        checkpoint: Option<PathBuf>,
        /// The run's `--data-dir`, if it gave one (the checkpoint keeps every other setting).
        data_dir: Option<PathBuf>,
    },
    /// A step's loss or gradient was not finite: training stopped, that step's update was not
    /// applied and nothing of the epoch was written.
    #[error(
        "training diverged in epoch {epoch}, step {step}: {}. Nothing of that epoch was \
         written{}",
        anomaly.as_deref().unwrap_or("a non-finite loss or gradient (the replay under anomaly \
         detection did not name an op)"),
        match checkpoint {
            Some(path) => format!("; the checkpoint of the epoch before, {}, is unchanged", path.display()),
            None => String::new(),
        }
    )]
    Diverged {
        /// The epoch (1-based).
        epoch: usize,
        /// The step within it (1-based).
        step: usize,
        /// The op that first produced a non-finite number and where, found by replaying the
        /// epoch under [`autodiff::detect_anomaly`].
        anomaly: Option<String>,
        /// The checkpoint of the last finished epoch, if any.
        checkpoint: Option<PathBuf>,
    },
}

/// `continue with: vae-train --resume … --epochs N`, or that there is nothing to resume.
fn continue_with(checkpoint: Option<&Path>, epochs: usize, data_dir: Option<&Path>) -> String {
    let data_dir = data_dir.map_or(String::new(), |d| format!(" --data-dir {}", d.display()));
    match checkpoint {
        Some(path) => format!(
            "Continue with: vae-train --resume {} --epochs {epochs}{data_dir}",
            path.display()
        ),
        None => "No epoch had finished, so there is nothing to resume.".into(),
    }
}

/// A signal that asks a run to stop at the next step boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// SIGINT (Ctrl-C).
    Int,
    /// SIGTERM.
    Term,
}

impl Interrupt {
    /// The shell's exit status for a process ended by it: 128 + the signal's number.
    pub fn exit_code(self) -> u8 {
        match self {
            Interrupt::Int => 130,
            Interrupt::Term => 143,
        }
    }
}

impl std::fmt::Display for Interrupt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Interrupt::Int => "SIGINT",
            Interrupt::Term => "SIGTERM",
        })
    }
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}
