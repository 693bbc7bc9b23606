//! `sluice-loadgen`: the load generator of sluice (its ghz and wrk in one).
//!
//! Runs one scenario with `-c` connections for `-d` seconds, either as fast
//! as possible (closed loop: each connection sends its next request when the
//! previous answer arrives) or at a fixed total `--rate` (open loop: requests
//! are scheduled, and latency counts from the scheduled time, so a stall is
//! not hidden by the generator waiting with it). Prints req/s, errors and
//! latency percentiles; `--json` prints one JSON object instead.
//!
//! ```text
//! sluice-loadgen rest-get    -c 100 -d 10 --path /v1/users/1
//! sluice-loadgen grpc-user   -c 100 -d 10 --id 1
//! sluice-loadgen grpc-list   -c 100 -d 10 --id 1
//! sluice-loadgen rest-follow -c 64  -d 10 --users 1000
//! sluice-loadgen rest-ryw    -c 16  -d 20 --rate 1000
//! sluice-loadgen chaos       -c 16  -d 60 --rate 200 --report .state/chaos/loadgen.json
//! ```
//!
//! - `rest-follow` registers `--users` users, then follows random pairs and
//!   counts committed follows (`changed: true`).
//! - `rest-ryw` gives each connection its own pair and toggles it (follow,
//!   unfollow, …); after each write it reads the target's follower count
//!   without the token (stale answers counted) and with it (must never be
//!   stale), and reports the wait the token added.
//! - `chaos` toggles worker-owned pairs at the given rate while an operator
//!   (`scripts/chaos.sh`) injects faults; afterwards it waits until the
//!   syncer has applied the newest acknowledged write (count-service
//!   AwaitApplied) and checks every pair against its last acknowledged
//!   state, through a token-carrying read. Exit status 1 when an
//!   acknowledged write is missing.
//! - `grpc-user` / `grpc-list` speak gRPC over a bare HTTP/2 connection per
//!   worker by default (`--client h2`: the request encoded with prost, sent
//!   on the `h2` connection, status read from the trailers, answer decoded),
//!   so the generator takes less of a shared machine; `--client tonic` uses
//!   a tonic channel per worker instead (a buffer task between caller and
//!   connection), as a typical Rust client would.

use service_kit::mesh_auth::{MeshAuth, MeshChannel};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use proto::count::v1::AwaitAppliedRequest;
use proto::count::v1::count_service_client::CountServiceClient;
use proto::relation::v1::relation_service_client::RelationServiceClient;
use proto::relation::v1::{ListRequest, ListResponse};
use proto::user::v1::user_service_client::UserServiceClient;
use proto::user::v1::{GetUserRequest, GetUserResponse};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    RestGet,
    GrpcUser,
    GrpcList,
    RestFollow,
    RestRyw,
    Chaos,
}

/// How the gRPC scenarios talk to the services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GrpcClient {
    /// A bare HTTP/2 connection per worker (the `h2` crate).
    H2,
    /// A tonic channel per worker.
    Tonic,
}

#[derive(Debug, Parser)]
#[command(about = "Load generator for the sluice REST gateway and gRPC services")]
struct Args {
    scenario: Scenario,
    /// Connections (each one a worker).
    #[arg(short = 'c', long, default_value_t = 100)]
    connections: usize,
    /// Duration in seconds.
    #[arg(short = 'd', long, default_value_t = 10)]
    duration: u64,
    /// Total requests per second (open loop); 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Gateway address (host:port).
    #[arg(long, default_value = "127.0.0.1:8888")]
    rest: String,
    /// REST path of `rest-get`.
    #[arg(long, default_value = "/v1/users/1")]
    path: String,
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    user_grpc: String,
    #[arg(long, default_value = "http://127.0.0.1:8082")]
    relation_grpc: String,
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    count_grpc: String,
    /// gRPC client of `grpc-user` / `grpc-list`.
    #[arg(long, value_enum, default_value = "h2")]
    client: GrpcClient,
    /// User id read by `grpc-user` / `grpc-list`.
    #[arg(long, default_value_t = 1)]
    id: u64,
    /// Users registered by `rest-follow`.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// How long `chaos` waits for the pipeline to catch up afterwards (s).
    #[arg(long, default_value_t = 300)]
    settle: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

/// One HTTP/1.1 keep-alive connection.
struct Http {
    addr: String,
    stream: Option<BufReader<TcpStream>>,
}

/// A parsed answer: status, the headers we care about, body.
struct Answer {
    status: u16,
    read_source: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl Http {
    fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            stream: None,
        }
    }

    /// Sends a request (reconnecting when the last one broke the connection).
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> std::io::Result<Answer> {
        let res = self.call_once(method, path, headers, body).await;
        if res.is_err() {
            self.stream = None;
        }
        res
    }

    async fn call_once(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> std::io::Result<Answer> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(BufReader::new(s));
        }
        let stream = self.stream.as_mut().expect("connected above");
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: loadgen\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.get_mut().write_all(req.as_bytes()).await?;
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let (mut len, mut read_source, mut close) = (0usize, None, false);
        loop {
            line.clear();
            stream.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let v = v.trim();
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.parse().unwrap_or(0);
                } else if k.eq_ignore_ascii_case("read-source") {
                    read_source = Some(v.to_owned());
                } else if k.eq_ignore_ascii_case("connection") && v.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut buf = vec![0; len];
        stream.read_exact(&mut buf).await?;
        if close {
            self.stream = None;
        }
        Ok(Answer {
            status,
            read_source,
            body: String::from_utf8_lossy(&buf).into_owned(),
        })
    }
}

/// What one worker measured.
#[derive(Debug, Default)]
struct Stats {
    lat_us: Vec<u64>,
    errors: u64,
    /// Committed follows (`rest-follow`), acknowledged writes (`rest-ryw`, `chaos`).
    writes: u64,
    /// Wait added by the token (`rest-ryw`).
    token_wait_us: Vec<u64>,
    stale_with_token: u64,
    stale_without_token: u64,
    synced: u64,
    primary: u64,
    /// `chaos`: per owned pair, the last acknowledged state and its token;
    /// `None` state when the last attempt's outcome is unknown.
    pairs: Vec<PairState>,
}

#[derive(Debug, Clone)]
struct PairState {
    from: (u64, String),
    to: u64,
    following: Option<bool>,
    token: String,
}

/// Paces a worker: `None` = closed loop.
struct Pacer {
    interval: Option<Duration>,
    next: Instant,
}

impl Pacer {
    fn new(rate: u64, workers: usize, worker: usize) -> Self {
        let interval = (rate > 0).then(|| Duration::from_secs_f64(workers as f64 / rate as f64));
        // Spread the workers' first requests over one interval.
        let offset = interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(worker as f64 / workers as f64)
        });
        Self {
            interval,
            next: Instant::now() + offset,
        }
    }

    /// Waits for the next slot; returns the time latency counts from.
    async fn tick(&mut self) -> Instant {
        match self.interval {
            None => Instant::now(),
            Some(i) => {
                let at = self.next;
                self.next += i;
                tokio::time::sleep_until(at.into()).await;
                at
            }
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1000.0
}

fn summary(a: &Args, all: &[Stats], elapsed: Duration) -> Value {
    let mut lat: Vec<u64> = all.iter().flat_map(|s| s.lat_us.iter().copied()).collect();
    lat.sort_unstable();
    let mut waits: Vec<u64> = all
        .iter()
        .flat_map(|s| s.token_wait_us.iter().copied())
        .collect();
    waits.sort_unstable();
    let sum = |f: fn(&Stats) -> u64| all.iter().map(f).sum::<u64>();
    let secs = elapsed.as_secs_f64();
    let mut out = json!({
        "scenario": format!("{:?}", a.scenario),
        "connections": a.connections,
        "target_rate": a.rate,
        "seconds": (secs * 10.0).round() / 10.0,
        "ok": lat.len(),
        "errors": sum(|s| s.errors),
        "req_per_s": (lat.len() as f64 / secs).round(),
        "latency_ms": {
            "p50": percentile(&lat, 0.50), "p90": percentile(&lat, 0.90),
            "p99": percentile(&lat, 0.99), "max": percentile(&lat, 1.0),
        },
    });
    let writes = sum(|s| s.writes);
    if writes > 0 {
        out["writes"] = json!(writes);
        out["writes_per_s"] = json!((writes as f64 / secs).round());
    }
    if !waits.is_empty() {
        out["token_reads"] = json!({
            "count": waits.len(),
            "stale": sum(|s| s.stale_with_token),
            "synced_cache": sum(|s| s.synced),
            "primary": sum(|s| s.primary),
            "added_wait_ms": {
                "p50": percentile(&waits, 0.50), "p99": percentile(&waits, 0.99),
                "max": percentile(&waits, 1.0),
            },
        });
        out["plain_reads_stale"] = json!(sum(|s| s.stale_without_token));
    }
    out
}

fn print_text(v: &Value) {
    let l = &v["latency_ms"];
    println!(
        "{}: {} ok, {} errors in {}s = {} req/s; latency p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
        v["scenario"].as_str().unwrap_or(""),
        v["ok"],
        v["errors"],
        v["seconds"],
        v["req_per_s"],
        l["p50"],
        l["p90"],
        l["p99"],
        l["max"]
    );
    if let Some(w) = v.get("writes") {
        println!("  writes: {w} = {} /s", v["writes_per_s"]);
    }
    if let Some(t) = v.get("token_reads") {
        println!(
            "  token reads: {} ({} stale; {} from the synced cache, {} from MySQL); added wait p50 {} ms, p99 {} ms, max {} ms; stale reads without the token: {}",
            t["count"],
            t["stale"],
            t["synced_cache"],
            t["primary"],
            t["added_wait_ms"]["p50"],
            t["added_wait_ms"]["p99"],
            t["added_wait_ms"]["max"],
            v["plain_reads_stale"]
        );
    }
    if let Some(c) = v.get("chaos") {
        println!("  chaos check: {c}");
    }
}

async fn run_workers<F, Fut>(n: usize, secs: u64, worker: F) -> (Vec<Stats>, Duration)
where
    F: Fn(usize, Instant) -> Fut,
    Fut: std::future::Future<Output = Stats> + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let handles: Vec<_> = (0..n).map(|i| tokio::spawn(worker(i, deadline))).collect();
    let mut all = Vec::new();
    for h in handles {
        all.push(h.await.unwrap_or_default());
    }
    (all, start.elapsed())
}

/// Registers `n` users through the gateway: `(id, bearer token)`.
async fn register(addr: &str, n: usize) -> anyhow::Result<Vec<(u64, String)>> {
    let run: u32 = rand::random();
    let mut http = Http::new(addr);
    let mut users = Vec::with_capacity(n);
    for i in 0..n {
        let body = format!(r#"{{"username":"lg{run:x}_{i}","password":"password1"}}"#);
        let a = http.call("POST", "/v1/users", &[], Some(&body)).await?;
        anyhow::ensure!(
            a.status == 201,
            "registering a user failed: {} {}",
            a.status,
            a.body
        );
        let v = a.json();
        users.push((
            v["id"].as_u64().unwrap_or(0),
            v["token"].as_str().unwrap_or("").to_owned(),
        ));
    }
    Ok(users)
}

async fn grpc_channel(url: &str) -> anyhow::Result<tonic::transport::Channel> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_owned())?
        .tcp_nodelay(true)
        .connect()
        .await?)
}

/// One worker's gRPC connection, bare HTTP/2 or tonic.
enum GrpcConn {
    H2 {
        send: h2::client::SendRequest<bytes::Bytes>,
        /// The two methods' URIs on this connection's service, parsed once.
        get_user: http::Uri,
        following_list: http::Uri,
    },
    Tonic(Box<TonicClients>),
}

/// A tonic channel's two clients (boxed: much larger than the h2 handle).
struct TonicClients {
    users: UserServiceClient<MeshChannel>,
    relations: RelationServiceClient<MeshChannel>,
}

/// The mesh key gRPC calls are signed with: `SLUICE_MESH_SECRET`, else
/// the dev mesh's key (the services answer only members: see
/// `service_kit::mesh_auth`). Read once: the bare HTTP/2 client signs every
/// call with it.
fn mesh() -> &'static MeshAuth {
    static MESH: std::sync::LazyLock<MeshAuth> =
        std::sync::LazyLock::new(|| match std::env::var("SLUICE_MESH_SECRET") {
            Ok(s) if !s.is_empty() => MeshAuth::new(s.into()),
            _ => MeshAuth::dev(),
        });
    &MESH
}

impl GrpcConn {
    async fn connect(kind: GrpcClient, url: &str) -> anyhow::Result<Self> {
        Ok(match kind {
            GrpcClient::Tonic => {
                let channel = grpc_channel(url).await?;
                let mesh = mesh();
                GrpcConn::Tonic(Box::new(TonicClients {
                    users: UserServiceClient::with_interceptor(channel.clone(), mesh.client()),
                    relations: RelationServiceClient::with_interceptor(channel, mesh.client()),
                }))
            }
            GrpcClient::H2 => {
                let uri: http::Uri = url.parse()?;
                let authority = uri
                    .authority()
                    .ok_or_else(|| anyhow::anyhow!("{url}: no host:port"))?
                    .to_string();
                let tcp = TcpStream::connect(&authority).await?;
                tcp.set_nodelay(true)?;
                let (send, conn) = h2::client::handshake(tcp).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                let uri = |path: &str| format!("http://{authority}{path}").parse::<http::Uri>();
                GrpcConn::H2 {
                    send,
                    get_user: uri("/user.v1.UserService/GetUser")?,
                    following_list: uri("/relation.v1.RelationService/FollowingList")?,
                }
            }
        })
    }

    /// GetUser; true when the service answered OK with the user.
    async fn get_user(&mut self, id: u64) -> bool {
        let req = GetUserRequest {
            user_id: id,
            viewer_id: 0,
        };
        match self {
            GrpcConn::Tonic(t) => t.users.get_user(req).await.is_ok(),
            GrpcConn::H2 { send, get_user, .. } => {
                h2_unary::<_, GetUserResponse>(send, get_user, &req)
                    .await
                    .is_ok_and(|r| r.user.is_some_and(|u| u.id == id))
            }
        }
    }

    /// FollowingList, first page of 20; true when answered OK.
    async fn following_list(&mut self, id: u64) -> bool {
        let req = ListRequest {
            user_id: id,
            cursor: String::new(),
            limit: 20,
        };
        match self {
            GrpcConn::Tonic(t) => t.relations.following_list(req).await.is_ok(),
            GrpcConn::H2 {
                send,
                following_list,
                ..
            } => h2_unary::<_, ListResponse>(send, following_list, &req)
                .await
                .is_ok(),
        }
    }
}

/// One unary gRPC call on a bare HTTP/2 connection: a length-prefixed
/// message out, `grpc-status` 0 and one message back.
async fn h2_unary<Req: prost::Message, Resp: prost::Message + Default>(
    send: &h2::client::SendRequest<bytes::Bytes>,
    uri: &http::Uri,
    msg: &Req,
) -> anyhow::Result<Resp> {
    let len = msg.encoded_len();
    let mut frame = Vec::with_capacity(5 + len);
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(len)?.to_be_bytes());
    msg.encode(&mut frame)?;
    let mut signed = tonic::Request::new(());
    mesh().sign(&mut signed, None);
    let mut req = http::Request::post(uri.clone())
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())?;
    req.headers_mut()
        .extend(signed.metadata().clone().into_headers());
    let mut ready = send.clone().ready().await?;
    let (resp, mut out) = ready.send_request(req, false)?;
    out.send_data(bytes::Bytes::from(frame), true)?;
    let resp = resp.await?;
    anyhow::ensure!(resp.status() == 200, "HTTP status {}", resp.status());
    // A failure may come "trailers-only", in the headers.
    let early = resp.headers().get("grpc-status").cloned();
    let mut body = resp.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await?;
    let status = early.or_else(|| trailers.and_then(|t| t.get("grpc-status").cloned()));
    anyhow::ensure!(
        status.as_ref().is_some_and(|s| s == "0"),
        "grpc-status {status:?}"
    );
    anyhow::ensure!(data.len() >= 5 && data[0] == 0, "no uncompressed message");
    Ok(Resp::decode(&data[5..])?)
}

/// Follow (`true`) or unfollow; `Some(token)` when acknowledged.
async fn write(
    http: &mut Http,
    bearer: &str,
    to: u64,
    follow: bool,
) -> Result<(bool, String), String> {
    let path = format!("/v1/users/me/following/{to}");
    let auth = format!("Bearer {bearer}");
    let method = if follow { "PUT" } else { "DELETE" };
    match http
        .call(method, &path, &[("Authorization", &auth)], None)
        .await
    {
        Ok(a) if a.status == 200 => {
            let v = a.json();
            Ok((
                v["changed"].as_bool().unwrap_or(false),
                v["consistency_token"].as_str().unwrap_or("").to_owned(),
            ))
        }
        Ok(a) => Err(format!("{} {}", a.status, a.body)),
        Err(e) => Err(e.to_string()),
    }
}

async fn scenario(a: Arc<Args>) -> anyhow::Result<(Vec<Stats>, Duration)> {
    let n = a.connections;
    Ok(match a.scenario {
        Scenario::RestGet => {
            run_workers(n, a.duration, |w, deadline| {
                let a = a.clone();
                async move {
                    let mut s = Stats::default();
                    let mut http = Http::new(&a.rest);
                    let mut pace = Pacer::new(a.rate, a.connections, w);
                    while Instant::now() < deadline {
                        let t = pace.tick().await;
                        match http.call("GET", &a.path, &[], None).await {
                            Ok(ans) if ans.status == 200 => {
                                s.lat_us.push(t.elapsed().as_micros() as u64)
                            }
                            _ => s.errors += 1,
                        }
                    }
                    s
                }
            })
            .await
        }
        Scenario::GrpcUser | Scenario::GrpcList => {
            let list = a.scenario == Scenario::GrpcList;
            run_workers(n, a.duration, |w, deadline| {
                let a = a.clone();
                async move {
                    let mut s = Stats::default();
                    let url = if list { &a.relation_grpc } else { &a.user_grpc };
                    let Ok(mut client) = GrpcConn::connect(a.client, url).await else {
                        s.errors += 1;
                        return s;
                    };
                    let mut pace = Pacer::new(a.rate, a.connections, w);
                    while Instant::now() < deadline {
                        let t = pace.tick().await;
                        let ok = if list {
                            client.following_list(a.id).await
                        } else {
                            client.get_user(a.id).await
                        };
                        if ok {
                            s.lat_us.push(t.elapsed().as_micros() as u64);
                        } else {
                            s.errors += 1;
                        }
                    }
                    s
                }
            })
            .await
        }
        Scenario::RestFollow => {
            let users = Arc::new(register(&a.rest, a.users.max(2)).await?);
            eprintln!("registered {} users", users.len());
            run_workers(n, a.duration, |w, deadline| {
                let (a, users) = (a.clone(), users.clone());
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
                        match write(&mut http, &users[from].1, users[to].0, true).await {
                            Ok((changed, _)) => {
                                s.lat_us.push(t.elapsed().as_micros() as u64);
                                s.writes += u64::from(changed);
                            }
                            Err(_) => s.errors += 1,
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
            eprintln!("registered {} users ({} pairs)", users.len(), n);
            let chaos = a.scenario == Scenario::Chaos;
            run_workers(n, a.duration, |w, deadline| {
                let (a, users) = (a.clone(), users.clone());
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
                        match write(&mut http, &from.1, to, follow).await {
                            Ok((_, token)) => {
                                s.lat_us.push(t.elapsed().as_micros() as u64);
                                s.writes += 1;
                                state.following = Some(follow);
                                if !token.is_empty() {
                                    state.token = token;
                                }
                            }
                            Err(_) => {
                                // Outcome unknown (maybe committed): the
                                // next acknowledged write settles it.
                                s.errors += 1;
                                state.following = None;
                                continue;
                            }
                        }
                        follow = !follow;
                        if chaos || state.token.is_empty() {
                            continue;
                        }
                        let expected = u64::from(state.following == Some(true));
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
                                match r.read_source.as_deref() {
                                    Some("synced-cache") => s.synced += 1,
                                    _ => s.primary += 1,
                                }
                                if r.json()["follower_count"].as_u64() != Some(expected) {
                                    s.stale_with_token += 1;
                                }
                            }
                            _ => s.errors += 1,
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

/// After a chaos run: waits for the pipeline, then checks every pair.
async fn chaos_check(a: &Args, all: &[Stats]) -> anyhow::Result<Value> {
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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // A subscriber (logs at RUST_LOG, default info) also keeps the
    // transport crates' trace-level spans from being built at all: with
    // none installed, tracing's `log` fallback formats them per request
    // (~2% of this process's CPU in the gRPC scenarios, perf).
    let _telemetry = common::telemetry::init("sluice-loadgen");
    let a = Arc::new(Args::parse());
    let (all, took) = match scenario(a.clone()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sluice-loadgen: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut out = summary(&a, &all, took);
    let mut failed = false;
    if a.scenario == Scenario::Chaos {
        match chaos_check(&a, &all).await {
            Ok(c) => {
                failed = c["lost_acknowledged_writes"].as_u64() != Some(0)
                    || c["pipeline_caught_up"] != true;
                out["chaos"] = c;
            }
            Err(e) => {
                eprintln!("sluice-loadgen: chaos check failed: {e:#}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    if a.scenario == Scenario::RestRyw && out["token_reads"]["stale"].as_u64() != Some(0) {
        failed = true;
    }
    if a.json {
        println!("{out}");
    } else {
        print_text(&out);
    }
    if let Some(path) = &a.report
        && let Err(e) = std::fs::write(path, format!("{out:#}\n"))
    {
        eprintln!("sluice-loadgen: cannot write {}: {e}", path.display());
        return std::process::ExitCode::from(2);
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
