//! Test support for the optimizers: one parameter θ (1×2) and the gradient of
//! `f(θ) = ½·Σ aᵢ·θᵢ²`, `∂f/∂θ = a⊙θ`, taken on the tape.

use super::Optimizer;
use crate::{ParamGrads, ParamId, ParamStore};
use autodiff::Tape;
use ndarray::array;

/// A store holding θ = [1, −2].
pub(crate) fn store() -> ParamStore {
    let mut store = ParamStore::new();
    store.add("theta", array![[1.0f32, -2.0]]);
    store
}

/// `a⊙θ` with `a = [1, 4]`, by backward through `½·Σ a·θ²`.
pub(crate) fn grads(store: &ParamStore) -> ParamGrads {
    let tape = Tape::new();
    let p = store.bind(&tape);
    let a = p.constant(array![[1.0f32, 4.0]]);
    let loss = (a * p.var(theta(store)).square()).sum().scale(0.5);
    p.grads(tape.backward(loss))
}

/// Runs `steps` steps and returns θ after each.
pub(crate) fn trajectory(optimizer: &mut impl Optimizer, steps: usize) -> Vec<[f32; 2]> {
    let mut store = store();
    (0..steps)
        .map(|_| {
            let g = grads(&store);
            optimizer.step(&mut store, &g);
            let theta = store.value(theta(&store));
            [theta[[0, 0]], theta[[0, 1]]]
        })
        .collect()
}

fn theta(store: &ParamStore) -> ParamId {
    store.id("theta").expect("added by store()")
}

/// Asserts each coordinate within `1e-6` (relative to max(1, |expected|)) of the f64
/// derivation: a few f32 roundings per step.
#[track_caller]
pub(crate) fn assert_close(got: &[[f32; 2]], expected: &[[f64; 2]]) {
    assert_eq!(got.len(), expected.len());
    for (step, (g, e)) in got.iter().zip(expected).enumerate() {
        for k in 0..2 {
            let tolerance = 1e-6 * e[k].abs().max(1.0);
            assert!(
                (f64::from(g[k]) - e[k]).abs() <= tolerance,
                "step {}: θ[{k}] = {} but expected {}",
                step + 1,
                g[k],
                e[k]
            );
        }
    }
}
