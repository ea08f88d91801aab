//! A [`ParamStore`] bound to one tape: every parameter a leaf, shared rather than copied.

use std::ops::Index;
use std::rc::Rc;

use autodiff::{Grads, Matrix, Tape, Var};

use crate::{ParamGrads, ParamId, ParamStore};

/// The parameters of a store as leaves of one tape, for one forward and backward pass.
///
/// ```
/// use nn::{ParamStore, autodiff::{Tape, ndarray::array}};
///
/// let mut store = ParamStore::new();
/// let w = store.add("w", array![[2.0f32]]);
/// let grads = {
///     let tape = Tape::new();
///     let p = store.bind(&tape);
///     let x = p.constant(array![[3.0f32]]);
///     let loss = (x * p[w]).sum();        // d loss / dw = x = 3
///     p.grads(tape.backward(loss))
/// };
/// assert_eq!(grads[w], array![[3.0f32]]);
/// ```
pub struct Bound<'t> {
    tape: &'t Tape,
    vars: Vec<Var<'t>>,
}

impl ParamStore {
    /// Makes every parameter a leaf of `tape` (the values are shared, not copied).
    pub fn bind<'t>(&self, tape: &'t Tape) -> Bound<'t> {
        let vars = self
            .ids()
            .map(|id| tape.leaf(Rc::clone(self.shared(id))))
            .collect();
        Bound { tape, vars }
    }

    /// Every parameter as a constant of `tape`: a forward pass for evaluation or sampling, whose
    /// tape keeps no backward rules. The values are shared, not copied.
    pub fn bind_frozen<'t>(&self, tape: &'t Tape) -> Bound<'t> {
        let vars = self
            .ids()
            .map(|id| tape.constant(Rc::clone(self.shared(id))))
            .collect();
        Bound { tape, vars }
    }

    /// Uses `vars` (in id order, one per parameter, of the parameters' shapes) as the parameters,
    /// for instance the leaves [`autodiff::gradcheck()`] creates.
    ///
    /// Panics if the number of variables or a shape differs from the store's.
    #[track_caller]
    pub fn bind_vars<'t>(&self, tape: &'t Tape, vars: &[Var<'t>]) -> Bound<'t> {
        assert!(
            vars.len() == self.len(),
            "bind_vars: {} variables for {} parameters",
            vars.len(),
            self.len()
        );
        for ((_, name, value), var) in self.iter().zip(vars) {
            assert!(
                var.shape() == value.dim(),
                "bind_vars: `{name}` has shape {:?}, its variable {:?}",
                value.dim(),
                var.shape()
            );
        }
        Bound {
            tape,
            vars: vars.to_vec(),
        }
    }
}

impl<'t> Bound<'t> {
    /// The tape the parameters are bound to.
    pub fn tape(&self) -> &'t Tape {
        self.tape
    }

    /// The leaf of a parameter (also `p[id]`).
    pub fn var(&self, id: ParamId) -> Var<'t> {
        self.vars[id.index()]
    }

    /// Data (inputs, targets, noise) as a constant of the same tape.
    #[track_caller]
    pub fn constant(&self, value: impl Into<Rc<Matrix>>) -> Var<'t> {
        self.tape.constant(value)
    }

    /// The gradients of one reverse pass of this tape, by parameter (zeros where a parameter got
    /// none).
    pub fn grads(&self, mut grads: Grads) -> ParamGrads {
        ParamGrads::new(
            self.vars
                .iter()
                .map(|&v| grads.take(v).unwrap_or_else(|| Matrix::zeros(v.shape())))
                .collect(),
        )
    }
}

impl<'t> Index<ParamId> for Bound<'t> {
    type Output = Var<'t>;

    fn index(&self, id: ParamId) -> &Var<'t> {
        &self.vars[id.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn binding_shares_values_and_unused_parameters_get_zeros() {
        let mut store = ParamStore::new();
        let a = store.add("a", array![[1.0f32, 2.0]]);
        let b = store.add("b", array![[5.0f32]]);
        let tape = Tape::new();
        let p = store.bind(&tape);
        assert!(Rc::ptr_eq(&p.var(a).value(), store.shared(a)));
        // loss = Σ a², so d loss / da = 2a = [2, 4]; b is unused.
        let grads = p.grads(tape.backward(p[a].square().sum()));
        assert_eq!(grads[a], array![[2.0f32, 4.0]]);
        assert_eq!(grads[b], array![[0.0f32]]);
    }

    #[test]
    fn frozen_parameters_are_shared_constants() {
        let mut store = ParamStore::new();
        let a = store.add("a", array![[1.0f32, 2.0]]);
        let tape = Tape::new();
        let p = store.bind_frozen(&tape);
        assert!(Rc::ptr_eq(&p[a].value(), store.shared(a)));
        assert!(!p[a].square().requires_grad());
    }

    #[test]
    #[should_panic(expected = "bind_vars: `a` has shape (1, 2), its variable (2, 1)")]
    fn bind_vars_checks_shapes() {
        let mut store = ParamStore::new();
        store.add("a", array![[1.0f32, 2.0]]);
        let tape = Tape::new();
        let v = tape.leaf(array![[1.0f32], [2.0]]);
        store.bind_vars(&tape, &[v]);
    }
}
