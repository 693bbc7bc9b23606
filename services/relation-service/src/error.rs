//! The one error type of relation-service, mapped to a gRPC status exactly
//! once, in [`From<Error> for tonic::Status`]. Internal causes (SQL errors)
//! are logged there (`service_kit::store`) and never sent to the client.

use service_kit::store::StoreError;
use tonic::Status;

/// What can go wrong serving a relation request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong (self-follow, bad cursor, bad limit).
    #[error("{0}")]
    InvalidArgument(String),
    /// A user named in the request does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The write lost to concurrent writers more often than the retry budget.
    #[error("too much contention on this relation, retry")]
    Contention,
    /// A database failure (`service_kit::store`: shared, because a
    /// coalesced cache load hands one failure to every waiter).
    #[error(transparent)]
    Database(#[from] StoreError),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

service_kit::store_error_conversions!(Error);

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidArgument(m) => Status::invalid_argument(m),
            Error::NotFound(m) => Status::not_found(m),
            Error::Contention => Status::unavailable(e.to_string()),
            Error::Database(e) => e.into(),
        }
    }
}
