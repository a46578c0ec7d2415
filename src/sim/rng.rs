//! Seeded random streams: one independent, named stream per workload, so
//! adding a workload never shifts another's random numbers.

use rand::SeedableRng;
use rand_pcg::Pcg64Mcg;

/// The generator every simulation uses (named, never `StdRng`, so runs reproduce across rand versions).
pub type SimRng = Pcg64Mcg;

/// A stream derived from `seed` and a stream name.
pub fn stream(seed: u64, name: &str) -> SimRng {
    let mut h: u64 = 0xcbf29ce484222325 ^ seed.wrapping_mul(0x9E3779B97F4A7C15);
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    SimRng::seed_from_u64(h)
}

/// Derives the seed of trial `i` from a run seed.
pub fn trial_seed(seed: u64, i: usize) -> u64 {
    let mut z = seed.wrapping_add((i as u64 + 1).wrapping_mul(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    z ^ (z >> 31)
}
