//! Payloads come back exactly as they went in: binary bytes, JSON text with its original
//! spelling, metadata, types and ids.

use runnel_core::{
    AllFilter, Direction, ExpectedRevision, Payload, Position, ProposedEvent, RecordedEvent,
};

use super::support::{
    all_events, append, event_type, json, read_all_fully, read_stream_fully, stream,
};
use crate::Fixture;

fn binary(content_type: &str, bytes: Vec<u8>, metadata: Option<&str>) -> ProposedEvent {
    ProposedEvent {
        id: None,
        event_type: event_type("com.acme.blob:stored-v1"),
        data: Payload::Binary {
            content_type: content_type.to_owned(),
            bytes,
        },
        metadata: metadata.map(json),
    }
}

/// Bytes that no text encoding would survive: every byte value, then a pseudo-random run.
fn awkward_bytes(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..=255u8)
        .chain((0..len).map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        }))
        .collect()
}

fn assert_same_content(read: &[RecordedEvent], sent: &[ProposedEvent], how: &str) {
    assert_eq!(read.len(), sent.len(), "{how}: every event comes back");
    for (n, (got, want)) in read.iter().zip(sent).enumerate() {
        assert_eq!(got.event_type, want.event_type, "{how}: event {n}'s type");
        assert!(
            got.data == want.data,
            "{how}: event {n}'s data differs: sent {:?}, got {:?}",
            want.data,
            got.data
        );
        assert_eq!(got.metadata, want.metadata, "{how}: event {n}'s metadata");
        if let Some(id) = want.id {
            assert_eq!(got.id, id, "{how}: event {n}'s id");
        }
    }
}

pub async fn binary_payloads_and_metadata_round_trip_byte_for_byte(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let blobs = stream("blob/b-1");
    let sent = vec![
        binary(
            "application/octet-stream",
            awkward_bytes(0),
            Some(r#"{ "trace" : "ü\u00fc",  "n":1 }"#),
        ),
        binary(
            "image/png",
            vec![0x89, b'P', b'N', b'G', 0, 0, 0xff, 0xfe],
            None,
        ),
        binary(
            "text/plain; charset=utf-8",
            b"\r\n\0 \"{not json".to_vec(),
            Some("[]"),
        ),
        binary(
            "application/x-protobuf",
            awkward_bytes(64 * 1024),
            Some("0"),
        ),
        binary("application/octet-stream", Vec::new(), None),
    ];
    append(store, &blobs, ExpectedRevision::Any, sent.clone()).await;

    assert_same_content(
        &read_stream_fully(store, &blobs).await,
        &sent,
        "read_stream",
    );
    assert_same_content(&all_events(store).await, &sent, "read_all");
}

pub async fn json_data_text_is_preserved_byte_for_byte(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let docs = stream("doc/d-1");
    let texts = [
        r#"{ "b" : 1,"a":[1, 2.50, 1e3, -0.0] }"#,
        r#"{"big":123456789012345678901234567890,"tiny":1e-400}"#,
        r#"{"dup":1,"dup":2}"#,
        r#""ü\u00fc\n\"quoted\"""#,
        "[\n\t{}\n]",
        "null",
        "42",
        "true",
        r#"{"deep":[[[[[[[[[[[[[[[[{"x":"y"}]]]]]]]]]]]]]]]]}"#,
        r#"{"emoji":"🚚","escaped":"\ud83d\ude9a","slash":"a\/b"}"#,
    ];
    let sent: Vec<ProposedEvent> = texts
        .iter()
        .enumerate()
        .map(|(n, text)| ProposedEvent {
            id: None,
            event_type: event_type("DocumentSaved"),
            data: Payload::Json(json(text)),
            metadata: (n % 2 == 0).then(|| json(r#"{"correlation_id" : "c-9" ,"n":[ ]}"#)),
        })
        .collect();
    append(store, &docs, ExpectedRevision::Any, sent.clone()).await;

    let read = read_stream_fully(store, &docs).await;
    assert_same_content(&read, &sent, "read_stream");
    for (got, text) in read.iter().zip(texts) {
        match &got.data {
            Payload::Json(stored) => assert_eq!(stored.as_str(), text, "JSON text byte for byte"),
            other => panic!("JSON data came back as {other:?}"),
        }
    }
    assert_same_content(&all_events(store).await, &sent, "read_all");
}

pub async fn events_read_from_a_stream_and_from_all_are_identical(fixture: Fixture) {
    let store = fixture.store.as_ref();
    let order = stream("order/o-1");
    let user = stream("user/u-1");
    for round in 0..4u8 {
        append(
            store,
            &order,
            ExpectedRevision::Any,
            vec![super::support::event(
                "OrderTouched",
                &format!("{{\"round\":{round}}}"),
            )],
        )
        .await;
        append(
            store,
            &user,
            ExpectedRevision::Any,
            vec![binary(
                "application/octet-stream",
                vec![round; 3],
                Some("{}"),
            )],
        )
        .await;
    }
    let forward = read_stream_fully(store, &order).await;
    let filter = AllFilter {
        streams: vec![order.clone()],
        ..AllFilter::default()
    };
    let from_all = read_all_fully(store, Position(0), &filter, 100).await;
    assert_eq!(
        forward, from_all,
        "the same events, with the same ids, positions and times, from both reads"
    );
    let mut backward = store
        .read_stream(&order, None, Direction::Backward, 100)
        .await
        .unwrap_or_else(|error| panic!("read backward: {error}"))
        .events;
    backward.reverse();
    assert_eq!(forward, backward, "backward reads return the same events");
    let all = all_events(store).await;
    assert_eq!(all.len(), 8);
    for event in &all {
        let again = store
            .read_stream(&event.stream, Some(event.revision), Direction::Forward, 1)
            .await
            .unwrap_or_else(|error| panic!("read {} at {}: {error}", event.stream, event.revision))
            .events;
        assert_eq!(
            again,
            vec![event.clone()],
            "the event at its stream and revision"
        );
    }
}
