//! The keyring's events, in the system stream `$keys/keys`. The keyring is event-sourced: each
//! server builds it by reading this stream and keeps it current by following it, so every node
//! over a shared store applies the same creations and revocations in the same order.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use runnel_core::{
    EventType, JsonText, Payload, ProposedEvent, RecordedEvent, StreamId, StreamName, StreamType,
};
use serde::{Deserialize, Serialize};

use crate::auth::access::{Caller, KEYS_STREAM_TYPE};
use crate::auth::key::{KeyHash, Pepper};
use crate::auth::role::Role;
use crate::auth::rules::Rules;

/// `$keys/keys`: the one stream of the keyring.
pub(crate) fn keys_stream() -> StreamName {
    system_stream(KEYS_STREAM_TYPE, "keys")
}

/// A stream of a system type; both names are constants of this crate, so they are valid.
pub(crate) fn system_stream(stream_type: &str, stream_id: &str) -> StreamName {
    StreamName::new(
        StreamType::parse(stream_type).expect("a valid system stream type"),
        StreamId::parse(stream_id).expect("a valid system stream id"),
    )
}

/// Who did something: a key's id and name. The id is absent for the configured admin key, for
/// `--insecure` and for the server itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Actor {
    pub(crate) key_id: Option<String>,
    pub(crate) key_name: String,
}

impl From<&Caller> for Actor {
    fn from(caller: &Caller) -> Self {
        Self {
            key_id: caller.key_id.clone(),
            key_name: caller.key_name.clone(),
        }
    }
}

/// The first event of the keyring: the pepper every hash is made with. It is stored here only
/// when the operator gave none; otherwise only its fingerprint is, to catch a changed pepper.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyringCreated {
    /// Base64; absent when the operator supplies the pepper.
    pub(crate) pepper: Option<String>,
    pub(crate) pepper_fingerprint: String,
    pub(crate) created_at: String,
}

impl KeyringCreated {
    pub(crate) fn new(pepper: &Pepper, store_pepper: bool, created_at: String) -> Self {
        Self {
            pepper: store_pepper.then(|| BASE64.encode(pepper.as_bytes())),
            pepper_fingerprint: pepper.fingerprint().to_hex(),
            created_at,
        }
    }

    pub(crate) fn stored_pepper(&self) -> Result<Option<Pepper>, String> {
        self.pepper
            .as_deref()
            .map(|text| {
                let bytes = BASE64
                    .decode(text)
                    .map_err(|error| format!("the stored pepper is not base64: {error}"))?;
                Pepper::from_bytes(bytes)
            })
            .transpose()
    }

    pub(crate) fn fingerprint(&self) -> Result<KeyHash, String> {
        KeyHash::from_hex(&self.pepper_fingerprint)
            .ok_or_else(|| "the pepper fingerprint is not 64 hex digits".to_owned())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyCreated {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) rules: Rules,
    /// HMAC-SHA256(pepper, id, secret) in hex; never the secret.
    pub(crate) hash: String,
    pub(crate) created_at: String,
    pub(crate) created_by: Actor,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KeyRevoked {
    pub(crate) id: String,
    pub(crate) revoked_at: String,
    pub(crate) revoked_by: Actor,
}

#[derive(Debug, Clone)]
pub(crate) enum KeyringEvent {
    KeyringCreated(KeyringCreated),
    KeyCreated(KeyCreated),
    KeyRevoked(KeyRevoked),
}

impl KeyringEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::KeyringCreated(_) => "KeyringCreated",
            Self::KeyCreated(_) => "KeyCreated",
            Self::KeyRevoked(_) => "KeyRevoked",
        }
    }

    pub(crate) fn to_proposed(&self) -> ProposedEvent {
        let data = match self {
            Self::KeyringCreated(event) => serde_json::to_value(event),
            Self::KeyCreated(event) => serde_json::to_value(event),
            Self::KeyRevoked(event) => serde_json::to_value(event),
        };
        // Plain structs of strings serialise without fail.
        let data = data.unwrap_or_default();
        ProposedEvent::json(
            EventType::parse(self.event_type()).expect("a valid event type"),
            JsonText::from_value(&data),
        )
    }

    /// The event as written, or `None` for an event type this version does not know (written
    /// by a newer node): skipping it is safer than refusing to serve.
    pub(crate) fn from_recorded(event: &RecordedEvent) -> Result<Option<Self>, String> {
        let Payload::Json(data) = &event.data else {
            return Err("a keyring event is not JSON".to_owned());
        };
        let text = data.as_str();
        let parsed = match event.event_type.as_str() {
            "KeyringCreated" => serde_json::from_str(text).map(Self::KeyringCreated),
            "KeyCreated" => serde_json::from_str(text).map(Self::KeyCreated),
            "KeyRevoked" => serde_json::from_str(text).map(Self::KeyRevoked),
            _ => return Ok(None),
        };
        parsed
            .map(Some)
            .map_err(|error| format!("a {} event cannot be read: {error}", event.event_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_core::{Position, RecordedAt, Revision};

    fn recorded(event: &KeyringEvent) -> RecordedEvent {
        let proposed = event.to_proposed();
        RecordedEvent {
            id: uuid::Uuid::now_v7(),
            stream: keys_stream(),
            revision: Revision(0),
            position: Position(0),
            event_type: proposed.event_type,
            data: proposed.data,
            metadata: None,
            recorded_at: RecordedAt::now(),
        }
    }

    #[test]
    fn events_round_trip_through_their_recorded_form() {
        let pepper = Pepper::generate();
        let created = KeyringEvent::KeyringCreated(KeyringCreated::new(&pepper, true, "t".into()));
        let Some(KeyringEvent::KeyringCreated(back)) =
            KeyringEvent::from_recorded(&recorded(&created)).expect("reads")
        else {
            panic!("wrong event");
        };
        assert_eq!(back.stored_pepper().expect("pepper"), Some(pepper.clone()));
        assert!(
            back.fingerprint()
                .expect("fingerprint")
                .matches(&pepper.fingerprint())
        );

        let without = KeyringCreated::new(&pepper, false, "t".into());
        assert_eq!(without.stored_pepper().expect("no pepper"), None);
    }

    #[test]
    fn unknown_event_types_are_skipped_and_bad_data_is_an_error() {
        let mut event = recorded(&KeyringEvent::KeyRevoked(KeyRevoked {
            id: "0123456789abcdef".into(),
            revoked_at: "t".into(),
            revoked_by: Actor {
                key_id: None,
                key_name: "x".into(),
            },
        }));
        assert!(matches!(
            KeyringEvent::from_recorded(&event),
            Ok(Some(KeyringEvent::KeyRevoked(_)))
        ));
        event.event_type = EventType::parse("KeyRenamed").expect("valid");
        assert!(matches!(KeyringEvent::from_recorded(&event), Ok(None)));
        event.event_type = EventType::parse("KeyCreated").expect("valid");
        assert!(KeyringEvent::from_recorded(&event).is_err());
    }
}
