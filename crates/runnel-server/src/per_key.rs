//! A bound per API key on something held open (live subscriptions), so that one key, leaked or
//! buggy, cannot take every place the global bound leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug)]
pub(crate) struct PerKeyLimit {
    max: usize,
    open: Mutex<HashMap<String, usize>>,
}

impl PerKeyLimit {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// A place for `key`, or `None` when it holds `max` already. The place is given back when
    /// the permit is dropped.
    pub(crate) fn try_acquire(self: &Arc<Self>, key: &str) -> Option<PerKeyPermit> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key.to_owned()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(PerKeyPermit {
            limit: Arc::clone(self),
            key: key.to_owned(),
        })
    }

    #[cfg(test)]
    fn open(&self, key: &str) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(key).copied().unwrap_or(0)
    }
}

#[derive(Debug)]
pub(crate) struct PerKeyPermit {
    limit: Arc<PerKeyLimit>,
    key: String,
}

impl Drop for PerKeyPermit {
    fn drop(&mut self) {
        let mut open = self
            .limit
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            // Revoked and rotated keys must not leave entries behind forever.
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_gets_max_places_and_dropping_a_permit_gives_one_back() {
        let limit = PerKeyLimit::new(2);
        let a1 = limit.try_acquire("a").expect("first");
        let _a2 = limit.try_acquire("a").expect("second");
        assert!(limit.try_acquire("a").is_none(), "a third for the same key");
        let b = limit.try_acquire("b").expect("another key is not affected");
        drop(a1);
        assert_eq!(limit.open("a"), 1);
        assert!(limit.try_acquire("a").is_some());
        drop(b);
        assert_eq!(limit.open("b"), 0);
        assert!(!limit.open.lock().expect("lock").contains_key("b"));
    }
}
