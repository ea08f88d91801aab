//! M2 of Kingma, Rezende, Mohamed & Welling (2014), semi-supervised learning with a deep
//! generative model: a classifier `q(y|x)`, an encoder `q(z|x, y)`, a decoder `p(x|y, z)`, priors
//! `p(y)` uniform and `p(z) = N(0, I)`.
//!
//! - Labeled: `L(x, y) = -ELBO(x, y) = E_q[-ln p(x|y, z)] + KL(q(z|x, y) ‖ p(z)) - ln p(y)`.
//! - Unlabeled: `U(x) = Σ_y q(y|x)·L(x, y) - H(q(y|x))`, summed over all ten classes (not
//!   sampled), which is `Σ_y q(y|x)·(L(x, y) + ln q(y|x))`.
//! - Objective: `Σ_labeled L + Σ_unlabeled U + α·(N/N_l)·Σ_labeled -ln q(y|x)` (α = 0.1 in the
//!   paper), which trains the classifier on the labels too.

use std::f32::consts::LN_10;

use autodiff::{Matrix, Var, concat_cols};
use nn::{Bound, Mlp, MlpConfig, ParamStore};
use rand_chacha::ChaCha8Rng;

use std::path::{Path, PathBuf};

use autodiff::Tape;
use ndarray::{Axis, s};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::cvae::{CLASSES, one_hot};
use super::model::VaeNet;
use super::net::{Prior, Vae, VaeConfig};
use super::report::{
    active_units_figure, describe_elbo, describe_test_elbo, label_pictures, label_sample_picture,
    label_samples,
};
use crate::data::{Binarize, Split, TrainSet};
use crate::model::{
    Abilities, Columns, Epoch, Figure, Finish, ModelEntry, Params, Picture, Report, Row, RunConfig,
    RunError, RunModel, Sample, Samples, Schema, Score, Settings, State, TestData, TrainData, keep,
    positive, short_f32,
};
use crate::models::predictions;
use crate::random::{Draws, Keys, examples};
use crate::train;
use crate::train::Loss;

/// The paper's weight of the classification term.
pub const PAPER_ALPHA: f32 = 0.1;

/// How many training examples carry a label and how many do not: `N/N_l` weights the labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counts {
    /// `N_l`.
    pub labeled: usize,
    /// `N - N_l`.
    pub unlabeled: usize,
}

/// The classifier `classifier.fc*` (input → hidden → 10) and a label-conditioned [`Vae`].
#[derive(Debug, Clone)]
pub struct M2 {
    classifier: Mlp,
    vae: Vae,
    alpha: f32,
}

/// `U(x)` of each row of a batch, with its two parts.
pub struct Unlabeled<'t> {
    /// `U(x)` (batch×1).
    pub bound: Var<'t>,
    /// `Σ_y q(y|x)·E_q[-ln p(x|y, z)]` (batch×1).
    pub recon: Var<'t>,
    /// `KL(q(y, z|x) ‖ p(y, z)) = Σ_y q(y|x)·(KL_z(x, y) + ln q(y|x) - ln p(y))` (batch×1):
    /// `bound = recon + kl`.
    pub kl: Var<'t>,
    /// `ln q(y|x)` (batch×10).
    pub log_q: Var<'t>,
}

impl M2 {
    /// The networks of `config` (the condition becomes the one-hot label, the prior N(0, I)),
    /// with the classifier as wide as the encoder; `alpha` weights the classification term.
    pub fn new(
        store: &mut ParamStore,
        config: VaeConfig,
        alpha: f32,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let mut widths = vec![config.input_dim];
        widths.extend(&config.hidden);
        widths.push(CLASSES);
        let classifier = Mlp::new(
            store,
            "classifier",
            &MlpConfig::new(&widths, config.activation),
            rng,
        );
        let config = VaeConfig {
            cond_dim: CLASSES,
            prior: Prior::Standard,
            ..config
        };
        M2 {
            classifier,
            vae: Vae::new(store, config, rng),
            alpha,
        }
    }

    /// The label-conditioned VAE inside.
    pub fn vae(&self) -> &Vae {
        &self.vae
    }

    /// `ln q(y|x)` (batch×10).
    pub fn log_q_y<'t>(&self, p: &Bound<'t>, x: Var<'t>) -> Var<'t> {
        self.classifier.forward(p, x).log_softmax()
    }

    /// `L(x, y)` per example (batch×1) and its parts `(recon, kl)`, `L = recon + kl + ln 10`.
    pub fn labeled<'t>(
        &self,
        p: &Bound<'t>,
        x: Var<'t>,
        labels: &[u8],
        draws: &Draws<'_>,
    ) -> (Var<'t>, Var<'t>, Var<'t>) {
        let y = p.constant(one_hot(labels));
        let (recon, kl) = self.vae.neg_elbo_parts(p, x, Some(y), draws);
        (recon + kl + LN_10, recon, kl)
    }

    /// `U(x)` for every row of `x`: each image encoded and decoded under all ten labels at once
    /// (rows `y·B + i`, class after class), its encoder's `x·W₁` computed once and shared;
    /// under label `y` an image draws its ε from copy `y` of its example's stream.
    pub fn unlabeled<'t>(&self, p: &Bound<'t>, x: Var<'t>, draws: &Draws<'_>) -> Unlabeled<'t> {
        let b = x.shape().0;
        let rows: Vec<usize> = (0..CLASSES).flat_map(|_| 0..b).collect();
        let labels: Vec<u8> = (0..CLASSES as u8)
            .flat_map(|y| std::iter::repeat_n(y, b))
            .collect();
        let y = p.constant(one_hot(&labels));
        let pre = self.vae.encoder_input(p, x).gather_rows(&rows);
        let (mu, log_var) = self.vae.encode_from(p, pre, Some(y));
        let xs = x.gather_rows(&rows);
        let (recon, kl) = self
            .vae
            .parts_from_posterior(p, xs, Some(y), mu, log_var, draws);
        // 10B×1, class-major, to B×10: column y holds rows y·B..(y+1)·B.
        let by_class = |v: Var<'t>| {
            let cols: Vec<Var<'t>> = (0..CLASSES)
                .map(|c| v.gather_rows(&(c * b..(c + 1) * b).collect::<Vec<_>>()))
                .collect();
            concat_cols(&cols)
        };
        let (recon, kl) = (by_class(recon), by_class(kl));
        let log_q = self.log_q_y(p, x);
        let q = log_q.exp();
        let recon = (q * recon).sum_cols();
        let kl = (q * (kl + log_q + LN_10)).sum_cols();
        Unlabeled {
            bound: recon + kl,
            recon,
            kl,
            log_q,
        }
    }

    /// The objective on a batch that mixes labeled examples (`labeled` images, `labels`) and
    /// unlabeled ones: `Σ_labeled [L + α·(N/N_l)·(-ln q(y|x))] + Σ_unlabeled U`, summed over
    /// the batch's examples and divided by their number. Every batch holds labeled examples,
    /// so the labels weigh far more than their share `N_l/N` of the data: the usual practice
    /// for M2, without which the few labels barely steer q(y|x). Parts: `u`, `l`, `ce` per
    /// example of their halves of the batch.
    pub fn loss<'t>(
        &self,
        p: &Bound<'t>,
        (labeled, labeled_draws): ((Matrix, &[u8]), &Draws<'_>),
        (unlabeled, unlabeled_draws): (Matrix, &Draws<'_>),
        counts: Counts,
    ) -> Loss<'t> {
        let (x_l, labels) = labeled;
        let examples = (x_l.nrows() + unlabeled.nrows()) as f32;
        let ce_weight =
            self.alpha * (counts.labeled + counts.unlabeled) as f32 / counts.labeled as f32;
        let x_l = p.constant(x_l);
        let (l, _, _) = self.labeled(p, x_l, labels, labeled_draws);
        let ce = -(self.log_q_y(p, x_l) * p.constant(one_hot(labels))).sum_cols();
        let u = self
            .unlabeled(p, p.constant(unlabeled), unlabeled_draws)
            .bound;
        let objective = (l.sum() + ce.sum() * ce_weight + u.sum()) * (1.0 / examples);
        Loss::new(objective, [("u", u), ("l", l), ("ce", ce)])
    }
}

/// `--model m2`: the VAE family's network, the labels kept, the classification term's weight.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Model m2")]
pub struct M2Settings {
    #[command(flatten)]
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub net: VaeNet,
    /// Training images that keep their label (a multiple of 10, the same number per class).
    #[arg(long, value_name = "N", value_parser = positive, default_value_t = 100)]
    pub labels: usize,
    /// Weight α of the classification term (0.1 in the paper).
    #[arg(long, value_name = "α", default_value_t = PAPER_ALPHA)]
    #[serde(with = "short_f32")]
    pub alpha: f32,
}

impl Settings for M2Settings {
    fn check(&self, config: &RunConfig) -> Result<(), String> {
        self.net.check()?;
        if config.data.classes != crate::data::Classes::All {
            return Err("--classes and --exclude-class: m2 trains on all ten classes".into());
        }
        if self.labels == 0 || !self.labels.is_multiple_of(CLASSES) {
            return Err(
                "--labels must be a positive multiple of 10 (the same number per class)".into(),
            );
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err("--alpha must be a non-negative number".into());
        }
        Ok(())
    }
}

/// `--model m2` in the registry.
pub const MODEL: ModelEntry = ModelEntry {
    name: "m2",
    about: "semi-supervised M2",
    schema: Schema::of::<M2Settings>(),
    binarize: Binarize::Dynamic,
    defaults: keep,
    background: keep,
    legacy: &[],
    scores: true,
    data: semi_supervised,
    build: |config, build| Box::new(M2Model::new(config, build.shape)),
};

/// [`ModelEntry::data`] of M2: a class-balanced labeled subset of `--labels` images, drawn with
/// the run's seed on a stream of its own, and the rest unlabeled.
fn semi_supervised(config: &RunConfig, train: Split) -> Result<TrainData, RunError> {
    let settings: &M2Settings = config.settings();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    rng.set_stream(4);
    let labeled = balanced_subset(train.labels(), settings.labels / CLASSES, &mut rng)?;
    let mut is_labeled = vec![false; train.len()];
    for &i in &labeled {
        is_labeled[i] = true;
    }
    let unlabeled: Vec<usize> = (0..train.len()).filter(|&i| !is_labeled[i]).collect();
    if unlabeled.is_empty() {
        return Err(RunError::Config(
            "--labels: every training image is labeled; nothing is left unlabeled".into(),
        ));
    }
    let binarize = config.data.binarize;
    Ok(TrainData::SemiSupervised {
        labeled: TrainSet::new(train.subset(&labeled), binarize),
        unlabeled: TrainSet::new(train.subset(&unlabeled), binarize),
    })
}

/// Rows evaluated at once by the test bound (each decoded under ten labels).
const BOUND_CHUNK: usize = 400;

/// Rows classified at once.
const CLASSIFY_CHUNK: usize = 4096;

/// The labeled subset of M2: `per_class` examples of each class, drawn with `rng`.
pub fn balanced_subset(
    labels: &[u8],
    per_class: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<usize>, RunError> {
    let mut chosen = Vec::with_capacity(per_class * CLASSES);
    for class in 0..CLASSES as u8 {
        let mut of_class: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        if of_class.len() < per_class {
            return Err(RunError::Config(format!(
                "--labels: only {} training images of class {class}, {per_class} wanted",
                of_class.len()
            )));
        }
        of_class.shuffle(rng);
        chosen.extend_from_slice(&of_class[..per_class]);
    }
    chosen.sort_unstable();
    Ok(chosen)
}

/// `--model m2`: [`M2`] with its parameters and optimizer, as a run trains it on a
/// class-balanced labeled subset (`--labels`) and the rest of the images unlabeled. Its train
/// column is the objective; its test columns are the bound `U(x)` with its parts and the
/// classification error.
pub struct M2Model {
    m2: M2,
    params: Params,
}

impl M2Model {
    /// M2 of `config` for images of `shape`, initialised from the run's seed.
    pub fn new(config: &RunConfig, shape: (usize, usize)) -> Self {
        let settings: &M2Settings = config.settings();
        let mut store = ParamStore::new();
        let vae = settings.net.config(shape);
        let m2 = M2::new(&mut store, vae, settings.alpha, &mut config.init_rng());
        M2Model {
            m2,
            params: Params::new(store, config),
        }
    }

    fn net(&self) -> (&Vae, &ParamStore) {
        (self.m2.vae(), &self.params.store)
    }

    /// `U(x)` of the rows of `x`, chunk by chunk: `each` sees every chunk's parts (recon, kl),
    /// each a column of one value per row.
    fn bound_chunks(&self, x: &Matrix, draws: &Draws<'_>, mut each: impl FnMut(&Matrix, &Matrix)) {
        for start in (0..x.nrows()).step_by(BOUND_CHUNK) {
            let range = start..(start + BOUND_CHUNK).min(x.nrows());
            let rows = x.slice(s![range.clone(), ..]);
            let tape = Tape::new();
            let p = self.params.store.bind_frozen(&tape);
            let u = (self.m2).unlabeled(&p, p.constant(rows.to_owned()), &draws.slice(range));
            each(&u.recon.value(), &u.kl.value());
        }
    }

    /// The fraction of test images whose most probable class under `q(y|x)` is not their label.
    fn error(&self, test: &TestData) -> f64 {
        let mut wrong = 0usize;
        let chunks = test.x.axis_chunks_iter(Axis(0), CLASSIFY_CHUNK);
        for (chunk, rows) in chunks.enumerate() {
            let tape = Tape::new();
            let p = self.params.store.bind_frozen(&tape);
            let log_q = self.m2.log_q_y(&p, p.constant(rows.to_owned())).value();
            let labels = &test.split.labels()[chunk * CLASSIFY_CHUNK..];
            wrong += (predictions(&log_q).iter().zip(labels))
                .filter(|(p, y)| p != y)
                .count();
        }
        wrong as f64 / test.x.nrows().max(1) as f64
    }
}

impl RunModel for M2Model {
    fn columns(&self) -> Columns {
        Columns {
            train: &["train_loss"],
            test: &["test_neg_elbo", "test_recon", "test_kl", "test_error"],
        }
    }

    fn train_epoch(&mut self, data: &TrainData, ctx: &mut Epoch<'_>) -> Row {
        let TrainData::SemiSupervised { labeled, unlabeled } = data else {
            panic!("M2 trains on the semi-supervised split of its train_data");
        };
        let counts = Counts {
            labeled: labeled.len(),
            unlabeled: unlabeled.len(),
        };
        let m2 = &self.m2;
        let (store, opt) = self.params.parts();
        let mean = train::semi_supervised_epoch(
            store,
            opt,
            (labeled, unlabeled),
            ctx.batch_size.min(labeled.len()),
            ctx.plan(),
            |p, (l, l_draws), (u, u_draws)| {
                m2.loss(
                    p,
                    ((l.images, &l.labels), l_draws),
                    (u.images, u_draws),
                    counts,
                )
            },
            &mut *ctx.on_batch,
        );
        Row::new(self.columns().train, vec![mean.loss])
    }

    fn test(&self, test: &TestData, keys: Keys) -> Row {
        let (mut recon, mut kl) = (0.0f64, 0.0f64);
        self.bound_chunks(&test.x, &keys.draws(&test.examples), |r, k| {
            recon += f64::from(r.sum());
            kl += f64::from(k.sum());
        });
        let n = test.x.nrows().max(1) as f64;
        let values = vec![(recon + kl) / n, recon / n, kl / n, self.error(test)];
        Row::new(self.columns().test, values)
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

impl Report for M2Model {
    fn describe(&self, values: &Row) -> String {
        let error = 100.0 * values.get("test_error");
        format!(
            "{}  error {error:5.2}%",
            describe_elbo("train loss", values)
        )
    }

    fn describe_test(&self, values: &Row) -> String {
        describe_test_elbo(values)
    }

    fn finish(&self, test: &TestData, _ctx: &mut Finish<'_>) -> Result<Vec<Figure>, RunError> {
        let error = self.error(test);
        let (vae, store) = self.net();
        Ok(vec![
            Figure::new(
                "classification error",
                error,
                format!("test classification error {:.2}%", 100.0 * error),
            ),
            active_units_figure(vae, store, &test.x, Some(&test.one_hot())),
        ])
    }

    fn pictures(
        &self,
        test: &TestData,
        out: &Path,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<PathBuf>, RunError> {
        label_pictures(self.net(), test, out, rng)
    }

    fn sample_picture(
        &self,
        _test: &TestData,
        n: usize,
        rng: &mut ChaCha8Rng,
    ) -> Result<Picture, String> {
        Ok(label_sample_picture(self.net(), n, rng))
    }
}

impl Sample for M2Model {
    /// Labels 0–9 in turn, z ~ N(0, I), the decoder's means.
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Samples {
        label_samples(self.net(), n, rng)
    }
}

impl Score for M2Model {
    fn score_name(&self) -> &'static str {
        "U(x)"
    }

    fn score_column(&self) -> &'static str {
        "neg_elbo"
    }

    /// The bound `U(x)` on `-ln p(x)` of each image, the label summed out.
    fn score(&self, x: &Matrix, keys: Keys) -> Vec<f64> {
        let mut scores = Vec::with_capacity(x.nrows());
        self.bound_chunks(x, &keys.draws(&examples(x.nrows())), |r, k| {
            scores.extend((r.iter().zip(k)).map(|(&r, &k)| f64::from(r) + f64::from(k)));
        });
        scores
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::tiny_config;
    use autodiff::{GradcheckConfig, Tape, gradcheck};
    use rand::SeedableRng;

    fn tiny() -> (ParamStore, M2) {
        let mut store = ParamStore::new();
        let config = VaeConfig {
            hidden: vec![4],
            ..tiny_config(6, 2)
        };
        let m2 = M2::new(
            &mut store,
            config,
            PAPER_ALPHA,
            &mut ChaCha8Rng::seed_from_u64(8),
        );
        (store, m2)
    }

    fn x(rows: usize) -> Matrix {
        Matrix::from_shape_fn((rows, 6), |(i, j)| ((i * 5 + j * 3) % 4 / 2) as f32)
    }

    #[test]
    fn unlabeled_bound_is_the_q_weighted_labeled_bound_minus_the_entropy() {
        let (store, m2) = tiny();
        let tape = Tape::new();
        let p = store.bind(&tape);
        let xv = p.constant(x(3));
        let draws = crate::random::test_draws(2, 3);
        let u = m2.unlabeled(&p, xv, &draws);
        // L(x, y) class by class: under label y an image draws its copy y of ε, as in the
        // batched 30-row call.
        let l: Vec<Matrix> = (0..10u8)
            .map(|y| {
                let l = m2.labeled(&p, xv, &[y; 3], &draws.copy(usize::from(y)));
                l.0.value().as_ref().clone()
            })
            .collect();
        let log_q = m2.log_q_y(&p, xv).value();
        for i in 0..3 {
            let q: Vec<f32> = (0..10).map(|y| log_q[[i, y]].exp()).collect();
            assert!((q.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            let weighted: f32 = (0..10).map(|y| q[y] * l[y][[i, 0]]).sum();
            let entropy: f32 = -(0..10).map(|y| q[y] * log_q[[i, y]]).sum::<f32>();
            let got = u.bound.value()[[i, 0]];
            assert!(
                (got - (weighted - entropy)).abs() < 1e-4,
                "row {i}: U = {got}, Σ q L - H = {}",
                weighted - entropy
            );
            // And U = recon + kl.
            let parts = u.recon.value()[[i, 0]] + u.kl.value()[[i, 0]];
            assert!((got - parts).abs() < 1e-4);
        }
    }

    #[test]
    fn unlabeled_bound_passes_gradcheck_through_the_classifier_and_both_networks() {
        let (store, m2) = tiny();
        let params: Vec<Matrix> = store.iter().map(|(_, _, v)| v.clone()).collect();
        let x = x(3);
        // The classifier's weights get gradients only through q(y|x): the Σ_y weighting and
        // the entropy. A sign error in either fails here.
        let report = gradcheck(
            |v| {
                let p = store.bind_vars(v[0].tape(), v);
                m2.unlabeled(&p, p.constant(x.clone()), &crate::random::test_draws(4, 3))
                    .bound
            },
            &params,
            &GradcheckConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            report.elements,
            store.iter().map(|(_, _, v)| v.len()).sum::<usize>()
        );
    }

    #[test]
    fn the_objective_takes_a_half_of_no_row() {
        // A process's share of a batch may hold no labeled or no unlabeled row: the objective
        // is then the mean over the other half alone.
        let (store, m2) = tiny();
        let counts = Counts {
            labeled: 10,
            unlabeled: 90,
        };
        let tape = Tape::new();
        let p = store.bind(&tape);
        let none = crate::random::test_draws(6, 0);
        let (x_l, labels, x_u) = (x(2), [3u8, 7], x(4));
        let (l_draws, u_draws) = (
            crate::random::test_draws(6, 2),
            crate::random::test_draws(7, 4),
        );
        let only_u = m2.loss(&p, ((x(0), &[]), &none), (x_u.clone(), &u_draws), counts);
        let u = m2.unlabeled(&p, p.constant(x_u), &u_draws).bound;
        assert!((only_u.loss.item() - u.value().mean().unwrap()).abs() < 1e-5);
        let only_l = m2.loss(
            &p,
            ((x_l.clone(), &labels), &l_draws),
            (x(0), &none),
            counts,
        );
        let m = only_l.metrics();
        // (2·mean L + α·N/N_l·2·mean CE) / 2 with α·N/N_l = 1.
        let (l, ce) = (m.part("l").unwrap(), m.part("ce").unwrap());
        assert!(
            (m.loss - (l + ce)).abs() < 1e-4,
            "{} against {}",
            m.loss,
            l + ce
        );
    }

    #[test]
    fn objective_weights_the_three_terms_and_passes_gradcheck() {
        let (store, m2) = tiny();
        let (x_l, labels, x_u) = (x(2), [3u8, 7], x(4));
        let counts = Counts {
            labeled: 10,
            unlabeled: 90,
        };
        let tape = Tape::new();
        let p = store.bind(&tape);
        let (l_draws, u_draws) = (
            crate::random::test_draws(6, 2)
                .keys()
                .labeled_pass(0)
                .draws(&[0, 1]),
            crate::random::test_draws(6, 4),
        );
        let loss = m2.loss(
            &p,
            ((x_l.clone(), &labels), &l_draws),
            (x_u.clone(), &u_draws),
            counts,
        );
        let m = loss.metrics();
        let (u, l, ce) = (
            m.part("u").unwrap(),
            m.part("l").unwrap(),
            m.part("ce").unwrap(),
        );
        // 2 labeled and 4 unlabeled rows, N/N_l = 100/10, so α·N/N_l = 1:
        // (2·mean L + 1·2·mean CE + 4·mean U) / 6.
        let expected = (2.0 * l + 2.0 * ce + 4.0 * u) / 6.0;
        assert!((m.loss - expected).abs() < 1e-4, "{} vs {expected}", m.loss);
        assert!(ce > 0.0 && l > LN_10 as f64);
        let params: Vec<Matrix> = store.iter().map(|(_, _, v)| v.clone()).collect();
        gradcheck(
            |v| {
                let p = store.bind_vars(v[0].tape(), v);
                let labeled = ((x_l.clone(), &labels[..]), &l_draws);
                m2.loss(&p, labeled, (x_u.clone(), &u_draws), counts).loss
            },
            &params,
            &GradcheckConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
}
