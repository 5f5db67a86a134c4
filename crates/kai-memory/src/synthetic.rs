//! Deterministic synthetic data for tests and benchmarks: unit vectors drawn around random
//! unit centroids (Gaussian noise), the shape of the project's ANN survey data. Real
//! embeddings are harder at the same `ef`; re-measure on project data.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::distance::normalize;

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.r#gen();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Clustered data: `centroids` random unit centroids (from `seed`) and points around them.
pub struct Clustered {
    dim: usize,
    centroids: Vec<f32>,
    noise: f32,
}

impl Clustered {
    /// `noise` is the norm of the perturbation relative to the unit centroid (1.0 = 45°).
    #[must_use]
    pub fn new(dim: usize, centroids: usize, noise: f32, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut c = Vec::with_capacity(dim * centroids);
        for _ in 0..centroids {
            let start = c.len();
            c.extend((0..dim).map(|_| gaussian(&mut rng)));
            if normalize(&mut c[start..]).is_err() {
                c[start] = 1.0;
            }
        }
        Self { dim, centroids: c, noise }
    }

    /// `n` unit vectors, row-major, from the stream `seed`.
    #[must_use]
    pub fn sample(&self, n: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let clusters = self.centroids.len() / self.dim.max(1);
        let scale = self.noise / (self.dim as f32).sqrt();
        let mut out = Vec::with_capacity(n * self.dim);
        for _ in 0..n {
            let c = rng.gen_range(0..clusters.max(1)) * self.dim;
            let start = out.len();
            for i in 0..self.dim {
                let base = self.centroids.get(c + i).copied().unwrap_or(0.0);
                out.push(base + scale * gaussian(&mut rng));
            }
            if normalize(&mut out[start..]).is_err() {
                out[start] = 1.0;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_unit_and_deterministic() {
        let g = Clustered::new(16, 4, 0.5, 1);
        let a = g.sample(10, 2);
        assert_eq!(a, Clustered::new(16, 4, 0.5, 1).sample(10, 2));
        assert_ne!(a, g.sample(10, 3));
        for v in a.chunks_exact(16) {
            let n: f32 = v.iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-4);
        }
    }
}
