//! The report: the workers' stats summed into one JSON object (req/s,
//! errors, latency percentiles, requests by status, token-read and write
//! counts), its text form, and the error-rate rule of the exit status
//! (`--max-error-rate`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::status::{breakdown, format_breakdown};
use crate::workers::Stats;
use crate::{Args, Scenario};

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
        "status": breakdown(all.iter().map(|s| &s.status)),
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
    if let Some(Value::Object(status)) = v.get("status") {
        let by_label = status
            .iter()
            .map(|(label, n)| (label.clone(), n.as_u64().unwrap_or(0)))
            .collect();
        println!("  status: {}", format_breakdown(&by_label));
    }
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

/// Requests counted (every status) and errors of a run.
pub(crate) fn totals(all: &[Stats]) -> (u64, u64) {
    (
        all.iter().map(|s| s.status.total()).sum(),
        all.iter().map(|s| s.errors).sum(),
    )
}

/// The error-rate threshold that applies to a run: `--max-error-rate`
/// when given, else [`DEFAULT_MAX_ERROR_RATE`], except for `chaos`, whose
/// injected faults cause errors by design: it has no threshold unless one
/// is given (its own rule is that no acknowledged write is lost).
pub(crate) fn max_error_rate(scenario: Scenario, given: Option<f64>) -> Option<f64> {
    match (given, scenario) {
        (Some(max), _) => Some(max),
        (None, Scenario::Chaos) => None,
        (None, _) => Some(DEFAULT_MAX_ERROR_RATE),
    }
}

/// Percent of the requests that may fail before the exit status is 1.
pub(crate) const DEFAULT_MAX_ERROR_RATE: f64 = 1.0;

/// The error-rate rule: a run fails when it made no request at all, or
/// when errors / requests × 100 exceeds `max` (percent; `None`: no limit).
/// `Err` holds the line to print.
pub(crate) fn check_error_rate(requests: u64, errors: u64, max: Option<f64>) -> Result<(), String> {
    if requests == 0 {
        return Err("the run made no requests".to_owned());
    }
    let Some(max) = max else {
        return Ok(());
    };
    let rate = errors as f64 * 100.0 / requests as f64;
    if rate > max {
        return Err(format!(
            "error rate {}% ({errors} of {requests} requests) exceeds --max-error-rate {max}%",
            percent_above(rate, max)
        ));
    }
    Ok(())
}

/// `rate` with one decimal, or more when one would not show it above `max`
/// (1.04 against 1: `1.04`, not `1.0`).
fn percent_above(rate: f64, max: f64) -> String {
    (1..=4)
        .map(|decimals| format!("{rate:.decimals$}"))
        .find(|s| s.parse::<f64>().is_ok_and(|shown| shown > max))
        .unwrap_or_else(|| rate.to_string())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::status::Status;

    #[test]
    fn the_error_rate_rule() {
        // No request at all fails, whatever the threshold (chaos too).
        assert_eq!(
            check_error_rate(0, 0, Some(1.0)),
            Err("the run made no requests".to_owned())
        );
        assert!(check_error_rate(0, 0, None).is_err());
        // At the threshold passes; above it fails.
        assert_eq!(check_error_rate(100, 1, Some(1.0)), Ok(()));
        assert_eq!(check_error_rate(100, 0, Some(0.0)), Ok(()));
        assert_eq!(
            check_error_rate(1000, 372, Some(1.0)),
            Err("error rate 37.2% (372 of 1000 requests) exceeds --max-error-rate 1%".to_owned())
        );
        assert_eq!(
            check_error_rate(10_000, 104, Some(1.0)),
            Err("error rate 1.04% (104 of 10000 requests) exceeds --max-error-rate 1%".to_owned())
        );
        assert_eq!(
            check_error_rate(1000, 1, Some(0.0)),
            Err("error rate 0.1% (1 of 1000 requests) exceeds --max-error-rate 0%".to_owned())
        );
        assert_eq!(
            check_error_rate(4, 1, Some(2.5)),
            Err("error rate 25.0% (1 of 4 requests) exceeds --max-error-rate 2.5%".to_owned())
        );
        // Every request failed, no threshold: passes (chaos's default).
        assert_eq!(check_error_rate(10, 10, None), Ok(()));
        assert_eq!(check_error_rate(10, 10, Some(100.0)), Ok(()));
    }

    #[test]
    fn chaos_has_no_threshold_unless_given() {
        assert_eq!(max_error_rate(Scenario::RestGet, None), Some(1.0));
        assert_eq!(max_error_rate(Scenario::GrpcUser, Some(5.0)), Some(5.0));
        assert_eq!(max_error_rate(Scenario::Chaos, None), None);
        assert_eq!(max_error_rate(Scenario::Chaos, Some(50.0)), Some(50.0));
    }

    #[test]
    fn the_summary_keeps_its_fields_and_adds_the_status_map() {
        let a = Args::try_parse_from(["sluice-loadgen", "rest-get", "-c", "2"]).unwrap();
        let mut one = Stats::default();
        for us in [1_000, 2_000, 3_000] {
            one.lat_us.push(us);
            one.record(Status::HTTP_OK, false);
        }
        one.record(Status::Http(429), true);
        let mut two = Stats::default();
        two.lat_us.push(4_000);
        two.record(Status::HTTP_OK, false);
        two.record(Status::Transport("io"), true);
        two.record(Status::Transport("io"), true);
        let all = [one, two];
        let v = summary(&a, &all, Duration::from_secs(2));
        assert_eq!(v["scenario"], "RestGet");
        assert_eq!(v["connections"], 2);
        assert_eq!(v["ok"], 4);
        assert_eq!(v["errors"], 3);
        assert_eq!(v["req_per_s"], 2.0);
        assert_eq!(v["seconds"], 2.0);
        assert_eq!(v["latency_ms"]["p50"], 3.0);
        assert_eq!(v["latency_ms"]["max"], 4.0);
        assert_eq!(v["status"], json!({"200": 4, "429": 1, "io": 2}));
        assert_eq!(
            v["status"].as_object().unwrap().keys().collect::<Vec<_>>(),
            ["200", "429", "io"]
        );
        assert_eq!(totals(&all), (7, 3));
        assert!(v.get("writes").is_none() && v.get("token_reads").is_none());
    }

    #[test]
    fn a_run_without_requests_has_an_empty_status_map() {
        let a = Args::try_parse_from(["sluice-loadgen", "grpc-user"]).unwrap();
        let v = summary(&a, &[Stats::default()], Duration::from_secs(1));
        assert_eq!(v["status"], json!({}));
        assert_eq!(v["errors"], 0);
        assert_eq!(totals(&[Stats::default()]), (0, 0));
    }
}
