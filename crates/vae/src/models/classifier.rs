//! The reference classifier of the sample-quality yardstick: an MLP from the image to the ten
//! classes' logits, ReLU (or `--activation`) hidden layers each followed by dropout, trained on
//! the cross-entropy `−ln softmax(f(x))_y`.
//!
//! Trained once per dataset, it stands in for ImageNet's Inception network: the
//! [`quality`](crate::eval::quality) figures of every generative model read its class
//! probabilities and its last hidden layer (the features of the Fréchet distance).

use std::path::{Path, PathBuf};

use autodiff::{Matrix, Tape, Var};
use ndarray::{Axis, s};
use nn::{Activation, Bound, Dropout, Mlp, MlpConfig, Mode, ParamStore};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::report::Grids;
use crate::data::{Batch, Binarize};
use crate::data::{CLASSES, one_hot};
use crate::model::files;
use crate::model::{
    Abilities, Classified, Classify, Columns, Epoch, Figure, Finish, ModelEntry, Params, Picture,
    Report, Row, RunConfig, RunError, RunModel, Schema, Settings, State, TestData, TrainData,
    all_images, by_str, check_hidden, keep, positive, short_f32,
};
use crate::random::{Draws, Keys, Purpose};
use crate::train;
use crate::train::Loss;

/// Rows classified at once (bounds the memory of a forward pass).
const CHUNK_ROWS: usize = 4096;

/// An MLP classifier `classifier.fc1 … classifier.fc{k+1}`: input → `hidden` → 10 logits, with
/// the activation and then dropout after every hidden layer.
#[derive(Debug, Clone)]
pub struct Classifier {
    mlp: Mlp,
    activation: nn::Activation,
    dropout: Dropout,
}

impl Classifier {
    /// Adds the parameters for images of `input_dim` pixels to `store`, weights drawn from `rng`
    /// (Xavier uniform, zero biases).
    ///
    /// Panics if `hidden` is empty or `dropout` is outside `[0, 1)`.
    #[track_caller]
    pub fn new(
        store: &mut ParamStore,
        input_dim: usize,
        hidden: &[usize],
        (activation, dropout): (nn::Activation, f32),
        rng: &mut ChaCha8Rng,
    ) -> Classifier {
        assert!(!hidden.is_empty(), "Classifier: needs a hidden layer");
        let mut widths = vec![input_dim];
        widths.extend(hidden);
        widths.push(CLASSES);
        let mlp = Mlp::new(
            store,
            "classifier",
            &MlpConfig::new(&widths, activation),
            rng,
        );
        Classifier {
            mlp,
            activation,
            dropout: Dropout::new(dropout),
        }
    }

    /// The logits (rows × 10) of a batch `x` and its last hidden layer's activations (before
    /// dropout): the features of the Fréchet distance.
    pub fn forward<'t>(&self, p: &Bound<'t>, x: Var<'t>, mut mode: Mode<'_>) -> (Var<'t>, Var<'t>) {
        let (last, hidden) = self.mlp.layers().split_last().expect("an MLP has layers");
        let mut h = x;
        let mut features = x;
        for layer in hidden {
            features = self.activation.apply(layer.forward(p, h));
            h = self.dropout.forward(p, features, mode.reborrow());
        }
        (last.forward(p, h), features)
    }

    /// The mean cross-entropy of the batch under dropout, each row's masks drawn from its
    /// example's stream of [`Purpose::Dropout`]; part `xent`, per example
    /// `−ln softmax(f(x))_y`.
    pub fn loss<'t>(&self, p: &Bound<'t>, batch: &Batch, draws: &Draws<'_>) -> Loss<'t> {
        let x = p.constant(batch.images().clone());
        let mut rngs: Vec<_> = (0..draws.len())
            .map(|r| draws.row(Purpose::Dropout, r, 0))
            .collect();
        let (logits, _) = self.forward(p, x, Mode::Train(&mut rngs));
        let xent = -(logits.log_softmax() * p.constant(one_hot(batch.labels()))).sum_cols();
        Loss::new(xent.mean(), [("xent", xent)])
    }

    /// The class probabilities and features of every row of `x`, in evaluation mode.
    pub fn classify(&self, store: &ParamStore, x: &Matrix) -> Classified {
        let features_dim = self.mlp.layers().last().expect("layers").in_dim();
        let mut probs = Matrix::zeros((x.nrows(), CLASSES));
        let mut features = Matrix::zeros((x.nrows(), features_dim));
        for start in (0..x.nrows()).step_by(CHUNK_ROWS) {
            let rows = start..(start + CHUNK_ROWS).min(x.nrows());
            let tape = Tape::new();
            let p = store.bind_frozen(&tape);
            let xv = p.constant(x.slice(s![rows.clone(), ..]).to_owned());
            let (logits, f) = self.forward(&p, xv, Mode::Eval);
            let log_p = logits.log_softmax().value();
            probs
                .slice_mut(s![rows.clone(), ..])
                .assign(&log_p.mapv(f32::exp));
            features.slice_mut(s![rows, ..]).assign(&*f.value());
        }
        Classified { probs, features }
    }
}

/// The class of highest probability of each row.
pub fn predictions(probs: &Matrix) -> Vec<u8> {
    (probs.rows().into_iter())
        .map(|row| {
            let best = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (c, &v)| {
                        if v > b.1 { (c, v) } else { b }
                    },
                );
            best.0 as u8
        })
        .collect()
}

/// `--model classifier`: its widths, activation and dropout.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Model classifier")]
pub struct ClassifierSettings {
    /// Hidden widths, comma-separated.
    #[arg(long, value_name = "W[,W...]", value_delimiter = ',', value_parser = positive, default_value = "400")]
    pub hidden: Vec<usize>,
    /// Between hidden layers: relu, tanh, softplus (also leaky_relu:SLOPE, sigmoid).
    #[arg(long, default_value = "relu")]
    #[serde(with = "by_str")]
    pub activation: Activation,
    /// The dropout probability after each hidden layer, in [0, 1).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    #[serde(with = "short_f32")]
    pub dropout: f32,
}

impl Settings for ClassifierSettings {
    fn check(&self, _config: &RunConfig) -> Result<(), String> {
        check_hidden(&self.hidden)?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("--dropout must be in [0, 1), got {}", self.dropout));
        }
        Ok(())
    }
}

/// `--model classifier` in the registry.
pub const MODEL: ModelEntry = ModelEntry {
    name: "classifier",
    about: "MLP classifier, the reference of `eval --quality`",
    schema: Schema::of::<ClassifierSettings>(),
    binarize: Binarize::None,
    defaults: keep,
    background: keep,
    legacy: &[],
    scores: false,
    data: all_images,
    build: |config, build| Box::new(ClassifierModel::new(config, build.shape)),
};

/// `--model classifier`: the [`Classifier`] with its parameters and optimizer, as a run trains
/// it. Its figures are the test cross-entropy and classification error.
pub struct ClassifierModel {
    classifier: Classifier,
    params: Params,
}

impl ClassifierModel {
    /// The classifier of `config` (`--hidden`, `--activation`, `--dropout`) for images of
    /// `shape`, initialised from the run's seed.
    pub fn new(config: &RunConfig, (height, width): (usize, usize)) -> Self {
        let settings: &ClassifierSettings = config.settings();
        let mut store = ParamStore::new();
        let classifier = Classifier::new(
            &mut store,
            height * width,
            &settings.hidden,
            (settings.activation, settings.dropout),
            &mut config.init_rng(),
        );
        ClassifierModel {
            classifier,
            params: Params::new(store, config),
        }
    }

    /// The test cross-entropy (nats per image) and the fraction misclassified.
    fn evaluate(&self, test: &TestData) -> (f64, f64) {
        let classified = self.classify(&test.x);
        let labels = test.split.labels();
        let xent: f64 = (classified.probs.rows().into_iter())
            .zip(labels)
            .map(|(row, &y)| -f64::from(row[usize::from(y)].max(f32::MIN_POSITIVE)).ln())
            .sum();
        let wrong = predictions(&classified.probs)
            .iter()
            .zip(labels)
            .filter(|(p, y)| p != y)
            .count();
        let n = labels.len().max(1) as f64;
        (xent / n, wrong as f64 / n)
    }
}

impl RunModel for ClassifierModel {
    fn columns(&self) -> Columns {
        Columns {
            train: &["train_xent"],
            test: &["test_xent", "test_error"],
        }
    }

    fn train_epoch(&mut self, data: &TrainData, ctx: &mut Epoch<'_>) -> Row {
        let classifier = &self.classifier;
        let (store, opt) = self.params.parts();
        let mean = train::epoch(
            store,
            opt,
            data.all(),
            ctx.plan(),
            |p, batch, draws| classifier.loss(p, &batch, draws),
            &mut *ctx.on_batch,
        );
        Row::new(self.columns().train, vec![mean.loss])
    }

    fn test(&self, test: &TestData, _keys: Keys) -> Row {
        let (xent, error) = self.evaluate(test);
        Row::new(self.columns().test, vec![xent, error])
    }

    fn state(&mut self) -> State<'_> {
        self.params.state().data_parallel()
    }

    fn abilities(&self) -> Abilities<'_> {
        Abilities {
            classify: Some(self),
            ..Abilities::default()
        }
    }
}

impl Report for ClassifierModel {
    fn describe(&self, values: &Row) -> String {
        format!(
            "train xent {:7.4}  test xent {:7.4}, error {:6.2}%",
            values.get("train_xent"),
            values.get("test_xent"),
            100.0 * values.get("test_error")
        )
    }

    fn describe_test(&self, values: &Row) -> String {
        format!(
            "test cross-entropy {:.4} nats, error {:.2}%",
            values.get("test_xent"),
            100.0 * values.get("test_error")
        )
    }

    fn finish(&self, test: &TestData, _ctx: &mut Finish<'_>) -> Result<Vec<Figure>, RunError> {
        let (_, error) = self.evaluate(test);
        Ok(vec![Figure::new(
            "accuracy",
            1.0 - error,
            format!("test accuracy {:.2}%", 100.0 * (1.0 - error)),
        )])
    }

    fn pictures(
        &self,
        test: &TestData,
        out: &Path,
        _rng: &mut ChaCha8Rng,
    ) -> Result<Vec<PathBuf>, RunError> {
        let mut grids = Grids::new(out, test.split.image_shape());
        if let Some(mistakes) = self.mistakes(test, 64) {
            grids.picture(files::MISTAKES, &mistakes)?;
        }
        Ok(grids.finish())
    }

    fn sample_picture(
        &self,
        _: &TestData,
        _: usize,
        _: &mut ChaCha8Rng,
    ) -> Result<Picture, String> {
        Err("model classifier draws no samples".into())
    }
}

impl ClassifierModel {
    /// Up to `n` misclassified test images, in test-set order.
    fn mistakes(&self, test: &TestData, n: usize) -> Option<Picture> {
        let predicted = predictions(&self.classify(&test.x).probs);
        let wrong: Vec<usize> = (predicted.iter().zip(test.split.labels()))
            .enumerate()
            .filter(|(_, (p, y))| p != y)
            .map(|(i, _)| i)
            .take(n)
            .collect();
        (!wrong.is_empty()).then(|| {
            Picture::square(
                test.x.select(Axis(0), &wrong),
                format!("{} misclassified test images", wrong.len()),
            )
        })
    }
}

impl Classify for ClassifierModel {
    fn classify(&self, x: &Matrix) -> Classified {
        self.classifier.classify(&self.params.store, x)
    }

    fn weights_sha256(&self) -> String {
        let mut hash = Sha256::new();
        for (_, name, value) in self.params.store.iter() {
            hash.update(name.as_bytes());
            for d in [value.nrows(), value.ncols()] {
                hash.update((d as u64).to_le_bytes());
            }
            for v in value.iter() {
                hash.update(v.to_le_bytes());
            }
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff::{GradcheckConfig, gradcheck};
    use rand::SeedableRng;

    fn tiny(dropout: f32) -> (ParamStore, Classifier) {
        let mut store = ParamStore::new();
        let rng = &mut ChaCha8Rng::seed_from_u64(0);
        let c = Classifier::new(&mut store, 6, &[5, 4], (nn::Activation::Tanh, dropout), rng);
        (store, c)
    }

    #[test]
    fn the_loss_is_the_cross_entropy_of_the_softmax_and_passes_gradcheck() {
        let (store, c) = tiny(0.0);
        let x = Matrix::from_shape_fn((3, 6), |(i, j)| ((i * 7 + j * 3) % 5) as f32 / 5.0);
        let labels = [2u8, 9, 0];
        let batch = Batch {
            images: x.clone(),
            labels: labels.to_vec(),
            indices: vec![0, 1, 2],
        };
        let tape = Tape::new();
        let p = store.bind(&tape);
        let loss = c.loss(&p, &batch, &crate::random::test_draws(1, 3));
        let (logits, _) = c.forward(&p, p.constant(x.clone()), Mode::Eval);
        // −ln softmax(l)_y = logsumexp(l) − l_y, by hand from the logits.
        let expected: f64 = (logits.value().rows().into_iter())
            .zip(labels)
            .map(|(row, y)| {
                let lse = row.iter().map(|&v| f64::from(v).exp()).sum::<f64>().ln();
                lse - f64::from(row[usize::from(y)])
            })
            .sum::<f64>()
            / 3.0;
        assert!((f64::from(loss.loss.item()) - expected).abs() < 1e-5);
        // The probabilities of `classify` are the softmax: rows sum to one.
        let classified = c.classify(&store, &x);
        for row in classified.probs.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-5);
        }
        assert_eq!(classified.features.dim(), (3, 4));
        let mut inputs = vec![x];
        inputs.extend(store.iter().map(|(_, _, v)| v.clone()));
        gradcheck(
            |v| {
                let p = store.bind_vars(v[0].tape(), &v[1..]);
                let (logits, _) = c.forward(&p, v[0], Mode::Eval);
                -(logits.log_softmax() * p.constant(one_hot(&labels))).sum_cols()
            },
            &inputs,
            &GradcheckConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn dropout_acts_in_training_only() {
        let (store, c) = tiny(0.5);
        let x = Matrix::from_elem((4, 6), 0.5);
        let tape = Tape::new();
        let p = store.bind_frozen(&tape);
        let rng = &mut [2, 3, 4, 5].map(ChaCha8Rng::seed_from_u64);
        let (a, _) = c.forward(&p, p.constant(x.clone()), Mode::Eval);
        let (b, _) = c.forward(&p, p.constant(x.clone()), Mode::Eval);
        let (t, _) = c.forward(&p, p.constant(x), Mode::Train(rng));
        assert_eq!(*a.value(), *b.value());
        assert_ne!(*a.value(), *t.value());
    }

    #[test]
    fn predictions_take_the_most_probable_class() {
        let probs = ndarray::array![[0.1f32, 0.7, 0.2], [0.5, 0.2, 0.3]];
        assert_eq!(predictions(&probs), [1, 0]);
    }
}
