//! Stochastic gradient descent with momentum and Nesterov momentum, with PyTorch's semantics.

use std::collections::BTreeMap;

use ndarray::Zip;

use super::{
    Optimizer, OptimizerState, StateError, as_matrix, check_buffers, check_kind, check_step,
    scalar, zeros_like,
};
use crate::{ParamGrads, ParamStore};

/// Hyperparameters of [`Sgd`]; [`Default`] is `torch.optim.SGD`'s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Learning rate (1e-3).
    pub lr: f32,
    /// Momentum `μ` (0: plain SGD, no buffer).
    pub momentum: f32,
    /// L2 weight decay `λ`, added to the gradient (0).
    pub weight_decay: f32,
    /// Nesterov momentum (needs `momentum > 0`).
    pub nesterov: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

/// SGD as `torch.optim.SGD` (without dampening). For each parameter `θ` with gradient `g`:
///
/// ```text
/// g ← g + λ·θ
/// b ← μ·b + g                 (with momentum; b starts at 0, so the first step has b = g)
/// g ← g + μ·b  (Nesterov)  or  g ← b  (momentum)
/// θ ← θ − lr·g
/// ```
///
/// in one loop over the elements of each parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Sgd {
    config: SgdConfig,
    /// Number of parameters it was built for.
    params: usize,
    /// The momentum buffers `b`, one row-major vector per parameter id (none without momentum).
    momentum_buffer: Vec<Vec<f32>>,
    /// Steps taken.
    t: u64,
}

impl Sgd {
    /// Zero momentum buffers (if any) for every parameter of `store`.
    ///
    /// Panics if Nesterov is asked for without momentum.
    #[track_caller]
    pub fn new(store: &ParamStore, config: SgdConfig) -> Self {
        assert!(
            !config.nesterov || config.momentum > 0.0,
            "Sgd: Nesterov momentum needs a momentum > 0, got {}",
            config.momentum
        );
        Sgd {
            config,
            params: store.len(),
            momentum_buffer: if config.momentum != 0.0 {
                zeros_like(store)
            } else {
                Vec::new()
            },
            t: 0,
        }
    }

    /// The hyperparameters.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    fn has_momentum(&self) -> bool {
        self.config.momentum != 0.0
    }

    /// The buffers a state holds: the momentum buffer, if there is momentum.
    fn buffers(&self) -> Vec<(&'static str, &[Vec<f32>])> {
        if self.has_momentum() {
            vec![("momentum_buffer", &self.momentum_buffer)]
        } else {
            Vec::new()
        }
    }
}

impl Optimizer for Sgd {
    #[track_caller]
    fn step(&mut self, store: &mut ParamStore, grads: &ParamGrads) {
        check_step("sgd", self.params, store, grads);
        self.t += 1;
        let SgdConfig {
            lr,
            momentum: mu,
            weight_decay,
            nesterov,
        } = self.config;
        for (id, g) in grads.iter() {
            let mut theta = store.value_mut(id);
            if !self.has_momentum() {
                Zip::from(&mut theta).and(g).for_each(|theta, &g| {
                    *theta -= lr * (g + weight_decay * *theta);
                });
                continue;
            }
            let shape = theta.dim();
            let b = as_matrix(&mut self.momentum_buffer[id.index()], shape);
            Zip::from(&mut theta)
                .and(g)
                .and(b)
                .for_each(|theta, &g, b| {
                    let g = g + weight_decay * *theta;
                    *b = mu * *b + g;
                    let d = if nesterov { g + mu * *b } else { *b };
                    *theta -= lr * d;
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
            ("momentum", format!("{:?}", c.momentum)),
            ("weight_decay", format!("{:?}", c.weight_decay)),
            ("nesterov", c.nesterov.to_string()),
        ];
        OptimizerState {
            kind: "sgd".to_string(),
            scalars: scalars.map(|(k, v)| (k.to_string(), v)).into(),
            buffers: self
                .buffers()
                .into_iter()
                .map(|(name, b)| (name.to_string(), b.to_vec()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn set_state(&mut self, mut state: OptimizerState) -> Result<(), StateError> {
        check_kind("sgd", &state)?;
        let s = &state.scalars;
        let t: u64 = scalar(s, "t", "step count")?;
        let config = SgdConfig {
            lr: scalar(s, "lr", "number")?,
            momentum: scalar(s, "momentum", "number")?,
            weight_decay: scalar(s, "weight_decay", "number")?,
            nesterov: scalar(s, "nesterov", "boolean")?,
        };
        if (config.momentum != 0.0) != self.has_momentum() {
            return Err(StateError::BadScalar {
                key: "momentum".to_string(),
                value: s["momentum"].clone(),
                what: if self.has_momentum() {
                    "non-zero momentum (this optimizer has a momentum buffer)"
                } else {
                    "zero momentum (this optimizer has no momentum buffer)"
                },
            });
        }
        if config.nesterov && config.momentum <= 0.0 {
            return Err(StateError::BadScalar {
                key: "nesterov".to_string(),
                value: s["nesterov"].clone(),
                what: "setting without a positive momentum",
            });
        }
        check_buffers(&self.buffers(), &state.buffers)?;
        if self.has_momentum() {
            self.momentum_buffer = state
                .buffers
                .remove("momentum_buffer")
                .expect("checked above");
        }
        self.config = config;
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::testing::{assert_close, store, trajectory};

    fn config(momentum: f32, nesterov: bool) -> SgdConfig {
        SgdConfig {
            lr: 0.1,
            momentum,
            nesterov,
            ..SgdConfig::default()
        }
    }

    #[test]
    fn plain_sgd_with_weight_decay_follows_the_literal_trajectory() {
        // f(θ) = ½(θ₀² + 4θ₁²) from θ = [1, −2], g = [θ₀, 4θ₁] + 0.1θ = [1.1θ₀, 4.1θ₁], lr 0.1:
        // θ ← θ − 0.1·g = [0.89θ₀, 0.59θ₁].
        // t=1: [0.89, −1.18]; t=2: [0.7921, −0.6962]; t=3: [0.704969, −0.410758].
        let config = SgdConfig {
            weight_decay: 0.1,
            ..config(0.0, false)
        };
        let mut sgd = Sgd::new(&store(), config);
        assert!(sgd.state().buffers.is_empty());
        let got = trajectory(&mut sgd, 3);
        assert_close(
            &got,
            &[[0.89, -1.18], [0.7921, -0.6962], [0.704969, -0.410758]],
        );
    }

    #[test]
    fn momentum_follows_the_literal_trajectory() {
        // g = [θ₀, 4θ₁], μ = 0.9, lr 0.1: b ← 0.9b + g (first b = g), θ ← θ − 0.1b.
        // t=1: g = [1, −8],     b = [1, −8],                      θ = [0.9, −1.2]
        // t=2: g = [0.9, −4.8], b = [0.9 + 0.9, −7.2 − 4.8] = [1.8, −12], θ = [0.72, 0]
        // t=3: g = [0.72, 0],   b = [1.62 + 0.72, −10.8 + 0] = [2.34, −10.8], θ = [0.486, 1.08]
        let got = trajectory(&mut Sgd::new(&store(), config(0.9, false)), 3);
        assert_close(&got, &[[0.9, -1.2], [0.72, 0.0], [0.486, 1.08]]);
    }

    #[test]
    fn nesterov_follows_the_literal_trajectory() {
        // As above, but the step is g + μb: θ ← θ − 0.1(g + 0.9b).
        // t=1: g = [1, −8],       b = [1, −8],                 g + 0.9b = [1.9, −15.2],  θ = [0.81, −0.48]
        // t=2: g = [0.81, −1.92], b = [0.9 + 0.81, −7.2 − 1.92] = [1.71, −9.12],
        //      g + 0.9b = [2.349, −10.128],                                        θ = [0.5751, 0.5328]
        // t=3: g = [0.5751, 2.1312], b = [1.539 + 0.5751, −8.208 + 2.1312] = [2.1141, −6.0768],
        //      g + 0.9b = [2.47779, −3.33792],                                   θ = [0.327321, 0.866592]
        let got = trajectory(&mut Sgd::new(&store(), config(0.9, true)), 3);
        assert_close(
            &got,
            &[[0.81, -0.48], [0.5751, 0.5328], [0.327321, 0.866592]],
        );
    }

    #[test]
    fn state_round_trips_and_momentum_must_match() {
        let mut sgd = Sgd::new(&store(), config(0.9, true));
        trajectory(&mut sgd, 2);
        let state = sgd.state();
        assert_eq!(state.scalars["nesterov"], "true");
        assert_eq!(
            state.buffers.keys().collect::<Vec<_>>(),
            ["momentum_buffer"]
        );
        let mut fresh = Sgd::new(&store(), config(0.5, false));
        fresh.set_state(state.clone()).unwrap();
        assert_eq!(fresh, sgd);

        let mut plain = Sgd::new(&store(), config(0.0, false));
        let before = plain.clone();
        assert!(matches!(
            plain.set_state(state),
            Err(StateError::BadScalar { .. })
        ));
        assert_eq!(plain, before);
    }

    #[test]
    #[should_panic(expected = "Nesterov momentum needs a momentum > 0")]
    fn nesterov_without_momentum_panics() {
        Sgd::new(&store(), config(0.0, true));
    }
}
