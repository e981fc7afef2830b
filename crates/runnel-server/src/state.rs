//! What every handler shares: the store, the configuration, the keyring, the bounds on
//! concurrent work and the shutdown signal.

use std::fmt;
use std::sync::Arc;

use runnel_broker::group::{GroupLimits, GroupService};
use runnel_core::Store;
use tokio::sync::{Semaphore, watch};

use crate::auth::Auth;
use crate::config::ServerConfig;
use crate::per_key::PerKeyLimit;
use crate::telemetry::Telemetry;

/// Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    config: ServerConfig,
    /// The keyring and how requests are authenticated.
    auth: Auth,
    telemetry: Telemetry,
    /// Permits for requests being handled; a request that finds none is shed with 503.
    requests: Arc<Semaphore>,
    /// Permits for open live subscriptions; a subscribe that finds none gets 429.
    subscriptions: Arc<Semaphore>,
    /// Open live subscriptions per API key, bounded by `max_subscriptions_per_key`.
    key_subscriptions: Arc<PerKeyLimit>,
    /// `true` once a graceful shutdown began: readiness turns 503 and subscriptions end.
    shutdown: watch::Sender<bool>,
    /// Consumer groups; their long polls end when `shutdown` turns true.
    groups: GroupService,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.inner.store)
            .field("config", &self.inner.config)
            .field("shutting_down", &self.is_shutting_down())
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub(crate) fn new(store: Arc<dyn Store>, config: ServerConfig, auth: Auth) -> Self {
        let requests = Arc::new(Semaphore::new(config.max_concurrent_requests.max(1)));
        let subscriptions = Arc::new(Semaphore::new(config.max_subscriptions));
        let key_subscriptions = PerKeyLimit::new(config.max_subscriptions_per_key);
        let shutdown = watch::Sender::new(false);
        let groups = GroupService::new(
            Arc::clone(&store),
            GroupLimits::default(),
            shutdown.subscribe(),
        );
        Self {
            inner: Arc::new(Inner {
                store,
                groups,
                auth,
                telemetry: Telemetry::global(),
                requests,
                subscriptions,
                key_subscriptions,
                shutdown,
                config,
            }),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    /// The consumer groups.
    pub fn groups(&self) -> &GroupService {
        &self.inner.groups
    }

    pub(crate) fn telemetry(&self) -> &Telemetry {
        &self.inner.telemetry
    }

    pub(crate) fn request_permits(&self) -> &Arc<Semaphore> {
        &self.inner.requests
    }

    pub(crate) fn subscription_permits(&self) -> &Arc<Semaphore> {
        &self.inner.subscriptions
    }

    pub(crate) fn key_subscription_permits(&self) -> &Arc<PerKeyLimit> {
        &self.inner.key_subscriptions
    }

    /// Starts a graceful shutdown: readiness fails and live subscriptions close. Idempotent.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.inner.shutdown.borrow()
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }
}
