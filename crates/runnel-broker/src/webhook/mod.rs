//! Webhook delivery's pure parts: Standard Webhooks secrets ([`WebhookSecret`]) and the
//! signature every delivery carries ([`sign`], [`verify`]).
//!
//! The scheme (standardwebhooks.com, version 1): the sender signs `{id}.{timestamp}.{body}`
//! with HMAC-SHA256, keyed with the base64-decoded part of a `whsec_` secret, and sends
//! `webhook-id`, `webhook-timestamp` (Unix seconds) and
//! `webhook-signature: v1,<base64 signature>` (several space-separated signatures during a
//! secret rotation). The id stays the same across retries; the timestamp and signature are
//! fresh for each attempt.

mod secret;
mod signature;

pub use secret::{
    GENERATED_SECRET_BYTES, MAX_SECRET_BYTES, MIN_SECRET_BYTES, SECRET_PREFIX, SecretError,
    WebhookSecret,
};
pub use signature::{
    DEFAULT_TOLERANCE_SECS, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, MAX_VERIFIED_SIGNATURES,
    SIGNATURE_VERSION, VerifyError, sign, sign_with_each, standard_headers, verify,
};
