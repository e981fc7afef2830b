//! The head follower: keeps this node's watch of the last committed position up to date with
//! commits on every node.
//!
//! Each group commit sends `NOTIFY runnel_head, '<schema> <last position>'` inside its
//! transaction, so PostgreSQL delivers it to every listening node when, and only if, it commits.
//! Because positions are assigned under the log head's lock, every position up to a notified
//! one is committed too, so the follower can publish it at once.
//!
//! A notification is only a hint: those sent while the listener reconnects are lost. So after
//! every (re)connect, once `LISTEN` is in place, the follower reads the head from the table, and
//! it reads it again every `head_poll_interval_ms` anyway. A lost notification costs at most that
//! much latency, never an event: followers re-read the log from their own last position.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use runnel_core::Position;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{Client, Statement};

use crate::connect::connect_listening;
use crate::writer::HEAD_CHANNEL;

const READ_HEAD: &str = include_str!("sql/read_head.sql");

/// Moves the watch to `position` unless it is already there or further: the head only grows,
/// whichever of the writer, a notification or a poll reports it first.
pub(crate) fn publish(head: &watch::Sender<Option<Position>>, position: Position) {
    head.send_if_modified(|current| {
        if current.is_none_or(|current| current < position) {
            *current = Some(position);
            true
        } else {
            false
        }
    });
}

/// The last committed position as the table says (`None`: the log is empty).
pub(crate) async fn read_head(
    client: &Client,
    statement: &Statement,
) -> Result<Option<Position>, tokio_postgres::Error> {
    let next: i64 = client.query_one(statement, &[]).await?.get(0);
    Ok(u64::try_from(next)
        .ok()
        .and_then(|next| next.checked_sub(1))
        .map(Position))
}

#[derive(Debug)]
pub(crate) struct HeadFollower {
    pub(crate) endpoint: crate::connect::Endpoint,
    pub(crate) schema: String,
    pub(crate) head: Arc<watch::Sender<Option<Position>>>,
    pub(crate) poll_interval: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) answer_timeout: Duration,
    pub(crate) reconnect_backoff: Duration,
    /// Whether the listener is connected and listening, for readiness.
    pub(crate) listening: Arc<AtomicBool>,
}

/// A listener connection with `LISTEN` in place.
pub(crate) struct Listening {
    client: Client,
    notifications: mpsc::Receiver<tokio_postgres::Notification>,
    read_head: Statement,
}

impl std::fmt::Debug for Listening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listening").finish_non_exhaustive()
    }
}

impl HeadFollower {
    /// Runs until the task is aborted (the store closes), starting with `listening` (set up
    /// by `open`) and reconnecting whenever the listener's connection fails.
    pub(crate) async fn run(self, mut listening: Option<Listening>) {
        loop {
            let connected = match listening.take() {
                Some(listening) => Ok(listening),
                None => self.listen().await,
            };
            let ended = match connected {
                Ok(listening) => self.follow(listening).await,
                Err(cause) => cause,
            };
            tracing::debug!(cause = %ended, "the head listener lost its connection; reconnecting");
            self.listening.store(false, Ordering::Relaxed);
            tokio::time::sleep(self.reconnect_backoff).await;
        }
    }

    /// Connects, listens, and publishes the head as the table has it once LISTEN is in place
    /// (so no commit after that read can go unnoticed).
    pub(crate) async fn listen(&self) -> Result<Listening, String> {
        let (client, notifications) = connect_listening(&self.endpoint, self.connect_timeout)
            .await
            .map_err(|error| error.to_string())?;
        let setup = async {
            client
                .batch_execute(&format!("LISTEN {HEAD_CHANNEL}"))
                .await?;
            let statement = client.prepare(READ_HEAD).await?;
            let head = read_head(&client, &statement).await?;
            Ok::<_, tokio_postgres::Error>((statement, head))
        };
        let (read_head, head) = tokio::time::timeout(self.answer_timeout, setup)
            .await
            .map_err(|_| "timed out setting up LISTEN".to_owned())?
            .map_err(|error| crate::error::describe(&error))?;
        if let Some(head) = head {
            publish(&self.head, head);
        }
        self.listening.store(true, Ordering::Relaxed);
        Ok(Listening {
            client,
            notifications,
            read_head,
        })
    }

    /// Follows notifications and polls until the connection fails; returns why it stopped.
    async fn follow(&self, listening: Listening) -> String {
        let Listening {
            client,
            mut notifications,
            read_head: statement,
        } = listening;
        let mut poll = tokio::time::interval(self.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                notification = notifications.recv() => {
                    let Some(notification) = notification else {
                        return "the listener connection ended".to_owned();
                    };
                    if let Some(position) = parse_notice(notification.payload(), &self.schema) {
                        publish(&self.head, position);
                    }
                }
                _ = poll.tick() => {
                    match tokio::time::timeout(self.answer_timeout, read_head(&client, &statement)).await {
                        Ok(Ok(Some(head))) => publish(&self.head, head),
                        Ok(Ok(None)) => {}
                        Ok(Err(error)) => return crate::error::describe(&error),
                        Err(_) => return "timed out reading the head".to_owned(),
                    }
                }
            }
        }
    }
}

/// The position in a notification for `schema` (`<schema> <position>`); `None` for another
/// schema's notification or a malformed one.
fn parse_notice(payload: &str, schema: &str) -> Option<Position> {
    let (from, position) = payload.rsplit_once(' ')?;
    if from != schema {
        return None;
    }
    position.parse().ok().map(Position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_of_other_schemas_are_ignored() {
        assert_eq!(parse_notice("public 41", "public"), Some(Position(41)));
        assert_eq!(parse_notice("my schema 7", "my schema"), Some(Position(7)));
        assert_eq!(parse_notice("other 41", "public"), None);
        assert_eq!(parse_notice("public x", "public"), None);
        assert_eq!(parse_notice("", "public"), None);
    }

    #[test]
    fn the_published_head_never_goes_back() {
        let (sender, receiver) = watch::channel(None);
        publish(&sender, Position(5));
        publish(&sender, Position(3));
        assert_eq!(*receiver.borrow(), Some(Position(5)));
        publish(&sender, Position(6));
        assert_eq!(*receiver.borrow(), Some(Position(6)));
    }
}
