//! The state machine, exercised without a store: a log of `(position, stream)` pairs stands
//! for `$all`, and every decision is applied back as the service would after its append.

use serde_json::json;

use super::*;
use crate::group::config::GroupConfig;
use crate::group::events::Created;

const NOW: u64 = 1_000_000;
const ACK_TIMEOUT_MS: u64 = 30_000;

/// A group, its events applied as they are decided, over an in-memory `$all`.
struct Harness {
    state: Option<GroupState>,
    log: Vec<(Position, String)>,
    limits: GroupLimits,
    applied: Vec<GroupEvent>,
    nonce: u8,
}

impl Harness {
    fn new(config: serde_json::Value) -> Self {
        let (config, _) = GroupConfig::parse(&config, None).expect("valid config");
        let mut harness = Self {
            state: None,
            log: Vec::new(),
            limits: GroupLimits::default(),
            applied: Vec::new(),
            nonce: 0,
        };
        harness.apply(vec![GroupEvent::Created(Created {
            config,
            cursor: 0,
            at_ms: NOW,
        })]);
        harness
    }

    fn per_stream() -> Self {
        Self::new(
            json!({"ordering": "per_stream", "ack_timeout_ms": ACK_TIMEOUT_MS, "max_deliveries": 3}),
        )
    }

    fn unordered() -> Self {
        Self::new(json!({"ack_timeout_ms": ACK_TIMEOUT_MS, "max_deliveries": 3}))
    }

    fn state(&self) -> &GroupState {
        self.state.as_ref().expect("the group exists")
    }

    fn append(&mut self, stream: &str, count: usize) {
        for _ in 0..count {
            let position = Position(self.log.len() as u64);
            self.log.push((position, stream.to_owned()));
        }
    }

    fn apply(&mut self, events: Vec<GroupEvent>) {
        for event in events {
            apply(&mut self.state, &event);
            self.applied.push(event);
        }
    }

    /// A receive at `now`: due messages, then the log from the cursor.
    fn receive(&mut self, now: u64, max: usize) -> Vec<Lease> {
        let limits = self.limits;
        let log = self.log.clone();
        let mut nonce = self.nonce;
        let decision = {
            let state = self.state();
            let mut plan = state.plan_receive(now, max, &limits);
            let from = plan.cursor().0 as usize;
            for (position, stream) in log.iter().skip(from) {
                if !plan.wants_more() {
                    break;
                }
                if plan.offer(*position, stream) == Offer::Stop {
                    break;
                }
            }
            if plan.wants_more() {
                plan.skip_to(Position(log.len() as u64));
            }
            plan.finish(|position, delivery| {
                nonce = nonce.wrapping_add(1);
                Receipt::from_parts(position, delivery, [nonce; 12])
            })
        };
        self.nonce = nonce;
        self.apply(decision.events);
        decision.leases
    }

    fn ack(&mut self, leases: &[Lease]) -> ReceiptMatch {
        let receipts: Vec<String> = leases
            .iter()
            .map(|l| l.receipt.as_str().to_owned())
            .collect();
        let matched = self.state().match_receipts(&receipts);
        let events = self.state().ack(&matched.positions);
        self.apply(events);
        matched
    }

    fn nack(&mut self, leases: &[Lease], action: NackAction, delay_ms: u64, now: u64) {
        let receipts: Vec<String> = leases
            .iter()
            .map(|l| l.receipt.as_str().to_owned())
            .collect();
        let matched = self.state().match_receipts(&receipts);
        assert!(matched.unknown.is_empty(), "{:?}", matched.unknown);
        let events = self.state().nack(
            &matched.positions,
            action,
            delay_ms,
            Some("boom"),
            now,
            &self.limits,
        );
        self.apply(events);
    }

    fn expire(&mut self, now: u64) {
        let events = self.state().expire(now);
        self.apply(events);
    }

    /// The state rebuilt from scratch by applying every event so far.
    fn replayed_from_log(&self) -> Option<GroupState> {
        let mut state = None;
        for event in &self.applied {
            apply(&mut state, event);
        }
        state
    }
}

fn positions(leases: &[Lease]) -> Vec<u64> {
    leases.iter().map(|l| l.position.0).collect()
}

#[test]
fn a_receive_leases_matching_events_in_order_and_moves_the_cursor() {
    let mut group = Harness::unordered();
    group.append("order/1", 3);
    group.append("order/2", 2);
    let leases = group.receive(NOW, 4);
    assert_eq!(positions(&leases), [0, 1, 2, 3]);
    assert!(leases.iter().all(|l| l.delivery == 1));
    assert!(
        leases
            .iter()
            .all(|l| l.expires_at_ms == NOW + ACK_TIMEOUT_MS)
    );
    assert_eq!(group.state().cursor(), Position(4));
    assert_eq!(group.state().in_flight(), 4);
    assert_eq!(positions(&group.receive(NOW, 10)), [4]);
    assert_eq!(group.state().cursor(), Position(5));
    assert!(group.receive(NOW, 10).is_empty(), "nothing more to deliver");
}

#[test]
fn an_empty_receive_decides_no_write() {
    let mut group = Harness::unordered();
    let before = group.applied.len();
    assert!(group.receive(NOW, 10).is_empty());
    assert_eq!(group.applied.len(), before);
}

#[test]
fn an_ack_finishes_a_delivery_once_and_counts_it() {
    let mut group = Harness::unordered();
    group.append("order/1", 2);
    let leases = group.receive(NOW, 10);
    let matched = group.ack(&leases[..1]);
    assert_eq!(matched.positions, [Position(0)]);
    assert_eq!(group.state().delivered(), 1);
    assert_eq!(group.state().in_flight(), 1);
    let again = group.ack(&leases[..1]);
    assert!(again.positions.is_empty());
    assert_eq!(again.unknown, [leases[0].receipt.as_str()]);
    assert_eq!(group.state().delivered(), 1, "an ack counts once");
}

#[test]
fn receipts_that_were_never_issued_are_unknown() {
    let mut group = Harness::unordered();
    group.append("order/1", 1);
    let leases = group.receive(NOW, 10);
    let forged = Receipt::from_parts(Position(0), 1, [99; 12]);
    let matched = group.state().match_receipts(&[
        "garbage".to_owned(),
        forged.as_str().to_owned(),
        leases[0].receipt.as_str().to_owned(),
        leases[0].receipt.as_str().to_owned(),
    ]);
    assert_eq!(matched.positions, [Position(0)], "repeats count once");
    assert_eq!(matched.unknown, ["garbage", forged.as_str()]);
}

#[test]
fn an_expired_lease_is_delivered_again_with_the_next_delivery_number() {
    let mut group = Harness::unordered();
    group.append("order/1", 1);
    let first = group.receive(NOW, 10);
    assert!(
        group.receive(NOW + ACK_TIMEOUT_MS - 1, 10).is_empty(),
        "still leased"
    );
    let later = NOW + ACK_TIMEOUT_MS;
    group.expire(later);
    assert_eq!(group.state().in_flight(), 0);
    assert_eq!(group.state().pending(), 1);
    let second = group.receive(later, 10);
    assert_eq!(positions(&second), [0]);
    assert_eq!(second[0].delivery, 2);
    assert_ne!(second[0].receipt, first[0].receipt);
    // The first attempt's receipt no longer acknowledges anything.
    assert_eq!(group.ack(&first).unknown.len(), 1);
    assert!(group.ack(&second).unknown.is_empty());
}

#[test]
fn a_receipt_holds_until_its_expiry_is_recorded() {
    let mut group = Harness::unordered();
    group.append("order/1", 1);
    let first = group.receive(NOW, 10);
    let receipts = [first[0].receipt.as_str().to_owned()];
    // Past its time but not yet noticed: the work was done, and accepting it saves a
    // redelivery.
    assert_eq!(
        group.state().match_receipts(&receipts).positions,
        [Position(0)]
    );
    group.expire(NOW + ACK_TIMEOUT_MS);
    assert_eq!(group.state().match_receipts(&receipts).unknown, receipts);
}

#[test]
fn an_event_that_keeps_expiring_is_parked_after_max_deliveries() {
    let mut group = Harness::unordered();
    group.append("order/1", 1);
    let mut now = NOW;
    for delivery in 1..=3 {
        let leases = group.receive(now, 10);
        assert_eq!(leases[0].delivery, delivery);
        now += ACK_TIMEOUT_MS;
        group.expire(now);
    }
    assert_eq!(group.state().parked(), 1);
    assert_eq!(group.state().in_flight() + group.state().pending(), 0);
    let parked = group.state().parked_message(Position(0)).expect("parked");
    assert_eq!(parked.deliveries, 3);
    assert!(
        parked
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("max_deliveries = 3")),
        "{parked:?}"
    );
    assert!(group.receive(now, 10).is_empty());
}

#[test]
fn a_nacked_retry_waits_for_its_delay() {
    let mut group = Harness::unordered();
    group.append("order/1", 1);
    let leases = group.receive(NOW, 10);
    group.nack(&leases, NackAction::Retry, 5_000, NOW);
    assert!(group.receive(NOW + 4_999, 10).is_empty(), "not due yet");
    assert_eq!(group.state().next_wake_ms(NOW), Some(NOW + 5_000));
    let again = group.receive(NOW + 5_000, 10);
    assert_eq!(positions(&again), [0]);
    assert_eq!(again[0].delivery, 2);
    assert_eq!(group.state().last_error(), Some("boom"));
    assert_eq!(
        group
            .state()
            .message(Position(0))
            .and_then(|m| m.last_error.as_deref()),
        Some("boom")
    );
}

#[test]
fn a_retry_after_the_last_delivery_parks_the_event() {
    let mut group = Harness::unordered();
    group.append("order/1", 1);
    for _ in 0..2 {
        let leases = group.receive(NOW, 10);
        group.nack(&leases, NackAction::Retry, 0, NOW);
    }
    let third = group.receive(NOW, 10);
    assert_eq!(third[0].delivery, 3);
    group.nack(&third, NackAction::Retry, 0, NOW);
    assert_eq!(group.state().parked(), 1);
    let parked = group.state().parked_message(Position(0)).expect("parked");
    assert_eq!(parked.deliveries, 3);
    assert!(
        parked
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("boom"))
    );
}

#[test]
fn park_and_skip_take_events_out_of_line() {
    let mut group = Harness::unordered();
    group.append("order/1", 2);
    let leases = group.receive(NOW, 10);
    group.nack(&leases[..1], NackAction::Park, 0, NOW);
    group.nack(&leases[1..], NackAction::Skip, 0, NOW);
    assert_eq!(group.state().parked(), 1);
    assert_eq!(group.state().in_flight() + group.state().pending(), 0);
    assert_eq!(group.state().delivered(), 0, "a skip is not a delivery");
    assert!(group.receive(NOW, 10).is_empty());
}

#[test]
fn a_replay_puts_parked_events_back_with_a_fresh_count() {
    let mut group = Harness::unordered();
    group.append("order/1", 3);
    let leases = group.receive(NOW, 10);
    group.nack(&leases, NackAction::Park, 0, NOW);
    assert_eq!(group.state().parked(), 3);
    let decision = group
        .state()
        .replay(Some(&[Position(1), Position(1), Position(7)]));
    assert_eq!(decision.replayed, [Position(1)]);
    assert_eq!(decision.unknown, [Position(7)]);
    group.apply(decision.events);
    let again = group.receive(NOW, 10);
    assert_eq!(positions(&again), [1]);
    assert_eq!(again[0].delivery, 1);
    let all = group.state().replay(None);
    assert_eq!(all.replayed, [Position(0), Position(2)]);
    group.apply(all.events);
    assert_eq!(group.state().parked(), 0);
    assert_eq!(positions(&group.receive(NOW, 10)), [0, 2]);
}

#[test]
fn parked_events_page_in_position_order() {
    let mut group = Harness::unordered();
    group.append("order/1", 5);
    let leases = group.receive(NOW, 10);
    group.nack(&leases, NackAction::Park, 0, NOW);
    let (page, next) = group.state().parked_page(None, 2);
    assert_eq!(page.iter().map(|(p, _)| p.0).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(next, Some(Position(1)));
    let (page, next) = group.state().parked_page(next, 3);
    assert_eq!(page.iter().map(|(p, _)| p.0).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(next, None);
}

#[test]
fn per_stream_holds_later_events_of_a_stream_until_the_first_is_acked() {
    let mut group = Harness::per_stream();
    group.append("order/a", 2); // 0, 1
    group.append("order/b", 1); // 2
    group.append("order/a", 1); // 3
    let first = group.receive(NOW, 10);
    assert_eq!(positions(&first), [0, 2], "one event per stream in flight");
    assert_eq!(
        group.state().cursor(),
        Position(4),
        "held events are behind the cursor"
    );
    assert_eq!(group.state().pending(), 2);
    assert!(group.receive(NOW, 10).is_empty(), "stream a is blocked");
    group.ack(&first[..1]);
    assert_eq!(positions(&group.receive(NOW, 10)), [1]);
}

#[test]
fn per_stream_keeps_a_stream_blocked_while_its_event_waits_for_a_retry() {
    let mut group = Harness::per_stream();
    group.append("order/a", 2);
    group.append("order/b", 1);
    let first = group.receive(NOW, 10);
    assert_eq!(positions(&first), [0, 2]);
    group.nack(&first[..1], NackAction::Retry, 10_000, NOW);
    assert!(
        group.receive(NOW + 1, 10).is_empty(),
        "a waits for its retry"
    );
    let retried = group.receive(NOW + 10_000, 10);
    assert_eq!(
        positions(&retried),
        [0],
        "the retry comes before the later event"
    );
    group.ack(&retried);
    assert_eq!(positions(&group.receive(NOW + 10_000, 10)), [1]);
}

#[test]
fn per_stream_lets_later_events_go_once_the_blocking_one_is_parked() {
    let mut group = Harness::per_stream();
    group.append("order/a", 2);
    let first = group.receive(NOW, 10);
    group.nack(&first, NackAction::Park, 0, NOW);
    assert_eq!(positions(&group.receive(NOW, 10)), [1]);
}

#[test]
fn per_stream_redelivers_an_expired_event_before_its_stream_moves_on() {
    let mut group = Harness::per_stream();
    group.append("order/a", 2);
    group.receive(NOW, 10);
    let later = NOW + ACK_TIMEOUT_MS;
    group.expire(later);
    let again = group.receive(later, 10);
    assert_eq!(positions(&again), [0]);
    assert_eq!(again[0].delivery, 2);
}

#[test]
fn without_ordering_one_stream_may_have_many_events_in_flight() {
    let mut group = Harness::unordered();
    group.append("order/a", 3);
    assert_eq!(positions(&group.receive(NOW, 10)), [0, 1, 2]);
}

#[test]
fn the_in_flight_limit_bounds_a_group() {
    let mut group = Harness::unordered();
    group.limits.max_in_flight = 2;
    group.append("order/a", 5);
    assert_eq!(positions(&group.receive(NOW, 10)), [0, 1]);
    assert_eq!(
        group.state().cursor(),
        Position(2),
        "the cursor stops at the refused event"
    );
    assert!(group.receive(NOW, 10).is_empty());
}

#[test]
fn the_pending_limit_stops_the_cursor_before_an_event_it_cannot_hold() {
    let mut group = Harness::per_stream();
    group.limits.max_pending = 2;
    group.append("order/a", 5); // 0 leased, 1 and 2 held, 3 refused
    group.append("order/b", 1); // 5: not reached
    assert_eq!(positions(&group.receive(NOW, 10)), [0]);
    assert_eq!(group.state().pending(), 2);
    assert_eq!(group.state().cursor(), Position(3));
}

#[test]
fn a_paused_group_delivers_nothing_until_resumed() {
    let mut group = Harness::unordered();
    group.append("order/a", 1);
    let pause = group.state().pause("endpoint answered 410", &group.limits);
    group.apply(pause.into_iter().collect());
    assert!(group.state().pause("again", &group.limits).is_none());
    assert!(group.receive(NOW, 10).is_empty());
    assert_eq!(group.state().last_error(), Some("endpoint answered 410"));
    let resume = group.state().resume();
    group.apply(resume.into_iter().collect());
    assert!(group.state().resume().is_none());
    assert_eq!(positions(&group.receive(NOW, 10)), [0]);
}

#[test]
fn a_full_parked_list_pauses_the_group() {
    let mut group = Harness::unordered();
    group.limits.max_parked = 2;
    group.append("order/a", 3);
    let leases = group.receive(NOW, 2);
    group.nack(&leases, NackAction::Park, 0, NOW);
    assert!(group.state().pause_reason(&group.limits).is_some());
    assert!(group.receive(NOW, 10).is_empty());
    group.apply(group.state().replay(Some(&[Position(0)])).events);
    assert!(group.state().pause_reason(&group.limits).is_none());
    assert_eq!(positions(&group.receive(NOW, 10)), [0, 2]);
}

#[test]
fn a_forgotten_redelivery_is_skipped() {
    let mut group = Harness::unordered();
    group.append("order/a", 1);
    let leases = group.receive(NOW, 10);
    group.nack(&leases, NackAction::Retry, 0, NOW);
    let decision = {
        let state = group.state();
        let mut plan = state.plan_receive(NOW, 10, &group.limits);
        assert_eq!(plan.redeliveries(), [Position(0)]);
        plan.forget(Position(0));
        plan.finish(|p, d| Receipt::from_parts(p, d, [1; 12]))
    };
    assert!(decision.leases.is_empty());
    group.apply(decision.events);
    assert_eq!(group.state().pending(), 0);
}

#[test]
fn skipping_never_passes_an_event_the_receive_refused() {
    let group = {
        let mut group = Harness::unordered();
        group.append("order/a", 3);
        group
    };
    let state = group.state();
    let mut plan = state.plan_receive(NOW, 1, &group.limits);
    assert_eq!(plan.offer(Position(0), "order/a"), Offer::Leased);
    assert!(!plan.wants_more());
    assert_eq!(plan.offer(Position(1), "order/a"), Offer::Stop);
    plan.skip_to(Position(3));
    assert_eq!(plan.cursor(), Position(1));
}

#[test]
fn large_receives_are_recorded_in_bounded_events() {
    let mut group = Harness::unordered();
    group.append("order/a", 1_000);
    let leases = group.receive(NOW, 1_000);
    assert_eq!(leases.len(), 1_000);
    let leased_events = group
        .applied
        .iter()
        .filter(|e| matches!(e, GroupEvent::Leased(_)))
        .count();
    assert_eq!(leased_events, 4);
    assert_eq!(group.state().in_flight(), 1_000);
    assert_eq!(group.state().cursor(), Position(1_000));
}

#[test]
fn a_snapshot_restores_the_same_state() {
    let mut group = Harness::per_stream();
    group.append("order/a", 3);
    group.append("order/b", 3);
    group.append("order/c", 3);
    let leases = group.receive(NOW, 10);
    group.nack(&leases[..1], NackAction::Retry, 100, NOW);
    group.nack(&leases[1..2], NackAction::Park, 0, NOW);
    let pause = group.state().pause("maintenance", &group.limits);
    group.apply(pause.into_iter().collect());
    let original = group.state().clone();
    for part_bytes in [64, 1 << 20] {
        let parts = original.snapshot(part_bytes);
        if part_bytes == 64 {
            assert!(parts.len() > 2, "small parts split the snapshot");
        } else {
            assert_eq!(parts.len(), 1);
        }
        assert!(parts[0].is_reset());
        let mut restored = None;
        for part in &parts {
            apply(&mut restored, part);
        }
        assert_eq!(restored.as_ref(), Some(&original), "part size {part_bytes}");
    }
}

#[test]
fn applying_the_recorded_events_again_gives_the_same_state() {
    let mut group = Harness::per_stream();
    group.append("order/a", 4);
    group.append("order/b", 4);
    let leases = group.receive(NOW, 3);
    group.ack(&leases[..1]);
    group.nack(&leases[1..], NackAction::Retry, 0, NOW);
    group.receive(NOW, 3);
    group.expire(NOW + ACK_TIMEOUT_MS);
    assert_eq!(group.replayed_from_log().as_ref(), Some(group.state()));
}

#[test]
fn delete_and_create_again_start_afresh() {
    let mut group = Harness::unordered();
    group.append("order/a", 2);
    group.receive(NOW, 10);
    group.apply(vec![GroupEvent::Deleted(crate::group::events::Deleted {
        at_ms: NOW,
    })]);
    assert!(group.state.is_none());
    let config = GroupConfig::parse(&json!({}), None).expect("valid").0;
    group.apply(vec![GroupEvent::Created(Created {
        config,
        cursor: 2,
        at_ms: NOW,
    })]);
    assert_eq!(group.state().in_flight(), 0);
    assert_eq!(group.state().cursor(), Position(2));
}

/// A small deterministic generator, so a failing sequence can be replayed from its seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random interleavings of appends, receives by competing consumers, acks, nacks and lease
/// expiries: with `per_stream`, a stream never has two events in flight, and each stream's
/// events are first delivered in revision (position) order; and every event ends delivered,
/// skipped or parked — none is lost.
#[test]
fn per_stream_ordering_holds_under_random_interleavings() {
    for seed in 1..=40_u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut group = Harness::per_stream();
        group.limits.max_pending = 8;
        let streams = ["s/0", "s/1", "s/2", "s/3"];
        let mut now = NOW;
        let mut in_hand: Vec<Lease> = Vec::new();
        let mut acked: Vec<u64> = Vec::new();
        let mut first_delivered: Vec<u64> = Vec::new();
        for _ in 0..300 {
            match rng.below(6) {
                0 => {
                    let stream = streams[rng.below(4) as usize];
                    group.append(stream, 1 + rng.below(3) as usize);
                }
                1 | 2 => {
                    let leases = group.receive(now, 1 + rng.below(4) as usize);
                    for lease in &leases {
                        if lease.delivery == 1 {
                            first_delivered.push(lease.position.0);
                        }
                    }
                    in_hand.extend(leases);
                }
                3 if !in_hand.is_empty() => {
                    let lease = in_hand.swap_remove(rng.below(in_hand.len() as u64) as usize);
                    if group.ack(std::slice::from_ref(&lease)).unknown.is_empty() {
                        acked.push(lease.position.0);
                    }
                }
                4 if !in_hand.is_empty() => {
                    let lease = in_hand.swap_remove(rng.below(in_hand.len() as u64) as usize);
                    let receipts = [lease.receipt.as_str().to_owned()];
                    let matched = group.state().match_receipts(&receipts);
                    let events = group.state().nack(
                        &matched.positions,
                        NackAction::Retry,
                        rng.below(3) * 1_000,
                        None,
                        now,
                        &group.limits,
                    );
                    group.apply(events);
                }
                _ => {
                    now += rng.below(ACK_TIMEOUT_MS / 2);
                    group.expire(now);
                }
            }
            check_one_in_flight_per_stream(group.state(), &group.log);
        }
        // Every stream's events were first delivered in position order.
        for stream in streams {
            let order: Vec<u64> = first_delivered
                .iter()
                .copied()
                .filter(|p| group.log[*p as usize].1 == stream)
                .collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(order, sorted, "seed {seed}: {stream} out of order");
        }
        // Drain: nothing is lost.
        for _ in 0..10_000 {
            now += ACK_TIMEOUT_MS;
            group.expire(now);
            let leases = group.receive(now, 100);
            if leases.is_empty() && group.state().cursor().0 as usize == group.log.len() {
                break;
            }
            for lease in &leases {
                if group.ack(std::slice::from_ref(lease)).unknown.is_empty() {
                    acked.push(lease.position.0);
                }
            }
        }
        let state = group.state();
        let parked: Vec<u64> = state
            .parked_page(None, 10_000)
            .0
            .iter()
            .map(|(p, _)| p.0)
            .collect();
        let mut done: Vec<u64> = acked.iter().chain(parked.iter()).copied().collect();
        done.sort_unstable();
        done.dedup();
        let all: Vec<u64> = (0..group.log.len() as u64).collect();
        assert_eq!(done, all, "seed {seed}: every event acknowledged or parked");
        assert_eq!(state.in_flight() + state.pending(), 0);
    }
}

fn check_one_in_flight_per_stream(state: &GroupState, log: &[(Position, String)]) {
    let mut in_flight = HashSet::new();
    for position in 0..log.len() as u64 {
        if let Some(message) = state.message(Position(position))
            && matches!(message.status, MessageStatus::InFlight { .. })
        {
            assert!(
                in_flight.insert(message.stream.clone()),
                "two events of {} in flight",
                message.stream
            );
            // Nothing earlier of the stream is still waiting.
            for earlier in 0..position {
                if log[earlier as usize].1 == message.stream {
                    assert!(
                        state
                            .message(Position(earlier))
                            .is_none_or(|m| matches!(m.status, MessageStatus::InFlight { .. })),
                        "{} has an earlier event waiting",
                        message.stream
                    );
                }
            }
        }
    }
}
