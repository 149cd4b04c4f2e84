//! `GET /api/v2/personFields`: the person fields in API v2's shape (`field_code`,
//! `field_name`, `field_type`, `is_custom_field`, `is_optional_response_field`,
//! `options`, `subfields`), with cursor paging and the optional namespaces
//! `ui_visibility`, `important_fields` and `required_fields`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::api::{
    Params, comma_list, decode_cursor, encode_cursor, fingerprint, invalid_param, limit_param,
    param, query_of, standard_options,
};
use super::limits::Op;
use super::model::{ADDRESS_PARTS, CustomField, Data, STANDARD_FIELDS};
use super::{ApiError, ok, serve};
use crate::AppState;

/// Standard fields v2 lists beyond the twelve v1 lists: the picture and the fields
/// contact sync fills. (code, name, type).
const V2_STANDARD_FIELDS: &[(&str, &str, &str)] = &[
    ("picture_id", "Profile picture", "picture"),
    ("job_title", "Job title", "varchar"),
    ("birthday", "Birthday", "date"),
    ("notes", "Notes", "text"),
    ("im", "Instant messenger", "varchar"),
    ("postal_address", "Postal address", "address"),
];

/// The namespaces `include_fields` may ask for.
const NAMESPACES: &[&str] = &["ui_visibility", "important_fields", "required_fields"];

/// Fields persons carry only when asked through the persons' `include_fields`.
const OPTIONAL_RESPONSE_FIELDS: &[&str] = &["marketing_status"];

/// `GET /api/v2/personFields`. It costs what a v2 list costs (10 tokens).
pub async fn person_fields_v2(
    State(state): State<AppState>,
    Path(company): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = query_of(&uri);
    serve(&state, &company, &headers, &query, Op::List, |ctx| {
        let namespaces = namespaces(&query)?;
        let limit = limit_param(&query, 100)?;
        let company = ctx.company.id.to_string();
        let fp = fingerprint(&[
            &company,
            "personFields",
            param(&query, "include_fields").unwrap_or(""),
        ]);
        let start = param(&query, "cursor")
            .map(|c| decode_cursor(c, fp))
            .transpose()?
            .map_or(0, |(offset, _)| usize::try_from(offset).unwrap_or(0));
        let all = {
            let data = ctx.company.data.lock();
            all_fields(&data)
        };
        let more = all.len() > start + limit;
        let page: Vec<Value> = all
            .iter()
            .skip(start)
            .take(limit)
            .map(|f| f.to_json(&namespaces))
            .collect();
        let next_cursor = more.then(|| encode_cursor(fp, (start + limit) as i64, 0));
        Ok(ok(
            StatusCode::OK,
            Value::Array(page),
            Some(json!({ "next_cursor": next_cursor })),
        ))
    })
}

fn namespaces(query: &Params) -> Result<Vec<String>, ApiError> {
    let asked = param(query, "include_fields")
        .map(comma_list)
        .unwrap_or_default();
    if let Some(unknown) = asked.iter().find(|n| !NAMESPACES.contains(&n.as_str())) {
        return Err(invalid_param(
            "include_fields",
            &format!(
                "unknown value {unknown}; use ui_visibility, important_fields, required_fields"
            ),
        ));
    }
    Ok(asked)
}

/// One person field as v2 describes it.
struct Field {
    name: String,
    code: String,
    field_type: String,
    custom: bool,
    options: Value,
}

impl Field {
    fn standard(code: &str, name: &str, field_type: &str) -> Self {
        Self {
            name: name.to_owned(),
            code: code.to_owned(),
            field_type: field_type.to_owned(),
            custom: false,
            options: standard_options(code),
        }
    }

    fn custom(f: &CustomField) -> Self {
        let field_type = serde_json::to_value(f.field_type).unwrap_or(Value::Null);
        Self {
            name: f.name.clone(),
            code: f.key.clone(),
            field_type: field_type.as_str().unwrap_or("").to_owned(),
            custom: true,
            options: f.options.as_ref().map_or(Value::Null, |o| json!(o)),
        }
    }

    fn to_json(&self, namespaces: &[String]) -> Value {
        // An address has its components as subfields; other types have none.
        let subfields = if self.field_type == "address" {
            json!(
                ADDRESS_PARTS
                    .iter()
                    .map(|part| json!({
                        "field_code": part,
                        "field_name": part.replace('_', " "),
                        "field_type": "varchar",
                    }))
                    .collect::<Vec<_>>()
            )
        } else {
            Value::Null
        };
        let mut v = json!({
            "field_name": self.name,
            "field_code": self.code,
            "field_type": self.field_type,
            "options": self.options,
            "subfields": subfields,
            "is_custom_field": self.custom,
            "is_optional_response_field": OPTIONAL_RESPONSE_FIELDS.contains(&self.code.as_str()),
        });
        for namespace in namespaces {
            v[namespace.as_str()] = match namespace.as_str() {
                "ui_visibility" => json!({
                    "add_visible_flag": true,
                    "details_visible_flag": true,
                    "show_in_add_deal_dialog": { "show": false, "order": null },
                }),
                "important_fields" => json!({ "enabled": false, "stage_ids": [] }),
                _ => json!({ "enabled": self.code == "name" }),
            };
        }
        v
    }
}

/// The standard fields, then the company's custom fields.
fn all_fields(data: &Data) -> Vec<Field> {
    STANDARD_FIELDS
        .iter()
        .chain(V2_STANDARD_FIELDS)
        .map(|(code, name, field_type)| Field::standard(code, name, field_type))
        .chain(data.fields.iter().map(Field::custom))
        .collect()
}
