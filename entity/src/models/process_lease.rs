//! Named leases held by one process at a time (the scheduler's, issue 6):
//! not tenant-owned; a holder renews its lease, and a lease left to expire
//! (its holder died) goes to the next process that asks.

use sea_orm::entity::prelude::*;

/// A lease.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "process_leases")]
pub struct Model {
    /// What the lease is for, e.g. `scheduler`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// The process holding it (its instance name).
    pub holder: String,
    /// When it lapses unless renewed.
    pub expires_at: DateTimeUtc,
}

/// No navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
