//! `whsec_` secrets: the key a subscription's webhooks are signed with.

use std::fmt;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use rand::RngExt as _;
use serde::{Deserialize, Deserializer};

/// How a secret is written: this prefix, then the key in standard base64.
pub const SECRET_PREFIX: &str = "whsec_";
/// The shortest key the Standard Webhooks specification allows, in bytes (192 bits).
pub const MIN_SECRET_BYTES: usize = 24;
/// The longest key the Standard Webhooks specification allows, in bytes (512 bits).
pub const MAX_SECRET_BYTES: usize = 64;
/// The length of a key made by [`WebhookSecret::generate`], in bytes.
pub const GENERATED_SECRET_BYTES: usize = 32;

/// Standard base64 that takes the key with or without padding, as the reference libraries do
/// (`whsec_` secrets made by other tools are often unpadded).
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A webhook signing key of 24 to 64 bytes. Its `Debug` never shows the key; write it out
/// deliberately with [`WebhookSecret::to_whsec`].
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

/// A secret that is not a valid `whsec_` secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The text does not start with `whsec_`.
    #[error("a webhook secret must start with \"whsec_\"")]
    MissingPrefix,
    /// What follows the prefix is not base64.
    #[error("a webhook secret must be \"whsec_\" followed by standard base64")]
    InvalidBase64,
    /// The key is shorter than [`MIN_SECRET_BYTES`].
    #[error(
        "a webhook secret's key must be at least {MIN_SECRET_BYTES} bytes, \
         but this one decodes to {bytes}"
    )]
    TooShort {
        /// The decoded key's length.
        bytes: usize,
    },
    /// The key is longer than [`MAX_SECRET_BYTES`].
    #[error(
        "a webhook secret's key must be at most {MAX_SECRET_BYTES} bytes, \
         but this one decodes to {bytes}"
    )]
    TooLong {
        /// The decoded key's length (at least).
        bytes: usize,
    },
}

impl WebhookSecret {
    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        // Decoding more than the longest valid key's worth of text is pointless work.
        if encoded.len() > MAX_SECRET_BYTES.div_ceil(3) * 4 {
            return Err(SecretError::TooLong {
                bytes: encoded.len() / 4 * 3,
            });
        }
        let key = LENIENT_BASE64
            .decode(encoded)
            .map_err(|_| SecretError::InvalidBase64)?;
        Self::from_bytes(key)
    }

    /// A secret with this key.
    pub fn from_bytes(key: Vec<u8>) -> Result<Self, SecretError> {
        match key.len() {
            bytes if bytes < MIN_SECRET_BYTES => Err(SecretError::TooShort { bytes }),
            bytes if bytes > MAX_SECRET_BYTES => Err(SecretError::TooLong { bytes }),
            _ => Ok(Self { key }),
        }
    }

    /// A new random secret of [`GENERATED_SECRET_BYTES`], from the operating system's
    /// cryptographically secure generator (through the thread-local CSPRNG it seeds).
    pub fn generate() -> Self {
        let mut key = vec![0_u8; GENERATED_SECRET_BYTES];
        rand::rng().fill(&mut key[..]);
        Self { key }
    }

    /// The secret as it is shown to its owner: `whsec_` and the key in padded standard base64.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// The key bytes the HMAC is keyed with.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecret(whsec_…, {} bytes)", self.key.len())
    }
}

/// Deserialises from the `whsec_` form. (There is deliberately no `Serialize`: a secret is
/// written out only on purpose, with [`WebhookSecret::to_whsec`].)
impl<'de> Deserialize<'de> for WebhookSecret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specification_example_secret_parses() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        assert_eq!(secret.key().len(), 24);
        assert_eq!(secret.to_whsec(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    }

    #[test]
    fn padded_and_unpadded_keys_are_both_accepted() {
        let key: Vec<u8> = (0..32).collect();
        let padded = format!("whsec_{}", STANDARD.encode(&key));
        assert!(padded.ends_with('='));
        let unpadded = padded.trim_end_matches('=');
        assert_eq!(WebhookSecret::parse(&padded).expect("padded").key(), key);
        assert_eq!(WebhookSecret::parse(unpadded).expect("unpadded").key(), key);
    }

    #[test]
    fn invalid_secrets_are_rejected_with_the_reason() {
        let encoded = |n: usize| format!("whsec_{}", STANDARD.encode(vec![7_u8; n]));
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            Err(SecretError::MissingPrefix)
        );
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!"),
            Err(SecretError::InvalidBase64)
        );
        assert_eq!(
            WebhookSecret::parse(&encoded(MIN_SECRET_BYTES - 1)),
            Err(SecretError::TooShort { bytes: 23 })
        );
        assert_eq!(
            WebhookSecret::parse(&encoded(MAX_SECRET_BYTES + 1)),
            Err(SecretError::TooLong { bytes: 65 })
        );
        assert!(WebhookSecret::parse(&encoded(MIN_SECRET_BYTES)).is_ok());
        assert!(WebhookSecret::parse(&encoded(MAX_SECRET_BYTES)).is_ok());
        assert!(matches!(
            WebhookSecret::parse(&format!("whsec_{}", "A".repeat(10_000))),
            Err(SecretError::TooLong { .. })
        ));
        let message = SecretError::TooShort { bytes: 23 }.to_string();
        assert!(message.contains("at least 24 bytes"), "{message}");
    }

    #[test]
    fn generated_secrets_are_random_and_round_trip() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert_eq!(a.key().len(), GENERATED_SECRET_BYTES);
        assert_ne!(a, b);
        assert_eq!(WebhookSecret::parse(&a.to_whsec()).expect("round trip"), a);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        let shown = format!("{secret:?}");
        assert!(!shown.contains("MfKQ"), "{shown}");
    }

    #[test]
    fn deserialises_from_the_whsec_form() {
        let secret: WebhookSecret =
            serde_json::from_str("\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"").expect("valid");
        assert_eq!(secret.key().len(), 24);
        let error = serde_json::from_str::<WebhookSecret>("\"nope\"").expect_err("invalid");
        assert!(error.to_string().contains("whsec_"), "{error}");
    }
}
