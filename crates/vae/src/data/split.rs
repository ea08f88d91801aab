//! One split of a dataset (train or test), held once in memory as bytes.

use autodiff::Matrix;

use super::batch::{Batch, push_gray};

/// `len` images of `height × width` pixels as bytes (0–255), image after image, each row-major,
/// with one label per image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pixels: Vec<u8>,
    labels: Vec<u8>,
    height: usize,
    width: usize,
}

impl Split {
    /// A split from its parts.
    ///
    /// # Panics
    /// If `height` or `width` is zero or `pixels.len() != labels.len() · height · width`.
    #[track_caller]
    pub fn new(pixels: Vec<u8>, labels: Vec<u8>, (height, width): (usize, usize)) -> Split {
        assert!(
            height > 0
                && width > 0
                && Some(pixels.len()) == labels.len().checked_mul(height * width),
            "Split::new: {} pixels do not make {} images of {height}×{width}",
            pixels.len(),
            labels.len(),
        );
        Split {
            pixels,
            labels,
            height,
            width,
        }
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `(height, width)` of every image.
    pub fn image_shape(&self) -> (usize, usize) {
        (self.height, self.width)
    }

    /// `height · width`: the length of one image row in a [`Batch`] (784 for MNIST).
    pub fn pixels_per_image(&self) -> usize {
        self.height * self.width
    }

    /// All pixels, image after image.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// All labels, in image order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The pixels of image `i`, row-major.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    #[track_caller]
    pub fn image(&self, i: usize) -> &[u8] {
        let d = self.pixels_per_image();
        assert!(i < self.len(), "image {i} of a split of {}", self.len());
        &self.pixels[i * d..(i + 1) * d]
    }

    /// Keeps only the first `n` images (all of them if there are fewer).
    pub fn truncate(&mut self, n: usize) {
        self.labels.truncate(n);
        self.pixels
            .truncate(self.labels.len() * self.pixels_per_image());
    }

    /// A split of the images at `indices`, in that order (a labeled subset, say).
    ///
    /// # Panics
    /// If an index is out of range.
    #[track_caller]
    pub fn subset(&self, indices: &[usize]) -> Split {
        let mut pixels = Vec::with_capacity(indices.len() * self.pixels_per_image());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Split::new(pixels, labels, self.image_shape())
    }

    /// The images at `indices` as a batch, each pixel as `pixel / 255`.
    ///
    /// # Panics
    /// If an index is out of range.
    #[track_caller]
    pub fn batch(&self, indices: &[usize]) -> Batch {
        let mut values = Vec::with_capacity(indices.len() * self.pixels_per_image());
        for &i in indices {
            push_gray(self.image(i), &mut values);
        }
        self.assemble(indices, values)
    }

    /// Batches of `batch_size` in split order (the last one partial), each pixel as
    /// `pixel / 255`: for evaluation over fixed targets (see [`eval_targets`](super::eval_targets)).
    ///
    /// # Panics
    /// If `batch_size` is zero.
    #[track_caller]
    pub fn batches(&self, batch_size: usize) -> impl ExactSizeIterator<Item = Batch> + '_ {
        assert!(batch_size > 0, "batch_size must be at least 1");
        let starts = (0..self.len()).step_by(batch_size);
        starts.map(move |start| {
            let end = (start + batch_size).min(self.len());
            self.batch(&(start..end).collect::<Vec<_>>())
        })
    }

    /// A batch from `values` already converted for the images at `indices`.
    pub(crate) fn assemble(&self, indices: &[usize], values: Vec<f32>) -> Batch {
        let images = Matrix::from_shape_vec((indices.len(), self.pixels_per_image()), values)
            .expect("one value per pixel of each indexed image");
        Batch {
            images,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            indices: indices.to_vec(),
        }
    }

    /// The same split with its pixels replaced by `pixels` (same length).
    pub(crate) fn with_pixels(&self, pixels: Vec<u8>) -> Split {
        Split::new(pixels, self.labels.clone(), self.image_shape())
    }
}

/// The number of classes of MNIST and Fashion-MNIST.
pub const CLASSES: usize = super::NUM_CLASSES;

/// Labels as one-hot rows (`labels.len()` × [`CLASSES`]).
///
/// # Panics
/// If a label is not below [`CLASSES`].
#[track_caller]
pub fn one_hot(labels: &[u8]) -> Matrix {
    let mut y = Matrix::zeros((labels.len(), CLASSES));
    for (i, &label) in labels.iter().enumerate() {
        assert!(usize::from(label) < CLASSES, "one_hot: label {label}");
        y[[i, usize::from(label)]] = 1.0;
    }
    y
}

/// All images of a split as one matrix of targets, a row each.
pub fn images(split: &Split) -> Matrix {
    split.batch(&(0..split.len()).collect::<Vec<_>>()).images
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three 1×2 images: [0, 255], [51, 102], [255, 0]; labels 7, 8, 9.
    fn three() -> Split {
        Split::new(vec![0, 255, 51, 102, 255, 0], vec![7, 8, 9], (1, 2))
    }

    #[test]
    fn accessors() {
        let s = three();
        assert_eq!(
            (s.len(), s.image_shape(), s.pixels_per_image()),
            (3, (1, 2), 2)
        );
        assert_eq!(s.image(1), &[51, 102]);
        assert_eq!(s.labels(), &[7, 8, 9]);
    }

    #[test]
    #[should_panic(expected = "5 pixels do not make 3 images of 1×2")]
    fn new_rejects_inconsistent_parts() {
        Split::new(vec![0; 5], vec![0; 3], (1, 2));
    }

    #[test]
    fn batch_scales_by_255_in_index_order() {
        let b = three().batch(&[2, 1]);
        // Image 2 then image 1; 51/255 = 0.2 and 102/255 = 0.4.
        assert_eq!(b.images, ndarray::array![[1.0, 0.0], [0.2, 0.4]]);
        assert_eq!(
            (b.labels(), b.indices.as_slice()),
            (&[9, 8][..], &[2, 1][..])
        );
    }

    #[test]
    fn batches_keep_order_and_the_partial_last_batch() {
        let batches: Vec<Batch> = three().batches(2).collect();
        // ceil(3 / 2) = 2 batches: indices [0, 1] and [2].
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].indices, [0, 1]);
        assert_eq!(batches[1].indices, [2]);
        assert_eq!(batches[1].images.dim(), (1, 2));
    }

    #[test]
    fn subset_takes_images_and_labels_in_index_order() {
        let s = three().subset(&[2, 0]);
        assert_eq!(
            (s.pixels(), s.labels()),
            (&[255, 0, 0, 255][..], &[9, 7][..])
        );
    }

    #[test]
    fn truncate_keeps_the_first_images() {
        let mut s = three();
        s.truncate(2);
        assert_eq!((s.len(), s.pixels()), (2, &[0, 255, 51, 102][..]));
        s.truncate(10);
        assert_eq!(s.len(), 2);
    }
}
