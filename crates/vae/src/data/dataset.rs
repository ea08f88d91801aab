//! Which dataset (MNIST or Fashion-MNIST), which folder holds its files, and loading both splits.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::classes::Classes;
use super::error::{DataError, Problem};
use super::idx::{read_images, read_labels};
use super::split::Split;

/// The training images file, as the IDX distributions name it.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte.gz";
/// The training labels file.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte.gz";
/// The test images file.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte.gz";
/// The test labels file.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte.gz";

/// The four files a dataset folder must hold.
pub const FILES: [&str; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

/// Where Debian's `dataset-fashion-mnist` package installs its files.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// A dataset in the MNIST layout: 10 classes, 28×28 grayscale bytes, IDX gz files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dataset {
    /// Handwritten digits (LeCun, Cortes, Burges).
    Mnist,
    /// Zalando's garment images (Xiao, Rasul, Vollgraf).
    FashionMnist,
}

impl Dataset {
    /// The name accepted by [`FromStr`], which is also its folder's name: `mnist` or `fashion-mnist`.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Mnist => "mnist",
            Dataset::FashionMnist => "fashion-mnist",
        }
    }

    /// The folders looked in, in order, when no `--data-dir` is given: `./data/<name>`, then the
    /// source checkout's `data/<name>`, then (Fashion-MNIST only) [`DEBIAN_FASHION_MNIST`].
    pub fn search_dirs(self) -> Vec<PathBuf> {
        let mut dirs = vec![
            Path::new("data").join(self.name()),
            workspace_data().join(self.name()),
        ];
        if self == Dataset::FashionMnist {
            dirs.push(PathBuf::from(DEBIAN_FASHION_MNIST));
        }
        dirs
    }

    /// The folder holding the files: `data_dir` itself when given (the files directly in it),
    /// else the first of [`search_dirs`](Self::search_dirs) that holds all four [`FILES`].
    pub fn find_dir(self, data_dir: Option<&Path>) -> Result<PathBuf, DataError> {
        match data_dir {
            Some(dir) => Ok(dir.to_path_buf()),
            None => self.find_in(&self.search_dirs()),
        }
    }

    fn find_in(self, dirs: &[PathBuf]) -> Result<PathBuf, DataError> {
        let complete = |dir: &&PathBuf| FILES.iter().all(|f| dir.join(f).is_file());
        match dirs.iter().find(complete) {
            Some(dir) => Ok(dir.clone()),
            None => Err(DataError::new(
                &dirs[0],
                Problem::NotFound {
                    dataset: self.to_string(),
                    hint: self.how_to_get(),
                    looked: dirs.to_vec(),
                },
            )),
        }
    }

    /// What to do when the files are nowhere to be found.
    pub(crate) fn how_to_get(self) -> String {
        let files = FILES.join(", ");
        match self {
            Dataset::Mnist => format!(
                "copy the IDX gz files ({files}) into data/mnist/ (a source checkout has them \
                 committed there), or pass --data-dir DIR"
            ),
            Dataset::FashionMnist => format!(
                "copy the IDX gz files ({files}) into data/fashion-mnist/ (a source checkout \
                 has them committed there), or `apt-get install dataset-fashion-mnist`, or pass \
                 --data-dir DIR"
            ),
        }
    }

    /// Finds the folder (see [`find_dir`](Self::find_dir)) and reads both splits, keeping in
    /// each only the images of `classes`, and of the training images only the first
    /// `train_limit` of those when given. Every file is fully validated; test images must have
    /// the training images' size.
    pub fn load(
        self,
        data_dir: Option<&Path>,
        classes: &Classes,
        train_limit: Option<usize>,
    ) -> Result<Splits, DataError> {
        let dir = self.find_dir(data_dir)?;
        let train = load_split(&dir.join(TRAIN_IMAGES), &dir.join(TRAIN_LABELS))?;
        let test = load_split(&dir.join(TEST_IMAGES), &dir.join(TEST_LABELS))?;
        if test.image_shape() != train.image_shape() {
            return Err(DataError::new(
                dir.join(TEST_IMAGES),
                Problem::ShapeMismatch {
                    found: test.image_shape(),
                    expected: train.image_shape(),
                },
            ));
        }
        let (mut train, test) = (classes.keep(train), classes.keep(test));
        match train_limit {
            Some(0) => return Err(DataError::new(dir, Problem::EmptyTrainLimit)),
            Some(n) => train.truncate(n),
            None => {}
        }
        Ok(Splits { train, test, dir })
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dataset::Mnist => "MNIST",
            Dataset::FashionMnist => "Fashion-MNIST",
        })
    }
}

/// A dataset name that is not `mnist` or `fashion-mnist`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dataset {0:?}: expected mnist or fashion-mnist")]
pub struct UnknownDataset(pub String);

impl FromStr for Dataset {
    type Err = UnknownDataset;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Dataset::Mnist, Dataset::FashionMnist]
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| UnknownDataset(s.to_owned()))
    }
}

/// Both splits of a dataset, and the folder they were read from.
#[derive(Clone, Debug)]
pub struct Splits {
    /// The training split (possibly limited to its first images).
    pub train: Split,
    /// The test split.
    pub test: Split,
    /// The folder the files came from.
    pub dir: PathBuf,
}

/// Reads an images file and its labels file into a split; they must hold as many examples.
pub fn load_split(images_path: &Path, labels_path: &Path) -> Result<Split, DataError> {
    let images = read_images(images_path)?;
    let labels = read_labels(labels_path)?;
    if labels.len() != images.count {
        return Err(DataError::new(
            labels_path,
            Problem::CountMismatch {
                labels: labels.len(),
                images: images.count,
                images_path: images_path.to_path_buf(),
            },
        ));
    }
    Ok(Split::new(
        images.pixels,
        labels,
        (images.height, images.width),
    ))
}

/// The source checkout's top-level `data/` folder (two levels above this crate's manifest), so a
/// binary built from a checkout finds the committed MNIST from any working directory.
fn workspace_data() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    match manifest.ancestors().nth(2) {
        Some(root) => root.join("data"),
        None => manifest.join("../../data"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::testutil::{TempDir, idx_bytes, write_gz, write_split};

    #[test]
    fn parses_and_prints_names() {
        assert_eq!("mnist".parse(), Ok(Dataset::Mnist));
        assert_eq!("fashion-mnist".parse(), Ok(Dataset::FashionMnist));
        assert_eq!(Dataset::FashionMnist.to_string(), "Fashion-MNIST");
        assert_eq!(
            "MNIST".parse::<Dataset>().unwrap_err().to_string(),
            "unknown dataset \"MNIST\": expected mnist or fashion-mnist"
        );
    }

    #[test]
    fn search_order() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(2)
            .unwrap();
        assert_eq!(
            Dataset::Mnist.search_dirs(),
            [PathBuf::from("data/mnist"), root.join("data/mnist")]
        );
        assert_eq!(
            Dataset::FashionMnist.search_dirs(),
            [
                PathBuf::from("data/fashion-mnist"),
                root.join("data/fashion-mnist"),
                PathBuf::from("/usr/share/datasets/fashion-mnist"),
            ]
        );
    }

    #[test]
    fn find_takes_the_first_complete_folder() {
        let tmp = TempDir::new("find");
        let (partial, full, later) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("c"),
        );
        for d in [&partial, &full, &later] {
            std::fs::create_dir(d).unwrap();
        }
        write_split(&partial, "train", 2, (1, 1));
        write_split(&full, "train", 2, (1, 1));
        write_split(&full, "t10k", 2, (1, 1));
        write_split(&later, "train", 2, (1, 1));
        write_split(&later, "t10k", 2, (1, 1));
        let dirs = [tmp.path().join("missing"), partial, full.clone(), later];
        assert_eq!(Dataset::Mnist.find_in(&dirs).unwrap(), full);
    }

    #[test]
    fn not_found_says_where_it_looked_and_how_to_get_it() {
        let tmp = TempDir::new("notfound");
        let dirs = [tmp.path().join("x"), tmp.path().join("y")];
        let err = Dataset::FashionMnist.find_in(&dirs).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with(&format!(
            "{}: Fashion-MNIST not found; looked in {}, {}; copy the IDX gz files (",
            dirs[0].display(),
            dirs[0].display(),
            dirs[1].display()
        )));
        assert!(msg.contains("into data/fashion-mnist/"), "{msg}");
        assert!(
            msg.contains("apt-get install dataset-fashion-mnist"),
            "{msg}"
        );
    }

    #[test]
    fn explicit_dir_overrides_and_a_missing_file_is_named() {
        let tmp = TempDir::new("explicit");
        write_split(tmp.path(), "train", 5, (2, 3));
        assert_eq!(
            Dataset::Mnist.find_dir(Some(tmp.path())).unwrap(),
            tmp.path()
        );
        let err = Dataset::Mnist
            .load(Some(tmp.path()), &Classes::All, None)
            .unwrap_err();
        assert_eq!(err.path, tmp.path().join(TEST_IMAGES));
        assert!(matches!(err.problem, Problem::Io(_)));
    }

    #[test]
    fn loads_both_splits_with_a_train_limit() {
        let tmp = TempDir::new("load");
        write_split(tmp.path(), "train", 5, (2, 3));
        write_split(tmp.path(), "t10k", 3, (2, 3));
        let all = Dataset::FashionMnist
            .load(Some(tmp.path()), &Classes::All, None)
            .unwrap();
        assert_eq!(
            (all.train.len(), all.test.len(), all.train.image_shape()),
            (5, 3, (2, 3))
        );
        // write_split: pixel i of the body is i mod 256, label i is i mod 10.
        assert_eq!(all.train.image(1), &[6, 7, 8, 9, 10, 11]);
        assert_eq!(all.test.labels(), &[0, 1, 2]);
        let limited = Dataset::FashionMnist
            .load(Some(tmp.path()), &Classes::All, Some(2))
            .unwrap();
        assert_eq!((limited.train.len(), limited.test.len()), (2, 3));
        assert_eq!(limited.train.labels(), &[0, 1]);
        let err = Dataset::FashionMnist
            .load(Some(tmp.path()), &Classes::All, Some(0))
            .unwrap_err();
        assert!(matches!(err.problem, Problem::EmptyTrainLimit));
    }

    #[test]
    fn count_mismatch_between_images_and_labels() {
        let tmp = TempDir::new("count");
        write_split(tmp.path(), "train", 5, (2, 3));
        let labels = tmp.write(TRAIN_LABELS, &write_gz(&idx_bytes(2049, &[4], &[0; 4])));
        let images = tmp.path().join(TRAIN_IMAGES);
        let err = load_split(&images, &labels).unwrap_err();
        assert_eq!(err.path, labels);
        assert!(matches!(
            err.problem,
            Problem::CountMismatch {
                labels: 4,
                images: 5,
                ..
            }
        ));
        assert!(err.to_string().ends_with(&format!(
            "4 labels, but {} holds 5 images",
            images.display()
        )));
    }

    #[test]
    fn test_images_must_match_the_training_size() {
        let tmp = TempDir::new("shape");
        write_split(tmp.path(), "train", 5, (2, 3));
        write_split(tmp.path(), "t10k", 3, (3, 2));
        let err = Dataset::Mnist
            .load(Some(tmp.path()), &Classes::All, None)
            .unwrap_err();
        assert_eq!(err.path, tmp.path().join(TEST_IMAGES));
        assert!(matches!(
            err.problem,
            Problem::ShapeMismatch {
                found: (3, 2),
                expected: (2, 3)
            }
        ));
    }
}
