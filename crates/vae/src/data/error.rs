//! The one error type of the data layer: which file, and what is wrong with it.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::kind::IdxKind;

/// A dataset file (or folder) that could not be used, and why.
///
/// Displays as `path: problem`, e.g.
/// `data/mnist/train-images-idx3-ubyte.gz: IDX magic is 2049, expected 2051 (images)`.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct DataError {
    /// The file or folder at fault.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: Problem,
}

impl DataError {
    pub(crate) fn new(path: impl Into<PathBuf>, problem: Problem) -> Self {
        DataError {
            path: path.into(),
            problem,
        }
    }
}

/// What is wrong with a dataset file.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The file could not be opened or read.
    #[error("cannot read: {0}")]
    Io(io::Error),
    /// The file does not start with the gzip magic bytes `1f 8b`.
    #[error("not a gzip file: starts with {}, expected 1f 8b", Hex(.found))]
    NotGzip {
        /// The first (up to two) bytes of the file.
        found: Vec<u8>,
    },
    /// The gzip stream could not be inflated (corrupt, truncated, or a bad checksum).
    #[error("corrupt gzip stream: {0}")]
    Gzip(io::Error),
    /// The decompressed stream ends inside the IDX header.
    #[error("IDX header is truncated: {found} of {expected} bytes")]
    TruncatedHeader {
        /// Bytes present.
        found: usize,
        /// Bytes the header needs.
        expected: usize,
    },
    /// The IDX magic number is not the one of this kind of file.
    #[error("IDX magic is {found}, expected {} ({kind})", .kind.magic())]
    WrongMagic {
        /// The magic number in the file.
        found: u32,
        /// The kind of file expected.
        kind: IdxKind,
    },
    /// An unsigned-byte IDX file with the wrong number of dimensions.
    #[error("IDX rank is {found}, expected {} ({kind})", .kind.rank())]
    WrongRank {
        /// The rank in the file's magic number.
        found: u8,
        /// The kind of file expected.
        kind: IdxKind,
    },
    /// A dimension in the header is zero.
    #[error("IDX dimensions {dims:?} include a zero")]
    ZeroDimension {
        /// The dimensions in the header.
        dims: Vec<u32>,
    },
    /// The header declares a body larger than the cap (or one whose size overflows).
    #[error("IDX dimensions {dims:?} declare more than the {cap}-byte cap")]
    TooLarge {
        /// The dimensions in the header.
        dims: Vec<u32>,
        /// The largest body accepted, in bytes.
        cap: usize,
    },
    /// The body is shorter than the header declares.
    #[error("body is {found} bytes, the header declares {expected}")]
    ShortBody {
        /// Bytes present.
        found: usize,
        /// Bytes declared.
        expected: usize,
    },
    /// The body goes on past the size the header declares (reading stopped one byte past it).
    #[error("body is longer than the {expected} bytes the header declares")]
    TrailingBytes {
        /// Bytes declared.
        expected: usize,
    },
    /// A label is not a digit class 0–9.
    #[error("label {label} at index {index} is outside 0-9")]
    LabelOutOfRange {
        /// Position of the label in the file.
        index: usize,
        /// The label found.
        label: u8,
    },
    /// The labels file and the images file hold different numbers of examples.
    #[error("{labels} labels, but {} holds {images} images", images_path.display())]
    CountMismatch {
        /// Number of labels in this file.
        labels: usize,
        /// Number of images in the images file.
        images: usize,
        /// The images file.
        images_path: PathBuf,
    },
    /// Test images differ in size from the training images.
    #[error("images are {found:?} pixels, the training images are {expected:?}")]
    ShapeMismatch {
        /// (height, width) of these images.
        found: (usize, usize),
        /// (height, width) of the training images.
        expected: (usize, usize),
    },
    /// `train_limit` of zero leaves no training images.
    #[error("a train limit of 0 leaves no training images")]
    EmptyTrainLimit,
    /// No folder holding the dataset was found.
    #[error("{dataset} not found; looked in {}; {hint}", Paths(.looked))]
    NotFound {
        /// The dataset looked for, e.g. `MNIST`.
        dataset: String,
        /// How to get it.
        hint: String,
        /// Every folder looked in, in order.
        looked: Vec<PathBuf>,
    },
}

/// Bytes as space-separated hex (`1f 8b`), or `nothing` when empty.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("nothing (empty file)");
        }
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Paths joined by `, `.
struct Paths<'a>(&'a [PathBuf]);

impl fmt::Display for Paths<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", p.display())?;
        }
        Ok(())
    }
}
