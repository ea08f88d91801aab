//! The table-driven gradcheck suite: every public op of `autodiff::ops` has at least one row, and
//! a test fails when an op is added without one.

use std::collections::BTreeSet;

use autodiff::{GradcheckConfig, Matrix, Var, gradcheck_against, ops::*};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

type Op = for<'t> fn(&[Var<'t>]) -> Var<'t>;

/// One row: the op under test, how it is called, and its inputs.
struct Case {
    /// The op's function name in `autodiff::ops`.
    op: &'static str,
    /// What this row exercises (broadcast direction, composition, …).
    what: &'static str,
    f: Op,
    /// For ops whose gradient is defined rather than derived: a function whose true derivative
    /// the op's gradient must equal (see `gradcheck_against`).
    reference: Option<Op>,
    inputs: fn(&mut ChaCha8Rng) -> Vec<Matrix>,
}

fn normal(rng: &mut ChaCha8Rng, shape: (usize, usize)) -> Matrix {
    Matrix::from_shape_fn(shape, |_| StandardNormal.sample(rng))
}

/// Uniform in [0.5, 2]: for log, sqrt and denominators.
fn positive(rng: &mut ChaCha8Rng, shape: (usize, usize)) -> Matrix {
    Matrix::from_shape_fn(shape, |_| rng.random_range(0.5..2.0))
}

/// |x| in [0.1, 2] with a random sign: keeps relu-like kinks 100 steps away.
fn off_kink(rng: &mut ChaCha8Rng, shape: (usize, usize)) -> Matrix {
    Matrix::from_shape_fn(shape, |_| {
        let x: f32 = rng.random_range(0.1..2.0);
        if rng.random() { x } else { -x }
    })
}

/// In [0, 1]: Bernoulli targets.
fn unit(rng: &mut ChaCha8Rng, shape: (usize, usize)) -> Matrix {
    Matrix::from_shape_fn(shape, |_| rng.random_range(0.0..1.0))
}

/// 85 % zeros, the rest standard normal: a left operand that `matmul` and `affine` multiply
/// through its nonzeros (`autodiff::sparse`, below its default 30 % threshold).
fn mostly_zero(rng: &mut ChaCha8Rng, shape: (usize, usize)) -> Matrix {
    Matrix::from_shape_fn(shape, |_| {
        if rng.random_range(0.0..1.0) < 0.15 {
            StandardNormal.sample(rng)
        } else {
            0.0
        }
    })
}

/// Distinct multiples of 0.25 in [−3, 3), shuffled, plus a small jitter: no two elements of a
/// column are within 0.2 of each other, so `minibatch_discrimination`'s `|Mᵢ − Mⱼ|` stays far
/// from its kink at 0 under the finite-difference steps.
fn spread(rng: &mut ChaCha8Rng, shape: (usize, usize)) -> Matrix {
    let mut column: Vec<f32> = (0..24).map(|k| k as f32 * 0.25 - 3.0).collect();
    Matrix::from_shape_fn((shape.1, shape.0), |(_, i)| {
        if i == 0 {
            rand::seq::SliceRandom::shuffle(column.as_mut_slice(), rng);
        }
        column[i] + rng.random_range(-0.02..0.02)
    })
    .reversed_axes()
    .as_standard_layout()
    .into_owned()
}

/// A fixed noise matrix for `reparameterize` (inside a non-capturing fn).
fn fixed_eps(shape: (usize, usize)) -> Matrix {
    Matrix::from_shape_fn(shape, |(i, j)| ((i * 7 + j * 3) as f32 * 0.77).sin() * 1.5)
}

/// Pixels at the levels of `bins` in [−1, 1], both edges included.
fn levels(shape: (usize, usize), bins: usize) -> Matrix {
    Matrix::from_shape_fn(shape, |(i, j)| {
        let k = (i * 5 + j * 3) % bins;
        -1.0 + 2.0 * k as f32 / (bins - 1) as f32
    })
}

fn case(
    op: &'static str,
    what: &'static str,
    f: Op,
    inputs: fn(&mut ChaCha8Rng) -> Vec<Matrix>,
) -> Case {
    Case {
        op,
        what,
        f,
        reference: None,
        inputs,
    }
}

fn cases() -> Vec<Case> {
    vec![
        case(
            "add",
            "same shape",
            |v| add(v[0], v[1]),
            |r| vec![normal(r, (3, 4)), normal(r, (3, 4))],
        ),
        case(
            "add",
            "row vector rhs",
            |v| add(v[0], v[1]),
            |r| vec![normal(r, (3, 4)), normal(r, (1, 4))],
        ),
        case(
            "add",
            "column vector lhs",
            |v| add(v[0], v[1]),
            |r| vec![normal(r, (3, 1)), normal(r, (3, 4))],
        ),
        case(
            "add",
            "scalar rhs",
            |v| add(v[0], v[1]),
            |r| vec![normal(r, (3, 4)), normal(r, (1, 1))],
        ),
        case(
            "add",
            "column + row (outer)",
            |v| add(v[0], v[1]),
            |r| vec![normal(r, (3, 1)), normal(r, (1, 4))],
        ),
        case(
            "sub",
            "same shape",
            |v| sub(v[0], v[1]),
            |r| vec![normal(r, (3, 4)), normal(r, (3, 4))],
        ),
        case(
            "sub",
            "row vector lhs",
            |v| sub(v[0], v[1]),
            |r| vec![normal(r, (1, 4)), normal(r, (3, 4))],
        ),
        case(
            "sub",
            "column vector rhs",
            |v| sub(v[0], v[1]),
            |r| vec![normal(r, (3, 4)), normal(r, (3, 1))],
        ),
        case(
            "sub",
            "scalar lhs",
            |v| sub(v[0], v[1]),
            |r| vec![normal(r, (1, 1)), normal(r, (3, 4))],
        ),
        case(
            "mul",
            "same shape",
            |v| mul(v[0], v[1]),
            |r| vec![normal(r, (3, 4)), normal(r, (3, 4))],
        ),
        case(
            "mul",
            "row vector rhs",
            |v| mul(v[0], v[1]),
            |r| vec![normal(r, (3, 4)), normal(r, (1, 4))],
        ),
        case(
            "mul",
            "column vector lhs",
            |v| mul(v[0], v[1]),
            |r| vec![normal(r, (3, 1)), normal(r, (3, 4))],
        ),
        case(
            "mul",
            "scalar rhs",
            |v| mul(v[0], v[1]),
            |r| vec![normal(r, (3, 4)), normal(r, (1, 1))],
        ),
        case(
            "mul",
            "same input twice",
            |v| mul(v[0], v[0]),
            |r| vec![normal(r, (3, 4))],
        ),
        case(
            "div",
            "same shape",
            |v| div(v[0], v[1]),
            |r| vec![normal(r, (3, 4)), positive(r, (3, 4))],
        ),
        case(
            "div",
            "row vector rhs",
            |v| div(v[0], v[1]),
            |r| vec![normal(r, (3, 4)), positive(r, (1, 4))],
        ),
        case(
            "div",
            "column vector rhs",
            |v| div(v[0], v[1]),
            |r| vec![normal(r, (3, 4)), positive(r, (3, 1))],
        ),
        case(
            "div",
            "scalar lhs",
            |v| div(v[0], v[1]),
            |r| vec![normal(r, (1, 1)), positive(r, (3, 4))],
        ),
        case("neg", "", |v| neg(v[0]), |r| vec![normal(r, (3, 4))]),
        case(
            "scale",
            "by -2.5",
            |v| scale(v[0], -2.5),
            |r| vec![normal(r, (3, 4))],
        ),
        case(
            "matmul",
            "3x5 · 5x4",
            |v| matmul(v[0], v[1]),
            |r| vec![normal(r, (3, 5)), normal(r, (5, 4))],
        ),
        case(
            "matmul",
            "1x1 · 1x4",
            |v| matmul(v[0], v[1]),
            |r| vec![normal(r, (1, 1)), normal(r, (1, 4))],
        ),
        case(
            "matmul",
            "sparse 12x40 (15 % nonzero) · 40x70",
            |v| matmul(v[0], v[1]),
            |r| vec![mostly_zero(r, (12, 40)), normal(r, (40, 70))],
        ),
        case(
            "affine",
            "x·W + b",
            |v| affine(v[0], v[1], v[2]),
            |r| vec![normal(r, (3, 5)), normal(r, (5, 4)), normal(r, (1, 4))],
        ),
        case(
            "affine",
            "sparse x (15 % nonzero), 10x30 · 30x9",
            |v| affine(v[0], v[1], v[2]),
            |r| {
                vec![
                    mostly_zero(r, (10, 30)),
                    normal(r, (30, 9)),
                    normal(r, (1, 9)),
                ]
            },
        ),
        case("exp", "", |v| exp(v[0]), |r| vec![normal(r, (3, 4))]),
        case("log", "", |v| log(v[0]), |r| vec![positive(r, (3, 4))]),
        case("sqrt", "", |v| sqrt(v[0]), |r| vec![positive(r, (3, 4))]),
        case("square", "", |v| square(v[0]), |r| vec![normal(r, (3, 4))]),
        case("relu", "", |v| relu(v[0]), |r| vec![off_kink(r, (3, 4))]),
        case(
            "clamp_min",
            "floor at 0.5, elements on both sides",
            |v| clamp_min(v[0], 0.5),
            |r| vec![off_kink(r, (3, 4)).mapv(|x| x + 0.5)],
        ),
        case(
            "leaky_relu",
            "slope 0.2",
            |v| leaky_relu(v[0], 0.2),
            |r| vec![off_kink(r, (3, 4))],
        ),
        case(
            "sigmoid",
            "",
            |v| sigmoid(v[0]),
            |r| vec![normal(r, (3, 4))],
        ),
        case("tanh", "", |v| tanh(v[0]), |r| vec![normal(r, (3, 4))]),
        case(
            "softplus",
            "",
            |v| softplus(v[0]),
            |r| vec![normal(r, (3, 4))],
        ),
        case("sum", "", |v| sum(v[0]), |r| vec![normal(r, (3, 4))]),
        case("mean", "", |v| mean(v[0]), |r| vec![normal(r, (3, 4))]),
        case(
            "sum_rows",
            "",
            |v| sum_rows(v[0]),
            |r| vec![normal(r, (3, 4))],
        ),
        case(
            "mean_rows",
            "",
            |v| mean_rows(v[0]),
            |r| vec![normal(r, (3, 4))],
        ),
        case(
            "sum_cols",
            "",
            |v| sum_cols(v[0]),
            |r| vec![normal(r, (3, 4))],
        ),
        case(
            "mean_cols",
            "",
            |v| mean_cols(v[0]),
            |r| vec![normal(r, (3, 4))],
        ),
        case(
            "logsumexp",
            "",
            |v| logsumexp(v[0]),
            |r| vec![normal(r, (3, 4)).mapv(|x| 3.0 * x)],
        ),
        case(
            "log_softmax",
            "",
            |v| log_softmax(v[0]),
            |r| vec![normal(r, (3, 4)).mapv(|x| 3.0 * x)],
        ),
        case(
            "concat_cols",
            "three inputs",
            |v| concat_cols(&[v[0], v[1], v[2]]),
            |r| vec![normal(r, (3, 2)), normal(r, (3, 1)), normal(r, (3, 3))],
        ),
        case(
            "slice_cols",
            "columns 1..3",
            |v| slice_cols(v[0], 1..3),
            |r| vec![normal(r, (3, 4))],
        ),
        case(
            "reshape",
            "3×4 as 6×2",
            |v| reshape(v[0], (6, 2)),
            |r| vec![normal(r, (3, 4))],
        ),
        case(
            "gather_rows",
            "with repeats",
            |v| gather_rows(v[0], &[2, 0, 2, 1, 2]),
            |r| vec![normal(r, (3, 4))],
        ),
        Case {
            op: "detach",
            what: "x + detach(x²) differentiates as x + a constant",
            f: |v| add(v[0], detach(square(v[0]))),
            reference: Some(|v| add(v[0], v[0].tape().constant(Matrix::zeros(v[0].shape())))),
            inputs: |r| vec![normal(r, (3, 4))],
        },
        Case {
            op: "straight_through",
            what: "value of a, gradient to b: differentiates as b",
            f: |v| straight_through(v[0], v[1]),
            reference: Some(|v| add(v[1], v[0].tape().constant(Matrix::zeros(v[0].shape())))),
            inputs: |r| vec![normal(r, (3, 4)), normal(r, (3, 4))],
        },
        case(
            "bce_with_logits",
            "logits and targets",
            |v| bce_with_logits(v[0], v[1]),
            |r| vec![normal(r, (3, 4)).mapv(|x| 3.0 * x), unit(r, (3, 4))],
        ),
        case(
            "gaussian_kl",
            "",
            |v| gaussian_kl(v[0], v[1]),
            |r| vec![normal(r, (3, 4)), normal(r, (3, 4))],
        ),
        case(
            "gaussian_kl_between",
            "",
            |v| gaussian_kl_between(v[0], v[1], v[2], v[3]),
            |r| {
                vec![
                    normal(r, (3, 4)),
                    normal(r, (3, 4)),
                    normal(r, (3, 4)),
                    normal(r, (3, 4)),
                ]
            },
        ),
        case(
            "reparameterize",
            "fixed noise",
            |v| reparameterize(v[0], v[1], &fixed_eps(v[0].shape())),
            |r| vec![normal(r, (3, 4)), normal(r, (3, 4))],
        ),
        case(
            "mse",
            "",
            |v| mse(v[0], v[1]),
            |r| vec![normal(r, (3, 4)), normal(r, (3, 4))],
        ),
        case(
            "gaussian_nll",
            "per-element log σ²",
            |v| gaussian_nll(v[0], v[1], v[2]),
            |r| vec![normal(r, (3, 4)), normal(r, (3, 4)), normal(r, (3, 4))],
        ),
        case(
            "batch_norm",
            "training mode, ε 1e-5",
            |v| batch_norm(v[0], v[1], v[2], 1e-5),
            |r| {
                let x = normal(r, (6, 4)).mapv(|x| 2.0 * x + 1.0);
                vec![x, normal(r, (1, 4)), normal(r, (1, 4))]
            },
        ),
        case(
            "batch_norm",
            "ε 0.8 (PyTorch-GAN's), two rows",
            |v| batch_norm(v[0], v[1], v[2], 0.8),
            |r| vec![normal(r, (2, 3)), normal(r, (1, 3)), normal(r, (1, 3))],
        ),
        case(
            "minibatch_discrimination",
            "3 kernels of 2 dims, 5 rows",
            |v| minibatch_discrimination(v[0], 3),
            |r| vec![spread(r, (5, 6))],
        ),
        case(
            "discretized_logistic_nll",
            "5 levels, edges included, scales of a bin",
            |v| discretized_logistic_nll(v[0], v[1], &levels(v[0].shape(), 5), 5),
            |r| {
                let log_scale = normal(r, (3, 4)).mapv(|z| 0.3 * z - 1.5);
                vec![normal(r, (3, 4)).mapv(|z| 0.5 * z), log_scale]
            },
        ),
        case(
            "discretized_logistic_nll",
            "256 levels, wide scales",
            |v| discretized_logistic_nll(v[0], v[1], &levels(v[0].shape(), 256), 256),
            |r| {
                let log_scale = normal(r, (3, 4)).mapv(|z| 0.3 * z - 0.5);
                vec![normal(r, (3, 4)).mapv(|z| 0.5 * z), log_scale]
            },
        ),
        case(
            "gaussian_nll",
            "shared 1x1 log σ²",
            |v| gaussian_nll(v[0], v[1], v[2]),
            |r| vec![normal(r, (3, 4)), normal(r, (1, 1)), normal(r, (3, 4))],
        ),
    ]
}

#[test]
fn every_op_passes_gradcheck() {
    let config = GradcheckConfig::default();
    let mut failures = Vec::new();
    for (i, case) in cases().iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + i as u64);
        let inputs = (case.inputs)(&mut rng);
        let result = gradcheck_against(case.f, case.reference.unwrap_or(case.f), &inputs, &config);
        if let Err(e) = result {
            failures.push(format!("{} ({}): {e}", case.op, case.what));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The rows named "sparse …" exist to run `matmul`/`affine` through `autodiff::sparse`: their
/// left operand, drawn with the same seed as in `every_op_passes_gradcheck`, must be sparse
/// enough for that path (so that a change of threshold cannot turn them dense unnoticed).
#[test]
fn the_sparse_rows_take_the_sparse_path() {
    let mut checked = 0;
    for (i, case) in cases().iter().enumerate() {
        if !case.what.starts_with("sparse") {
            continue;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(1000 + i as u64);
        let inputs = (case.inputs)(&mut rng);
        let left = autodiff::sparse::SparseRows::compress(
            inputs[0].view(),
            autodiff::sparse::max_density(),
        );
        assert!(
            left.is_some(),
            "{} ({}): the left operand is too dense",
            case.op,
            case.what
        );
        checked += 1;
    }
    assert_eq!(checked, 2, "one sparse row for matmul and one for affine");
}

/// The public free functions of `src/ops/`: the ops.
fn public_ops() -> BTreeSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ops");
    let mut ops = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("src/ops is readable") {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("pub fn ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                ops.insert(name);
            }
        }
    }
    ops
}

#[test]
fn every_public_op_has_a_row_and_every_row_names_an_op() {
    let ops = public_ops();
    assert!(ops.len() >= 30, "found only {} ops: {ops:?}", ops.len());
    let rows: BTreeSet<String> = cases().iter().map(|c| c.op.to_string()).collect();
    let missing: Vec<_> = ops.difference(&rows).collect();
    let unknown: Vec<_> = rows.difference(&ops).collect();
    assert!(
        missing.is_empty(),
        "ops without a gradcheck row: {missing:?}"
    );
    assert!(unknown.is_empty(), "rows naming no op: {unknown:?}");
}

/// `tanh` with the sign of its backward flipped: a deliberately wrong op.
fn flipped_tanh<'t>(v: &[Var<'t>]) -> Var<'t> {
    let x = v[0];
    let y = x.value().mapv(f32::tanh);
    let saved = y.clone();
    x.tape().push("flipped_tanh", y, &[x], move |g| {
        vec![-(g * &saved.mapv(|y| 1.0 - y * y))]
    })
}

#[test]
fn a_flipped_sign_is_rejected() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x = normal(&mut rng, (3, 4));
    let err = autodiff::gradcheck(
        flipped_tanh,
        std::slice::from_ref(&x),
        &GradcheckConfig::default(),
    )
    .unwrap_err();
    // The analytic gradient is exactly the negative of the true one.
    assert!(
        (err.analytic + err.numeric).abs() < 1e-2 * err.numeric.abs().max(1e-3),
        "{err}"
    );
    // The same op with the right sign passes.
    autodiff::gradcheck(|v| tanh(v[0]), &[x], &GradcheckConfig::default()).unwrap();
}
