//! Strided f32 matrix products on the CPU, a safe face over the `gemm` crate (the kernel candle
//! itself uses). The fused LSTM needs products of transposed views and of rows inside packed
//! weight buffers without copying them, which strides give for free.

use gemm::Parallelism;
use rayon::prelude::*;

/// A read-only strided matrix view: element (r, c) is `data[r * row_stride + c * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows x cols` matrix at the start of `data`, rows `row_stride` apart.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        let m = Mat {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        };
        m.check(data.len());
        m
    }

    /// A dense row-major `rows x cols` matrix.
    pub fn dense(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::rows(data, rows, cols, cols)
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    fn check(&self, len: usize) {
        if self.rows > 0 && self.cols > 0 {
            // Checked: sizes that overflow would wrap to an index inside the buffer.
            let last = ((self.rows - 1).checked_mul(self.row_stride))
                .zip((self.cols - 1).checked_mul(self.col_stride))
                .and_then(|(r, c)| r.checked_add(c));
            assert!(
                last.is_some_and(|last| last < len),
                "matrix view out of bounds"
            );
        }
    }
}

/// A writable row-major matrix view with rows `row_stride` apart.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A row-major `rows x cols` matrix at the start of `data`, rows `row_stride` apart.
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(cols <= row_stride || rows <= 1, "rows overlap");
        if rows > 0 && cols > 0 {
            let end = ((rows - 1).checked_mul(row_stride)).and_then(|r| r.checked_add(cols));
            assert!(
                end.is_some_and(|end| end <= data.len()),
                "matrix view out of bounds"
            );
        }
        MatMut {
            data,
            rows,
            cols,
            row_stride,
        }
    }

    /// A dense row-major `rows x cols` matrix.
    pub fn dense(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::rows(data, rows, cols, cols)
    }
}

/// `dst = a * b`, or `dst += a * b` when `accumulate`.
///
/// # Panics
/// When the shapes do not agree or a view reaches past its buffer (a bug in the caller, not
/// bad input: every size here comes from the model's own configuration).
pub fn matmul(dst: MatMut<'_>, a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    assert_eq!(a.cols, b.rows, "inner dimensions differ");
    assert_eq!(
        (dst.rows, dst.cols),
        (a.rows, b.cols),
        "output shape differs"
    );
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    if a.cols == 0 {
        if !accumulate {
            for r in 0..dst.rows {
                let start = r * dst.row_stride;
                dst.data[start..start + dst.cols].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: every view was bounds-checked against its slice when it was made (`Mat::check`,
    // `MatMut::rows`), the shapes agree (asserted above), `dst` is borrowed mutably so it
    // cannot alias `a` or `b`, and its rows do not overlap (`cols <= row_stride`).
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            a.cols,
            dst.data.as_mut_ptr(),
            1,
            dst.row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::Rayon(0),
        );
    }
}

/// Columns per register block of [`matmul_rows`].
const COLS: usize = 16;
/// Rows per register block of [`matmul_rows`].
const ROWS: usize = 5;

/// The right-hand side of [`matmul_rows`], repacked once into panels of 16 columns so that
/// every product streams it sequentially (reading 16 columns straight out of a wide row-major
/// matrix jumps a page per row and thrashes the L1 cache).
#[derive(Debug, Clone)]
pub struct Panels {
    data: Vec<f32>,
    k: usize,
    n: usize,
}

impl Panels {
    /// Packs `b` (`k x n`, any strides); the last panel is padded with zeros.
    pub fn pack(b: Mat<'_>) -> Self {
        let (k, n) = (b.rows, b.cols);
        let mut data = vec![0.0f32; n.div_ceil(COLS) * k * COLS];
        // Written in order; read as 16 sequential streams when `b` is a transposed view.
        for (q, panel) in data.chunks_exact_mut(k * COLS).enumerate() {
            for (p, row) in panel.chunks_exact_mut(COLS).enumerate() {
                for (x, v) in row.iter_mut().enumerate().take(n - q * COLS) {
                    *v = b.data[p * b.row_stride + (q * COLS + x) * b.col_stride];
                }
            }
        }
        Panels { data, k, n }
    }
}

/// `dst = a * b` (or `+=`) for products with few rows (a batch at one time step, m <= ~20):
/// each block of 5 rows x 16 columns is summed in registers while a panel of `b` streams past.
/// `gemm` packs all of `b` on every call, which for the recurrent step of an LSTM costs more
/// than the arithmetic; here `b` is packed once per sequence.
///
/// # Panics
/// When the shapes do not agree, a view reaches past its buffer, or `a` is not row-major (a
/// bug in the caller).
pub fn matmul_rows(dst: MatMut<'_>, a: Mat<'_>, b: &Panels, accumulate: bool) {
    assert_eq!(a.cols, b.k, "inner dimensions differ");
    assert_eq!((dst.rows, dst.cols), (a.rows, b.n), "output shape differs");
    assert!(a.col_stride == 1, "`a` must be row-major");
    if a.rows == 1 {
        // One row (a recurrent step of batch 1): shared among the cores where it pays.
        return matvec(&mut dst.data[..b.n], &a.data[..b.k], b, accumulate);
    }
    products(dst, a, &b.data, accumulate);
}

/// Smallest product (values of `b`) that [`matvec`] shares among threads: below it, handing a
/// share to another core costs more than streaming it.
const PARALLEL_MIN: usize = 1 << 17;

/// `dst = a * b` (or `+=`) for a single row `a`: a recurrent step of batch 1. Such a step reads
/// every weight once and does little arithmetic with it, so one core is bound by how fast it
/// streams memory; a large `b` is split by columns among rayon's threads, each streaming its
/// own panels. Each column is summed in the same order whatever the split, so the result does
/// not depend on the number of threads.
///
/// # Panics
/// When the lengths do not agree with `b` (a bug in the caller).
pub fn matvec(dst: &mut [f32], a: &[f32], b: &Panels, accumulate: bool) {
    assert_eq!(a.len(), b.k, "inner dimensions differ");
    assert_eq!(dst.len(), b.n, "output length differs");
    let panels = b.n.div_ceil(COLS);
    let threads = rayon::current_num_threads().min(panels);
    if threads < 2 || b.k * b.n < PARALLEL_MIN {
        return products(
            MatMut::dense(dst, 1, b.n),
            Mat::dense(a, 1, b.k),
            &b.data,
            accumulate,
        );
    }
    let per_part = panels.div_ceil(threads);
    b.data
        .par_chunks(per_part * b.k * COLS)
        .zip(dst.par_chunks_mut(per_part * COLS))
        .for_each(|(data, d)| {
            let n = d.len();
            products(
                MatMut::dense(d, 1, n),
                Mat::dense(a, 1, b.k),
                data,
                accumulate,
            )
        });
}

/// `dst = a * b` (or `+=`) with `b` given as its panels (`a.cols` rows by `dst.cols` columns).
fn products(dst: MatMut<'_>, a: Mat<'_>, panels: &[f32], accumulate: bool) {
    debug_assert_eq!(panels.len(), dst.cols.div_ceil(COLS) * a.cols * COLS);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA (checked at run time just above).
        return unsafe { products_avx2(dst, a, panels, accumulate) };
    }
    products_impl::<false>(dst, a, panels, accumulate)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn products_avx2(dst: MatMut<'_>, a: Mat<'_>, panels: &[f32], accumulate: bool) {
    products_impl::<true>(dst, a, panels, accumulate)
}

#[inline(always)]
fn products_impl<const FUSED: bool>(dst: MatMut<'_>, a: Mat<'_>, panels: &[f32], accumulate: bool) {
    let (m, n) = (a.rows, dst.cols);
    let (d, ldd) = (&mut *dst.data, dst.row_stride);
    let mut i0 = 0;
    while i0 < m {
        let rows = ROWS.min(m - i0);
        match rows {
            5 => block::<5, FUSED>(d, ldd, a, panels, n, i0, accumulate),
            4 => block::<4, FUSED>(d, ldd, a, panels, n, i0, accumulate),
            3 => block::<3, FUSED>(d, ldd, a, panels, n, i0, accumulate),
            2 => block::<2, FUSED>(d, ldd, a, panels, n, i0, accumulate),
            _ => block::<1, FUSED>(d, ldd, a, panels, n, i0, accumulate),
        }
        i0 += rows;
    }
}

#[inline(always)]
fn block<const R: usize, const FUSED: bool>(
    dst: &mut [f32],
    ldd: usize,
    a: Mat<'_>,
    panels: &[f32],
    n: usize,
    i0: usize,
    accumulate: bool,
) {
    let k = a.cols;
    let a_rows: [&[f32]; R] = std::array::from_fn(|r| &a.data[(i0 + r) * a.row_stride..][..k]);
    for (q, panel) in panels.chunks_exact(k * COLS).enumerate() {
        let mut acc = [[0f32; COLS]; R];
        for (p, brow) in panel.chunks_exact(COLS).enumerate() {
            for r in 0..R {
                let av = a_rows[r][p];
                for x in 0..COLS {
                    acc[r][x] = if FUSED {
                        av.mul_add(brow[x], acc[r][x])
                    } else {
                        acc[r][x] + av * brow[x]
                    };
                }
            }
        }
        let j0 = q * COLS;
        let width = COLS.min(n - j0);
        for (r, row) in acc.iter().enumerate() {
            let d = &mut dst[(i0 + r) * ldd + j0..][..width];
            if accumulate {
                for (d, v) in d.iter_mut().zip(row) {
                    *d += v;
                }
            } else {
                d.copy_from_slice(&row[..width]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn products_of_views_match_the_naive_product() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let expected = naive(&a, &b, m, k, n);
        let mut out = vec![0.0; m * n];
        matmul(
            MatMut::dense(&mut out, m, n),
            Mat::dense(&a, m, k),
            Mat::dense(&b, k, n),
            false,
        );
        for (x, y) in out.iter().zip(&expected) {
            assert!((x - y).abs() < 1e-5);
        }
        // b stored transposed, read through a transposed view, accumulated twice.
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        matmul(
            MatMut::dense(&mut out, m, n),
            Mat::dense(&a, m, k),
            Mat::dense(&bt, n, k).t(),
            true,
        );
        for (x, y) in out.iter().zip(&expected) {
            assert!((x - 2.0 * y).abs() < 1e-5);
        }
    }

    /// Sizes whose product overflows would wrap to an index inside the buffer: refused.
    #[test]
    #[should_panic(expected = "matrix view out of bounds")]
    fn a_view_whose_extent_overflows_is_refused() {
        Mat::rows(&[0.0; 4], 3, 1, 1 << (usize::BITS - 1));
    }

    #[test]
    #[should_panic(expected = "matrix view out of bounds")]
    fn a_writable_view_whose_extent_overflows_is_refused() {
        MatMut::rows(&mut [0.0; 4], 3, 1, 1 << (usize::BITS - 1));
    }

    #[test]
    fn row_blocked_products_match_for_every_row_and_column_count() {
        for (m, k, n) in [(1, 3, 16), (7, 9, 37), (10, 33, 64), (5, 1, 17)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
            let expected = naive(&a, &b, m, k, n);
            let mut out = vec![1.0; m * n];
            matmul_rows(
                MatMut::dense(&mut out, m, n),
                Mat::dense(&a, m, k),
                &Panels::pack(Mat::dense(&b, k, n)),
                false,
            );
            for (x, y) in out.iter().zip(&expected) {
                assert!((x - y).abs() < 1e-5, "{m}x{k}x{n}: {x} vs {y}");
            }
            matmul_rows(
                MatMut::dense(&mut out, m, n),
                Mat::dense(&a, m, k),
                &Panels::pack(Mat::dense(&b, k, n).t().t()),
                true,
            );
            for (x, y) in out.iter().zip(&expected) {
                assert!((x - 2.0 * y).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn shared_matvec_matches_the_serial_product_bit_for_bit() {
        // Wide enough to be shared, with a last panel of 5 columns, on 1, 2 and 3 threads.
        let (k, n) = (300, 517);
        assert!(k * n >= PARALLEL_MIN);
        let a: Vec<f32> = (0..k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let panels = Panels::pack(Mat::dense(&b, k, n));
        // The unshared kernel (matmul_rows shares one row itself).
        let mut serial = vec![0.5; n];
        products(
            MatMut::dense(&mut serial, 1, n),
            Mat::dense(&a, 1, k),
            &panels.data,
            true,
        );
        let expected = naive(&a, &b, 1, k, n);
        for (x, y) in serial.iter().zip(&expected) {
            assert!((x - 0.5 - y).abs() < 1e-3, "{x} vs {y}");
        }
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut shared = vec![0.5; n];
            pool.install(|| matvec(&mut shared, &a, &panels, true));
            assert_eq!(shared, serial, "{threads} threads");
            pool.install(|| matvec(&mut shared, &a, &panels, false));
            let mut plain = vec![0.0; n];
            products(
                MatMut::dense(&mut plain, 1, n),
                Mat::dense(&a, 1, k),
                &panels.data,
                false,
            );
            assert_eq!(shared, plain, "{threads} threads, no accumulation");
        }
    }
}
