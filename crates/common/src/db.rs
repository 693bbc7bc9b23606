//! MySQL / MariaDB pool construction and the embedded schema migrations.
//!
//! `migrations/` at the workspace root is the only place the schema is
//! defined; it is compiled into every binary through [`MIGRATOR`], so a
//! binary can never run against a schema it does not know. Queries are
//! checked at run time (no live database is needed to build).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use std::str::FromStr;

use crate::error::ErrorKind;

/// The workspace's migrations, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Connecting or migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database url: {0}")]
    Url(#[source] sqlx::Error),
    #[error("cannot connect to mysql: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl DbError {
    /// Transient when the server did not answer or turned the connection
    /// away for now ([`crate::error::sqlx_kind`]); definite for a bad URL,
    /// bad credentials (1045) and a failed migration (which may have run
    /// half-way: not something to repeat blindly).
    pub fn kind(&self) -> ErrorKind {
        match self {
            DbError::Connect(e) => crate::error::sqlx_kind(e),
            DbError::Url(_) | DbError::Migrate(_) => ErrorKind::Definite,
        }
    }
}

/// Opens a pool. Fails within `connect_timeout` when the server does not answer.
pub async fn connect(url: &SecretString, max_connections: u32) -> Result<MySqlPool, DbError> {
    let opts = MySqlConnectOptions::from_str(url.expose_secret()).map_err(DbError::Url)?;
    MySqlPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(opts)
        .await
        .map_err(DbError::Connect)
}

/// Opens a pool whose sessions run at READ COMMITTED. Two things follow:
/// no gap locks (two inserts of different keys never block each other on an
/// index gap), and a statement such as `UPDATE t SET c = (SELECT … FROM s)`
/// reads `s` as a consistent read without locking its rows (at REPEATABLE
/// READ it takes shared locks on them). The binlog is ROW, which makes
/// READ COMMITTED replication-safe.
pub async fn connect_read_committed(
    url: &SecretString,
    max_connections: u32,
) -> Result<MySqlPool, DbError> {
    let opts = MySqlConnectOptions::from_str(url.expose_secret()).map_err(DbError::Url)?;
    MySqlPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                sqlx::query("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .execute(conn)
                    .await?;
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .map_err(DbError::Connect)
}

/// Applies every pending migration.
pub async fn migrate(pool: &MySqlPool) -> Result<(), DbError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_not_answering_is_transient_and_a_bad_url_is_not() {
        assert_eq!(
            DbError::Connect(sqlx::Error::PoolTimedOut).kind(),
            ErrorKind::Transient
        );
        let url = DbError::Url(sqlx::Error::Configuration("bad url".into()));
        assert_eq!(url.kind(), ErrorKind::Definite);
        let tls = DbError::Connect(sqlx::Error::Tls("no TLS".into()));
        assert_eq!(tls.kind(), ErrorKind::Definite);
        let dirty = DbError::Migrate(sqlx::migrate::MigrateError::Dirty(1));
        assert_eq!(dirty.kind(), ErrorKind::Definite);
    }
}
