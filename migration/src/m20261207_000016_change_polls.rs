//! Real time by looking for changes (issue 27), for CRMs that push no change
//! notifications our kind of app can use: each connector's subscription row
//! keeps how far its looks have read each module (`polled_to`: per module,
//! the newest modification time seen and the ids seen at that time), so a
//! record is named once per change, across processes and restarts.

// `MigrationTrait` (async-trait) declares `&SchemaManager` without its lifetime, and an
// impl must match it exactly.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RealtimeSubscriptions {
    Table,
    PolledTo,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(RealtimeSubscriptions::Table)
                .add_column(json_binary_null(RealtimeSubscriptions::PolledTo))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(RealtimeSubscriptions::Table)
                .drop_column(RealtimeSubscriptions::PolledTo)
                .to_owned(),
        )
        .await
    }
}
