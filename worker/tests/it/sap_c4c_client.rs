//! The SAP C4C client against the sandbox C4C (and, for the CSRF token's
//! renewal, a stub gateway that refuses the first token): `$batch`
//! changesets that refuse one record alone, stale ETags read again, code
//! lists and the lead's company checked before any call, individual
//! customers read as a module of their own, and employees as owners.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crmsync_entity::enums::CrmModule;
use crmsync_sandbox::kit::{Account, Person, Picklist, SandboxCrm};
use crmsync_sandbox::sap_c4c::SandboxKind;
use crmsync_sandbox::{AppState, Sandbox, SandboxConfig};
use crmsync_worker::crm::sap_c4c::{SapC4cClient, kit};
use crmsync_worker::crm::{ClientOptions, CrmClient, CrmError, ListQuery, RecordWrite};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::support::{crm_http, fast_retries};

/// Every request that creates or changes records.
const WRITES: [&str; 2] = [
    "POST /sap/c4c/odata/v1/c4codataapi/$batch",
    "PATCH /sap/c4c/odata/v1/c4codataapi/{resource}",
];

/// A fresh tenant on a sandbox of its own, with a `Tier` code list field.
struct Tenant {
    _sandbox: Sandbox,
    state: AppState,
    account: Account,
}

impl Tenant {
    async fn start() -> Self {
        let sandbox = Sandbox::start(SandboxConfig {
            people: 0,
            ..SandboxConfig::default()
        })
        .await
        .expect("sandbox starts");
        let state = sandbox.state().clone();
        let tier = Picklist {
            name: "Tier".into(),
            options: vec!["Gold".into(), "Silver".into()],
        };
        let account = SandboxKind
            .provision(&state, &[tier])
            .await
            .expect("a tenant");
        Self {
            _sandbox: sandbox,
            state,
            account,
        }
    }

    fn client_with(&self, options: &ClientOptions) -> SapC4cClient {
        let form = |k: &str| self.account.connect_form[k].clone();
        let credentials = kit::credentials(&form("username"), SecretString::from(form("password")));
        SapC4cClient::new(&credentials, Some(&self.account.base_url), crm_http())
            .expect("client")
            .with_options(options)
            .with_retry_policy(fast_retries())
    }

    fn client(&self) -> SapC4cClient {
        self.client_with(&ClientOptions {
            default_company: Some("Default Co".into()),
            ..ClientOptions::default()
        })
    }

    async fn put(&self, people: &[(&str, &str)]) -> Vec<String> {
        let people: Vec<Person> = people
            .iter()
            .map(|(email, last)| Person {
                first_name: Some("Ann".into()),
                last_name: (*last).to_owned(),
                email: Some((*email).to_owned()),
                phone: None,
                modified_at: None,
                picklists: BTreeMap::new(),
            })
            .collect();
        SandboxKind
            .put_people(&self.state, &self.account, &people)
            .await
            .expect("stored")
    }

    fn writes(&self) -> u64 {
        self.account.calls_to(&self.state, &WRITES)
    }

    /// An admin call on this tenant (`rest` below its path); its JSON reply.
    async fn admin(&self, method: reqwest::Method, rest: &str, body: Option<Value>) -> Value {
        let url = format!(
            "{}/sap_c4c/tenants/{}{rest}",
            self._sandbox.description().admin_url,
            self.account.tenant
        );
        let mut request = reqwest::Client::new().request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin call");
        assert!(
            response.status().is_success(),
            "{rest}: {}",
            response.status()
        );
        response.json().await.unwrap_or(Value::Null)
    }

    /// The tenant's employees: business partner id by e-mail.
    async fn employees(&self) -> BTreeMap<String, String> {
        let reply = self
            .admin(reqwest::Method::GET, "/records/EmployeeCollection", None)
            .await;
        reply["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["Email"].as_str().unwrap().to_owned(),
                    e["BusinessPartnerID"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

fn update(id: &str, values: &[(&str, Value)]) -> RecordWrite {
    RecordWrite {
        id: Some(id.to_owned()),
        values: values
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        owner_email: None,
        email: String::new(),
    }
}

fn create(email: &str, values: &[(&str, Value)]) -> RecordWrite {
    RecordWrite {
        id: None,
        email: email.to_owned(),
        ..update("", values)
    }
}

#[tokio::test]
async fn a_record_c4c_refuses_rolls_back_its_own_changeset_only() {
    let tenant = Tenant::start().await;
    let ids = tenant
        .put(&[("a@x.com", "A"), ("b@x.com", "B"), ("c@x.com", "C")])
        .await;
    let client = tenant.client();

    let results = client
        .write(
            CrmModule::Leads,
            vec![
                update(&ids[0], &[("ContactPhone", json!("+331"))]),
                // C4C refuses a lead without a name.
                update(
                    &ids[1],
                    &[("ContactPhone", json!("+332")), ("Name", Value::Null)],
                ),
                update(&ids[2], &[("ContactPhone", json!("+333"))]),
            ],
        )
        .await;

    assert!(results[0].is_ok(), "{:?}", results[0]);
    match &results[1] {
        Err(CrmError::Rejected { field, message, .. }) => {
            assert_eq!(field.as_deref(), Some("Name"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(results[2].is_ok(), "{:?}", results[2]);
    assert_eq!(tenant.writes(), 1, "one $batch call");
    let stored = SandboxKind
        .stored(&tenant.state, &tenant.account)
        .await
        .unwrap();
    let phone = |id: &str| {
        stored
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.phone.clone())
    };
    assert_eq!(phone(&ids[0]).as_deref(), Some("+331"));
    assert_eq!(phone(&ids[1]), None, "the refused changeset is rolled back");
    assert_eq!(phone(&ids[2]).as_deref(), Some("+333"));
}

#[tokio::test]
async fn a_stale_etag_is_read_again_and_the_update_sent_once_more() {
    let tenant = Tenant::start().await;
    let ids = tenant.put(&[("e@x.com", "E")]).await;
    let client = tenant.client();

    // Both changesets carry the ETag read before the batch: the second is
    // stale once the first has changed the lead (412), and is sent again.
    let results = client
        .write(
            CrmModule::Leads,
            vec![
                update(&ids[0], &[("ContactPhone", json!("+331"))]),
                update(&ids[0], &[("ContactPhone", json!("+332"))]),
            ],
        )
        .await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(tenant.writes(), 2, "the $batch and one PATCH sent again");
    let record = client
        .get_many(CrmModule::Leads, &ids)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(record.values["ContactPhone"], json!("+332"));
    assert_eq!(record.modified_at, results[1].as_ref().unwrap().modified_at);
}

#[tokio::test]
async fn a_code_outside_its_list_and_a_lead_without_company_are_refused_without_a_call() {
    let tenant = Tenant::start().await;
    let no_default = tenant.client_with(&ClientOptions::default());
    no_default.fields(CrmModule::Leads).await.unwrap();

    let results = no_default
        .write(
            CrmModule::Leads,
            vec![
                create(
                    "bird@x.com",
                    &[
                        ("ContactLastName", json!("Pigeon")),
                        ("Company", json!("Acme")),
                        ("Tier_KUT", json!("Carrier pigeon")),
                    ],
                ),
                create("nocompany@x.com", &[("ContactLastName", json!("Solo"))]),
            ],
        )
        .await;

    match &results[0] {
        Err(CrmError::Rejected {
            code,
            field,
            message,
        }) => {
            assert_eq!(code, "INVALID_PICKLIST_VALUE");
            assert_eq!(field.as_deref(), Some("Tier_KUT"));
            assert!(message.contains("Gold"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match &results[1] {
        Err(CrmError::Rejected { field, .. }) => assert_eq!(field.as_deref(), Some("Company")),
        other => panic!("{other:?}"),
    }
    assert_eq!(tenant.writes(), 0, "no write was sent");

    let gold = tenant
        .client()
        .write(
            CrmModule::Leads,
            vec![create(
                "gold@x.com",
                &[
                    ("ContactLastName", json!("Hawn")),
                    ("Tier_KUT", json!("gold")),
                ],
            )],
        )
        .await;
    let id = gold[0].as_ref().expect("created").id.clone();
    let read = tenant
        .client()
        .get_many(CrmModule::Leads, &[id])
        .await
        .unwrap();
    assert_eq!(read[0].values["Tier_KUT"], json!("Gold"));
    assert_eq!(read[0].values["Name"], json!("Hawn"));
    assert_eq!(
        read[0].values["Company"],
        Value::Null,
        "the default reads as none"
    );
}

/// A stub gateway: every token fetch opens a new session; a write with the
/// first token is refused as C4C refuses an expired one.
#[tokio::test]
async fn a_refused_csrf_token_is_fetched_again_with_its_session_cookie() {
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};

    let fetches = Arc::new(AtomicU32::new(0));
    let cookies = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let header = |h: &HeaderMap, name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let root = {
        let fetches = fetches.clone();
        move |h: HeaderMap| {
            let fetches = fetches.clone();
            async move {
                assert!(header(&h, "authorization").starts_with("Basic "));
                let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
                (
                    [
                        ("x-csrf-token", format!("token-{n}")),
                        (
                            "set-cookie",
                            format!("SAP_SESSIONID_T_100=sid-{n}; path=/; HttpOnly"),
                        ),
                    ],
                    axum::Json(json!({"d": {"EntitySets": []}})),
                )
            }
        }
    };
    let metadata = || async {
        r#"<EntityType Name="Lead"><Property Name="ObjectID" Type="Edm.String" sap:creatable="false" sap:updatable="false"/><Property Name="Name" Type="Edm.String" MaxLength="255"/><Property Name="Company" Type="Edm.String" MaxLength="80"/><Property Name="ContactLastName" Type="Edm.String" MaxLength="40"/><Property Name="ContactEMail" Type="Edm.String" MaxLength="255"/><Property Name="EntityLastChangedOn" Type="Edm.DateTimeOffset" sap:creatable="false" sap:updatable="false"/></EntityType>"#
    };
    let batch = {
        let cookies = cookies.clone();
        move |h: HeaderMap| {
            let cookies = cookies.clone();
            async move {
                let (token, cookie) = (header(&h, "x-csrf-token"), header(&h, "cookie"));
                cookies.lock().unwrap().push(cookie.clone());
                if token != "token-2" || cookie != "SAP_SESSIONID_T_100=sid-2" {
                    return (
                        StatusCode::FORBIDDEN,
                        [("x-csrf-token", "Required")],
                        "CSRF token validation failed",
                    )
                        .into_response();
                }
                let part = "--batchresponse\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n--cs\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 201 Created\r\nContent-Type: application/json\r\n\r\n{\"d\":{\"ObjectID\":\"00163E01\",\"EntityLastChangedOn\":\"/Date(1700000000000)/\"}}\r\n--cs--\r\n--batchresponse--\r\n";
                (
                    StatusCode::ACCEPTED,
                    [("content-type", "multipart/mixed; boundary=batchresponse")],
                    part,
                )
                    .into_response()
            }
        }
    };
    let service = "/sap/c4c/odata/v1/c4codataapi";
    let app = axum::Router::new()
        .route(&format!("{service}/"), get(root))
        .route(&format!("{service}/$metadata"), get(metadata))
        .route(&format!("{service}/$batch"), post(batch));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let credentials = kit::credentials("TECH", SecretString::from("secret".to_owned()));
    let client = SapC4cClient::new(&credentials, Some(&base), crm_http())
        .unwrap()
        .with_options(&ClientOptions {
            default_company: Some("Co".into()),
            ..ClientOptions::default()
        })
        .with_retry_policy(fast_retries());

    let results = client
        .write(
            CrmModule::Leads,
            vec![create("new@x.com", &[("ContactLastName", json!("New"))])],
        )
        .await;

    assert_eq!(results[0].as_ref().expect("created").id, "00163E01");
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "one token fetched again");
    assert_eq!(
        *cookies.lock().unwrap(),
        ["SAP_SESSIONID_T_100=sid-1", "SAP_SESSIONID_T_100=sid-2"],
        "each token went with its session's cookie"
    );
}

#[tokio::test]
async fn employees_are_the_users_a_locked_one_inactive() {
    let tenant = Tenant::start().await;

    let users = tenant.client().users().await.unwrap();

    let employees = tenant.employees().await;
    assert_eq!(users.len(), employees.len());
    let maria = users
        .iter()
        .find(|u| u.email == "maria.schmidt@sales.example")
        .expect("Maria is a user");
    assert_eq!(maria.id, employees["maria.schmidt@sales.example"]);
    assert_eq!(maria.name, "Maria Schmidt");
    assert!(maria.active);
    let paul = users
        .iter()
        .find(|u| u.email == "paul.frost@sales.example")
        .expect("Paul is a user");
    assert!(!paul.active, "a locked user owns nothing");
}

#[tokio::test]
async fn a_leads_owner_reads_as_its_employees_e_mail_and_is_written_from_it() {
    let tenant = Tenant::start().await;
    let employees = tenant.employees().await;
    let client = tenant.client();
    let mut write = create("own@x.com", &[("ContactLastName", json!("Own"))]);
    write.owner_email = Some("Jonas.Keller@sales.example".into());
    let mut locked = create("locked@x.com", &[("ContactLastName", json!("Locked"))]);
    locked.owner_email = Some("paul.frost@sales.example".into());

    let results = client.write(CrmModule::Leads, vec![write, locked]).await;

    let ids: Vec<String> = results.into_iter().map(|r| r.unwrap().id).collect();
    let stored = tenant
        .admin(reqwest::Method::GET, "/records/LeadCollection", None)
        .await;
    let owner_of = |id: &str| {
        stored["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["ObjectID"] == id)
            .map(|r| r["OwnerPartyID"].clone())
    };
    assert_eq!(
        owner_of(&ids[0]),
        Some(json!(employees["jonas.keller@sales.example"]))
    );
    assert_eq!(
        owner_of(&ids[1]),
        Some(Value::Null),
        "a locked user's lead keeps C4C's own owner"
    );
    let read = client.get_many(CrmModule::Leads, &ids[..1]).await.unwrap();
    assert_eq!(
        read[0].owner_email.as_deref(),
        Some("jonas.keller@sales.example")
    );
    assert_eq!(read[0].values["OwnerPartyID"], "jonas.keller@sales.example");
}

#[tokio::test]
async fn individual_customers_list_as_customers_under_the_leads_names() {
    let tenant = Tenant::start().await;
    let employees = tenant.employees().await;
    let owner = employees["aiko.tanaka@sales.example"].clone();
    tenant
        .admin(
            reqwest::Method::POST,
            "/records/IndividualCustomerCollection",
            Some(json!({ "records": [
                { "FirstName": "Bea", "LastName": "Buyer", "Email": "bea@home.example",
                  "OwnerID": owner, "SyncToPlezi_KUT": true,
                  "EntityLastChangedOn": "2026-11-21T10:00:00Z" },
                { "FirstName": "Carl", "LastName": "Cash", "Email": "carl@home.example",
                  "EntityLastChangedOn": "2026-11-21T11:00:00Z" },
            ] })),
        )
        .await;
    tenant.put(&[("lead@x.com", "Lead")]).await;
    let client = tenant.client();

    let page = client
        .list(&ListQuery {
            module: CrmModule::Customers,
            since: None,
            cursor: None,
            page_size: 1_000,
        })
        .await
        .unwrap();

    let emails: Vec<_> = page.records.iter().map(|r| r.email.clone()).collect();
    assert_eq!(
        emails,
        [
            Some("bea@home.example".to_owned()),
            Some("carl@home.example".to_owned())
        ],
        "customers only, oldest first"
    );
    let bea = &page.records[0];
    assert_eq!(bea.module, CrmModule::Customers);
    assert_eq!(bea.values["ContactFirstName"], "Bea");
    assert_eq!(bea.values["SyncToPlezi_KUT"], true);
    assert_eq!(
        bea.owner_email.as_deref(),
        Some("aiko.tanaka@sales.example")
    );
    assert!(!bea.converted);
    assert!(page.next_cursor.is_none());
    let fields = client.fields(CrmModule::Customers).await.unwrap();
    assert!(fields.iter().any(|f| f.api_name == "ContactEMail"));
    let again = client
        .get_many(CrmModule::Customers, std::slice::from_ref(&bea.id))
        .await
        .unwrap();
    assert_eq!(again[0].email, bea.email);
}

#[tokio::test]
async fn a_sync_imports_individual_customers_as_clients_with_their_owners() {
    use crate::conformance::{Running, Suite};
    use crmsync_entity::enums::{ConnectorKind, Lifecycle, SyncMode, SyncRunStatus};
    let running = Running::start();
    let app = Suite::<SandboxKind>::new(ConnectorKind::SapC4c, &running)
        .app(|s| {
            s.import_modules = vec![CrmModule::Leads, CrmModule::Customers];
            s.filter_field = None;
            s.filter_value = None;
        })
        .await;
    let account = &app.crm.account;
    let admin = |rest: &str| {
        format!(
            "{}/admin/sap_c4c/tenants/{}/records/{rest}",
            account.base_url, account.tenant
        )
    };
    let http = reqwest::Client::new();
    let employees: Value = http
        .get(admin("EmployeeCollection"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let aiko = employees["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Email"] == "aiko.tanaka@sales.example")
        .map(|e| e["BusinessPartnerID"].clone())
        .unwrap();
    let stored = http
        .post(admin("IndividualCustomerCollection"))
        .json(&json!({ "records": [
            { "FirstName": "Bea", "LastName": "Buyer", "Email": "bea@home.example", "OwnerID": aiko },
        ] }))
        .send()
        .await
        .unwrap();
    assert!(stored.status().is_success());

    let run = app.sync(SyncMode::Full).await;

    assert_eq!(run.status, SyncRunStatus::Succeeded, "{run:?}");
    assert_eq!(run.from_crm_created, 1);
    let contacts = app.contacts().await;
    let bea = contacts
        .iter()
        .find(|c| c.email == "bea@home.example")
        .expect("the customer is a platform contact");
    assert_eq!(bea.lifecycle, Lifecycle::Client, "a customer is a client");
    assert_eq!(bea.first_name.as_deref(), Some("Bea"));
    assert_eq!(
        bea.owner_email.as_deref(),
        Some("aiko.tanaka@sales.example")
    );
    assert!(
        app.crm.stored().await.is_empty(),
        "a customer is never written back as a lead"
    );
}
