//! The conformance kit on the sandbox C4C.

use crmsync_sandbox::kit::{Person, Picklist, SandboxCrm};
use crmsync_sandbox::sap_c4c::SandboxKind;

use super::C4c;
use crate::common::TestSandbox;

#[tokio::test]
async fn the_kit_provisions_stores_reads_budgets_and_revokes() {
    let sb = TestSandbox::start().await;
    let state = sb.sandbox.state();
    let kit = SandboxKind;
    let picklists = [Picklist {
        name: "Plezi Segment".into(),
        options: vec!["Silver".into(), "Gold".into()],
    }];
    let account = kit.provision(state, &picklists).await.unwrap();
    assert_eq!(account.base_url, sb.sandbox.base_url());
    let person = Person {
        last_name: "Faure".into(),
        email: Some("f@example.com".into()),
        picklists: [("Plezi Segment".to_owned(), "Gold".to_owned())].into(),
        ..Person::default()
    };
    let ids = kit.put_people(state, &account, &[person]).await.unwrap();
    let stored = kit.stored(state, &account).await.unwrap();
    assert_eq!(stored[0].id, ids[0]);
    assert_eq!(stored[0].email.as_deref(), Some("f@example.com"));

    let c4c = C4c {
        sb: &sb,
        tenant: account.tenant.clone(),
        username: account.connect_form["username"].clone(),
        password: account.connect_form["password"].clone(),
        csrf: None,
    };
    let (status, lead) = c4c.get(&format!("LeadCollection('{}')", ids[0])).await;
    assert_eq!(status, 200, "{lead}");
    assert_eq!(
        lead["d"]["Plezi_Segment_KUT"], "2",
        "Gold is the second code"
    );
    assert_eq!(kit.daily_used(state, &account).await.unwrap(), 1);
    kit.set_daily_budget(state, &account, 1).await.unwrap();
    assert_eq!(c4c.get("LeadCollection").await.0, 429);
    kit.revoke_credentials(state, &account).unwrap();
    assert_eq!(c4c.get("LeadCollection").await.0, 401);
    let contact = kit.convert_lead(state, &account, &ids[0]).await.unwrap();
    assert!(!contact.is_empty());
}

#[tokio::test]
async fn the_admin_api_deletes_a_record_as_a_user_would() {
    let sb = TestSandbox::start().await;
    let mut c4c = C4c::empty(&sb).await;
    let id = c4c
        .lead(serde_json::json!({"Name": "A", "Company": "Acme"}))
        .await;
    let path = format!(
        "/admin/sap_c4c/tenants/{}/records/LeadCollection/{id}",
        c4c.tenant
    );
    let first = sb.http.delete(sb.url(&path)).send().await.unwrap();
    assert_eq!(first.status(), 204);
    assert_eq!(c4c.get(&format!("LeadCollection('{id}')")).await.0, 404);
    let again = sb.http.delete(sb.url(&path)).send().await.unwrap();
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn the_kit_deletes_a_lead_without_a_trace() {
    let sb = TestSandbox::start().await;
    let kit = SandboxKind;
    let (account, ids) = crate::common::kit_deletes_the_first_of_two(&sb, &kit).await;
    let c4c = C4c {
        sb: &sb,
        tenant: account.tenant.clone(),
        username: account.connect_form["username"].clone(),
        password: account.connect_form["password"].clone(),
        csrf: None,
    };
    let (status, _) = c4c.get(&format!("LeadCollection('{}')", ids[0])).await;
    assert_eq!(status, 404, "C4C keeps no deleted records");
    assert_eq!(
        kit.list_endpoint(),
        "GET /sap/c4c/odata/v1/c4codataapi/{resource}"
    );
}
