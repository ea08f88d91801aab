//! Optimizers (Adam, AdamW, SGD, RMSProp), gradient clipping and learning-rate schedules; the
//! [`Optimizer`] trait and the [`OptimizerState`] a checkpoint stores.

mod adam;
mod clip;
mod rmsprop;
mod schedule;
mod sgd;

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::{ParamGrads, ParamStore};

pub use adam::{Adam, AdamConfig};
pub use clip::{clip_grad_norm, clip_weights};
pub use rmsprop::{Rmsprop, RmspropConfig};
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdConfig};

/// A first-order optimizer whose state is plain vectors indexed by parameter id.
pub trait Optimizer {
    /// One update of every parameter from its gradient, in place (drop the tape first).
    ///
    /// Panics if the store or the gradients do not match the parameters the optimizer was built
    /// for.
    fn step(&mut self, store: &mut ParamStore, grads: &ParamGrads);

    /// The learning rate of the next step.
    fn lr(&self) -> f32;

    /// Sets the learning rate (for a [`Schedule`]).
    fn set_lr(&mut self, lr: f32);

    /// Steps taken so far.
    fn t(&self) -> u64;

    /// A copy of the state, for a checkpoint.
    fn state(&self) -> OptimizerState;

    /// Restores a state made by [`Optimizer::state`]. Everything is validated before anything is
    /// assigned: on error the optimizer is unchanged.
    fn set_state(&mut self, state: OptimizerState) -> Result<(), StateError>;
}

/// What a checkpoint stores of an optimizer.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState {
    /// The algorithm: `adam`, `adamw`, `sgd` or `rmsprop`.
    pub kind: String,
    /// The step count `t` and the hyperparameters, as text (`lr`, `beta1`, ...).
    pub scalars: BTreeMap<String, String>,
    /// Per-parameter buffers by name (`m`, `v`, `momentum_buffer`): for each, one row-major
    /// vector per parameter, in id order.
    pub buffers: BTreeMap<String, Vec<Vec<f32>>>,
}

/// An [`OptimizerState`] that does not fit the optimizer it is restored into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// State of another algorithm.
    #[error("state of `{found}` cannot be loaded into `{expected}`")]
    Kind {
        /// This optimizer's kind.
        expected: String,
        /// The state's kind.
        found: String,
    },
    /// A scalar is absent.
    #[error("scalar `{0}` is missing")]
    MissingScalar(String),
    /// A scalar does not parse.
    #[error("scalar `{key}` = {value:?} is not a valid {what}")]
    BadScalar {
        /// The scalar's name.
        key: String,
        /// Its text.
        value: String,
        /// What it should have been (`number`, `step count`, `boolean`).
        what: &'static str,
    },
    /// The buffers are not those of this optimizer.
    #[error("buffers {found:?}, expected {expected:?}")]
    BufferNames {
        /// This optimizer's buffer names.
        expected: Vec<String>,
        /// The state's buffer names.
        found: Vec<String>,
    },
    /// A buffer has a vector for more or fewer parameters than the optimizer.
    #[error("buffer `{name}` holds {found} parameters, expected {expected}")]
    BufferCount {
        /// The buffer's name.
        name: String,
        /// Parameters of the optimizer.
        expected: usize,
        /// Vectors in the buffer.
        found: usize,
    },
    /// A buffer does not match its parameter's size.
    #[error("buffer `{name}` of parameter #{param} has {found} elements, expected {expected}")]
    BufferSize {
        /// The buffer's name.
        name: String,
        /// The parameter's index.
        param: usize,
        /// Elements of the parameter.
        expected: usize,
        /// Elements found.
        found: usize,
    },
}

/// Zeroed buffers, one per parameter of the store.
fn zeros_like(store: &ParamStore) -> Vec<Vec<f32>> {
    store
        .iter()
        .map(|(_, _, value)| vec![0.0; value.len()])
        .collect()
}

/// Panics unless the store and the gradients have `n` parameters and each gradient has its
/// parameter's shape.
#[track_caller]
fn check_step(optimizer: &str, n: usize, store: &ParamStore, grads: &ParamGrads) {
    assert!(
        store.len() == n && grads.len() == n,
        "{optimizer}: built for {n} parameters, got a store of {} and {} gradients",
        store.len(),
        grads.len()
    );
    for ((id, g), (_, name, value)) in grads.iter().zip(store.iter()) {
        assert!(
            g.dim() == value.dim(),
            "{optimizer}: gradient of `{name}` (#{}) has shape {:?}, the parameter {:?}",
            id.index(),
            g.dim(),
            value.dim()
        );
    }
}

/// Checks that `buffers` holds exactly the `expected` buffers (given in name order), each with
/// one vector per parameter of the same length as ours.
fn check_buffers(
    expected: &[(&str, &[Vec<f32>])],
    buffers: &BTreeMap<String, Vec<Vec<f32>>>,
) -> Result<(), StateError> {
    if !expected
        .iter()
        .map(|(name, _)| *name)
        .eq(buffers.keys().map(String::as_str))
    {
        return Err(StateError::BufferNames {
            expected: expected.iter().map(|(name, _)| name.to_string()).collect(),
            found: buffers.keys().cloned().collect(),
        });
    }
    for ((name, ours), theirs) in expected.iter().zip(buffers.values()) {
        if ours.len() != theirs.len() {
            return Err(StateError::BufferCount {
                name: name.to_string(),
                expected: ours.len(),
                found: theirs.len(),
            });
        }
        for (param, (a, b)) in ours.iter().zip(theirs).enumerate() {
            if a.len() != b.len() {
                return Err(StateError::BufferSize {
                    name: name.to_string(),
                    param,
                    expected: a.len(),
                    found: b.len(),
                });
            }
        }
    }
    Ok(())
}

/// The scalar `key` of a state, parsed.
fn scalar<T: FromStr>(
    scalars: &BTreeMap<String, String>,
    key: &str,
    what: &'static str,
) -> Result<T, StateError> {
    let value = scalars
        .get(key)
        .ok_or_else(|| StateError::MissingScalar(key.to_string()))?;
    value.parse().map_err(|_| StateError::BadScalar {
        key: key.to_string(),
        value: value.clone(),
        what,
    })
}

/// Checks the kind of a state.
fn check_kind(expected: &str, state: &OptimizerState) -> Result<(), StateError> {
    if state.kind == expected {
        Ok(())
    } else {
        Err(StateError::Kind {
            expected: expected.to_string(),
            found: state.kind.clone(),
        })
    }
}

/// The row-major view of a buffer as a matrix of its parameter's shape.
fn as_matrix(buffer: &mut [f32], shape: (usize, usize)) -> ndarray::ArrayViewMut2<'_, f32> {
    ndarray::ArrayViewMut2::from_shape(shape, buffer).expect("buffers are sized like parameters")
}

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_of_the_test_quadratic_are_a_times_theta() {
        let store = testing::store();
        let g = testing::grads(&store);
        let theta = store.id("theta").unwrap();
        // a⊙θ = [1·1, 4·(−2)] = [1, −8]
        assert_eq!(g[theta], ndarray::array![[1.0f32, -8.0]]);
    }

    #[test]
    fn buffer_checks_name_the_mismatch() {
        let m = vec![vec![0.0; 2]];
        let ours: [(&str, &[Vec<f32>]); 1] = [("m", &m)];
        let theirs = BTreeMap::from([("m".to_string(), vec![vec![0.0; 3]])]);
        assert_eq!(
            check_buffers(&ours, &theirs).unwrap_err().to_string(),
            "buffer `m` of parameter #0 has 3 elements, expected 2"
        );
        let theirs = BTreeMap::from([("m".to_string(), vec![vec![0.0; 2], vec![0.0; 1]])]);
        assert_eq!(
            check_buffers(&ours, &theirs).unwrap_err().to_string(),
            "buffer `m` holds 2 parameters, expected 1"
        );
        let theirs = BTreeMap::from([("v".to_string(), vec![vec![0.0; 2]])]);
        assert!(matches!(
            check_buffers(&ours, &theirs),
            Err(StateError::BufferNames { .. })
        ));
    }

    #[test]
    fn as_matrix_is_row_major() {
        let mut buffer = vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let view = as_matrix(&mut buffer, (2, 3));
        assert_eq!(view.row(1).to_vec(), [4.0, 5.0, 6.0]);
    }
}
