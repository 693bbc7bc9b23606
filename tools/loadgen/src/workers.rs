//! Running the workers: what one worker measures (`Stats`, the `chaos`
//! pair states), the open/closed-loop `Pacer`, and `run_workers`, which
//! spawns the workers until the deadline, prints progress on long runs and
//! collects their stats.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::status::{Status, StatusCounts};

/// What one worker measured.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) lat_us: Vec<u64>,
    /// Failed requests (every status but `200` / `OK`; see [`Stats::record`]).
    pub(crate) errors: u64,
    /// Every counted request by status.
    pub(crate) status: StatusCounts,
    /// Committed follows (`rest-follow`), acknowledged writes (`rest-ryw`, `chaos`).
    pub(crate) writes: u64,
    /// Wait added by the token (`rest-ryw`).
    pub(crate) token_wait_us: Vec<u64>,
    pub(crate) stale_with_token: u64,
    pub(crate) stale_without_token: u64,
    pub(crate) synced: u64,
    pub(crate) primary: u64,
    /// `chaos`: per owned pair, the last acknowledged state and its token;
    /// `None` state when the last attempt's outcome is unknown.
    pub(crate) pairs: Vec<PairState>,
}

impl Stats {
    /// Counts one request: its status, and an error when `failed`. The
    /// caller keeps the latency of a success (`lat_us`, `token_wait_us`).
    pub(crate) fn record(&mut self, status: Status, failed: bool) {
        self.status.add(status);
        self.errors += u64::from(failed);
        LIVE.requests.fetch_add(1, Ordering::Relaxed);
        if failed {
            LIVE.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Requests and errors of the whole process so far, for the progress lines
/// (the workers' own `Stats` are only summed at the end).
struct Live {
    requests: AtomicU64,
    errors: AtomicU64,
}

static LIVE: Live = Live {
    requests: AtomicU64::new(0),
    errors: AtomicU64::new(0),
};

impl Live {
    fn snapshot(&self) -> (u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PairState {
    pub(crate) from: (u64, String),
    pub(crate) to: u64,
    pub(crate) following: Option<bool>,
    pub(crate) token: String,
}

/// Paces a worker: `None` = closed loop.
pub(crate) struct Pacer {
    interval: Option<Duration>,
    next: Instant,
}

impl Pacer {
    pub(crate) fn new(rate: u64, workers: usize, worker: usize) -> Self {
        let interval = (rate > 0).then(|| Duration::from_secs_f64(workers as f64 / rate as f64));
        // Spread the workers' first requests over one interval.
        let offset = interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(worker as f64 / workers as f64)
        });
        Self {
            interval,
            next: Instant::now() + offset,
        }
    }

    /// Waits for the next slot; returns the time latency counts from.
    pub(crate) async fn tick(&mut self) -> Instant {
        match self.interval {
            None => Instant::now(),
            Some(i) => {
                let at = self.next;
                self.next += i;
                tokio::time::sleep_until(at.into()).await;
                at
            }
        }
    }
}

/// Runs `n` workers for `secs` seconds. With `progress`, a run of
/// [`PROGRESS_MIN_SECS`] or more prints a line to stderr every
/// [`PROGRESS_EVERY`] (see [`progress_line`]).
pub(crate) async fn run_workers<F, Fut>(
    n: usize,
    secs: u64,
    progress: bool,
    worker: F,
) -> (Vec<Stats>, Duration)
where
    F: Fn(usize, Instant) -> Fut,
    Fut: std::future::Future<Output = Stats> + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let ticker =
        (progress && secs >= PROGRESS_MIN_SECS).then(|| tokio::spawn(progress_lines(start, secs)));
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(worker(i, deadline))).collect();
    let mut all = Vec::new();
    for h in handles {
        all.push(h.await.unwrap_or_default());
    }
    if let Some(t) = ticker {
        t.abort();
    }
    (all, start.elapsed())
}

/// Runs at least this long get progress lines.
pub(crate) const PROGRESS_MIN_SECS: u64 = 10;
/// How often a progress line is printed.
pub(crate) const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Prints a progress line every [`PROGRESS_EVERY`] until the run ends (the
/// summary follows it then).
async fn progress_lines(start: Instant, secs: u64) {
    let (base_requests, base_errors) = LIVE.snapshot();
    let (mut last_requests, mut last_at) = (base_requests, start);
    let mut tick = tokio::time::interval_at((start + PROGRESS_EVERY).into(), PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = tick.tick().await.into_std();
        let elapsed = now.duration_since(start).as_secs_f64().round() as u64;
        if elapsed >= secs {
            return;
        }
        let (requests, errors) = LIVE.snapshot();
        let rate =
            (requests - last_requests) as f64 / now.duration_since(last_at).as_secs_f64().max(1e-3);
        eprintln!(
            "{}",
            progress_line(
                elapsed,
                secs,
                requests - base_requests,
                rate,
                errors - base_errors
            )
        );
        (last_requests, last_at) = (requests, now);
    }
}

/// `[10s/60s] 12,345 req, 1,234 req/s, errors 0`: the requests and errors
/// so far, and the rate since the previous line.
pub(crate) fn progress_line(
    elapsed_s: u64,
    total_s: u64,
    requests: u64,
    rate: f64,
    errors: u64,
) -> String {
    format!(
        "[{elapsed_s}s/{total_s}s] {} req, {} req/s, errors {}",
        thousands(requests),
        thousands(rate.round() as u64),
        thousands(errors)
    )
}

/// `1234567` → `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_group_thousands() {
        assert_eq!(
            progress_line(10, 60, 12_345, 1_234.4, 0),
            "[10s/60s] 12,345 req, 1,234 req/s, errors 0"
        );
        assert_eq!(
            progress_line(5, 10, 0, 0.0, 1_000_000),
            "[5s/10s] 0 req, 0 req/s, errors 1,000,000"
        );
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (123_456, "123,456"),
        ] {
            assert_eq!(thousands(n), s);
        }
    }

    #[test]
    fn record_counts_the_status_and_the_failures() {
        let mut s = Stats::default();
        s.record(Status::HTTP_OK, false);
        s.record(Status::Http(503), true);
        s.record(Status::Transport("io"), true);
        assert_eq!(s.errors, 2);
        assert_eq!(s.status.total(), 3);
    }
}
