//! Distance kernels and int8 scalar quantization.
//!
//! The index works on unit-length vectors, so cosine similarity equals the inner product and the
//! distance is `1 - dot`. The kernels are written as fixed-width chunked loops with independent
//! accumulators, a shape LLVM auto-vectorizes (SSE2 on the x86-64 baseline; AVX2/AVX-512 with
//! `-C target-cpu=native`, which the benchmark script uses, as hnswlib uses `-march=native`).
//! No `unsafe` and no intrinsics. Checked in the release build's disassembly: with
//! `target-cpu=native` on this machine (AVX-512 + VNNI) the f32 loop is `vfmadd231ps` on zmm
//! registers and the int8 loop `vpdpwssd`; on the baseline target they are SSE2 `mulps`/`addps`
//! and `pmaddwd`. When the target has FMA the f32 kernel uses `mul_add`
//! (one instruction); without it `mul_add` would be a libm call, so it multiplies then adds.
//!
//! Quantization is symmetric and per vector: `scale = max|x| / 127`, `q = round(x / scale)`, so
//! `dot(x, y) ≈ scale_x * scale_y * Σ q_x q_y`. Codes stay in `[-127, 127]`, so a product of two
//! codes fits an i16 and LLVM can use `pmaddwd`/`vpdpwssd` on pairs of them.

use crate::error::{Error, Result};

/// Lanes per chunk: four 256-bit registers of f32, enough independent sums to hide FMA latency.
const F32_LANES: usize = 32;
/// Lanes per chunk for the int8 kernel.
const I8_LANES: usize = 32;

/// Inner product of two equally long f32 slices.
#[inline]
#[must_use]
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; F32_LANES];
    let ca = a.chunks_exact(F32_LANES);
    let cb = b.chunks_exact(F32_LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        // Fixed-size arrays drop the bounds checks so the loop becomes vector FMAs.
        let (Ok(x), Ok(y)) = (<&[f32; F32_LANES]>::try_from(x), <&[f32; F32_LANES]>::try_from(y))
        else {
            continue;
        };
        for i in 0..F32_LANES {
            acc[i] = fmadd(x[i], y[i], acc[i]);
        }
    }
    // A tree reduction: a serial sum of 32 lanes would be a chain of 31 dependent additions.
    // `black_box` keeps LLVM's SLP vectorizer from reshaping the main loop around the reduction
    // (it otherwise picks 2-lane vectors); it costs one store and reload of the accumulators.
    let acc = std::hint::black_box(acc);
    let mut r = [0.0f32; 8];
    for i in 0..8 {
        r[i] = (acc[i] + acc[i + 8]) + (acc[i + 16] + acc[i + 24]);
    }
    let mut sum = ((r[0] + r[4]) + (r[1] + r[5])) + ((r[2] + r[6]) + (r[3] + r[7]));
    for (x, y) in ra.iter().zip(rb) {
        sum = fmadd(*x, *y, sum);
    }
    sum
}

#[inline(always)]
fn fmadd(x: f32, y: f32, acc: f32) -> f32 {
    #[cfg(target_feature = "fma")]
    {
        x.mul_add(y, acc)
    }
    #[cfg(not(target_feature = "fma"))]
    {
        x * y + acc
    }
}

/// Inner product of two int8 code slices, exact in i32 for any length below 2^17.
/// (With AVX-512 VNNI this compiles to `vpdpwssd`; with AVX2 to `vpmaddwd`.)
#[inline]
#[must_use]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; I8_LANES];
    let ca = a.chunks_exact(I8_LANES);
    let cb = b.chunks_exact(I8_LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        let (Ok(x), Ok(y)) = (<&[i8; I8_LANES]>::try_from(x), <&[i8; I8_LANES]>::try_from(y))
        else {
            continue;
        };
        for i in 0..I8_LANES {
            acc[i] += i32::from(x[i]) * i32::from(y[i]);
        }
    }
    let mut sum: i32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += i32::from(*x) * i32::from(*y);
    }
    sum
}

/// Checks a vector is finite and non-zero, then scales it to unit length in place.
pub fn normalize(v: &mut [f32]) -> Result<()> {
    if v.iter().any(|x| !x.is_finite()) {
        return Err(Error::InvalidVector("it contains NaN or infinity"));
    }
    let norm = dot_f32(v, v).sqrt();
    if !norm.is_finite() || norm <= f32::MIN_POSITIVE {
        return Err(Error::InvalidVector("its norm is zero"));
    }
    let inv = 1.0 / norm;
    for x in v.iter_mut() {
        *x *= inv;
    }
    Ok(())
}

/// Quantizes `v` into `out` (same length) and returns the scale (`max|v| / 127`).
pub fn quantize_i8(v: &[f32], out: &mut [i8]) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max <= 0.0 || !max.is_finite() {
        out.iter_mut().for_each(|q| *q = 0);
        return 0.0;
    }
    let scale = max / 127.0;
    let inv = 127.0 / max;
    for (q, x) in out.iter_mut().zip(v) {
        // The clamp makes the cast exact: the value is within [-127, 127].
        *q = (x * inv).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum()
    }

    proptest! {
        #[test]
        fn f32_kernel_matches_naive(v in prop::collection::vec((-1.0f32..1.0, -1.0f32..1.0), 0..200)) {
            let (a, b): (Vec<f32>, Vec<f32>) = v.into_iter().unzip();
            let got = f64::from(dot_f32(&a, &b));
            prop_assert!((got - naive(&a, &b)).abs() < 1e-4, "{got}");
        }

        #[test]
        fn i8_kernel_is_exact(v in prop::collection::vec((-127i8..=127, -127i8..=127), 0..300)) {
            let (a, b): (Vec<i8>, Vec<i8>) = v.into_iter().unzip();
            let want: i32 = a.iter().zip(&b).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
            prop_assert_eq!(dot_i8(&a, &b), want);
        }

        #[test]
        fn quantized_dot_is_close(v in prop::collection::vec((-1.0f32..1.0, -1.0f32..1.0), 8..400)) {
            let (mut a, mut b): (Vec<f32>, Vec<f32>) = v.into_iter().unzip();
            prop_assume!(normalize(&mut a).is_ok() && normalize(&mut b).is_ok());
            let (mut qa, mut qb) = (vec![0i8; a.len()], vec![0i8; b.len()]);
            let (sa, sb) = (quantize_i8(&a, &mut qa), quantize_i8(&b, &mut qb));
            let approx = dot_i8(&qa, &qb) as f32 * sa * sb;
            // Each code is off by at most half a step; the error of the dot is far below 0.05.
            prop_assert!((approx - dot_f32(&a, &b)).abs() < 0.05, "{approx}");
        }
    }

    #[test]
    fn normalize_rejects_bad_vectors() {
        assert_eq!(normalize(&mut [0.0, 0.0]).map_err(|e| e.code()), Err("invalid_vector"));
        assert!(normalize(&mut [f32::NAN, 1.0]).is_err());
        assert!(normalize(&mut [f32::INFINITY, 1.0]).is_err());
        let mut v = [3.0, 4.0];
        normalize(&mut v).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn quantize_extremes() {
        let mut q = [0i8; 3];
        let s = quantize_i8(&[1.0, -1.0, 0.5], &mut q);
        assert_eq!(q, [127, -127, 64]);
        assert!((s - 1.0 / 127.0).abs() < 1e-9);
        assert_eq!(quantize_i8(&[0.0; 3], &mut q), 0.0);
        assert_eq!(q, [0; 3]);
    }
}
