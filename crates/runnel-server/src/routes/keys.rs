//! `/keys`: create, list, describe and revoke API keys. Admin only; every change is written to
//! the `$audit/keys` stream.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Caller, Capability, KeyId, Role, RuleInput, Rules, StoredKey};
use crate::extract::{JsonBody, QueryParams, truncate};
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

/// The longest key name, in characters.
const MAX_KEY_NAME_CHARS: usize = 128;

/// The body of `POST /keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewKey)]
pub(crate) struct CreateKeyBody {
    /// What the key is for, for people: 1–128 characters, no control characters.
    #[schema(example = "order service")]
    name: String,
    role: Role,
    /// What the key may reach: a list of rules, of which one must match (a single rule object
    /// is accepted too). Empty or absent: everything the role allows.
    #[serde(default)]
    #[schema(value_type = Vec<RuleInput>)]
    rules: Rules,
}

/// Who made a key.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = KeyActor)]
pub(crate) struct ActorView {
    /// `null` for the configured admin key, `--insecure`, and the server itself.
    key_id: Option<String>,
    key_name: String,
}

/// An API key as listed: never its secret, never its hash.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub(crate) struct KeyView {
    #[schema(example = "3f9a1c0d5e7b2a64")]
    id: String,
    name: String,
    role: Role,
    #[schema(value_type = Vec<RuleInput>)]
    rules: Rules,
    created_at: String,
    created_by: ActorView,
}

impl From<StoredKey> for KeyView {
    fn from(key: StoredKey) -> Self {
        Self {
            id: key.id.as_str().to_owned(),
            name: key.name,
            role: key.role,
            rules: (*key.rules).clone(),
            created_at: key.created_at,
            created_by: ActorView {
                key_id: key.created_by.key_id,
                key_name: key.created_by.key_name,
            },
        }
    }
}

/// The answer of `POST /keys`: the only time the key itself is shown.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CreatedKey)]
pub(crate) struct CreatedKeyView {
    #[schema(example = "3f9a1c0d5e7b2a64")]
    id: String,
    /// The key, to send as `Authorization: Bearer <key>`. Shown only here: the server keeps
    /// only a keyed hash of it.
    #[schema(example = "rnl_3f9a1c0d5e7b2a64_…")]
    key: String,
    name: String,
    role: Role,
    #[schema(value_type = Vec<RuleInput>)]
    rules: Rules,
    created_at: String,
}

/// A page of keys, in id order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKeyList)]
pub(crate) struct KeyListView {
    keys: Vec<KeyView>,
    /// The `after` of the following page (a key id), or `null`.
    next: Option<String>,
}

/// Create an API key.
///
/// The answer holds the key itself, once; afterwards only its id is known. The creation is
/// recorded in `$audit/keys`.
#[utoipa::path(
    post,
    path = "/keys",
    tag = "keys",
    request_body = CreateKeyBody,
    responses(
        (status = 201, description = "Created; `key` is shown only in this answer", body = CreatedKeyView),
        (status = 400, description = "Malformed JSON, unknown role, bad name or rule", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`too_many_keys`: the server holds max_keys keys", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateKeyBody>,
) -> Result<(StatusCode, Json<CreatedKeyView>), ApiError> {
    caller.require(Capability::ManageKeys)?;
    let name = check_name(body.name)?;
    let (key, plain) = state
        .auth()
        .create_key(&caller, name, body.role, body.rules)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKeyView {
            id: key.id.as_str().to_owned(),
            key: plain.token(),
            name: key.name,
            role: key.role,
            rules: (*key.rules).clone(),
            created_at: key.created_at,
        }),
    ))
}

/// List the active API keys, in id order.
#[utoipa::path(
    get,
    path = "/keys",
    tag = "keys",
    params(
        ("after" = Option<String>, Query, description = "Start after this key id (the `next` of the previous page)"),
        ("limit" = Option<usize>, Query, description = "1–1000, default 100"),
    ),
    responses(
        (status = 200, description = "A page of keys", body = KeyListView),
        (status = 400, description = "Bad query parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    query: QueryParams,
) -> Result<Json<KeyListView>, ApiError> {
    caller.require(Capability::ManageKeys)?;
    query.allow_only(&["after", "limit"])?;
    let after = query
        .single("after")?
        .map(|raw| {
            KeyId::parse(raw).ok_or_else(|| {
                ApiError::InvalidQuery(format!(
                    "query parameter after must be a key id (16 hex digits), not {:?}",
                    truncate(raw)
                ))
            })
        })
        .transpose()?;
    let limit = query.limit()?;
    let (keys, next) = state.auth().list_keys(after.as_ref(), limit);
    Ok(Json(KeyListView {
        keys: keys.into_iter().map(KeyView::from).collect(),
        next: next.map(|id| id.as_str().to_owned()),
    }))
}

/// Describe one active API key.
#[utoipa::path(
    get,
    path = "/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The key", body = KeyView),
        (status = 404, description = "`key_not_found`: no active key has this id", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn get_key(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<KeyView>, ApiError> {
    caller.require(Capability::ManageKeys)?;
    let Path(id) = id.map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
    let not_found = || crate::auth::AuthError::KeyNotFound { id: truncate(&id) };
    let key_id = KeyId::parse(&id).ok_or_else(not_found)?;
    let key = state.auth().key(&key_id).ok_or_else(not_found)?;
    Ok(Json(KeyView::from(key)))
}

/// Revoke an API key.
///
/// Effective at once: when this answers, this server refuses the key, and every other server
/// sharing the store refuses it as soon as it reads the revocation (within about a second).
/// Live subscriptions made with the key are closed. Recorded in `$audit/keys`.
#[utoipa::path(
    delete,
    path = "/keys/{id}",
    tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "`key_not_found`: no active key has this id", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    caller.require(Capability::ManageKeys)?;
    let Path(id) = id.map_err(|rejection| ApiError::InvalidPath(rejection.body_text()))?;
    state.auth().revoke_key(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn check_name(name: String) -> Result<String, ApiError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_KEY_NAME_CHARS {
        return Err(ApiError::InvalidBody(format!(
            "name: must be 1 to {MAX_KEY_NAME_CHARS} characters, not {chars}"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::InvalidBody(
            "name: must not contain control characters".to_owned(),
        ));
    }
    Ok(name)
}
