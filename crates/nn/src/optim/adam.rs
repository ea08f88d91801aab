//! Adam (Kingma & Ba, 2015) with bias correction, and AdamW (Loshchilov & Hutter, 2019), with
//! PyTorch's semantics and defaults.

use std::collections::BTreeMap;

use autodiff::parallel::for_each_block;
use ndarray::{ArrayView2, ArrayViewMut2, Axis, Zip};

use super::{
    Optimizer, OptimizerState, StateError, as_matrix, check_buffers, check_kind, check_step,
    scalar, zeros_like,
};
use crate::{ParamGrads, ParamStore};

/// Hyperparameters of [`Adam`]. [`Default`] is `torch.optim.Adam`'s, [`AdamConfig::adamw`]
/// `torch.optim.AdamW`'s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (1e-3).
    pub lr: f32,
    /// Decay of the first-moment estimate `m` (0.9).
    pub beta1: f32,
    /// Decay of the second-moment estimate `v` (0.999).
    pub beta2: f32,
    /// Added to `√v̂` in the denominator (1e-8).
    pub eps: f32,
    /// Weight decay `λ` (0 for Adam, 1e-2 for AdamW).
    pub weight_decay: f32,
    /// `false`: Adam's L2 penalty, `λ·θ` added to the gradient. `true`: AdamW's decoupled decay,
    /// `θ ← θ·(1 − lr·λ)` before the Adam update.
    pub decoupled_weight_decay: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled_weight_decay: false,
        }
    }
}

impl AdamConfig {
    /// AdamW's defaults: Adam's, with a decoupled weight decay of 1e-2.
    pub fn adamw() -> Self {
        AdamConfig {
            weight_decay: 1e-2,
            decoupled_weight_decay: true,
            ..Self::default()
        }
    }
}

/// Adam, or AdamW when the weight decay is decoupled. At step `t`, for each parameter `θ` with
/// gradient `g`:
///
/// ```text
/// g ← g + λ·θ                      (Adam with weight decay λ)
/// θ ← θ·(1 − lr·λ)                 (AdamW)
/// m ← β₁·m + (1 − β₁)·g
/// v ← β₂·v + (1 − β₂)·g²
/// θ ← θ − lr·m̂ / (√v̂ + ε),   m̂ = m / (1 − β₁ᵗ),   v̂ = v / (1 − β₂ᵗ)
/// ```
///
/// computed as PyTorch does, `θ ← θ − (lr / (1 − β₁ᵗ))·m / (√v / √(1 − β₂ᵗ) + ε)`, in one loop
/// over the elements of each parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    config: AdamConfig,
    /// First-moment estimates, one row-major vector per parameter id.
    m: Vec<Vec<f32>>,
    /// Second-moment estimates, one row-major vector per parameter id.
    v: Vec<Vec<f32>>,
    /// Steps taken.
    t: u64,
}

impl Adam {
    /// Zero moments for every parameter of `store`.
    pub fn new(store: &ParamStore, config: AdamConfig) -> Self {
        Adam {
            config,
            m: zeros_like(store),
            v: zeros_like(store),
            t: 0,
        }
    }

    /// The hyperparameters.
    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    fn kind(&self) -> &'static str {
        if self.config.decoupled_weight_decay {
            "adamw"
        } else {
            "adam"
        }
    }
}

/// Elements per block of the parallel update: ≈ 0.5 MB of θ, g, m and v, tens of µs of work.
const UPDATE_BLOCK: usize = 1 << 15;

/// Below this many parameters in all the update runs on the calling thread, as one block per
/// parameter: waking a worker would cost more than it saves.
const PARALLEL_UPDATE_MIN: usize = 1 << 17;

/// A piece of the update's work: `(θ, g, m, v)` views of the same elements.
type UpdateBlock<'a> = (
    ArrayViewMut2<'a, f32>,
    ArrayView2<'a, f32>,
    ArrayViewMut2<'a, f32>,
    ArrayViewMut2<'a, f32>,
);

/// The update's work: each parameter's `(θ, g, m, v)`, cut into row ranges of about
/// `block_len` elements (a parameter of at most `block_len` elements stays whole).
fn update_blocks<'a>(
    store: &'a mut ParamStore,
    grads: &'a ParamGrads,
    m: &'a mut [Vec<f32>],
    v: &'a mut [Vec<f32>],
    block_len: usize,
) -> Vec<UpdateBlock<'a>> {
    let mut blocks = Vec::new();
    let params = store
        .values_mut()
        .zip(grads.iter())
        .zip(m.iter_mut().zip(v));
    for ((theta, (_, g)), (m, v)) in params {
        let shape = theta.dim();
        let rows = (block_len / shape.1.max(1)).max(1);
        let mut rest = (theta, g.view(), as_matrix(m, shape), as_matrix(v, shape));
        while rest.0.len() > block_len && rest.0.nrows() > rows {
            let (theta, g, m, v) = rest;
            let ((theta, theta_rest), (g, g_rest)) =
                (theta.split_at(Axis(0), rows), g.split_at(Axis(0), rows));
            let ((m, m_rest), (v, v_rest)) = (m.split_at(Axis(0), rows), v.split_at(Axis(0), rows));
            blocks.push((theta, g, m, v));
            rest = (theta_rest, g_rest, m_rest, v_rest);
        }
        blocks.push(rest);
    }
    blocks
}

/// One step's scalars of [`Adam`]'s element-wise update.
#[derive(Debug, Clone, Copy)]
struct AdamUpdate {
    l2: f32,
    beta1: f32,
    beta2: f32,
    decay: f32,
    step_size: f32,
    bias_correction2_sqrt: f32,
    eps: f32,
}

impl AdamUpdate {
    /// One parameter's update, PyTorch's formula.
    #[inline(always)]
    fn apply(self, theta: &mut f32, g: f32, m: &mut f32, v: &mut f32) {
        let g = g + self.l2 * *theta;
        *m = self.beta1 * *m + (1.0 - self.beta1) * g;
        *v = self.beta2 * *v + (1.0 - self.beta2) * g * g;
        *theta = *theta * self.decay
            - self.step_size * *m / (v.sqrt() / self.bias_correction2_sqrt + self.eps);
    }
}

autodiff::widest! {
    /// [`AdamUpdate::apply`] over contiguous slices, at the CPU's widest vectors.
    fn adam_update(update: AdamUpdate, theta: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        for (((theta, &g), m), v) in theta.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            update.apply(theta, g, m, v);
        }
    }
}

impl Optimizer for Adam {
    #[track_caller]
    fn step(&mut self, store: &mut ParamStore, grads: &ParamGrads) {
        check_step(self.kind(), self.m.len(), store, grads);
        self.t += 1;
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled_weight_decay,
        } = self.config;
        // The per-step scalars in f64, as PyTorch computes them in Python floats.
        let t = self.t as f64;
        let bias_correction1 = 1.0 - f64::from(beta1).powf(t);
        let bias_correction2 = 1.0 - f64::from(beta2).powf(t);
        let step_size = (f64::from(lr) / bias_correction1) as f32;
        let bias_correction2_sqrt = bias_correction2.sqrt() as f32;
        let (l2, decay) = if decoupled_weight_decay {
            (0.0, (1.0 - f64::from(lr) * f64::from(weight_decay)) as f32)
        } else {
            (weight_decay, 1.0)
        };
        let update = AdamUpdate {
            l2,
            beta1,
            beta2,
            decay,
            step_size,
            bias_correction2_sqrt,
            eps,
        };
        let work = |(mut theta, g, mut m, mut v): UpdateBlock<'_>| {
            if let (Some(theta), Some(g), Some(m), Some(v)) = (
                theta.as_slice_mut(),
                g.as_slice(),
                m.as_slice_mut(),
                v.as_slice_mut(),
            ) {
                adam_update(update, theta, g, m, v);
                return;
            }
            Zip::from(theta)
                .and(g)
                .and(m)
                .and(v)
                .for_each(|theta, &g, m, v| update.apply(theta, g, m, v));
        };
        // The update is memory-bound (16 bytes read and 12 written per parameter), and on the
        // 2-vCPU VM two cores stream it faster than one (BENCHMARKS.md). Each element's update
        // is the same whichever thread computes it, so the result does not depend on the split.
        let total: usize = grads.iter().map(|(_, g)| g.len()).sum();
        if total >= PARALLEL_UPDATE_MIN {
            let blocks = update_blocks(store, grads, &mut self.m, &mut self.v, UPDATE_BLOCK);
            for_each_block(blocks, work);
        } else {
            let blocks = update_blocks(store, grads, &mut self.m, &mut self.v, usize::MAX);
            blocks.into_iter().for_each(work);
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
            ("beta1", format!("{:?}", c.beta1)),
            ("beta2", format!("{:?}", c.beta2)),
            ("eps", format!("{:?}", c.eps)),
            ("weight_decay", format!("{:?}", c.weight_decay)),
        ];
        OptimizerState {
            kind: self.kind().to_string(),
            scalars: scalars.map(|(k, v)| (k.to_string(), v)).into(),
            buffers: BTreeMap::from([
                ("m".to_string(), self.m.clone()),
                ("v".to_string(), self.v.clone()),
            ]),
        }
    }

    fn set_state(&mut self, mut state: OptimizerState) -> Result<(), StateError> {
        check_kind(self.kind(), &state)?;
        let s = &state.scalars;
        let t: u64 = scalar(s, "t", "step count")?;
        let config = AdamConfig {
            lr: scalar(s, "lr", "number")?,
            beta1: scalar(s, "beta1", "number")?,
            beta2: scalar(s, "beta2", "number")?,
            eps: scalar(s, "eps", "number")?,
            weight_decay: scalar(s, "weight_decay", "number")?,
            decoupled_weight_decay: self.config.decoupled_weight_decay,
        };
        check_buffers(&[("m", &self.m), ("v", &self.v)], &state.buffers)?;
        self.m = state.buffers.remove("m").expect("checked above");
        self.v = state.buffers.remove("v").expect("checked above");
        self.config = config;
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::testing::{assert_close, store, trajectory};

    /// `lr = 0.1`, the other hyperparameters PyTorch's defaults.
    fn config() -> AdamConfig {
        AdamConfig {
            lr: 0.1,
            ..AdamConfig::default()
        }
    }

    #[test]
    fn defaults_are_pytorchs() {
        let c = AdamConfig::default();
        assert_eq!((c.lr, c.beta1, c.beta2, c.eps), (1e-3, 0.9, 0.999, 1e-8));
        assert_eq!((c.weight_decay, c.decoupled_weight_decay), (0.0, false));
        let w = AdamConfig::adamw();
        assert_eq!(
            (w.lr, w.weight_decay, w.decoupled_weight_decay),
            (1e-3, 1e-2, true)
        );
    }

    #[test]
    fn adam_follows_the_literal_trajectory() {
        // f(θ) = ½(1·θ₀² + 4·θ₁²) from θ = [1, −2], so g = [θ₀, 4θ₁]; lr 0.1, β 0.9/0.999,
        // ε 1e-8. Per step: m = 0.9m + 0.1g, v = 0.999v + 0.001g², m̂ = m/(1 − 0.9ᵗ),
        // v̂ = v/(1 − 0.999ᵗ), θ ← θ − 0.1·m̂/(√v̂ + ε). In f64 (python3, same recurrence):
        // t=1: g = [1, −8]; m = [0.1, −0.8], v = [0.001, 0.064]; m̂ = g, v̂ = g², so the step is
        //      0.1·g/(|g| + ε): θ = [1 − 0.1/(1 + 1e-8), −2 + 0.1·8/(8 + 1e-8)]
        //      = [0.900000001, −1.900000000125].
        // t=2: g = [0.900000001, −7.6000000005]; m = [0.1800000001, −1.48000000005],
        //      v = [0.0018090000018, 0.1216960000076]; m̂ = m/0.19 = [0.94736842158, −7.78947368447],
        //      v̂ = v/0.001999 = [0.90495247714, 60.87843922341];
        //      θ = [0.8004122297123382, −1.8001664858630053].
        // t=3: g = [0.8004122297123382, −7.200665943452021]; m = [0.24204122306, −2.05206659439],
        //      v = [0.00244785073927, 0.17342389403678]; m̂ = m/0.271 = [0.89314104451, −7.57220145531],
        //      v̂ = v/0.002997001 = [0.81676674091, 57.86581120153];
        //      θ = [0.701586274504415, −1.7006233916636408].
        let mut adam = Adam::new(&store(), config());
        let got = trajectory(&mut adam, 3);
        assert_close(
            &got,
            &[
                [0.900000001, -1.900000000125],
                [0.8004122297123382, -1.8001664858630053],
                [0.701586274504415, -1.7006233916636408],
            ],
        );
        assert_eq!(adam.t(), 3);
    }

    #[test]
    fn adam_weight_decay_is_an_l2_term_in_the_gradient() {
        // As above with λ = 0.1 added to the gradient: g = [θ₀, 4θ₁] + 0.1θ. In f64:
        // t=1: g = [1.1, −8.2]; m̂ = g, v̂ = g², θ = [1 − 0.1·1.1/(1.1 + 1e-8),
        //      −2 + 0.1·8.2/(8.2 + 1e-8)] = [0.9000000009090909, −1.9000000001219512].
        // t=2: g = [0.990000001, −7.7900000005]; m = [0.1980000001, −1.51700000005],
        //      v = [0.00218889000198, 0.12785686000779]; m̂ = m/0.19, v̂ = v/0.001999;
        //      θ = [0.8004122295267845, −1.800166485856842].
        // t=3: g = [0.8804534524794629, −7.380682592013052]; m = [0.26624534534, −2.10336825925],
        //      v = [0.00296189939396, 0.18220347867183]; m̂ = m/0.271, v̂ = v/0.002997001;
        //      θ = [0.7015862742210723, −1.7006233916543037].
        let config = AdamConfig {
            weight_decay: 0.1,
            ..config()
        };
        let got = trajectory(&mut Adam::new(&store(), config), 3);
        assert_close(
            &got,
            &[
                [0.9000000009090909, -1.9000000001219512],
                [0.8004122295267845, -1.800166485856842],
                [0.7015862742210723, -1.7006233916543037],
            ],
        );
    }

    #[test]
    fn adamw_decays_the_weights_before_the_adam_update() {
        // AdamW, lr 0.1, λ = 0.1: θ ← θ·(1 − 0.1·0.1) = 0.99θ, then the Adam update with the
        // undecayed gradient g = [θ₀, 4θ₁] (taken before the decay). In f64:
        // t=1: g = [1, −8]; decayed θ = [0.99, −1.98]; step 0.1·g/(|g| + ε):
        //      θ = [0.99 − 0.1/(1 + 1e-8), −1.98 + 0.1·8/(8 + 1e-8)] = [0.890000001, −1.880000000125].
        // t=2: g = [0.890000001, −7.5200000005]; decayed θ = [0.88110000099, −1.86120000012375];
        //      m = [0.1790000001, −1.47200000005], v = [0.00179110000178, 0.12048640000752];
        //      m̂ = m/0.19 = [0.94210526368, −7.74736842132], v̂ = v/0.001999 = [0.89599799989, 60.27333667210];
        //      θ = [0.7815718569541611, −1.7614089503325472].
        // t=3: g = [0.7815718569541611, −7.045635801330189];
        //      decayed θ = [0.7737561383846194, −1.7437948608292217];
        //      m = [0.23925718579, −2.02936358018], v = [0.00240016346936, 0.17000689745250];
        //      m̂ = m/0.271 = [0.88286784423, −7.48842649512], v̂ = v/0.002997001 = [0.80085507791, 56.72567258152];
        //      θ = [0.6751012231892007, −1.6443686831798794].
        let config = AdamConfig {
            lr: 0.1,
            weight_decay: 0.1,
            ..AdamConfig::adamw()
        };
        let got = trajectory(&mut Adam::new(&store(), config), 3);
        assert_close(
            &got,
            &[
                [0.890000001, -1.880000000125],
                [0.7815718569541611, -1.7614089503325472],
                [0.6751012231892007, -1.6443686831798794],
            ],
        );
    }

    #[test]
    fn state_round_trips_and_a_bad_state_changes_nothing() {
        let mut adam = Adam::new(&store(), config());
        trajectory(&mut adam, 2);
        let state = adam.state();
        assert_eq!(state.kind, "adam");
        assert_eq!(state.scalars["t"], "2");
        assert_eq!(state.scalars["lr"], "0.1");
        assert_eq!(state.scalars["eps"], "1e-8");
        let mut fresh = Adam::new(&store(), AdamConfig::default());
        fresh.set_state(state.clone()).unwrap();
        assert_eq!(fresh, adam);

        let mut bad = state.clone();
        bad.scalars.insert("beta2".into(), "abc".into());
        let before = fresh.clone();
        let err = fresh.set_state(bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"scalar `beta2` = "abc" is not a valid number"#
        );
        assert_eq!(fresh, before);

        let mut bad = state.clone();
        bad.buffers.get_mut("v").unwrap()[0].push(0.0);
        assert!(matches!(
            fresh.set_state(bad),
            Err(StateError::BufferSize { .. })
        ));
        assert_eq!(fresh, before);

        let mut adamw = Adam::new(&store(), AdamConfig::adamw());
        let err = adamw.set_state(state).unwrap_err();
        assert_eq!(
            err.to_string(),
            "state of `adam` cannot be loaded into `adamw`"
        );
    }

    /// The parallel update (a store of at least `PARALLEL_UPDATE_MIN` parameters, cut into row
    /// blocks shared out over the global pool) moves every element exactly once. One step from zero moments is
    /// `θ − lr·g/(|g| + ε)`: m̂ = g and v̂ = g² after bias correction.
    #[test]
    fn the_parallel_update_moves_every_element_once() {
        let shapes = [(700, 300), (1, 300), (5, 7), (3, 40_000), (1, 40_000)];
        let total: usize = shapes.iter().map(|(r, c)| r * c).sum();
        assert!(total >= PARALLEL_UPDATE_MIN);
        let fill = |(rows, cols): (usize, usize), seed: usize| {
            autodiff::Matrix::from_shape_fn((rows, cols), |(i, j)| {
                let k = (i * cols + j) * 7 + seed * 13;
                (k % 23) as f32 * 0.25 - 2.6 // never 0, since 2.6 is not a multiple of 0.25
            })
        };
        let mut store = ParamStore::new();
        for (n, &shape) in shapes.iter().enumerate() {
            store.add(format!("p{n}"), fill(shape, n));
        }
        let before = store.clone();
        let mut grads = ParamGrads::zeros(&store);
        for (n, g) in grads.iter_mut().enumerate() {
            *g = fill(shapes[n], n + 5);
        }
        let mut adam = Adam::new(&store, config());
        let (mut copy, mut m, mut v) = (store.clone(), adam.m.clone(), adam.v.clone());
        let blocks = update_blocks(&mut copy, &grads, &mut m, &mut v, UPDATE_BLOCK);
        assert!(blocks.len() > 2 * shapes.len());
        let elements: usize = blocks.iter().map(|b| b.0.len()).sum();
        assert_eq!(elements, total);

        adam.step(&mut store, &grads);
        for ((_, name, after), ((_, _, theta), (_, g))) in
            store.iter().zip(before.iter().zip(grads.iter()))
        {
            for ((&after, &theta), &g) in after.iter().zip(theta).zip(g) {
                let expected = f64::from(theta) - 0.1 * f64::from(g.signum());
                assert!(
                    (f64::from(after) - expected).abs() < 1e-6,
                    "{name}: {theta} -> {after}, expected {expected}"
                );
            }
        }
    }

    #[test]
    #[should_panic(
        expected = "adam: gradient of `theta` (#0) has shape (2, 1), the parameter (1, 2)"
    )]
    fn a_gradient_of_the_wrong_shape_panics() {
        let mut store = store();
        let mut grads = ParamGrads::zeros(&store);
        grads[store.id("theta").unwrap()] = autodiff::Matrix::zeros((2, 1));
        Adam::new(&store, config()).step(&mut store, &grads);
    }
}
