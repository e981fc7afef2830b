//! API keys (`/keys`, role admin): create one (the only time its secret is shown), list them,
//! revoke one.

use std::fmt;

use chrono::{DateTime, Utc};
use futures::Stream;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::client::{Client, paged};
use crate::error::ClientError;

/// One rule of a key: the stream types and event types it reaches, as exact names or prefixes
/// ending in `*`. An empty list places no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRule {
    #[serde(default)]
    pub stream_types: Vec<String>,
    #[serde(default)]
    pub event_types: Vec<String>,
}

/// What to create: a name for people, a role (`admin`, `operator`, `producer`, `consumer`,
/// `reader`), and rules of which one must match (none: everything the role allows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewKey {
    pub name: String,
    pub role: String,
    pub rules: Vec<KeyRule>,
}

impl NewKey {
    pub fn new(name: impl Into<String>, role: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            role: role.into(),
            rules: Vec::new(),
        }
    }

    pub fn with_rule(mut self, rule: KeyRule) -> Self {
        self.rules.push(rule);
        self
    }
}

/// A key just created. `key` is its secret, shown by the server only this once.
#[derive(Clone, Serialize, Deserialize)]
pub struct CreatedKey {
    pub id: String,
    pub key: String,
    pub name: String,
    pub role: String,
    pub rules: Vec<KeyRule>,
    pub created_at: DateTime<Utc>,
}

/// Printing a created key (in a log line, say) must not print its secret.
impl fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("rules", &self.rules)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Who made a key: `key_id` is `None` for the configured admin key and the server itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyActor {
    pub key_id: Option<String>,
    pub key_name: String,
}

/// An active key as listed: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub role: String,
    pub rules: Vec<KeyRule>,
    pub created_at: DateTime<Utc>,
    pub created_by: KeyActor,
}

/// A page of `GET /keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeysPage {
    pub keys: Vec<KeyInfo>,
    pub next: Option<String>,
}

impl Client {
    /// `POST /keys`: creates a key. Keep [`CreatedKey::key`]: the server never shows it again.
    pub async fn create_key(&self, key: &NewKey) -> Result<CreatedKey, ClientError> {
        let request = self.request(Method::POST, self.url(&["keys"])).json(key);
        self.send_json(request).await
    }

    /// One page of the active keys in id order, after the id `after`.
    pub async fn list_keys_page(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<KeysPage, ClientError> {
        self.get_json(self.listing_url(&["keys"], after, limit))
            .await
    }

    /// Every active key, in id order, paging internally.
    pub fn list_keys(&self) -> impl Stream<Item = Result<KeyInfo, ClientError>> + Send + 'static {
        let client = self.clone();
        let page_size = self.config.page_size;
        paged(None, move |cursor: Option<String>| {
            let client = client.clone();
            async move {
                let page = client.list_keys_page(cursor.as_deref(), page_size).await?;
                Ok((page.keys, page.next))
            }
        })
    }

    /// `DELETE /keys/{id}`: revokes a key. When this returns, the server refuses the key.
    pub async fn revoke_key(&self, id: &str) -> Result<(), ClientError> {
        let request = self.request(Method::DELETE, self.url(&["keys", id]));
        let (status, body) = self.send(request).await?;
        if status.is_success() {
            return Ok(());
        }
        Err(ClientError::from_response(status.as_u16(), &body))
    }
}
