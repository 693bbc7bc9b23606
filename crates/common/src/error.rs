//! Transient vs definite: the one classification of MySQL / MariaDB errors
//! that the relay and the cache-syncer both retry on.
//!
//! Every error a sluice loop can meet is either [`ErrorKind::Transient`]
//! (the server, the network or a lock is in the way right now) or
//! [`ErrorKind::Definite`] (the request itself cannot succeed: bad
//! credentials, a missing database, a purged binlog position, bad data). The
//! binaries decide what each kind means for them (the relay reconnects or
//! stops; the syncer retries or dead-letters), but which MySQL errors are
//! which is decided here, once:
//! - [`mysql_code_kind`]: a server error number (from `sqlx` or
//!   `mysql_async`). Only the numbers in its list are transient; any other
//!   is definite.
//! - [`sqlx_kind`]: a whole [`sqlx::Error`], server errors through
//!   [`mysql_code_kind`].
//!
//! Invariant: a connect refused for bad credentials (1045) is definite on
//! every path; waiting does not fix a password.

/// Whether retrying the same work later can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Retrying the same work later may succeed: the server or the network
    /// went away, a lock or a limit was in the way, a failover was under way.
    Transient,
    /// Retrying would repeat it: bad configuration or credentials, a missing
    /// object, a refused position, data the target cannot take.
    Definite,
}

/// MySQL / MariaDB error numbers that clear by themselves. Client-side
/// numbers (20xx) are listed too: some proxies and drivers pass them on.
const MYSQL_TRANSIENT_CODES: &[u16] = &[
    1040, // ER_CON_COUNT_ERROR: too many connections
    1053, // ER_SERVER_SHUTDOWN: server shutdown in progress
    1158, // ER_NET_READ_ERROR: error reading communication packets
    1159, // ER_NET_READ_INTERRUPTED: timeout reading communication packets
    1160, // ER_NET_ERROR_ON_WRITE: error writing communication packets
    1161, // ER_NET_WRITE_INTERRUPTED: timeout writing communication packets
    1203, // ER_TOO_MANY_USER_CONNECTIONS: max_user_connections reached
    1205, // ER_LOCK_WAIT_TIMEOUT
    1213, // ER_LOCK_DEADLOCK
    1290, // ER_OPTION_PREVENTS_STATEMENT: --read-only during a failover
    1317, // ER_QUERY_INTERRUPTED: the statement was killed
    1637, // ER_TOO_MANY_CONCURRENT_TRXS
    1836, // ER_READ_ONLY_MODE
    1927, // ER_CONNECTION_KILLED (MariaDB)
    2002, // CR_CONNECTION_ERROR: cannot connect through the socket
    2003, // CR_CONN_HOST_ERROR: cannot connect to the host
    2006, // CR_SERVER_GONE_ERROR: server has gone away
    2013, // CR_SERVER_LOST: lost connection during a query
    2055, // CR_SERVER_LOST_EXTENDED: lost connection, with the system error
    3169, // ER_SESSION_WAS_KILLED (MySQL)
    3572, // ER_LOCK_NOWAIT: a NOWAIT lock was taken
    4031, // ER_CLIENT_INTERACTION_TIMEOUT: disconnected for inactivity
];

/// The kind of a MySQL / MariaDB server error number.
///
/// Transient: lock wait timeout (1205), deadlock (1213), too many
/// connections (1040, 1203), shutdown (1053), read-only during a failover
/// (1290, 1836), killed or lost connections (1317, 1927, 3169, 4031,
/// 1158–1161, 2002, 2003, 2006, 2013, 2055). Everything else is definite,
/// among them access denied (1044, 1045), unknown database (1049), unknown
/// table (1146), a fatal binlog read error such as a purged position (1236),
/// a duplicate key (1062) and a syntax error (1064).
pub fn mysql_code_kind(code: u16) -> ErrorKind {
    if MYSQL_TRANSIENT_CODES.contains(&code) {
        ErrorKind::Transient
    } else {
        ErrorKind::Definite
    }
}

/// The kind of an `sqlx` error.
///
/// Transient: I/O (the connection broke or was refused), a pool that timed
/// out, closed or lost its worker. A server error goes by its MySQL number
/// ([`mysql_code_kind`]); one without a number (not from MySQL) is definite.
/// Everything else — configuration, TLS, protocol, a missing row or column,
/// encode/decode, migrations — is definite.
pub fn sqlx_kind(e: &sqlx::Error) -> ErrorKind {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map_or(ErrorKind::Definite, |e| mysql_code_kind(e.number())),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => ErrorKind::Transient,
        _ => ErrorKind::Definite,
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorKind::{Definite, Transient};
    use super::*;

    #[test]
    fn locks_limits_failovers_and_lost_connections_are_transient() {
        for code in [
            1205, 1213, 1040, 1203, 1053, 1290, 1836, 1317, 1927, 3169, 2002, 2003, 2006, 2013,
        ] {
            assert_eq!(mysql_code_kind(code), Transient, "{code}");
        }
    }

    #[test]
    fn bad_credentials_missing_objects_and_a_purged_position_are_definite() {
        // 1045 access denied (bad password), 1044 access denied to a
        // database, 1049 unknown database, 1146 unknown table, 1236 fatal
        // binlog read, 1062 duplicate key, 1064 syntax, 1227 missing privilege.
        for code in [1045, 1044, 1049, 1146, 1236, 1062, 1064, 1227] {
            assert_eq!(mysql_code_kind(code), Definite, "{code}");
        }
    }

    #[test]
    fn the_transient_list_is_sorted_and_has_no_duplicates() {
        assert!(
            MYSQL_TRANSIENT_CODES.windows(2).all(|w| w[0] < w[1]),
            "{MYSQL_TRANSIENT_CODES:?}"
        );
    }

    #[test]
    fn a_broken_connection_or_a_busy_pool_is_transient() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(sqlx_kind(&sqlx::Error::Io(refused)), Transient);
        assert_eq!(sqlx_kind(&sqlx::Error::PoolTimedOut), Transient);
        assert_eq!(sqlx_kind(&sqlx::Error::PoolClosed), Transient);
        assert_eq!(sqlx_kind(&sqlx::Error::WorkerCrashed), Transient);
    }

    #[test]
    fn configuration_tls_protocol_and_data_errors_are_definite() {
        let errors = [
            sqlx::Error::Configuration("bad url".into()),
            sqlx::Error::Tls("server does not support TLS".into()),
            sqlx::Error::Protocol("unknown authentication plugin: x".into()),
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("id".into()),
            sqlx::Error::ColumnDecode {
                index: "0".into(),
                source: "out of range".into(),
            },
            sqlx::Error::Decode("bad utf-8".into()),
        ];
        for e in &errors {
            assert_eq!(sqlx_kind(e), Definite, "{e}");
        }
    }

    /// A server error that is not MySQL's: it carries no MySQL number.
    #[derive(Debug)]
    struct Foreign;

    impl std::fmt::Display for Foreign {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("foreign")
        }
    }

    impl std::error::Error for Foreign {}

    impl sqlx::error::DatabaseError for Foreign {
        fn message(&self) -> &str {
            "foreign"
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn a_server_error_without_a_mysql_number_is_definite() {
        assert_eq!(
            sqlx_kind(&sqlx::Error::Database(Box::new(Foreign))),
            Definite
        );
    }
}
