//! A small closed-loop load generator for the benchmarks of issue #4.
//!
//! Each of `-c` workers owns one connection and sends the next request as
//! soon as the previous answer arrived, for `-d` seconds; the report gives
//! requests/s, non-2xx/errors and p50/p99 latency.
//!
//! ```text
//! cargo run --release -p gateway --example loadgen -- rest-get  -c 100 -d 10 --addr 127.0.0.1:8888 --path /v1/users/1
//! cargo run --release -p gateway --example loadgen -- rest-get  -c 100 -d 10 --path '/v1/users/1/following?limit=20'
//! cargo run --release -p gateway --example loadgen -- grpc-user -c 100 -d 10 --url http://127.0.0.1:8080 --id 1
//! cargo run --release -p gateway --example loadgen -- grpc-list -c 100 -d 10 --url http://127.0.0.1:8082 --id 1
//! cargo run --release -p gateway --example loadgen -- rest-follow -c 64 -d 10 --users 1000
//! ```
//! `rest-follow` first registers `--users` users through the gateway, then
//! follows random pairs with their tokens and counts committed follows
//! (`changed: true`).

use std::time::{Duration, Instant};

use proto::relation::v1::ListRequest;
use proto::relation::v1::relation_service_client::RelationServiceClient;
use proto::user::v1::GetUserRequest;
use proto::user::v1::user_service_client::UserServiceClient;
use rand::Rng;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Args {
    mode: String,
    conns: usize,
    secs: u64,
    addr: String,
    path: String,
    url: String,
    id: u64,
    users: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        mode: String::new(),
        conns: 100,
        secs: 10,
        addr: "127.0.0.1:8888".into(),
        path: "/v1/users/1".into(),
        url: "http://127.0.0.1:8080".into(),
        id: 1,
        users: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_default();
        match arg.as_str() {
            "-c" => a.conns = val().parse().unwrap_or(100),
            "-d" => a.secs = val().parse().unwrap_or(10),
            "--addr" => a.addr = val(),
            "--path" => a.path = val(),
            "--url" => a.url = val(),
            "--id" => a.id = val().parse().unwrap_or(1),
            "--users" => a.users = val().parse().unwrap_or(1000),
            m => a.mode = m.to_owned(),
        }
    }
    a
}

/// One HTTP/1.1 keep-alive connection.
struct Http {
    stream: BufReader<TcpStream>,
}

impl Http {
    async fn connect(addr: &str) -> std::io::Result<Self> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(s),
        })
    }

    /// Sends a request; returns (status, body).
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> std::io::Result<(u16, String)> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: bench\r\n");
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        self.stream.get_mut().write_all(req.as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut buf = vec![0; len];
        self.stream.read_exact(&mut buf).await?;
        Ok((status, String::from_utf8_lossy(&buf).into_owned()))
    }
}

#[derive(Default)]
struct Stats {
    lat_us: Vec<u32>,
    failures: u64,
    committed: u64,
}

fn report(name: &str, all: Vec<Stats>, elapsed: Duration) {
    let mut lat: Vec<u32> = all.iter().flat_map(|s| s.lat_us.iter().copied()).collect();
    let failures: u64 = all.iter().map(|s| s.failures).sum();
    let committed: u64 = all.iter().map(|s| s.committed).sum();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
    };
    let secs = elapsed.as_secs_f64();
    println!(
        "{name}: {} ok in {secs:.1}s = {:.0} req/s; failures {failures}; p50 {:.2} ms, p99 {:.2} ms",
        lat.len(),
        lat.len() as f64 / secs,
        pct(0.50).unwrap_or(0) as f64 / 1000.0,
        pct(0.99).unwrap_or(0) as f64 / 1000.0,
    );
    if committed > 0 {
        println!(
            "{name}: {committed} committed follows = {:.0} follows/s",
            committed as f64 / secs
        );
    }
}

async fn run_workers<F, Fut>(conns: usize, secs: u64, worker: F) -> (Vec<Stats>, Duration)
where
    F: Fn(usize, Instant) -> Fut,
    Fut: std::future::Future<Output = Stats> + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let handles: Vec<_> = (0..conns)
        .map(|i| tokio::spawn(worker(i, deadline)))
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.push(h.await.unwrap_or_default());
    }
    (all, start.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = parse_args();
    match a.mode.as_str() {
        "rest-get" => {
            let (all, took) = run_workers(a.conns, a.secs, |_, deadline| {
                let (addr, path) = (a.addr.clone(), a.path.clone());
                async move {
                    let mut s = Stats::default();
                    let Ok(mut http) = Http::connect(&addr).await else {
                        return s;
                    };
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        match http.call("GET", &path, None, None).await {
                            Ok((200, _)) => s.lat_us.push(t.elapsed().as_micros() as u32),
                            _ => s.failures += 1,
                        }
                    }
                    s
                }
            })
            .await;
            report("rest-get", all, took);
        }
        "grpc-user" | "grpc-list" => {
            let list = a.mode == "grpc-list";
            let (all, took) = run_workers(a.conns, a.secs, |_, deadline| {
                let (url, id) = (a.url.clone(), a.id);
                async move {
                    let mut s = Stats::default();
                    let Ok(channel) = tonic::transport::Endpoint::from_shared(url)
                        .expect("url")
                        .tcp_nodelay(true)
                        .connect()
                        .await
                    else {
                        return s;
                    };
                    let mut users = UserServiceClient::new(channel.clone());
                    let mut rel = RelationServiceClient::new(channel);
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let ok = if list {
                            let req = ListRequest {
                                user_id: id,
                                cursor: String::new(),
                                limit: 20,
                            };
                            rel.following_list(req).await.is_ok()
                        } else {
                            users
                                .get_user(GetUserRequest {
                                    user_id: id,
                                    viewer_id: 0,
                                })
                                .await
                                .is_ok()
                        };
                        if ok {
                            s.lat_us.push(t.elapsed().as_micros() as u32);
                        } else {
                            s.failures += 1;
                        }
                    }
                    s
                }
            })
            .await;
            report(&a.mode, all, took);
        }
        "rest-follow" => {
            // Register users (tokens) first.
            let run = rand::rng().random::<u32>();
            let mut http = Http::connect(&a.addr).await?;
            let mut users: Vec<(u64, String)> = Vec::with_capacity(a.users);
            for i in 0..a.users {
                let body = format!(r#"{{"username":"b{run}_{i}","password":"password1"}}"#);
                let (status, resp) = http.call("POST", "/v1/users", None, Some(&body)).await?;
                anyhow::ensure!(status == 201, "register failed: {status} {resp}");
                let v: serde_json::Value = serde_json::from_str(&resp)?;
                users.push((
                    v["id"].as_u64().unwrap_or(0),
                    v["token"].as_str().unwrap_or("").to_owned(),
                ));
            }
            println!("registered {} users", users.len());
            let users = std::sync::Arc::new(users);
            let (all, took) = run_workers(a.conns, a.secs, |_, deadline| {
                let (addr, users) = (a.addr.clone(), users.clone());
                async move {
                    let mut s = Stats::default();
                    let Ok(mut http) = Http::connect(&addr).await else {
                        return s;
                    };
                    while Instant::now() < deadline {
                        let (from, to) = {
                            let mut rng = rand::rng();
                            let i = rng.random_range(0..users.len());
                            let j = (i + rng.random_range(1..users.len())) % users.len();
                            (i, j)
                        };
                        let path = format!("/v1/users/me/following/{}", users[to].0);
                        let t = Instant::now();
                        match http.call("PUT", &path, Some(&users[from].1), None).await {
                            Ok((200, body)) => {
                                s.lat_us.push(t.elapsed().as_micros() as u32);
                                if body.contains(r#""changed":true"#) {
                                    s.committed += 1;
                                }
                            }
                            _ => s.failures += 1,
                        }
                    }
                    s
                }
            })
            .await;
            report("rest-follow", all, took);
        }
        other => {
            anyhow::bail!("unknown mode {other:?}: rest-get | grpc-user | grpc-list | rest-follow")
        }
    }
    Ok(())
}
