//! What every optimiser's draw must pass before it is offered: a point the
//! KB's orders admit, different from the incumbent and from every trial so
//! far (a repeat would spend a trial to learn nothing), and the seeded
//! generator each call starts from.

use super::super::Values;
use super::super::candidate::Proposal;
use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

/// Draws an optimiser makes for one proposal before it gives up (a space with no new point left).
pub const TRIES: usize = 64;

/// The generator of one proposal: the source's seed mixed with the trial number, so a resumed tune draws what the uninterrupted one would.
pub fn rng(seed: u64, salt: u64, history_len: usize) -> Pcg64Mcg {
    let mut z = seed ^ salt.wrapping_mul(0xD6E8FEB86659FD93);
    z = z.wrapping_add((history_len as u64 + 1).wrapping_mul(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    Pcg64Mcg::seed_from_u64(z ^ (z >> 31))
}

/// Whether `values` is worth a trial: admitted by the space's orders, not the incumbent, not tried before.
pub fn fresh(p: &Proposal, values: &Values) -> bool {
    values != p.incumbent && p.space.admits(values).is_ok() && !p.history.iter().any(|t| &t.values == values)
}

/// Point `index` of a Halton sequence rotated by a shift drawn from `seed` (one prime base per
/// dimension; past the primes listed, a plain draw), mapped into `bounds`: the first points of a
/// search cover the box more evenly than independent draws do.
pub fn spread(seed: u64, index: usize, bounds: &[(f64, f64)]) -> Vec<f64> {
    const PRIMES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    let mut shift_rng = rng(seed, 0x48414c54, 0);
    bounds
        .iter()
        .enumerate()
        .map(|(d, &(lo, hi))| {
            let shift: f64 = rand::RngExt::random(&mut shift_rng);
            let h = match PRIMES.get(d) {
                Some(&b) => radical_inverse(index as u64 + 1, b),
                None => rand::RngExt::random(&mut rng(seed, d as u64, index)),
            };
            lo + ((h + shift).fract()) * (hi - lo)
        })
        .collect()
}

/// The base-`b` radical inverse of `i` (the Halton sequence's coordinate).
fn radical_inverse(mut i: u64, b: u64) -> f64 {
    let (mut f, mut r) = (1.0, 0.0);
    while i > 0 {
        f /= b as f64;
        r += f * (i % b) as f64;
        i /= b;
    }
    r
}
