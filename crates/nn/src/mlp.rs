//! [`Mlp`]: a stack of [`Linear`] layers with an activation between them.

use autodiff::Var;
use rand_chacha::ChaCha8Rng;

use crate::{Activation, Bound, Init, Linear, ParamStore};

/// The shape of an [`Mlp`].
#[derive(Debug, Clone, PartialEq)]
pub struct MlpConfig {
    /// Layer widths from input to output: `[784, 400, 20]` is two layers.
    pub widths: Vec<usize>,
    /// Applied after every hidden layer.
    pub activation: Activation,
    /// Applied after the last layer ([`Activation::Identity`] by default: a linear output).
    pub output: Activation,
    /// Initialiser of the weights (biases start at zero).
    pub init: Init,
}

impl MlpConfig {
    /// `widths` with `activation` between layers, a linear output and Xavier-uniform weights.
    pub fn new(widths: &[usize], activation: Activation) -> Self {
        MlpConfig {
            widths: widths.to_vec(),
            activation,
            output: Activation::Identity,
            init: Init::default(),
        }
    }
}

/// A multilayer perceptron; layer `k` (from 1) has parameters `<prefix>.fc<k>.w` and
/// `<prefix>.fc<k>.b`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mlp {
    layers: Vec<Linear>,
    activation: Activation,
    output: Activation,
}

impl Mlp {
    /// Adds the layers' parameters to `store`, drawing the weights from `rng`.
    ///
    /// Panics if there are fewer than two widths, a width is zero, or the names are taken.
    #[track_caller]
    pub fn new(
        store: &mut ParamStore,
        prefix: &str,
        config: &MlpConfig,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let widths = &config.widths;
        assert!(
            widths.len() >= 2,
            "Mlp `{prefix}`: needs at least an input and an output width, got {widths:?}"
        );
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(k, pair)| {
                let name = if prefix.is_empty() {
                    format!("fc{}", k + 1)
                } else {
                    format!("{prefix}.fc{}", k + 1)
                };
                Linear::with_init(store, &name, pair[0], pair[1], config.init, rng)
            })
            .collect();
        Mlp {
            layers,
            activation: config.activation,
            output: config.output,
        }
    }

    /// The network applied to a batch `x` of shape `[batch, widths[0]]`.
    #[track_caller]
    pub fn forward<'t>(&self, p: &Bound<'t>, x: Var<'t>) -> Var<'t> {
        self.forward_from(p, self.layers[0].forward(p, x))
    }

    /// The network from the first layer's pre-activation `pre` (`x·W₁ + b₁`, plus whatever
    /// the caller adds, e.g. a condition's term `c·W_c` or rows gathered from a shared `x·W₁`):
    /// `forward(p, x) == forward_from(p, layers()[0].forward(p, x))`.
    #[track_caller]
    pub fn forward_from<'t>(&self, p: &Bound<'t>, pre: Var<'t>) -> Var<'t> {
        let last = self.layers.len() - 1;
        let first = if last == 0 {
            self.output.apply(pre)
        } else {
            self.activation.apply(pre)
        };
        self.layers[1..]
            .iter()
            .enumerate()
            .fold(first, |h, (k, layer)| {
                let y = layer.forward(p, h);
                if k + 1 == last {
                    self.output.apply(y)
                } else {
                    self.activation.apply(y)
                }
            })
    }

    /// The layers, input first.
    pub fn layers(&self) -> &[Linear] {
        &self.layers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff::{GradcheckConfig, Matrix, Tape, gradcheck};
    use ndarray::array;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    #[test]
    fn names_follow_the_prefix_and_layer_number() {
        let mut store = ParamStore::new();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let config = MlpConfig::new(&[4, 3, 2], Activation::Relu);
        let mlp = Mlp::new(&mut store, "encoder", &config, &mut rng);
        let names: Vec<_> = store
            .iter()
            .map(|(_, name, v)| (name.to_string(), v.dim()))
            .collect();
        let expected = [
            ("encoder.fc1.w", (4, 3)),
            ("encoder.fc1.b", (1, 3)),
            ("encoder.fc2.w", (3, 2)),
            ("encoder.fc2.b", (1, 2)),
        ];
        assert_eq!(names, expected.map(|(n, d)| (n.to_string(), d)));
        assert_eq!(mlp.layers().len(), 2);
        Mlp::new(
            &mut store,
            "",
            &MlpConfig::new(&[2, 1], Activation::Tanh),
            &mut rng,
        );
        assert!(store.id("fc1.w").is_some());
    }

    #[test]
    fn hidden_layers_get_the_activation_and_the_output_is_linear() {
        let mut store = ParamStore::new();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mlp = Mlp::new(
            &mut store,
            "m",
            &MlpConfig::new(&[1, 1, 1], Activation::Relu),
            &mut rng,
        );
        let [l1, l2] = [&mlp.layers()[0], &mlp.layers()[1]];
        store.value_mut(l1.w).fill(1.0);
        store.value_mut(l2.w).fill(-1.0);
        store.value_mut(l2.b).fill(0.5);
        let tape = Tape::new();
        let p = store.bind(&tape);
        let y = mlp.forward(&p, p.constant(array![[-3.0f32], [2.0]]));
        // relu(x·1 + 0)·(−1) + 0.5: x = −3 gives 0 + 0.5 = 0.5; x = 2 gives −2 + 0.5 = −1.5 (not
        // clipped at 0: the output layer is linear).
        assert_eq!(*y.value(), array![[0.5f32], [-1.5]]);
    }

    #[test]
    fn forward_passes_gradcheck_wrt_input_and_parameters() {
        let mut store = ParamStore::new();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let config = MlpConfig {
            output: Activation::Sigmoid,
            ..MlpConfig::new(&[3, 4, 2], Activation::Tanh)
        };
        let mlp = Mlp::new(&mut store, "m", &config, &mut rng);
        // Non-zero biases, so that their gradients are checked away from a special point.
        for layer in mlp.layers() {
            let b = Init::HeNormal.matrix(1, layer.out_dim(), &mut rng);
            store.value_mut(layer.b).assign(&b);
        }
        let x = Matrix::from_shape_simple_fn((5, 3), || StandardNormal.sample(&mut rng));
        let mut inputs = vec![x];
        inputs.extend(store.iter().map(|(_, _, value)| value.clone()));
        let report = gradcheck(
            |v| {
                let p = store.bind_vars(v[0].tape(), &v[1..]);
                mlp.forward(&p, v[0])
            },
            &inputs,
            &GradcheckConfig::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // 5·3 inputs + 3·4 + 4 + 4·2 + 2 parameters = 41 elements.
        assert_eq!(report.elements, 41);
    }

    #[test]
    fn forward_from_adds_to_the_first_pre_activation() {
        let mut store = ParamStore::new();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for widths in [&[3, 2][..], &[3, 4, 2]] {
            let mlp = Mlp::new(
                &mut store,
                &format!("m{}", widths.len()),
                &MlpConfig::new(widths, Activation::Tanh),
                &mut rng,
            );
            let x = Init::HeNormal.matrix(5, 3, &mut rng);
            let extra = Init::HeNormal.matrix(5, widths[1], &mut rng);
            let tape = Tape::new();
            let p = store.bind(&tape);
            let x = p.constant(x);
            let plain = mlp.forward(&p, x);
            let same = mlp.forward_from(&p, mlp.layers()[0].forward(&p, x));
            assert_eq!(*plain.value(), *same.value());
            // A one-layer net's output is linear: the extra term passes through unchanged.
            let shifted = mlp.forward_from(
                &p,
                mlp.layers()[0].forward(&p, x) + p.constant(extra.clone()),
            );
            if widths.len() == 2 {
                let diff = &*shifted.value() - &*plain.value();
                assert!(diff.iter().zip(&extra).all(|(a, b)| (a - b).abs() < 1e-6));
            } else {
                assert_ne!(*shifted.value(), *plain.value());
            }
        }
    }
}
