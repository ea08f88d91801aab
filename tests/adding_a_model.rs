//! README.md, "Adding a model": the worked example, a model written outside the crate through the
//! public seam, trained, checkpointed, tested and reported by the run like any registered model.
//! The README shows this file's code between the `adding-a-model` markers, and the last test
//! checks that it still does.

use std::fs;
use std::path::{Path, PathBuf};

use henbun::autodiff::{Matrix, Tape, bce_with_logits};
use henbun::nn::ParamId;
use henbun::vae::data::Binarize;
use henbun::vae::model::{
    Abilities, Build, Columns, Epoch, Figure, Finish, ModelEntry, ModelKind, Params, Picture,
    Report, Row, RunConfig, RunError, RunModel, Sample, Samples, Schema, Score, Settings, State,
    TestData, TrainData, all_images, keep, short_f32,
};
use henbun::vae::random::Keys;
use henbun::vae::run::{self, Silent, files};
use henbun::vae::train::{self, Loss};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

// adding-a-model:begin
/// `--model pixels`: every pixel an independent Bernoulli variable with a learned logit, the
/// baseline every image model must beat.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Model pixels")]
pub struct PixelsSettings {
    /// Pull the training targets toward ½ by this much, in [0, 1).
    #[arg(long, value_name = "ε", default_value_t = 0.0)]
    #[serde(with = "short_f32")]
    pub smoothing: f32,
}

impl Settings for PixelsSettings {
    fn check(&self, _config: &RunConfig) -> Result<(), String> {
        match (0.0..1.0).contains(&self.smoothing) {
            true => Ok(()),
            false => Err(format!(
                "--smoothing must be in [0, 1), got {}",
                self.smoothing
            )),
        }
    }
}

/// Its entry; `crate::models::MODELS` lists the entries `--model` knows.
pub static PIXELS: ModelEntry = ModelEntry {
    name: "pixels",
    about: "independent Bernoulli pixels",
    schema: Schema::of::<PixelsSettings>(),
    binarize: Binarize::Dynamic,
    defaults: keep,
    background: keep,
    legacy: &[],
    scores: true,
    data: all_images,
    build: |config, build| Box::new(Pixels::new(config, build.shape)),
};

const COLUMNS: Columns = Columns {
    train: &["train_nll"],
    test: &["test_nll"],
};

/// The model: one logit per pixel, trained by the run's Adam.
pub struct Pixels {
    logits: ParamId,
    params: Params,
    smoothing: f32,
}

impl Pixels {
    fn new(config: &RunConfig, (height, width): (usize, usize)) -> Pixels {
        let mut store = henbun::nn::ParamStore::new();
        let logits = store.add("pixels.logits", Matrix::zeros((1, height * width)));
        let smoothing = config.settings::<PixelsSettings>().smoothing;
        let params = Params::new(store, config);
        Pixels {
            logits,
            params,
            smoothing,
        }
    }

    /// `−ln p(x)` of each row of `x`, in nats.
    fn nll(&self, x: &Matrix) -> Vec<f64> {
        let tape = Tape::new();
        let p = self.params.store.bind_frozen(&tape);
        let logits = p.constant(Matrix::zeros(x.dim())) + p.var(self.logits);
        let nll = bce_with_logits(logits, p.constant(x.clone())).value();
        nll.iter().map(|&v| f64::from(v)).collect()
    }
}

impl RunModel for Pixels {
    fn columns(&self) -> Columns {
        COLUMNS
    }

    fn train_epoch(&mut self, data: &TrainData, ctx: &mut Epoch<'_>) -> Row {
        let (id, eps) = (self.logits, self.smoothing);
        let (store, opt) = self.params.parts();
        let mean = train::epoch(
            store,
            opt,
            data.all(),
            ctx.plan(),
            |p, batch, _draws| {
                let x = batch.images.mapv(|v| v * (1.0 - eps) + eps / 2.0);
                let logits = p.constant(Matrix::zeros(x.dim())) + p.var(id);
                let nll = bce_with_logits(logits, p.constant(x));
                Loss::new(nll.mean_rows(), [("nll", nll)])
            },
            &mut *ctx.on_batch,
        );
        Row::new(COLUMNS.train, vec![mean.loss])
    }

    fn test(&self, test: &TestData, _keys: Keys) -> Row {
        let nll = self.nll(&test.x);
        let mean = nll.iter().sum::<f64>() / nll.len().max(1) as f64;
        Row::new(COLUMNS.test, vec![mean])
    }

    fn state(&mut self) -> State<'_> {
        self.params.state().data_parallel()
    }

    fn abilities(&self) -> Abilities<'_> {
        Abilities {
            sample: Some(self),
            score: Some(self),
            ..Abilities::default()
        }
    }
}

impl Report for Pixels {
    fn pictures(
        &self,
        _: &TestData,
        _: &Path,
        _: &mut ChaCha8Rng,
    ) -> Result<Vec<PathBuf>, RunError> {
        Ok(Vec::new())
    }

    fn sample_picture(
        &self,
        _: &TestData,
        n: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Picture, String> {
        Ok(Picture::square(
            self.sample(n, rng).images,
            format!("{n} samples"),
        ))
    }

    fn finish(&self, test: &TestData, _ctx: &mut Finish<'_>) -> Result<Vec<Figure>, RunError> {
        let nll = self.test(test, Keys::evaluation(0)).get("test_nll");
        Ok(vec![Figure::new(
            "-log p(x)",
            nll,
            format!("test -log p(x) {nll:.2} nats, exact"),
        )])
    }
}

impl Sample for Pixels {
    /// Each pixel drawn from its Bernoulli.
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Samples {
        let logits = self.params.store.value(self.logits);
        let images = Matrix::from_shape_fn((n, logits.ncols()), |(_, j)| {
            let p = 1.0 / (1.0 + (-logits[[0, j]]).exp());
            f32::from(rng.random::<f32>() < p)
        });
        Samples {
            images,
            labels: None,
        }
    }

    fn draws_means(&self) -> bool {
        false
    }
}

impl Score for Pixels {
    fn score_name(&self) -> &'static str {
        "-log p(x)"
    }

    fn score(&self, x: &Matrix, _keys: Keys) -> Vec<f64> {
        self.nll(x)
    }

    fn score_column(&self) -> &'static str {
        "neg_log_px"
    }
}
// adding-a-model:end

/// A fresh, empty directory under the system's temp dir.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("henbun-adding-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_example_model_trains_checkpoints_and_reports_through_the_run() {
    let dir = scratch("pixels");
    let kind = ModelKind::of(&PIXELS);
    let mut config = RunConfig::for_model(kind);
    config.model.set("smoothing", "0.1").unwrap();
    config.data.train_limit = Some(2000);
    config.data.test_limit = Some(500);
    (config.epochs, config.optimizer.lr) = (5, 0.1);
    let summary = run::train(config.clone(), &dir, None, &mut Silent).unwrap();
    // An untrained model scores 784·ln 2 ≈ 543 nats an image; 80 steps of per-pixel logits
    // learn the digits' mean image, far better.
    let nll = summary.figure("-log p(x)").unwrap().value;
    assert!(nll < 300.0, "test -log p(x) {nll}");
    let toml = fs::read_to_string(dir.join(files::CONFIG)).unwrap();
    assert!(toml.contains("[pixels]\nsmoothing = 0.1"), "{toml}");
    // Its checkpoint holds its parameters and its Adam, saved by the run.
    let mut model = (PIXELS.build)(&config, &Build::of((28, 28)));
    let checkpoint = dir.join(files::CHECKPOINT);
    run::restore(
        &mut *model,
        &checkpoint,
        henbun::vae::model::Restore::Everything,
    )
    .unwrap();
    let state = model.state();
    let (_, store, optimizer) = &state.trained[0];
    assert!(store.iter().all(|(_, _, v)| v.iter().any(|&w| w != 0.0)));
    assert_eq!(optimizer.lr(), 0.1);
    // A bad value of its flag is refused by its own check.
    config.model.set("smoothing", "1.5").unwrap();
    let error = run::train(config, &dir.join("bad"), None, &mut Silent).unwrap_err();
    assert_eq!(error.to_string(), "--smoothing must be in [0, 1), got 1.5");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_readme_shows_this_example() {
    let this = include_str!("adding_a_model.rs");
    let readme = include_str!("../README.md");
    let between = |text: &'static str| {
        let start = text
            .find("// adding-a-model:begin\n")
            .expect("the begin marker");
        let end = text.find("// adding-a-model:end").expect("the end marker");
        &text[start..end]
    };
    assert!(
        between(readme) == between(this),
        "README.md's example differs from tests/adding_a_model.rs: copy the code between the \
         markers"
    );
}
