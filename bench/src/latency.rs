//! Latency recording: an HDR histogram of nanoseconds, so that p99.9 of a few thousand samples
//! and of millions costs the same memory and keeps three significant digits.

use std::time::Duration;

use hdrhistogram::Histogram;

/// The slowest latency a histogram can hold; slower samples are clamped to it (and show as
/// such in `max`).
const HIGHEST_NANOS: u64 = 100_000_000_000;

#[derive(Debug, Clone)]
pub(crate) struct Latencies {
    histogram: Histogram<u64>,
}

impl Latencies {
    pub(crate) fn new() -> Self {
        // The bounds are constants that hdrhistogram accepts; a failure here is a bug in them.
        let histogram = Histogram::new_with_bounds(1, HIGHEST_NANOS, 3)
            .unwrap_or_else(|error| panic!("latency histogram bounds are invalid: {error}"));
        Self { histogram }
    }

    pub(crate) fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.histogram
            .saturating_record(nanos.clamp(1, HIGHEST_NANOS));
    }

    pub(crate) fn merge(&mut self, other: &Latencies) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    pub(crate) fn quantile(&self, quantile: f64) -> Duration {
        Duration::from_nanos(self.histogram.value_at_quantile(quantile))
    }

    pub(crate) fn max(&self) -> Duration {
        Duration::from_nanos(self.histogram.max())
    }
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}
