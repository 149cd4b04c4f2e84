//! Contacts: list, get, create, update, archive and the batch endpoints.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::limits::Op;
use super::model::{PortalData, WriteError, iso};
use super::{ApiError, json_response, list_param, param, parse_json, serve};
use crate::AppState;

const READ: &str = "crm.objects.contacts.read";
const WRITE: &str = "crm.objects.contacts.write";
/// Most inputs one batch call takes.
pub const BATCH_MAX: usize = 100;

type Q = Query<Vec<(String, String)>>;

fn parse_limit(query: &[(String, String)], default: usize, max: usize) -> Result<usize, ApiError> {
    match param(query, "limit") {
        None => Ok(default),
        Some(raw) => {
            let limit: usize = raw.trim().parse().map_err(|_| {
                ApiError::validation(format!("limit: {raw:?} is not a whole number"))
            })?;
            if limit == 0 || limit > max {
                return Err(ApiError::validation(format!(
                    "limit: must be between 1 and {max}, got {limit}"
                )));
            }
            Ok(limit)
        }
    }
}

fn bool_param(query: &[(String, String)], key: &str) -> bool {
    param(query, key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// `GET /crm/v3/objects/contacts`.
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Q,
) -> Response {
    serve(&state, &headers, READ, Op::Normal, |ctx| {
        let limit = parse_limit(&query, 10, 100)?;
        let after: u64 = match param(&query, "after") {
            None | Some("") => 0,
            Some(raw) => raw.parse().map_err(|_| {
                ApiError::validation(format!("after: {raw:?} is not a valid paging cursor"))
            })?,
        };
        let archived = bool_param(&query, "archived");
        let wanted = list_param(&query, "properties");
        let data = ctx.portal.data.lock();
        let mut page: Vec<Value> = Vec::with_capacity(limit);
        let mut next = None;
        for (id, contact) in data.contacts.range(after + 1..) {
            if contact.archived_ms.is_some() != archived {
                continue;
            }
            if page.len() == limit {
                next = Some(*id - 1);
                break;
            }
            page.push(data.render(contact, &wanted));
        }
        let mut body = json!({ "results": page });
        if let Some(after) = next {
            body["paging"] = json!({
                "next": { "after": after.to_string(), "link": format!("?after={after}") }
            });
        }
        Ok(json_response(StatusCode::OK, &body))
    })
}

/// HubSpot's 404 for a contact id or e-mail that names no contact.
fn object_not_found(key: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Some("OBJECT_NOT_FOUND"),
        "Object not found.  objectId are usually numeric.",
    )
    .with("context", json!({ "id": [key] }))
}

/// Finds a contact by id or, with `idProperty=email`, by e-mail.
fn find(
    data: &PortalData,
    key: &str,
    id_property: Option<&str>,
    archived: bool,
) -> Result<Option<u64>, ApiError> {
    match id_property {
        None | Some("hs_object_id") => Ok(key.trim().parse::<u64>().ok().filter(|id| {
            data.contacts
                .get(id)
                .is_some_and(|c| c.archived_ms.is_some() == archived)
        })),
        Some("email") => Ok(if archived {
            data.contacts
                .values()
                .find(|c| {
                    c.archived_ms.is_some()
                        && c.props
                            .get("email")
                            .is_some_and(|e| e.eq_ignore_ascii_case(key.trim()))
                })
                .map(|c| c.id)
        } else {
            data.contacts
                .values()
                .find(|c| {
                    c.archived_ms.is_none()
                        && c.props
                            .get("email")
                            .is_some_and(|e| e.eq_ignore_ascii_case(key.trim()))
                })
                .map(|c| c.id)
        }),
        Some(other) => Err(ApiError::validation(format!(
            "idProperty: {other} is not a unique property of contacts"
        ))),
    }
}

/// `GET /crm/v3/objects/contacts/{contactId}`.
pub(crate) async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(query): Q,
) -> Response {
    serve(&state, &headers, READ, Op::Normal, |ctx| {
        let data = ctx.portal.data.lock();
        let archived = bool_param(&query, "archived");
        let id = find(&data, &key, param(&query, "idProperty"), archived)?
            .ok_or_else(|| object_not_found(&key))?;
        let wanted = list_param(&query, "properties");
        Ok(json_response(
            StatusCode::OK,
            &data.render(&data.contacts[&id], &wanted),
        ))
    })
}

#[derive(Debug, Deserialize)]
struct Input {
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    #[allow(dead_code)]
    associations: Option<Value>,
}

fn write_new(
    data: &mut PortalData,
    props: &Map<String, Value>,
    now_ms: i64,
) -> Result<u64, WriteError> {
    let changes = data.validate(props, None)?;
    if let Some(other) = data.conflict(None, &changes) {
        return Err(WriteError::Conflict(other));
    }
    Ok(data.insert(changes, now_ms))
}

fn write_existing(
    data: &mut PortalData,
    id: u64,
    props: &Map<String, Value>,
    now_ms: i64,
) -> Result<(), WriteError> {
    let existing = data.contacts.get(&id).cloned();
    let changes = data.validate(props, existing.as_ref())?;
    if let Some(other) = data.conflict(Some(id), &changes) {
        return Err(WriteError::Conflict(other));
    }
    data.update(id, changes, now_ms);
    Ok(())
}

/// Property names of a write plus the defaults: what a write's reply shows.
fn written(props: &Map<String, Value>) -> Vec<String> {
    let mut names: Vec<String> = super::model::DEFAULT_PROPERTIES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    for k in props.keys() {
        if !names.contains(k) {
            names.push(k.clone());
        }
    }
    names
}

/// `POST /crm/v3/objects/contacts`: 201.
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&state, &headers, WRITE, Op::Normal, |ctx| {
        let input: Input = parse_json(&body)?;
        let mut data = ctx.portal.data.lock();
        let id = write_new(&mut data, &input.properties, ctx.now_ms)
            .map_err(|e| ApiError::from_write(&e))?;
        Ok(json_response(
            StatusCode::CREATED,
            &data.render(&data.contacts[&id], &written(&input.properties)),
        ))
    })
}

/// `PATCH /crm/v3/objects/contacts/{contactId}`.
pub(crate) async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(query): Q,
    body: Bytes,
) -> Response {
    serve(&state, &headers, WRITE, Op::Normal, |ctx| {
        let input: Input = parse_json(&body)?;
        let mut data = ctx.portal.data.lock();
        let id = find(&data, &key, param(&query, "idProperty"), false)?
            .ok_or_else(|| object_not_found(&key))?;
        write_existing(&mut data, id, &input.properties, ctx.now_ms)
            .map_err(|e| ApiError::from_write(&e))?;
        Ok(json_response(
            StatusCode::OK,
            &data.render(&data.contacts[&id], &written(&input.properties)),
        ))
    })
}

/// `DELETE /crm/v3/objects/contacts/{contactId}`: 204, also for an unknown id (as HubSpot).
pub(crate) async fn archive(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    serve(&state, &headers, WRITE, Op::Normal, |ctx| {
        if let Ok(id) = key.trim().parse::<u64>() {
            ctx.portal.data.lock().archive(id, ctx.now_ms);
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchBody {
    inputs: Vec<Value>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    #[allow(dead_code)]
    properties_with_history: Vec<String>,
    #[serde(default)]
    id_property: Option<String>,
}

fn parse_batch(body: &[u8]) -> Result<BatchBody, ApiError> {
    let batch: BatchBody = parse_json(body)?;
    if batch.inputs.len() > BATCH_MAX {
        return Err(ApiError::validation(format!(
            "Batch input limit exceeded: {} inputs were given, at most {BATCH_MAX} are allowed.",
            batch.inputs.len()
        ))
        .with(
            "context",
            json!({ "inputs": [batch.inputs.len().to_string()], "maxInputs": [BATCH_MAX.to_string()] }),
        ));
    }
    Ok(batch)
}

/// A batch reply: 200 (or `ok`) when nothing failed, 207 with `errors` otherwise.
fn batch_reply(
    ok: StatusCode,
    results: Vec<Value>,
    errors: Vec<Value>,
    started: i64,
    now: i64,
) -> Response {
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started),
        "completedAt": iso(now),
    });
    if errors.is_empty() {
        return json_response(ok, &body);
    }
    body["numErrors"] = json!(errors.len());
    body["errors"] = Value::Array(errors);
    json_response(StatusCode::MULTI_STATUS, &body)
}

fn not_found_error(ids: Vec<String>) -> Value {
    json!({
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
        "context": { "ids": ids },
    })
}

fn write_error_entry(error: &WriteError, index: usize) -> Value {
    let mut context = json!({ "index": [index.to_string()] });
    if let WriteError::Conflict(id) = error {
        context["existingId"] = json!([id.to_string()]);
    }
    json!({
        "status": "error",
        "category": error.category(),
        "message": error.message(),
        "context": context,
    })
}

fn input_id(input: &Value, index: usize) -> Result<String, ApiError> {
    match &input["id"] {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(ApiError::validation(format!(
            "inputs[{index}].id: is required"
        ))),
    }
}

fn input_props(input: &Value, index: usize) -> Result<Map<String, Value>, ApiError> {
    match &input["properties"] {
        Value::Object(map) => Ok(map.clone()),
        Value::Null => Err(ApiError::validation(format!(
            "inputs[{index}].properties: is required"
        ))),
        _ => Err(ApiError::validation(format!(
            "inputs[{index}].properties: must be an object"
        ))),
    }
}

/// `POST /crm/v3/objects/contacts/batch/read`.
pub(crate) async fn batch_read(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Q,
    body: Bytes,
) -> Response {
    serve(&state, &headers, READ, Op::Normal, |ctx| {
        let batch = parse_batch(&body)?;
        let archived = bool_param(&query, "archived");
        let data = ctx.portal.data.lock();
        let mut results = Vec::new();
        let mut missing = Vec::new();
        for (i, input) in batch.inputs.iter().enumerate() {
            let key = input_id(input, i)?;
            match find(&data, &key, batch.id_property.as_deref(), archived)? {
                Some(id) => {
                    let mut rendered = data.render(&data.contacts[&id], &batch.properties);
                    if batch.id_property.as_deref() == Some("email") {
                        rendered["properties"]["email"] =
                            json!(data.contacts[&id].props.get("email"));
                    }
                    results.push(rendered);
                }
                None => missing.push(key),
            }
        }
        let errors = if missing.is_empty() {
            Vec::new()
        } else {
            vec![not_found_error(missing)]
        };
        Ok(batch_reply(
            StatusCode::OK,
            results,
            errors,
            ctx.now_ms,
            ctx.now_ms,
        ))
    })
}

/// `POST /crm/v3/objects/contacts/batch/create`: 201.
pub(crate) async fn batch_create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&state, &headers, WRITE, Op::Normal, |ctx| {
        let batch = parse_batch(&body)?;
        let inputs: Vec<Map<String, Value>> = batch
            .inputs
            .iter()
            .enumerate()
            .map(|(i, v)| input_props(v, i))
            .collect::<Result<_, _>>()?;
        let mut data = ctx.portal.data.lock();
        let per_record = data.settings.batch_errors == "per_record";
        if !per_record {
            check_all(&data, inputs.iter().map(|p| (None, p)))?;
        }
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (i, props) in inputs.iter().enumerate() {
            match write_new(&mut data, props, ctx.now_ms) {
                Ok(id) => results.push(data.render(&data.contacts[&id], &written(props))),
                Err(e) => errors.push(write_error_entry(&e, i)),
            }
        }
        Ok(batch_reply(
            StatusCode::CREATED,
            results,
            errors,
            ctx.now_ms,
            ctx.now_ms,
        ))
    })
}

/// In `whole` mode, the first invalid input refuses the call; also catches two
/// inputs of one call claiming the same e-mail.
fn check_all<'a>(
    data: &PortalData,
    inputs: impl Iterator<Item = (Option<u64>, &'a Map<String, Value>)>,
) -> Result<(), ApiError> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, (id, props)) in inputs.enumerate() {
        let existing = id.and_then(|id| data.contacts.get(&id));
        let changes = data.validate(props, existing).map_err(|e| {
            ApiError::from_write(&e).with("context", json!({ "index": [i.to_string()] }))
        })?;
        if let Some(other) = data.conflict(id, &changes) {
            return Err(ApiError::from_write(&WriteError::Conflict(other)));
        }
        if let Some(Some(email)) = changes.get("email")
            && let Some(first) = seen.insert(email.clone(), i)
        {
            return Err(ApiError::validation(format!(
                "Duplicate email {email} in inputs {first} and {i} of the batch"
            )));
        }
    }
    Ok(())
}

/// `POST /crm/v3/objects/contacts/batch/update`.
pub(crate) async fn batch_update(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&state, &headers, WRITE, Op::Normal, |ctx| {
        let batch = parse_batch(&body)?;
        let mut data = ctx.portal.data.lock();
        let mut targets = Vec::new();
        let mut missing = Vec::new();
        for (i, input) in batch.inputs.iter().enumerate() {
            let key = input_id(input, i)?;
            let props = input_props(input, i)?;
            let id_property = input["idProperty"]
                .as_str()
                .or(batch.id_property.as_deref());
            match find(&data, &key, id_property, false)? {
                Some(id) => targets.push((i, id, props)),
                None => missing.push(key),
            }
        }
        let per_record = data.settings.batch_errors == "per_record";
        if !per_record {
            check_all(&data, targets.iter().map(|(_, id, p)| (Some(*id), p)))?;
        }
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (i, id, props) in &targets {
            match write_existing(&mut data, *id, props, ctx.now_ms) {
                Ok(()) => results.push(data.render(&data.contacts[id], &written(props))),
                Err(e) => errors.push(write_error_entry(&e, *i)),
            }
        }
        if !missing.is_empty() {
            errors.push(not_found_error(missing));
        }
        Ok(batch_reply(
            StatusCode::OK,
            results,
            errors,
            ctx.now_ms,
            ctx.now_ms,
        ))
    })
}

/// `POST /crm/v3/objects/contacts/batch/upsert` (`idProperty: "email"`).
pub(crate) async fn batch_upsert(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&state, &headers, WRITE, Op::Normal, |ctx| {
        let batch = parse_batch(&body)?;
        let mut data = ctx.portal.data.lock();
        let mut plan = Vec::new();
        for (i, input) in batch.inputs.iter().enumerate() {
            let key = input_id(input, i)?;
            let mut props = input_props(input, i)?;
            let id_property = input["idProperty"]
                .as_str()
                .or(batch.id_property.as_deref())
                .unwrap_or("hs_object_id");
            let existing = match id_property {
                "email" => {
                    if !super::model::valid_email(&key.trim().to_lowercase()) {
                        return Err(ApiError::validation(super::model::invalid_message(&[
                            super::model::PropError {
                                name: "email".into(),
                                error: "INVALID_EMAIL".into(),
                                message: format!("Email address {key} is invalid"),
                            },
                        ]))
                        .with("context", json!({ "index": [i.to_string()] })));
                    }
                    let found = data.by_email(&key).filter(|id| {
                        data.live(*id)
                            .and_then(|c| c.props.get("email"))
                            .is_some_and(|e| e.eq_ignore_ascii_case(key.trim()))
                    });
                    if found.is_none() {
                        props.entry("email").or_insert_with(|| json!(key.trim()));
                    }
                    found
                }
                "hs_object_id" => match find(&data, &key, None, false)? {
                    Some(id) => Some(id),
                    None => {
                        return Err(ApiError::validation(format!(
                            "inputs[{i}].id: upsert by hs_object_id needs an existing contact, {key} is none"
                        )));
                    }
                },
                other => {
                    return Err(ApiError::validation(format!(
                        "inputs[{i}].idProperty: {other} is not a unique property of contacts"
                    )));
                }
            };
            plan.push((i, existing, props));
        }
        let per_record = data.settings.batch_errors == "per_record";
        if !per_record {
            check_all(&data, plan.iter().map(|(_, id, p)| (*id, p)))?;
        }
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for (i, existing, props) in &plan {
            let outcome = match existing {
                Some(id) => {
                    write_existing(&mut data, *id, props, ctx.now_ms).map(|()| (*id, false))
                }
                None => write_new(&mut data, props, ctx.now_ms).map(|id| (id, true)),
            };
            match outcome {
                Ok((id, new)) => {
                    let mut rendered = data.render(&data.contacts[&id], &written(props));
                    rendered["new"] = json!(new);
                    results.push(rendered);
                }
                Err(e) => errors.push(write_error_entry(&e, *i)),
            }
        }
        Ok(batch_reply(
            StatusCode::OK,
            results,
            errors,
            ctx.now_ms,
            ctx.now_ms,
        ))
    })
}

/// `POST /crm/v3/objects/contacts/batch/archive`: 204.
pub(crate) async fn batch_archive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&state, &headers, WRITE, Op::Normal, |ctx| {
        let batch = parse_batch(&body)?;
        let mut data = ctx.portal.data.lock();
        for (i, input) in batch.inputs.iter().enumerate() {
            if let Ok(id) = input_id(input, i)?.trim().parse::<u64>() {
                data.archive(id, ctx.now_ms);
            }
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}
