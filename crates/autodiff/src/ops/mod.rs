//! The differentiable ops: each is one function holding its forward and its backward rule.
//!
//! Every public free function in this folder is an op and has a row in the gradcheck suite
//! (`tests/gradcheck_ops.rs`, which fails when one is missing). Methods on [`Var`](crate::Var)
//! and the operators `+ - * /` forward to these functions.

mod arith;
mod batch;
mod flow;
mod linalg;
mod loss;
pub(crate) use loss::PARALLEL_MIN_ELEMENTS;
mod reduce;
mod shape;
mod unary;

pub use arith::{add, div, mul, neg, scale, sub};
pub use batch::{batch_norm, minibatch_discrimination};
pub use flow::{detach, straight_through};
pub use linalg::{affine, matmul};
pub use loss::{
    bce_with_logits, discretized_logistic_nll, gaussian_kl, gaussian_kl_between, gaussian_nll, mse,
    reparameterize,
};
pub use reduce::{log_softmax, logsumexp, mean, mean_cols, mean_rows, sum, sum_cols, sum_rows};
pub use shape::{concat_cols, gather_rows, reshape, slice_cols};
pub use unary::{clamp_min, exp, leaky_relu, log, relu, sigmoid, softplus, sqrt, square, tanh};

pub(crate) use arith::sum_to;
