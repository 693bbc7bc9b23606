//! Read-your-writes: the barrier a read passes when it carries a write's
//! `consistency_token` (the GTID of that write's commit, DESIGN §3).
//!
//! The cache-syncer publishes its applied watermark in Redis
//! (`<ns>:watermark`, field `gtid`): every change at or below that GTID
//! position is visible in Redis. A read with a token waits, at most the
//! configured deadline, until the watermark covers the token, then reads
//! Redis (skipping the process-local cache, which may be older); past the
//! deadline — or with Redis unreachable — it reads MySQL. Either way the
//! client sees its own write; [`ReadMode`] says which way it went and the
//! services report it in a response header.
//!
//! Tokens are GTIDs: MariaDB `domain-server-seq` (`0-1-42`) or MySQL
//! `uuid:n`. A token that does not parse, or that is ahead of what the
//! database has committed, is refused (the client's bug, never a hang).
//!
//! One poller per process reads the watermark every `poll` while at least
//! one read waits, and sleeps otherwise; waiters share its answers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cdc_event::gtid::Flavor;
use sqlx::MySqlPool;
use tokio::sync::{Notify, watch};

use super::redis_cache::RedisCache;
use crate::store::StoreError;
use common::keys::Keys;

/// Histogram of the wait a token-carrying read added, by `outcome`
/// (`synced`: the watermark passed; `primary`: it read MySQL instead).
pub const WAIT_SECONDS: &str = "consistency_wait_seconds";

/// How a read is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// No token: local cache → Redis → MySQL.
    Cached,
    /// The watermark covers the token: Redis → MySQL, skipping the local cache.
    Synced,
    /// MySQL only (the deadline passed, or Redis is unreachable).
    Primary,
}

impl ReadMode {
    /// The value of the `Read-Source` response header / metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadMode::Cached => "cache",
            ReadMode::Synced => "synced-cache",
            ReadMode::Primary => "primary",
        }
    }
}

/// Response header (REST) and metadata key (gRPC) naming the [`ReadMode`].
pub const READ_SOURCE_HEADER: &str = "read-source";

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "malformed consistency token {0:?}: expected the consistency_token of a write (a GTID such as 0-1-42)"
    )]
    Malformed(String),
    /// The database's position is logged, never sent to the client: it
    /// names the server's GTID domains and ids and its write volume.
    #[error(
        "consistency token {token} is ahead of every commit of the database; use a token returned by a write"
    )]
    Future { token: String },
    #[error(transparent)]
    Db(#[from] StoreError),
}

/// One GTID: the source it counts in (MariaDB domain, MySQL server uuid)
/// and its sequence number there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    source: String,
    seq: u64,
}

impl std::str::FromStr for Token {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, TokenError> {
        let bad = || TokenError::Malformed(s.chars().take(80).collect());
        let s = s.trim();
        if s.len() > 80 {
            return Err(bad());
        }
        // MySQL: uuid:n
        if let Some((uuid, n)) = s.split_once(':') {
            let seq = n.parse::<u64>().map_err(|_| bad())?;
            if cdc_event::gtid::uuid_bytes(uuid).is_none() || seq == 0 {
                return Err(bad());
            }
            return Ok(Token {
                source: uuid.to_ascii_lowercase(),
                seq,
            });
        }
        // MariaDB: domain-server-seq
        let g: cdc_event::Gtid = s.parse().map_err(|_| bad())?;
        if g.seq == 0 {
            return Err(bad());
        }
        Ok(Token {
            source: g.domain.to_string(),
            seq: g.seq,
        })
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.source, self.seq)
    }
}

/// A GTID position: per source, the highest sequence number included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position(BTreeMap<String, u64>);

impl Position {
    /// Parses a MariaDB position (`0-1-42,1-2-7`) or a MySQL GTID set
    /// (`uuid:1-42:50-60,uuid2:1-7`; the end of the last interval counts,
    /// which is exact for the gap-free sets a single primary produces).
    pub fn parse(s: &str) -> Option<Self> {
        use cdc_event::gtid::{GtidPos, GtidSet};
        let mut out = BTreeMap::new();
        match s.parse::<GtidPos>() {
            Ok(pos) => {
                for g in pos.iter() {
                    out.insert(g.domain.to_string(), g.seq);
                }
            }
            Err(_) => {
                let set: GtidSet = s.parse().ok()?;
                for (uuid, intervals) in set.iter() {
                    out.insert(uuid.to_owned(), intervals.last()?.1);
                }
            }
        }
        Some(Position(out))
    }

    /// The newest sequence number of `source` (a MariaDB domain or a MySQL
    /// server UUID, lowercase) in the position.
    pub fn seq_of(&self, source: &str) -> Option<u64> {
        self.0.get(source).copied()
    }

    /// Whether the position includes the token's transaction.
    pub fn covers(&self, t: &Token) -> bool {
        self.0.get(&t.source).is_some_and(|&seq| seq >= t.seq)
    }
}

/// The read-your-writes barrier of one service process.
#[derive(Clone)]
pub struct Barrier {
    inner: Arc<Inner>,
}

struct Inner {
    redis: RedisCache,
    key: String,
    pool: MySqlPool,
    deadline: Duration,
    poll: Duration,
    latest: watch::Sender<Option<Arc<Position>>>,
    waiters: AtomicUsize,
    wake: Notify,
    poller: AtomicBool,
    /// The database's committed position, as last read (future-token check).
    server: std::sync::Mutex<Position>,
}

impl std::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Barrier")
            .field("deadline", &self.inner.deadline)
            .finish()
    }
}

impl Barrier {
    /// `deadline` bounds the wait of one read; `poll` is the watermark
    /// polling period while reads wait.
    pub fn new(
        redis: RedisCache,
        keys: &Keys,
        pool: MySqlPool,
        deadline: Duration,
        poll: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                redis,
                key: keys.watermark(),
                pool,
                deadline,
                poll: poll.max(Duration::from_micros(500)),
                latest: watch::Sender::new(None),
                waiters: AtomicUsize::new(0),
                wake: Notify::new(),
                poller: AtomicBool::new(false),
                server: std::sync::Mutex::new(Position::default()),
            }),
        }
    }

    /// How to serve a read that carries `token` (none or empty: [`ReadMode::Cached`]).
    pub async fn mode(&self, token: Option<&str>) -> Result<ReadMode, TokenError> {
        let Some(raw) = token.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(ReadMode::Cached);
        };
        let token: Token = raw.parse()?;
        let started = Instant::now();
        let outcome = self.wait(&token, raw).await;
        if let Ok(mode) = &outcome {
            let label = if *mode == ReadMode::Synced {
                "synced"
            } else {
                "primary"
            };
            metrics::histogram!(WAIT_SECONDS, "outcome" => label)
                .record(started.elapsed().as_secs_f64());
        }
        outcome
    }

    /// [`Barrier::mode`] for a gRPC request carrying the token in its
    /// `consistency-token` metadata; a refused token is `InvalidArgument`.
    pub async fn for_request<T>(&self, req: &tonic::Request<T>) -> Result<ReadMode, tonic::Status> {
        let token = token_of(req)?;
        self.mode(token).await.map_err(to_status)
    }

    /// Waits until the watermark covers `token` (`true`) or `timeout`
    /// passes (`false`). Refuses malformed and future tokens.
    pub async fn await_applied(&self, token: &str, timeout: Duration) -> Result<bool, TokenError> {
        let raw = token.trim();
        let t: Token = raw.parse()?;
        Ok(self.wait_for(&t, raw, timeout).await? == ReadMode::Synced)
    }

    async fn wait(&self, token: &Token, raw: &str) -> Result<ReadMode, TokenError> {
        self.wait_for(token, raw, self.inner.deadline).await
    }

    async fn wait_for(
        &self,
        token: &Token,
        raw: &str,
        timeout: Duration,
    ) -> Result<ReadMode, TokenError> {
        let inner = &self.inner;
        match read_watermark(&inner.redis, &inner.key).await {
            // Redis unreachable: nothing to wait for.
            None => return Ok(ReadMode::Primary),
            Some(Some(p)) if p.covers(token) => return Ok(ReadMode::Synced),
            Some(_) => {}
        }
        self.check_not_future(token, raw).await?;

        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = inner.latest.subscribe();
        inner.waiters.fetch_add(1, Ordering::SeqCst);
        let _guard = WaiterGuard(&inner.waiters);
        self.ensure_poller();
        inner.wake.notify_one();
        loop {
            if rx
                .borrow_and_update()
                .as_ref()
                .is_some_and(|p| p.covers(token))
            {
                return Ok(ReadMode::Synced);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Ok(ReadMode::Primary),
            }
        }
    }

    /// Refuses a token beyond the database's committed position.
    async fn check_not_future(&self, token: &Token, raw: &str) -> Result<(), TokenError> {
        if self
            .inner
            .server
            .lock()
            .map(|p| p.covers(token))
            .unwrap_or(false)
        {
            return Ok(());
        }
        let flavor = flavor(&self.inner.pool).await.map_err(StoreError::from)?;
        let text: String = sqlx::query_scalar(flavor.committed_query())
            .fetch_one(&self.inner.pool)
            .await
            .map_err(StoreError::from)?;
        let server = Position::parse(&text).unwrap_or_default();
        if !server.covers(token) {
            tracing::info!(token = %raw.chars().take(80).collect::<String>(), server = %text,
                "refused a consistency token ahead of the database");
            return Err(TokenError::Future {
                token: raw.chars().take(80).collect(),
            });
        }
        if let Ok(mut p) = self.inner.server.lock() {
            *p = server;
        }
        Ok(())
    }

    fn ensure_poller(&self) {
        if self.inner.poller.swap(true, Ordering::SeqCst) {
            return;
        }
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                let Some(i) = inner.upgrade() else { return };
                if i.waiters.load(Ordering::SeqCst) == 0 {
                    // Sleep until a read waits (or check again now and then,
                    // so a dropped barrier ends the task).
                    let _ = tokio::time::timeout(Duration::from_secs(1), i.wake.notified()).await;
                    continue;
                }
                if let Some(Some(p)) = read_watermark(&i.redis, &i.key).await {
                    i.latest.send_if_modified(|cur| {
                        if cur.as_deref() == Some(&p) {
                            false
                        } else {
                            *cur = Some(Arc::new(p));
                            true
                        }
                    });
                }
                let poll = i.poll;
                drop(i);
                tokio::time::sleep(poll).await;
            }
        });
    }
}

/// gRPC metadata key of the token (the gateway forwards the
/// `Consistency-Token` header under it).
pub const TOKEN_METADATA: &str = "consistency-token";

/// The server flavour of this process's database, detected once from
/// `SELECT VERSION()` (0 not yet, 1 MariaDB, 2 MySQL).
static FLAVOR: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// The flavour of the server behind `conn`, cached for the process (a
/// process talks to one database server).
pub(crate) async fn flavor<'c, E>(conn: E) -> Result<Flavor, sqlx::Error>
where
    E: sqlx::Executor<'c, Database = sqlx::MySql>,
{
    match FLAVOR.load(Ordering::Relaxed) {
        1 => return Ok(Flavor::MariaDb),
        2 => return Ok(Flavor::MySql),
        _ => {}
    }
    let version: String = sqlx::query_scalar("SELECT CAST(VERSION() AS CHAR)")
        .fetch_one(conn)
        .await?;
    let f = Flavor::from_version(&version);
    FLAVOR.store(if f == Flavor::MariaDb { 1 } else { 2 }, Ordering::Relaxed);
    Ok(f)
}

/// The token of a gRPC request, if any (`InvalidArgument` when not ASCII).
pub fn token_of<T>(req: &tonic::Request<T>) -> Result<Option<&str>, tonic::Status> {
    match req.metadata().get(TOKEN_METADATA) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| to_status(TokenError::Malformed("<not ASCII>".into()))),
    }
}

/// Adds the `read-source` metadata to a response of a token-carrying read.
pub fn tag<T>(mut resp: tonic::Response<T>, mode: ReadMode) -> tonic::Response<T> {
    if mode != ReadMode::Cached {
        resp.metadata_mut().insert(
            READ_SOURCE_HEADER,
            tonic::metadata::MetadataValue::from_static(mode.as_str()),
        );
    }
    resp
}

/// Metadata key of a refused token's status; the gateway answers 400 (the
/// request header itself is bad), not 422 (a bad field of the body).
pub const REFUSED_TOKEN_METADATA: &str = "sluice-refused";

/// The gRPC status of a refused token.
pub fn to_status(e: TokenError) -> tonic::Status {
    match e {
        TokenError::Malformed(_) | TokenError::Future { .. } => {
            let mut s = tonic::Status::invalid_argument(e.to_string());
            s.metadata_mut().insert(
                REFUSED_TOKEN_METADATA,
                tonic::metadata::MetadataValue::from_static(TOKEN_METADATA),
            );
            s
        }
        TokenError::Db(e) => {
            tracing::error!(error = ?e, "checking a consistency token failed");
            tonic::Status::unavailable("database unavailable")
        }
    }
}

struct WaiterGuard<'a>(&'a AtomicUsize);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `None`: Redis did not answer. `Some(None)`: no watermark yet.
async fn read_watermark(redis: &RedisCache, key: &str) -> Option<Option<Position>> {
    let key = key.to_owned();
    let gtid: Option<String> = redis
        .run(|mut conn| async move {
            redis::cmd("HGET")
                .arg(&key)
                .arg("gtid")
                .query_async(&mut conn)
                .await
        })
        .await?;
    Some(gtid.as_deref().and_then(Position::parse))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_and_mysql_tokens_parse() {
        let t: Token = "0-1-42".parse().unwrap();
        assert_eq!(t.source, "0");
        assert_eq!(t.seq, 42);
        let t: Token = "3E11FA47-71CA-11E1-9E33-C80AA9429562:23".parse().unwrap();
        assert_eq!(t.source, "3e11fa47-71ca-11e1-9e33-c80aa9429562");
        assert_eq!(t.seq, 23);
    }

    #[test]
    fn garbage_tokens_are_refused() {
        for bad in [
            "x",
            "0-1",
            "0-1-2-3",
            "0-1-0",
            "a-1-2",
            "0-1-99999999999999999999999",
            "short:1",
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:x",
            "'; DROP TABLE follow; --",
        ] {
            assert!(
                matches!(bad.parse::<Token>(), Err(TokenError::Malformed(_))),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn positions_cover_tokens_of_their_sources_only() {
        let p = Position::parse("0-1-100,1-2-5").unwrap();
        assert!(p.covers(&"0-1-100".parse().unwrap()));
        assert!(p.covers(&"0-7-99".parse().unwrap()));
        assert!(!p.covers(&"0-1-101".parse().unwrap()));
        assert!(!p.covers(&"2-1-1".parse().unwrap()));
        let m = Position::parse("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-40:45-90").unwrap();
        assert!(m.covers(&"3E11FA47-71CA-11E1-9E33-C80AA9429562:90".parse().unwrap()));
        assert!(!m.covers(&"3e11fa47-71ca-11e1-9e33-c80aa9429562:91".parse().unwrap()));
        assert_eq!(Position::parse(""), Some(Position::default()));
        assert_eq!(Position::parse("nonsense"), None);
    }

    #[test]
    fn read_modes_name_their_source() {
        assert_eq!(ReadMode::Synced.as_str(), "synced-cache");
        assert_eq!(ReadMode::Primary.as_str(), "primary");
    }
}
