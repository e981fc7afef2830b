//! Runnel's HTTP API over any [`runnel_core::Store`]: the routes of API.md, problem+json errors,
//! live subscriptions over Server-Sent Events, the OpenAPI document and its docs page, health
//! and Prometheus metrics.
//!
//! [`app`] builds the router alone, so it can be driven without a socket; [`Server`] binds a
//! listener (HTTPS when [`ServerConfig::tls`] is set, see [`TlsFiles`]) and runs the router
//! until a shutdown signal, then drains in-flight requests, closes live subscriptions and closes
//! the store; [`serve`] does both in one call.

mod auth;
mod config;
mod error;
mod extract;
#[cfg(test)]
mod http_properties;
mod middleware;
mod model;
mod per_key;
mod problem;
mod routes;
mod server;
mod state;
mod subscription;
mod telemetry;
mod tls;

pub use auth::{AuthError, GeneratedAdminKey, KeyringError};
pub use config::{AuthConfig, Secret, ServerConfig};
pub use error::ServerError;
pub use problem::{ApiError, PROBLEM_JSON, Problem};
pub use routes::{app, openapi};
pub use server::{Server, serve};
pub use state::AppState;
pub use tls::{TlsError, TlsFiles, crypto_provider, install_crypto_provider};

/// Entry points for the fuzz targets in `fuzz/`. Not a stable API.
#[doc(hidden)]
pub mod fuzzing;
