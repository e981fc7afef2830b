//! The events of a group's state stream, `$group/{name}`: every change to a group is one of
//! these, appended under the stream's exact revision, and a group's state is what applying
//! them in order gives ([`super::state::GroupState::apply`]).
//!
//! The data of each is JSON. `GroupCreated`, `GroupDeleted` and part 0 of a `Snapshot` reset
//! the state, so loading a group reads the stream backward only to the nearest of them.

use runnel_core::{EventType, JsonText, ProposedEvent, RecordedEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::config::GroupConfig;

/// One change to a group.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupEvent {
    /// A group was made (or made again after a delete): the state starts afresh.
    Created(Created),
    /// Its configuration changed; cursor, leases and parked events stay.
    Updated(Updated),
    /// It was deleted: nothing of it remains but this record.
    Deleted(Deleted),
    /// A receive: events leased to a consumer, events held back behind others of their
    /// stream, and how far the cursor moved.
    Leased(Leased),
    /// Deliveries acknowledged: done with.
    Acked(Acked),
    /// Deliveries rejected: to be retried (at a time), or skipped.
    Nacked(Nacked),
    /// Leases that ran out without an acknowledgement: due again.
    Expired(Expired),
    /// Events set aside after failing (or on request); replayable.
    Parked(Parked),
    /// Parked events put back in line.
    Replayed(Replayed),
    /// Delivery stopped until resumed.
    Paused(Paused),
    /// Delivery resumed.
    Resumed(Resumed),
    /// One part of the whole state, so loading need not replay the stream from its start.
    Snapshot(Snapshot),
}

/// `GroupCreated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Created {
    /// The configuration, webhook secret included.
    #[serde(with = "stored_config")]
    pub config: GroupConfig,
    /// The first position of `$all` the group reads (resolved from `start`).
    pub cursor: u64,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
}

/// `GroupUpdated`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Updated {
    /// The new configuration, webhook secret included.
    #[serde(with = "stored_config")]
    pub config: GroupConfig,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
}

/// `GroupDeleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    /// When, in Unix milliseconds.
    pub at_ms: u64,
}

/// `Leased`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leased {
    /// The deliveries handed out.
    pub leases: Vec<LeaseRecord>,
    /// Events scanned that wait behind an earlier event of their stream (`per_stream`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldRecord>,
    /// The cursor after this receive: every matching event below it is leased, held, waiting,
    /// parked or done.
    pub cursor: u64,
}

/// One delivery handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The event's position in `$all`.
    pub position: u64,
    /// The event's stream, `{type}/{id}`; given when the group first takes the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The receipt of this attempt.
    pub receipt: String,
    /// The attempt's number, from 1.
    pub delivery: u32,
    /// When the lease runs out, in Unix milliseconds.
    pub expires_at_ms: u64,
}

/// One event held back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldRecord {
    /// The event's position in `$all`.
    pub position: u64,
    /// The event's stream, `{type}/{id}`.
    pub stream: String,
}

/// `Acked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acked {
    /// The positions of the deliveries acknowledged.
    pub positions: Vec<u64>,
}

/// What a nack asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NackAction {
    /// Deliver again (after a delay), or park once `max_deliveries` is reached.
    Retry,
    /// Set aside as parked.
    Park,
    /// Drop: never deliver again.
    Skip,
}

impl NackAction {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Park => "park",
            Self::Skip => "skip",
        }
    }
}

/// `Nacked` (retry or skip; parking is recorded as [`Parked`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nacked {
    /// The positions of the deliveries rejected.
    pub positions: Vec<u64>,
    /// `retry` or `skip`.
    pub action: NackAction,
    /// For `retry`: when the events are due again, in Unix milliseconds.
    #[serde(default)]
    pub retry_at_ms: u64,
    /// What the consumer said went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `Expired`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expired {
    /// The positions whose leases ran out.
    pub positions: Vec<u64>,
    /// When this was noticed, in Unix milliseconds (the events are due from then).
    pub at_ms: u64,
}

/// `Parked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parked {
    /// The events parked.
    pub entries: Vec<ParkRecord>,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
}

/// One event parked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkRecord {
    /// The event's position in `$all`.
    pub position: u64,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `Replayed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replayed {
    /// The parked positions put back in line.
    pub positions: Vec<u64>,
}

/// `Paused`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paused {
    /// Why, for people.
    pub reason: String,
}

/// `Resumed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {}

/// `Snapshot`: part `part` of `parts`, all appended together (so all present, consecutive).
/// Part 0 carries the header and resets the state; every part carries some of the messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// This part's number, from 0.
    pub part: u32,
    /// How many parts the snapshot has.
    pub parts: u32,
    /// The group's scalars; part 0 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<SnapshotHeader>,
    /// Events leased or waiting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<MessageRecord>,
    /// Parked events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parked: Vec<ParkedRecord>,
}

/// The scalars of a group's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// The configuration, webhook secret included.
    #[serde(with = "stored_config")]
    pub config: GroupConfig,
    /// The cursor.
    pub cursor: u64,
    /// Events acknowledged so far.
    pub delivered: u64,
    /// Why delivery is paused, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<String>,
    /// The last error recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the group was created, in Unix milliseconds.
    pub created_at_ms: u64,
}

/// An event leased or waiting, in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Its position in `$all`.
    pub position: u64,
    /// Its stream, `{type}/{id}`.
    pub stream: String,
    /// Deliveries so far.
    pub deliveries: u32,
    /// The last error a consumer reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Waiting: due at this time (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at_ms: Option<u64>,
    /// Leased: the receipt of the attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
    /// Leased: when the lease runs out (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

/// A parked event, in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParkedRecord {
    /// Its position in `$all`.
    pub position: u64,
    /// Its stream, `{type}/{id}`.
    pub stream: String,
    /// Deliveries before it was parked.
    pub deliveries: u32,
    /// Why it was parked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When, in Unix milliseconds.
    pub parked_at_ms: u64,
}

impl GroupEvent {
    /// The event type in the state stream.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Created(_) => "GroupCreated",
            Self::Updated(_) => "GroupUpdated",
            Self::Deleted(_) => "GroupDeleted",
            Self::Leased(_) => "Leased",
            Self::Acked(_) => "Acked",
            Self::Nacked(_) => "Nacked",
            Self::Expired(_) => "Expired",
            Self::Parked(_) => "Parked",
            Self::Replayed(_) => "Replayed",
            Self::Paused(_) => "Paused",
            Self::Resumed(_) => "Resumed",
            Self::Snapshot(_) => "Snapshot",
        }
    }

    /// Whether applying this event discards everything before it: loading starts here.
    pub fn is_reset(&self) -> bool {
        match self {
            Self::Created(_) | Self::Deleted(_) => true,
            Self::Snapshot(snapshot) => snapshot.part == 0,
            _ => false,
        }
    }

    /// The event as appended to the state stream.
    pub fn to_proposed(&self) -> ProposedEvent {
        let data = match self {
            Self::Created(data) => serde_json::to_value(data),
            Self::Updated(data) => serde_json::to_value(data),
            Self::Deleted(data) => serde_json::to_value(data),
            Self::Leased(data) => serde_json::to_value(data),
            Self::Acked(data) => serde_json::to_value(data),
            Self::Nacked(data) => serde_json::to_value(data),
            Self::Expired(data) => serde_json::to_value(data),
            Self::Parked(data) => serde_json::to_value(data),
            Self::Replayed(data) => serde_json::to_value(data),
            Self::Paused(data) => serde_json::to_value(data),
            Self::Resumed(data) => serde_json::to_value(data),
            Self::Snapshot(data) => serde_json::to_value(data),
        }
        // Plain structs of strings and numbers (and a configuration that serialises to a
        // value) cannot fail to serialise.
        .unwrap_or_default();
        ProposedEvent::json(
            EventType::from_stored(self.event_type()),
            JsonText::from_value(&data),
        )
    }

    /// Reads an event of the state stream. `Ok(None)` for a type this version does not know
    /// (written by a newer one); `Err` for data that does not fit its type.
    pub fn from_recorded(event: &RecordedEvent) -> Result<Option<Self>, String> {
        let runnel_core::Payload::Json(text) = &event.data else {
            return Err("group events are JSON".to_owned());
        };
        let text = text.as_str();
        let parsed = match event.event_type.as_str() {
            "GroupCreated" => Self::Created(decode(text)?),
            "GroupUpdated" => Self::Updated(decode(text)?),
            "GroupDeleted" => Self::Deleted(decode(text)?),
            "Leased" => Self::Leased(decode(text)?),
            "Acked" => Self::Acked(decode(text)?),
            "Nacked" => Self::Nacked(decode(text)?),
            "Expired" => Self::Expired(decode(text)?),
            "Parked" => Self::Parked(decode(text)?),
            "Replayed" => Self::Replayed(decode(text)?),
            "Paused" => Self::Paused(decode(text)?),
            "Resumed" => Self::Resumed(decode(text)?),
            "Snapshot" => Self::Snapshot(decode(text)?),
            _ => return Ok(None),
        };
        Ok(Some(parsed))
    }
}

fn decode<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|error| error.to_string())
}

/// A configuration in the state stream: the API's JSON form with the secret written out.
mod stored_config {
    use super::*;

    pub(super) fn serialize<S: Serializer>(
        config: &GroupConfig,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        config.to_json(true).serialize(serializer)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<GroupConfig, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        GroupConfig::parse(&value, None)
            .map(|(config, _)| config)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use runnel_core::{Payload, Position, RecordedAt, Revision};
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::group::name::GroupName;

    fn recorded(event: &GroupEvent) -> RecordedEvent {
        let proposed = event.to_proposed();
        RecordedEvent {
            id: Uuid::nil(),
            stream: GroupName::parse("g").expect("name").state_stream(),
            revision: Revision(0),
            position: Position(0),
            event_type: proposed.event_type,
            data: proposed.data,
            metadata: None,
            recorded_at: RecordedAt(0),
        }
    }

    #[test]
    fn every_event_round_trips_through_the_store_form() {
        let (config, _) = GroupConfig::parse(
            &json!({"delivery": {"mode": "webhook", "url": "http://h/x",
                                 "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}),
            None,
        )
        .expect("valid");
        let events = [
            GroupEvent::Created(Created {
                config: config.clone(),
                cursor: 7,
                at_ms: 1,
            }),
            GroupEvent::Updated(Updated {
                config: config.clone(),
                at_ms: 2,
            }),
            GroupEvent::Deleted(Deleted { at_ms: 3 }),
            GroupEvent::Leased(Leased {
                leases: vec![LeaseRecord {
                    position: 9,
                    stream: Some("order/o-1".into()),
                    receipt: "r".into(),
                    delivery: 1,
                    expires_at_ms: 99,
                }],
                held: vec![HeldRecord {
                    position: 10,
                    stream: "order/o-1".into(),
                }],
                cursor: 11,
            }),
            GroupEvent::Acked(Acked { positions: vec![9] }),
            GroupEvent::Nacked(Nacked {
                positions: vec![9],
                action: NackAction::Retry,
                retry_at_ms: 5,
                error: Some("boom".into()),
            }),
            GroupEvent::Expired(Expired {
                positions: vec![9],
                at_ms: 4,
            }),
            GroupEvent::Parked(Parked {
                entries: vec![ParkRecord {
                    position: 9,
                    error: None,
                }],
                at_ms: 4,
            }),
            GroupEvent::Replayed(Replayed { positions: vec![9] }),
            GroupEvent::Paused(Paused {
                reason: "410".into(),
            }),
            GroupEvent::Resumed(Resumed {}),
            GroupEvent::Snapshot(Snapshot {
                part: 0,
                parts: 1,
                header: Some(SnapshotHeader {
                    config,
                    cursor: 3,
                    delivered: 2,
                    paused: None,
                    last_error: None,
                    created_at_ms: 1,
                }),
                messages: vec![],
                parked: vec![],
            }),
        ];
        for event in events {
            let back = GroupEvent::from_recorded(&recorded(&event))
                .expect("decodes")
                .expect("known type");
            assert_eq!(back, event);
        }
    }

    #[test]
    fn unknown_types_are_skipped_and_bad_data_is_an_error() {
        let mut event = recorded(&GroupEvent::Resumed(Resumed {}));
        event.event_type = EventType::parse("SomethingNew").expect("valid");
        assert_eq!(GroupEvent::from_recorded(&event), Ok(None));
        event.event_type = EventType::parse("Acked").expect("valid");
        event.data = Payload::Json(JsonText::parse("{\"positions\": 5}".into()).expect("json"));
        assert!(GroupEvent::from_recorded(&event).is_err());
    }

    #[test]
    fn resets_are_created_deleted_and_the_first_part_of_a_snapshot() {
        assert!(GroupEvent::Deleted(Deleted { at_ms: 0 }).is_reset());
        assert!(!GroupEvent::Acked(Acked { positions: vec![] }).is_reset());
        let part = |part| {
            GroupEvent::Snapshot(Snapshot {
                part,
                parts: 2,
                header: None,
                messages: vec![],
                parked: vec![],
            })
        };
        assert!(part(0).is_reset());
        assert!(!part(1).is_reset());
    }
}
