//! A tape-based reverse-mode autodiff engine on `f32` matrices, with a rayon-parallel GEMM and a
//! finite-difference gradient checker.
//!
//! ```
//! use autodiff::{Tape, ndarray::array};
//!
//! let tape = Tape::new();
//! let w = tape.leaf(array![[1.0f32, -2.0], [0.5, 3.0]]);
//! let x = tape.constant(array![[1.0f32, 2.0]]);
//! let loss = x.matmul(w).tanh().sum();
//! let grads = tape.backward(loss);
//! assert_eq!(grads.get(w).unwrap().dim(), (2, 2));
//! ```
#![warn(missing_docs)]

pub mod avx512;
pub mod gemm;
pub mod gradcheck;
mod math;
pub mod ops;
pub mod parallel;
mod scoring;
pub mod simd;
pub mod sparse;
mod tape;

pub use gradcheck::{
    GradcheckConfig, GradcheckError, GradcheckReport, gradcheck, gradcheck_against,
};
pub use math::batch_moments;
pub use ndarray;
pub use ops::*;
pub use scoring::{bce_with_logits_rows, gaussian_nll_rows};
pub use tape::{Anomaly, BackwardFn, Grads, Tape, Var, detect_anomaly};

/// Every value on the tape: rows are examples, a scalar is 1×1, a bias is 1×n.
pub type Matrix = ndarray::Array2<f32>;
