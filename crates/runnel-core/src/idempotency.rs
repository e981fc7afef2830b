//! Idempotent retries, decided the same way by every engine: an append whose events carry ids
//! already written, at the same stream and at consecutive revisions and positions in the same
//! order, is a retry and gets the original outcome; any other reuse of an id is a duplicate.

use std::collections::HashSet;

use uuid::Uuid;

use crate::append::{AppendOutcome, AppendRequest};
use crate::error::StoreError;
use crate::names::StreamName;
use crate::numbers::{Position, Revision};

/// Where an event id already lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdSite {
    pub stream: StreamName,
    pub revision: Revision,
    pub position: Position,
}

/// Decides what the ids of `request` mean, given `locate`, which says where an id already lives
/// (`None`: nowhere). `Ok(Some(outcome))` is a retry to answer with `outcome` and write nothing;
/// `Ok(None)` means no id is known and the append proceeds to its expectation check.
pub fn resolve_ids(
    request: &AppendRequest,
    mut locate: impl FnMut(Uuid) -> Result<Option<IdSite>, StoreError>,
) -> Result<Option<AppendOutcome>, StoreError> {
    let mut seen = HashSet::with_capacity(request.events.len());
    let mut sites = Vec::with_capacity(request.events.len());
    for event in &request.events {
        let Some(id) = event.id else {
            sites.push(None);
            continue;
        };
        if !seen.insert(id) {
            return Err(StoreError::DuplicateEventId { id });
        }
        sites.push(locate(id)?.map(|site| (id, site)));
    }
    let Some((first_id, first)) = sites.iter().flatten().next().cloned() else {
        return Ok(None);
    };
    let is_retry = sites.iter().enumerate().all(|(offset, site)| {
        site.as_ref().is_some_and(|(_, site)| {
            site.stream == request.stream
                && site.revision.0 == first.revision.0 + offset as u64
                && site.position.0 == first.position.0 + offset as u64
        })
    });
    if !is_retry {
        return Err(StoreError::DuplicateEventId { id: first_id });
    }
    let last = sites
        .last()
        .and_then(|site| site.as_ref())
        .map_or_else(|| first.clone(), |(_, site)| site.clone());
    Ok(Some(AppendOutcome {
        stream: request.stream.clone(),
        first_revision: first.revision,
        last_revision: last.revision,
        first_position: first.position,
        last_position: last.position,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::{EventType, ExpectedRevision, JsonText, ProposedEvent};

    fn request(stream: &str, ids: &[Option<Uuid>]) -> AppendRequest {
        AppendRequest {
            stream: StreamName::parse(stream).expect("valid"),
            expected: ExpectedRevision::Any,
            events: ids
                .iter()
                .map(|id| ProposedEvent {
                    id: *id,
                    ..ProposedEvent::json(
                        EventType::parse("E").expect("valid"),
                        JsonText::parse("1".to_owned()).expect("json"),
                    )
                })
                .collect(),
        }
    }

    fn site(stream: &str, revision: u64, position: u64) -> IdSite {
        IdSite {
            stream: StreamName::parse(stream).expect("valid"),
            revision: Revision(revision),
            position: Position(position),
        }
    }

    fn resolve(
        request: &AppendRequest,
        known: &HashMap<Uuid, IdSite>,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        resolve_ids(request, |id| Ok(known.get(&id).cloned()))
    }

    #[test]
    fn unknown_ids_let_the_append_proceed() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let outcome = resolve(&request("s/1", &[Some(a), Some(b), None]), &HashMap::new());
        assert!(matches!(outcome, Ok(None)));
    }

    #[test]
    fn an_exact_retry_gets_the_original_outcome() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let known = HashMap::from([(a, site("s/1", 3, 10)), (b, site("s/1", 4, 11))]);
        let outcome = resolve(&request("s/1", &[Some(a), Some(b)]), &known)
            .expect("a retry")
            .expect("an outcome");
        assert_eq!(
            (outcome.first_revision, outcome.last_revision),
            (Revision(3), Revision(4))
        );
        assert_eq!(
            (outcome.first_position, outcome.last_position),
            (Position(10), Position(11))
        );
    }

    #[test]
    fn reuse_elsewhere_reordered_or_partial_is_a_duplicate() {
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let known = HashMap::from([(a, site("s/1", 3, 10)), (b, site("s/1", 4, 11))]);
        for ids in [
            vec![Some(b), Some(a)],
            vec![Some(a), Some(c)],
            vec![Some(c), Some(a)],
        ] {
            let outcome = resolve(&request("s/1", &ids), &known);
            assert!(
                matches!(outcome, Err(StoreError::DuplicateEventId { .. })),
                "{ids:?}"
            );
        }
        let elsewhere = resolve(&request("s/2", &[Some(a), Some(b)]), &known);
        assert!(matches!(elsewhere, Err(StoreError::DuplicateEventId { id }) if id == a));
    }

    #[test]
    fn an_id_twice_in_one_append_is_a_duplicate() {
        let a = Uuid::now_v7();
        let outcome = resolve(&request("s/1", &[Some(a), Some(a)]), &HashMap::new());
        assert!(matches!(outcome, Err(StoreError::DuplicateEventId { id }) if id == a));
    }
}
