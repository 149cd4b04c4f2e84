//! The REST API's resources: versions, the resource list, sObject describe and
//! basic information, single-record get, create, update and delete, the
//! replication calls (`deleted`, `updated`) and `limits`; and the write core
//! the single calls and Collections share.

use std::collections::{HashMap, HashSet};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::model::{
    CONVERTED_STATUS, FieldType, OrgData, Record, SObject, Val, WriteError, apply_write,
    format_datetime, parse_datetime, render,
};
use super::{ApiError, Ctx, json_response, param, parse_json, serve};
use crate::AppState;

type Params = Path<HashMap<String, String>>;
type Q = Query<Vec<(String, String)>>;

fn p<'a>(params: &'a HashMap<String, String>, key: &str) -> &'a str {
    params.get(key).map_or("", String::as_str)
}

/// The sObject named in a path, or 404 NOT_FOUND as Salesforce answers an unknown type.
pub(crate) fn sobject(name: &str) -> Result<SObject, ApiError> {
    SObject::parse(name).ok_or_else(ApiError::not_found)
}

/// `GET /services/data/`: the versions served (no session needed).
pub(crate) async fn versions() -> Response {
    let list: Vec<Value> = (20..=62u32)
        .map(|n| {
            let k = 62 - n;
            let season = ["Winter", "Summer", "Spring"][(k % 3) as usize];
            let year = 25 - k.div_ceil(3);
            json!({
                "label": format!("{season} '{year:02}"),
                "url": format!("/services/data/v{n}.0"),
                "version": format!("{n}.0"),
            })
        })
        .collect();
    json_response(StatusCode::OK, &list)
}

/// `GET /services/data/{version}/`: the resources of a version.
pub(crate) async fn resources(
    State(state): State<AppState>,
    Path(params): Params,
    headers: HeaderMap,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let base = format!("/services/data/{}", ctx.version);
        let body: Map<String, Value> = [
            "sobjects",
            "query",
            "queryAll",
            "limits",
            "composite",
            "search",
        ]
        .iter()
        .map(|r| ((*r).to_owned(), json!(format!("{base}/{r}"))))
        .collect();
        // The identity URL is absolute, at the login host (jsforce's
        // `identity()` reads it from here).
        let mut body = body;
        body.insert(
            "identity".into(),
            json!(format!("{}/id/{}/{}", state.base_url, ctx.org.id, ctx.user)),
        );
        Ok(json_response(StatusCode::OK, &body))
    })
}

fn summary(object: SObject, version: &str) -> Value {
    let base = format!("/services/data/{version}/sobjects/{}", object.name());
    json!({
        "name": object.name(),
        "label": object.name(),
        "labelPlural": object.label_plural(),
        "keyPrefix": object.key_prefix(),
        "custom": false,
        "createable": object.writable(),
        "updateable": object.writable(),
        "deletable": object.writable(),
        "queryable": true,
        "retrieveable": true,
        "searchable": true,
        "layoutable": true,
        "replicateable": true,
        "urls": {
            "sobject": base,
            "describe": format!("{base}/describe"),
            "rowTemplate": format!("{base}/{{ID}}"),
        },
    })
}

/// `GET sobjects`: describeGlobal.
pub(crate) async fn describe_global(
    State(state): State<AppState>,
    Path(params): Params,
    headers: HeaderMap,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let list: Vec<Value> = SObject::ALL
            .iter()
            .map(|o| summary(*o, &ctx.version))
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({ "encoding": "UTF-8", "maxBatchSize": 200, "sobjects": list }),
        ))
    })
}

/// `GET sobjects/{T}`: basic information.
pub(crate) async fn basic_info(
    State(state): State<AppState>,
    Path(params): Params,
    headers: HeaderMap,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let object = sobject(p(&params, "sobject"))?;
        Ok(json_response(
            StatusCode::OK,
            &json!({ "objectDescribe": summary(object, &ctx.version), "recentItems": [] }),
        ))
    })
}

/// `GET sobjects/{T}/describe`: every field with its type and rules.
pub(crate) async fn describe(
    State(state): State<AppState>,
    Path(params): Params,
    headers: HeaderMap,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let object = sobject(p(&params, "sobject"))?;
        let data = ctx.org.data.lock();
        let fields: Vec<Value> = data
            .table(object)
            .schema
            .fields
            .iter()
            .map(|f| f.describe())
            .collect();
        let mut body = summary(object, &ctx.version);
        body["fields"] = json!(fields);
        body["childRelationships"] = json!([]);
        body["recordTypeInfos"] = json!([]);
        Ok(json_response(StatusCode::OK, &body))
    })
}

/// The stored id a path names (18 characters, or its 15-character form).
pub(crate) fn find_id(data: &OrgData, object: SObject, id: &str) -> Option<Box<str>> {
    let records = &data.table(object).records;
    if id.len() == 18 {
        return records.get_key_value(id).map(|(k, _)| k.clone());
    }
    if id.len() == 15 {
        return records
            .range::<str, _>((std::ops::Bound::Included(id), std::ops::Bound::Unbounded))
            .next()
            .filter(|(k, _)| k.starts_with(id))
            .map(|(k, _)| k.clone());
    }
    None
}

/// The field positions a `fields=` parameter names (all when absent); INVALID_FIELD otherwise.
pub(crate) fn field_list(
    data: &OrgData,
    object: SObject,
    fields: Option<&str>,
) -> Result<Vec<usize>, ApiError> {
    let schema = &data.table(object).schema;
    match fields.map(str::trim).filter(|f| !f.is_empty()) {
        None => Ok((0..schema.fields.len()).collect()),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .map(|name| {
                schema.index(name).ok_or_else(|| {
                    ApiError::bad_request(
                        "INVALID_FIELD",
                        format!(
                            "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                            object.name()
                        ),
                        &[],
                    )
                })
            })
            .collect(),
    }
}

/// `GET sobjects/{T}/{id}?fields=`.
pub(crate) async fn get_one(
    State(state): State<AppState>,
    Path(params): Params,
    Query(query): Q,
    headers: HeaderMap,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let object = sobject(p(&params, "sobject"))?;
        let data = ctx.org.data.lock();
        let fields = field_list(&data, object, param(&query, "fields"))?;
        let table = data.table(object);
        let found = find_id(&data, object, p(&params, "id"))
            .and_then(|id| table.records.get(&id).map(|r| (id, r)));
        let Some((id, record)) = found else {
            return Err(ApiError::not_found());
        };
        // A record in the recycle bin is known, and said to be deleted.
        if record.deleted_ms.is_some() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "ENTITY_IS_DELETED",
                "entity is deleted",
            ));
        }
        let body = render(object, &table.schema, &id, record, &fields, &ctx.version);
        Ok(json_response(StatusCode::OK, &body))
    })
}

/// One write of a batch.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    /// Create a record of this sObject.
    Create(SObject, Map<String, Value>),
    /// Update the record with this id.
    Update(SObject, String, Map<String, Value>),
    /// Delete the record with this id.
    Delete(String),
}

/// Runs the writes of one call in order under the org's lock; each answers its
/// record's id or its error. With `all_or_none`, any failure writes nothing and
/// the others answer ALL_OR_NONE_OPERATION_ROLLED_BACK.
pub(crate) fn write_all(
    ctx: &Ctx,
    writes: Vec<Write>,
    all_or_none: bool,
) -> Vec<Result<String, WriteError>> {
    let mut data = ctx.org.data.lock();
    let mut pending: HashMap<String, String> = HashMap::new();
    let mut staged: Vec<(SObject, String, Record)> = Vec::with_capacity(writes.len());
    let mut seen: HashSet<String> = HashSet::new();
    let mut results = Vec::with_capacity(writes.len());
    for write in writes {
        let result =
            stage(ctx, &mut data, write, &pending, &mut seen).map(|(object, id, record)| {
                if let Some(email) = data.table(object).value(&record, "Email").as_str()
                    && record.deleted_ms.is_none()
                {
                    pending.insert(email.to_lowercase(), id.clone());
                }
                staged.push((object, id.clone(), record));
                id
            });
        results.push(result);
    }
    if all_or_none && results.iter().any(Result::is_err) {
        return results
            .into_iter()
            .map(|r| {
                r.and_then(|_| {
                    Err(WriteError::new(
                        "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                        "Record rolled back because not all records were valid and the request was using AllOrNone header",
                        vec![],
                    ))
                })
            })
            .collect();
    }
    for (object, id, record) in staged {
        data.table_mut(object).put(&id, record);
    }
    results
}

fn stage(
    ctx: &Ctx,
    data: &mut OrgData,
    write: Write,
    pending: &HashMap<String, String>,
    seen: &mut HashSet<String>,
) -> Result<(SObject, String, Record), WriteError> {
    let now = Val::Time(ctx.now_ms);
    match write {
        Write::Create(object, body) => {
            if !object.writable() {
                return Err(not_writable(object));
            }
            if body.keys().any(|k| k.eq_ignore_ascii_case("Id")) {
                return Err(WriteError::new(
                    "INVALID_FIELD",
                    "cannot specify Id in an insert call",
                    vec!["Id".into()],
                ));
            }
            let id = data.new_id(object.key_prefix());
            let mut record = Record::default();
            let schema = &data.table(object).schema;
            record.set(schema.at("Id"), Val::Text(id.as_str().into()));
            for f in ["CreatedDate", "LastModifiedDate", "SystemModstamp"] {
                record.set(schema.at(f), now.clone());
            }
            record.set(schema.at("IsDeleted"), Val::Bool(false));
            record.set(schema.at("OwnerId"), Val::Text(ctx.user.as_str().into()));
            if let Some(i) = schema.index("IsConverted") {
                record.set(i, Val::Bool(false));
            }
            apply_write(data, object, &id, &body, &mut record, true, pending)?;
            Ok((object, id, record))
        }
        Write::Update(object, id, body) => {
            if !object.writable() {
                return Err(not_writable(object));
            }
            let (id, mut record) = live_record(data, object, &id)?;
            if !seen.insert(id.clone()) {
                return Err(WriteError::new(
                    "DUPLICATE_VALUE",
                    format!("Maximum number of duplicate updates in one batch (1) exceeded: {id}"),
                    vec![],
                ));
            }
            if data.table(object).value(&record, "IsConverted").is_true() {
                return Err(WriteError::new(
                    "CANNOT_UPDATE_CONVERTED_LEAD",
                    "cannot reference converted lead",
                    vec![],
                ));
            }
            apply_write(data, object, &id, &body, &mut record, false, pending)?;
            let schema = &data.table(object).schema;
            record.set(schema.at("LastModifiedDate"), now.clone());
            record.set(schema.at("SystemModstamp"), now);
            Ok((object, id, record))
        }
        Write::Delete(id) => {
            let object = SObject::of_id(&id)
                .filter(|o| o.writable())
                .ok_or_else(|| {
                    WriteError::new(
                        "INVALID_ID_FIELD",
                        format!("invalid record id: {id}"),
                        vec![],
                    )
                })?;
            let (id, mut record) = live_record(data, object, &id)?;
            if !seen.insert(id.clone()) {
                return Err(WriteError::new(
                    "DUPLICATE_VALUE",
                    format!("duplicate id in list: {id}"),
                    vec![],
                ));
            }
            let schema = &data.table(object).schema;
            record.set(schema.at("IsDeleted"), Val::Bool(true));
            record.set(schema.at("SystemModstamp"), now);
            record.deleted_ms = Some(ctx.now_ms);
            Ok((object, id, record))
        }
    }
}

fn not_writable(object: SObject) -> WriteError {
    WriteError::new(
        "INSUFFICIENT_ACCESS_OR_READONLY",
        format!(
            "{} records cannot be created, changed or deleted through this API in the sandbox",
            object.name()
        ),
        vec![],
    )
}

/// A copy of a live record, or NOT_FOUND / ENTITY_IS_DELETED.
fn live_record(data: &OrgData, object: SObject, id: &str) -> Result<(String, Record), WriteError> {
    let not_found =
        || WriteError::new("NOT_FOUND", "The requested resource does not exist", vec![]);
    let id = find_id(data, object, id).ok_or_else(not_found)?;
    let record = data.table(object).records.get(&id).ok_or_else(not_found)?;
    if record.deleted_ms.is_some() {
        return Err(WriteError::new(
            "ENTITY_IS_DELETED",
            "entity is deleted",
            vec![],
        ));
    }
    Ok((id.to_string(), record.clone()))
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match parse_json::<Value>(body)? {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of sObject from a value that is not an object",
        )),
    }
}

/// `POST sobjects/{T}`: 201 `{id, success, errors}`, or 400 with the errors.
pub(crate) async fn create(
    State(state): State<AppState>,
    Path(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let object = sobject(p(&params, "sobject"))?;
        let fields = body_object(&body)?;
        let result = write_all(ctx, vec![Write::Create(object, fields)], false).remove(0);
        match result {
            Ok(id) => Ok(json_response(
                StatusCode::CREATED,
                &json!({ "id": id, "success": true, "errors": [] }),
            )),
            Err(error) => Err(ApiError::write(&error)),
        }
    })
}

/// `PATCH sobjects/{T}/{id}`: 204, or the errors.
pub(crate) async fn update(
    State(state): State<AppState>,
    Path(params): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let object = sobject(p(&params, "sobject"))?;
        let fields = body_object(&body)?;
        let id = p(&params, "id").to_owned();
        match write_all(ctx, vec![Write::Update(object, id, fields)], false).remove(0) {
            Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
            Err(error) => Err(ApiError::write(&error)),
        }
    })
}

/// `DELETE sobjects/{T}/{id}`: 204, or the errors.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(params): Params,
    headers: HeaderMap,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let object = sobject(p(&params, "sobject"))?;
        let id = p(&params, "id");
        if SObject::of_id(id) != Some(object) {
            return Err(ApiError::not_found());
        }
        match write_all(ctx, vec![Write::Delete(id.to_owned())], false).remove(0) {
            Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
            Err(error) => Err(ApiError::write(&error)),
        }
    })
}

fn window(query: &[(String, String)]) -> Result<(i64, i64), ApiError> {
    let read = |key: &str| -> Result<i64, ApiError> {
        let text = param(query, key).ok_or_else(|| {
            ApiError::bad_request(
                "MISSING_ARGUMENT",
                format!(
                    "{key} parameter is required (a date-time such as 2026-11-21T10:00:00+00:00)"
                ),
                &[],
            )
        })?;
        parse_datetime(text).ok_or_else(|| {
            ApiError::bad_request(
                "INVALID_REPLICATION_DATE",
                format!("{key}: not a date-time: {text}"),
                &[],
            )
        })
    };
    let (start, end) = (read("start")?, read("end")?);
    if start > end {
        return Err(ApiError::bad_request(
            "INVALID_REPLICATION_DATE",
            "startDate can't be after endDate",
            &[],
        ));
    }
    Ok((start, end))
}

/// How far back `sobjects/{T}/deleted` reaches: an older start is refused.
const DELETED_REACH_MS: i64 = 30 * 86_400_000;

/// `GET sobjects/{T}/deleted/?start=&end=`: records deleted in the window.
pub(crate) async fn get_deleted(
    State(state): State<AppState>,
    Path(params): Params,
    Query(query): Q,
    headers: HeaderMap,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let object = sobject(p(&params, "sobject"))?;
        let (start, end) = window(&query)?;
        if start < ctx.now_ms - DELETED_REACH_MS {
            return Err(ApiError::bad_request(
                "INVALID_REPLICATION_DATE",
                "startDate cannot be more than 30 days ago",
                &[],
            ));
        }
        let data = ctx.org.data.lock();
        let mut deleted: Vec<(i64, &str)> = data
            .table(object)
            .records
            .iter()
            .filter_map(|(id, r)| r.deleted_ms.map(|at| (at, &**id)))
            .filter(|(at, _)| *at >= start && *at < end)
            .collect();
        deleted.sort();
        let earliest = deleted.first().map_or(start, |(at, _)| *at);
        let list: Vec<Value> = deleted
            .iter()
            .map(|(at, id)| json!({ "id": id, "deletedDate": format_datetime(*at) }))
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "deletedRecords": list,
                "earliestDateAvailable": format_datetime(earliest.min(start)),
                "latestDateCovered": format_datetime(end.min(ctx.now_ms)),
            }),
        ))
    })
}

/// `GET sobjects/{T}/updated/?start=&end=`: live records created or changed in the window.
pub(crate) async fn get_updated(
    State(state): State<AppState>,
    Path(params): Params,
    Query(query): Q,
    headers: HeaderMap,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let object = sobject(p(&params, "sobject"))?;
        let (start, end) = window(&query)?;
        let data = ctx.org.data.lock();
        let table = data.table(object);
        let modstamp = table.schema.at("SystemModstamp");
        let ids: Vec<&str> = table
            .records
            .iter()
            .filter(|(_, r)| r.deleted_ms.is_none())
            .filter(|(_, r)| matches!(r.get(modstamp), Val::Time(t) if *t >= start && *t < end))
            .map(|(id, _)| &**id)
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({ "ids": ids, "latestDateCovered": format_datetime(end.min(ctx.now_ms)) }),
        ))
    })
}

/// `GET limits`: the daily API requests and a few of Salesforce's other limits.
pub(crate) async fn limits(
    State(state): State<AppState>,
    Path(params): Params,
    headers: HeaderMap,
) -> Response {
    serve(&state, &headers, p(&params, "version"), |ctx| {
        let (max, used) = {
            let mut usage = ctx.org.usage.lock();
            (usage.max, usage.used(ctx.now_ms))
        };
        let fixed = |max: u64| json!({ "Max": max, "Remaining": max });
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "DailyApiRequests": { "Max": max, "Remaining": max.saturating_sub(used) },
                "DailyAsyncApexExecutions": fixed(250_000),
                "DailyBulkApiBatches": fixed(15_000),
                "DailyBulkV2QueryJobs": fixed(10_000),
                "DataStorageMB": fixed(1_024),
                "FileStorageMB": fixed(1_024),
                "SingleEmail": fixed(5_000),
            }),
        ))
    })
}

/// The Contact fields a conversion fills from the lead.
const CONVERTED_FIELDS: &[&str] = &[
    "FirstName",
    "LastName",
    "Email",
    "Phone",
    "Title",
    "LeadSource",
    "HasOptedOutOfEmail",
    "OwnerId",
    "Plezi_URL__c",
    "Sync_To_Plezi__c",
];

/// Converts a lead as a rep would in Salesforce's UI: the lead gets IsConverted,
/// ConvertedContactId, ConvertedAccountId, ConvertedDate and the converted
/// status; the Contact is created, or (with `contact_id`) has its blank fields
/// filled from the lead. Returns (contact id, account id), or why not.
pub(crate) fn convert_lead(
    data: &mut OrgData,
    lead_id: &str,
    contact_id: Option<&str>,
    now_ms: i64,
) -> Result<(String, String), String> {
    let (lead_id, mut lead) =
        live_record(data, SObject::Lead, lead_id).map_err(|e| format!("lead: {}", e.message))?;
    let leads = &data.table(SObject::Lead).schema;
    if lead.get(leads.at("IsConverted")).is_true() {
        return Err(format!("lead: {lead_id} is already converted"));
    }
    let (contact_id, mut contact, existing) = match contact_id {
        Some(id) => {
            let (id, contact) = live_record(data, SObject::Contact, id)
                .map_err(|e| format!("contact_id: {}", e.message))?;
            (id, contact, true)
        }
        None => {
            let id = data.new_id(SObject::Contact.key_prefix());
            let schema = &data.table(SObject::Contact).schema;
            let mut record = Record::default();
            record.set(schema.at("Id"), Val::Text(id.as_str().into()));
            record.set(schema.at("CreatedDate"), Val::Time(now_ms));
            record.set(schema.at("IsDeleted"), Val::Bool(false));
            (id, record, false)
        }
    };
    let contacts = &data.table(SObject::Contact).schema;
    let account_id = match contact.get(contacts.at("AccountId")).as_str() {
        Some(account) if existing => account.to_owned(),
        _ => {
            let id = data.new_id("001");
            data.accounts.insert(id.as_str().into());
            id
        }
    };
    let leads = &data.table(SObject::Lead).schema;
    let contacts = &data.table(SObject::Contact).schema;
    for name in CONVERTED_FIELDS {
        let (Some(from), Some(to)) = (leads.index(name), contacts.index(name)) else {
            continue;
        };
        let blank = matches!(contact.get(to), Val::Null) || contact.get(to).as_str() == Some("");
        if !existing || blank {
            contact.set(to, lead.get(from).clone());
        }
    }
    for (i, field) in contacts.fields.iter().enumerate() {
        if *contact.get(i) == Val::Null
            && let Some(default) = &field.default_value
            && field.kind == FieldType::Boolean
        {
            contact.set(i, Val::Bool(default.as_bool().unwrap_or(false)));
        }
    }
    contact.set(
        contacts.at("AccountId"),
        Val::Text(account_id.as_str().into()),
    );
    contact.set(contacts.at("LastModifiedDate"), Val::Time(now_ms));
    contact.set(contacts.at("SystemModstamp"), Val::Time(now_ms));
    let today = chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string();
    lead.set(leads.at("IsConverted"), Val::Bool(true));
    lead.set(
        leads.at("ConvertedContactId"),
        Val::Text(contact_id.as_str().into()),
    );
    lead.set(
        leads.at("ConvertedAccountId"),
        Val::Text(account_id.as_str().into()),
    );
    lead.set(leads.at("ConvertedDate"), Val::Text(today.into()));
    lead.set(leads.at("Status"), Val::Text(CONVERTED_STATUS.into()));
    lead.set(leads.at("LastModifiedDate"), Val::Time(now_ms));
    lead.set(leads.at("SystemModstamp"), Val::Time(now_ms));
    data.table_mut(SObject::Contact).put(&contact_id, contact);
    data.table_mut(SObject::Lead).put(&lead_id, lead);
    Ok((contact_id, account_id))
}
