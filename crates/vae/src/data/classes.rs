//! [`Classes`]: which labels a run trains and tests on (`--classes`, `--exclude-class`).

use std::fmt;
use std::str::FromStr;

use super::{NUM_CLASSES, Split};

/// The labels a run keeps: all of them, or a set (one-class anomaly detection trains on one).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Classes {
    /// Every label.
    #[default]
    All,
    /// Only these labels, sorted, without repeats, at least one.
    Only(Vec<u8>),
}

/// A class list that names no class, or a label that is not a class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassesError {
    /// No class at all.
    #[error("the class list is empty: name at least one class (0-9)")]
    Empty,
    /// Not a number from 0 to 9.
    #[error("`{0}` is not a class (0-9)")]
    NotAClass(String),
    /// Every class excluded.
    #[error("excluding {0} would leave no class")]
    NoneLeft(String),
}

impl Classes {
    /// Only `labels` (any order, repeats allowed).
    pub fn only(labels: &[u8]) -> Result<Classes, ClassesError> {
        if let Some(&bad) = labels.iter().find(|&&l| usize::from(l) >= NUM_CLASSES) {
            return Err(ClassesError::NotAClass(bad.to_string()));
        }
        let mut labels = labels.to_vec();
        labels.sort_unstable();
        labels.dedup();
        if labels.is_empty() {
            return Err(ClassesError::Empty);
        }
        Ok(Classes::Only(labels))
    }

    /// Every class but `excluded`.
    pub fn excluding(excluded: &[u8]) -> Result<Classes, ClassesError> {
        let kept: Vec<u8> = (0..NUM_CLASSES as u8)
            .filter(|c| !excluded.contains(c))
            .collect();
        if let Some(&bad) = excluded.iter().find(|&&l| usize::from(l) >= NUM_CLASSES) {
            return Err(ClassesError::NotAClass(bad.to_string()));
        }
        if kept.is_empty() {
            let names: Vec<String> = excluded.iter().map(u8::to_string).collect();
            return Err(ClassesError::NoneLeft(names.join(",")));
        }
        Classes::only(&kept)
    }

    /// Whether `label` is kept.
    pub fn contains(&self, label: u8) -> bool {
        match self {
            Classes::All => true,
            Classes::Only(labels) => labels.contains(&label),
        }
    }

    /// The images of `split` whose label is kept, in their order (the split itself, not a copy,
    /// for [`Classes::All`]: MNIST's training images are 47 MB).
    pub fn keep(&self, split: Split) -> Split {
        match self {
            Classes::All => split,
            Classes::Only(_) => {
                let kept: Vec<usize> = (split.labels().iter().enumerate())
                    .filter(|&(_, &l)| self.contains(l))
                    .map(|(i, _)| i)
                    .collect();
                split.subset(&kept)
            }
        }
    }
}

impl fmt::Display for Classes {
    /// `all`, or the labels comma-separated: `0,2,3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Classes::All => f.write_str("all"),
            Classes::Only(labels) => {
                let names: Vec<String> = labels.iter().map(u8::to_string).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

impl FromStr for Classes {
    type Err = ClassesError;

    /// `all`, or comma-separated labels (`0,2,3`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "all" {
            return Ok(Classes::All);
        }
        Classes::only(&parse_labels(s)?)
    }
}

/// Comma-separated labels, each 0–9.
pub fn parse_labels(s: &str) -> Result<Vec<u8>, ClassesError> {
    if s.trim().is_empty() {
        return Err(ClassesError::Empty);
    }
    s.split(',')
        .map(|part| {
            let part = part.trim();
            part.parse::<u8>()
                .ok()
                .filter(|&l| usize::from(l) < NUM_CLASSES)
                .ok_or_else(|| ClassesError::NotAClass(part.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_sorted_and_print_back() {
        let c: Classes = "3,0,2,3".parse().unwrap();
        assert_eq!(c, Classes::Only(vec![0, 2, 3]));
        assert_eq!(c.to_string(), "0,2,3");
        assert_eq!("all".parse::<Classes>(), Ok(Classes::All));
        assert_eq!(
            Classes::All.to_string().parse::<Classes>(),
            Ok(Classes::All)
        );
        assert_eq!("".parse::<Classes>(), Err(ClassesError::Empty));
        assert_eq!(
            "1,x".parse::<Classes>(),
            Err(ClassesError::NotAClass("x".into()))
        );
        assert_eq!(
            "10".parse::<Classes>(),
            Err(ClassesError::NotAClass("10".into()))
        );
    }

    #[test]
    fn excluding_keeps_the_others_and_never_none() {
        let c = Classes::excluding(&[7]).unwrap();
        assert_eq!(c.to_string(), "0,1,2,3,4,5,6,8,9");
        assert!(!c.contains(7) && c.contains(0));
        let all: Vec<u8> = (0..10).collect();
        assert!(matches!(
            Classes::excluding(&all),
            Err(ClassesError::NoneLeft(_))
        ));
    }

    #[test]
    fn keep_filters_a_split_in_order() {
        let split = Split::new(vec![1, 2, 3, 4], vec![5, 7, 5, 1], (1, 1));
        let kept = Classes::only(&[5]).unwrap().keep(split.clone());
        assert_eq!((kept.pixels(), kept.labels()), (&[1, 3][..], &[5, 5][..]));
        assert_eq!(Classes::All.keep(split.clone()), split);
    }
}
