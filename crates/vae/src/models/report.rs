//! What every model's report uses: a writer of picture grids into the run directory
//! ([`Grids`]), and the figures any representation or likelihood gives (k-means clustering
//! scored against the labels, a negative log-likelihood).

use std::path::{Path, PathBuf};

use autodiff::Matrix;
use ndarray::s;

use crate::eval::cluster;
use crate::image;
use crate::model::{Figure, Finish, Picture, RunError, files};

/// The figure `test {what} {nll} nats`.
pub fn nll_figure(what: &'static str, nll: f64, importance_samples: Option<usize>) -> Figure {
    Figure {
        name: what.into(),
        value: nll,
        line: format!("test {what} {nll:.2} nats"),
        importance_samples,
    }
}

/// k-means with one cluster per class on the rows of `x` (the test set as `what` represents
/// it: `posterior means`, `codes`, `pixels`), scored against `labels` over
/// [`cluster::TRIALS`] fits: the mean cluster accuracy and NMI, with their spread in the lines,
/// `k-means on the codes: cluster accuracy 81.20 % (sd 2.10 over 5 fits)`.
pub fn cluster_figures(what: &str, x: &Matrix, labels: &[u8], ctx: &mut Finish<'_>) -> [Figure; 2] {
    (ctx.note)(&format!(
        "k-means on the {what} of {} test images ({} fits of {} starts)",
        x.nrows(),
        cluster::TRIALS,
        cluster::RESTARTS
    ));
    let scores = cluster::cluster_scores(x, labels);
    let fits = cluster::TRIALS;
    [
        Figure::new(
            format!("k-means accuracy, {what}"),
            scores.accuracy,
            format!(
                "k-means on the {what}: cluster accuracy {:.2} % (sd {:.2} over {fits} fits)",
                100.0 * scores.accuracy,
                100.0 * scores.accuracy_sd
            ),
        ),
        Figure::new(
            format!("k-means NMI, {what}"),
            scores.nmi,
            format!(
                "k-means on the {what}: NMI {:.3} (sd {:.3} over {fits} fits)",
                scores.nmi, scores.nmi_sd
            ),
        ),
    ]
}

/// Pictures written into one run directory, the paths remembered.
pub struct Grids<'a> {
    out: &'a Path,
    shape: (usize, usize),
    written: Vec<PathBuf>,
}

impl<'a> Grids<'a> {
    /// Grids of images of `shape` into `out`.
    pub fn new(out: &'a Path, shape: (usize, usize)) -> Self {
        Grids {
            out,
            shape,
            written: Vec::new(),
        }
    }

    /// Writes `images` (one a row, in [0, 1]) as `name`, `cols` to a row.
    pub fn grid(&mut self, name: &str, images: &Matrix, cols: usize) -> Result<(), RunError> {
        let path = self.out.join(name);
        image::save_grid(&path, images, self.shape, cols)?;
        self.written.push(path);
        Ok(())
    }

    /// `reconstructions.png` of an autoencoder: four rows of 16 of the first test images `x`,
    /// each row above its reconstructions by `reconstruct` (pictures in [0, 1]). Returns the
    /// images shown, for more pictures of the same ones.
    pub fn reconstructions(
        &mut self,
        x: &Matrix,
        reconstruct: impl FnOnce(&Matrix) -> Matrix,
    ) -> Result<Matrix, RunError> {
        let cols = 16;
        let x = x.slice(s![..x.nrows().min(4 * cols), ..]).to_owned();
        let rows = image::above(&[&x, &reconstruct(&x)], cols);
        self.grid(files::RECONSTRUCTIONS, &rows, cols)?;
        Ok(x)
    }

    /// Writes `picture` as `name`, its own number of images to a row.
    pub fn picture(&mut self, name: &str, picture: &Picture) -> Result<(), RunError> {
        self.grid(name, &picture.images, picture.cols)
    }

    /// `latent.png`: the rows of `points` (2-D codes or posterior means of the test set),
    /// coloured by `labels`.
    pub fn latent(&mut self, points: &Matrix, labels: &[u8]) -> Result<(), RunError> {
        let points: Vec<(f32, f32)> = points.rows().into_iter().map(|r| (r[0], r[1])).collect();
        let path = self.other(files::LATENT);
        Ok(image::save_scatter(&path, &points, labels, 600)?)
    }

    /// The path of `name` in the directory, remembered as written (for pictures drawn another
    /// way).
    pub fn other(&mut self, name: &str) -> PathBuf {
        let path = self.out.join(name);
        self.written.push(path.clone());
        path
    }

    /// Every path written.
    pub fn finish(self) -> Vec<PathBuf> {
        self.written
    }
}
