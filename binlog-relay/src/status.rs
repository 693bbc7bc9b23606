//! The relay's live status (the `/status` document shared with the admin
//! server) and the lag probe that compares the read position with the
//! server's end of binlog.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sqlx::MySqlPool;
use tokio::sync::watch;

use crate::metrics as m;
use crate::position::FilePos;
use crate::sink::AckState;
use crate::source;

/// The live document behind `/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusDoc {
    /// `starting`, `standby`, `streaming`, `reconnecting`, `stopped` or
    /// `failed`.
    pub state: String,
    /// With `ha` on: `leader` or `standby` (absent with `ha` off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// With `ha` on: the epoch this relay raised as leader, or (standby)
    /// the current leader's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// With `ha` on: who leads (`host:pid`), this relay or another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Read position: the end of the last transaction read.
    pub position: Option<String>,
    pub gtid: Option<String>,
    /// The server's end of binlog at the last lag probe.
    pub server_position: Option<String>,
    pub lag_bytes: u64,
    pub lag_seconds: f64,
    /// Commit time of the last event read (ms).
    pub last_event_ts_ms: i64,
    /// Last change sequence number emitted.
    pub seq: u64,
    pub transactions: u64,
    pub last_error: Option<String>,
    /// Messages go through Kafka transactions (see `binlog_relay::eos`).
    pub exactly_once: bool,
}

/// Shared state between the relay, the lag probe and the admin server.
#[derive(Debug, Clone, Default)]
pub struct Shared {
    pub status: Arc<Mutex<StatusDoc>>,
    pub acks: Arc<Mutex<AckState>>,
}

impl Shared {
    pub fn update(&self, f: impl FnOnce(&mut StatusDoc)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// The `/status` JSON.
    pub fn document(&self) -> serde_json::Value {
        let status = self.status.lock().map(|s| s.clone()).unwrap_or_default();
        let acks = self.acks.lock().map(|a| a.clone()).unwrap_or_default();
        let mut v = serde_json::to_value(status).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "checkpoint".into(),
                acks.saved
                    .map(|c| serde_json::to_value(c).unwrap_or_default())
                    .unwrap_or_default(),
            );
            obj.insert("acked_messages".into(), acks.acked.into());
        }
        v
    }
}

/// Periodically compares the read position with the server's end of binlog.
pub async fn probe_lag(pool: MySqlPool, shared: Shared, mut stop: watch::Receiver<bool>) {
    let bytes_gauge = metrics::gauge!(m::POSITION_LAG_BYTES);
    let secs_gauge = metrics::gauge!(m::TIME_LAG_SECONDS);
    // The series exist from the start (a fresh relay streaming from a GTID
    // knows its file:pos only after the first rotate or event).
    bytes_gauge.set(0.0);
    secs_gauge.set(0.0);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => if *stop.borrow() { return },
        }
        let Ok(logs) = source::binary_logs(&pool).await else {
            continue;
        };
        let (position, last_ts) = match shared.status.lock() {
            Ok(s) => (s.position.clone(), s.last_event_ts_ms),
            Err(_) => continue,
        };
        let Some(pos) = position.and_then(|p| p.parse::<FilePos>().ok()) else {
            continue;
        };
        let behind = source::bytes_behind(&logs, &pos);
        // Caught up means no lag, however old the last event is: heartbeats
        // from the server keep this honest while the source is idle.
        let secs = if behind == 0 || last_ts == 0 {
            0.0
        } else {
            ((chrono::Utc::now().timestamp_millis() - last_ts).max(0) as f64) / 1000.0
        };
        bytes_gauge.set(behind as f64);
        secs_gauge.set(secs);
        let server = logs.last().map(|(f, s)| format!("{f}:{s}"));
        shared.update(|s| {
            s.lag_bytes = behind;
            s.lag_seconds = secs;
            s.server_position = server;
        });
    }
}
