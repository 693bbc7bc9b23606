//! `sluice-loadgen`: the load generator of sluice (its ghz and wrk in one).
//!
//! Runs one scenario with `-c` connections for `-d` seconds, either as fast
//! as possible (closed loop: each connection sends its next request when the
//! previous answer arrives) or at a fixed total `--rate` (open loop: requests
//! are scheduled, and latency counts from the scheduled time, so a stall is
//! not hidden by the generator waiting with it). Prints req/s, errors and
//! latency percentiles, and the requests by status; `--json` prints one
//! JSON object instead (stdout holds only the report).
//!
//! ```text
//! sluice-loadgen rest-get    -c 100 -d 10 --path /v1/users/1
//! sluice-loadgen grpc-user   -c 100 -d 10 --id 1
//! sluice-loadgen grpc-list   -c 100 -d 10 --id 1
//! sluice-loadgen rest-follow -c 64  -d 10 --users 1000
//! sluice-loadgen rest-ryw    -c 16  -d 20 --rate 1000
//! sluice-loadgen chaos       -c 16  -d 60 --rate 200 --report .state/chaos/loadgen.json
//! ```
//!
//! - `rest-follow` registers `--users` users, then follows random pairs and
//!   counts committed follows (`changed: true`).
//! - `rest-ryw` gives each connection its own pair and toggles it (follow,
//!   unfollow, …); after each write it reads the target's follower count
//!   without the token (stale answers counted) and with it (must never be
//!   stale), and reports the wait the token added.
//! - `chaos` toggles worker-owned pairs at the given rate while an operator
//!   (`scripts/chaos.sh`) injects faults; afterwards it waits until the
//!   syncer has applied the newest acknowledged write (count-service
//!   AwaitApplied) and checks every pair against its last acknowledged
//!   state, through a token-carrying read. Exit status 1 when an
//!   acknowledged write is missing.
//! - `grpc-user` / `grpc-list` speak gRPC over a bare HTTP/2 connection per
//!   worker by default (`--client h2`: the request encoded with prost, sent
//!   on the `h2` connection, status read from the trailers, answer decoded),
//!   so the generator takes less of a shared machine; `--client tonic` uses
//!   a tonic channel per worker instead (a buffer task between caller and
//!   connection), as a typical Rust client would.
//!
//! Every counted request is tallied by its status: the HTTP status code in
//! the REST scenarios (`200`, `429`, `503`, …), the gRPC code name in the
//! gRPC scenarios (`OK`, `UNAVAILABLE`, …), or a transport failure:
//! `timeout`, `refused`, `closed` (the peer closed or reset the
//! connection), `reset` (an HTTP/2 stream reset or GOAWAY), `h2` (another
//! HTTP/2 error), `connect` (a gRPC worker could not connect),
//! `bad-response` (an answer that cannot be read, or not the one asked
//! for), `io` (any other I/O error), `encode` (the gRPC request could not
//! be built; not expected). The text report adds a line
//! `status: 200=9812 429=12 io=3`, the JSON object a map
//! `"status": {"200": 9812, "429": 12, "io": 3}`. `200` / `OK` are the
//! successes, every other status is one of the `errors`. The counted
//! requests are the ones in `ok` and `errors`, and in `rest-ryw` also the
//! token-carrying reads; its read without the token only counts stale
//! answers.
//!
//! Exit status: 0; 2 when the run could not start (registering the users
//! failed, …) or the report could not be written; 1 when the run failed:
//! - the run made no request, or errors / requests × 100 exceeds
//!   `--max-error-rate` percent (default 1; `0`: any error fails). A
//!   line on stderr says so: `error rate 37.2% (372 of 1000 requests)
//!   exceeds --max-error-rate 1%`. `chaos` has no threshold unless
//!   `--max-error-rate` is given: its faults cause errors by design (a
//!   write during a restart is refused or its outcome unknown), and what
//!   it checks is that no acknowledged write is lost (a chaos run with no
//!   request at all still fails);
//! - `chaos`: an acknowledged write is missing, or the pipeline did not
//!   catch up within `--settle`;
//! - `rest-ryw`: a token-carrying read was stale.
//!
//! Progress: a run of 10 s or more prints a line to stderr every 5 s,
//! `[10s/60s] 12,345 req, 1,234 req/s, errors 0` (requests and errors so
//! far, the rate over the last 5 s); `--quiet` turns those lines (and the
//! note on registered users) off. stdout is never written before the report.

mod grpc;
mod report;
mod rest;
mod scenarios;
mod status;
mod workers;

use std::sync::Arc;

use clap::{Parser, ValueEnum};

use report::{check_error_rate, max_error_rate, print_text, summary, totals};
use scenarios::{chaos_check, scenario};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    RestGet,
    GrpcUser,
    GrpcList,
    RestFollow,
    RestRyw,
    Chaos,
}

/// How the gRPC scenarios talk to the services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GrpcClient {
    /// A bare HTTP/2 connection per worker (the `h2` crate).
    H2,
    /// A tonic channel per worker.
    Tonic,
}

/// Where the follow scenarios write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WritesTo {
    Rest,
    Mysql,
}

#[derive(Debug, Parser)]
#[command(about = "Load generator for the sluice REST gateway and gRPC services")]
struct Args {
    scenario: Scenario,
    /// Connections (each one a worker).
    #[arg(short = 'c', long, default_value_t = 100)]
    connections: usize,
    /// Duration in seconds.
    #[arg(short = 'd', long, default_value_t = 10)]
    duration: u64,
    /// Total requests per second (open loop); 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Gateway address (host:port).
    #[arg(long, default_value = "127.0.0.1:8888")]
    rest: String,
    /// REST path of `rest-get`.
    #[arg(long, default_value = "/v1/users/1")]
    path: String,
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    user_grpc: String,
    #[arg(long, default_value = "http://127.0.0.1:8082")]
    relation_grpc: String,
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    count_grpc: String,
    /// gRPC client of `grpc-user` / `grpc-list`.
    #[arg(long, value_enum, default_value = "h2")]
    client: GrpcClient,
    /// User id read by `grpc-user` / `grpc-list`.
    #[arg(long, default_value_t = 1)]
    id: u64,
    /// Users registered by `rest-follow`.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// How long `chaos` waits for the pipeline to catch up afterwards (s).
    #[arg(long, default_value_t = 300)]
    settle: u64,
    /// Where `rest-follow`, `rest-ryw` and `chaos` send their follows:
    /// through the REST gateway, or straight into MySQL with
    /// relation-service's own follow transaction (for rates the gateway and
    /// service hops cannot reach on a small machine; the CDC pipeline
    /// behind it is the same, and reads still go through REST).
    #[arg(long, value_enum, default_value = "rest")]
    writes_to: WritesTo,
    /// MySQL of `--writes-to mysql` [default: DATABASE_URL, else the local stack's].
    #[arg(long)]
    mysql_url: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    /// Exit with status 1 when more than this percent of the requests
    /// failed (or none was made) [default: 1; `chaos`: no limit unless
    /// given].
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    max_error_rate: Option<f64>,
    /// No progress lines (runs of 10 s or more print one to stderr every
    /// 5 s) and no notes on stderr; errors are still printed.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// A percentage from 0 to 100.
fn parse_percent(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a percentage from 0 to 100")),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // A subscriber (logs at RUST_LOG, default info) also keeps the
    // transport crates' trace-level spans from being built at all: with
    // none installed, tracing's `log` fallback formats them per request
    // (~2% of this process's CPU in the gRPC scenarios, perf).
    let _telemetry = common::telemetry::init("sluice-loadgen");
    let a = Arc::new(Args::parse());
    let (all, took) = match scenario(a.clone()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sluice-loadgen: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut out = summary(&a, &all, took);
    let (requests, errors) = totals(&all);
    let mut failed = false;
    if a.scenario == Scenario::Chaos {
        match chaos_check(&a, &all).await {
            Ok(c) => {
                failed = c["lost_acknowledged_writes"].as_u64() != Some(0)
                    || c["pipeline_caught_up"] != true;
                out["chaos"] = c;
            }
            Err(e) => {
                eprintln!("sluice-loadgen: chaos check failed: {e:#}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    if a.scenario == Scenario::RestRyw && out["token_reads"]["stale"].as_u64() != Some(0) {
        failed = true;
    }
    if a.json {
        println!("{out}");
    } else {
        print_text(&out);
    }
    if let Some(path) = &a.report
        && let Err(e) = std::fs::write(path, format!("{out:#}\n"))
    {
        eprintln!("sluice-loadgen: cannot write {}: {e}", path.display());
        return std::process::ExitCode::from(2);
    }
    if let Err(line) = check_error_rate(
        requests,
        errors,
        max_error_rate(a.scenario, a.max_error_rate),
    ) {
        eprintln!("sluice-loadgen: {line}");
        failed = true;
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_parse() {
        let a = Args::try_parse_from(["sluice-loadgen", "rest-get"]).unwrap();
        assert_eq!((a.max_error_rate, a.quiet), (None, false));
        let a = Args::try_parse_from(["sluice-loadgen", "chaos", "--max-error-rate", "2.5", "-q"])
            .unwrap();
        assert_eq!((a.max_error_rate, a.quiet), (Some(2.5), true));
        for bad in ["-1", "101", "NaN", "lots"] {
            assert!(
                Args::try_parse_from(["sluice-loadgen", "rest-get", "--max-error-rate", bad])
                    .is_err(),
                "{bad}"
            );
        }
    }
}
