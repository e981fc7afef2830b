//! What can stop the server itself (as opposed to one request, see [`crate::ApiError`]).

use std::net::SocketAddr;

use runnel_core::StoreError;

use crate::auth::AuthError;

use crate::tls::TlsError;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// Plain HTTP on a network address would send keys and events in the clear.
    #[error(
        "refusing to serve plain HTTP on {addr}, which is not a loopback address: give a \
         certificate with --tls-cert and --tls-key (tls_cert, tls_key) to serve HTTPS, or pass \
         --insecure (insecure = true) to accept plain HTTP on a trusted network"
    )]
    PlaintextOnNetwork { addr: SocketAddr },

    #[error("cannot set up TLS")]
    Tls(#[from] TlsError),

    /// The keyring could not be loaded, or the key settings are wrong.
    #[error("cannot load the API keys")]
    Auth(#[from] AuthError),

    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),

    #[error("the store did not close cleanly")]
    Close(#[source] StoreError),
}
