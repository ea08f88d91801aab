//! Clustering in a representation (raw pixels, an autoencoder's codes, a VAE's posterior means)
//! and how well the clusters match the labels: k-means with k-means++ seeding and restarts,
//! cluster accuracy under the best one-to-one matching of clusters to classes, and normalized
//! mutual information.

use autodiff::Matrix;
use autodiff::gemm::gemm;
use ndarray::Axis;
use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix as Weights;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Lloyd iterations of one k-means start at most (scikit-learn's default); a start usually
/// stops earlier (see [`TOLERANCE`]).
pub const MAX_ITERATIONS: usize = 300;

/// A start stops when no assignment changes, or when the centroids moved less than this times
/// the data's mean per-feature variance in one iteration (the sum of their squared shifts):
/// scikit-learn's criterion and default.
pub const TOLERANCE: f64 = 1e-4;

/// A k-means clustering of the rows of a matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// k rows: the mean of each cluster's points.
    pub centroids: Matrix,
    /// The cluster of each row, in `0..k`.
    pub assignments: Vec<usize>,
    /// The sum over rows of the squared distance to their centroid.
    pub inertia: f64,
}

/// k-means of the rows of `x` into `k` clusters: `restarts` starts, each seeded by k-means++
/// (Arthur & Vassilvitskii 2007) and refined by Lloyd's iterations until no assignment changes
/// or the centroids barely move ([`TOLERANCE`], at most [`MAX_ITERATIONS`]); the start of least
/// inertia is kept. A cluster left empty is
/// re-seeded with the point farthest from its centroid.
///
/// # Panics
/// If `k` is 0 or larger than the number of rows, or `restarts` is 0.
#[track_caller]
pub fn kmeans(x: &Matrix, k: usize, restarts: usize, rng: &mut ChaCha8Rng) -> KMeans {
    assert!(
        k >= 1 && k <= x.nrows(),
        "kmeans: k = {k} clusters of {} points",
        x.nrows()
    );
    assert!(restarts >= 1, "kmeans: needs at least one start");
    let norms = row_norms(x);
    let tolerance = TOLERANCE * mean_variance(x);
    (0..restarts)
        .map(|_| lloyd(x, &norms, plus_plus(x, &norms, k, rng), tolerance))
        .min_by(|a, b| a.inertia.total_cmp(&b.inertia))
        .expect("at least one start")
}

/// Each row's nearest centroid and its squared distance to it. The distances come from one GEMM,
/// `‖x‖² − 2·x·cᵀ + ‖c‖²`, clamped at 0 against rounding.
pub fn assign(x: &Matrix, centroids: &Matrix) -> (Vec<usize>, Vec<f32>) {
    assign_with_norms(x, &row_norms(x), centroids)
}

fn assign_with_norms(x: &Matrix, x_norms: &[f32], centroids: &Matrix) -> (Vec<usize>, Vec<f32>) {
    let mut dots = Matrix::zeros((x.nrows(), centroids.nrows()));
    gemm(1.0, x.view(), centroids.t(), 0.0, dots.view_mut());
    let c_norms = row_norms(centroids);
    dots.rows()
        .into_iter()
        .zip(x_norms)
        .map(|(row, &xn)| {
            let (mut best, mut best_d) = (0, f32::INFINITY);
            for (j, (&dot, &cn)) in row.iter().zip(&c_norms).enumerate() {
                let d = (xn - 2.0 * dot + cn).max(0.0);
                if d < best_d {
                    (best, best_d) = (j, d);
                }
            }
            (best, best_d)
        })
        .unzip()
}

/// The mean over features of their variance over the rows.
fn mean_variance(x: &Matrix) -> f64 {
    super::column_variances(x).iter().sum::<f64>() / x.ncols().max(1) as f64
}

fn row_norms(x: &Matrix) -> Vec<f32> {
    x.rows()
        .into_iter()
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect()
}

/// k-means++ seeding: the first centroid a uniform draw, each next one a draw with probability
/// proportional to the squared distance to the nearest centroid chosen so far.
fn plus_plus(x: &Matrix, norms: &[f32], k: usize, rng: &mut ChaCha8Rng) -> Matrix {
    let n = x.nrows();
    let mut chosen = vec![rng.random_range(0..n)];
    let mut nearest = vec![f64::INFINITY; n];
    while chosen.len() < k {
        let last = x.select(Axis(0), &chosen[chosen.len() - 1..]);
        let (_, d) = assign_with_norms(x, norms, &last);
        for (best, &d) in nearest.iter_mut().zip(&d) {
            *best = best.min(f64::from(d));
        }
        let total: f64 = nearest.iter().sum();
        let next = if total > 0.0 {
            let mut target = rng.random::<f64>() * total;
            nearest
                .iter()
                .position(|&d| {
                    target -= d;
                    target < 0.0 && d > 0.0
                })
                .unwrap_or_else(|| nearest.iter().rposition(|&d| d > 0.0).unwrap_or(0))
        } else {
            // Every point sits on a centroid already: any point will do.
            rng.random_range(0..n)
        };
        chosen.push(next);
    }
    x.select(Axis(0), &chosen)
}

/// Lloyd's iterations from `centroids` until no assignment changes or the centroids' squared
/// shifts sum to at most `tolerance`.
fn lloyd(x: &Matrix, norms: &[f32], mut centroids: Matrix, tolerance: f64) -> KMeans {
    let k = centroids.nrows();
    let mut assignments = Vec::new();
    let mut distances = Vec::new();
    for _ in 0..MAX_ITERATIONS {
        let (next, d) = assign_with_norms(x, norms, &centroids);
        let changed = next != assignments;
        (assignments, distances) = (next, d);
        if !changed {
            break;
        }
        let previous = centroids.clone();
        let mut sums = Matrix::zeros(centroids.dim());
        let mut counts = vec![0usize; k];
        for (row, &c) in x.rows().into_iter().zip(&assignments) {
            sums.row_mut(c).scaled_add(1.0, &row);
            counts[c] += 1;
        }
        for (c, &count) in counts.iter().enumerate() {
            if count > 0 {
                let mean = &sums.row(c) / count as f32;
                centroids.row_mut(c).assign(&mean);
            } else {
                // An empty cluster takes the point farthest from its centroid.
                let far = (0..distances.len())
                    .max_by(|&a, &b| distances[a].total_cmp(&distances[b]))
                    .expect("k ≤ n points");
                centroids.row_mut(c).assign(&x.row(far));
                distances[far] = 0.0;
            }
        }
        let shift: f64 = (centroids.iter().zip(&previous))
            .map(|(&a, &b)| f64::from(a - b).powi(2))
            .sum();
        if shift <= tolerance {
            // The last move was too small to matter; the assignment to the moved centroids
            // is what the clustering reports.
            (assignments, distances) = assign_with_norms(x, norms, &centroids);
            break;
        }
    }
    KMeans {
        centroids,
        inertia: distances.iter().map(|&d| f64::from(d)).sum(),
        assignments,
    }
}

/// The co-occurrence counts of `classes` (rows) and `clusters` (columns), each relabeled
/// densely in order of first appearance, as `counts[class][cluster]`.
fn contingency(classes: &[usize], clusters: &[usize]) -> Vec<Vec<u64>> {
    assert_eq!(
        classes.len(),
        clusters.len(),
        "contingency: {} labels but {} cluster assignments",
        classes.len(),
        clusters.len()
    );
    let (rows, r) = dense(classes);
    let (cols, c) = dense(clusters);
    let mut counts = vec![vec![0u64; c]; r];
    for (&i, &j) in rows.iter().zip(&cols) {
        counts[i][j] += 1;
    }
    counts
}

/// `values` renumbered 0, 1, … in order of first appearance, and how many distinct there are.
fn dense(values: &[usize]) -> (Vec<usize>, usize) {
    let mut seen: Vec<usize> = Vec::new();
    let ids = values
        .iter()
        .map(|v| {
            seen.iter().position(|s| s == v).unwrap_or_else(|| {
                seen.push(*v);
                seen.len() - 1
            })
        })
        .collect();
    (ids, seen.len())
}

/// Cluster accuracy: the fraction of points whose cluster is matched to their class under the
/// one-to-one matching of clusters to classes that maximises it (the Hungarian algorithm;
/// unmatched clusters or classes count as errors). 1 for a relabeling of the classes.
///
/// # Panics
/// If the two slices differ in length.
#[track_caller]
pub fn cluster_accuracy(classes: &[usize], clusters: &[usize]) -> f64 {
    if classes.is_empty() {
        return 1.0;
    }
    let counts = contingency(classes, clusters);
    let size = counts.len().max(counts[0].len());
    let mut weights = Weights::new(size, size, 0i64);
    for (i, row) in counts.iter().enumerate() {
        for (j, &n) in row.iter().enumerate() {
            weights[(i, j)] = n as i64;
        }
    }
    let (matched, _) = kuhn_munkres(&weights);
    matched as f64 / classes.len() as f64
}

/// Normalized mutual information, `I(U; V) / ½(H(U) + H(V))` in nats (the arithmetic mean, as
/// scikit-learn's default): 1 when the clustering is a relabeling of the classes, 0 when the two
/// are independent. Two labelings that are both a single group count as 1.
///
/// # Panics
/// If the two slices differ in length.
#[track_caller]
pub fn nmi(classes: &[usize], clusters: &[usize]) -> f64 {
    let counts = contingency(classes, clusters);
    let n = classes.len() as f64;
    let entropy = |sizes: &[f64]| -> f64 {
        sizes
            .iter()
            .filter(|&&s| s > 0.0)
            .map(|&s| -(s / n) * (s / n).ln())
            .sum()
    };
    let rows: Vec<f64> = counts
        .iter()
        .map(|r| r.iter().sum::<u64>() as f64)
        .collect();
    let cols: Vec<f64> = (0..counts.first().map_or(0, Vec::len))
        .map(|j| counts.iter().map(|r| r[j]).sum::<u64>() as f64)
        .collect();
    let (h_u, h_v) = (entropy(&rows), entropy(&cols));
    if h_u == 0.0 && h_v == 0.0 {
        return 1.0;
    }
    let mut mi = 0.0;
    for (i, row) in counts.iter().enumerate() {
        for (j, &nij) in row.iter().enumerate() {
            if nij > 0 {
                let nij = nij as f64;
                mi += nij / n * (n * nij / (rows[i] * cols[j])).ln();
            }
        }
    }
    (mi / (0.5 * (h_u + h_v))).clamp(0.0, 1.0)
}

/// How k-means clusters of a representation match the labels: the mean and the standard
/// deviation over [`TRIALS`] independent k-means fits (each the best of [`RESTARTS`] starts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClusterScores {
    /// The mean [`cluster_accuracy`].
    pub accuracy: f64,
    /// Its standard deviation over the trials.
    pub accuracy_sd: f64,
    /// The mean [`nmi`].
    pub nmi: f64,
    /// Its standard deviation over the trials.
    pub nmi_sd: f64,
}

/// Independent k-means fits that [`cluster_scores`] averages: the clusters, and so the scores,
/// move by several points from one seed to another on a learned code.
pub const TRIALS: usize = 5;

/// Starts of each fit of [`cluster_scores`], the best kept (scikit-learn's `n_init`).
pub const RESTARTS: usize = 10;

/// The seed of the k-means of [`cluster_scores`] (trial t on its stream t): fixed, so that a
/// representation's scores do not depend on the run's seed or on what was drawn before them
/// (the same pixels score the same whichever model's evaluation clusters them).
pub const SEED: u64 = 20_061_028;

/// k-means with one cluster per class on the rows of `x`, scored against `labels`: [`TRIALS`]
/// fits of [`RESTARTS`] starts each, from [`SEED`].
pub fn cluster_scores(x: &Matrix, labels: &[u8]) -> ClusterScores {
    let classes: Vec<usize> = labels.iter().map(|&l| usize::from(l)).collect();
    let k = dense(&classes).1.clamp(1, x.nrows().max(1));
    let (accuracies, nmis): (Vec<f64>, Vec<f64>) = (0..TRIALS)
        .map(|t| {
            let mut rng = ChaCha8Rng::seed_from_u64(SEED);
            rng.set_stream(t as u64);
            let clusters = kmeans(x, k, RESTARTS, &mut rng).assignments;
            (
                cluster_accuracy(&classes, &clusters),
                nmi(&classes, &clusters),
            )
        })
        .unzip();
    let (accuracy, accuracy_sd) = mean_sd(&accuracies);
    let (nmi, nmi_sd) = mean_sd(&nmis);
    ClusterScores {
        accuracy,
        accuracy_sd,
        nmi,
        nmi_sd,
    }
}

/// The mean and the sample standard deviation (0 for one value).
fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random(shape: (usize, usize), seed: u64) -> Matrix {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Matrix::from_shape_fn(shape, |_| rng.random_range(-3.0..3.0))
    }

    #[test]
    fn assignment_matches_brute_force() {
        let x = random((200, 7), 1);
        let c = random((5, 7), 2);
        let (got, dist) = assign(&x, &c);
        for (i, row) in x.rows().into_iter().enumerate() {
            let d: Vec<f32> = (c.rows().into_iter())
                .map(|cr| (&row - &cr).mapv(|v| v * v).sum())
                .collect();
            let best = (0..5).min_by(|&a, &b| d[a].total_cmp(&d[b])).unwrap();
            assert_eq!(got[i], best, "row {i}: {d:?}");
            assert!((dist[i] - d[best]).abs() < 1e-3 * d[best].max(1.0));
        }
    }

    #[test]
    fn kmeans_finds_well_separated_blobs_and_its_inertia_is_the_sum_of_distances() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let centres = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]];
        let truth: Vec<usize> = (0..400).map(|i| i % 4).collect();
        let x = Matrix::from_shape_fn((400, 2), |(i, j)| {
            centres[truth[i]][j] + rng.random_range(-1.0f32..1.0)
        });
        let km = kmeans(&x, 4, 3, &mut ChaCha8Rng::seed_from_u64(4));
        assert_eq!(cluster_accuracy(&truth, &km.assignments), 1.0);
        assert!((nmi(&truth, &km.assignments) - 1.0).abs() < 1e-12);
        // Each centroid is the mean of its points, and the inertia their squared distances.
        let mut inertia = 0.0;
        for (row, &c) in x.rows().into_iter().zip(&km.assignments) {
            inertia += f64::from((&row - &km.centroids.row(c)).mapv(|v| v * v).sum());
        }
        assert!(
            (inertia - km.inertia).abs() < 1e-3 * inertia,
            "{inertia} {km:?}"
        );
        for c in 0..4 {
            let members: Vec<usize> = (0..400).filter(|&i| km.assignments[i] == c).collect();
            let mean = x.select(Axis(0), &members).mean_axis(Axis(0)).unwrap();
            assert!(
                (&mean - &km.centroids.row(c))
                    .iter()
                    .all(|d| d.abs() < 1e-4)
            );
        }
    }

    #[test]
    fn restarts_keep_the_start_of_least_inertia() {
        let x = random((300, 3), 5);
        let one = kmeans(&x, 6, 1, &mut ChaCha8Rng::seed_from_u64(6));
        let many = kmeans(&x, 6, 8, &mut ChaCha8Rng::seed_from_u64(6));
        // The first of the eight starts is the single start (same draws), so eight do no worse.
        assert!(
            many.inertia <= one.inertia + 1e-6,
            "{} vs {}",
            many.inertia,
            one.inertia
        );
    }

    #[test]
    fn scores_depend_on_the_data_alone_and_average_the_trials() {
        let x = random((120, 4), 8);
        let labels: Vec<u8> = (0..120).map(|i| (i % 3) as u8).collect();
        let scores = cluster_scores(&x, &labels);
        assert_eq!(scores, cluster_scores(&x, &labels));
        // Each trial is a fit from its own stream of the seed: their mean and spread.
        let classes: Vec<usize> = labels.iter().map(|&l| usize::from(l)).collect();
        let accuracies: Vec<f64> = (0..TRIALS)
            .map(|t| {
                let mut rng = ChaCha8Rng::seed_from_u64(SEED);
                rng.set_stream(t as u64);
                cluster_accuracy(&classes, &kmeans(&x, 3, RESTARTS, &mut rng).assignments)
            })
            .collect();
        let mean = accuracies.iter().sum::<f64>() / TRIALS as f64;
        assert!((scores.accuracy - mean).abs() < 1e-12);
        assert!(scores.accuracy_sd >= 0.0 && scores.nmi_sd >= 0.0);
        assert_eq!(mean_sd(&[1.0, 3.0]), (2.0, 2.0f64.sqrt()));
        assert_eq!(mean_sd(&[5.0]), (5.0, 0.0));
    }

    #[test]
    fn accuracy_on_hand_made_labelings() {
        // A relabeling of the classes is perfect.
        assert_eq!(cluster_accuracy(&[0, 0, 1, 1, 2], &[5, 5, 3, 3, 9]), 1.0);
        // Classes 0 0 0 1 1 1 against clusters a a b b b b: match a→0 (2), b→1 (3): 5 of 6.
        assert_eq!(
            cluster_accuracy(&[0, 0, 0, 1, 1, 1], &[7, 7, 8, 8, 8, 8]),
            5.0 / 6.0
        );
        // One cluster for two classes: only one class can be matched.
        assert_eq!(cluster_accuracy(&[0, 0, 1, 1], &[4, 4, 4, 4]), 0.5);
        // More clusters than classes: the unmatched cluster's points are errors.
        assert_eq!(cluster_accuracy(&[0, 0, 1, 1], &[1, 2, 3, 3]), 0.75);
        // Counts class 0: cluster 0 ×3, cluster 1 ×2; class 1: cluster 0 ×3. Greedy matching
        // takes the first 3 (0→0) and is left with 0 for class 1; the optimum is 2 + 3.
        let classes = [0, 0, 0, 0, 0, 1, 1, 1];
        let clusters = [0, 0, 0, 1, 1, 0, 0, 0];
        assert_eq!(cluster_accuracy(&classes, &clusters), 5.0 / 8.0);
    }

    #[test]
    fn nmi_on_hand_made_labelings() {
        assert!((nmi(&[0, 0, 1, 1], &[1, 1, 0, 0]) - 1.0).abs() < 1e-12);
        // Independent: each class split evenly across both clusters.
        assert!(nmi(&[0, 0, 1, 1], &[0, 1, 0, 1]).abs() < 1e-12);
        // Both a single group: identical labelings.
        assert_eq!(nmi(&[3, 3, 3], &[1, 1, 1]), 1.0);
        // A single cluster against two classes carries no information.
        assert_eq!(nmi(&[0, 0, 1, 1], &[0, 0, 0, 0]), 0.0);
        // Classes 0 0 1 1, clusters 0 0 0 1, by hand:
        // p(0,0) = ½, p(1,0) = ¼, p(1,1) = ¼; p_U = (½, ½), p_V = (¾, ¼).
        // I = ½ ln(½/(½·¾)) + ¼ ln(¼/(½·¾)) + ¼ ln(¼/(½·¼)) = ½ ln(4/3) + ¼ ln(2/3) + ¼ ln 2.
        let i = 0.5 * (4.0f64 / 3.0).ln() + 0.25 * (2.0f64 / 3.0).ln() + 0.25 * 2.0f64.ln();
        let h_u = 2.0f64.ln();
        let h_v = -(0.75 * 0.75f64.ln() + 0.25 * 0.25f64.ln());
        let expected = i / (0.5 * (h_u + h_v));
        assert!((nmi(&[0, 0, 1, 1], &[0, 0, 0, 1]) - expected).abs() < 1e-12);
    }
}
