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
use crate::extract::{ReadToken, parse_digits, parse_id, read_source};
use crate::state::AppState;

/// Query of `/v1/counts`.
#[derive(Debug, Default, Deserialize)]
pub struct CountsQuery {
    pub user_ids: Option<String>,
    pub kinds: Option<String>,
}

/// Reads a comma-separated list: blanks around an item and empty items are
/// ignored, every other item must be read by `parse`; 400 otherwise.
fn parse_list<T>(
    s: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    what: &str,
) -> ApiResult<Vec<T>> {
    s.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            parse(p).ok_or_else(|| {
                ApiError::bad_request(format!("{what} must be comma-separated numbers"))
            })
        })
        .collect()
}

/// The user ids of `?user_ids=`, each read like a path id ([`parse_id`]:
/// digits only, positive; `+5` and `0` are 400s here too). The count
/// service then wants 1..=1000 of them.
pub fn parse_user_ids(s: Option<&str>) -> ApiResult<Vec<u64>> {
    parse_list(s, |p| parse_id(p).ok(), "user_ids")
}

/// The counter kinds of `?kinds=` (digits only; the count service knows 1
/// and 2, empty means both).
pub fn parse_kinds(s: Option<&str>) -> ApiResult<Vec<u32>> {
    parse_list(s, parse_digits::<u32>, "kinds")
}

/// `{"counts":[{"user_id":1,"follow_count":3,"follower_count":5}, …]}` in request order.
pub async fn get_counts(
    State(st): State<AppState>,
    read: ReadToken,
    q: Result<Query<CountsQuery>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let user_ids = parse_user_ids(q.user_ids.as_deref())?;
    let kinds = parse_kinds(q.kinds.as_deref())?;
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

/// Most entries `?limit=` may ask for (the count service's bound too).
pub const MAX_LEADERBOARD_LIMIT: u32 = 100;

/// `?limit=` of the leaderboard: absent or blank is the default, else a
/// number in 1..=[`MAX_LEADERBOARD_LIMIT`]; 400 otherwise.
pub fn leaderboard_limit(q: Option<&str>) -> ApiResult<u32> {
    match q.map(str::trim) {
        None | Some("") => Ok(DEFAULT_LEADERBOARD_LIMIT),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LEADERBOARD_LIMIT).contains(l))
            .ok_or_else(|| ApiError::bad_request("limit must be a number from 1 to 100")),
    }
}

/// `GET /v1/leaderboard/followers?limit=` (1..100, default 10):
/// `{"items":[{"user_id":7,"follower_count":42}, …]}`, most followers first
/// (equal counts: lower id first), with `Read-Source`.
pub async fn leaderboard(
    State(st): State<AppState>,
    read: ReadToken,
    q: Result<Query<LeaderboardQuery>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Value>)> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = leaderboard_limit(q.limit.as_deref())?;
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
