//! [`BatchNorm1d`]: batch normalization of a layer's features, with learned scale and shift and
//! running statistics for evaluation, as `torch.nn.BatchNorm1d`.

use autodiff::{Matrix, Var, batch_moments, batch_norm};

use crate::{Bound, ParamId, ParamStore};

/// Hyperparameters of a [`BatchNorm1d`]; [`Default`] is PyTorch's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNormConfig {
    /// `ε` added to the variance (1e-5).
    pub eps: f32,
    /// Weight of each batch in the running averages: `r ← (1 − m)·r + m·batch` (0.1).
    pub momentum: f32,
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        BatchNormConfig {
            eps: 1e-5,
            momentum: 0.1,
        }
    }
}

/// The statistics a [`BatchNorm1d`] normalizes with: the mode is an argument, never global
/// state.
#[derive(Debug)]
pub enum Stats<'a> {
    /// Training: the batch's own mean and variance, and the running averages in this store
    /// move towards them.
    Batch(&'a mut ParamStore),
    /// Evaluation: the running averages in this store; the output of a row does not depend on
    /// the rest of the batch.
    Running(&'a ParamStore),
}

impl Stats<'_> {
    /// The same statistics for one more layer (the store lent again, not moved).
    pub fn reborrow(&mut self) -> Stats<'_> {
        match self {
            Stats::Batch(buffers) => Stats::Batch(buffers),
            Stats::Running(buffers) => Stats::Running(buffers),
        }
    }
}

/// Batch normalization over the features (columns) of a `batch × features` input:
/// `y = γ·(x − μ)/√(σ² + ε) + β`, with `γ` (`<prefix>.gamma`, ones) and `β` (`<prefix>.beta`,
/// zeros) learned parameters, and `μ`, `σ²` the batch's (the fused [`autodiff::batch_norm`]) in
/// training or the running averages in evaluation.
///
/// The running averages are buffers, not parameters: `<prefix>.running_mean` (zeros) and
/// `<prefix>.running_var` (ones) in a store of their own, which a checkpoint saves beside the
/// parameters. As in PyTorch, the running variance averages the batch's unbiased variance
/// (`σ²·B/(B − 1)`; a batch of one row moves it by its biased variance, 0).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm1d {
    name: String,
    /// The scale `γ`, `[1, features]`.
    pub gamma: ParamId,
    /// The shift `β`, `[1, features]`.
    pub beta: ParamId,
    /// The running mean, `[1, features]`, in the buffers store.
    pub running_mean: ParamId,
    /// The running variance, `[1, features]`, in the buffers store.
    pub running_var: ParamId,
    config: BatchNormConfig,
}

impl BatchNorm1d {
    /// A layer of `features` features: `γ` and `β` in `params`, the running averages in
    /// `buffers`.
    ///
    /// Panics if `features` is 0, `ε` is not positive, the momentum is outside `[0, 1]` or a
    /// name is taken.
    #[track_caller]
    pub fn new(
        params: &mut ParamStore,
        buffers: &mut ParamStore,
        prefix: &str,
        features: usize,
        config: BatchNormConfig,
    ) -> Self {
        assert!(
            features > 0 && config.eps > 0.0 && (0.0..=1.0).contains(&config.momentum),
            "BatchNorm1d `{prefix}`: {features} features, {config:?}"
        );
        BatchNorm1d {
            name: prefix.to_string(),
            gamma: params.add(format!("{prefix}.gamma"), Matrix::ones((1, features))),
            beta: params.add(format!("{prefix}.beta"), Matrix::zeros((1, features))),
            running_mean: buffers.add(
                format!("{prefix}.running_mean"),
                Matrix::zeros((1, features)),
            ),
            running_var: buffers.add(format!("{prefix}.running_var"), Matrix::ones((1, features))),
            config,
        }
    }

    /// The hyperparameters.
    pub fn config(&self) -> BatchNormConfig {
        self.config
    }

    /// The normalized batch `x` (`[batch, features]`), with the batch's statistics (moving the
    /// running averages) or the running ones, as `stats` says.
    #[track_caller]
    pub fn forward<'t>(&self, p: &Bound<'t>, x: Var<'t>, stats: Stats<'_>) -> Var<'t> {
        let (gamma, beta) = (p.var(self.gamma), p.var(self.beta));
        assert!(
            x.shape().1 == gamma.shape().1,
            "BatchNorm1d `{}`: input of shape {:?} for {} features",
            self.name,
            x.shape(),
            gamma.shape().1
        );
        let BatchNormConfig { eps, momentum } = self.config;
        match stats {
            Stats::Batch(buffers) => {
                let y = batch_norm(x, gamma, beta, eps);
                let rows = x.shape().0;
                let (mean, var) = batch_moments(&x.value());
                let unbiased = if rows > 1 {
                    rows as f32 / (rows - 1) as f32
                } else {
                    1.0
                };
                let mut running_mean = buffers.value_mut(self.running_mean);
                running_mean.zip_mut_with(&mean, |r, &m| *r += momentum * (m - *r));
                let mut running_var = buffers.value_mut(self.running_var);
                running_var.zip_mut_with(&var, |r, &v| *r += momentum * (v * unbiased - *r));
                y
            }
            Stats::Running(buffers) => {
                // y = x·s + (β − μ·s) with s = γ/√(σ² + ε): one scale and one shift per column.
                let inv_std = buffers
                    .value(self.running_var)
                    .mapv(|v| 1.0 / (v + eps).sqrt());
                let scale = gamma * p.constant(inv_std);
                let shift = beta - p.constant(buffers.value(self.running_mean).clone()) * scale;
                x * scale + shift
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autodiff::Tape;
    use ndarray::array;

    fn layer() -> (ParamStore, ParamStore, BatchNorm1d) {
        let (mut params, mut buffers) = (ParamStore::new(), ParamStore::new());
        let bn = BatchNorm1d::new(
            &mut params,
            &mut buffers,
            "bn",
            2,
            BatchNormConfig::default(),
        );
        (params, buffers, bn)
    }

    #[test]
    fn evaluation_uses_the_running_averages_by_hand() {
        let (mut params, mut buffers, bn) = layer();
        params.value_mut(bn.gamma).assign(&array![[2.0f32, 0.5]]);
        params.value_mut(bn.beta).assign(&array![[1.0f32, -1.0]]);
        buffers
            .value_mut(bn.running_mean)
            .assign(&array![[3.0f32, -2.0]]);
        buffers
            .value_mut(bn.running_var)
            .assign(&array![[4.0f32, 0.25]]);
        let tape = Tape::new();
        let p = params.bind_frozen(&tape);
        let x = p.constant(array![[5.0f32, -2.0], [3.0, 0.0]]);
        let y = bn.forward(&p, x, Stats::Running(&buffers)).value();
        // Column 0: 2·(5 − 3)/√(4 + 1e-5) + 1 = 2.9999975, 2·0 + 1 = 1.
        // Column 1: 0.5·(−2 + 2)/√0.25001 − 1 = −1, 0.5·2/√0.25001 − 1 = 0.99996.
        let expected = array![
            [2.0 * 2.0 / 4.00001f32.sqrt() + 1.0, -1.0],
            [1.0, 0.5 * 2.0 / 0.25001f32.sqrt() - 1.0]
        ];
        for (a, b) in y.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-6, "{y} vs {expected}");
        }
        // Evaluation moves nothing.
        assert_eq!(buffers.value(bn.running_mean), &array![[3.0f32, -2.0]]);
    }

    #[test]
    fn training_normalizes_by_the_batch_and_moves_the_running_averages() {
        let (params, mut buffers, bn) = layer();
        let tape = Tape::new();
        let p = params.bind(&tape);
        let x = p.constant(array![[1.0f32, 10.0], [3.0, 10.0], [5.0, 16.0]]);
        let y = bn.forward(&p, x, Stats::Batch(&mut buffers)).value();
        // Column 0: μ 3, σ² 8/3: the middle row is 0 and the others ∓√(3/2)·(1 − ~1e-6).
        assert!(y[[1, 0]].abs() < 1e-6 && (y[[2, 0]] - 1.5f32.sqrt()).abs() < 1e-5);
        // Running: mean 0.9·0 + 0.1·[3, 12] and var 0.9·1 + 0.1·[8/3·3/2, 24·3/2]
        // (column 1: σ² = (4 + 4 + 16)/3 = 8, unbiased 12).
        let mean = buffers.value(bn.running_mean);
        let var = buffers.value(bn.running_var);
        for (a, b) in mean.iter().zip([0.3f32, 1.2]) {
            assert!((a - b).abs() < 1e-6, "{mean}");
        }
        for (a, b) in var.iter().zip([0.9 + 0.4f32, 0.9 + 1.2]) {
            assert!((a - b).abs() < 1e-6, "{var}");
        }
    }
}
