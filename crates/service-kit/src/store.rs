//! The store-error mapping every gRPC service shares: a MySQL failure, kept
//! shared (one coalesced load hands its failure to every waiter), and the
//! one place it becomes a gRPC status — UNAVAILABLE when MySQL cannot be
//! reached, INTERNAL otherwise; the cause is logged, never sent to the
//! client. Each service's error type holds it as its `Database` variant and
//! gets its conversions from [`store_error_conversions!`](crate::store_error_conversions).

use std::sync::Arc;

use tonic::Status;

/// A MySQL failure (the read path's and every service's).
#[derive(Debug, Clone, thiserror::Error)]
#[error("database error")]
pub struct StoreError(#[source] pub Arc<sqlx::Error>);

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError(Arc::new(e))
    }
}

impl From<Arc<sqlx::Error>> for StoreError {
    fn from(e: Arc<sqlx::Error>) -> Self {
        StoreError(e)
    }
}

impl StoreError {
    /// Whether the failure means "MySQL is not reachable" rather than a bad
    /// query.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            *self.0,
            sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
        )
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e.0, "mysql unavailable");
            Status::unavailable("database unavailable")
        } else {
            tracing::error!(error = %e.0, "database error");
            Status::internal("internal error")
        }
    }
}

/// The MySQL error number of a database error, if it is one.
pub fn mysql_error_number(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(|m| m.number()),
        _ => None,
    }
}

/// `From<sqlx::Error>` and `From<Arc<sqlx::Error>>` for a service's error
/// type whose `Database` variant holds a [`StoreError`] (`From<StoreError>`
/// comes from its `#[from]`).
#[macro_export]
macro_rules! store_error_conversions {
    ($error:ty) => {
        impl From<sqlx::Error> for $error {
            fn from(e: sqlx::Error) -> Self {
                Self::Database(e.into())
            }
        }

        impl From<std::sync::Arc<sqlx::Error>> for $error {
            fn from(e: std::sync::Arc<sqlx::Error>) -> Self {
                Self::Database(e.into())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_is_unavailable_and_a_bad_query_internal() {
        let down: Status = StoreError::from(sqlx::Error::PoolTimedOut).into();
        assert_eq!(down.code(), tonic::Code::Unavailable);
        assert_eq!(down.message(), "database unavailable");
        let bad: Status = StoreError::from(sqlx::Error::RowNotFound).into();
        assert_eq!(bad.code(), tonic::Code::Internal);
        assert_eq!(bad.message(), "internal error", "the cause is not sent");
        assert_eq!(mysql_error_number(&sqlx::Error::RowNotFound), None);
    }
}
