//! IF/THEN sync rules (issue 24, S13) through GraphQL, against the sandbox
//! Zoho and Pipedrive: `setSyncRules` and `Connector.syncRules`, rule order,
//! INCLUDE with fields set on each side, EXCLUDE and records no rule
//! matches (UNCHANGED items with reason EXCLUDED_BY_RULE), validation that
//! names the rule and the field, and a dry run previewing proposed rules.

use crmsync_entity::enums::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::sync_flow::wait_final;
use crate::zoho::{Org, zoho_connector};

const SET_RULES: &str = "mutation($input: SetSyncRulesInput!) { setSyncRules(input: $input) { connector { id fullResyncRecommended syncRules { direction action conditions { field operator value } setFields { field value } } } } }";

const START: &str =
    "mutation($input: StartSyncInput!) { startSync(input: $input) { run { id mode } } }";

const ITEMS: &str = "query($id: ID!) { syncRun(id: $id) { status items(first: 100) { edges { node { direction outcome email reasonCode field message } } } } }";

const CONTACTS: &str = "{ contacts(first: 100) { edges { node { email source optedOut } } } }";

async fn set_rules(app: &TestApp, connector: &str, rules: Value) -> Value {
    app.gql(
        &app.token(Role::Admin),
        SET_RULES,
        json!({ "input": { "connectorId": connector, "rules": rules } }),
    )
    .await
}

/// Runs a sync of `mode` (with `extra` input) to its end; its items.
async fn sync(app: &TestApp, connector: &str, extra: Value) -> Value {
    let mut input = json!({ "connectorId": connector, "mode": "FULL" });
    input
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let data = app.admin_ok(START, json!({ "input": input })).await;
    let run = data["startSync"]["run"]["id"].as_str().unwrap().to_owned();
    let end = wait_final(app, &run).await;
    assert_eq!(end["status"], "SUCCEEDED", "{end}");
    app.admin_ok(ITEMS, json!({ "id": run })).await["syncRun"]["items"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// The one item of `email` in `direction`.
fn item<'a>(items: &'a Value, direction: &str, email: &str) -> &'a Value {
    let found: Vec<&Value> = items
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["direction"] == direction && i["email"] == email)
        .collect();
    assert_eq!(found.len(), 1, "one {direction} item for {email}: {items}");
    found[0]
}

async fn contacts(app: &TestApp) -> Vec<Value> {
    app.admin_ok(CONTACTS, json!({})).await["contacts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn upsert(app: &TestApp, contact: Value) {
    app.admin_ok(
        "mutation($input: UpsertContactInput!) { upsertContact(input: $input) { contact { id } } }",
        json!({ "input": contact }),
    )
    .await;
}

/// The leads of the sandbox Zoho org, as stored.
async fn zoho_leads(org: &Org) -> Vec<Value> {
    let path = format!("/zoho/orgs/{}/records/Leads", org.org_id);
    org.admin(Method::GET, &path, Value::Null).await["records"]
        .as_array()
        .unwrap()
        .clone()
}

fn lead<'a>(leads: &'a [Value], email: &str) -> Option<&'a Value> {
    leads.iter().find(|l| l["Email"] == email)
}

/// A Zoho connector on an org without leads.
async fn zoho(app: &TestApp, sandbox: &crmsync_sandbox::Sandbox) -> (Org, String) {
    let org = Org::default_of(sandbox);
    let id = zoho_connector(app, &org).await;
    (org, id)
}

#[tokio::test]
async fn set_sync_rules_replaces_them_reads_them_back_in_order_and_recommends_a_full_resync() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    let (_org, id) = zoho(&app, &sandbox).await;
    let rules = json!([
        { "direction": "FROM_CRM", "conditions": [{ "field": "Lead_Source", "operator": "EQUALS", "value": "Advertisement" }], "action": "EXCLUDE" },
        { "direction": "TO_CRM", "conditions": [{ "field": "ownerEmail", "operator": "IS_SET" }], "action": "INCLUDE", "setFields": [{ "field": "Lead_Source", "value": "Trade Show" }] },
        { "direction": "FROM_CRM", "action": "INCLUDE", "setFields": [{ "field": "optedOut", "value": "true" }] },
    ]);
    let body = set_rules(&app, &id, rules).await;
    let connector = &body["data"]["setSyncRules"]["connector"];
    assert_eq!(connector["fullResyncRecommended"], true, "{body}");
    assert_eq!(
        connector["syncRules"],
        json!([
            { "direction": "FROM_CRM", "action": "EXCLUDE", "conditions": [{ "field": "Lead_Source", "operator": "EQUALS", "value": "Advertisement" }], "setFields": [] },
            { "direction": "TO_CRM", "action": "INCLUDE", "conditions": [{ "field": "ownerEmail", "operator": "IS_SET", "value": null }], "setFields": [{ "field": "Lead_Source", "value": "Trade Show" }] },
            { "direction": "FROM_CRM", "action": "INCLUDE", "conditions": [], "setFields": [{ "field": "optedOut", "value": "true" }] },
        ])
    );
    let read = app
        .admin_ok(
            "query($id: ID!) { connector(id: $id) { syncRules { direction } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        read["connector"]["syncRules"],
        json!([{ "direction": "FROM_CRM" }, { "direction": "TO_CRM" }, { "direction": "FROM_CRM" }])
    );
    // An empty list removes them all; a viewer may not change them.
    let body = set_rules(&app, &id, json!([])).await;
    assert_eq!(
        body["data"]["setSyncRules"]["connector"]["syncRules"],
        json!([])
    );
    let viewer = app
        .gql(
            &app.token(Role::Viewer),
            SET_RULES,
            json!({ "input": { "connectorId": id, "rules": [] } }),
        )
        .await;
    assert_eq!(code(&viewer), "FORBIDDEN", "{viewer}");
}

#[tokio::test]
async fn invalid_rules_are_refused_naming_the_rule_and_the_field() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    let (_org, id) = zoho(&app, &sandbox).await;
    let fine = json!({ "direction": "TO_CRM", "action": "INCLUDE" });
    let cases = [
        (
            json!({ "direction": "FROM_CRM", "conditions": [{ "field": "No_Such_Field", "operator": "IS_SET" }], "action": "INCLUDE" }),
            "rules[2].conditions[0].field",
            "crmFields",
        ),
        (
            json!({ "direction": "TO_CRM", "conditions": [{ "field": "source", "operator": "IS_SET" }, { "field": "optedOut", "operator": "GREATER_OR_EQUAL", "value": "1" }], "action": "INCLUDE" }),
            "rules[2].conditions[1].operator",
            "GREATER_OR_EQUAL",
        ),
        (
            json!({ "direction": "FROM_CRM", "conditions": [{ "field": "Lead_Source", "operator": "EQUALS", "value": "Carrier pigeon" }], "action": "INCLUDE" }),
            "rules[2].conditions[0].value",
            "allowed values",
        ),
        (
            json!({ "direction": "TO_CRM", "action": "INCLUDE", "setFields": [{ "field": "Created_Time", "value": "2026-01-01T00:00:00Z" }] }),
            "rules[2].setFields[0].field",
            "read-only",
        ),
        (
            json!({ "direction": "TO_CRM", "action": "INCLUDE", "setFields": [{ "field": "Lead_Source", "value": "Carrier pigeon" }] }),
            "rules[2].setFields[0].value",
            "allowed values",
        ),
        (
            json!({ "direction": "TO_CRM", "action": "EXCLUDE", "setFields": [{ "field": "Lead_Source", "value": "Trade Show" }] }),
            "rules[2].setFields",
            "INCLUDE",
        ),
    ];
    for (rule, field_at, says) in cases {
        let body = set_rules(&app, &id, json!([fine, fine, rule])).await;
        assert_eq!(code(&body), "VALIDATION", "{body}");
        assert_eq!(field(&body), field_at, "{body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    let read = app
        .admin_ok(
            "query($id: ID!) { connector(id: $id) { fullResyncRecommended syncRules { direction } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        read["connector"],
        json!({ "fullResyncRecommended": false, "syncRules": [] }),
        "refused rules change nothing"
    );
}

#[tokio::test]
async fn zoho_leads_come_in_by_the_first_from_crm_rule_that_matches_with_its_fields_set() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    app.start_worker();
    let (org, id) = zoho(&app, &sandbox).await;
    let lead = |email: &str, source: &str| json!({ "Email": email, "Last_Name": "Lead", "Lead_Source": source });
    org.admin(
        Method::POST,
        &format!("/zoho/orgs/{}/records/Leads", org.org_id),
        json!({ "records": [
            lead("ads@acme.test", "Advertisement"),
            lead("fair@acme.test", "Trade Show"),
            lead("call@acme.test", "Cold Call"),
            lead("web@acme.test", "Web Form"),
        ] }),
    )
    .await;
    // Advertisement matches both rules: the first decides. Web Form
    // matches none, so it does not come in.
    let body = set_rules(
        &app,
        &id,
        json!([
            { "direction": "FROM_CRM", "conditions": [{ "field": "Lead_Source", "operator": "EQUALS", "value": "Advertisement" }], "action": "EXCLUDE" },
            { "direction": "FROM_CRM", "conditions": [{ "field": "Lead_Source", "operator": "IN", "value": "Advertisement, Trade Show, Cold Call" }], "action": "INCLUDE", "setFields": [{ "field": "source", "value": "zoho-fair" }] },
        ]),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");

    let items = sync(&app, &id, json!({})).await;

    let mut came_in: Vec<(String, Value)> = contacts(&app)
        .await
        .into_iter()
        .map(|c| (c["email"].as_str().unwrap().to_owned(), c["source"].clone()))
        .collect();
    came_in.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        came_in,
        vec![
            ("call@acme.test".to_owned(), json!("zoho-fair")),
            ("fair@acme.test".to_owned(), json!("zoho-fair")),
        ]
    );
    let ads = item(&items, "FROM_CRM", "ads@acme.test");
    assert_eq!(ads["outcome"], "UNCHANGED");
    assert_eq!(ads["reasonCode"], "EXCLUDED_BY_RULE");
    assert_eq!(ads["field"], "rules[0]");
    let web = item(&items, "FROM_CRM", "web@acme.test");
    assert_eq!(web["outcome"], "UNCHANGED");
    assert_eq!(web["reasonCode"], "EXCLUDED_BY_RULE");
    assert!(
        web["message"]
            .as_str()
            .unwrap()
            .contains("no FROM_CRM rule"),
        "{web}"
    );
    assert_eq!(
        item(&items, "FROM_CRM", "fair@acme.test")["outcome"],
        "CREATED"
    );
}

#[tokio::test]
async fn zoho_to_crm_rules_set_an_unmapped_lead_source_and_keep_unmatched_contacts_out() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    app.start_worker();
    let (org, id) = zoho(&app, &sandbox).await;
    for (email, source) in [("webinar@acme.test", "webinar"), ("ads@acme.test", "ads")] {
        upsert(
            &app,
            json!({ "email": email, "firstName": "Ada", "lastName": "Lovelace", "source": source, "behaviourScore": 80 }),
        )
        .await;
    }
    let body = set_rules(
        &app,
        &id,
        json!([{ "direction": "TO_CRM", "conditions": [{ "field": "source", "operator": "EQUALS", "value": "Webinar" }], "action": "INCLUDE", "setFields": [{ "field": "Lead_Source", "value": "Trade Show" }] }]),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");

    let items = sync(&app, &id, json!({})).await;

    let leads = zoho_leads(&org).await;
    let webinar = lead(&leads, "webinar@acme.test").expect("the webinar contact is a lead");
    assert_eq!(webinar["Lead_Source"], "Trade Show", "{webinar}");
    assert!(lead(&leads, "ads@acme.test").is_none(), "{leads:?}");
    assert_eq!(
        item(&items, "TO_CRM", "webinar@acme.test")["outcome"],
        "CREATED"
    );
    let ads = item(&items, "TO_CRM", "ads@acme.test");
    assert_eq!(ads["outcome"], "UNCHANGED");
    assert_eq!(ads["reasonCode"], "EXCLUDED_BY_RULE");
}

/// The api name of the sandbox Pipedrive's `sync_to_plezi` field, and the
/// option id of its `yes`.
async fn sync_to_plezi(app: &TestApp, connector: &str) -> (String, String) {
    let data = app
        .admin_ok(
            "query($id: ID!) { connector(id: $id) { crmFields(module: PERSONS) { apiName label picklistValues { value label } } } }",
            json!({ "id": connector }),
        )
        .await;
    let field = data["connector"]["crmFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["label"] == "sync_to_plezi")
        .unwrap_or_else(|| panic!("no sync_to_plezi field: {data}"))
        .clone();
    let yes = field["picklistValues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["label"] == "yes")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    (field["apiName"].as_str().unwrap().to_owned(), yes)
}

#[tokio::test]
async fn pipedrive_to_crm_rules_exclude_first_then_include_with_a_field_set() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    app.start_worker();
    let id = app.pipedrive_connector(&sandbox).await;
    let (key, yes) = sync_to_plezi(&app, &id).await;
    upsert(
        &app,
        json!({ "email": "in@acme.test", "firstName": "In", "lastName": "Person", "behaviourScore": 80 }),
    )
    .await;
    upsert(
        &app,
        json!({ "email": "out@acme.test", "firstName": "Out", "lastName": "Person", "behaviourScore": 80, "optedOut": true }),
    )
    .await;
    let body = set_rules(
        &app,
        &id,
        json!([
            { "direction": "TO_CRM", "conditions": [{ "field": "optedOut", "operator": "EQUALS", "value": "true" }], "action": "EXCLUDE" },
            { "direction": "TO_CRM", "action": "INCLUDE", "setFields": [{ "field": key, "value": "yes" }] },
        ]),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");

    let items = sync(&app, &id, json!({})).await;

    let persons = sandbox_persons(&sandbox).await;
    let emails = |p: &Value| p["emails"].to_string();
    let person = persons
        .iter()
        .find(|p| emails(p).contains("in@acme.test"))
        .unwrap_or_else(|| panic!("in@acme.test not in Pipedrive: {persons:?}"));
    assert_eq!(
        person["custom_fields"][&key].to_string().trim_matches('"'),
        yes,
        "{person}"
    );
    assert!(
        !persons.iter().any(|p| emails(p).contains("out@acme.test")),
        "{persons:?}"
    );
    let out = item(&items, "TO_CRM", "out@acme.test");
    assert_eq!(out["outcome"], "UNCHANGED");
    assert_eq!(out["reasonCode"], "EXCLUDED_BY_RULE");
    assert_eq!(out["field"], "rules[0]");
}

/// Two persons stored in the sandbox Pipedrive: grace@acme.test and bob@globex.test.
async fn grace_and_bob_in_pipedrive(sandbox: &crmsync_sandbox::Sandbox) {
    let person = |email: &str, name: &str| json!({ "name": name, "emails": [{ "value": email, "primary": true, "label": "work" }] });
    sandbox_admin(
        sandbox,
        &format!(
            "/pipedrive/companies/{}/persons",
            sandbox.description().pipedrive.company_domain
        ),
        json!({ "persons": [person("grace@acme.test", "Grace Hopper"), person("bob@globex.test", "Bob Smith")] }),
    )
    .await;
}

#[tokio::test]
async fn pipedrive_from_crm_include_sets_platform_fields_and_exclude_keeps_persons_out() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    app.start_worker();
    let id = app.pipedrive_connector(&sandbox).await;
    grace_and_bob_in_pipedrive(&sandbox).await;
    let body = set_rules(
        &app,
        &id,
        json!([
            { "direction": "FROM_CRM", "conditions": [{ "field": "email", "operator": "CONTAINS", "value": "@globex." }], "action": "EXCLUDE" },
            { "direction": "FROM_CRM", "conditions": [{ "field": "email", "operator": "IS_SET" }], "action": "INCLUDE", "setFields": [{ "field": "optedOut", "value": "true" }, { "field": "source", "value": "Event" }] },
        ]),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");

    let items = sync(&app, &id, json!({})).await;

    let came_in = contacts(&app).await;
    assert_eq!(
        came_in,
        vec![json!({ "email": "grace@acme.test", "source": "Event", "optedOut": true })]
    );
    let bob = item(&items, "FROM_CRM", "bob@globex.test");
    assert_eq!(bob["outcome"], "UNCHANGED");
    assert_eq!(bob["reasonCode"], "EXCLUDED_BY_RULE");
    assert_eq!(bob["field"], "rules[0]");
}

#[tokio::test]
async fn a_dry_run_previews_proposed_rules_and_leaves_the_connector_and_crm_as_they_were() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    app.start_worker();
    let id = app.pipedrive_connector(&sandbox).await;
    for email in ["keep@acme.test", "drop@acme.test"] {
        upsert(
            &app,
            json!({ "email": email, "firstName": "Pat", "lastName": "Doe", "behaviourScore": 80 }),
        )
        .await;
    }
    let proposed = json!([
        { "direction": "TO_CRM", "conditions": [{ "field": "email", "operator": "EQUALS", "value": "drop@acme.test" }], "action": "EXCLUDE" },
        { "direction": "TO_CRM", "action": "INCLUDE" },
    ]);
    // Proposed rules are checked as setSyncRules checks them, and only a
    // dry run takes them.
    let refused = app
        .gql(
            &app.token(Role::Admin),
            START,
            json!({ "input": { "connectorId": id, "mode": "FULL", "rules": proposed } }),
        )
        .await;
    assert_eq!(field(&refused), "input.rules", "{refused}");
    let invalid = app
        .gql(
            &app.token(Role::Admin),
            START,
            json!({ "input": { "connectorId": id, "mode": "DRY_RUN", "rules": [{ "direction": "TO_CRM", "conditions": [{ "field": "nope", "operator": "IS_SET" }], "action": "EXCLUDE" }] } }),
        )
        .await;
    assert_eq!(field(&invalid), "rules[0].conditions[0].field", "{invalid}");

    let items = sync(&app, &id, json!({ "mode": "DRY_RUN", "rules": proposed })).await;

    let drop = item(&items, "TO_CRM", "drop@acme.test");
    assert_eq!(drop["outcome"], "UNCHANGED");
    assert_eq!(drop["reasonCode"], "EXCLUDED_BY_RULE");
    assert_eq!(
        item(&items, "TO_CRM", "keep@acme.test")["outcome"],
        "CREATED"
    );
    assert!(
        sandbox_persons(&sandbox).await.is_empty(),
        "a dry run writes nothing"
    );
    let connector = app
        .admin_ok(
            "query($id: ID!) { connector(id: $id) { fullResyncRecommended syncRules { direction } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        connector["connector"],
        json!({ "fullResyncRecommended": false, "syncRules": [] })
    );
    // The run shows what it previewed.
    let runs = app
        .admin_ok(
            "query($id: ID!) { syncRuns(connectorId: $id) { edges { node { mode proposedRules { direction action } } } } }",
            json!({ "id": id }),
        )
        .await;
    let previews: Vec<&Value> = runs["syncRuns"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .filter(|n| n["mode"] == "DRY_RUN")
        .collect();
    assert_eq!(
        previews[0]["proposedRules"],
        json!([{ "direction": "TO_CRM", "action": "EXCLUDE" }, { "direction": "TO_CRM", "action": "INCLUDE" }])
    );
}

#[tokio::test]
async fn an_import_write_back_to_the_crm_follows_the_to_crm_rules() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    app.start_worker();
    let id = app.pipedrive_connector(&sandbox).await;
    grace_and_bob_in_pipedrive(&sandbox).await;
    let body = set_rules(
        &app,
        &id,
        json!([
            { "direction": "TO_CRM", "conditions": [{ "field": "email", "operator": "CONTAINS", "value": "@globex." }], "action": "EXCLUDE" },
            { "direction": "TO_CRM", "action": "INCLUDE" },
        ]),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");

    let items = sync(&app, &id, json!({})).await;

    // Both come in; only Grace's record gets the platform's link back.
    assert_eq!(contacts(&app).await.len(), 2);
    let persons = sandbox_persons(&sandbox).await;
    let linked = |email: &str| {
        let p = persons
            .iter()
            .find(|p| p["emails"].to_string().contains(email))
            .unwrap_or_else(|| panic!("no {email}: {persons:?}"));
        p["custom_fields"].to_string().contains("/contacts/")
    };
    assert!(linked("grace@acme.test"), "{persons:?}");
    assert!(!linked("bob@globex.test"), "{persons:?}");
    let bob = item(&items, "TO_CRM", "bob@globex.test");
    assert_eq!(bob["outcome"], "UNCHANGED");
    assert_eq!(bob["reasonCode"], "EXCLUDED_BY_RULE");
    assert_eq!(bob["field"], "rules[0]");
    assert_eq!(
        item(&items, "FROM_CRM", "bob@globex.test")["outcome"],
        "CREATED"
    );
}

#[tokio::test]
async fn the_minimum_score_applies_before_the_rules() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    app.start_worker();
    let id = app.pipedrive_connector(&sandbox).await;
    app.admin_ok(
        "mutation($id: ID!) { updateConnector(input: {id: $id, settings: {minScoreToExport: 50}}) { connector { id } } }",
        json!({ "id": id }),
    )
    .await;
    for (email, score) in [("low@acme.test", 10), ("high@acme.test", 80)] {
        upsert(
            &app,
            json!({ "email": email, "firstName": "Pat", "lastName": "Doe", "behaviourScore": score }),
        )
        .await;
    }
    let body = set_rules(
        &app,
        &id,
        json!([{ "direction": "TO_CRM", "conditions": [{ "field": "behaviourScore", "operator": "LESS_OR_EQUAL", "value": "20" }], "action": "INCLUDE" }]),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");

    let items = sync(&app, &id, json!({})).await;

    // The low score never reaches the rules (it would match); the high one
    // matches no rule.
    assert!(
        !items
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["email"] == "low@acme.test"),
        "{items}"
    );
    let high = item(&items, "TO_CRM", "high@acme.test");
    assert_eq!(high["outcome"], "UNCHANGED");
    assert_eq!(high["reasonCode"], "EXCLUDED_BY_RULE");
    assert!(sandbox_persons(&sandbox).await.is_empty());
}

#[tokio::test]
async fn the_import_filter_applies_before_the_from_crm_rules() {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    app.start_worker();
    let (org, id) = zoho(&app, &sandbox).await;
    app.admin_ok(
        "mutation($id: ID!) { updateConnector(input: {id: $id, settings: {filterField: \"Lead_Source\", filterValue: \"Trade Show\"}}) { connector { id } } }",
        json!({ "id": id }),
    )
    .await;
    let lead = |email: &str, source: &str| json!({ "Email": email, "Last_Name": "Lead", "Lead_Source": source });
    org.admin(
        Method::POST,
        &format!("/zoho/orgs/{}/records/Leads", org.org_id),
        json!({ "records": [lead("fair@acme.test", "Trade Show"), lead("call@acme.test", "Cold Call")] }),
    )
    .await;
    // The rules would exclude the cold call (an item saying so); the filter
    // drops it before they see it, so it leaves no item at all.
    let body = set_rules(
        &app,
        &id,
        json!([
            { "direction": "FROM_CRM", "conditions": [{ "field": "Lead_Source", "operator": "EQUALS", "value": "Cold Call" }], "action": "EXCLUDE" },
            { "direction": "FROM_CRM", "conditions": [], "action": "INCLUDE" },
        ]),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");

    let items = sync(&app, &id, json!({})).await;

    let came_in: Vec<Value> = contacts(&app)
        .await
        .into_iter()
        .map(|c| c["email"].clone())
        .collect();
    assert_eq!(came_in, [json!("fair@acme.test")]);
    assert!(
        !items
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["email"] == "call@acme.test"),
        "the filtered lead never reaches the rules: {items}"
    );
}
