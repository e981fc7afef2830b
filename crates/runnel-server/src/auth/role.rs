//! Roles and what each may do. A role grants capabilities; a key's rules (see
//! [`crate::auth::rules`]) then narrow the streams and events those capabilities reach.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a key is for. Every key has exactly one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    /// Everything, including managing keys.
    Admin,
    /// Reads everything (system streams such as `$audit` included), manages subscriptions and
    /// reads metrics; cannot append or manage keys.
    Operator,
    /// Appends, and nothing else.
    Producer,
    /// Reads, follows `$all` live and consumes from consumer groups.
    Consumer,
    /// Reads, and nothing else.
    Reader,
}

impl Role {
    #[cfg(test)]
    pub(crate) const ALL: [Role; 5] = [
        Role::Admin,
        Role::Operator,
        Role::Producer,
        Role::Consumer,
        Role::Reader,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
            Self::Reader => "reader",
        }
    }

    /// The whole permission table, in one place.
    pub(crate) fn can(self, capability: Capability) -> bool {
        use Capability as C;
        match self {
            Self::Admin => true,
            Self::Operator => matches!(
                capability,
                C::Read
                    | C::Subscribe
                    | C::ConsumeGroups
                    | C::ManageSubscriptions
                    | C::ReadSystemStreams
                    | C::Metrics
            ),
            Self::Producer => matches!(capability, C::Append),
            Self::Consumer => matches!(capability, C::Read | C::Subscribe | C::ConsumeGroups),
            Self::Reader => matches!(capability, C::Read),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind of request, as far as roles are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Capability {
    /// Append events to streams.
    Append,
    /// Read streams and `$all`, describe and list streams.
    Read,
    /// Follow `$all` live (`GET /subscribe`).
    Subscribe,
    /// Receive, acknowledge and reject messages of consumer groups.
    #[allow(dead_code)] // For the consumer-group routes, which are not served yet.
    ConsumeGroups,
    /// Create, change and delete consumer groups.
    #[allow(dead_code)] // For the consumer-group routes, which are not served yet.
    ManageSubscriptions,
    /// Read system streams (`$audit`); `$keys` stays hidden from everyone.
    ReadSystemStreams,
    /// Create, list and revoke API keys.
    ManageKeys,
    /// Read `GET /metrics` (unless it is configured public).
    Metrics,
}

impl Capability {
    /// How a refusal names what was asked for: "this key (role consumer) may not {…}".
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Append => "append events",
            Self::Read => "read events or streams",
            Self::Subscribe => "subscribe to live events",
            Self::ConsumeGroups => "consume from consumer groups",
            Self::ManageSubscriptions => "manage subscriptions",
            Self::ReadSystemStreams => "read system streams",
            Self::ManageKeys => "manage API keys",
            Self::Metrics => "read metrics",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of the security documentation, row by row: a change to what a role may do
    /// must change this test too.
    #[test]
    fn each_role_has_exactly_the_documented_capabilities() {
        use Capability as C;
        let all = [
            C::Append,
            C::Read,
            C::Subscribe,
            C::ConsumeGroups,
            C::ManageSubscriptions,
            C::ReadSystemStreams,
            C::ManageKeys,
            C::Metrics,
        ];
        let expected: [(Role, &[Capability]); 5] = [
            (Role::Admin, &all),
            (
                Role::Operator,
                &[
                    C::Read,
                    C::Subscribe,
                    C::ConsumeGroups,
                    C::ManageSubscriptions,
                    C::ReadSystemStreams,
                    C::Metrics,
                ],
            ),
            (Role::Producer, &[C::Append]),
            (Role::Consumer, &[C::Read, C::Subscribe, C::ConsumeGroups]),
            (Role::Reader, &[C::Read]),
        ];
        for (role, granted) in expected {
            for capability in all {
                assert_eq!(
                    role.can(capability),
                    granted.contains(&capability),
                    "{role} and {capability:?}"
                );
            }
        }
    }

    #[test]
    fn roles_are_written_in_lowercase() {
        for role in Role::ALL {
            let json = serde_json::to_string(&role).expect("serialises");
            assert_eq!(json, format!("\"{}\"", role.as_str()));
            let back: Role = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, role);
        }
        assert!(serde_json::from_str::<Role>("\"Admin\"").is_err());
        assert!(serde_json::from_str::<Role>("\"root\"").is_err());
    }
}
