//! What a CRM's sandbox gives the worker's conformance suite: a fresh account
//! on a running sandbox, people stored as given, the account's records as
//! stored, its daily budget, its credentials revoked. One trait, implemented in
//! each CRM's folder (`zoho::SandboxKind`, `pipedrive::SandboxKind`); the suite
//! is written once against it and never names a CRM.
//!
//! The kit works in process, through each CRM's admin routes (the same calls
//! `docs/<kind>.md` documents over HTTP), so it needs no HTTP client and runs
//! on whichever runtime the caller is on.

use std::collections::BTreeMap;
use std::future::Future;

use axum::body::Body;
use axum::http::{Method, Request};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tower::ServiceExt;

use crate::faults::{FaultKind, FaultRule};
use crate::metrics::RequestCount;
use crate::{AppState, System};

/// A CRM's side of the conformance suite.
pub trait SandboxCrm: Send + Sync + 'static {
    /// Which emulated CRM: fault rules and request counts are kept per system.
    fn system(&self) -> System;

    /// Most records one listing call returns.
    fn list_page_size(&self) -> usize;

    /// Most records one write call carries (1 where the CRM writes one record per call).
    fn write_batch_size(&self) -> usize;

    /// The endpoints (`METHOD /route/template`, as counted) that create or
    /// change records; the first is the one a new record goes through.
    fn write_endpoints(&self) -> &'static [&'static str];

    /// The endpoint (`METHOD /route/template`, as counted) that lists the
    /// records of the module contacts are written to changed since a time:
    /// the one a client's listing calls, for a fault rule on the listing.
    fn list_endpoint(&self) -> &'static str;

    /// A fresh account (its own org or company, no records) with these extra
    /// picklist fields on the module contacts are written to, and limits
    /// generous enough that only a test's own rules throttle it.
    fn provision(
        &self,
        state: &AppState,
        picklists: &[Picklist],
    ) -> impl Future<Output = Result<Account, KitError>> + Send;

    /// Stores people as given (times, flags and picklist values included) in
    /// the module contacts are written to; their ids, in order.
    fn put_people(
        &self,
        state: &AppState,
        account: &Account,
        people: &[Person],
    ) -> impl Future<Output = Result<Vec<String>, KitError>> + Send;

    /// The live records of the module contacts are written to, as stored.
    fn stored(
        &self,
        state: &AppState,
        account: &Account,
    ) -> impl Future<Output = Result<Vec<Stored>, KitError>> + Send;

    /// What the account has spent of its daily API budget, in the CRM's
    /// units (Zoho credits, Pipedrive tokens).
    fn daily_used(
        &self,
        state: &AppState,
        account: &Account,
    ) -> impl Future<Output = Result<u64, KitError>> + Send;

    /// Sets the account's daily API budget, in the units of [`Self::daily_used`].
    fn set_daily_budget(
        &self,
        state: &AppState,
        account: &Account,
        budget: u64,
    ) -> impl Future<Output = Result<(), KitError>> + Send;

    /// Deletes a record of the module contacts are written to as a person
    /// does in the CRM's screens (to the recycle bin / archive, where the
    /// CRM's deleted-records feed lists it), now or, with `at`, back then:
    /// a record deleted longer ago than the CRM's feed reaches.
    fn delete_record(
        &self,
        state: &AppState,
        account: &Account,
        id: &str,
        at: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<(), KitError>> + Send;

    /// Revokes every credential of the account, as a person revoking the
    /// app's access would: calls made with them are refused from now on.
    fn revoke_credentials(&self, state: &AppState, account: &Account) -> Result<(), KitError>;

    /// Converts a lead as a sales rep does in the CRM's own screens, for CRMs
    /// whose API cannot convert leads; the id of the contact it became. The
    /// other CRMs' leads are converted through their API (the client's
    /// `convert_lead`), so by default this refuses.
    fn convert_lead(
        &self,
        state: &AppState,
        account: &Account,
        lead_id: &str,
    ) -> impl Future<Output = Result<String, KitError>> + Send {
        let _ = (state, account);
        let error = KitError {
            what: format!("convert_lead {lead_id}"),
            message: format!(
                "{:?}'s leads are converted through its API, not the sandbox",
                self.system()
            ),
        };
        async move { Err(error) }
    }
}

/// An account the kit provisioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The CRM it lives in.
    pub system: System,
    /// How the sandbox labels the account's requests and scopes fault rules
    /// (the Zoho org id, the Pipedrive company domain).
    pub tenant: String,
    /// The base URL a connector to this account uses.
    pub base_url: String,
    /// The connect form a person would fill in, by the GraphQL credential
    /// input's field names (`clientId`, `apiToken`, ...).
    pub connect_form: BTreeMap<String, String>,
}

/// A picklist field to add to a fresh account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picklist {
    /// Its name: the api name where the CRM lets us choose it, the label otherwise.
    pub name: String,
    /// Option labels.
    pub options: Vec<String>,
}

/// A person to store, in no CRM's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: String,
    /// Primary e-mail.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// The CRM's modification (and creation) time; now when absent.
    pub modified_at: Option<DateTime<Utc>>,
    /// Option labels by picklist name (a field given to `provision`).
    pub picklists: BTreeMap<String, String>,
}

/// A record as stored, in no CRM's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The CRM's id.
    pub id: String,
    /// Primary e-mail as stored.
    pub email: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Phone.
    pub phone: Option<String>,
}

/// A kit call that failed: the admin route's status and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {message}")]
pub struct KitError {
    /// The call, `METHOD /path`.
    pub what: String,
    /// Why, as the admin API said.
    pub message: String,
}

impl Account {
    /// Adds a fault rule that hits only this account's requests to `endpoint`
    /// (every endpoint when `None`), at most `count` times.
    pub fn add_fault(
        &self,
        state: &AppState,
        kind: FaultKind,
        endpoint: Option<&str>,
        count: Option<u64>,
    ) -> FaultRule {
        state.faults.add(FaultRule {
            id: 0,
            system: Some(self.system),
            tenant: Some(self.tenant.clone()),
            endpoint: endpoint.map(str::to_owned),
            kind,
            rate: 1.0,
            count,
            hits: 0,
        })
    }

    /// The sandbox's request counts for this account.
    pub fn requests(&self, state: &AppState) -> Vec<RequestCount> {
        state
            .metrics
            .snapshot()
            .into_iter()
            .filter(|r| r.system == self.system && r.tenant.as_deref() == Some(&self.tenant))
            .collect()
    }

    /// How many of this account's requests went to one of `endpoints`.
    pub fn calls_to(&self, state: &AppState, endpoints: &[&str]) -> u64 {
        self.requests(state)
            .iter()
            .filter(|r| endpoints.contains(&r.endpoint.as_str()))
            .map(|r| r.count)
            .sum()
    }

    /// How many of this account's requests were answered with `status`.
    pub fn calls_answered(&self, state: &AppState, status: u16) -> u64 {
        self.requests(state)
            .iter()
            .filter(|r| r.status == status)
            .map(|r| r.count)
            .sum()
    }
}

/// The query of an admin route that deletes a record: `?deleted_at=` when
/// the deletion is backdated, nothing when it happens now.
pub(crate) fn deleted_at_query(at: Option<DateTime<Utc>>) -> String {
    at.map(|at| {
        let at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        format!("?deleted_at={at}")
    })
    .unwrap_or_default()
}

/// A sales rep's lead conversion through the CRM's admin route `path` (for
/// CRMs whose API converts no leads): the id of the contact it made.
pub(crate) async fn convert_by_admin(state: &AppState, path: &str) -> Result<String, KitError> {
    let reply = admin(state, Method::POST, path, None).await?;
    reply["contact_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| KitError {
            what: format!("POST /admin{path}"),
            message: format!("no contact_id in {reply}"),
        })
}

/// One call to the sandbox's admin API (`path` below `/admin`), in process.
pub(crate) async fn admin(
    state: &AppState,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, KitError> {
    let what = format!("{method} /admin{path}");
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .map_err(|e| KitError {
            what: what.clone(),
            message: e.to_string(),
        })?;
    let response = crate::admin::router()
        .with_state(state.clone())
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .map_err(|e| KitError {
            what: what.clone(),
            message: e.to_string(),
        })?;
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        Ok(value)
    } else {
        Err(KitError {
            what,
            message: format!("{status} {value}"),
        })
    }
}
