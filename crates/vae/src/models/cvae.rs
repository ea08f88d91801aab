//! The label-conditioned VAE (Kingma et al. 2014's generative model M2 with y observed; Sohn
//! et al. 2015): one-hot y fed to the encoder and the decoder, `q(z|x, y)`, `p(x|z, y)`, prior
//! N(0, I); loss `-ELBO(x|y) = E_q[-ln p(x|z, y)] + KL(q(z|x, y) ‖ p(z))`.

use autodiff::{Matrix, Var};
use nn::{Bound, ParamStore};
use rand_chacha::ChaCha8Rng;

use super::{Loss, Prior, Vae, VaeConfig};

/// The number of classes of MNIST and Fashion-MNIST.
pub const CLASSES: usize = 10;

/// Labels as one-hot rows (`labels.len()` × [`CLASSES`]).
///
/// # Panics
/// If a label is not below [`CLASSES`].
#[track_caller]
pub fn one_hot(labels: &[u8]) -> Matrix {
    let mut y = Matrix::zeros((labels.len(), CLASSES));
    for (i, &label) in labels.iter().enumerate() {
        assert!(usize::from(label) < CLASSES, "one_hot: label {label}");
        y[[i, usize::from(label)]] = 1.0;
    }
    y
}

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
        rng: &mut ChaCha8Rng,
    ) -> Loss<'t> {
        let y = p.constant(one_hot(labels));
        self.vae.loss(p, x, Some(y), rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::tiny_config;
    use autodiff::{GradcheckConfig, Tape, gradcheck};
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
            let loss = cvae.loss(&p, x, labels, &mut ChaCha8Rng::seed_from_u64(9));
            loss.loss.item()
        };
        // Same noise, different labels: a different loss.
        assert_ne!(loss_with(&[0, 1, 2]), loss_with(&[5, 5, 5]));
        let params: Vec<Matrix> = store.iter().map(|(_, _, v)| v.clone()).collect();
        gradcheck(
            |v| {
                let p = store.bind_vars(v[0].tape(), v);
                let x = p.constant(x.clone());
                cvae.loss(&p, x, &[0, 7, 2], &mut ChaCha8Rng::seed_from_u64(9))
                    .loss
            },
            &params,
            &GradcheckConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
}
