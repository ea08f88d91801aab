//! Global gradient-norm clipping, as `torch.nn.utils.clip_grad_norm_`, and weight clipping, as
//! the Wasserstein GAN's critic takes it.

use crate::{ParamGrads, ParamStore};

/// Scales every gradient by `max_norm / (‖g‖ + 1e-6)` when that is below 1, where `‖g‖` is the
/// L2 norm over all parameters together; returns `‖g‖` before clipping.
///
/// Panics if `max_norm` is negative or NaN.
#[track_caller]
pub fn clip_grad_norm(grads: &mut ParamGrads, max_norm: f32) -> f32 {
    assert!(
        max_norm >= 0.0,
        "clip_grad_norm: max_norm must be non-negative, got {max_norm}"
    );
    let total_norm = grads.norm();
    let clip_coef = (f64::from(max_norm) / (f64::from(total_norm) + 1e-6)) as f32;
    if clip_coef < 1.0 {
        for g in grads.iter_mut() {
            g.mapv_inplace(|x| x * clip_coef);
        }
    }
    total_norm
}

/// Clamps every parameter of `store` into `[−c, c]` (Arjovsky et al. 2017: the critic's
/// weights after each of its steps, which keeps it in a compact set of K-Lipschitz functions).
///
/// Panics if `c` is negative or NaN.
#[track_caller]
pub fn clip_weights(store: &mut ParamStore, c: f32) {
    assert!(
        c >= 0.0,
        "clip_weights: the bound must be non-negative, got {c}"
    );
    for mut value in store.values_mut() {
        value.mapv_inplace(|w| w.clamp(-c, c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ParamStore;
    use autodiff::Matrix;
    use ndarray::array;

    /// Gradients [3, 4] and [12]: global norm √(9 + 16 + 144) = 13.
    fn grads() -> (ParamStore, ParamGrads) {
        let mut store = ParamStore::new();
        let a = store.add("a", Matrix::zeros((1, 2)));
        let b = store.add("b", Matrix::zeros((1, 1)));
        let mut grads = ParamGrads::zeros(&store);
        grads[a] = array![[3.0f32, 4.0]];
        grads[b] = array![[12.0f32]];
        (store, grads)
    }

    #[test]
    fn clips_to_the_max_norm_and_returns_the_norm_before() {
        let (store, mut grads) = grads();
        assert_eq!(clip_grad_norm(&mut grads, 6.5), 13.0);
        // coef = 6.5 / (13 + 1e-6) = 0.49999996153846; g·coef = [1.49999988, 1.99999985],
        // [5.99999954]; the new norm 13·coef = 6.4999995.
        let coef = 6.5 / (13.0 + 1e-6);
        let expected = [[3.0 * coef, 4.0 * coef], [12.0 * coef, 0.0]];
        let a = &grads[store.id("a").unwrap()];
        let b = &grads[store.id("b").unwrap()];
        let got = [[a[[0, 0]], a[[0, 1]]], [b[[0, 0]], 0.0]];
        for (g, e) in got.iter().flatten().zip(expected.iter().flatten()) {
            assert!((f64::from(*g) - e).abs() < 1e-6, "{g} vs {e}");
        }
        assert!((f64::from(grads.norm()) - 13.0 * coef).abs() < 1e-6);
    }

    #[test]
    fn leaves_small_gradients_alone() {
        let (_, mut grads) = grads();
        let before = grads.clone();
        // coef = 20 / 13.000001 > 1: no change.
        assert_eq!(clip_grad_norm(&mut grads, 20.0), 13.0);
        assert_eq!(grads, before);
    }

    #[test]
    fn weights_are_clamped_into_the_bound_and_the_rest_kept() {
        let mut store = ParamStore::new();
        let w = store.add("w", array![[0.5f32, -0.004, 0.02], [-3.0, 0.01, -0.01]]);
        let b = store.add("b", array![[0.0f32]]);
        clip_weights(&mut store, 0.01);
        assert_eq!(
            store.value(w),
            &array![[0.01f32, -0.004, 0.01], [-0.01, 0.01, -0.01]]
        );
        assert_eq!(store.value(b), &array![[0.0f32]]);
    }
}
