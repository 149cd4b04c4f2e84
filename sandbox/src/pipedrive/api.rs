//! The API handlers: persons on v2, personFields, users and recents on v1.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime};
use serde_json::{Value, json};

use super::limits::Op;
use super::model::{
    self, DELETED_VISIBLE_SECS, Data, PERSON_LABELS, Person, Render, STANDARD_FIELDS,
};
use super::validate::{self, PersonInput};
use super::{ApiError, Ctx, json_response, ok, serve};
use crate::AppState;

/// Values `include_fields` accepts on the v2 list and get. The sandbox company has
/// Pipedrive's marketing app enabled, so `marketing_status` and `doi_status` are allowed.
const INCLUDE_FIELDS: &[&str] = &[
    "next_activity_id",
    "last_activity_id",
    "open_deals_count",
    "related_open_deals_count",
    "closed_deals_count",
    "related_closed_deals_count",
    "participant_open_deals_count",
    "participant_closed_deals_count",
    "email_messages_count",
    "activities_count",
    "done_activities_count",
    "undone_activities_count",
    "files_count",
    "notes_count",
    "followers_count",
    "won_deals_count",
    "related_won_deals_count",
    "lost_deals_count",
    "related_lost_deals_count",
    "last_incoming_mail_time",
    "last_outgoing_mail_time",
    "marketing_status",
    "doi_status",
    "smart_bcc_email",
];
const SEARCH_FIELDS: &[&str] = &["name", "email", "phone", "notes", "custom_fields"];
const MAX_LIMIT: usize = 500;

pub(super) type Params = Vec<(String, String)>;

pub(super) fn query_of(uri: &Uri) -> Params {
    Query::<Params>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

pub(super) fn param<'a>(query: &'a Params, name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

pub(super) fn invalid_param(name: &str, reason: &str) -> ApiError {
    ApiError::bad_request(format!("Validation failed: {name}: {reason}"))
}

fn person_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>()
        .ok()
        .filter(|&id| id > 0)
        .ok_or_else(|| invalid_param("id", "must be a positive integer"))
}

pub(super) fn limit_param(query: &Params, default: usize) -> Result<usize, ApiError> {
    match param(query, "limit") {
        None => Ok(default),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(invalid_param("limit", "must be an integer from 1 to 500")),
        },
    }
}

pub(super) fn comma_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// FNV-1a, to bind cursors to the query they came from.
pub(super) fn fingerprint(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0x1f]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

pub(super) fn encode_cursor(fp: u64, a: i64, b: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{fp:016x}.{a}.{b}"))
}

pub(super) fn decode_cursor(raw: &str, fp: u64) -> Result<(i64, u64), ApiError> {
    let bad = || invalid_param("cursor", "invalid cursor");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.split('.');
    let (Some(f), Some(a), Some(b), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if u64::from_str_radix(f, 16).map_err(|_| bad())? != fp {
        return Err(invalid_param(
            "cursor",
            "the cursor belongs to a query with other parameters",
        ));
    }
    Ok((a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?))
}

/// Whole seconds at or after the instant: `t >= instant` for a time `t` in seconds.
fn ceil_secs(raw: &str, name: &str) -> Result<i64, ApiError> {
    let at = DateTime::parse_from_rfc3339(raw)
        .map_err(|_| invalid_param(name, "must be an RFC 3339 date-time"))?;
    let ms = at.timestamp_millis();
    Ok(ms.div_euclid(1000) + i64::from(ms.rem_euclid(1000) != 0))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortBy {
    Id,
    UpdateTime,
    AddTime,
}

/// A checked `GET /api/v2/persons` query.
#[derive(Debug)]
struct ListQuery {
    since: Option<i64>,
    until: Option<i64>,
    sort: SortBy,
    desc: bool,
    limit: usize,
    after: Option<(i64, u64)>,
    ids: Option<Vec<u64>>,
    owner_id: Option<u64>,
    custom: Option<Vec<String>>,
    include: Vec<String>,
    labels: Labels,
    fingerprint: u64,
}

impl ListQuery {
    fn parse(query: &Params, data: &Data, company_id: u64) -> Result<Self, ApiError> {
        let since = param(query, "updated_since")
            .map(|v| ceil_secs(v, "updated_since"))
            .transpose()?;
        let until = param(query, "updated_until")
            .map(|v| ceil_secs(v, "updated_until"))
            .transpose()?;
        let sort = match param(query, "sort_by") {
            None | Some("id") => SortBy::Id,
            Some("update_time") => SortBy::UpdateTime,
            Some("add_time") => SortBy::AddTime,
            Some(_) => {
                return Err(invalid_param(
                    "sort_by",
                    "must be one of id, update_time, add_time",
                ));
            }
        };
        let desc = match param(query, "sort_direction") {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(_) => return Err(invalid_param("sort_direction", "must be asc or desc")),
        };
        let limit = limit_param(query, 100)?;
        let ids = match param(query, "ids") {
            None => None,
            Some(raw) => {
                let list = comma_list(raw);
                if list.len() > 100 {
                    return Err(invalid_param("ids", "at most 100 ids"));
                }
                let ids = list
                    .iter()
                    .map(|s| s.parse::<u64>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| invalid_param("ids", "must be comma-separated integers"))?;
                Some(ids)
            }
        };
        let owner_id = param(query, "owner_id")
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| invalid_param("owner_id", "must be an integer"))
            })
            .transpose()?;
        let custom = match param(query, "custom_fields") {
            None => None,
            Some(raw) => {
                let keys = comma_list(raw);
                if keys.len() > 15 {
                    return Err(invalid_param("custom_fields", "at most 15 keys"));
                }
                if let Some(unknown) = keys.iter().find(|k| data.field(k).is_none()) {
                    return Err(invalid_param(
                        "custom_fields",
                        &format!("unknown custom field key {unknown}"),
                    ));
                }
                Some(keys)
            }
        };
        let include = include_fields(query)?;
        let labels = Labels::parse(query)?;
        let company = company_id.to_string();
        let fingerprint = fingerprint(&[
            &company,
            "persons",
            param(query, "updated_since").unwrap_or(""),
            param(query, "updated_until").unwrap_or(""),
            param(query, "sort_by").unwrap_or("id"),
            param(query, "sort_direction").unwrap_or("asc"),
            param(query, "ids").unwrap_or(""),
            param(query, "owner_id").unwrap_or(""),
            param(query, "custom_fields").unwrap_or(""),
            param(query, "include_fields").unwrap_or(""),
            param(query, "include_option_labels").unwrap_or(""),
            param(query, "include_labels").unwrap_or(""),
        ]);
        let after = param(query, "cursor")
            .map(|c| decode_cursor(c, fingerprint))
            .transpose()?;
        Ok(Self {
            since,
            until,
            sort,
            desc,
            limit,
            after,
            ids,
            owner_id,
            custom,
            include,
            labels,
            fingerprint,
        })
    }

    fn key(&self, p: &Person) -> (i64, u64) {
        match self.sort {
            SortBy::Id => (0, p.id),
            SortBy::UpdateTime => (p.update_time, p.id),
            SortBy::AddTime => (p.add_time, p.id),
        }
    }

    fn matches(&self, p: &Person) -> bool {
        !p.is_deleted
            && self.since.is_none_or(|s| p.update_time >= s)
            && self.until.is_none_or(|u| p.update_time < u)
            && self.owner_id.is_none_or(|o| p.owner_id == o)
    }

    /// The page's persons and the key of the last one when more follow.
    fn page(&self, data: &Data) -> (Vec<Arc<Person>>, Option<(i64, u64)>) {
        let keys: Box<dyn Iterator<Item = (i64, u64)> + '_> = match &self.ids {
            Some(ids) => {
                let mut keys: Vec<(i64, u64)> = ids
                    .iter()
                    .filter_map(|id| data.persons.get(id))
                    .filter(|p| self.matches(p))
                    .map(|p| self.key(p))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if self.desc {
                    keys.reverse();
                }
                let after = self.after;
                let desc = self.desc;
                Box::new(keys.into_iter().filter(move |k| match after {
                    None => true,
                    Some(c) if desc => *k < c,
                    Some(c) => *k > c,
                }))
            }
            None => {
                let (mut lo, mut hi) = (Bound::Unbounded, Bound::Unbounded);
                if self.sort == SortBy::UpdateTime {
                    if let Some(s) = self.since {
                        lo = Bound::Included((s, 0));
                    }
                    if let Some(u) = self.until {
                        hi = Bound::Excluded((u, 0));
                    }
                }
                // A cursor comes from a page of the same query, so it is already inside
                // the time bounds and only tightens one side.
                if let Some(c) = self.after {
                    if self.desc {
                        hi = Bound::Excluded(c);
                    } else {
                        lo = Bound::Excluded(c);
                    }
                }
                match self.sort {
                    SortBy::Id => {
                        let map = |b: Bound<(i64, u64)>| b.map(|(_, id)| id);
                        Box::new(
                            range(&data.live_ids, map(lo), map(hi), self.desc).map(|id| (0, id)),
                        )
                    }
                    SortBy::UpdateTime => range(&data.live_by_update, lo, hi, self.desc),
                    SortBy::AddTime => range(&data.live_by_add, lo, hi, self.desc),
                }
            }
        };
        let mut page = Vec::with_capacity(self.limit.min(64));
        let mut more = false;
        for key in keys {
            let Some(p) = data.persons.get(&key.1) else {
                continue;
            };
            if !self.matches(p) {
                continue;
            }
            if page.len() == self.limit {
                more = true;
                break;
            }
            page.push(p.clone());
        }
        let next = if more {
            page.last().map(|p| self.key(p))
        } else {
            None
        };
        (page, next)
    }
}

/// The list reply, serialized without an intermediate `Value` per person.
#[derive(serde::Serialize)]
struct ListReply<'a> {
    success: bool,
    data: Vec<model::PersonV2<'a>>,
    additional_data: Value,
}

/// Iterates `set` between the bounds, either way; empty when the bounds cross.
fn range<K: Ord + Copy + 'static>(
    set: &BTreeSet<K>,
    lo: Bound<K>,
    hi: Bound<K>,
    desc: bool,
) -> Box<dyn Iterator<Item = K> + '_> {
    let value = |b: &Bound<K>| match b {
        Bound::Included(k) | Bound::Excluded(k) => Some(*k),
        Bound::Unbounded => None,
    };
    if let (Some(a), Some(b)) = (value(&lo), value(&hi))
        && (a > b
            || (a == b && (matches!(lo, Bound::Excluded(_)) || matches!(hi, Bound::Excluded(_)))))
    {
        return Box::new(std::iter::empty());
    }
    let iter = set.range((lo, hi)).copied();
    if desc {
        Box::new(iter.rev())
    } else {
        Box::new(iter)
    }
}

/// `include_option_labels` and `include_labels` (true or false, default false).
#[derive(Debug, Default, Clone, Copy)]
struct Labels {
    options: bool,
    labels: bool,
}

impl Labels {
    fn parse(query: &Params) -> Result<Self, ApiError> {
        Ok(Self {
            options: boolean_param(query, "include_option_labels")?,
            labels: boolean_param(query, "include_labels")?,
        })
    }
}

fn boolean_param(query: &Params, name: &str) -> Result<bool, ApiError> {
    match param(query, name) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(invalid_param(name, "must be true or false")),
    }
}

fn include_fields(query: &Params) -> Result<Vec<String>, ApiError> {
    let Some(raw) = param(query, "include_fields") else {
        return Ok(Vec::new());
    };
    let fields = comma_list(raw);
    if let Some(unknown) = fields
        .iter()
        .find(|f| !INCLUDE_FIELDS.contains(&f.as_str()))
    {
        return Err(invalid_param(
            "include_fields",
            &format!("unknown value {unknown}"),
        ));
    }
    Ok(fields)
}

/// `GET /api/v2/persons`.
pub async fn list_persons(
    State(state): State<AppState>,
    Path(company): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = query_of(&uri);
    serve(&state, &company, &headers, &query, Op::List, |ctx| {
        let (page, next, fields, q) = {
            let data = ctx.company.data.lock();
            let q = ListQuery::parse(&query, &data, ctx.company.id)?;
            let (page, next) = q.page(&data);
            (page, next, data.fields.clone(), q)
        };
        let render = Render {
            only_custom: q.custom.as_deref(),
            include: &q.include,
            option_labels: q.labels.options,
            labels: q.labels.labels,
            company_domain: &ctx.company.domain,
        };
        let data: Vec<model::PersonV2<'_>> = page
            .iter()
            .map(|p| model::PersonV2 {
                p,
                fields: &fields,
                render: &render,
            })
            .collect();
        let next_cursor = next.map(|(a, b)| encode_cursor(q.fingerprint, a, b));
        let body = json!({ "next_cursor": next_cursor });
        Ok(json_response(
            StatusCode::OK,
            &ListReply {
                success: true,
                data,
                additional_data: body,
            },
        ))
    })
}

/// `GET /api/v2/persons/{id}`: deleted persons stay readable for 30 days.
pub async fn get_person(
    State(state): State<AppState>,
    Path((company, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = query_of(&uri);
    serve(&state, &company, &headers, &query, Op::Get, |ctx| {
        let id = person_id(&id)?;
        let include = include_fields(&query)?;
        let labels = Labels::parse(&query)?;
        let data = ctx.company.data.lock();
        let person = visible_person(&data, id, ctx.now)?;
        let value = model::person_v2(
            person,
            &data.fields,
            &Render {
                only_custom: None,
                include: &include,
                option_labels: labels.options,
                labels: labels.labels,
                company_domain: &ctx.company.domain,
            },
        );
        Ok(ok(StatusCode::OK, value, None))
    })
}

fn visible_person(data: &Data, id: u64, now: i64) -> Result<&Person, ApiError> {
    data.persons
        .get(&id)
        .filter(|p| p.delete_time.is_none_or(|t| now - t < DELETED_VISIBLE_SECS))
        .map(|p| p.as_ref())
        .ok_or_else(|| ApiError::not_found("Person not found"))
}

/// A copy of a person that is not deleted, for a write; 404 otherwise (a deleted
/// person can be read for 30 days but not changed).
fn live_person(data: &Data, id: u64) -> Result<Person, ApiError> {
    data.persons
        .get(&id)
        .filter(|p| !p.is_deleted)
        .map(|p| Person::clone(p))
        .ok_or_else(|| ApiError::not_found("Person not found"))
}

fn apply(person: &mut Person, input: PersonInput) {
    if let Some(name) = input.name {
        let (first, last) = validate::split_name(&name);
        if input.first_name.is_none() {
            person.first_name = first;
        }
        if input.last_name.is_none() {
            person.last_name = last;
        }
        person.name = name;
    }
    if let Some(first) = input.first_name {
        person.first_name = first;
    }
    if let Some(last) = input.last_name {
        person.last_name = last;
    }
    if let Some(owner) = input.owner_id {
        person.owner_id = owner;
    }
    if let Some(org) = input.org_id {
        person.org_id = org;
    }
    if let Some(emails) = input.emails {
        person.emails = emails;
    }
    if let Some(phones) = input.phones {
        person.phones = phones;
    }
    if let Some(v) = input.visible_to {
        person.visible_to = v;
    }
    if let Some(labels) = input.label_ids {
        person.label_ids = labels;
    }
    if let Some(status) = input.marketing_status {
        person.marketing_status = status;
    }
    if let Some(at) = input.add_time {
        person.add_time = at;
    }
    let details = &mut person.details;
    if let Some(title) = input.job_title {
        details.job_title = title;
    }
    if let Some(birthday) = input.birthday {
        details.birthday = birthday;
    }
    if let Some(notes) = input.notes {
        details.notes = notes;
    }
    if let Some(im) = input.im {
        details.im = im;
    }
    if let Some(address) = input.postal_address {
        details.postal_address = address;
    }
    for (key, value) in input.custom_fields {
        if value.is_null() {
            person.custom_fields.remove(&key);
        } else {
            person.custom_fields.insert(key, value);
        }
    }
}

/// `POST /api/v2/persons`.
pub async fn create_person(
    State(state): State<AppState>,
    Path(company): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let query = query_of(&uri);
    serve(&state, &company, &headers, &query, Op::Write, |ctx| {
        let mut data = ctx.company.data.lock();
        let input = validate::person_input(&body, &data, true)?;
        let mut person = Person {
            id: data.next_person_id,
            name: String::new(),
            first_name: None,
            last_name: None,
            owner_id: ctx.user_id,
            org_id: None,
            add_time: ctx.now,
            update_time: ctx.now,
            emails: Vec::new(),
            phones: Vec::new(),
            is_deleted: false,
            delete_time: None,
            visible_to: 3,
            label_ids: Vec::new(),
            marketing_status: "no_consent".into(),
            details: Default::default(),
            custom_fields: Default::default(),
        };
        apply(&mut person, input);
        let value = model::person_v2(&person, &data.fields, &Render::default());
        data.put(person);
        Ok(ok(StatusCode::OK, value, None))
    })
}

/// `PATCH /api/v2/persons/{id}`.
pub async fn update_person(
    State(state): State<AppState>,
    Path((company, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let query = query_of(&uri);
    serve(&state, &company, &headers, &query, Op::Write, |ctx| {
        let id = person_id(&id)?;
        let mut data = ctx.company.data.lock();
        let mut person = live_person(&data, id)?;
        let input = validate::person_input(&body, &data, false)?;
        apply(&mut person, input);
        person.update_time = ctx.now;
        let value = model::person_v2(&person, &data.fields, &Render::default());
        data.put(person);
        Ok(ok(StatusCode::OK, value, None))
    })
}

/// `DELETE /api/v2/persons/{id}`: marks the person deleted.
pub async fn delete_person(
    State(state): State<AppState>,
    Path((company, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = query_of(&uri);
    serve(&state, &company, &headers, &query, Op::Delete, |ctx| {
        let id = person_id(&id)?;
        let mut data = ctx.company.data.lock();
        if !data.delete_person(id, ctx.now) {
            return Err(ApiError::not_found("Person not found"));
        }
        Ok(ok(StatusCode::OK, json!({ "id": id }), None))
    })
}

/// `GET /api/v2/persons/search`.
pub async fn search_persons(
    State(state): State<AppState>,
    Path(company): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = query_of(&uri);
    serve(&state, &company, &headers, &query, Op::Search, |ctx| {
        search(ctx, &query)
    })
}

fn search(ctx: &Ctx, query: &Params) -> Result<Response, ApiError> {
    let exact = match param(query, "exact_match") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid_param("exact_match", "must be true or false")),
    };
    let term = param(query, "term").unwrap_or("").trim().to_lowercase();
    let min = if exact { 1 } else { 2 };
    if term.chars().count() < min {
        return Err(invalid_param(
            "term",
            &format!(
                "must be at least {min} characters long{}",
                if exact { "" } else { " (1 with exact_match)" }
            ),
        ));
    }
    let fields = match param(query, "fields") {
        None => SEARCH_FIELDS.iter().map(|s| (*s).to_owned()).collect(),
        Some(raw) => {
            let list = comma_list(raw);
            if let Some(bad) = list.iter().find(|f| !SEARCH_FIELDS.contains(&f.as_str())) {
                return Err(invalid_param(
                    "fields",
                    &format!("unknown field {bad}; use name, email, phone, notes, custom_fields"),
                ));
            }
            list
        }
    };
    let limit = limit_param(query, 100)?;
    let company = ctx.company.id.to_string();
    let fp = fingerprint(&[
        &company,
        "search",
        &term,
        &fields.join(","),
        if exact { "1" } else { "0" },
        param(query, "organization_id").unwrap_or(""),
    ]);
    let offset = param(query, "cursor")
        .map(|c| decode_cursor(c, fp))
        .transpose()?
        .map_or(0, |(o, _)| o as usize);
    let has = |f: &str| fields.iter().any(|x| x == f);
    let score = |value: &str| -> Option<f64> {
        if equals_lowercase(value, &term) {
            Some(1.0)
        } else if !exact && contains_lowercase(value, &term) {
            Some(term.len() as f64 / value.len() as f64)
        } else {
            None
        }
    };

    let data = ctx.company.data.lock();
    let text_fields: Vec<&str> = data
        .fields
        .iter()
        .filter(|f| f.field_type.is_text())
        .map(|f| f.key.as_str())
        .collect();
    let mut hits: Vec<(f64, u64, Vec<String>)> = Vec::new();
    for id in &data.live_ids {
        let Some(p) = data.persons.get(id) else {
            continue;
        };
        let mut best: Option<f64> = None;
        let mut matched_custom = Vec::new();
        let mut consider = |s: Option<f64>| {
            if let Some(s) = s {
                best = Some(best.map_or(s, |b: f64| b.max(s)));
            }
        };
        if has("name") {
            consider(score(&p.name));
        }
        if has("email") {
            p.emails.iter().for_each(|c| consider(score(&c.value)));
        }
        if has("phone") {
            p.phones.iter().for_each(|c| consider(score(&c.value)));
        }
        if has("custom_fields") {
            for key in &text_fields {
                if let Some(Value::String(s)) = p.custom_fields.get(*key)
                    && let Some(sc) = score(s)
                {
                    consider(Some(sc));
                    matched_custom.push(s.clone());
                }
            }
        }
        if let Some(s) = best {
            hits.push((s, p.id, matched_custom));
        }
    }
    hits.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let more = hits.len() > offset + limit;
    let items: Vec<Value> = hits
        .iter()
        .skip(offset)
        .take(limit)
        .filter_map(|(s, id, custom)| {
            let p = data.persons.get(id)?;
            Some(json!({
                "result_score": (s * 10_000.0).round() / 10_000.0,
                "item": {
                    "id": p.id,
                    "type": "person",
                    "name": p.name,
                    "phones": p.phones.iter().map(|c| c.value.clone()).collect::<Vec<_>>(),
                    "emails": p.emails.iter().map(|c| c.value.clone()).collect::<Vec<_>>(),
                    "visible_to": p.visible_to,
                    "owner": { "id": p.owner_id },
                    "organization": null,
                    "custom_fields": custom,
                    "notes": [],
                    "update_time": model::rfc3339(p.update_time),
                },
            }))
        })
        .collect();
    drop(data);
    let next_cursor = more.then(|| encode_cursor(fp, (offset + limit) as i64, 0));
    Ok(ok(
        StatusCode::OK,
        json!({ "items": items }),
        Some(json!({ "next_cursor": next_cursor })),
    ))
}

/// Whether `value` equals `lower` (already lower-case) ignoring case, without allocating.
fn equals_lowercase(value: &str, lower: &str) -> bool {
    if value.is_ascii() {
        value.len() == lower.len() && value.as_bytes().eq_ignore_ascii_case(lower.as_bytes())
    } else {
        value.chars().flat_map(char::to_lowercase).eq(lower.chars())
    }
}

/// Whether `value` contains `lower` (already lower-case) ignoring case; allocates only
/// for non-ASCII values.
fn contains_lowercase(value: &str, lower: &str) -> bool {
    if value.is_ascii() && lower.is_ascii() {
        let (v, t) = (value.as_bytes(), lower.as_bytes());
        t.len() <= v.len() && v.windows(t.len()).any(|w| w.eq_ignore_ascii_case(t))
    } else {
        value.to_lowercase().contains(lower)
    }
}

fn pagination(query: &Params) -> Result<(usize, usize), ApiError> {
    let start = match param(query, "start") {
        None => 0,
        Some(raw) => raw
            .parse::<usize>()
            .map_err(|_| invalid_param("start", "must be a non-negative integer"))?,
    };
    Ok((start, limit_param(query, 100)?))
}

/// The options of a standard field (`label`, `marketing_status`, `visible_to`), else null.
pub(super) fn standard_options(key: &str) -> Value {
    match key {
        "label" => json!(
            PERSON_LABELS
                .iter()
                .map(|(id, l)| json!({"id": id, "label": l}))
                .collect::<Vec<_>>()
        ),
        "marketing_status" => json!(
            model::MARKETING_STATUSES
                .iter()
                .map(|s| json!({"id": s, "label": s}))
                .collect::<Vec<_>>()
        ),
        "visible_to" => json!([
            {"id": 1, "label": "Owner & followers"},
            {"id": 3, "label": "Entire company"},
            {"id": 5, "label": "Owner's visibility group"},
            {"id": 7, "label": "Owner's visibility group and sub-groups"},
        ]),
        _ => Value::Null,
    }
}

/// `GET /api/v1/personFields`.
pub async fn person_fields(
    State(state): State<AppState>,
    Path(company): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = query_of(&uri);
    serve(&state, &company, &headers, &query, Op::V1, |ctx| {
        let (start, limit) = pagination(&query)?;
        let data = ctx.company.data.lock();
        let mut all: Vec<Value> = STANDARD_FIELDS
            .iter()
            .enumerate()
            .map(|(i, (key, name, field_type))| {
                let options = standard_options(key);
                field_json(
                    i as u64 + 1,
                    key,
                    name,
                    field_type,
                    false,
                    *key == "name",
                    options,
                )
            })
            .collect();
        for f in &data.fields {
            let field_type = serde_json::to_value(f.field_type).unwrap_or(Value::Null);
            let options = f.options.as_ref().map_or(Value::Null, |o| json!(o));
            all.push(field_json(
                f.id,
                &f.key,
                &f.name,
                field_type.as_str().unwrap_or(""),
                true,
                false,
                options,
            ));
        }
        drop(data);
        let more = all.len() > start + limit;
        let page: Vec<Value> = all.into_iter().skip(start).take(limit).collect();
        let mut pagination =
            json!({ "start": start, "limit": limit, "more_items_in_collection": more });
        if more {
            pagination["next_start"] = json!(start + limit);
        }
        Ok(ok(
            StatusCode::OK,
            Value::Array(page),
            Some(json!({ "pagination": pagination })),
        ))
    })
}

fn field_json(
    id: u64,
    key: &str,
    name: &str,
    field_type: &str,
    custom: bool,
    mandatory: bool,
    options: Value,
) -> Value {
    json!({
        "id": id,
        "key": key,
        "name": name,
        "order_nr": id,
        "field_type": field_type,
        "active_flag": true,
        "edit_flag": custom,
        "index_visible_flag": true,
        "details_visible_flag": true,
        "add_visible_flag": true,
        "important_flag": false,
        "bulk_edit_allowed": true,
        "searchable_flag": custom && matches!(field_type, "varchar" | "varchar_auto" | "text"),
        "filtering_allowed": true,
        "sortable_flag": true,
        "mandatory_flag": mandatory,
        "options": options,
    })
}

/// `GET /api/v1/users`.
pub async fn users(
    State(state): State<AppState>,
    Path(company): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = query_of(&uri);
    let created = state.clock.now().timestamp() - 365 * 86_400;
    serve(&state, &company, &headers, &query, Op::V1, |ctx| {
        let data = ctx.company.data.lock();
        let users: Vec<Value> = data
            .users
            .iter()
            .map(|u| model::user_v1(u, u.id == ctx.user_id, created))
            .collect();
        Ok(ok(StatusCode::OK, Value::Array(users), None))
    })
}

/// `GET /api/v1/users/me`.
pub async fn me(
    State(state): State<AppState>,
    Path(company): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = query_of(&uri);
    let created = state.clock.now().timestamp() - 365 * 86_400;
    serve(&state, &company, &headers, &query, Op::V1, |ctx| {
        let data = ctx.company.data.lock();
        let user = data
            .user(ctx.user_id)
            .ok_or_else(|| ApiError::not_found("User not found"))?;
        let mut value = model::user_v1(user, true, created);
        if let Value::Object(map) = &mut value {
            map.insert("company_id".into(), json!(ctx.company.id));
            map.insert("company_name".into(), json!(ctx.company.name));
            map.insert("company_domain".into(), json!(ctx.company.domain));
            map.insert("company_country".into(), json!("FR"));
            map.insert("company_industry".into(), json!("Software"));
            map.insert(
                "language".into(),
                json!({ "language_code": "en", "country_code": "US" }),
            );
        }
        Ok(ok(StatusCode::OK, value, None))
    })
}

/// `GET /api/v1/recents?since_timestamp=YYYY-MM-DD HH:MM:SS&items=person`: persons
/// changed at or after the time, oldest first, deleted ones included.
pub async fn recents(
    State(state): State<AppState>,
    Path(company): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query = query_of(&uri);
    serve(&state, &company, &headers, &query, Op::V1, |ctx| {
        let Some(raw_since) = param(&query, "since_timestamp") else {
            return Err(ApiError::bad_request("since_timestamp is required"));
        };
        let since = NaiveDateTime::parse_from_str(raw_since, "%Y-%m-%d %H:%M:%S")
            .map_err(|_| invalid_param("since_timestamp", "must be YYYY-MM-DD HH:MM:SS (UTC)"))?
            .and_utc()
            .timestamp();
        const ITEMS: &[&str] = &[
            "activity",
            "activityType",
            "deal",
            "file",
            "filter",
            "note",
            "person",
            "organization",
            "pipeline",
            "product",
            "stage",
            "user",
        ];
        let items = param(&query, "items").map(comma_list).unwrap_or_default();
        if let Some(bad) = items.iter().find(|i| !ITEMS.contains(&i.as_str())) {
            return Err(invalid_param("items", &format!("unknown item type {bad}")));
        }
        let (start, limit) = pagination(&query)?;
        let wants_persons = items.is_empty() || items.iter().any(|i| i == "person");
        let data = ctx.company.data.lock();
        let mut rows = Vec::new();
        let mut last_time = None;
        let mut more = false;
        if wants_persons {
            let mut keys = data.all_by_update.range((since, 0)..).skip(start);
            for &(time, id) in keys.by_ref().take(limit) {
                if let Some(p) = data.persons.get(&id) {
                    rows.push(json!({ "item": "person", "id": id, "data": model::person_v1(p, ctx.company.id, &data) }));
                    last_time = Some(time);
                }
            }
            more = keys.next().is_some();
        }
        drop(data);
        let mut pagination =
            json!({ "start": start, "limit": limit, "more_items_in_collection": more });
        if more {
            pagination["next_start"] = json!(start + limit);
        }
        let additional = json!({
            "since_timestamp": raw_since,
            "last_timestamp_on_page": last_time.map_or_else(|| raw_since.to_owned(), model::v1_time),
            "pagination": pagination,
        });
        Ok(ok(StatusCode::OK, Value::Array(rows), Some(additional)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_with(people: usize) -> Data {
        let mut rng = model::company_rng(1, 1, 1);
        let mut data = Data {
            next_person_id: 1,
            next_option_id: 100,
            ..Data::default()
        };
        data.users.push(model::User {
            id: 1,
            name: "A".into(),
            email: "a@x".into(),
            active_flag: true,
            is_admin: true,
        });
        for spec in model::default_field_specs() {
            data.add_field(&mut rng, &spec).unwrap();
        }
        data.seed(
            &crate::seed::SeedSpec {
                people,
                ..Default::default()
            },
            2_000_000_000,
        );
        data
    }

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_cursor_walk_by_update_time_visits_every_person_once_in_order() {
        let data = data_with(1_000);
        let mut query = params(&[("sort_by", "update_time"), ("limit", "99")]);
        let mut seen = Vec::new();
        loop {
            let q = ListQuery::parse(&query, &data, 1).unwrap();
            let (page, next) = q.page(&data);
            seen.extend(page.iter().map(|p| (p.update_time, p.id)));
            let Some((a, b)) = next else { break };
            query.retain(|(k, _)| k != "cursor");
            query.push(("cursor".into(), encode_cursor(q.fingerprint, a, b)));
        }
        let expected: Vec<(i64, u64)> = data.live_by_update.iter().copied().collect();
        assert_eq!(seen, expected);
    }
}
