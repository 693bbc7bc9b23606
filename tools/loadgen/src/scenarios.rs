//! The scenarios: each one's worker loop (`scenario`), and the check after
//! a `chaos` run that every acknowledged write survived (`chaos_check`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::count::v1::AwaitAppliedRequest;
use proto::count::v1::count_service_client::CountServiceClient;
use serde_json::{Value, json};

use crate::grpc::{GrpcConn, grpc_channel, mesh};
use crate::rest::{Http, register, write};
use crate::status::Status;
use crate::workers::{Pacer, PairState, Stats, run_workers};
use crate::{Args, Scenario, WritesTo};

pub(crate) async fn scenario(a: Arc<Args>) -> anyhow::Result<(Vec<Stats>, Duration)> {
    let n = a.connections;
    Ok(match a.scenario {
        Scenario::RestGet => {
            run_workers(n, a.duration, !a.quiet, |w, deadline| {
                let a = a.clone();
                async move {
                    let mut s = Stats::default();
                    let mut http = Http::new(&a.rest);
                    let mut pace = Pacer::new(a.rate, a.connections, w);
                    while Instant::now() < deadline {
                        let t = pace.tick().await;
                        match http.call("GET", &a.path, &[], None).await {
                            Ok(ans) if ans.status == 200 => {
                                s.lat_us.push(t.elapsed().as_micros() as u64);
                                s.record(Status::HTTP_OK, false);
                            }
                            Ok(ans) => s.record(Status::Http(ans.status), true),
                            Err(e) => s.record(Status::io(&e), true),
                        }
                    }
                    s
                }
            })
            .await
        }
        Scenario::GrpcUser | Scenario::GrpcList => {
            let list = a.scenario == Scenario::GrpcList;
            run_workers(n, a.duration, !a.quiet, |w, deadline| {
                let a = a.clone();
                async move {
                    let mut s = Stats::default();
                    let url = if list { &a.relation_grpc } else { &a.user_grpc };
                    let Ok(mut client) = GrpcConn::connect(a.client, url).await else {
                        s.record(Status::Transport("connect"), true);
                        return s;
                    };
                    let mut pace = Pacer::new(a.rate, a.connections, w);
                    while Instant::now() < deadline {
                        let t = pace.tick().await;
                        let status = if list {
                            client.following_list(a.id).await
                        } else {
                            client.get_user(a.id).await
                        };
                        let ok = status == Status::GRPC_OK;
                        if ok {
                            s.lat_us.push(t.elapsed().as_micros() as u64);
                        }
                        s.record(status, !ok);
                    }
                    s
                }
            })
            .await
        }
        Scenario::RestFollow => {
            let users = Arc::new(register(&a.rest, a.users.max(2)).await?);
            if !a.quiet {
                eprintln!("registered {} users", users.len());
            }
            let pool = mysql_pool(&a).await?;
            run_workers(n, a.duration, !a.quiet, |w, deadline| {
                let (a, users, pool) = (a.clone(), users.clone(), pool.clone());
                async move {
                    let mut s = Stats::default();
                    let mut http = Http::new(&a.rest);
                    let mut pace = Pacer::new(a.rate, a.connections, w);
                    while Instant::now() < deadline {
                        let (from, to) = {
                            use rand::Rng;
                            let mut rng = rand::rng();
                            let i = rng.random_range(0..users.len());
                            let j = (i + rng.random_range(1..users.len())) % users.len();
                            (i, j)
                        };
                        let t = pace.tick().await;
                        match write_follow(&pool, &mut http, &users[from], users[to].0, true).await
                        {
                            Ok((changed, _)) => {
                                s.lat_us.push(t.elapsed().as_micros() as u64);
                                s.writes += u64::from(changed);
                                s.record(Status::HTTP_OK, false);
                            }
                            Err(status) => s.record(status, true),
                        }
                    }
                    s
                }
            })
            .await
        }
        Scenario::RestRyw | Scenario::Chaos => {
            // Two users per worker: worker w owns the pair (2w → 2w+1).
            let users = Arc::new(register(&a.rest, 2 * n).await?);
            if !a.quiet {
                eprintln!("registered {} users ({} pairs)", users.len(), n);
            }
            let chaos = a.scenario == Scenario::Chaos;
            let pool = mysql_pool(&a).await?;
            run_workers(n, a.duration, !a.quiet, |w, deadline| {
                let (a, users, pool) = (a.clone(), users.clone(), pool.clone());
                async move {
                    let mut s = Stats::default();
                    let mut http = Http::new(&a.rest);
                    let mut pace = Pacer::new(a.rate, a.connections, w);
                    let (from, to) = (users[2 * w].clone(), users[2 * w + 1].0);
                    let mut state = PairState {
                        from: from.clone(),
                        to,
                        following: Some(false),
                        token: String::new(),
                    };
                    let mut follow = true;
                    while Instant::now() < deadline {
                        let t = pace.tick().await;
                        match write_follow(&pool, &mut http, &from, to, follow).await {
                            Ok((_, token)) => {
                                s.lat_us.push(t.elapsed().as_micros() as u64);
                                s.record(Status::HTTP_OK, false);
                                s.writes += 1;
                                state.following = Some(follow);
                                if !token.is_empty() {
                                    state.token = token;
                                }
                            }
                            Err(status) => {
                                // Outcome unknown (maybe committed): the
                                // next acknowledged write settles it.
                                s.record(status, true);
                                state.following = None;
                                continue;
                            }
                        }
                        follow = !follow;
                        if chaos || state.token.is_empty() {
                            continue;
                        }
                        let expected = u64::from(state.following == Some(true));
                        // The probe without the token only counts stale
                        // answers: it is not one of the counted requests
                        // (no status, no error), as before the breakdown.
                        let path = format!("/v1/users/{to}");
                        if let Ok(p) = http.call("GET", &path, &[], None).await
                            && p.json()["follower_count"].as_u64() != Some(expected)
                        {
                            s.stale_without_token += 1;
                        }
                        let started = Instant::now();
                        match http
                            .call("GET", &path, &[("Consistency-Token", &state.token)], None)
                            .await
                        {
                            Ok(r) if r.status == 200 => {
                                s.token_wait_us.push(started.elapsed().as_micros() as u64);
                                s.record(Status::HTTP_OK, false);
                                match r.read_source.as_deref() {
                                    Some("synced-cache") => s.synced += 1,
                                    _ => s.primary += 1,
                                }
                                let got = r.json()["follower_count"].as_u64();
                                if got != Some(expected) {
                                    s.stale_with_token += 1;
                                    eprintln!(
                                        "stale read with a token: user {to}, token {}, expected follower_count {expected}, got {got:?}, read from {:?}",
                                        state.token, r.read_source
                                    );
                                }
                            }
                            Ok(r) => s.record(Status::Http(r.status), true),
                            Err(e) => s.record(Status::io(&e), true),
                        }
                    }
                    s.pairs.push(state);
                    s
                }
            })
            .await
        }
    })
}

/// The pool of `--writes-to mysql` (READ COMMITTED, as relation-service's);
/// none with `--writes-to rest`.
async fn mysql_pool(a: &Args) -> anyhow::Result<Option<sqlx::MySqlPool>> {
    if a.writes_to == WritesTo::Rest {
        return Ok(None);
    }
    let url = a
        .mysql_url
        .clone()
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .unwrap_or_else(|| common::config::dev::MYSQL_URL.into());
    let max = u32::try_from(a.connections)
        .unwrap_or(u32::MAX)
        .clamp(1, 200);
    Ok(Some(
        common::db::connect_read_committed(&secrecy::SecretString::from(url), max).await?,
    ))
}

/// One follow or unfollow by `from` (id, session token): through
/// relation-service's transaction straight into MySQL when there is a
/// `pool` (`--writes-to mysql`), else through REST. Whether it changed
/// anything, and its consistency token.
async fn write_follow(
    pool: &Option<sqlx::MySqlPool>,
    http: &mut Http,
    from: &(u64, String),
    to: u64,
    follow: bool,
) -> Result<(bool, String), Status> {
    use relation_service::follow::{Op, write as write_mysql};
    let Some(pool) = pool else {
        return write(http, &from.1, to, follow).await;
    };
    let op = if follow { Op::Follow } else { Op::Unfollow };
    match write_mysql(pool, op, from.0, to, 5).await {
        Ok(o) => Ok((o.changed, o.consistency_token)),
        Err(_) => Err(Status::Transport("mysql")),
    }
}

/// After a chaos run: waits for the pipeline, then checks every pair.
pub(crate) async fn chaos_check(a: &Args, all: &[Stats]) -> anyhow::Result<Value> {
    let pairs: Vec<&PairState> = all.iter().flat_map(|s| s.pairs.iter()).collect();
    let newest = pairs
        .iter()
        .filter_map(|p| {
            let seq = p.token.rsplit('-').next()?.parse::<u64>().ok()?;
            Some((seq, p.token.clone()))
        })
        .max();
    let started = Instant::now();
    let mut applied = false;
    if let Some((_, token)) = &newest {
        let deadline = Instant::now() + Duration::from_secs(a.settle);
        while Instant::now() < deadline {
            let answer = async {
                let mut c = CountServiceClient::with_interceptor(
                    grpc_channel(&a.count_grpc).await?,
                    mesh().client(),
                );
                let r = c
                    .await_applied(AwaitAppliedRequest {
                        token: token.clone(),
                        timeout_ms: 10_000,
                    })
                    .await?;
                anyhow::Ok(r.into_inner().applied)
            }
            .await;
            match answer {
                Ok(true) => {
                    applied = true;
                    break;
                }
                // Not yet, or a service restarting: ask again.
                Ok(false) | Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    let settle_s = started.elapsed().as_secs_f64();
    let mut http = Http::new(&a.rest);
    let (mut checked, mut lost, mut unknown) = (0u64, Vec::new(), 0u64);
    for p in &pairs {
        let Some(expected) = p.following else {
            unknown += 1;
            continue;
        };
        let path = format!("/v1/users/{}/following/{}", p.from.0, p.to);
        let headers: Vec<(&str, &str)> = if p.token.is_empty() {
            vec![]
        } else {
            vec![("Consistency-Token", p.token.as_str())]
        };
        let r = http.call("GET", &path, &headers, None).await?;
        anyhow::ensure!(r.status == 200, "checking {path}: {} {}", r.status, r.body);
        checked += 1;
        if r.json()["following"].as_bool() != Some(expected) {
            lost.push(format!(
                "{} -> {}: expected following={expected}",
                p.from.0, p.to
            ));
        }
    }
    Ok(json!({
        "pipeline_caught_up": applied,
        "settle_seconds": (settle_s * 10.0).round() / 10.0,
        "pairs_checked": checked,
        "pairs_unknown_last_outcome": unknown,
        "lost_acknowledged_writes": lost.len(),
        "lost_examples": lost.into_iter().take(10).collect::<Vec<_>>(),
    }))
}
