//! The event every benchmark writes: an order as about 200 bytes of JSON, the same for the
//! engine, the HTTP server and the peers, so that their figures compare.

/// The size every payload is padded to.
pub(crate) const PAYLOAD_BYTES: usize = 200;

pub(crate) const EVENT_TYPE: &str = "OrderPlaced";

/// The order `n` as JSON of exactly [`PAYLOAD_BYTES`] bytes (the `note` pads it).
pub(crate) fn order_json(n: u64) -> String {
    order_json_sent_at(n, None)
}

/// Like [`order_json`], carrying `sent_us` (when the sender sent it, in microseconds on the
/// benchmark's own clock) so that a subscriber can measure end-to-end latency.
pub(crate) fn order_json_sent_at(n: u64, sent_us: Option<u64>) -> String {
    let sent = sent_us.map_or(String::new(), |us| format!(r#""sent_us":{us},"#));
    let head = format!(
        r#"{{"order_id":"o-{n}",{sent}"customer":"c-{}","total":42.5,"items":[{{"sku":"sku-1","qty":2}},{{"sku":"sku-7","qty":1}}],"note":""#,
        n % 1_000
    );
    let tail = r#""}"#;
    let pad = PAYLOAD_BYTES.saturating_sub(head.len() + tail.len());
    let mut json = head;
    json.extend(std::iter::repeat_n('x', pad));
    json.push_str(tail);
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_valid_json_of_the_benchmark_size() {
        for n in [0, 7, 123_456, u64::from(u32::MAX)] {
            let json = order_json(n);
            assert_eq!(json.len(), PAYLOAD_BYTES, "{json}");
            assert!(runnel_core::JsonText::parse(json).is_ok());
            let stamped = order_json_sent_at(n, Some(1_234_567_890));
            assert_eq!(stamped.len(), PAYLOAD_BYTES, "{stamped}");
            let value: serde_json::Value = serde_json::from_str(&stamped).expect("valid JSON");
            assert_eq!(value["sent_us"], 1_234_567_890);
        }
    }
}
