//! CRM_EVENT runs (real time, issue 27) on the in-memory CRM: the notices
//! that come while a run reads join it, and it reads records by id in whole
//! batches, the part of a batch left over waiting for them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use crmsync_entity::enums::{ConnectorKind, CrmModule, SyncMode, SyncTrigger};
use crmsync_entity::models::{crm_notice, sync_run};
use crmsync_worker::crm::memory::MemoryCrm;
use crmsync_worker::jobs::new_task_id;
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait};

use crate::deletions::{Engine, assert_succeeded, engine_of, person};

const PERSONS: CrmModule = CrmModule::Persons;

/// Notices for these records, waiting for a CRM_EVENT run.
async fn notices(db: &DatabaseConnection, app: (&str, &str), ids: &[String]) {
    let (tenant, connector) = app;
    let rows: Vec<crm_notice::ActiveModel> = ids
        .iter()
        .map(|id| {
            crm_notice::ActiveModel::from(crm_notice::Model {
                id: crmsync_entity::new_id(),
                tenant_id: tenant.to_owned(),
                connector_id: connector.to_owned(),
                module: PERSONS,
                crm_record_id: id.clone(),
                deleted: false,
                received_at: Utc::now(),
                run_id: None,
            })
        })
        .collect();
    crm_notice::Entity::insert_many(rows)
        .exec(db)
        .await
        .unwrap();
}

async fn edited_persons(app: &Engine, n: usize) -> Vec<String> {
    let ids: Vec<String> = (0..n)
        .map(|i| {
            app.crm
                .put(PERSONS, None, person(&format!("p{i}@x.com"), "Before"))
                .id
        })
        .collect();
    app.crm.advance(Duration::seconds(1));
    assert_succeeded(&app.sync(SyncMode::Incremental).await);
    for (i, id) in ids.iter().enumerate() {
        app.crm
            .put(PERSONS, Some(id), person(&format!("p{i}@x.com"), "After"));
    }
    ids
}

// Multi-threaded: the hook blocks its thread while it stores the notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_that_come_while_a_crm_event_run_reads_join_it_in_whole_batches() {
    let app = engine_of(MemoryCrm::new(ConnectorKind::Pipedrive), |_| {}).await;
    let ids = edited_persons(&app, 300).await;
    let who = (app.tenant.as_str(), app.connector_id.as_str());
    notices(&app.db.db, who, &ids[..150]).await;
    // The other half is notified while the run reads its first batch.
    let later = ids[150..].to_vec();
    let (db, tenant, connector) = (
        app.db.db.clone(),
        app.tenant.as_str().to_owned(),
        app.connector_id.clone(),
    );
    let fired = Arc::new(AtomicBool::new(false));
    let asked = Arc::new(Mutex::new(Vec::new()));
    let asked_by_run = asked.clone();
    app.crm.before_get_many(move |ids| {
        asked_by_run.lock().unwrap().push(ids.len());
        if !fired.swap(true, Ordering::SeqCst) {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(notices(
                    &db,
                    (&tenant, &connector),
                    &later,
                ));
            });
        }
    });
    let mut run = sync_run::Model::queued(
        app.tenant.as_str(),
        &app.connector_id,
        SyncTrigger::CrmEvent,
        SyncMode::Incremental,
        new_task_id(),
        None,
    );
    // Its gathering second is over.
    run.queued_at = Utc::now() - Duration::seconds(2);
    let run = sync_run::ActiveModel::from(run)
        .insert(&app.db.db)
        .await
        .unwrap();

    let done = app.execute(&run).await;

    assert_succeeded(&done);
    assert_eq!(
        done.from_crm_updated, 300,
        "the later notices joined the run"
    );
    // A lookup takes 100 records here: the 50 left of the first 150 waited
    // for the 150 notified meanwhile, and were read with them.
    assert_eq!(*asked.lock().unwrap(), vec![100, 200]);
    let contact = app.contact("p299@x.com").await.unwrap();
    assert_eq!(contact.last_name.as_deref(), Some("After"));
}
