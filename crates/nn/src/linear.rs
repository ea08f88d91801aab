//! [`Linear`]: the affine layer `y = x·W + b`, with `W` stored `[in, out]`.

use std::rc::Rc;

use autodiff::{Matrix, Var};
use rand_chacha::ChaCha8Rng;

use crate::{Bound, Init, ParamId, ParamStore};

/// A fully connected layer: `y = x·W + b` (one fused [`autodiff::affine`]), with the weight
/// `W` of shape `[in, out]` at `<prefix>.w` and the bias `b` of shape `[1, out]` at `<prefix>.b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Linear {
    name: String,
    /// The weight, `[in, out]`.
    pub w: ParamId,
    /// The bias, `[1, out]`.
    pub b: ParamId,
    in_dim: usize,
    out_dim: usize,
}

impl Linear {
    /// A layer with Xavier-uniform weights and zero biases.
    #[track_caller]
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        in_dim: usize,
        out_dim: usize,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        Self::with_init(store, prefix, in_dim, out_dim, Init::XavierUniform, rng)
    }

    /// A layer with weights drawn from `init` and zero biases.
    ///
    /// Panics if a dimension is zero or the names are taken.
    #[track_caller]
    pub fn with_init(
        store: &mut ParamStore,
        prefix: &str,
        in_dim: usize,
        out_dim: usize,
        init: Init,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        assert!(
            in_dim > 0 && out_dim > 0,
            "Linear `{prefix}`: dimensions must be positive, got [{in_dim}, {out_dim}]"
        );
        let w = store.add(format!("{prefix}.w"), init.matrix(in_dim, out_dim, rng));
        let b = store.add(format!("{prefix}.b"), Init::Zeros.matrix(1, out_dim, rng));
        Linear {
            name: prefix.to_string(),
            w,
            b,
            in_dim,
            out_dim,
        }
    }

    /// `x·W + b` for a batch `x` of shape `[batch, in]`.
    #[track_caller]
    pub fn forward<'t>(&self, p: &Bound<'t>, x: Var<'t>) -> Var<'t> {
        let shape = x.shape();
        assert!(
            shape.1 == self.in_dim,
            "Linear `{}`: input of shape {shape:?} for a weight of shape ({}, {})",
            self.name,
            self.in_dim,
            self.out_dim
        );
        autodiff::affine(x, p[self.w], p[self.b])
    }

    /// `x·(W ⊙ M) + b` with a fixed `mask` `M` of W's shape (the masked layers of MADE, whose
    /// zeros cut connections); `∂L/∂W` is the unmasked product's gradient times `M`.
    #[track_caller]
    pub fn forward_masked<'t>(&self, p: &Bound<'t>, x: Var<'t>, mask: &Rc<Matrix>) -> Var<'t> {
        assert!(
            mask.dim() == (self.in_dim, self.out_dim),
            "Linear `{}`: a mask of shape {:?} for a weight of shape ({}, {})",
            self.name,
            mask.dim(),
            self.in_dim,
            self.out_dim
        );
        let w = p[self.w] * p.constant(Rc::clone(mask));
        autodiff::affine(x, w, p[self.b])
    }

    /// The path prefix of the parameters (`encoder.fc1`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Input width.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff::{GradcheckConfig, Tape, gradcheck};
    use ndarray::array;
    use rand::SeedableRng;

    #[test]
    fn a_masked_layer_cuts_the_masked_connections_and_passes_gradcheck() {
        let mut store = ParamStore::new();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let layer = Linear::new(&mut store, "made.fc1", 3, 2, &mut rng);
        // Output 0 sees input 0 only; output 1 sees inputs 0 and 1; input 2 reaches nothing.
        let mask = Rc::new(array![[1.0f32, 1.0], [0.0, 1.0], [0.0, 0.0]]);
        let x = array![[0.5f32, -1.0, 2.0], [1.5, 0.25, -0.5]];
        let tape = Tape::new();
        let p = store.bind(&tape);
        let xv = tape.leaf(x.clone());
        let y = layer.forward_masked(&p, xv, &mask);
        let grads = tape.backward(y.sum());
        // ∂(Σy)/∂x = (W ⊙ M)·1: zero for input 2, which feeds no output.
        let gx = grads.get(xv).unwrap();
        assert!(gx.column(2).iter().all(|&g| g == 0.0));
        // ∂(Σy)/∂W = xᵀ·1 ⊙ M: zero where the mask is.
        let gw = grads.get(p[layer.w]).unwrap();
        assert_eq!((gw[[1, 0]], gw[[2, 0]], gw[[2, 1]]), (0.0, 0.0, 0.0));
        assert_eq!(gw[[0, 0]], 0.5 + 1.5);

        let params: Vec<Matrix> = store.iter().map(|(_, _, v)| v.clone()).collect();
        gradcheck(
            |v| {
                let p = store.bind_vars(v[0].tape(), v);
                let x = p.constant(x.clone());
                layer.forward_masked(&p, x, &mask).square().sum()
            },
            &params,
            &GradcheckConfig::default(),
        )
        .unwrap();
    }

    #[test]
    fn forward_is_x_w_plus_b_with_named_parameters() {
        let mut store = ParamStore::new();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let layer = Linear::new(&mut store, "enc.fc1", 2, 3, &mut rng);
        assert_eq!(store.name(layer.w), "enc.fc1.w");
        assert_eq!(store.name(layer.b), "enc.fc1.b");
        assert_eq!(store.value(layer.w).dim(), (2, 3));
        assert_eq!(store.value(layer.b), &Matrix::zeros((1, 3)));
        store
            .value_mut(layer.w)
            .assign(&array![[1.0f32, 0.0, -1.0], [0.5, 2.0, 1.0]]);
        store.value_mut(layer.b).assign(&array![[0.1f32, 0.2, 0.3]]);
        let tape = Tape::new();
        let p = store.bind(&tape);
        let y = layer.forward(&p, p.constant(array![[1.0f32, 2.0]]));
        // [1, 2]·W = [1·1 + 2·0.5, 1·0 + 2·2, 1·(−1) + 2·1] = [2, 4, 1]; + b = [2.1, 4.2, 1.3]
        assert_eq!(*y.value(), array![[2.1f32, 4.2, 1.3]]);
    }

    #[test]
    #[should_panic(
        expected = "Linear `enc.fc1`: input of shape (4, 3) for a weight of shape (2, 5)"
    )]
    fn wrong_input_width_panics_with_both_shapes() {
        let mut store = ParamStore::new();
        let layer = Linear::new(
            &mut store,
            "enc.fc1",
            2,
            5,
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        let tape = Tape::new();
        let p = store.bind(&tape);
        layer.forward(&p, p.constant(Matrix::zeros((4, 3))));
    }
}
