//! How well a score separates anomalies from normal images: the area under the ROC curve,
//! exactly from ranks with ties averaged, and the area under the precision-recall curve as
//! average precision. A higher score means "more anomalous"; the anomalies are the positives.

use std::cmp::Ordering;

/// The scores sorted from the most anomalous down, each group of equal scores with how many of
/// it are positives and how many in all.
fn tied_groups(scores: &[f64], positive: &[bool]) -> Vec<(f64, usize, usize)> {
    assert_eq!(
        scores.len(),
        positive.len(),
        "roc: {} scores for {} labels",
        scores.len(),
        positive.len()
    );
    assert!(
        scores.iter().all(|s| !s.is_nan()),
        "roc: a NaN score cannot be ranked"
    );
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap_or(Ordering::Equal));
    let mut groups: Vec<(f64, usize, usize)> = Vec::new();
    for i in order {
        match groups.last_mut() {
            Some((s, pos, all)) if *s == scores[i] => {
                *pos += usize::from(positive[i]);
                *all += 1;
            }
            _ => groups.push((scores[i], usize::from(positive[i]), 1)),
        }
    }
    groups
}

/// The area under the ROC curve of `scores` for telling the `positive` ones from the rest: the
/// probability that a random positive scores above a random negative, ties counting one half
/// (the Mann–Whitney U over `n₊ n₋`, from ranks with ties given their average rank). `None`
/// when either class is empty.
///
/// # Panics
/// If the lengths differ or a score is NaN.
#[track_caller]
pub fn auroc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let groups = tied_groups(scores, positive);
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    // Ranks from 1 at the lowest score: walk the groups from the lowest up.
    let (mut below, mut rank_sum) = (0usize, 0.0f64);
    for &(_, pos, all) in groups.iter().rev() {
        let average_rank = below as f64 + (all as f64 + 1.0) / 2.0;
        rank_sum += pos as f64 * average_rank;
        below += all;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos as f64 * n_neg as f64))
}

/// The area under the precision-recall curve as average precision, `Σ (Rₖ − Rₖ₋₁) Pₖ` over the
/// thresholds at each distinct score from the highest down (scikit-learn's
/// `average_precision_score`): tied scores enter together. `None` without positives.
///
/// # Panics
/// If the lengths differ or a score is NaN.
#[track_caller]
pub fn auprc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let groups = tied_groups(scores, positive);
    let n_pos = positive.iter().filter(|&&p| p).count();
    if n_pos == 0 {
        return None;
    }
    let (mut tp, mut seen, mut area) = (0usize, 0usize, 0.0f64);
    for (_, pos, all) in groups {
        tp += pos;
        seen += all;
        area += (pos as f64 / n_pos as f64) * (tp as f64 / seen as f64);
    }
    Some(area)
}

/// The ROC curve's corners: (false-positive rate, true-positive rate) from (0, 0) to (1, 1), a
/// point per distinct score from the highest down. Empty when either class is.
///
/// # Panics
/// If the lengths differ or a score is NaN.
#[track_caller]
pub fn roc_curve(scores: &[f64], positive: &[bool]) -> Vec<(f64, f64)> {
    let groups = tied_groups(scores, positive);
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Vec::new();
    }
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut curve = vec![(0.0, 0.0)];
    for (_, pos, all) in groups {
        tp += pos;
        fp += all - pos;
        curve.push((fp as f64 / n_neg as f64, tp as f64 / n_pos as f64));
    }
    curve
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_a_reversed_and_an_all_tied_score() {
        let positive = [false, false, true, true];
        assert_eq!(auroc(&[0.1, 0.2, 0.8, 0.9], &positive), Some(1.0));
        assert_eq!(auroc(&[0.9, 0.8, 0.2, 0.1], &positive), Some(0.0));
        // All tied: every pair a tie, one half each.
        assert_eq!(auroc(&[3.0; 4], &positive), Some(0.5));
        assert_eq!(auprc(&[0.1, 0.2, 0.8, 0.9], &positive), Some(1.0));
        // All tied: one threshold, recall 1 at precision 2/4.
        assert_eq!(auprc(&[3.0; 4], &positive), Some(0.5));
        assert_eq!(roc_curve(&[3.0; 4], &positive), [(0.0, 0.0), (1.0, 1.0)]);
    }

    #[test]
    fn auroc_matches_the_pairs_counted_by_hand() {
        // Positives 0.8, 0.4, 0.35; negatives 0.5, 0.35, 0.1. Pairs (pos > neg): 0.8 beats all
        // three; 0.4 beats 0.35 and 0.1; 0.35 beats 0.1 and ties 0.35 (½). (3 + 2 + 1.5)/9.
        let scores = [0.8, 0.5, 0.4, 0.35, 0.35, 0.1];
        let positive = [true, false, true, true, false, false];
        let a = auroc(&scores, &positive).unwrap();
        assert!((a - 6.5 / 9.0).abs() < 1e-12, "{a}");
        // The same by brute force over the pairs.
        let mut wins = 0.0;
        for (s, p) in scores.iter().zip(positive) {
            for (t, q) in scores.iter().zip(positive) {
                if p && !q {
                    wins += if s > t {
                        1.0
                    } else if s == t {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        assert!((a - wins / 9.0).abs() < 1e-12);
        // The curve: thresholds 0.8, 0.5, 0.4, 0.35 (one pos and one neg), 0.1.
        let curve = roc_curve(&scores, &positive);
        let third = 1.0 / 3.0;
        let expected = [
            (0.0, 0.0),
            (0.0, third),
            (third, third),
            (third, 2.0 * third),
            (2.0 * third, 1.0),
            (1.0, 1.0),
        ];
        assert_eq!(curve.len(), expected.len());
        for (got, want) in curve.iter().zip(expected) {
            assert!((got.0 - want.0).abs() < 1e-12 && (got.1 - want.1).abs() < 1e-12);
        }
    }

    #[test]
    fn auprc_matches_average_precision_by_hand() {
        // Ranked: 0.8 (+), 0.5 (−), 0.4 (+), {0.35 +, 0.35 −}, 0.1 (−). With 3 positives:
        // 1/3·1 + 1/3·(2/3) + 1/3·(3/5) = (1 + 2/3 + 3/5)/3.
        let scores = [0.8, 0.5, 0.4, 0.35, 0.35, 0.1];
        let positive = [true, false, true, true, false, false];
        let ap = auprc(&scores, &positive).unwrap();
        let expected = (1.0 + 2.0 / 3.0 + 3.0 / 5.0) / 3.0;
        assert!((ap - expected).abs() < 1e-12, "{ap} vs {expected}");
    }

    #[test]
    fn one_class_alone_has_no_area() {
        assert_eq!(auroc(&[1.0, 2.0], &[true, true]), None);
        assert_eq!(auroc(&[1.0, 2.0], &[false, false]), None);
        assert_eq!(auprc(&[1.0, 2.0], &[false, false]), None);
        assert!(roc_curve(&[1.0], &[true]).is_empty());
    }
}
