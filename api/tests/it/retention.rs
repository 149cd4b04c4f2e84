//! Bounded history through the API (issue 26): `Tenant.retention`,
//! `setRetention` and `createTenant`'s retention with errors by field, and a
//! pruned run that says so and still lists (and retries) what it kept.

use chrono::Utc;
use crmsync_entity::enums::{
    ItemOutcome, Role, SyncDirection, SyncMode, SyncRunStatus, SyncTrigger,
};
use crmsync_entity::models::{sync_item, sync_run};
use crmsync_worker::retention::{self, KEPT_REJECTED, PruneSettings};
use sea_orm::{ActiveModelTrait, EntityTrait};
use serde_json::{Value, json};

use crate::helpers::{TestApp, code, field, insert_connector, slug};

const RETENTION: &str = "{ tenant { retention { syncItemsDays deliveriesDays auditDays } } }";
const SET: &str = "mutation($input: RetentionInput!) { setRetention(input: $input) { tenant { retention { syncItemsDays deliveriesDays auditDays } } } }";

#[tokio::test]
async fn the_tenant_shows_its_retention_and_an_admin_changes_part_of_it() {
    let app = TestApp::spawn().await;
    let data = app.admin_ok(RETENTION, json!({})).await;
    assert_eq!(
        data["tenant"]["retention"],
        json!({ "syncItemsDays": 30, "deliveriesDays": 30, "auditDays": 365 })
    );

    let data = app
        .admin_ok(
            SET,
            json!({ "input": { "syncItemsDays": 7, "auditDays": 90 } }),
        )
        .await;
    let expected = json!({ "syncItemsDays": 7, "deliveriesDays": 30, "auditDays": 90 });
    assert_eq!(data["setRetention"]["tenant"]["retention"], expected);
    let viewer = app
        .gql(&app.token(Role::Viewer), RETENTION, json!({}))
        .await;
    assert_eq!(viewer["data"]["tenant"]["retention"], expected);
    let audit = app
        .admin_ok("{ auditLog { edges { node { action } } } }", json!({}))
        .await;
    assert_eq!(
        audit["auditLog"]["edges"][0]["node"]["action"],
        "tenant.retention"
    );
}

#[tokio::test]
async fn a_retention_out_of_range_is_refused_naming_its_field() {
    let app = TestApp::spawn().await;
    for (input, path) in [
        (json!({ "syncItemsDays": 0 }), "input.syncItemsDays"),
        (json!({ "deliveriesDays": 3651 }), "input.deliveriesDays"),
        (json!({ "auditDays": -5 }), "input.auditDays"),
    ] {
        let body = app
            .gql(&app.token(Role::Admin), SET, json!({ "input": input }))
            .await;
        assert_eq!(code(&body), "VALIDATION", "{body}");
        assert_eq!(field(&body), path, "{body}");
    }
    let body = app
        .gql(
            &app.token(Role::Viewer),
            SET,
            json!({ "input": { "syncItemsDays": 5 } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    // Nothing changed.
    let data = app.admin_ok(RETENTION, json!({})).await;
    assert_eq!(data["tenant"]["retention"]["syncItemsDays"], 30);
}

#[tokio::test]
async fn an_operator_creates_a_tenant_with_its_retention() {
    let app = TestApp::spawn().await;
    let create = "mutation($input: CreateTenantInput!) { createTenant(input: $input) { tenant { slug retention { syncItemsDays deliveriesDays auditDays } } } }";
    let body = app
        .gql(
            &app.operator(),
            create,
            json!({ "input": { "name": "Initech", "slug": slug(), "retention": { "syncItemsDays": 0 } } }),
        )
        .await;
    assert_eq!(code(&body), "VALIDATION");
    assert_eq!(field(&body), "input.retention.syncItemsDays");
    let body = app
        .gql(
            &app.operator(),
            create,
            json!({ "input": { "name": "Initech", "slug": slug(), "retention": { "deliveriesDays": 14 } } }),
        )
        .await;
    assert_eq!(
        body["data"]["createTenant"]["tenant"]["retention"],
        json!({ "syncItemsDays": 30, "deliveriesDays": 14, "auditDays": 365 }),
        "{body}"
    );
}

/// A PARTIAL run of `connector` that ended `days` ago with `unchanged` and
/// `rejected` items.
async fn old_run(
    app: &TestApp,
    connector: &str,
    days: i64,
    unchanged: usize,
    rejected: usize,
) -> String {
    let at = Utc::now() - chrono::Duration::days(days);
    let mut run = sync_run::Model::queued(
        &app.tenant_id,
        connector,
        SyncTrigger::Schedule,
        SyncMode::Incremental,
        crmsync_worker::jobs::new_task_id(),
        None,
    );
    // Made when it was queued, as a real run's id is: ids made in the same
    // millisecond would have no order, and the latest run is the one with
    // the greatest id.
    run.id = ulid::Ulid::from_datetime(at.into()).to_string();
    run.status = SyncRunStatus::Partial;
    run.queued_at = at;
    run.started_at = Some(at);
    run.finished_at = Some(at);
    run.to_crm_unchanged = unchanged as i64;
    run.to_crm_rejected = rejected as i64;
    let run = sync_run::ActiveModel::from(run)
        .insert(&app.database.db)
        .await
        .unwrap();
    let items = (0..unchanged + rejected).map(|i| {
        let outcome = if i < unchanged {
            ItemOutcome::Unchanged
        } else {
            ItemOutcome::Rejected
        };
        sync_item::ActiveModel::from(sync_item::Model {
            id: crmsync_entity::new_id(),
            tenant_id: app.tenant_id.clone(),
            run_id: run.id.clone(),
            connector_id: connector.to_owned(),
            direction: SyncDirection::ToCrm,
            outcome,
            email: Some(format!("p{i}@example.com")),
            contact_id: None,
            crm_record_id: None,
            reason_code: (outcome == ItemOutcome::Rejected).then(|| "MISSING_NAME".into()),
            field: Some("last_name".into()),
            message: None,
            changes: None,
            created_at: at,
        })
    });
    sync_item::Entity::insert_many(items)
        .exec_without_returning(&app.database.db)
        .await
        .unwrap();
    run.id
}

const RUN: &str = "query($id: ID!) { syncRun(id: $id) { itemsPrunedAt legs { direction unchanged rejected } items(first: 100) { edges { node { outcome } } } } }";

fn outcomes(data: &Value) -> Vec<&str> {
    data["syncRun"]["items"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["outcome"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_pruned_run_says_so_and_its_kept_rejected_items_are_listed_and_retried() {
    let app = TestApp::spawn().await;
    let connector = insert_connector(&app.database.db, &app.tenant_id, "Sales").await;
    let older = old_run(&app, &connector, 45, 6, 14).await;
    let latest = old_run(&app, &connector, 40, 6, 14).await;
    let before = app.admin_ok(RUN, json!({ "id": older })).await;
    assert!(before["syncRun"]["itemsPrunedAt"].is_null());

    retention::prune(&app.database.db, Utc::now(), &PruneSettings::default())
        .await
        .unwrap();

    let after = app.admin_ok(RUN, json!({ "id": older })).await;
    assert!(after["syncRun"]["itemsPrunedAt"].is_string(), "{after}");
    assert_eq!(
        after["syncRun"]["legs"], before["syncRun"]["legs"],
        "the summary stays"
    );
    assert_eq!(outcomes(&after), vec!["REJECTED"; KEPT_REJECTED]);
    let latest_items = app.admin_ok(RUN, json!({ "id": latest })).await;
    assert_eq!(outcomes(&latest_items), vec!["REJECTED"; 14]);
    let rejected = app
        .admin_ok(
            "query($id: ID!) { rejectedContacts(runId: $id) { totalCount } }",
            json!({ "id": latest }),
        )
        .await;
    assert_eq!(rejected["rejectedContacts"]["totalCount"], 14);

    let retry = app
        .admin_ok(
            "mutation($id: ID!) { retryRejected(input: { runId: $id }) { run { retryOf status } } }",
            json!({ "id": latest }),
        )
        .await;
    assert_eq!(retry["retryRejected"]["run"]["retryOf"], latest);
}
