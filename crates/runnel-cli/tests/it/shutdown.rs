//! SIGTERM: stop accepting, finish in-flight appends, close subscriptions, exit 0; and a
//! restart keeps everything that was acknowledged.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Sse, TestServer};

#[derive(Debug)]
struct Acknowledged {
    stream: String,
    revision: u64,
    id: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_appends_in_flight_never_loses_an_acknowledged_event() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let mut server = TestServer::start_in(&data_dir, &[]).await;

    let writers: Vec<_> = (0..8)
        .map(|w| {
            let http = server.http.clone();
            let base = server.base.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let stream = format!("load/w-{w}");
                loop {
                    let id = uuid::Uuid::now_v7().to_string();
                    let body = json!({"events": [{"id": id, "type": "Tick", "data": {"w": w}}]});
                    let sent = http
                        .post(format!("{base}/streams/{stream}/events"))
                        .header("content-type", "application/json")
                        .body(body.to_string())
                        .send()
                        .await;
                    let Ok(response) = sent else { break };
                    if response.status() != 200 {
                        break;
                    }
                    let Ok(answer) = response.json::<Value>().await else {
                        break;
                    };
                    let revision = answer["first_revision"].as_u64().expect("revision");
                    acknowledged.push(Acknowledged {
                        stream: stream.clone(),
                        revision,
                        id,
                    });
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = tokio::task::block_in_place(|| server.terminate(Duration::from_secs(20)));
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer"));
    }
    eprintln!("{} appends acknowledged", acknowledged.len());
    assert!(
        acknowledged.len() > 8,
        "too few appends ran: {}",
        acknowledged.len()
    );
    drop(server);

    let restarted = TestServer::start_in(&data_dir, &[]).await;
    for ack in &acknowledged {
        let (status, page) = restarted
            .get_json(&format!(
                "/streams/{}/events?from={}&limit=1",
                ack.stream, ack.revision
            ))
            .await;
        assert_eq!(status, 200, "{ack:?}: {page}");
        assert_eq!(
            page["events"][0]["id"],
            ack.id.as_str(),
            "{ack:?} was acknowledged but is gone"
        );
    }
    // The restarted server continues the log where it ended.
    let (_, head) = restarted.get_json("/events?from=0&limit=1000").await;
    let stored = head["events"].as_array().expect("events").len() as u64;
    let answer = restarted.append_n("after/a-1", "E", 1).await;
    assert!(answer["first_position"].as_u64().expect("position") >= stored.min(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_live_subscriptions_and_exits_zero() {
    let mut server = TestServer::start().await;
    server.append_n("order/o-1", "E", 2).await;
    let mut reader = server.subscribe("?from=0", None).await;
    assert_eq!(reader.events(2, Duration::from_secs(10)).await.len(), 2);
    let started = std::time::Instant::now();
    let status = tokio::task::block_in_place(|| server.terminate(Duration::from_secs(10)));
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    let mut closing = None;
    while let Some(message) = reader.next(Duration::from_secs(5)).await {
        if let Sse::Comment(text) = message {
            closing = Some(text);
        }
    }
    let closing = closing.expect("a closing comment");
    assert!(closing.contains("shutting down"), "{closing}");
}

#[tokio::test]
async fn a_restarted_server_serves_what_it_stored() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let mut server = TestServer::start_in(&data_dir, &[]).await;
    server.append_n("order/o-1", "E", 3).await;
    let (_, before) = server.get_json("/streams/order/o-1/events").await;
    assert_eq!(server.terminate(Duration::from_secs(10)).code(), Some(0));
    drop(server);
    let server = TestServer::start_in(&data_dir, &[]).await;
    let (_, after) = server.get_json("/streams/order/o-1/events").await;
    assert_eq!(before, after);
    let answer = server
        .append(
            "order/o-1",
            json!({"expected_revision": 2, "events": [{"type": "E", "data": 3}]}),
        )
        .await;
    assert_eq!(answer["first_position"], 3);
}
