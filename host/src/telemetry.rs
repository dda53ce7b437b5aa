//! The host's log and traces: `tracing` to stderr (text or JSON lines), and, when
//! `[telemetry] otlp_endpoint` is set, the same spans exported over OTLP/HTTP to a collector.
//!
//! Every invocation runs in an `invocation` span carrying the agent, version, kind and
//! correlation id, so log lines written during it (JSON logs list their spans) and the exported
//! traces can be joined with the audit log and the records on the bus.

use crate::config::TelemetryConfig;
use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal as _;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// How the log is written on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, with the spans it happened in.
    Json,
}

/// Keeps the exporter alive; [`Telemetry::shutdown`] sends what is still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// The log filter: `AGENTHOST_LOG` or `RUST_LOG`, else info without the compiler's chatter.
fn filter() -> EnvFilter {
    EnvFilter::try_from_env("AGENTHOST_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,cranelift=warn,wasmtime=warn,sled=warn"))
}

/// Installs the global subscriber: the log on stderr in `format`, plus OTLP export if
/// configured. Fails only on a bad exporter configuration.
///
/// The text log is coloured only on a terminal (and not when `NO_COLOR` is set): redirected to
/// a file or a log shipper, escape codes are noise to grep and to parsers, and writing them for
/// every invocation's span costs CPU on every event.
pub fn init(format: LogFormat, config: &TelemetryConfig) -> anyhow::Result<Telemetry> {
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    install(format, config, std::io::stderr, colour)
}

/// [`init`] with the log written to `writer` instead of stderr (an embedder's or a benchmark's
/// log file), without colour.
pub fn init_with_writer<W>(
    format: LogFormat,
    config: &TelemetryConfig,
    writer: W,
) -> anyhow::Result<Telemetry>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    install(format, config, writer, false)
}

fn install<W>(
    format: LogFormat,
    config: &TelemetryConfig,
    writer: W,
    colour: bool,
) -> anyhow::Result<Telemetry>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let log = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_ansi(false)
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(colour)
            .with_writer(writer)
            .boxed(),
    };
    let provider = match &config.otlp_endpoint {
        Some(endpoint) => Some(otlp_provider(endpoint, &config.service_name)?),
        None => None,
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("agenthost"))
            .boxed()
    });
    tracing_subscriber::registry()
        .with(log)
        .with(otel)
        .with(filter())
        .init();
    Ok(Telemetry { provider })
}

fn otlp_provider(endpoint: &str, service_name: &str) -> anyhow::Result<SdkTracerProvider> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(&url)
        .with_timeout(Duration::from_secs(10))
        .build()
        .with_context(|| format!("cannot set up the OTLP exporter for {url}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build())
}

impl Telemetry {
    /// Exports the spans still buffered; called once, at exit.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            eprintln!("warning: exporting the last spans failed: {err}");
        }
    }
}
