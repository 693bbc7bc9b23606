//! The one error type of user-service, mapped to a gRPC status exactly once,
//! in [`From<Error> for tonic::Status`]. Internal causes (SQL errors, hashing
//! failures) are logged there and never sent to the client. Refusals for
//! now (hashing saturated: UNAVAILABLE; a username's attempts used up:
//! RESOURCE_EXHAUSTED) carry `retry-after` metadata in seconds.

use service_kit::grpc::refusal;
use service_kit::store::StoreError;
use tonic::{Code, Status};

/// What can go wrong serving a user request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request itself is wrong (username alphabet, password length, …).
    #[error("{0}")]
    InvalidArgument(String),
    /// No such user.
    #[error("{0}")]
    NotFound(String),
    /// The username is taken.
    #[error("username already taken")]
    UsernameTaken,
    /// Unknown user or wrong password: deliberately one error.
    #[error("invalid username or password")]
    BadCredentials,
    /// Password hashing failed.
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// Every password-hashing slot stayed busy for the whole queue wait.
    #[error("too many password checks in progress, retry later")]
    Busy { retry_after_secs: u64 },
    /// Too many Register/Login attempts for this username.
    #[error("too many attempts for this username, retry later")]
    RateLimited(#[from] service_kit::ratelimit::Limited),
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
            Error::UsernameTaken => Status::already_exists(e.to_string()),
            Error::BadCredentials => Status::unauthenticated(e.to_string()),
            Error::Hashing(m) => {
                tracing::error!(error = %m, "password hashing failed");
                Status::internal("internal error")
            }
            Error::Busy { retry_after_secs } => {
                refusal(Code::Unavailable, e.to_string(), retry_after_secs)
            }
            Error::RateLimited(limited) => refusal(
                Code::ResourceExhausted,
                e.to_string(),
                limited.retry_after_secs(),
            ),
            Error::Database(e) => e.into(),
        }
    }
}
