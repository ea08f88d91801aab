//! Dense f32 GEMM on ndarray views: the rayon-parallel driver over `matrixmultiply::sgemm`.

use ndarray::{ArrayView2, ArrayViewMut2, Axis};

use crate::parallel::for_each_block;

/// Below this much work (m·n·k) `gemm` stays on the calling thread.
///
/// Measured on the 2-vCPU AMD EPYC VM (Zen 1, AVX2+FMA, ≈30–34 GFLOP/s per
/// thread), rayon vs single interleaved round by round over several runs:
/// under ≈4·10⁶ (≈250 µs single-threaded) the 2-thread result depended on
/// shape and moment (128×20×400: ×0.77–1.29, 128×64×128: ×0.83–1.31,
/// 128×40×400: ×0.94–1.55, 400×128×40 as AᵀB: ×0.96–1.66), because waking a
/// parked worker on this VM takes ≈20–150 µs (sometimes milliseconds) and the
/// two vCPUs' speeds drift; from 128×128×400 (6.5·10⁶) up every run gained
/// (×1.07–1.67), and the 4·10⁷ VAE shapes reach ×1.75–1.95 in quiet periods.
const PARALLEL_MIN_WORK: usize = 1 << 22;

/// Minimum work (m·n·k) per block, so that a many-core pool does not cut a
/// mid-sized product into blocks dominated by wake-up and packing overhead.
///
/// On 2 threads the block count is simply 2. Over-splitting measured no
/// better: cutting 128×784×400 into 2/4/8 column blocks costs +1%/+5%/+15%
/// single-threaded (each block re-packs the shared operand), and while 4 blocks
/// edged out 2 in short bursts (mean ×1.56 vs ×1.50 over 20 paired runs of the
/// five 4·10⁷ VAE shapes), 2 blocks won in sustained back-to-back runs like
/// the benchmark's (×1.54 vs ×1.47, ahead in 10 of 13 pairs).
const BLOCK_MIN_WORK: usize = PARALLEL_MIN_WORK / 2;

/// Split points are multiples of this: the AVX2/FMA f32 micro-kernel of
/// matrixmultiply is 8×8 (MR = NR = 8), so only the last block along a split
/// axis can end in a partial (masked) tile, and column splits of a row-major
/// C stay 32-byte aligned. Aligning to 16/32/64 measured the same or worse
/// (it unbalances e.g. 392 + 392 into 400 + 384).
const SPLIT_ALIGN: usize = 8;

/// One unit of parallel work: rows of A, columns of B and the C block they produce.
type Block<'a, 'b, 'c> = (
    ArrayView2<'a, f32>,
    ArrayView2<'b, f32>,
    ArrayViewMut2<'c, f32>,
);

/// C ← α·A·B + β·C on ndarray views, parallel over disjoint blocks of C.
///
/// `a` is M×K, `b` is K×N and `c` is M×N; any strides (transposed views,
/// stepped or negative-stride slices) are used as they are, without copying.
/// β = 0 overwrites C (NaN in C is not propagated); K = 0 or α = 0 reduce to
/// C ← β·C without reading A or B, as in BLAS.
///
/// Products of at least `PARALLEL_MIN_WORK` (m·n·k) are cut into disjoint
/// blocks of C by recursively halving the larger of M and N (`split_at`),
/// one per `rayon::current_num_threads()` (fewer if a block would drop below
/// `BLOCK_MIN_WORK`); the calling thread and the pool's workers then take
/// blocks until none is left ([`for_each_block`]). Smaller products run on the calling thread.
///
/// # Panics
///
/// If the shapes do not agree; the message names all three shapes.
#[track_caller]
pub fn gemm(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: ArrayViewMut2<'_, f32>,
) {
    let (m, k, n) = check_shapes(&a, &b, &c);
    let Some(c) = needs_product(k, alpha, beta, c) else {
        return;
    };
    let threads = rayon::current_num_threads();
    let work = m.saturating_mul(n).saturating_mul(k);
    if threads <= 1 || work < PARALLEL_MIN_WORK {
        sgemm_view(alpha, a, b, beta, c);
        return;
    }
    let parts = threads.min(work / BLOCK_MIN_WORK);
    let mut blocks = Vec::with_capacity(parts);
    split_blocks(a, b, c, parts, &mut blocks);
    for_each_block(blocks, |(a, b, c)| sgemm_view(alpha, a, b, beta, c));
}

/// Same contract on the calling thread only (the single-thread baseline benchmarks compare against).
///
/// # Panics
///
/// If the shapes do not agree; the message names all three shapes.
#[track_caller]
pub fn gemm_single_thread(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: ArrayViewMut2<'_, f32>,
) {
    let (_, k, _) = check_shapes(&a, &b, &c);
    if let Some(c) = needs_product(k, alpha, beta, c) {
        sgemm_view(alpha, a, b, beta, c);
    }
}

/// Handles the cases with no product to compute: an empty C, and K = 0 or α = 0 (C ← β·C).
/// Returns C when the product is still to be done.
fn needs_product(
    k: usize,
    alpha: f32,
    beta: f32,
    c: ArrayViewMut2<'_, f32>,
) -> Option<ArrayViewMut2<'_, f32>> {
    if c.is_empty() {
        None
    } else if k == 0 || alpha == 0.0 {
        scale_c(beta, c);
        None
    } else {
        Some(c)
    }
}

/// Checks `a: M×K`, `b: K×N`, `c: M×N` and returns `(M, K, N)`; panics at the caller otherwise.
#[track_caller]
fn check_shapes(
    a: &ArrayView2<'_, f32>,
    b: &ArrayView2<'_, f32>,
    c: &ArrayViewMut2<'_, f32>,
) -> (usize, usize, usize) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(
        k == k2 && c.dim() == (m, n),
        "gemm shape mismatch: a is {:?}, b is {:?}, c is {:?} (need M×K, K×N, M×N)",
        a.shape(),
        b.shape(),
        c.shape()
    );
    (m, k, n)
}

/// C ← β·C, where β = 0 overwrites (clears NaN/garbage, as BLAS does).
///
/// matrixmultiply does the same for k = 0, but it would still read A and B
/// for α = 0 (and 0·∞ = NaN), so both cases are handled here explicitly.
pub(crate) fn scale_c(beta: f32, mut c: ArrayViewMut2<'_, f32>) {
    if beta == 0.0 {
        c.fill(0.0);
    } else if beta != 1.0 {
        c.mapv_inplace(|x| beta * x);
    }
}

/// Cuts C (with the matching rows of A or columns of B) into `parts` disjoint
/// blocks by recursively splitting the larger of M and N at a multiple of
/// [`SPLIT_ALIGN`], and appends them to `out` in order.
fn split_blocks<'a, 'b, 'c>(
    a: ArrayView2<'a, f32>,
    b: ArrayView2<'b, f32>,
    c: ArrayViewMut2<'c, f32>,
    parts: usize,
    out: &mut Vec<Block<'a, 'b, 'c>>,
) {
    let (m, n) = c.dim();
    let split_n = n >= m;
    let len = if split_n { n } else { m };
    let left = parts / 2;
    let idx = split_index(len, left, parts);
    if parts <= 1 || idx == 0 || idx >= len {
        // One block, or too thin to split on a kernel-tile boundary.
        out.push((a, b, c));
    } else if split_n {
        let (b0, b1) = b.split_at(Axis(1), idx);
        let (c0, c1) = c.split_at(Axis(1), idx);
        split_blocks(a, b0, c0, left, out);
        split_blocks(a, b1, c1, parts - left, out);
    } else {
        let (a0, a1) = a.split_at(Axis(0), idx);
        let (c0, c1) = c.split_at(Axis(0), idx);
        split_blocks(a0, b, c0, left, out);
        split_blocks(a1, b, c1, parts - left, out);
    }
}

/// `len·left/parts` rounded to the nearest multiple of [`SPLIT_ALIGN`].
fn split_index(len: usize, left: usize, parts: usize) -> usize {
    let ideal = len * left / parts;
    (ideal + SPLIT_ALIGN / 2) / SPLIT_ALIGN * SPLIT_ALIGN
}

/// One sequential product on the given views (m, k, n ≥ 1): [`crate::avx512::sgemm`] on a CPU
/// with AVX-512F, else `matrixmultiply::sgemm` (whose widest f32 kernel is AVX2's).
fn sgemm_view(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    mut c: ArrayViewMut2<'_, f32>,
) {
    if crate::avx512::sgemm(alpha, a, b, beta, c.view_mut()) {
        return;
    }
    let (m, k) = a.dim();
    let n = b.dim().1;
    assert!(b.dim().0 == k && c.dim() == (m, n));
    let (rsa, csa) = (a.strides()[0], a.strides()[1]);
    let (rsb, csb) = (b.strides()[0], b.strides()[1]);
    let (rsc, csc) = (c.strides()[0], c.strides()[1]);
    let c_ptr = c.as_mut_ptr();
    // SAFETY: `a`, `b` and `c` are live ndarray views of shapes m×k, k×n and
    // m×n (asserted above). For a view, `as_ptr`/`as_mut_ptr` point at logical
    // element [0, 0] and element [i, j] sits at `ptr + i·rs + j·cs` (strides in
    // elements; negative, stepped or zero strides included) inside the viewed
    // allocation for every in-range index, which is exactly the addressing
    // sgemm uses: it reads A at i < m, l < k, B at l < k, j < n and reads and
    // writes C at i < m, j < n only. `c` is an `ArrayViewMut2` borrowed
    // uniquely for this call, so nothing else reads or writes C meanwhile
    // (sibling blocks of a split are disjoint `split_at` views), A and B
    // (shared borrows) cannot overlap it, and a mutable view never maps two
    // indices to the same element, as sgemm requires of C's strides. With
    // matrixmultiply's `threading` feature off, the call runs entirely on this
    // thread and keeps no pointer after returning.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c_ptr,
            rsc,
            csc,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, s};

    /// Deterministic LCG fill in [-1, 1) (no rand dependency).
    fn filled(rows: usize, cols: usize, seed: u32) -> Array2<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        Array2::from_shape_fn((rows, cols), |_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
    }

    /// Which GEMM entry point a check runs.
    #[derive(Clone, Copy, Debug)]
    enum Entry {
        Rayon,
        Single,
    }

    /// Naive reference: A·B accumulated in f64, and Σₗ|aᵢₗ·bₗⱼ| for the tolerance.
    struct Naive {
        dot: Array2<f64>,
        mag: Array2<f64>,
        k: usize,
    }

    fn naive(a: ArrayView2<'_, f32>, b: ArrayView2<'_, f32>) -> Naive {
        let (m, k) = a.dim();
        let n = b.dim().1;
        let a = a.mapv(f64::from);
        let bt = b.t().mapv(f64::from); // rows of bt are columns of B
        let mut dot = Array2::zeros((m, n));
        let mut mag = Array2::zeros((m, n));
        for (i, ar) in a.rows().into_iter().enumerate() {
            for (j, bc) in bt.rows().into_iter().enumerate() {
                let (mut d, mut g) = (0.0f64, 0.0f64);
                for (x, y) in ar.iter().zip(bc) {
                    d += x * y;
                    g += (x * y).abs();
                }
                dot[[i, j]] = d;
                mag[[i, j]] = g;
            }
        }
        Naive { dot, mag, k }
    }

    /// Runs `entry` on the given views and compares with the naive reference.
    ///
    /// Tolerance: each element is an f32 dot product of length k plus the α/β
    /// scaling, whose rounding error is bounded by (k + 4)·u·mag with u = 2⁻²⁴
    /// and mag = |α|·Σₗ|aᵢₗ·bₗⱼ| + |β·cᵢⱼ| (the standard γₖ bound, valid for any
    /// summation order or blocking). NaN in the input C is only allowed with
    /// β = 0, where it must be overwritten.
    fn check_against(
        reference: &Naive,
        entry: Entry,
        alpha: f32,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        beta: f32,
        mut c: ArrayViewMut2<'_, f32>,
    ) {
        let c0 = c.to_owned();
        run(entry, alpha, a, b, beta, c.view_mut());
        let u = f64::from(f32::EPSILON) / 2.0;
        let k = reference.k;
        for ((i, j), &got) in c.indexed_iter() {
            let old = if beta == 0.0 {
                0.0
            } else {
                f64::from(beta) * f64::from(c0[[i, j]])
            };
            let want = f64::from(alpha) * reference.dot[[i, j]] + old;
            let mag = f64::from(alpha).abs() * reference.mag[[i, j]] + old.abs();
            let tol = (k as f64 + 4.0) * u * mag;
            let got = f64::from(got);
            assert!(
                (got - want).abs() <= tol,
                "{entry:?} {:?} at [{i}, {j}]: got {got}, want {want}, tol {tol}",
                (a.dim(), b.dim())
            );
        }
    }

    fn check(
        entry: Entry,
        alpha: f32,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        beta: f32,
        c: ArrayViewMut2<'_, f32>,
    ) {
        check_against(&naive(a, b), entry, alpha, a, b, beta, c);
    }

    /// Both entry points, fresh C filled with `c_fill` (NaN allowed when β = 0).
    fn check_both(
        alpha: f32,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        beta: f32,
        c_init: &Array2<f32>,
    ) {
        for entry in [Entry::Rayon, Entry::Single] {
            let mut c = c_init.clone();
            check(entry, alpha, a, b, beta, c.view_mut());
        }
    }

    /// A logical m×k operand stored either as is or transposed (then passed as `.t()`).
    fn operand(rows: usize, cols: usize, transposed: bool, seed: u32) -> Array2<f32> {
        if transposed {
            filled(cols, rows, seed)
        } else {
            filled(rows, cols, seed)
        }
    }

    fn view(x: &Array2<f32>, transposed: bool) -> ArrayView2<'_, f32> {
        if transposed { x.t() } else { x.view() }
    }

    #[test]
    fn transpose_combinations_and_odd_sizes() {
        let sizes = [
            (1, 1, 1),
            (7, 1, 7),
            (1, 63, 1),
            (7, 65, 1),
            (1, 7, 127),
            (63, 65, 127),
            (127, 63, 65),
            (65, 127, 7),
            (64, 64, 64),
        ];
        for &(m, k, n) in &sizes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = operand(m, k, ta, 1);
                let b = operand(k, n, tb, 2);
                let c = filled(m, n, 3);
                check_both(1.0, view(&a, ta), view(&b, tb), 0.0, &c);
                check_both(-0.75, view(&a, ta), view(&b, tb), 0.5, &c);
            }
        }
    }

    #[test]
    fn strided_and_negative_stride_views() {
        let (m, k, n) = (33, 29, 41);
        let a_big = filled(2 * m, 3 * k, 4);
        let b_big = filled(2 * k, 2 * n, 5);
        let a = a_big.slice(s![..;2, 1..;3]);
        let b = b_big.slice(s![1..;2, ..;2]);
        assert_eq!((a.dim(), b.dim()), ((m, k), (k, n)));
        // Stepped A and B, contiguous C.
        check_both(1.5, a, b, 0.0, &filled(m, n, 6));
        // Negative strides on both axes of A and on the rows of B.
        let a_neg = a_big.slice(s![..m;-1, ..k;-1]);
        let b_neg = b_big.slice(s![..k;-1, ..n]);
        check_both(1.0, a_neg, b_neg, 2.0, &filled(m, n, 7));
        // Transposed stepped operand.
        let bt_big = filled(3 * n, k, 8);
        check_both(
            1.0,
            a,
            bt_big.slice(s![..;3, ..]).t(),
            0.0,
            &filled(m, n, 9),
        );
        // Strided, transposed and negative-stride C.
        for entry in [Entry::Rayon, Entry::Single] {
            let mut c_big = filled(3 * m, 2 * n, 10);
            check(entry, 1.0, a, b, 0.5, c_big.slice_mut(s![..;3, ..;2]));
            let mut c_t = filled(n, m, 11);
            check(entry, 1.0, a, b, 1.0, c_t.view_mut().reversed_axes());
            let mut c_neg = filled(m, 2 * n, 12);
            check(entry, 1.0, a, b, -1.0, c_neg.slice_mut(s![..;-1, ..;-2]));
        }
    }

    #[test]
    fn zero_sized_dimensions() {
        for entry in [Entry::Rayon, Entry::Single] {
            // m = 0 and n = 0: nothing to do, nothing may panic.
            let mut c = Array2::<f32>::zeros((0, 5));
            check(
                entry,
                1.0,
                filled(0, 3, 1).view(),
                filled(3, 5, 2).view(),
                0.0,
                c.view_mut(),
            );
            let mut c = Array2::<f32>::zeros((4, 0));
            check(
                entry,
                1.0,
                filled(4, 3, 1).view(),
                filled(3, 0, 2).view(),
                0.0,
                c.view_mut(),
            );
            // k = 0: C ← β·C.
            let (a, b) = (Array2::<f32>::zeros((4, 0)), Array2::<f32>::zeros((0, 5)));
            let mut c = filled(4, 5, 3);
            let want = c.mapv(|x| 0.5 * x);
            run(entry, 2.0, a.view(), b.view(), 0.5, c.view_mut());
            assert_eq!(c, want);
            // k = 0, β = 0 overwrites NaN, also through a transposed C.
            let mut c = Array2::from_elem((5, 4), f32::NAN);
            run(
                entry,
                2.0,
                a.view(),
                b.view(),
                0.0,
                c.view_mut().reversed_axes(),
            );
            assert_eq!(c, Array2::zeros((5, 4)));
        }
    }

    fn run(
        entry: Entry,
        alpha: f32,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        beta: f32,
        c: ArrayViewMut2<'_, f32>,
    ) {
        match entry {
            Entry::Rayon => gemm(alpha, a, b, beta, c),
            Entry::Single => gemm_single_thread(alpha, a, b, beta, c),
        }
    }

    #[test]
    fn beta_zero_overwrites_nan_and_alpha_scales() {
        for &(m, k, n) in &[(1, 1, 1), (7, 63, 65), (65, 7, 127)] {
            let (a, b) = (filled(m, k, 1), filled(k, n, 2));
            let nan = Array2::from_elem((m, n), f32::NAN);
            check_both(1.0, a.view(), b.view(), 0.0, &nan);
            check_both(-3.25, a.view(), b.t().t(), 0.0, &nan);
            // α = 0 with β = 0 also overwrites.
            for entry in [Entry::Rayon, Entry::Single] {
                let mut c = nan.clone();
                run(entry, 0.0, a.view(), b.view(), 0.0, c.view_mut());
                assert_eq!(c, Array2::zeros((m, n)));
            }
        }
    }

    #[test]
    fn beta_accumulates() {
        let (a, b) = (filled(63, 127, 1), filled(127, 65, 2));
        let c = filled(63, 65, 3);
        check_both(1.0, a.view(), b.view(), 1.0, &c);
        check_both(0.25, a.view(), b.view(), -2.0, &c);
    }

    #[test]
    fn parallel_path_matches_naive() {
        // Above PARALLEL_MIN_WORK, so C is cut into blocks: from this
        // (non-pool) thread with the global pool, then from inside explicit
        // pools of 2, 3, 4 and 8 threads (uneven and M- and N-wise splits).
        let cases = [
            ((128, 784, 400), false, false),
            ((784, 128, 400), true, false),
            ((128, 400, 784), false, true),
        ];
        let refs: Vec<Naive> = cases
            .iter()
            .map(|&((m, k, n), ta, tb)| {
                let (a, b) = (operand(m, k, ta, 1), operand(k, n, tb, 2));
                naive(view(&a, ta), view(&b, tb))
            })
            .collect();
        let run_cases = || {
            for (&((m, k, n), ta, tb), reference) in cases.iter().zip(&refs) {
                let a = operand(m, k, ta, 1);
                let b = operand(k, n, tb, 2);
                let (a, b) = (view(&a, ta), view(&b, tb));
                let mut c = Array2::from_elem((m, n), f32::NAN);
                check_against(reference, Entry::Rayon, 0.5, a, b, 0.0, c.view_mut());
                let mut c = filled(m, n, 3);
                check_against(reference, Entry::Rayon, 1.0, a, b, 1.0, c.view_mut());
            }
        };
        run_cases();
        for threads in [2, 3, 4, 8] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(run_cases);
        }
    }

    #[test]
    fn too_thin_to_split_runs_whole() {
        // m·n·k is above the threshold but M, N < SPLIT_ALIGN: one block.
        let (a, b) = (filled(5, 300_000, 1), filled(300_000, 3, 2));
        check_both(1.0, a.view(), b.view(), 0.0, &filled(5, 3, 3));
    }

    #[test]
    #[should_panic(expected = "gemm shape mismatch: a is [3, 4], b is [5, 6], c is [3, 6]")]
    fn shape_mismatch_panics() {
        let mut c = Array2::<f32>::zeros((3, 6));
        gemm(
            1.0,
            filled(3, 4, 1).view(),
            filled(5, 6, 2).view(),
            0.0,
            c.view_mut(),
        );
    }

    #[test]
    #[should_panic(expected = "gemm shape mismatch: a is [3, 4], b is [4, 6], c is [6, 3]")]
    fn shape_mismatch_panics_single_thread() {
        let mut c = Array2::<f32>::zeros((6, 3));
        gemm_single_thread(
            1.0,
            filled(3, 4, 1).view(),
            filled(4, 6, 2).view(),
            0.0,
            c.view_mut(),
        );
    }
}
