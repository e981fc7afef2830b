//! Signing a delivery, and checking a signature as a receiver does.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::secret::WebhookSecret;

/// The header carrying the message id (for Runnel, the event id: stable across retries).
pub const HEADER_ID: &str = "webhook-id";
/// The header carrying the attempt's time, in Unix seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The header carrying the space-separated signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";
/// The version tag of an HMAC-SHA256 signature.
pub const SIGNATURE_VERSION: &str = "v1";
/// How far a timestamp may be from the receiver's clock, in seconds, either way (the reference
/// libraries use five minutes).
pub const DEFAULT_TOLERANCE_SECS: u64 = 5 * 60;
/// The most signatures of a header that [`verify`] tries; the rest are ignored, so a hostile
/// header cannot make it compute HMACs without end.
pub const MAX_VERIFIED_SIGNATURES: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The timestamp is older than the tolerance allows (a replay, or a slow queue).
    #[error("the webhook timestamp {timestamp_secs} is more than {tolerance_secs} s before now")]
    TimestampTooOld {
        /// The message's timestamp, Unix seconds.
        timestamp_secs: u64,
        /// The tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// The timestamp lies further in the future than the tolerance allows.
    #[error("the webhook timestamp {timestamp_secs} is more than {tolerance_secs} s after now")]
    TimestampTooNew {
        /// The message's timestamp, Unix seconds.
        timestamp_secs: u64,
        /// The tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// The header holds no `v1` signature at all.
    #[error("the signature header has no v1 signature")]
    NoSignature,
    /// No `v1` signature of the header matches.
    #[error("no v1 signature matches")]
    Mismatch,
}

/// The signature of one delivery attempt: `v1,<base64 of HMAC-SHA256 over
/// "{msg_id}.{timestamp_secs}.{body}">`.
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp_secs: u64, body: &[u8]) -> String {
    let tag = mac(secret, msg_id, timestamp_secs, body)
        .finalize()
        .into_bytes();
    format!("{SIGNATURE_VERSION},{}", BASE64.encode(tag))
}

/// The signature header for several secrets (during a rotation: the new one and the old), space
/// separated, so that a receiver holding either verifies the delivery.
pub fn sign_with_each(
    secrets: &[WebhookSecret],
    msg_id: &str,
    timestamp_secs: u64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| sign(secret, msg_id, timestamp_secs, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The three Standard Webhooks headers of one delivery attempt, names lowercase.
pub fn standard_headers(
    secret: &WebhookSecret,
    msg_id: &str,
    timestamp_secs: u64,
    body: &[u8],
) -> [(&'static str, String); 3] {
    [
        (HEADER_ID, msg_id.to_owned()),
        (HEADER_TIMESTAMP, timestamp_secs.to_string()),
        (HEADER_SIGNATURE, sign(secret, msg_id, timestamp_secs, body)),
    ]
}

/// Checks a delivery as a receiver does: the timestamp must lie within `tolerance_secs` of
/// `now_secs` (either way), and one of the header's `v1` signatures must match, compared in
/// constant time. Signatures of other versions (`v1a`, ...) are skipped.
pub fn verify(
    secret: &WebhookSecret,
    msg_id: &str,
    timestamp_secs: u64,
    body: &[u8],
    signature_header: &str,
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<(), VerifyError> {
    if timestamp_secs.saturating_add(tolerance_secs) < now_secs {
        return Err(VerifyError::TimestampTooOld {
            timestamp_secs,
            tolerance_secs,
        });
    }
    if timestamp_secs > now_secs.saturating_add(tolerance_secs) {
        return Err(VerifyError::TimestampTooNew {
            timestamp_secs,
            tolerance_secs,
        });
    }
    let expected = mac(secret, msg_id, timestamp_secs, body);
    let mut saw_v1 = false;
    for candidate in signature_header
        .split(' ')
        .filter(|part| !part.is_empty())
        .take(MAX_VERIFIED_SIGNATURES)
    {
        let Some((SIGNATURE_VERSION, encoded)) = candidate.split_once(',') else {
            continue;
        };
        saw_v1 = true;
        let Ok(tag) = BASE64.decode(encoded) else {
            continue;
        };
        if expected.clone().verify_slice(&tag).is_ok() {
            return Ok(());
        }
    }
    Err(if saw_v1 {
        VerifyError::Mismatch
    } else {
        VerifyError::NoSignature
    })
}

fn mac(secret: &WebhookSecret, msg_id: &str, timestamp_secs: u64, body: &[u8]) -> HmacSha256 {
    // The id must not contain the delimiter, or "{id}.{timestamp}" would be ambiguous; ours are
    // event ids (UUIDs).
    debug_assert!(!msg_id.contains('.'), "webhook ids must not contain '.'");
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.key())
        .expect("HMAC accepts keys of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: u64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn secret() -> WebhookSecret {
        WebhookSecret::parse(SECRET).expect("valid")
    }

    fn check(header: &str, now_secs: u64) -> Result<(), VerifyError> {
        verify(
            &secret(),
            ID,
            TIMESTAMP,
            BODY,
            header,
            now_secs,
            DEFAULT_TOLERANCE_SECS,
        )
    }

    #[test]
    fn signing_reproduces_the_published_test_vector() {
        // The vector of the Standard Webhooks reference libraries (and Svix's): a receiver's
        // off-the-shelf library must accept what we send.
        assert_eq!(sign(&secret(), ID, TIMESTAMP, BODY), EXPECTED);
    }

    #[test]
    fn the_published_signature_verifies() {
        assert_eq!(check(EXPECTED, TIMESTAMP), Ok(()));
    }

    #[test]
    fn any_of_several_signatures_may_match() {
        let other = WebhookSecret::generate();
        let header = format!(
            "v1a,c29tZXRoaW5nIGVsc2U= {} {EXPECTED}",
            sign(&other, ID, TIMESTAMP, BODY)
        );
        assert_eq!(check(&header, TIMESTAMP), Ok(()));
        let rotated = sign_with_each(&[other, secret()], ID, TIMESTAMP, BODY);
        assert_eq!(rotated.split(' ').count(), 2);
        assert_eq!(check(&rotated, TIMESTAMP), Ok(()));
    }

    #[test]
    fn a_changed_body_id_or_timestamp_does_not_verify() {
        let s = secret();
        let tolerance = DEFAULT_TOLERANCE_SECS;
        assert_eq!(
            verify(
                &s,
                ID,
                TIMESTAMP,
                b"{\"test\": 1}",
                EXPECTED,
                TIMESTAMP,
                tolerance
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                &s,
                "msg_other",
                TIMESTAMP,
                BODY,
                EXPECTED,
                TIMESTAMP,
                tolerance
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(&s, ID, TIMESTAMP + 1, BODY, EXPECTED, TIMESTAMP, tolerance),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn malformed_or_foreign_signatures_are_not_accepted() {
        assert_eq!(check("", TIMESTAMP), Err(VerifyError::NoSignature));
        assert_eq!(
            check("v1a,abc v2,abc", TIMESTAMP),
            Err(VerifyError::NoSignature)
        );
        assert_eq!(
            check("g0hM9SsE+OTPJTGt", TIMESTAMP),
            Err(VerifyError::NoSignature)
        );
        assert_eq!(
            check("v1,!!!not-base64", TIMESTAMP),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(check("v1,", TIMESTAMP), Err(VerifyError::Mismatch));
        // A truncated tag is not a prefix match.
        assert_eq!(
            check("v1,g0hM9SsE+OTPJTGt", TIMESTAMP),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn only_the_first_signatures_of_a_long_header_are_tried() {
        let noise = vec!["v1,AAAA"; MAX_VERIFIED_SIGNATURES].join(" ");
        assert_eq!(
            check(&format!("{noise} {EXPECTED}"), TIMESTAMP),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn timestamps_outside_the_tolerance_are_refused() {
        let tolerance = DEFAULT_TOLERANCE_SECS;
        assert_eq!(check(EXPECTED, TIMESTAMP + tolerance), Ok(()));
        assert_eq!(check(EXPECTED, TIMESTAMP - tolerance), Ok(()));
        assert_eq!(
            check(EXPECTED, TIMESTAMP + tolerance + 1),
            Err(VerifyError::TimestampTooOld {
                timestamp_secs: TIMESTAMP,
                tolerance_secs: tolerance
            })
        );
        assert_eq!(
            check(EXPECTED, TIMESTAMP - tolerance - 1),
            Err(VerifyError::TimestampTooNew {
                timestamp_secs: TIMESTAMP,
                tolerance_secs: tolerance
            })
        );
    }

    #[test]
    fn the_standard_headers_carry_id_timestamp_and_signature() {
        let headers = standard_headers(&secret(), ID, TIMESTAMP, BODY);
        assert_eq!(
            headers,
            [
                ("webhook-id", ID.to_owned()),
                ("webhook-timestamp", "1614265330".to_owned()),
                ("webhook-signature", EXPECTED.to_owned()),
            ]
        );
    }
}
