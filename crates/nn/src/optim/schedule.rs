//! Learning-rate schedules: the learning rate of each step as a function of the step number.

/// A learning-rate schedule; `lr(step)` is the rate of step `step` (counted from 0), to pass to
/// [`Optimizer::set_lr`](crate::Optimizer::set_lr) before that step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    /// The same rate throughout.
    Constant {
        /// The rate.
        lr: f32,
    },
    /// `lr·gammaᵏ` with `k = ⌊step / step_size⌋`, as PyTorch's `StepLR`.
    StepDecay {
        /// The initial rate.
        lr: f32,
        /// Steps between decays (at least 1).
        step_size: u64,
        /// Factor of each decay.
        gamma: f32,
    },
    /// A linear warm-up from `lr/warmup` at step 0 to `lr` at step `warmup − 1`, then a cosine
    /// from `lr` at step `warmup` to `min_lr` at step `total`, and `min_lr` after:
    /// `min_lr + ½(lr − min_lr)(1 + cos(π·(step − warmup)/(total − warmup)))`.
    WarmupCosine {
        /// The peak rate.
        lr: f32,
        /// Steps of warm-up (0 for none).
        warmup: u64,
        /// The step at which the rate reaches `min_lr`.
        total: u64,
        /// The final rate.
        min_lr: f32,
    },
}

impl Schedule {
    /// The learning rate of step `step` (from 0).
    ///
    /// Panics on a `StepDecay` with `step_size` 0.
    #[track_caller]
    pub fn lr(&self, step: u64) -> f32 {
        match *self {
            Schedule::Constant { lr } => lr,
            Schedule::StepDecay {
                lr,
                step_size,
                gamma,
            } => {
                assert!(
                    step_size > 0,
                    "Schedule::StepDecay: step_size must be at least 1"
                );
                let k = (step / step_size).min(i32::MAX as u64) as i32;
                (f64::from(lr) * f64::from(gamma).powi(k)) as f32
            }
            Schedule::WarmupCosine {
                lr,
                warmup,
                total,
                min_lr,
            } => {
                if step < warmup {
                    (f64::from(lr) * (step + 1) as f64 / warmup as f64) as f32
                } else if step >= total {
                    min_lr
                } else {
                    let progress = (step - warmup) as f64 / (total - warmup) as f64;
                    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                    (f64::from(min_lr) + (f64::from(lr) - f64::from(min_lr)) * cosine) as f32
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_is_constant() {
        let s = Schedule::Constant { lr: 0.1 };
        assert_eq!([s.lr(0), s.lr(1_000_000)], [0.1, 0.1]);
    }

    #[test]
    fn step_decay_multiplies_by_gamma_every_step_size_steps() {
        let s = Schedule::StepDecay {
            lr: 1.0,
            step_size: 10,
            gamma: 0.5,
        };
        // ⌊step/10⌋ = 0, 0, 1, 1, 3: 1, 1, 0.5, 0.5, 0.125
        let got = [0, 9, 10, 19, 35].map(|t| s.lr(t));
        assert_eq!(got, [1.0, 1.0, 0.5, 0.5, 0.125]);
    }

    #[test]
    fn warmup_cosine_rises_linearly_then_follows_a_half_cosine() {
        let s = Schedule::WarmupCosine {
            lr: 1.0,
            warmup: 4,
            total: 12,
            min_lr: 0.1,
        };
        // Warm-up (step + 1)/4: 0.25, 0.5, 0.75, 1 at steps 0..=3.
        // Cosine over 8 steps from step 4: 0.1 + 0.9·½(1 + cos(π·k/8)) for k = step − 4:
        // k = 0: 1; k = 2: 0.1 + 0.45·(1 + cos(π/4)) = 0.1 + 0.45·1.70710678 = 0.86819805;
        // k = 4: 0.1 + 0.45 = 0.55; k = 6: 0.1 + 0.45·(1 − 0.70710678) = 0.23180195;
        // k = 8 (step = total) and after: 0.1.
        let got = [0, 1, 2, 3, 4, 6, 8, 10, 12, 100].map(|t| s.lr(t));
        let expected = [
            0.25,
            0.5,
            0.75,
            1.0,
            1.0,
            0.868_198_05,
            0.55,
            0.231_801_95,
            0.1,
            0.1,
        ];
        for (t, (g, e)) in got.iter().zip(expected).enumerate() {
            assert!((g - e).abs() < 1e-6, "#{t}: {g} vs {e}");
        }
    }
}
