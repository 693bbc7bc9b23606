//! Observability of the running local mesh (`make up`): the Prometheus
//! configurations of `compose/prometheus/` pass `promtool`, every metric the
//! Grafana dashboard (`compose/grafana/dashboards/sluice.json`) queries is
//! really exported on some admin port, and the Prometheus `make up` started
//! scrapes every sluice process and sees REST traffic.
//!
//! Unlike the other suites these tests do not spawn anything: they talk to
//! the processes of `scripts/mesh.sh` (REST 127.0.0.1:8888, admin ports
//! 9888 / 9080 / 9081 / 9082 / 9101 / 9102) and to Prometheus on
//! 127.0.0.1:$SLUICE_PROMETHEUS_PORT (default 9090). Waits poll with a deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// REST port of the gateway in the local mesh.
const REST_PORT: u16 = 8888;

/// Prometheus job name (the same in both configurations) → admin port of the
/// local mesh.
const JOBS: [(&str, u16); 6] = [
    ("gateway", 9888),
    ("user-service", 9080),
    ("count-service", 9081),
    ("relation-service", 9082),
    ("binlog-relay", 9101),
    ("cache-syncer", 9102),
];

const MAKE_UP: &str =
    "run `make up` first (it starts the stack, Prometheus and every sluice process)";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn compose_file(rel: &str) -> PathBuf {
    repo_root().join("compose").join(rel)
}

fn prometheus_port() -> u16 {
    match std::env::var("SLUICE_PROMETHEUS_PORT") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("SLUICE_PROMETHEUS_PORT={v:?} is not a port")),
        Err(_) => 9090,
    }
}

// ------------------------------------------------------------------ HTTP

/// A response of [`http`].
#[derive(Debug)]
struct Resp {
    status: u16,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port` (`Connection: close`, so the body
/// ends at EOF; chunked bodies are decoded), bounded by 10 s.
async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<Resp, String> {
    let attempt = async {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept: */*\r\n"
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read: {e}"))?;
        parse_response(&raw)
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .map_err(|_| format!("{method} 127.0.0.1:{port}{path}: no answer within 10s"))?
}

fn parse_response(raw: &[u8]) -> Result<Resp, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut body = raw[split + 4..].to_vec();
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Resp {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_txt = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_txt.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size {size_txt:?}: {e}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = b.get(size + 2..).unwrap_or_default();
    }
}

async fn get(port: u16, path: &str) -> Result<Resp, String> {
    http(port, "GET", path, &[], None).await
}

/// Percent-encodes a query-string value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls `check` until it gives `Ok`, or panics with the last error after `deadline`.
async fn poll<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if start.elapsed() >= deadline => {
                panic!("not true after {deadline:?}: {what}\nlast state: {last}")
            }
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

// ------------------------------------------------------------------ the mesh

/// Panics, naming `make up`, unless every sluice process answers.
async fn require_mesh() {
    let mut down = Vec::new();
    for (job, port) in JOBS {
        match get(port, "/healthz").await {
            Ok(r) if r.status == 200 => {}
            Ok(r) => down.push(format!(
                "{job} admin 127.0.0.1:{port} (/healthz {})",
                r.status
            )),
            Err(e) => down.push(format!("{job} admin 127.0.0.1:{port} ({e})")),
        }
    }
    if let Err(e) = TcpStream::connect(("127.0.0.1", REST_PORT)).await {
        down.push(format!("gateway REST 127.0.0.1:{REST_PORT} ({e})"));
    }
    assert!(
        down.is_empty(),
        "the local sluice mesh is not up: {}\n{MAKE_UP}",
        down.join(", ")
    );
}

/// Panics, naming `make up`, unless Prometheus answers.
async fn require_prometheus() -> u16 {
    let port = prometheus_port();
    match get(port, "/-/ready").await {
        Ok(r) if r.status == 200 => port,
        other => panic!(
            "Prometheus is not ready on 127.0.0.1:{port} (SLUICE_PROMETHEUS_PORT): {other:?}\n{MAKE_UP}"
        ),
    }
}

/// A registered user of the live mesh.
struct User {
    id: u64,
    token: String,
}

async fn register(prefix: &str) -> User {
    let name = format!("{prefix}{}", testkit::unique_suffix());
    let r = http(
        REST_PORT,
        "POST",
        "/v1/users",
        &[],
        Some(&json!({"username": name, "password": "observability-test"})),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "register {name}: {}", r.body);
    let v = r.json();
    User {
        id: v["id"].as_u64().expect("id"),
        token: v["token"].as_str().expect("token").to_owned(),
    }
}

/// REST traffic that touches every service and the whole CDC pipeline:
/// register (user-service), follow (relation-service, a binlog change the
/// relay publishes and the syncer applies), profile, counts, is-follow and an
/// unknown route.
async fn traffic() {
    let a = register("obs_a_").await;
    let b = register("obs_b_").await;
    let auth = format!("Bearer {}", a.token);
    let r = http(
        REST_PORT,
        "PUT",
        &format!("/v1/users/me/following/{}", b.id),
        &[("Authorization", &auth)],
        None,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "follow: {}", r.body);
    for path in [
        format!("/v1/users/{}", b.id),
        format!("/v1/users/{}", b.id),
        format!("/v1/counts?user_ids={},{}", a.id, b.id),
        format!("/v1/users/{}/following/{}", a.id, b.id),
        format!("/v1/users/{}/followers", b.id),
        "/v1/users/1".to_owned(),
        "/healthz".to_owned(),
    ] {
        let r = get(REST_PORT, &path).await.unwrap();
        assert!(r.status < 500, "GET {path}: {} {}", r.status, r.body);
    }
}

// ------------------------------------------------------------------ PromQL

/// Metric names a PromQL expression selects: identifiers outside strings,
/// label matchers, ranges and grouping lists that are neither functions,
/// aggregation operators nor keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const SKIP: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        "atan2",
    ];
    const LISTS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    // Keep only what is outside "strings", {matchers} and [ranges].
    let mut kept = Vec::new();
    let (mut quote, mut depth) = (None::<char>, 0usize);
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(_), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'' | '`') => quote = Some(c),
            (None, '{' | '[') => depth += 1,
            (None, '}' | ']') => depth = depth.saturating_sub(1),
            (None, c) if depth == 0 => kept.push(c),
            _ => {}
        }
    }
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < kept.len() {
        let c = kept[i];
        if c.is_ascii_digit() || c == '.' {
            // A number (0.99, 1e3): skip it whole.
            while i < kept.len() && (ident(kept[i]) || kept[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !ident_start(c) {
            i += 1;
            continue;
        }
        let start = i;
        while i < kept.len() && ident(kept[i]) {
            i += 1;
        }
        let word: String = kept[start..i].iter().collect();
        let mut j = i;
        while j < kept.len() && kept[j].is_whitespace() {
            j += 1;
        }
        let next = kept.get(j).copied();
        if LISTS.contains(&word.as_str()) {
            if next == Some('(') {
                // Skip the label list.
                while j < kept.len() && kept[j] != ')' {
                    j += 1;
                }
                i = j + 1;
            }
            continue;
        }
        if next == Some('(') || SKIP.contains(&word.to_ascii_lowercase().as_str()) {
            continue;
        }
        names.insert(word);
    }
    names
}

#[test]
fn metric_names_are_parsed_out_of_promql() {
    let e = r#"histogram_quantile(0.99, sum by (le, method) (rate(a_seconds_bucket{status=~"5..", x="}"}[$__rate_interval]))) / ignoring(route) group_left sum(rate(b_total[5m])) + on(x) c:rule offset 5m"#;
    let got: Vec<String> = metric_names(e).into_iter().collect();
    assert_eq!(got, ["a_seconds_bucket", "b_total", "c:rule"]);
    assert!(
        metric_names("max(binlog_relay_time_lag_seconds) * 1e3")
            .contains("binlog_relay_time_lag_seconds")
    );
    assert_eq!(metric_names("sum(rate(x[1m])) > bool 0").len(), 1);
}

/// Sample names of a Prometheus text exposition (`x_bucket`, `x_sum`, … as written).
fn sample_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Every (panel title, expr) of the dashboard, rows' nested panels included.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = compose_file("grafana/dashboards/sluice.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dash: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    assert!(
        dash["uid"].is_string() && dash["title"].is_string(),
        "dashboard needs uid and title"
    );
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = dash["panels"].as_array().expect("panels").iter().collect();
    assert!(!stack.is_empty(), "the dashboard has no panels");
    while let Some(p) = stack.pop() {
        if let Some(nested) = p["panels"].as_array() {
            stack.extend(nested);
        }
        if p["type"] == "row" {
            continue;
        }
        let title = p["title"].as_str().unwrap_or("?").to_owned();
        assert_eq!(
            p["datasource"]["uid"], "prometheus",
            "panel {title:?} must use the provisioned Prometheus datasource"
        );
        let targets = p["targets"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for t in targets {
            let expr = t["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {title:?}: a target without expr"));
            out.push((title.clone(), expr.to_owned()));
        }
    }
    out
}

// ------------------------------------------------------------------ tests

#[test]
fn prometheus_configs_pass_promtool_and_agree_on_jobs() {
    let mut jobs_of = BTreeMap::new();
    for name in [
        "prometheus/prometheus.yml",
        "prometheus/prometheus.local.yml",
    ] {
        let path = compose_file(name);
        let out = match std::process::Command::new("promtool")
            .args(["check", "config"])
            .arg(&path)
            .output()
        {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("promtool is not installed (Debian package `prometheus`): {MAKE_UP}")
            }
            Err(e) => panic!("running promtool: {e}"),
        };
        assert!(
            out.status.success(),
            "promtool check config {}:\n{}{}",
            path.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        jobs_of.insert(name, scrape_jobs(&std::fs::read_to_string(&path).unwrap()));
    }
    let compose = &jobs_of["prometheus/prometheus.yml"];
    let local = &jobs_of["prometheus/prometheus.local.yml"];
    let names = |m: &BTreeMap<String, Vec<String>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(compose),
        names(local),
        "job names differ between the two configurations"
    );
    for (job, port) in JOBS {
        assert_eq!(
            local.get(job),
            Some(&vec![format!("127.0.0.1:{port}")]),
            "local job {job} must scrape the mesh's admin port"
        );
        assert_eq!(
            compose.get(job),
            Some(&vec![format!("{job}:{port}")]),
            "compose job {job} must scrape its compose service"
        );
    }
}

/// job_name → targets of a (simple, static_configs only) Prometheus config.
fn scrape_jobs(yaml: &str) -> BTreeMap<String, Vec<String>> {
    let mut jobs = BTreeMap::<String, Vec<String>>::new();
    let mut current = None;
    for line in yaml.lines().map(str::trim) {
        if let Some(job) = line.strip_prefix("- job_name:") {
            let job = job.trim().trim_matches('"').to_owned();
            jobs.entry(job.clone()).or_default();
            current = Some(job);
        } else if let (Some(job), Some((_, list))) = (&current, line.split_once("targets:")) {
            let targets = list.split('"').skip(1).step_by(2).map(str::to_owned);
            jobs.get_mut(job).unwrap().extend(targets);
        }
    }
    jobs
}

#[tokio::test]
async fn every_dashboard_metric_is_exported_by_the_mesh() {
    let queries = dashboard_queries();
    let mut wanted = BTreeMap::<String, BTreeSet<String>>::new();
    for (title, expr) in &queries {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "panel {title:?}: no metric in {expr:?}");
        for n in names {
            wanted.entry(n).or_default().insert(title.clone());
        }
    }
    require_mesh().await;
    traffic().await;
    // The follow above reaches the relay and the syncer asynchronously: poll.
    poll(
        Duration::from_secs(60),
        "every metric of the dashboard is in some /metrics",
        || {
            let wanted = &wanted;
            async move {
                let mut live = BTreeSet::new();
                for (job, port) in JOBS {
                    let r = get(port, "/metrics").await?;
                    if r.status != 200 {
                        return Err(format!("{job} /metrics: {}", r.status));
                    }
                    live.extend(sample_names(&r.body));
                }
                let missing: Vec<String> = wanted
                    .iter()
                    .filter(|(n, _)| !live.contains(*n))
                    .map(|(n, panels)| format!("{n} (panels {panels:?})"))
                    .collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "not exported by any sluice process:\n  {}",
                        missing.join("\n  ")
                    ))
                }
            }
        },
    )
    .await;
}

#[tokio::test]
async fn dashboard_queries_are_valid_promql() {
    let port = require_prometheus().await;
    for (title, expr) in dashboard_queries() {
        let q = expr
            .replace("$__rate_interval", "1m")
            .replace("$__interval", "1m")
            .replace("$__range", "5m");
        let r = get(port, &format!("/api/v1/query?query={}", urlencode(&q)))
            .await
            .unwrap();
        let v = r.json();
        assert_eq!(
            v["status"], "success",
            "panel {title:?}: Prometheus rejects {q:?}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn prometheus_scrapes_every_sluice_process_and_sees_rest_traffic() {
    let port = require_prometheus().await;
    require_mesh().await;

    poll(
        Duration::from_secs(60),
        "Prometheus reports every sluice target up",
        || async move {
            let v = get(port, "/api/v1/targets?state=active").await?.json();
            let targets = v["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut bad = Vec::new();
            for (job, _) in JOBS {
                match targets.iter().find(|t| t["labels"]["job"] == job) {
                    None => bad.push(format!("{job}: no such target")),
                    Some(t) if t["health"] == "up" => {}
                    Some(t) => bad.push(format!(
                        "{job} {}: {} {}",
                        t["scrapeUrl"], t["health"], t["lastError"]
                    )),
                }
            }
            if bad.is_empty() {
                Ok(())
            } else {
                Err(bad.join("; "))
            }
        },
    )
    .await;

    let total = || async move {
        let q = urlencode("sum(gateway_requests_total)");
        let v = get(port, &format!("/api/v1/query?query={q}")).await?.json();
        v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| format!("no sum(gateway_requests_total) yet: {v}"))
    };
    let reaches = |what: &'static str, at_least: f64| {
        poll(Duration::from_secs(30), what, move || async move {
            let now = total().await?;
            if now >= at_least {
                Ok(())
            } else {
                Err(format!("{now}, waiting for >= {at_least}"))
            }
        })
    };
    // Prometheus first catches up with the gateway's own counter, then sees
    // one more request (other tests may add more: hence >=).
    let r = get(REST_PORT, "/v1/users/1").await.unwrap();
    assert!(r.status < 500, "{} {}", r.status, r.body);
    let live = gateway_requests_total().await;
    reaches(
        "Prometheus has scraped the gateway's gateway_requests_total",
        live,
    )
    .await;
    let r = get(REST_PORT, "/v1/users/1").await.unwrap();
    assert!(r.status < 500, "{} {}", r.status, r.body);
    reaches(
        "sum(gateway_requests_total) in Prometheus grows after a REST call",
        live + 1.0,
    )
    .await;
}

/// The gateway's own count of REST requests (all series summed), from its /metrics.
async fn gateway_requests_total() -> f64 {
    let r = get(JOBS[0].1, "/metrics").await.unwrap();
    let total: f64 = r
        .body
        .lines()
        .filter(|l| {
            l.starts_with("gateway_requests_total{") || l.starts_with("gateway_requests_total ")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        total >= 1.0,
        "the gateway's /metrics has no gateway_requests_total:\n{}",
        r.body
    );
    total
}
