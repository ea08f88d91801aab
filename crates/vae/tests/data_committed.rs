//! The committed datasets in `data/mnist/` and `data/fashion-mnist/`: byte-exact files (SHA-256)
//! and the documented contents.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vae::data::{Classes, Dataset, FILES, Split};

fn data_dir(dataset: Dataset) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(dataset.name())
}

/// The sums listed in data/README.md.
const SHA256: [(Dataset, &str, &str); 8] = [
    (
        Dataset::Mnist,
        "t10k-images-idx3-ubyte.gz",
        "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",
    ),
    (
        Dataset::Mnist,
        "t10k-labels-idx1-ubyte.gz",
        "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",
    ),
    (
        Dataset::Mnist,
        "train-images-idx3-ubyte.gz",
        "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",
    ),
    (
        Dataset::Mnist,
        "train-labels-idx1-ubyte.gz",
        "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",
    ),
    (
        Dataset::FashionMnist,
        "t10k-images-idx3-ubyte.gz",
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    ),
    (
        Dataset::FashionMnist,
        "t10k-labels-idx1-ubyte.gz",
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    ),
    (
        Dataset::FashionMnist,
        "train-images-idx3-ubyte.gz",
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    ),
    (
        Dataset::FashionMnist,
        "train-labels-idx1-ubyte.gz",
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    ),
];

#[test]
fn committed_files_have_the_documented_sha256() {
    for dataset in [Dataset::Mnist, Dataset::FashionMnist] {
        assert!(FILES.iter().all(|f| {
            SHA256
                .iter()
                .any(|&(d, name, _)| d == dataset && name == *f)
        }));
    }
    for (dataset, name, expected) in SHA256 {
        let bytes = std::fs::read(data_dir(dataset).join(name)).unwrap();
        assert_eq!(
            format!("{:x}", Sha256::digest(&bytes)),
            expected,
            "{dataset}: {name}"
        );
    }
}

fn label_counts(split: &Split) -> [usize; 10] {
    let mut counts = [0; 10];
    for &l in split.labels() {
        counts[usize::from(l)] += 1;
    }
    counts
}

#[test]
fn committed_mnist_loads_with_the_documented_counts() {
    let splits = Dataset::Mnist
        .load(Some(&data_dir(Dataset::Mnist)), &Classes::All, None)
        .unwrap();
    assert_eq!(
        (splits.train.len(), splits.train.image_shape()),
        (60_000, (28, 28))
    );
    assert_eq!(
        (splits.test.len(), splits.test.image_shape()),
        (10_000, (28, 28))
    );
    // Label counts as listed in data/README.md.
    assert_eq!(
        label_counts(&splits.train),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        label_counts(&splits.test),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    // The well-known first digits: a 5 opens the training set, a 7 the test set.
    assert_eq!((splits.train.labels()[0], splits.test.labels()[0]), (5, 7));
}

#[test]
fn a_class_subset_keeps_only_its_labels_before_the_limit() {
    let dir = data_dir(Dataset::Mnist);
    let threes = Classes::only(&[3]).unwrap();
    let splits = Dataset::Mnist.load(Some(&dir), &threes, None).unwrap();
    // The counts of 3s above, in both splits.
    assert_eq!((splits.train.len(), splits.test.len()), (6131, 1010));
    assert!(
        splits
            .train
            .labels()
            .iter()
            .chain(splits.test.labels())
            .all(|&l| l == 3)
    );
    // The limit takes the first 3s, not the 3s among the first images.
    let limited = Dataset::Mnist.load(Some(&dir), &threes, Some(100)).unwrap();
    assert_eq!(limited.train.len(), 100);
    let all_but_seven = Classes::excluding(&[7]).unwrap();
    let splits = Dataset::Mnist
        .load(Some(&dir), &all_but_seven, None)
        .unwrap();
    assert_eq!(splits.train.len(), 60_000 - 6265);
}

#[test]
fn committed_fashion_mnist_loads_with_the_documented_counts() {
    let splits = Dataset::FashionMnist
        .load(Some(&data_dir(Dataset::FashionMnist)), &Classes::All, None)
        .unwrap();
    assert_eq!(
        (splits.train.len(), splits.train.image_shape()),
        (60_000, (28, 28))
    );
    assert_eq!(
        (splits.test.len(), splits.test.image_shape()),
        (10_000, (28, 28))
    );
    // Balanced classes, as data/README.md lists them.
    assert_eq!(label_counts(&splits.train), [6000; 10]);
    assert_eq!(label_counts(&splits.test), [1000; 10]);
    // Zalando's files open with an ankle boot (9) in both splits.
    assert_eq!((splits.train.labels()[0], splits.test.labels()[0]), (9, 9));
}

#[test]
fn committed_datasets_are_found_without_a_data_dir() {
    // Tests run in crates/vae, where ./data/<name> does not exist: the checkout's data/ is used
    // (for Fashion-MNIST before the system's copy).
    for dataset in [Dataset::Mnist, Dataset::FashionMnist] {
        let dir = dataset.find_dir(None).unwrap();
        assert_eq!(
            std::fs::canonicalize(dir).unwrap(),
            std::fs::canonicalize(data_dir(dataset)).unwrap(),
            "{dataset}"
        );
    }
}
