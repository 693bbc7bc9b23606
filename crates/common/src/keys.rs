//! The Redis key layout (DESIGN §5). Every key sluice touches is built here,
//! under a namespace so that tenants and tests can share one Redis.
//!
//! - counters: hash `<ns>:cnt:<kind>:<owner_id % B>`, field `owner_id / B`
//!   (a small integer, so the bucket stays a compact listpack);
//! - lists: ZSETs `<ns>:following:<uid>` / `<ns>:followers:<uid>`, score =
//!   followed-at in microseconds;
//! - IsFollow bloom filter: bitmap `<ns>:bloom:follow`;
//! - user profile cache: `<ns>:user:<uid>`;
//! - applied watermark: hash `<ns>:watermark`;
//! - syncer state: hashes `<ns>:{<ns>:syncer}:applied` (highest applied seq
//!   per partition), `…:epoch` (partition claims) and `…:offsets` (applied
//!   positions). They change together (the claim script, the fenced record
//!   of a batch), so they share a hash tag: one slot in a Redis Cluster.
//!
//! No other key carries a hash tag: in a cluster the counter buckets, lists
//! and bloom shards spread over every slot, and batches are split per slot
//! (`common::redis_conn`).

/// Default number of counter buckets B. With 1M users per kind that is ~244
/// fields per bucket, well under Redis' default `hash-max-listpack-entries` (512).
pub const DEFAULT_COUNTER_BUCKETS: u64 = 4096;

/// Counter kinds (`counter.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CounterKind {
    /// How many users `owner_id` follows.
    Following = 1,
    /// How many users follow `owner_id`.
    Followers = 2,
}

impl CounterKind {
    pub fn from_code(code: u64) -> Option<Self> {
        match code {
            1 => Some(Self::Following),
            2 => Some(Self::Followers),
            _ => None,
        }
    }
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// Builds namespaced keys.
#[derive(Debug, Clone)]
pub struct Keys {
    ns: String,
    buckets: u64,
    bloom: crate::bloom::BloomParams,
}

/// Where one counter lives: hash key and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSlot {
    pub key: String,
    pub field: u64,
}

impl Keys {
    /// `buckets` of 0 is treated as 1.
    pub fn new(namespace: &str, buckets: u64) -> Self {
        Self {
            ns: namespace.to_owned(),
            buckets: buckets.max(1),
            bloom: Default::default(),
        }
    }

    /// The same layout with another bloom filter size.
    pub fn with_bloom(mut self, bloom: crate::bloom::BloomParams) -> Self {
        self.bloom = bloom;
        self
    }

    /// Size and hash count of the IsFollow bloom filter at [`Keys::follow_bloom`].
    pub fn bloom(&self) -> crate::bloom::BloomParams {
        self.bloom
    }

    pub fn namespace(&self) -> &str {
        &self.ns
    }

    pub fn buckets(&self) -> u64 {
        self.buckets
    }

    /// The bucket hash and field holding `(owner_id, kind)`.
    pub fn counter(&self, kind: u8, owner_id: u64) -> CounterSlot {
        CounterSlot {
            key: format!("{}:cnt:{}:{}", self.ns, kind, owner_id % self.buckets),
            field: owner_id / self.buckets,
        }
    }

    /// Recovers the owner id from a bucket index and field.
    pub fn owner_of(&self, bucket: u64, field: u64) -> u64 {
        field * self.buckets + bucket
    }

    pub fn following(&self, uid: u64) -> String {
        format!("{}:following:{}", self.ns, uid)
    }

    pub fn followers(&self, uid: u64) -> String {
        format!("{}:followers:{}", self.ns, uid)
    }

    /// The bloom filter key holding the bits of `(from, to)`: the one
    /// bitmap `<ns>:bloom:follow`, or with shards `<ns>:bloom:follow:<i>`.
    pub fn follow_bloom(&self, from: u64, to: u64) -> String {
        self.bloom_shard_key(self.bloom.shard(from, to))
    }

    /// Every key of the bloom filter (one per shard).
    pub fn follow_bloom_keys(&self) -> Vec<String> {
        (0..self.bloom.shards())
            .map(|i| self.bloom_shard_key(i))
            .collect()
    }

    fn bloom_shard_key(&self, shard: u32) -> String {
        if self.bloom.shards() == 1 {
            format!("{}:bloom:follow", self.ns)
        } else {
            format!("{}:bloom:follow:{shard}", self.ns)
        }
    }

    pub fn user_profile(&self, uid: u64) -> String {
        format!("{}:user:{}", self.ns, uid)
    }

    /// ZSET of the most-followed users: member = user id, score = its
    /// followers count; every user with at least one follower (#21).
    pub fn leaderboard_followers(&self) -> String {
        format!("{}:leaderboard:followers", self.ns)
    }

    pub fn watermark(&self) -> String {
        format!("{}:watermark", self.ns)
    }

    /// Hash of the cache-syncer's progress: per `topic/partition`, the
    /// highest applied `sluice.seq` (replays of older events are skipped).
    pub fn syncer_applied(&self) -> String {
        self.syncer_key("applied")
    }

    /// Hash of the cache-syncer group's partition claims: per
    /// `topic/partition`, the epoch of its current owner (raised by each
    /// member that is assigned the partition). A write of a former owner is
    /// refused once the epoch moved on.
    pub fn syncer_epochs(&self) -> String {
        self.syncer_key("epoch")
    }

    /// Hash of the cache-syncer group's applied positions: per
    /// `topic/partition`, the offset after the last message whose batch is
    /// applied, recorded by its owner with the batch's writes. The
    /// watermark rests on it.
    pub fn syncer_offsets(&self) -> String {
        self.syncer_key("offsets")
    }

    /// Hash of the capped follow lists a batch may have left short, field
    /// `following:<uid>` or `followers:<uid>`, value the number of batches
    /// whose refill is still to run. Written with the batch, settled after
    /// the refill: a member killed in between leaves it for the next idle
    /// member.
    pub fn syncer_refills(&self) -> String {
        self.syncer_key("refills")
    }

    /// `<ns>:{<ns>:syncer}:<what>`: the syncer's state keys share one hash tag.
    fn syncer_key(&self, what: &str) -> String {
        format!("{ns}:{{{ns}:syncer}}:{what}", ns = self.ns)
    }

    /// Glob matching every key of this namespace (for tests and rebuilds).
    pub fn all_pattern(&self) -> String {
        format!("{}:*", self.ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_slot_splits_owner_into_bucket_and_field() {
        let k = Keys::new("ns", 1000);
        let slot = k.counter(CounterKind::Followers.code(), 123_456);
        assert_eq!(
            slot,
            CounterSlot {
                key: "ns:cnt:2:456".into(),
                field: 123
            }
        );
        assert_eq!(k.owner_of(456, 123), 123_456);
    }

    #[test]
    fn zero_buckets_does_not_divide_by_zero() {
        let k = Keys::new("ns", 0);
        assert_eq!(k.counter(1, 7).field, 7);
    }

    #[test]
    fn list_keys_are_namespaced() {
        let k = Keys::new("t1", 10);
        assert_eq!(k.following(5), "t1:following:5");
        assert_eq!(k.followers(5), "t1:followers:5");
        assert_eq!(k.all_pattern(), "t1:*");
    }
}
