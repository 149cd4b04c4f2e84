//! No N+1: a page of runs with legs, connector, its mappings and last run costs
//! the same number of SQL statements whatever the page size.

use std::sync::atomic::Ordering;

use serde_json::json;

use crate::helpers::*;

const RUNS: &str = "query($n: Int!) { syncRuns(first: $n) { totalCount edges { node { id status legs { direction created rejected } connector { id name mappings { platformField } lastRun { id } } items(first: 5) { totalCount } } } } }";

async fn statements_for(app: &TestApp, n: usize) -> usize {
    let before = app.statements.load(Ordering::SeqCst);
    let data = app.admin_ok(RUNS, json!({ "n": n })).await;
    assert_eq!(data["syncRuns"]["edges"].as_array().unwrap().len(), n);
    app.statements.load(Ordering::SeqCst) - before
}

#[tokio::test]
async fn a_page_of_runs_costs_a_constant_number_of_statements() {
    let app = TestApp::spawn().await;
    let db = &app.database.db;
    let mut connectors = Vec::new();
    for i in 0..3 {
        connectors.push(insert_connector(db, &app.tenant_id, &format!("c{i}")).await);
    }
    for i in 0..50 {
        insert_run(db, &app.tenant_id, &connectors[i % 3]).await;
    }
    // Without the nested `items` connection, which is a query per run by design.
    let lean = RUNS.replace(" items(first: 5) { totalCount }", "");
    let count = |n: usize| {
        let lean = lean.clone();
        let app = &app;
        async move {
            let before = app.statements.load(Ordering::SeqCst);
            let data = app.admin_ok(&lean, json!({ "n": n })).await;
            assert_eq!(data["syncRuns"]["edges"].as_array().unwrap().len(), n);
            app.statements.load(Ordering::SeqCst) - before
        }
    };
    let small = count(5).await;
    let large = count(50).await;
    assert_eq!(
        small, large,
        "statements for 5 runs: {small}, for 50: {large}"
    );
    assert!(large <= 8, "{large} statements");
    // The nested items connection still works.
    assert!(statements_for(&app, 2).await > 0);
}
