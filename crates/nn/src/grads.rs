//! [`ParamGrads`]: one gradient per parameter, indexed by [`ParamId`].

use std::ops::{Index, IndexMut};

use autodiff::Matrix;

use crate::{ParamId, ParamStore};

/// The gradient of a loss with respect to every parameter of a store, in id order, each of its
/// parameter's shape. Made by [`Bound::grads`](crate::Bound::grads).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamGrads {
    by_param: Vec<Matrix>,
}

impl ParamGrads {
    pub(crate) fn new(by_param: Vec<Matrix>) -> Self {
        ParamGrads { by_param }
    }

    /// Zeros of every parameter's shape (to accumulate into, or to fill by hand).
    pub fn zeros(store: &ParamStore) -> Self {
        Self::new(
            store
                .iter()
                .map(|(_, _, value)| Matrix::zeros(value.dim()))
                .collect(),
        )
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.by_param.len()
    }

    /// Whether there is no parameter.
    pub fn is_empty(&self) -> bool {
        self.by_param.is_empty()
    }

    /// Every gradient with its parameter's id.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (ParamId, &Matrix)> {
        self.by_param
            .iter()
            .enumerate()
            .map(|(i, g)| (ParamId::from_index(i), g))
    }

    /// Every gradient, writable.
    pub fn iter_mut(&mut self) -> impl ExactSizeIterator<Item = &mut Matrix> {
        self.by_param.iter_mut()
    }

    /// The global L2 norm `√(Σₚ Σᵢ gₚᵢ²)` over every parameter (accumulated in f64).
    pub fn norm(&self) -> f32 {
        let sum_sq: f64 = self
            .by_param
            .iter()
            .flat_map(|g| g.iter())
            .map(|&g| f64::from(g) * f64::from(g))
            .sum();
        sum_sq.sqrt() as f32
    }
}

impl Index<ParamId> for ParamGrads {
    type Output = Matrix;

    fn index(&self, id: ParamId) -> &Matrix {
        &self.by_param[id.index()]
    }
}

impl IndexMut<ParamId> for ParamGrads {
    fn index_mut(&mut self, id: ParamId) -> &mut Matrix {
        &mut self.by_param[id.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn norm_is_over_every_parameter() {
        let mut store = ParamStore::new();
        let a = store.add("a", Matrix::zeros((1, 2)));
        let b = store.add("b", Matrix::zeros((1, 1)));
        let mut grads = ParamGrads::zeros(&store);
        grads[a] = array![[3.0f32, 4.0]];
        grads[b] = array![[12.0f32]];
        // √(3² + 4² + 12²) = √169 = 13
        assert_eq!(grads.norm(), 13.0);
        assert_eq!(grads.iter().map(|(id, _)| id).collect::<Vec<_>>(), [a, b]);
    }
}
