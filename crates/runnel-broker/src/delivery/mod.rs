//! Webhook delivery: one worker per webhook group, each a consumer of the
//! [`GroupService`] like any pull consumer. It leases up to the group's `max_in_flight`
//! events, POSTs each to the endpoint signed with the Standard Webhooks headers, and acks a 2xx
//! or nacks anything else with a backoff delay (so the group's state machine keeps the retry
//! times, the delivery counts and the parking after `max_deliveries`, durably).
//!
//! - A 410 Gone pauses the group (a person resumes it).
//! - Every pause and resume the workers make on their own is recorded through
//!   [`AuditTrail`], naming the group, the reason and the endpoint.
//! - Redirects are not followed: a 3xx is a failure, so an endpoint cannot bounce deliveries
//!   to an address the guard would refuse.
//! - Each endpoint (URL) has one circuit breaker, shared by every group delivering there
//!   ([`endpoint`]): when it opens, each of those groups is paused with a reason that says so;
//!   after the cool-down one event of one group goes as a probe, and the breaker closes on its
//!   success, resuming every group it paused (or opens for longer on its failure).
//! - Private, loopback and link-local addresses are refused unless
//!   [`DeliveryConfig::allow_private`] ([`guard`]).
//!
//! [`run`] watches the groups ([`GroupService::list`] and [`GroupService::changes`]) and
//! starts, restarts (when a group's delivery settings change) and stops workers.

mod attempt;
mod audit;
mod endpoint;
pub mod guard;
pub mod telemetry;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use runnel_core::MAX_PAGE_LIMIT;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::circuit::CircuitConfig;
use crate::group::{Delivery, GroupName, GroupService, GroupView};
use crate::retry::BackoffPolicy;

pub use attempt::{AttemptResult, message};
pub use audit::{AuditFuture, AuditTrail, NoAuditTrail, ServerAction, ServerActionRecord};
pub use worker::CIRCUIT_PAUSE_PREFIX;

/// How webhooks are delivered. [`Default`] suits production.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryConfig {
    /// Deliver to private, loopback and link-local addresses too (development and tests).
    pub allow_private: bool,
    /// The wait between attempts of one event.
    pub backoff: BackoffPolicy,
    /// When an endpoint's breaker opens and how it recovers.
    pub circuit: CircuitConfig,
    /// How long a connection may take to open, in milliseconds (within the attempt's
    /// `timeout_ms`).
    pub connect_timeout_ms: u64,
    /// Idle connections kept open per endpoint host.
    pub max_idle_connections_per_host: usize,
    /// How long a worker's receive waits for events before looking at its group again, in
    /// milliseconds.
    pub poll_wait_ms: u64,
    /// How often the groups are listed again to see other nodes' changes, in milliseconds.
    pub refresh_interval_ms: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            allow_private: false,
            backoff: BackoffPolicy::default(),
            circuit: CircuitConfig::default(),
            connect_timeout_ms: 5_000,
            max_idle_connections_per_host: 32,
            poll_wait_ms: 5_000,
            refresh_interval_ms: 5_000,
        }
    }
}

/// A configuration that cannot work, or an HTTP client that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The backoff policy's bounds contradict each other.
    #[error("webhook retry backoff: {0}")]
    Backoff(#[from] crate::retry::BackoffError),
    /// The circuit breaker's settings contradict each other.
    #[error("webhook circuit breaker: {0}")]
    Circuit(#[from] crate::circuit::CircuitConfigError),
    /// The HTTP client failed to build (no TLS roots, say).
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl DeliveryConfig {
    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), DeliveryError> {
        self.backoff.validate()?;
        self.circuit.validate()?;
        Ok(())
    }
}

/// The HTTP client of every delivery: no redirects, no proxies from the environment (a proxy
/// would connect for us, past the guard), bounded idle pool, and the guarded resolver unless
/// private addresses are allowed.
pub fn client(config: &DeliveryConfig) -> Result<reqwest::Client, DeliveryError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("Runnel-Webhooks/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_millis(config.connect_timeout_ms.max(1)))
        .pool_max_idle_per_host(config.max_idle_connections_per_host)
        .pool_idle_timeout(Duration::from_secs(60));
    if !config.allow_private {
        builder = builder.dns_resolver(guard::GuardedResolver);
    }
    Ok(builder.build()?)
}

/// Runs the webhook workers of `groups` until `shutdown` turns true; what the workers do to
/// groups on their own goes to `audit`.
pub async fn run(
    groups: GroupService,
    config: DeliveryConfig,
    audit: Arc<dyn AuditTrail>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), DeliveryError> {
    config.validate()?;
    let context = Context {
        groups: groups.clone(),
        client: client(&config)?,
        config: Arc::new(config),
        audit,
        endpoints: endpoint::Endpoints::default(),
        shutdown: shutdown.clone(),
    };
    let mut changes = groups.changes();
    let mut workers: HashMap<GroupName, Running> = HashMap::new();
    let mut listed: std::collections::HashSet<GroupName> = std::collections::HashSet::new();
    let refresh = Duration::from_millis(context.config.refresh_interval_ms.max(100));
    loop {
        match list_all(&groups).await {
            Ok(views) => {
                telemetry::group_status(&mut listed, &views);
                reconcile(&context, &mut workers, views);
            }
            Err(error) => tracing::warn!(%error, "cannot list the subscriptions to deliver"),
        }
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep(refresh) => {}
            _ = shutdown.wait_for(|down| *down) => break,
        }
    }
    for (_, running) in workers.drain() {
        running.task.abort();
    }
    Ok(())
}

/// What every worker is started with.
struct Context {
    groups: GroupService,
    client: reqwest::Client,
    config: Arc<DeliveryConfig>,
    audit: Arc<dyn AuditTrail>,
    endpoints: endpoint::Endpoints,
    shutdown: watch::Receiver<bool>,
}

/// A worker and what it was started with.
struct Running {
    settings: Delivery,
    view: watch::Sender<GroupView>,
    task: JoinHandle<()>,
}

async fn list_all(groups: &GroupService) -> Result<Vec<GroupView>, crate::group::GroupError> {
    let mut all = Vec::new();
    let mut after: Option<GroupName> = None;
    loop {
        let (views, next) = groups.list(after.as_ref(), MAX_PAGE_LIMIT).await?;
        all.extend(views);
        match next {
            Some(next) => after = Some(next),
            None => return Ok(all),
        }
    }
}

fn reconcile(context: &Context, workers: &mut HashMap<GroupName, Running>, views: Vec<GroupView>) {
    let mut seen = std::collections::HashSet::new();
    for view in views {
        if !matches!(view.config.delivery, Delivery::Webhook(_)) {
            continue;
        }
        seen.insert(view.name.clone());
        let settings = view.config.delivery.clone();
        if let Some(running) = workers.get(&view.name)
            && running.settings == settings
            && !running.task.is_finished()
        {
            running.view.send_replace(view);
            continue;
        }
        if let Some(old) = workers.remove(&view.name) {
            // In-flight attempts go with it; their leases run out and are delivered again.
            old.task.abort();
        }
        let name = view.name.clone();
        let breaker = match &settings {
            Delivery::Webhook(webhook) => context
                .endpoints
                .breaker(&webhook.url, context.config.circuit),
            Delivery::Pull => continue,
        };
        let (sender, receiver) = watch::channel(view);
        let task = tokio::spawn(
            worker::Worker {
                groups: context.groups.clone(),
                name: name.clone(),
                client: context.client.clone(),
                config: Arc::clone(&context.config),
                audit: Arc::clone(&context.audit),
                breaker,
                view: receiver,
                shutdown: context.shutdown.clone(),
            }
            .run(),
        );
        workers.insert(
            name,
            Running {
                settings,
                view: sender,
                task,
            },
        );
    }
    workers.retain(|name, running| {
        let keep = seen.contains(name);
        if !keep {
            running.task.abort();
            telemetry::in_flight(name, 0);
        }
        keep
    });
}
