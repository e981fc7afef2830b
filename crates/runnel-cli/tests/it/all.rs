//! `GET /events`: the store-wide log in position order, filtered and paged.

use serde_json::{Value, json};

use crate::harness::TestServer;

async fn positions(server: &TestServer, query: &str) -> (Vec<(u64, String, String)>, Value) {
    let (status, page) = server.get_json(&format!("/events{query}")).await;
    assert_eq!(status, 200, "{query}: {page}");
    let events = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["position"].as_u64().expect("position"),
                format!(
                    "{}/{}",
                    e["stream_type"].as_str().expect("type"),
                    e["stream_id"].as_str().expect("id")
                ),
                e["type"].as_str().expect("event type").to_owned(),
            )
        })
        .collect();
    (events, page["next"].clone())
}

#[tokio::test]
async fn all_events_are_read_in_position_order_page_by_page() {
    let server = TestServer::start().await;
    server.append_n("order/o-1", "OrderPlaced", 2).await;
    server.append_n("cart/c-1", "ItemAdded", 3).await;
    server.append_n("order/o-2", "OrderPaid", 2).await;

    let mut seen = Vec::new();
    let mut query = "?limit=3".to_owned();
    loop {
        let (events, next) = positions(&server, &query).await;
        seen.extend(events.into_iter().map(|(p, _, _)| p));
        match next.as_u64() {
            Some(next) => query = format!("?limit=3&from={next}"),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).collect::<Vec<_>>());
    let (events, next) = positions(&server, "?from=5").await;
    assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [5, 6]);
    assert_eq!(next, Value::Null);
    let (events, _) = positions(&server, "?from=100").await;
    assert!(events.is_empty());
}

#[tokio::test]
async fn filters_match_any_value_of_each_given_filter() {
    let server = TestServer::start().await;
    server.append_n("order/o-1", "OrderPlaced", 2).await;
    server.append_n("cart/c-1", "ItemAdded", 2).await;
    server.append_n("order/o-2", "OrderPaid", 2).await;
    server.append_n("user/u-1", "OrderPlaced", 1).await;

    let (events, _) = positions(&server, "?stream_type=order").await;
    assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [0, 1, 4, 5]);
    let (events, _) = positions(&server, "?stream_type=cart&stream_type=user").await;
    assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [2, 3, 6]);
    let (events, _) = positions(&server, "?event_type=OrderPlaced").await;
    assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [0, 1, 6]);
    let (events, _) = positions(&server, "?stream_type=order&event_type=OrderPaid").await;
    assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [4, 5]);
    let (events, _) = positions(&server, "?stream=order/o-2&stream=cart/c-1").await;
    assert!(
        events
            .iter()
            .all(|e| e.1 == "order/o-2" || e.1 == "cart/c-1"),
        "{events:?}"
    );
    assert_eq!(events.len(), 4);

    // A filtered reader follows `next` and never sees an event twice.
    let mut seen = Vec::new();
    let mut query = "?stream_type=order&limit=1".to_owned();
    loop {
        let (events, next) = positions(&server, &query).await;
        seen.extend(events.into_iter().map(|e| e.0));
        match next.as_u64() {
            Some(next) => query = format!("?stream_type=order&limit=1&from={next}"),
            None => break,
        }
        assert!(seen.len() <= 4, "{seen:?}");
    }
    assert_eq!(seen, [0, 1, 4, 5]);
    let (status, empty) = server.get_json("/events?event_type=Nothing").await;
    assert_eq!((status, &empty["events"]), (200, &json!([])));
}
