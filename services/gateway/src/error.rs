//! REST errors: every failure leaves the gateway as
//! `{"error":{"code":"…","message":"…"}}` with its HTTP status. gRPC
//! statuses of the services are mapped here, once.
//!
//! | status | code | when |
//! |---|---|---|
//! | 400 | `bad_request` | malformed JSON, non-numeric ids, unparseable query |
//! | 401 | `unauthenticated` | missing, forged or expired token; wrong login |
//! | 403 | `forbidden` | acting for another user |
//! | 404 | `not_found` | unknown user or route |
//! | 405 | `method_not_allowed` | known route, wrong method |
//! | 409 | `conflict` | username taken |
//! | 413 | `payload_too_large` | body over the limit |
//! | 415 | `unsupported_media_type` | body without `Content-Type: application/json` |
//! | 422 | `invalid_argument` | well-formed but invalid: unknown or missing fields, bad username/password, self-follow, page size, cursor |
//! | 429 | `too_many_requests` | too many requests in flight; register/login attempts over the per-client or per-username limit |
//! | 500 | `internal` | a bug or a database error (details only in logs) |
//! | 503 | `unavailable` | a service or MySQL is down, the request timed out, or user-service's password hashing is saturated |
//!
//! Every 429 and 503 carries `Retry-After` (seconds): the wait a service
//! sent (`retry-after` metadata) or a limiter computed, else 1.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One REST error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for `Retry-After` (429 and 503 only; default 1).
    pub retry_after: Option<u64>,
}

/// `Retry-After` of a 429 or 503 that names no wait of its own.
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 1;

/// Result alias of the handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// The same error, telling the client to retry after `secs` seconds.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_argument",
            message,
        )
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        let mut resp = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            let secs = self.retry_after.unwrap_or(DEFAULT_RETRY_AFTER_SECS);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        let msg = s.message().to_owned();
        if s.metadata()
            .contains_key(service_kit::readpath::consistency::REFUSED_TOKEN_METADATA)
        {
            // The Consistency-Token header is malformed or from the future.
            return Self::bad_request(msg);
        }
        // A deliberate "not now" of a service: its message and wait go to the client.
        let retry_after = service_kit::grpc::retry_after(&s);
        if s.code() == Code::Unavailable
            && let Some(secs) = retry_after
        {
            tracing::debug!(message = %msg, "backend refused for now");
            return Self::unavailable(msg).with_retry_after(secs);
        }
        match s.code() {
            Code::InvalidArgument | Code::OutOfRange => Self::invalid(msg),
            Code::NotFound => Self::not_found(msg),
            Code::AlreadyExists => Self::new(StatusCode::CONFLICT, "conflict", msg),
            Code::FailedPrecondition | Code::Aborted => {
                Self::new(StatusCode::CONFLICT, "conflict", msg)
            }
            Code::Unauthenticated => Self::unauthenticated(msg),
            Code::PermissionDenied => Self::forbidden(msg),
            Code::ResourceExhausted => Self {
                retry_after,
                ..Self::too_many_requests(msg)
            },
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                tracing::warn!(code = ?s.code(), message = %msg, "backend unavailable");
                Self::unavailable("service unavailable, retry later")
            }
            _ => {
                tracing::error!(code = ?s.code(), message = %msg, "backend error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_map_to_http_statuses() {
        let cases = [
            (tonic::Status::invalid_argument("x"), 422),
            (tonic::Status::not_found("x"), 404),
            (tonic::Status::already_exists("x"), 409),
            (tonic::Status::unauthenticated("x"), 401),
            (tonic::Status::permission_denied("x"), 403),
            (tonic::Status::resource_exhausted("x"), 429),
            (tonic::Status::unavailable("x"), 503),
            (tonic::Status::internal("select * from secret"), 500),
        ];
        for (status, http) in cases {
            assert_eq!(ApiError::from(status).status.as_u16(), http);
        }
        assert_eq!(
            ApiError::from(tonic::Status::internal("select * from secret")).message,
            "internal error"
        );
    }

    #[test]
    fn refusals_carry_the_services_wait_as_retry_after() {
        use service_kit::grpc::refusal;
        let limited = ApiError::from(refusal(tonic::Code::ResourceExhausted, "slow down", 7));
        assert_eq!(
            (limited.status.as_u16(), limited.retry_after),
            (429, Some(7))
        );
        assert_eq!(limited.message, "slow down");
        let busy = ApiError::from(refusal(tonic::Code::Unavailable, "busy", 2));
        assert_eq!((busy.status.as_u16(), busy.retry_after), (503, Some(2)));
        assert_eq!(busy.message, "busy");
        // A plain UNAVAILABLE (a service down) keeps its generic message.
        let down = ApiError::from(tonic::Status::unavailable("connection refused"));
        assert_eq!(down.message, "service unavailable, retry later");

        let resp = limited.into_response();
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
        let resp = ApiError::unavailable("request timed out").into_response();
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        let resp = ApiError::not_found("x").into_response();
        assert!(resp.headers().get(header::RETRY_AFTER).is_none());
    }
}
