//! Consumer lag: per assigned partition, the broker's high watermark minus
//! the member's fetch position, into `/status` and
//! `cache_syncer_consumer_lag_messages`.
//!
//! At most every 2 s, on a blocking thread in the background: it costs one
//! broker round trip per partition, which must never hold up the batches.
//! A check still running when the next is due is not doubled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::consumer::Consumer;

use crate::consumer::{GroupConsumer, StatusHandle, offset_in, partition_key};
use crate::metrics as m;

/// How often lag is asked of the broker.
const EVERY: Duration = Duration::from_secs(2);

/// The periodic lag check.
pub(crate) struct LagCheck {
    last: Instant,
    /// The check running in the background, if any.
    running: Option<tokio::task::JoinHandle<()>>,
}

impl LagCheck {
    /// The first check is due [`EVERY`] from now.
    pub fn new() -> Self {
        Self {
            last: Instant::now(),
            running: None,
        }
    }

    /// Starts a check in the background when one is due and none is running.
    pub fn maybe_start(&mut self, consumer: &Arc<GroupConsumer>, status: &StatusHandle) {
        if self.last.elapsed() < EVERY || self.running.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.last = Instant::now();
        let consumer = Arc::clone(consumer);
        let status = Arc::clone(status);
        self.running = Some(tokio::task::spawn_blocking(move || {
            let Ok(assigned) = consumer.assignment() else {
                return;
            };
            let positions = consumer
                .position()
                .unwrap_or_else(|_| TopicPartitionList::new());
            let mut out = Vec::new();
            for el in assigned.elements() {
                let Ok((_, high)) =
                    consumer.fetch_watermarks(el.topic(), el.partition(), Duration::from_secs(2))
                else {
                    continue;
                };
                let pos = offset_in(&positions, el.topic(), el.partition());
                let lag = pos.map(|p| (high - p).max(0)).unwrap_or(high);
                out.push((el.topic().to_owned(), el.partition(), lag));
            }
            if let Ok(mut status) = status.lock() {
                for (topic, partition, lag) in out {
                    metrics::gauge!(m::CONSUMER_LAG, "topic" => topic.clone(), "partition" => partition.to_string())
                    .set(lag as f64);
                    status
                        .partitions
                        .entry(partition_key(&topic, partition))
                        .or_default()
                        .lag = Some(lag);
                }
            }
        }));
    }
}
