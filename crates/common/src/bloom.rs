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
    /// The filter is split into `2^shards_log2` bitmaps of
    /// `2^(bits_log2 - shards_log2)` bits each, a pair's bits all in one
    /// shard, so that a Redis Cluster spreads it over its slots. 0 (the
    /// default) is the one bitmap; in cluster mode 0 means 4 (16 shards of
    /// 1 MiB at the default size), see `RedisSettings::keys`.
    pub shards_log2: u8,
}

impl Default for BloomParams {
    fn default() -> Self {
        Self {
            bits_log2: 27,
            hashes: 7,
            shards_log2: 0,
        }
    }
}

impl BloomParams {
    /// How many bitmaps the filter is split into.
    pub fn shards(&self) -> u32 {
        1 << self
            .shards_log2
            .min(self.bits_log2.clamp(3, 32) - 3)
            .min(16)
    }

    /// The shard holding the bits of `(from, to)`, `< shards()`.
    pub fn shard(&self, from: u64, to: u64) -> u32 {
        let shards = u64::from(self.shards());
        if shards == 1 {
            return 0;
        }
        // The top bits of another mix: independent of the positions' low bits.
        ((splitmix64(pair_hash(from, to) ^ 0x5348_4152_4453) >> 32) % shards) as u32
    }

    /// Bit offsets of the pair `(from, to)` within its shard, each
    /// `< 2^bits_log2 / shards()`.
    pub fn positions(&self, from: u64, to: u64) -> impl Iterator<Item = u64> + use<> {
        let bits = u32::from(self.bits_log2.clamp(3, 32)) - self.shards().trailing_zeros();
        let mask = (1u64 << bits) - 1;
        let h1 = pair_hash(from, to);
        let h2 = splitmix64(h1) | 1;
        (0..u64::from(self.hashes.max(1))).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) & mask)
    }
}

fn pair_hash(from: u64, to: u64) -> u64 {
    splitmix64(from ^ splitmix64(to.wrapping_add(0x5175_1CE0)))
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
            shards_log2: 0,
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
    fn shards_split_the_bits_and_one_shard_is_the_plain_filter() {
        let one = BloomParams::default();
        let mut sharded = one;
        sharded.shards_log2 = 4;
        assert_eq!(one.shards(), 1);
        assert_eq!(sharded.shards(), 16);
        let mut seen = [0u32; 16];
        for i in 0..16_000u64 {
            assert_eq!(one.shard(i, i + 1), 0);
            let s = sharded.shard(i, i + 1);
            seen[s as usize] += 1;
            assert!(sharded.positions(i, i + 1).all(|b| b < 1 << 23));
            // The same pair always lands in the same shard and bits.
            assert_eq!(s, sharded.shard(i, i + 1));
        }
        // Every shard gets its share (1,000 expected each).
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "{seen:?}");
        // Never more shards than a tiny filter has bytes.
        let tiny = BloomParams {
            bits_log2: 4,
            hashes: 2,
            shards_log2: 8,
        };
        assert_eq!(tiny.shards(), 2);
        assert!(tiny.positions(1, 2).all(|b| b < 8));
    }

    #[test]
    fn false_positive_rate_is_near_the_design_point() {
        let p = BloomParams {
            bits_log2: 16,
            hashes: 7,
            shards_log2: 0,
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
