//! Running the router on a socket, and the graceful shutdown: stop accepting, let in-flight
//! requests (appends above all) finish, close live subscriptions, then close the store so that
//! everything acknowledged is durable.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;

use runnel_core::Store;
use tokio::net::TcpListener;

use crate::auth::{Auth, GeneratedAdminKey};
use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::routes::app;
use crate::state::AppState;
use crate::telemetry::Telemetry;

/// A server bound to its address, not yet serving.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: ServerConfig,
    store: Arc<dyn Store>,
    auth: Auth,
    generated_admin_key: Option<GeneratedAdminKey>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Server {
    pub async fn bind(config: ServerConfig, store: Arc<dyn Store>) -> Result<Self, ServerError> {
        let addr = config.listen;
        let (auth, generated_admin_key) = Auth::open(Arc::clone(&store), &config).await?;
        if config.insecure {
            tracing::warn!(
                "INSECURE: authentication is off (--insecure): every request may read, write and manage everything"
            );
        }
        let bind_error = |source| ServerError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            local_addr,
            config,
            store,
            auth,
            generated_admin_key,
        })
    }

    /// The admin key this start generated (a first start with no admin key configured), to be
    /// shown to the operator once; only its hash is stored.
    pub fn generated_admin_key(&self) -> Option<&GeneratedAdminKey> {
        self.generated_admin_key.as_ref()
    }

    /// The address actually bound (the port is chosen by the system when configured as 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then shuts down gracefully and closes the store.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let state = AppState::new(self.store, self.config, self.auth);
        let upkeep = tokio::spawn(run_upkeep(state.telemetry().clone()));
        let keyring = tokio::spawn(state.auth().clone().follow(state.shutdown_signal()));
        let groups = tokio::spawn(state.groups().clone().run());
        let webhooks = tokio::spawn({
            let groups = state.groups().clone();
            let delivery = state.config().webhook_delivery();
            let shutdown = state.shutdown_signal();
            async move {
                if let Err(error) = runnel_broker::delivery::run(groups, delivery, shutdown).await {
                    tracing::error!(%error, "webhook delivery is not running");
                }
            }
        });
        let signal_state = state.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections; finishing in-flight requests");
            signal_state.begin_shutdown();
        };
        let server = axum::serve(self.listener, app(state.clone()))
            .with_graceful_shutdown(signal)
            .into_future();
        let grace = state.config().shutdown_grace();
        let mut shutdown_begun = state.shutdown_signal();
        let deadline = async move {
            // Only once shutdown began does the grace period start counting.
            let _ = shutdown_begun.wait_for(|down| *down).await;
            tokio::time::sleep(grace).await;
        };
        let served = tokio::select! {
            served = server => served.map_err(ServerError::Serve),
            () = deadline => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "requests still running after the shutdown grace period; closing the store anyway");
                Ok(())
            }
        };
        upkeep.abort();
        keyring.abort();
        groups.abort();
        webhooks.abort();
        // Close the store even when serving failed: what was acknowledged must be synced.
        let closed = state.store().close().await.map_err(ServerError::Close);
        tracing::info!("the store is closed");
        served.and(closed)
    }
}

/// Binds `config.listen` and serves `store` until `shutdown` completes; see [`Server::run`].
pub async fn serve(
    config: ServerConfig,
    store: Arc<dyn Store>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    Server::bind(config, store).await?.run(shutdown).await
}

async fn run_upkeep(telemetry: Telemetry) {
    let mut interval = tokio::time::interval(Telemetry::UPKEEP_INTERVAL);
    loop {
        interval.tick().await;
        telemetry.run_upkeep();
    }
}
