//! The index, in redb: which events a stream holds and where, where each event id lives, where
//! each batch starts, and the streams and stream types that exist.
//!
//! The log is the source of truth and the index is derived from it. The writer commits index
//! updates after the log's fdatasync with redb's `Durability::None` (no fsync of its own), and
//! makes a durable commit now and then; after a crash redb reverts to its last durable commit,
//! and recovery re-indexes the log from the `next_position` recorded in that commit. So the index
//! never refers to log bytes that are not durable, and it lags the log by a bounded amount.
//!
//! Nothing here is held in memory beyond redb's page cache, whose size is configured: the index
//! of ten million events is a file, not a heap.

use std::ops::Bound;
use std::path::Path;

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
};
use runnel_core::{Position, RecordedAt, Revision, StoreError, StreamName};
use uuid::Uuid;

use crate::log::reader::Location;

/// `type \0 id` → (last revision, created at, updated at). The separator sorts before every
/// character a stream id may contain, so a type's streams are contiguous and in id order.
const STREAMS: TableDefinition<&str, (u64, i64, i64)> = TableDefinition::new("streams");
/// (stream key, revision) → (position, segment, offset).
const STREAM_EVENTS: TableDefinition<(&str, u64), (u64, u64, u64)> =
    TableDefinition::new("stream_events");
/// Event id → (position, segment, offset).
const EVENT_IDS: TableDefinition<u128, (u64, u64, u64)> = TableDefinition::new("event_ids");
/// First position of a batch → (segment, offset of its header frame): where `$all` reads start.
const BATCHES: TableDefinition<u64, (u64, u64)> = TableDefinition::new("batches");
/// Stream type → number of streams.
const STREAM_TYPES: TableDefinition<&str, u64> = TableDefinition::new("stream_types");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

const META_NEXT_POSITION: &str = "next_position";
const META_INDEX_VERSION: &str = "index_version";
/// Bumped when the tables change shape; an index of another version is rebuilt from the log.
const INDEX_VERSION: u64 = 1;

const STREAM_KEY_SEPARATOR: char = '\0';

pub(crate) fn stream_key(stream: &StreamName) -> String {
    format!(
        "{}{STREAM_KEY_SEPARATOR}{}",
        stream.stream_type(),
        stream.stream_id()
    )
}

/// What the index knows of a stream's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamHead {
    pub(crate) last_revision: Revision,
    pub(crate) created_at: RecordedAt,
    pub(crate) updated_at: RecordedAt,
}

/// Where an indexed event lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventLocation {
    pub(crate) position: Position,
    pub(crate) location: Location,
}

#[derive(Debug, Clone)]
pub(crate) struct IndexedEvent {
    pub(crate) stream_key: String,
    pub(crate) revision: Revision,
    pub(crate) id: Uuid,
    pub(crate) at: EventLocation,
}

/// The index entries of one or more batches, applied in one redb transaction.
#[derive(Debug, Default)]
pub(crate) struct IndexUpdate {
    pub(crate) batches: Vec<(Position, Location)>,
    pub(crate) events: Vec<IndexedEvent>,
    /// Final heads of the streams the batches touched; `true` for streams they created.
    pub(crate) streams: Vec<(String, StreamHead, bool)>,
    pub(crate) next_position: Position,
}

fn index_error(action: &str) -> impl FnOnce(redb::Error) -> StoreError + '_ {
    move |error| StoreError::Index {
        action: action.to_owned(),
        cause: error.to_string(),
    }
}

/// `?` for any redb error type, naming what was being done.
trait IndexResult<T> {
    fn during(self, action: &str) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> IndexResult<T> for Result<T, E> {
    fn during(self, action: &str) -> Result<T, StoreError> {
        self.map_err(|e| index_error(action)(e.into()))
    }
}

#[derive(Debug)]
pub(crate) struct Index {
    db: Database,
}

impl Index {
    /// Opens or creates the index. An index of another version is discarded (it is rebuilt).
    pub(crate) fn open(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .during("opening the index")?;
        let index = Self { db };
        let version = index.meta(META_INDEX_VERSION)?;
        if version.is_some_and(|v| v != INDEX_VERSION) {
            drop(index);
            std::fs::remove_file(path)
                .map_err(|e| StoreError::io("removing an index of another version", e))?;
            return Self::open(path, cache_bytes);
        }
        index.create_tables()?;
        Ok(index)
    }

    /// Opens an existing index without changing it, for offline verification. `None` when there
    /// is none (it is rebuilt at the next open).
    pub(crate) fn open_existing(path: &Path) -> Result<Option<Self>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        let db =
            Database::open(path).during("opening the index (is a server using this directory?)")?;
        Ok(Some(Self { db }))
    }

    fn create_tables(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().during("creating index tables")?;
        {
            txn.open_table(STREAMS).during("creating index tables")?;
            txn.open_table(STREAM_EVENTS)
                .during("creating index tables")?;
            txn.open_table(EVENT_IDS).during("creating index tables")?;
            txn.open_table(BATCHES).during("creating index tables")?;
            txn.open_table(STREAM_TYPES)
                .during("creating index tables")?;
            let mut meta = txn.open_table(META).during("creating index tables")?;
            meta.insert(META_INDEX_VERSION, INDEX_VERSION)
                .during("creating index tables")?;
        }
        txn.commit().during("creating index tables")
    }

    fn meta(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read().during("reading index metadata")?;
        let table = match txn.open_table(META) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(error) => return Err(index_error("reading index metadata")(error.into())),
        };
        Ok(table
            .get(key)
            .during("reading index metadata")?
            .map(|guard| guard.value()))
    }

    /// The first position the index does not cover: recovery re-indexes the log from here.
    pub(crate) fn next_position(&self) -> Result<Position, StoreError> {
        Ok(Position(self.meta(META_NEXT_POSITION)?.unwrap_or(0)))
    }

    /// Applies `update`; `durable` makes redb fsync this commit (and every earlier one).
    pub(crate) fn apply(&self, update: &IndexUpdate, durable: bool) -> Result<(), StoreError> {
        const ACTION: &str = "updating the index";
        let mut txn = self.db.begin_write().during(ACTION)?;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(|e| StoreError::Index {
            action: ACTION.to_owned(),
            cause: e.to_string(),
        })?;
        {
            let mut batches = txn.open_table(BATCHES).during(ACTION)?;
            for (first, location) in &update.batches {
                batches
                    .insert(first.0, (location.segment.0, location.offset))
                    .during(ACTION)?;
            }
            let mut stream_events = txn.open_table(STREAM_EVENTS).during(ACTION)?;
            let mut event_ids = txn.open_table(EVENT_IDS).during(ACTION)?;
            for event in &update.events {
                let value = (
                    event.at.position.0,
                    event.at.location.segment.0,
                    event.at.location.offset,
                );
                stream_events
                    .insert((event.stream_key.as_str(), event.revision.0), value)
                    .during(ACTION)?;
                event_ids.insert(event.id.as_u128(), value).during(ACTION)?;
            }
            let mut streams = txn.open_table(STREAMS).during(ACTION)?;
            let mut types = txn.open_table(STREAM_TYPES).during(ACTION)?;
            for (key, head, created) in &update.streams {
                streams
                    .insert(
                        key.as_str(),
                        (
                            head.last_revision.0,
                            head.created_at.as_micros(),
                            head.updated_at.as_micros(),
                        ),
                    )
                    .during(ACTION)?;
                if *created {
                    let stream_type = key
                        .split_once(STREAM_KEY_SEPARATOR)
                        .map_or(key.as_str(), |(t, _)| t);
                    let count = types
                        .get(stream_type)
                        .during(ACTION)?
                        .map_or(0, |guard| guard.value());
                    types.insert(stream_type, count + 1).during(ACTION)?;
                }
            }
            let mut meta = txn.open_table(META).during(ACTION)?;
            meta.insert(META_NEXT_POSITION, update.next_position.0)
                .during(ACTION)?;
        }
        txn.commit().during(ACTION)
    }

    /// A consistent snapshot for reads.
    pub(crate) fn reader(&self) -> Result<IndexReader, StoreError> {
        Ok(IndexReader {
            txn: self.db.begin_read().during("starting an index read")?,
        })
    }
}

/// A read snapshot of the index.
#[derive(Debug)]
pub(crate) struct IndexReader {
    txn: ReadTransaction,
}

fn unpack(value: (u64, u64, u64)) -> EventLocation {
    EventLocation {
        position: Position(value.0),
        location: Location {
            segment: Position(value.1),
            offset: value.2,
        },
    }
}

fn unpack_head(value: (u64, i64, i64)) -> StreamHead {
    StreamHead {
        last_revision: Revision(value.0),
        created_at: RecordedAt(value.1),
        updated_at: RecordedAt(value.2),
    }
}

impl IndexReader {
    pub(crate) fn stream_head(&self, key: &str) -> Result<Option<StreamHead>, StoreError> {
        const ACTION: &str = "reading a stream head";
        let table = self.txn.open_table(STREAMS).during(ACTION)?;
        Ok(table
            .get(key)
            .during(ACTION)?
            .map(|guard| unpack_head(guard.value())))
    }

    pub(crate) fn event_by_id(&self, id: Uuid) -> Result<Option<EventLocation>, StoreError> {
        const ACTION: &str = "looking up an event id";
        let table = self.txn.open_table(EVENT_IDS).during(ACTION)?;
        Ok(table
            .get(id.as_u128())
            .during(ACTION)?
            .map(|guard| unpack(guard.value())))
    }

    /// Up to `limit` (revision, location) pairs of a stream from `from`, in either direction.
    pub(crate) fn stream_events(
        &self,
        key: &str,
        from: Revision,
        forward: bool,
        limit: usize,
    ) -> Result<Vec<(Revision, EventLocation)>, StoreError> {
        const ACTION: &str = "reading a stream's index";
        let table = self.txn.open_table(STREAM_EVENTS).during(ACTION)?;
        let mut found = Vec::with_capacity(limit.min(1024));
        let entries: Box<dyn Iterator<Item = _>> = if forward {
            Box::new(
                table
                    .range((key, from.0)..=(key, u64::MAX))
                    .during(ACTION)?,
            )
        } else {
            Box::new(table.range((key, 0)..=(key, from.0)).during(ACTION)?.rev())
        };
        for entry in entries.take(limit) {
            let (k, v) = entry.during(ACTION)?;
            found.push((Revision(k.value().1), unpack(v.value())));
        }
        Ok(found)
    }

    /// The batch holding `position`: its first position and where its header is.
    pub(crate) fn batch_containing(
        &self,
        position: Position,
    ) -> Result<Option<(Position, Location)>, StoreError> {
        const ACTION: &str = "locating a batch";
        let table = self.txn.open_table(BATCHES).during(ACTION)?;
        let mut range = table.range(..=position.0).during(ACTION)?;
        let Some(entry) = range.next_back() else {
            return Ok(None);
        };
        let (first, value) = entry.during(ACTION)?;
        let (segment, offset) = value.value();
        Ok(Some((
            Position(first.value()),
            Location {
                segment: Position(segment),
                offset,
            },
        )))
    }

    /// Stream types with their stream counts, after `after`; one more than `limit` is read to
    /// tell whether another page exists.
    pub(crate) fn stream_types(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, u64)>, bool), StoreError> {
        const ACTION: &str = "listing stream types";
        let table = self.txn.open_table(STREAM_TYPES).during(ACTION)?;
        let range = match after {
            Some(after) => table.range::<&str>((Bound::Excluded(after), Bound::Unbounded)),
            None => table.range::<&str>(..),
        }
        .during(ACTION)?;
        let mut found = Vec::new();
        for entry in range {
            let (k, v) = entry.during(ACTION)?;
            if found.len() == limit {
                return Ok((found, true));
            }
            found.push((k.value().to_owned(), v.value()));
        }
        Ok((found, false))
    }

    /// Streams of one type in id order after `after`, and whether more exist.
    pub(crate) fn streams_of_type(
        &self,
        stream_type: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, StreamHead)>, bool), StoreError> {
        const ACTION: &str = "listing streams";
        let table = self.txn.open_table(STREAMS).during(ACTION)?;
        let start = match after {
            Some(id) => Bound::Excluded(format!("{stream_type}{STREAM_KEY_SEPARATOR}{id}")),
            None => Bound::Included(format!("{stream_type}{STREAM_KEY_SEPARATOR}")),
        };
        // '\u{1}' is the character after the separator: the end of this type's keys.
        let end = Bound::Excluded(format!("{stream_type}\u{1}"));
        let start_ref = match &start {
            Bound::Included(s) => Bound::Included(s.as_str()),
            Bound::Excluded(s) => Bound::Excluded(s.as_str()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end_ref = match &end {
            Bound::Excluded(s) => Bound::Excluded(s.as_str()),
            _ => Bound::Unbounded,
        };
        let mut found = Vec::new();
        for entry in table.range::<&str>((start_ref, end_ref)).during(ACTION)? {
            let (k, v) = entry.during(ACTION)?;
            if found.len() == limit {
                return Ok((found, true));
            }
            let key = k.value();
            let id = key
                .split_once(STREAM_KEY_SEPARATOR)
                .map_or(key, |(_, id)| id)
                .to_owned();
            found.push((id, unpack_head(v.value())));
        }
        Ok((found, false))
    }

    /// The location of `(stream, revision)`, for verification.
    pub(crate) fn stream_event(
        &self,
        key: &str,
        revision: Revision,
    ) -> Result<Option<EventLocation>, StoreError> {
        const ACTION: &str = "reading a stream's index";
        let table = self.txn.open_table(STREAM_EVENTS).during(ACTION)?;
        Ok(table
            .get((key, revision.0))
            .during(ACTION)?
            .map(|guard| unpack(guard.value())))
    }
}
