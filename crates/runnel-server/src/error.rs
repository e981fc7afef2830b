//! What can stop the server itself (as opposed to one request, see [`crate::ApiError`]).

use std::net::SocketAddr;

use runnel_core::StoreError;

use crate::auth::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// The keyring could not be loaded, or the key settings are wrong.
    #[error("cannot load the API keys")]
    Auth(#[from] AuthError),

    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),

    #[error("the store did not close cleanly")]
    Close(#[source] StoreError),
}
