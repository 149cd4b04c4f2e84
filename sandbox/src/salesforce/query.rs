//! `query` and `queryAll`: a SOQL query (parsed by [`super::soql`]) runs once:
//! filter and sort make a list of ids, kept under a locator for the
//! `nextRecordsUrl` pages, which render the records as they are when read.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use rand::Rng;
use serde_json::{Map, Value, json};

use super::model::{Cursor, FieldType, SObject, Val, make_id, render};
use super::soql::{self, Condition, Select, SoqlType};
use super::{ApiError, Ctx, json_response, param, serve};
use crate::AppState;

type Params = Path<HashMap<String, String>>;
type Q = Query<Vec<(String, String)>>;

/// The page size when neither the client nor the org setting says otherwise.
pub const DEFAULT_BATCH: usize = 2000;

fn p<'a>(params: &'a HashMap<String, String>, key: &str) -> &'a str {
    params.get(key).map_or("", String::as_str)
}

/// `GET query?q=`: live records only.
pub(crate) async fn query(
    State(state): State<AppState>,
    Path(params): Params,
    Query(query): Q,
    headers: HeaderMap,
) -> Response {
    let asked = requested_batch(&headers);
    serve(&state, &headers, p(&params, "version"), |ctx| {
        run(ctx, param(&query, "q"), false, asked)
    })
}

/// `GET queryAll?q=`: deleted records too (`IsDeleted` true).
pub(crate) async fn query_all(
    State(state): State<AppState>,
    Path(params): Params,
    Query(query): Q,
    headers: HeaderMap,
) -> Response {
    let asked = requested_batch(&headers);
    serve(&state, &headers, p(&params, "version"), |ctx| {
        run(ctx, param(&query, "q"), true, asked)
    })
}

/// `Sforce-Query-Options: batchSize=N`, clamped to Salesforce's 200..2000.
fn requested_batch(headers: &HeaderMap) -> Option<usize> {
    let value = headers.get("sforce-query-options")?.to_str().ok()?;
    value
        .split(',')
        .filter_map(|part| part.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("batchSize"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .map(|n| n.clamp(200, 2000))
}

fn soql_type(kind: FieldType) -> SoqlType {
    match kind {
        FieldType::Id | FieldType::Reference => SoqlType::Id,
        FieldType::Boolean => SoqlType::Boolean,
        FieldType::Datetime => SoqlType::DateTime,
        FieldType::Date => SoqlType::Date,
        _ => SoqlType::Text,
    }
}

fn fields_of(condition: &Condition, out: &mut BTreeSet<String>) {
    match condition {
        Condition::And(list) | Condition::Or(list) => {
            for c in list {
                fields_of(c, out);
            }
        }
        Condition::Not(c) => fields_of(c, out),
        Condition::Compare(c) => {
            out.insert(c.field.clone());
        }
    }
}

fn soql_error(error: soql::SoqlError) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, error.code, error.message)
}

fn run(
    ctx: &Ctx,
    text: Option<&str>,
    all: bool,
    asked: Option<usize>,
) -> Result<Response, ApiError> {
    let text = text
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "MALFORMED_QUERY",
                "A query string has to be specified",
            )
        })?;
    let mut parsed = soql::parse(text).map_err(soql_error)?;
    let object = SObject::parse(&parsed.from).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            format!("sObject type '{}' is not supported.", parsed.from),
        )
    })?;
    let mut data = ctx.org.data.lock();
    let table = data.table(object);
    let schema = &table.schema;
    parsed
        .resolve(&|name: &str| {
            schema
                .field(name)
                .map(|f| (f.name.clone(), soql_type(f.kind)))
        })
        .map_err(soql_error)?;
    // Only the fields WHERE and ORDER BY read are projected, once per record.
    let mut needed = BTreeSet::new();
    if let Some(filter) = &parsed.filter {
        fields_of(filter, &mut needed);
    }
    needed.extend(parsed.order_by.iter().map(|o| o.field.clone()));
    let needed: Vec<(String, usize)> = needed
        .into_iter()
        .filter_map(|name| schema.index(&name).map(|i| (name, i)))
        .collect();
    // ORDER BY keys are read once per hit as typed values, so sorting 100,000
    // records compares integers and folded text rather than re-parsing JSON.
    let order: Vec<(usize, FieldType, bool, bool)> = parsed
        .order_by
        .iter()
        .filter_map(|o| {
            let i = schema.index(&o.field)?;
            Some((i, schema.fields[i].kind, o.descending, o.nulls_last))
        })
        .collect();
    let mut hits: Vec<(Box<str>, Vec<SortKey>)> = Vec::new();
    let mut projection = Map::with_capacity(needed.len());
    for (id, record) in &table.records {
        if record.deleted_ms.is_some() && !all {
            continue;
        }
        for (name, i) in &needed {
            projection.insert(name.clone(), record.get(*i).to_json());
        }
        if parsed.matches(&projection) {
            let keys = order
                .iter()
                .map(|(i, kind, _, _)| SortKey::of(record.get(*i), *kind))
                .collect();
            hits.push((id.clone(), keys));
        }
    }
    if !order.is_empty() {
        hits.sort_by(|a, b| {
            order
                .iter()
                .zip(a.1.iter().zip(&b.1))
                .map(|((_, _, descending, nulls_last), (x, y))| {
                    SortKey::compare(x, y, *descending, *nulls_last)
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.0.cmp(&b.0))
        });
    }
    let ids: Vec<Box<str>> = hits
        .into_iter()
        .map(|(id, _)| id)
        .skip(parsed.offset.unwrap_or(0))
        .take(parsed.limit.unwrap_or(usize::MAX))
        .collect();
    let fields: Vec<usize> = match &parsed.select {
        Select::Count => {
            return Ok(json_response(
                StatusCode::OK,
                &json!({ "totalSize": ids.len(), "done": true, "records": [] }),
            ));
        }
        Select::Fields(names) => names.iter().filter_map(|n| schema.index(n)).collect(),
    };
    let batch = data.settings.batch_size.or(asked).unwrap_or(DEFAULT_BATCH);
    let cursor = Cursor {
        object,
        fields: Arc::new(fields),
        ids: Arc::new(ids),
        batch,
        used_ms: ctx.now_ms,
    };
    let locator = (cursor.ids.len() > batch).then(|| {
        let locator = make_id("01g", rand::rng().random_range(0..62u64.pow(10)));
        data.keep_cursor(locator.clone(), cursor.clone());
        locator
    });
    Ok(page(ctx, &data, &cursor, locator.as_deref(), 0))
}

fn page(
    ctx: &Ctx,
    data: &super::model::OrgData,
    cursor: &Cursor,
    locator: Option<&str>,
    offset: usize,
) -> Response {
    let table = data.table(cursor.object);
    let end = (offset + cursor.batch).min(cursor.ids.len());
    let records: Vec<Value> = cursor.ids[offset.min(end)..end]
        .iter()
        .filter_map(|id| {
            table.records.get(id).map(|r| {
                render(
                    cursor.object,
                    &table.schema,
                    id,
                    r,
                    &cursor.fields,
                    &ctx.version,
                )
            })
        })
        .collect();
    let mut body = json!({
        "totalSize": cursor.ids.len(),
        "done": end >= cursor.ids.len(),
        "records": records,
    });
    if end < cursor.ids.len()
        && let Some(locator) = locator
    {
        // Salesforce names `query` in a queryAll's next-page URL too; the
        // locator keeps the deleted rows either way.
        body["nextRecordsUrl"] = json!(format!(
            "/services/data/{}/query/{locator}-{end}",
            ctx.version
        ));
    }
    json_response(StatusCode::OK, &body)
}

/// `GET query/{locator}-{offset}`: the next page of a query.
pub(crate) async fn next_page(
    State(state): State<AppState>,
    Path(params): Params,
    headers: HeaderMap,
) -> Response {
    next(&state, &params, &headers)
}

/// `GET queryAll/{locator}-{offset}`: the same pages as `query/{locator}`
/// (a locator of either kind is served at both).
pub(crate) async fn next_page_all(
    State(state): State<AppState>,
    Path(params): Params,
    headers: HeaderMap,
) -> Response {
    next(&state, &params, &headers)
}

fn next(state: &crate::Shared, params: &HashMap<String, String>, headers: &HeaderMap) -> Response {
    serve(state, headers, p(params, "version"), |ctx| {
        let invalid = || {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_QUERY_LOCATOR",
                "invalid query locator",
            )
        };
        let (locator, offset) = p(params, "locator").rsplit_once('-').ok_or_else(invalid)?;
        let offset: usize = offset.parse().map_err(|_| invalid())?;
        let mut data = ctx.org.data.lock();
        let cursor = data.cursors.get_mut(locator).ok_or_else(invalid)?;
        if offset > cursor.ids.len() {
            return Err(invalid());
        }
        cursor.used_ms = ctx.now_ms;
        let cursor = cursor.clone();
        let response = page(ctx, &data, &cursor, Some(locator), offset);
        if offset + cursor.batch >= cursor.ids.len() {
            // The last page: Salesforce closes the cursor.
            data.cursors.remove(locator);
        }
        Ok(response)
    })
}

/// One ORDER BY value of a hit, typed for a cheap comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Null,
    Bool(bool),
    Time(i64),
    /// Text, case-folded: SOQL sorts text case-insensitively.
    Folded(String),
    /// Ids and dates, compared as written.
    Exact(Box<str>),
}

impl SortKey {
    fn of(value: &Val, kind: FieldType) -> SortKey {
        match (value, kind) {
            // A missing checkbox counts as false.
            (Val::Null, FieldType::Boolean) => SortKey::Bool(false),
            (Val::Null, _) => SortKey::Null,
            (Val::Bool(b), _) => SortKey::Bool(*b),
            (Val::Time(t), _) => SortKey::Time(*t),
            (Val::Text(t), _) if t.is_empty() => SortKey::Null,
            (Val::Text(t), FieldType::Id | FieldType::Reference | FieldType::Date) => {
                SortKey::Exact(t.clone())
            }
            (Val::Text(t), _) => SortKey::Folded(t.to_lowercase()),
        }
    }

    /// Salesforce's order: nulls first ascending and last descending unless
    /// NULLS FIRST / LAST says otherwise (the parser fills `nulls_last` in).
    fn compare(a: &SortKey, b: &SortKey, descending: bool, nulls_last: bool) -> Ordering {
        let nulls = if nulls_last {
            Ordering::Greater
        } else {
            Ordering::Less
        };
        match (a, b) {
            (SortKey::Null, SortKey::Null) => Ordering::Equal,
            (SortKey::Null, _) => nulls,
            (_, SortKey::Null) => nulls.reverse(),
            _ if descending => b.cmp(a),
            _ => a.cmp(b),
        }
    }
}
