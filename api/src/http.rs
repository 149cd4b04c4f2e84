//! HTTP edges of the GraphQL endpoint: request ids, authentication (401 for
//! a missing or bad credential alike), rate limits (429), the body limit, no
//! batches, no mutations over GET, GraphiQL.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_graphql::Data;
use async_graphql::parser::Positioned;
use async_graphql::parser::types::{
    DocumentOperations, FragmentDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Request};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::{self, Principal};
use crate::error::{ApiError, INTERNAL_MESSAGE, RequestId};
use crate::graphql::{ApiSchema, Auth, Loaders};
use crate::rate_limit::retry_after_secs;
use crate::{ApiState, Introspection};

/// The router's state.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) state: ApiState,
    pub(crate) schema: ApiSchema,
}

/// The response header carrying the request id.
pub(crate) const REQUEST_ID_HEADER: &str = "x-request-id";

/// The client's request id when it is sane, else a fresh one.
fn request_id(headers: &HeaderMap) -> RequestId {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map_or_else(
            || RequestId(ulid::Ulid::generate().to_string()),
            |v| RequestId(v.to_owned()),
        )
}

/// The client's address: the socket's peer (`X-Forwarded-For` is not
/// trusted: any client can write it). `None` when the server was started
/// without connect info.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Self(peer.map(|c| c.0.ip())))
    }
}

/// A response made of one error, with the request id; its status follows
/// the error (401 with `WWW-Authenticate`, 429 with `Retry-After`, ...).
fn error_response(
    request_id: &RequestId,
    error: &ApiError,
    retry_after: Option<Duration>,
) -> Response {
    let message = match error {
        ApiError::Internal(cause) => {
            tracing::error!(request_id = %request_id.0, cause, "internal error");
            INTERNAL_MESSAGE.to_owned()
        }
        other => other.to_string(),
    };
    let body = serde_json::json!({
        "data": null,
        "errors": [{
            "message": message,
            "extensions": { "code": error.code(), "requestId": request_id.0 }
        }]
    });
    let mut response = (error.http_status(), axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let ApiError::Unauthenticated(_) = error {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"crmsync\""),
        );
    }
    if let Some(wait) = retry_after {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs(wait)),
        );
    }
    with_request_id(response, request_id)
}

fn with_request_id(mut response: Response, request_id: &RequestId) -> Response {
    if let Ok(value) = HeaderValue::from_str(&request_id.0) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

fn bad_request(request_id: &RequestId, message: &str) -> Response {
    let body = serde_json::json!({
        "data": null,
        "errors": [{
            "message": message,
            "extensions": { "code": "BAD_REQUEST", "requestId": request_id.0 }
        }]
    });
    with_request_id(
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response(),
        request_id,
    )
}

/// What a caller must send.
const MISSING_CREDENTIALS: &str = "send `Authorization: Bearer <token or API key>`";

/// Who is calling, or why the request is refused before it runs (with the
/// wait for `Retry-After` when a limit refused it). A request without
/// credentials runs only when it is introspection and introspection is open.
async fn authorize(
    app: &App,
    client: ClientIp,
    headers: &HeaderMap,
    request: &Request,
) -> Result<Option<Principal>, (ApiError, Option<Duration>)> {
    let limits = &app.state.rate_limits;
    let Some(header) = headers.get(header::AUTHORIZATION) else {
        if app.state.introspection == Introspection::Always && introspection_only(request) {
            return Ok(None);
        }
        return Err((ApiError::Unauthenticated(MISSING_CREDENTIALS.into()), None));
    };
    limits
        .before_authentication(client.0)
        .map_err(|(e, wait)| (e, Some(wait)))?;
    let verified = match header.to_str() {
        Ok(header) => auth::authenticate(&app.state.db, &app.state.auth, Some(header)).await,
        Err(_) => Err(ApiError::Unauthenticated(
            "the Authorization header is not text".into(),
        )),
    };
    let principal = match verified {
        Ok(principal) => principal.expect("a header was given"),
        Err(e @ ApiError::Unauthenticated(_)) => {
            limits
                .authentication_failed(client.0)
                .map_err(|(e, wait)| (e, Some(wait)))?;
            return Err((e, None));
        }
        Err(e) => return Err((e, None)),
    };
    if let Some(tenant) = principal.tenant_id() {
        limits
            .tenant_request(tenant.as_str())
            .map_err(|(e, wait)| (e, Some(wait)))?;
    }
    Ok(Some(principal))
}

/// True when the operation selects nothing but `__schema`, `__type` and
/// `__typename` (through fragments too).
fn introspection_only(request: &Request) -> bool {
    let Ok(doc) = async_graphql::parser::parse_query(&request.query) else {
        return false;
    };
    let operation = match (&doc.operations, request.operation_name.as_deref()) {
        (DocumentOperations::Single(op), _) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
            Some(op) => op,
            None => return false,
        },
        (DocumentOperations::Multiple(_), None) => return false,
    };
    operation.node.ty == OperationType::Query
        && only_meta_fields(&operation.node.selection_set.node, &doc.fragments, 0)
}

fn only_meta_fields(
    set: &SelectionSet,
    fragments: &HashMap<Name, Positioned<FragmentDefinition>>,
    depth: usize,
) -> bool {
    // Fragments may spread each other in a cycle (execution refuses that):
    // give up past a small depth.
    depth < 8
        && set.items.iter().all(|item| match &item.node {
            Selection::Field(field) => matches!(
                field.node.name.node.as_str(),
                "__schema" | "__type" | "__typename"
            ),
            Selection::InlineFragment(inline) => {
                only_meta_fields(&inline.node.selection_set.node, fragments, depth + 1)
            }
            Selection::FragmentSpread(spread) => fragments
                .get(&spread.node.fragment_name.node)
                .is_some_and(|f| {
                    only_meta_fields(&f.node.selection_set.node, fragments, depth + 1)
                }),
        })
}

/// Per-request data: who is calling, the request id, and (for tenant roles) loaders.
pub(crate) fn request_data(
    state: &ApiState,
    principal: Option<Principal>,
    request_id: RequestId,
) -> Data {
    let mut data = Data::default();
    if let Some(tenant) = principal.as_ref().and_then(Principal::tenant_id) {
        data.insert(Loaders::new(&state.db, &tenant));
    }
    data.insert(Auth(principal));
    data.insert(request_id);
    data
}

async fn execute(
    app: &App,
    client: ClientIp,
    headers: &HeaderMap,
    request: Request,
    request_id: RequestId,
) -> Response {
    let principal = match authorize(app, client, headers, &request).await {
        Ok(p) => p,
        Err((e, retry_after)) => return error_response(&request_id, &e, retry_after),
    };
    let mut request = request;
    request.extensions.insert(
        crate::error::REQUEST_ID_EXTENSION.to_owned(),
        async_graphql::Value::String(request_id.0.clone()),
    );
    request.data = request_data(&app.state, principal, request_id.clone());
    let response = app.schema.execute(request).await;
    let body = axum::Json(&response).into_response();
    with_request_id(body, &request_id)
}

/// How deeply a JSON body may nest. serde_json stops at 128 with a message
/// that only a Rust programmer reads; real requests nest a dozen levels.
pub(crate) const MAX_JSON_DEPTH: usize = 64;

/// `POST /graphql`: one operation per request (batches are refused).
pub(crate) async fn post_graphql(
    State(app): State<App>,
    client: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = request_id(&headers);
    match graphql_request(&body) {
        Ok(request) => execute(&app, client, &headers, request, request_id).await,
        Err(message) => bad_request(&request_id, &message),
    }
}

/// The GraphQL request in a POST body, or what is wrong with the body, in words.
fn graphql_request(body: &[u8]) -> Result<async_graphql::Request, String> {
    const SHAPE: &str = "the body must be a JSON object with a `query` string, and optionally `variables` (an object) and `operationName` (a string)";
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(format!("the body is empty: {SHAPE}"));
    }
    if nesting_exceeds(body, MAX_JSON_DEPTH) {
        return Err(format!(
            "the JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels)"
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "it ends before the JSON value is complete",
            _ => "a syntax error",
        };
        format!(
            "the body is not JSON: {what} at line {}, column {}",
            e.line(),
            e.column()
        )
    })?;
    let object = match value {
        serde_json::Value::Object(object) => object,
        serde_json::Value::Array(_) => {
            return Err("batched requests are not accepted: send one operation per request".into());
        }
        _ => return Err(SHAPE.into()),
    };
    match object.get("query") {
        Some(serde_json::Value::String(q)) if !q.trim().is_empty() => {}
        Some(serde_json::Value::String(_)) => {
            return Err("`query` is empty: send a GraphQL document".into());
        }
        Some(_) => return Err(format!("`query` is not a string: {SHAPE}")),
        None => return Err(format!("the body has no `query`: {SHAPE}")),
    }
    if object
        .get("variables")
        .is_some_and(|v| !(v.is_object() || v.is_null()))
    {
        return Err("`variables` must be a JSON object (or null)".into());
    }
    if object
        .get("operationName")
        .is_some_and(|v| !(v.is_string() || v.is_null()))
    {
        return Err("`operationName` must be a string (or null)".into());
    }
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|_| SHAPE.to_owned())
}

/// Whether the JSON text nests arrays and objects deeper than `limit`
/// (brackets inside strings do not count).
fn nesting_exceeds(body: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// `GET /graphql`: GraphiQL without a query; with one, queries only (a
/// mutation over GET is a CSRF vector).
pub(crate) async fn get_graphql(
    State(app): State<App>,
    client: ClientIp,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let request_id = request_id(&headers);
    let Some(query) = query.filter(|q| q.contains("query=")) else {
        return crate::graphiql::page();
    };
    let request = match async_graphql::http::parse_query_string(&query) {
        Ok(r) => r,
        Err(_) => return bad_request(&request_id, "the query string is not a GraphQL request"),
    };
    let only_queries = match async_graphql::parser::parse_query(&request.query) {
        Ok(doc) => match &doc.operations {
            DocumentOperations::Single(op) => op.node.ty == OperationType::Query,
            DocumentOperations::Multiple(ops) => {
                ops.values().all(|op| op.node.ty == OperationType::Query)
            }
        },
        // Let execution report the syntax error.
        Err(_) => true,
    };
    if !only_queries {
        let body = serde_json::json!({
            "data": null,
            "errors": [{
                "message": "mutations and subscriptions are not accepted over GET: use POST (or the WebSocket for subscriptions)",
                "extensions": { "code": "BAD_REQUEST", "requestId": request_id.0 }
            }]
        });
        let mut response = (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return with_request_id(response, &request_id);
    }
    execute(&app, client, &headers, request, request_id).await
}
