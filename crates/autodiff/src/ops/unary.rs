//! Elementwise functions of one input: exp, log, sqrt, square, a floor and the activations.

use std::rc::Rc;

use ndarray::Zip;

use crate::math::softplus_and_logistic;
use crate::{Matrix, Var};

/// `g ⊙ f'(x)`, computed in one pass without a temporary for `f'(x)`.
fn chain(g: &Matrix, saved: &Matrix, dfdx: impl Fn(f32) -> f32 + Sync) -> Matrix {
    Zip::from(g).and(saved).map_collect(|&g, &s| g * dfdx(s))
}

/// `y = eˣ`; `∂y/∂x = eˣ = y`.
#[track_caller]
pub fn exp(x: Var<'_>) -> Var<'_> {
    let y = Rc::new(x.value().mapv(f32::exp));
    let saved = Rc::clone(&y);
    x.tape().push("exp", y, &[x], move |g| vec![g * &*saved])
}

/// `y = ln x`; `∂y/∂x = 1/x`.
#[track_caller]
pub fn log(x: Var<'_>) -> Var<'_> {
    let v = x.value();
    let y = v.mapv(f32::ln);
    x.tape().push("log", y, &[x], move |g| vec![g / &*v])
}

/// `y = √x`; `∂y/∂x = 1/(2√x) = 1/(2y)`.
#[track_caller]
pub fn sqrt(x: Var<'_>) -> Var<'_> {
    let y = Rc::new(x.value().mapv(f32::sqrt));
    let saved = Rc::clone(&y);
    x.tape().push("sqrt", y, &[x], move |g| {
        vec![chain(g, &saved, |y| 0.5 / y)]
    })
}

/// `y = x²`; `∂y/∂x = 2x`.
#[track_caller]
pub fn square(x: Var<'_>) -> Var<'_> {
    let v = x.value();
    let y = v.mapv(|x| x * x);
    x.tape()
        .push("square", y, &[x], move |g| vec![chain(g, &v, |x| 2.0 * x)])
}

/// `y = max(x, 0)`; `∂y/∂x = 1 if x > 0 else 0`.
#[track_caller]
pub fn relu(x: Var<'_>) -> Var<'_> {
    let y = Rc::new(x.value().mapv(|x| x.max(0.0)));
    let saved = Rc::clone(&y);
    x.tape().push("relu", y, &[x], move |g| {
        vec![chain(g, &saved, |y| if y > 0.0 { 1.0 } else { 0.0 })]
    })
}

/// `y = x if x > 0 else slope·x`; `∂y/∂x = 1 if x > 0 else slope`.
#[track_caller]
pub fn leaky_relu(x: Var<'_>, slope: f32) -> Var<'_> {
    let v = x.value();
    let y = v.mapv(|x| if x > 0.0 { x } else { slope * x });
    x.tape().push("leaky_relu", y, &[x], move |g| {
        vec![chain(g, &v, |x| if x > 0.0 { 1.0 } else { slope })]
    })
}

/// `y = max(x, lo)`, a floor; `∂y/∂x = 1 if x > lo else 0` (PixelCNN++'s floor on a
/// log-scale, which keeps a likelihood's scale from collapsing onto a single level).
#[track_caller]
pub fn clamp_min(x: Var<'_>, lo: f32) -> Var<'_> {
    let v = x.value();
    let y = v.mapv(|x| x.max(lo));
    x.tape().push("clamp_min", y, &[x], move |g| {
        vec![chain(g, &v, |x| if x > lo { 1.0 } else { 0.0 })]
    })
}

fn logistic(x: f32) -> f32 {
    softplus_and_logistic(x).1
}

/// `y = σ(x) = 1/(1 + e^{-x})`; `∂y/∂x = y(1 - y)`.
#[track_caller]
pub fn sigmoid(x: Var<'_>) -> Var<'_> {
    let y = Rc::new(x.value().mapv(logistic));
    let saved = Rc::clone(&y);
    x.tape().push("sigmoid", y, &[x], move |g| {
        vec![chain(g, &saved, |y| y * (1.0 - y))]
    })
}

/// `y = tanh(x)`; `∂y/∂x = 1 - y²`.
#[track_caller]
pub fn tanh(x: Var<'_>) -> Var<'_> {
    let y = Rc::new(x.value().mapv(crate::math::tanh));
    let saved = Rc::clone(&y);
    x.tape().push("tanh", y, &[x], move |g| {
        vec![chain(g, &saved, |y| 1.0 - y * y)]
    })
}

/// `y = ln(1 + eˣ)` (computed stably); `∂y/∂x = σ(x)`.
#[track_caller]
pub fn softplus(x: Var<'_>) -> Var<'_> {
    let v = x.value();
    let y = v.mapv(|x| softplus_and_logistic(x).0);
    x.tape()
        .push("softplus", y, &[x], move |g| vec![chain(g, &v, logistic)])
}

impl<'t> Var<'t> {
    /// [`exp`]
    #[track_caller]
    pub fn exp(self) -> Var<'t> {
        exp(self)
    }
    /// [`log`]
    #[track_caller]
    pub fn log(self) -> Var<'t> {
        log(self)
    }
    /// [`sqrt`]
    #[track_caller]
    pub fn sqrt(self) -> Var<'t> {
        sqrt(self)
    }
    /// [`square`]
    #[track_caller]
    pub fn square(self) -> Var<'t> {
        square(self)
    }
    /// [`relu`]
    #[track_caller]
    pub fn relu(self) -> Var<'t> {
        relu(self)
    }
    /// [`clamp_min`]
    #[track_caller]
    pub fn clamp_min(self, lo: f32) -> Var<'t> {
        clamp_min(self, lo)
    }
    /// [`leaky_relu`]
    #[track_caller]
    pub fn leaky_relu(self, slope: f32) -> Var<'t> {
        leaky_relu(self, slope)
    }
    /// [`sigmoid`]
    #[track_caller]
    pub fn sigmoid(self) -> Var<'t> {
        sigmoid(self)
    }
    /// [`tanh`]
    #[track_caller]
    pub fn tanh(self) -> Var<'t> {
        tanh(self)
    }
    /// [`softplus`]
    #[track_caller]
    pub fn softplus(self) -> Var<'t> {
        softplus(self)
    }
}
