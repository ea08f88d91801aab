//! Finite-difference gradient checking: the tape's gradients against central differences,
//! projected on a random cotangent.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::{Matrix, Tape, Var};

/// Step and tolerances of [`gradcheck`].
///
/// The defaults are chosen for `f32`. The truncation error of a central difference is
/// `h²/6·|f'''|`, below `2e-7·|f'''|` at `h = 1e-3`. The function itself is evaluated in `f32`, so
/// each output `yₖ` is only known to a few ulps, and a difference quotient divides that by `2h`.
/// That resolution is measured at the inputs, not assumed: `floor = 8·ε_f32·Σₖ |cₖ·yₖ| / 2h`. An element passes when
/// `|analytic - numeric| ≤ atol + rtol·|numeric| + floor`, with `rtol = 1e-2` (1%: far above the
/// truncation error, far below the error of a wrong factor, sign or transposition) and
/// `atol = 1e-4` (for gradients that are exactly zero). An output of order 10⁴, such as
/// `e^{log σ²}` at `log σ² = 10`, makes the floor about 5, so check extreme values in a call of
/// their own, and small gradients at moderate values. Keep inputs at
/// least `10·h` away from kinks (relu at 0), where no difference quotient is right.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradcheckConfig {
    /// The finite-difference step `h`.
    pub step: f32,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Seed of the random cotangent.
    pub seed: u64,
}

impl Default for GradcheckConfig {
    fn default() -> Self {
        GradcheckConfig {
            step: 1e-3,
            rtol: 1e-2,
            atol: 1e-4,
            seed: 0,
        }
    }
}

/// The first gradient element that disagrees with its finite difference.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "gradcheck: d⟨c, f⟩/d input {input}{index:?} is {analytic} by backward but {numeric} by central \
     differences (|difference| {:.3e} > tolerance {tolerance:.3e})",
    (analytic - numeric).abs()
)]
pub struct GradcheckError {
    /// Which input (position in the `inputs` slice).
    pub input: usize,
    /// `[row, column]` of the element.
    pub index: [usize; 2],
    /// The tape's gradient.
    pub analytic: f64,
    /// The central difference.
    pub numeric: f64,
    /// The tolerance it had to meet.
    pub tolerance: f64,
}

/// The largest disagreement found by a passing [`gradcheck`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradcheckReport {
    /// Largest `|analytic - numeric|` over every element of every input.
    pub max_abs_error: f64,
    /// Number of elements compared.
    pub elements: usize,
}

/// Checks the gradients of `f` at `inputs`.
///
/// `f` builds its output from the inputs (as leaves of a tape). With a random cotangent `c` of
/// the output's shape, the tape's vector-Jacobian product `∂⟨c, f(x)⟩/∂x` is compared element by
/// element with the central difference `(⟨c, f(x + h·e)⟩ - ⟨c, f(x - h·e)⟩) / 2h`. Projecting
/// on a random `c` rather than summing the output catches transposed or permuted gradients.
pub fn gradcheck<F>(
    f: F,
    inputs: &[Matrix],
    config: &GradcheckConfig,
) -> Result<GradcheckReport, GradcheckError>
where
    F: for<'t> Fn(&[Var<'t>]) -> Var<'t>,
{
    gradcheck_against(&f, &f, inputs, config)
}

/// Checks that the tape's gradient of `f` is the true derivative of `reference`: the analytic
/// side differentiates `f`, the central differences evaluate `reference`. This is how ops whose
/// gradient is defined rather than derived are checked: `detach(x)` against a constant,
/// `straight_through(a, b)` against `b`. [`gradcheck`] is `gradcheck_against(f, f, ..)`.
pub fn gradcheck_against<F, R>(
    f: F,
    reference: R,
    inputs: &[Matrix],
    config: &GradcheckConfig,
) -> Result<GradcheckReport, GradcheckError>
where
    F: for<'t> Fn(&[Var<'t>]) -> Var<'t>,
    R: for<'t> Fn(&[Var<'t>]) -> Var<'t>,
{
    let (analytic, cotangent) = {
        let tape = Tape::new();
        let vars: Vec<Var<'_>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
        let out = f(&vars);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let c = Matrix::from_shape_fn(out.shape(), |_| StandardNormal.sample(&mut rng));
        let grads = tape.backward_with(out, c.clone());
        let analytic: Vec<Matrix> = vars.iter().map(|&v| grads.wrt(v)).collect();
        (analytic, c)
    };
    let evaluate = |xs: &[Matrix]| -> Matrix {
        let tape = Tape::new();
        let vars: Vec<Var<'_>> = xs.iter().map(|x| tape.constant(x.clone())).collect();
        let y = reference(&vars).value().as_ref().clone();
        assert!(
            y.dim() == cotangent.dim(),
            "gradcheck: the reference's output shape {:?} differs from f's {:?}",
            y.dim(),
            cotangent.dim()
        );
        y
    };

    // How precisely ⟨c, f(x)⟩ is known in f32: the scale of the resolution floor.
    let magnitude: f64 = evaluate(inputs)
        .iter()
        .zip(&cotangent)
        .map(|(&y, &c)| f64::from(c).abs() * f64::from(y).abs())
        .sum();
    let mut report = GradcheckReport {
        max_abs_error: 0.0,
        elements: 0,
    };
    let mut probe = inputs.to_vec();
    for (k, grad) in analytic.iter().enumerate() {
        for ((r, c), &a) in grad.indexed_iter() {
            let x = inputs[k][[r, c]];
            // The steps actually taken in f32, which differ slightly from h.
            let (up, down) = (x + config.step, x - config.step);
            probe[k][[r, c]] = up;
            let y_up = evaluate(&probe);
            probe[k][[r, c]] = down;
            let y_down = evaluate(&probe);
            probe[k][[r, c]] = x;
            let width = f64::from(up) - f64::from(down);
            let difference: f64 = y_up
                .iter()
                .zip(&y_down)
                .zip(&cotangent)
                .map(|((&u, &d), &c)| f64::from(c) * (f64::from(u) - f64::from(d)))
                .sum();
            let numeric = difference / width;
            let floor = 8.0 * f64::from(f32::EPSILON) * magnitude / width;
            let analytic = f64::from(a);
            let error = (analytic - numeric).abs();
            let tolerance = config.atol + config.rtol * numeric.abs() + floor;
            if error.is_nan() || error > tolerance {
                return Err(GradcheckError {
                    input: k,
                    index: [r, c],
                    analytic,
                    numeric,
                    tolerance,
                });
            }
            report.max_abs_error = report.max_abs_error.max(error);
            report.elements += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn accepts_a_correct_gradient() {
        let x = array![[0.3f32, -1.0], [2.0, 0.5]];
        let report = gradcheck(|v| v[0].tanh(), &[x], &GradcheckConfig::default()).unwrap();
        assert_eq!(report.elements, 4);
    }

    /// `a·b` with a wrong backward: `b·g` in place of `g·bᵀ` (a transposition bug).
    fn wrong_matmul<'t>(v: &[Var<'t>]) -> Var<'t> {
        let (a, b) = (v[0], v[1]);
        let (va, vb) = (a.value(), b.value());
        let y = va.dot(&*vb);
        a.tape().push("wrong_matmul", y, &[a, b], move |g| {
            vec![vb.dot(g), va.t().dot(g)]
        })
    }

    /// `eˣ` with half its derivative.
    fn half_exp<'t>(v: &[Var<'t>]) -> Var<'t> {
        let x = v[0];
        let y = x.value().mapv(f32::exp);
        let saved = y.clone();
        x.tape()
            .push("half_exp", y, &[x], move |g| vec![g * &saved * 0.5])
    }

    #[test]
    fn catches_a_transposed_gradient() {
        let a = array![[0.5f32, -1.0], [1.5, 2.0]];
        let b = array![[1.0f32, 0.25], [-0.5, 3.0]];
        let err = gradcheck(wrong_matmul, &[a, b], &GradcheckConfig::default()).unwrap_err();
        assert_eq!(err.input, 0);
    }

    #[test]
    fn reports_where_the_gradient_is_wrong() {
        let x = array![[0.3f32, -1.0]];
        let err = gradcheck(half_exp, &[x], &GradcheckConfig::default()).unwrap_err();
        assert_eq!((err.input, err.index), (0, [0, 0]));
        assert!((err.analytic / err.numeric - 0.5).abs() < 1e-2);
    }
}
