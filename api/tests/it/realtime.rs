//! Real time from the CRM (issue 27), end to end: the sandbox Pipedrive's
//! webhooks v2 deliver person changes to the app's inbound URL, which start
//! CRM_EVENT runs on the in-process worker; no scheduler runs here, so
//! every run seen is one a notification (or the test) started. The
//! real-time task is ticked by the tests, at chosen times.

use std::time::{Duration, Instant};

use chrono::Utc;
use crmsync_entity::enums::Role;
use crmsync_sandbox::Sandbox;
use crmsync_worker::realtime::{CHECK_EVERY, RETRY_AFTER};
use serde_json::{Value, json};

use super::helpers::{TestApp, empty_sandbox, sandbox_requests};

/// How long a condition may take to hold.
const DEADLINE: Duration = Duration::from_secs(30);

struct Setup {
    app: TestApp,
    sandbox: Sandbox,
    connector: String,
}

/// An app with a worker, a Pipedrive connector on an empty sandbox, and its
/// webhook subscribed.
async fn setup() -> Setup {
    let sandbox = empty_sandbox().await;
    let app = TestApp::spawn().await;
    let connector = app.pipedrive_connector(&sandbox).await;
    app.start_worker();
    let tick = app.state.realtime().tick(Utc::now()).await.unwrap();
    assert_eq!(tick.subscribed, vec![connector.clone()], "{tick:?}");
    Setup {
        app,
        sandbox,
        connector,
    }
}

/// Polls `check` until it gives a value, or fails after [`DEADLINE`].
async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A call to the sandbox Pipedrive's API with the company's token.
async fn pipedrive(sandbox: &Sandbox, method: reqwest::Method, path: &str, body: Value) -> Value {
    let pd = &sandbox.description().pipedrive;
    let reply = reqwest::Client::new()
        .request(method, format!("{}{path}", pd.base_url))
        .header("x-api-token", &pd.api_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{path}: {}", reply.status());
    reply.json().await.unwrap()
}

/// Creates a person in Pipedrive through its API; its id.
async fn create_person(sandbox: &Sandbox, name: &str, email: &str) -> u64 {
    let created = pipedrive(
        sandbox,
        reqwest::Method::POST,
        "/api/v2/persons",
        json!({ "name": name, "emails": [{ "value": email, "primary": true, "label": "work" }] }),
    )
    .await;
    created["data"]["id"].as_u64().unwrap()
}

async fn rename_person(sandbox: &Sandbox, id: u64, name: &str) {
    pipedrive(
        sandbox,
        reqwest::Method::PATCH,
        &format!("/api/v2/persons/{id}"),
        json!({ "name": name }),
    )
    .await;
}

/// The contact with this e-mail, once it exists.
async fn contact(app: &TestApp, email: &str) -> Option<Value> {
    let body = app
        .gql(
            &app.token(Role::Admin),
            "query($e: String) { contact(email: $e) { id firstName lastName } }",
            json!({ "e": email }),
        )
        .await;
    Some(body["data"]["contact"].clone()).filter(|c| c.is_object())
}

/// The connector's runs, newest first.
async fn runs(app: &TestApp, connector: &str) -> Vec<Value> {
    let data = app
        .admin_ok(
            "query($c: ID) { syncRuns(connectorId: $c, first: 100) { nodes { id trigger status legs { direction created updated unchanged deleted } } } }",
            json!({ "c": connector }),
        )
        .await;
    data["syncRuns"]["nodes"].as_array().unwrap().clone()
}

/// The runs once every one has ended.
async fn ended_runs(app: &TestApp, connector: &str) -> Vec<Value> {
    wait_for("the runs to end", async || {
        let runs = runs(app, connector).await;
        runs.iter()
            .all(|r| !matches!(r["status"].as_str(), Some("QUEUED" | "RUNNING")))
            .then_some(runs)
    })
    .await
}

/// True when no notice waits or belongs to a run still to be cleared: a
/// notice leaves the table only when the run that took it has ended and
/// handed what came meanwhile to the next run.
async fn no_notices(app: &TestApp) -> bool {
    use crmsync_entity::models::crm_notice;
    use sea_orm::{EntityTrait, PaginatorTrait};
    crm_notice::Entity::find()
        .count(&app.database.db)
        .await
        .unwrap()
        == 0
}

/// Waits until the sandbox has nothing left to deliver, no notice is left
/// and every run has ended (a run's write-back of the platform link to a new person is
/// notified too, and read back by a run that writes nothing).
async fn settle(app: &TestApp, sandbox: &Sandbox, connector: &str) {
    wait_for("quiet", async || {
        let idle = deliveries(sandbox).await["pending"] == 0;
        let runs = runs(app, connector).await;
        let ended = runs
            .iter()
            .all(|r| !matches!(r["status"].as_str(), Some("QUEUED" | "RUNNING")));
        let drained = no_notices(app).await;
        let idle_after = deliveries(sandbox).await["pending"] == 0;
        (idle && ended && drained && idle_after).then_some(())
    })
    .await;
}

/// FROM_CRM `what` (created, updated, unchanged) summed over runs.
fn from_crm(runs: &[Value], what: &str) -> i64 {
    runs.iter()
        .flat_map(|r| r["legs"].as_array().unwrap().clone())
        .filter(|l| l["direction"] == "FROM_CRM")
        .map(|l| l[what].as_i64().unwrap())
        .sum()
}

/// Turns on `syncDeletions`: a record deleted in the CRM archives its contact.
async fn sync_deletions_on(app: &TestApp, connector: &str) {
    app.admin_ok(
        "mutation($id: ID!) { updateConnector(input: { id: $id, settings: { syncDeletions: true } }) { connector { id } } }",
        json!({ "id": connector }),
    )
    .await;
}

/// The poll: the schedule's run, started by hand.
async fn poll(app: &TestApp, connector: &str) {
    app.admin_ok(
        "mutation($c: ID!) { startSync(input: { connectorId: $c }) { run { id } } }",
        json!({ "c": connector }),
    )
    .await;
}

/// Waits until the contact with this e-mail is archived.
async fn wait_archived(app: &TestApp, email: &str) {
    wait_for("the contact archived", async || {
        let body = app
            .admin_ok(
                "query($e: String) { contact(email: $e) { archived } }",
                json!({ "e": email }),
            )
            .await;
        (body["contact"]["archived"] == true).then_some(())
    })
    .await;
}

async fn realtime(app: &TestApp, connector: &str) -> Value {
    app.admin_ok(
        "query($id: ID!) { connector(id: $id) { settings { realtime } realtime { state subscribedUntil lastEventAt message } } }",
        json!({ "id": connector }),
    )
    .await["connector"]
        .clone()
}

/// The sandbox's delivery log of every CRM's notifications.
async fn deliveries(sandbox: &Sandbox) -> Value {
    let url = format!("{}/notify/deliveries", sandbox.description().admin_url);
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

async fn notify_faults(sandbox: &Sandbox, faults: Value) {
    let reply = reqwest::Client::new()
        .put(format!("{}/notify/faults", sandbox.description().admin_url))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert!(reply.status().is_success(), "{}", reply.status());
}

/// The company's webhooks as the sandbox stores them.
async fn webhooks(sandbox: &Sandbox) -> Vec<Value> {
    let url = format!(
        "{}/pipedrive/companies/{}/webhooks",
        sandbox.description().admin_url,
        sandbox.description().pipedrive.company_domain
    );
    let stored: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    stored["webhooks"].as_array().unwrap().clone()
}

/// Waits until the sandbox has no notification left to send and `n`
/// attempts logged with `outcome`.
async fn wait_deliveries(sandbox: &Sandbox, outcome: &str, n: usize) {
    wait_for(&format!("{n} {outcome} deliveries"), async || {
        let log = deliveries(sandbox).await;
        let count = log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["outcome"] == outcome)
            .count();
        (log["pending"] == 0 && count >= n).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_person_edited_in_pipedrive_reaches_its_contact_through_a_crm_event_run() {
    let Setup {
        app,
        sandbox,
        connector,
    } = setup().await;

    let id = create_person(&sandbox, "Ada Lovelace", "ada@example.com").await;
    wait_for("the contact", async || {
        contact(&app, "ada@example.com").await
    })
    .await;
    ended_runs(&app, &connector).await;
    rename_person(&sandbox, id, "Augusta King").await;

    let renamed = wait_for("the new name", async || {
        contact(&app, "ada@example.com")
            .await
            .filter(|c| c["firstName"] == "Augusta")
    })
    .await;
    assert_eq!(renamed["lastName"], "King");
    let runs = ended_runs(&app, &connector).await;
    assert!(runs.iter().all(|r| r["trigger"] == "CRM_EVENT"), "{runs:?}");
    let health = realtime(&app, &connector).await;
    assert_eq!(health["settings"]["realtime"], true);
    assert_eq!(health["realtime"]["state"], "ACTIVE");
    assert!(health["realtime"]["lastEventAt"].is_string(), "{health}");
}

#[tokio::test]
async fn a_burst_of_notifications_goes_in_few_runs() {
    let Setup {
        app,
        sandbox,
        connector,
    } = setup().await;
    let persons: Vec<Value> = (0..40)
        .map(|i| json!({ "name": format!("Burst {i}"), "emails": [{ "value": format!("burst{i}@example.com"), "primary": true, "label": "work" }] }))
        .collect();

    super::helpers::sandbox_admin(
        &sandbox,
        &format!(
            "/pipedrive/companies/{}/persons",
            sandbox.description().pipedrive.company_domain
        ),
        json!({ "persons": persons }),
    )
    .await;

    wait_deliveries(&sandbox, "delivered", 40).await;
    let runs = wait_for("every contact", async || {
        let runs = ended_runs(&app, &connector).await;
        (from_crm(&runs, "created") == 40).then_some(runs)
    })
    .await;
    // 40 creations, then the platform link written back to each (notified
    // too): 80 notifications.
    assert!(runs.len() <= 5, "80 notifications took {} runs", runs.len());
}

#[tokio::test]
async fn a_forged_notification_is_refused_and_reads_nothing() {
    let Setup {
        app,
        sandbox,
        connector,
    } = setup().await;
    let url = webhooks(&sandbox).await[0]["subscription_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = sandbox_requests(&sandbox, "pipedrive").await;
    let body = json!({ "meta": { "action": "change", "entity": "person", "entity_id": "1", "version": "2.0" }, "data": {}, "previous": null });

    let forged = reqwest::Client::new()
        .post(&url)
        .basic_auth("crmsync", Some("not-the-secret"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let unsigned = reqwest::Client::new()
        .post(&url)
        .json(&body)
        .send()
        .await
        .unwrap();
    let unknown = reqwest::Client::new()
        .post(url.replace(&url[url.len() - 8..], "00000000"))
        .basic_auth("crmsync", Some("not-the-secret"))
        .json(&body)
        .send()
        .await
        .unwrap();

    assert_eq!(forged.status(), 401);
    assert_eq!(unsigned.status(), 401);
    assert_eq!(unknown.status(), 404);
    let answer: Value = forged.json().await.unwrap();
    assert_eq!(answer, json!({ "error": "UNAUTHENTICATED" }));
    assert!(runs(&app, &connector).await.is_empty());
    assert_eq!(sandbox_requests(&sandbox, "pipedrive").await, before);
}

#[tokio::test]
async fn a_duplicate_or_replayed_notification_writes_nothing() {
    let Setup {
        app,
        sandbox,
        connector,
    } = setup().await;
    let id = create_person(&sandbox, "Grace Hopper", "grace@example.com").await;
    wait_for("the contact", async || {
        contact(&app, "grace@example.com").await
    })
    .await;
    ended_runs(&app, &connector).await;
    notify_faults(&sandbox, json!({ "system": "pipedrive", "duplicate": 1 })).await;

    rename_person(&sandbox, id, "Grace Murray").await;
    wait_deliveries(&sandbox, "delivered", 3).await;
    let after_duplicate = ended_runs(&app, &connector).await;
    // The same call once more, as a replay would send it.
    let webhook = webhooks(&sandbox).await[0].clone();
    let replay = reqwest::Client::new()
        .post(webhook["subscription_url"].as_str().unwrap())
        .basic_auth("crmsync", webhook["http_auth_password"].as_str())
        .json(&json!({ "meta": { "action": "change", "entity": "person", "entity_id": id.to_string(), "version": "2.0" }, "data": {}, "previous": {} }))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    let all = wait_for("the replay's run", async || {
        let runs = ended_runs(&app, &connector).await;
        (runs.len() > after_duplicate.len()).then_some(runs)
    })
    .await;

    let contact = contact(&app, "grace@example.com").await.unwrap();
    assert_eq!(contact["lastName"], "Murray");
    // Created once, updated once: every other read found nothing to write.
    assert_eq!(from_crm(&all, "created"), 1, "{all:?}");
    assert_eq!(from_crm(&all, "updated"), 1, "{all:?}");
    assert!(from_crm(&all, "unchanged") >= 1, "{all:?}");
}

#[tokio::test]
async fn a_dropped_notification_is_caught_by_the_next_poll() {
    let Setup {
        app,
        sandbox,
        connector,
    } = setup().await;
    let id = create_person(&sandbox, "Alan Turing", "alan@example.com").await;
    wait_for("the contact", async || {
        contact(&app, "alan@example.com").await
    })
    .await;
    // The link written back to the person is notified too: every notice
    // read (settle() waits for none to be left) before the drop is armed.
    settle(&app, &sandbox, &connector).await;
    notify_faults(&sandbox, json!({ "drop": 1 })).await;

    rename_person(&sandbox, id, "Alan Mathison").await;
    wait_deliveries(&sandbox, "dropped", 1).await;
    settle(&app, &sandbox, &connector).await;
    assert_eq!(
        contact(&app, "alan@example.com").await.unwrap()["lastName"],
        "Turing"
    );
    // The poll (the schedule's run, started by hand here).
    poll(&app, &connector).await;

    wait_for("the poll's update", async || {
        contact(&app, "alan@example.com")
            .await
            .filter(|c| c["lastName"] == "Mathison")
    })
    .await;
}

#[tokio::test]
async fn turning_realtime_off_unsubscribes_and_on_again_subscribes() {
    let Setup {
        app,
        sandbox,
        connector,
    } = setup().await;
    assert_eq!(webhooks(&sandbox).await.len(), 1);
    let set = |on: bool| {
        app.admin_ok(
            "mutation($id: ID!, $on: Boolean) { updateConnector(input: { id: $id, settings: { realtime: $on } }) { connector { id } } }",
            json!({ "id": connector, "on": on }),
        )
    };

    set(false).await;
    let tick = app.state.realtime().tick(Utc::now()).await.unwrap();

    assert_eq!(tick.unsubscribed, vec![connector.clone()]);
    assert!(webhooks(&sandbox).await.is_empty());
    let health = realtime(&app, &connector).await;
    assert_eq!(health["settings"]["realtime"], false);
    assert_eq!(health["realtime"]["state"], "OFF");

    set(true).await;
    let tick = app.state.realtime().tick(Utc::now()).await.unwrap();
    assert_eq!(tick.subscribed, vec![connector.clone()]);
    assert_eq!(webhooks(&sandbox).await.len(), 1);
    assert_eq!(
        realtime(&app, &connector).await["realtime"]["state"],
        "ACTIVE"
    );
}

#[tokio::test]
async fn a_person_deleted_in_pipedrive_goes_through_the_deletions_rules() {
    let Setup {
        app,
        sandbox,
        connector,
    } = setup().await;
    sync_deletions_on(&app, &connector).await;
    let id = create_person(&sandbox, "Ada Gone", "gone@example.com").await;
    wait_for("the contact", async || {
        contact(&app, "gone@example.com").await
    })
    .await;
    settle(&app, &sandbox, &connector).await;

    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/pipedrive/companies/{}/persons/{id}",
            sandbox.description().admin_url,
            sandbox.description().pipedrive.company_domain
        ))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());

    wait_archived(&app, "gone@example.com").await;
    settle(&app, &sandbox, &connector).await;
    let runs = runs(&app, &connector).await;
    assert!(runs.iter().all(|r| r["trigger"] == "CRM_EVENT"), "{runs:?}");
}

#[tokio::test]
async fn deleting_the_connector_deletes_its_webhook() {
    let Setup {
        app,
        sandbox,
        connector,
    } = setup().await;

    app.admin_ok(
        "mutation($id: ID!) { deleteConnector(input: { id: $id }) { deletedId } }",
        json!({ "id": connector }),
    )
    .await;

    assert!(webhooks(&sandbox).await.is_empty());
}

#[tokio::test]
async fn a_webhook_deleted_in_pipedrive_degrades_realtime_until_it_is_recreated() {
    let Setup {
        app,
        sandbox,
        connector,
    } = setup().await;
    let webhook = webhooks(&sandbox).await[0]["id"].as_u64().unwrap();
    let reply = reqwest::Client::new()
        .delete(format!(
            "{}/pipedrive/companies/{}/webhooks/{webhook}",
            sandbox.description().admin_url,
            sandbox.description().pipedrive.company_domain
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 204);
    let check = Utc::now() + CHECK_EVERY + chrono::Duration::seconds(1);

    let tick = app.state.realtime().tick(check).await.unwrap();

    assert_eq!(tick.degraded, vec![connector.clone()]);
    let health = realtime(&app, &connector).await["realtime"].clone();
    assert_eq!(health["state"], "DEGRADED");
    let message = health["message"].as_str().unwrap();
    assert!(message.contains("deleted"), "{message}");
    // The next check subscribes again.
    let tick = app
        .state
        .realtime()
        .tick(check + RETRY_AFTER + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(tick.subscribed, vec![connector.clone()]);
    assert_eq!(webhooks(&sandbox).await.len(), 1);
    assert_eq!(
        realtime(&app, &connector).await["realtime"]["state"],
        "ACTIVE"
    );
}

#[tokio::test]
async fn a_viewer_sees_realtime_health_without_secrets() {
    let Setup { app, connector, .. } = setup().await;

    let body = app
        .gql(
            &app.token(Role::Viewer),
            "query($id: ID!) { connector(id: $id) { realtime { state message } } }",
            json!({ "id": connector }),
        )
        .await;

    assert_eq!(body["data"]["connector"]["realtime"]["state"], "ACTIVE");
    assert!(body["data"]["connector"]["realtime"]["message"].is_null());
}

mod zoho {
    //! The same through Zoho CRM's Notification API.

    use super::*;
    use crate::zoho::{Org, zoho_connector};

    async fn setup() -> (TestApp, Sandbox, Org, String) {
        let sandbox = empty_sandbox().await;
        let app = TestApp::spawn().await;
        let org = Org::default_of(&sandbox);
        let connector = zoho_connector(&app, &org).await;
        app.start_worker();
        let tick = app.state.realtime().tick(Utc::now()).await.unwrap();
        assert_eq!(
            tick.subscribed,
            vec![connector.clone()],
            "{}",
            realtime(&app, &connector).await
        );
        (app, sandbox, org, connector)
    }

    async fn channels(org: &Org) -> Vec<Value> {
        org.admin(
            reqwest::Method::GET,
            &format!("/zoho/orgs/{}/channels", org.org_id),
            Value::Null,
        )
        .await["channels"]
            .as_array()
            .unwrap()
            .clone()
    }

    #[tokio::test]
    async fn a_lead_stored_in_zoho_reaches_its_contact_through_a_crm_event_run() {
        let (app, _sandbox, org, connector) = setup().await;
        let channel = channels(&org).await[0].clone();
        assert_eq!(channel["events"], json!(["Leads.all"]));

        org.admin(
            reqwest::Method::POST,
            &format!("/zoho/orgs/{}/records/Leads", org.org_id),
            json!({ "records": [{ "First_Name": "Ada", "Last_Name": "Lovelace", "Email": "ada@zoho.example" }] }),
        )
        .await;

        let contact = wait_for("the contact", async || {
            contact(&app, "ada@zoho.example").await
        })
        .await;
        assert_eq!(contact["lastName"], "Lovelace");
        let runs = ended_runs(&app, &connector).await;
        assert!(runs.iter().all(|r| r["trigger"] == "CRM_EVENT"), "{runs:?}");
        assert_eq!(
            realtime(&app, &connector).await["realtime"]["state"],
            "ACTIVE"
        );
    }

    #[tokio::test]
    async fn a_forged_token_is_refused() {
        let (app, _sandbox, org, connector) = setup().await;
        let channel = channels(&org).await[0].clone();

        let forged = reqwest::Client::new()
            .post(channel["notify_url"].as_str().unwrap())
            .json(&json!({ "module": "Leads", "operation": "update", "ids": ["1"], "token": "guess", "channel_id": channel["channel_id"] }))
            .send()
            .await
            .unwrap();

        assert_eq!(forged.status(), 401);
        assert!(runs(&app, &connector).await.is_empty());
    }

    #[tokio::test]
    async fn an_expired_channel_degrades_realtime_and_is_subscribed_again() {
        let (app, sandbox, org, connector) = setup().await;
        let channel = channels(&org).await[0]["channel_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let expired = reqwest::Client::new()
            .post(format!(
                "{}/zoho/orgs/{}/channels/{channel}/expire",
                sandbox.description().admin_url,
                org.org_id
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(expired.status(), 204);
        let check = Utc::now() + CHECK_EVERY + chrono::Duration::seconds(1);

        let tick = app.state.realtime().tick(check).await.unwrap();

        assert_eq!(tick.degraded, vec![connector.clone()]);
        let health = realtime(&app, &connector).await["realtime"].clone();
        assert_eq!(health["state"], "DEGRADED");
        let tick = app
            .state
            .realtime()
            .tick(check + RETRY_AFTER + chrono::Duration::seconds(1))
            .await
            .unwrap();
        assert_eq!(tick.subscribed, vec![connector.clone()]);
        let health = realtime(&app, &connector).await["realtime"].clone();
        assert_eq!(health["state"], "ACTIVE");
        assert!(health["subscribedUntil"].is_string(), "{health}");
    }

    /// A lead stored in the org as a person would (the admin API), e-mail
    /// `email`; its id.
    async fn store_lead(org: &Org, email: &str, last: &str) -> String {
        let stored = org
            .admin(
                reqwest::Method::POST,
                &format!("/zoho/orgs/{}/records/Leads", org.org_id),
                json!({ "records": [{ "First_Name": "Zed", "Last_Name": last, "Email": email }] }),
            )
            .await;
        stored["ids"][0]
            .as_str()
            .map_or_else(|| stored["ids"][0].to_string(), str::to_owned)
    }

    #[tokio::test]
    async fn turning_realtime_off_stops_the_channel_and_on_again_watches() {
        let (app, _sandbox, org, connector) = setup().await;
        assert_eq!(channels(&org).await.len(), 1);
        let set = |on: bool| {
            app.admin_ok(
                "mutation($id: ID!, $on: Boolean) { updateConnector(input: { id: $id, settings: { realtime: $on } }) { connector { id } } }",
                json!({ "id": connector, "on": on }),
            )
        };

        set(false).await;
        let tick = app.state.realtime().tick(Utc::now()).await.unwrap();

        assert_eq!(tick.unsubscribed, vec![connector.clone()]);
        assert!(channels(&org).await.is_empty());
        assert_eq!(realtime(&app, &connector).await["realtime"]["state"], "OFF");
        set(true).await;
        let tick = app.state.realtime().tick(Utc::now()).await.unwrap();
        assert_eq!(tick.subscribed, vec![connector.clone()]);
        assert_eq!(channels(&org).await.len(), 1);
    }

    #[tokio::test]
    async fn a_duplicated_notification_writes_nothing_more() {
        let (app, sandbox, org, connector) = setup().await;
        notify_faults(&sandbox, json!({ "system": "zoho", "duplicate": 1 })).await;

        store_lead(&org, "twice@zoho.example", "Twice").await;

        wait_deliveries(&sandbox, "delivered", 2).await;
        wait_for("the contact", async || {
            contact(&app, "twice@zoho.example").await
        })
        .await;
        settle(&app, &sandbox, &connector).await;
        let all = runs(&app, &connector).await;
        assert_eq!(from_crm(&all, "created"), 1, "{all:?}");
        assert_eq!(from_crm(&all, "updated"), 0, "{all:?}");
    }

    #[tokio::test]
    async fn a_dropped_notification_is_caught_by_the_next_poll() {
        let (app, sandbox, org, connector) = setup().await;
        notify_faults(&sandbox, json!({ "system": "zoho", "drop": 1 })).await;

        store_lead(&org, "missed@zoho.example", "Missed").await;

        wait_deliveries(&sandbox, "dropped", 1).await;
        settle(&app, &sandbox, &connector).await;
        assert!(contact(&app, "missed@zoho.example").await.is_none());
        // The poll (the schedule's run, started by hand here).
        poll(&app, &connector).await;
        let found = wait_for("the poll's contact", async || {
            contact(&app, "missed@zoho.example").await
        })
        .await;
        assert_eq!(found["lastName"], "Missed");
    }

    #[tokio::test]
    async fn a_lead_deleted_in_zoho_goes_through_the_deletions_rules() {
        let (app, sandbox, org, connector) = setup().await;
        sync_deletions_on(&app, &connector).await;
        let id = store_lead(&org, "gone@zoho.example", "Gone").await;
        wait_for("the contact", async || {
            contact(&app, "gone@zoho.example").await
        })
        .await;
        settle(&app, &sandbox, &connector).await;

        org.admin(
            reqwest::Method::DELETE,
            &format!("/zoho/orgs/{}/records/Leads/{id}", org.org_id),
            Value::Null,
        )
        .await;

        wait_archived(&app, "gone@zoho.example").await;
        settle(&app, &sandbox, &connector).await;
        let runs = runs(&app, &connector).await;
        assert!(runs.iter().all(|r| r["trigger"] == "CRM_EVENT"), "{runs:?}");
        assert_eq!(from_crm(&runs, "deleted"), 1, "{runs:?}");
    }

    #[tokio::test]
    async fn a_grant_without_the_notifications_scope_is_named_by_the_test_and_the_health() {
        let sandbox = empty_sandbox().await;
        let app = TestApp::spawn().await;
        let org = Org::default_of(&sandbox);
        let code = org
            .grant_code_with_scope(
                "ZohoCRM.settings.fields.all,ZohoCRM.modules.all,ZohoCRM.users.READ",
            )
            .await;
        let data = app
            .admin_ok(
                crate::helpers::CREATE_CONNECTOR,
                json!({ "input": org.input_with(&code) }),
            )
            .await;
        let connector = data["createConnector"]["connector"]["id"]
            .as_str()
            .unwrap()
            .to_owned();

        let tick = app.state.realtime().tick(Utc::now()).await.unwrap();
        let test = app
            .admin_ok(
                "mutation($id: ID!) { testConnector(input: {id: $id}) { ok message } }",
                json!({ "id": connector }),
            )
            .await;

        assert_eq!(tick.degraded, vec![connector.clone()]);
        let health = realtime(&app, &connector).await["realtime"].clone();
        assert_eq!(health["state"], "DEGRADED");
        assert!(
            health["message"]
                .as_str()
                .unwrap()
                .contains("ZohoCRM.notifications.ALL"),
            "{health}"
        );
        assert_eq!(test["testConnector"]["ok"], true);
        let message = test["testConnector"]["message"].as_str().unwrap();
        assert!(message.contains("ZohoCRM.notifications.ALL"), "{message}");
    }
}

mod hubspot {
    //! The same through HubSpot's webhooks (an OAuth app's subscriptions,
    //! managed with its developer API key; deliveries signed v3).

    use base64::Engine as _;
    use hmac::{Hmac, Mac};

    use super::*;

    /// The createConnector input of the default portal's OAuth app, with
    /// the app id and developer key when `webhooks`.
    fn input(sandbox: &Sandbox, webhooks: bool) -> Value {
        let hs = &sandbox.description().hubspot;
        let mut credentials = json!({
            "clientId": hs.client_id,
            "clientSecret": hs.client_secret,
            "refreshToken": hs.refresh_token,
        });
        if webhooks {
            credentials["appId"] = json!(hs.app_id.to_string());
            credentials["developerApiKey"] = json!(hs.developer_api_key);
        }
        json!({ "kind": "HUBSPOT", "name": "HubSpot", "baseUrl": hs.base_url, "hubspot": credentials })
    }

    async fn connector(app: &TestApp, input: Value) -> String {
        let data = app
            .admin_ok(crate::helpers::CREATE_CONNECTOR, json!({ "input": input }))
            .await;
        data["createConnector"]["connector"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn setup() -> Setup {
        let sandbox = empty_sandbox().await;
        let app = TestApp::spawn().await;
        let connector = connector(&app, input(&sandbox, true)).await;
        app.start_worker();
        let tick = app.state.realtime().tick(Utc::now()).await.unwrap();
        assert_eq!(
            tick.subscribed,
            vec![connector.clone()],
            "{}",
            realtime(&app, &connector).await
        );
        Setup {
            app,
            sandbox,
            connector,
        }
    }

    /// The app's webhook settings and subscriptions as the sandbox holds them.
    async fn webhooks(sandbox: &Sandbox) -> Value {
        let url = format!(
            "{}/hubspot/apps/{}/webhooks",
            sandbox.description().admin_url,
            sandbox.description().hubspot.app_id
        );
        reqwest::get(url).await.unwrap().json().await.unwrap()
    }

    /// A call to the sandbox HubSpot's API with the portal's private-app token.
    async fn hubspot(sandbox: &Sandbox, method: reqwest::Method, path: &str, body: Value) -> Value {
        let hs = &sandbox.description().hubspot;
        let reply = reqwest::Client::new()
            .request(method, format!("{}{path}", hs.base_url))
            .bearer_auth(&hs.access_token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success(), "{path}: {}", reply.status());
        reply.json().await.unwrap()
    }

    async fn create_contact(sandbox: &Sandbox, email: &str, first: &str, last: &str) -> String {
        let created = hubspot(
            sandbox,
            reqwest::Method::POST,
            "/crm/v3/objects/contacts",
            json!({ "properties": { "email": email, "firstname": first, "lastname": last } }),
        )
        .await;
        created["id"].as_str().unwrap().to_owned()
    }

    async fn rename(sandbox: &Sandbox, id: &str, first: &str) {
        hubspot(
            sandbox,
            reqwest::Method::PATCH,
            &format!("/crm/v3/objects/contacts/{id}"),
            json!({ "properties": { "firstname": first } }),
        )
        .await;
    }

    async fn hubspot_log(sandbox: &Sandbox) -> Value {
        let url = format!(
            "{}/notify/deliveries?system=hubspot",
            sandbox.description().admin_url
        );
        reqwest::get(url).await.unwrap().json().await.unwrap()
    }

    /// Waits until the sandbox has nothing left to deliver and every run has ended.
    async fn quiet(app: &TestApp, sandbox: &Sandbox, connector: &str) -> Vec<Value> {
        wait_for("quiet", async || {
            let idle = hubspot_log(sandbox).await["pending"] == 0;
            let runs = runs(app, connector).await;
            let ended = runs
                .iter()
                .all(|r| !matches!(r["status"].as_str(), Some("QUEUED" | "RUNNING")));
            let drained = no_notices(app).await;
            let idle_after = hubspot_log(sandbox).await["pending"] == 0;
            (idle && ended && drained && idle_after).then_some(runs)
        })
        .await
    }

    /// A call to the connector's URL signed as HubSpot signs, `age` old.
    async fn signed(
        sandbox: &Sandbox,
        url: &str,
        secret: &str,
        body: &Value,
        age: chrono::Duration,
    ) -> reqwest::Response {
        let _ = sandbox;
        let body = body.to_string();
        let timestamp = (Utc::now() - age).timestamp_millis().to_string();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("POST{url}{body}{timestamp}").as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .header("x-hubspot-signature-v3", signature)
            .header("x-hubspot-signature-version", "v3")
            .header("x-hubspot-request-timestamp", timestamp)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    fn change_of(id: &str) -> Value {
        json!([{ "eventId": 1, "subscriptionId": 1, "portalId": 1, "appId": 1, "occurredAt": 1, "subscriptionType": "contact.propertyChange", "attemptNumber": 0, "objectId": id.parse::<u64>().unwrap(), "propertyName": "firstname", "propertyValue": "x", "changeSource": "CRM_UI" }])
    }

    fn target_url(hooks: &Value) -> String {
        hooks["settings"]["targetUrl"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn subscribing_sets_the_target_url_and_subscribes_to_what_the_connector_reads() {
        let Setup {
            app,
            sandbox,
            connector,
        } = setup().await;

        let hooks = webhooks(&sandbox).await;

        assert!(target_url(&hooks).contains("/crm-events/"), "{hooks}");
        let subs = hooks["subscriptions"].as_array().unwrap();
        assert!(subs.iter().all(|s| s["active"] == true), "{hooks}");
        let properties: Vec<&str> = subs
            .iter()
            .filter_map(|s| s["propertyName"].as_str())
            .collect();
        for read in ["email", "firstname", "lastname"] {
            assert!(properties.contains(&read), "{read}: {hooks}");
        }
        assert!(!properties.contains(&"plezi_url"), "written only: {hooks}");
        assert_eq!(hooks["counts"]["contact.creation"], 1);
        assert_eq!(hooks["counts"]["contact.deletion"], 1);
        // Renewing finds them held and adds nothing.
        let check = Utc::now() + CHECK_EVERY + chrono::Duration::seconds(1);
        let tick = app.state.realtime().tick(check).await.unwrap();
        assert_eq!(tick.renewed, vec![connector.clone()]);
        assert_eq!(
            webhooks(&sandbox).await["subscriptions"],
            hooks["subscriptions"]
        );
        assert_eq!(
            realtime(&app, &connector).await["realtime"]["state"],
            "ACTIVE"
        );
    }

    #[tokio::test]
    async fn a_field_no_longer_read_loses_its_subscription_at_the_next_check() {
        use crmsync_entity::models::field_mapping;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        let Setup {
            app,
            sandbox,
            connector,
        } = setup().await;
        let watched = |hooks: &Value, property: &str| {
            hooks["subscriptions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["propertyName"] == property)
        };
        assert!(watched(&webhooks(&sandbox).await, "firstname"));
        field_mapping::Entity::update_many()
            .col_expr(field_mapping::Column::Enabled, Expr::value(false))
            .filter(field_mapping::Column::ConnectorId.eq(&connector))
            .filter(field_mapping::Column::CrmField.eq("firstname"))
            .exec(&app.database.db)
            .await
            .unwrap();

        let check = Utc::now() + CHECK_EVERY + chrono::Duration::seconds(1);
        let tick = app.state.realtime().tick(check).await.unwrap();

        assert_eq!(tick.renewed, vec![connector.clone()]);
        let hooks = webhooks(&sandbox).await;
        assert!(!watched(&hooks, "firstname"), "{hooks}");
        assert!(watched(&hooks, "lastname"), "{hooks}");
    }

    #[tokio::test]
    async fn a_contact_edited_in_hubspot_is_updated_exactly_once() {
        let Setup {
            app,
            sandbox,
            connector,
        } = setup().await;
        let id = create_contact(&sandbox, "ada@hubspot.example", "Ada", "Lovelace").await;
        wait_for("the contact", async || {
            contact(&app, "ada@hubspot.example").await
        })
        .await;
        let before = quiet(&app, &sandbox, &connector).await;

        rename(&sandbox, &id, "Augusta").await;

        wait_for("the new name", async || {
            contact(&app, "ada@hubspot.example")
                .await
                .filter(|c| c["firstName"] == "Augusta")
        })
        .await;
        let after = quiet(&app, &sandbox, &connector).await;
        assert!(
            after.iter().all(|r| r["trigger"] == "CRM_EVENT"),
            "{after:?}"
        );
        assert_eq!(from_crm(&before, "created"), 1, "{before:?}");
        assert_eq!(
            from_crm(&after, "updated") - from_crm(&before, "updated"),
            1,
            "{after:?}"
        );
        let health = realtime(&app, &connector).await["realtime"].clone();
        assert_eq!(health["state"], "ACTIVE");
        assert!(health["lastEventAt"].is_string(), "{health}");
    }

    #[tokio::test]
    async fn a_forged_or_old_signature_is_refused_and_reads_nothing() {
        let Setup {
            app,
            sandbox,
            connector,
        } = setup().await;
        let url = target_url(&webhooks(&sandbox).await);
        let secret = sandbox.description().hubspot.client_secret.clone();
        let body = change_of("101");
        let before = sandbox_requests(&sandbox, "hubspot").await;

        let forged = signed(
            &sandbox,
            &url,
            "not-the-secret",
            &body,
            chrono::Duration::zero(),
        )
        .await;
        let old = signed(&sandbox, &url, &secret, &body, chrono::Duration::minutes(6)).await;
        let unsigned = reqwest::Client::new()
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap();

        assert_eq!(forged.status(), 401);
        assert_eq!(old.status(), 401);
        assert_eq!(unsigned.status(), 401);
        assert!(runs(&app, &connector).await.is_empty());
        assert_eq!(sandbox_requests(&sandbox, "hubspot").await, before);
        // Signed now with the app's secret, the same call is taken.
        let good = signed(&sandbox, &url, &secret, &body, chrono::Duration::zero()).await;
        assert_eq!(good.status(), 200);
    }

    #[tokio::test]
    async fn a_duplicate_or_replayed_delivery_writes_nothing() {
        let Setup {
            app,
            sandbox,
            connector,
        } = setup().await;
        let id = create_contact(&sandbox, "grace@hubspot.example", "Grace", "Hopper").await;
        wait_for("the contact", async || {
            contact(&app, "grace@hubspot.example").await
        })
        .await;
        quiet(&app, &sandbox, &connector).await;
        notify_faults(&sandbox, json!({ "system": "hubspot", "duplicate": 1 })).await;

        rename(&sandbox, &id, "Amazing").await;
        wait_for("the new name", async || {
            contact(&app, "grace@hubspot.example")
                .await
                .filter(|c| c["firstName"] == "Amazing")
        })
        .await;
        let after_duplicate = quiet(&app, &sandbox, &connector).await;
        let url = target_url(&webhooks(&sandbox).await);
        let secret = sandbox.description().hubspot.client_secret.clone();
        let replay = signed(
            &sandbox,
            &url,
            &secret,
            &change_of(&id),
            chrono::Duration::zero(),
        )
        .await;
        assert_eq!(replay.status(), 200);
        let all = wait_for("the replay's run", async || {
            let runs = ended_runs(&app, &connector).await;
            (runs.len() > after_duplicate.len()).then_some(runs)
        })
        .await;

        assert_eq!(from_crm(&all, "created"), 1, "{all:?}");
        assert_eq!(from_crm(&all, "updated"), 1, "{all:?}");
        assert!(from_crm(&all, "unchanged") >= 1, "{all:?}");
    }

    #[tokio::test]
    async fn a_dropped_delivery_is_caught_by_the_next_poll() {
        let Setup {
            app,
            sandbox,
            connector,
        } = setup().await;
        let id = create_contact(&sandbox, "alan@hubspot.example", "Alan", "Turing").await;
        wait_for("the contact", async || {
            contact(&app, "alan@hubspot.example").await
        })
        .await;
        // The creation's run writes the platform link back, which HubSpot
        // notifies too: every notice read before the drop is armed.
        quiet(&app, &sandbox, &connector).await;
        notify_faults(&sandbox, json!({ "system": "hubspot", "drop": 1 })).await;

        rename(&sandbox, &id, "Mathison").await;
        let runs = quiet(&app, &sandbox, &connector).await;
        let log = hubspot_log(&sandbox).await["deliveries"].clone();
        assert!(
            log.as_array()
                .unwrap()
                .iter()
                .any(|d| d["outcome"] == "dropped"),
            "{log}"
        );
        assert_eq!(
            contact(&app, "alan@hubspot.example").await.unwrap()["firstName"],
            "Alan"
        );
        poll(&app, &connector).await;

        wait_for("the poll's update", async || {
            contact(&app, "alan@hubspot.example")
                .await
                .filter(|c| c["firstName"] == "Mathison")
        })
        .await;
        let after = quiet(&app, &sandbox, &connector).await;
        assert_eq!(after.len(), runs.len() + 1, "{after:?}");
    }

    #[tokio::test]
    async fn a_contact_deleted_in_hubspot_goes_through_the_deletions_rules() {
        let Setup {
            app,
            sandbox,
            connector,
        } = setup().await;
        sync_deletions_on(&app, &connector).await;
        let id = create_contact(&sandbox, "gone@hubspot.example", "Gone", "Soon").await;
        wait_for("the contact", async || {
            contact(&app, "gone@hubspot.example").await
        })
        .await;
        quiet(&app, &sandbox, &connector).await;

        let portal = sandbox.description().hubspot.portal_id;
        let deleted = reqwest::Client::new()
            .delete(format!(
                "{}/hubspot/portals/{portal}/contacts/{id}",
                sandbox.description().admin_url
            ))
            .send()
            .await
            .unwrap();
        assert!(deleted.status().is_success());

        wait_archived(&app, "gone@hubspot.example").await;
        let runs = quiet(&app, &sandbox, &connector).await;
        assert!(runs.iter().all(|r| r["trigger"] == "CRM_EVENT"), "{runs:?}");
    }

    /// Does to the app's subscription to `event` what a person does in the
    /// developer account (the sandbox admin route `…/subscriptions/{id}{suffix}`).
    async fn in_developer_account(
        sandbox: &Sandbox,
        event: &str,
        method: reqwest::Method,
        suffix: &str,
    ) {
        let hooks = webhooks(sandbox).await;
        let id = hooks["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["eventType"] == event)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let reply = reqwest::Client::new()
            .request(
                method,
                format!(
                    "{}/hubspot/apps/{}/subscriptions/{id}{suffix}",
                    sandbox.description().admin_url,
                    sandbox.description().hubspot.app_id
                ),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 204);
    }

    #[tokio::test]
    async fn a_subscription_deleted_in_hubspot_degrades_realtime_until_it_is_recreated() {
        let Setup {
            app,
            sandbox,
            connector,
        } = setup().await;
        in_developer_account(&sandbox, "contact.creation", reqwest::Method::DELETE, "").await;
        let check = Utc::now() + CHECK_EVERY + chrono::Duration::seconds(1);

        let tick = app.state.realtime().tick(check).await.unwrap();

        assert_eq!(tick.degraded, vec![connector.clone()]);
        let health = realtime(&app, &connector).await["realtime"].clone();
        assert_eq!(health["state"], "DEGRADED");
        let message = health["message"].as_str().unwrap();
        assert!(message.contains("deleted"), "{message}");
        let tick = app
            .state
            .realtime()
            .tick(check + RETRY_AFTER + chrono::Duration::seconds(1))
            .await
            .unwrap();
        assert_eq!(tick.subscribed, vec![connector.clone()]);
        assert_eq!(webhooks(&sandbox).await["counts"]["contact.creation"], 1);
        assert_eq!(
            realtime(&app, &connector).await["realtime"]["state"],
            "ACTIVE"
        );
    }

    #[tokio::test]
    async fn a_subscription_paused_in_hubspot_is_resumed_at_the_next_subscription() {
        let Setup {
            app,
            sandbox,
            connector,
        } = setup().await;
        in_developer_account(
            &sandbox,
            "contact.deletion",
            reqwest::Method::POST,
            "/pause",
        )
        .await;
        let check = Utc::now() + CHECK_EVERY + chrono::Duration::seconds(1);

        let tick = app.state.realtime().tick(check).await.unwrap();
        assert_eq!(tick.degraded, vec![connector.clone()]);
        let message = realtime(&app, &connector).await["realtime"]["message"].clone();
        assert!(message.as_str().unwrap().contains("paused"), "{message}");
        let tick = app
            .state
            .realtime()
            .tick(check + RETRY_AFTER + chrono::Duration::seconds(1))
            .await
            .unwrap();

        assert_eq!(tick.subscribed, vec![connector.clone()]);
        let hooks = webhooks(&sandbox).await;
        let subs = hooks["subscriptions"].as_array().unwrap();
        assert!(subs.iter().all(|s| s["active"] == true), "{hooks}");
        assert_eq!(
            hooks["counts"]["contact.deletion"], 1,
            "reused, not made again"
        );
    }

    #[tokio::test]
    async fn turning_realtime_off_deletes_the_subscriptions_and_the_target_url() {
        let Setup {
            app,
            sandbox,
            connector,
        } = setup().await;

        app.admin_ok(
            "mutation($id: ID!) { updateConnector(input: { id: $id, settings: { realtime: false } }) { connector { id } } }",
            json!({ "id": connector }),
        )
        .await;
        let tick = app.state.realtime().tick(Utc::now()).await.unwrap();

        assert_eq!(tick.unsubscribed, vec![connector.clone()]);
        let hooks = webhooks(&sandbox).await;
        assert_eq!(hooks["subscriptions"], json!([]), "{hooks}");
        assert!(hooks["settings"].is_null(), "{hooks}");
    }

    #[tokio::test]
    async fn a_refused_developer_key_is_named_by_the_test_and_the_health() {
        let sandbox = empty_sandbox().await;
        let app = TestApp::spawn().await;
        let mut input = input(&sandbox, true);
        input["hubspot"]["developerApiKey"] = json!("not-the-developer-key");
        let connector = connector(&app, input).await;

        let tick = app.state.realtime().tick(Utc::now()).await.unwrap();
        let test = app
            .admin_ok(
                "mutation($id: ID!) { testConnector(input: {id: $id}) { ok message } }",
                json!({ "id": connector }),
            )
            .await;

        assert_eq!(tick.degraded, vec![connector.clone()]);
        let health = realtime(&app, &connector).await["realtime"].clone();
        assert!(
            health["message"]
                .as_str()
                .unwrap()
                .contains("developer API key"),
            "{health}"
        );
        assert_eq!(test["testConnector"]["ok"], true);
        let message = test["testConnector"]["message"].as_str().unwrap();
        assert!(message.contains("real time is off"), "{message}");
    }

    #[tokio::test]
    async fn a_private_app_or_an_oauth_app_without_its_id_says_what_to_add() {
        let sandbox = empty_sandbox().await;
        let app = TestApp::spawn().await;
        let token = sandbox.description().hubspot.access_token.clone();
        let private = connector(
            &app,
            json!({ "kind": "HUBSPOT", "name": "Private", "baseUrl": sandbox.description().hubspot.base_url, "hubspot": { "accessToken": token } }),
        )
        .await;
        let oauth = connector(&app, input(&sandbox, false)).await;

        let tick = app.state.realtime().tick(Utc::now()).await.unwrap();

        assert_eq!(tick.degraded.len(), 2, "{tick:?}");
        let words = |health: Value| health["realtime"]["message"].as_str().unwrap().to_owned();
        let private = words(realtime(&app, &private).await);
        assert!(private.contains("OAuth app"), "{private}");
        let oauth = words(realtime(&app, &oauth).await);
        assert!(
            oauth.contains("appId") && oauth.contains("developerApiKey"),
            "{oauth}"
        );
        assert!(webhooks(&sandbox).await["settings"].is_null());
    }
}

/// A CRM that pushes nothing our app can use (Salesforce here): real time
/// looks for changes every minute, and what a look finds goes through a
/// CRM_EVENT run as a notification's records would.
mod looked {
    use super::*;
    use crate::helpers::{CREATE_CONNECTOR, local_targets, sandbox_admin};

    struct Looked {
        app: TestApp,
        sandbox: Sandbox,
        connector: String,
        /// The real-time task's clock: each tick a look later than the last.
        clock: chrono::DateTime<Utc>,
    }

    impl Looked {
        /// Ticks the real-time task a look's interval after its last tick.
        async fn next_look(&mut self) -> crmsync_worker::realtime::Tick {
            self.clock += chrono::Duration::seconds(61);
            self.app.state.realtime().tick(self.clock).await.unwrap()
        }
    }

    /// An app with a worker and a Salesforce connector on an empty sandbox,
    /// looking for changes from the first tick on.
    async fn setup() -> Looked {
        let sandbox = empty_sandbox().await;
        let app = TestApp::spawn_with_egress(local_targets()).await;
        let sf = sandbox.description().salesforce.clone();
        let body = app
            .gql(
                &app.token(Role::Admin),
                CREATE_CONNECTOR,
                json!({ "input": {
                    "kind": "SALESFORCE",
                    "name": "Salesforce",
                    "baseUrl": sf.login_url,
                    "salesforce": {
                        "clientId": sf.client_id,
                        "clientSecret": sf.client_secret,
                        "refreshToken": sf.refresh_token,
                    },
                } }),
            )
            .await;
        let connector = body["data"]["createConnector"]["connector"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_owned();
        app.start_worker();
        let clock = Utc::now();
        let tick = app.state.realtime().tick(clock).await.unwrap();
        assert_eq!(tick.subscribed, vec![connector.clone()], "{tick:?}");
        Looked {
            app,
            sandbox,
            connector,
            clock,
        }
    }

    /// A call to the sandbox Salesforce's REST API, as a person's tool
    /// would make it (a session from the org's refresh token).
    async fn salesforce(
        sandbox: &Sandbox,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Value {
        let sf = &sandbox.description().salesforce;
        let http = reqwest::Client::new();
        let session: Value = http
            .post(format!("{}/services/oauth2/token", sf.login_url))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", &sf.client_id),
                ("client_secret", &sf.client_secret),
                ("refresh_token", &sf.refresh_token),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let reply = http
            .request(
                method,
                format!("{}/services/data/{}{path}", sf.instance_url, sf.api_version),
            )
            .bearer_auth(session["access_token"].as_str().unwrap())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success(), "{path}: {}", reply.status());
        reply.json().await.unwrap_or(Value::Null)
    }

    /// Ticks until a look names nothing (the run that a look starts may
    /// write the platform link back, a change the next look names and its
    /// run reads without writing), each look's run ended before the next.
    async fn quiet(looked: &mut Looked) {
        for _ in 0..3 {
            ended_runs(&looked.app, &looked.connector).await;
            wait_for("no notice left", async || {
                no_notices(&looked.app).await.then_some(())
            })
            .await;
            if looked.next_look().await.changed.is_empty() {
                return;
            }
        }
        panic!("looks kept finding changes");
    }

    #[tokio::test]
    async fn a_lead_made_then_edited_in_salesforce_reaches_the_platform_at_the_next_look() {
        let mut looked = setup().await;
        let health = realtime(&looked.app, &looked.connector).await;
        assert_eq!(health["settings"]["realtime"], true, "{health}");
        assert_eq!(health["realtime"]["state"], "ACTIVE", "{health}");
        assert_eq!(health["realtime"]["subscribedUntil"], Value::Null);
        let message = health["realtime"]["message"].as_str().unwrap();
        assert!(message.contains("every minute"), "{message}");

        let created = salesforce(
            &looked.sandbox,
            reqwest::Method::POST,
            "/sobjects/Lead",
            json!({ "LastName": "Lovelace", "FirstName": "Ada", "Company": "Engines", "Email": "ada@looked.example" }),
        )
        .await;
        let lead = created["id"].as_str().unwrap().to_owned();
        let tick = looked.next_look().await;

        assert_eq!(tick.changed, vec![looked.connector.clone()], "{tick:?}");
        let made = wait_for("the lead's contact", async || {
            contact(&looked.app, "ada@looked.example").await
        })
        .await;
        assert_eq!(made["lastName"], "Lovelace");
        quiet(&mut looked).await;

        salesforce(
            &looked.sandbox,
            reqwest::Method::PATCH,
            &format!("/sobjects/Lead/{lead}"),
            json!({ "LastName": "King" }),
        )
        .await;
        let tick = looked.next_look().await;

        assert_eq!(tick.changed, vec![looked.connector.clone()], "{tick:?}");
        wait_for("the edit", async || {
            let c = contact(&looked.app, "ada@looked.example").await?;
            (c["lastName"] == "King").then_some(())
        })
        .await;
        quiet(&mut looked).await;
        let runs = ended_runs(&looked.app, &looked.connector).await;
        assert!(
            runs.iter()
                .all(|r| r["trigger"] == "CRM_EVENT" && r["status"] == "SUCCEEDED"),
            "{runs:?}"
        );
        assert_eq!(from_crm(&runs, "created"), 1, "{runs:?}");
        assert_eq!(from_crm(&runs, "updated"), 1, "{runs:?}");
        let health = realtime(&looked.app, &looked.connector).await;
        assert!(health["realtime"]["lastEventAt"].is_string(), "{health}");
    }

    #[tokio::test]
    async fn a_look_the_crm_refuses_degrades_with_why_and_the_schedule_goes_on() {
        let mut looked = setup().await;
        // The org's admin revokes every session and token: the client kept
        // from the last look is refused, and so is its sign-in again.
        let org = &looked.sandbox.description().salesforce.org_id;
        sandbox_admin(
            &looked.sandbox,
            &format!("/salesforce/orgs/{org}/revoke"),
            json!({}),
        )
        .await;

        let tick = looked.next_look().await;

        assert_eq!(tick.degraded, vec![looked.connector.clone()], "{tick:?}");
        assert!(tick.changed.is_empty(), "{tick:?}");
        let health = realtime(&looked.app, &looked.connector).await;
        assert_eq!(health["realtime"]["state"], "DEGRADED", "{health}");
        let message = health["realtime"]["message"].as_str().unwrap();
        assert!(
            message.contains("refused the refresh token")
                && message.contains("looks again in a minute"),
            "a person can tell what happened and what crmsync does: {message}"
        );
        assert!(
            runs(&looked.app, &looked.connector).await.is_empty(),
            "a refused look starts no run"
        );
        // Still refused a minute later: it stays DEGRADED, looked at again.
        let tick = looked.next_look().await;
        assert_eq!(tick.degraded, vec![looked.connector.clone()], "{tick:?}");
    }

    async fn set_realtime(app: &TestApp, connector: &str, on: bool) {
        app.admin_ok(
            "mutation($id: ID!, $on: Boolean) { updateConnector(input: { id: $id, settings: { realtime: $on } }) { connector { id } } }",
            json!({ "id": connector, "on": on }),
        )
        .await;
    }

    #[tokio::test]
    async fn turning_realtime_off_stops_the_looks_and_on_again_starts_them() {
        let mut looked = setup().await;
        set_realtime(&looked.app, &looked.connector, false).await;
        let tick = looked.app.state.realtime().tick(Utc::now()).await.unwrap();
        assert_eq!(tick.unsubscribed, vec![looked.connector.clone()]);
        assert_eq!(
            realtime(&looked.app, &looked.connector).await["realtime"]["state"],
            "OFF"
        );
        salesforce(
            &looked.sandbox,
            reqwest::Method::POST,
            "/sobjects/Lead",
            json!({ "LastName": "Off", "Company": "Engines", "Email": "off@looked.example" }),
        )
        .await;
        let tick = looked.next_look().await;
        assert!(
            tick.changed.is_empty() && tick.subscribed.is_empty(),
            "{tick:?}"
        );
        assert!(runs(&looked.app, &looked.connector).await.is_empty());

        set_realtime(&looked.app, &looked.connector, true).await;
        let tick = looked.app.state.realtime().tick(Utc::now()).await.unwrap();
        assert_eq!(tick.subscribed, vec![looked.connector.clone()]);
        assert_eq!(
            realtime(&looked.app, &looked.connector).await["realtime"]["state"],
            "ACTIVE"
        );
    }
}
