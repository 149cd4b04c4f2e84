//! `POST /crm/v3/objects/contacts/search`: filter groups (OR of ANDs), one sort,
//! paging by offset up to HubSpot's 10,000-result cap. The index is updated at
//! once (real HubSpot lags writes by a few seconds).

use std::cmp::Ordering;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::limits::Op;
use super::model::{Contact, PortalData, parse_time};
use super::{ApiError, json_response, parse_json, serve};
use crate::AppState;

/// The most results a query can page through.
pub const RESULT_CAP: usize = 10_000;
/// The largest page.
pub const MAX_LIMIT: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchBody {
    #[serde(default)]
    filter_groups: Vec<FilterGroup>,
    #[serde(default)]
    sorts: Vec<Value>,
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    properties: Vec<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    after: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct FilterGroup {
    #[serde(default)]
    filters: Vec<Filter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    property_name: String,
    operator: String,
    #[serde(default)]
    value: Option<Value>,
    #[serde(default)]
    high_value: Option<Value>,
    #[serde(default)]
    values: Option<Vec<Value>>,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as it compares: numerically for numbers and times,
/// case-insensitively otherwise.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Key {
    Number(f64),
    Time(i64),
    Text(String),
}

impl Key {
    /// A value of a property of this type, as sent or stored.
    fn parse(kind: &str, value: &str) -> Option<Key> {
        match kind {
            "number" => value.trim().parse().ok().map(Key::Number),
            "datetime" | "date" => parse_time(value).map(Key::Time),
            _ => Some(Key::Text(value.to_lowercase())),
        }
    }

    /// A contact's value of a property; the computed ones without a round
    /// trip through text (a search reads every contact).
    fn of(data: &PortalData, contact: &Contact, name: &str, kind: &str) -> Option<Key> {
        match name {
            "createdate" => Some(Key::Time(contact.created_ms)),
            "lastmodifieddate" => Some(Key::Time(contact.updated_ms)),
            "hs_object_id" => Some(Key::Number(contact.id as f64)),
            _ => data
                .value_of(contact, name)
                .filter(|v| !v.is_empty())
                .and_then(|v| Key::parse(kind, &v)),
        }
    }
}

fn matches(data: &PortalData, contact: &Contact, filter: &Filter) -> Result<bool, ApiError> {
    let kind = data
        .property(&filter.property_name)
        .map_or("string", |p| p.kind.as_str());
    let stored_key = Key::of(data, contact, &filter.property_name, kind);
    // The text only where an operator needs it (multi-valued enumerations, tokens).
    let stored = || {
        data.value_of(contact, &filter.property_name)
            .filter(|v| !v.is_empty())
    };
    let multi = kind == "enumeration";
    let value = || {
        filter.value.as_ref().map(text).ok_or_else(|| {
            ApiError::validation(format!(
                "filter on {}: operator {} needs a value",
                filter.property_name, filter.operator
            ))
        })
    };
    let cmp = |wanted: &str| {
        stored_key
            .as_ref()
            .zip(Key::parse(kind, wanted))
            .and_then(|(a, b)| a.partial_cmp(&b))
    };
    // Multi-valued (checkbox) properties match when one of their values does.
    let parts = |s: &str| -> Vec<String> { s.split(';').map(str::to_lowercase).collect() };
    Ok(match filter.operator.as_str() {
        "EQ" => {
            let v = value()?;
            cmp(&v) == Some(Ordering::Equal)
                || multi
                    && stored()
                        .is_some_and(|s| s.contains(';') && parts(&s).contains(&v.to_lowercase()))
        }
        "NEQ" => {
            let v = value()?;
            cmp(&v) != Some(Ordering::Equal)
        }
        "GT" => cmp(&value()?) == Some(Ordering::Greater),
        "GTE" => matches!(cmp(&value()?), Some(Ordering::Greater | Ordering::Equal)),
        "LT" => cmp(&value()?) == Some(Ordering::Less),
        "LTE" => matches!(cmp(&value()?), Some(Ordering::Less | Ordering::Equal)),
        "BETWEEN" => {
            let high = filter.high_value.as_ref().map(text).ok_or_else(|| {
                ApiError::validation(format!(
                    "filter on {}: BETWEEN needs a highValue",
                    filter.property_name
                ))
            })?;
            matches!(cmp(&value()?), Some(Ordering::Greater | Ordering::Equal))
                && matches!(cmp(&high), Some(Ordering::Less | Ordering::Equal))
        }
        "HAS_PROPERTY" => stored_key.is_some() || stored().is_some(),
        "NOT_HAS_PROPERTY" => stored_key.is_none() && stored().is_none(),
        "IN" | "NOT_IN" => {
            let values = filter.values.as_ref().ok_or_else(|| {
                ApiError::validation(format!(
                    "filter on {}: operator {} needs values",
                    filter.property_name, filter.operator
                ))
            })?;
            let hit = values.iter().any(|v| {
                let v = text(v);
                cmp(&v) == Some(Ordering::Equal)
                    || multi && stored().is_some_and(|s| parts(&s).contains(&v.to_lowercase()))
            });
            hit == (filter.operator == "IN")
        }
        "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN" => {
            let v = value()?.to_lowercase().replace('*', "");
            let hit = stored().is_some_and(|s| s.to_lowercase().contains(&v));
            hit == (filter.operator == "CONTAINS_TOKEN")
        }
        other => {
            return Err(ApiError::validation(format!(
                "filter on {}: unknown operator {other}",
                filter.property_name
            )));
        }
    })
}

/// `(property, descending)` from `{"propertyName","direction"}` or `"-createdate"`.
fn parse_sort(sort: &Value) -> Result<(String, bool), ApiError> {
    match sort {
        Value::String(s) => Ok(match s.strip_prefix('-') {
            Some(name) => (name.to_owned(), true),
            None => (s.clone(), false),
        }),
        Value::Object(map) => {
            let name = map
                .get("propertyName")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::validation("sorts[0].propertyName: is required"))?;
            let direction = map
                .get("direction")
                .and_then(Value::as_str)
                .unwrap_or("ASCENDING");
            match direction {
                "ASCENDING" => Ok((name.to_owned(), false)),
                "DESCENDING" => Ok((name.to_owned(), true)),
                other => Err(ApiError::validation(format!(
                    "sorts[0].direction: must be ASCENDING or DESCENDING, got {other}"
                ))),
            }
        }
        _ => Err(ApiError::validation(
            "sorts[0]: must be a string or an object",
        )),
    }
}

/// `POST /crm/v3/objects/contacts/search`.
pub(crate) async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(
        &state,
        &headers,
        "crm.objects.contacts.read",
        Op::Search,
        |ctx| {
            let body: SearchBody = parse_json(&body)?;
            let limit = body.limit.unwrap_or(10);
            if !(0..=MAX_LIMIT as i64).contains(&limit) {
                return Err(ApiError::validation(format!(
                    "limit: must be between 0 and {MAX_LIMIT}, got {limit}"
                )));
            }
            let limit = limit as usize;
            let after: usize = match &body.after {
                None | Some(Value::Null) => 0,
                Some(v) => text(v).trim().parse().map_err(|_| {
                    ApiError::validation(format!("after: {} is not a valid paging cursor", text(v)))
                })?,
            };
            if after >= RESULT_CAP {
                return Err(ApiError::validation(
                "There was a problem with the request.",
            )
            .with("context", json!({ "after": [after.to_string()], "maxResults": [RESULT_CAP.to_string()] })));
            }
            if body.filter_groups.len() > 5 {
                return Err(ApiError::validation(format!(
                    "filterGroups: at most 5 filter groups are allowed, got {}",
                    body.filter_groups.len()
                )));
            }
            let mut total_filters = 0;
            for (i, group) in body.filter_groups.iter().enumerate() {
                if group.filters.len() > 6 {
                    return Err(ApiError::validation(format!(
                        "filterGroups[{i}].filters: at most 6 filters per group are allowed, got {}",
                        group.filters.len()
                    )));
                }
                total_filters += group.filters.len();
            }
            if total_filters > 18 {
                return Err(ApiError::validation(format!(
                    "filterGroups: at most 18 filters in all are allowed, got {total_filters}"
                )));
            }
            if body.sorts.len() > 1 {
                return Err(ApiError::validation("sorts: only one sort is allowed"));
            }
            let sort = body.sorts.first().map(parse_sort).transpose()?;
            let data = ctx.portal.data.lock();
            let query = body
                .query
                .as_deref()
                .map(str::to_lowercase)
                .filter(|q| !q.is_empty());
            let mut hits: Vec<&Contact> = Vec::new();
            for contact in data.contacts.values().filter(|c| c.archived_ms.is_none()) {
                let mut keep = body.filter_groups.is_empty();
                for group in &body.filter_groups {
                    let mut all = true;
                    for filter in &group.filters {
                        if !matches(&data, contact, filter)? {
                            all = false;
                            break;
                        }
                    }
                    if all {
                        keep = true;
                        break;
                    }
                }
                if keep && let Some(q) = &query {
                    keep = ["email", "firstname", "lastname", "phone", "company"]
                        .iter()
                        .any(|p| {
                            contact
                                .props
                                .get(*p)
                                .is_some_and(|v| v.to_lowercase().contains(q))
                        });
                }
                if keep {
                    hits.push(contact);
                }
            }
            let total = hits.len();
            let end = (after + limit).min(total);
            if let Some((name, descending)) = &sort {
                let ties_reversed = data.settings.search_ties == "reversed";
                let kind = data.property(name).map_or("string", |p| p.kind.as_str());
                // Each key once, and only the pages up to this one in order.
                let mut keyed: Vec<(Option<Key>, &Contact)> = hits
                    .iter()
                    .map(|c| (Key::of(&data, c, name, kind), *c))
                    .collect();
                let order = |a: &(Option<Key>, &Contact), b: &(Option<Key>, &Contact)| {
                    let ord = match (&a.0, &b.0) {
                        (Some(x), Some(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
                        (None, Some(_)) => Ordering::Less,
                        (Some(_), None) => Ordering::Greater,
                        (None, None) => Ordering::Equal,
                    };
                    let ord = if *descending { ord.reverse() } else { ord };
                    ord.then(if ties_reversed {
                        b.1.id.cmp(&a.1.id)
                    } else {
                        a.1.id.cmp(&b.1.id)
                    })
                };
                if end > 0 && end < keyed.len() {
                    keyed.select_nth_unstable_by(end - 1, order);
                    keyed.truncate(end);
                }
                keyed.sort_by(order);
                hits = keyed.into_iter().map(|(_, c)| c).collect();
            }
            let results: Vec<Value> = hits
                .get(after.min(end)..end)
                .unwrap_or_default()
                .iter()
                .map(|c| data.render(c, &body.properties))
                .collect();
            let mut reply = json!({ "total": total, "results": results });
            if end < total && limit > 0 {
                reply["paging"] = json!({ "next": { "after": end.to_string() } });
            }
            Ok(json_response(StatusCode::OK, &reply))
        },
    )
}
