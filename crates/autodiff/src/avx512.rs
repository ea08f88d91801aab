//! An f32 GEMM for x86-64 CPUs with AVX-512 (Zen 4 and 5, Intel since Skylake-SP), which
//! `matrixmultiply` does not use: its widest f32 kernel is AVX2's 8×8. Same contract as one
//! `matrixmultiply::sgemm` call on views, `C ← α·A·B + β·C`, on the calling thread; the driver
//! in [`gemm`](crate::gemm) shares the blocks of C over the pool as before.
//!
//! Nothing is packed: at the shapes of a training step (a batch of 64 rows against weights of
//! 784 × 1024) packing B, as BLIS and `matrixmultiply` do, costs as much as the product, since
//! each packed element of B is used by only 64 rows. The micro-kernel keeps an `MR × NR` = 8 ×
//! 32 tile of C in 16 zmm registers and, at each of its `KC` steps, loads a row of 32 floats of
//! B (masked at the right edge) and broadcasts eight elements of A, read through A's strides
//! (any: a transposed A is read column by column), into 16 FMAs. A B without unit column
//! stride (a transposed weight matrix) is copied a `KC × NR` block at a time into a row-major
//! panel; the loops keep a `KC × NR` block of B in L1 while the row tiles of an `MC × KC`
//! block of A (in L2) pass over it. The first `KC` block applies β; the later ones add to what
//! it wrote.
//!
//! Each element of C gets its products in k order, one FMA at a time, in blocks of 256: the
//! order of `matrixmultiply`'s FMA kernel, so for the tape's products (α = 1, β ∈ {0, 1}) the
//! results are the same bits whichever kernel ran (the default VAE run wrote the same
//! checkpoint bytes with either).
//!
//! **Steps where the tile's rows of A are all zero are skipped.** A ReLU layer's output is about
//! half zeros, and rows that are samples of one image (the importance-weighted estimate decodes
//! a thousand per image) are zero at the same units: 38 % of the 8-row tiles' steps had all
//! eight zero in the default model's decoder. Before the tiles of an `MC × KC` block of A pass
//! over B, each tile's nonzero steps are listed; a tile with fewer than seven eighths of its
//! steps nonzero runs over its list. A product stops listing once more than half of at least
//! four tiles listed were dense (a training batch's rows are different images, and its tiles
//! are dense: the scan would cost 2.6 % of a step for nothing). A skipped step would have added
//! `0·b` to each sum, which changes nothing for finite B (`x + 0 = x`, up to the sign of a zero
//! sum), so the results are the same; a NaN or infinity in B facing a zero of A is not
//! propagated, as in the reference BLAS, which skips zeros the same way.

use std::sync::OnceLock;

use ndarray::{ArrayView2, ArrayViewMut2};

/// Rows of the micro-kernel's tile of C.
pub const MR: usize = 8;
/// Columns of the micro-kernel's tile of C: two zmm registers of 16 floats.
pub const NR: usize = 32;
/// Depth of one block (a `KC × NR` block of B is 32 KB).
const KC: usize = 256;
/// Rows of A per block (192 × 256 floats are 192 KB, in L2).
const MC: usize = 192;

/// Whether this CPU has AVX-512F (detected once).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> bool {
    false
}

/// `C ← α·A·B + β·C` for `a: m×k`, `b: k×n`, `c: m×n` (k ≥ 1), views of any strides for A and
/// B; β = 0 overwrites C without reading it. Returns `false`, having done nothing, when it
/// cannot: no AVX-512F on this CPU, or C's columns not contiguous.
///
/// Panics if the shapes do not agree.
#[track_caller]
pub fn sgemm(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    mut c: ArrayViewMut2<'_, f32>,
) -> bool {
    let ((m, k), n) = (a.dim(), b.ncols());
    assert!(b.nrows() == k && c.dim() == (m, n) && k > 0);
    if !available() || (n > 1 && c.strides()[1] != 1) {
        return false;
    }
    // A transposed B (unit row stride: a weight matrix read as Wᵀ) is copied a `KC × NR` block
    // at a time into row-major order, in L1, where the row tiles of A then read it.
    let mut panel = if b.strides()[1] == 1 || n == 1 {
        Vec::new()
    } else {
        vec![0.0f32; KC * NR]
    };
    let (rsa, csa) = (a.strides()[0], a.strides()[1]);
    let (rsb, rsc) = (b.strides()[0], c.strides()[0]);
    let (a_ptr, c_ptr) = (a.as_ptr(), c.as_mut_ptr());
    // Per row tile of an MC × KC block of A: its nonzero steps, and how many when listed.
    const _: () = assert!(MC.is_multiple_of(MR));
    let mut steps = [[0u16; KC]; MC / MR];
    let mut listed: [Option<usize>; MC / MR] = [None; MC / MR];
    let (mut scanned, mut sparse_tiles) = (0usize, 0usize);
    for pc in (0..k).step_by(KC) {
        let kc = KC.min(k - pc);
        let beta = if pc == 0 { beta } else { 1.0 };
        for ic in (0..m).step_by(MC) {
            let mc = MC.min(m - ic);
            // Each row tile's steps with a nonzero element of A, where that pays. A product
            // whose first tiles were mostly dense (a batch of different images) stops looking.
            for (t, ir) in (ic..ic + mc).step_by(MR).enumerate() {
                let mr = MR.min(ic + mc - ir);
                if scanned >= 4 && 2 * sparse_tiles < scanned {
                    listed[t] = None;
                    continue;
                }
                scanned += 1;
                // SAFETY: rows ir..ir + mr and columns pc..pc + kc of A are in range.
                listed[t] = unsafe {
                    nonzero_steps(
                        kc,
                        (
                            a_ptr.offset(ir as isize * rsa + pc as isize * csa),
                            rsa,
                            csa,
                        ),
                        mr,
                        &mut steps[t],
                    )
                };
                sparse_tiles += usize::from(listed[t].is_some());
            }
            for jr in (0..n).step_by(NR) {
                let nr = NR.min(n - jr);
                let (b_ptr, rsb) = if panel.is_empty() {
                    // SAFETY: element (pc, jr) of B is in range.
                    (
                        unsafe { b.as_ptr().offset(pc as isize * rsb + jr as isize) },
                        rsb,
                    )
                } else {
                    let block = b.slice(ndarray::s![pc..pc + kc, jr..jr + nr]);
                    if block.strides()[0] == 1 {
                        // SAFETY: AVX-512F (so AVX) is available; the panel holds KC·NR
                        // floats; the block's columns are contiguous.
                        unsafe { pack_transposed(block, &mut panel) };
                    } else {
                        // Any other strides (stepped or reversed views): element by element.
                        for (j, column) in block.columns().into_iter().enumerate() {
                            for (l, &v) in column.iter().enumerate() {
                                panel[l * NR + j] = v;
                            }
                        }
                    }
                    (panel.as_ptr(), NR as isize)
                };
                for (t, ir) in (ic..ic + mc).step_by(MR).enumerate() {
                    let mr = MR.min(ic + mc - ir);
                    let steps = match listed[t] {
                        Some(len) => Steps::Listed(&steps[t][..len]),
                        None => Steps::All(kc),
                    };
                    // SAFETY: AVX-512F is available. The offsets address element (ir, pc) of
                    // A and (ir, jr) of C, and `b_ptr` element (pc, jr) of B or of its
                    // panel, all in range; the kernel reads A at rows < mr and steps < kc
                    // through A's strides, B at kc rows and nr ≤ NR columns (masked), and
                    // writes C at mr rows and nr columns, inside the views. `c` is borrowed
                    // uniquely, and A and B (shared) cannot overlap it.
                    unsafe {
                        kernel(
                            steps,
                            (
                                a_ptr.offset(ir as isize * rsa + pc as isize * csa),
                                rsa,
                                csa,
                            ),
                            (b_ptr, rsb),
                            (mr, nr),
                            (alpha, beta),
                            (c_ptr.offset(ir as isize * rsc + jr as isize), rsc),
                        )
                    };
                }
            }
        }
    }
    true
}

/// Copies `b` (`kc × nr`, `nr ≤ NR`, its columns contiguous: a transposed row-major matrix)
/// into `panel` in row-major order, `NR` floats a row: 8 × 8 blocks through registers (eight
/// loads along the columns, the classic unpack-shuffle-permute transpose, eight stores along
/// the rows), the edges element by element.
///
/// # Safety
/// The CPU must have AVX; `panel` must hold `kc·NR` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_transposed(b: ArrayView2<'_, f32>, panel: &mut [f32]) {
    use std::arch::x86_64::*;
    let (kc, nr) = b.dim();
    debug_assert!(nr <= NR && panel.len() >= kc * NR && b.strides()[0] == 1);
    let (ptr, csb) = (b.as_ptr(), b.strides()[1]);
    let out = panel.as_mut_ptr();
    let (kc8, nr8) = (kc / 8 * 8, nr / 8 * 8);
    for j in (0..nr8).step_by(8) {
        for l in (0..kc8).step_by(8) {
            // SAFETY: columns j..j + 8 < nr and rows l..l + 8 ≤ kc of b; panel rows
            // l..l + 8 < kc at columns j..j + 8 ≤ NR.
            unsafe {
                let r: [__m256; 8] = std::array::from_fn(|i| {
                    _mm256_loadu_ps(ptr.offset((j + i) as isize * csb + l as isize))
                });
                let t0 = _mm256_unpacklo_ps(r[0], r[1]);
                let t1 = _mm256_unpackhi_ps(r[0], r[1]);
                let t2 = _mm256_unpacklo_ps(r[2], r[3]);
                let t3 = _mm256_unpackhi_ps(r[2], r[3]);
                let t4 = _mm256_unpacklo_ps(r[4], r[5]);
                let t5 = _mm256_unpackhi_ps(r[4], r[5]);
                let t6 = _mm256_unpacklo_ps(r[6], r[7]);
                let t7 = _mm256_unpackhi_ps(r[6], r[7]);
                let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let s1 = _mm256_shuffle_ps::<0xee>(t0, t2);
                let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let s3 = _mm256_shuffle_ps::<0xee>(t1, t3);
                let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let s5 = _mm256_shuffle_ps::<0xee>(t4, t6);
                let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let s7 = _mm256_shuffle_ps::<0xee>(t5, t7);
                let rows = [
                    _mm256_permute2f128_ps::<0x20>(s0, s4),
                    _mm256_permute2f128_ps::<0x20>(s1, s5),
                    _mm256_permute2f128_ps::<0x20>(s2, s6),
                    _mm256_permute2f128_ps::<0x20>(s3, s7),
                    _mm256_permute2f128_ps::<0x31>(s0, s4),
                    _mm256_permute2f128_ps::<0x31>(s1, s5),
                    _mm256_permute2f128_ps::<0x31>(s2, s6),
                    _mm256_permute2f128_ps::<0x31>(s3, s7),
                ];
                for (c, row) in rows.into_iter().enumerate() {
                    _mm256_storeu_ps(out.add((l + c) * NR + j), row);
                }
            }
        }
    }
    // The edges: rows past the last whole 8 in every column, columns past the last whole 8.
    for j in 0..nr {
        let from = if j < nr8 { kc8 } else { 0 };
        for l in from..kc {
            // SAFETY: l < kc, j < nr ≤ NR.
            unsafe { *out.add(l * NR + j) = *ptr.offset(j as isize * csb + l as isize) };
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn pack_transposed(_: ArrayView2<'_, f32>, _: &mut [f32]) {
    unreachable!("available() is false off x86-64")
}

/// The steps `l` of a tile's `Σₗ A[:, l]·B[l, :]`: all `kc` of them, or a list (in order).
#[derive(Clone, Copy)]
enum Steps<'a> {
    All(usize),
    Listed(&'a [u16]),
}

/// Lists at the start of `steps` the `l < kc` at which one of the `mr` rows of A is nonzero
/// (A's element (i, l) at `a + i·rsa + l·csa`) and returns how many, when the list is worth
/// running over: fewer than seven eighths of the steps; `None` otherwise.
///
/// The rows' bits are OR-ed step by step (without the sign bit, so that −0 counts as zero),
/// which vectorises for a row-major A, and the list is written without branches.
///
/// # Safety
/// The CPU must have AVX-512F, and those elements must be valid for `i < mr`, `l < kc ≤ KC`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn nonzero_steps(
    kc: usize,
    (a, rsa, csa): (*const f32, isize, isize),
    mr: usize,
    steps: &mut [u16; KC],
) -> Option<usize> {
    const _: () = assert!(KC <= u16::MAX as usize, "steps are listed as u16");
    let mut bits = [0u32; KC];
    let bits = &mut bits[..kc];
    for i in 0..mr as isize {
        // SAFETY: row i < mr, steps l < kc.
        let row = unsafe { a.offset(i * rsa) };
        if csa == 1 {
            // SAFETY: the row's kc elements are contiguous and valid.
            let row = unsafe { std::slice::from_raw_parts(row, kc) };
            for (bits, &x) in bits.iter_mut().zip(row) {
                *bits |= x.to_bits() << 1;
            }
        } else {
            for (l, bits) in bits.iter_mut().enumerate() {
                // SAFETY: l < kc.
                *bits |= unsafe { *row.offset(l as isize * csa) }.to_bits() << 1;
            }
        }
    }
    let mut len = 0;
    for (l, &bits) in bits.iter().enumerate() {
        steps[len] = l as u16;
        len += usize::from(bits != 0);
    }
    (len * 8 < kc * 7).then_some(len)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn nonzero_steps(
    _: usize,
    _: (*const f32, isize, isize),
    _: usize,
    _: &mut [u16; KC],
) -> Option<usize> {
    unreachable!("available() is false off x86-64")
}

/// The `MR × NR` micro-kernel: `C ← α·Σₗ A[:, l]·B[l, :] + β·C` over the `steps`, for the top
/// left `mr × nr` of a tile (`mr ≤ MR`, `nr ≤ NR`). A's element (i, l) is at `a + i·rsa + l·csa`,
/// B's (l, j) at `b + l·rsb + j`, C's (i, j) at `c + i·rsc + j`.
///
/// # Safety
/// The CPU must have AVX-512F, and those elements must be valid for `i < mr`, every step `l`,
/// `j < nr` (C for writing, and not aliased).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel(
    steps: Steps<'_>,
    (a, rsa, csa): (*const f32, isize, isize),
    (b, rsb): (*const f32, isize),
    (mr, nr): (usize, usize),
    (alpha, beta): (f32, f32),
    (c, rsc): (*mut f32, isize),
) {
    use std::arch::x86_64::*;
    // Rows past mr repeat the last row (valid memory); their sums are dropped.
    let rows: [isize; MR] = std::array::from_fn(|i| i.min(mr - 1) as isize * rsa);
    let lanes = |from: usize| -> __mmask16 {
        let count = nr.saturating_sub(from).min(16);
        if count == 16 {
            0xffff
        } else {
            (1u16 << count) - 1
        }
    };
    let (m0, m1) = (lanes(0), lanes(16));
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    // One step: a row of B against a column of the tile's A.
    let mut step = |l: isize| {
        // SAFETY: l < kc; masked lanes are not read.
        let (b0, b1) = unsafe {
            let row = b.offset(l * rsb);
            (
                _mm512_maskz_loadu_ps(m0, row),
                _mm512_maskz_loadu_ps(m1, row.add(16)),
            )
        };
        let column = unsafe { a.offset(l * csa) };
        for (acc, &row) in acc.iter_mut().zip(&rows) {
            let ai = _mm512_set1_ps(unsafe { *column.offset(row) });
            acc[0] = _mm512_fmadd_ps(ai, b0, acc[0]);
            acc[1] = _mm512_fmadd_ps(ai, b1, acc[1]);
        }
    };
    match steps {
        Steps::All(kc) => (0..kc as isize).for_each(&mut step),
        Steps::Listed(list) => list.iter().for_each(|&l| step(l as isize)),
    }
    let (alpha, beta_v) = (_mm512_set1_ps(alpha), _mm512_set1_ps(beta));
    for (i, acc) in acc.iter().enumerate().take(mr) {
        for (h, (&sum, mask)) in acc.iter().zip([m0, m1]).enumerate() {
            if mask == 0 {
                continue;
            }
            // SAFETY: row i < mr of the tile, lanes < nr (masked).
            unsafe {
                let ptr = c.offset(i as isize * rsc).add(16 * h);
                let scaled = _mm512_mul_ps(alpha, sum);
                let out = if beta == 0.0 {
                    scaled
                } else {
                    _mm512_fmadd_ps(beta_v, _mm512_maskz_loadu_ps(mask, ptr), scaled)
                };
                _mm512_mask_storeu_ps(ptr, mask, out);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel(
    _: Steps<'_>,
    _: (*const f32, isize, isize),
    _: (*const f32, isize),
    _: (usize, usize),
    _: (f32, f32),
    _: (*mut f32, isize),
) {
    unreachable!("available() is false off x86-64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Compares with an f64 product, to the γₖ bound `(k + 4)·u·(|α|·Σ|a·b| + |β·c|)`.
    fn check(m: usize, k: usize, n: usize, alpha: f32, beta: f32, transposed: (bool, bool)) {
        check_with_zeros(m, k, n, (alpha, beta), transposed, |_, _| false);
    }

    /// [`check`] with A zero where `zero(i, l)`.
    fn check_with_zeros(
        m: usize,
        k: usize,
        n: usize,
        (alpha, beta): (f32, f32),
        transposed: (bool, bool),
        zero: impl Fn(usize, usize) -> bool,
    ) {
        let value = |i: usize, j: usize, s: usize| ((i * 31 + j * 17 + s) % 23) as f32 / 7.0 - 1.5;
        let a = Array2::from_shape_fn(
            (m, k),
            |(i, l)| {
                if zero(i, l) { 0.0 } else { value(i, l, 1) }
            },
        );
        let b = Array2::from_shape_fn((k, n), |(i, j)| value(i, j, 2));
        let (at, bt) = (a.t().to_owned(), b.t().to_owned());
        let a_view = if transposed.0 { at.t() } else { a.view() };
        let b_view = if transposed.1 { bt.t() } else { b.view() };
        let c0 = Array2::from_shape_fn((m, n), |(i, j)| value(i, j, 3));
        let mut c = c0.clone();
        assert!(sgemm(alpha, a_view, b_view, beta, c.view_mut()));
        let u = f64::from(f32::EPSILON) / 2.0;
        for ((i, j), &got) in c.indexed_iter() {
            let (mut dot, mut mag) = (0.0f64, 0.0f64);
            for l in 0..k {
                let p = f64::from(a[[i, l]]) * f64::from(b[[l, j]]);
                dot += p;
                mag += p.abs();
            }
            let old = if beta == 0.0 {
                0.0
            } else {
                f64::from(beta) * f64::from(c0[[i, j]])
            };
            let want = f64::from(alpha) * dot + old;
            let tol = (k as f64 + 4.0) * u * (f64::from(alpha).abs() * mag + old.abs());
            assert!(
                (f64::from(got) - want).abs() <= tol,
                "{m}×{k}×{n} α {alpha} β {beta} {transposed:?} at [{i}, {j}]: {got} vs {want}"
            );
        }
    }

    #[test]
    fn every_edge_and_block_boundary_matches_an_f64_product() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        // Tiles and blocks whole and partial: MR 8, NR 32, KC 256, MC 192.
        for (m, k, n) in [
            (1, 1, 1),
            (8, 256, 32),
            (7, 3, 31),
            (9, 257, 33),
            (64, 100, 128),
            (130, 513, 1030),
            (200, 20, 17),
            (64, 784, 70),
        ] {
            for (alpha, beta) in [(1.0, 0.0), (0.5, 1.0), (-2.0, 0.25)] {
                for transposed in [(false, false), (true, false), (false, true), (true, true)] {
                    check(m, k, n, alpha, beta, transposed);
                }
            }
        }
    }

    /// Tiles whose rows are zero together at most steps run over their list of nonzero steps
    /// (a third of them nonzero here; rows of one tile zero at different steps in the second
    /// pattern, all rows zero in the third): the same f64 check, and the same bits as
    /// `matrixmultiply`'s FMA kernel, which multiplies every zero.
    #[test]
    fn tiles_of_mostly_zero_steps_match_an_f64_product_and_the_dense_bits() {
        if !available() {
            return;
        }
        let patterns: [fn(usize, usize) -> bool; 3] = [
            |i, l| !(l + i / MR).is_multiple_of(3),
            |i, l| !(l + i / MR).is_multiple_of(3) && !(i + l).is_multiple_of(5),
            |_, _| true,
        ];
        for zero in patterns {
            for (m, k, n) in [(8, 256, 32), (9, 257, 33), (130, 513, 100), (200, 20, 17)] {
                for transposed in [(false, false), (true, false), (false, true)] {
                    check_with_zeros(m, k, n, (1.0, 0.0), transposed, zero);
                    check_with_zeros(m, k, n, (0.5, 1.0), transposed, zero);
                }
                let a = Array2::from_shape_fn((m, k), |(i, l)| {
                    if zero(i, l) {
                        0.0
                    } else {
                        ((i * 7 + l * 3) % 11) as f32 / 3.0 - 1.7
                    }
                });
                let b =
                    Array2::from_shape_fn((k, n), |(l, j)| ((l * 5 + j) % 13) as f32 / 4.0 - 1.4);
                let mut ours = Array2::<f32>::zeros((m, n));
                assert!(sgemm(1.0, a.view(), b.view(), 0.0, ours.view_mut()));
                let mut dense = Array2::<f32>::zeros((m, n));
                // SAFETY: the pointers and strides describe the arrays' own m×k, k×n and m×n
                // elements; `dense` is not aliased.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        k as isize,
                        1,
                        b.as_ptr(),
                        n as isize,
                        1,
                        0.0,
                        dense.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
                for (x, y) in ours.iter().zip(&dense) {
                    assert!(
                        x == y && (x.to_bits() == y.to_bits() || *x == 0.0),
                        "{x} vs {y}"
                    );
                }
            }
        }
    }

    #[test]
    fn beta_zero_overwrites_nan() {
        if !available() {
            return;
        }
        let a = Array2::<f32>::ones((9, 5));
        let b = Array2::<f32>::ones((5, 33));
        let mut c = Array2::from_elem((9, 33), f32::NAN);
        assert!(sgemm(1.0, a.view(), b.view(), 0.0, c.view_mut()));
        assert!(c.iter().all(|&x| x == 5.0));
    }
}
