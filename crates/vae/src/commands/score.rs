//! `vae-train score`: every score a model gives each image of a split (the higher, the less the
//! model expects the image), with its label and its input complexity, the size of the image as
//! a PNG in bits (Serrà et al. 2020): the raw material of anomaly and out-of-distribution
//! detection, written as `scores.csv`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::random::Keys;

use crate::data::{
    Dataset, Split, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, eval_targets, images,
    load_split,
};
use crate::image::png_bits;
use crate::model::{RunError, ScoreSettings, Scores};
use crate::run::{Loaded, write_atomic};

/// Which split of a dataset to score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SplitName {
    /// The training images.
    Train,
    /// The test images.
    #[default]
    Test,
}

impl std::str::FromStr for SplitName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "train" => Ok(SplitName::Train),
            "test" => Ok(SplitName::Test),
            _ => Err(format!("unknown split `{s}` (expected train or test)")),
        }
    }
}

/// Reads `split` of `dataset` (from `data_dir`, or the usual places), its first `limit` images
/// when given; returns it with the images file it came from.
pub fn load_scored(
    dataset: Dataset,
    data_dir: Option<&Path>,
    split: SplitName,
    limit: Option<usize>,
) -> Result<(Split, PathBuf), RunError> {
    let dir = dataset.find_dir(data_dir)?;
    let (images, labels) = match split {
        SplitName::Train => (TRAIN_IMAGES, TRAIN_LABELS),
        SplitName::Test => (TEST_IMAGES, TEST_LABELS),
    };
    let mut loaded = load_split(&dir.join(images), &dir.join(labels))?;
    if let Some(n) = limit {
        loaded.truncate(n);
    }
    Ok((loaded, dir.join(images)))
}

/// The scores of every image of a split.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreTable {
    /// Each image's label.
    pub labels: Vec<u8>,
    /// The model's scores, then `png_bits`, one value per image each.
    pub scores: Vec<Scores>,
}

impl ScoreTable {
    /// The score of column `column`, if the table has it.
    pub fn column(&self, column: &str) -> Option<&[f64]> {
        (self.scores.iter())
            .find(|s| s.column == column)
            .map(|s| s.values.as_slice())
    }
}

/// Every score the model of `run` (read from `checkpoint`) gives each image of `split` (read
/// from `file`), the images binarized as the model's test set is, and each image's PNG size.
/// An error for a model without a score of its own, or images of another size than its.
pub fn score_split(
    run: &Loaded,
    checkpoint: &Path,
    (split, file): (&Split, &Path),
    settings: &ScoreSettings,
    keys: Keys,
) -> Result<ScoreTable, RunError> {
    let scorer = run.model.abilities().score.ok_or_else(|| {
        RunError::Config(format!(
            "{}: model {} gives no score of an image on its own (score takes vae, m2, ae, dae, \
             vqvae and pixel-ar)",
            checkpoint.display(),
            run.config.kind()
        ))
    })?;
    let (shape, expected) = (split.image_shape(), run.test.split.image_shape());
    if shape != expected {
        return Err(RunError::Config(format!(
            "{}: images of {}x{}, but the model of {} takes {}x{}",
            file.display(),
            shape.0,
            shape.1,
            checkpoint.display(),
            expected.0,
            expected.1
        )));
    }
    let x = images(&eval_targets(split, run.config.data.binarize));
    let mut scores = scorer.scores(&x, settings, keys);
    scores.push(Scores {
        column: "png_bits",
        values: (0..split.len())
            .map(|i| png_bits(split.image(i), shape) as f64)
            .collect(),
    });
    Ok(ScoreTable {
        labels: split.labels().to_vec(),
        scores,
    })
}

/// Writes `table` to `path` as CSV, `index,label,<scores…>`, atomically: a failed or
/// interrupted write leaves no half-written file.
pub fn write_csv(path: &Path, table: &ScoreTable) -> Result<(), RunError> {
    let mut s = String::from("index,label");
    for scores in &table.scores {
        s.push(',');
        s.push_str(scores.column);
    }
    s.push('\n');
    for (i, label) in table.labels.iter().enumerate() {
        let _ = write!(s, "{i},{label}");
        for scores in &table.scores {
            let _ = write!(s, ",{:.6}", scores.values[i]);
        }
        s.push('\n');
    }
    write_atomic(path, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_written_with_a_header_and_a_row_per_image() {
        let table = ScoreTable {
            labels: vec![3, 7],
            scores: vec![
                Scores {
                    column: "neg_elbo",
                    values: vec![90.5, 120.25],
                },
                Scores {
                    column: "png_bits",
                    values: vec![2000.0, 2400.0],
                },
            ],
        };
        let dir = std::env::temp_dir().join(format!("henbun-scores-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scores.csv");
        write_csv(&path, &table).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "index,label,neg_elbo,png_bits\n0,3,90.500000,2000.000000\n1,7,120.250000,2400.000000\n"
        );
        assert_eq!(table.column("png_bits"), Some(&[2000.0, 2400.0][..]));
        assert_eq!(table.column("absent"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn split_names_parse() {
        assert_eq!("train".parse(), Ok(SplitName::Train));
        assert_eq!("test".parse(), Ok(SplitName::Test));
        assert!("valid".parse::<SplitName>().is_err());
    }
}
