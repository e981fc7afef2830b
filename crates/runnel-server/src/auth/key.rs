//! API keys as bytes: how they are made, written, hashed and compared.
//!
//! A key reads `rnl_<id>_<secret>`: the id (8 random bytes, 16 hex digits) finds the key in
//! the keyring without a scan, and the secret (32 bytes from the operating system's CSPRNG,
//! 64 hex digits, 256 bits) is what proves possession. Only `HMAC-SHA256(pepper, id, secret)` is
//! stored, and it is compared in constant time. A keyed hash rather than a password hash such
//! as argon2: the secret is random and long, so there is nothing to guess, and a check must
//! cost microseconds on every request, not tens of milliseconds.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use rand::RngExt as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// Every key starts with this, so that secret scanners and people can tell what it is.
pub(crate) const KEY_PREFIX: &str = "rnl_";
const KEY_ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
/// The bytes of a generated pepper.
const PEPPER_BYTES: usize = 32;
/// The shortest pepper an operator may give: anything shorter is a password, not a key.
pub(crate) const MIN_PEPPER_BYTES: usize = 16;
/// The shortest admin key an operator may configure (`openssl rand -hex 16` gives 32).
pub(crate) const MIN_ADMIN_KEY_CHARS: usize = 32;
/// The longest bearer token looked at; longer ones cannot be keys.
pub(crate) const MAX_TOKEN_BYTES: usize = 1024;

type HmacSha256 = Hmac<Sha256>;

/// A key's public half: it names the key in listings, logs and the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct KeyId(String);

impl KeyId {
    /// 16 lowercase hex digits, or `None`.
    pub(crate) fn parse(raw: &str) -> Option<Self> {
        is_lower_hex(raw, KEY_ID_BYTES * 2).then(|| Self(raw.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_lower_hex(raw: &str, len: usize) -> bool {
    raw.len() == len && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A whole key, secret included: exists only between its creation and the response that
/// shows it once.
pub(crate) struct PlainKey {
    pub(crate) id: KeyId,
    secret: String,
}

impl fmt::Debug for PlainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl PlainKey {
    pub(crate) fn generate() -> Self {
        Self {
            id: KeyId(hex(&random_bytes::<KEY_ID_BYTES>())),
            secret: hex(&random_bytes::<SECRET_BYTES>()),
        }
    }

    /// The key as its owner sends it.
    pub(crate) fn token(&self) -> String {
        format!("{KEY_PREFIX}{}_{}", self.id, self.secret)
    }

    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }
}

/// Splits a bearer token into the id and secret of a key, or `None` when it cannot be one.
pub(crate) fn split_token(token: &str) -> Option<(KeyId, &str)> {
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id = KeyId::parse(id)?;
    is_lower_hex(secret, SECRET_BYTES * 2).then_some((id, secret))
}

/// The HMAC key of every stored hash. Kept apart from the hashes when an operator supplies it,
/// so that a copy of the data alone cannot even be used to test a guess.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Pepper(Vec<u8>);

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(<redacted>)")
    }
}

impl Pepper {
    pub(crate) fn generate() -> Self {
        Self(random_bytes::<PEPPER_BYTES>().to_vec())
    }

    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < MIN_PEPPER_BYTES {
            return Err(format!(
                "the key pepper must be at least {MIN_PEPPER_BYTES} bytes, not {}",
                bytes.len()
            ));
        }
        Ok(Self(bytes))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The stored hash of a key. The id is part of the input, so a hash copied to another id
    /// proves nothing.
    pub(crate) fn hash_key(&self, id: &KeyId, secret: &str) -> KeyHash {
        self.mac(&[b"key\0", id.as_str().as_bytes(), b"\0", secret.as_bytes()])
    }

    /// A fingerprint of the pepper itself, stored so that a start with a different pepper is
    /// refused instead of silently failing every key.
    pub(crate) fn fingerprint(&self) -> KeyHash {
        self.mac(&[b"runnel pepper fingerprint"])
    }

    /// The in-memory hash of a configured admin key (any string, not in `rnl_` form).
    pub(crate) fn hash_admin_key(&self, key: &str) -> KeyHash {
        self.mac(&[b"admin\0", key.as_bytes()])
    }

    fn mac(&self, parts: &[&[u8]]) -> KeyHash {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        for part in parts {
            mac.update(part);
        }
        KeyHash(mac.finalize().into_bytes().into())
    }
}

/// An HMAC-SHA256 of a key; compared only in constant time.
#[derive(Clone, Copy)]
pub(crate) struct KeyHash([u8; 32]);

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(<redacted>)")
    }
}

impl KeyHash {
    /// Constant time: how many leading bytes agree is not observable.
    pub(crate) fn matches(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    pub(crate) fn to_hex(self) -> String {
        hex(&self.0)
    }

    pub(crate) fn from_hex(raw: &str) -> Option<Self> {
        if !is_lower_hex(raw, 64) {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(raw.as_bytes().chunks_exact(2)) {
            let text = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(text, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

/// From the thread-local CSPRNG, which the operating system's generator seeds.
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rng().fill(&mut bytes[..]);
    bytes
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_form_and_split_back() {
        let key = PlainKey::generate();
        let token = key.token();
        assert!(token.starts_with("rnl_"), "{token}");
        assert_eq!(token.len(), 4 + 16 + 1 + 64);
        let (id, secret) = split_token(&token).expect("splits");
        assert_eq!(id, key.id);
        assert_eq!(secret, key.secret());
        assert_ne!(PlainKey::generate().token(), token, "keys are random");
    }

    #[test]
    fn tokens_that_cannot_be_keys_do_not_split() {
        let good = PlainKey::generate().token();
        for bad in [
            "",
            "rnl_",
            &good[..good.len() - 1],
            &good.replace("rnl_", "rnx_"),
            &good.to_uppercase(),
            &format!("{good}0"),
            "rnl_0123456789abcdef",
            "rnl_0123456789abcdef_",
        ] {
            assert!(split_token(bad).is_none(), "{bad:?} split");
        }
    }

    #[test]
    fn hashes_depend_on_the_pepper_the_id_and_the_secret() {
        let pepper = Pepper::generate();
        let key = PlainKey::generate();
        let hash = pepper.hash_key(&key.id, key.secret());
        assert!(hash.matches(&pepper.hash_key(&key.id, key.secret())));
        let other = PlainKey::generate();
        assert!(!hash.matches(&pepper.hash_key(&other.id, key.secret())));
        assert!(!hash.matches(&pepper.hash_key(&key.id, other.secret())));
        assert!(!hash.matches(&Pepper::generate().hash_key(&key.id, key.secret())));
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let hash = Pepper::generate().fingerprint();
        let back = KeyHash::from_hex(&hash.to_hex()).expect("hex");
        assert!(back.matches(&hash));
        assert!(KeyHash::from_hex("00").is_none());
        assert!(KeyHash::from_hex(&"g".repeat(64)).is_none());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let key = PlainKey::generate();
        let pepper = Pepper::generate();
        let hash = pepper.hash_key(&key.id, key.secret());
        let printed = format!("{key:?} {pepper:?} {hash:?}");
        assert!(!printed.contains(key.secret()), "{printed}");
        assert!(!printed.contains(&hash.to_hex()), "{printed}");
    }

    #[test]
    fn short_peppers_are_refused() {
        assert!(Pepper::from_bytes(vec![1; MIN_PEPPER_BYTES - 1]).is_err());
        assert!(Pepper::from_bytes(vec![1; MIN_PEPPER_BYTES]).is_ok());
    }
}
