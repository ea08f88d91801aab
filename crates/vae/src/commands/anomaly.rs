//! `vae-train anomaly`: the two protocols users try, end to end.
//!
//! - **One class against the rest** (Ruff et al. 2018): a model per class, trained on that
//!   class's training images; the whole test set scored, the class normal and the others
//!   anomalous.
//! - **Out of distribution** (Nalisnick et al. 2019): a model trained on one dataset; its test
//!   set is in distribution and the other dataset's test set is not; both directions.
//!
//! Every score of [`score_split`] is measured by AUROC and AUPRC (anomalies the positives), and
//! in the out-of-distribution protocol also Serrà et al.'s (2020) input complexity
//! `S(x) = −log₂ p(x) − L(x)`. Written: `anomaly.csv`, `roc.png`, `scores.png`, and each model's
//! run directory (reused when the protocol runs again).

use std::fmt::Write as _;
use std::path::Path;

use super::score::{ScoreTable, SplitName, load_scored, score_split};
use crate::chart::anomaly::{HistogramPanel, RocPanel, save_histograms, save_roc};
use crate::data::{Classes, Dataset, NUM_CLASSES};
use crate::eval::roc::{auprc, auroc, roc_curve};
use crate::model::{RunConfig, RunError, ScoreSettings, Scores};
use crate::random::Keys;
use crate::run::{Observer, load, train_once, write_atomic};

/// `anomaly.csv`: one row per (experiment, score).
pub const ANOMALY_CSV: &str = "anomaly.csv";
/// ROC curves, a panel per score.
pub const ROC_PNG: &str = "roc.png";
/// Histograms of the main score (and the likelihood ratio, when there is one), normal against
/// anomalous, a panel per experiment and score.
pub const SCORES_PNG: &str = "scores.png";

/// Which protocol `vae-train anomaly` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// A model per class, the class normal and the others anomalous.
    OneClass,
    /// A model per dataset, the other dataset out of distribution.
    Ood,
}

impl std::str::FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "one-class" => Ok(Protocol::OneClass),
            "ood" => Ok(Protocol::Ood),
            _ => Err(format!(
                "unknown protocol `{s}` (expected one-class or ood)"
            )),
        }
    }
}

/// How well one score told one experiment's anomalies from its normal images.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyRow {
    /// The normal images, e.g. `MNIST 3`.
    pub normal: String,
    /// The anomalous ones, e.g. `MNIST other classes`.
    pub anomalous: String,
    /// The score's column, e.g. `neg_log_px`.
    pub score: String,
    /// Area under the ROC curve.
    pub auroc: f64,
    /// Area under the precision-recall curve (average precision).
    pub auprc: f64,
}

/// One experiment's images with their scores and which are anomalous.
struct Experiment {
    normal: String,
    anomalous: String,
    scores: Vec<Scores>,
    positive: Vec<bool>,
}

impl Experiment {
    fn rows(&self) -> Vec<AnomalyRow> {
        (self.scores.iter())
            .map(|s| AnomalyRow {
                normal: self.normal.clone(),
                anomalous: self.anomalous.clone(),
                score: s.column.to_string(),
                auroc: auroc(&s.values, &self.positive).unwrap_or(f64::NAN),
                auprc: auprc(&s.values, &self.positive).unwrap_or(f64::NAN),
            })
            .collect()
    }

    /// The scores the histograms show: the likelihood when there is one, else the first; and
    /// the likelihood ratio when there is one.
    fn histogram_scores(&self) -> Vec<&Scores> {
        let main = (self.scores.iter())
            .find(|s| LIKELIHOODS.contains(&s.column))
            .unwrap_or(&self.scores[0]);
        let ratio = self.scores.iter().find(|s| s.column == "likelihood_ratio");
        std::iter::once(main).chain(ratio).collect()
    }
}

/// Runs `protocol` with models of `base` (its model, network, epochs, seed, data folder; its
/// `classes` and `iw_samples` are the protocol's), scoring with `settings`, into `out`. The
/// out-of-distribution protocol of a model with `--background` (vae, vqvae, pixel-ar) also trains
/// a background model per dataset, with training pixels replaced by noise at the rate
/// `background.0` and the L2 penalty `background.1`, and whatever else its
/// [`ModelEntry::background`](crate::model::ModelEntry::background) changes, for Ren et al.'s
/// likelihood ratio (skipped at rate 0).
pub fn run(
    protocol: Protocol,
    (base, background): (&RunConfig, (f32, f32)),
    settings: &ScoreSettings,
    out: &Path,
    observer: &mut dyn Observer,
) -> Result<Vec<AnomalyRow>, RunError> {
    let experiments = match protocol {
        Protocol::OneClass => one_class(base, settings, out, observer)?,
        Protocol::Ood => ood((base, background), settings, out, observer)?,
    };
    let rows: Vec<AnomalyRow> = experiments.iter().flat_map(Experiment::rows).collect();
    write_csv(&out.join(ANOMALY_CSV), &rows)?;
    let columns: Vec<&str> = experiments[0].scores.iter().map(|s| s.column).collect();
    let panels: Vec<RocPanel> = (columns.iter())
        .map(|&column| RocPanel {
            title: column.to_string(),
            curves: (experiments.iter())
                .map(|e| {
                    let s = e
                        .scores
                        .iter()
                        .find(|s| s.column == column)
                        .expect("a column");
                    let area = auroc(&s.values, &e.positive).unwrap_or(f64::NAN);
                    (
                        format!("{} ({area:.3})", e.normal),
                        roc_curve(&s.values, &e.positive),
                    )
                })
                .collect(),
        })
        .collect();
    save_roc(&out.join(ROC_PNG), &panels)?;
    let histograms: Vec<HistogramPanel> = (experiments.iter())
        .flat_map(|e| e.histogram_scores().into_iter().map(move |s| (e, s)))
        .map(|(e, s)| {
            let (normal, anomalous) = (s.values.iter().zip(&e.positive)).fold(
                (vec![], vec![]),
                |(mut n, mut a), (&v, &p)| {
                    if p {
                        a.push(v)
                    } else {
                        n.push(v)
                    }
                    (n, a)
                },
            );
            HistogramPanel {
                title: format!("{} normal, {} anomalous", e.normal, e.anomalous),
                score: s.column.to_string(),
                normal,
                anomalous,
            }
        })
        .collect();
    save_histograms(&out.join(SCORES_PNG), &histograms)?;
    Ok(rows)
}

/// The model of `config` trained (or found complete) in `dir`, scoring the test split of
/// `dataset`.
fn scored(
    config: RunConfig,
    dir: &Path,
    what: &str,
    (dataset, settings): (Dataset, &ScoreSettings),
    observer: &mut dyn Observer,
) -> Result<ScoreTable, RunError> {
    let data_dir = config.data.dir.clone();
    let test_limit = config.data.test_limit;
    let seed = config.seed;
    let checkpoint = train_once(dir, config, observer, what)?;
    let mut defaults = RunConfig::default();
    defaults.data.dir = data_dir.clone();
    let run = load(&checkpoint, defaults)?;
    let own = run.config.data.dataset;
    let scored_dir = if dataset == own { data_dir } else { None };
    let (split, file) = load_scored(dataset, scored_dir.as_deref(), SplitName::Test, test_limit)?;
    observer.note(&format!("scoring {} {dataset} test images", split.len()));
    score_split(
        &run,
        &checkpoint,
        (&split, &file),
        settings,
        Keys::evaluation(seed),
    )
}

fn one_class(
    base: &RunConfig,
    settings: &ScoreSettings,
    out: &Path,
    observer: &mut dyn Observer,
) -> Result<Vec<Experiment>, RunError> {
    let dataset = base.data.dataset;
    let mut experiments = Vec::new();
    for class in 0..NUM_CLASSES as u8 {
        let mut config = base.clone();
        config.data.classes = Classes::only(&[class]).expect("a class");
        config.iw_samples = 0;
        let dir = out.join(format!("class-{class}"));
        let what = format!("the model of {dataset} class {class}");
        let table = scored(config, &dir, &what, (dataset, settings), observer)?;
        experiments.push(Experiment {
            normal: format!("{dataset} {class}"),
            anomalous: format!("{dataset} other classes"),
            positive: table.labels.iter().map(|&l| l != class).collect(),
            scores: table.scores,
        });
    }
    Ok(experiments)
}

fn ood(
    (base, (background, weight_decay)): (&RunConfig, (f32, f32)),
    settings: &ScoreSettings,
    out: &Path,
    observer: &mut dyn Observer,
) -> Result<Vec<Experiment>, RunError> {
    let first = base.data.dataset;
    let other = match first {
        Dataset::Mnist => Dataset::FashionMnist,
        Dataset::FashionMnist => Dataset::Mnist,
    };
    let mut experiments = Vec::new();
    for (inside, outside) in [(first, other), (other, first)] {
        let mut config = base.clone();
        config.data.dataset = inside;
        config.data.classes = Classes::All;
        config.iw_samples = 0;
        // --data-dir names the first dataset's folder; the other is found where it usually is.
        config.data.dir = base.data.dir.clone().filter(|_| inside == first);
        let dir = out.join(format!("trained-on-{}", inside.name()));
        let what = format!("the model of {inside}");
        let a = scored(config.clone(), &dir, &what, (inside, settings), observer)?;
        let b = scored(config.clone(), &dir, &what, (outside, settings), observer)?;
        let mut scores = joined(&a, &b);
        let trains_background = config.model.has("background");
        let likelihood_ratio = trains_background && background > 0.0;
        if let (true, Some(nll)) = (likelihood_ratio, likelihood(&scores)) {
            let mut config = config;
            (config.model.set("background", &background.to_string())).map_err(RunError::Config)?;
            config.optimizer.weight_decay = weight_decay;
            (config.kind().entry().background)(&mut config);
            let dir = out.join(format!("background-on-{}", inside.name()));
            let what = format!("the background model of {inside}");
            let a = scored(config.clone(), &dir, &what, (inside, settings), observer)?;
            let b = scored(config, &dir, &what, (outside, settings), observer)?;
            let background_nll = likelihood(&joined(&a, &b)).expect("the same model's");
            // −LLR = −log p(x) + log p₀(x): high where the model explains x no better than
            // the background model does.
            let values = (nll.iter().zip(&background_nll))
                .map(|(n, n0)| n - n0)
                .collect();
            scores.push(Scores {
                column: "likelihood_ratio",
                values,
            });
        }
        if let (Some(nll), Some(bits)) = (likelihood(&scores), column(&scores, "png_bits")) {
            // −log₂ p(x) − L(x): the likelihood in bits less the image's PNG size in bits.
            let complexity = (nll.iter().zip(bits))
                .map(|(n, l)| n / std::f64::consts::LN_2 - l)
                .collect();
            scores.push(Scores {
                column: "input_complexity",
                values: complexity,
            });
        }
        let positive = (0..a.labels.len() + b.labels.len())
            .map(|i| i >= a.labels.len())
            .collect();
        experiments.push(Experiment {
            normal: inside.to_string(),
            anomalous: outside.to_string(),
            scores,
            positive,
        });
    }
    Ok(experiments)
}

/// The scores of `a`'s images followed by `b`'s, column by column.
fn joined(a: &ScoreTable, b: &ScoreTable) -> Vec<Scores> {
    (a.scores.iter().zip(&b.scores))
        .map(|(x, y)| Scores {
            column: x.column,
            values: x.values.iter().chain(&y.values).copied().collect(),
        })
        .collect()
}

/// The values of the column `name`, if there is one.
/// The score columns that are a model's `−log p(x)` in nats, or its bound on it, in the order
/// they are preferred: the VAE's importance-weighted estimate, the VQ-VAE's rate + distortion.
const LIKELIHOODS: [&str; 2] = ["neg_log_px", "rate_distortion"];

/// The first of [`LIKELIHOODS`] among `scores`.
fn likelihood(scores: &[Scores]) -> Option<Vec<f64>> {
    LIKELIHOODS.iter().find_map(|name| column(scores, name))
}

fn column(scores: &[Scores], name: &str) -> Option<Vec<f64>> {
    (scores.iter())
        .find(|s| s.column == name)
        .map(|s| s.values.clone())
}

/// Writes the rows as CSV to `path`, atomically.
pub fn write_csv(path: &Path, rows: &[AnomalyRow]) -> Result<(), RunError> {
    let mut s = String::from("normal,anomalous,score,auroc,auprc\n");
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{:.6},{:.6}",
            r.normal, r.anomalous, r.score, r.auroc, r.auprc
        );
    }
    write_atomic(path, &s)
}

/// The rows as a table for the terminal: a line per experiment, a column of AUROCs per score,
/// and for several experiments their mean.
pub fn table(rows: &[AnomalyRow]) -> String {
    let mut scores: Vec<&str> = Vec::new();
    let mut experiments: Vec<&str> = Vec::new();
    for r in rows {
        if !scores.contains(&r.score.as_str()) {
            scores.push(&r.score);
        }
        if !experiments.contains(&r.normal.as_str()) {
            experiments.push(&r.normal);
        }
    }
    let mut s = format!("{:<24}", "AUROC, normal");
    for score in &scores {
        let _ = write!(s, " {score:>16}");
    }
    s.push('\n');
    let cell = |normal: &str, score: &str| {
        (rows.iter())
            .find(|r| r.normal == normal && r.score == score)
            .map_or(f64::NAN, |r| r.auroc)
    };
    for normal in &experiments {
        let _ = write!(s, "{normal:<24}");
        for score in &scores {
            let _ = write!(s, " {:>16.4}", cell(normal, score));
        }
        s.push('\n');
    }
    if experiments.len() > 2 {
        let _ = write!(s, "{:<24}", "mean");
        for score in &scores {
            let mean =
                experiments.iter().map(|n| cell(n, score)).sum::<f64>() / experiments.len() as f64;
            let _ = write!(s, " {mean:>16.4}");
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_parse_and_the_table_means_the_experiments() {
        assert_eq!("one-class".parse(), Ok(Protocol::OneClass));
        assert_eq!("ood".parse(), Ok(Protocol::Ood));
        assert!("two-class".parse::<Protocol>().is_err());
        let row = |normal: &str, auroc: f64| AnomalyRow {
            normal: normal.into(),
            anomalous: "rest".into(),
            score: "neg_log_px".into(),
            auroc,
            auprc: 0.5,
        };
        let rows = [row("a", 0.9), row("b", 0.8), row("c", 0.7)];
        let t = table(&rows);
        assert!(t.contains("neg_log_px"), "{t}");
        let mean = t.lines().last().unwrap();
        assert!(mean.starts_with("mean") && mean.contains("0.8000"), "{t}");
    }
}
