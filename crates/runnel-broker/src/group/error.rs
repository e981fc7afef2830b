//! What a consumer-group request can fail with. The server maps each variant to one
//! problem+json `code`.

use runnel_core::StoreError;

use super::config::ConfigError;
use super::name::GroupName;

/// A failed group operation.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// No group has this name.
    #[error("no subscription is named {name}")]
    NotFound {
        /// The name asked for.
        name: GroupName,
    },

    /// The configuration is not valid.
    #[error("{0}")]
    InvalidConfig(#[from] ConfigError),

    /// Creating one more group would pass the limit.
    #[error("the server already holds {max} subscriptions (the limit); delete one first")]
    TooManyGroups {
        /// The limit.
        max: usize,
    },

    /// A pull request to a webhook group, or the other way round.
    #[error("subscription {name} delivers by {mode}; {hint}")]
    WrongDeliveryMode {
        /// The group.
        name: GroupName,
        /// Its delivery mode.
        mode: &'static str,
        /// What to do instead.
        hint: &'static str,
    },

    /// Other writers changed the group on every attempt; the caller may retry.
    #[error("subscription {name} is being changed by others too often; retry")]
    Contended {
        /// The group.
        name: GroupName,
    },

    /// The group's state stream holds an event this version cannot read.
    #[error("the state of subscription {name} is unreadable at revision {revision}: {reason}")]
    Corrupt {
        /// The group.
        name: GroupName,
        /// The revision of the unreadable event in `$group/{name}`.
        revision: u64,
        /// Why.
        reason: String,
    },

    /// The server is stopping.
    #[error("the server is shutting down")]
    ShuttingDown,

    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
