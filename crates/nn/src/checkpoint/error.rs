//! [`CheckpointError`]: why a checkpoint could not be written or read, naming the file and, where
//! there is one, the tensor.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::StateError;

/// A failed save or load, with the checkpoint's path.
#[derive(Debug)]
pub struct CheckpointError {
    /// The checkpoint file.
    pub path: PathBuf,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// What went wrong with a checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading or writing the file failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The file ends before the data its header promises.
    #[error("truncated: {0}")]
    Truncated(String),
    /// The bytes are not a safetensors file.
    #[error("not a safetensors file: {0}")]
    Corrupt(String),
    /// A tensor the model or optimizer needs is absent.
    #[error("tensor `{0}` is missing")]
    MissingTensor(String),
    /// The file holds a tensor the model and optimizer do not have.
    #[error("unexpected tensor `{0}`: not a parameter or optimizer buffer of this model")]
    UnexpectedTensor(String),
    /// A tensor has the wrong shape.
    #[error(
        "tensor `{name}` has shape {found:?}, expected {expected:?}{}",
        if found[..] == [expected[1], expected[0]] { " (transposed?)" } else { "" }
    )]
    Shape {
        /// The tensor.
        name: String,
        /// The parameter's `[rows, cols]`.
        expected: [usize; 2],
        /// The file's shape.
        found: Vec<usize>,
    },
    /// A tensor is not F32.
    #[error("tensor `{name}` has dtype {found}, expected F32")]
    Dtype {
        /// The tensor.
        name: String,
        /// The file's dtype.
        found: String,
    },
    /// A metadata entry is absent or wrong.
    #[error("metadata `{key}`: {detail}")]
    Metadata {
        /// The entry.
        key: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The optimizer state does not fit the optimizer.
    #[error("optimizer state: {0}")]
    Optimizer(#[from] StateError),
    /// A parameter holds NaN or ±inf: it is not written, so that a diverged run never replaces
    /// a good checkpoint.
    #[error("parameter `{0}` is not finite (NaN or inf); nothing was written")]
    NonFinite(String),
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "checkpoint {}: {}", self.path.display(), self.kind)
    }
}

impl Error for CheckpointError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            ErrorKind::Optimizer(e) => Some(e),
            _ => None,
        }
    }
}
