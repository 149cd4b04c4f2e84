//! What every API call goes through: the access token, the scope, the org's
//! concurrency limits and its rolling daily credits.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::http::HeaderMap;
use serde_json::json;

use super::org::{Module, Org};
use super::{Reject, error};
use crate::Shared;

/// The token of an `Authorization: Zoho-oauthtoken <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme == "Zoho-oauthtoken")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// What a call needs the token's scope to allow.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Need {
    /// `ZohoCRM.modules.all`, `ZohoCRM.modules.<module>.all` or `ZohoCRM.modules.<module>.<op>`.
    Module(Module, &'static str),
    /// `ZohoCRM.settings.all`, `ZohoCRM.settings.fields.all` or `ZohoCRM.settings.fields.read`.
    Fields,
    /// `ZohoCRM.users.all` or `ZohoCRM.users.read`.
    Users,
    /// `ZohoCRM.org.all` or `ZohoCRM.org.read`.
    Org,
    /// `ZohoCRM.coql.read` (the module's read scope is checked once the query names it).
    Coql,
    /// `ZohoCRM.notifications.ALL` (the Notification API, `actions/watch`).
    Notifications,
}

pub(crate) fn scope_allows(scope: &str, need: Need) -> bool {
    let have: Vec<String> = scope
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let any = |wanted: &[String]| wanted.iter().any(|w| have.contains(w));
    match need {
        Need::Module(m, op) => {
            let m = m.scope_name();
            any(&[
                "zohocrm.modules.all".into(),
                format!("zohocrm.modules.{m}.all"),
                format!("zohocrm.modules.{m}.{op}"),
            ])
        }
        Need::Fields => any(&[
            "zohocrm.settings.all".into(),
            "zohocrm.settings.fields.all".into(),
            "zohocrm.settings.fields.read".into(),
        ]),
        Need::Users => any(&["zohocrm.users.all".into(), "zohocrm.users.read".into()]),
        Need::Org => any(&["zohocrm.org.all".into(), "zohocrm.org.read".into()]),
        Need::Coql => any(&["zohocrm.coql.read".into()]),
        Need::Notifications => any(&["zohocrm.notifications.all".into()]),
    }
}

/// Decrements a concurrency counter when the handler ends, however it ends.
#[derive(Debug)]
struct Slot {
    org: Arc<Org>,
    heavy: bool,
}

impl Slot {
    fn counter(&self) -> &AtomicUsize {
        if self.heavy {
            &self.org.heavy_in_flight
        } else {
            &self.org.in_flight
        }
    }

    fn take(org: &Arc<Org>, heavy: bool, limit: usize) -> Option<Slot> {
        let slot = Slot {
            org: org.clone(),
            heavy,
        };
        let before = slot.counter().fetch_add(1, Ordering::SeqCst);
        // When over the limit, dropping `slot` gives the count back.
        (before < limit).then_some(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counter().fetch_sub(1, Ordering::SeqCst);
    }
}

/// An authenticated call in flight.
#[derive(Debug)]
pub(crate) struct Call {
    pub org: Arc<Org>,
    pub user: u64,
    /// The token's scope, for checks that depend on the request body (COQL's module).
    pub scope: String,
    _slot: Slot,
    heavy: Option<Slot>,
    now_ms: i64,
}

fn too_many(limit: &str, message: &str) -> Reject {
    error(429, "TOO_MANY_REQUESTS", message, json!({ "limit": limit }))
}

pub(crate) fn scope_mismatch() -> Reject {
    error(
        401,
        "OAUTH_SCOPE_MISMATCH",
        "invalid oauth scope to access this URL",
        json!({}),
    )
}

pub(crate) fn invalid_token() -> Reject {
    error(401, "INVALID_TOKEN", "invalid oauth token", json!({}))
}

/// Authenticates and admits a call: token, scope, then the concurrency limit (the
/// slot is held until the returned `Call` drops).
pub(crate) async fn begin(state: &Shared, headers: &HeaderMap, need: Need) -> Result<Call, Reject> {
    let now_ms = state.clock.now().timestamp_millis();
    let token = bearer(headers).ok_or_else(invalid_token)?;
    let (org_id, user, scope) = {
        let registry = state.zoho.registry.read();
        let t = registry
            .access_tokens
            .get(token)
            .ok_or_else(invalid_token)?;
        if t.expires_ms <= now_ms {
            return Err(invalid_token());
        }
        (t.org_id.clone(), t.user_id, t.scope.clone())
    };
    let org = state.zoho.org(&org_id).ok_or_else(invalid_token)?;
    if !scope_allows(&scope, need) {
        return Err(scope_mismatch());
    }
    let limit = org.limits.lock().concurrency;
    let slot = Slot::take(&org, false, limit).ok_or_else(|| {
        too_many(
            "concurrency",
            &format!(
                "the concurrency limit of {limit} API calls in flight for this org was exceeded"
            ),
        )
    })?;
    Ok(Call {
        org,
        user,
        scope,
        _slot: slot,
        heavy: None,
        now_ms,
    })
}

impl Call {
    /// Takes a heavy-call slot as well (writes of more than 10 records, lead conversion).
    pub(crate) fn heavy(&mut self) -> Result<(), Reject> {
        let limit = self.org.limits.lock().heavy_concurrency;
        let slot = Slot::take(&self.org, true, limit).ok_or_else(|| {
            too_many(
                "heavy_concurrency",
                &format!("the concurrency limit of {limit} heavy API calls in flight for this org was exceeded"),
            )
        })?;
        self.heavy = Some(slot);
        Ok(())
    }

    /// Spends `cost` credits of the rolling 24-hour budget, serves any injected
    /// latency, then waits while the org's gate is closed (holding the call's
    /// slots throughout), so tests can keep calls in flight.
    pub(crate) async fn charge(&self, cost: u64) -> Result<(), Reject> {
        self.spend(cost)?;
        crate::server::serve_injected_latency().await;
        let mut gate = self.org.gate.subscribe();
        let _ = gate.wait_for(|closed| !*closed).await;
        Ok(())
    }

    fn spend(&self, cost: u64) -> Result<(), Reject> {
        let limit = self.org.limits.lock().daily_credits;
        let mut usage = self.org.usage.lock();
        let used = usage.used(self.now_ms);
        if used + cost > limit {
            return Err(too_many(
                "credits",
                &format!("the API credit limit of {limit} per 24 hours was reached ({used} used)"),
            ));
        }
        usage.credits.push_back((self.now_ms, cost));
        Ok(())
    }
}
