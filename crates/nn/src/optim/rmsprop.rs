//! RMSProp (Tieleman & Hinton 2012) with PyTorch's semantics, the optimizer of the Wasserstein
//! GAN's reference code.

use std::collections::BTreeMap;

use ndarray::Zip;

use super::{
    Optimizer, OptimizerState, StateError, as_matrix, check_buffers, check_kind, check_step,
    scalar, zeros_like,
};
use crate::{ParamGrads, ParamStore};

/// Hyperparameters of [`Rmsprop`]; [`Default`] is `torch.optim.RMSprop`'s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmspropConfig {
    /// Learning rate (1e-2).
    pub lr: f32,
    /// Decay `α` of the moving average of squared gradients (0.99).
    pub alpha: f32,
    /// `ε` added to the root mean square (1e-8).
    pub eps: f32,
}

impl Default for RmspropConfig {
    fn default() -> Self {
        RmspropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
        }
    }
}

/// RMSProp as `torch.optim.RMSprop` (not centered, no momentum, no weight decay). For each
/// parameter `θ` with gradient `g`, with `v` starting at 0:
///
/// ```text
/// v ← α·v + (1 − α)·g²
/// θ ← θ − lr·g/(√v + ε)
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Rmsprop {
    config: RmspropConfig,
    /// Number of parameters it was built for.
    params: usize,
    /// The moving averages `v`, one row-major vector per parameter id.
    square_avg: Vec<Vec<f32>>,
    /// Steps taken.
    t: u64,
}

impl Rmsprop {
    /// Zero averages for every parameter of `store`.
    ///
    /// Panics if `α` is outside `[0, 1)`.
    #[track_caller]
    pub fn new(store: &ParamStore, config: RmspropConfig) -> Self {
        assert!(
            (0.0..1.0).contains(&config.alpha),
            "Rmsprop: α must be in [0, 1), got {}",
            config.alpha
        );
        Rmsprop {
            config,
            params: store.len(),
            square_avg: zeros_like(store),
            t: 0,
        }
    }

    /// The hyperparameters.
    pub fn config(&self) -> &RmspropConfig {
        &self.config
    }
}

impl Optimizer for Rmsprop {
    #[track_caller]
    fn step(&mut self, store: &mut ParamStore, grads: &ParamGrads) {
        check_step("rmsprop", self.params, store, grads);
        self.t += 1;
        let RmspropConfig { lr, alpha, eps } = self.config;
        for (id, g) in grads.iter() {
            let mut theta = store.value_mut(id);
            let shape = theta.dim();
            let v = as_matrix(&mut self.square_avg[id.index()], shape);
            Zip::from(&mut theta)
                .and(g)
                .and(v)
                .for_each(|theta, &g, v| {
                    *v = alpha * *v + (1.0 - alpha) * g * g;
                    *theta -= lr * g / (v.sqrt() + eps);
                });
        }
    }

    fn lr(&self) -> f32 {
        self.config.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.config.lr = lr;
    }

    fn t(&self) -> u64 {
        self.t
    }

    fn state(&self) -> OptimizerState {
        let c = &self.config;
        let scalars = [
            ("t", self.t.to_string()),
            ("lr", format!("{:?}", c.lr)),
            ("alpha", format!("{:?}", c.alpha)),
            ("eps", format!("{:?}", c.eps)),
        ];
        OptimizerState {
            kind: "rmsprop".to_string(),
            scalars: scalars.map(|(k, v)| (k.to_string(), v)).into(),
            buffers: BTreeMap::from([("square_avg".to_string(), self.square_avg.clone())]),
        }
    }

    fn set_state(&mut self, mut state: OptimizerState) -> Result<(), StateError> {
        check_kind("rmsprop", &state)?;
        let s = &state.scalars;
        let t: u64 = scalar(s, "t", "step count")?;
        let config = RmspropConfig {
            lr: scalar(s, "lr", "number")?,
            alpha: scalar(s, "alpha", "number")?,
            eps: scalar(s, "eps", "number")?,
        };
        if !(0.0..1.0).contains(&config.alpha) {
            return Err(StateError::BadScalar {
                key: "alpha".to_string(),
                value: s["alpha"].clone(),
                what: "decay in [0, 1)",
            });
        }
        check_buffers(&[("square_avg", &self.square_avg)], &state.buffers)?;
        self.square_avg = state.buffers.remove("square_avg").expect("checked above");
        self.config = config;
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::testing::{assert_close, store, trajectory};

    #[test]
    fn rmsprop_follows_the_literal_trajectory() {
        // f(θ) = ½(θ₀² + 4θ₁²) from θ = [1, −2], g = [θ₀, 4θ₁], α 0.9, lr 0.01, ε 1e-8,
        // worked in f64:
        // t=1: g = [1, −8], v = 0.1·g² = [0.1, 6.4], θ − 0.01·g/(√v + ε) = [0.96837722440, −1.96837722352]
        // t=2: g = [0.96837722440, −7.87350889409], v = [0.18377544487, 11.95921423054],
        //      θ = [0.94578802625, −1.94560963686]
        // t=3: g = [0.94578802625, −7.78243854745], v = [0.25484939945, 16.81992778196],
        //      θ = [0.92705309966, −1.92663368213]
        let config = RmspropConfig {
            lr: 0.01,
            alpha: 0.9,
            eps: 1e-8,
        };
        let got = trajectory(&mut Rmsprop::new(&store(), config), 3);
        assert_close(
            &got,
            &[
                [0.9683772243983162, -1.9683772235233161],
                [0.9457880262458569, -1.9456096368619424],
                [0.9270530996585012, -1.9266336821326007],
            ],
        );
    }

    #[test]
    fn state_round_trips_and_a_bad_state_changes_nothing() {
        let mut rmsprop = Rmsprop::new(&store(), RmspropConfig::default());
        trajectory(&mut rmsprop, 2);
        let state = rmsprop.state();
        assert_eq!(state.kind, "rmsprop");
        assert_eq!(state.scalars["t"], "2");
        let mut fresh = Rmsprop::new(&store(), RmspropConfig::default());
        fresh.set_state(state.clone()).unwrap();
        assert_eq!(fresh, rmsprop);

        let mut bad = state;
        bad.scalars.insert("alpha".into(), "1.5".into());
        let before = fresh.clone();
        let err = fresh.set_state(bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"scalar `alpha` = "1.5" is not a valid decay in [0, 1)"#
        );
        assert_eq!(fresh, before);
    }
}
