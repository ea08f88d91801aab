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

    /// The global L2 norm `√(Σₚ Σᵢ gₚᵢ²)` over every parameter, accumulated in f64 in eight
    /// lanes (a GAN measures it every step, over two million gradients: one sequential f64 sum
    /// was 6 % of its step, 1.7 % after).
    pub fn norm(&self) -> f32 {
        let mut lanes = [0.0f64; 8];
        let mut tail = 0.0f64;
        let square = |x: f32| f64::from(x) * f64::from(x);
        for g in &self.by_param {
            let contiguous = g.as_slice_memory_order();
            let owned;
            let values = match contiguous {
                Some(values) => values,
                None => {
                    owned = g.iter().copied().collect::<Vec<f32>>();
                    &owned
                }
            };
            let chunks = values.chunks_exact(lanes.len());
            tail += chunks.remainder().iter().map(|&x| square(x)).sum::<f64>();
            for chunk in chunks {
                for (lane, &x) in lanes.iter_mut().zip(chunk) {
                    *lane += square(x);
                }
            }
        }
        (lanes.iter().sum::<f64>() + tail).sqrt() as f32
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
