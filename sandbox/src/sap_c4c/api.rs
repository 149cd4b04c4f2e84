//! The OData requests on entity sets and entities: reads (collection, entity,
//! `$count`), create, update (PATCH, MERGE, PUT) with ETags, delete. One
//! function, [`execute`], serves them both as plain requests and inside a
//! `$batch`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::model::{Record, Set, TenantData, WriteError, etag};
use super::odata::{Options, matches, order, param};
use super::{
    SERVICE_PATH, Tenant, authenticate, check_csrf, fetch_csrf, metadata as edmx, odata_error,
};
use crate::{AppState, Shared};

/// Previous versions of the records a changeset touched, to roll it back.
pub(crate) type Undo = Vec<(Set, String, Option<Record>)>;

/// `GET /` (and HEAD): the service document; where clients fetch a CSRF token.
pub(crate) async fn service_document(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    serve_read(&state, &headers, |_, _| {
        let sets: Vec<String> = Set::ALL.iter().map(|s| s.set_name()).collect();
        let mut all = sets.clone();
        all.extend(edmx::code_list_sets());
        json_response(200, &json!({ "d": { "EntitySets": all } }))
    })
}

/// `GET` on the service root without its trailing slash: C4C answers 307 to
/// the root with it, so a client that forgets the slash notices.
pub(crate) async fn without_slash(State(state): State<AppState>) -> Response {
    Response::builder()
        .status(StatusCode::TEMPORARY_REDIRECT)
        .header(header::LOCATION, service_url(&state))
        .body(Body::empty())
        .unwrap_or_default()
}

/// `GET /$metadata`: the EDMX document.
pub(crate) async fn metadata(State(state): State<AppState>, headers: HeaderMap) -> Response {
    serve_read(&state, &headers, |_, tenant| {
        let xml = edmx::document(&tenant.data.lock());
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/xml")
            .body(Body::from(xml))
            .unwrap_or_default()
    })
}

/// `GET /{Set}/$count`.
pub(crate) async fn count(
    State(state): State<AppState>,
    Path(resource): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    serve_read(&state, &headers, |_, tenant| {
        let target = format!("{resource}/$count?{}", uri.query().unwrap_or_default());
        execute(&state, tenant, &Method::GET, &target, &headers, &[], None)
    })
}

/// Any method on `/{Set}` or `/{Set}('{ObjectID}')`.
pub(crate) async fn resource(
    State(state): State<AppState>,
    Path(resource): Path<String>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_else(|_| Bytes::new());
    let is_read = matches!(parts.method, Method::GET | Method::HEAD);
    let tenant = match admitted(&state, &parts.headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    if !is_read && let Err(r) = check_csrf(&state, &tenant, &parts.headers) {
        return r;
    }
    let target = format!("{resource}?{}", parts.uri.query().unwrap_or_default());
    let mut response = execute(
        &state,
        &tenant,
        &parts.method,
        &target,
        &parts.headers,
        &body,
        None,
    );
    if is_read {
        fetch_csrf(&state, &tenant, &parts.headers, &mut response);
    }
    response
}

/// Authenticates and counts a request against the tenant's daily cap.
pub(crate) fn admitted(
    state: &Shared,
    headers: &HeaderMap,
) -> Result<std::sync::Arc<Tenant>, Response> {
    let tenant = authenticate(state, headers)?;
    let now_ms = state.clock.now().timestamp_millis();
    if !tenant.data.lock().admit(now_ms) {
        return Err(odata_error(
            429,
            "TOO_MANY_REQUESTS",
            "The tenant's request limit for today is reached",
        ));
    }
    Ok(tenant)
}

fn serve_read(
    state: &Shared,
    headers: &HeaderMap,
    handler: impl FnOnce(&Shared, &Tenant) -> Response,
) -> Response {
    let tenant = match admitted(state, headers) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut response = handler(state, &tenant);
    fetch_csrf(state, &tenant, headers, &mut response);
    response
}

pub(crate) fn json_response(status: u16, body: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, "application/json")
        .header("dataserviceversion", "2.0")
        .body(Body::from(body.to_string()))
        .unwrap_or_default()
}

fn write_error(error: &WriteError) -> Response {
    odata_error(error.status, error.code, &error.message)
}

/// `LeadCollection` or `LeadCollection('ID')`, percent-decoded.
fn parse_resource(resource: &str) -> Result<(Set, Option<String>), Response> {
    let (name, key) = match resource.split_once('(') {
        Some((name, rest)) => {
            let inner = rest.strip_suffix(')').unwrap_or(rest);
            let inner = inner.strip_prefix("ObjectID=").unwrap_or(inner);
            let key = inner
                .strip_prefix('\'')
                .and_then(|k| k.strip_suffix('\''))
                .ok_or_else(|| {
                    odata_error(
                        400,
                        "INVALID_KEY",
                        &format!("Invalid key predicate '({rest}' : ObjectID is an Edm.String"),
                    )
                })?;
            (name, Some(key.replace("''", "'")))
        }
        None => (resource, None),
    };
    let set = Set::parse(name)
        .filter(|_| name.ends_with("Collection"))
        .ok_or_else(|| {
            odata_error(
                404,
                "RESOURCE_NOT_FOUND",
                &format!("Resource not found for the segment '{name}'"),
            )
        })?;
    Ok((set, key))
}

fn wants_json(query: &[(String, String)], headers: &HeaderMap) -> bool {
    match param(query, "$format") {
        Some(f) => f == "json",
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("application/json")),
    }
}

fn service_url(state: &Shared) -> String {
    format!("{}{SERVICE_PATH}/", state.base_url)
}

/// Serves one OData request (`target` is the path below the service root with
/// its query). With `undo`, writes record what they replaced, so a failed
/// changeset can be rolled back.
pub(crate) fn execute(
    state: &Shared,
    tenant: &Tenant,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    body: &[u8],
    undo: Option<&mut Undo>,
) -> Response {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query: Vec<(String, String)> = form_pairs(query);
    let (path, is_count) = match path.strip_suffix("/$count") {
        Some(p) => (p, true),
        None => (path, false),
    };
    let decoded = percent_decode(path);
    if let Some(list) = code_list(tenant, &decoded) {
        return json_response(200, &json!({ "d": { "results": list } }));
    }
    let (set, key) = match parse_resource(&decoded) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let now_ms = state.clock.now().timestamp_millis();
    let mut data = tenant.data.lock();
    match (method.as_str(), key) {
        ("GET" | "HEAD", None) if is_count => count_entries(&data, set, &query),
        ("GET" | "HEAD", None) => {
            if !wants_json(&query, headers) {
                return not_json();
            }
            read_collection(state, &data, set, &query)
        }
        ("GET" | "HEAD", Some(id)) => {
            if !wants_json(&query, headers) {
                return not_json();
            }
            read_entity(state, &data, set, &id, &query)
        }
        ("POST", None) => create(state, &mut data, set, body, now_ms, undo),
        ("PATCH" | "MERGE" | "PUT", Some(id)) => {
            let replace = method.as_str() == "PUT";
            update(&mut data, set, &id, headers, body, replace, now_ms, undo)
        }
        ("DELETE", Some(id)) => delete(&mut data, set, &id, undo),
        _ => odata_error(
            405,
            "METHOD_NOT_ALLOWED",
            &format!("Method {method} is not allowed on this resource"),
        ),
    }
}

/// The entries of a code list set, when `name` is one.
fn code_list(tenant: &Tenant, name: &str) -> Option<Vec<Value>> {
    let data = tenant.data.lock();
    edmx::all_code_lists(&data)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, list)| {
            list.into_iter()
                .map(|(code, description)| json!({ "Code": code, "Description": description }))
                .collect()
        })
}

fn not_json() -> Response {
    odata_error(
        406,
        "FORMAT_NOT_SUPPORTED",
        "The sandbox answers JSON only: add $format=json or Accept: application/json",
    )
}

fn options(table: &super::model::Table, query: &[(String, String)]) -> Result<Options, Response> {
    Options::parse(query, table).map_err(|m| odata_error(400, "INVALID_QUERY_OPTION", &m))
}

fn selected<'a>(data: &'a TenantData, set: Set, options: &Options) -> Vec<&'a Record> {
    let table = data.table(set);
    let mut records: Vec<&Record> = table
        .records
        .values()
        .filter(|r| options.filter.as_ref().is_none_or(|f| matches(f, table, r)))
        .collect();
    records.sort_by(|a, b| order(a, b, &options.order));
    records
}

fn count_entries(data: &TenantData, set: Set, query: &[(String, String)]) -> Response {
    let options = match options(data.table(set), query) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let n = selected(data, set, &options).len();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(n.to_string()))
        .unwrap_or_default()
}

fn read_collection(
    state: &Shared,
    data: &TenantData,
    set: Set,
    query: &[(String, String)],
) -> Response {
    let options = match options(data.table(set), query) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let all = selected(data, set, &options);
    let total = all.len();
    let window_end = options
        .top
        .map_or(total, |top| (options.skip + top).min(total));
    let start = (options.skip + options.skiptoken).min(window_end);
    let end = (start + data.settings.page_size).min(window_end);
    let service = service_url(state);
    let results: Vec<Value> = all[start..end]
        .iter()
        .map(|r| data.to_json(set, r, &service, options.select.as_deref()))
        .collect();
    let mut d = Map::new();
    if options.inlinecount {
        d.insert("__count".into(), json!(total.to_string()));
    }
    d.insert("results".into(), json!(results));
    if end < window_end {
        let mut next: Vec<String> = query
            .iter()
            .filter(|(k, _)| k != "$skiptoken")
            .map(|(k, v)| format!("{k}={}", percent_encode(v)))
            .collect();
        next.push(format!("$skiptoken={}", end - options.skip));
        d.insert(
            "__next".into(),
            json!(format!("{service}{}?{}", set.set_name(), next.join("&"))),
        );
    }
    json_response(200, &json!({ "d": d }))
}

fn entity_response(
    status: u16,
    state: &Shared,
    data: &TenantData,
    set: Set,
    id: &str,
    select: Option<&[String]>,
) -> Response {
    let record = &data.table(set).records[id];
    let mut response = json_response(
        status,
        &json!({ "d": data.to_json(set, record, &service_url(state), select) }),
    );
    if let Ok(v) = etag(record.time("ETag")).parse() {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

fn read_entity(
    state: &Shared,
    data: &TenantData,
    set: Set,
    id: &str,
    query: &[(String, String)],
) -> Response {
    if !data.table(set).records.contains_key(id) {
        return write_error(&super::model::not_found(set, id));
    }
    let options = match options(data.table(set), query) {
        Ok(o) => o,
        Err(r) => return r,
    };
    entity_response(200, state, data, set, id, options.select.as_deref())
}

fn parse_body(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(odata_error(
            400,
            "INVALID_BODY",
            "The request body must be a JSON object",
        )),
        Err(e) => Err(odata_error(
            400,
            "INVALID_BODY",
            &format!("Malformed JSON in the request body: {e}"),
        )),
    }
}

fn create(
    state: &Shared,
    data: &mut TenantData,
    set: Set,
    body: &[u8],
    now_ms: i64,
    undo: Option<&mut Undo>,
) -> Response {
    let body = match parse_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match data.create(set, &body, now_ms, false) {
        Ok(id) => {
            if let Some(undo) = undo {
                undo.push((set, id.clone(), None));
            }
            let mut response = entity_response(201, state, data, set, &id, None);
            let location = format!("{}{}('{id}')", service_url(state), set.set_name());
            if let Ok(v) = location.parse() {
                response.headers_mut().insert(header::LOCATION, v);
            }
            response
        }
        Err(e) => write_error(&e),
    }
}

#[allow(clippy::too_many_arguments)]
fn update(
    data: &mut TenantData,
    set: Set,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
    replace: bool,
    now_ms: i64,
    undo: Option<&mut Undo>,
) -> Response {
    let Some(old) = data.table(set).records.get(id).cloned() else {
        return write_error(&super::model::not_found(set, id));
    };
    let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    match if_match {
        None if data.settings.if_match_required => {
            return odata_error(
                428,
                "PRECONDITION_REQUIRED",
                "This request must carry an If-Match header with the entity's ETag",
            );
        }
        Some(tag) if tag.trim() != "*" && tag.trim() != etag(old.time("ETag")) => {
            return odata_error(
                412,
                "PRECONDITION_FAILED",
                "The entity was changed by someone else: the ETag in If-Match is stale",
            );
        }
        _ => {}
    }
    let body = match parse_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    match data.update(set, id, &body, replace, now_ms) {
        Ok(()) => {
            if let Some(undo) = undo {
                undo.push((set, id.to_owned(), Some(old)));
            }
            let tag = etag(data.table(set).records[id].time("ETag"));
            let mut response = Response::builder()
                .status(StatusCode::NO_CONTENT)
                .header("dataserviceversion", "1.0")
                .body(Body::empty())
                .unwrap_or_default();
            if let Ok(v) = tag.parse() {
                response.headers_mut().insert(header::ETAG, v);
            }
            response
        }
        Err(e) => write_error(&e),
    }
}

fn delete(data: &mut TenantData, set: Set, id: &str, undo: Option<&mut Undo>) -> Response {
    match data.table_mut(set).records.remove(id) {
        Some(old) => {
            if let Some(undo) = undo {
                undo.push((set, id.to_owned(), Some(old)));
            }
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::empty())
                .unwrap_or_default()
        }
        None => write_error(&super::model::not_found(set, id)),
    }
}

/// Restores what a failed changeset changed, newest first.
pub(crate) fn roll_back(data: &mut TenantData, undo: Undo) {
    for (set, id, old) in undo.into_iter().rev() {
        let records = &mut data.table_mut(set).records;
        match old {
            Some(record) => records.insert(id, record),
            None => records.remove(&id),
        };
    }
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space), percent-decoded.
pub(crate) fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// Decodes `%XX` escapes (invalid ones are kept as written).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'$'
            | b','
            | b':' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_decode_and_round_trip() {
        assert_eq!(percent_decode("a%20b%27c"), "a b'c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(
            percent_decode(&percent_encode("Name eq 'O''B'")),
            "Name eq 'O''B'"
        );
    }

    #[test]
    fn a_key_predicate_names_the_set_and_id() {
        let (set, key) = parse_resource("LeadCollection('00A')").unwrap();
        assert_eq!((set, key.as_deref()), (Set::Lead, Some("00A")));
        assert!(parse_resource("Lead").is_err());
        assert!(parse_resource("LeadCollection(1)").is_err());
    }
}
