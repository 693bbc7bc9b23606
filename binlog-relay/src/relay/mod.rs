//! Wiring: binlog source → decode → sink. The reconnect loop, the event
//! dispatch, the outputs (Kafka or dry-run printing) and heartbeats live
//! here; the rows path and the relay's one outgoing path for row changes in
//! `rows`, the snapshot copy (which sends through that path) in `copy`. The
//! transaction bookkeeping is [`crate::txn`]'s and where a run starts is
//! [`crate::start`]'s. (At ~700 lines this file is over the ~600 guideline:
//! what is left is the select loop and the event dispatch, which share the
//! `Stream` state and read best in one place.)
//!
//! # Resumption
//! A run starts at `--from` when given, else at the saved checkpoint, else at
//! the server's current end of binlog. Checkpoints are queued behind the
//! messages of each committed transaction and saved by the acker only once
//! all of them are acknowledged (see `sink`). After a transient error the
//! relay waits `retry_backoff`, reconnects and resumes from the last saved
//! checkpoint; the transactions in flight are emitted again (at-least-once,
//! with the same `sluice.seq` numbers, which are derived from the binlog
//! position; see `seqno`).
//!
//! With exactly-once on ([`crate::eos`]) marks wait for the Kafka
//! transaction that carries them: `Stream::mark` holds the latest one, and
//! `Stream::commit_kafka` commits it with a heartbeat and its checkpoint
//! record, at most every `exactly_once.commit_interval` and only at a source
//! transaction boundary; the acker then saves it. After a transient error
//! the open Kafka transaction is aborted and the relay resumes from the last
//! committed checkpoint.

mod copy;
mod rows;
mod schema_change;

use rows::Held;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdc_event::envelope::{Heartbeat, PartitionOffset};
use cdc_event::{Op, Snapshot, TransactionRef, topic};
use futures::{FutureExt as _, StreamExt};
use metrics::Counter;
use mysql_async::BinlogStream;
use mysql_async::binlog::events::{Event, EventData, RowsEventData};
use secrecy::SecretString;
use sqlx::MySqlPool;
use tokio::sync::watch;

use crate::checkpoint::{Checkpoint, CheckpointStore, SnapshotProgress};
use crate::columns::ColumnRules;
use crate::config::{Settings, SnapshotMode};
use crate::decode::{self, ChangeMeta};
use crate::eos;
use crate::error::{Error, Result, stream_error};
use crate::events;
use crate::fastrow;
use crate::format::{self, Format};
use crate::image;
use crate::keys::{self, KeyColumns};
use crate::metrics as m;
use crate::position::{FilePos, StartFrom, StopAt};
use crate::schema::SchemaTracker;
use crate::seqno;
use crate::sink::{AckItem, Acker, MessageHeaders, Sink};
use crate::snapshot;
use crate::source::{self, Flavor, SourceOptions, StreamStart};
use crate::start::{Resume, resolve_from, uuid_text};
use crate::status::Shared;
use crate::txn::{Assembler, RowPlace, TxMessage};

/// Per-run choices from the command line.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Start here instead of at the checkpoint.
    pub from: Option<StartFrom>,
    /// Stop before the first transaction at or beyond this point.
    pub until: Option<StopAt>,
    /// Print what would be emitted instead of producing; saves no checkpoint.
    pub dry_run: bool,
    /// Tables (`db.table`) to snapshot on demand before streaming.
    pub snapshot: Vec<String>,
}

/// How a stream ended without error.
enum Flow {
    Continue,
    Stop,
}

/// Where output goes.
enum Output {
    Kafka(Box<Sink>),
    DryRun,
}

/// The relay: owns the settings, the pool for side queries and the start point.
pub struct Relay {
    settings: Settings,
    url: SecretString,
    pool: MySqlPool,
    flavor: Flavor,
    /// What is published of each column.
    columns: Arc<ColumnRules>,
    /// Which columns make each table's message key.
    keys: Arc<KeyColumns>,
    store: CheckpointStore,
    /// With `ha` on: the lease this relay streams under.
    lease: Option<crate::ha::Leadership>,
    opts: RunOptions,
    resume: Resume,
    /// The checkpoint the start point came from (file or table), if any.
    saved: Option<Checkpoint>,
    /// An operator's replay (`--from` other than `latest`): the server's
    /// end of binlog when it started. Changes before it are marked
    /// `sluice.replay` so the cache-syncer applies them again.
    replay_until: Option<FilePos>,
    shared: Shared,
    ready: common::admin::Readiness,
}

impl Relay {
    /// Resolves where to start (this is where `latest` is pinned). With a
    /// `lease` (`ha` on), the checkpoint is the state table's under the
    /// lease's epoch, else the file in `state_dir`.
    #[allow(clippy::too_many_arguments)]
    pub async fn new(
        settings: Settings,
        url: SecretString,
        pool: MySqlPool,
        flavor: Flavor,
        opts: RunOptions,
        shared: Shared,
        ready: common::admin::Readiness,
        lease: Option<crate::ha::Leadership>,
    ) -> Result<Self> {
        let columns = Arc::new(settings.column_rules()?);
        let keys = Arc::new(settings.key_columns()?);
        // Existing tables now; tables created or altered later at their
        // first row (SchemaTracker).
        keys::check_tables(&pool, &settings.filter, &keys, &columns).await?;
        let file = CheckpointStore::new(settings.checkpoint_path());
        let (store, saved) = match &lease {
            None => {
                let saved = file.load().await?;
                (file, saved)
            }
            Some(l) => {
                let table = CheckpointStore::Table(l.clone());
                // A first leader goes on from a single relay's file.
                let saved = match table.load().await? {
                    Some(cp) => Some(cp),
                    None => file.load().await?,
                };
                (table, saved)
            }
        };
        let seq = saved.as_ref().map(|c| c.seq).unwrap_or(0);
        // Everything behind a saved checkpoint is acknowledged: heartbeats
        // may publish it before this run's first transaction.
        if let (None, Some(cp)) = (&opts.from, &saved)
            && let Ok(mut acks) = shared.acks.lock()
        {
            acks.acked_mark = Some(cp.clone());
        }
        let mut resume = match (&opts.from, &saved) {
            (Some(from), _) => {
                resolve_from(&pool, &url, flavor, settings.server_id, from, seq).await?
            }
            (None, Some(cp)) => {
                let resume = Resume::from_checkpoint(cp);
                if let StreamStart::FilePos(fp) = &resume.start {
                    source::validate_file_pos(&pool, fp).await.map_err(|e| {
                        Error::BadStart(format!(
                            "the checkpoint in {} cannot be resumed: {e}",
                            store.describe()
                        ))
                    })?;
                }
                resume
            }
            (None, None) => {
                let resume = resolve_from(
                    &pool,
                    &url,
                    flavor,
                    settings.server_id,
                    &StartFrom::Latest,
                    0,
                )
                .await?;
                if settings.snapshot.mode == SnapshotMode::Initial {
                    let tables = snapshot::tables_to_copy(&pool, &settings.filter).await?;
                    resume.with_snapshot(tables)?
                } else {
                    resume
                }
            }
        };
        resume.changes = saved.as_ref().map_or(0, |c| c.changes);
        if !opts.snapshot.is_empty() {
            if resume.snapshot.is_some() {
                return Err(Error::Snapshot(
                    "a snapshot is already in progress; let it finish first".into(),
                ));
            }
            resume = resume.with_snapshot(opts.snapshot.clone())?;
        }
        let replay_until = match &opts.from {
            None | Some(StartFrom::Latest) => None,
            Some(_) if opts.dry_run => None,
            Some(_) => Some(source::current_position(&pool).await?),
        };
        tracing::info!(start = ?resume.start, replay_until = ?replay_until, "relay start point");
        Ok(Self {
            settings,
            url,
            pool,
            flavor,
            columns,
            keys,
            store,
            lease,
            opts,
            resume,
            saved,
            replay_until,
            shared,
            ready,
        })
    }

    /// Exactly-once, once per relay: registers the transactional producer
    /// (fencing a predecessor of the same name) and, unless `--from` says
    /// otherwise, resumes at the last committed checkpoint record when it is
    /// later than the file / table checkpoint. Its offsets replace the
    /// partitions' ends in the first heartbeats (the ends count transaction
    /// markers, which no reader applies).
    async fn start_exactly_once(&mut self, sink: &mut Sink) -> Result<()> {
        if !sink.needs_start() {
            return Ok(());
        }
        sink.start_transactions(&self.settings).await?;
        let on = sink.transactional();
        metrics::gauge!(m::EXACTLY_ONCE).set(if on { 1.0 } else { 0.0 });
        self.shared.update(|s| s.exactly_once = on);
        if !on {
            return Ok(());
        }
        let topic = topic::relay_checkpoints_topic(&self.settings.kafka.topic_prefix);
        sink.ensure_checkpoint_topic(&topic).await?;
        let settings = self.settings.clone();
        let record = tokio::task::spawn_blocking(move || {
            eos::read_last(&settings, &settings.ha.name, Duration::from_secs(30))
        })
        .await
        .map_err(|e| Error::Delivery(format!("reading the committed checkpoint: {e}")))??;
        if self.opts.from.is_some() {
            return Ok(());
        }
        let (chosen, from_record) = eos::later(self.saved.clone(), record.as_ref());
        if let (true, Some(cp), Some(record)) = (from_record, &chosen, &record) {
            if self.saved.as_ref() != Some(cp) {
                let resume = Resume::from_checkpoint(cp);
                if let StreamStart::FilePos(fp) = &resume.start {
                    source::validate_file_pos(&self.pool, fp)
                        .await
                        .map_err(|e| {
                            Error::BadStart(format!(
                                "the committed checkpoint on {topic} cannot be resumed: {e}"
                            ))
                        })?;
                }
                tracing::info!(position = %cp.file_pos(), "exactly-once: resuming at the committed checkpoint");
                self.resume = resume;
            }
            if let Ok(mut acks) = self.shared.acks.lock() {
                acks.acked_mark = Some(cp.clone());
                acks.acked_offsets.extend(record.offset_map());
            }
        }
        if let Some(cp) = chosen {
            sink.set_committed(cp);
        }
        Ok(())
    }

    /// The Debezium drop-in encoding's context ([`format::connect`]).
    fn encoding(&self) -> format::connect::Encoding<'_> {
        format::connect::Encoding {
            settings: &self.settings.debezium,
            connector: match self.flavor {
                Flavor::MariaDb => "mariadb",
                Flavor::MySql => "mysql",
            },
            tombstones: self.settings.tombstones,
        }
    }

    /// Whether the change at `file:pos` is part of an operator's replay.
    fn is_replay(&self, file: &str, pos: u64) -> bool {
        self.replay_until
            .as_ref()
            .is_some_and(|until| FilePos::new(file, pos) < *until)
    }

    /// Streams until `stop` turns true, `--until` is reached or a definite error.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<()> {
        let mut output = if self.opts.dry_run {
            Output::DryRun
        } else {
            Output::Kafka(Box::new(Sink::new(&self.settings)?))
        };
        if let Output::Kafka(sink) = &mut output {
            let prefix = &self.settings.kafka.topic_prefix;
            sink.ensure_topic(&topic::transaction_topic(prefix), Some(1))
                .await?;
            sink.ensure_topic(&topic::heartbeat_topic(prefix), Some(1))
                .await?;
            // What earlier relay processes published: heartbeats name these
            // partitions too until this process writes past them.
            match sink.row_topic_ends(prefix).await {
                Ok(ends) => {
                    if let Ok(mut acks) = self.shared.acks.lock() {
                        for (key, end) in ends {
                            acks.acked_offsets.entry(key).or_insert(end);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the row topics' ends; heartbeats name only partitions written from now on")
                }
            }
        }
        let mut schema = SchemaTracker::new(Some(self.pool.clone()), self.columns.clone())
            .with_key_columns(self.keys.clone())
            .with_json_text(self.settings.drop_in());
        self.load_history(&mut schema).await?;
        let reconnects = metrics::counter!(m::RECONNECTS_TOTAL);
        loop {
            let started = match &mut output {
                Output::Kafka(sink) => self.start_exactly_once(sink).await,
                Output::DryRun => Ok(()),
            };
            let outcome = match started {
                Err(e) => Err(e),
                Ok(()) => self.stream_once(&mut output, &mut schema, &mut stop).await,
            };
            match outcome {
                Ok(()) => {
                    self.shared.update(|s| s.state = "stopped".into());
                    self.ready.set(false);
                    if let Output::Kafka(sink) = &output {
                        sink.flush(Duration::from_secs(5));
                    }
                    return Ok(());
                }
                // Without `ha`, a fenced producer means the broker ended its
                // transaction (the relay was frozen past
                // `transaction.timeout.ms`), or a second relay of this name
                // and prefix runs (a misconfiguration: each fences the
                // other in turn, and this says so). A new producer goes on
                // from the last committed checkpoint.
                Err(Error::Fenced(reason))
                    if self.lease.is_none()
                        && !*stop.borrow()
                        && matches!(output, Output::Kafka(_)) =>
                {
                    metrics::counter!(m::ERRORS_TOTAL, "kind" => "fenced").increment(1);
                    tracing::warn!(%reason, "the transactional producer was fenced; starting a new one (is another relay with this ha.name and topic prefix running?)");
                    self.ready.set(false);
                    self.shared.update(|s| {
                        s.state = "reconnecting".into();
                        s.last_error = Some(reason.clone());
                    });
                    reconnects.increment(1);
                    output = Output::Kafka(Box::new(Sink::new(&self.settings)?));
                    tokio::select! {
                        _ = tokio::time::sleep(self.settings.retry_backoff) => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(e) if e.is_transient() && !*stop.borrow() => {
                    metrics::counter!(m::ERRORS_TOTAL, "kind" => e.label()).increment(1);
                    tracing::warn!(error = %e, "transient error; resuming from the last checkpoint");
                    self.ready.set(false);
                    self.shared.update(|s| {
                        s.state = "reconnecting".into();
                        s.last_error = Some(e.to_string());
                    });
                    reconnects.increment(1);
                    // Never back to the binlog without the lease: the new
                    // leader's dump (same server_id) would be cut.
                    if let Some(lease) = &self.lease
                        && let Err(e) = lease.check().await
                    {
                        self.shared.update(|s| {
                            s.state = "failed".into();
                            s.last_error = Some(e.to_string());
                        });
                        return Err(e);
                    }
                    // Exactly-once: the last committed checkpoint (the
                    // file / table one may lag behind it).
                    let committed = match &output {
                        Output::Kafka(sink) if sink.transactional() && !sink.needs_start() => {
                            sink.committed().cloned()
                        }
                        _ => None,
                    };
                    if let Some(cp) = committed {
                        self.resume = Resume::from_checkpoint(&cp);
                    } else if !self.opts.dry_run
                        && let Some(cp) = self.store.load().await?
                    {
                        self.resume = Resume::from_checkpoint(&cp);
                    }
                    // A failed delivery gets a new producer. librdkafka
                    // (2.12.1) can lose a partition's leader for good when
                    // a broker answers "leader -1" while it shuts down: the
                    // log says "new leader-1 not found in cache", and every
                    // message for that partition times out until the client
                    // is made anew (confluentinc/librdkafka#5430; a chaos
                    // run's broker restart left the relay timing out for
                    // minutes). A new one reads the metadata afresh; with
                    // exactly-once it fences the old one and aborts what it
                    // left open.
                    if matches!(e, Error::Delivery(_) | Error::Kafka(_))
                        && matches!(output, Output::Kafka(_))
                    {
                        tracing::info!("a new Kafka producer after the failed delivery");
                        output = Output::Kafka(Box::new(Sink::new(&self.settings)?));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(self.settings.retry_backoff) => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(e) => {
                    metrics::counter!(m::ERRORS_TOTAL, "kind" => e.label()).increment(1);
                    self.ready.set(false);
                    self.shared.update(|s| {
                        s.state = "failed".into();
                        s.last_error = Some(e.to_string());
                    });
                    return Err(e);
                }
            }
        }
    }
}

impl Relay {
    /// One binlog connection's worth of streaming, its Kafka transaction
    /// ended (committed when the stream stopped at a boundary, else
    /// aborted) and its acknowledgements awaited.
    async fn stream_once(
        &self,
        output: &mut Output,
        schema: &mut SchemaTracker,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let store = (!self.opts.dry_run).then(|| self.store.clone());
        let acker = Acker::spawn(
            store,
            self.settings.checkpoint_interval,
            self.shared.acks.clone(),
        );
        let mut stream = Stream::new(self, output, schema, acker);
        let result = match &self.lease {
            None => stream.run(stop).await,
            // A leader that lost its lease stops at once.
            Some(lease) => tokio::select! {
                r = stream.run(stop) => r,
                e = lease.lost() => Err(e),
            },
        };
        let ok = result.is_ok();
        let closed = stream.close(ok).await;
        let finished = stream.acker.finish().await;
        // Stopped in the middle of a source transaction: its messages are
        // delivered by now (so the abort purges none, which the acker would
        // report as failed deliveries); nothing of them becomes visible.
        if ok && let Output::Kafka(sink) = &mut *stream.output {
            sink.abort().await;
        }
        result.and(closed).and(finished)
    }
}

/// One binlog connection's worth of streaming.
struct Stream<'a> {
    relay: &'a Relay,
    output: &'a mut Output,
    schema: &'a mut SchemaTracker,
    acker: Acker,
    /// Position, GTIDs and the open transaction. On MySQL its GTID set is
    /// exact (the server's whole executed set at this point, or a subset
    /// lacking only older transactions) when the run started from a set
    /// (`--from gtid:…`, a checkpoint holding one, `latest`) or at a binlog
    /// file's start (its Previous_gtids event); otherwise it holds the
    /// GTIDs read since the start, which is what read-your-writes needs (one
    /// primary's GTIDs only grow) but not a resume point.
    asm: Assembler,
    counters: HashMap<(String, Op), Counter>,
    transactions: Counter,
    /// `acked_seq` of the last heartbeat sent.
    beat_acked_seq: Option<u64>,
    /// Maxwell format: the last row read, not sent yet.
    held: Option<Held>,
    /// Exactly-once: the latest mark, waiting for its Kafka commit.
    pending: Option<Checkpoint>,
    /// When the last binlog event was handled: a stream quiet for
    /// [`QUIET`] is caught up, and commits without waiting for
    /// `commit_interval`.
    last_event: Instant,
    /// The last event's binlog timestamp (ms): a stream reading events
    /// older than [`LIVE`] is behind, however its socket looks.
    last_event_ts_ms: i64,
    /// The source server id of the event being handled (the Debezium
    /// drop-in encoding's `source.server_id`).
    event_server_id: u32,
}

/// Exactly-once: a binlog stream with no event for this long is taken as
/// caught up; what it completed is committed at the next watermark tick
/// (every `watermark_interval`, 10 ms) instead of after `commit_interval`.
/// A busy stream (a backlog, a bulk load) has events microseconds apart and
/// keeps batching commits.
const QUIET: Duration = Duration::from_millis(2);

/// Exactly-once: a caught-up stream commits what it completed at once,
/// but not more often than this (at most 200 commits a second).
const MIN_COMMIT_GAP: Duration = Duration::from_millis(5);

/// Exactly-once: events written longer ago than this (binlog timestamps
/// have whole seconds) mean the relay is catching up, and commits wait for
/// `commit_interval`.
const LIVE: Duration = Duration::from_secs(2);

impl<'a> Stream<'a> {
    fn new(
        relay: &'a Relay,
        output: &'a mut Output,
        schema: &'a mut SchemaTracker,
        acker: Acker,
    ) -> Self {
        let file = match &relay.resume.start {
            StreamStart::FilePos(p) => p.file.clone(),
            StreamStart::Gtid(_) | StreamStart::MysqlGtid(_) => String::new(),
        };
        Self {
            relay,
            output,
            schema,
            acker,
            asm: Assembler::new(
                file,
                relay.resume.gtid.clone(),
                relay.resume.mysql.clone(),
                relay.resume.seq,
                relay.resume.changes,
                relay.opts.until.clone(),
            ),
            counters: HashMap::new(),
            transactions: metrics::counter!(m::TRANSACTIONS_TOTAL),
            beat_acked_seq: None,
            held: None,
            pending: None,
            last_event: Instant::now(),
            last_event_ts_ms: 0,
            event_server_id: 0,
        }
    }

    fn prefix(&self) -> &str {
        &self.relay.settings.kafka.topic_prefix
    }

    async fn run(&mut self, stop: &mut watch::Receiver<bool>) -> Result<()> {
        let settings = &self.relay.settings;
        let opts = SourceOptions {
            url: self.relay.url.clone(),
            server_id: settings.server_id,
            flavor: self.relay.flavor,
            heartbeat: settings.heartbeat_interval.min(Duration::from_secs(5)),
            non_blocking: false,
        };
        if *stop.borrow() {
            return Ok(());
        }
        if let Some(progress) = self.relay.resume.snapshot.clone() {
            self.relay.shared.update(|s| s.state = "snapshot".into());
            self.relay.ready.set(true);
            if let Flow::Stop = self.snapshot(progress, stop).await? {
                return Ok(());
            }
        }
        let mut stream = source::open(&opts, &self.relay.resume.start).await?;
        let start_text = match &self.relay.resume.start {
            StreamStart::FilePos(p) => Some(p.to_string()),
            StreamStart::Gtid(_) | StreamStart::MysqlGtid(_) => None,
        };
        self.relay.shared.update(|s| {
            s.state = "streaming".into();
            if s.position.is_none() {
                s.position = start_text;
            }
        });
        self.relay.ready.set(true);
        let mut heartbeat = tokio::time::interval(settings.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut progress = tokio::time::interval(settings.watermark_interval);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Exactly-once: the next event, when it was already there as the
        // last transaction ended (the stream is behind: keep batching).
        let mut ahead = None;
        loop {
            let event = if let Some(ev) = ahead.take() {
                if *stop.borrow() {
                    return Ok(());
                }
                ev
            } else {
                tokio::select! {
                    biased;
                    _ = stop.changed() => {
                        if *stop.borrow() { return Ok(()); }
                        continue;
                    }
                    e = self.acker.failed() => return Err(e),
                    _ = heartbeat.tick() => {
                        self.heartbeat().await?;
                        // Exactly-once: a heartbeat is visible once committed.
                        if self.transactional() && !self.asm.in_transaction() {
                            self.commit_kafka().await?;
                        }
                        continue;
                    }
                    // An extra heartbeat soon after the acknowledged position
                    // moves, so the syncer's watermark (read-your-writes)
                    // follows commits within milliseconds, not seconds.
                    // Exactly-once: each commit carries its heartbeat; here
                    // the marks held back by `commit_interval` are committed.
                    _ = progress.tick() => {
                        if self.transactional() {
                            if self.commit_due(false) {
                                self.commit_kafka().await?;
                            }
                        } else if self.acked_moved() {
                            self.heartbeat().await?;
                        }
                        continue;
                    }
                    ev = stream.next() => ev,
                }
            };
            let event = match event {
                Some(Ok(ev)) => ev,
                Some(Err(e)) => return Err(stream_error(e)),
                None => return Err(Error::Stream("the server closed the binlog stream".into())),
            };
            if let Flow::Stop = self.handle(&stream, &event).await? {
                return Ok(());
            }
            self.last_event = Instant::now();
            self.last_event_ts_ms = i64::from(event.header().timestamp()) * 1000;
            // Exactly-once, at a boundary: nothing more to read right now
            // means caught up, so commit at once (at most every
            // `MIN_COMMIT_GAP`; the watermark tick takes what is left).
            if self.transactional() && !self.asm.in_transaction() {
                match stream.next().now_or_never() {
                    Some(ev) => ahead = Some(ev),
                    None => {
                        if self.commit_due(true) {
                            self.commit_kafka().await?;
                        }
                    }
                }
            }
        }
    }

    /// Whether the acknowledged mark moved since the last heartbeat.
    fn acked_moved(&self) -> bool {
        let now = self
            .relay
            .shared
            .acks
            .lock()
            .ok()
            .and_then(|a| a.acked_mark.as_ref().map(|c| c.seq));
        now.is_some() && now != self.beat_acked_seq
    }

    async fn heartbeat(&mut self) -> Result<()> {
        let hb_topic = topic::heartbeat_topic(self.prefix());
        let (acked, acked_offsets) = self
            .relay
            .shared
            .acks
            .lock()
            .map(|a| {
                (
                    a.acked_mark.clone(),
                    offsets_of(&a.acked_offsets, &hb_topic),
                )
            })
            .unwrap_or_default();
        self.heartbeat_at(acked, acked_offsets).await
    }

    /// A heartbeat naming `acked` and the offsets where its messages are.
    async fn heartbeat_at(
        &mut self,
        acked: Option<Checkpoint>,
        acked_offsets: Vec<PartitionOffset>,
    ) -> Result<()> {
        let pos = self
            .relay
            .shared
            .status
            .lock()
            .ok()
            .and_then(|s| s.position.clone())
            .unwrap_or_default();
        let hb_topic = topic::heartbeat_topic(self.prefix());
        self.beat_acked_seq = acked.as_ref().map(|c| c.seq);
        let hb = Heartbeat {
            ts_ms: chrono::Utc::now().timestamp_millis(),
            pos: pos.clone(),
            gtid: self.asm.gtid_text(),
            seq: self.asm.seq,
            acked_seq: acked.as_ref().map(|c| c.seq),
            acked_gtid: acked.and_then(|c| c.gtid),
            acked_offsets,
        };
        let payload = serde_json::to_vec(&hb).map_err(|e| Error::Stream(e.to_string()))?;
        let topic = hb_topic;
        let key = self.prefix().to_owned();
        self.emit(
            &topic,
            Some(&key),
            Some(&payload),
            &MessageHeaders {
                gtid: None,
                pos: &pos,
                seq: self.asm.seq,
                replay: false,
                changed_at_us: None,
                traceparent: None,
            },
        )
        .await?;
        metrics::counter!(m::HEARTBEATS_TOTAL).increment(1);
        Ok(())
    }

    /// Whether messages go through Kafka transactions.
    fn transactional(&self) -> bool {
        matches!(&*self.output, Output::Kafka(s) if s.transactional())
    }

    /// A transaction-completing point of the stream (`cp`): saved behind
    /// its messages' acknowledgements, or, exactly-once, committed with
    /// them (now, or within `commit_interval`).
    async fn mark(&mut self, cp: Checkpoint) -> Result<()> {
        match &*self.output {
            Output::DryRun => Ok(()),
            Output::Kafka(s) if s.transactional() => {
                self.pending = Some(cp);
                if self.commit_due(false) {
                    self.commit_kafka().await?;
                }
                Ok(())
            }
            Output::Kafka(_) => self.acker.push(AckItem::Mark(cp)).await,
        }
    }

    /// Exactly-once: something waits to be committed, the stream is at a
    /// source transaction boundary, and either `commit_interval` has passed
    /// or the stream reads live events (within [`LIVE`]; an empty socket
    /// buffer alone does not prove a replay or a backlog caught up) and is
    /// caught up: `caught_up` (nothing more to read right now, the last
    /// commit at least [`MIN_COMMIT_GAP`] ago) or quiet for [`QUIET`].
    fn commit_due(&self, caught_up: bool) -> bool {
        let Output::Kafka(s) = &*self.output else {
            return false;
        };
        if !s.transactional()
            || !(s.txn_open() || self.pending.is_some())
            || self.asm.in_transaction()
        {
            return false;
        }
        let since = s.since_commit();
        let live =
            chrono::Utc::now().timestamp_millis() - self.last_event_ts_ms < LIVE.as_millis() as i64;
        since >= self.relay.settings.exactly_once.commit_interval
            || (live
                && ((caught_up && since >= MIN_COMMIT_GAP) || self.last_event.elapsed() >= QUIET))
    }

    /// Exactly-once: commits the open Kafka transaction. With a mark
    /// pending, every message is first delivered; a heartbeat naming the
    /// mark and where its messages landed, and the mark's checkpoint
    /// record, join the transaction; after the commit the acker saves the
    /// mark to the file / table.
    ///
    /// Every message is acknowledged before `commit_transaction` is called:
    /// rust-rdkafka's commit first flushes, and its flush sleeps 100 ms
    /// whenever a message is still in flight (it polls a queue the
    /// producer's own thread drains), which cost 100–200 ms per commit.
    async fn commit_kafka(&mut self) -> Result<()> {
        if !self.transactional() {
            return Ok(());
        }
        let cp = self.pending.take();
        if let Some(cp) = &cp {
            let offsets = self.acker.offsets().await?;
            let hb_topic = topic::heartbeat_topic(self.prefix());
            let offsets = offsets_of(&offsets, &hb_topic);
            self.heartbeat_at(Some(cp.clone()), offsets.clone()).await?;
            let settings = &self.relay.settings;
            let record = eos::CheckpointRecord {
                name: settings.ha.name.clone(),
                epoch: self.relay.lease.as_ref().map(|l| l.epoch()),
                relay: crate::ha::holder(),
                checkpoint: cp.clone(),
                offsets,
            };
            let payload = serde_json::to_vec(&record).map_err(|e| Error::Stream(e.to_string()))?;
            let topic = topic::relay_checkpoints_topic(&settings.kafka.topic_prefix);
            let pos = cp.file_pos().to_string();
            if let Output::Kafka(sink) = &mut *self.output {
                let delivery = sink
                    .send(
                        &topic,
                        None,
                        Some(&settings.ha.name),
                        Some(&payload),
                        &MessageHeaders {
                            gtid: cp.gtid.as_deref(),
                            pos: &pos,
                            seq: cp.seq,
                            ..MessageHeaders::default()
                        },
                    )
                    .await?;
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => {
                        return Err(Error::Delivery(format!("checkpoint record: {e}")));
                    }
                    Err(_) => {
                        return Err(Error::Delivery(
                            "checkpoint record: the producer dropped it".into(),
                        ));
                    }
                }
            }
        }
        // The heartbeat (or whatever else is open) acknowledged too.
        self.acker.offsets().await?;
        if let Output::Kafka(sink) = &mut *self.output {
            sink.commit().await?;
            if let Some(cp) = &cp {
                sink.set_committed(cp.clone());
            }
        }
        if let Some(cp) = cp {
            self.acker.push(AckItem::Mark(cp)).await?;
        }
        Ok(())
    }

    /// Exactly-once: a source transaction past `max_messages` commits what
    /// it has so far (its checkpoint waits for its end).
    async fn split_if_large(&mut self) -> Result<()> {
        let large = matches!(&*self.output, Output::Kafka(s)
            if s.transactional() && s.txn_messages() >= self.relay.settings.exactly_once.max_messages);
        if large {
            self.commit_kafka().await?;
        }
        Ok(())
    }

    /// Ends the stream's Kafka transaction: committed when the stream
    /// stopped cleanly at a boundary, aborted after an error. A clean stop
    /// in the middle of a source transaction is aborted once the acker has
    /// finished (see `Relay::stream_once`).
    async fn close(&mut self, ok: bool) -> Result<()> {
        if !self.transactional() {
            return Ok(());
        }
        if ok && !self.asm.in_transaction() {
            return self.commit_kafka().await;
        }
        if !ok && let Output::Kafka(sink) = &mut *self.output {
            sink.abort().await;
        }
        Ok(())
    }

    async fn emit(
        &mut self,
        topic: &str,
        key: Option<&str>,
        payload: Option<&[u8]>,
        headers: &MessageHeaders<'_>,
    ) -> Result<()> {
        self.emit_to(topic, None, key, payload, headers).await
    }

    /// [`Stream::emit`] to a partition the relay picked (`None`: the one
    /// the partitioner derives from the key).
    async fn emit_to(
        &mut self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&str>,
        payload: Option<&[u8]>,
        headers: &MessageHeaders<'_>,
    ) -> Result<()> {
        match self.output {
            Output::Kafka(sink) => {
                let fut = sink.send(topic, partition, key, payload, headers).await?;
                self.acker
                    .push(AckItem::Message(
                        fut,
                        Arc::from(topic),
                        Instant::now(),
                        headers.changed_at_us,
                    ))
                    .await
            }
            Output::DryRun => {
                let value = payload
                    .map(|p| serde_json::from_slice::<serde_json::Value>(p).unwrap_or_default())
                    .unwrap_or(serde_json::Value::Null);
                let line = serde_json::json!({
                    "topic": topic, "key": key, "gtid": headers.gtid, "pos": headers.pos,
                    "seq": headers.seq, "value": value,
                });
                println!("{line}");
                Ok(())
            }
        }
    }

    async fn handle(&mut self, stream: &BinlogStream, ev: &Event) -> Result<Flow> {
        let header = ev.header();
        let ty = header.event_type_raw();
        let mut start = source::event_start(ev);
        let mut end = u64::from(header.log_pos());
        let ts_ms = i64::from(header.timestamp()) * 1000;
        self.event_server_id = header.server_id();
        let kind = events::kind(ty);
        if let Some(text) = kind.refusal(&format!("{}:{start}", self.asm.file)) {
            let excluded = events::is_compressed_rows(ty)
                && events::rows_table_id(ev.data())
                    .and_then(|id| stream.get_tme(id))
                    .is_some_and(|tme| {
                        let filter = &self.relay.settings.filter;
                        !filter.allows(&tme.database_name(), &tme.table_name())
                    });
            if !excluded {
                return Err(Error::Event(text));
            }
            return Ok(Flow::Continue);
        }
        (start, end) = self.asm.place(ty, start, end).map_err(Error::Event)?;
        match ty {
            source::MARIADB_GTID => {
                let g = source::parse_mariadb_gtid(header.server_id(), ev.data())
                    .ok_or_else(|| Error::Stream("malformed MariaDB GTID event".into()))?;
                if self.asm.until_reached(&self.asm.at(start), Some(&g.gtid)) {
                    return Ok(Flow::Stop);
                }
                self.relay.shared.update(|s| s.last_event_ts_ms = ts_ms);
                let id = g.gtid.to_string();
                let base = seqno::Base::Gtid(g.gtid.seq);
                self.asm
                    .begin(id.clone(), Some(id), base, !g.standalone, start);
                return Ok(Flow::Continue);
            }
            source::MARIADB_GTID_LIST => {
                if let Some(list) = source::parse_mariadb_gtid_list(ev.data()) {
                    for g in list.iter() {
                        if !self.asm.gtid.covers(g) {
                            self.asm.gtid.advance(*g);
                        }
                    }
                }
                return Ok(Flow::Continue);
            }
            _ => {}
        }
        let data = match ev.read_data() {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(Flow::Continue),
            Err(e) => {
                return Err(Error::Stream(format!(
                    "unreadable event at {}:{start}: {e}",
                    self.asm.file
                )));
            }
        };
        match data {
            EventData::RotateEvent(r) => {
                self.asm.file = source::rotate_file_name(r.name_raw());
                if self.asm.until_reached(&self.asm.at(r.position()), None) {
                    return Ok(Flow::Stop);
                }
            }
            EventData::GtidEvent(g) => {
                let gtid = format!("{}:{}", uuid_text(&g.sid()), g.gno());
                if self.asm.until_reached(&self.asm.at(start), None) {
                    return Ok(Flow::Stop);
                }
                self.relay.shared.update(|s| s.last_event_ts_ms = ts_ms);
                let base = seqno::Base::Gtid(g.gno());
                self.asm.begin(gtid.clone(), Some(gtid), base, false, start);
            }
            EventData::QueryEvent(q) => {
                let sql = q.query();
                let head = sql.trim_start().get(..6).unwrap_or("").to_ascii_uppercase();
                if head.starts_with("BEGIN") {
                    if !self.asm.in_transaction()
                        && self.asm.until_reached(&self.asm.at(start), None)
                    {
                        return Ok(Flow::Stop);
                    }
                    self.asm.begin_query(start);
                } else if head.starts_with("COMMIT") {
                    if let Flow::Stop = self.commit(end, ts_ms).await? {
                        return Ok(Flow::Stop);
                    }
                } else if !head.starts_with("XA")
                    && !head.starts_with("SAVEPO")
                    && !head.starts_with("ROLLBA")
                {
                    // DDL or another self-contained statement: schemas may have changed.
                    let db = q.schema().into_owned();
                    self.schema.invalidate(&db, None);
                    let thread = Some(u64::from(q.thread_id()));
                    self.statement(&db, &sql, start, ts_ms, thread).await?;
                    if !self.asm.in_begin()
                        && let Flow::Stop = self.commit(end, ts_ms).await?
                    {
                        return Ok(Flow::Stop);
                    }
                }
            }
            EventData::XidEvent(_) => {
                if let Flow::Stop = self.commit(end, ts_ms).await? {
                    return Ok(Flow::Stop);
                }
            }
            EventData::RowsEvent(rows) => {
                self.rows(stream, &rows, start, ts_ms).await?;
                self.split_if_large().await?;
            }
            // MySQL, at a file's start: every GTID before this file.
            EventData::PreviousGtidsEvent(p) if self.asm.mysql.is_empty() => {
                for sid in p.sids() {
                    let uuid = uuid_text(&sid.uuid());
                    for iv in sid.intervals() {
                        // Interval ends are exclusive on the wire.
                        if iv.end() > iv.start() {
                            self.asm.mysql.add_interval(&uuid, iv.start(), iv.end() - 1);
                        }
                    }
                }
            }
            // MySQL 8 compressed transaction: the binlog client decompresses
            // it and hands over its events next (see `events`).
            EventData::TransactionPayloadEvent(_) => {}
            // Every other type either carries no rows (see `events::kind`)
            // or is refused above.
            _ => {}
        }
        Ok(Flow::Continue)
    }

    async fn publish_begin(&mut self, ts_ms: i64) -> Result<()> {
        match self.asm.begin_record(ts_ms) {
            Some(msg) => self.publish_tx(&msg).await,
            None => Ok(()),
        }
    }

    async fn publish_tx(&mut self, msg: &TxMessage) -> Result<()> {
        // The drop-in encoding keys records `{"id":…}` as Debezium does.
        let (key, payload) = if self.relay.settings.drop_in() {
            format::connect::transaction_record(&msg.record, self.relay.encoding())
        } else {
            let payload =
                serde_json::to_vec(&msg.record).map_err(|e| Error::Stream(e.to_string()))?;
            (msg.id.clone(), payload)
        };
        let topic = topic::transaction_topic(self.prefix());
        self.emit(
            &topic,
            Some(&key),
            Some(&payload),
            &MessageHeaders {
                gtid: msg.gtid.as_deref(),
                pos: &msg.pos,
                seq: self.asm.seq,
                replay: false,
                changed_at_us: None,
                traceparent: None,
            },
        )
        .await
    }

    /// Ends the current transaction at `end`; `Flow::Stop` once `--until` is covered.
    async fn commit(&mut self, end: u64, ts_ms: i64) -> Result<Flow> {
        // Maxwell: the held row is the transaction's last (unless it belongs
        // to an earlier transaction that never ended in the stream).
        if let Some(held) = self.held.take() {
            let last = self.asm.tx_id() == Some(held.tx_id.as_str());
            self.emit_held(held, last).await?;
        }
        let done = self.asm.commit(end, ts_ms);
        if let Some(msg) = &done.end {
            self.publish_tx(msg).await?;
        }
        if done.closed {
            self.transactions.increment(1);
        }
        let Some(cp) = done.mark else {
            return Ok(Flow::Continue);
        };
        let (position, gtid_text, seq) =
            (format!("{}:{}", cp.file, cp.pos), cp.gtid.clone(), cp.seq);
        self.relay.shared.update(|s| {
            s.position = Some(position);
            s.gtid = gtid_text;
            s.seq = seq;
            s.transactions += 1;
            s.last_event_ts_ms = ts_ms;
        });
        self.mark(cp).await?;
        Ok(if done.done {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }
}

/// Acknowledged offsets as heartbeats publish them (the heartbeat topic's
/// own left out).
fn offsets_of(offsets: &HashMap<(Arc<str>, i32), i64>, hb_topic: &str) -> Vec<PartitionOffset> {
    offsets
        .iter()
        .filter(|((t, _), _)| **t != *hb_topic)
        .map(|((t, p), next)| PartitionOffset {
            topic: t.to_string(),
            partition: *p,
            next: *next,
        })
        .collect()
}
