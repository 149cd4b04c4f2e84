//! Idempotency keys remember the input they came with (issue 20): a key
//! replayed with other input is refused instead of silently answering with
//! the first call's result. `idempotency_keys.input_fingerprint` holds a keyed
//! hash of the call's canonical input; null on keys stored before this
//! migration, which are accepted as before until they expire (24 h).

// `MigrationTrait` (async-trait) declares `&SchemaManager` without its lifetime, and an
// impl must match it exactly.
#![allow(elided_lifetimes_in_paths)]

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    InputFingerprint,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(IdempotencyKeys::Table)
                .add_column(string_null(IdempotencyKeys::InputFingerprint))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(IdempotencyKeys::Table)
                .drop_column(IdempotencyKeys::InputFingerprint)
                .to_owned(),
        )
        .await
    }
}
