//! Contact properties (`/crm/v3/properties/contacts`) and owners (`/crm/v3/owners`).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::limits::Op;
use super::model::Property;
use super::{ApiError, json_response, param, parse_json, serve};
use crate::AppState;

type Q = Query<Vec<(String, String)>>;

/// `GET /crm/v3/properties/contacts`.
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Q,
) -> Response {
    serve(
        &state,
        &headers,
        "crm.schemas.contacts.read",
        Op::Normal,
        |ctx| {
            let archived = param(&query, "archived").is_some_and(|v| v == "true");
            let data = ctx.portal.data.lock();
            let results: Vec<Value> = if archived {
                Vec::new()
            } else {
                data.properties
                    .iter()
                    .map(|p| p.render(&data.owners))
                    .collect()
            };
            Ok(json_response(
                StatusCode::OK,
                &json!({ "results": results }),
            ))
        },
    )
}

/// `GET /crm/v3/properties/contacts/{propertyName}`.
pub(crate) async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    serve(
        &state,
        &headers,
        "crm.schemas.contacts.read",
        Op::Normal,
        |ctx| {
            let data = ctx.portal.data.lock();
            let property = data.property(&name).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    Some("OBJECT_NOT_FOUND"),
                    format!("Unable to find property {name} for object type CONTACT"),
                )
            })?;
            Ok(json_response(
                StatusCode::OK,
                &property.render(&data.owners),
            ))
        },
    )
}

/// `POST /crm/v3/properties/contacts`: a custom property, 201.
pub(crate) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(
        &state,
        &headers,
        "crm.schemas.contacts.write",
        Op::Normal,
        |ctx| {
            let mut raw: Value = parse_json(&body)?;
            // HubSpot's create body carries fields the sandbox does not keep.
            if let Value::Object(map) = &mut raw {
                for key in [
                    "formField",
                    "displayOrder",
                    "hidden",
                    "calculationFormula",
                    "externalOptions",
                ] {
                    map.remove(key);
                }
                map.entry("groupName")
                    .or_insert_with(|| json!("contactinformation"));
            }
            let mut property: Property = serde_json::from_value(raw)
                .map_err(|e| ApiError::validation(format!("Invalid input JSON: {e}")))?;
            property.validate().map_err(ApiError::validation)?;
            property.hubspot_defined = false;
            property.calculated = false;
            property.read_only_value = false;
            property.created_ms = ctx.now_ms;
            let mut data = ctx.portal.data.lock();
            if data.property(&property.name).is_some() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    Some("OBJECT_ALREADY_EXISTS"),
                    format!("Property named '{}' already exists.", property.name),
                ));
            }
            let rendered = property.render(&data.owners);
            data.properties.push(property);
            Ok(json_response(StatusCode::CREATED, &rendered))
        },
    )
}

/// `GET /crm/v3/owners`: `limit` (at most 500), `after`, `email`, `archived`.
pub(crate) async fn owners(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Q,
) -> Response {
    serve(
        &state,
        &headers,
        "crm.objects.owners.read",
        Op::Normal,
        |ctx| {
            let limit: usize = match param(&query, "limit") {
                None => 100,
                Some(raw) => raw
                    .parse()
                    .ok()
                    .filter(|l| (1..=500).contains(l))
                    .ok_or_else(|| {
                        ApiError::validation(format!("limit: must be between 1 and 500, got {raw}"))
                    })?,
            };
            let after: usize = match param(&query, "after") {
                None | Some("") => 0,
                Some(raw) => raw.parse().map_err(|_| {
                    ApiError::validation(format!("after: {raw:?} is not a valid paging cursor"))
                })?,
            };
            let archived = param(&query, "archived").is_some_and(|v| v == "true");
            let email = param(&query, "email").map(str::to_lowercase);
            let data = ctx.portal.data.lock();
            let matching: Vec<Value> = data
                .owners
                .iter()
                .filter(|o| o.archived == archived)
                .filter(|o| email.as_ref().is_none_or(|e| o.email.to_lowercase() == *e))
                .map(|o| o.render(ctx.portal_created_ms()))
                .collect();
            let end = (after + limit).min(matching.len());
            let page = matching
                .get(after.min(end)..end)
                .unwrap_or_default()
                .to_vec();
            let mut body = json!({ "results": page });
            if end < matching.len() {
                body["paging"] = json!({
                    "next": { "after": end.to_string(), "link": format!("?after={end}") }
                });
            }
            Ok(json_response(StatusCode::OK, &body))
        },
    )
}

/// `GET /crm/v3/owners/{ownerId}`.
pub(crate) async fn owner(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    serve(
        &state,
        &headers,
        "crm.objects.owners.read",
        Op::Normal,
        |ctx| {
            let data = ctx.portal.data.lock();
            let owner = data
                .owners
                .iter()
                .find(|o| o.id.to_string() == id.trim())
                .ok_or_else(ApiError::not_found)?;
            Ok(json_response(
                StatusCode::OK,
                &owner.render(ctx.portal_created_ms()),
            ))
        },
    )
}
