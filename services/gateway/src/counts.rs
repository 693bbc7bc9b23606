//! `GET /v1/counts?user_ids=1,2,3[&kinds=1,2]`: counters of up to 1,000 users.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use proto::count::v1 as pb;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::extract::{ReadToken, read_source};
use crate::state::AppState;

/// Query of `/v1/counts`.
#[derive(Debug, Default, Deserialize)]
pub struct CountsQuery {
    pub user_ids: Option<String>,
    pub kinds: Option<String>,
}

fn parse_list<T: std::str::FromStr>(s: Option<&str>, what: &str) -> ApiResult<Vec<T>> {
    s.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<T>().map_err(|_| {
                ApiError::bad_request(format!("{what} must be comma-separated numbers"))
            })
        })
        .collect()
}

/// `{"counts":[{"user_id":1,"follow_count":3,"follower_count":5}, …]}` in request order.
pub async fn get_counts(
    State(st): State<AppState>,
    read: ReadToken,
    q: Result<Query<CountsQuery>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let user_ids: Vec<u64> = parse_list(q.user_ids.as_deref(), "user_ids")?;
    let kinds: Vec<u32> = parse_list(q.kinds.as_deref(), "kinds")?;
    let r = st
        .counts
        .clone()
        .get_counts(read.request(pb::GetCountsRequest {
            user_ids: user_ids.clone(),
            kinds,
        }))
        .await?;
    let headers = read_source(&r);
    let mut per_user: BTreeMap<u64, serde_json::Map<String, Value>> = BTreeMap::new();
    for c in r.into_inner().counts {
        let name = match c.kind {
            1 => "follow_count",
            2 => "follower_count",
            _ => continue,
        };
        per_user
            .entry(c.owner_id)
            .or_default()
            .insert(name.into(), json!(c.value));
    }
    let mut seen = std::collections::HashSet::new();
    let counts: Vec<Value> = user_ids
        .iter()
        .filter(|id| seen.insert(**id))
        .map(|id| {
            let mut m = serde_json::Map::new();
            m.insert("user_id".into(), json!(id));
            m.extend(per_user.get(id).cloned().unwrap_or_default());
            Value::Object(m)
        })
        .collect();
    Ok((headers, Json(json!({ "counts": counts }))))
}

/// Query of `/v1/leaderboard/followers`.
#[derive(Debug, Default, Deserialize)]
pub struct LeaderboardQuery {
    pub limit: Option<String>,
}

/// Entries when `limit` is not given.
pub const DEFAULT_LEADERBOARD_LIMIT: u32 = 10;

/// `GET /v1/leaderboard/followers?limit=` (1..100, default 10):
/// `{"items":[{"user_id":7,"follower_count":42}, …]}`, most followers first
/// (equal counts: lower id first), with `Read-Source`.
pub async fn leaderboard(
    State(st): State<AppState>,
    read: ReadToken,
    q: Result<Query<LeaderboardQuery>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = match q.limit.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_LEADERBOARD_LIMIT,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| ApiError::bad_request("limit must be a number from 1 to 100"))?,
    };
    let r = st
        .counts
        .clone()
        .leaderboard(read.request(pb::LeaderboardRequest { limit }))
        .await?;
    let headers = read_source(&r);
    let items: Vec<Value> = r
        .into_inner()
        .entries
        .into_iter()
        .map(|e| json!({"user_id": e.user_id, "follower_count": e.followers}))
        .collect();
    Ok((headers, Json(json!({ "items": items }))))
}
