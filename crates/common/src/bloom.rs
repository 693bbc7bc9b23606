//! The IsFollow bloom filter's bit positions (DESIGN §5).
//!
//! The filter is a plain Redis bitmap (`Keys::follow_bloom`): Debian's Redis
//! has no RedisBloom module. The cache-syncer sets the bits of every active
//! follow; readers test them. A clear bit means "certainly not following"; all
//! bits set means "maybe", to be confirmed. The hash must never change: the
//! writer and every reader compute positions with this function.
//!
//! Positions come from double hashing (Kirsch–Mitzenmacher) over a
//! splitmix64 mix of the pair, which is stable across Rust versions and
//! platforms (unlike `std`'s `DefaultHasher`).

use serde::{Deserialize, Serialize};

/// Size and hash count of the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BloomParams {
    /// The bitmap has `2^bits_log2` bits (27 → 16 MiB, ~1% false positives
    /// at 14M follows with 7 hashes).
    pub bits_log2: u8,
    /// Number of bit positions per pair.
    pub hashes: u32,
}

impl Default for BloomParams {
    fn default() -> Self {
        Self {
            bits_log2: 27,
            hashes: 7,
        }
    }
}

impl BloomParams {
    /// Bit offsets of the pair `(from, to)`, each `< 2^bits_log2`.
    pub fn positions(&self, from: u64, to: u64) -> impl Iterator<Item = u64> + use<> {
        let bits = self.bits_log2.clamp(3, 32);
        let mask = (1u64 << bits) - 1;
        let h1 = splitmix64(from ^ splitmix64(to.wrapping_add(0x5175_1CE0)));
        let h2 = splitmix64(h1) | 1;
        (0..u64::from(self.hashes.max(1))).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) & mask)
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_stable_and_in_range() {
        let p = BloomParams {
            bits_log2: 20,
            hashes: 5,
        };
        let a: Vec<u64> = p.positions(1, 2).collect();
        assert_eq!(a.len(), 5);
        assert!(a.iter().all(|&x| x < 1 << 20));
        assert_eq!(a, p.positions(1, 2).collect::<Vec<_>>());
        // Direction matters: 1→2 is not 2→1.
        assert_ne!(a, p.positions(2, 1).collect::<Vec<_>>());
        // Pinned values: a change here breaks every filter already in Redis.
        assert_eq!(
            BloomParams::default().positions(7, 9).next(),
            Some(splitmix64(7 ^ splitmix64(9 + 0x5175_1CE0)) & ((1 << 27) - 1))
        );
    }

    #[test]
    fn false_positive_rate_is_near_the_design_point() {
        let p = BloomParams {
            bits_log2: 16,
            hashes: 7,
        };
        let mut bits = vec![false; 1 << 16];
        for i in 0..6_000u64 {
            for b in p.positions(i, i + 1) {
                bits[b as usize] = true;
            }
        }
        let fp = (100_000..110_000u64)
            .filter(|&i| p.positions(i, 3).all(|b| bits[b as usize]))
            .count();
        // ~9.2 bits per item with 7 hashes: ~1%.
        assert!(fp < 300, "{fp} false positives in 10000");
    }
}
