//! `GET /org`: the organisation, in the keys of Zoho's "Get Organization Data" and
//! of the official SDKs' `Org` class.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::FixedOffset;
use serde_json::{Value, json};

use super::auth::{Need, begin};
use super::{Reject, json_reply};
use crate::AppState;

pub(crate) async fn get(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match get_inner(&state, &headers).await {
        Ok(r) => r,
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}

async fn get_inner(state: &AppState, headers: &HeaderMap) -> Result<Response, Reject> {
    let call = begin(state, headers, Need::Org).await?;
    call.charge(1).await?;
    let org = &call.org;
    let data = org.data.lock();
    let admin = data.user(data.admin_user_id());
    let mut out = json!({
        "id": data.record_id.to_string(),
        "zgid": org.id,
        "company_name": org.name,
        "alias": Value::Null,
        "primary_email": admin.map(|u| u.email.clone()),
        "primary_zuid": admin.map(|u| u.id.to_string()),
        "domain_name": format!("org{}", org.id),
        "type": "production",
        "created_time": data.time(org.created),
        "time_zone": zone_name(data.tz),
        "currency": "US Dollar",
        "iso_code": "USD",
        "currency_symbol": "$",
        "currency_locale": "en_US",
        "mc_status": false,
        "country_code": "US",
        "max_per_page": 200,
        "hierarchy_preferences": { "type": "Role_Hierarchy", "strictly_reporting": false },
        "license_details": {
            "paid": true,
            "paid_type": "enterprise",
            "paid_expiry": Value::Null,
            "trial_type": Value::Null,
            "trial_expiry": Value::Null,
            "trial_action": Value::Null,
            "users_license_purchased": data.users.len(),
            "portal_users_license_purchased": 0,
        },
    });
    let fields = out.as_object_mut().expect("an object");
    // The sandbox keeps no address, contact details or features for an org.
    for key in UNSET {
        fields.insert(key.to_owned(), Value::Null);
    }
    for key in FLAGS_OFF {
        fields.insert(key.to_owned(), Value::Bool(false));
    }
    let body = json!({ "org": [out] });
    Ok(json_reply(StatusCode::OK, &body))
}

const UNSET: [&str; 13] = [
    "country",
    "city",
    "street",
    "state",
    "zip",
    "phone",
    "mobile",
    "fax",
    "website",
    "description",
    "employee_count",
    "photo_id",
    "zia_portal_id",
];

const FLAGS_OFF: [&str; 6] = [
    "gapps_enabled",
    "translation_enabled",
    "privacy_settings",
    "hipaa_compliance_enabled",
    "lite_users_enabled",
    "deletable_org_account",
];

/// Zoho names the org's time zone (`Asia/Kolkata`); the sandbox keeps an offset, so
/// whole hours become the IANA `Etc/GMT∓h` zones (whose sign is inverted by POSIX
/// convention) and other offsets are shown as they are.
fn zone_name(tz: FixedOffset) -> String {
    let secs = tz.local_minus_utc();
    match secs {
        0 => "Etc/UTC".to_owned(),
        s if s % 3600 == 0 => format!("Etc/GMT{:+}", -s / 3600),
        _ => tz.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_hour_offsets_become_etc_zones() {
        let east = |h: i32| FixedOffset::east_opt(h * 3600).unwrap();
        assert_eq!(zone_name(east(0)), "Etc/UTC");
        assert_eq!(zone_name(east(1)), "Etc/GMT-1");
        assert_eq!(zone_name(east(-5)), "Etc/GMT+5");
        assert_eq!(zone_name(FixedOffset::east_opt(19_800).unwrap()), "+05:30");
    }
}
