//! Memory benchmark (not a test): Redis bytes of the follow-list ZSETs
//! (`<ns>:following:<uid>`, `<ns>:followers:<uid>`, score = follow time in
//! µs) as the cache-syncer keeps them, capped at `list_cap` newest entries,
//! next to the same lists uncapped, in the same run.
//!
//! 1,000,000 users; each user's follower count is Pareto-distributed
//! (α = 1.2, the same tail as `syncer_memory`: most users have a handful,
//! a few have hundreds of thousands), its followers drawn uniformly from the
//! other users, so following counts come out near their mean. Each list is
//! written with ZADD into a private redis-server started for the run; lists
//! up to `zset-max-listpack-entries` members are listpacks, longer ones
//! skiplists, and the two are measured apart.
//!
//! Run: `make bench-list-memory` (or `cargo bench -p cache-syncer --bench list_memory`).
//! Env: `BENCH_USERS` (1000000), `BENCH_LIST_CAP` (1000), `BENCH_SEED` (42).

mod benchkit;

use std::time::Instant;

use benchkit::{config, env_or, pareto, start_redis, used_memory};
use common::keys::Keys;
use rand::{Rng, SeedableRng};

/// One list: its key and its members with their scores, newest first.
type List = (String, Vec<(u32, i64)>);

/// Writes `lists` (each cut to `cap` newest entries when given) and returns
/// the entries written.
async fn load(
    conn: &mut redis::aio::ConnectionManager,
    lists: &[&List],
    cap: Option<usize>,
) -> u64 {
    let mut pipe = redis::pipe();
    let (mut queued, mut written) = (0usize, 0u64);
    for (key, members) in lists {
        let keep = cap.map_or(members.len(), |c| members.len().min(c));
        for chunk in members[..keep].chunks(1000) {
            let items: Vec<(i64, u32)> = chunk.iter().map(|&(m, s)| (s, m)).collect();
            pipe.zadd_multiple(key, &items).ignore();
            queued += chunk.len();
        }
        written += keep as u64;
        if queued >= 20_000 {
            let _: () = pipe.query_async(conn).await.expect("zadd");
            pipe = redis::pipe();
            queued = 0;
        }
    }
    let _: () = pipe.query_async(conn).await.expect("zadd");
    written
}

#[tokio::main]
async fn main() {
    let users: u32 = env_or("BENCH_USERS", 1_000_000);
    let cap: usize = env_or("BENCH_LIST_CAP", 1000);
    let seed: u64 = env_or("BENCH_SEED", 42);
    let (redis, mut conn, version) = start_redis().await;
    let listpack_max: usize = config(&mut conn, "zset-max-listpack-entries")
        .await
        .parse()
        .unwrap_or(128);
    let keys = Keys::new("sluice", 4096);

    // The graph: (from, to, at µs), follows over one year.
    let started = Instant::now();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let year_us: i64 = 365 * 86_400 * 1_000_000;
    let t0: i64 = 1_764_000_000_000_000;
    let mut edges: Vec<(u32, u32, i64)> = Vec::new();
    for to in 1..=users {
        let followers = pareto(&mut rng, 1.2, f64::from(users - 1));
        for _ in 0..followers {
            let mut from = rng.random_range(1..=users);
            if from == to {
                from = if to == users { 1 } else { to + 1 };
            }
            edges.push((from, to, t0 + rng.random_range(0..year_us)));
        }
    }
    // Newest first within each list (a repeated pair is one more follow
    // time; ZADD keeps the last).
    let mut lists: Vec<List> = Vec::with_capacity(2 * users as usize);
    for (by_from, name) in [(true, "following"), (false, "followers")] {
        edges.sort_unstable_by_key(|&(f, t, at)| {
            let owner = if by_from { f } else { t };
            (owner, std::cmp::Reverse(at))
        });
        let mut at = 0;
        while at < edges.len() {
            let owner = if by_from { edges[at].0 } else { edges[at].1 };
            let mut members = Vec::new();
            while at < edges.len() && (if by_from { edges[at].0 } else { edges[at].1 }) == owner {
                let other = if by_from { edges[at].1 } else { edges[at].0 };
                members.push((other, edges[at].2));
                at += 1;
            }
            let key = if name == "following" {
                keys.following(u64::from(owner))
            } else {
                keys.followers(u64::from(owner))
            };
            lists.push((key, members));
        }
    }
    let generate_secs = started.elapsed().as_secs_f64();
    let longest = lists.iter().map(|l| l.1.len()).max().unwrap_or(0);
    let at_cap = lists.iter().filter(|l| l.1.len() >= cap).count();

    // Capped (sluice): listpack-sized lists, then the longer ones.
    let small: Vec<&List> = lists
        .iter()
        .filter(|l| l.1.len().min(cap) <= listpack_max)
        .collect();
    let large: Vec<&List> = lists
        .iter()
        .filter(|l| l.1.len().min(cap) > listpack_max)
        .collect();
    let base = used_memory(&mut conn).await;
    let started = Instant::now();
    let small_entries = load(&mut conn, &small, Some(cap)).await;
    let after_small = used_memory(&mut conn).await;
    let large_entries = load(&mut conn, &large, Some(cap)).await;
    let capped_mem = used_memory(&mut conn).await - base;
    let capped_secs = started.elapsed().as_secs_f64();
    let small_mem = after_small - base;
    let large_mem = capped_mem - small_mem;
    let capped_entries = small_entries + large_entries;

    // Uncapped, for comparison: every edge in both lists, in a fresh
    // server (a FLUSHALL of this much outlasts the client's timeout).
    drop(redis);
    let (_redis, mut conn, _) = start_redis().await;
    let base = used_memory(&mut conn).await;
    let all: Vec<&List> = lists.iter().collect();
    let all_entries = load(&mut conn, &all, None).await;
    let uncapped_mem = used_memory(&mut conn).await - base;

    let per = |mem: i64, n: u64| if n == 0 { 0.0 } else { mem as f64 / n as f64 };
    let mib = |b: i64| b as f64 / (1024.0 * 1024.0);
    println!(
        "# list_memory: redis {version}, {users} users, {} follows (Pareto α = 1.2 followers), \
         {} non-empty lists, longest {longest}, {at_cap} at or over the cap of {cap}; \
         zset-max-listpack-entries {listpack_max}; graph built in {generate_secs:.1}s, capped lists written in {capped_secs:.1}s",
        edges.len(),
        lists.len()
    );
    println!("| layout | lists | entries | used_memory | bytes per entry | bytes per user |");
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, n_lists: usize, entries: u64, mem: i64| {
        println!(
            "| {name} | {n_lists} | {entries} | {:.1} MiB | {:.1} | {:.1} |",
            mib(mem),
            per(mem, entries),
            mem as f64 / f64::from(users)
        );
    };
    row(
        &format!("capped at {cap}: listpack lists (≤ {listpack_max})"),
        small.len(),
        small_entries,
        small_mem,
    );
    row(
        &format!("capped at {cap}: skiplist lists"),
        large.len(),
        large_entries,
        large_mem,
    );
    row(
        &format!("capped at {cap} (sluice), all"),
        lists.len(),
        capped_entries,
        capped_mem,
    );
    row("uncapped", lists.len(), all_entries, uncapped_mem);
}
