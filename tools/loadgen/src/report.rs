//! The report: the workers' stats summed into one JSON object (req/s,
//! errors, latency percentiles, token-read and write counts) and its text
//! form.

use std::time::Duration;

use serde_json::{Value, json};

use crate::Args;
use crate::workers::Stats;

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1000.0
}

pub(crate) fn summary(a: &Args, all: &[Stats], elapsed: Duration) -> Value {
    let mut lat: Vec<u64> = all.iter().flat_map(|s| s.lat_us.iter().copied()).collect();
    lat.sort_unstable();
    let mut waits: Vec<u64> = all
        .iter()
        .flat_map(|s| s.token_wait_us.iter().copied())
        .collect();
    waits.sort_unstable();
    let sum = |f: fn(&Stats) -> u64| all.iter().map(f).sum::<u64>();
    let secs = elapsed.as_secs_f64();
    let mut out = json!({
        "scenario": format!("{:?}", a.scenario),
        "connections": a.connections,
        "target_rate": a.rate,
        "seconds": (secs * 10.0).round() / 10.0,
        "ok": lat.len(),
        "errors": sum(|s| s.errors),
        "req_per_s": (lat.len() as f64 / secs).round(),
        "latency_ms": {
            "p50": percentile(&lat, 0.50), "p90": percentile(&lat, 0.90),
            "p99": percentile(&lat, 0.99), "max": percentile(&lat, 1.0),
        },
    });
    let writes = sum(|s| s.writes);
    if writes > 0 {
        out["writes"] = json!(writes);
        out["writes_per_s"] = json!((writes as f64 / secs).round());
    }
    if !waits.is_empty() {
        out["token_reads"] = json!({
            "count": waits.len(),
            "stale": sum(|s| s.stale_with_token),
            "synced_cache": sum(|s| s.synced),
            "primary": sum(|s| s.primary),
            "added_wait_ms": {
                "p50": percentile(&waits, 0.50), "p99": percentile(&waits, 0.99),
                "max": percentile(&waits, 1.0),
            },
        });
        out["plain_reads_stale"] = json!(sum(|s| s.stale_without_token));
    }
    out
}

pub(crate) fn print_text(v: &Value) {
    let l = &v["latency_ms"];
    println!(
        "{}: {} ok, {} errors in {}s = {} req/s; latency p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        v["scenario"].as_str().unwrap_or(""),
        v["ok"],
        v["errors"],
        v["seconds"],
        v["req_per_s"],
        l["p50"],
        l["p90"],
        l["p99"],
        l["max"]
    );
    if let Some(w) = v.get("writes") {
        println!("  writes: {w} = {} /s", v["writes_per_s"]);
    }
    if let Some(t) = v.get("token_reads") {
        println!(
            "  token reads: {} ({} stale; {} from the synced cache, {} from MySQL); added wait p50 {} ms, p99 {} ms, max {} ms; stale reads without the token: {}",
            t["count"],
            t["stale"],
            t["synced_cache"],
            t["primary"],
            t["added_wait_ms"]["p50"],
            t["added_wait_ms"]["p99"],
            t["added_wait_ms"]["max"],
            v["plain_reads_stale"]
        );
    }
    if let Some(c) = v.get("chaos") {
        println!("  chaos check: {c}");
    }
}
