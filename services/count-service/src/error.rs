//! The one error type of count-service, mapped to a gRPC status exactly
//! once, in [`From<Error> for tonic::Status`]. Internal causes (SQL errors)
//! are logged there and never sent to the client.

use std::sync::Arc;

use tonic::Status;

/// What can go wrong serving a counts request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong (too many ids, unknown kind).
    #[error("{0}")]
    InvalidArgument(String),
    /// A database failure (shared, because a coalesced cache load hands
    /// one failure to every waiter).
    #[error("database error")]
    Database(#[source] Arc<sqlx::Error>),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Database(Arc::new(e))
    }
}

impl From<Arc<sqlx::Error>> for Error {
    fn from(e: Arc<sqlx::Error>) -> Self {
        Error::Database(e)
    }
}

/// Whether a database error means "MySQL is not reachable" rather than a bad query.
fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
    )
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidArgument(m) => Status::invalid_argument(m),
            Error::Database(source) if is_unavailable(&source) => {
                tracing::warn!(error = %source, "mysql unavailable");
                Status::unavailable("database unavailable")
            }
            Error::Database(source) => {
                tracing::error!(error = %source, "database error");
                Status::internal("internal error")
            }
        }
    }
}

impl From<service_kit::readpath::ReadError> for Error {
    fn from(e: service_kit::readpath::ReadError) -> Self {
        Error::Database(e.0)
    }
}
