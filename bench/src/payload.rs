//! The event every benchmark writes: an order as about 200 bytes of JSON, the same for the
//! engine, the HTTP server and the peers, so that their figures compare.

/// The size every payload is padded to.
pub(crate) const PAYLOAD_BYTES: usize = 200;

pub(crate) const EVENT_TYPE: &str = "OrderPlaced";

/// The order `n` as JSON of exactly [`PAYLOAD_BYTES`] bytes (the `note` pads it).
pub(crate) fn order_json(n: u64) -> String {
    let head = format!(
        r#"{{"order_id":"o-{n}","customer":"c-{}","total":42.5,"items":[{{"sku":"sku-1","qty":2}},{{"sku":"sku-7","qty":1}}],"note":""#,
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
        }
    }
}
