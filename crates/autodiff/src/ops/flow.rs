//! Ops that change where gradients flow, not values: `detach` and `straight_through`.

use crate::Var;

/// `y = x` with no gradient flowing back to `x` (stop-gradient). The value is shared, not copied.
#[track_caller]
pub fn detach(x: Var<'_>) -> Var<'_> {
    x.tape().push("detach", x.value(), &[], |_| Vec::new())
}

/// The value of `value_of`, with the gradient handed to `grad_to` unchanged (the straight-through
/// estimator): `y = value_of`, `∂L/∂grad_to = ∂L/∂y`, and nothing flows to `value_of`.
/// VQ-VAE uses it to pass the decoder's gradient from the quantised code to the encoder output.
#[track_caller]
pub fn straight_through<'t>(value_of: Var<'t>, grad_to: Var<'t>) -> Var<'t> {
    let (sv, sg) = (value_of.shape(), grad_to.shape());
    assert!(
        sv == sg,
        "straight_through: value shape {sv:?} differs from gradient target shape {sg:?}"
    );
    value_of
        .tape()
        .push("straight_through", value_of.value(), &[grad_to], |g| {
            vec![g.clone()]
        })
}

impl<'t> Var<'t> {
    /// [`detach`]
    #[track_caller]
    pub fn detach(self) -> Var<'t> {
        detach(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tape;
    use ndarray::array;

    #[test]
    fn detach_stops_the_gradient() {
        // y = a·detach(a): dy/da = detach(a) = 3, not 2a = 6.
        let tape = Tape::new();
        let a = tape.leaf(array![[3.0f32]]);
        let y = a * a.detach();
        assert_eq!(tape.backward(y).get(a), Some(&array![[3.0f32]]));
    }

    #[test]
    fn straight_through_takes_one_value_and_gives_the_other_the_gradient() {
        let tape = Tape::new();
        let z_e = tape.leaf(array![[0.4f32, -1.2]]);
        let z_q = tape.leaf(array![[0.0f32, -1.0]]);
        let y = straight_through(z_q, z_e);
        assert_eq!(*y.value(), *z_q.value());
        let w = tape.constant(array![[2.0f32, 5.0]]);
        let grads = tape.backward((y * w).sum());
        assert_eq!(grads.get(z_e), Some(&array![[2.0f32, 5.0]]));
        assert_eq!(grads.get(z_q), None);
    }
}
