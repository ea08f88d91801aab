//! The label-conditioned VAE (Kingma et al. 2014's generative model M2 with y observed; Sohn
//! et al. 2015): one-hot y fed to the encoder and the decoder, `q(z|x, y)`, `p(x|z, y)`, prior
//! N(0, I); loss `-ELBO(x|y) = E_q[-ln p(x|z, y)] + KL(q(z|x, y) ‖ p(z))`.

use autodiff::Var;
use nn::{Bound, ParamStore};
use rand_chacha::ChaCha8Rng;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::eval;
use super::model::VaeNet;
use super::net::{Prior, Vae, VaeConfig};
use super::report::{
    ELBO_COLUMNS, active_units_figure, describe_elbo, describe_test_elbo, elbo_epoch, elbo_values,
    iw_nll_figure, label_pictures, label_sample_picture, label_samples,
};
use crate::data::Binarize;
use crate::model::{
    Abilities, Columns, Epoch, Figure, Finish, ModelEntry, Params, Picture, Report, Row, RunConfig,
    RunError, RunModel, Sample, Samples, Schema, Settings, State, TestData, TrainData, all_images,
    keep,
};
use crate::random::{Draws, Keys};
use crate::train::Loss;

pub use crate::data::{CLASSES, one_hot};

/// A [`Vae`] whose condition is the one-hot label.
#[derive(Debug, Clone)]
pub struct Cvae {
    vae: Vae,
}

impl Cvae {
    /// `config` with the condition set to the [`CLASSES`]-wide one-hot label and the prior to
    /// N(0, I).
    pub fn new(store: &mut ParamStore, config: VaeConfig, rng: &mut ChaCha8Rng) -> Self {
        let config = VaeConfig {
            cond_dim: CLASSES,
            prior: Prior::Standard,
            ..config
        };
        Cvae {
            vae: Vae::new(store, config, rng),
        }
    }

    /// The conditional VAE inside.
    pub fn vae(&self) -> &Vae {
        &self.vae
    }

    /// `-ELBO(x|y)` averaged over the batch, with the parts `recon` and `kl`.
    pub fn loss<'t>(
        &self,
        p: &Bound<'t>,
        x: Var<'t>,
        labels: &[u8],
        draws: &Draws<'_>,
    ) -> Loss<'t> {
        let y = p.constant(one_hot(labels));
        self.vae.loss(p, x, Some(y), draws)
    }
}

/// `--model cvae`: the VAE family's network.
#[derive(clap::Args, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[command(next_help_heading = "Model cvae")]
pub struct CvaeSettings {
    #[command(flatten)]
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub net: VaeNet,
}

impl Settings for CvaeSettings {
    fn check(&self, _config: &RunConfig) -> Result<(), String> {
        self.net.check()
    }
}

/// `--model cvae` in the registry.
pub const MODEL: ModelEntry = ModelEntry {
    name: "cvae",
    about: "the VAE conditioned on the label",
    schema: Schema::of::<CvaeSettings>(),
    binarize: Binarize::Dynamic,
    defaults: keep,
    background: keep,
    legacy: &[],
    scores: false,
    data: all_images,
    build: |config, build| Box::new(CvaeModel::new(config, build.shape)),
};

/// `--model cvae`: the [`Cvae`] with its parameters and optimizer, as a run trains it.
pub struct CvaeModel {
    cvae: Cvae,
    params: Params,
}

impl CvaeModel {
    /// The CVAE of `config` for images of `shape`, initialised from the run's seed.
    pub fn new(config: &RunConfig, shape: (usize, usize)) -> Self {
        let net = &config.settings::<CvaeSettings>().net;
        let mut store = ParamStore::new();
        let cvae = Cvae::new(&mut store, net.config(shape), &mut config.init_rng());
        CvaeModel {
            cvae,
            params: Params::new(store, config),
        }
    }

    fn net(&self) -> (&Vae, &ParamStore) {
        (self.cvae.vae(), &self.params.store)
    }
}

impl RunModel for CvaeModel {
    fn columns(&self) -> Columns {
        ELBO_COLUMNS
    }

    fn train_epoch(&mut self, data: &TrainData, ctx: &mut Epoch<'_>) -> Row {
        let cvae = &self.cvae;
        elbo_epoch(&mut self.params, data, ctx, |p, batch, draws| {
            cvae.loss(p, p.constant(batch.images), &batch.labels, draws)
        })
    }

    fn test(&self, test: &TestData, keys: Keys) -> Row {
        let (vae, store) = self.net();
        let draws = &keys.draws(&test.examples);
        elbo_values(eval::elbo(
            vae,
            store,
            &test.x,
            Some(&test.one_hot()),
            draws,
        ))
    }

    fn state(&mut self) -> State<'_> {
        self.params.state().data_parallel()
    }

    fn abilities(&self) -> Abilities<'_> {
        Abilities {
            sample: Some(self),
            ..Abilities::default()
        }
    }
}

impl Report for CvaeModel {
    fn describe(&self, values: &Row) -> String {
        describe_elbo("train -ELBO", values)
    }

    fn describe_test(&self, values: &Row) -> String {
        describe_test_elbo(values)
    }

    fn finish(&self, test: &TestData, ctx: &mut Finish<'_>) -> Result<Vec<Figure>, RunError> {
        let y = test.one_hot();
        let nll = iw_nll_figure("-log p(x|y)", self.net(), (&test.x, Some(&y)), ctx);
        let (vae, store) = self.net();
        let units = active_units_figure(vae, store, &test.x, Some(&y));
        Ok(nll.into_iter().chain([units]).collect())
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

impl Sample for CvaeModel {
    /// Labels 0–9 in turn, z ~ N(0, I), the decoder's means.
    fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Samples {
        label_samples(self.net(), n, rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::tiny_config;
    use autodiff::{GradcheckConfig, Matrix, Tape, gradcheck};
    use rand::SeedableRng;

    fn tiny() -> (ParamStore, Cvae) {
        let mut store = ParamStore::new();
        let config = tiny_config(6, 2);
        let cvae = Cvae::new(&mut store, config, &mut ChaCha8Rng::seed_from_u64(4));
        (store, cvae)
    }

    #[test]
    fn one_hot_rows() {
        let y = one_hot(&[3, 0]);
        assert_eq!(y.dim(), (2, 10));
        assert_eq!((y[[0, 3]], y[[1, 0]], y.sum()), (1.0, 1.0, 2.0));
    }

    #[test]
    fn the_label_reaches_both_networks_and_the_loss_passes_gradcheck() {
        let (store, cvae) = tiny();
        let names: Vec<&str> = store.iter().map(|(_, n, _)| n).collect();
        assert!(names.contains(&"encoder.cond.w") && names.contains(&"decoder.cond.w"));
        let x = Matrix::from_shape_fn((3, 6), |(i, j)| ((i + 2 * j) % 3) as f32 / 2.0);
        let loss_with = |labels: &[u8]| {
            let tape = Tape::new();
            let p = store.bind(&tape);
            let x = p.constant(x.clone());
            let loss = cvae.loss(&p, x, labels, &crate::random::test_draws(9, 3));
            loss.loss.item()
        };
        // Same noise, different labels: a different loss.
        assert_ne!(loss_with(&[0, 1, 2]), loss_with(&[5, 5, 5]));
        let params: Vec<Matrix> = store.iter().map(|(_, _, v)| v.clone()).collect();
        gradcheck(
            |v| {
                let p = store.bind_vars(v[0].tape(), v);
                let x = p.constant(x.clone());
                cvae.loss(&p, x, &[0, 7, 2], &crate::random::test_draws(9, 3))
                    .loss
            },
            &params,
            &GradcheckConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
}
