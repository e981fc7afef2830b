//! What the keyring and its operations can fail with. Start-up turns these into
//! [`crate::ServerError::Auth`]; requests map them to problem+json in [`crate::problem`].

use runnel_core::StoreError;

pub use crate::auth::keyring::KeyringError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the keyring's store failed")]
    Store(#[from] StoreError),

    #[error(transparent)]
    Keyring(#[from] KeyringError),

    #[error("no API key has the id {id}")]
    KeyNotFound { id: String },

    #[error("there are {max} API keys already (max_keys = {max}); revoke some first")]
    TooManyKeys { max: usize },

    /// The write succeeded but this node could not read it back in time.
    #[error("the keyring change was written but is not applied yet; retry the request")]
    NotApplied,

    #[error("{0}")]
    InvalidConfig(String),
}
