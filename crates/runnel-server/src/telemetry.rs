//! Prometheus metrics. The recorder is process-wide (the `metrics` facade allows one), installed
//! the first time a server is built; every metric name is defined here.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use runnel_core::StoreMetrics;

pub(crate) const HTTP_REQUESTS: &str = "runnel_http_requests_total";
pub(crate) const HTTP_REQUEST_SECONDS: &str = "runnel_http_request_duration_seconds";
pub(crate) const APPEND_SECONDS: &str = "runnel_append_duration_seconds";
pub(crate) const EVENTS_APPENDED: &str = "runnel_events_appended_total";
pub(crate) const BYTES_APPENDED: &str = "runnel_bytes_appended_total";
pub(crate) const SUBSCRIPTIONS_OPEN: &str = "runnel_subscriptions_open";
pub(crate) const SUBSCRIPTION_LAG_EVENTS: &str = "runnel_subscription_lag_events";
pub(crate) const SUBSCRIPTIONS_CLOSED_LAGGING: &str = "runnel_subscriptions_closed_lagging_total";
pub(crate) const HEAD_POSITION: &str = "runnel_head_position";
pub(crate) const REQUESTS_UNAUTHENTICATED: &str = "runnel_http_requests_unauthenticated_total";
pub(crate) const CONNECTIONS_OPEN: &str = "runnel_http_connections_open";
pub(crate) const CONNECTIONS_REFUSED: &str = "runnel_http_connections_refused_total";
pub(crate) const TLS_HANDSHAKE_FAILURES: &str = "runnel_tls_handshake_failures_total";

/// Latency buckets from 100 µs to 10 s: appends are fsync-bound (hundreds of µs) and requests
/// above a few seconds are already failures.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
const LAG_BUCKETS: &[f64] = &[
    0.0,
    1.0,
    10.0,
    100.0,
    1_000.0,
    10_000.0,
    100_000.0,
    1_000_000.0,
];

/// A handle on the process-wide recorder, or nothing when another recorder was installed first
/// (then `/metrics` is empty rather than wrong).
#[derive(Debug, Clone)]
pub(crate) struct Telemetry {
    handle: Option<PrometheusHandle>,
}

impl Telemetry {
    pub(crate) fn global() -> Self {
        static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
        let handle = HANDLE.get_or_init(install).clone();
        Self { handle }
    }

    pub(crate) fn render(&self) -> String {
        self.handle
            .as_ref()
            .map(PrometheusHandle::render)
            .unwrap_or_default()
    }

    /// Drains histogram samples into their buckets. Without it, samples recorded between scrapes
    /// would pile up in memory when nobody scrapes `/metrics`.
    pub(crate) fn run_upkeep(&self) {
        if let Some(handle) = &self.handle {
            handle.run_upkeep();
        }
    }

    pub(crate) const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
}

fn install() -> Option<PrometheusHandle> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(SUBSCRIPTION_LAG_EVENTS.to_owned()),
                LAG_BUCKETS,
            )
        });
    let builder = match builder {
        Ok(builder) => builder,
        Err(error) => {
            tracing::warn!(%error, "metrics buckets rejected; /metrics stays empty");
            return None;
        }
    };
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    match metrics::set_global_recorder(recorder) {
        Ok(()) => {
            describe();
            Some(handle)
        }
        Err(error) => {
            tracing::warn!(%error, "another metrics recorder is installed; /metrics stays empty");
            None
        }
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route and status"
    );
    describe_histogram!(
        HTTP_REQUEST_SECONDS,
        Unit::Seconds,
        "Time to the start of the response, by method and route"
    );
    describe_histogram!(
        APPEND_SECONDS,
        Unit::Seconds,
        "Time for the store to make an append durable"
    );
    describe_counter!(EVENTS_APPENDED, "Events acknowledged by appends");
    describe_counter!(
        BYTES_APPENDED,
        Unit::Bytes,
        "Bytes (type, data, metadata) acknowledged by appends"
    );
    describe_gauge!(SUBSCRIPTIONS_OPEN, "Live subscriptions (SSE) open now");
    describe_histogram!(
        SUBSCRIPTION_LAG_EVENTS,
        "How far behind the head a live subscription was when it read a page"
    );
    describe_counter!(
        SUBSCRIPTIONS_CLOSED_LAGGING,
        "Live subscriptions closed for falling too far behind"
    );
    describe_gauge!(HEAD_POSITION, "The last durable position of the log");
    describe_counter!(
        REQUESTS_UNAUTHENTICATED,
        "Requests answered 401: no API key, or not a valid one"
    );
    describe_gauge!(CONNECTIONS_OPEN, "HTTP connections being served now");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections refused for max_connections (answered 503, or closed in a flood)"
    );
    describe_counter!(
        TLS_HANDSHAKE_FAILURES,
        "TLS handshakes that failed or timed out (bad or missing client certificates among them)"
    );
}

/// The store's own counters in Prometheus text. They are cumulative in the engine, so they are
/// written at scrape time rather than recorded through the facade; the latency buckets arrive
/// per bucket and Prometheus wants them cumulative.
pub(crate) fn render_store_metrics(metrics: &StoreMetrics, out: &mut String) {
    use std::fmt::Write as _;
    let name = "runnel_store_sync_duration_seconds";
    if !metrics.sync_bucket_bounds_micros.is_empty()
        && metrics.sync_bucket_counts.len() == metrics.sync_bucket_bounds_micros.len() + 1
    {
        let _ = writeln!(
            out,
            "# HELP {name} Time of each durable write (an fdatasync per group commit)"
        );
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (bound, count) in metrics
            .sync_bucket_bounds_micros
            .iter()
            .zip(&metrics.sync_bucket_counts)
        {
            cumulative += count;
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        let total: u64 = metrics.sync_bucket_counts.iter().sum();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum {}", metrics.sync_micros_total as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {total}");
    }
    for (metric, help, value) in [
        (
            "runnel_store_commits_total",
            "Durable writes (group commits)",
            metrics.commits,
        ),
        (
            "runnel_store_events_written_total",
            "Events written to storage",
            metrics.events_written,
        ),
        (
            "runnel_store_bytes_written_total",
            "Bytes written to storage, framing included",
            metrics.bytes_written,
        ),
    ] {
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} counter");
        let _ = writeln!(out, "{metric} {value}");
    }
}

/// Counts one open subscription for as long as it lives.
#[derive(Debug)]
pub(crate) struct OpenSubscription(());

impl OpenSubscription {
    pub(crate) fn new() -> Self {
        metrics::gauge!(SUBSCRIPTIONS_OPEN).increment(1.0);
        Self(())
    }
}

impl Drop for OpenSubscription {
    fn drop(&mut self) {
        metrics::gauge!(SUBSCRIPTIONS_OPEN).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_latency_buckets_are_rendered_cumulatively() {
        let metrics = StoreMetrics {
            commits: 3,
            events_written: 5,
            bytes_written: 700,
            sync_bucket_bounds_micros: vec![100, 1_000],
            sync_bucket_counts: vec![1, 2, 0],
            sync_micros_total: 1_500,
        };
        let mut out = String::new();
        render_store_metrics(&metrics, &mut out);
        for line in [
            r#"runnel_store_sync_duration_seconds_bucket{le="0.0001"} 1"#,
            r#"runnel_store_sync_duration_seconds_bucket{le="0.001"} 3"#,
            r#"runnel_store_sync_duration_seconds_bucket{le="+Inf"} 3"#,
            "runnel_store_sync_duration_seconds_sum 0.0015",
            "runnel_store_sync_duration_seconds_count 3",
            "runnel_store_events_written_total 5",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing in\n{out}");
        }
    }
}
