//! sObject Collections (`composite/sobjects`): create, update and delete up to
//! 200 records in one call, with per-record results in input order and
//! `allOrNone`; retrieve up to 2000 records of one sObject by id.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::api::{Write, field_list, find_id, sobject, write_all};
use super::model::{SObject, WriteError, render};
use super::{ApiError, Ctx, json_response, param, parse_json, serve};
use crate::AppState;

type Params = Path<HashMap<String, String>>;
type Q = Query<Vec<(String, String)>>;

/// Most records one create, update or delete call carries.
pub const MAX_RECORDS: usize = 200;
/// Most ids one retrieve call carries.
pub const MAX_RETRIEVE: usize = 2000;

fn p<'a>(params: &'a HashMap<String, String>, key: &str) -> &'a str {
    params.get(key).map_or("", String::as_str)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    #[serde(default)]
    all_or_none: bool,
    records: Vec<Value>,
}

fn too_many() -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "EXCEEDED_ID_LIMIT",
        "record limit reached. cannot submit more than 200 records into this call",
    )
}

/// The sObject of a record from its `attributes.type`.
fn record_type(record: &Map<String, Value>) -> Result<SObject, WriteError> {
    let name = record
        .get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str);
    match name {
        None => Err(WriteError::new(
            "INVALID_TYPE",
            "Must send a concrete entity type.",
            vec![],
        )),
        Some(name) => SObject::parse(name).ok_or_else(|| {
            WriteError::new(
                "INVALID_TYPE",
                format!("sObject type '{name}' is not supported."),
                vec![],
            )
        }),
    }
}

fn results_json(results: Vec<Result<String, WriteError>>, ids: &[Option<String>]) -> Response {
    let list: Vec<Value> = results
        .into_iter()
        .zip(ids)
        .map(|(result, known)| match result {
            Ok(id) => json!({ "id": id, "success": true, "errors": [] }),
            Err(error) => {
                let mut v = json!({ "success": false, "errors": [error.collection_json()] });
                if let Some(id) = known {
                    v["id"] = json!(id);
                }
                v
            }
        })
        .collect();
    json_response(StatusCode::OK, &list)
}

/// Runs a batch in which some records were refused before reaching the write core.
fn run(
    ctx: &Ctx,
    prepared: Vec<Result<Write, WriteError>>,
    all_or_none: bool,
) -> Vec<Result<String, WriteError>> {
    let writes: Vec<Write> = prepared
        .iter()
        .filter_map(|w| w.as_ref().ok().cloned())
        .collect();
    let refused = prepared.iter().any(Result::is_err);
    let mut written = if refused && all_or_none {
        Vec::new()
    } else {
        write_all(ctx, writes, all_or_none)
            .into_iter()
            .collect::<Vec<_>>()
    };
    written.reverse();
    let rolled_back = || {
        Err(WriteError::new(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using AllOrNone header",
            vec![],
        ))
    };
    prepared
        .into_iter()
        .map(|w| match w {
            Err(e) => Err(e),
            Ok(_) if refused && all_or_none => rolled_back(),
            Ok(_) => written.pop().unwrap_or_else(rolled_back),
        })
        .collect()
}

/// `POST composite/sobjects`: create.
pub(crate) async fn create(
    State(state): State<AppState>,
    Path(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let body: Body = parse_json(&body)?;
        if body.records.len() > MAX_RECORDS {
            return Err(too_many());
        }
        let prepared: Vec<Result<Write, WriteError>> = body
            .records
            .into_iter()
            .map(|r| match r {
                Value::Object(map) => record_type(&map).map(|o| Write::Create(o, map)),
                _ => Err(WriteError::new(
                    "INVALID_TYPE",
                    "Must send a concrete entity type.",
                    vec![],
                )),
            })
            .collect();
        let ids = vec![None; prepared.len()];
        Ok(results_json(run(ctx, prepared, body.all_or_none), &ids))
    })
}

/// `PATCH composite/sobjects`: update by `Id`.
pub(crate) async fn update(
    State(state): State<AppState>,
    Path(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let body: Body = parse_json(&body)?;
        if body.records.len() > MAX_RECORDS {
            return Err(too_many());
        }
        let mut ids = Vec::with_capacity(body.records.len());
        let prepared: Vec<Result<Write, WriteError>> = body
            .records
            .into_iter()
            .map(|r| {
                let Value::Object(map) = r else {
                    ids.push(None);
                    return Err(WriteError::new(
                        "INVALID_TYPE",
                        "Must send a concrete entity type.",
                        vec![],
                    ));
                };
                let id = map
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("Id"))
                    .and_then(|(_, v)| v.as_str())
                    .map(str::to_owned);
                ids.push(id.clone());
                let object = record_type(&map)?;
                let id = id.ok_or_else(|| {
                    WriteError::new(
                        "MISSING_ARGUMENT",
                        "Id not specified in an update call",
                        vec![],
                    )
                })?;
                Ok(Write::Update(object, id, map))
            })
            .collect();
        Ok(results_json(run(ctx, prepared, body.all_or_none), &ids))
    })
}

/// `DELETE composite/sobjects?ids=a,b&allOrNone=`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(params): Params,
    Query(query): Q,
    headers: HeaderMap,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let ids: Vec<String> = param(&query, "ids")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if ids.is_empty() {
            return Err(ApiError::bad_request(
                "MISSING_ARGUMENT",
                "ids parameter is required",
                &[],
            ));
        }
        if ids.len() > MAX_RECORDS {
            return Err(too_many());
        }
        let all_or_none =
            param(&query, "allOrNone").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let prepared = ids.iter().map(|id| Ok(Write::Delete(id.clone()))).collect();
        let known: Vec<Option<String>> = ids.into_iter().map(Some).collect();
        Ok(results_json(run(ctx, prepared, all_or_none), &known))
    })
}

fn retrieve_ids(
    ctx: &Ctx,
    object: SObject,
    ids: &[String],
    fields: Option<&str>,
) -> Result<Response, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::bad_request(
            "MISSING_ARGUMENT",
            "ids parameter is required",
            &[],
        ));
    }
    if ids.len() > MAX_RETRIEVE {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 2000 records into this call",
        ));
    }
    let data = ctx.org.data.lock();
    let positions = field_list(&data, object, fields)?;
    let table = data.table(object);
    let list: Vec<Value> = ids
        .iter()
        .map(|id| {
            find_id(&data, object, id)
                .and_then(|id| table.records.get(&id).map(|r| (id, r)))
                .filter(|(_, r)| r.deleted_ms.is_none())
                .map_or(Value::Null, |(id, r)| {
                    render(object, &table.schema, &id, r, &positions, &ctx.version)
                })
        })
        .collect();
    Ok(json_response(StatusCode::OK, &list))
}

/// `GET composite/sobjects/{T}?ids=&fields=`: records in the order asked, null
/// for ids that name no live record.
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    Path(params): Params,
    Query(query): Q,
    headers: HeaderMap,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let object = sobject(p(&params, "sobject"))?;
        let ids: Vec<String> = param(&query, "ids")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        retrieve_ids(ctx, object, &ids, param(&query, "fields"))
    })
}

#[derive(Debug, Deserialize)]
struct RetrieveBody {
    ids: Vec<String>,
    #[serde(default)]
    fields: Vec<String>,
}

/// `POST composite/sobjects/{T}` `{ids, fields}`: retrieve with the lists in the body.
pub(crate) async fn retrieve_post(
    State(state): State<AppState>,
    Path(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let object = sobject(p(&params, "sobject"))?;
        let body: RetrieveBody = parse_json(&body)?;
        let fields = body.fields.join(",");
        retrieve_ids(ctx, object, &body.ids, Some(&fields))
    })
}
