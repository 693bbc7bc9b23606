//! Tracing end to end, against an in-process OTLP receiver: one follow
//! through the REST gateway must yield one connected trace — the gateway's
//! HTTP span, relation-service's gRPC span (context carried in gRPC
//! metadata) and its MySQL transaction span — and the relay's span for that
//! binlog transaction must have the syncer's apply spans as children
//! (context carried in the Kafka `traceparent` header). The two traces share
//! the transaction's GTID as the `sluice.tx` attribute: MariaDB sends a
//! replica the statement text (annotate-rows) only when the binlog dump asks
//! for it with a flag `mysql_async` cannot set, so the request's context
//! cannot ride in the binlog.
//!
//! Its own test binary: the OTLP exporter is part of the process-wide
//! subscriber.

#[allow(dead_code)]
#[path = "it/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use secrecy::SecretString;
use service_kit::jwt::{JwtCodec, JwtSettings};
use tower::ServiceExt;

use harness::{Harness, spawn_relation_service, start_relay};

/// A received span, flattened.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
    attrs: HashMap<String, String>,
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Got>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(|v| text(v.value.as_ref()))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for sp in ss.spans {
                    got.push(Got {
                        service: service.clone(),
                        name: sp.name,
                        trace: sp.trace_id,
                        id: sp.span_id,
                        parent: sp.parent_span_id,
                        attrs: sp
                            .attributes
                            .iter()
                            .map(|kv| {
                                (
                                    kv.key.clone(),
                                    text(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                                )
                            })
                            .collect(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn text(v: Option<&AnyValue>) -> String {
    match v {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        _ => String::new(),
    }
}

/// Starts the receiver on a free port; its endpoint URL.
async fn start_receiver(rx: Receiver) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(rx))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    format!("http://127.0.0.1:{port}")
}

fn secret() -> SecretString {
    SecretString::from("tracing-test-secret-tracing-test-secret-0123")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_traces_gateway_service_mysql_and_its_transaction_traces_relay_to_syncer() {
    let received = Receiver::default();
    let endpoint = start_receiver(received.clone()).await;
    let telemetry = Arc::new(common::telemetry::init_with(
        "sluice-tracing-test",
        Some(&endpoint),
        1.0,
    ));
    assert!(telemetry.exporting(), "the OTLP exporter must be installed");

    let h = Harness::new().await;
    h.add_users(2).await;
    let _relay = start_relay(&h).await;
    let relation_port = spawn_relation_service(&h).await;
    let syncer = cache_syncer::startup::Application::build(h.settings.clone())
        .await
        .expect("syncer builds");
    tokio::spawn(syncer.run_until_stopped(std::future::pending()));

    let relation_url = format!("http://127.0.0.1:{relation_port}");
    let gw = gateway::startup::Application::build(gateway::config::Settings {
        mesh: testkit::mesh_settings(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        admin: common::config::AdminSettings::on_port(0),
        user_url: relation_url.clone(),
        relation_url: relation_url.clone(),
        count_url: relation_url,
        jwt: JwtSettings {
            secret: Some(secret()),
            ..Default::default()
        },
        request_timeout: Duration::from_secs(10),
        ..Default::default()
    })
    .await
    .expect("gateway builds");
    let router = gw.router();
    tokio::spawn(gw.run_until(std::future::pending()));

    let bearer = JwtCodec::new(secret(), Duration::from_secs(600)).issue(1);
    let resp = router
        .oneshot(
            Request::builder()
                .method(Method::PUT)
                .uri("/v1/users/1/following/2")
                .header("authorization", format!("Bearer {bearer}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let token = resp
        .headers()
        .get(gateway::extract::CONSISTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .expect("a follow answers with its consistency token")
        .to_owned();

    // Poll (flushing each time) until the relay's span for this transaction
    // and the syncer's apply spans under it have arrived.
    let deadline = Instant::now() + Duration::from_secs(120);
    let spans = loop {
        let t = telemetry.clone();
        tokio::task::spawn_blocking(move || t.flush())
            .await
            .unwrap();
        let spans = received.0.lock().unwrap().clone();
        let relay = spans
            .iter()
            .find(|s| s.name == "binlog transaction" && s.attrs.get("sluice.tx") == Some(&token));
        if let Some(r) = relay
            && spans.iter().any(|s| s.name == "apply" && s.parent == r.id)
        {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "no relay span for transaction {token} with apply spans under it within 120 s; got {:#?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let one = |name: &str| -> Got {
        let found: Vec<&Got> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "exactly one `{name}` span: {found:#?}");
        found[0].clone()
    };
    let http = one("PUT /v1/users/{id}/following/{target}");
    assert!(http.parent.is_empty(), "the gateway's span is the root");
    assert_eq!(
        http.attrs
            .get("http.response.status_code")
            .map(String::as_str),
        Some("200")
    );
    let grpc = one("relation.v1.RelationService/Follow");
    assert_eq!(
        grpc.trace, http.trace,
        "relation-service joins the gateway's trace"
    );
    assert_eq!(grpc.parent, http.id, "gRPC span is the HTTP span's child");
    let handler = one("follow");
    assert_eq!(
        handler.parent, grpc.id,
        "the handler runs inside the gRPC span"
    );
    let mysql = one("follow transaction");
    assert_eq!(mysql.trace, http.trace);
    assert_eq!(
        mysql.parent, handler.id,
        "MySQL span is the handler's child"
    );
    assert_eq!(
        mysql.attrs.get("db.system.name").map(String::as_str),
        Some("mysql")
    );

    assert_eq!(
        mysql.attrs.get("sluice.tx"),
        Some(&token),
        "the MySQL span names its transaction's GTID"
    );

    let relay = spans
        .iter()
        .find(|s| s.name == "binlog transaction" && s.attrs.get("sluice.tx") == Some(&token))
        .unwrap()
        .clone();
    assert!(relay.parent.is_empty(), "the relay's span starts its trace");
    assert_eq!(
        relay.attrs.get("sluice.rows").map(String::as_str),
        Some("3"),
        "follow row and two counter rows"
    );
    let applies: Vec<&Got> = spans
        .iter()
        .filter(|s| s.name == "apply" && s.parent == relay.id)
        .collect();
    assert!(!applies.is_empty());
    for a in &applies {
        assert_eq!(a.trace, relay.trace, "apply spans are in the relay's trace");
    }
    let tables: Vec<&str> = applies
        .iter()
        .filter_map(|a| a.attrs.get("sluice.table").map(String::as_str))
        .collect();
    assert!(
        tables.iter().all(|t| ["follow", "counter"].contains(t)),
        "apply spans name the follow transaction's tables: {tables:?}"
    );
    // Every span of the trace came through the exporter under the test's name.
    assert!(spans.iter().all(|s| s.service == "sluice-tracing-test"));
}
