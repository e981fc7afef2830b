//! The keyring: the in-memory projection of `$keys/keys`, and the check of a bearer token
//! against it. Pure: events go in with [`KeyRing::apply`], tokens are checked with
//! [`KeyRing::authenticate`]; reading and following the stream is [`crate::auth::Auth`]'s job.

use std::collections::BTreeMap;
use std::sync::Arc;

use runnel_core::Revision;

use crate::auth::access::Caller;
use crate::auth::events::{Actor, KeyCreated, KeyRevoked, KeyringCreated, KeyringEvent};
use crate::auth::key::{KeyHash, KeyId, Pepper, split_token};
use crate::auth::role::Role;
use crate::auth::rules::Rules;

/// An active key, as the keyring holds it: the hash, never the secret.
#[derive(Debug, Clone)]
pub(crate) struct StoredKey {
    pub(crate) id: KeyId,
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) rules: Arc<Rules>,
    hash: KeyHash,
    pub(crate) created_at: String,
    pub(crate) created_by: Actor,
}

impl StoredKey {
    fn caller(&self) -> Caller {
        Caller {
            key_id: Some(self.id.as_str().to_owned()),
            key_name: self.name.clone(),
            role: self.role,
            rules: Arc::clone(&self.rules),
        }
    }
}

/// Why an event of `$keys/keys` could not be applied. The projection stops before it, so a
/// revocation is never skipped over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("$keys/keys revision {revision}: {reason}")]
    Corrupt { revision: u64, reason: String },

    #[error(
        "the API keys were hashed with a pepper that the operator supplies, and none was given: set RUNNEL_KEY_PEPPER or --key-pepper-file"
    )]
    PepperMissing,

    #[error(
        "the given key pepper is not the one the API keys were hashed with (its fingerprint differs)"
    )]
    PepperMismatch,

    #[error(
        "the API keys were hashed with a pepper generated and stored by the server; remove RUNNEL_KEY_PEPPER / --key-pepper-file, or start from a store without keys to use your own"
    )]
    PepperConflict,
}

#[derive(Debug)]
pub(crate) struct KeyRing {
    /// The pepper the operator gave, if any; it must match the keyring's.
    operator_pepper: Option<Pepper>,
    /// The pepper of every stored hash; `None` until the keyring was created.
    pepper: Option<Pepper>,
    created: bool,
    /// Active keys by id; ordered, for listing in pages.
    keys: BTreeMap<KeyId, StoredKey>,
    /// The revision of `$keys/keys` to apply next: everything below it is applied.
    next_revision: Revision,
}

impl KeyRing {
    pub(crate) fn new(operator_pepper: Option<Pepper>) -> Self {
        Self {
            operator_pepper,
            pepper: None,
            created: false,
            keys: BTreeMap::new(),
            next_revision: Revision(0),
        }
    }

    pub(crate) fn next_revision(&self) -> Revision {
        self.next_revision
    }

    /// The last applied revision of `$keys/keys`, when there is one.
    pub(crate) fn last_revision(&self) -> Option<Revision> {
        self.next_revision.0.checked_sub(1).map(Revision)
    }

    /// The pepper new keys are hashed with: the keyring's, or for a keyring still to be
    /// created, `None`.
    pub(crate) fn pepper(&self) -> Option<&Pepper> {
        self.pepper.as_ref()
    }

    pub(crate) fn operator_pepper(&self) -> Option<&Pepper> {
        self.operator_pepper.as_ref()
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn get(&self, id: &KeyId) -> Option<&StoredKey> {
        self.keys.get(id)
    }

    /// Active keys in id order after `after`, and the cursor of the next page.
    pub(crate) fn page(
        &self,
        after: Option<&KeyId>,
        limit: usize,
    ) -> (Vec<StoredKey>, Option<KeyId>) {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, |id| Bound::Excluded(id.clone()));
        let mut keys: Vec<StoredKey> = self
            .keys
            .range((start, Bound::Unbounded))
            .take(limit.saturating_add(1))
            .map(|(_, key)| key.clone())
            .collect();
        let next = if keys.len() > limit {
            keys.truncate(limit);
            keys.last().map(|key| key.id.clone())
        } else {
            None
        };
        (keys, next)
    }

    /// The caller a bearer token stands for, or `None`. Costs one HMAC whether or not the id
    /// exists, and compares in constant time.
    pub(crate) fn authenticate(&self, token: &str) -> Option<Caller> {
        let (id, secret) = split_token(token)?;
        let pepper = self.pepper.as_ref()?;
        let presented = pepper.hash_key(&id, secret);
        let key = self.keys.get(&id)?;
        key.hash.matches(&presented).then(|| key.caller())
    }

    /// Whether the key is still active (a live subscription checks this as it goes).
    pub(crate) fn is_active(&self, id: &str) -> bool {
        KeyId::parse(id).is_some_and(|id| self.keys.contains_key(&id))
    }

    /// Applies the event at `revision`. Revisions already applied are ignored (the stream is
    /// read again after each local write); a gap is refused.
    pub(crate) fn apply(
        &mut self,
        revision: Revision,
        event: Option<KeyringEvent>,
    ) -> Result<(), KeyringError> {
        if revision < self.next_revision {
            return Ok(());
        }
        let corrupt = |reason: String| KeyringError::Corrupt {
            revision: revision.0,
            reason,
        };
        if revision > self.next_revision {
            return Err(corrupt(format!(
                "read after revision {}: a gap in the stream",
                self.next_revision
            )));
        }
        match event {
            None => {}
            Some(KeyringEvent::KeyringCreated(created)) => self.apply_created(&created, corrupt)?,
            Some(KeyringEvent::KeyCreated(created)) => self.apply_key(created, corrupt)?,
            Some(KeyringEvent::KeyRevoked(KeyRevoked { id, .. })) => {
                // Revoking twice (two nodes at once) is harmless.
                if let Some(id) = KeyId::parse(&id) {
                    self.keys.remove(&id);
                }
            }
        }
        self.next_revision = revision.next();
        Ok(())
    }

    fn apply_created(
        &mut self,
        created: &KeyringCreated,
        corrupt: impl Fn(String) -> KeyringError,
    ) -> Result<(), KeyringError> {
        if self.created {
            return Err(corrupt("the keyring was created twice".to_owned()));
        }
        let fingerprint = created.fingerprint().map_err(&corrupt)?;
        let stored = created.stored_pepper().map_err(&corrupt)?;
        let pepper = match (stored, &self.operator_pepper) {
            (Some(_), Some(_)) => return Err(KeyringError::PepperConflict),
            (Some(stored), None) => stored,
            (None, None) => return Err(KeyringError::PepperMissing),
            (None, Some(given)) => given.clone(),
        };
        if !pepper.fingerprint().matches(&fingerprint) {
            return Err(KeyringError::PepperMismatch);
        }
        self.pepper = Some(pepper);
        self.created = true;
        Ok(())
    }

    fn apply_key(
        &mut self,
        created: KeyCreated,
        corrupt: impl Fn(String) -> KeyringError,
    ) -> Result<(), KeyringError> {
        if !self.created {
            return Err(corrupt("a key was created before the keyring".to_owned()));
        }
        let id = KeyId::parse(&created.id)
            .ok_or_else(|| corrupt(format!("the key id {:?} is malformed", created.id)))?;
        let hash = KeyHash::from_hex(&created.hash)
            .ok_or_else(|| corrupt(format!("the hash of key {id} is malformed")))?;
        self.keys.insert(
            id.clone(),
            StoredKey {
                id,
                name: created.name,
                role: created.role,
                rules: Arc::new(created.rules),
                hash,
                created_at: created.created_at,
                created_by: created.created_by,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::key::PlainKey;

    fn actor() -> Actor {
        Actor {
            key_id: None,
            key_name: "test".into(),
        }
    }

    fn created(pepper: &Pepper, store: bool) -> Option<KeyringEvent> {
        Some(KeyringEvent::KeyringCreated(KeyringCreated::new(
            pepper,
            store,
            "t".into(),
        )))
    }

    fn key_created(pepper: &Pepper, key: &PlainKey, role: Role) -> Option<KeyringEvent> {
        Some(KeyringEvent::KeyCreated(KeyCreated {
            id: key.id.as_str().to_owned(),
            name: format!("key {}", key.id),
            role,
            rules: Rules::unrestricted(),
            hash: pepper.hash_key(&key.id, key.secret()).to_hex(),
            created_at: "t".into(),
            created_by: actor(),
        }))
    }

    fn revoked(key: &PlainKey) -> Option<KeyringEvent> {
        Some(KeyringEvent::KeyRevoked(KeyRevoked {
            id: key.id.as_str().to_owned(),
            revoked_at: "t".into(),
            revoked_by: actor(),
        }))
    }

    #[test]
    fn a_created_key_authenticates_until_it_is_revoked() {
        let pepper = Pepper::generate();
        let key = PlainKey::generate();
        let mut ring = KeyRing::new(None);
        assert!(ring.authenticate(&key.token()).is_none());
        ring.apply(Revision(0), created(&pepper, true))
            .expect("created");
        ring.apply(Revision(1), key_created(&pepper, &key, Role::Reader))
            .expect("key");
        let caller = ring.authenticate(&key.token()).expect("authenticates");
        assert_eq!(caller.role, Role::Reader);
        assert_eq!(caller.key_id.as_deref(), Some(key.id.as_str()));

        let wrong_secret = PlainKey::generate().token().replacen(
            PlainKey::generate().id.as_str(),
            key.id.as_str(),
            1,
        );
        assert!(ring.authenticate(&wrong_secret).is_none());
        assert!(ring.authenticate("rnl_nonsense").is_none());

        ring.apply(Revision(2), revoked(&key)).expect("revoked");
        assert!(ring.authenticate(&key.token()).is_none());
        assert!(!ring.is_active(key.id.as_str()));
        assert_eq!(ring.next_revision(), Revision(3));
    }

    #[test]
    fn events_already_applied_are_ignored() {
        let pepper = Pepper::generate();
        let key = PlainKey::generate();
        let mut ring = KeyRing::new(None);
        ring.apply(Revision(0), created(&pepper, true))
            .expect("created");
        ring.apply(Revision(1), key_created(&pepper, &key, Role::Admin))
            .expect("key");
        ring.apply(Revision(2), revoked(&key)).expect("revoked");
        // Read again from an older revision: the revocation stays.
        ring.apply(Revision(1), key_created(&pepper, &key, Role::Admin))
            .expect("ignored");
        assert!(ring.authenticate(&key.token()).is_none());
    }

    #[test]
    fn an_operator_pepper_must_match_the_keyrings() {
        let pepper = Pepper::generate();
        let mut given = KeyRing::new(Some(pepper.clone()));
        given
            .apply(Revision(0), created(&pepper, false))
            .expect("the same pepper");
        let mut other = KeyRing::new(Some(Pepper::generate()));
        assert_eq!(
            other.apply(Revision(0), created(&pepper, false)),
            Err(KeyringError::PepperMismatch)
        );
        let mut missing = KeyRing::new(None);
        assert_eq!(
            missing.apply(Revision(0), created(&pepper, false)),
            Err(KeyringError::PepperMissing)
        );
        let mut conflict = KeyRing::new(Some(pepper.clone()));
        assert_eq!(
            conflict.apply(Revision(0), created(&pepper, true)),
            Err(KeyringError::PepperConflict)
        );
        assert_eq!(conflict.next_revision(), Revision(0), "nothing applied");
    }

    #[test]
    fn pages_list_active_keys_in_id_order() {
        let pepper = Pepper::generate();
        let mut ring = KeyRing::new(None);
        ring.apply(Revision(0), created(&pepper, true))
            .expect("created");
        let keys: Vec<PlainKey> = (0..5).map(|_| PlainKey::generate()).collect();
        for (n, key) in keys.iter().enumerate() {
            ring.apply(
                Revision(n as u64 + 1),
                key_created(&pepper, key, Role::Reader),
            )
            .expect("key");
        }
        ring.apply(Revision(6), revoked(&keys[0])).expect("revoked");
        let (first, next) = ring.page(None, 3);
        assert_eq!(first.len(), 3);
        let (second, end) = ring.page(next.as_ref(), 3);
        assert_eq!(second.len(), 1);
        assert_eq!(end, None);
        let mut ids: Vec<_> = first.iter().chain(&second).map(|k| k.id.clone()).collect();
        let mut expected: Vec<_> = keys[1..].iter().map(|k| k.id.clone()).collect();
        expected.sort();
        assert_eq!(ids, expected);
        ids.dedup();
        assert_eq!(ids.len(), 4);
    }

    #[test]
    fn a_key_before_the_keyring_is_corrupt() {
        let pepper = Pepper::generate();
        let mut ring = KeyRing::new(None);
        let error = ring
            .apply(
                Revision(0),
                key_created(&pepper, &PlainKey::generate(), Role::Admin),
            )
            .expect_err("no keyring yet");
        assert!(matches!(error, KeyringError::Corrupt { revision: 0, .. }));
    }
}
