#![doc = include_str!("../README.md")]

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_backbone;
mod m20261121_000002_run_leases;
mod m20261121_000003_schedules_forms;
mod m20261121_000004_deliveries;
mod m20261121_000005_item_changes;
mod m20261206_000006_idempotency_input;
mod m20261206_000007_contact_archive;
mod m20261206_000008_consent_events;
mod m20261206_000009_sync_rules;
mod m20261206_000010_crm_deletions;
mod m20261207_000011_retention;
mod m20261207_000012_fair_slots;
mod m20261207_000013_realtime;
mod m20261207_000015_listed_ids;
mod m20261207_000016_change_polls;
mod m20261207_000017_crm_written_from;

/// All migrations, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_backbone::Migration),
            Box::new(m20261121_000002_run_leases::Migration),
            Box::new(m20261121_000003_schedules_forms::Migration),
            Box::new(m20261121_000004_deliveries::Migration),
            Box::new(m20261121_000005_item_changes::Migration),
            Box::new(m20261206_000006_idempotency_input::Migration),
            Box::new(m20261206_000007_contact_archive::Migration),
            Box::new(m20261206_000008_consent_events::Migration),
            Box::new(m20261206_000009_sync_rules::Migration),
            Box::new(m20261206_000010_crm_deletions::Migration),
            Box::new(m20261207_000011_retention::Migration),
            Box::new(m20261207_000012_fair_slots::Migration),
            Box::new(m20261207_000013_realtime::Migration),
            Box::new(m20261207_000015_listed_ids::Migration),
            Box::new(m20261207_000016_change_polls::Migration),
            Box::new(m20261207_000017_crm_written_from::Migration),
        ]
    }
}
