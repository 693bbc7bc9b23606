//! Request extractors that fail with the gateway's JSON errors: the bearer
//! token (required or optional), JSON bodies (unknown fields refused by the
//! body types), path ids, `me`, and the read-your-writes token.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use service_kit::jwt::JwtError;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The user acting, from a valid `Authorization: Bearer <jwt>`; 401 otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Actor(pub u64);

/// The viewer when a token is sent (a bad token is still a 401), else None.
#[derive(Debug, Clone, Copy)]
pub struct Viewer(pub Option<u64>);

fn bearer(parts: &Parts) -> ApiResult<Option<&str>> {
    let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthenticated("malformed authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::unauthenticated(
            "authorization must be 'Bearer <token>'",
        )),
    }
}

fn verify(state: &AppState, token: &str) -> ApiResult<u64> {
    let claims = state.jwt.verify(token).map_err(|e| match e {
        JwtError::Expired => ApiError::unauthenticated("token expired"),
        _ => ApiError::unauthenticated("invalid token"),
    })?;
    claims
        .user_id()
        .map_err(|_| ApiError::unauthenticated("invalid token"))
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match bearer(parts)? {
            Some(token) => Ok(Actor(verify(state, token)?)),
            None => Err(ApiError::unauthenticated("missing bearer token")),
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match bearer(parts)? {
            Some(token) => Ok(Viewer(Some(verify(state, token)?))),
            None => Ok(Viewer(None)),
        }
    }
}

/// The `Consistency-Token` request header, forwarded to the services as
/// `consistency-token` metadata (their reads then wait for the syncer's
/// watermark to cover it, or read MySQL).
#[derive(Debug, Clone, Default)]
pub struct ReadToken(pub Option<String>);

/// Request header carrying the read-your-writes token.
pub const CONSISTENCY_HEADER: &str = service_kit::readpath::consistency::TOKEN_METADATA;

impl<S: Send + Sync> FromRequestParts<S> for ReadToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(CONSISTENCY_HEADER) else {
            return Ok(ReadToken(None));
        };
        // A token the client sent but we cannot read is refused, not
        // ignored: ignoring it would serve a possibly stale read the
        // client asked us not to.
        let text = value
            .to_str()
            .map_err(|_| ApiError::bad_request("Consistency-Token must be printable ASCII"))?;
        let text = text.trim();
        Ok(ReadToken((!text.is_empty()).then(|| text.to_owned())))
    }
}

/// Response header naming where a token-carrying read was served from
/// (`synced-cache`: Redis after the watermark passed the token; `primary`:
/// MySQL, because the wait ran out or the read always goes there).
pub const READ_SOURCE_HEADER: &str = service_kit::readpath::consistency::READ_SOURCE_HEADER;

/// The `Read-Source` header of a service's response, when it set one.
pub fn read_source<T>(resp: &tonic::Response<T>) -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::new();
    if let Some(v) = resp
        .metadata()
        .get(READ_SOURCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| axum::http::HeaderValue::from_str(v).ok())
    {
        h.insert(READ_SOURCE_HEADER, v);
    }
    h
}

impl ReadToken {
    /// Wraps `msg` in a gRPC request carrying this token, if any.
    pub fn request<T>(&self, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        if let Some(t) = &self.0
            && let Ok(v) = t.parse()
        {
            req.metadata_mut().insert(CONSISTENCY_HEADER, v);
        }
        req
    }
}

/// A JSON body whose rejections are JSON errors: syntax → 400, wrong
/// shape or unknown field → 422, too large → 413, not JSON → 415.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => ApiError::invalid(e.body_text()),
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request("malformed JSON body"),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body too large",
        ),
        other => ApiError::bad_request(other.body_text()),
    }
}

/// Path parameters with the gateway's JSON error: axum's own `Path` answers
/// a segment it cannot read (invalid UTF-8 after percent-decoding, a
/// missing parameter) with a plain-text 400. Handlers use it under the same
/// name, `Path(id): Path<String>`.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(r) => Err(ApiError::bad_request(r.body_text())),
        }
    }
}

/// Reads a number written in ASCII digits only (leading zeros allowed):
/// no sign, no blanks. Rust's own parser would also take `+5`.
pub fn parse_digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| s.parse().ok()).flatten()
}

/// Parses a user id from a path segment (digits only, positive); 400
/// otherwise. `+5` is refused (Rust's integer parser would take it), so one
/// id has one spelling apart from leading zeros.
pub fn parse_id(segment: &str) -> ApiResult<u64> {
    match parse_digits::<u64>(segment) {
        Some(id) if id > 0 => Ok(id),
        _ => Err(ApiError::bad_request(format!(
            "invalid user id {segment:?}"
        ))),
    }
}

/// The user a write acts as: `me` or the actor's own id; another id is 403.
pub fn acting_as(segment: &str, actor: Actor) -> ApiResult<u64> {
    if segment == "me" {
        return Ok(actor.0);
    }
    let id = parse_id(segment)?;
    if id == actor.0 {
        Ok(id)
    } else {
        Err(ApiError::forbidden("cannot act for another user"))
    }
}

/// A path id that may be `me` (needs a token) or a number.
pub fn subject(segment: &str, viewer: Viewer) -> ApiResult<u64> {
    if segment == "me" {
        return viewer
            .0
            .ok_or_else(|| ApiError::unauthenticated("missing bearer token"));
    }
    parse_id(segment)
}

/// The fuzz target's property (`fuzz/fuzz_targets/gateway_inputs.rs`) over
/// what clients send as text: a user id parses only from digits and means
/// the number they spell; consistency tokens and positions, and bearer
/// tokens, are read without a panic. `Err` describes a violation.
#[doc(hidden)]
pub fn check_inputs(data: &[u8]) -> Result<(), String> {
    use service_kit::readpath::consistency::{Position, Token};
    let Ok(s) = std::str::from_utf8(data) else {
        return Ok(());
    };
    if let Ok(id) = parse_id(s)
        && s.trim_start_matches('0') != id.to_string()
    {
        return Err(format!("id {s:?} read as {id}"));
    }
    if let Ok(t) = s.parse::<Token>()
        && s.trim().len() > 80
    {
        return Err(format!("token {t} read from {} bytes", s.len()));
    }
    let _ = Position::parse(s);
    static CODEC: std::sync::LazyLock<service_kit::jwt::JwtCodec> =
        std::sync::LazyLock::new(|| {
            service_kit::jwt::JwtCodec::new(
                secrecy::SecretString::from("fuzz-secret-of-thirty-two-bytes!"),
                std::time::Duration::from_secs(60),
            )
        });
    if let Ok(claims) = CODEC.verify(s) {
        return Err(format!("a token not signed by us verified: {claims:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_integers() {
        assert_eq!(parse_id("42").unwrap(), 42);
        for bad in [
            "0",
            "-1",
            "+1",
            " 1",
            "abc",
            "1.5",
            "",
            "99999999999999999999999",
        ] {
            assert_eq!(
                parse_id(bad).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_fuzz_corpus_keeps_its_properties() {
        testkit::fuzz_corpus("gateway_inputs", |name, bytes| {
            check_inputs(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        });
    }

    #[test]
    fn acting_for_another_user_is_forbidden() {
        assert_eq!(acting_as("me", Actor(7)).unwrap(), 7);
        assert_eq!(acting_as("7", Actor(7)).unwrap(), 7);
        assert_eq!(
            acting_as("8", Actor(7)).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
    }
}
