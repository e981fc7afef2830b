//! The service over the real embedded engine: durability across a reopen, optimistic writes
//! from two projections of one group, long polls, snapshots.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_core::{
    AppendRequest, EventType, ExpectedRevision, JsonText, ProposedEvent, Store, StreamName,
};
use runnel_embedded::{EmbeddedStore, EngineConfig};
use serde_json::json;
use tokio::sync::watch;

use super::*;

struct Fixture {
    dir: tempfile::TempDir,
    store: Option<Arc<dyn Store>>,
    shutdown: watch::Sender<bool>,
}

fn open(dir: &std::path::Path) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(dir, engine()).expect("store opens"))
}

fn engine() -> EngineConfig {
    EngineConfig {
        segment_bytes: 8 * 1024 * 1024,
        ..EngineConfig::default()
    }
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path());
        Self {
            dir,
            store: Some(store),
            shutdown: watch::Sender::new(false),
        }
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.store.as_ref().expect("the store is open")
    }

    fn service(&self, limits: GroupLimits) -> GroupService {
        GroupService::new(Arc::clone(self.store()), limits, self.shutdown.subscribe())
    }

    /// Closes the store and opens it again, as a restart would.
    async fn reopen(&mut self) {
        self.store().close().await.expect("store closes");
        // The engine releases its files when the last handle goes.
        self.store = None;
        self.store = Some(open(self.dir.path()));
    }

    async fn append(&self, stream: &str, event_type: &str, count: usize) {
        let events = (0..count)
            .map(|n| {
                ProposedEvent::json(
                    EventType::parse(event_type).expect("type"),
                    JsonText::from_value(&json!({"n": n})),
                )
            })
            .collect();
        self.store()
            .append(AppendRequest {
                stream: StreamName::parse(stream).expect("stream"),
                expected: ExpectedRevision::Any,
                events,
            })
            .await
            .expect("append");
    }
}

fn name(text: &str) -> GroupName {
    GroupName::parse(text).expect("valid name")
}

fn receipts(messages: &[ReceivedMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.receipt.as_str().to_owned())
        .collect()
}

const NO_WAIT: Duration = Duration::ZERO;

#[tokio::test]
async fn put_creates_then_updates_and_delete_removes() {
    let fixture = Fixture::new();
    let groups = fixture.service(GroupLimits::default());
    let orders = name("orders");
    let created = groups
        .put(&orders, &json!({"start": "beginning"}))
        .await
        .expect("created");
    assert!(created.created);
    let same = groups
        .put(&orders, &json!({"start": "beginning"}))
        .await
        .expect("unchanged");
    assert!(!same.created);
    let updated = groups
        .put(&orders, &json!({"max_deliveries": 3}))
        .await
        .expect("updated");
    assert!(!updated.created);
    assert_eq!(updated.view.config.max_deliveries, 3);
    let (list, next) = groups.list(None, 10).await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(next, None);
    groups.delete(&orders).await.expect("deleted");
    assert!(matches!(
        groups.get(&orders).await,
        Err(GroupError::NotFound { .. })
    ));
    assert!(groups.list(None, 10).await.expect("list").0.is_empty());
    let again = groups
        .put(&orders, &json!({}))
        .await
        .expect("created again");
    assert!(again.created);
    assert_eq!(again.view.status.in_flight, 0);
}

#[tokio::test]
async fn an_acknowledged_event_is_not_delivered_again_after_a_restart() {
    let mut fixture = Fixture::new();
    let orders = name("orders");
    {
        let groups = fixture.service(GroupLimits::default());
        groups
            .put(
                &orders,
                &json!({"start": "beginning", "ack_timeout_ms": 100}),
            )
            .await
            .expect("created");
        fixture.append("order/o-1", "OrderPlaced", 4).await;
        let messages = groups
            .receive(&orders, ConsumerKind::Pull, 10, NO_WAIT)
            .await
            .expect("receive");
        assert_eq!(messages.len(), 4);
        let acked = groups
            .ack(&orders, &receipts(&messages[..2]))
            .await
            .expect("ack");
        assert_eq!(acked.acked, 2);
    }
    fixture.reopen().await;
    let groups = fixture.service(GroupLimits::default());
    let view = groups.get(&orders).await.expect("exists");
    assert_eq!(view.status.delivered, 2);
    assert_eq!(view.status.in_flight, 2);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let again = groups
        .receive(&orders, ConsumerKind::Pull, 10, NO_WAIT)
        .await
        .expect("receive");
    let revisions: Vec<u64> = again.iter().map(|m| m.event.revision.0).collect();
    assert_eq!(
        revisions,
        [2, 3],
        "only the unacknowledged events come back"
    );
    assert!(again.iter().all(|m| m.delivery == 2));
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_an_event_arrives() {
    let fixture = Fixture::new();
    let groups = fixture.service(GroupLimits::default());
    let orders = name("orders");
    groups.put(&orders, &json!({})).await.expect("created");
    let waiting = {
        let groups = groups.clone();
        let orders = orders.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let messages = groups
                .receive(&orders, ConsumerKind::Pull, 10, Duration::from_secs(10))
                .await
                .expect("receive");
            (messages, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    fixture.append("order/o-1", "OrderPlaced", 1).await;
    let (messages, waited) = waiting.await.expect("joined");
    assert_eq!(messages.len(), 1);
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
}

#[tokio::test]
async fn a_long_poll_ends_at_shutdown() {
    let fixture = Fixture::new();
    let groups = fixture.service(GroupLimits::default());
    let orders = name("orders");
    groups.put(&orders, &json!({})).await.expect("created");
    let waiting = {
        let groups = groups.clone();
        tokio::spawn(async move {
            groups
                .receive(&orders, ConsumerKind::Pull, 10, Duration::from_secs(30))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    fixture.shutdown.send_replace(true);
    let messages = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("ends promptly")
        .expect("joined")
        .expect("no error");
    assert!(messages.is_empty());
}

#[tokio::test]
async fn two_projections_of_one_group_never_lease_an_event_twice() {
    let fixture = Fixture::new();
    // Two services over one store stand for two nodes over one database: each has its own
    // projection, and only the optimistic appends keep them apart.
    let node_a = fixture.service(GroupLimits::default());
    let node_b = fixture.service(GroupLimits::default());
    let orders = name("orders");
    node_a
        .put(&orders, &json!({"start": "beginning"}))
        .await
        .expect("created");
    for stream in 0..10 {
        fixture
            .append(&format!("order/o-{stream}"), "OrderPlaced", 10)
            .await;
    }
    let consume = |groups: GroupService| {
        let orders = orders.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let messages = groups
                    .receive(&orders, ConsumerKind::Pull, 7, Duration::from_millis(300))
                    .await
                    .expect("receive");
                if messages.is_empty() {
                    return seen;
                }
                // Some work, so that the two consumers interleave.
                tokio::time::sleep(Duration::from_millis(2)).await;
                let outcome = groups
                    .ack(&orders, &receipts(&messages))
                    .await
                    .expect("ack");
                assert!(outcome.unknown.is_empty(), "{outcome:?}");
                seen.extend(messages.iter().map(|m| m.event.position.0));
            }
        })
    };
    let a = consume(node_a.clone());
    let b = consume(node_b.clone());
    let mut all = a.await.expect("a");
    let from_b = b.await.expect("b");
    all.extend(from_b);
    let unique: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "an event was delivered twice");
    assert_eq!(all.len(), 100);
    let view = node_b.get(&orders).await.expect("exists");
    assert_eq!(view.status.delivered, 100);
}

/// Node B's projection is stale (it read the group before A leased), and only A's state
/// events say that the event is due again: B's long poll must read them when they wake it,
/// not wait for the lease it believes in to run out (a minute, here).
#[tokio::test]
async fn a_long_poll_on_one_node_delivers_a_retry_scheduled_on_another() {
    let fixture = Fixture::new();
    let node_a = fixture.service(GroupLimits::default());
    let node_b = fixture.service(GroupLimits::default());
    let orders = name("orders");
    node_a
        .put(
            &orders,
            &json!({"start": "beginning", "ack_timeout_ms": 60_000}),
        )
        .await
        .expect("created");
    fixture.append("order/o-1", "OrderPlaced", 1).await;
    node_b.get(&orders).await.expect("B reads the group");
    let leased = node_a
        .receive(&orders, ConsumerKind::Pull, 1, Duration::ZERO)
        .await
        .expect("receive on A");
    assert_eq!(leased.len(), 1);

    let waiting = {
        let node_b = node_b.clone();
        let orders = orders.clone();
        tokio::spawn(async move {
            node_b
                .receive(&orders, ConsumerKind::Pull, 1, Duration::from_secs(10))
                .await
        })
    };
    // B's poll is waiting behind A's lease when A gives the event back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outcome = node_a
        .nack(&orders, &receipts(&leased), NackAction::Retry, 0, None)
        .await
        .expect("nack on A");
    assert_eq!(outcome.nacked, 1);
    let messages = waiting.await.expect("joined").expect("receive on B");
    assert_eq!(messages.len(), 1, "B's poll ended without the retry");
    assert_eq!(messages[0].delivery, 2);
    assert_eq!(messages[0].event.position, leased[0].event.position);
}

#[tokio::test]
async fn a_group_over_everything_never_sees_system_streams() {
    let fixture = Fixture::new();
    let groups = fixture.service(GroupLimits::default());
    let everything = name("everything");
    groups
        .put(&everything, &json!({"start": "beginning"}))
        .await
        .expect("created");
    fixture.append("order/o-1", "OrderPlaced", 1).await;
    let messages = groups
        .receive(&everything, ConsumerKind::Pull, 10, NO_WAIT)
        .await
        .expect("receive");
    assert_eq!(messages.len(), 1);
    groups
        .ack(&everything, &receipts(&messages))
        .await
        .expect("ack");
    // The group's own writes are in `$all` now; none of them is delivered.
    let more = groups
        .receive(&everything, ConsumerKind::Pull, 10, NO_WAIT)
        .await
        .expect("receive");
    assert!(more.is_empty(), "{more:?}");
}

#[tokio::test]
async fn loading_reads_back_only_to_the_last_snapshot_and_gives_the_same_state() {
    let mut fixture = Fixture::new();
    let limits = GroupLimits {
        snapshot_interval_events: 5,
        ..GroupLimits::default()
    };
    let orders = name("orders");
    let before = {
        let groups = fixture.service(limits);
        groups
            .put(
                &orders,
                &json!({"start": "beginning", "ordering": "per_stream"}),
            )
            .await
            .expect("created");
        for round in 0..6 {
            fixture
                .append(&format!("order/o-{}", round % 3), "OrderPlaced", 2)
                .await;
            let messages = groups
                .receive(&orders, ConsumerKind::Pull, 2, NO_WAIT)
                .await
                .expect("receive");
            if let Some(first) = messages.first() {
                groups
                    .ack(&orders, &[first.receipt.as_str().to_owned()])
                    .await
                    .expect("ack");
            }
        }
        groups.get(&orders).await.expect("exists")
    };
    let stream = orders.state_stream();
    let events = fixture
        .store()
        .read_stream(&stream, None, runnel_core::Direction::Forward, 1000)
        .await
        .expect("read");
    assert!(
        events
            .events
            .iter()
            .any(|e| e.event_type.as_str() == "Snapshot"),
        "a snapshot was written"
    );
    fixture.reopen().await;
    let groups = fixture.service(limits);
    let after = groups.get(&orders).await.expect("exists");
    assert_eq!(after.status.in_flight, before.status.in_flight);
    assert_eq!(after.status.pending, before.status.pending);
    assert_eq!(after.status.delivered, before.status.delivered);
    assert_eq!(after.config, before.config);
}

#[tokio::test]
async fn a_webhook_group_cannot_be_received_from_by_pull() {
    let fixture = Fixture::new();
    let groups = fixture.service(GroupLimits::default());
    let hooks = name("hooks");
    let created = groups
        .put(
            &hooks,
            &json!({"delivery": {"mode": "webhook", "url": "http://127.0.0.1:9/x"}}),
        )
        .await
        .expect("created");
    assert!(
        created
            .generated_secret
            .as_deref()
            .is_some_and(|s| s.starts_with("whsec_"))
    );
    assert!(matches!(
        groups.receive(&hooks, ConsumerKind::Pull, 1, NO_WAIT).await,
        Err(GroupError::WrongDeliveryMode { .. })
    ));
    assert!(
        groups
            .receive(&hooks, ConsumerKind::Webhook, 1, NO_WAIT)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn the_group_limit_refuses_one_more() {
    let fixture = Fixture::new();
    let groups = fixture.service(GroupLimits {
        max_groups: 2,
        ..GroupLimits::default()
    });
    for n in 0..2 {
        groups
            .put(&name(&format!("g{n}")), &json!({}))
            .await
            .expect("within the limit");
    }
    assert!(matches!(
        groups.put(&name("g2"), &json!({})).await,
        Err(GroupError::TooManyGroups { max: 2 })
    ));
    groups.delete(&name("g0")).await.expect("deleted");
    groups
        .put(&name("g2"), &json!({}))
        .await
        .expect("room again");
}

#[tokio::test]
async fn a_group_that_keeps_up_shows_no_lag() {
    let fixture = Fixture::new();
    let groups = fixture.service(GroupLimits::default());
    let orders = name("orders");
    groups
        .put(&orders, &json!({"start": "beginning"}))
        .await
        .expect("created");
    fixture.append("order/o-1", "OrderPlaced", 2).await;
    let messages = groups
        .receive(&orders, ConsumerKind::Pull, 10, NO_WAIT)
        .await
        .expect("receive");
    groups
        .ack(&orders, &receipts(&messages))
        .await
        .expect("ack");
    let status = groups.get(&orders).await.expect("exists").status;
    assert_eq!(status.lag, 0, "{status:?}");
    // Events of other streams that nobody scanned yet do count.
    fixture.append("order/o-2", "OrderPlaced", 1).await;
    assert_eq!(groups.get(&orders).await.expect("exists").status.lag, 1);
}
