//! The head follower: keeps this node's watch of the last visible position up to date with
//! commits on every node.
//!
//! The head is the last position below the horizon (`sql/read_head.sql`): every event up
//! to it is committed and no event can appear below it later. After each group commit, the
//! writer reads it and sends it to every node with `NOTIFY runnel_head, '<schema> <head>'`, so
//! the follower can publish a notified head at once.
//!
//! A notification is only a hint: those sent while the listener reconnects are lost, and a
//! commit that an older transaction hides when it notifies is revealed by that transaction's
//! end, which notifies nothing if it was not Runnel's. So after every (re)connect, once
//! `LISTEN` is in place, the follower reads the head from the table; it reads it again every
//! `head_poll_interval_ms` anyway, and every [`CATCH_UP_POLL`] while this node's writer has
//! committed appends that readers cannot see yet ([`Pending`]). A lost notification costs at
//! most that much latency, never an event: followers re-read the log from their own last
//! position.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use runnel_core::Position;
use tokio::sync::{Notify, mpsc, watch};
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

/// How often the follower reads the head while this node has committed appends that readers
/// cannot see yet, which wait for it to be answered. Usually the commit that hides them is
/// another Runnel commit, whose notification moves the head first; this bounds the wait when
/// the transaction in the way belongs to someone else.
pub(crate) const CATCH_UP_POLL: Duration = Duration::from_millis(10);

/// The highest position this node's writer committed and is waiting to see below the horizon,
/// so that the follower reads the head often until it does.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// One past the highest such position (0: none yet).
    end: AtomicU64,
    wake: Notify,
}

impl Pending {
    /// A commit up to `last` waits to be seen.
    pub(crate) fn expect(&self, last: Position) {
        self.end.fetch_max(last.0 + 1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Whether something committed here is above `head`.
    fn beyond(&self, head: Option<Position>) -> bool {
        let end = self.end.load(Ordering::Relaxed);
        end > head.map_or(0, |head| head.0 + 1)
    }
}

/// The last visible position as the table says (`None`: nothing is visible yet).
pub(crate) async fn read_head(
    client: &Client,
    statement: &Statement,
) -> Result<Option<Position>, tokio_postgres::Error> {
    let last: i64 = client.query_one(statement, &[]).await?.get(0);
    Ok(u64::try_from(last).ok().map(Position))
}

#[derive(Debug)]
pub(crate) struct HeadFollower {
    pub(crate) endpoint: crate::connect::Endpoint,
    pub(crate) schema: String,
    pub(crate) head: Arc<watch::Sender<Option<Position>>>,
    pub(crate) pending: Arc<Pending>,
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
        let mut last_read = tokio::time::Instant::now();
        loop {
            let catching_up = self.pending.beyond(*self.head.borrow());
            let interval = if catching_up {
                CATCH_UP_POLL
            } else {
                self.poll_interval
            };
            tokio::select! {
                notification = notifications.recv() => {
                    let Some(notification) = notification else {
                        return "the listener connection ended".to_owned();
                    };
                    if let Some(position) = parse_notice(notification.payload(), &self.schema) {
                        publish(&self.head, position);
                    }
                    continue;
                }
                // Something committed here waits to be seen: poll at the catch-up pace.
                () = self.pending.wake.notified(), if !catching_up => continue,
                () = tokio::time::sleep_until(last_read + interval) => {}
            }
            last_read = tokio::time::Instant::now();
            match tokio::time::timeout(self.answer_timeout, read_head(&client, &statement)).await {
                Ok(Ok(Some(head))) => publish(&self.head, head),
                Ok(Ok(None)) => {}
                Ok(Err(error)) => return crate::error::describe(&error),
                Err(_) => return "timed out reading the head".to_owned(),
            }
        }
    }
}

/// The position in a notification for `schema` (`<schema> <position>`); `None` for another
/// schema's notification, a malformed one, or one that says nothing is visible yet (-1).
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
        assert_eq!(parse_notice("public -1", "public"), None);
    }

    #[test]
    fn pending_commits_are_beyond_a_head_until_it_reaches_them() {
        let pending = Pending::default();
        assert!(!pending.beyond(None));
        pending.expect(Position(7 << 16));
        assert!(pending.beyond(None));
        assert!(pending.beyond(Some(Position((7 << 16) - 1))));
        assert!(!pending.beyond(Some(Position(7 << 16))));
        pending.expect(Position(3));
        assert!(
            !pending.beyond(Some(Position(7 << 16))),
            "it never goes back"
        );
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
