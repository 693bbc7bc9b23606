//! `/v1/users/{id}/following…` and `/followers`: follow, unfollow, lists, IsFollow.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use proto::relation::v1 as pb;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Actor, Path, ReadToken, Viewer, acting_as, parse_id, read_source, subject};
use crate::state::AppState;
use crate::users::token_headers;

/// Page size when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 20;

/// `?cursor=&limit=` of the list routes.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

fn follow_json(r: &pb::FollowResponse) -> Json<Value> {
    Json(
        json!({"following": r.following, "changed": r.changed, "consistency_token": r.consistency_token}),
    )
}

/// `PUT /v1/users/me/following/{target}`: follow (idempotent).
pub async fn follow(
    State(st): State<AppState>,
    actor: Actor,
    Path((id, target)): Path<(String, String)>,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    let from_id = acting_as(&id, actor)?;
    let to_id = parse_id(&target)?;
    let r = st
        .relations
        .clone()
        .follow(
            st.mesh
                .acting(from_id, pb::FollowRequest { from_id, to_id }),
        )
        .await?
        .into_inner();
    Ok((token_headers(&r.consistency_token), follow_json(&r)))
}

/// `DELETE /v1/users/me/following/{target}`: unfollow (idempotent).
pub async fn unfollow(
    State(st): State<AppState>,
    actor: Actor,
    Path((id, target)): Path<(String, String)>,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    let from_id = acting_as(&id, actor)?;
    let to_id = parse_id(&target)?;
    let r = st
        .relations
        .clone()
        .unfollow(
            st.mesh
                .acting(from_id, pb::FollowRequest { from_id, to_id }),
        )
        .await?
        .into_inner();
    Ok((token_headers(&r.consistency_token), follow_json(&r)))
}

/// `GET /v1/users/{id}/following/{target}`: `{following}`.
pub async fn is_follow(
    State(st): State<AppState>,
    viewer: Viewer,
    read: ReadToken,
    Path((id, target)): Path<(String, String)>,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    let from_id = subject(&id, viewer)?;
    let to_id = parse_id(&target)?;
    let r = st
        .relations
        .clone()
        .is_follow(read.request(pb::IsFollowRequest { from_id, to_id }))
        .await?;
    let headers = read_source(&r);
    Ok((
        headers,
        Json(json!({"following": r.into_inner().following})),
    ))
}

fn list_request(
    user_id: u64,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<pb::ListRequest> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    Ok(pb::ListRequest {
        user_id,
        cursor: q.cursor.unwrap_or_default(),
        limit: list_limit(q.limit.as_deref())?,
    })
}

/// `?limit=` of the lists: absent or empty is [`DEFAULT_LIMIT`], a number
/// is passed on (the relation service answers one outside 1..=100 with
/// 422), anything else is 400.
pub fn list_limit(q: Option<&str>) -> ApiResult<u32> {
    match q {
        None | Some("") => Ok(DEFAULT_LIMIT),
        Some(s) => s
            .parse::<u64>()
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .map_err(|_| ApiError::bad_request("limit must be a number")),
    }
}

fn list_json(r: pb::ListResponse) -> Json<Value> {
    let items: Vec<Value> = r
        .items
        .iter()
        .map(|e| {
            let at = chrono::DateTime::from_timestamp_micros(e.followed_at_us)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                .unwrap_or_default();
            json!({"user_id": e.user_id, "followed_at": at})
        })
        .collect();
    let next = if r.next_cursor.is_empty() {
        Value::Null
    } else {
        Value::String(r.next_cursor)
    };
    Json(json!({"items": items, "next_cursor": next}))
}

/// `GET /v1/users/{id}/following?cursor=&limit=`: newest first.
pub async fn following(
    State(st): State<AppState>,
    viewer: Viewer,
    read: ReadToken,
    Path(id): Path<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    let req = read.request(list_request(subject(&id, viewer)?, q)?);
    let r = st.relations.clone().following_list(req).await?;
    Ok((read_source(&r), list_json(r.into_inner())))
}

/// `GET /v1/users/{id}/followers?cursor=&limit=`: newest first.
pub async fn followers(
    State(st): State<AppState>,
    viewer: Viewer,
    read: ReadToken,
    Path(id): Path<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    let req = read.request(list_request(subject(&id, viewer)?, q)?);
    let r = st.relations.clone().follower_list(req).await?;
    Ok((read_source(&r), list_json(r.into_inner())))
}
