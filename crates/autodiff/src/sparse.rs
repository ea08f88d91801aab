//! Products whose left operand is mostly zeros (MNIST's pixels, one-hot labels): the operand in
//! compressed-row form ([`SparseRows`]) and `C ← α·A·B + β·C` over its nonzeros only
//! ([`sparse_gemm`]).
//!
//! A batch of MNIST images is 81 % zeros (grayscale) or 87 % (binarized), so a dense product
//! with it spends four fifths of its multiply-adds on zeros. The first layer of every model
//! multiplies such a batch twice a step: `X·W` forward and `Xᵀ·G` for the weight's gradient.

use std::sync::atomic::{AtomicU32, Ordering};

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

use crate::gemm::scale_c;
use crate::parallel::for_each_block;

/// The default of [`max_density`]. For the first layer's X·W plus Xᵀ·G (128×784×400,
/// `cargo bench -p autodiff --bench sparse`, see BENCHMARKS.md) the sparse path took 0.80–0.96
/// of the dense time at 30 % nonzeros, and 0.44–0.65 at MNIST's 13–19 %: the threshold stays
/// where the gain is still clear of the host's noise.
pub const DEFAULT_MAX_DENSITY: f32 = 0.3;

/// [`max_density`]'s value, as the bits of an `f32`.
static MAX_DENSITY: AtomicU32 = AtomicU32::new(DEFAULT_MAX_DENSITY.to_bits());

/// The largest share of nonzeros at which `matmul` and `affine` multiply their left operand
/// through [`SparseRows`] instead of the dense GEMM (process-wide; [`DEFAULT_MAX_DENSITY`]
/// unless changed with [`set_max_density`]).
pub fn max_density() -> f32 {
    f32::from_bits(MAX_DENSITY.load(Ordering::Relaxed))
}

/// Sets [`max_density`] for the whole process; `0.0` turns the sparse path off (every product
/// is dense), `1.0` sends every left operand through it. Values are clamped to `[0, 1]`.
///
/// The two paths agree to rounding (they sum in different orders), except that the sparse
/// path skips zeros of the left operand even against an infinite or NaN right operand.
pub fn set_max_density(density: f32) {
    let density = if density.is_nan() {
        0.0
    } else {
        density.clamp(0.0, 1.0)
    };
    MAX_DENSITY.store(density.to_bits(), Ordering::Relaxed);
}

/// Width of the column tile one row of C accumulates in registers: 64 f32 are eight of the
/// sixteen AVX registers (the FMA kernel). The SSE kernel would need all sixteen of its
/// registers for them and spills a few, but measured about as fast as with a 32-wide tile.
const TILE: usize = 64;

/// Below this much work (nonzeros of A times columns of B, i.e. multiply-adds) a product stays
/// on the calling thread. Half of the dense GEMM's threshold (`gemm::PARALLEL_MIN_WORK`): a
/// sparse multiply-add costs two to three times a dense one.
const PARALLEL_MIN_WORK: usize = 1 << 21;

/// How many rows [`SparseRows::compress`] reads before it judges the density: one MNIST image
/// can be 30 % ink where the batch is 19 %, so a single row would be a poor sample.
pub const DENSITY_PROBE_ROWS: usize = 8;

/// A matrix stored as its nonzeros, row by row (compressed sparse rows).
#[derive(Debug, Clone, PartialEq)]
pub struct SparseRows {
    rows: usize,
    cols: usize,
    /// Row `i`'s entries are `col[start[i]..start[i + 1]]` and `val[start[i]..start[i + 1]]`.
    start: Vec<usize>,
    col: Vec<u32>,
    val: Vec<f32>,
}

impl SparseRows {
    /// The nonzeros of `a`, or `None` when it is denser than `max_density`.
    ///
    /// The scan gives up as soon as the rows read so far (at least [`DENSITY_PROBE_ROWS`] of
    /// them, or all of a shorter matrix) hold more than `max_density` of their entries, so a
    /// dense hidden layer costs a few rows, not the whole matrix. A matrix under the limit
    /// overall whose first rows are denser than the rest is therefore declined too (and
    /// multiplied densely, which gives the same product).
    ///
    /// # Panics
    ///
    /// If `a` has more than `u32::MAX` columns.
    pub fn compress(a: ArrayView2<'_, f32>, max_density: f32) -> Option<Self> {
        let (rows, cols) = a.dim();
        assert!(
            u32::try_from(cols).is_ok(),
            "SparseRows: {cols} columns do not fit a u32 index"
        );
        let max_density = f64::from(max_density.clamp(0.0, 1.0));
        let allowed = |rows_seen: usize| (max_density * (rows_seen * cols) as f64) as usize;
        // Room for the probe rows first; the rest once they have passed.
        let probe = allowed(DENSITY_PROBE_ROWS.min(rows));
        let mut start = Vec::with_capacity(rows + 1);
        let mut col = Vec::with_capacity(probe);
        let mut val = Vec::with_capacity(probe);
        start.push(0);
        // A strided row (a transposed view) is copied here first, one buffer for all rows.
        let mut strided_row = Vec::new();
        for (i, row) in a.rows().into_iter().enumerate() {
            match row.as_slice() {
                Some(row) => push_nonzeros(row, &mut col, &mut val),
                None => {
                    strided_row.clear();
                    strided_row.extend(row.iter().copied());
                    push_nonzeros(&strided_row, &mut col, &mut val);
                }
            }
            let seen = i + 1;
            if (seen >= DENSITY_PROBE_ROWS || seen == rows) && col.len() > allowed(seen) {
                return None;
            }
            if seen == DENSITY_PROBE_ROWS {
                let rest = allowed(rows).saturating_sub(col.len());
                col.reserve(rest);
                val.reserve(rest);
            }
            start.push(col.len());
        }
        Some(SparseRows {
            rows,
            cols,
            start,
            col,
            val,
        })
    }

    /// `(rows, cols)` of the dense matrix this stands for.
    pub fn dim(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The number of stored (nonzero) entries.
    pub fn nnz(&self) -> usize {
        self.val.len()
    }

    /// `Aᵀ`, in the same form (a counting sort of the entries by column; each row of the
    /// result keeps the order of the original rows).
    ///
    /// # Panics
    ///
    /// If `A` has more than `u32::MAX` rows (they become column indices).
    pub fn transpose(&self) -> SparseRows {
        assert!(
            u32::try_from(self.rows).is_ok(),
            "SparseRows: {} rows do not fit a u32 index",
            self.rows
        );
        let mut start = vec![0usize; self.cols + 1];
        for &j in &self.col {
            start[j as usize + 1] += 1;
        }
        for j in 0..self.cols {
            start[j + 1] += start[j];
        }
        let mut next = start.clone();
        let mut col = vec![0u32; self.nnz()];
        let mut val = vec![0.0f32; self.nnz()];
        for i in 0..self.rows {
            for e in self.start[i]..self.start[i + 1] {
                let slot = &mut next[self.col[e] as usize];
                col[*slot] = i as u32;
                val[*slot] = self.val[e];
                *slot += 1;
            }
        }
        SparseRows {
            rows: self.cols,
            cols: self.rows,
            start,
            col,
            val,
        }
    }

    /// Row `i`'s column indices and values.
    fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let range = self.start[i]..self.start[i + 1];
        (&self.col[range.clone()], &self.val[range])
    }
}

/// C ← α·A·B + β·C for a sparse `a` (M×K), a dense `b` (K×N) and `c` (M×N), in the contract of
/// [`gemm`](crate::gemm::gemm): β = 0 overwrites C, any strides.
///
/// Only A's stored entries are multiplied, so an entry of A that is zero contributes nothing
/// even against an infinite or NaN entry of B (a dense product would give NaN there).
///
/// Each row of C is computed a [`TILE`] of columns at a time, summing `A[i, k]·B[k, ·]` over
/// row `i`'s nonzeros in registers. Products of at least `PARALLEL_MIN_WORK` multiply-adds are
/// cut into column blocks of C, one per thread, run with [`for_each_block`].
///
/// # Panics
///
/// If the shapes do not agree; the message names all three shapes.
#[track_caller]
pub fn sparse_gemm(
    alpha: f32,
    a: &SparseRows,
    b: ArrayView2<'_, f32>,
    beta: f32,
    mut c: ArrayViewMut2<'_, f32>,
) {
    let (m, k) = a.dim();
    let n = b.ncols();
    assert!(
        b.nrows() == k && c.dim() == (m, n),
        "sparse_gemm shape mismatch: a is {:?}, b is {:?}, c is {:?} (need M×K, K×N, M×N)",
        a.dim(),
        b.shape(),
        c.shape()
    );
    if c.is_empty() {
        return;
    }
    if alpha == 0.0 {
        // As in `gemm` (and BLAS): C ← β·C without reading A or B (0·∞ would be NaN).
        scale_c(beta, c);
        return;
    }
    let b = b.as_standard_layout();
    let b = b.as_slice().expect("standard layout is contiguous");
    if c.strides()[1] != 1 {
        // C's rows are not contiguous: compute into a fresh matrix and add it in.
        let mut dense = crate::Matrix::zeros((m, n));
        sparse_gemm(
            alpha,
            a,
            ArrayView2::from_shape((k, n), b).expect("K×N"),
            0.0,
            dense.view_mut(),
        );
        scale_c(beta, c.view_mut());
        c += &dense;
        return;
    }
    let threads = rayon::current_num_threads();
    let parts = if a.nnz().saturating_mul(n) < PARALLEL_MIN_WORK {
        1
    } else {
        threads.min(n.div_ceil(TILE))
    };
    let mut blocks = Vec::with_capacity(parts);
    let mut rest = c;
    let mut first = 0;
    for p in 0..parts {
        // Split at the tile boundary nearest the even share, so that only the last block
        // ends in a partial tile (N = 400 on 2 threads: 192 + 208 columns).
        let end = if p + 1 == parts {
            n
        } else {
            ((n * (p + 1) / parts + TILE / 2) / TILE * TILE).min(n)
        };
        let (block, tail) = rest.split_at(Axis(1), end - first);
        blocks.push((first, block));
        rest = tail;
        first = end;
    }
    #[cfg(target_arch = "x86_64")]
    if fma_available() {
        for_each_block(blocks, |(first, block)| {
            // SAFETY: `columns_fma` needs only the CPU to support AVX2 and FMA, which
            // `fma_available` has checked at run time.
            unsafe { columns_fma(alpha, a, b, n, first, beta, block) }
        });
        return;
    }
    for_each_block(blocks, |(first, block)| {
        columns::<false>(alpha, a, b, n, first, beta, block);
    });
}

/// Whether this CPU runs the fused multiply-add kernel (AVX2 and FMA; detected once, then
/// cached by `std`).
#[cfg(target_arch = "x86_64")]
fn fma_available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// [`columns`] compiled for AVX2 + FMA: eight multiply-adds of a tile are one `vfmadd` reading
/// B straight from memory, where SSE needs a load, a multiply and an add for every four, six
/// instructions (the SSE kernel is bound by how many instructions the core issues, not by the
/// arithmetic).
///
/// # Safety
///
/// The CPU must support AVX2 and FMA ([`fma_available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn columns_fma(
    alpha: f32,
    a: &SparseRows,
    b: &[f32],
    ldb: usize,
    first: usize,
    beta: f32,
    c: ArrayViewMut2<'_, f32>,
) {
    columns::<true>(alpha, a, b, ldb, first, beta, c);
}

/// Columns `first..first + c.ncols()` of C ← α·A·B + β·C, where `b` is K×N row-major with
/// `ldb = N` and `c` has contiguous rows; `FUSED` rounds each multiply-add once (`mul_add`),
/// for the FMA kernel.
#[inline(always)]
fn columns<const FUSED: bool>(
    alpha: f32,
    a: &SparseRows,
    b: &[f32],
    ldb: usize,
    first: usize,
    beta: f32,
    mut c: ArrayViewMut2<'_, f32>,
) {
    let width = c.ncols();
    let mut j = 0;
    // One tile of all rows at a time: the K×TILE slab of B it reads stays in cache.
    while j < width {
        let tile = if width - j >= TILE {
            TILE
        } else if width - j >= 8 {
            8
        } else {
            1
        };
        for (i, mut row) in c.rows_mut().into_iter().enumerate() {
            let out = &mut row.as_slice_mut().expect("contiguous rows")[j..j + tile];
            let (cols, vals) = a.row(i);
            let offset = first + j;
            match tile {
                TILE => store(
                    alpha,
                    &dot_tile::<TILE, FUSED>(cols, vals, b, ldb, offset),
                    beta,
                    out,
                ),
                8 => store(
                    alpha,
                    &dot_tile::<8, FUSED>(cols, vals, b, ldb, offset),
                    beta,
                    out,
                ),
                _ => store(
                    alpha,
                    &dot_tile::<1, FUSED>(cols, vals, b, ldb, offset),
                    beta,
                    out,
                ),
            }
        }
        j += tile;
    }
}

/// `Σₖ A[i, k]·B[k, offset..offset + T]` over row `i`'s nonzeros, held in `T` accumulators.
#[inline(always)]
fn dot_tile<const T: usize, const FUSED: bool>(
    cols: &[u32],
    vals: &[f32],
    b: &[f32],
    ldb: usize,
    offset: usize,
) -> [f32; T] {
    let mut acc = [0.0f32; T];
    for (&k, &v) in cols.iter().zip(vals) {
        let start = k as usize * ldb + offset;
        let row: &[f32; T] = b[start..start + T].try_into().expect("T entries");
        for t in 0..T {
            acc[t] = if FUSED {
                v.mul_add(row[t], acc[t])
            } else {
                acc[t] + v * row[t]
            };
        }
    }
    acc
}

/// `out ← α·acc + β·out`, where β = 0 overwrites.
#[inline(always)]
fn store(alpha: f32, acc: &[f32], beta: f32, out: &mut [f32]) {
    if beta == 0.0 {
        for (o, &x) in out.iter_mut().zip(acc) {
            *o = alpha * x;
        }
    } else {
        for (o, &x) in out.iter_mut().zip(acc) {
            *o = alpha * x + beta * *o;
        }
    }
}

/// Appends the nonzeros of one row (column index, value) to `col` and `val`.
///
/// Eight entries at a time: one comparison gives the chunk's mask of nonzeros, and the loop
/// visits its set bits only, so runs of zeros (an image's border) cost one test per chunk and
/// nothing branches on a single pixel, which a binarized image would mispredict half the time.
fn push_nonzeros(row: &[f32], col: &mut Vec<u32>, val: &mut Vec<f32>) {
    const CHUNK: usize = 8;
    for (c, chunk) in row.chunks(CHUNK).enumerate() {
        let mut mask = chunk
            .iter()
            .enumerate()
            .fold(0u32, |mask, (j, &x)| mask | (u32::from(x != 0.0) << j));
        while mask != 0 {
            let j = mask.trailing_zeros() as usize;
            col.push((c * CHUNK + j) as u32);
            val.push(chunk[j]);
            mask &= mask - 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Matrix;
    use ndarray::{Array2, array, s};

    /// A deterministic matrix with about `density` of its entries nonzero, values in (−1, 1).
    fn sparse_matrix(rows: usize, cols: usize, density: f32, seed: u32) -> Matrix {
        Array2::from_shape_fn((rows, cols), |(i, j)| {
            let h = (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add((j as u32).wrapping_mul(40_503))
                .wrapping_add(seed.wrapping_mul(97_531))
                .wrapping_mul(2_246_822_519);
            let u = (h >> 8) as f32 / (1u32 << 24) as f32;
            if u < density {
                2.0 * u / density - 1.0 + 1e-3
            } else {
                0.0
            }
        })
    }

    /// C ← α·A·B + β·C in f64, one entry at a time.
    fn naive(alpha: f32, a: &Matrix, b: ArrayView2<'_, f32>, beta: f32, c: &Matrix) -> Matrix {
        Array2::from_shape_fn(c.dim(), |(i, j)| {
            let dot: f64 = (0..a.ncols())
                .map(|k| f64::from(a[[i, k]]) * f64::from(b[[k, j]]))
                .sum();
            let old = if beta == 0.0 {
                0.0
            } else {
                f64::from(beta) * f64::from(c[[i, j]])
            };
            (f64::from(alpha) * dot + old) as f32
        })
    }

    fn assert_close(got: &Matrix, want: &Matrix, what: &str) {
        assert_eq!(got.dim(), want.dim(), "{what}");
        for ((idx, g), w) in got.indexed_iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{what}: at {idx:?} got {g}, want {w}"
            );
        }
    }

    #[test]
    fn compress_keeps_exactly_the_nonzeros_in_row_order() {
        let a = array![
            [0.0f32, 1.5, 0.0, -2.0],
            [0.0, 0.0, 0.0, 0.0],
            [3.0, 0.0, 0.0, 0.25]
        ];
        let s = SparseRows::compress(a.view(), 1.0).unwrap();
        assert_eq!(s.dim(), (3, 4));
        assert_eq!(s.nnz(), 4);
        assert_eq!(s.row(0), (&[1u32, 3][..], &[1.5f32, -2.0][..]));
        assert_eq!(s.row(1), (&[][..], &[][..]));
        assert_eq!(s.row(2), (&[0u32, 3][..], &[3.0f32, 0.25][..]));
        // A transposed (non-contiguous) view compresses to the transpose.
        let t = SparseRows::compress(a.t(), 1.0).unwrap();
        assert_eq!(t, s.transpose());
    }

    #[test]
    fn compress_finds_entries_in_every_position_of_a_chunk() {
        // 19 columns: two whole chunks of eight and a short one; one nonzero per column.
        for j in 0..19 {
            let mut a = Matrix::zeros((2, 19));
            a[[1, j]] = -7.0;
            let s = SparseRows::compress(a.view(), 1.0).unwrap();
            assert_eq!(s.row(1), (&[j as u32][..], &[-7.0f32][..]), "column {j}");
            assert_eq!(s.nnz(), 1);
        }
    }

    #[test]
    fn compress_declines_a_dense_matrix_after_the_probe_rows() {
        // 40 % nonzero everywhere: over a 30 % limit.
        let dense = sparse_matrix(64, 50, 0.4, 1);
        assert!(SparseRows::compress(dense.view(), 0.3).is_none());
        assert!(SparseRows::compress(dense.view(), 0.5).is_some());
        // A dense first row alone does not decide: the first 8 rows are 1 dense + 7 empty.
        let mut a = Matrix::zeros((20, 10));
        a.row_mut(0).fill(1.0);
        assert_eq!(
            SparseRows::compress(a.view(), 0.3).map(|s| s.nnz()),
            Some(10)
        );
        // …but the whole matrix is judged at its end: 10 of 30 entries is over 30 %.
        assert!(SparseRows::compress(a.slice(s![..3, ..]), 0.3).is_none());
    }

    #[test]
    fn transpose_matches_compressing_the_transpose() {
        let a = sparse_matrix(37, 53, 0.2, 2);
        let s = SparseRows::compress(a.view(), 1.0).unwrap();
        let t = SparseRows::compress(a.t(), 1.0).unwrap();
        assert_eq!(s.transpose(), t);
        assert_eq!(s.transpose().transpose(), s);
    }

    #[test]
    fn product_matches_naive_over_widths_alpha_beta_and_strides() {
        // Widths around the tile sizes (1, 8, 64) and the first layer's 400.
        for (m, k, n) in [
            (1, 1, 1),
            (3, 9, 7),
            (9, 31, 8),
            (16, 40, 63),
            (10, 70, 65),
            (128, 784, 400),
            (0, 5, 3),
            (4, 0, 3),
            (4, 5, 0),
        ] {
            let a = sparse_matrix(m, k, 0.15, (m + n) as u32);
            let sa = SparseRows::compress(a.view(), 1.0).unwrap();
            let b = sparse_matrix(k, n, 1.0, 7);
            let b_t = b.t().to_owned(); // stored transposed, used as `.t()`: a strided B
            let c0 = sparse_matrix(m, n, 1.0, 9);
            for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25), (0.0, 0.5)] {
                let want = naive(alpha, &a, b.view(), beta, &c0);
                let mut c = c0.clone();
                sparse_gemm(alpha, &sa, b.view(), beta, c.view_mut());
                assert_close(&c, &want, &format!("{m}x{k}x{n} α={alpha} β={beta}"));
                let mut c = c0.clone();
                sparse_gemm(alpha, &sa, b_t.t(), beta, c.view_mut());
                assert_close(&c, &want, &format!("{m}x{k}x{n} strided B"));
                // C transposed in memory: its rows are not contiguous.
                let mut c_t = c0.t().to_owned();
                sparse_gemm(alpha, &sa, b.view(), beta, c_t.view_mut().reversed_axes());
                assert_close(
                    &c_t.t().to_owned(),
                    &want,
                    &format!("{m}x{k}x{n} strided C"),
                );
            }
        }
    }

    #[test]
    fn both_kernels_and_every_pool_size_agree() {
        // 128×784×400 at 15 %: over the parallel threshold, so the pools split the columns.
        let a = sparse_matrix(128, 784, 0.15, 3);
        let sa = SparseRows::compress(a.view(), 1.0).unwrap();
        assert!(sa.nnz() * 400 >= PARALLEL_MIN_WORK);
        let b = sparse_matrix(784, 400, 1.0, 4);
        let want = naive(1.0, &a, b.view(), 0.0, &Matrix::zeros((128, 400)));
        let mut one_thread = None;
        for threads in 1..=3 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = Matrix::zeros((128, 400));
            pool.install(|| sparse_gemm(1.0, &sa, b.view(), 0.0, c.view_mut()));
            assert_close(&c, &want, &format!("{threads} threads"));
            // Splitting the columns changes no entry's order of summation.
            assert_eq!(
                *one_thread.get_or_insert_with(|| c.clone()),
                c,
                "{threads} threads"
            );
        }
        // The unfused kernel (the fallback without FMA) on the same product.
        let b_slice = b.as_slice().unwrap();
        let mut c = Matrix::from_elem((128, 400), f32::NAN);
        columns::<false>(1.0, &sa, b_slice, 400, 0, 0.0, c.view_mut());
        assert_close(&c, &want, "unfused kernel");
    }

    #[test]
    fn beta_zero_overwrites_nan_and_zeros_of_a_skip_nan_in_b() {
        let a = array![[0.0f32, 2.0], [0.0, 0.0]];
        let sa = SparseRows::compress(a.view(), 1.0).unwrap();
        let b = array![[f32::NAN, f32::INFINITY], [1.0, 3.0]];
        let mut c = Matrix::from_elem((2, 2), f32::NAN);
        sparse_gemm(1.0, &sa, b.view(), 0.0, c.view_mut());
        // Row 0 is 2·B[1, ·]; row 1 has no nonzeros, so C's NaN is overwritten by 0.
        assert_eq!(c, array![[2.0f32, 6.0], [0.0, 0.0]]);
        // α = 0 does not read B: C ← β·C even where a nonzero of A meets B's NaN and ∞.
        let b = array![[1.0f32, 1.0], [f32::NAN, f32::INFINITY]];
        sparse_gemm(0.0, &sa, b.view(), 0.5, c.view_mut());
        assert_eq!(c, array![[1.0f32, 3.0], [0.0, 0.0]]);
    }

    #[test]
    #[should_panic(expected = "sparse_gemm shape mismatch: a is (2, 3), b is [2, 2]")]
    fn shape_mismatch_panics() {
        let sa = SparseRows::compress(Matrix::zeros((2, 3)).view(), 1.0).unwrap();
        sparse_gemm(
            1.0,
            &sa,
            Matrix::zeros((2, 2)).view(),
            0.0,
            Matrix::zeros((2, 2)).view_mut(),
        );
    }
}
