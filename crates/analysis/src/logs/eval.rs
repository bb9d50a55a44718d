//! Accuracy measures for log parsers, as defined by the Loghub benchmark.
//!
//! - Grouping accuracy (GA): a line is correct when the set of lines the
//!   parser put in its group is exactly the set of lines of its true group.
//! - Parsing accuracy (PA): a line is correct when its predicted template
//!   equals its true template token for token.
//!
//! Both are shares of lines in `0..=1`. Kept in the library (not only in a
//! test) so the test, the bench and the CLI's users compute them the same way.

use std::collections::HashMap;
use std::hash::Hash;

/// GA and PA of one parse.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Accuracy {
    /// Grouping accuracy.
    pub grouping: f64,
    /// Parsing accuracy.
    pub parsing: f64,
    /// Lines measured.
    pub lines: usize,
}

/// Grouping accuracy of predicted group labels against true ones.
///
/// `predicted[i]` and `truth[i]` label line `i`; labels are compared only for
/// equality. Empty input scores 1.
pub fn grouping_accuracy<P: Eq + Hash, T: Eq + Hash>(predicted: &[P], truth: &[T]) -> f64 {
    let n = predicted.len().min(truth.len());
    if n == 0 {
        return 1.0;
    }
    // A predicted group is correct when all its lines share one true label
    // and that true label has no lines outside it: equal sizes suffice.
    let mut pred_size: HashMap<&P, usize> = HashMap::new();
    let mut true_size: HashMap<&T, usize> = HashMap::new();
    let mut pair_size: HashMap<(&P, &T), usize> = HashMap::new();
    for i in 0..n {
        *pred_size.entry(&predicted[i]).or_default() += 1;
        *true_size.entry(&truth[i]).or_default() += 1;
        *pair_size.entry((&predicted[i], &truth[i])).or_default() += 1;
    }
    let correct: usize = pair_size
        .iter()
        .filter(|((p, t), k)| pred_size[p] == **k && true_size[t] == **k)
        .map(|(_, k)| k)
        .sum();
    correct as f64 / n as f64
}

/// Parsing accuracy: share of lines whose predicted template equals the true
/// one after splitting both on whitespace.
pub fn parsing_accuracy(predicted: &[&str], truth: &[&str]) -> f64 {
    let n = predicted.len().min(truth.len());
    if n == 0 {
        return 1.0;
    }
    let correct = predicted
        .iter()
        .zip(truth)
        .filter(|(p, t)| p.split_whitespace().eq(t.split_whitespace()))
        .count();
    correct as f64 / n as f64
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn grouping_accuracy_counts_exact_groups_only() {
        // Truth: {0,1} {2,3}. Prediction merges 2 and 3 with nothing else
        // but splits 0 and 1: only lines 2 and 3 are correct.
        assert_eq!(grouping_accuracy(&[1, 2, 3, 3], &["a", "a", "b", "b"]), 0.5);
        assert_eq!(grouping_accuracy(&[7, 7, 9, 9], &["a", "a", "b", "b"]), 1.0);
        // One group for everything: nothing is correct.
        assert_eq!(grouping_accuracy(&[1, 1, 1, 1], &["a", "a", "b", "b"]), 0.0);
    }

    #[test]
    fn parsing_accuracy_compares_tokens() {
        assert_eq!(parsing_accuracy(&["a <*>  b", "x"], &["a <*> b", "y"]), 0.5);
    }
}
