//! [`Activation`]: the elementwise nonlinearities a layer can apply, parseable from a string.

use std::fmt;
use std::str::FromStr;

use autodiff::Var;

/// An elementwise nonlinearity. Parses from (and displays as) `identity`, `relu`,
/// `leaky_relu` (slope 0.01) or `leaky_relu:<slope>`, `tanh`, `sigmoid`, `softplus`
/// (case-insensitive, `-` accepted for `_`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Activation {
    /// `y = x`.
    #[default]
    Identity,
    /// `y = max(x, 0)`.
    Relu,
    /// `y = x` for `x > 0`, `slope·x` otherwise.
    LeakyRelu(f32),
    /// `y = tanh(x)`.
    Tanh,
    /// `y = 1 / (1 + e^{−x})`.
    Sigmoid,
    /// `y = ln(1 + eˣ)`.
    Softplus,
}

/// PyTorch's default negative slope of `nn.LeakyReLU`.
const DEFAULT_LEAKY_SLOPE: f32 = 0.01;

impl Activation {
    /// Applies the nonlinearity on the tape.
    pub fn apply(self, x: Var<'_>) -> Var<'_> {
        match self {
            Activation::Identity => x,
            Activation::Relu => x.relu(),
            Activation::LeakyRelu(slope) => x.leaky_relu(slope),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Softplus => x.softplus(),
        }
    }
}

/// A string that names no [`Activation`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown activation `{0}`: expected identity, relu, leaky_relu, leaky_relu:<slope>, tanh, \
     sigmoid or softplus"
)]
pub struct ParseActivationError(pub String);

impl FromStr for Activation {
    type Err = ParseActivationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let normalized = s.trim().to_ascii_lowercase().replace('-', "_");
        let error = || ParseActivationError(s.to_string());
        Ok(match normalized.as_str() {
            "identity" => Activation::Identity,
            "relu" => Activation::Relu,
            "leaky_relu" => Activation::LeakyRelu(DEFAULT_LEAKY_SLOPE),
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            "softplus" => Activation::Softplus,
            other => {
                let slope = other.strip_prefix("leaky_relu:").ok_or_else(error)?;
                let slope: f32 = slope.parse().map_err(|_| error())?;
                if !slope.is_finite() {
                    return Err(error());
                }
                Activation::LeakyRelu(slope)
            }
        })
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::Identity => f.write_str("identity"),
            Activation::Relu => f.write_str("relu"),
            Activation::LeakyRelu(slope) => write!(f, "leaky_relu:{slope}"),
            Activation::Tanh => f.write_str("tanh"),
            Activation::Sigmoid => f.write_str("sigmoid"),
            Activation::Softplus => f.write_str("softplus"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff::Tape;
    use ndarray::array;

    #[test]
    fn parses_every_name_and_round_trips_through_display() {
        let cases = [
            ("identity", Activation::Identity),
            ("ReLU", Activation::Relu),
            ("leaky-relu", Activation::LeakyRelu(0.01)),
            ("leaky_relu:0.2", Activation::LeakyRelu(0.2)),
            ("tanh", Activation::Tanh),
            (" Sigmoid ", Activation::Sigmoid),
            ("softplus", Activation::Softplus),
        ];
        for (text, expected) in cases {
            let parsed: Activation = text.parse().unwrap();
            assert_eq!(parsed, expected, "{text}");
            assert_eq!(parsed.to_string().parse::<Activation>().unwrap(), expected);
        }
    }

    #[test]
    fn rejects_unknown_names_and_bad_slopes() {
        for text in ["gelu", "leaky_relu:", "leaky_relu:x", "leaky_relu:inf", ""] {
            let err = text.parse::<Activation>().unwrap_err();
            assert!(err.to_string().contains("unknown activation"), "{err}");
        }
    }

    #[test]
    fn apply_computes_each_function() {
        let tape = Tape::new();
        let x = tape.constant(array![[-2.0f32, 0.5]]);
        let at = |a: Activation| a.apply(x).value().as_ref().clone();
        assert_eq!(at(Activation::Identity), array![[-2.0f32, 0.5]]);
        assert_eq!(at(Activation::Relu), array![[0.0f32, 0.5]]);
        // slope·x = 0.1·(−2) = −0.2
        assert_eq!(at(Activation::LeakyRelu(0.1)), array![[-0.2f32, 0.5]]);
        assert_eq!(
            at(Activation::Tanh),
            array![[(-2.0f32).tanh(), 0.5f32.tanh()]]
        );
        // σ(−2) = 1/(1 + e²) = 0.11920292, σ(0.5) = 0.62245933
        let s = at(Activation::Sigmoid);
        assert!((s[[0, 0]] - 0.119_202_92).abs() < 1e-6 && (s[[0, 1]] - 0.622_459_3).abs() < 1e-6);
        // ln(1 + e^{−2}) = 0.12692801, ln(1 + e^{0.5}) = 0.97407698
        let s = at(Activation::Softplus);
        assert!((s[[0, 0]] - 0.126_928).abs() < 1e-6 && (s[[0, 1]] - 0.974_077).abs() < 1e-6);
    }
}
