//! Receipts: the handle a consumer acknowledges one delivery with.
//!
//! A receipt names one delivery attempt of one event: the event's position, the delivery
//! number, and 96 random bits. The position lets the server find the lease without an index;
//! the random part makes receipts unguessable, and because every attempt gets a fresh one, a
//! receipt from an attempt that timed out and was delivered again no longer acknowledges
//! anything.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt as _;
use runnel_core::Position;

const NONCE_BYTES: usize = 12;
const RECEIPT_BYTES: usize = 8 + 4 + NONCE_BYTES;
/// The length of a receipt's text: 24 bytes in unpadded base64url.
pub const RECEIPT_CHARS: usize = 32;

/// One delivery attempt's receipt, as text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Receipt(String);

impl Receipt {
    /// A fresh receipt for delivery `delivery` of the event at `position`.
    pub fn generate(position: Position, delivery: u32) -> Self {
        let mut nonce = [0_u8; NONCE_BYTES];
        rand::rng().fill(&mut nonce[..]);
        Self::from_parts(position, delivery, nonce)
    }

    /// A receipt with a chosen random part (tests need them reproducible).
    pub fn from_parts(position: Position, delivery: u32, nonce: [u8; NONCE_BYTES]) -> Self {
        let mut bytes = [0_u8; RECEIPT_BYTES];
        bytes[..8].copy_from_slice(&position.0.to_be_bytes());
        bytes[8..12].copy_from_slice(&delivery.to_be_bytes());
        bytes[12..].copy_from_slice(&nonce);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A receipt the group's state stream recorded; checked like one from a client.
    pub fn from_stored(text: &str) -> Option<Self> {
        Self::decode(text).map(|_| Self(text.to_owned()))
    }

    /// The position and delivery a receipt names, or `None` when the text is not a receipt.
    pub fn decode(text: &str) -> Option<(Position, u32)> {
        if text.len() != RECEIPT_CHARS {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let position = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let delivery = u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?);
        Some((Position(position), delivery))
    }

    /// The receipt's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The receipt's text, as a consumer sends it back.
impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Receipts are credentials of a sort: debug output (logs) shows only their start.
impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Receipt({}…)", &self.0[..8.min(self.0.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_names_its_position_and_delivery() {
        let receipt = Receipt::generate(Position(4711), 3);
        assert_eq!(receipt.as_str().len(), RECEIPT_CHARS);
        assert_eq!(Receipt::decode(receipt.as_str()), Some((Position(4711), 3)));
        assert_eq!(Receipt::from_stored(receipt.as_str()), Some(receipt));
    }

    #[test]
    fn every_attempt_gets_a_different_receipt() {
        let a = Receipt::generate(Position(1), 1);
        let b = Receipt::generate(Position(1), 1);
        assert_ne!(a, b);
    }

    #[test]
    fn text_that_is_not_a_receipt_decodes_to_nothing() {
        for bad in ["", "x", &"A".repeat(31), &"!".repeat(32), &"A".repeat(33)] {
            assert_eq!(Receipt::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn debug_shows_only_the_start() {
        let receipt = Receipt::from_parts(Position(1), 1, [7; NONCE_BYTES]);
        let shown = format!("{receipt:?}");
        assert!(!shown.contains(receipt.as_str()), "{shown}");
        assert_eq!(shown, format!("Receipt({}…)", &receipt.as_str()[..8]));
    }
}
