//! The bare HTTP/1.1 keep-alive client of the REST gateway (`Http`,
//! `Answer`) and the gateway calls the scenarios share: registering users
//! and following/unfollowing.

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::status::Status;

/// One HTTP/1.1 keep-alive connection.
pub(crate) struct Http {
    addr: String,
    stream: Option<BufReader<TcpStream>>,
}

/// A parsed answer: status, the headers we care about, body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) read_source: Option<String>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl Http {
    pub(crate) fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            stream: None,
        }
    }

    /// Sends a request (reconnecting when the last one broke the connection).
    pub(crate) async fn call(
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
        // Not an HTTP status line: the connection is out of step (the
        // caller drops it) and the request counts as `bad-response`.
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("not an HTTP status line: {:?}", line.trim_end()),
                )
            })?;
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

/// Registers `n` users through the gateway: `(id, bearer token)`.
pub(crate) async fn register(addr: &str, n: usize) -> anyhow::Result<Vec<(u64, String)>> {
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

/// Follow (`true`) or unfollow; `(changed, consistency token)` when
/// acknowledged (status 200), else the status it failed with.
pub(crate) async fn write(
    http: &mut Http,
    bearer: &str,
    to: u64,
    follow: bool,
) -> Result<(bool, String), Status> {
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
        Ok(a) => Err(Status::Http(a.status)),
        Err(e) => Err(Status::io(&e)),
    }
}
