//! Running the workers: what one worker measures (`Stats`, the `chaos`
//! pair states), the open/closed-loop `Pacer`, and `run_workers`, which
//! spawns the workers until the deadline and collects their stats.

use std::time::{Duration, Instant};

/// What one worker measured.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) lat_us: Vec<u64>,
    pub(crate) errors: u64,
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

pub(crate) async fn run_workers<F, Fut>(n: usize, secs: u64, worker: F) -> (Vec<Stats>, Duration)
where
    F: Fn(usize, Instant) -> Fut,
    Fut: std::future::Future<Output = Stats> + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(worker(i, deadline))).collect();
    let mut all = Vec::new();
    for h in handles {
        all.push(h.await.unwrap_or_default());
    }
    (all, start.elapsed())
}
