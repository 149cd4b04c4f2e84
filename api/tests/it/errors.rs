//! A database error never reaches a client: INTERNAL, a request id, no SQL.

use crmsync_entity::enums::Role;
use sea_orm::ConnectionTrait;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_database_error_is_masked_and_carries_the_request_id() {
    let app = TestApp::spawn().await;
    let drop = if app.database.is_postgres() {
        "DROP TABLE connectors CASCADE"
    } else {
        "DROP TABLE connectors"
    };
    app.database.db.execute_unprepared(drop).await.unwrap();
    let (status, headers, body) = app
        .post(
            Some(&app.token(Role::Admin)),
            json!({ "query": "{ connectors { totalCount } }" }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(code(&body), "INTERNAL", "{body}");
    let text = body.to_string().to_lowercase();
    for leak in [
        "select", "from", "sqlite", "postgres", "table", "no such", "relation", "http://",
    ] {
        assert!(!text.contains(leak), "{leak} leaked: {body}");
    }
    let request_id = body["errors"][0]["extensions"]["requestId"]
        .as_str()
        .unwrap();
    assert_eq!(headers["x-request-id"].to_str().unwrap(), request_id);
}

#[tokio::test]
async fn every_response_carries_a_request_id_header() {
    let app = TestApp::spawn().await;
    let (_, headers, _) = app
        .post(
            Some(&app.token(Role::Admin)),
            json!({ "query": "{ viewer { role } }" }),
        )
        .await;
    assert!(!headers["x-request-id"].is_empty());
}
