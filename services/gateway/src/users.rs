//! `/v1/users` and `/v1/sessions`: register, login, profiles, profile updates.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use proto::user::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::extract::{
    Actor, ApiJson, CONSISTENCY_HEADER, Path, ReadToken, Viewer, acting_as, read_source, subject,
};
use crate::state::AppState;

/// `POST /v1/users` and `POST /v1/sessions` body.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// `PATCH /v1/users/me` body: only the fields to change.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    pub avatar: Option<String>,
    pub signature: Option<String>,
    pub background_image: Option<String>,
}

/// The JSON form of a user.
pub fn user_json(u: &pb::User) -> Value {
    let created_at = chrono::DateTime::from_timestamp_millis(u.created_at_ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    json!({
        "id": u.id,
        "username": u.username,
        "avatar": u.avatar,
        "background_image": u.background_image,
        "signature": u.signature,
        "follow_count": u.follow_count,
        "follower_count": u.follower_count,
        "is_follow": u.is_follow,
        "created_at": created_at,
    })
}

/// Response headers carrying a consistency token, when there is one.
pub fn token_headers(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(token)
        && !token.is_empty()
    {
        h.insert(CONSISTENCY_HEADER, v);
    }
    h
}

/// `POST /v1/users`: 201 `{id, username, token}`.
pub async fn register(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let r = st
        .users
        .clone()
        .register(pb::RegisterRequest {
            username: body.username,
            password: body.password,
        })
        .await?
        .into_inner();
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": r.id, "username": r.username, "token": r.token})),
    ))
}

/// `POST /v1/sessions`: 200 `{user_id, token}`.
pub async fn login(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> ApiResult<Json<Value>> {
    let r = st
        .users
        .clone()
        .login(pb::LoginRequest {
            username: body.username,
            password: body.password,
        })
        .await?
        .into_inner();
    Ok(Json(json!({"user_id": r.user_id, "token": r.token})))
}

/// `GET /v1/users/{id}` (`me` with a token): the profile with counters and is_follow.
///
/// Without a bearer token and without a consistency token the answer is the
/// same for everyone, so it goes through the edge cache ([`crate::edge_cache`]).
pub async fn get_user(
    State(st): State<AppState>,
    viewer: Viewer,
    read: ReadToken,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let user_id = subject(&id, viewer)?;
    let req = read.request(pb::GetUserRequest {
        user_id,
        viewer_id: viewer.0.unwrap_or(0),
    });
    if viewer.0.is_none() && read.0.is_none() {
        let load = async {
            let r = st.users.clone().get_user(req).await?;
            let user = r.into_inner().user.unwrap_or_default();
            // A `Value` always serialises; a failure here would be a bug.
            let body = serde_json::to_vec(&user_json(&user)).map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?;
            Ok(Bytes::from(body))
        };
        let body = st.edge.profile(user_id, load).await?;
        return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
    }
    let r = st.users.clone().get_user(req).await?;
    let headers = read_source(&r);
    let user = r.into_inner().user.unwrap_or_default();
    Ok((headers, Json(user_json(&user))).into_response())
}

/// `PATCH /v1/users/me`: 200 `{user, consistency_token}`.
pub async fn update_profile(
    State(st): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<ProfilePatch>,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    let user_id = acting_as(&id, actor)?;
    let r = st
        .users
        .clone()
        .update_profile(st.mesh.acting(
            user_id,
            pb::UpdateProfileRequest {
                user_id,
                avatar: patch.avatar,
                signature: patch.signature,
                background_image: patch.background_image,
            },
        ))
        .await?
        .into_inner();
    let user = r.user.unwrap_or_default();
    Ok((
        token_headers(&r.consistency_token),
        Json(json!({"user": user_json(&user), "consistency_token": r.consistency_token})),
    ))
}
