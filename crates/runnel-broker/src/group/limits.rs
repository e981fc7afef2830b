//! The bounds of consumer groups: every set a group keeps and every request it answers has one.

/// Bounds on groups and on what one group may hold. [`Default`] suits one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupLimits {
    /// Groups that may exist at once.
    pub max_groups: usize,
    /// Deliveries of one group leased at once; a receive beyond it gets nothing more.
    pub max_in_flight: usize,
    /// Events of one group waiting (for a retry time, after an expired lease, or behind an
    /// earlier event of their stream); when full, the group stops reading further into `$all`.
    pub max_pending: usize,
    /// Parked events of one group; when reached, the group pauses until some are replayed.
    pub max_parked: usize,
    /// Messages one receive may ask for.
    pub max_receive: usize,
    /// The longest a receive may wait for messages, in milliseconds.
    pub max_wait_ms: u64,
    /// The longest a nack may delay a retry, in milliseconds.
    pub max_retry_delay_ms: u64,
    /// Receipts (or positions) one ack, nack or replay may carry.
    pub max_receipts: usize,
    /// Events of `$all` one receive reads at most while looking for matches, so that a group
    /// with a narrow filter far behind the head answers in bounded time (the next receive
    /// goes on from where this one stopped).
    pub max_scan_events: usize,
    /// State events between two snapshots: the most a load replays.
    pub snapshot_interval_events: u64,
    /// The longest error text kept per event, in characters.
    pub max_error_chars: usize,
    /// How many times a change is tried again when another writer changed the group first.
    pub max_write_attempts: usize,
}

impl Default for GroupLimits {
    fn default() -> Self {
        Self {
            max_groups: 1_000,
            max_in_flight: 10_000,
            max_pending: 10_000,
            max_parked: 10_000,
            max_receive: 1_000,
            max_wait_ms: 30_000,
            max_retry_delay_ms: 12 * 60 * 60 * 1000,
            max_receipts: 1_000,
            max_scan_events: 10_000,
            snapshot_interval_events: 1_000,
            max_error_chars: 512,
            max_write_attempts: 16,
        }
    }
}
