//! Tracing subscriber set-up shared by every binary, and OTLP trace export.
//!
//! `RUST_LOG` filters the log lines (default `info`); `SLUICE_LOG_FORMAT=json`
//! switches to JSON lines for log shippers.
//!
//! Tracing is off by default. `SLUICE_OTLP_ENDPOINT=http://host:4317` (OTLP
//! over gRPC; Jaeger, Tempo and the OpenTelemetry Collector all accept it)
//! turns it on: spans of the `info` level and above are batched and exported
//! under the binary's name as `service.name`. `SLUICE_OTLP_SAMPLE_RATIO`
//! (0.0–1.0, default 1.0) samples new traces; a request that arrives with a
//! sampled `traceparent` is always kept.
//!
//! Context crosses process boundaries as a W3C `traceparent`: in gRPC
//! metadata (gateway → services, see `service_kit::grpc`) and in Kafka headers
//! (relay → syncer). [`traceparent`] and [`set_parent`] are the two halves.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The W3C trace-context header name, in HTTP, gRPC metadata and Kafka headers.
pub const TRACEPARENT: &str = "traceparent";

/// Target of the spans made for export (request, gRPC, handler, MySQL,
/// relay and apply spans). The log output leaves them out, so with tracing
/// off no layer wants them and they cost no more than a disabled callsite.
/// (`#[tracing::instrument]` takes the target as a literal: the services'
/// handlers write `target = "sluice_trace"`.)
pub const SPANS: &str = "sluice_trace";

/// Environment variable that turns OTLP export on.
pub const OTLP_ENDPOINT_ENV: &str = "SLUICE_OTLP_ENDPOINT";

/// Keeps the trace exporter alive; dropping it flushes what is buffered.
/// Hold it for the life of `main`.
#[must_use = "dropping the guard stops trace export"]
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports every finished span now (blocks; call from a blocking thread
    /// in async code).
    pub fn flush(&self) {
        if let Some(p) = &self.provider
            && let Err(e) = p.force_flush()
        {
            tracing::warn!(error = %e, "flushing spans failed");
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("trace exporter shutdown: {e}");
        }
    }
}

/// Installs the global subscriber, with OTLP export when
/// `SLUICE_OTLP_ENDPOINT` is set. Safe to call more than once (later calls
/// are ignored and export nothing), so tests may call it too. Call it inside
/// the Tokio runtime: the gRPC exporter runs on it.
pub fn init(service: &str) -> Telemetry {
    let endpoint = std::env::var(OTLP_ENDPOINT_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let ratio = std::env::var("SLUICE_OTLP_SAMPLE_RATIO")
        .ok()
        .map(|v| match v.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => r,
            _ => {
                eprintln!("SLUICE_OTLP_SAMPLE_RATIO={v:?} is not a number in 0..=1; using 1.0");
                1.0
            }
        })
        .unwrap_or(1.0);
    init_with(service, endpoint.as_deref(), ratio)
}

/// [`init`] with the endpoint and sample ratio given rather than read from
/// the environment.
pub fn init_with(service: &str, otlp_endpoint: Option<&str>, sample_ratio: f64) -> Telemetry {
    // The metrics recorder first: a metric handle created before it exists
    // would record into the void for the life of the process.
    crate::admin::prometheus();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive(format!("{SPANS}=off").parse().expect("a valid directive"));
    let json = std::env::var("SLUICE_LOG_FORMAT").is_ok_and(|v| v == "json");
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };

    let provider = match otlp_endpoint {
        Some(ep) => match exporter(service, ep, sample_ratio) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("tracing stays off: cannot build the OTLP exporter for {ep}: {e}");
                None
            }
        },
        None => None,
    };
    let otel = provider.as_ref().map(|p| {
        // Spans only (no log events as span events), info and up, and none
        // of the transport crates' internals.
        let spans = EnvFilter::new("info,h2=off,hyper=off,tower=off,tonic=off,rdkafka=off");
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("sluice"))
            .with_filter(spans)
    });
    let res = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init();
    match (res, provider) {
        (Ok(()), provider) => {
            tracing::debug!(
                service,
                exporting = provider.is_some(),
                "telemetry initialised"
            );
            Telemetry { provider }
        }
        (Err(_), Some(p)) => {
            // Someone installed a subscriber first; this exporter would get nothing.
            let _ = p.shutdown();
            Telemetry::default()
        }
        (Err(_), None) => Telemetry::default(),
    }
}

fn exporter(
    service: &str,
    endpoint: &str,
    sample_ratio: f64,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(std::time::Duration::from_secs(5))
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// The W3C `traceparent` of `span`, when it is being exported (None when
/// tracing is off or the span is not sampled).
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    // With tracing off every export span is disabled: no context to look up.
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(1);
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The `traceparent` of the current span (see [`traceparent_of`]).
pub fn traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// Makes `span` a child of the remote span named by a W3C `traceparent`.
/// A malformed value is ignored: the span starts a trace of its own.
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    let mut carrier: HashMap<String, String> = HashMap::with_capacity(1);
    carrier.insert(TRACEPARENT.to_owned(), traceparent.to_owned());
    let cx = TraceContextPropagator::new().extract(&carrier);
    use opentelemetry::trace::TraceContextExt;
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// [`set_parent`] from the `traceparent` header of an HTTP or gRPC request,
/// when there is one.
pub fn set_parent_from(span: &tracing::Span, headers: &http::HeaderMap) {
    if let Some(tp) = headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()) {
        set_parent(span, tp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_export_there_is_no_traceparent() {
        let span = tracing::info_span!("x");
        assert_eq!(traceparent_of(&span), None);
        // A malformed parent is ignored rather than an error.
        set_parent(&span, "not-a-traceparent");
    }
}
