//! Authentication and authorization: API keys, roles, rules, the keyring and the audit trail.
//!
//! Every request but the public ones (health, docs, and metrics when configured public)
//! carries `Authorization: Bearer <key>`. [`middleware::authenticate`] turns the key into a
//! [`Caller`]; routes then ask [`Caller`] whether the request is allowed ([`access`]).
//!
//! Keys live in the system stream `$keys/keys` as events ([`events`]); each server holds the
//! projection ([`keyring::KeyRing`]) in memory, reads the stream at start and follows it for as
//! long as it runs, so a key created or revoked on one node reaches every node sharing the
//! store. The node that makes a change reads it back before it answers, so on that node the
//! change has taken effect when the client hears of it.

mod access;
mod audit;
mod error;
mod events;
mod key;
mod keyring;
pub(crate) mod middleware;
mod role;
mod rules;

use std::fmt;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use axum::http::{HeaderMap, header};
use runnel_core::{
    AppendRequest, Direction, ExpectedRevision, RecordedAt, Revision, Store, StoreError,
};
use serde_json::json;
use tokio::sync::watch;

pub(crate) use access::{Caller, Denied, Reach};
// For the routes of other resources that record their changes in the audit trail.
#[allow(unused_imports)]
pub(crate) use audit::AUDIT_STREAM_TYPE;
pub(crate) use audit::DeliveryAuditTrail;
pub use error::{AuthError, KeyringError};
pub(crate) use keyring::StoredKey;
pub(crate) use role::{Capability, Role};
pub(crate) use rules::{RuleInput, Rules};

use crate::config::ServerConfig;
use audit::AuditEntry;
use events::{Actor, KeyCreated, KeyRevoked, KeyringCreated, KeyringEvent, keys_stream};
use key::{KeyHash, MAX_TOKEN_BYTES, MIN_ADMIN_KEY_CHARS, Pepper};
pub(crate) use key::{KeyId, PlainKey};
use keyring::KeyRing;

/// The most active keys one server holds: a bound on the keyring's memory.
pub(crate) const MAX_KEYS: usize = 10_000;
/// Events of `$keys/keys` read per request to the store.
const READ_PAGE_EVENTS: usize = 1_000;
/// The keyring re-reads its stream at least this often even when the head seems not to move:
/// an engine shared by several nodes may learn of the others' writes late.
const FOLLOW_FALLBACK: Duration = Duration::from_secs(1);
/// The least time between two reads prompted by the head moving. Under load the head moves
/// thousands of times a second, almost never because of a key.
const FOLLOW_MIN_INTERVAL: Duration = Duration::from_millis(20);
/// How long a node waits to read back its own keyring write before giving up on the request.
const APPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a keyring write is tried again when another node wrote first.
const WRITE_ATTEMPTS: usize = 5;
/// The name of the key a first start generates.
const GENERATED_ADMIN_KEY_NAME: &str = "admin (generated at first start)";

/// An admin key generated at first start, to be shown to the operator once.
pub struct GeneratedAdminKey(String);

impl GeneratedAdminKey {
    /// The key, as a client sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for GeneratedAdminKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GeneratedAdminKey(<redacted>)")
    }
}

/// Why a request was not authenticated. Says nothing about which keys exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Unauthenticated {
    #[error("this request needs an API key: send Authorization: Bearer <key>")]
    Missing,
    #[error("the Authorization header must read Bearer <key>")]
    Malformed,
    #[error("the API key is not valid (unknown, revoked or mistyped)")]
    Invalid,
}

/// The keyring and the authentication settings, shared by every request. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    insecure: bool,
    metrics_public: bool,
    ring: RwLock<KeyRing>,
    /// The configured admin key, hashed with a key that lives only in this process.
    admin_key: Option<(Pepper, KeyHash)>,
    /// One reader of `$keys/keys` at a time, so events are applied once and in order.
    catch_up: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("insecure", &self.inner.insecure)
            .field("metrics_public", &self.inner.metrics_public)
            .field("keys", &self.ring().len())
            .finish_non_exhaustive()
    }
}

/// Where a keyring write comes from, and so what it may assume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// An admin's request: write whatever else was written meanwhile.
    Any,
    /// The first-start key: only while the keyring is still as read (no key yet), so that two
    /// nodes starting together do not both make one.
    Unchanged,
}

impl Auth {
    /// Loads the keyring from `store` and, on a first start without a configured admin key,
    /// generates one (returned, to be printed once; only its hash is stored).
    pub(crate) async fn open(
        store: Arc<dyn Store>,
        config: &ServerConfig,
    ) -> Result<(Self, Option<GeneratedAdminKey>), AuthError> {
        let operator_pepper = config
            .auth
            .key_pepper
            .as_ref()
            .map(|pepper| Pepper::from_bytes(pepper.expose().as_bytes().to_vec()))
            .transpose()
            .map_err(AuthError::InvalidConfig)?;
        let admin_key = config
            .auth
            .admin_key
            .as_ref()
            .map(|key| admin_key_hash(key.expose()))
            .transpose()?;
        let auth = Self {
            inner: Arc::new(Inner {
                store,
                insecure: config.insecure,
                metrics_public: config.auth.metrics_public,
                ring: RwLock::new(KeyRing::new(operator_pepper)),
                admin_key,
                catch_up: tokio::sync::Mutex::new(()),
            }),
        };
        auth.catch_up().await?;
        let generated = if config.insecure || auth.inner.admin_key.is_some() || auth.key_count() > 0
        {
            None
        } else {
            auth.generate_admin_key().await?
        };
        Ok((auth, generated))
    }

    pub(crate) fn insecure(&self) -> bool {
        self.inner.insecure
    }

    pub(crate) fn metrics_public(&self) -> bool {
        self.inner.metrics_public
    }

    fn ring(&self) -> RwLockReadGuard<'_, KeyRing> {
        // A panic while holding the lock cannot leave the map half-changed in a way that
        // matters more than refusing every request would.
        self.inner
            .ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn ring_mut(&self) -> RwLockWriteGuard<'_, KeyRing> {
        self.inner
            .ring
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn key_count(&self) -> usize {
        self.ring().len()
    }

    /// The caller the request's `Authorization` header stands for.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Unauthenticated> {
        if self.inner.insecure {
            return Ok(Caller::insecure());
        }
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(Unauthenticated::Missing)?;
        let text = value.to_str().map_err(|_| Unauthenticated::Malformed)?;
        let (scheme, token) = text
            .trim()
            .split_once(' ')
            .ok_or(Unauthenticated::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Unauthenticated::Malformed);
        }
        let token = token.trim();
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(Unauthenticated::Invalid);
        }
        if let Some((process_key, hash)) = &self.inner.admin_key
            && hash.matches(&process_key.hash_admin_key(token))
        {
            return Ok(Caller {
                key_id: None,
                key_name: "admin key (RUNNEL_ADMIN_KEY)".to_owned(),
                role: Role::Admin,
                rules: Arc::new(Rules::unrestricted()),
            });
        }
        self.ring()
            .authenticate(token)
            .ok_or(Unauthenticated::Invalid)
    }

    /// Whether the caller's key is still active; the configured admin key and `--insecure`
    /// always are. Long-lived requests (live subscriptions) check this as they go.
    pub(crate) fn is_active(&self, caller: &Caller) -> bool {
        match &caller.key_id {
            None => true,
            Some(id) => self.ring().is_active(id),
        }
    }

    /// Active keys in id order after `after`, and the cursor of the next page.
    pub(crate) fn list_keys(
        &self,
        after: Option<&KeyId>,
        limit: usize,
    ) -> (Vec<StoredKey>, Option<KeyId>) {
        self.ring().page(after, limit)
    }

    pub(crate) fn key(&self, id: &KeyId) -> Option<StoredKey> {
        self.ring().get(id).cloned()
    }

    /// Creates a key; returns it as stored and the key itself, to be shown once.
    pub(crate) async fn create_key(
        &self,
        actor: &Caller,
        name: String,
        role: Role,
        rules: Rules,
    ) -> Result<(StoredKey, PlainKey), AuthError> {
        self.write_key(actor, name, role, rules, Expect::Any)
            .await?
            .ok_or(AuthError::NotApplied)
    }

    /// Revokes a key; answers once this node no longer accepts it.
    pub(crate) async fn revoke_key(
        &self,
        actor: &Caller,
        id: &str,
    ) -> Result<StoredKey, AuthError> {
        let not_found = || AuthError::KeyNotFound {
            id: crate::extract::truncate(id),
        };
        let id = KeyId::parse(id).ok_or_else(not_found)?;
        let key = self.ring().get(&id).cloned().ok_or_else(not_found)?;
        let revoked = KeyringEvent::KeyRevoked(KeyRevoked {
            id: id.as_str().to_owned(),
            revoked_at: RecordedAt::now().to_rfc3339(),
            revoked_by: Actor::from(actor),
        });
        let revision = self.append(vec![revoked], ExpectedRevision::Any).await?;
        self.apply_own_write(revision).await?;
        let entry = AuditEntry::new("key.revoked", Actor::from(actor), key_json(&key));
        audit::record(self.inner.store.as_ref(), "keys", "KeyRevoked", &entry).await?;
        tracing::info!(key_id = %key.id, key_name = %key.name, by = %actor.key_name, "API key revoked");
        Ok(key)
    }

    async fn generate_admin_key(&self) -> Result<Option<GeneratedAdminKey>, AuthError> {
        let system = Caller {
            key_id: None,
            key_name: "runnel (first start)".to_owned(),
            role: Role::Admin,
            rules: Arc::new(Rules::unrestricted()),
        };
        let written = self
            .write_key(
                &system,
                GENERATED_ADMIN_KEY_NAME.to_owned(),
                Role::Admin,
                Rules::unrestricted(),
                Expect::Unchanged,
            )
            .await?;
        Ok(written.map(|(_, plain)| GeneratedAdminKey(plain.token())))
    }

    /// Writes a new key (and, before the first one, the keyring with its pepper), reads it
    /// back, and records it in the audit trail. `None` when `expect` is
    /// [`Expect::Unchanged`] and another node wrote a key first.
    async fn write_key(
        &self,
        actor: &Caller,
        name: String,
        role: Role,
        rules: Rules,
        expect: Expect,
    ) -> Result<Option<(StoredKey, PlainKey)>, AuthError> {
        let plain = PlainKey::generate();
        let mut written = None;
        for _ in 0..WRITE_ATTEMPTS {
            let Some((events, expected)) =
                self.key_events(actor, &plain, &name, role, &rules, expect)?
            else {
                return Ok(None);
            };
            match self.append(events, expected).await {
                Ok(revision) => {
                    written = Some(revision);
                    break;
                }
                // Another node wrote to the keyring first: read what it wrote, then decide again.
                Err(AuthError::Store(StoreError::WrongExpectedRevision { .. })) => {
                    self.catch_up().await?;
                }
                Err(error) => return Err(error),
            }
        }
        let revision = written.ok_or(AuthError::NotApplied)?;
        self.apply_own_write(revision).await?;
        let key = self
            .ring()
            .get(&plain.id)
            .cloned()
            .ok_or(AuthError::NotApplied)?;
        let entry = AuditEntry::new("key.created", Actor::from(actor), key_json(&key));
        audit::record(self.inner.store.as_ref(), "keys", "KeyCreated", &entry).await?;
        tracing::info!(key_id = %key.id, key_name = %key.name, role = %key.role, by = %actor.key_name, "API key created");
        Ok(Some((key, plain)))
    }

    /// The events that create `plain` as the keyring stands now, with the expectation to
    /// write them under; `None` when there is nothing to do.
    fn key_events(
        &self,
        actor: &Caller,
        plain: &PlainKey,
        name: &str,
        role: Role,
        rules: &Rules,
        expect: Expect,
    ) -> Result<Option<(Vec<KeyringEvent>, ExpectedRevision)>, AuthError> {
        let ring = self.ring();
        if expect == Expect::Unchanged && ring.len() > 0 {
            return Ok(None);
        }
        if ring.len() >= MAX_KEYS {
            return Err(AuthError::TooManyKeys { max: MAX_KEYS });
        }
        let now = RecordedAt::now().to_rfc3339();
        let mut events = Vec::with_capacity(2);
        let pepper = match ring.pepper() {
            Some(pepper) => pepper.clone(),
            None => {
                // The first key creates the keyring, in the same atomic append.
                let (pepper, store_it) = match ring.operator_pepper() {
                    Some(given) => (given.clone(), false),
                    None => (Pepper::generate(), true),
                };
                events.push(KeyringEvent::KeyringCreated(KeyringCreated::new(
                    &pepper,
                    store_it,
                    now.clone(),
                )));
                pepper
            }
        };
        events.push(KeyringEvent::KeyCreated(KeyCreated {
            id: plain.id.as_str().to_owned(),
            name: name.to_owned(),
            role,
            rules: rules.clone(),
            hash: pepper.hash_key(&plain.id, plain.secret()).to_hex(),
            created_at: now,
            created_by: Actor::from(actor),
        }));
        let expected = match (expect, ring.last_revision()) {
            (_, None) => ExpectedRevision::NoStream,
            (Expect::Any, Some(_)) => ExpectedRevision::Any,
            (Expect::Unchanged, Some(last)) => ExpectedRevision::Exact(last),
        };
        Ok(Some((events, expected)))
    }

    /// Appends to `$keys/keys`; returns the last revision written.
    async fn append(
        &self,
        events: Vec<KeyringEvent>,
        expected: ExpectedRevision,
    ) -> Result<Revision, AuthError> {
        let outcome = self
            .inner
            .store
            .append_system(AppendRequest {
                stream: keys_stream(),
                expected,
                events: events.iter().map(KeyringEvent::to_proposed).collect(),
            })
            .await?;
        Ok(outcome.last_revision)
    }

    /// Reads `$keys/keys` until this node has applied `revision`.
    async fn apply_own_write(&self, revision: Revision) -> Result<(), AuthError> {
        let deadline = tokio::time::Instant::now() + APPLY_TIMEOUT;
        loop {
            self.catch_up().await?;
            if self.ring().next_revision() > revision {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AuthError::NotApplied);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Applies every event of `$keys/keys` not applied yet.
    async fn catch_up(&self) -> Result<(), AuthError> {
        let _one_reader = self.inner.catch_up.lock().await;
        let stream = keys_stream();
        loop {
            let from = self.ring().next_revision();
            let slice = match self
                .inner
                .store
                .read_stream(&stream, Some(from), Direction::Forward, READ_PAGE_EVENTS)
                .await
            {
                Ok(slice) => slice,
                Err(StoreError::StreamNotFound { .. }) => return Ok(()),
                Err(error) => return Err(error.into()),
            };
            let mut parsed = Vec::with_capacity(slice.events.len());
            for event in &slice.events {
                let keyring_event =
                    KeyringEvent::from_recorded(event).map_err(|reason| KeyringError::Corrupt {
                        revision: event.revision.0,
                        reason,
                    })?;
                if keyring_event.is_none() {
                    tracing::warn!(revision = event.revision.0, event_type = %event.event_type, "skipping a keyring event of a type this version does not know");
                }
                parsed.push((event.revision, keyring_event));
            }
            {
                let mut ring = self.ring_mut();
                for (revision, event) in parsed {
                    ring.apply(revision, event)?;
                }
            }
            if slice.next.is_none() {
                return Ok(());
            }
        }
    }

    /// Follows `$keys/keys` until `shutdown` turns true or the store closes: keys created or
    /// revoked by other nodes sharing the store take effect here as soon as they are read.
    pub(crate) async fn follow(self, mut shutdown: watch::Receiver<bool>) {
        let mut head = self.inner.store.watch_head();
        loop {
            // The head is read before the keyring: whatever is committed after this read
            // moves the head past it and wakes the wait below.
            let seen = head.current();
            if let Err(error) = self.catch_up().await {
                tracing::error!(error = %error_chain(&error), "cannot read the keyring; API keys stay as they were until it can");
            }
            let moved = async {
                let moved = head.wait_past(seen).await;
                tokio::time::sleep(FOLLOW_MIN_INTERVAL).await;
                moved
            };
            tokio::select! {
                moved = moved => if moved.is_none() { return },
                () = tokio::time::sleep(FOLLOW_FALLBACK) => {}
                _ = shutdown.wait_for(|down| *down) => return,
            }
        }
    }
}

/// A configured admin key, checked for length and hashed under a key of this process only.
fn admin_key_hash(key: &str) -> Result<(Pepper, KeyHash), AuthError> {
    let key = key.trim();
    if key.chars().count() < MIN_ADMIN_KEY_CHARS {
        return Err(AuthError::InvalidConfig(format!(
            "the admin key must be at least {MIN_ADMIN_KEY_CHARS} characters (e.g. the output of `openssl rand -hex 32`)"
        )));
    }
    let process_key = Pepper::generate();
    let hash = process_key.hash_admin_key(key);
    Ok((process_key, hash))
}

/// A key as the audit trail and the API show it: never the secret, never the hash.
fn key_json(key: &StoredKey) -> serde_json::Value {
    json!({
        "key_id": key.id.as_str(),
        "name": key.name,
        "role": key.role,
        "rules": *key.rules,
    })
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use runnel_core::{AppendLimits, Payload};
    use runnel_testkit::model::ModelStore;

    const ADMIN_KEY: &str = "an-admin-key-of-at-least-32-characters";

    fn config(admin_key: Option<&str>, pepper: Option<&str>) -> ServerConfig {
        let mut config = ServerConfig::default();
        config.auth.admin_key = admin_key.map(Secret::new);
        config.auth.key_pepper = pepper.map(Secret::new);
        config
    }

    fn store() -> Arc<dyn Store> {
        Arc::new(ModelStore::new(AppendLimits::default()))
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header value"),
        );
        headers
    }

    fn admin(auth: &Auth) -> Caller {
        auth.authenticate(&bearer(ADMIN_KEY))
            .expect("the admin key")
    }

    /// Everything written to `$keys/keys`, as text.
    async fn keyring_text(store: &Arc<dyn Store>) -> String {
        let slice = store
            .read_stream(&keys_stream(), None, Direction::Forward, 1_000)
            .await
            .expect("the keyring exists");
        slice
            .events
            .iter()
            .map(|event| match &event.data {
                Payload::Json(json) => json.as_str().to_owned(),
                Payload::Binary { .. } => String::new(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn eventually(mut check: impl FnMut() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < deadline {
            if check() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_key_made_on_one_node_works_on_another_and_so_does_its_revocation() {
        let store = store();
        let config = config(Some(ADMIN_KEY), None);
        let (one, _) = Auth::open(Arc::clone(&store), &config)
            .await
            .expect("node one");
        let (two, _) = Auth::open(Arc::clone(&store), &config)
            .await
            .expect("node two");
        let (stop, stopped) = watch::channel(false);
        let following = tokio::spawn(two.clone().follow(stopped));

        let (_, plain) = one
            .create_key(
                &admin(&one),
                "reader".into(),
                Role::Reader,
                Rules::unrestricted(),
            )
            .await
            .expect("created");
        let headers = bearer(&plain.token());
        assert!(
            one.authenticate(&headers).is_ok(),
            "at once on the node that made it"
        );
        assert!(
            eventually(|| two.authenticate(&headers).is_ok()).await,
            "the other node learns of the key"
        );

        one.revoke_key(&admin(&one), plain.id.as_str())
            .await
            .expect("revoked");
        assert_eq!(
            one.authenticate(&headers).map(|_| ()),
            Err(Unauthenticated::Invalid),
            "at once on the node that revoked it"
        );
        assert!(
            eventually(|| two.authenticate(&headers).is_err()).await,
            "the other node learns of the revocation"
        );
        stop.send_replace(true);
        following.await.expect("the follower ends on shutdown");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nodes_starting_together_on_an_empty_store_generate_one_admin_key() {
        let store = store();
        let config = config(None, None);
        let (one, two) = tokio::join!(
            Auth::open(Arc::clone(&store), &config),
            Auth::open(Arc::clone(&store), &config),
        );
        let (one, one_key) = one.expect("node one");
        let (two, two_key) = two.expect("node two");
        let generated: Vec<_> = [one_key, two_key].into_iter().flatten().collect();
        assert_eq!(generated.len(), 1, "exactly one node made a key");
        let token = generated[0].expose().to_owned();
        two.catch_up().await.expect("caught up");
        one.catch_up().await.expect("caught up");
        for node in [&one, &two] {
            assert_eq!(node.key_count(), 1);
            let caller = node.authenticate(&bearer(&token)).expect("the key works");
            assert_eq!(caller.role, Role::Admin);
        }
        // A later start finds the key and makes none.
        let (_, again) = Auth::open(Arc::clone(&store), &config)
            .await
            .expect("restart");
        assert!(again.is_none());
    }

    #[tokio::test]
    async fn only_hashes_are_stored_and_the_generated_pepper_with_them() {
        let store = store();
        let (auth, generated) = Auth::open(Arc::clone(&store), &config(None, None))
            .await
            .expect("opens");
        let token = generated.expect("a first start generates a key");
        let secret = token
            .expose()
            .rsplit('_')
            .next()
            .expect("secret")
            .to_owned();
        let stored = keyring_text(&store).await;
        assert!(!stored.contains(&secret), "{stored}");
        assert!(stored.contains("\"hash\""), "{stored}");
        assert!(stored.contains("\"pepper\":\""), "{stored}");
        assert!(!format!("{auth:?} {token:?}").contains(&secret));
    }

    #[tokio::test]
    async fn an_operator_pepper_is_not_stored_and_a_start_with_another_is_refused() {
        let store = store();
        let pepper = "an operator pepper of some length";
        let with_pepper = config(Some(ADMIN_KEY), Some(pepper));
        let (auth, _) = Auth::open(Arc::clone(&store), &with_pepper)
            .await
            .expect("opens");
        let (_, plain) = auth
            .create_key(
                &admin(&auth),
                "k".into(),
                Role::Reader,
                Rules::unrestricted(),
            )
            .await
            .expect("created");
        let stored = keyring_text(&store).await;
        assert!(stored.contains("\"pepper\":null"), "{stored}");

        for (other, expected) in [
            (Some("another pepper of some length"), "not the one"),
            (None, "RUNNEL_KEY_PEPPER"),
        ] {
            let error = Auth::open(Arc::clone(&store), &config(Some(ADMIN_KEY), other))
                .await
                .expect_err("a different pepper");
            assert!(error.to_string().contains(expected), "{error}");
        }
        let (again, _) = Auth::open(Arc::clone(&store), &with_pepper)
            .await
            .expect("the same pepper");
        assert!(again.authenticate(&bearer(&plain.token())).is_ok());
    }

    #[tokio::test]
    async fn the_authorization_header_must_be_a_bearer_token() {
        let (auth, _) = Auth::open(store(), &config(Some(ADMIN_KEY), None))
            .await
            .expect("opens");
        assert_eq!(
            auth.authenticate(&HeaderMap::new()).map(|_| ()),
            Err(Unauthenticated::Missing)
        );
        for (value, expected) in [
            ("Basic YWRtaW4=", Err(Unauthenticated::Malformed)),
            ("Bearer", Err(Unauthenticated::Malformed)),
            ("Bearer ", Err(Unauthenticated::Malformed)),
            ("Bearer wrong", Err(Unauthenticated::Invalid)),
            (&format!("bearer {ADMIN_KEY}"), Ok(())),
            (&format!("Bearer  {ADMIN_KEY} "), Ok(())),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().expect("value"));
            assert_eq!(
                auth.authenticate(&headers).map(|_| ()),
                expected,
                "{value:?}"
            );
        }
        let short = Auth::open(store(), &config(Some("short"), None)).await;
        assert!(matches!(short, Err(AuthError::InvalidConfig(_))));
    }
}
